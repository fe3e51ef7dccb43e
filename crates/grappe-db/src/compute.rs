//! Projects, jobs, their timelines, metrics and usage. Every state change is a compare-and-set on
//! the job's current state with its event in the same transaction, so two processes can never
//! both move one job, and the timeline never disagrees with the state.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, conflict_as, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub gpu_hours: i64,
    pub cpu_hours: i64,
    pub storage_gb: i64,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub project_id: i64,
    pub user_id: Option<i64>,
    pub name: String,
    /// The argv, as a JSON array of strings.
    pub command: String,
    pub qos: String,
    pub cpus: i64,
    pub gpus: i64,
    pub memory_mb: i64,
    pub time_limit_s: i64,
    pub state: String,
    pub reason: String,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub submitted_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub instance: Option<String>,
    pub pid: Option<i64>,
    pub gpu_ids: String,
    pub cancel_requested: bool,
    /// The outside scheduler's id (Slurm's job id) once handed over.
    pub external_id: Option<String>,
}

pub struct NewJob<'a> {
    pub project_id: i64,
    pub user_id: Option<i64>,
    pub name: &'a str,
    pub command: &'a str,
    pub qos: &'a str,
    pub cpus: i64,
    pub gpus: i64,
    pub memory_mb: i64,
    pub time_limit_s: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub at: i64,
    pub state: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    pub step: i64,
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub gpu_seconds: i64,
    pub cpu_seconds: i64,
}

/// How a running job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending<'a> {
    /// `completed`, `failed`, `timeout` or `cancelled`.
    pub state: &'a str,
    pub exit_code: Option<i64>,
    pub reason: &'a str,
}

const PROJECT_COLUMNS: &str = "id, name, gpu_hours, cpu_hours, storage_gb, valid_from, valid_until, created_at";
const JOB_COLUMNS: &str = "id, project_id, user_id, name, command, qos, cpus, gpus, memory_mb, time_limit_s, state, \
    reason, exit_code, restart_count, submitted_at, started_at, ended_at, instance, pid, gpu_ids, cancel_requested, \
    external_id";

fn project_from(row: &AnyRow) -> DbResult<ProjectRow> {
    Ok(ProjectRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        gpu_hours: row.try_get("gpu_hours")?,
        cpu_hours: row.try_get("cpu_hours")?,
        storage_gb: row.try_get("storage_gb")?,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        created_at: row.try_get("created_at")?,
    })
}

fn job_from(row: &AnyRow) -> DbResult<JobRow> {
    Ok(JobRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        command: row.try_get("command")?,
        qos: row.try_get("qos")?,
        cpus: row.try_get("cpus")?,
        gpus: row.try_get("gpus")?,
        memory_mb: row.try_get("memory_mb")?,
        time_limit_s: row.try_get("time_limit_s")?,
        state: row.try_get("state")?,
        reason: row.try_get("reason")?,
        exit_code: row.try_get("exit_code")?,
        restart_count: row.try_get("restart_count")?,
        submitted_at: row.try_get("submitted_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        instance: row.try_get("instance")?,
        pid: row.try_get("pid")?,
        gpu_ids: row.try_get("gpu_ids")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        external_id: row.try_get("external_id")?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn event(tx: &mut Tx, job_id: i64, at: i64, state: &str, detail: &str) -> DbResult<()> {
    sqlx::query("INSERT INTO job_events (job_id, at, state, detail) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(at)
        .bind(state)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Charges the time a job ran, from `started_at` to `until`, to its project.
async fn charge(tx: &mut Tx, job: &JobRow, until: i64) -> DbResult<()> {
    let Some(started) = job.started_at else { return Ok(()) };
    let seconds = ((until - started).max(0) + 999) / 1000;
    sqlx::query(
        "INSERT INTO usage_records (project_id, job_id, at, gpu_seconds, cpu_seconds) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(job.project_id)
    .bind(job.id)
    .bind(until)
    .bind(seconds * job.gpus)
    .bind(seconds * job.cpus)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    pub async fn create_project(
        &self,
        name: &str,
        gpu_hours: i64,
        cpu_hours: i64,
        storage_gb: i64,
        valid_until: Option<i64>,
        actor: &str,
    ) -> DbResult<ProjectRow> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO projects (name, gpu_hours, cpu_hours, storage_gb, valid_from, valid_until, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PROJECT_COLUMNS}"
        ))
        .bind(name)
        .bind(gpu_hours)
        .bind(cpu_hours)
        .bind(storage_gb)
        .bind(now)
        .bind(valid_until)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a project with this name"))?;
        let project = project_from(&row)?;
        let detail = format!("{gpu_hours} GPU-hours, {cpu_hours} CPU-hours");
        let entry =
            AuditEntry { actor, action: "project.create", object: &format!("project:{}", project.id), detail: &detail };
        audit::append(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(project)
    }

    pub async fn project(&self, id: i64) -> DbResult<Option<ProjectRow>> {
        let row = sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from).transpose()
    }

    pub async fn project_by_name(&self, name: &str) -> DbResult<Option<ProjectRow>> {
        let row = sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from).transpose()
    }

    pub async fn list_projects(&self) -> DbResult<Vec<ProjectRow>> {
        let rows =
            sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id")).fetch_all(&self.pool).await?;
        rows.iter().map(project_from).collect()
    }

    /// Users holding `project_member` on a project.
    pub async fn project_member_ids(&self, project_id: i64) -> DbResult<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT user_id FROM role_grants WHERE role = 'project_member' AND scope_kind = 'project' \
             AND scope_id = $1 ORDER BY user_id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    pub async fn create_job(&self, job: NewJob<'_>) -> DbResult<JobRow> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO jobs (project_id, user_id, name, command, qos, cpus, gpus, memory_mb, time_limit_s, state, \
             reason, submitted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 'Priority', $10) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(job.project_id)
        .bind(job.user_id)
        .bind(job.name)
        .bind(job.command)
        .bind(job.qos)
        .bind(job.cpus)
        .bind(job.gpus)
        .bind(job.memory_mb)
        .bind(job.time_limit_s)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let created = job_from(&row)?;
        event(&mut tx, created.id, now, "pending", "submitted").await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn job(&self, id: i64) -> DbResult<Option<JobRow>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from).transpose()
    }

    /// Jobs newest first, of the given projects (`None`: all), at most `limit` below `before_id`.
    pub async fn list_jobs(&self, projects: Option<&[i64]>, before_id: i64, limit: i64) -> DbResult<Vec<JobRow>> {
        let rows = match projects {
            None => {
                sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2"))
                    .bind(before_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some([]) => return Ok(vec![]),
            Some(ids) => {
                // Ids are integers from the database, so inlining them is safe.
                let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                sqlx::query(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id < $1 AND project_id IN ({list}) ORDER BY id DESC LIMIT $2"
                ))
                .bind(before_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(job_from).collect()
    }

    /// Every job that is pending or running, oldest first: the scheduler's view.
    pub async fn active_jobs(&self) -> DbResult<Vec<JobRow>> {
        let rows =
            sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('pending', 'running') ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(job_from).collect()
    }

    /// Pending jobs submitted after `after_id`, oldest first: what is new since a full read.
    pub async fn pending_jobs_after(&self, after_id: i64) -> DbResult<Vec<JobRow>> {
        let rows =
            sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'pending' AND id > $1 ORDER BY id"))
                .bind(after_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(job_from).collect()
    }

    /// pending -> running, on this instance; false if the job was no longer pending.
    pub async fn mark_running(&self, id: i64, instance: &str, pid: i64, gpu_ids: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let result = sqlx::query(
            "UPDATE jobs SET state = 'running', reason = '', started_at = $1, instance = $2, pid = $3, gpu_ids = $4 \
             WHERE id = $5 AND state = 'pending'",
        )
        .bind(now)
        .bind(instance)
        .bind(pid)
        .bind(gpu_ids)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        let detail = if gpu_ids.is_empty() { format!("pid {pid}") } else { format!("pid {pid}, GPUs {gpu_ids}") };
        event(&mut tx, id, now, "running", &detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// running -> an end state, charging the time it ran; false if it was no longer running.
    pub async fn mark_ended(&self, id: i64, ending: &Ending<'_>) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, exit_code = $2, reason = $3, ended_at = $4 \
             WHERE id = $5 AND state = 'running' RETURNING {JOB_COLUMNS}"
        ))
        .bind(ending.state)
        .bind(ending.exit_code)
        .bind(ending.reason)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let job = job_from(&row)?;
        charge(&mut tx, &job, now).await?;
        let detail = match ending.exit_code {
            Some(code) if ending.reason.is_empty() => format!("exit code {code}"),
            Some(code) => format!("exit code {code}: {}", ending.reason),
            None => ending.reason.to_owned(),
        };
        event(&mut tx, id, now, ending.state, &detail).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// running -> preempted -> pending, restart count up, the time it ran charged.
    pub async fn requeue(&self, id: i64, reason: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "UPDATE jobs SET state = 'pending', reason = $1, restart_count = restart_count + 1, started_at = NULL, \
             instance = NULL, pid = NULL, gpu_ids = '' WHERE id = $2 AND state = 'running' RETURNING {JOB_COLUMNS}"
        ))
        .bind(reason)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let mut job = job_from(&row)?;
        // The RETURNING row has started_at cleared; charge from the last `running` event.
        let started: Option<i64> =
            sqlx::query("SELECT at FROM job_events WHERE job_id = $1 AND state = 'running' ORDER BY id DESC LIMIT 1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        job.started_at = started;
        charge(&mut tx, &job, now).await?;
        event(&mut tx, id, now, "preempted", reason).await?;
        event(&mut tx, id, now, "pending", &format!("requeued, restart {}", job.restart_count)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels a job: a pending one at once; a running one is flagged for its executor to stop.
    /// Returns the job's state after the call.
    pub async fn cancel_job(&self, id: i64, actor: &str) -> DbResult<String> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let job = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("job {id}")))?;
        let job = job_from(&job)?;
        let state = match job.state.as_str() {
            // Handed to Slurm: Slurm cancels it, and says so.
            "pending" if job.external_id.is_some() => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
                event(&mut tx, id, now, "pending", &format!("cancel requested by {actor}")).await?;
                job.state
            }
            "pending" => {
                sqlx::query("UPDATE jobs SET state = 'cancelled', reason = '', ended_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                event(&mut tx, id, now, "cancelled", &format!("by {actor}")).await?;
                "cancelled".to_owned()
            }
            "running" if !job.cancel_requested => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
                event(&mut tx, id, now, "running", &format!("cancel requested by {actor}")).await?;
                job.state
            }
            _ => job.state,
        };
        tx.commit().await?;
        Ok(state)
    }

    /// Records the outside scheduler's id of a pending job.
    pub async fn set_external_id(&self, id: i64, external_id: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE jobs SET external_id = $1 WHERE id = $2")
            .bind(external_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        event(&mut tx, id, now_ms(), "pending", &format!("submitted to Slurm as job {external_id}")).await?;
        tx.commit().await?;
        Ok(())
    }

    /// pending -> an end state without running (cancelled in Slurm's queue, say).
    pub async fn end_pending(&self, id: i64, state: &str, reason: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let result =
            sqlx::query("UPDATE jobs SET state = $1, reason = $2, ended_at = $3 WHERE id = $4 AND state = 'pending'")
                .bind(state)
                .bind(reason)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        event(&mut tx, id, now, state, reason).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records why pending jobs wait (only those whose reason changed).
    pub async fn set_reasons(&self, reasons: &[(i64, &str)]) -> DbResult<()> {
        if reasons.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (id, reason) in reasons {
            sqlx::query("UPDATE jobs SET reason = $1 WHERE id = $2 AND state = 'pending'")
                .bind(*reason)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn job_events(&self, job_id: i64) -> DbResult<Vec<JobEvent>> {
        let rows = sqlx::query("SELECT at, state, detail FROM job_events WHERE job_id = $1 ORDER BY id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(JobEvent { at: row.try_get("at")?, state: row.try_get("state")?, detail: row.try_get("detail")? })
            })
            .collect()
    }

    pub async fn add_metrics(&self, job_id: i64, points: &[MetricPoint]) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        for point in points {
            sqlx::query("INSERT INTO job_metrics (job_id, key, value, step, at) VALUES ($1, $2, $3, $4, $5)")
                .bind(job_id)
                .bind(&point.key)
                .bind(point.value)
                .bind(point.step)
                .bind(point.at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn job_metrics(&self, job_id: i64) -> DbResult<Vec<MetricPoint>> {
        let rows = sqlx::query("SELECT key, value, step, at FROM job_metrics WHERE job_id = $1 ORDER BY key, step, id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MetricPoint {
                    key: row.try_get("key")?,
                    value: row.try_get("value")?,
                    step: row.try_get("step")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// Usage charged to a project so far.
    pub async fn project_usage(&self, project_id: i64) -> DbResult<Usage> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(gpu_seconds), 0) AS BIGINT) AS gpu, \
             CAST(COALESCE(SUM(cpu_seconds), 0) AS BIGINT) AS cpu \
             FROM usage_records WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Usage { gpu_seconds: row.try_get("gpu")?, cpu_seconds: row.try_get("cpu")? })
    }

    /// Each usage record of a project, oldest first: (time, GPU-seconds, CPU-seconds, job).
    pub async fn usage_records(&self, project_id: i64) -> DbResult<Vec<(i64, i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT at, gpu_seconds, cpu_seconds, job_id FROM usage_records WHERE project_id = $1 ORDER BY at, id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("at")?,
                    row.try_get("gpu_seconds")?,
                    row.try_get("cpu_seconds")?,
                    row.try_get("job_id")?,
                ))
            })
            .collect()
    }

    /// Usage records of every project since `since`: (project, time, GPU-seconds, CPU-seconds).
    pub async fn usage_since(&self, since: i64) -> DbResult<Vec<(i64, i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT project_id, at, gpu_seconds, cpu_seconds FROM usage_records WHERE at >= $1 ORDER BY at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("project_id")?,
                    row.try_get("at")?,
                    row.try_get("gpu_seconds")?,
                    row.try_get("cpu_seconds")?,
                ))
            })
            .collect()
    }
}
