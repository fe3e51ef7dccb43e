//! The store on real files in temporary folders and on a real S3 server: round trips,
//! deduplication, damage, crashes, concurrent writers, garbage collection.
//!
//! Tests listed in `on_each_backend!` run twice, as `local::NAME` (a folder) and `s3::NAME` (a
//! prefix of the S3 test server's bucket). `GRAPPE_TEST_S3` names that bucket
//! (`scripts/test-services.sh start` prints it, with `GRAPPE_TEST_S3_DIR`, the folder where the
//! server, s3s-fs, keeps those objects as files, which damage tests flip bytes in). Without it
//! the S3 half fails, unless `GRAPPE_TEST_SKIP_S3=1` skips it explicitly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test that cannot unwrap has failed

mod blobs;
mod crash;
mod damage;
mod reader;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use grappe_store::testing::{Rng, TempDir};
use grappe_store::{BlobStore, LocalDir, LocalDirConfig, Name, S3Blobs, S3Config, Store, StoreConfig, open_blobs};

/// Where a test's store lives.
#[derive(Debug, Clone)]
pub enum Backend {
    Local,
    /// `spec`: the test server's URL (`s3://BUCKET/PREFIX?endpoint=...`); `dir`: the folder
    /// where the server keeps that prefix's objects as files.
    S3 {
        spec: String,
        dir: PathBuf,
    },
}

impl Backend {
    /// The S3 test server, `None` when explicitly skipped; panics when it is not configured.
    pub fn s3() -> Option<Backend> {
        match (std::env::var("GRAPPE_TEST_S3"), std::env::var("GRAPPE_TEST_S3_DIR")) {
            (Ok(spec), Ok(dir)) if !spec.is_empty() && !dir.is_empty() => {
                Some(Backend::S3 { spec, dir: PathBuf::from(dir) })
            }
            _ if std::env::var("GRAPPE_TEST_SKIP_S3").as_deref() == Ok("1") => {
                eprintln!("SKIPPED: S3 half of this test (GRAPPE_TEST_SKIP_S3=1)");
                None
            }
            _ => panic!(
                "GRAPPE_TEST_S3 and GRAPPE_TEST_S3_DIR are not set: run the tests with scripts/test.sh \
                 (or eval \"$(scripts/test-services.sh start)\"), or set GRAPPE_TEST_SKIP_S3=1"
            ),
        }
    }
}

/// Runs each named test, a function of a [`Backend`], as `local::NAME` and `s3::NAME`.
macro_rules! on_each_backend {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[test]
            fn $test() {
                super::$test(crate::Backend::Local)
            })*
        }
        mod s3 {
            $(#[test]
            fn $test() {
                if let Some(backend) = crate::Backend::s3() {
                    super::$test(backend)
                }
            })*
        }
    };
}
pub(crate) use on_each_backend;

/// An empty store of its own on a backend: its folder (local), or its prefix of the test bucket
/// and the folder where the server keeps it.
pub struct Place {
    pub dir: TempDir,
    pub spec: String,
    /// The folder in which each blob is a file (`root/packs/ID.pack`).
    pub root: PathBuf,
}

impl Place {
    pub fn new(backend: &Backend, label: &str) -> Place {
        match backend {
            Backend::Local => {
                let dir = TempDir::new(label);
                let root = dir.path().join("store");
                Place { spec: root.to_str().unwrap().to_string(), root, dir }
            }
            Backend::S3 { spec, dir: bucket_dir } => {
                std::fs::create_dir_all(bucket_dir).unwrap();
                let dir = TempDir::new_in(bucket_dir, label);
                let prefix = dir.path().file_name().unwrap().to_str().unwrap().to_string();
                let (location, query) = spec.split_once('?').unwrap_or((spec, ""));
                let spec = format!("{location}/{prefix}?{query}");
                Place { root: dir.path().to_path_buf(), spec, dir }
            }
        }
    }

    /// The blob store, its locks given up after `lock_wait`.
    pub fn blobs(&self, lock_wait: Duration) -> Box<dyn BlobStore> {
        if self.spec.starts_with("s3://") {
            let config = S3Config { lock_wait, ..S3Config::parse(&self.spec).unwrap() };
            Box::new(S3Blobs::open(config).unwrap())
        } else {
            Box::new(LocalDir::open(&self.root, LocalDirConfig { lock_wait }).unwrap())
        }
    }
}

/// A store of its own, with small packs so that tests make several.
pub struct TestStore {
    pub place: Place,
    pub store: Store,
}

pub fn small_config() -> StoreConfig {
    StoreConfig { pack_target_bytes: 1 << 20, ..StoreConfig::default() }
}

impl TestStore {
    /// A store in a local folder.
    pub fn new(label: &str) -> TestStore {
        TestStore::on(&Backend::Local, label)
    }

    pub fn on(backend: &Backend, label: &str) -> TestStore {
        TestStore::with_config(backend, label, small_config())
    }

    pub fn with_config(backend: &Backend, label: &str, config: StoreConfig) -> TestStore {
        let place = Place::new(backend, label);
        let store = open_store(&place.spec, config);
        TestStore { place, store }
    }

    /// The folder in which each blob is a file (for both backends).
    pub fn root(&self) -> PathBuf {
        self.place.root.clone()
    }

    /// The store as `grappe --store` names it.
    pub fn spec(&self) -> &str {
        &self.place.spec
    }

    /// Another `Store` on the same blobs, as a second process would open it.
    pub fn reopen(&self) -> Store {
        open_store(self.spec(), small_config())
    }
}

pub fn open_store(spec: &str, config: StoreConfig) -> Store {
    Store::open(open_blobs(spec).unwrap(), config).unwrap()
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
    grappe_store::folder_bytes(dir)
}
