//! `FileReader`: a stored file read and sought anywhere, as Parquet's reader does.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use grappe_store::testing::{Rng, TempDir};
use grappe_store::{FileReader, Splits};

use crate::{Backend, name, open_store, small_config, write_files};

fn reads_and_seeks_match_the_file_everywhere(backend: Backend) {
    let dir = TempDir::new("reader");
    // A second `Store` on the test's place (kept until the end), shared as the server shares it.
    let test = crate::TestStore::on(&backend, "reader");
    let store = Arc::new(open_store(test.spec(), small_config()));
    // Larger than a read window (8 MiB), so that reads and seeks cross windows.
    let content = Rng::new(7).bytes(20_000_000);
    let source = dir.path().join("source");
    write_files(&source, &[("data.bin".to_owned(), content.clone()), ("empty".to_owned(), Vec::new())]);
    let (committed, _) = store.push_dir(&source, &name("reader"), String::new(), Splits::new()).unwrap();
    let version = store.version(&committed.id).unwrap();
    let [data, empty] = version.manifest().files() else { panic!("two files") };
    assert!(data.chunks.len() > 100, "many chunks: {}", data.chunks.len());

    let mut whole = Vec::new();
    FileReader::new(store.clone(), data.clone()).read_to_end(&mut whole).unwrap();
    assert_eq!(whole, content);
    let mut reader = FileReader::new(store.clone(), data.clone());
    let mut rng = Rng::new(8);
    for _ in 0..40 {
        let at = rng.below(content.len() as u64 + 10);
        let mut buffer = vec![0u8; rng.below(300_000) as usize + 1];
        assert_eq!(reader.seek(SeekFrom::Start(at)).unwrap(), at);
        let read = reader.read(&mut buffer).unwrap();
        let expected = &content[(at as usize).min(content.len())..];
        assert!(read > 0 || expected.is_empty());
        assert_eq!(&buffer[..read], &expected[..read]);
    }
    assert_eq!(reader.seek(SeekFrom::End(-10)).unwrap(), content.len() as u64 - 10);
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, content[content.len() - 10..]);
    assert!(reader.seek(SeekFrom::Current(-(content.len() as i64) - 1)).is_err());
    let mut nothing = Vec::new();
    FileReader::new(store, empty.clone()).read_to_end(&mut nothing).unwrap();
    assert!(nothing.is_empty());
}

crate::on_each_backend!(reads_and_seeks_match_the_file_everywhere);
