//! The store on real files in temporary folders: round trips, deduplication, damage, crashes,
//! concurrent writers, garbage collection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot unwrap has failed

mod crash;
mod damage;
mod reader;
mod store;

use std::path::{Path, PathBuf};

use grappe_store::testing::{Rng, TempDir};
use grappe_store::{LocalDir, LocalDirConfig, Name, Store, StoreConfig};

/// A store in a folder of its own, with small packs so that tests make several.
pub struct TestStore {
    pub dir: TempDir,
    pub store: Store,
}

pub fn small_config() -> StoreConfig {
    StoreConfig { pack_target_bytes: 1 << 20, ..StoreConfig::default() }
}

impl TestStore {
    pub fn new(label: &str) -> TestStore {
        TestStore::with_config(label, small_config())
    }

    pub fn with_config(label: &str, config: StoreConfig) -> TestStore {
        let dir = TempDir::new(label);
        let store = open_store(&dir.path().join("store"), config);
        TestStore { dir, store }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Another `Store` on the same folder, as a second process would open it.
    pub fn reopen(&self) -> Store {
        open_store(&self.root(), small_config())
    }
}

pub fn open_store(root: &Path, config: StoreConfig) -> Store {
    Store::open(LocalDir::open(root, LocalDirConfig::default()).unwrap(), config).unwrap()
}

pub fn name(text: &str) -> Name {
    Name::parse(text).unwrap()
}

/// Writes files (path, content) under `dir`.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// Files of random sizes (0 to `max_len`) and mixed content: random bytes, repeated text.
pub fn random_files(rng: &mut Rng, count: usize, max_len: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let len = rng.below(max_len as u64 + 1) as usize;
            let content = if i % 2 == 0 {
                rng.bytes(len)
            } else {
                let line = format!("line {} of text, some words repeat, ", rng.below(1000));
                line.as_bytes().iter().copied().cycle().take(len).collect()
            };
            (format!("d{}/f{i}.{}", i % 5, if i % 2 == 0 { "bin" } else { "txt" }), content)
        })
        .collect()
}

/// Every regular file under `dir`, as (relative path, content), sorted.
pub fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Total bytes of the files under `dir`.
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.len();
            }
        }
    }
    total
}
