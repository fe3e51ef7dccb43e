//! The `BlobStore` contract on both backends, and what only the S3 backend has: lock objects,
//! use from a blocking thread of another runtime, errors at opening.

use std::time::{Duration, Instant};

use grappe_store::{BlobError, Lock, S3Blobs, S3Config, open_blobs};

use crate::{Backend, Place};

fn blob_contract(backend: Backend) {
    let place = Place::new(&backend, "contract");
    let blobs = place.blobs(Duration::from_secs(5));
    blobs.put("packs/a.pack", b"hello world").unwrap();
    blobs.put("refs/x", b"1").unwrap();
    blobs.put("refs/x", b"22").unwrap();
    assert_eq!(blobs.get("refs/x").unwrap(), b"22", "a put replaces");
    assert_eq!(blobs.get("packs/a.pack").unwrap(), b"hello world");
    assert_eq!(blobs.get_range("packs/a.pack", 6, 5).unwrap(), b"world");
    assert_eq!(blobs.get_range("packs/a.pack", 11, 0).unwrap(), b"");
    for (offset, len) in [(6, 6), (11, 1), (100, 1)] {
        let error = blobs.get_range("packs/a.pack", offset, len).unwrap_err();
        assert!(matches!(error, BlobError::OutOfRange { size_bytes: 11, .. }), "{offset}+{len}: {error}");
    }
    let error = blobs.get("packs/b.pack").unwrap_err();
    assert!(matches!(error, BlobError::NotFound { .. }) && error.to_string().contains("packs/b.pack"), "{error}");
    assert!(matches!(blobs.get_range("packs/b.pack", 0, 1), Err(BlobError::NotFound { .. })));
    assert!(blobs.exists("refs/x").unwrap());
    assert!(!blobs.exists("refs/y").unwrap());
    let _lock = blobs.lock(Lock::Refs).unwrap();
    let mut keys = blobs.list("").unwrap();
    keys.sort();
    assert_eq!(keys, ["packs/a.pack", "refs/x"], "lock objects are not blobs");
    assert_eq!(blobs.list("packs/").unwrap(), ["packs/a.pack"]);
    assert_eq!(blobs.list("pa").unwrap(), ["packs/a.pack"]);
    assert!(blobs.list("tags/").unwrap().is_empty());
    blobs.delete("refs/x").unwrap();
    blobs.delete("refs/x").unwrap();
    assert!(!blobs.exists("refs/x").unwrap());
    for key in ["", "/abs", "a//b", "../x", "a/", "sp ace", "locks/store.lock", "é"] {
        assert!(matches!(blobs.put(key, b"x"), Err(BlobError::InvalidKey { .. })), "{key:?} accepted");
    }
}

fn exclusive_lock_waits_for_shared_and_times_out(backend: Backend) {
    let place = Place::new(&backend, "lock");
    let blobs = place.blobs(Duration::from_millis(500));
    let shared = blobs.lock(Lock::StoreShared).unwrap();
    let also_shared = place.blobs(Duration::from_millis(500)).lock(Lock::StoreShared).unwrap();
    let started = Instant::now();
    let error = blobs.lock(Lock::StoreExclusive).err().unwrap();
    assert!(matches!(error, BlobError::LockTimeout { lock: Lock::StoreExclusive, .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait: {:?}", started.elapsed());
    drop(shared);
    drop(also_shared);
    let exclusive = blobs.lock(Lock::StoreExclusive).unwrap();
    let error = place.blobs(Duration::from_millis(300)).lock(Lock::StoreShared).err().unwrap();
    assert!(matches!(error, BlobError::LockTimeout { lock: Lock::StoreShared, .. }), "{error}");
    assert!(matches!(blobs.lock(Lock::StoreExclusive), Err(BlobError::LockTimeout { .. })));
    // Refs is a lock of its own, taken under a store lock.
    let refs = blobs.lock(Lock::Refs).unwrap();
    assert!(matches!(blobs.lock(Lock::Refs), Err(BlobError::LockTimeout { lock: Lock::Refs, .. })));
    drop(refs);
    drop(exclusive);
    let _shared = blobs.lock(Lock::StoreShared).unwrap();
}

/// Threads of several "processes" (each its own blob store) increment a counter blob under the
/// `Refs` lock: no increment is lost.
fn the_lock_excludes_between_stores(backend: Backend) {
    let place = Place::new(&backend, "lock-count");
    place.blobs(Duration::from_secs(1)).put("refs/count", b"0").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let blobs = place.blobs(Duration::from_secs(60));
            scope.spawn(move || {
                for _ in 0..5 {
                    let _lock = blobs.lock(Lock::Refs).unwrap();
                    let count: u64 = String::from_utf8(blobs.get("refs/count").unwrap()).unwrap().parse().unwrap();
                    blobs.put("refs/count", (count + 1).to_string().as_bytes()).unwrap();
                }
            });
        }
    });
    assert_eq!(place.blobs(Duration::from_secs(1)).get("refs/count").unwrap(), b"20");
}

crate::on_each_backend!(blob_contract, exclusive_lock_waits_for_shared_and_times_out, the_lock_excludes_between_stores);

#[test]
fn s3_works_from_a_blocking_thread_of_another_runtime_and_from_async_code() {
    let Some(backend) = Backend::s3() else { return };
    let place = Place::new(&backend, "spawn-blocking");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let spec = place.spec.clone();
    let blobs = runtime
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let blobs = open_blobs(&spec).unwrap();
                blobs.put("refs/a", b"from spawn_blocking").unwrap();
                let lock = blobs.lock(Lock::StoreExclusive).unwrap();
                assert_eq!(blobs.get("refs/a").unwrap(), b"from spawn_blocking");
                drop(lock);
                blobs
            })
            .await
        })
        .unwrap();
    // Called straight from async code (the CLI's main task), it blocks that thread, no panic;
    // dropped there, its runtime shuts down without blocking.
    runtime.block_on(async move {
        assert_eq!(blobs.get("refs/a").unwrap(), b"from spawn_blocking");
        let lock = blobs.lock(Lock::Refs).unwrap();
        drop(lock);
        drop(blobs)
    });
}

#[test]
fn s3_lock_of_a_dead_holder_is_taken_over_and_a_live_one_is_not() {
    let Some(backend) = Backend::s3() else { return };
    let place = Place::new(&backend, "stale-lock");
    // A holder that died without deleting its lock: the object stays, its lease long ended.
    std::fs::create_dir_all(place.root.join("locks/store-shared")).unwrap();
    std::fs::write(place.root.join("locks/refs"), "grappe-lock 1\ndead-owner\n1000\n").unwrap();
    std::fs::write(place.root.join("locks/store-shared/dead-reader"), "grappe-lock 1\ndead-reader\n1000\n").unwrap();
    let blobs = place.blobs(Duration::from_secs(5));
    let started = Instant::now();
    let refs = blobs.lock(Lock::Refs).unwrap();
    let exclusive = blobs.lock(Lock::StoreExclusive).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(!place.root.join("locks/store-shared/dead-reader").exists(), "a stale reader's marker is removed");
    drop((refs, exclusive));
    assert!(!place.root.join("locks/refs").exists(), "released on drop");
    // A lock whose lease runs is respected.
    let far_ms =
        (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 600_000).to_string();
    std::fs::write(place.root.join("locks/refs"), format!("grappe-lock 1\nalive\n{far_ms}\n")).unwrap();
    let error = place.blobs(Duration::from_millis(300)).lock(Lock::Refs).err().unwrap();
    assert!(error.to_string().contains("not obtained within"), "{error}");
}

#[test]
fn s3_lease_is_renewed_while_held() {
    let Some(backend) = Backend::s3() else { return };
    let place = Place::new(&backend, "lease");
    let config = S3Config { lock_lease: Duration::from_millis(800), ..S3Config::parse(&place.spec).unwrap() };
    let holder = S3Blobs::open(config.clone()).unwrap();
    let lock = grappe_store::BlobStore::lock(&holder, Lock::Refs).unwrap();
    // Three leases later the lock is still held: its holder renewed it.
    std::thread::sleep(Duration::from_millis(2400));
    let waiter = S3Blobs::open(S3Config { lock_wait: Duration::from_millis(200), ..config }).unwrap();
    assert!(grappe_store::BlobStore::lock(&waiter, Lock::Refs).is_err(), "a renewed lock is not taken over");
    drop(lock);
    assert!(grappe_store::BlobStore::lock(&waiter, Lock::Refs).is_ok());
}

#[test]
fn s3_errors_at_opening_say_what_is_wrong() {
    let Some(backend) = Backend::s3() else { return };
    let place = Place::new(&backend, "errors");
    let (_, query) = place.spec.split_once('?').unwrap();
    let open = |spec: &str| open_blobs(spec).err().map(|error| error.to_string()).unwrap_or_default();
    // Wrong credentials: checked in a child with another secret (the environment is the
    // process's).
    if std::env::var("GRAPPE_STORE_WRONG_KEY_CHILD").is_ok() {
        println!("CHILD SAYS: {}", open(&place.spec));
        return;
    }
    let text = open(&format!("s3://no-such-bucket-here/x?{query}"));
    assert!(text.contains("bucket no-such-bucket-here does not exist"), "{text}");
    let text = open("s3://grappe-test/x?endpoint=http://127.0.0.1:9");
    assert!(text.contains("endpoint unreachable"), "{text}");
    for (bad, says) in [
        ("s3://B/x", "not a bucket name"),
        ("s3://bucket/../x?endpoint=http://h", "prefix"),
        ("s3://bucket/x?endpoint=ftp://h", "must start with http"),
        ("s3://bucket/x?color=blue", "unknown setting"),
        ("gs://bucket/x", "a folder or s3://"),
    ] {
        let text = open(bad);
        assert!(text.contains(says), "{bad}: {text}");
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "blobs::s3_errors_at_opening_say_what_is_wrong", "--nocapture", "--test-threads=1"])
        .env("GRAPPE_STORE_WRONG_KEY_CHILD", "1")
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("CHILD SAYS: cannot open the store") && stdout.contains("access refused"), "{stdout}");
}
