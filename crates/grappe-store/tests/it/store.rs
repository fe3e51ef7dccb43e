//! Round trips, deduplication, refs, diff, refused input, gc, concurrent writers.

use std::collections::BTreeSet;

use grappe_store::testing::{Rng, TempDir};
use grappe_store::{
    ChunkRef, CommitCheck, DatasetPath, Digest, FileEntry, Limits, Manifest, ManifestError, MediaType, Splits,
    StoreError, Version,
};

use crate::{Backend, TestStore, du, name, random_files, read_tree, write_files};

fn many_files_round_trip(backend: Backend) {
    let test = TestStore::on(&backend, "round-trip");
    let source = TempDir::new("round-trip-src");
    let mut rng = Rng::new(1);
    let mut files = random_files(&mut rng, 60, 600_000);
    files.push(("empty.txt".into(), Vec::new()));
    files.push(("données/été 2024.csv".into(), b"a,b\n1,2\n".to_vec()));
    files.push((".hidden".into(), b"dot files are data too".to_vec()));
    write_files(source.path(), &files);
    let (committed, stats) =
        test.store.push_dir(source.path(), &name("sample"), "# Sample".into(), Splits::new()).unwrap();
    assert!(committed.version_created && committed.ref_updated);
    assert_eq!(stats.files, files.len() as u64);
    assert!(stats.packs_written > 1, "small packs: {stats:?}");

    let target = TempDir::new("round-trip-out");
    let out = target.path().join("copy");
    test.store.materialize(&committed.id, &out).unwrap();
    let mut expected = files.clone();
    expected.sort();
    assert_eq!(read_tree(&out), expected);

    // A second Store on the same folder (another process) reads the same bytes.
    let other = test.reopen();
    let mut bytes = Vec::new();
    let path = DatasetPath::parse("données/été 2024.csv").unwrap();
    other.read_file(&committed.id, &path, &mut bytes).unwrap();
    assert_eq!(bytes, b"a,b\n1,2\n");
    let version = other.version(&committed.id).unwrap();
    assert_eq!(version.card(), "# Sample");
    assert_eq!(version.manifest().file(&path).unwrap().media_type.as_str(), "text/csv");
    assert!(other.verify().unwrap().is_clean());
}

#[test]
fn ingest_is_deterministic() {
    let test = TestStore::new("deterministic");
    let source = TempDir::new("deterministic-src");
    write_files(source.path(), &random_files(&mut Rng::new(2), 20, 300_000));
    let first = test.store.ingest_dir(source.path()).unwrap();
    let again = test.reopen().ingest_dir(source.path()).unwrap();
    assert_eq!(first.manifest, again.manifest);
    assert_eq!(again.stats.new_chunks, 0);
    assert_eq!(again.stats.packs_written, 0);
}

fn second_version_stores_only_what_changed(backend: Backend) {
    let test = TestStore::on(&backend, "dedup");
    let source = TempDir::new("dedup-src");
    let mut rng = Rng::new(3);
    let mut files: Vec<(String, Vec<u8>)> = (0..8).map(|i| (format!("f{i}.bin"), rng.bytes(2 << 20))).collect();
    write_files(source.path(), &files);
    let (v1, first) = test.store.push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap();
    let stored_after_v1 = du(&test.root());
    // One byte inserted in the middle of one file, one file added.
    files[3].1.insert(1 << 20, b'!');
    files.push(("new.txt".into(), b"hello".to_vec()));
    write_files(source.path(), &files);
    let (v2, second) = test.store.push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap();
    assert_ne!(v1.id, v2.id);
    assert!(second.new_chunk_bytes < first.new_chunk_bytes / 20, "v1 {first:?} v2 {second:?}");
    let growth = du(&test.root()) - stored_after_v1;
    assert!(growth < stored_after_v1 / 20, "grew by {growth} after {stored_after_v1}");
    assert_eq!(test.store.history(&name("d")).unwrap(), vec![v1.id, v2.id]);
    let diff = test.store.diff(&v1.id, &v2.id).unwrap();
    assert_eq!(diff.added, vec![DatasetPath::parse("new.txt").unwrap()]);
    assert_eq!(diff.changed, vec![DatasetPath::parse("f3.bin").unwrap()]);
    assert!(diff.removed.is_empty());
}

fn pushing_the_same_version_twice_is_a_no_op(backend: Backend) {
    let test = TestStore::on(&backend, "twice");
    let source = TempDir::new("twice-src");
    write_files(source.path(), &random_files(&mut Rng::new(4), 10, 200_000));
    let (first, _) = test.store.push_dir(source.path(), &name("d"), "card".into(), Splits::new()).unwrap();
    let before = read_tree(&test.root());
    let (second, stats) = test.store.push_dir(source.path(), &name("d"), "card".into(), Splits::new()).unwrap();
    assert_eq!(second.id, first.id);
    assert!(!second.version_created && !second.ref_updated);
    assert_eq!((stats.new_chunks, stats.packs_written), (0, 0));
    assert_eq!(read_tree(&test.root()), before, "nothing in the store changed");
    assert_eq!(test.store.history(&name("d")).unwrap(), vec![first.id]);
}

#[test]
fn an_empty_dataset_is_refused() {
    let test = TestStore::new("empty");
    let source = TempDir::new("empty-src");
    std::fs::create_dir_all(source.path().join("only/folders")).unwrap();
    let error = test.store.push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap_err();
    assert!(matches!(error, StoreError::Manifest(ManifestError::Empty)), "{error}");
    assert_eq!(error.to_string(), "a dataset version must contain at least one file");
    assert!(test.store.names().unwrap().is_empty());
}

#[test]
fn symlinks_and_non_utf8_names_are_refused() {
    let test = TestStore::new("symlink");
    let source = TempDir::new("symlink-src");
    write_files(source.path(), &[("a.txt".into(), b"a".to_vec())]);
    std::os::unix::fs::symlink("/etc/passwd", source.path().join("passwd")).unwrap();
    let error = test.store.ingest_dir(source.path()).unwrap_err();
    assert!(matches!(error, StoreError::NotARegularFile { .. }), "{error}");
    assert!(error.to_string().contains("passwd"), "{error}");

    let source = TempDir::new("non-utf8-src");
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(source.path().join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")), b"x").unwrap();
    let error = test.store.ingest_dir(source.path()).unwrap_err();
    assert!(matches!(error, StoreError::NonUtf8Name { .. }), "{error}");
}

fn entry(path: &str, content: &[u8]) -> Result<FileEntry, ManifestError> {
    let path = DatasetPath::parse(path)?;
    Ok(FileEntry {
        media_type: MediaType::guess(&path),
        path,
        size_bytes: content.len() as u64,
        digest: Digest::of(content),
        chunks: vec![ChunkRef { digest: Digest::of(content), len_bytes: content.len() as u32 }],
    })
}

#[test]
fn manifests_from_outside_with_bad_paths_are_refused() {
    for bad in ["../../etc/passwd", "/etc/passwd", "a/../../b", "a\0b", "C:\\x"] {
        assert!(matches!(entry(bad, b"x"), Err(ManifestError::Path { .. })), "{bad:?}");
    }
    let limits = Limits::DEFAULT;
    let duplicate = Manifest::new(vec![entry("a", b"1").unwrap(), entry("a", b"2").unwrap()], &limits);
    assert!(matches!(duplicate, Err(ManifestError::DuplicatePath { .. })));

    // A canonical-looking encoding with a traversal path does not parse either.
    let good = Version::new(
        Manifest::new(vec![entry("ok.txt", b"1").unwrap()], &limits).unwrap(),
        String::new(),
        Splits::new(),
        &limits,
    )
    .unwrap();
    let text = String::from_utf8(good.encode()).unwrap();
    for evil in ["../ok.txt", "/ok.txt", "ok.txt/../../x"] {
        let crafted = text.replace(" ok.txt\n", &format!(" {evil}\n"));
        let error = Version::parse(crafted.as_bytes(), &limits).unwrap_err();
        assert!(matches!(error, ManifestError::Path { .. }), "{evil}: {error}");
    }
    let not_utf8 = [&text.as_bytes()[..20], b"\xff", &text.as_bytes()[21..]].concat();
    assert!(Version::parse(&not_utf8, &limits).is_err());
}

fn a_manifest_that_lies_is_refused_at_commit(backend: Backend) {
    let test = TestStore::on(&backend, "lying");
    let chunk = b"the real bytes".to_vec();
    test.store.put_chunks(&[(Digest::of(&chunk), &chunk)]).unwrap();
    let limits = Limits::DEFAULT;
    let mut lying = entry("x.txt", &chunk).unwrap();
    lying.digest = Digest::of(b"something else");
    let version =
        Version::new(Manifest::new(vec![lying], &limits).unwrap(), String::new(), Splits::new(), &limits).unwrap();
    let error = test.store.commit_version(&version, &name("d"), CommitCheck::WholeFiles).unwrap_err();
    assert!(matches!(error, StoreError::FileDigestMismatch { .. }), "{error}");
    let missing = entry("y.txt", b"never sent").unwrap();
    let version =
        Version::new(Manifest::new(vec![missing], &limits).unwrap(), String::new(), Splits::new(), &limits).unwrap();
    let error = test.store.commit_version(&version, &name("d"), CommitCheck::ChunksPresent).unwrap_err();
    assert!(matches!(error, StoreError::MissingChunk { .. }), "{error}");
    assert!(test.store.names().unwrap().is_empty());
    assert!(test.store.versions().unwrap().is_empty());
}

fn put_chunks_checks_what_it_is_sent(backend: Backend) {
    let test = TestStore::on(&backend, "put-chunks");
    let a = b"chunk a".to_vec();
    let b = b"chunk b".to_vec();
    let missing = test.store.has_chunks(&[Digest::of(&a), Digest::of(&b), Digest::of(&a)]).unwrap();
    assert_eq!(missing, vec![Digest::of(&a), Digest::of(&b)]);
    let error = test.store.put_chunks(&[(Digest::of(&a), &a), (Digest::of(&a), &b)]).unwrap_err();
    assert!(matches!(error, StoreError::ChunkDigestMismatch { .. }), "{error}");
    assert_eq!(test.store.has_chunks(&[Digest::of(&a)]).unwrap().len(), 1, "nothing written on refusal");
    let big = vec![7u8; (256 << 10) + 1];
    let error = test.store.put_chunks(&[(Digest::of(&big), &big)]).unwrap_err();
    assert!(matches!(error, StoreError::ChunkTooLarge { .. }), "{error}");
    let stats = test.store.put_chunks(&[(Digest::of(&a), &a), (Digest::of(&b), &b), (Digest::of(&a), &a)]).unwrap();
    assert_eq!((stats.chunks, stats.new_chunks, stats.packs_written), (3, 2, 1));
    assert!(test.reopen().has_chunks(&[Digest::of(&a), Digest::of(&b)]).unwrap().is_empty());
}

fn splits_tags_and_references(backend: Backend) {
    let test = TestStore::on(&backend, "refs");
    let source = TempDir::new("refs-src");
    write_files(source.path(), &[("train.csv".into(), b"id\n1\n".to_vec()), ("test.csv".into(), b"id\n2\n".to_vec())]);
    let mut splits = Splits::new();
    splits.insert(name("train"), BTreeSet::from([DatasetPath::parse("train.csv").unwrap()]));
    splits.insert(name("test"), BTreeSet::from([DatasetPath::parse("test.csv").unwrap()]));
    let (v1, _) = test.store.push_dir(source.path(), &name("cities"), "v1".into(), splits.clone()).unwrap();
    let (v2, _) = test.store.push_dir(source.path(), &name("cities"), "v2".into(), splits.clone()).unwrap();
    assert_ne!(v1.id, v2.id, "the card is part of the version");
    test.store.tag(&name("cities"), &name("first"), &v1.id).unwrap();
    test.store.tag(&name("cities"), &name("first"), &v1.id).unwrap();
    let error = test.store.tag(&name("cities"), &name("first"), &v2.id).unwrap_err();
    assert!(matches!(error, StoreError::TagExists { .. }), "{error}");
    assert_eq!(test.store.resolve("cities").unwrap(), v2.id);
    assert_eq!(test.store.resolve("cities@first").unwrap(), v1.id);
    assert_eq!(test.store.resolve(&format!("cities@{}", &v1.id.to_string()[..12])).unwrap(), v1.id);
    assert!(matches!(test.store.resolve("cities@nope"), Err(StoreError::UnknownReference { .. })));
    assert!(matches!(test.store.resolve("towns"), Err(StoreError::NameNotFound { .. })));
    assert_eq!(test.store.version(&v2.id).unwrap().splits(), &splits);
    assert_eq!(test.store.tags(&name("cities")).unwrap(), vec![(name("first"), v1.id)]);
}

fn gc_keeps_what_versions_use_and_removes_the_rest(backend: Backend) {
    // Rewrite every pack with any garbage, so that gc removes exactly what is unused.
    let config = grappe_store::StoreConfig { gc_rewrite_below_live_percent: 100, ..crate::small_config() };
    let test = TestStore::with_config(&backend, "gc", config);
    let source = TempDir::new("gc-src");
    let mut rng = Rng::new(5);
    let shared: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("shared{i}.bin"), rng.bytes(1 << 20))).collect();
    let only_v1: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("v1-{i}.bin"), rng.bytes(1 << 20))).collect();
    write_files(source.path(), &[shared.clone(), only_v1.clone()].concat());
    let (v1, _) = test.store.push_dir(source.path(), &name("a"), String::new(), Splits::new()).unwrap();
    for (path, _) in &only_v1 {
        std::fs::remove_file(source.path().join(path)).unwrap();
    }
    let (v2, _) = test.store.push_dir(source.path(), &name("b"), String::new(), Splits::new()).unwrap();
    // Chunks pushed for a version that never came.
    let orphan = rng.bytes(100_000);
    test.store.put_chunks(&[(Digest::of(&orphan), &orphan)]).unwrap();

    let report = test.store.gc().unwrap();
    assert_eq!(report.chunks_removed, 1, "{report:?}");
    assert!(test.store.has_chunks(&[Digest::of(&orphan)]).unwrap().len() == 1);
    let before = du(&test.root());
    test.store.drop_version(&v1.id).unwrap();
    assert!(matches!(test.store.resolve("a"), Err(StoreError::NameNotFound { .. })));
    let report = test.store.gc().unwrap();
    assert!(report.packs_deleted + report.packs_rewritten > 0, "{report:?}");
    let after = du(&test.root());
    assert!(after < before * 6 / 10, "{before} -> {after}: {report:?}");
    let out = TempDir::new("gc-out");
    test.store.materialize(&v2.id, &out.path().join("b")).unwrap();
    let mut expected = shared.clone();
    expected.sort();
    assert_eq!(read_tree(&out.path().join("b")), expected);
    let verify = test.store.verify().unwrap();
    assert!(verify.is_clean() && verify.unused_chunks == 0, "{verify:?}");
    assert_eq!(test.store.gc().unwrap().chunks_removed, 0, "a second gc finds nothing");
}

fn gc_rewrites_mostly_garbage_packs(backend: Backend) {
    // One big pack holding a used small file and unused big ones.
    let config = grappe_store::StoreConfig { pack_target_bytes: 64 << 20, ..crate::small_config() };
    let test = TestStore::with_config(&backend, "gc-rewrite", config);
    let source = TempDir::new("gc-rewrite-src");
    let mut rng = Rng::new(6);
    write_files(source.path(), &[("keep.bin".into(), rng.bytes(100_000)), ("drop.bin".into(), rng.bytes(3 << 20))]);
    let (v1, _) = test.store.push_dir(source.path(), &name("a"), String::new(), Splits::new()).unwrap();
    std::fs::remove_file(source.path().join("drop.bin")).unwrap();
    let (v2, _) = test.store.push_dir(source.path(), &name("a"), String::new(), Splits::new()).unwrap();
    test.store.drop_version(&v1.id).unwrap();
    let report = test.store.gc().unwrap();
    assert_eq!((report.packs_rewritten, report.packs_written), (1, 1), "{report:?}");
    assert!(du(&test.root()) < 1 << 20);
    let mut bytes = Vec::new();
    test.reopen().read_file(&v2.id, &DatasetPath::parse("keep.bin").unwrap(), &mut bytes).unwrap();
    assert_eq!(bytes.len(), 100_000);
    assert!(test.store.verify().unwrap().is_clean());
}

fn concurrent_writers_and_gc_do_not_corrupt_the_store(backend: Backend) {
    let test = TestStore::on(&backend, "concurrent");
    let sources: Vec<TempDir> = (0..4).map(|i| TempDir::new(&format!("concurrent-src-{i}"))).collect();
    for (i, source) in sources.iter().enumerate() {
        let mut rng = Rng::new(100 + i as u64 % 2); // two pairs of identical sources: shared chunks
        write_files(source.path(), &random_files(&mut rng, 12, 400_000));
    }
    let committed: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .enumerate()
            .map(|(i, source)| {
                let spec = test.spec();
                scope.spawn(move || {
                    // Each writer opens its own Store, as separate processes would.
                    let store = crate::open_store(spec, crate::small_config());
                    let (committed, _) = store
                        .push_dir(source.path(), &name(&format!("d{}", i % 2)), String::new(), Splits::new())
                        .unwrap();
                    store.gc().unwrap();
                    committed.id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let store = test.reopen();
    let report = store.verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    for (i, id) in committed.iter().enumerate() {
        let out = TempDir::new("concurrent-out");
        store.materialize(id, &out.path().join("x")).unwrap();
        assert_eq!(read_tree(&out.path().join("x")), read_tree(sources[i].path()));
    }
    assert_eq!(store.history(&name("d0")).unwrap().len(), 1, "same content twice: one version");
}

#[test]
fn materialize_refuses_a_non_empty_target() {
    let test = TestStore::new("target");
    let source = TempDir::new("target-src");
    write_files(source.path(), &[("a".into(), b"1".to_vec())]);
    let (v, _) = test.store.push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap();
    let error = test.store.materialize(&v.id, source.path()).unwrap_err();
    assert!(matches!(error, StoreError::TargetNotEmpty { .. }), "{error}");
    assert_eq!(std::fs::read(source.path().join("a")).unwrap(), b"1");
    // An existing empty folder is fine.
    let out = TempDir::new("target-out");
    test.store.materialize(&v.id, out.path()).unwrap();
    assert_eq!(read_tree(out.path()), vec![("a".to_string(), b"1".to_vec())]);
}

/// Many random data sets and random edits (insertions, deletions, overwrites): every version
/// reads back exactly, the store verifies, and each edited file costs at most a few chunks.
#[test]
fn random_versions_round_trip_and_share_chunks() {
    let test = TestStore::new("property");
    let mut rng = Rng::new(77);
    for round in 0..12 {
        let source = TempDir::new("property-src");
        let count = 1 + rng.below(8) as usize;
        let mut files = random_files(&mut rng, count, 700_000);
        write_files(source.path(), &files);
        let dataset = name(&format!("p{round}"));
        let (v1, _) = test.store.push_dir(source.path(), &dataset, String::new(), Splits::new()).unwrap();
        let original = files.clone();
        let mut edited_files = 0u64;
        for (_, content) in files.iter_mut() {
            if content.is_empty() || rng.below(2) == 0 {
                continue;
            }
            edited_files += 1;
            let at = rng.below(content.len() as u64) as usize;
            match rng.below(3) {
                0 => {
                    let len = 1 + rng.below(5000) as usize;
                    let insert = rng.bytes(len);
                    content.splice(at..at, insert);
                }
                1 => {
                    let end = (at + 1 + rng.below(5000) as usize).min(content.len());
                    content.drain(at..end);
                }
                _ => content[at] ^= 0xff,
            }
        }
        write_files(source.path(), &files);
        let (v2, stats) = test.store.push_dir(source.path(), &dataset, String::new(), Splits::new()).unwrap();
        // An edit touches the chunk it lands in and may move the next cut or two.
        assert!(stats.new_chunks <= edited_files * 3, "round {round}: {stats:?} for {edited_files} edited files");
        for (id, contents) in [(v1.id, &original), (v2.id, &files)] {
            let out = TempDir::new("property-out");
            test.store.materialize(&id, &out.path().join("x")).unwrap();
            let mut expected = contents.clone();
            expected.sort();
            assert!(read_tree(&out.path().join("x")) == expected, "round {round}: {id} differs");
        }
    }
    assert!(test.store.verify().unwrap().is_clean());
}

crate::on_each_backend!(
    many_files_round_trip,
    second_version_stores_only_what_changed,
    pushing_the_same_version_twice_is_a_no_op,
    a_manifest_that_lies_is_refused_at_commit,
    put_chunks_checks_what_it_is_sent,
    splits_tags_and_references,
    gc_keeps_what_versions_use_and_removes_the_rest,
    gc_rewrites_mostly_garbage_packs,
    concurrent_writers_and_gc_do_not_corrupt_the_store,
);
