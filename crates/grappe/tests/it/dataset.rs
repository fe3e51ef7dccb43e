//! `grappe dataset` and `grappe store` on a local store, as a user runs them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::TempDir;

/// Runs `grappe ARGS --store STORE --json`: (success, parsed stdout, stdout and stderr).
fn grappe(store: &Path, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(args)
        .arg("--store")
        .arg(store)
        .arg("--json")
        .output()
        .expect("run grappe");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.success(), serde_json::from_str(stdout.trim()).unwrap_or(Value::Null), format!("{stdout}{stderr}"))
}

fn write(dir: &Path, path: &str, content: &[u8]) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[test]
fn push_pull_list_show_diff_verify_gc() {
    let dir = TempDir::new("dataset-cli");
    let store = dir.path().join("store");
    let source = dir.path().join("source");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    write(&source, "train.csv", b"id,label\n1,a\n2,b\n");
    write(&source, "test.csv", b"id,label\n3,a\n");
    write(&source, "raw/big.bin", &big);
    std::fs::write(dir.path().join("card.md"), "# Cities\n\nLicence: etalab-2.0\n").unwrap();
    let s = source.to_str().unwrap();
    let card = dir.path().join("card.md");
    let push = [
        "dataset",
        "push",
        s,
        "--name",
        "cities",
        "--card",
        card.to_str().unwrap(),
        "--split",
        "train=train.csv",
        "--split",
        "test=test.csv",
    ];
    let (ok, v1, text) = grappe(&store, &push);
    assert!(ok, "{text}");
    assert_eq!((v1["created"].as_bool(), v1["files"].as_u64()), (Some(true), Some(3)), "{text}");
    let v1_id = v1["version"].as_str().unwrap().to_string();

    let (ok, again, text) = grappe(&store, &push);
    assert!(ok, "{text}");
    assert_eq!(
        (again["version"].as_str(), again["created"].as_bool(), again["ref_updated"].as_bool()),
        (Some(v1_id.as_str()), Some(false), Some(false)),
        "pushing twice is a no-op"
    );

    write(&source, "test.csv", b"id,label\n3,a\n4,b\n");
    let (ok, v2, text) = grappe(&store, &push);
    assert!(ok, "{text}");
    assert!(v2["stored_bytes"].as_u64().unwrap() < 10_000, "only the changed file is stored again: {text}");

    let (ok, listed, text) = grappe(&store, &["dataset", "list"]);
    assert!(ok, "{text}");
    assert_eq!(listed["datasets"][0]["versions"], 2, "{text}");
    let (ok, shown, text) = grappe(&store, &["dataset", "show", &format!("cities@{}", &v1_id[..10])]);
    assert!(ok, "{text}");
    assert_eq!(shown["version"].as_str(), Some(v1_id.as_str()));
    assert_eq!(shown["splits"]["train"][0], "train.csv");
    assert!(shown["card"].as_str().unwrap().contains("etalab"));
    let (ok, diff, text) = grappe(&store, &["dataset", "diff", &format!("cities@{v1_id}"), "cities"]);
    assert!(ok, "{text}");
    assert_eq!(diff["changed"], serde_json::json!(["test.csv"]), "{text}");

    let out = dir.path().join("out");
    let (ok, _, text) = grappe(&store, &["dataset", "pull", "cities", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(out.join("raw/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(out.join("test.csv")).unwrap(), b"id,label\n3,a\n4,b\n");
    let (ok, _, text) = grappe(&store, &["dataset", "pull", "cities", out.to_str().unwrap()]);
    assert!(!ok && text.contains("not an empty folder"), "{text}");

    let (ok, tagged, text) = grappe(&store, &["dataset", "tag", &format!("cities@{v1_id}"), "first"]);
    assert!(ok && tagged["tag"] == "first", "{text}");
    let (ok, shown, _) = grappe(&store, &["dataset", "show", "cities@first"]);
    assert!(ok && shown["version"].as_str() == Some(v1_id.as_str()));

    let (ok, verified, text) = grappe(&store, &["store", "verify"]);
    assert!(ok && verified["clean"] == true, "{text}");
    let (ok, _, text) = grappe(&store, &["store", "gc"]);
    assert!(ok, "{text}");
}

#[test]
fn a_damaged_store_fails_verify_and_pull_naming_the_pack() {
    let dir = TempDir::new("dataset-damage");
    let store = dir.path().join("store");
    let source = dir.path().join("source");
    let content: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    write(&source, "data.bin", &content);
    let (ok, _, text) = grappe(&store, &["dataset", "push", source.to_str().unwrap(), "--name", "d"]);
    assert!(ok, "{text}");
    let pack = std::fs::read_dir(store.join("packs")).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    let pack_id = pack.file_stem().unwrap().to_string_lossy().into_owned();

    let output =
        Command::new(env!("CARGO_BIN_EXE_grappe")).args(["store", "verify", "--store"]).arg(&store).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("DAMAGED") && text.contains(&pack_id) && text.contains("offset"), "{text}");

    let out = dir.path().join("out");
    let (ok, _, text) = grappe(&store, &["dataset", "pull", "d", out.to_str().unwrap()]);
    assert!(!ok && text.contains(&pack_id), "{text}");
    assert!(!out.join("data.bin").exists(), "no wrong or partial file where the data belongs");
}

#[test]
fn bad_pushes_are_clear_errors() {
    let dir = TempDir::new("dataset-bad");
    let store = dir.path().join("store");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, text) = grappe(&store, &["dataset", "push", empty.to_str().unwrap(), "--name", "d"]);
    assert!(!ok && text.contains("at least one file"), "{text}");
    let (ok, _, text) = grappe(&store, &["dataset", "push", empty.to_str().unwrap(), "--name", "../etc"]);
    assert!(!ok && text.contains("invalid name"), "{text}");
    let linked = dir.path().join("linked");
    write(&linked, "a.txt", b"a");
    std::os::unix::fs::symlink("/etc/passwd", linked.join("passwd")).unwrap();
    let (ok, _, text) = grappe(&store, &["dataset", "push", linked.to_str().unwrap(), "--name", "d"]);
    assert!(!ok && text.contains("symbolic links"), "{text}");
    let (ok, _, text) = grappe(&store, &["dataset", "pull", "nothing", dir.path().join("out").to_str().unwrap()]);
    assert!(!ok && text.contains("no dataset named nothing"), "{text}");
    let (ok, _, text) =
        grappe(&store, &["dataset", "push", linked.to_str().unwrap(), "--name", "d", "--split", "train=../x"]);
    assert!(!ok && text.contains("invalid path"), "{text}");
}
