//! Damaged packs, indexes, versions and refs: `verify` names them; reads fail, never return
//! wrong bytes.

use grappe_store::testing::{Rng, TempDir};
use grappe_store::{Damage, DatasetPath, Splits, StoreError, VersionId};

use crate::{Backend, TestStore, name, write_files};

/// A store with one version of a few files; returns it, the version and the packs' paths (files
/// on both backends: the S3 test server keeps objects as files).
fn stored(backend: &Backend, label: &str) -> (TestStore, VersionId, Vec<std::path::PathBuf>) {
    let test = TestStore::on(backend, label);
    let source = TempDir::new(&format!("{label}-src"));
    let mut rng = Rng::new(9);
    // Random (stored raw) and text (stored compressed) files.
    let text: Vec<u8> = b"une ligne de texte qui se repete\n".iter().copied().cycle().take(900_000).collect();
    write_files(source.path(), &[("random.bin".into(), rng.bytes(2_500_000)), ("text.txt".into(), text)]);
    let (committed, _) = test.store.push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap();
    let mut packs: Vec<_> =
        std::fs::read_dir(test.root().join("packs")).unwrap().map(|entry| entry.unwrap().path()).collect();
    packs.sort();
    (test, committed.id, packs)
}

fn flip_byte(path: &std::path::Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn read_all(test: &TestStore, id: &VersionId) -> Vec<Result<Vec<u8>, StoreError>> {
    let version = test.store.version(id).unwrap();
    version
        .manifest()
        .files()
        .iter()
        .map(|file| {
            let mut bytes = Vec::new();
            test.reopen().read_file(id, &file.path, &mut bytes).map(|_| bytes)
        })
        .collect()
}

fn a_flipped_byte_anywhere_in_a_pack_is_named_and_never_read_as_data(backend: Backend) {
    let (test, id, packs) = stored(&backend, "flip");
    assert!(packs.len() >= 2);
    let mut rng = Rng::new(10);
    for round in 0..12 {
        let pack = &packs[rng.below(packs.len() as u64) as usize];
        let len = std::fs::metadata(pack).unwrap().len() as usize;
        let offset = rng.below(len as u64) as usize;
        flip_byte(pack, offset);
        let report = test.store.verify().unwrap();
        assert!(!report.is_clean(), "round {round}: flip at {offset} of {} not found", pack.display());
        let pack_name = pack.file_name().unwrap().to_string_lossy().into_owned();
        let named = report.damage.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(named.contains(&pack_name), "round {round}: {named}");
        // The damaged chunk's entry contains the offset.
        if offset >= 8 {
            let entry_named = report.damage.iter().any(|damage| match damage {
                Damage::Chunk { offset: start, .. } => *start as usize <= offset,
                _ => false,
            });
            assert!(entry_named, "round {round}: {named}");
        }
        // Reads of the affected file fail (a flip in the pack's magic touches no chunk); reads
        // of others still return the right bytes.
        let results = read_all(&test, &id);
        if offset >= 8 {
            assert!(results.iter().any(|r| matches!(r, Err(StoreError::DamagedChunk { .. }))), "round {round}");
        }
        for result in results.iter().flatten() {
            assert!(result.len() == 2_500_000 || result.len() == 900_000);
        }
        let out = TempDir::new("flip-out");
        let pulled = test.store.materialize(&id, &out.path().join("x"));
        assert_eq!(pulled.is_err(), offset >= 8, "round {round}");
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        if pulled.is_err() {
            assert!(left.is_empty(), "a failed pull leaves nothing, not even a partial folder: {left:?}");
        }
        flip_byte(pack, offset);
        assert!(test.store.verify().unwrap().is_clean(), "round {round}: repaired");
    }
}

fn damage_message_names_pack_and_offset(backend: Backend) {
    let (test, id, packs) = stored(&backend, "message");
    flip_byte(&packs[0], 100);
    let results = read_all(&test, &id);
    let error = results.into_iter().find_map(Result::err).unwrap();
    let text = error.to_string();
    let pack_id = packs[0].file_stem().unwrap().to_string_lossy().into_owned();
    assert!(text.contains(&pack_id) && text.contains("at offset 8"), "{text}");
}

fn a_truncated_pack_is_named(backend: Backend) {
    let (test, id, packs) = stored(&backend, "truncated");
    let pack = &packs[0];
    let len = std::fs::metadata(pack).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(pack).unwrap().set_len(len / 2).unwrap();
    let report = test.store.verify().unwrap();
    let named = report.damage.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(named.contains("truncated"), "{named}");
    assert!(report.damage.iter().any(|d| matches!(d, Damage::File { .. } | Damage::MissingChunk { .. })), "{named}");
    let results = read_all(&test, &id);
    let error = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(error.to_string().contains("truncated"), "{error}");
}

fn a_missing_pack_and_a_damaged_index_version_and_ref_are_named(backend: Backend) {
    let (test, id, packs) = stored(&backend, "missing");
    std::fs::remove_file(&packs[0]).unwrap();
    let index = test.root().join("index").join(format!("{}.idx", packs[1].file_stem().unwrap().to_string_lossy()));
    flip_byte(&index, 30);
    let version = test.root().join("versions").join(format!("{id}.version"));
    let mut text = std::fs::read(&version).unwrap();
    text.push(b'\n');
    std::fs::write(&version, text).unwrap();
    std::fs::write(test.root().join("refs").join("d"), "grappe-ref 1\nnot a digest\n").unwrap();
    let report = test.store.verify().unwrap();
    let named = report.damage.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(report.damage.iter().any(|d| matches!(d, Damage::Pack { .. })), "{named}");
    assert!(report.damage.iter().any(|d| matches!(d, Damage::Index { .. })), "{named}");
    assert!(report.damage.iter().any(|d| matches!(d, Damage::Version { .. })), "{named}");
    assert!(report.damage.iter().any(|d| matches!(d, Damage::Ref { .. })), "{named}");
    let mut bytes = Vec::new();
    let error = test.store.read_file(&id, &DatasetPath::parse("text.txt").unwrap(), &mut bytes).unwrap_err();
    assert!(matches!(error, StoreError::DamagedVersion { .. }), "{error}");
    // gc refuses to run on a store whose versions it cannot read: it would delete their chunks.
    assert!(test.store.gc().is_err());
}

crate::on_each_backend!(
    a_flipped_byte_anywhere_in_a_pack_is_named_and_never_read_as_data,
    damage_message_names_pack_and_offset,
    a_truncated_pack_is_named,
    a_missing_pack_and_a_damaged_index_version_and_ref_are_named,
);
