//! Binary scores, as scikit-learn 1.9 defines them: `roc_auc_score` (ties count one half, as
//! its trapezoids over tied thresholds do) and `log_loss` (probabilities clipped to
//! `[eps, 1 - eps]`, eps the f64 machine epsilon, each column after `1 - p` is formed).
//!
//! Truth is 0 or 1. ROC AUC sorts the scores of each class once and counts, for each positive,
//! the negatives below it and tied with it: the Mann-Whitney U statistic, in exact integers.

use crate::Metric;
use crate::error::ScoreError;
use crate::matching::Matched;
use crate::regress::number;

/// A truth value of 0 or 1 (as a number: `1`, `1.0`).
fn class(matched: &Matched<'_>, row: u32, text: &str) -> Result<bool, ScoreError> {
    let value = number(matched.truth, row, text)?;
    if value == 0.0 || value == 1.0 {
        Ok(value == 1.0)
    } else {
        Err(matched.truth.row_error(row, format!("the truth is {value}: expected 0 or 1")))
    }
}

fn pair(matched: &Matched<'_>, metric: Metric, row: u32) -> Result<(bool, f64), ScoreError> {
    let (truth_text, prediction_text) = matched.values(row);
    let truth = class(matched, row, truth_text)?;
    let prediction_row = matched.partner(row);
    let prediction = number(matched.predictions, prediction_row, prediction_text)?;
    if metric == Metric::LogLoss && !(0.0..=1.0).contains(&prediction) {
        return Err(matched
            .predictions
            .row_error(prediction_row, format!("the probability {prediction} is outside [0, 1]")));
    }
    Ok((truth, prediction))
}

pub(crate) fn check(metric: Metric, matched: &Matched<'_>) -> Result<(), ScoreError> {
    (0..matched.len()).try_for_each(|row| pair(matched, metric, row).map(drop))
}

fn one_class(metric: Metric, positive: bool) -> ScoreError {
    let class = u8::from(positive);
    ScoreError::Undefined {
        metric,
        reason: format!("the truth holds only one class ({class}); both 0 and 1 are needed"),
    }
}

/// An f64's bits, ordered as the numbers are (-0.0 and 0.0 made one).
fn sort_key(value: f64) -> u64 {
    let bits = (value + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

pub(crate) fn roc_auc(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for row in rows {
        let (truth, score) = pair(matched, Metric::RocAuc, row)?;
        if truth { positives.push(sort_key(score)) } else { negatives.push(sort_key(score)) }
    }
    if positives.is_empty() || negatives.is_empty() {
        return Err(one_class(Metric::RocAuc, !positives.is_empty()));
    }
    positives.sort_unstable();
    negatives.sort_unstable();
    // Twice U: each positive earns 2 per negative below it and 1 per negative tied with it.
    let mut twice_u: u128 = 0;
    let (mut below, mut start) = (0usize, 0usize);
    while start < positives.len() {
        let key = positives[start];
        let end = start + positives[start..].partition_point(|&other| other == key);
        while below < negatives.len() && negatives[below] < key {
            below += 1;
        }
        let tied = negatives[below..].partition_point(|&other| other == key);
        twice_u += (end - start) as u128 * (2 * below + tied) as u128;
        start = end;
    }
    let pairs = 2 * positives.len() as u128 * negatives.len() as u128;
    Ok(twice_u as f64 / pairs as f64)
}

pub(crate) fn log_loss(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let eps = f64::EPSILON;
    let (mut sum, mut count, mut positives) = (0.0, 0u64, 0u64);
    for row in rows {
        let (truth, probability) = pair(matched, Metric::LogLoss, row)?;
        let of_truth = if truth { probability } else { 1.0 - probability };
        sum -= of_truth.clamp(eps, 1.0 - eps).ln();
        count += 1;
        positives += u64::from(truth);
    }
    if positives == 0 || positives == count {
        return Err(one_class(Metric::LogLoss, positives != 0));
    }
    Ok(sum / count as f64)
}
