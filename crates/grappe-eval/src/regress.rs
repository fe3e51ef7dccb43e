//! Regression metrics, as scikit-learn 1.9 defines them: `mean_absolute_error`,
//! `root_mean_squared_error`, `r2_score` (with `force_finite`: constant truth gives 1.0 for
//! perfect predictions and 0.0 otherwise; fewer than two rows is undefined, where scikit-learn
//! warns and returns NaN).
//!
//! One pass each; R²'s denominator is kept with Welford's update, exact for constant truth.

use crate::Metric;
use crate::error::ScoreError;
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
        Err(_) => Err(table.row_error(row, format!("\"{}\" is not a number", crate::error::shorten(text)))),
    }
}

/// Both numbers of a truth row.
fn pair(matched: &Matched<'_>, row: u32) -> Result<(f64, f64), ScoreError> {
    let (truth_text, prediction_text) = matched.values(row);
    let truth = number(matched.truth, row, truth_text)?;
    let prediction = number(matched.predictions, matched.partner(row), prediction_text)?;
    Ok((truth, prediction))
}

pub(crate) fn check(matched: &Matched<'_>) -> Result<(), ScoreError> {
    (0..matched.len()).try_for_each(|row| pair(matched, row).map(drop))
}

pub(crate) fn mae(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let (mut sum, mut count) = (0.0, 0u64);
    for row in rows {
        let (truth, prediction) = pair(matched, row)?;
        sum += (truth - prediction).abs();
        count += 1;
    }
    Ok(sum / count as f64)
}

pub(crate) fn rmse(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let (mut sum, mut count) = (0.0, 0u64);
    for row in rows {
        let (truth, prediction) = pair(matched, row)?;
        sum += (truth - prediction) * (truth - prediction);
        count += 1;
    }
    Ok((sum / count as f64).sqrt())
}

pub(crate) fn r2(matched: &Matched<'_>, rows: impl Iterator<Item = u32>) -> Result<f64, ScoreError> {
    let (mut residual, mut mean, mut spread, mut count) = (0.0, 0.0, 0.0, 0u64);
    for row in rows {
        let (truth, prediction) = pair(matched, row)?;
        residual += (truth - prediction) * (truth - prediction);
        count += 1;
        let delta = truth - mean;
        mean += delta / count as f64;
        spread += delta * (truth - mean);
    }
    if count < 2 {
        return Err(ScoreError::Undefined {
            metric: Metric::R2,
            reason: "fewer than two rows (scikit-learn warns and returns NaN)".to_owned(),
        });
    }
    Ok(match (residual == 0.0, spread == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - residual / spread,
    })
}
