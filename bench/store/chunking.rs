//! Chunking parameters compared on the store benchmark's data, in memory, one core:
//! `cargo bench -p grappe-store --bench chunking [-- SIZE_MIB]` (default 256).
//!
//! For each parameter set: chunking throughput (cut points only, no hashing), mean chunk size,
//! the share of chunks cut at the maximum, and the bytes of new chunks after the edits of
//! `data.rs` (about 1 % of the bytes), as a share of all bytes.

#[path = "data.rs"]
mod data;

use std::collections::HashSet;
use std::time::Instant;

use grappe_store::Digest;
use grappe_store::chunk::ChunkParams;

fn main() {
    let size_mib: u64 =
        std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(256);
    let files = data::plan(size_mib << 20, 1);
    let sites = data::edit_sites(&files, 2);
    let mut v1 = Vec::new();
    let mut v2 = Vec::new();
    let mut edited = 0;
    for (spec, sites) in files.iter().zip(&sites) {
        let mut content = data::content(spec);
        v1.push(content.clone());
        edited += data::apply_edits(&mut content, spec, sites, 3);
        v2.push(content);
    }
    let total: usize = v1.iter().map(Vec::len).sum();
    println!(
        "{} files, {:.1} MiB, {} edit sites, {:.2} % of bytes edited\n",
        files.len(),
        total as f64 / (1 << 20) as f64,
        sites.iter().map(Vec::len).sum::<usize>(),
        100.0 * edited as f64 / total as f64
    );
    println!("| parameters | chunking GiB/s | mean chunk KiB | chunks at max | new bytes after edits |");
    println!("|---|---|---|---|---|");
    let candidates = [
        ("16/64/256 KiB, normalised (level 1): the store's", Ok(ChunkParams::DEFAULT)),
        ("16/64/256 KiB, normalised (level 2)", ChunkParams::with_normalisation(16 << 10, 64 << 10, 256 << 10, 2)),
        ("8/64/128 KiB, one mask (Xet's shape)", ChunkParams::with_normalisation(8 << 10, 64 << 10, 128 << 10, 0)),
        ("16/64/256 KiB, one mask", ChunkParams::with_normalisation(16 << 10, 64 << 10, 256 << 10, 0)),
        ("8/64/128 KiB, normalised (level 1)", ChunkParams::with_normalisation(8 << 10, 64 << 10, 128 << 10, 1)),
    ];
    for (name, params) in candidates {
        let Ok(params) = params else {
            println!("| {name} | invalid | | | |");
            continue;
        };
        let started = Instant::now();
        let mut cuts: Vec<Vec<usize>> = Vec::new();
        for _ in 0..3 {
            cuts = v1.iter().map(|file| params.cut_all(file)).collect();
        }
        let seconds = started.elapsed().as_secs_f64() / 3.0;
        let lengths: Vec<usize> = cuts.iter().flatten().copied().collect();
        let at_max = lengths.iter().filter(|len| **len == params.max_bytes()).count();
        let known: HashSet<Digest> = chunk_digests(&v1, &params).into_iter().map(|(digest, _)| digest).collect();
        let mut seen = HashSet::new();
        let new_bytes: usize = chunk_digests(&v2, &params)
            .into_iter()
            .filter(|(digest, _)| !known.contains(digest) && seen.insert(*digest))
            .map(|(_, len)| len)
            .sum();
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} % | {:.2} % |",
            total as f64 / seconds / (1u64 << 30) as f64,
            total as f64 / lengths.len() as f64 / 1024.0,
            100.0 * at_max as f64 / lengths.len() as f64,
            100.0 * new_bytes as f64 / total as f64
        );
    }
}

fn chunk_digests(files: &[Vec<u8>], params: &ChunkParams) -> Vec<(Digest, usize)> {
    let mut out = Vec::new();
    for file in files {
        let mut at = 0;
        for len in params.cut_all(file) {
            out.push((Digest::of(&file[at..at + len]), len));
            at += len;
        }
    }
    out
}
