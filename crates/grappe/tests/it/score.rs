//! `grappe score` as a user runs it: two CSV files in, one JSON object out; errors on stderr
//! with exit code 2.

use std::process::Command;

use serde_json::Value;

use crate::harness::TempDir;

/// Exit code, stdout, stderr.
fn score(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_grappe")).arg("score").args(args).output().expect("run grappe");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn score_prints_the_contract_json_and_refuses_bad_files_with_code_2() {
    let dir = TempDir::new("score");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let truth = write("truth.csv", "id,label\na1,chat\na2,chien\na3,chat\na4,chien\n");
    let predictions = write("predictions.csv", "label,id\nchat,a4\nchien,a2\nchat,a3\nchat,a1\n");
    let (code, stdout, stderr) =
        score(&["--metric", "accuracy", "--truth", &truth, "--predictions", &predictions, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value, serde_json::json!({"metric": "accuracy", "value": 0.75}));

    let (code, stdout, _) = score(&["--metric", "f1_macro", "--truth", &truth, "--predictions", &predictions]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("f1_macro: 0.7333333333333334 (4 rows; higher is better)"), "{stdout}");

    let (code, stdout, stderr) = score(&["--metric", "f1", "--truth", &truth, "--predictions", &predictions, "--json"]);
    assert_eq!((code, stdout.as_str()), (Some(2), ""));
    assert!(stderr.contains("unknown metric \"f1\"") && stderr.contains("f1_macro"), "{stderr}");

    let unknown = write("unknown.csv", "id,label\na1,chat\na2,chien\na3,chat\na9,chien\n");
    let (code, _, stderr) = score(&["--metric", "accuracy", "--truth", &truth, "--predictions", &unknown, "--json"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("predictions, line 5, id \"a9\": no such id in the truth"), "{stderr}");

    let (code, _, stderr) = score(&["--metric", "mae", "--truth", &truth, "--predictions", &predictions]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("truth, line 2, id \"a1\": \"chat\" is not a number"), "{stderr}");

    let missing = dir.path().join("absent.csv");
    let (code, _, stderr) =
        score(&["--metric", "mae", "--truth", missing.to_str().unwrap(), "--predictions", &predictions]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("truth: reading"), "{stderr}");

    let (code, _, _) = score(&["--metric", "mae", "--truth", &truth]);
    assert_eq!(code, Some(2), "clap's usage errors exit with 2 too");
}
