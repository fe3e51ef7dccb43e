//! `grappe jury assign` as a user runs it: the contract's JSON in, the assignment out; the
//! explanation on stderr with exit code 1 when none exists, 2 on bad input.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::TempDir;

/// Exit code, stdout, stderr of `grappe jury assign --input PROBLEM --json [EXTRA]`.
fn assign(dir: &TempDir, name: &str, problem: &str) -> (Option<i32>, String, String) {
    assign_with(dir, name, problem, &[])
}

fn assign_with(dir: &TempDir, name: &str, problem: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let path = dir.path().join(name);
    std::fs::write(&path, problem).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(["jury", "assign", "--input", path.to_str().unwrap(), "--json"])
        .args(extra)
        .output()
        .expect("run grappe");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn jury_assign_prints_the_contract_json_with_ids_as_given() {
    let dir = TempDir::new("jury");
    // A1 prefers r1 and r3 is conflicted with it; A2 lists only r1, which A1 values more:
    // the optimum gives r1 to A1 (0.9) and A2 takes an unlisted reviewer (affinity 0) with 2.
    let problem = json!({
        "reviewers_per_application": 1,
        "max_load": 1,
        "applications": ["A1", 2],
        "reviewers": ["r1", 7, "r3"],
        "affinity": [["A1", "r1", 0.9], [2, "r1", 0.5], ["A1", 7, 0.25]],
        "conflicts": [[2, 7]],
    });
    let (code, stdout, stderr) = assign(&dir, "problem.json", &problem.to_string());
    assert_eq!(code, Some(0), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(value, json!({"assignment": [["A1", "r1"], [2, "r3"]], "total_affinity": 0.9}));

    // --fair: the worst pair first. A2 can only have r1 (0.5) or r3 (0), so r1 goes to A2 and A1
    // takes 7 (0.25): worst pair 0.25 instead of 0.
    let (code, stdout, stderr) = assign_with(&dir, "problem.json", &problem.to_string(), &["--fair"]);
    assert_eq!(code, Some(0), "{stderr}");
    let value: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        value,
        json!({"assignment": [["A1", 7], [2, "r1"]], "total_affinity": 0.75, "worst_pair_affinity": 0.25})
    );
}

#[test]
fn jury_assign_explains_infeasibility_and_refuses_bad_input() {
    let dir = TempDir::new("jury-errors");
    let problem = |k: i64, extra: &str| {
        format!(
            r#"{{"reviewers_per_application": {k}, "max_load": 2, "applications": ["A1", "A2"],
                "reviewers": ["r1", "r2", "r3"], "conflicts": [["A2", "r1"], ["A2", "r3"]]{extra}}}"#
        )
    };
    let (code, stdout, stderr) = assign(&dir, "infeasible.json", &problem(2, ""));
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        stderr.contains("no assignment exists: application \"A2\" has only 1 non-conflicted reviewer, needs 2"),
        "{stderr}"
    );
    let cases = [
        (
            problem(1, r#", "affinity": [["A1", "r9", 1.0]]"#),
            "affinity entry 0: reviewer \"r9\" is not in \"reviewers\"",
        ),
        (
            problem(1, r#", "affinity": [["A1", "r1", 1.0], ["A1", "r1", 2.0]]"#),
            "affinity lists application \"A1\" and reviewer \"r1\" twice",
        ),
        (problem(0, ""), "reviewers_per_application is 0"),
        (problem(-1, ""), "invalid value: integer `-1`"),
        (problem(1, r#", "affinity": [["A1", "r1", NaN]]"#), "expected value"),
        (problem(1, r#", "affinity": [["A1", "r1", "high"]]"#), "invalid type: string \"high\", expected f64"),
        (
            r#"{"reviewers_per_application": 1, "max_load": 1, "applications": ["A", "A"], "reviewers": []}"#
                .to_owned(),
            "\"applications\" lists \"A\" twice",
        ),
        ("[".to_owned(), "EOF while parsing"),
    ];
    for (input, expected) in cases {
        let (code, stdout, stderr) = assign(&dir, "bad.json", &input);
        assert_eq!((code, stdout.as_str()), (Some(2), ""), "{input}: {stderr}");
        assert!(stderr.contains(expected), "{input}: {stderr}");
    }
}
