//! Binary scores, as scikit-learn 1.9 defines them: `roc_auc_score` (ties count one half, as
//! its trapezoids over tied thresholds do) and `log_loss` (probabilities clipped to
//! `[eps, 1 - eps]`, eps the f64 machine epsilon, each column after `1 - p` is formed).
//!
//! Truth is 0 or 1. ROC AUC sorts the scores of each class once and counts, for each positive,
//! the negatives below it and tied with it: the Mann-Whitney U statistic, in exact integers.

use crate::Metric;
use crate::classify::check_lengths;
use crate::error::ScoreError;
use crate::matching::Matched;
use crate::regress::number;
use crate::table::Role;

/// The classes of the truth (0 or 1, written as numbers: `1`, `1.0`) and the scores of the
/// predictions; for log loss, probabilities in [0, 1].
pub(crate) fn classes_and_scores(metric: Metric, matched: &Matched<'_>) -> Result<(Vec<bool>, Vec<f64>), ScoreError> {
    let (truth, scores) = matched.read(|table, row, text| {
        let value = number(table, row, text)?;
        match table.role() {
            Role::Truth if value != 0.0 && value != 1.0 => {
                Err(table.row_error(row, format!("the truth is {value}: expected 0 or 1")))
            }
            Role::Predictions if metric == Metric::LogLoss && !(0.0..=1.0).contains(&value) => {
                Err(table.row_error(row, format!("the probability {value} is outside [0, 1]")))
            }
            _ => Ok(value),
        }
    })?;
    Ok((truth.into_iter().map(|class| class == 1.0).collect(), scores))
}

fn one_class(metric: Metric, positive: bool) -> ScoreError {
    let class = u8::from(positive);
    ScoreError::Undefined {
        metric,
        reason: format!("the truth holds only one class ({class}); both 0 and 1 are needed"),
    }
}

/// An f64's bits, ordered as the numbers are (-0.0 and 0.0 made one). NaN sorts past the ends.
fn sort_key(value: f64) -> u64 {
    let bits = (value + 0.0).to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

/// Area under the ROC curve of `scores` (higher meaning class 1) against `truth`.
pub fn roc_auc(truth: &[bool], scores: &[f64]) -> Result<f64, ScoreError> {
    check_lengths(Metric::RocAuc, truth.len(), scores.len())?;
    let mut positives = Vec::new();
    let mut negatives = Vec::new();
    for (&truth, &score) in truth.iter().zip(scores) {
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

/// Mean negative log-likelihood of `truth` under `probabilities` (of class 1, in [0, 1]).
pub fn log_loss(truth: &[bool], probabilities: &[f64]) -> Result<f64, ScoreError> {
    check_lengths(Metric::LogLoss, truth.len(), probabilities.len())?;
    let eps = f64::EPSILON;
    let (mut sum, mut positives) = (0.0, 0usize);
    for (&truth, &probability) in truth.iter().zip(probabilities) {
        let of_truth = if truth { probability } else { 1.0 - probability };
        sum -= of_truth.clamp(eps, 1.0 - eps).ln();
        positives += usize::from(truth);
    }
    if positives == 0 || positives == truth.len() {
        return Err(one_class(Metric::LogLoss, positives != 0));
    }
    Ok(sum / truth.len() as f64)
}
