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

/// The metrics on values already in memory, for callers that hold arrays rather than files
/// (and for the in-memory benchmark). Lengths must be equal and non-zero; classes are numbers
/// below `MAX_CLASSES`; truth for `roc_auc` and `log_loss` is `true` for class 1.
pub mod arrays {
    pub use crate::classify::{MAX_CLASSES, accuracy, f1_macro, f1_micro, precision_macro, recall_macro};
    pub use crate::ranking::{log_loss, roc_auc};
    pub use crate::regress::{mae, r2, rmse};
    pub use crate::text::{bleu, chrf, exact_match};
}

/// Matches rows by id (a missing, duplicated or unknown id, or an unparsable value, is an error
/// naming role, line and id), then computes the metric over all rows.
pub fn score(metric: Metric, truth: &Table, predictions: &Table) -> Result<f64, ScoreError> {
    let matched = Matched::new(truth, predictions)?;
    Values::read(metric, &matched)?.compute(metric)
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
    let values = Values::read(metric, &matched)?;
    let first: Vec<bool> = truth.ids().map(in_first).collect();
    let first_count = first.iter().filter(|&&in_first| in_first).count();
    if first_count == 0 || first_count == first.len() {
        return Err(ScoreError::EmptyPart { first: first_count == 0 });
    }
    let (first_values, second_values) = values.split(&first);
    Ok((first_values.compute(metric)?, second_values.compute(metric)?))
}

/// The values a metric reads, in the truth's row order: read once, checked once.
enum Values<'a> {
    Classes(Vec<u32>, Vec<u32>),
    Numbers(Vec<f64>, Vec<f64>),
    Binary(Vec<bool>, Vec<f64>),
    Texts(Vec<&'a str>, Vec<&'a str>),
}

impl<'a> Values<'a> {
    fn read(metric: Metric, matched: &Matched<'a>) -> Result<Values<'a>, ScoreError> {
        Ok(match metric {
            Metric::Accuracy | Metric::F1Macro | Metric::F1Micro | Metric::PrecisionMacro | Metric::RecallMacro => {
                let (truth, predictions) = classify::labels(matched)?;
                Values::Classes(truth, predictions)
            }
            Metric::Mae | Metric::Rmse | Metric::R2 => {
                let (truth, predictions) = regress::numbers(matched)?;
                Values::Numbers(truth, predictions)
            }
            Metric::RocAuc | Metric::LogLoss => {
                let (truth, scores) = ranking::classes_and_scores(metric, matched)?;
                Values::Binary(truth, scores)
            }
            Metric::Bleu | Metric::Chrf | Metric::ExactMatch => {
                let (references, hypotheses) = matched.read(|_, _, text| Ok(text))?;
                Values::Texts(references, hypotheses)
            }
        })
    }

    /// The rows marked `true`, and the others.
    fn split(self, first: &[bool]) -> (Values<'a>, Values<'a>) {
        fn halves<T: Copy>(values: &[T], first: &[bool]) -> (Vec<T>, Vec<T>) {
            let (mut ones, mut others) = (Vec::new(), Vec::new());
            for (value, &in_first) in values.iter().zip(first) {
                if in_first { ones.push(*value) } else { others.push(*value) }
            }
            (ones, others)
        }
        macro_rules! split {
            ($variant:ident, $truth:expr, $predictions:expr) => {{
                let (truth_first, truth_second) = halves(&$truth, first);
                let (predictions_first, predictions_second) = halves(&$predictions, first);
                (Values::$variant(truth_first, predictions_first), Values::$variant(truth_second, predictions_second))
            }};
        }
        match self {
            Values::Classes(truth, predictions) => split!(Classes, truth, predictions),
            Values::Numbers(truth, predictions) => split!(Numbers, truth, predictions),
            Values::Binary(truth, predictions) => split!(Binary, truth, predictions),
            Values::Texts(truth, predictions) => split!(Texts, truth, predictions),
        }
    }

    fn compute(&self, metric: Metric) -> Result<f64, ScoreError> {
        match (self, metric) {
            (Values::Classes(truth, predictions), Metric::Accuracy) => arrays::accuracy(truth, predictions),
            (Values::Classes(truth, predictions), Metric::F1Macro) => arrays::f1_macro(truth, predictions),
            (Values::Classes(truth, predictions), Metric::F1Micro) => arrays::f1_micro(truth, predictions),
            (Values::Classes(truth, predictions), Metric::PrecisionMacro) => {
                arrays::precision_macro(truth, predictions)
            }
            (Values::Classes(truth, predictions), Metric::RecallMacro) => arrays::recall_macro(truth, predictions),
            (Values::Numbers(truth, predictions), Metric::Mae) => arrays::mae(truth, predictions),
            (Values::Numbers(truth, predictions), Metric::Rmse) => arrays::rmse(truth, predictions),
            (Values::Numbers(truth, predictions), Metric::R2) => arrays::r2(truth, predictions),
            (Values::Binary(truth, scores), Metric::RocAuc) => arrays::roc_auc(truth, scores),
            (Values::Binary(truth, probabilities), Metric::LogLoss) => arrays::log_loss(truth, probabilities),
            (Values::Texts(references, hypotheses), Metric::Bleu) => arrays::bleu(references, hypotheses),
            (Values::Texts(references, hypotheses), Metric::Chrf) => arrays::chrf(references, hypotheses),
            (Values::Texts(references, hypotheses), Metric::ExactMatch) => arrays::exact_match(references, hypotheses),
            // `read` chose the variant from the metric.
            (_, metric) => Err(ScoreError::Undefined { metric, reason: "values of another kind".to_owned() }),
        }
    }
}
