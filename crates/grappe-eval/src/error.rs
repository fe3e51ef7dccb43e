//! Errors: each a sentence naming the file's role, the line and the id where there is one.

use std::fmt;

use crate::{Metric, Role};

/// Why a score could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreError {
    /// A metric name that is not in the contract.
    UnknownMetric { name: String },
    /// The file as a whole: too large, not UTF-8, empty, a bad header.
    File { role: Role, line: Option<u64>, problem: String },
    /// One row: its line, its id (shortened for the message), what is wrong.
    Row { role: Role, line: u64, id: String, problem: String },
    /// A truth id with no prediction row: the line is the truth's.
    MissingId { truth_line: u64, id: String },
    /// The metric has no value on these rows (one class only for ROC AUC, one row for R²).
    Undefined { metric: Metric, reason: String },
    /// `score_parts`: one of the two parts has no row.
    EmptyPart { first: bool },
}

impl fmt::Display for ScoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScoreError::UnknownMetric { name } => {
                let names: Vec<&str> = Metric::ALL.iter().map(|metric| metric.name()).collect();
                write!(f, "unknown metric \"{name}\": the metrics are {}", names.join(", "))
            }
            ScoreError::File { role, line: Some(line), problem } => write!(f, "{role}, line {line}: {problem}"),
            ScoreError::File { role, line: None, problem } => write!(f, "{role}: {problem}"),
            ScoreError::Row { role, line, id, problem } => write!(f, "{role}, line {line}, id \"{id}\": {problem}"),
            ScoreError::MissingId { truth_line, id } => {
                write!(f, "predictions: no row for id \"{id}\" (truth, line {truth_line})")
            }
            ScoreError::Undefined { metric, reason } => write!(f, "{metric} is not defined here: {reason}"),
            ScoreError::EmptyPart { first } => {
                write!(f, "the {} part has no rows", if *first { "first" } else { "second" })
            }
        }
    }
}

impl std::error::Error for ScoreError {}

/// At most this many characters of a user's text in a message.
const SHOWN_CHARS: usize = 60;

/// A user's text for a message: control characters escaped, cut after `SHOWN_CHARS`.
pub(crate) fn shorten(text: &str) -> String {
    let mut shown = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == SHOWN_CHARS {
            shown.push('…');
            break;
        }
        if c.is_control() || c == '"' || c == '\\' {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}
