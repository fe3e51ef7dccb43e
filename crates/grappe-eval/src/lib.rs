//! Scoring prediction files against truth files, pure: bytes in, values out. No I/O, no clock,
//! no serde, no HTTP: the CLI and the server read the files and hand us their bytes.
//!
//! A file is a two-column CSV ([`Table`]): an `id` column and one value column. [`score`]
//! matches the rows of the predictions to the rows of the truth by id, parses the values the
//! metric needs, and computes the [`Metric`] with the exact definitions of scikit-learn 1.9
//! (classification, regression, ranking, log loss) and sacrebleu 2.6 (BLEU, chrF). Every error
//! is a [`ScoreError`] naming the file's role, the line and the id.
//!
//! Module map: `board.rs` (leaderboards: public, private with final choices, the Ladder),
//! `table.rs` (our own RFC 4180 scanner), `matching.rs` (ids to pairs of rows),
//! `classify.rs`, `regress.rs`, `ranking.rs` (ROC AUC, log loss), `text.rs` (BLEU with the 13a
//! tokenizer, chrF, exact match), `error.rs`.

pub mod board;
mod classify;
mod error;
mod matching;
mod ranking;
mod regress;
mod table;
mod text;

use std::fmt;
use std::str::FromStr;

pub use error::ScoreError;
pub use table::{Role, Table};

use matching::Matched;

/// A metric of the scoring contract, named as scikit-learn and sacrebleu name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

    /// The contract's name: `f1_macro`, `roc_auc`, `bleu`...
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

    /// Whether a larger value is a better one: false for the errors and losses.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Mae | Metric::Rmse | Metric::LogLoss)
    }

    /// What the metric reads in the value columns, for messages and documentation.
    pub fn values(self) -> &'static str {
        match self {
            Metric::Accuracy | Metric::F1Macro | Metric::F1Micro | Metric::PrecisionMacro | Metric::RecallMacro => {
                "class labels, compared as text"
            }
            Metric::Mae | Metric::Rmse | Metric::R2 => "finite numbers",
            Metric::RocAuc => "truth 0 or 1; predictions a finite score, higher meaning 1",
            Metric::LogLoss => "truth 0 or 1; predictions the probability of 1, in [0, 1]",
            Metric::Bleu | Metric::Chrf | Metric::ExactMatch => "text (reference, hypothesis)",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = ScoreError;

    fn from_str(name: &str) -> Result<Metric, ScoreError> {
        Metric::ALL
            .into_iter()
            .find(|metric| metric.name() == name)
            .ok_or_else(|| ScoreError::UnknownMetric { name: error::shorten(name) })
    }
}

/// Matches rows by id (a missing, duplicated or unknown id, or an unparsable value, is an error
/// naming role, line and id), then computes the metric over all rows.
pub fn score(metric: Metric, truth: &Table, predictions: &Table) -> Result<f64, ScoreError> {
    let matched = Matched::new(truth, predictions)?;
    compute(metric, &matched, 0..matched.len())
}

/// Same validation once over all rows, then the metric on the rows whose id `in_first`
/// accepts, and on the others: (first, second). A part with no rows is an error.
pub fn score_parts(
    metric: Metric,
    truth: &Table,
    predictions: &Table,
    in_first: &dyn Fn(&str) -> bool,
) -> Result<(f64, f64), ScoreError> {
    let matched = Matched::new(truth, predictions)?;
    let (first, second): (Vec<u32>, Vec<u32>) = (0..matched.len()).partition(|&row| in_first(truth.id(row)));
    if first.is_empty() || second.is_empty() {
        return Err(ScoreError::EmptyPart { first: first.is_empty() });
    }
    // Every value is checked before either part is computed, so that an error does not depend
    // on which part the bad row fell in.
    check_values(metric, &matched)?;
    let first_value = compute(metric, &matched, first.iter().copied())?;
    let second_value = compute(metric, &matched, second.iter().copied())?;
    Ok((first_value, second_value))
}

/// Parses every value the metric reads, so that a bad value is reported before any part.
fn check_values(metric: Metric, matched: &Matched<'_>) -> Result<(), ScoreError> {
    match metric {
        Metric::Mae | Metric::Rmse | Metric::R2 => regress::check(matched),
        Metric::RocAuc | Metric::LogLoss => ranking::check(metric, matched),
        Metric::Accuracy | Metric::F1Macro | Metric::F1Micro | Metric::PrecisionMacro | Metric::RecallMacro => {
            classify::check(matched)
        }
        Metric::Bleu | Metric::Chrf | Metric::ExactMatch => Ok(()),
    }
}

/// The metric over the given truth rows (indices into the truth table) and their partners.
fn compute(metric: Metric, matched: &Matched<'_>, rows: impl Iterator<Item = u32> + Clone) -> Result<f64, ScoreError> {
    match metric {
        Metric::Accuracy => classify::accuracy(matched, rows),
        Metric::F1Macro => classify::macro_average(matched, rows, classify::Average::F1),
        Metric::F1Micro => classify::f1_micro(matched, rows),
        Metric::PrecisionMacro => classify::macro_average(matched, rows, classify::Average::Precision),
        Metric::RecallMacro => classify::macro_average(matched, rows, classify::Average::Recall),
        Metric::Mae => regress::mae(matched, rows),
        Metric::Rmse => regress::rmse(matched, rows),
        Metric::R2 => regress::r2(matched, rows),
        Metric::RocAuc => ranking::roc_auc(matched, rows),
        Metric::LogLoss => ranking::log_loss(matched, rows),
        Metric::Bleu => Ok(text::bleu(matched, rows)),
        Metric::Chrf => Ok(text::chrf(matched, rows)),
        Metric::ExactMatch => Ok(text::exact_match(matched, rows)),
    }
}
