//! Fine-tuning jobs of the gateway (`/v1/fine_tuning/jobs`): a project's request to train a
//! served registry version further on one of its files, quoted, then run as a compute job of the
//! project. Every change of status is one conditional `UPDATE`, so that two requests (a start
//! and a cancel, two starts) cannot both win.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbResult, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FineTuneRow {
    pub id: i64,
    pub project_id: i64,
    pub key_id: i64,
    pub base_model_id: i64,
    pub training_file_id: i64,
    pub epochs: i64,
    pub seed: i64,
    pub suffix: Option<String>,
    pub examples: i64,
    pub trained_tokens: i64,
    pub time_limit_s: i64,
    /// The quote shown before the start, JSON.
    pub quote: String,
    /// validated, queued, running, registering (its job completed, its output being registered),
    /// succeeded, failed, cancelled.
    pub status: String,
    pub job_id: Option<i64>,
    pub fine_tuned_model: Option<String>,
    pub result_version_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

pub struct NewFineTune<'a> {
    pub project_id: i64,
    pub key_id: i64,
    pub base_model_id: i64,
    pub training_file_id: i64,
    pub epochs: i64,
    pub seed: i64,
    pub suffix: Option<&'a str>,
    pub examples: i64,
    pub trained_tokens: i64,
    pub time_limit_s: i64,
    pub quote: &'a str,
}

/// How a fine-tuning job ended.
pub enum FineTuneEnd<'a> {
    Succeeded { model: &'a str, version_id: i64 },
    Failed { error: &'a str },
    Cancelled,
}

const COLUMNS: &str = "id, project_id, key_id, base_model_id, training_file_id, epochs, seed, suffix, examples, \
    trained_tokens, time_limit_s, quote, status, job_id, fine_tuned_model, result_version_id, error, created_at, \
    started_at, finished_at";

fn fine_tune_from(row: &AnyRow) -> DbResult<FineTuneRow> {
    Ok(FineTuneRow {
        id: row.try_get(0)?,
        project_id: row.try_get(1)?,
        key_id: row.try_get(2)?,
        base_model_id: row.try_get(3)?,
        training_file_id: row.try_get(4)?,
        epochs: row.try_get(5)?,
        seed: row.try_get(6)?,
        suffix: row.try_get(7)?,
        examples: row.try_get(8)?,
        trained_tokens: row.try_get(9)?,
        time_limit_s: row.try_get(10)?,
        quote: row.try_get(11)?,
        status: row.try_get(12)?,
        job_id: row.try_get(13)?,
        fine_tuned_model: row.try_get(14)?,
        result_version_id: row.try_get(15)?,
        error: row.try_get(16)?,
        created_at: row.try_get(17)?,
        started_at: row.try_get(18)?,
        finished_at: row.try_get(19)?,
    })
}

impl Db {
    /// Records a quoted fine-tuning job, `validated`: nothing runs until it is started.
    pub async fn create_fine_tune(&self, new: &NewFineTune<'_>) -> DbResult<FineTuneRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO gateway_fine_tunes (project_id, key_id, base_model_id, training_file_id, epochs, seed, \
             suffix, examples, trained_tokens, time_limit_s, quote, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'validated', $12) RETURNING {COLUMNS}"
        ))
        .bind(new.project_id)
        .bind(new.key_id)
        .bind(new.base_model_id)
        .bind(new.training_file_id)
        .bind(new.epochs)
        .bind(new.seed)
        .bind(new.suffix)
        .bind(new.examples)
        .bind(new.trained_tokens)
        .bind(new.time_limit_s)
        .bind(new.quote)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let created = fine_tune_from(&row)?;
        let object = format!("project:{}", new.project_id);
        let detail = format!(
            "fine-tuning job {} of model {} on file {}: {} epochs, {} tokens",
            created.id, new.base_model_id, new.training_file_id, new.epochs, new.trained_tokens
        );
        let actor = format!("key:{}", new.key_id);
        let entry = AuditEntry { actor: &actor, action: "gateway.fine_tune.create", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// A project's fine-tuning job.
    pub async fn fine_tune(&self, project_id: i64, id: i64) -> DbResult<Option<FineTuneRow>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM gateway_fine_tunes WHERE id = $1 AND project_id = $2"))
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(fine_tune_from).transpose()
    }

    /// A project's fine-tuning jobs older than `before`, newest first, at most `limit`.
    pub async fn fine_tunes(&self, project_id: i64, before: i64, limit: i64) -> DbResult<Vec<FineTuneRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateway_fine_tunes WHERE project_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(project_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fine_tune_from).collect()
    }

    /// How many of a project's fine-tuning jobs have not ended (validated ones included).
    pub async fn open_fine_tunes(&self, project_id: i64) -> DbResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM gateway_fine_tunes WHERE project_id = $1 \
             AND status IN ('validated', 'queued', 'running', 'registering')",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Every fine-tuning job started and not ended, oldest first.
    pub async fn active_fine_tunes(&self) -> DbResult<Vec<FineTuneRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM gateway_fine_tunes WHERE status IN ('queued', 'running', 'registering') \
             ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fine_tune_from).collect()
    }

    /// Takes a validated job to `queued` before its compute job is submitted; false if it was not
    /// `validated` (started already, or cancelled).
    pub async fn claim_fine_tune_start(&self, id: i64) -> DbResult<bool> {
        let done = self.write_one(sqlx::query(
            "UPDATE gateway_fine_tunes SET status = 'queued', started_at = $1 WHERE id = $2 AND status = 'validated'",
        )
        .bind(now_ms())
        .bind(id)).await?;
        Ok(done == 1)
    }

    /// Gives back a start whose compute job was refused: `validated` again.
    pub async fn unclaim_fine_tune_start(&self, id: i64) -> DbResult<()> {
        self.write_one(sqlx::query(
            "UPDATE gateway_fine_tunes SET status = 'validated', started_at = NULL WHERE id = $1 AND status = 'queued' \
             AND job_id IS NULL",
        )
        .bind(id)).await?;
        Ok(())
    }

    /// Records the compute job of a start still `queued`; false if it was cancelled (or given up)
    /// meanwhile, and the job must then be cancelled too.
    pub async fn set_fine_tune_job(&self, id: i64, job_id: i64) -> DbResult<bool> {
        let done = self
            .write_one(
                sqlx::query(
                    "UPDATE gateway_fine_tunes SET job_id = $1 WHERE id = $2 AND status = 'queued' AND job_id IS NULL",
                )
                .bind(job_id)
                .bind(id),
            )
            .await?;
        Ok(done == 1)
    }

    pub async fn fine_tune_running(&self, id: i64) -> DbResult<()> {
        self.write_one(
            sqlx::query("UPDATE gateway_fine_tunes SET status = 'running' WHERE id = $1 AND status = 'queued'")
                .bind(id),
        )
        .await?;
        Ok(())
    }

    /// Takes a job whose compute job completed to `registering` (or finds it there, after a
    /// restart), so that it can no longer be cancelled; false if it had ended.
    pub async fn claim_fine_tune_registration(&self, id: i64) -> DbResult<bool> {
        let done = self
            .write_one(
                sqlx::query(
                    "UPDATE gateway_fine_tunes SET status = 'registering' WHERE id = $1 \
             AND status IN ('queued', 'running', 'registering')",
                )
                .bind(id),
            )
            .await?;
        Ok(done == 1)
    }

    /// Ends a fine-tuning job that has not ended; false if it had. Success comes only from
    /// `registering`; a cancel only before it.
    pub async fn end_fine_tune(&self, id: i64, end: &FineTuneEnd<'_>) -> DbResult<bool> {
        let (status, model, version, error, from) = match end {
            FineTuneEnd::Succeeded { model, version_id } => {
                ("succeeded", Some(*model), Some(*version_id), None, "('registering')")
            }
            FineTuneEnd::Failed { error } => {
                ("failed", None, None, Some(*error), "('queued', 'running', 'registering')")
            }
            FineTuneEnd::Cancelled => ("cancelled", None, None, None, "('validated', 'queued', 'running')"),
        };
        let done = self.write_one(sqlx::query(&format!(
            "UPDATE gateway_fine_tunes SET status = $1, fine_tuned_model = $2, result_version_id = $3, error = $4, \
             finished_at = $5 WHERE id = $6 AND status IN {from}"
        ))
        .bind(status)
        .bind(model)
        .bind(version)
        .bind(error)
        .bind(now_ms())
        .bind(id)).await?;
        Ok(done == 1)
    }
}
