//! Generated benchmark data, shared by `main.rs` and `chunking.rs`: mixed text, CSV and binary
//! files, and the edits that make a second version.
//!
//! - Files: sizes log-uniform from 4 KiB to 64 MiB until the total is reached; by bytes about
//!   40 % text (`.txt`: lines of words from a 4,096-word generated vocabulary), 30 % CSV (`.csv`:
//!   an id, two decimals, an integer, a category), 30 % binary (`.bin`: random bytes, which do
//!   not compress), in folders of 16 files.
//! - Edits: one edit site per 4 MiB of data, placed uniformly over all bytes (so large files get
//!   several and most files of more than a few MiB get one); each site is a 40 KiB insertion or a
//!   40 KiB overwrite, alternately, of new content of the file's kind: about 1 % of the bytes.

#![allow(dead_code)] // each benchmark binary uses part of this module

use grappe_store::testing::Rng;

pub const EDIT_BYTES: usize = 40 << 10;
pub const BYTES_PER_EDIT_SITE: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Csv,
    Binary,
}

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub path: String,
    pub kind: Kind,
    pub len: usize,
    pub seed: u64,
}

/// The files of a data set of about `total_bytes`.
pub fn plan(total_bytes: u64, seed: u64) -> Vec<FileSpec> {
    let mut rng = Rng::new(seed);
    let mut files = Vec::new();
    let mut total = 0u64;
    let (min_log, max_log) = ((4u64 << 10).ilog2() as f64, (64u64 << 20).ilog2() as f64);
    while total < total_bytes {
        let unit = rng.below(1 << 20) as f64 / (1 << 20) as f64;
        let len = 2f64.powf(min_log + unit * (max_log - min_log)) as u64;
        let len = len.min(total_bytes - total).max(1) as usize;
        let kind = match rng.below(10) {
            0..=3 => Kind::Text,
            4..=6 => Kind::Csv,
            _ => Kind::Binary,
        };
        let n = files.len();
        let extension = match kind {
            Kind::Text => "txt",
            Kind::Csv => "csv",
            Kind::Binary => "bin",
        };
        files.push(FileSpec {
            path: format!("part-{:03}/file-{n:05}.{extension}", n / 16),
            kind,
            len,
            seed: rng.next_u64(),
        });
        total += len as u64;
    }
    files
}

/// The content of one file.
pub fn content(spec: &FileSpec) -> Vec<u8> {
    let mut rng = Rng::new(spec.seed);
    generate(spec.kind, spec.len, &mut rng, spec.kind == Kind::Csv)
}

fn vocabulary() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x0076_6f63_6162);
    (0..4096)
        .map(|_| {
            let len = 2 + rng.below(9) as usize;
            (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
        })
        .collect()
}

/// `len` bytes of `kind`; a CSV starts with its header when `header`.
pub fn generate(kind: Kind, len: usize, rng: &mut Rng, header: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    match kind {
        Kind::Binary => {
            out.resize(len, 0);
            rng.fill(&mut out);
        }
        Kind::Text => {
            let words = vocabulary();
            while out.len() < len {
                let line_words = 6 + rng.below(14);
                for i in 0..line_words {
                    // Zipf-like: small indexes are much more frequent.
                    let r = rng.below(4096);
                    let index = (r * r / 4096) as usize;
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(&words[index]);
                }
                out.extend_from_slice(b".\n");
            }
        }
        Kind::Csv => {
            use std::io::Write;
            if header {
                out.extend_from_slice(b"id,latitude,longitude,count,category\n");
            }
            let mut id = rng.below(1_000_000);
            while out.len() < len {
                id += 1;
                let category = ["paris", "lyon", "marseille", "lille", "toulouse", "nantes"][rng.below(6) as usize];
                let _ = writeln!(
                    out,
                    "{id},{:.5},{:.5},{},{category}",
                    43.0 + rng.below(700_000) as f64 / 100_000.0,
                    -1.0 + rng.below(800_000) as f64 / 100_000.0,
                    rng.below(10_000)
                );
            }
        }
    }
    out.truncate(len);
    out
}

/// The edit sites of each file (by index in `files`): offsets, sorted, at least `EDIT_BYTES`
/// apart.
pub fn edit_sites(files: &[FileSpec], seed: u64) -> Vec<Vec<usize>> {
    let total: u64 = files.iter().map(|file| file.len as u64).sum();
    let count = total.div_ceil(BYTES_PER_EDIT_SITE);
    let mut rng = Rng::new(seed);
    let mut global: Vec<u64> = (0..count).map(|_| rng.below(total)).collect();
    global.sort_unstable();
    let mut sites = vec![Vec::new(); files.len()];
    let (mut file, mut file_start) = (0usize, 0u64);
    for at in global {
        while at >= file_start + files[file].len as u64 {
            file_start += files[file].len as u64;
            file += 1;
        }
        let offset = (at - file_start) as usize;
        let list: &mut Vec<usize> = &mut sites[file];
        if list.last().is_none_or(|last| offset >= last + EDIT_BYTES) {
            list.push(offset);
        }
    }
    sites
}

/// Applies the edits at `sites` to one file's content: alternately insert or overwrite
/// `EDIT_BYTES` of new content of the file's kind. Returns the bytes edited.
pub fn apply_edits(data: &mut Vec<u8>, spec: &FileSpec, sites: &[usize], seed: u64) -> usize {
    let mut rng = Rng::new(seed ^ spec.seed);
    let mut edited = 0;
    // From the end, so that earlier offsets stay valid.
    for (i, &offset) in sites.iter().enumerate().rev() {
        let new = generate(spec.kind, EDIT_BYTES, &mut rng, false);
        if i % 2 == 0 {
            data.splice(offset..offset, new);
            edited += EDIT_BYTES;
        } else {
            let end = (offset + EDIT_BYTES).min(data.len());
            data.splice(offset..end, new[..end - offset].iter().copied());
            edited += end - offset;
        }
    }
    edited
}
