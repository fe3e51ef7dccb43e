//! Classification metrics, as scikit-learn 1.9 defines them: `accuracy_score`, and
//! `precision_score`, `recall_score`, `f1_score` with `average="macro"` or `"micro"`.
//!
//! Labels are compared as text. The labels averaged over are those of the truth and of the
//! predictions together, as scikit-learn's `unique_labels`; a ratio with a zero denominator is
//! 0, scikit-learn's default `zero_division` (with its warning).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::error::ScoreError;
use crate::matching::Matched;
use crate::table::Table;

/// Up to this many labels are looked up by a linear scan, faster than hashing for a few.
const SCAN_LABELS: usize = 16;

/// Labels numbered in order of appearance.
#[derive(Default)]
struct Labels<'a> {
    names: Vec<&'a str>,
    index: HashMap<&'a str, u32, RandomState>,
}

impl<'a> Labels<'a> {
    fn number(&mut self, label: &'a str) -> usize {
        if self.names.len() <= SCAN_LABELS {
            if let Some(found) = self.names.iter().position(|name| *name == label) {
                return found;
            }
        } else if let Some(&found) = self.index.get(label) {
            return found as usize;
        }
        let number = self.names.len();
        self.names.push(label);
        if self.names.len() > SCAN_LABELS {
            if self.index.is_empty() {
                self.index.extend(self.names.iter().enumerate().map(|(number, name)| (*name, number as u32)));
            } else {
                self.index.insert(label, number as u32);
            }
        }
        number
    }
}

fn label<'t>(table: &Table, row: u32, text: &'t str) -> Result<&'t str, ScoreError> {
    if text.is_empty() {
        return Err(table.row_error(row, "empty label".to_owned()));
    }
    Ok(text)
}

fn pair<'a>(matched: &Matched<'a>, row: u32) -> Result<(&'a str, &'a str), ScoreError> {
    let (truth, prediction) = matched.values(row);
    Ok((label(matched.truth, row, truth)?, label(matched.predictions, matched.partner(row), prediction)?))
}

pub(crate) fn check(matched: &Matched<'_>) -> Result<(), ScoreError> {
    (0..matched.len()).try_for_each(|row| pair(matched, row).map(drop))
}

/// Rows whose labels are equal, and rows.
fn correct(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<(u64, u64), ScoreError> {
    let (mut correct, mut count) = (0u64, 0u64);
    for row in rows {
        let (truth, prediction) = pair(matched, row)?;
        correct += u64::from(truth == prediction);
        count += 1;
    }
    Ok((correct, count))
}

pub(crate) fn accuracy(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let (correct, count) = correct(matched, rows)?;
    Ok(correct as f64 / count as f64)
}

/// Micro-averaged F1 of single-label data: every error is one false positive and one false
/// negative, so precision, recall and F1 all equal the accuracy.
pub(crate) fn f1_micro(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let (correct, count) = correct(matched, rows)?;
    let (true_positives, wrong) = (correct as f64, (count - correct) as f64);
    let denominator = 2.0 * true_positives + 2.0 * wrong;
    Ok(if denominator > 0.0 { 2.0 * true_positives / denominator } else { 0.0 })
}

#[derive(Clone, Copy)]
pub(crate) enum Average {
    Precision,
    Recall,
    F1,
}

#[derive(Clone, Copy, Default)]
struct Counts {
    true_positives: u64,
    predicted: u64,
    actual: u64,
}

pub(crate) fn macro_average(
    matched: &Matched<'_>,
    rows: impl Iterator<Item = u32>,
    average: Average,
) -> Result<f64, ScoreError> {
    let mut labels = Labels::default();
    let mut counts: Vec<Counts> = Vec::new();
    for row in rows {
        let (truth, prediction) = pair(matched, row)?;
        let truth = labels.number(truth);
        let prediction = labels.number(prediction);
        if counts.len() < labels.names.len() {
            counts.resize(labels.names.len(), Counts::default());
        }
        counts[truth].actual += 1;
        counts[prediction].predicted += 1;
        counts[truth].true_positives += u64::from(truth == prediction);
    }
    let ratio = |numerator: u64, denominator: u64| {
        if denominator == 0 { 0.0 } else { numerator as f64 / denominator as f64 }
    };
    let sum: f64 = counts
        .iter()
        .map(|counts| match average {
            Average::Precision => ratio(counts.true_positives, counts.predicted),
            Average::Recall => ratio(counts.true_positives, counts.actual),
            Average::F1 => ratio(2 * counts.true_positives, counts.predicted + counts.actual),
        })
        .sum();
    Ok(sum / counts.len() as f64)
}
