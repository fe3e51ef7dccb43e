//! bench/score's in-memory half: the metric alone, on arrays already read and matched, as the
//! peer times scikit-learn on numpy arrays.
//!
//! Usage: inmemory METRIC TRUTH.csv PREDICTIONS.csv; prints `{"value": X, "seconds": S}`.

use std::collections::HashMap;
use std::time::Instant;

use grappe_eval::{Metric, Role, Table, arrays};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, metric, truth, predictions] = &args[..] else {
        return Err("usage: inmemory METRIC TRUTH.csv PREDICTIONS.csv".into());
    };
    let metric: Metric = metric.parse()?;
    let truth = Table::parse(&std::fs::read(truth)?, Role::Truth)?;
    let predictions = Table::parse(&std::fs::read(predictions)?, Role::Predictions)?;
    let by_id: HashMap<&str, &str> = predictions.ids().zip(predictions.values()).collect();
    let truth_values: Vec<&str> = truth.values().collect();
    let matched: Vec<&str> =
        truth.ids().map(|id| by_id.get(id).copied().ok_or("unmatched id")).collect::<Result<_, _>>()?;
    let numbers = |values: &[&str]| values.iter().map(|value| value.parse::<f64>()).collect::<Result<Vec<f64>, _>>();
    let (value, seconds) = match metric {
        Metric::Accuracy | Metric::F1Macro | Metric::F1Micro | Metric::PrecisionMacro | Metric::RecallMacro => {
            let mut classes = HashMap::new();
            let truth = numbered(&mut classes, &truth_values);
            let predictions = numbered(&mut classes, &matched);
            let compute = match metric {
                Metric::Accuracy => arrays::accuracy,
                Metric::F1Macro => arrays::f1_macro,
                Metric::F1Micro => arrays::f1_micro,
                Metric::PrecisionMacro => arrays::precision_macro,
                _ => arrays::recall_macro,
            };
            let start = Instant::now();
            (compute(&truth, &predictions)?, start.elapsed())
        }
        Metric::Mae | Metric::Rmse | Metric::R2 => {
            let (truth, predictions) = (numbers(&truth_values)?, numbers(&matched)?);
            let compute = match metric {
                Metric::Mae => arrays::mae,
                Metric::Rmse => arrays::rmse,
                _ => arrays::r2,
            };
            let start = Instant::now();
            (compute(&truth, &predictions)?, start.elapsed())
        }
        Metric::RocAuc | Metric::LogLoss => {
            let truth: Vec<bool> = numbers(&truth_values)?.iter().map(|&class| class == 1.0).collect();
            let scores = numbers(&matched)?;
            let start = Instant::now();
            let value = if metric == Metric::RocAuc {
                arrays::roc_auc(&truth, &scores)?
            } else {
                arrays::log_loss(&truth, &scores)?
            };
            (value, start.elapsed())
        }
        Metric::Bleu | Metric::Chrf | Metric::ExactMatch => {
            let compute = match metric {
                Metric::Bleu => arrays::bleu,
                Metric::Chrf => arrays::chrf,
                _ => arrays::exact_match,
            };
            let start = Instant::now();
            (compute(&truth_values, &matched)?, start.elapsed())
        }
    };
    println!("{{\"value\": {value:?}, \"seconds\": {}}}", seconds.as_secs_f64());
    Ok(())
}

/// Labels numbered from 0 in order of appearance, as scikit-learn's label encoding would.
fn numbered<'a>(classes: &mut HashMap<&'a str, u32>, labels: &[&'a str]) -> Vec<u32> {
    labels
        .iter()
        .map(|label| {
            let next = classes.len() as u32;
            *classes.entry(label).or_insert(next)
        })
        .collect()
}
