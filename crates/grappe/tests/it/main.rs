//! Grappe's integration tests: the real `grappe` binary, on real SQLite files and a real
//! PostgreSQL server, driven over HTTP, from the shell and through a real browser.
//! `scripts/test.sh` starts what these need; see `harness.rs` for the environment variables.

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed, which is what unwrap says

mod api;
mod authz;
mod bad_input;
mod booster;
mod browser;
mod calls;
mod calls_integrity;
mod calls_isolation;
mod centres;
mod challenges;
mod cli;
mod cluster;
mod commons;
mod compute;
mod correctness;
mod crash;
mod dataset;
mod gateway;
mod hardening;
mod harness;
mod jury;
mod lm;
mod metrics;
mod models;
mod programme;
mod sandbox;
mod score;
mod simulate;
mod workdir;
