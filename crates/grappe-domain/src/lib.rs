//! Grappe's domain: plain values with no I/O. Every type here is valid by construction
//! (`parse` constructors), so the layers above never re-check what a value already proves.

pub mod account;
pub mod allocation;
pub mod array;
pub mod calendar;
pub mod centre;
pub mod compute;
pub mod dependency;
pub mod money;
pub mod policy;
pub mod programme;
pub mod workdir;
