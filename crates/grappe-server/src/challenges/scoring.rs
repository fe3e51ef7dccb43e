//! The loop that ends code submissions. It runs in the process that holds the scheduler lease
//! (the one whose machine runs the jobs and keeps their working directories): for each running
//! submission, once its job ended, it reads the job's `predictions.csv` (a regular file, never
//! through a link, bounded) and scores it against the hidden labels, outside the job. A job that
//! failed through the team's fault (its exit code, its time limit, no or bad predictions) counts
//! against the limits; one the platform failed (not started, cancelled, not run before the
//! submission's deadline) does not. No submission stays running past its deadline.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use grappe_db::{JobRow, Outcome, Shown, SubmissionRow, now_ms};
use tokio::sync::watch;

use crate::challenges::{challenge_for, metric_of, score_predictions, shown};
use crate::kit::state::AppState;

/// How often running submissions are looked at.
const TICK: Duration = Duration::from_secs(1);
/// The most submissions one pass ends.
const BATCH: i64 = 100;
/// A submission whose job was never named (the server stopped between the two writes) is
/// given up after this long.
const UNNAMED_GRACE_MS: i64 = 60_000;
/// The name of the file a code submission writes in its working directory.
pub const PREDICTIONS: &str = "predictions.csv";

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => break,
        }
        if state.scheduler_here.load(Ordering::Relaxed)
            && let Err(error) = pass(&state).await
        {
            tracing::warn!(error = %format!("{error:#}"), "scoring code submissions failed");
        }
    }
}

async fn pass(state: &AppState) -> anyhow::Result<()> {
    for (submission, _) in state.db.running_submissions(BATCH).await? {
        let job = match submission.job_id {
            Some(job) => state.db.job(job).await?,
            None => None,
        };
        let Some(outcome) = settle(state, &submission, job.as_ref()).await? else { continue };
        let challenge = challenge_for(state, submission.challenge_id).await?;
        let metric = metric_of(&challenge)?;
        let show = shown(&challenge, metric);
        let shown = Shown { higher_is_better: metric.higher_is_better(), show: &show };
        state.db.end_submission(&submission, &outcome, shown).await?;
    }
    Ok(())
}

/// How a running submission ends now, if it does.
async fn settle(state: &AppState, submission: &SubmissionRow, job: Option<&JobRow>) -> anyhow::Result<Option<Outcome>> {
    let now = now_ms();
    let platform = |reason: &str| Some(Outcome::Failed { reason: reason.to_owned(), counts: false });
    let team = |reason: String| Some(Outcome::Failed { reason, counts: true });
    let Some(job) = job else {
        return Ok((now - submission.created_at > UNNAMED_GRACE_MS)
            .then(|| Outcome::Failed { reason: "the platform did not start it".to_owned(), counts: false }));
    };
    Ok(match job.state.as_str() {
        "completed" => Some(match read_predictions(state, job.id, PREDICTIONS).await {
            Ok(bytes) => {
                let challenge = challenge_for(state, submission.challenge_id).await?;
                match score_predictions(state, &challenge, &bytes).await {
                    Ok((public, private)) => Outcome::Scored { public, private },
                    Err(error) => Outcome::Failed { reason: format!("{PREDICTIONS}: {error}"), counts: true },
                }
            }
            Err(reason) => Outcome::Failed { reason, counts: true },
        }),
        "failed" => match job.exit_code {
            Some(code) => team(format!("the code failed (exit code {code}){}", with_reason(&job.reason))),
            None => platform(&format!("the platform could not run it{}", with_reason(&job.reason))),
        },
        "timeout" => team("the code reached its time limit".to_owned()),
        "cancelled" => platform("cancelled"),
        _ if submission.deadline.is_some_and(|deadline| now > deadline) => {
            state.db.cancel_job(job.id, "grappe").await?;
            state.scheduler_wake.notify_one();
            platform("the platform did not run it before its deadline")
        }
        _ => None,
    })
}

fn with_reason(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}

/// The predictions a job left at `relative` in its working directory, or why there are none to
/// score. Read only as a regular file, opened and checked to be the very file found (no link, no
/// swap in between), and at most the upload limit.
pub async fn read_predictions(state: &AppState, job_id: i64, relative: &str) -> Result<Vec<u8>, String> {
    let path = crate::compute::scheduler::job_work_path(state, job_id, relative)?;
    let limit = state.config.limits.dataset_upload_bytes as u64;
    tokio::task::spawn_blocking(move || read_regular(&path, limit))
        .await
        .map_err(|error| format!("reading {PREDICTIONS}: {error}"))?
}

fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let missing = || format!("the job wrote no {name} in its working directory");
    let found = std::fs::symlink_metadata(path).map_err(|_| missing())?;
    if !found.file_type().is_file() {
        return Err(format!("{name} is not a regular file"));
    }
    let file = std::fs::File::open(path).map_err(|_| missing())?;
    let opened = file.metadata().map_err(|_| missing())?;
    if (opened.dev(), opened.ino()) != (found.dev(), found.ino()) || !opened.file_type().is_file() {
        return Err(format!("{name} changed while it was read"));
    }
    if opened.len() > limit {
        return Err(format!("{name} is larger than {limit} bytes"));
    }
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|error| format!("reading {name}: {error}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{name} is larger than {limit} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_are_read_only_as_a_regular_file() {
        let dir = std::env::temp_dir().join(format!("grappe-predictions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("real.csv");
        std::fs::write(&file, "id,label\n1,a\n").unwrap();
        assert_eq!(read_regular(&file, 1000).unwrap(), b"id,label\n1,a\n");
        assert!(read_regular(&file, 4).unwrap_err().contains("larger"));
        let link = dir.join("link.csv");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_regular(&link, 1000).unwrap_err().contains("not a regular file"), "a link is refused");
        assert!(read_regular(&dir, 1000).unwrap_err().contains("not a regular file"), "a folder is refused");
        assert!(read_regular(&dir.join("absent.csv"), 1000).unwrap_err().contains("wrote no"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
