//! Grappe's scheduling engine: pure values in, decisions out. No I/O, no clock, no SQL.
//!
//! - [`swf`] parses Standard Workload Format traces.
//! - [`sim`] replays a trace under FCFS, EASY or conservative backfilling, with the exact
//!   semantics `grappe simulate` promises.

pub mod sim;
pub mod swf;

#[cfg(test)]
mod sim_tests;
