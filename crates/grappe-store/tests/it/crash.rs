//! Crashes: leftovers of interrupted writes, and a push killed with SIGKILL in another process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use grappe_store::testing::{Rng, TempDir};
use grappe_store::{Digest, Splits};

use crate::{Backend, TestStore, du, name, random_files, read_tree, write_files};

#[test]
fn leftovers_of_interrupted_writes_are_accepted_then_collected() {
    let test = TestStore::new("leftovers");
    let source = TempDir::new("leftovers-src");
    write_files(source.path(), &random_files(&mut Rng::new(20), 10, 300_000));
    let (v1, _) = test.store.push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap();
    // A put interrupted before its rename, a pack whose index was never written, and chunks
    // pushed for a version that never came.
    std::fs::write(test.root().join("tmp").join("123-456-0.tmp"), b"half a pack").unwrap();
    let mut pack_without_index = grappe_store::pack::PackBuilder::new();
    pack_without_index.push(&grappe_store::pack::SealedChunk::seal(b"lost", grappe_store::Compression::default()));
    let finished = pack_without_index.finish();
    std::fs::write(test.root().join("packs").join(format!("{}.pack", finished.id)), &finished.bytes).unwrap();
    let orphan = Rng::new(21).bytes(50_000);
    test.store.put_chunks(&[(Digest::of(&orphan), &orphan)]).unwrap();

    let report = test.reopen().verify().unwrap();
    assert!(report.is_clean(), "{:?}", report.damage);
    assert_eq!((report.packs_without_index, report.unused_chunks), (1, 1));

    // The next push works, and gc removes the leftovers.
    write_files(source.path(), &[("more.txt".into(), b"more".to_vec())]);
    let (v2, _) = test.reopen().push_dir(source.path(), &name("d"), String::new(), Splits::new()).unwrap();
    let gc = test.store.gc().unwrap();
    assert_eq!(gc.temporaries_removed, 1, "{gc:?}");
    assert!(gc.packs_deleted >= 2, "{gc:?}");
    let report = test.store.verify().unwrap();
    assert!(report.is_clean() && report.packs_without_index == 0 && report.unused_chunks == 0, "{report:?}");
    assert_eq!(test.store.history(&name("d")).unwrap(), vec![v1.id, v2.id]);
}

/// Not a test on its own: the child process that `a_push_killed_with_sigkill_resumes` starts
/// and kills. Does nothing unless `GRAPPE_STORE_CRASH_CHILD` names the store and the source.
#[test]
fn crash_child_push() {
    let Ok(spec) = std::env::var("GRAPPE_STORE_CRASH_CHILD") else { return };
    let (store, source) = spec.split_once('\n').unwrap();
    let store = crate::open_store(store, crate::small_config());
    store.push_dir(std::path::Path::new(source), &name("big"), String::new(), Splits::new()).unwrap();
    // Reaching here means the parent was too slow to kill: say so, it checks.
    println!("CHILD FINISHED");
}

fn a_push_killed_with_sigkill_resumes_and_verifies(backend: Backend) {
    let test = TestStore::on(&backend, "sigkill");
    let source = TempDir::new("sigkill-src");
    let mut rng = Rng::new(30);
    let files: Vec<(String, Vec<u8>)> = (0..24).map(|i| (format!("part{i:02}.bin"), rng.bytes(4 << 20))).collect();
    write_files(source.path(), &files);
    let mut killed_after_packs = 0;
    for attempt in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash::crash_child_push", "--nocapture", "--test-threads=1"])
            .env("GRAPPE_STORE_CRASH_CHILD", format!("{}\n{}", test.spec(), source.path().display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once it has written a few packs (of 1 MiB) but long before its 96 MiB.
        let started = Instant::now();
        let packs = test.root().join("packs");
        loop {
            let count = std::fs::read_dir(&packs).map(|d| d.count()).unwrap_or(0);
            if count >= 3 * (attempt + 1) || started.elapsed() > Duration::from_secs(60) {
                killed_after_packs = count;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child finished before it was killed: make the data bigger");
        let report = test.reopen().verify().unwrap();
        assert!(report.is_clean(), "after kill {attempt}: {:?}", report.damage);
        assert!(test.reopen().names().unwrap().is_empty(), "no version without all its chunks");
    }
    assert!(killed_after_packs >= 3);
    let before = du(&test.root());
    // Push again: it resumes (the packs already written are not written again) and completes.
    let (committed, stats) = test.reopen().push_dir(source.path(), &name("big"), String::new(), Splits::new()).unwrap();
    assert!(stats.new_chunk_bytes < stats.bytes_read, "resumed: {stats:?}");
    assert!(du(&test.root()) > before);
    let store = test.reopen();
    assert!(store.verify().unwrap().is_clean());
    let out = TempDir::new("sigkill-out");
    store.materialize(&committed.id, &out.path().join("x")).unwrap();
    let mut expected = files;
    expected.sort();
    assert!(read_tree(&out.path().join("x")) == expected);
}

crate::on_each_backend!(a_push_killed_with_sigkill_resumes_and_verifies);
