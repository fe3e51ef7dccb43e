//! Grappe's scheduling engine: pure values in, decisions out. No I/O, no clock, no SQL.
//!
//! - [`swf`] parses Standard Workload Format traces.
//! - [`sim`] replays a trace under FCFS, EASY or conservative backfilling, with the exact
//!   semantics `grappe simulate` promises.
//! - [`engine`] is the live scheduler of the compute service: multi-resource nodes, multifactor
//!   priority with fair-share between projects, allocation rules, QoS caps and preemption.

pub mod engine;
pub mod estimate;
pub mod sim;
pub mod swf;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod sim_tests;
