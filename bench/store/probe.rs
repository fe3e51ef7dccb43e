//! Two small measurements behind the store's defaults:
//!
//! - `cargo bench -p grappe-store --bench probe -- zstd`: zstd speed and size ratio per level on
//!   64 KiB chunks of each kind of the benchmark's data, one core;
//! - `cargo bench -p grappe-store --bench probe -- ingest DIR LEVEL THREADS [SIZE_MIB]`:
//!   `ingest_dir` alone (LEVEL 0 = no compression) into a fresh store under the system's
//!   temporary folder; DIR is filled with SIZE_MIB (default 512) of the benchmark's data first if
//!   it has none.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measurement that fails may panic

#[path = "data.rs"]
mod data;

use std::path::PathBuf;
use std::time::Instant;

use grappe_store::testing::Rng;
use grappe_store::{Compression, LocalDir, LocalDirConfig, Store, StoreConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("zstd") => zstd_speed(),
        Some("ingest") if args.len() >= 4 => {
            let size_mib = args.get(4).map_or(512, |size| size.parse().expect("SIZE_MIB"));
            ingest(
                PathBuf::from(&args[1]),
                args[2].parse().expect("LEVEL"),
                args[3].parse().expect("THREADS"),
                size_mib,
            )
        }
        _ => eprintln!("usage: probe zstd | probe ingest DIR LEVEL THREADS [SIZE_MIB]"),
    }
}

fn zstd_speed() {
    for kind in [data::Kind::Text, data::Kind::Csv, data::Kind::Binary] {
        let bytes = data::generate(kind, 64 << 20, &mut Rng::new(1), false);
        for level in [-1, 1, 3] {
            let mut compressor = zstd::bulk::Compressor::new(level).expect("zstd context");
            let started = Instant::now();
            let mut out = 0;
            for chunk in bytes.chunks(64 << 10) {
                out += compressor.compress(chunk).expect("compress").len();
            }
            println!(
                "{kind:?} level {level}: {:.0} MiB/s, size ratio {:.2}",
                64.0 / started.elapsed().as_secs_f64(),
                out as f64 / bytes.len() as f64
            );
        }
    }
}

fn ingest(dir: PathBuf, level: i32, threads: usize, size_mib: u64) {
    if !dir.join("part-000").exists() {
        for spec in data::plan(size_mib << 20, 1) {
            let path = dir.join(&spec.path);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folder");
            std::fs::write(path, data::content(&spec)).expect("write");
        }
    }
    let root = std::env::temp_dir().join("grappe-probe-store");
    let _ = std::fs::remove_dir_all(&root);
    let compression = if level == 0 { Compression::None } else { Compression::Zstd { level } };
    let config = StoreConfig { compression, ingest_threads: threads, ..StoreConfig::default() };
    let store = Store::open(LocalDir::open(&root, LocalDirConfig::default()).expect("open"), config).expect("open");
    let started = Instant::now();
    let ingested = store.ingest_dir(&dir).expect("ingest");
    println!("level {level}, {threads} threads: {:.2} s, {:?}", started.elapsed().as_secs_f64(), ingested.stats);
    let _ = std::fs::remove_dir_all(&root);
}
