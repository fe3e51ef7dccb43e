//! `Store`: datasets over a [`BlobStore`]: ingest, push, commit, read, materialize, verify, gc.
//!
//! ## Layout of the blobs
//!
//! - `packs/<id>.pack` and `index/<id>.idx`: chunks (see [`crate::pack`]);
//! - `versions/<version id>.version`: a version's canonical bytes (see [`crate::manifest`]);
//! - `refs/<name>`: a dataset's history, `grappe-ref 1` then one version id a line, oldest first;
//! - `tags/<name>/<tag>`: one version id.
//!
//! ## Atomicity
//!
//! Every blob is put atomically, and in this order: packs, then their index, then the version,
//! then the ref. A crash anywhere leaves, at worst, packs without an index or packs and indexes
//! that no version uses (garbage that gc removes, and that `verify` accepts), or a version that
//! no ref names yet (pushing again adds the ref). A version is never written before every chunk
//! it names is in a pack with its index, and [`Store::commit_version`] checks that under the
//! store lock, so a version is wholly present or absent.
//!
//! ## Concurrency
//!
//! Writers and readers hold the store's shared lock; `gc` and `drop_version` hold it
//! exclusively; ref updates also hold the `Refs` lock (see [`Lock`]). Packs, indexes and
//! versions are named by content, so two writers writing the same one write the same bytes.
//! Each `Store` keeps an in-memory chunk index, refreshed from `index/` when it takes a lock
//! to write, and on a missing pack before a read is retried once; another process's gc can
//! therefore never make this one reference a chunk that is gone.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, RwLock};

use crate::Digest;
use crate::blob::{BlobError, BlobStore, Lock, LockGuard, create_dir_durably, sync_dir};
use crate::chunk::{ChunkParams, ChunkReader};
use crate::digest::Hasher;
use crate::manifest::{
    ChunkRef, DatasetName, DatasetPath, FileEntry, Limits, Manifest, ManifestError, MediaType, Name, Splits, Version,
    VersionDiff, VersionId,
};
use crate::pack::{
    self, ChunkDamage, Compression, IndexEntry, PackBuilder, SealedChunk, decode_entry, index_key, pack_key,
    parse_index,
};

/// Settings of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub chunk_params: ChunkParams,
    /// A pack is written once it reaches this size.
    pub pack_target_bytes: usize,
    pub compression: Compression,
    pub limits: Limits,
    /// Threads that read, chunk, hash and compress files during `ingest_dir`.
    pub ingest_threads: usize,
    /// `gc` rewrites a pack when less than this share of its bytes is still used.
    pub gc_rewrite_below_live_percent: u8,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            chunk_params: ChunkParams::DEFAULT,
            pack_target_bytes: 64 << 20,
            compression: Compression::default(),
            limits: Limits::DEFAULT,
            ingest_threads: std::thread::available_parallelism().map(usize::from).unwrap_or(2).min(16),
            gc_rewrite_below_live_percent: 50,
        }
    }
}

/// A failure of the store, with what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("chunk {digest} in pack {pack} at offset {offset} is damaged: {reason}")]
    DamagedChunk { pack: Digest, offset: u64, digest: Digest, reason: String },
    #[error("index of pack {pack} is damaged: {reason}")]
    DamagedIndex { pack: Digest, reason: String },
    #[error("chunk {digest} is not in the store")]
    MissingChunk { digest: Digest },
    #[error("chunk of {len_bytes} bytes refused: at most {max_bytes}")]
    ChunkTooLarge { len_bytes: usize, max_bytes: usize },
    #[error("chunk sent as {claimed} hashes to {actual}")]
    ChunkDigestMismatch { claimed: Digest, actual: Digest },
    #[error("{path}: chunk {digest} is {stored} bytes in the store, the manifest says {manifest}")]
    ChunkLengthMismatch { path: DatasetPath, digest: Digest, stored: u32, manifest: u32 },
    #[error("{path}: content hashes to {actual}, the manifest says {expected}")]
    FileDigestMismatch { path: DatasetPath, expected: Digest, actual: Digest },
    #[error("version {id} not found")]
    VersionNotFound { id: VersionId },
    #[error("version {id} is damaged: {reason}")]
    DamagedVersion { id: VersionId, reason: String },
    #[error("no dataset named {name}")]
    NameNotFound { name: DatasetName },
    #[error("dataset {name} has no version or tag {reference:?}")]
    UnknownReference { name: DatasetName, reference: String },
    #[error("version {id} has no file {path}")]
    PathNotInVersion { id: VersionId, path: DatasetPath },
    #[error("tag {name}@{tag} already points at {existing}")]
    TagExists { name: DatasetName, tag: Name, existing: VersionId },
    #[error("ref {name} is damaged: {reason}")]
    DamagedRef { name: String, reason: String },
    #[error("{}: {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a regular file or folder (symbolic links and devices are refused)", path.display())]
    NotARegularFile { path: PathBuf },
    #[error("{}: the file name is not valid UTF-8", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("{}: target exists and is not an empty folder", path.display())]
    TargetNotEmpty { path: PathBuf },
}

fn io_at(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

/// Where a chunk is.
#[derive(Debug, Clone, Copy)]
struct Location {
    pack: Digest,
    entry: IndexEntry,
}

/// Chunks in order in one pack, close to each other, read together (see `Store::runs`).
#[derive(Debug)]
struct Run {
    pack: Digest,
    entries: Vec<IndexEntry>,
    start: u64,
    end: u64,
}

/// The most bytes one read of a run asks for.
const MAX_RUN_BYTES: u64 = 8 << 20;
/// The most bytes of other chunks a run reads past between two of its own (files ingested in
/// parallel interleave their chunks in a pack).
const MAX_RUN_GAP_BYTES: u64 = 512 << 10;

fn damaged(pack: &Digest, entry: &IndexEntry, reason: String) -> StoreError {
    StoreError::DamagedChunk { pack: *pack, offset: entry.offset, digest: entry.digest, reason }
}

#[derive(Debug, Default)]
struct ChunkIndex {
    chunks: HashMap<Digest, Location>,
    packs: HashMap<Digest, Vec<IndexEntry>>,
}

/// The result of [`Store::ingest_dir`]: the manifest of the folder (every chunk now stored),
/// ready for [`Store::commit_version`], and what it cost.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub manifest: Manifest,
    pub stats: WriteStats,
}

/// What a write added to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub files: u64,
    pub bytes_read: u64,
    pub chunks: u64,
    /// Chunks that were not in the store before.
    pub new_chunks: u64,
    /// Raw bytes of the new chunks.
    pub new_chunk_bytes: u64,
    /// Bytes written into packs and indexes (after compression).
    pub stored_bytes: u64,
    pub packs_written: u64,
}

/// How much `commit_version` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitCheck {
    /// Every chunk is in the store with the manifest's length (the files were hashed by this
    /// process, as `ingest_dir` does).
    ChunksPresent,
    /// Also read every file back and compare its whole-file hash (a manifest from elsewhere).
    WholeFiles,
}

/// The result of [`Store::commit_version`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub id: VersionId,
    /// The version was not in the store before.
    pub version_created: bool,
    /// The name did not already point at this version (else the commit was a no-op).
    pub ref_updated: bool,
    pub manifest_bytes: u64,
}

/// Something [`Store::verify`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    Chunk { pack: Digest, offset: u64, digest: Digest, reason: String },
    Pack { pack: Digest, reason: String },
    Index { pack: Digest, reason: String },
    Version { key: String, reason: String },
    MissingChunk { version: VersionId, path: DatasetPath, digest: Digest },
    File { version: VersionId, path: DatasetPath, reason: String },
    Ref { key: String, reason: String },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Chunk { pack, offset, digest, reason } => {
                write!(f, "chunk {digest} in {} at offset {offset}: {reason}", pack_key(pack))
            }
            Damage::Pack { pack, reason } => write!(f, "{}: {reason}", pack_key(pack)),
            Damage::Index { pack, reason } => write!(f, "{}: {reason}", index_key(pack)),
            Damage::Version { key, reason } => write!(f, "{key}: {reason}"),
            Damage::MissingChunk { version, path, digest } => {
                write!(f, "version {version}, file {path}: chunk {digest} is missing")
            }
            Damage::File { version, path, reason } => write!(f, "version {version}, file {path}: {reason}"),
            Damage::Ref { key, reason } => write!(f, "{key}: {reason}"),
        }
    }
}

/// What [`Store::verify`] checked and found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub packs: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub versions: u64,
    pub files: u64,
    pub refs: u64,
    /// Packs that no index describes (left by an interrupted write): garbage, not damage.
    pub packs_without_index: u64,
    /// Chunks no version uses: garbage, not damage.
    pub unused_chunks: u64,
    pub damage: Vec<Damage>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    pub packs_deleted: u64,
    pub packs_rewritten: u64,
    pub packs_written: u64,
    pub chunks_removed: u64,
    pub bytes_freed: u64,
    pub temporaries_removed: u64,
}

/// A dataset store over a blob store. `Send + Sync`: share it in an `Arc` and call it from
/// blocking threads (every method does blocking I/O).
pub struct Store {
    blobs: Box<dyn BlobStore>,
    config: StoreConfig,
    index: RwLock<ChunkIndex>,
}

const REF_HEADER: &str = "grappe-ref 1";

fn version_key(id: &VersionId) -> String {
    format!("versions/{id}.version")
}

fn ref_key(name: &DatasetName) -> String {
    format!("refs/{name}")
}

fn tag_key(name: &DatasetName, tag: &Name) -> String {
    format!("tags/{name}/{tag}")
}

impl Store {
    /// Opens a store and loads its chunk index.
    pub fn open(blobs: impl BlobStore + 'static, config: StoreConfig) -> Result<Store, StoreError> {
        let store = Store { blobs: Box::new(blobs), config, index: RwLock::new(ChunkIndex::default()) };
        store.refresh_index()?;
        Ok(store)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    fn lock(&self, lock: Lock) -> Result<LockGuard, StoreError> {
        Ok(self.blobs.lock(lock)?)
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, ChunkIndex> {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, ChunkIndex> {
        self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Brings the in-memory index in line with `index/`: loads new packs, forgets gone ones.
    fn refresh_index(&self) -> Result<(), StoreError> {
        let listed: HashSet<Digest> =
            self.blobs.list("index/")?.iter().filter_map(|key| pack::id_from_key(key)).collect();
        let known: HashSet<Digest> = self.read_index().packs.keys().copied().collect();
        let mut loaded = Vec::new();
        for pack in listed.difference(&known) {
            let bytes = match self.blobs.get(&index_key(pack)) {
                Ok(bytes) => bytes,
                Err(BlobError::NotFound { .. }) => continue, // removed by a gc since the listing
                Err(error) => return Err(error.into()),
            };
            // A damaged index is skipped: its chunks count as absent, so a push sends them
            // again, and `verify` names the damage.
            if let Ok(entries) = parse_index(*pack, &bytes) {
                loaded.push((*pack, entries));
            }
        }
        let mut index = self.write_index();
        for gone in known.difference(&listed) {
            index.packs.remove(gone);
        }
        let gone_chunks = known.difference(&listed).next().is_some();
        for (pack, entries) in loaded {
            for entry in &entries {
                index.chunks.insert(entry.digest, Location { pack, entry: *entry });
            }
            index.packs.insert(pack, entries);
        }
        if gone_chunks {
            let ChunkIndex { chunks, packs } = &mut *index;
            chunks.retain(|_, location| packs.contains_key(&location.pack));
            // A chunk whose pack went may live on in a rewritten pack.
            for (pack, entries) in packs.iter() {
                for entry in entries {
                    chunks.entry(entry.digest).or_insert(Location { pack: *pack, entry: *entry });
                }
            }
        }
        Ok(())
    }

    /// Which of `digests` the store lacks (for a client's "what should I send" step), in the
    /// order given, without repeats.
    pub fn has_chunks(&self, digests: &[Digest]) -> Result<Vec<Digest>, StoreError> {
        self.refresh_index()?;
        let index = self.read_index();
        let mut seen = HashSet::new();
        Ok(digests.iter().filter(|d| !index.chunks.contains_key(d) && seen.insert(**d)).copied().collect())
    }

    /// Stores chunks sent as (claimed digest, raw bytes). Each is re-hashed; a mismatch or an
    /// oversized chunk refuses the whole call before anything is written. Chunks already
    /// present are skipped.
    pub fn put_chunks(&self, chunks: &[(Digest, &[u8])]) -> Result<WriteStats, StoreError> {
        let max_bytes = self.config.chunk_params.max_bytes();
        for (claimed, bytes) in chunks {
            if bytes.len() > max_bytes {
                return Err(StoreError::ChunkTooLarge { len_bytes: bytes.len(), max_bytes });
            }
            let actual = Digest::of(bytes);
            if actual != *claimed {
                return Err(StoreError::ChunkDigestMismatch { claimed: *claimed, actual });
            }
        }
        let _lock = self.lock(Lock::StoreShared)?;
        self.refresh_index()?;
        let mut stats = WriteStats::default();
        let mut builder = PackBuilder::new();
        let mut added = HashSet::new();
        for (digest, bytes) in chunks {
            stats.chunks += 1;
            if self.read_index().chunks.contains_key(digest) || !added.insert(*digest) {
                continue;
            }
            stats.new_chunks += 1;
            stats.new_chunk_bytes += bytes.len() as u64;
            builder.push(&SealedChunk::seal_with_digest(*digest, bytes, self.config.compression));
            if builder.len_bytes() >= self.config.pack_target_bytes {
                self.write_pack(std::mem::take(&mut builder), &mut stats)?;
            }
        }
        self.write_pack(builder, &mut stats)?;
        Ok(stats)
    }

    /// Writes a pack, then its index, then adds it to the in-memory index.
    /// Returns the pack's buffer, for reuse.
    fn write_pack(&self, builder: PackBuilder, stats: &mut WriteStats) -> Result<Vec<u8>, StoreError> {
        if builder.is_empty() {
            return Ok(Vec::new());
        }
        let finished = builder.finish();
        self.blobs.put(&pack_key(&finished.id), &finished.bytes)?;
        self.blobs.put(&index_key(&finished.id), &finished.index)?;
        stats.stored_bytes += (finished.bytes.len() + finished.index.len()) as u64;
        stats.packs_written += 1;
        let mut index = self.write_index();
        for entry in &finished.entries {
            index.chunks.insert(entry.digest, Location { pack: finished.id, entry: *entry });
        }
        index.packs.insert(finished.id, finished.entries);
        Ok(finished.bytes)
    }

    /// Chunks and stores every regular file under `dir` (recursively; dot-files included) and
    /// returns the manifest. Memory stays bounded whatever the file sizes: per thread one read
    /// buffer (1 MiB), a queue of 32 chunks, one pack being built and one being written. Symbolic links, devices and
    /// non-UTF-8 names are refused with the path named; an empty folder is refused
    /// ([`ManifestError::Empty`]).
    pub fn ingest_dir(&self, dir: &Path) -> Result<Ingested, StoreError> {
        let files = walk(dir, &self.config.limits)?;
        if files.is_empty() {
            return Err(ManifestError::Empty.into());
        }
        let _lock = self.lock(Lock::StoreShared)?;
        self.refresh_index()?;
        let next_file = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let claimed: Mutex<HashSet<Digest>> = Mutex::new(HashSet::new());
        let results: Mutex<Vec<Option<(FileEntry, WriteStats)>>> = Mutex::new(vec![None; files.len()]);
        // Workers append chunks to the current pack under this lock; a full pack is handed to
        // the flusher (a rendezvous, still under the lock) so that at most three packs are in
        // memory: one filling, one handed over, one being written. Written packs' buffers come
        // back for reuse.
        let current = Mutex::new(PackBuilder::new());
        let spare_buffers: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
        let (pack_sender, pack_receiver) = mpsc::sync_channel::<PackBuilder>(0);
        let threads = self.config.ingest_threads.clamp(1, 64);
        let outcome = std::thread::scope(|scope| {
            let spare_for_flusher = &spare_buffers;
            let flusher = scope.spawn(move || -> Result<WriteStats, StoreError> {
                let mut stats = WriteStats::default();
                for builder in pack_receiver {
                    let buffer = self.write_pack(builder, &mut stats)?;
                    spare_for_flusher.lock().unwrap_or_else(|p| p.into_inner()).push(buffer);
                }
                Ok(stats)
            });
            let mut workers = Vec::new();
            for _ in 0..threads {
                let sink =
                    PackSink { current: &current, spare: &spare_buffers, sender: pack_sender.clone(), self_: self };
                let (files, next_file, failed, claimed, results) = (&files, &next_file, &failed, &claimed, &results);
                workers.push(scope.spawn(move || -> Result<(), StoreError> {
                    loop {
                        let i = next_file.fetch_add(1, Ordering::Relaxed);
                        if i >= files.len() || failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let (path, source) = &files[i];
                        match self.ingest_file(path, source, claimed, &sink) {
                            Ok(done) => results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(done),
                            Err(error) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(error);
                            }
                        }
                    }
                }));
            }
            let mut first_error = None;
            for worker in workers {
                match worker.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        first_error.get_or_insert(error);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            let last = std::mem::take(&mut *current.lock().unwrap_or_else(|p| p.into_inner()));
            if first_error.is_none() {
                let _ = pack_sender.send(last);
            }
            drop(pack_sender);
            let written = match flusher.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            match (first_error, written) {
                (Some(error), _) | (None, Err(error)) => Err(error),
                (None, Ok(stats)) => Ok(stats),
            }
        });
        let mut stats = outcome?;
        let mut entries = Vec::with_capacity(files.len());
        for done in results.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten() {
            let (entry, file_stats) = done;
            stats.files += 1;
            stats.bytes_read += file_stats.bytes_read;
            stats.chunks += file_stats.chunks;
            stats.new_chunks += file_stats.new_chunks;
            stats.new_chunk_bytes += file_stats.new_chunk_bytes;
            entries.push(entry);
        }
        let manifest = Manifest::new(entries, &self.config.limits)?;
        Ok(Ingested { manifest, stats })
    }

    /// Reads one file: chunks, hashes, and packs the chunks nobody has stored or claimed.
    fn ingest_file(
        &self,
        path: &DatasetPath,
        source: &Path,
        claimed: &Mutex<HashSet<Digest>>,
        sink: &PackSink<'_>,
    ) -> Result<(FileEntry, WriteStats), StoreError> {
        let mut stats = WriteStats::default();
        let entry = chunk_file(path, source, &self.config, |digest, chunk| {
            let is_new = !self.read_index().chunks.contains_key(&digest)
                && claimed.lock().unwrap_or_else(|p| p.into_inner()).insert(digest);
            if is_new {
                stats.new_chunks += 1;
                stats.new_chunk_bytes += chunk.len() as u64;
                let frame = pack::compress(chunk, self.config.compression);
                // The flusher stopped: its error is reported by `ingest_dir`.
                return Ok::<bool, StoreError>(sink.push(digest, chunk, frame.as_ref()));
            }
            Ok(true)
        })?;
        stats.chunks = entry.chunks.len() as u64;
        stats.bytes_read = entry.size_bytes;
        Ok((entry, stats))
    }

    /// Makes `version` a version of `name`: checks its chunks (and with
    /// [`CommitCheck::WholeFiles`] its files) under the store lock, writes the version if it is
    /// new, then appends it to the name's history unless it is already the latest. Committing
    /// the same version twice is a no-op.
    pub fn commit_version(
        &self,
        version: &Version,
        name: &DatasetName,
        check: CommitCheck,
    ) -> Result<Committed, StoreError> {
        let _lock = self.lock(Lock::StoreShared)?;
        self.refresh_index()?;
        {
            let index = self.read_index();
            for file in version.manifest().files() {
                for chunk in &file.chunks {
                    let location =
                        index.chunks.get(&chunk.digest).ok_or(StoreError::MissingChunk { digest: chunk.digest })?;
                    if location.entry.raw_len != chunk.len_bytes {
                        return Err(StoreError::ChunkLengthMismatch {
                            path: file.path.clone(),
                            digest: chunk.digest,
                            stored: location.entry.raw_len,
                            manifest: chunk.len_bytes,
                        });
                    }
                }
            }
        }
        if check == CommitCheck::WholeFiles {
            for file in version.manifest().files() {
                self.copy_file(file, &mut io::sink(), Path::new("(check)"))?;
            }
        }
        let bytes = version.encode();
        let id = VersionId(Digest::of(&bytes));
        let key = version_key(&id);
        let version_created = !self.blobs.exists(&key)?;
        if version_created {
            self.blobs.put(&key, &bytes)?;
        }
        let _refs = self.lock(Lock::Refs)?;
        let mut history = self.history_or_empty(name)?;
        let ref_updated = history.last() != Some(&id);
        if ref_updated {
            history.push(id);
            self.blobs.put(&ref_key(name), &encode_ref(&history))?;
        }
        Ok(Committed { id, version_created, ref_updated, manifest_bytes: bytes.len() as u64 })
    }

    /// `ingest_dir` then `commit_version`, the CLI's push, under one hold of the store lock so
    /// that a gc cannot run in between. (A client pushing over HTTP in several requests may see
    /// `MissingChunk` at commit if a gc ran since it sent its chunks: it asks `has_chunks`
    /// again and resends.)
    pub fn push_dir(
        &self,
        dir: &Path,
        name: &DatasetName,
        card: String,
        splits: Splits,
    ) -> Result<(Committed, WriteStats), StoreError> {
        let _lock = self.lock(Lock::StoreShared)?;
        let ingested = self.ingest_dir(dir)?;
        let version = Version::new(ingested.manifest, card, splits, &self.config.limits)?;
        let committed = self.commit_version(&version, name, CommitCheck::ChunksPresent)?;
        Ok((committed, ingested.stats))
    }

    /// A stored version, checked against its id.
    pub fn version(&self, id: &VersionId) -> Result<Version, StoreError> {
        let bytes = match self.blobs.get(&version_key(id)) {
            Ok(bytes) => bytes,
            Err(BlobError::NotFound { .. }) => return Err(StoreError::VersionNotFound { id: *id }),
            Err(error) => return Err(error.into()),
        };
        if Digest::of(&bytes) != id.0 {
            return Err(StoreError::DamagedVersion { id: *id, reason: "its bytes do not hash to its id".into() });
        }
        Version::parse(&bytes, &self.config.limits)
            .map_err(|error| StoreError::DamagedVersion { id: *id, reason: error.to_string() })
    }

    /// Every version id in the store.
    pub fn versions(&self) -> Result<Vec<VersionId>, StoreError> {
        let mut ids: Vec<VersionId> = self
            .blobs
            .list("versions/")?
            .iter()
            .filter_map(|key| key.strip_prefix("versions/")?.strip_suffix(".version"))
            .filter_map(|hex| Digest::parse(hex).ok().map(VersionId))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every dataset name, sorted.
    pub fn names(&self) -> Result<Vec<DatasetName>, StoreError> {
        let mut names: Vec<DatasetName> =
            self.blobs.list("refs/")?.iter().filter_map(|key| Name::parse(key.strip_prefix("refs/")?).ok()).collect();
        names.sort();
        Ok(names)
    }

    /// A dataset's versions, oldest first.
    pub fn history(&self, name: &DatasetName) -> Result<Vec<VersionId>, StoreError> {
        let history = self.history_or_empty(name)?;
        if history.is_empty() {
            return Err(StoreError::NameNotFound { name: name.clone() });
        }
        Ok(history)
    }

    fn history_or_empty(&self, name: &DatasetName) -> Result<Vec<VersionId>, StoreError> {
        let key = ref_key(name);
        match self.blobs.get(&key) {
            Ok(bytes) => parse_ref(&bytes).map_err(|reason| StoreError::DamagedRef { name: key, reason }),
            Err(BlobError::NotFound { .. }) => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }

    /// The tags of a dataset, sorted by tag.
    pub fn tags(&self, name: &DatasetName) -> Result<Vec<(Name, VersionId)>, StoreError> {
        let prefix = format!("tags/{name}/");
        let mut tags = Vec::new();
        for key in self.blobs.list(&prefix)? {
            let Some(tag) = key.strip_prefix(&prefix).and_then(|t| Name::parse(t).ok()) else { continue };
            tags.push((tag, self.read_tag(&key)?));
        }
        tags.sort();
        Ok(tags)
    }

    fn read_tag(&self, key: &str) -> Result<VersionId, StoreError> {
        let bytes = self.blobs.get(key)?;
        let text = std::str::from_utf8(&bytes).unwrap_or("");
        Digest::parse(text.trim_end_matches('\n'))
            .map(VersionId)
            .map_err(|error| StoreError::DamagedRef { name: key.to_string(), reason: error.to_string() })
    }

    /// Tags a version of `name`. Tags do not move: tagging the same version again is a no-op,
    /// another version is refused.
    pub fn tag(&self, name: &DatasetName, tag: &Name, id: &VersionId) -> Result<(), StoreError> {
        let _lock = self.lock(Lock::StoreShared)?;
        let _refs = self.lock(Lock::Refs)?;
        if !self.history(name)?.contains(id) {
            return Err(StoreError::UnknownReference { name: name.clone(), reference: id.to_string() });
        }
        let key = tag_key(name, tag);
        if self.blobs.exists(&key)? {
            let existing = self.read_tag(&key)?;
            return if existing == *id {
                Ok(())
            } else {
                Err(StoreError::TagExists { name: name.clone(), tag: tag.clone(), existing })
            };
        }
        self.blobs.put(&key, format!("{id}\n").as_bytes())?;
        Ok(())
    }

    /// `NAME` (latest), `NAME@TAG`, `NAME@ID` or `NAME@PREFIX` (8 or more hex digits of a
    /// version in the name's history) to a version id.
    pub fn resolve(&self, reference: &str) -> Result<VersionId, StoreError> {
        let (name, which) = match reference.split_once('@') {
            Some((name, which)) => (Name::parse(name)?, Some(which)),
            None => (Name::parse(reference)?, None),
        };
        let history = self.history(&name)?;
        let Some(which) = which else {
            return history.last().copied().ok_or(StoreError::NameNotFound { name });
        };
        if let Ok(tag) = Name::parse(which) {
            let key = tag_key(&name, &tag);
            if self.blobs.exists(&key)? {
                return self.read_tag(&key);
            }
        }
        let is_hex = which.len() >= 8 && which.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let matches: Vec<&VersionId> =
            history.iter().filter(|id| is_hex && id.to_string().starts_with(which)).collect();
        match matches.as_slice() {
            [one] => Ok(**one),
            _ => Err(StoreError::UnknownReference { name, reference: which.to_string() }),
        }
    }

    /// One chunk's raw bytes, checked against its digest.
    pub fn read_chunk(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        match self.read_chunk_once(digest) {
            Err(StoreError::Blob(BlobError::NotFound { .. }) | StoreError::MissingChunk { .. }) => {
                // The pack may have been rewritten by a gc elsewhere: reload and try once more.
                self.refresh_index()?;
                self.read_chunk_once(digest)
            }
            other => other,
        }
    }

    fn read_chunk_once(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let location = *self.read_index().chunks.get(digest).ok_or(StoreError::MissingChunk { digest: *digest })?;
        let Location { pack, entry } = location;
        let bytes = match self.blobs.get_range(&pack_key(&pack), entry.offset, entry.entry_bytes()) {
            Ok(bytes) => bytes,
            Err(error @ BlobError::OutOfRange { .. }) => {
                return Err(damaged(&pack, &entry, format!("pack is truncated ({error})")));
            }
            Err(error) => return Err(error.into()),
        };
        decode_entry(&entry, &bytes).map_err(|damage: ChunkDamage| damaged(&pack, &entry, damage.to_string()))
    }

    /// A file's chunks grouped into runs that lie in order and close together in one pack, each
    /// read with one ranged read (on S3 one request, not one per chunk). A chunk not in the
    /// index is a run of its own (`Err`), read by `read_chunk`, which reloads the index.
    fn runs(&self, chunks: &[ChunkRef]) -> Vec<Result<Run, Digest>> {
        let index = self.read_index();
        let mut runs: Vec<Result<Run, Digest>> = Vec::new();
        for chunk in chunks {
            let Some(location) = index.chunks.get(&chunk.digest) else {
                runs.push(Err(chunk.digest));
                continue;
            };
            let (start, end) = (location.entry.offset, location.entry.offset + location.entry.entry_bytes() as u64);
            if let Some(Ok(run)) = runs.last_mut()
                && run.pack == location.pack
                && start >= run.end
                && start - run.end <= MAX_RUN_GAP_BYTES
                && end - run.start <= MAX_RUN_BYTES
            {
                run.end = end;
                run.entries.push(location.entry);
                continue;
            }
            runs.push(Ok(Run { pack: location.pack, entries: vec![location.entry], start, end }));
        }
        runs
    }

    /// The chunks of a run, each checked. If the run cannot be read whole (its pack rewritten
    /// by a gc elsewhere, or truncated), its chunks are read one by one by `read_chunk`, which
    /// retries and names the damage.
    fn read_run(&self, run: Result<Run, Digest>) -> Result<Vec<Vec<u8>>, StoreError> {
        let run = match run {
            Ok(run) if run.entries.len() > 1 => run,
            Ok(run) => return run.entries.iter().map(|entry| self.read_chunk(&entry.digest)).collect(),
            Err(digest) => return Ok(vec![self.read_chunk(&digest)?]),
        };
        let (start, len_bytes) = (run.start, (run.end - run.start) as usize);
        let Ok(bytes) = self.blobs.get_range(&pack_key(&run.pack), start, len_bytes) else {
            return run.entries.iter().map(|entry| self.read_chunk(&entry.digest)).collect();
        };
        run.entries
            .iter()
            .map(|entry| {
                let at = (entry.offset - start) as usize;
                let stored = bytes
                    .get(at..at + entry.entry_bytes())
                    .ok_or_else(|| damaged(&run.pack, entry, "short read of its pack".into()))?;
                decode_entry(entry, stored).map_err(|damage| damaged(&run.pack, entry, damage.to_string()))
            })
            .collect()
    }

    /// These chunks' raw bytes, in order, each checked; chunks close together in a pack are read
    /// with one ranged read (on S3 one request, not one per chunk).
    pub fn read_chunks(&self, chunks: &[ChunkRef]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut all = Vec::with_capacity(chunks.len());
        for run in self.runs(chunks) {
            all.extend(self.read_run(run)?);
        }
        Ok(all)
    }

    /// Writes one file of a version to `out`, chunk by chunk, each checked; the whole-file hash
    /// is checked at the end. On any error the bytes written so far are correct but
    /// incomplete: write to a temporary file (as `materialize` does) to never expose them.
    pub fn read_file(&self, id: &VersionId, path: &DatasetPath, out: &mut dyn Write) -> Result<u64, StoreError> {
        let _lock = self.lock(Lock::StoreShared)?;
        let version = self.version(id)?;
        let file = version
            .manifest()
            .file(path)
            .ok_or_else(|| StoreError::PathNotInVersion { id: *id, path: path.clone() })?;
        self.copy_file(file, out, Path::new(path.as_str()))
    }

    fn copy_file(&self, file: &FileEntry, out: &mut dyn Write, shown_as: &Path) -> Result<u64, StoreError> {
        let mut whole = Hasher::new();
        let mut written = 0u64;
        for run in self.runs(&file.chunks) {
            for bytes in self.read_run(run)? {
                whole.update(&bytes);
                out.write_all(&bytes).map_err(io_at(shown_as, "write"))?;
                written += bytes.len() as u64;
            }
        }
        let actual = whole.finish();
        if actual != file.digest || written != file.size_bytes {
            return Err(StoreError::FileDigestMismatch { path: file.path.clone(), expected: file.digest, actual });
        }
        Ok(written)
    }

    /// Writes every file of a version into `target`, all or nothing: into a staging folder
    /// beside it (`.NAME.grappe-partial`), each file checked chunk by chunk and whole, fsynced,
    /// then the staging folder is renamed to `target` (which must not exist, or be an empty
    /// folder). On any error the staging folder is removed and `target` is left as it was.
    /// Returns the bytes written.
    pub fn materialize(&self, id: &VersionId, target: &Path) -> Result<u64, StoreError> {
        let _lock = self.lock(Lock::StoreShared)?;
        let version = self.version(id)?;
        let target_exists = match fs::read_dir(target) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(StoreError::TargetNotEmpty { path: target.to_path_buf() });
                }
                true
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(_) => return Err(StoreError::TargetNotEmpty { path: target.to_path_buf() }),
        };
        let target_name = target.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        create_dir_durably(&parent).map_err(io_at(&parent, "create folder"))?;
        let staging = parent.join(format!(".{target_name}.grappe-partial"));
        if staging.exists() {
            // Left by an interrupted pull into the same target.
            fs::remove_dir_all(&staging).map_err(io_at(&staging, "remove leftover"))?;
        }
        fs::create_dir(&staging).map_err(io_at(&staging, "create folder"))?;
        match self.write_files(&version, &staging) {
            Ok(total) => {
                if target_exists {
                    fs::remove_dir(target).map_err(io_at(target, "replace the empty folder"))?;
                }
                fs::rename(&staging, target).map_err(io_at(target, "rename into place"))?;
                sync_dir(&parent).map_err(io_at(&parent, "fsync folder"))?;
                Ok(total)
            }
            Err(error) => {
                let _ = fs::remove_dir_all(&staging);
                Err(error)
            }
        }
    }

    fn write_files(&self, version: &Version, root: &Path) -> Result<u64, StoreError> {
        let mut folders = std::collections::BTreeSet::new();
        folders.insert(root.to_path_buf());
        let mut total = 0;
        for file in version.manifest().files() {
            let mut destination = root.to_path_buf();
            for component in file.path.components() {
                destination.push(component);
            }
            let folder = destination.parent().unwrap_or(root).to_path_buf();
            fs::create_dir_all(&folder).map_err(io_at(&folder, "create folder"))?;
            let handle = File::create(&destination).map_err(io_at(&destination, "create"))?;
            let mut writer = BufWriter::with_capacity(1 << 20, handle);
            total += self.copy_file(file, &mut writer, &destination)?;
            let handle = writer.into_inner().map_err(|error| StoreError::Io {
                path: destination.clone(),
                op: "write",
                source: error.into_error(),
            })?;
            handle.sync_all().map_err(io_at(&destination, "fsync"))?;
            // Every folder on the way, so that each new entry is made durable.
            let mut at = folder.as_path();
            while at.starts_with(root) && folders.insert(at.to_path_buf()) {
                match at.parent() {
                    Some(up) => at = up,
                    None => break,
                }
            }
        }
        for folder in &folders {
            sync_dir(folder).map_err(io_at(folder, "fsync folder"))?;
        }
        Ok(total)
    }

    /// Paths added, removed and changed from `old` to `new`.
    pub fn diff(&self, old: &VersionId, new: &VersionId) -> Result<VersionDiff, StoreError> {
        Ok(self.version(old)?.diff(&self.version(new)?))
    }

    /// Re-hashes every chunk of every pack, checks every version (encoding, id, every chunk
    /// present and sound, every whole-file hash) and every ref; names each thing damaged.
    /// Garbage left by interrupted writes is counted, not reported as damage.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let _lock = self.lock(Lock::StoreShared)?;
        self.refresh_index()?;
        let mut report = VerifyReport::default();
        let pack_ids: HashSet<Digest> =
            self.blobs.list("packs/")?.iter().filter_map(|k| pack::id_from_key(k)).collect();
        let index_ids: HashSet<Digest> =
            self.blobs.list("index/")?.iter().filter_map(|k| pack::id_from_key(k)).collect();
        report.packs_without_index = pack_ids.difference(&index_ids).count() as u64;
        // Chunks found sound, with their length.
        let mut sound: HashMap<Digest, u32> = HashMap::new();
        let mut damaged: HashSet<Digest> = HashSet::new();
        let mut index_ids: Vec<Digest> = index_ids.into_iter().collect();
        index_ids.sort();
        for pack_id in &index_ids {
            report.packs += 1;
            let entries = match self.blobs.get(&index_key(pack_id)) {
                Ok(bytes) => match parse_index(*pack_id, &bytes) {
                    Ok(entries) => entries,
                    Err(error) => {
                        report.damage.push(Damage::Index { pack: *pack_id, reason: error.reason });
                        continue;
                    }
                },
                Err(error) => {
                    report.damage.push(Damage::Index { pack: *pack_id, reason: error.to_string() });
                    continue;
                }
            };
            let bytes = match self.blobs.get(&pack_key(pack_id)) {
                Ok(bytes) => bytes,
                Err(error) => {
                    report.damage.push(Damage::Pack { pack: *pack_id, reason: error.to_string() });
                    for entry in &entries {
                        damaged.insert(entry.digest);
                    }
                    continue;
                }
            };
            if bytes.len() < 8 || &bytes[..8] != pack::PACK_MAGIC {
                report.damage.push(Damage::Pack { pack: *pack_id, reason: "bad header".into() });
            }
            let mut expected_end = 8u64;
            for entry in &entries {
                report.chunks += 1;
                let start = entry.offset as usize;
                let end = start + entry.entry_bytes();
                expected_end = expected_end.max(end as u64);
                let outcome = if end > bytes.len() {
                    Err(format!("pack is truncated: {} bytes, the entry ends at {end}", bytes.len()))
                } else {
                    decode_entry(entry, &bytes[start..end]).map(|_| ()).map_err(|damage| damage.to_string())
                };
                match outcome {
                    Ok(()) => {
                        report.chunk_bytes += u64::from(entry.raw_len);
                        sound.insert(entry.digest, entry.raw_len);
                    }
                    Err(reason) => {
                        damaged.insert(entry.digest);
                        report.damage.push(Damage::Chunk {
                            pack: *pack_id,
                            offset: entry.offset,
                            digest: entry.digest,
                            reason,
                        });
                    }
                }
            }
            if (bytes.len() as u64) > expected_end {
                report.damage.push(Damage::Pack {
                    pack: *pack_id,
                    reason: format!("{} bytes past the last entry", bytes.len() as u64 - expected_end),
                });
            }
        }
        // A chunk damaged in one pack but sound in another is sound.
        damaged.retain(|digest| !sound.contains_key(digest));
        let mut used: HashSet<Digest> = HashSet::new();
        // Files already checked whole: (file digest, hash of its chunk list).
        let mut files_checked: HashSet<(Digest, Digest)> = HashSet::new();
        for key in self.blobs.list("versions/")? {
            report.versions += 1;
            let Some(id) = key
                .strip_prefix("versions/")
                .and_then(|k| k.strip_suffix(".version"))
                .and_then(|h| Digest::parse(h).ok())
            else {
                report.damage.push(Damage::Version { key, reason: "not a version key".into() });
                continue;
            };
            let id = VersionId(id);
            let version = match self.version(&id) {
                Ok(version) => version,
                Err(error) => {
                    report.damage.push(Damage::Version { key, reason: error.to_string() });
                    continue;
                }
            };
            for file in version.manifest().files() {
                report.files += 1;
                let mut complete = true;
                let mut list = Hasher::new();
                for chunk in &file.chunks {
                    used.insert(chunk.digest);
                    list.update(chunk.digest.as_bytes());
                    list.update(&chunk.len_bytes.to_le_bytes());
                    if damaged.contains(&chunk.digest) {
                        complete = false;
                        report.damage.push(Damage::File {
                            version: id,
                            path: file.path.clone(),
                            reason: format!("chunk {} is damaged", chunk.digest),
                        });
                    } else if sound.get(&chunk.digest) != Some(&chunk.len_bytes) {
                        complete = false;
                        report.damage.push(Damage::MissingChunk {
                            version: id,
                            path: file.path.clone(),
                            digest: chunk.digest,
                        });
                    }
                }
                if complete
                    && files_checked.insert((file.digest, list.finish()))
                    && let Err(error) = self.copy_file(file, &mut io::sink(), Path::new(file.path.as_str()))
                {
                    report.damage.push(Damage::File {
                        version: id,
                        path: file.path.clone(),
                        reason: error.to_string(),
                    });
                }
            }
        }
        report.unused_chunks = sound.keys().filter(|digest| !used.contains(*digest)).count() as u64;
        let versions: HashSet<VersionId> = self.versions()?.into_iter().collect();
        for key in self.blobs.list("refs/")?.into_iter().chain(self.blobs.list("tags/")?) {
            report.refs += 1;
            let ids = match self.blobs.get(&key) {
                Ok(bytes) if key.starts_with("refs/") => parse_ref(&bytes),
                Ok(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| Digest::parse(text.trim_end_matches('\n')).ok())
                    .map(|digest| vec![VersionId(digest)])
                    .ok_or_else(|| "not a version id".to_string()),
                Err(error) => Err(error.to_string()),
            };
            match ids {
                Ok(ids) => {
                    for id in ids.iter().filter(|id| !versions.contains(id)) {
                        report
                            .damage
                            .push(Damage::Ref { key: key.clone(), reason: format!("version {id} is missing") });
                    }
                }
                Err(reason) => report.damage.push(Damage::Ref { key, reason }),
            }
        }
        Ok(report)
    }

    /// Removes what no version uses: packs whose chunks are all unused are deleted (index
    /// first, then pack); packs with less than `gc_rewrite_below_live_percent` % of their
    /// bytes in use are rewritten (the used chunks into new packs, written first) and deleted;
    /// packs without an index and leftovers of interrupted puts are deleted. Versions are the
    /// roots: drop a version ([`Store::drop_version`]) to let gc reclaim its chunks. Refuses to
    /// run (deleting nothing) if a version cannot be read.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        let _lock = self.lock(Lock::StoreExclusive)?;
        self.refresh_index()?;
        let mut used: HashSet<Digest> = HashSet::new();
        for id in self.versions()? {
            for file in self.version(&id)?.manifest().files() {
                used.extend(file.chunks.iter().map(|chunk| chunk.digest));
            }
        }
        let mut report = GcReport::default();
        let packs: Vec<(Digest, Vec<IndexEntry>)> =
            self.read_index().packs.iter().map(|(id, entries)| (*id, entries.clone())).collect();
        let mut written: HashSet<Digest> = HashSet::new();
        let mut moved: HashSet<Digest> = HashSet::new();
        let mut builder = PackBuilder::new();
        let mut stats = WriteStats::default();
        let mut doomed = Vec::new();
        for (pack_id, entries) in &packs {
            let total: u64 = entries.iter().map(|e| e.entry_bytes() as u64).sum();
            let live: u64 = entries.iter().filter(|e| used.contains(&e.digest)).map(|e| e.entry_bytes() as u64).sum();
            if live * 100 >= total * u64::from(self.config.gc_rewrite_below_live_percent) && live > 0 {
                continue;
            }
            for entry in entries {
                if used.contains(&entry.digest) {
                    if moved.insert(entry.digest) {
                        let raw = self.read_chunk_from(*pack_id, entry)?;
                        builder.push(&SealedChunk::seal_with_digest(entry.digest, &raw, self.config.compression));
                        if builder.len_bytes() >= self.config.pack_target_bytes {
                            let finished = std::mem::take(&mut builder);
                            self.write_pack(finished, &mut stats)?;
                        }
                    }
                } else {
                    report.chunks_removed += 1;
                }
            }
            report.bytes_freed += total;
            doomed.push(*pack_id);
        }
        self.write_pack(builder, &mut stats)?;
        report.packs_written = stats.packs_written;
        written.extend(self.read_index().packs.keys().copied().filter(|id| !packs.iter().any(|(old, _)| old == id)));
        for pack_id in doomed.iter().filter(|id| !written.contains(id)) {
            self.blobs.delete(&index_key(pack_id))?;
            self.blobs.delete(&pack_key(pack_id))?;
            if packs.iter().any(|(id, entries)| id == pack_id && entries.iter().any(|e| used.contains(&e.digest))) {
                report.packs_rewritten += 1;
            } else {
                report.packs_deleted += 1;
            }
        }
        report.bytes_freed = report.bytes_freed.saturating_sub(stats.stored_bytes);
        let indexed: HashSet<Digest> = self.blobs.list("index/")?.iter().filter_map(|k| pack::id_from_key(k)).collect();
        for key in self.blobs.list("packs/")? {
            if pack::id_from_key(&key).is_none_or(|id| !indexed.contains(&id)) {
                self.blobs.delete(&key)?;
                report.packs_deleted += 1;
            }
        }
        report.temporaries_removed = self.blobs.clean_temporaries()?;
        // Rebuild the in-memory index from what is left.
        *self.write_index() = ChunkIndex::default();
        self.refresh_index()?;
        Ok(report)
    }

    fn read_chunk_from(&self, pack: Digest, entry: &IndexEntry) -> Result<Vec<u8>, StoreError> {
        let damaged =
            |reason: String| StoreError::DamagedChunk { pack, offset: entry.offset, digest: entry.digest, reason };
        let bytes = match self.blobs.get_range(&pack_key(&pack), entry.offset, entry.entry_bytes()) {
            Ok(bytes) => bytes,
            Err(error @ BlobError::OutOfRange { .. }) => return Err(damaged(format!("pack is truncated ({error})"))),
            Err(error) => return Err(error.into()),
        };
        decode_entry(entry, &bytes).map_err(|damage| damaged(damage.to_string()))
    }

    /// Removes a version: from every name's history and every tag that points at it, then the
    /// version itself. Its chunks stay until the next `gc`.
    pub fn drop_version(&self, id: &VersionId) -> Result<(), StoreError> {
        let _lock = self.lock(Lock::StoreExclusive)?;
        let _refs = self.lock(Lock::Refs)?;
        for name in self.names()? {
            let history = self.history_or_empty(&name)?;
            if history.contains(id) {
                let kept: Vec<VersionId> = history.into_iter().filter(|v| v != id).collect();
                if kept.is_empty() {
                    self.blobs.delete(&ref_key(&name))?;
                } else {
                    self.blobs.put(&ref_key(&name), &encode_ref(&kept))?;
                }
            }
            for (tag, tagged) in self.tags(&name)? {
                if tagged == *id {
                    self.blobs.delete(&tag_key(&name, &tag))?;
                }
            }
        }
        self.blobs.delete(&version_key(id))?;
        Ok(())
    }
}

/// Where ingest workers put new chunks (see `ingest_dir`).
struct PackSink<'a> {
    current: &'a Mutex<PackBuilder>,
    spare: &'a Mutex<Vec<Vec<u8>>>,
    sender: mpsc::SyncSender<PackBuilder>,
    self_: &'a Store,
}

impl PackSink<'_> {
    /// Appends a chunk; hands the pack to the flusher when full. False if the flusher stopped.
    fn push(&self, digest: Digest, raw: &[u8], frame: Option<&pack::Frame>) -> bool {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.push_parts(digest, raw, frame);
        if current.len_bytes() < self.self_.config.pack_target_bytes {
            return true;
        }
        let buffer = self.spare.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
        let full = std::mem::replace(&mut *current, PackBuilder::with_buffer(buffer));
        self.sender.send(full).is_ok()
    }
}

fn encode_ref(history: &[VersionId]) -> Vec<u8> {
    let mut text = format!("{REF_HEADER}\n");
    for id in history {
        text.push_str(&format!("{id}\n"));
    }
    text.into_bytes()
}

fn parse_ref(bytes: &[u8]) -> Result<Vec<VersionId>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut lines = text.lines();
    if lines.next() != Some(REF_HEADER) {
        return Err(format!("does not start with '{REF_HEADER}'"));
    }
    lines.map(|line| Digest::parse(line).map(VersionId).map_err(|error| error.to_string())).collect()
}

fn open_regular(path: &Path) -> Result<File, StoreError> {
    let metadata = fs::symlink_metadata(path).map_err(io_at(path, "stat"))?;
    if !metadata.is_file() {
        return Err(StoreError::NotARegularFile { path: path.to_path_buf() });
    }
    File::open(path).map_err(io_at(path, "open"))
}

/// The regular files under `dir`, with their dataset paths, sorted by path.
/// Chunks and hashes one file, handing each chunk to `on_chunk` in order; `Ok(false)` from it
/// stops the reading early (the entry is then incomplete, and the caller reports why).
fn chunk_file<E: From<StoreError>>(
    path: &DatasetPath,
    source: &Path,
    config: &StoreConfig,
    mut on_chunk: impl FnMut(Digest, &[u8]) -> Result<bool, E>,
) -> Result<FileEntry, E> {
    let file = open_regular(source)?;
    let mut reader = ChunkReader::new(file, config.chunk_params);
    let mut whole = Hasher::new();
    let mut chunks = Vec::new();
    let mut size_bytes = 0u64;
    while let Some(chunk) = reader.next_chunk().map_err(io_at(source, "read"))? {
        whole.update(chunk);
        let digest = Digest::of(chunk);
        chunks.push(ChunkRef { digest, len_bytes: chunk.len() as u32 });
        size_bytes += chunk.len() as u64;
        if size_bytes > config.limits.max_file_bytes {
            return Err(StoreError::from(ManifestError::File {
                path: path.clone(),
                reason: "larger than the limit".into(),
            })
            .into());
        }
        if !on_chunk(digest, chunk)? {
            break;
        }
    }
    Ok(FileEntry { path: path.clone(), size_bytes, digest: whole.finish(), media_type: MediaType::guess(path), chunks })
}

/// Chunks and hashes every file under `dir` as [`Store::ingest_dir`] does (same walk, same
/// cuts, same manifest) without storing anything: each chunk goes to `on_chunk` with its file,
/// in order. A client of a remote store sends the server those it lacks.
pub fn scan_dir<E: From<StoreError>>(
    dir: &Path,
    config: &StoreConfig,
    mut on_chunk: impl FnMut(&DatasetPath, Digest, &[u8]) -> Result<(), E>,
) -> Result<Manifest, E> {
    let files = walk(dir, &config.limits)?;
    if files.is_empty() {
        return Err(StoreError::from(ManifestError::Empty).into());
    }
    let mut entries = Vec::with_capacity(files.len());
    for (path, source) in &files {
        entries.push(chunk_file(path, source, config, |digest, chunk| on_chunk(path, digest, chunk).map(|()| true))?);
    }
    Ok(Manifest::new(entries, &config.limits).map_err(StoreError::from)?)
}

/// The bytes of the regular files under `dir`, at any depth (what cannot be read counts 0).
pub fn folder_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

fn walk(dir: &Path, limits: &Limits) -> Result<Vec<(DatasetPath, PathBuf)>, StoreError> {
    let metadata = fs::metadata(dir).map_err(io_at(dir, "open folder"))?;
    if !metadata.is_dir() {
        return Err(StoreError::NotARegularFile { path: dir.to_path_buf() });
    }
    let mut files = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        let entries = fs::read_dir(&folder).map_err(io_at(&folder, "list"))?;
        for entry in entries {
            let entry = entry.map_err(io_at(&folder, "list"))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| StoreError::NonUtf8Name { path: path.clone() })?;
            let relative = format!("{prefix}{name}");
            let kind = entry.file_type().map_err(io_at(&path, "stat"))?;
            if kind.is_dir() {
                pending.push((path, format!("{relative}/")));
            } else if kind.is_file() {
                files.push((DatasetPath::parse_with(&relative, limits)?, path));
                if files.len() > limits.max_files {
                    return Err(
                        ManifestError::TooMany { what: "files", count: files.len(), max: limits.max_files }.into()
                    );
                }
            } else {
                return Err(StoreError::NotARegularFile { path });
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

// The server shares one `Store` between blocking tasks.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
};

/// A stored file as a `Read + Seek` stream: for readers that need to seek, as Parquet's does.
/// It reads a window of consecutive chunks at a time (at most [`READ_WINDOW_BYTES`] of them,
/// each checked against its digest), so memory is bounded whatever the file's size and a
/// sequential read makes few requests.
pub struct FileReader {
    store: std::sync::Arc<Store>,
    file: FileEntry,
    /// Where each chunk starts in the file.
    starts: Vec<u64>,
    position: u64,
    /// The chunks last read: the index of the first, and their bytes.
    window: Option<(usize, Vec<Vec<u8>>)>,
}

/// Raw bytes of the chunks a [`FileReader`] (and a server streaming a file) reads at once.
pub const READ_WINDOW_BYTES: u64 = 8 << 20;

/// The chunks from `first` on that make one window: at least one, at most
/// [`READ_WINDOW_BYTES`] of them.
pub fn read_window(chunks: &[ChunkRef], first: usize) -> std::ops::Range<usize> {
    let mut end = first;
    let mut bytes = 0u64;
    while end < chunks.len() && (end == first || bytes + u64::from(chunks[end].len_bytes) <= READ_WINDOW_BYTES) {
        bytes += u64::from(chunks[end].len_bytes);
        end += 1;
    }
    first..end
}

impl FileReader {
    pub fn new(store: std::sync::Arc<Store>, file: FileEntry) -> FileReader {
        let mut starts = Vec::with_capacity(file.chunks.len());
        let mut at = 0u64;
        for chunk in &file.chunks {
            starts.push(at);
            at += u64::from(chunk.len_bytes);
        }
        FileReader { store, file, starts, position: 0, window: None }
    }
}

impl io::Read for FileReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() || self.position >= self.file.size_bytes {
            return Ok(0);
        }
        // The chunk holding `position`: the last one starting at or before it.
        let index = self.starts.partition_point(|start| *start <= self.position) - 1;
        let loaded =
            self.window.as_ref().is_some_and(|(first, chunks)| (*first..first + chunks.len()).contains(&index));
        if !loaded {
            let range = read_window(&self.file.chunks, index);
            let chunks = self.store.read_chunks(&self.file.chunks[range]).map_err(io::Error::other)?;
            self.window = Some((index, chunks));
        }
        let Some((first, chunks)) = &self.window else { return Ok(0) };
        let bytes = &chunks[index - first];
        let offset = (self.position - self.starts[index]) as usize;
        let count = buffer.len().min(bytes.len() - offset);
        buffer[..count].copy_from_slice(&bytes[offset..offset + count]);
        self.position += count as u64;
        Ok(count)
    }
}

impl io::Seek for FileReader {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(offset) => Some(offset),
            io::SeekFrom::End(delta) => self.file.size_bytes.checked_add_signed(delta),
            io::SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.position = target;
        Ok(target)
    }
}
