//! The errors a user sees: each names the file's role, the line and the id.

use grappe_eval::{Metric, Role, ScoreError, Table, score, score_parts};

fn table(text: &str, role: Role) -> Table {
    Table::parse(text.as_bytes(), role).unwrap()
}

/// The message for scoring `truth` against `predictions` with `metric`.
#[track_caller]
fn check_error(metric: Metric, truth: &str, predictions: &str, expected: &str) {
    let message =
        match (Table::parse(truth.as_bytes(), Role::Truth), Table::parse(predictions.as_bytes(), Role::Predictions)) {
            (Ok(truth), Ok(predictions)) => match score(metric, &truth, &predictions) {
                Ok(value) => panic!("expected an error, got {value}"),
                Err(error) => error.to_string(),
            },
            (Err(error), _) | (_, Err(error)) => error.to_string(),
        };
    assert_eq!(message, expected);
}

#[track_caller]
fn check_value(metric: Metric, truth: &str, predictions: &str, expected: f64) {
    let value = score(metric, &table(truth, Role::Truth), &table(predictions, Role::Predictions)).unwrap();
    assert_eq!(value, expected);
}

const TRUTH: &str = "id,label\na1,chat\na2,chien\na3,chat\n";

#[test]
fn ids_missing_duplicated_or_unknown_are_named_with_their_line() {
    check_error(
        Metric::Accuracy,
        TRUTH,
        "id,label\na1,chat\na3,chat\n",
        "predictions: no row for id \"a2\" (truth, line 3)",
    );
    check_error(
        Metric::Accuracy,
        TRUTH,
        "id,label\na1,chat\na2,chat\na3,chat\na2,chien\n",
        "predictions, line 5, id \"a2\": duplicate id, first on line 3",
    );
    check_error(
        Metric::Accuracy,
        "id,label\na1,chat\na1,chien\n",
        "id,label\na1,chat\n",
        "truth, line 3, id \"a1\": duplicate id, first on line 2",
    );
    check_error(
        Metric::Accuracy,
        TRUTH,
        "id,label\na1,chat\na2,chat\na7,chat\n",
        "predictions, line 4, id \"a7\": no such id in the truth",
    );
    check_error(Metric::Accuracy, TRUTH, "id,label\n,chat\n", "predictions, line 2, id \"\": empty id");
}

#[test]
fn unparsable_values_are_named_with_line_and_id() {
    let truth = "id,y\n1,0.5\n2,1.5\n";
    check_error(Metric::Mae, truth, "id,y\n1,0.5\n2,abc\n", "predictions, line 3, id \"2\": \"abc\" is not a number");
    check_error(
        Metric::Rmse,
        truth,
        "id,y\n1,NaN\n2,1\n",
        "predictions, line 2, id \"1\": the value is NaN: expected a finite number",
    );
    check_error(
        Metric::R2,
        truth,
        "id,y\n1,inf\n2,1\n",
        "predictions, line 2, id \"1\": the value is infinite: expected a finite number",
    );
    check_error(Metric::Mae, "id,y\n1,\n2,1\n", truth, "truth, line 2, id \"1\": empty value: expected a number");
    check_error(Metric::RocAuc, "id,y\n1,2\n2,1\n", truth, "truth, line 2, id \"1\": the truth is 2: expected 0 or 1");
    check_error(
        Metric::LogLoss,
        "id,y\n1,0\n2,1\n",
        "id,y\n1,0.5\n2,1.5\n",
        "predictions, line 3, id \"2\": the probability 1.5 is outside [0, 1]",
    );
    check_error(
        Metric::Accuracy,
        TRUTH,
        "id,label\na1,\na2,chat\na3,chat\n",
        "predictions, line 2, id \"a1\": empty label",
    );
}

#[test]
fn bad_headers_and_files_say_what_is_wrong() {
    check_error(Metric::Accuracy, "", TRUTH, "truth: the file is empty: expected a header `id,<value column>`");
    check_error(
        Metric::Accuracy,
        TRUTH,
        "\n\n",
        "predictions: the file is empty: expected a header `id,<value column>`",
    );
    check_error(Metric::Accuracy, "id,label\n", TRUTH, "truth: no rows after the header");
    check_error(
        Metric::Accuracy,
        "key,label\na1,chat\n",
        TRUTH,
        "truth, line 1: no `id` column in the header (found \"key\" and \"label\")",
    );
    check_error(Metric::Accuracy, "id,id\n", TRUTH, "truth, line 1: two `id` columns in the header");
    check_error(
        Metric::Accuracy,
        "id,label,extra\n",
        TRUTH,
        "truth, line 1: the header has 3 or more fields: expected two columns, `id` and one value column",
    );
    check_error(
        Metric::Accuracy,
        "id,label\na1,chat,x,y\n",
        TRUTH,
        "truth, line 2, id \"a1\": 3 or more fields: expected two",
    );
    check_error(Metric::Accuracy, "id,label\na1\n", TRUTH, "truth, line 2, id \"a1\": 1 field: expected two");
    check_error(Metric::Accuracy, "id,label\na1,\"chat\n", TRUTH, "truth, line 2: a quoted field is never closed");
    check_error(
        Metric::Accuracy,
        "id,label\na1,\"chat\"x\n",
        TRUTH,
        "truth, line 2: text after the closing quote of a field",
    );
    check_error(
        Metric::Accuracy,
        "id,label\na1,ch\"at\n",
        TRUTH,
        "truth, line 2: a double quote inside a field that does not start with one (quote the whole field)",
    );
    let mut invalid = b"id,label\na1,chat\na2,ch".to_vec();
    invalid.extend([0xff, 0xfe]);
    assert_eq!(Table::parse(&invalid, Role::Truth).unwrap_err().to_string(), "truth, line 3: not valid UTF-8");
}

#[test]
fn quoted_fields_crlf_bom_and_column_order_are_read() {
    let truth = "\u{feff}label,id\r\n\"a, \"\"b\"\"\nc\",\"x1\"\r\n\r\nchat,x2\r\n";
    let table = table(truth, Role::Truth);
    assert_eq!(table.ids().collect::<Vec<_>>(), ["x1", "x2"]);
    check_value(Metric::Accuracy, truth, "id,label\nx2,chat\nx1,\"a, \"\"b\"\"\nc\"", 1.0);
    check_error(
        Metric::Accuracy,
        truth,
        "id,label\nx1,chat\nx1,chat\n",
        "predictions, line 3, id \"x1\": duplicate id, first on line 2",
    );
    // The line numbers count the newlines inside quoted fields.
    check_error(
        Metric::Accuracy,
        truth,
        "id,label\nx9,\"a\nb\"\nx2,chat\n",
        "predictions, line 2, id \"x9\": no such id in the truth",
    );
    check_error(
        Metric::Accuracy,
        truth,
        "id,label\nx1,\"a\nb\"\nx3,chat\n",
        "predictions, line 4, id \"x3\": no such id in the truth",
    );
}

#[test]
fn undefined_metrics_say_why() {
    check_error(
        Metric::RocAuc,
        "id,y\n1,1\n2,1\n",
        "id,y\n1,0.2\n2,0.4\n",
        "roc_auc is not defined here: the truth holds only one class (1); both 0 and 1 are needed",
    );
    check_error(
        Metric::R2,
        "id,y\n1,1\n",
        "id,y\n1,2\n",
        "r2 is not defined here: fewer than two rows (scikit-learn warns and returns NaN)",
    );
    assert_eq!(
        "f1".parse::<Metric>().unwrap_err().to_string(),
        "unknown metric \"f1\": the metrics are accuracy, f1_macro, f1_micro, precision_macro, recall_macro, \
         mae, rmse, r2, roc_auc, log_loss, bleu, chrf, exact_match"
    );
    for metric in Metric::ALL {
        assert_eq!(metric.name().parse::<Metric>().unwrap(), metric);
        assert_eq!(metric.to_string(), metric.name());
    }
}

#[test]
fn parts_are_scored_apart_after_one_validation() {
    let truth = table("id,y\npub1,1\npub2,2\npriv1,3\npriv2,5\n", Role::Truth);
    let predictions = table("id,y\npriv2,4\npub1,1\npriv1,3\npub2,4\n", Role::Predictions);
    let public = |id: &str| id.starts_with("pub");
    assert_eq!(score_parts(Metric::Mae, &truth, &predictions, &public).unwrap(), (1.0, 0.5));
    assert_eq!(
        score_parts(Metric::Mae, &truth, &predictions, &|_| true).unwrap_err(),
        ScoreError::EmptyPart { first: false }
    );
    let bad = table("id,y\npriv2,x\npub1,1\npriv1,3\npub2,4\n", Role::Predictions);
    assert_eq!(
        score_parts(Metric::Mae, &truth, &bad, &public).unwrap_err().to_string(),
        "predictions, line 2, id \"priv2\": \"x\" is not a number"
    );
}

#[test]
fn hostile_inputs_are_errors_not_panics() {
    let long_line = format!("id,label\na1,{}\n", "x".repeat(10 << 20));
    let long = table(&long_line, Role::Truth);
    assert!(score(Metric::Mae, &long, &long).unwrap_err().to_string().len() < 300);
    for text in ["\"", "id,\"", ",", "\r", "id,x\n\"", "id,x\na,\"b\"\"", "\u{feff}", "id,x\r\na,1\r"] {
        let _ = Table::parse(text.as_bytes(), Role::Predictions);
    }
    let ok = table("id,x\na,1\r", Role::Truth);
    for metric in Metric::ALL {
        let _ = score(metric, &ok, &ok);
    }
}

#[test]
fn numeric_ids_match_as_text_does() {
    // Zero-padded ids of one width: "q007" is not "q7".
    let truth = "id,y\nq005,1\nq007,2\nq010,3\n";
    check_value(Metric::Mae, truth, "id,y\nq010,3\nq005,1\nq007,2\n", 0.0);
    check_error(
        Metric::Mae,
        truth,
        "id,y\nq010,3\nq005,1\nq7,2\n",
        "predictions, line 4, id \"q7\": no such id in the truth",
    );
    check_error(
        Metric::Mae,
        truth,
        "id,y\nq010,3\nq005,1\nr007,2\n",
        "predictions, line 4, id \"r007\": no such id in the truth",
    );
    // Numbers without leading zeros: "07" is not "7".
    let truth = "id,y\n5,1\n7,2\n10,3\n";
    check_value(Metric::Mae, truth, "id,y\n10,4\n5,1\n7,2\n", 1.0 / 3.0);
    check_error(
        Metric::Mae,
        truth,
        "id,y\n10,3\n5,1\n07,2\n",
        "predictions, line 4, id \"07\": no such id in the truth",
    );
    check_error(
        Metric::Mae,
        truth,
        "id,y\n10,3\n5,1\n7,2\n5,1\n",
        "predictions, line 5, id \"5\": duplicate id, first on line 3",
    );
    check_error(Metric::Mae, "id,y\n5,1\n7,2\n5,3\n", truth, "truth, line 4, id \"5\": duplicate id, first on line 2");
    check_error(
        Metric::Mae,
        truth,
        "id,y\n10,3\n5,1\n99999999999999999999,2\n",
        "predictions, line 4, id \"99999999999999999999\": no such id in the truth",
    );
    // Mixed widths with leading zeros: hashed as text, "07" and "7" both present and distinct.
    let truth = "id,y\n07,1\n7,2\n010,3\n";
    check_value(Metric::Mae, truth, "id,y\n7,2\n010,3\n07,1\n", 0.0);
    // Sparse numbers: hashed.
    check_value(Metric::Mae, "id,y\n1,1\n900000000000,2\n", "id,y\n900000000000,2\n1,1\n", 0.0);
}
