//! `grappe simulate` as a user runs it: a trace file in, one JSON object out.

use std::process::Command;

use serde_json::Value;

use crate::harness::TempDir;

fn simulate(args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_grappe")).arg("simulate").args(args).output().expect("run grappe");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.success(), serde_json::from_str(&stdout).unwrap_or(Value::Null), format!("{stdout}{stderr}"))
}

/// The worked case of `grappe-sched`: FCFS waits 0, 9, 13; EASY backfills j3.
const TRACE: &str = "; MaxProcs: 4\n\
1 0 -1 10 2 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n\
2 1 -1 5 4 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n\
3 2 -1 3 2 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n\
4 3 -1 -1 2 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n";

#[test]
fn a_small_trace_gives_the_hand_computed_metrics() {
    let dir = TempDir::new("simulate");
    let trace = dir.path().join("small.swf");
    std::fs::write(&trace, TRACE).unwrap();
    let trace = trace.to_str().unwrap();
    let (ok, fcfs, text) = simulate(&[trace, "--policy", "fcfs", "--json"]);
    assert!(ok, "{text}");
    assert_eq!(fcfs["jobs"], 3);
    assert_eq!(fcfs["skipped"], 1, "a job with no run time is skipped");
    assert_eq!(fcfs["machine_procs"], 4);
    assert_eq!(fcfs["mean_wait_s"], 22.0 / 3.0);
    assert_eq!(fcfs["makespan_s"], 18);
    let (_, easy, _) = simulate(&[trace, "--policy", "easy", "--json"]);
    assert_eq!(easy["mean_wait_s"], 3.0);
    assert_eq!(easy["makespan_s"], 15);
    let (_, wide, _) = simulate(&[trace, "--policy", "conservative", "--nodes", "8", "--json"]);
    assert_eq!(wide["machine_procs"], 8);
    assert_eq!(wide["mean_wait_s"], 0.0);
    let plot = dir.path().join("plot.svg");
    let (ok, _, text) = simulate(&[trace, "--plot", plot.to_str().unwrap()]);
    assert!(ok && text.contains("mean bounded slowdown"), "{text}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Queue length") && svg.contains("Wait before start"));
}

#[test]
fn malformed_traces_name_the_line_and_the_field() {
    let dir = TempDir::new("simulate-bad");
    let trace = dir.path().join("bad.swf");
    std::fs::write(&trace, "; MaxProcs: 4\n1 0 -1 10 2 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n2 1 -1 five 4 -1\n")
        .unwrap();
    let (ok, _, text) = simulate(&[trace.to_str().unwrap(), "--json"]);
    assert!(!ok);
    assert!(text.contains("line 3, field 4: `five` is not a number"), "{text}");
    std::fs::write(&trace, "1 0 -1 10 2 -1 -1 -1 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n").unwrap();
    let (ok, _, text) = simulate(&[trace.to_str().unwrap(), "--json"]);
    assert!(!ok && text.contains("give --nodes N"), "{text}");
    let (ok, _, text) = simulate(&["/no/such/trace.swf"]);
    assert!(!ok && text.contains("reading /no/such/trace.swf"), "{text}");
}

/// `--fairshare` on a trace without user ids (field 12 at -1) says, on standard error, that it
/// changes nothing; with user ids it says nothing.
#[test]
fn fairshare_without_user_ids_warns() {
    let dir = TempDir::new("simulate-users");
    let anonymous = dir.path().join("anonymous.swf");
    std::fs::write(&anonymous, TRACE.replace(" 1 1 -1", " 1 -1 -1")).unwrap();
    let warning = "warning: the trace gives no user ids";
    let output = Command::new(env!("CARGO_BIN_EXE_grappe"))
        .args(["simulate", anonymous.to_str().unwrap(), "--fairshare", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stderr.contains(warning), "{stderr}");
    let metrics: Value = serde_json::from_slice(&output.stdout).expect("standard output stays one JSON object");
    assert_eq!(metrics["jobs"], 3);
    let named = dir.path().join("named.swf");
    std::fs::write(&named, TRACE).unwrap();
    let (ok, _, text) = simulate(&[named.to_str().unwrap(), "--fairshare"]);
    assert!(ok && !text.contains(warning), "{text}");
}

/// lublin_256 under FCFS: the mean wait AccaSim's FIFO gives on the same trace (bench/simulate).
#[test]
fn lublin_fcfs_matches_the_peer() {
    let trace = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/traces/lublin_256.swf");
    assert!(std::path::Path::new(trace).exists(), "{trace} is missing: shared/ must sit beside the clone");
    let (ok, fcfs, text) = simulate(&[trace, "--policy", "fcfs", "--json"]);
    assert!(ok, "{text}");
    assert_eq!(fcfs["jobs"], 10_000);
    assert!((fcfs["mean_wait_s"].as_f64().unwrap() - 2_388_443.760_1).abs() < 1e-3, "{fcfs}");
    assert!((fcfs["utilization"].as_f64().unwrap() - 0.6549).abs() < 1e-4, "{fcfs}");
    // For people: durations in days and hours, not seconds.
    let (ok, _, text) = simulate(&[trace, "--policy", "fcfs"]);
    assert!(ok && text.contains("mean wait              27 d 15 h\n"), "{text}");
    assert!(!text.lines().any(|line| line.starts_with("makespan") && line.ends_with(" s")), "{text}");
}
