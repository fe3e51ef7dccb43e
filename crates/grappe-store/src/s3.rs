//! `S3Blobs`: a [`BlobStore`] on an S3-compatible object store, through `object_store`.
//!
//! Key `a/b` is the object `PREFIX/a/b` of the bucket. A put is one PUT (an object store
//! replaces an object atomically: a reader sees the old object or the whole new one), a ranged
//! read one ranged GET whose length is checked, `exists` a HEAD, `list` a listing of the key's
//! folder filtered by the rest of the prefix.
//!
//! The trait is synchronous: the backend owns a runtime of one worker thread, hands it each
//! request and waits for the answer on a channel. It may be called from any thread: a
//! `spawn_blocking` thread of another runtime (as the server should), or even async code, whose
//! thread it then blocks like any blocking call (without tokio's nested-runtime panic).
//!
//! ## Locks
//!
//! S3 has no locks; they are objects under `PREFIX/locks/`, each holding its owner and the time
//! its lease ends (`grappe-lock 1`, owner, Unix milliseconds):
//! - an exclusive lock (`Refs`, and the store's `StoreExclusive`) is an object created by a
//!   conditional PUT (`If-None-Match: *`): one creator wins. A lock whose lease has ended (its
//!   holder died) is taken over by a PUT conditional on its ETag (`If-Match`), so that of two
//!   waiters only one takes it;
//! - a shared lock (`StoreShared`) is a marker object of its own, `locks/store-shared/OWNER`,
//!   written only while no live exclusive lock exists, and checked again after it is written;
//!   `StoreExclusive` creates its lock object first, then waits until no live marker remains.
//!   Either side writes then reads, so with S3's read-after-write consistency one of two racing
//!   sides always sees the other.
//!
//! Within one process, the stores opened on one bucket and prefix first take an in-process lock
//! of the same kind, so that a process's threads never race each other at the server, and only
//! processes do. That race is settled by the server's conditional PUT: atomic on AWS S3 (since
//! 2024), MinIO and R2 (as `object_store` documents); not on the test server, s3s-fs 0.14.1,
//! which checks `If-None-Match` before it writes (measured: 6 racing creates, two winners in 20
//! rounds of 40). On a server like it, one process (the Grappe server) must own the store.
//!
//! A holder renews its lease every quarter lease from a thread of its own, and deletes the
//! object when the guard is dropped. Waiting backs off from 10 ms to 500 ms and gives up after
//! `lock_wait`. Leases compare clocks of different machines: keep them in sync (NTP) well
//! within the lease. A holder that stops for longer than its lease (a paused VM) may lose the
//! lock without knowing it; with a lease of a minute, that is the accepted risk.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    UpdateVersion,
};

use crate::blob::{BlobError, BlobStore, Lock, LockGuard, check_key};

const LOCKS: &str = "locks";
const REFS_LOCK: &str = "locks/refs";
const STORE_EXCLUSIVE_LOCK: &str = "locks/store-exclusive";
const STORE_SHARED_LOCKS: &str = "locks/store-shared";
const LOCK_HEADER: &str = "grappe-lock 1";

/// Where an S3 store is, parsed from `s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION]`.
/// Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`
/// if set); the region from the URL, else `AWS_REGION`, else `us-east-1`. Plain HTTP is allowed
/// only for an endpoint given as `http://...`.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Empty, or a key under which every blob of the store lives.
    pub prefix: String,
    /// `None`: AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    pub region: String,
    /// How long `lock` waits before giving up.
    pub lock_wait: Duration,
    /// How long a lock stays valid without being renewed (its holder renews it every quarter).
    pub lock_lease: Duration,
}

impl S3Config {
    pub fn parse(spec: &str) -> Result<S3Config, BlobError> {
        let refuse = |reason: String| BlobError::Open { store: spec.to_string(), reason };
        let rest = spec.strip_prefix("s3://").ok_or_else(|| refuse("an S3 store is s3://BUCKET/PREFIX".into()))?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let prefix = prefix.trim_end_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(refuse(format!(
                "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-', '.')"
            )));
        }
        if !prefix.is_empty() {
            check_key(prefix).map_err(|error| refuse(format!("prefix: {error}")))?;
        }
        let mut endpoint = None;
        let mut region = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", value)) if value.starts_with("http://") || value.starts_with("https://") => {
                    endpoint = Some(value.trim_end_matches('/').to_string())
                }
                Some(("endpoint", value)) => {
                    return Err(refuse(format!("endpoint {value:?} must start with http:// or https://")));
                }
                Some(("region", value)) if !value.is_empty() => region = Some(value.to_string()),
                _ => return Err(refuse(format!("unknown setting {pair:?} (endpoint=URL and region=NAME are known)"))),
            }
        }
        let region = region
            .or_else(|| std::env::var("AWS_REGION").ok().filter(|region| !region.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_string());
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint,
            region,
            lock_wait: Duration::from_secs(600),
            lock_lease: Duration::from_secs(60),
        })
    }

    /// The store as the user would name it (for messages).
    pub fn display(&self) -> String {
        let endpoint = self.endpoint.as_deref().unwrap_or("AWS");
        format!("s3://{}/{} at {endpoint}", self.bucket, self.prefix)
    }
}

/// A runtime of one worker, shut down without blocking when dropped (a drop may happen in async
/// code, where blocking on a runtime's shutdown is refused).
struct Worker(Option<tokio::runtime::Runtime>);

impl Worker {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.0 {
            runtime.spawn(future);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

struct Inner {
    client: AmazonS3,
    config: S3Config,
    worker: Worker,
    local: Arc<LocalLocks>,
}

impl Inner {
    /// Runs one request on the I/O thread and waits for its answer.
    fn run<T, F>(&self, request: impl FnOnce(AmazonS3) -> F) -> object_store::Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = mpsc::sync_channel(1);
        let future = request(self.client.clone());
        self.worker.spawn(async move {
            let _ = answer.send(future.await);
        });
        answered.recv().unwrap_or_else(|_| {
            Err(object_store::Error::Generic { store: "S3", source: "the I/O thread stopped before answering".into() })
        })
    }
}

/// The in-process side of a store's locks, shared by every `S3Blobs` of this process on the
/// same bucket and prefix.
#[derive(Default)]
struct LocalLocks {
    store: Arc<tokio::sync::RwLock<()>>,
    refs: Arc<tokio::sync::RwLock<()>>,
}

impl LocalLocks {
    fn of(config: &S3Config) -> Arc<LocalLocks> {
        static STORES: Mutex<BTreeMap<String, Arc<LocalLocks>>> = Mutex::new(BTreeMap::new());
        let mut stores = STORES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(stores.entry(config.display()).or_default())
    }

    /// Takes the in-process side of `lock`, polling until `deadline`.
    fn take(&self, lock: Lock, deadline: Instant, lock_wait: Duration) -> Result<Box<dyn Send + Sync>, BlobError> {
        let mut wait = Duration::from_millis(1);
        loop {
            let taken: Option<Box<dyn Send + Sync>> = match lock {
                Lock::StoreShared => Arc::clone(&self.store).try_read_owned().ok().map(|guard| Box::new(guard) as _),
                Lock::StoreExclusive => {
                    Arc::clone(&self.store).try_write_owned().ok().map(|guard| Box::new(guard) as _)
                }
                Lock::Refs => Arc::clone(&self.refs).try_write_owned().ok().map(|guard| Box::new(guard) as _),
            };
            if let Some(guard) = taken {
                return Ok(guard);
            }
            if Instant::now() >= deadline {
                return Err(BlobError::LockTimeout { lock, waited_s: lock_wait.as_secs() });
            }
            pause(&mut wait);
        }
    }
}

/// Blobs as objects of an S3 bucket (see the module comment).
pub struct S3Blobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs").field("store", &self.inner.config.display()).finish()
    }
}

impl S3Blobs {
    /// Connects and checks that the bucket can be listed with the credentials given, so that a
    /// wrong endpoint, a missing bucket or refused credentials are reported here, by name.
    pub fn open(config: S3Config) -> Result<S3Blobs, BlobError> {
        let store = config.display();
        let refuse = |reason: String| BlobError::Open { store: store.clone(), reason };
        let credential = |name: &str| {
            std::env::var(name).ok().filter(|value| !value.is_empty()).ok_or_else(|| {
                refuse("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set to the store's credentials".into())
            })
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(credential("AWS_ACCESS_KEY_ID")?)
            .with_secret_access_key(credential("AWS_SECRET_ACCESS_KEY")?)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(10))
                    // A pack of 64 MiB in one PUT over a slow link.
                    .with_timeout(Duration::from_secs(600)),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            });
        if let Ok(token) = std::env::var("AWS_SESSION_TOKEN") {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let client = builder.build().map_err(|error| refuse(error.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("grappe-s3")
            .enable_all()
            .build()
            .map_err(|error| refuse(format!("starting its I/O thread: {error}")))?;
        let local = LocalLocks::of(&config);
        let blobs = S3Blobs { inner: Arc::new(Inner { client, config, worker: Worker(Some(runtime)), local }) };
        let probe = blobs.full(LOCKS);
        let listed = blobs.inner.run(|client| async move { client.list_with_delimiter(Some(&probe)).await });
        let Err(error) = listed else { return Ok(blobs) };
        // A listing's errors all come as `Generic`: the status and S3's error code tell them apart.
        let text = error_chain(&error);
        let has = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
        let reason = if has(&["NoSuchBucket", "404 Not Found"]) {
            format!("bucket {} does not exist ({text})", blobs.inner.config.bucket)
        } else if has(&[
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "403 Forbidden",
            "401 Unauthorized",
        ]) {
            format!("access refused: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({text})")
        } else {
            format!("endpoint unreachable or not S3 ({text})")
        };
        Err(refuse(reason))
    }

    /// The object of a key, with the store's prefix.
    fn full(&self, key: &str) -> Path {
        let prefix = &self.inner.config.prefix;
        if prefix.is_empty() { Path::from(key) } else { Path::from(format!("{prefix}/{key}")) }
    }

    /// The object of a blob's key; `locks/` is the store's own.
    fn object(&self, key: &str) -> Result<Path, BlobError> {
        check_key(key)?;
        if key == LOCKS || key.starts_with("locks/") {
            return Err(BlobError::InvalidKey { key: key.to_string(), reason: "locks/ is the store's own" });
        }
        Ok(self.full(key))
    }

    /// The key of an object listed under the store's prefix.
    fn key_of(&self, path: &Path) -> Option<String> {
        let prefix = &self.inner.config.prefix;
        let text = path.as_ref();
        if prefix.is_empty() {
            Some(text.to_string())
        } else {
            text.strip_prefix(&format!("{prefix}/")).map(str::to_string)
        }
    }

    fn size(&self, key: &str, path: &Path) -> Result<u64, BlobError> {
        let path = path.clone();
        let head = self.inner.run(|client| async move { client.head(&path).await });
        head.map(|meta| meta.size).map_err(|error| remote(key, "stat", error))
    }
}

/// The error with the errors it wraps, outermost first.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = inner.source();
    }
    text
}

fn remote(key: &str, op: &'static str, error: object_store::Error) -> BlobError {
    match error {
        object_store::Error::NotFound { .. } => BlobError::NotFound { key: key.to_string() },
        error => BlobError::Io { key: key.to_string(), op, source: io::Error::other(error_chain(&error)) },
    }
}

impl BlobStore for S3Blobs {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.object(key)?;
        let payload = PutPayload::from(bytes.to_vec());
        self.inner
            .run(|client| async move { client.put(&path, payload).await })
            .map(drop)
            .map_err(|error| remote(key, "put", error))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.object(key)?;
        self.inner
            .run(|client| async move { client.get(&path).await?.bytes().await })
            .map(Vec::from)
            .map_err(|error| remote(key, "read", error))
    }

    fn get_range(&self, key: &str, offset: u64, len: usize) -> Result<Vec<u8>, BlobError> {
        let path = self.object(key)?;
        let end = offset.saturating_add(len as u64);
        // S3 has no empty range, and answers a range past the end with fewer bytes or 416:
        // either way the object's size decides.
        let read = if len == 0 {
            None
        } else {
            let path = path.clone();
            Some(self.inner.run(|client| async move { client.get_range(&path, offset..end).await }))
        };
        match read {
            Some(Ok(bytes)) if bytes.len() == len => return Ok(Vec::from(bytes)),
            Some(Err(object_store::Error::NotFound { .. })) => {
                return Err(BlobError::NotFound { key: key.to_string() });
            }
            _ => {}
        }
        let size_bytes = self.size(key, &path)?;
        if end > size_bytes {
            return Err(BlobError::OutOfRange { key: key.to_string(), offset, len, size_bytes });
        }
        match read {
            None => Ok(Vec::new()),
            Some(Err(error)) => Err(remote(key, "read range", error)),
            Some(Ok(bytes)) => Err(BlobError::Io {
                key: key.to_string(),
                op: "read range",
                source: io::Error::other(format!("the server sent {} bytes instead of {len}", bytes.len())),
            }),
        }
    }

    fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let path = self.object(key)?;
        match self.inner.run(|client| async move { client.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(remote(key, "stat", error)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        // The folder part of the prefix is listed (S3 prefixes match whole segments here);
        // the rest filters names.
        let (folder, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let listing = if folder.is_empty() {
            let root = self.full("");
            if self.inner.config.prefix.is_empty() { None } else { Some(root) }
        } else {
            check_key(folder)?;
            Some(self.full(folder))
        };
        let objects = self
            .inner
            .run(|client| async move { client.list(listing.as_ref()).try_collect::<Vec<_>>().await })
            .map_err(|error| remote(folder, "list", error))?;
        Ok(objects
            .iter()
            .filter_map(|object| self.key_of(&object.location))
            .filter(|key| key.starts_with(prefix) && !key.starts_with("locks/"))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = self.object(key)?;
        match self.inner.run(|client| async move { client.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(remote(key, "delete", error)),
        }
    }

    fn lock(&self, lock: Lock) -> Result<LockGuard, BlobError> {
        let lock_wait = self.inner.config.lock_wait;
        let deadline = Instant::now() + lock_wait;
        let local = self.inner.local.take(lock, deadline, lock_wait)?;
        let held = match lock {
            Lock::Refs => self.take_exclusive(REFS_LOCK, lock, deadline)?,
            Lock::StoreExclusive => {
                let held = self.take_exclusive(STORE_EXCLUSIVE_LOCK, lock, deadline)?;
                // On a timeout here, `held` is dropped: the lock object is deleted.
                self.wait_for_no_shared(lock, deadline)?;
                held
            }
            Lock::StoreShared => self.take_shared(deadline)?,
        };
        // Dropped in this order: the lock object first, then the in-process lock.
        Ok(LockGuard::new(Box::new((held, local))))
    }
}

/// A lock object's content.
fn lock_record(owner: &str, lease: Duration) -> PutPayload {
    let expires_ms = now_ms().saturating_add(lease.as_millis() as u64);
    PutPayload::from(format!("{LOCK_HEADER}\n{owner}\n{expires_ms}\n").into_bytes())
}

/// When a lock record's lease ends; a record that does not parse has no lease (it is stale).
fn lease_end_ms(bytes: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    match (lines.next(), lines.next(), lines.next()) {
        (Some(LOCK_HEADER), Some(_owner), Some(expires)) => expires.parse().unwrap_or(0),
        _ => 0,
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or(0)
}

/// A name for one holder of one lock, unique between processes and machines in practice.
fn new_owner() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_nanos()).unwrap_or(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let seed = format!("{}-{}-{nanos}-{n}", host.trim(), std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..24].to_string()
}

/// A lock object read back: when its lease ends, and its ETag (for a takeover).
struct LockState {
    lease_end_ms: u64,
    e_tag: Option<String>,
}

impl LockState {
    fn live(&self) -> bool {
        self.lease_end_ms >= now_ms()
    }
}

fn pause(pause: &mut Duration) {
    std::thread::sleep(*pause);
    *pause = (*pause * 2).min(Duration::from_millis(500));
}

impl S3Blobs {
    /// The lock object at `key`, `None` if there is none.
    fn read_lock(&self, key: &str) -> Result<Option<LockState>, BlobError> {
        let path = self.full(key);
        let read = self.inner.run(|client| async move {
            let got = client.get(&path).await?;
            let e_tag = got.meta.e_tag.clone();
            Ok::<_, object_store::Error>((got.bytes().await?, e_tag))
        });
        match read {
            Ok((bytes, e_tag)) => Ok(Some(LockState { lease_end_ms: lease_end_ms(&bytes), e_tag })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(remote(key, "read lock", error)),
        }
    }

    /// Creates the lock object `key`, or takes it over once its lease ended.
    fn take_exclusive(&self, key: &str, lock: Lock, deadline: Instant) -> Result<HeldLock, BlobError> {
        let path = self.full(key);
        let owner = new_owner();
        let lease = self.inner.config.lock_lease;
        let mut wait = Duration::from_millis(10);
        loop {
            let (object, record) = (path.clone(), lock_record(&owner, lease));
            let create = PutOptions::from(PutMode::Create);
            match self.inner.run(|client| async move { client.put_opts(&object, record, create).await }) {
                Ok(put) => return self.hold(key, owner, put.e_tag),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {}
                Err(error) => return Err(remote(key, "create lock", error)),
            }
            if let Some(state) = self.read_lock(key)?
                && !state.live()
                && let Some(e_tag) = state.e_tag
            {
                // Its holder died: take it over, unless another waiter did first.
                let update = PutOptions::from(PutMode::Update(UpdateVersion { e_tag: Some(e_tag), version: None }));
                let (object, record) = (path.clone(), lock_record(&owner, lease));
                match self.inner.run(|client| async move { client.put_opts(&object, record, update).await }) {
                    Ok(put) => return self.hold(key, owner, put.e_tag),
                    Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => {}
                    Err(error) => return Err(remote(key, "take over lock", error)),
                }
            }
            if Instant::now() >= deadline {
                return Err(BlobError::LockTimeout { lock, waited_s: self.inner.config.lock_wait.as_secs() });
            }
            pause(&mut wait);
        }
    }

    /// Writes a shared marker while no live exclusive lock exists.
    fn take_shared(&self, deadline: Instant) -> Result<HeldLock, BlobError> {
        let owner = new_owner();
        let key = format!("{STORE_SHARED_LOCKS}/{owner}");
        let path = self.full(&key);
        let exclusive_held =
            || Ok::<_, BlobError>(self.read_lock(STORE_EXCLUSIVE_LOCK)?.is_some_and(|state| state.live()));
        let mut wait = Duration::from_millis(10);
        loop {
            if !exclusive_held()? {
                let record = lock_record(&owner, self.inner.config.lock_lease);
                let path = path.clone();
                self.inner
                    .run(|client| async move { client.put(&path, record).await })
                    .map_err(|error| remote(&key, "write lock", error))?;
                let held = self.hold(&key, owner.clone(), None)?;
                if !exclusive_held()? {
                    return Ok(held);
                }
                drop(held);
            }
            if Instant::now() >= deadline {
                let waited_s = self.inner.config.lock_wait.as_secs();
                return Err(BlobError::LockTimeout { lock: Lock::StoreShared, waited_s });
            }
            pause(&mut wait);
        }
    }

    /// Waits until no live shared marker remains, deleting those whose lease ended.
    fn wait_for_no_shared(&self, lock: Lock, deadline: Instant) -> Result<(), BlobError> {
        let folder = self.full(STORE_SHARED_LOCKS);
        let mut wait = Duration::from_millis(10);
        loop {
            let folder = folder.clone();
            let markers = self
                .inner
                .run(|client| async move { client.list(Some(&folder)).try_collect::<Vec<_>>().await })
                .map_err(|error| remote(STORE_SHARED_LOCKS, "list locks", error))?;
            let mut live = false;
            for marker in markers {
                let Some(key) = self.key_of(&marker.location) else { continue };
                match self.read_lock(&key)? {
                    Some(state) if state.live() => live = true,
                    Some(_) => self.inner.run(|client| async move { client.delete(&marker.location).await }).or_else(
                        |error| match error {
                            object_store::Error::NotFound { .. } => Ok(()),
                            error => Err(remote(&key, "delete stale lock", error)),
                        },
                    )?,
                    None => {}
                }
            }
            if !live {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BlobError::LockTimeout { lock, waited_s: self.inner.config.lock_wait.as_secs() });
            }
            pause(&mut wait);
        }
    }

    /// Starts renewing the lock object `key` (conditionally on its ETag when there is one).
    fn hold(&self, key: &str, owner: String, e_tag: Option<String>) -> Result<HeldLock, BlobError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let inner = Arc::clone(&self.inner);
        let path = self.full(key);
        let renew_path = path.clone();
        let renewer = std::thread::Builder::new()
            .name("grappe-s3-lease".into())
            .spawn(move || renew(&inner, &renew_path, &owner, e_tag, &stopped))
            .map_err(|source| BlobError::Io { key: key.to_string(), op: "start lease renewal", source })?;
        Ok(HeldLock { inner: Arc::clone(&self.inner), path, stop: Some(stop), renewer: Some(renewer) })
    }
}

/// Renews a lease every quarter lease until told to stop (returns true), or until the lock was
/// taken over (returns false).
fn renew(inner: &Inner, path: &Path, owner: &str, mut e_tag: Option<String>, stopped: &mpsc::Receiver<()>) -> bool {
    let lease = inner.config.lock_lease;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(lease / 4) {
        let mode = match &e_tag {
            Some(e_tag) => PutMode::Update(UpdateVersion { e_tag: Some(e_tag.clone()), version: None }),
            None => PutMode::Overwrite,
        };
        let (path, record) = (path.clone(), lock_record(owner, lease));
        match inner.run(|client| async move { client.put_opts(&path, record, PutOptions::from(mode)).await }) {
            Ok(put) if e_tag.is_some() => e_tag = put.e_tag,
            Ok(_) => {}
            // Taken over: this holder's lease had ended before it could renew it.
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => return false,
            // Retried at the next quarter, well within the lease.
            Err(_) => {}
        }
    }
    true
}

/// A lock object held: renewed by its thread, deleted on drop.
struct HeldLock {
    inner: Arc<Inner>,
    path: Path,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<bool>>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        let still_held = self.renewer.take().is_none_or(|renewer| renewer.join().unwrap_or(false));
        // A lock taken over is another holder's now. A failed delete leaves a lock that others
        // take over once its lease ends.
        if still_held {
            let path = self.path.clone();
            let _ = self.inner.run(|client| async move { client.delete(&path).await });
        }
    }
}
