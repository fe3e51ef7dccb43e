//! `BlobStore`: where the store's bytes live. A narrow, synchronous key-value interface that a
//! local directory ([`LocalDir`]) and an S3-compatible object store ([`crate::s3::S3Blobs`])
//! implement: whole-object atomic `put`, `get`, ranged `get_range`, `exists`, `list` by prefix,
//! `delete`, and a `lock` that keeps writers and the garbage collector apart. [`open_blobs`]
//! opens either from a spec string (a folder, or `s3://BUCKET/PREFIX?...`).
//!
//! Keys are `/`-separated paths of ASCII letters, digits, `.`, `_`, `-` and `@`, no segment empty,
//! `.` or `..` (`packs/<id>.pack`, `refs/<name>`); a key never starts or ends with `/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::s3::{S3Blobs, S3Config};

/// A failure of the blob store, naming the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {key} not found")]
    NotFound { key: String },
    #[error("blob {key} is {size_bytes} bytes: cannot read {len} bytes at offset {offset}")]
    OutOfRange { key: String, offset: u64, len: usize, size_bytes: u64 },
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("blob {key}: {op}: {source}")]
    Io {
        key: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the store {store}: {reason}")]
    Open { store: String, reason: String },
    #[error("store lock {lock:?} not obtained within {waited_s} s (another writer or gc holds it)")]
    LockTimeout { lock: Lock, waited_s: u64 },
}

/// The locks a store takes. `StoreShared` is held by everything that writes or reads chunks
/// (ingest, push, commit, read, verify), `StoreExclusive` by what deletes them (gc, dropping a
/// version), so that gc never deletes a chunk that a concurrent push has written and is about
/// to reference. `Refs` serialises the read-modify-write of refs, and is always taken after a
/// store lock, never before (no deadlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    StoreShared,
    StoreExclusive,
    Refs,
}

/// A held lock; dropping it releases the lock.
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send + Sync>);

impl LockGuard {
    pub fn new(held: Box<dyn Send + Sync>) -> LockGuard {
        LockGuard(held)
    }
}

/// Where blobs live. Implementations must be safe to share between threads and processes:
/// `put` is atomic (a reader sees the old blob, or none, or the whole new one), and durable once
/// it returns.
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing any blob there, atomically and durably.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError>;
    /// The whole blob.
    fn get(&self, key: &str) -> Result<Vec<u8>, BlobError>;
    /// `len` bytes at `offset`; a blob too short for that range is `OutOfRange`, never a short
    /// read.
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, BlobError>;
    fn exists(&self, key: &str) -> Result<bool, BlobError>;
    /// Every key that starts with `prefix` (a folder such as `packs/`), in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError>;
    /// Removes the blob; removing a missing blob is not an error.
    fn delete(&self, key: &str) -> Result<(), BlobError>;
    /// Waits for `lock` (within a bounded time) and holds it until the guard is dropped (S3:
    /// lock objects created by conditional puts, see [`crate::s3`]).
    fn lock(&self, lock: Lock) -> Result<LockGuard, BlobError>;
    /// Removes what interrupted `put`s left behind; called by gc under `StoreExclusive`.
    /// Returns the number of leftovers removed.
    fn clean_temporaries(&self) -> Result<u64, BlobError> {
        Ok(0)
    }
}

impl<B: BlobStore + ?Sized> BlobStore for Box<B> {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        (**self).put(key, bytes)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        (**self).get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, BlobError> {
        (**self).get_range(key, offset, len)
    }
    fn exists(&self, key: &str) -> Result<bool, BlobError> {
        (**self).exists(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        (**self).list(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), BlobError> {
        (**self).delete(key)
    }
    fn lock(&self, lock: Lock) -> Result<LockGuard, BlobError> {
        (**self).lock(lock)
    }
    fn clean_temporaries(&self) -> Result<u64, BlobError> {
        (**self).clean_temporaries()
    }
}

/// Opens the blob store that `spec` names: `s3://BUCKET/PREFIX?endpoint=URL&region=NAME` (see
/// [`S3Config`]), else a local folder (created if needed).
pub fn open_blobs(spec: &str) -> Result<Box<dyn BlobStore>, BlobError> {
    if spec.starts_with("s3://") {
        return Ok(Box::new(S3Blobs::open(S3Config::parse(spec)?)?));
    }
    if spec.contains("://") {
        let reason = "a store is a folder or s3://BUCKET/PREFIX".to_string();
        return Err(BlobError::Open { store: spec.to_string(), reason });
    }
    Ok(Box::new(LocalDir::open(spec, LocalDirConfig::default())?))
}

/// Checks a key's shape (see the module comment).
pub fn check_key(key: &str) -> Result<(), BlobError> {
    let refuse = |reason| Err(BlobError::InvalidKey { key: key.chars().take(200).collect(), reason });
    if key.is_empty() || key.len() > 512 {
        return refuse("a key is 1 to 512 bytes");
    }
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return refuse("empty, '.' or '..' segment");
        }
        if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')) {
            return refuse("only ASCII letters, digits, '.', '_', '-', '@' and '/'");
        }
    }
    Ok(())
}

/// Blobs as files under a root directory: key `a/b` is the file `ROOT/a/b`. Puts go through
/// `ROOT/tmp/` (write, fsync, rename, fsync the folder); locks are `flock`s on `ROOT/locks/*`,
/// so they hold between processes on one machine (not over NFS).
#[derive(Debug)]
pub struct LocalDir {
    root: PathBuf,
    lock_wait: Duration,
}

/// Settings of a [`LocalDir`].
#[derive(Debug, Clone)]
pub struct LocalDirConfig {
    /// How long `lock` waits before giving up.
    pub lock_wait: Duration,
}

impl Default for LocalDirConfig {
    fn default() -> LocalDirConfig {
        LocalDirConfig { lock_wait: Duration::from_secs(600) }
    }
}

impl LocalDir {
    /// Opens (creating if needed) a store directory.
    pub fn open(root: impl Into<PathBuf>, config: LocalDirConfig) -> Result<LocalDir, BlobError> {
        let root = root.into();
        for folder in ["tmp", "locks"] {
            let path = root.join(folder);
            fs::create_dir_all(&path).map_err(|source| io_error(&path.to_string_lossy(), "create folder", source))?;
        }
        Ok(LocalDir { root, lock_wait: config.lock_wait })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, BlobError> {
        check_key(key)?;
        if key.starts_with("tmp/") || key.starts_with("locks/") || key == "tmp" || key == "locks" {
            return Err(BlobError::InvalidKey { key: key.to_string(), reason: "tmp/ and locks/ are the store's own" });
        }
        Ok(self.root.join(key))
    }

    fn temp_path(&self) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        self.root.join("tmp").join(format!("{}-{nanos}-{n}.tmp", std::process::id()))
    }
}

fn io_error(key: &str, op: &'static str, source: io::Error) -> BlobError {
    if source.kind() == io::ErrorKind::NotFound {
        return BlobError::NotFound { key: key.to_string() };
    }
    BlobError::Io { key: key.to_string(), op, source }
}

/// fsyncs a directory, so that a rename or a new entry in it survives a crash.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates `folder` and the missing folders above it, fsyncing each parent whose entries
/// changed.
pub(crate) fn create_dir_durably(folder: &Path) -> io::Result<()> {
    if folder.is_dir() {
        return Ok(());
    }
    if let Some(parent) = folder.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(folder) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(error) => return Err(error),
    }
    if let Some(parent) = folder.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes `bytes` at `path` atomically and durably: into `temp` (a new file, on the same file
/// system), fsync, rename over `path` (its folders created), fsync of its folder. `temp` is
/// removed if anything fails: `path` then holds what it held before, or nothing.
pub fn write_durably(temp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if let Some(parent) = path.parent() {
            create_dir_durably(parent)?;
        }
        fs::rename(temp, path)?;
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(temp);
    })
}

impl BlobStore for LocalDir {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.path(key)?;
        let temp = self.temp_path();
        write_durably(&temp, &path, bytes).map_err(|source| BlobError::Io { key: key.to_string(), op: "put", source })
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|source| io_error(key, "read", source))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, BlobError> {
        let path = self.path(key)?;
        let file = File::open(&path).map_err(|source| io_error(key, "open", source))?;
        let mut out = vec![0; len];
        match file.read_exact_at(&mut out, offset) {
            Ok(()) => Ok(out),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                let size_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                Err(BlobError::OutOfRange { key: key.to_string(), offset, len, size_bytes })
            }
            Err(source) => Err(io_error(key, "read", source)),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.path(key)?;
        match fs::symlink_metadata(&path) {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(io_error(key, "stat", source)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        // The folder part of the prefix is walked; the rest filters names.
        let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        if !folder.is_empty() {
            check_key(folder)?;
        }
        let mut keys = Vec::new();
        let mut pending = vec![folder.to_string()];
        while let Some(folder) = pending.pop() {
            let path = if folder.is_empty() { self.root.clone() } else { self.root.join(&folder) };
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error(&folder, "list", source)),
            };
            for entry in entries {
                let entry = entry.map_err(|source| io_error(&folder, "list", source))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
                let key = if folder.is_empty() { name } else { format!("{folder}/{name}") };
                if folder.is_empty() && (key == "tmp" || key == "locks") {
                    continue;
                }
                let kind = entry.file_type().map_err(|source| io_error(&key, "list", source))?;
                if kind.is_dir() {
                    if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) || prefix.is_empty() {
                        pending.push(key);
                    }
                } else if kind.is_file() && key.starts_with(prefix) {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_error(key, "delete", source)),
        }
        if let Some(parent) = path.parent() {
            sync_dir(parent).map_err(|source| io_error(key, "sync folder", source))?;
        }
        Ok(())
    }

    fn lock(&self, lock: Lock) -> Result<LockGuard, BlobError> {
        let name = match lock {
            Lock::StoreShared | Lock::StoreExclusive => "store.lock",
            Lock::Refs => "refs.lock",
        };
        let path = self.root.join("locks").join(name);
        let key = format!("locks/{name}");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| io_error(&key, "open lock", source))?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let attempt = match lock {
                Lock::StoreShared => file.try_lock_shared(),
                Lock::StoreExclusive | Lock::Refs => file.try_lock(),
            };
            match attempt {
                Ok(()) => return Ok(LockGuard::new(Box::new(file))),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(source)) => return Err(io_error(&key, "lock", source)),
            }
            if started.elapsed() >= self.lock_wait {
                return Err(BlobError::LockTimeout { lock, waited_s: self.lock_wait.as_secs() });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn clean_temporaries(&self) -> Result<u64, BlobError> {
        let folder = self.root.join("tmp");
        let entries = fs::read_dir(&folder).map_err(|source| io_error("tmp", "list", source))?;
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|source| io_error("tmp", "list", source))?;
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("tmp", "remove leftover", source)),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn put_get_range_list_delete() {
        let dir = TempDir::new("blob");
        let blobs = LocalDir::open(dir.path(), LocalDirConfig::default()).expect("open");
        blobs.put("packs/a.pack", b"hello world").expect("put");
        blobs.put("refs/x", b"1").expect("put");
        assert_eq!(blobs.get("packs/a.pack").expect("get"), b"hello world");
        assert_eq!(blobs.get_range("packs/a.pack", 6, 5).expect("range"), b"world");
        assert!(matches!(blobs.get_range("packs/a.pack", 6, 6), Err(BlobError::OutOfRange { size_bytes: 11, .. })));
        assert!(matches!(blobs.get("packs/b.pack"), Err(BlobError::NotFound { .. })));
        assert!(blobs.exists("refs/x").expect("exists"));
        let mut keys = blobs.list("").expect("list");
        keys.sort();
        assert_eq!(keys, ["packs/a.pack", "refs/x"]);
        assert_eq!(blobs.list("packs/").expect("list"), ["packs/a.pack"]);
        assert_eq!(blobs.list("pa").expect("list"), ["packs/a.pack"]);
        blobs.delete("refs/x").expect("delete");
        blobs.delete("refs/x").expect("delete twice");
        assert!(!blobs.exists("refs/x").expect("exists"));
    }

    #[test]
    fn bad_keys_are_refused() {
        let dir = TempDir::new("blob-keys");
        let blobs = LocalDir::open(dir.path(), LocalDirConfig::default()).expect("open");
        for key in ["", "/abs", "a//b", "../x", "a/../b", "a/", "sp ace", "tmp/x", "locks/store.lock", "é"] {
            assert!(matches!(blobs.put(key, b"x"), Err(BlobError::InvalidKey { .. })), "{key:?} accepted");
        }
    }

    #[test]
    fn exclusive_lock_waits_for_shared_and_times_out() {
        let dir = TempDir::new("blob-lock");
        let config = LocalDirConfig { lock_wait: Duration::from_millis(200) };
        let blobs = LocalDir::open(dir.path(), config).expect("open");
        let shared = blobs.lock(Lock::StoreShared).expect("shared");
        let _also_shared = blobs.lock(Lock::StoreShared).expect("two readers");
        assert!(matches!(blobs.lock(Lock::StoreExclusive), Err(BlobError::LockTimeout { .. })));
        drop(shared);
        drop(_also_shared);
        let _exclusive = blobs.lock(Lock::StoreExclusive).expect("free now");
    }
}
