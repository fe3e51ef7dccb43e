//! Our values against the reference libraries' on the cases of `tests/fixtures/generate.py`,
//! which `scripts/test.sh` writes into the folder `GRAPPE_TEST_EVAL_FIXTURES` names. Without
//! it this test fails, unless `GRAPPE_TEST_SKIP_PYTHON=1` skips it explicitly.

use std::path::PathBuf;

use grappe_eval::{Metric, Role, Table, score};

fn fixtures() -> Option<PathBuf> {
    match std::env::var("GRAPPE_TEST_EVAL_FIXTURES") {
        Ok(dir) => Some(PathBuf::from(dir)),
        Err(_) if std::env::var("GRAPPE_TEST_SKIP_PYTHON").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: reference cases (GRAPPE_TEST_SKIP_PYTHON=1)");
            None
        }
        Err(_) => panic!(
            "GRAPPE_TEST_EVAL_FIXTURES is not set: run scripts/test.sh, or \
             scripts/install-test-deps.sh then generate.py into a folder and name it; \
             or set GRAPPE_TEST_SKIP_PYTHON=1"
        ),
    }
}

/// How close our value must be: sacrebleu's own tests compare BLEU to 1e-8 and chrF to 1e-6
/// (absolute, 0-100); the rest to 1e-9 relative.
fn close(metric: Metric, ours: f64, expected: f64) -> bool {
    match metric {
        Metric::Bleu => (ours - expected).abs() <= 1e-8,
        Metric::Chrf => (ours - expected).abs() <= 1e-6,
        _ => (ours - expected).abs() <= 1e-9 * expected.abs().max(f64::MIN_POSITIVE) || ours == expected,
    }
}

#[test]
fn every_metric_equals_scikit_learn_and_sacrebleu() {
    let Some(dir) = fixtures() else { return };
    let cases = std::fs::read_to_string(dir.join("cases.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut counted = 0;
    for line in cases.lines() {
        let [name, metric, expected] = line.split('\t').collect::<Vec<_>>()[..] else { panic!("bad line {line}") };
        let metric: Metric = metric.parse().unwrap();
        let truth = Table::parse(&std::fs::read(dir.join(format!("{name}.truth.csv"))).unwrap(), Role::Truth).unwrap();
        let predictions =
            Table::parse(&std::fs::read(dir.join(format!("{name}.predictions.csv"))).unwrap(), Role::Predictions)
                .unwrap();
        let ours = score(metric, &truth, &predictions);
        counted += 1;
        match (expected, ours) {
            ("error", Err(_)) => {}
            ("error", Ok(value)) => failures.push(format!("{name}: expected an error, got {value}")),
            (expected, Ok(value)) => {
                let expected: f64 = expected.parse().unwrap();
                if !close(metric, value, expected) {
                    failures.push(format!("{name}: ours {value:?}, reference {expected:?}"));
                }
            }
            (expected, Err(error)) => failures.push(format!("{name}: expected {expected}, got error: {error}")),
        }
    }
    assert!(counted >= 200, "only {counted} cases in {}", dir.display());
    assert!(failures.is_empty(), "{} of {counted} cases differ:\n{}", failures.len(), failures.join("\n"));
}
