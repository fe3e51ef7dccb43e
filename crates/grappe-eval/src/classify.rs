//! Classification metrics, as scikit-learn 1.9 defines them: `accuracy_score`, and
//! `precision_score`, `recall_score`, `f1_score` with `average="macro"` or `"micro"`.
//!
//! Classes are numbered (`labels` numbers the text labels of files, compared as text). The
//! classes averaged over are those of the truth and of the predictions together, as
//! scikit-learn's `unique_labels`; a ratio with a zero denominator is 0, scikit-learn's default
//! `zero_division` (with its warning).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::Metric;
use crate::error::ScoreError;
use crate::matching::Matched;

/// Up to this many labels are looked up by a linear scan, faster than hashing for a few.
const SCAN_LABELS: usize = 16;

/// Class numbers must be below this: counts are kept in a vector indexed by class.
pub const MAX_CLASSES: u32 = 1 << 24;

/// Labels numbered in order of appearance.
#[derive(Default)]
struct Labels<'a> {
    names: Vec<&'a str>,
    index: HashMap<&'a str, u32, RandomState>,
}

impl<'a> Labels<'a> {
    fn number(&mut self, label: &'a str) -> u32 {
        if self.names.len() <= SCAN_LABELS {
            if let Some(found) = self.names.iter().position(|name| *name == label) {
                return found as u32;
            }
        } else if let Some(&found) = self.index.get(label) {
            return found;
        }
        let number = self.names.len() as u32;
        self.names.push(label);
        if self.names.len() > SCAN_LABELS {
            if self.index.is_empty() {
                self.index.extend(self.names.iter().enumerate().map(|(number, name)| (*name, number as u32)));
            } else {
                self.index.insert(label, number);
            }
        }
        number
    }
}

/// The labels of the truth and of the predictions, numbered from 0 in order of appearance (so
/// fewer than rows × 2, below `MAX_CLASSES` for files under 4 GiB).
pub(crate) fn labels(matched: &Matched<'_>) -> Result<(Vec<u32>, Vec<u32>), ScoreError> {
    let mut labels = Labels::default();
    matched.read(|table, row, text| {
        if text.is_empty() {
            return Err(table.row_error(row, "empty label".to_owned()));
        }
        Ok(labels.number(text))
    })
}

/// Equal, non-empty lengths.
pub(crate) fn check_lengths(metric: Metric, truth: usize, predictions: usize) -> Result<(), ScoreError> {
    if truth != predictions {
        return Err(ScoreError::Undefined {
            metric,
            reason: format!("{truth} truth values but {predictions} predictions"),
        });
    }
    if truth == 0 {
        return Err(ScoreError::Undefined { metric, reason: "no values".to_owned() });
    }
    Ok(())
}

/// Fraction of equal classes.
pub fn accuracy(truth: &[u32], predictions: &[u32]) -> Result<f64, ScoreError> {
    check_lengths(Metric::Accuracy, truth.len(), predictions.len())?;
    let correct = truth.iter().zip(predictions).filter(|(truth, prediction)| truth == prediction).count();
    Ok(correct as f64 / truth.len() as f64)
}

/// Micro-averaged F1 of single-label data: every error is one false positive and one false
/// negative, so precision, recall and F1 all equal the accuracy.
pub fn f1_micro(truth: &[u32], predictions: &[u32]) -> Result<f64, ScoreError> {
    check_lengths(Metric::F1Micro, truth.len(), predictions.len())?;
    let correct = truth.iter().zip(predictions).filter(|(truth, prediction)| truth == prediction).count();
    let (true_positives, wrong) = (correct as f64, (truth.len() - correct) as f64);
    Ok(2.0 * true_positives / (2.0 * true_positives + 2.0 * wrong))
}

#[derive(Clone, Copy, Default)]
struct Counts {
    true_positives: u64,
    predicted: u64,
    actual: u64,
}

/// Per class: true positives, predictions of it, truths of it; only classes that occur.
fn class_counts(metric: Metric, truth: &[u32], predictions: &[u32]) -> Result<Vec<Counts>, ScoreError> {
    check_lengths(metric, truth.len(), predictions.len())?;
    let largest = truth.iter().chain(predictions).copied().max().unwrap_or(0);
    if largest >= MAX_CLASSES {
        return Err(ScoreError::Undefined { metric, reason: format!("class {largest} is over {MAX_CLASSES}") });
    }
    let mut counts = vec![Counts::default(); largest as usize + 1];
    for (&truth, &prediction) in truth.iter().zip(predictions) {
        counts[truth as usize].actual += 1;
        counts[prediction as usize].predicted += 1;
        counts[truth as usize].true_positives += u64::from(truth == prediction);
    }
    counts.retain(|counts| counts.actual + counts.predicted > 0);
    Ok(counts)
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

fn mean(values: impl Iterator<Item = f64>, count: usize) -> f64 {
    values.sum::<f64>() / count as f64
}

pub fn precision_macro(truth: &[u32], predictions: &[u32]) -> Result<f64, ScoreError> {
    let counts = class_counts(Metric::PrecisionMacro, truth, predictions)?;
    Ok(mean(counts.iter().map(|c| ratio(c.true_positives, c.predicted)), counts.len()))
}

pub fn recall_macro(truth: &[u32], predictions: &[u32]) -> Result<f64, ScoreError> {
    let counts = class_counts(Metric::RecallMacro, truth, predictions)?;
    Ok(mean(counts.iter().map(|c| ratio(c.true_positives, c.actual)), counts.len()))
}

pub fn f1_macro(truth: &[u32], predictions: &[u32]) -> Result<f64, ScoreError> {
    let counts = class_counts(Metric::F1Macro, truth, predictions)?;
    Ok(mean(counts.iter().map(|c| ratio(2 * c.true_positives, c.predicted + c.actual)), counts.len()))
}
