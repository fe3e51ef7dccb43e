//! TEMPORARY STUB (replaced by the real crate at merge): the API the server codes against.
pub mod board;

use std::collections::HashMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    F1Macro,
    F1Micro,
    PrecisionMacro,
    RecallMacro,
    Mae,
    Rmse,
    R2,
    RocAuc,
    LogLoss,
    Bleu,
    Chrf,
    ExactMatch,
}

impl Metric {
    pub const ALL: [Metric; 13] = [
        Metric::Accuracy,
        Metric::F1Macro,
        Metric::F1Micro,
        Metric::PrecisionMacro,
        Metric::RecallMacro,
        Metric::Mae,
        Metric::Rmse,
        Metric::R2,
        Metric::RocAuc,
        Metric::LogLoss,
        Metric::Bleu,
        Metric::Chrf,
        Metric::ExactMatch,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::F1Macro => "f1_macro",
            Metric::F1Micro => "f1_micro",
            Metric::PrecisionMacro => "precision_macro",
            Metric::RecallMacro => "recall_macro",
            Metric::Mae => "mae",
            Metric::Rmse => "rmse",
            Metric::R2 => "r2",
            Metric::RocAuc => "roc_auc",
            Metric::LogLoss => "log_loss",
            Metric::Bleu => "bleu",
            Metric::Chrf => "chrf",
            Metric::ExactMatch => "exact_match",
        }
    }
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Mae | Metric::Rmse | Metric::LogLoss)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Metric {
    type Err = ScoreError;
    fn from_str(s: &str) -> Result<Metric, ScoreError> {
        Metric::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| ScoreError(format!("unknown metric {s}")))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Role {
    Truth,
    Predictions,
}

#[derive(Debug)]
pub struct ScoreError(String);

impl fmt::Display for ScoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScoreError {}

pub struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    pub fn parse(bytes: &[u8], role: Role) -> Result<Table, ScoreError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ScoreError(format!("{role:?}: not UTF-8")))?;
        let mut lines = text.lines();
        let header = lines.next().ok_or_else(|| ScoreError(format!("{role:?}: empty")))?;
        let id_first = header.split(',').next() == Some("id");
        let rows = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (a, b) = l.split_once(',').unwrap_or((l, ""));
                if id_first { (a.to_owned(), b.to_owned()) } else { (b.to_owned(), a.to_owned()) }
            })
            .collect();
        Ok(Table { rows })
    }
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|(id, _)| id.as_str())
    }
}

pub fn score(metric: Metric, truth: &Table, predictions: &Table) -> Result<f64, ScoreError> {
    score_parts(metric, truth, predictions, &|_| true).map(|(a, _)| a)
}

pub fn score_parts(
    _metric: Metric,
    truth: &Table,
    predictions: &Table,
    in_first: &dyn Fn(&str) -> bool,
) -> Result<(f64, f64), ScoreError> {
    let predicted: HashMap<&str, &str> = predictions.rows.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    if predicted.len() != truth.rows.len() {
        return Err(ScoreError("predictions: wrong number of ids".into()));
    }
    let mut parts = [(0usize, 0usize); 2];
    for (id, value) in &truth.rows {
        let got = predicted.get(id.as_str()).ok_or_else(|| ScoreError(format!("predictions: id {id} missing")))?;
        let part = &mut parts[usize::from(!in_first(id))];
        part.1 += 1;
        part.0 += usize::from(got == value);
    }
    Ok((parts[0].0 as f64 / parts[0].1.max(1) as f64, parts[1].0 as f64 / parts[1].1.max(1) as f64))
}
