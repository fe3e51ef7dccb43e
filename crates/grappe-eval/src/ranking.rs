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

/// Sorts keys by 11-bit digits, least significant first (stable counting passes), skipping a
/// digit that all keys share: scores in [0, 1] share their top bits. Linear time, where a
/// comparison sort of 10 million keys takes several times longer; 2048 buckets keep each
/// pass's writes within the caches.
fn radix_sort(keys: &mut Vec<u64>) {
    const BITS: usize = 11;
    const DIGITS: usize = 64usize.div_ceil(BITS);
    const BUCKETS: usize = 1 << BITS;
    let digit = |key: u64, pass: usize| ((key >> (BITS * pass)) as usize) & (BUCKETS - 1);
    // One histogram of each digit, in one read of the keys (flat, off the stack).
    let mut counts = vec![0usize; BUCKETS * DIGITS];
    for &key in keys.iter() {
        for pass in 0..DIGITS {
            counts[pass * BUCKETS + digit(key, pass)] += 1;
        }
    }
    let mut buffer = vec![0u64; keys.len()];
    for (pass, counts) in counts.chunks_exact_mut(BUCKETS).enumerate() {
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut next = 0;
        for count in counts.iter_mut() {
            let start = next;
            next += *count;
            *count = start;
        }
        for &key in keys.iter() {
            let slot = &mut counts[digit(key, pass)];
            buffer[*slot] = key;
            *slot += 1;
        }
        std::mem::swap(keys, &mut buffer);
    }
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
    radix_sort(&mut positives);
    radix_sort(&mut negatives);
    // Twice U: each positive earns 2 per negative below it and 1 per negative tied with it.
    let mut twice_u: u128 = 0;
    let (mut below, mut start) = (0usize, 0usize);
    while start < positives.len() {
        let key = positives[start];
        // Linear scans: each key is passed once (a binary search per group costs cache misses).
        let mut end = start + 1;
        while end < positives.len() && positives[end] == key {
            end += 1;
        }
        while below < negatives.len() && negatives[below] < key {
            below += 1;
        }
        let mut tied_end = below;
        while tied_end < negatives.len() && negatives[tied_end] == key {
            tied_end += 1;
        }
        twice_u += (end - start) as u128 * (2 * below + (tied_end - below)) as u128;
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

#[cfg(test)]
mod tests {
    use super::{radix_sort, sort_key};

    #[test]
    fn radix_sort_orders_scores_as_numbers() {
        let scores = [0.5, -0.0, 0.0, 1.0, -3.5, 1e-300, f64::MAX, -f64::MAX, 0.25, 0.5, 7.0];
        let mut keys: Vec<u64> = scores.iter().map(|&score| sort_key(score)).collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        radix_sort(&mut keys);
        assert_eq!(keys, expected);
        let mut seeded: Vec<u64> = (0..10_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let mut expected = seeded.clone();
        expected.sort_unstable();
        radix_sort(&mut seeded);
        assert_eq!(seeded, expected);
    }
}
