//! The international jury's algorithms, pure: values in, values out. No I/O, no clock, no serde,
//! no HTTP: the CLI and the server parse their inputs and hand us plain values.
//!
//! [`assign`]: every application gets exactly k reviewers, no reviewer more than L
//! applications, no conflicted pair, total affinity maximal, by our own min-cost flow
//! (`assign.rs`, whose module comment has the algorithm and the proof of optimality); when no
//! assignment exists, an [`Infeasible`] says which constraint cannot be met. [`assign_fair`], the
//! fairness mode: the worst assigned pair's affinity maximal first (exact, a bottleneck
//! assignment by binary search), then the total. `calibrate`: per-juror z-scores and the
//! least-squares bias model (quality plus juror offset); `rank`: Borda and Schulze rankings;
//! [`affinity`]: TF-IDF affinities between applications' and reviewers' words.

pub mod affinity;
mod assign;
pub mod calibrate;
mod problem;
pub mod rank;

pub use assign::{Assignment, FairAssignment, Infeasible, assign, assign_fair};
pub use problem::{Problem, ProblemError, ProblemSpec};

#[cfg(test)]
mod assign_tests;
