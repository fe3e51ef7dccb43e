//! `grappe score`: a metric of a predictions file against a truth file, through `grappe-eval`.
//! Prints `{"metric": NAME, "value": X}` with `--json`, a plain line otherwise. Every error (an
//! unreadable file, a bad row, an unknown metric) goes to stderr with exit code 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use grappe_eval::{Metric, Role, Table};
use serde_json::json;

#[derive(Args)]
pub struct ScoreFlags {
    /// accuracy, f1_macro, f1_micro, precision_macro, recall_macro, mae, rmse, r2, roc_auc,
    /// log_loss, bleu, chrf or exact_match.
    #[arg(long)]
    metric: String,
    /// CSV with a header: an `id` column and one value column.
    #[arg(long)]
    truth: PathBuf,
    /// CSV with a header: an `id` column and one value column, rows matched to the truth by id.
    #[arg(long)]
    predictions: PathBuf,
    /// Print `{"metric": NAME, "value": X}` instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// Usage and data errors: a bad flag, file or row.
const DATA_ERROR: u8 = 2;

pub fn run(flags: ScoreFlags) -> ExitCode {
    match score(&flags) {
        Ok((metric, value, rows)) => {
            if flags.json {
                outln!("{}", json!({"metric": metric.name(), "value": value}));
            } else {
                let direction = if metric.higher_is_better() { "higher" } else { "lower" };
                outln!("{metric}: {value} ({rows} rows; {direction} is better)");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(DATA_ERROR)
        }
    }
}

fn score(flags: &ScoreFlags) -> Result<(Metric, f64, usize), String> {
    let metric: Metric = flags.metric.parse().map_err(|error| format!("{error}"))?;
    // The two files are read and parsed at once, one thread each.
    let (truth, predictions) = std::thread::scope(|scope| {
        let truth = scope.spawn(|| load(&flags.truth, Role::Truth));
        let predictions = load(&flags.predictions, Role::Predictions);
        let truth = truth.join().unwrap_or_else(|_| Err("reading the truth failed".to_owned()));
        (truth, predictions)
    });
    let (truth, predictions) = (truth?, predictions?);
    let value = grappe_eval::score(metric, &truth, &predictions).map_err(|error| error.to_string())?;
    Ok((metric, value, truth.len()))
}

fn load(path: &Path, role: Role) -> Result<Table, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("{role}: reading {}: {error}", path.display()))?;
    Table::from_bytes(bytes, role).map_err(|error| format!("{error} ({})", path.display()))
}
