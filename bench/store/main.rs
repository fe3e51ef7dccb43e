//! The store benchmark: `bench/store/run.sh [SIZE_MIB]`, or directly
//! `cargo bench -p grappe-store --bench store -- [--size-mib N] [--work DIR] [--dvc PATH]
//! [--s3 s3://BUCKET/PREFIX?endpoint=URL --s3-dir DIR]`.
//!
//! Generates about SIZE_MIB (default 2048) of mixed text, CSV and binary files (`data.rs`) and a
//! second version with about 1 % of the bytes edited (insertions and overwrites spread over the
//! data), then, in the same run and on the same disk, with warm page caches (the data was just
//! written):
//!
//! - Grappe's local store (`Store::push_dir`: chunk, hash, compress, pack, fsync), with zstd
//!   level 1 (the default), level 3, and without compression;
//! - Grappe on S3 (zstd 1), when `--s3` names a store (`run.sh` gives the test server of
//!   `scripts/test-services.sh`, s3s-fs on this machine: the row measures the client and the
//!   HTTP round trips, not a remote network); `--s3-dir` is the folder where that server keeps
//!   the prefix's objects, whose size is the bytes stored;
//! - `cp -r`, and `cp -r` followed by `sync` (Grappe fsyncs what it writes; cp alone does not);
//! - `sha256sum` over every file (hashing alone, the least any content-addressed tool does);
//! - DVC (`dvc add` then `dvc push` to a local remote), if its binary is found.
//!
//! For each: ingest time and throughput of the first version, time of the second, bytes stored
//! after the first and after both, and bytes transferred for the second version (for Grappe the
//! packs, indexes and manifest it wrote; for DVC the growth of its remote; for cp the second
//! copy). One markdown table on standard output.

#[path = "data.rs"]
mod data;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use grappe_store::{Compression, Name, Splits, Store, StoreConfig, open_blobs};

struct Row {
    tool: String,
    v1_s: f64,
    v2_s: Option<f64>,
    stored_v1: Option<u64>,
    stored_both: Option<u64>,
    sent_v2: Option<u64>,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut size_mib: u64 = 2048;
    let mut work = std::env::temp_dir().join("grappe-bench-store");
    let mut dvc = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/store/.venv/bin/dvc"));
    let mut s3: Option<(String, PathBuf)> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size-mib" => size_mib = args.next().and_then(|v| v.parse().ok()).ok_or("--size-mib N")?,
            "--work" => work = PathBuf::from(args.next().ok_or("--work DIR")?),
            "--dvc" => dvc = PathBuf::from(args.next().ok_or("--dvc PATH")?),
            "--s3" => {
                let spec = args.next().ok_or("--s3 SPEC --s3-dir DIR")?;
                let dir = match (args.next().as_deref(), args.next()) {
                    (Some("--s3-dir"), Some(dir)) => PathBuf::from(dir),
                    _ => return Err("--s3 SPEC --s3-dir DIR".into()),
                };
                s3 = Some((spec, dir));
            }
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let (v1, v2) = (work.join("v1"), work.join("v2"));
    let started = Instant::now();
    let files = data::plan(size_mib << 20, 1);
    let sites = data::edit_sites(&files, 2);
    let mut edited = 0;
    for (spec, sites) in files.iter().zip(&sites) {
        let mut content = data::content(spec);
        write(&v1.join(&spec.path), &content)?;
        edited += data::apply_edits(&mut content, spec, sites, 3);
        write(&v2.join(&spec.path), &content)?;
    }
    sh("sync")?;
    let v1_bytes = du(&v1);
    let v2_bytes = du(&v2);
    eprintln!(
        "generated {} files, v1 {:.1} MiB, v2 {:.1} MiB, {} edit sites, {:.2} % of bytes edited, in {:.1} s",
        files.len(),
        mib(v1_bytes),
        mib(v2_bytes),
        sites.iter().map(Vec::len).sum::<usize>(),
        100.0 * edited as f64 / v1_bytes as f64,
        started.elapsed().as_secs_f64()
    );
    let load_before = load_average();
    let mut rows = Vec::new();

    // (label, compression, the store's spec, the folder holding its blobs as files)
    let local = work.join("grappe");
    let local_spec = local.to_str().ok_or("the work folder's path is not UTF-8")?.to_string();
    let mut grappe_variants = vec![
        ("Grappe store (zstd 1, the default)", Compression::default(), local_spec.clone(), local.clone()),
        ("Grappe store (zstd 3)", Compression::Zstd { level: 3 }, local_spec.clone(), local.clone()),
        ("Grappe store (no compression)", Compression::None, local_spec, local),
    ];
    if let Some((spec, dir)) = &s3 {
        let (location, query) = spec.split_once('?').unwrap_or((spec, ""));
        let spec = format!("{}/grappe-bench-store?{query}", location.trim_end_matches('/'));
        let label = "Grappe on S3 (s3s-fs on this machine, zstd 1)";
        grappe_variants.push((label, Compression::default(), spec, dir.join("grappe-bench-store")));
    }
    for (label, compression, spec, root) in grappe_variants {
        let _ = std::fs::remove_dir_all(&root);
        let blobs = open_blobs(&spec).map_err(|e| e.to_string())?;
        let store =
            Store::open(blobs, StoreConfig { compression, ..StoreConfig::default() }).map_err(|e| e.to_string())?;
        let name = Name::parse("bench").map_err(|e| e.to_string())?;
        sh("sync")?;
        let started = Instant::now();
        store.push_dir(&v1, &name, String::new(), Splits::new()).map_err(|e| e.to_string())?;
        let v1_s = started.elapsed().as_secs_f64();
        let stored_v1 = du(&root);
        sh("sync")?;
        let started = Instant::now();
        let (committed, stats) = store.push_dir(&v2, &name, String::new(), Splits::new()).map_err(|e| e.to_string())?;
        let v2_s = started.elapsed().as_secs_f64();
        eprintln!("{label}: v2 {stats:?}");
        let started = Instant::now();
        let report = store.verify().map_err(|e| e.to_string())?;
        eprintln!("{label}: verify {:.1} s, clean: {}", started.elapsed().as_secs_f64(), report.is_clean());
        rows.push(Row {
            tool: label.into(),
            v1_s,
            v2_s: Some(v2_s),
            stored_v1: Some(stored_v1),
            stored_both: Some(du(&root)),
            sent_v2: Some(stats.stored_bytes + committed.manifest_bytes),
        });
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
    }

    for (label, then_sync) in [("cp -r", false), ("cp -r, then sync", true)] {
        let target = work.join("cp");
        let _ = std::fs::remove_dir_all(&target);
        std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        let sync = if then_sync { " && sync" } else { "" };
        let v1_s = timed(&format!("cp -r '{}' '{}/v1'{sync}", v1.display(), target.display()))?;
        let stored_v1 = du(&target);
        let v2_s = timed(&format!("cp -r '{}' '{}/v2'{sync}", v2.display(), target.display()))?;
        rows.push(Row {
            tool: label.into(),
            v1_s,
            v2_s: Some(v2_s),
            stored_v1: Some(stored_v1),
            stored_both: Some(du(&target)),
            sent_v2: Some(v2_bytes),
        });
        let _ = std::fs::remove_dir_all(&target);
    }

    let v1_s = timed(&format!("find '{}' -type f -print0 | xargs -0 sha256sum > /dev/null", v1.display()))?;
    rows.push(Row { tool: "sha256sum".into(), v1_s, v2_s: None, stored_v1: None, stored_both: None, sent_v2: None });

    if dvc.exists() {
        rows.push(run_dvc(&dvc, &work, &v1, &v2)?);
    } else {
        eprintln!("DVC not found at {} (bench/store/run.sh installs it): no DVC row", dvc.display());
    }

    println!(
        "Data: {} files, v1 {:.0} MiB, v2 {:.0} MiB ({:.2} % of bytes edited at {} sites); {} CPUs, load average {} before, {} after.\n",
        files.len(),
        mib(v1_bytes),
        mib(v2_bytes),
        100.0 * edited as f64 / v1_bytes as f64,
        sites.iter().map(Vec::len).sum::<usize>(),
        std::thread::available_parallelism().map(usize::from).unwrap_or(0),
        load_before,
        load_average()
    );
    println!(
        "| tool | v1 ingest s | v1 MiB/s | v2 ingest s | stored after v1 MiB | stored after both MiB | sent for v2 MiB | v2 sent / v1 stored |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let cell = |value: Option<u64>| value.map(|v| format!("{:.1}", mib(v))).unwrap_or_else(|| "-".into());
    for row in &rows {
        println!(
            "| {} | {:.2} | {:.0} | {} | {} | {} | {} | {} |",
            row.tool,
            row.v1_s,
            mib(v1_bytes) / row.v1_s,
            row.v2_s.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()),
            cell(row.stored_v1),
            cell(row.stored_both),
            cell(row.sent_v2),
            match (row.sent_v2, row.stored_v1) {
                (Some(sent), Some(stored)) => format!("{:.1} %", 100.0 * sent as f64 / stored as f64),
                _ => "-".into(),
            }
        );
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// DVC: `dvc add` then `dvc push` to a local remote, for each version; the stored bytes are
/// the remote's (the local cache holds as much again).
fn run_dvc(dvc: &Path, work: &Path, v1: &Path, v2: &Path) -> Result<Row, String> {
    let repo = work.join("dvc-repo");
    let remote = work.join("dvc-remote");
    std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&remote).map_err(|e| e.to_string())?;
    let dvc = dvc.display();
    let in_repo = |command: &str| format!("cd '{}' && DVC_NO_ANALYTICS=1 {command}", repo.display());
    sh(&in_repo(&format!("'{dvc}' init --no-scm -q && '{dvc}' config core.analytics false")))?;
    sh(&in_repo(&format!("'{dvc}' remote add -d local '{}'", remote.display())))?;
    sh(&format!("cp -r '{}' '{}/data'", v1.display(), repo.display()))?;
    sh("sync")?;
    let v1_s = timed(&in_repo(&format!("'{dvc}' add -q data && '{dvc}' push -q")))?;
    let stored_v1 = du(&remote);
    sh(&format!("rm -rf '{}/data' && cp -r '{}' '{}/data' && sync", repo.display(), v2.display(), repo.display()))?;
    let v2_s = timed(&in_repo(&format!("'{dvc}' add -q data && '{dvc}' push -q")))?;
    let stored_both = du(&remote);
    let version = Command::new(dvc.to_string())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    Ok(Row {
        tool: format!("DVC {} (add + push, local remote)", version.unwrap_or_default()),
        v1_s,
        v2_s: Some(v2_s),
        stored_v1: Some(stored_v1),
        stored_both: Some(stored_both),
        sent_v2: Some(stored_both - stored_v1),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn sh(command: &str) -> Result<(), String> {
    let status = Command::new("sh").arg("-c").arg(command).status().map_err(|e| format!("{command}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command}: {status}")) }
}

/// Runs `command` after a `sync` (so that no earlier writes are flushed during it), timed.
fn timed(command: &str) -> Result<f64, String> {
    sh("sync")?;
    let started = Instant::now();
    sh(command)?;
    Ok(started.elapsed().as_secs_f64())
}

/// The 1-minute load average (other work on the machine skews the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Bytes of the regular files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.len();
            }
        }
    }
    total
}
