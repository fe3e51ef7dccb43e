//! grappe-eval's tests: every metric against scikit-learn and sacrebleu (`reference.rs`, cases
//! written by `tests/fixtures/generate.py`), the errors a user sees (`errors.rs`), and seeded
//! random tables, read back and damaged (`roundtrip.rs`).

#![allow(clippy::unwrap_used)] // a test that cannot unwrap has failed, which is what unwrap says

mod errors;
mod reference;
mod roundtrip;
