//! The data commons' store: content-defined chunks, packs, manifests and versions over a
//! narrow [`BlobStore`] trait. Pure of HTTP, SQL and serde; its only I/O is through the blob
//! store and, for `ingest_dir` and `materialize`, the local folders it is given.
//!
//! - [`chunk`]: where files are cut (FastCDC-style gear hashing; parameters and measurements in
//!   its module comment).
//! - [`digest`]: [`Digest`], the BLAKE3 name of every chunk, file, pack and version.
//! - [`pack`]: the pack and index formats, and the checks on both sides of a chunk's trip.
//! - [`manifest`]: paths, names, media types, [`Manifest`], [`Version`] and its canonical
//!   encoding (the version id is its BLAKE3).
//! - [`blob`]: [`BlobStore`], [`LocalDir`] and [`open_blobs`] (a folder or an `s3://` URL);
//!   [`write_durably`], a file written atomically and durably.
//! - [`s3`]: [`S3Blobs`], the blob store on an S3-compatible object store.
//! - [`store`]: [`Store`]: ingest, push, commit, read, materialize, verify, gc, diff; its module
//!   comment states the atomicity and locking rules.

pub mod blob;
pub mod chunk;
pub mod digest;
pub mod manifest;
pub mod pack;
pub mod s3;
pub mod store;
#[doc(hidden)]
pub mod testing;

pub use blob::{BlobError, BlobStore, LocalDir, LocalDirConfig, Lock, LockGuard, open_blobs, write_durably};
pub use chunk::ChunkParams;
pub use digest::Digest;
pub use manifest::{
    ChunkRef, DatasetName, DatasetPath, FileEntry, Limits, Manifest, ManifestError, MediaType, Name, SplitName, Splits,
    Version, VersionDiff, VersionId,
};
pub use pack::Compression;
pub use s3::{S3Blobs, S3Config};
pub use store::{
    CommitCheck, Committed, Damage, FileReader, GcReport, Ingested, READ_WINDOW_BYTES, Store, StoreConfig, StoreError,
    VerifyReport, WriteStats, folder_bytes, read_window, scan_dir,
};
