//! Regression metrics, as scikit-learn 1.9 defines them: `mean_absolute_error`,
//! `root_mean_squared_error`, `r2_score` (with `force_finite`: constant truth gives 1.0 for
//! perfect predictions and 0.0 otherwise; fewer than two rows is undefined, where scikit-learn
//! warns and returns NaN).
//!
//! One pass each, two for R² (the mean, then the squares).

use crate::Metric;
use crate::classify::check_lengths;
use crate::error::{ScoreError, shorten};
use crate::matching::Matched;
use crate::table::Table;

/// A finite number, or an error naming the row.
pub(crate) fn number(table: &Table, row: u32, text: &str) -> Result<f64, ScoreError> {
    let trimmed = text.trim_ascii();
    match trimmed.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(value) if value.is_nan() => {
            Err(table.row_error(row, "the value is NaN: expected a finite number".to_owned()))
        }
        Ok(_) => Err(table.row_error(row, "the value is infinite: expected a finite number".to_owned())),
        Err(_) if trimmed.is_empty() => Err(table.row_error(row, "empty value: expected a number".to_owned())),
        Err(_) => Err(table.row_error(row, format!("\"{}\" is not a number", shorten(text)))),
    }
}

/// The numbers of the truth and of the predictions.
pub(crate) fn numbers(matched: &Matched<'_>) -> Result<(Vec<f64>, Vec<f64>), ScoreError> {
    matched.read(number)
}

pub fn mae(truth: &[f64], predictions: &[f64]) -> Result<f64, ScoreError> {
    check_lengths(Metric::Mae, truth.len(), predictions.len())?;
    let sum: f64 = truth.iter().zip(predictions).map(|(t, p)| (t - p).abs()).sum();
    Ok(sum / truth.len() as f64)
}

pub fn rmse(truth: &[f64], predictions: &[f64]) -> Result<f64, ScoreError> {
    check_lengths(Metric::Rmse, truth.len(), predictions.len())?;
    let sum: f64 = truth.iter().zip(predictions).map(|(t, p)| (t - p) * (t - p)).sum();
    Ok((sum / truth.len() as f64).sqrt())
}

pub fn r2(truth: &[f64], predictions: &[f64]) -> Result<f64, ScoreError> {
    check_lengths(Metric::R2, truth.len(), predictions.len())?;
    if truth.len() < 2 {
        return Err(ScoreError::Undefined {
            metric: Metric::R2,
            reason: "fewer than two rows (scikit-learn warns and returns NaN)".to_owned(),
        });
    }
    // Two passes, as scikit-learn: the mean, then the squares. Constant truth is seen exactly
    // (a computed mean of equal values may differ from them in the last bit).
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let constant = truth.iter().all(|&value| value == truth[0]);
    let (mut residual, mut spread) = (0.0, 0.0);
    for (&truth, &prediction) in truth.iter().zip(predictions) {
        residual += (truth - prediction) * (truth - prediction);
        spread += (truth - mean) * (truth - mean);
    }
    if constant {
        spread = 0.0;
    }
    Ok(match (residual == 0.0, spread == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - residual / spread,
    })
}
