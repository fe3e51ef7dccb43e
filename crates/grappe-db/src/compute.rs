//! Projects, jobs, their timelines, metrics and usage. Every state change is a compare-and-set on
//! the job's current state with its event in the same transaction, so two processes can never
//! both move one job, and the timeline never disagrees with the state. Each start of a job is a
//! numbered run, recorded before its process starts; every later write about a running job names
//! the run and the server (instance) it belongs to, so a stale server can never end, requeue or
//! charge another run. Usage is charged once per run (a unique key), exact to the millisecond,
//! from the run's own start to its own end.

use grappe_domain::allocation::{Amount, Commitments};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, WriteTx, conflict_as, now_ms};

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
    /// Who may name the project's coordinators (besides administrators).
    pub principal_investigator: Option<i64>,
    /// What was charged to it in all (the sum of its usage records).
    pub used: Amount,
    /// Its pending jobs: how many, and what they may use up to their time limits.
    pub queued_jobs: i64,
    pub queued: Amount,
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
    pub gpu_ids: String,
    pub cancel_requested: bool,
    /// The outside scheduler's id (Slurm's job id) once handed over.
    pub external_id: Option<String>,
    /// The number of its current (or last) run; 0 before its first start.
    pub run: i64,
    /// While pending: when it is estimated to start, if a replay of the queue starts it.
    pub estimated_start_at: Option<i64>,
    /// The jobs it waits for, in Slurm's syntax (empty: none).
    pub dependencies: String,
    /// A task of an array: the array's id (its first task's job id), its number, how many of
    /// the array's tasks may run at once.
    pub array_job_id: Option<i64>,
    pub array_task_id: Option<i64>,
    pub array_limit: Option<i64>,
    /// When its server last said it was still running it.
    pub heartbeat_at: Option<i64>,
    /// The variables the job declared, as a JSON object of strings.
    pub env: String,
    pub network: bool,
    /// Nodes it runs on; `cpus`, `gpus` and `memory_mb` are per node.
    pub nodes: i64,
    pub cpu_time_ms: Option<i64>,
    pub memory_peak_mb: Option<i64>,
    /// The dataset versions it reads, as JSON (see [`NewJob::inputs`]).
    pub inputs: String,
    /// The digest of the archive its working directory starts from (empty: none; and empty in
    /// the scheduler's queue, which [`NewRun::workdir`] gives at the start).
    pub workdir: String,
}

/// What [`Db::cancel_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancellation {
    /// A pending job: cancelled at once.
    Cancelled,
    /// A running job, or one handed to Slurm: flagged for its executor to stop.
    Requested,
    /// Flagged before, and not yet stopped.
    AlreadyRequested,
    /// The job had already ended; nothing changed.
    AlreadyEnded,
}

impl Cancellation {
    /// Its name in the API: `cancelled`, `requested`, `already_requested`, `already_ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cancellation::Cancelled => "cancelled",
            Cancellation::Requested => "requested",
            Cancellation::AlreadyRequested => "already_requested",
            Cancellation::AlreadyEnded => "already_ended",
        }
    }
}

/// A project as an administrator creates it.
pub struct NewProject<'a> {
    pub name: &'a str,
    pub gpu_hours: i64,
    pub cpu_hours: i64,
    pub storage_gb: i64,
    /// `None`: from now.
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub principal_investigator: Option<i64>,
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
    /// The declared variables, as a JSON object of strings.
    pub env: &'a str,
    pub network: bool,
    pub nodes: i64,
    /// The dataset versions it reads: a JSON array of `{"dataset", "version"}`.
    pub inputs: &'a str,
    /// The jobs it waits for, in Slurm's syntax (empty: none).
    pub dependencies: &'a str,
    /// An array's task numbers (one job each; empty: one job, not an array), and how many of
    /// them may run at once.
    pub array_tasks: &'a [i64],
    pub array_limit: Option<i64>,
    /// The digest of the archive its working directory starts from (empty: none).
    pub workdir: &'a str,
}

/// How many jobs may wait at once: per user (in all projects), per project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueQuota {
    pub per_user: i64,
    pub per_project: i64,
}

/// Why a job was not queued, with how many wait already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFull {
    User { waiting: i64 },
    Project { waiting: i64 },
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

/// What became of a batch of metric points sent whole ([`Db::add_metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAdded {
    /// All stored; the job now holds this many points.
    Stored { held: i64 },
    /// None stored: the job holds `held` points, and the batch would take it past the limit.
    OverLimit { held: i64 },
}

/// A job's metric points: how many it holds, and how many lines of its output were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricCounts {
    pub points: i64,
    pub dropped: i64,
}

/// One key of a job's metrics: how many points, from which step to which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricKey {
    pub key: String,
    pub points: i64,
    pub first_step: i64,
    pub last_step: i64,
}

/// Consecutive steps of one metric key, summed up: their first and last step, lowest and
/// highest value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricBucket {
    pub first_step: i64,
    pub last_step: i64,
    pub low: f64,
    pub high: f64,
}

/// Rows in one `INSERT` of metric points (5 parameters each, far below both databases' limits).
const METRIC_ROWS_PER_INSERT: usize = 100;

/// One charge: one run of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRecord {
    pub job_id: i64,
    pub run: i64,
    pub started_at: i64,
    /// When the run ended (the time of the charge).
    pub at: i64,
    pub gpu_ms: i64,
    pub cpu_ms: i64,
}

/// The run a write is about: which run of the job, on which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRef<'a> {
    pub job_id: i64,
    pub run: i64,
    pub instance: &'a str,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending<'a> {
    /// `completed`, `failed`, `timeout` or `cancelled`.
    pub state: &'a str,
    pub exit_code: Option<i64>,
    pub reason: &'a str,
    /// When it ended; the charge runs from its start to this.
    pub ended_at: i64,
    pub cpu_time_ms: Option<i64>,
    pub memory_peak_mb: Option<i64>,
}

impl<'a> Ending<'a> {
    /// A run that failed without an exit code of its own (it could not start, Slurm lost it).
    pub fn failed(reason: &'a str, ended_at: i64) -> Ending<'a> {
        Ending { state: "failed", exit_code: None, reason, ended_at, cpu_time_ms: None, memory_peak_mb: None }
    }
}

/// A change the scheduler writes for a run ([`Db::change_runs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunChange<'a> {
    /// running -> an end state ([`Db::finish_run`]).
    Finish(RunRef<'a>, Ending<'a>),
    /// running -> pending again, or cancelled (reason, when it ended: [`Db::requeue_run`]).
    Requeue(RunRef<'a>, &'a str, i64),
    /// pending -> running ([`Db::start_run`]).
    Start { job_id: i64, instance: &'a str, gpu_ids: &'a str, detail: &'a str },
}

/// What a [`RunChange`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunChanged {
    /// Written, or not (the run was no longer current on that server).
    Finished(bool),
    Requeued(Requeued),
    /// The new run, or none: the job was no longer pending.
    Started(Option<NewRun>),
}

/// What became of a run sent back to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeued {
    /// Pending again, for another run.
    Pending,
    /// Its cancellation was asked while it ran: it ends cancelled instead.
    Cancelled,
    /// The run was no longer the job's current one on that server: nothing written.
    Stale,
}

const PROJECT_COLUMNS: &str = "id, name, gpu_hours, cpu_hours, storage_gb, valid_from, valid_until, created_at, \
    principal_investigator, used_gpu_ms, used_cpu_ms, queued_jobs, queued_gpu_ms, queued_cpu_ms";
const JOB_COLUMNS: &str = "id, project_id, user_id, name, command, qos, cpus, gpus, memory_mb, time_limit_s, state, \
    reason, exit_code, restart_count, submitted_at, started_at, ended_at, instance, gpu_ids, cancel_requested, \
    external_id, run, heartbeat_at, env, network, nodes, cpu_time_ms, memory_peak_mb, inputs, estimated_start_at, \
    dependencies, array_job_id, array_task_id, array_limit, workdir";

/// [`JOB_COLUMNS`] with an empty command, environment and inputs.
const QUEUED_COLUMNS: &str = "id, project_id, user_id, name, '' AS command, qos, cpus, gpus, memory_mb, time_limit_s, \
    state, reason, exit_code, restart_count, submitted_at, started_at, ended_at, instance, gpu_ids, cancel_requested, \
    external_id, run, heartbeat_at, '' AS env, network, nodes, cpu_time_ms, memory_peak_mb, '' AS inputs, \
    estimated_start_at, dependencies, array_job_id, array_task_id, array_limit, '' AS workdir";

/// A run just recorded, and what it launches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRun {
    pub run: i64,
    /// The argv, as JSON.
    pub command: String,
    /// The declared environment, as a JSON object.
    pub env: String,
    /// The dataset versions it reads, as JSON (see [`NewJob::inputs`]).
    pub inputs: String,
    /// The digest of the archive its working directory starts from (empty: none).
    pub workdir: String,
}

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
        principal_investigator: row.try_get("principal_investigator")?,
        used: Amount { gpu_ms: row.try_get("used_gpu_ms")?, cpu_ms: row.try_get("used_cpu_ms")? },
        queued_jobs: row.try_get("queued_jobs")?,
        queued: Amount { gpu_ms: row.try_get("queued_gpu_ms")?, cpu_ms: row.try_get("queued_cpu_ms")? },
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
        gpu_ids: row.try_get("gpu_ids")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        external_id: row.try_get("external_id")?,
        run: row.try_get("run")?,
        estimated_start_at: row.try_get("estimated_start_at")?,
        dependencies: row.try_get("dependencies")?,
        array_job_id: row.try_get("array_job_id")?,
        array_task_id: row.try_get("array_task_id")?,
        array_limit: row.try_get("array_limit")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        env: row.try_get("env")?,
        network: row.try_get::<i64, _>("network")? != 0,
        nodes: row.try_get("nodes")?,
        cpu_time_ms: row.try_get("cpu_time_ms")?,
        memory_peak_mb: row.try_get("memory_peak_mb")?,
        inputs: row.try_get("inputs")?,
        workdir: row.try_get("workdir")?,
    })
}

fn metric_from(row: &AnyRow) -> DbResult<MetricPoint> {
    Ok(MetricPoint {
        key: row.try_get("key")?,
        value: row.try_get("value")?,
        step: row.try_get("step")?,
        at: row.try_get("at")?,
    })
}

async fn event(tx: &mut WriteTx, job_id: i64, at: i64, state: &str, detail: &str) -> DbResult<()> {
    sqlx::query("INSERT INTO job_events (job_id, at, state, detail) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(at)
        .bind(state)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Charges one run of a job, from its own start to its own end, to the job's project.
async fn charge(tx: &mut WriteTx, job: &JobRow, ended_at: i64) -> DbResult<()> {
    let Some(started) = job.started_at else { return Ok(()) };
    let ms = (ended_at - started).max(0);
    sqlx::query(
        "INSERT INTO usage_records (project_id, job_id, run, started_at, at, gpu_ms, cpu_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job.project_id)
    .bind(job.id)
    .bind(job.run)
    .bind(started)
    .bind(ended_at.max(started))
    .bind(ms * job.gpus * job.nodes)
    .bind(ms * job.cpus * job.nodes)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE projects SET used_gpu_ms = used_gpu_ms + $1, used_cpu_ms = used_cpu_ms + $2 WHERE id = $3")
        .bind(ms * job.gpus * job.nodes)
        .bind(ms * job.cpus * job.nodes)
        .bind(job.project_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a pending job counts for in the queue totals of its project and its user.
struct Queued {
    project_id: i64,
    user_id: Option<i64>,
    gpu_ms: i64,
    cpu_ms: i64,
}

impl Queued {
    /// What `nodes` x (`gpus`, `cpus`) for `time_limit_s` count for.
    fn new(project_id: i64, user_id: Option<i64>, (gpus, cpus, nodes): (i64, i64, i64), time_limit_s: i64) -> Queued {
        let limit_ms = time_limit_s.saturating_mul(1000);
        Queued { project_id, user_id, gpu_ms: gpus * nodes * limit_ms, cpu_ms: cpus * nodes * limit_ms }
    }

    fn of(job: &JobRow) -> Queued {
        Queued::new(job.project_id, job.user_id, (job.gpus, job.cpus, job.nodes), job.time_limit_s)
    }

    /// The columns [`Queued::from_row`] reads, for `RETURNING`.
    const COLUMNS: &str = "project_id, user_id, gpus, cpus, nodes, time_limit_s";

    fn from_row(row: &AnyRow) -> DbResult<Queued> {
        let sizes = (row.try_get("gpus")?, row.try_get("cpus")?, row.try_get("nodes")?);
        Ok(Queued::new(row.try_get("project_id")?, row.try_get("user_id")?, sizes, row.try_get("time_limit_s")?))
    }

    /// Adds the job to (`sign` 1) or takes it from (-1) the queue totals, in the transaction that
    /// moves it into or out of `pending` (`sign` n: n such jobs, an array's tasks); the project's
    /// and the user's numbers of queued jobs after it (the updates lock their rows).
    async fn count(&self, tx: &mut WriteTx, sign: i64) -> DbResult<(i64, Option<i64>)> {
        let project = sqlx::query(
            "UPDATE projects SET queued_jobs = queued_jobs + $1, queued_gpu_ms = queued_gpu_ms + $2, \
             queued_cpu_ms = queued_cpu_ms + $3 WHERE id = $4 RETURNING queued_jobs",
        )
        .bind(sign)
        .bind(sign * self.gpu_ms)
        .bind(sign * self.cpu_ms)
        .bind(self.project_id)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let user = match self.user_id {
            Some(user) => Some(
                sqlx::query("UPDATE users SET queued_jobs = queued_jobs + $1 WHERE id = $2 RETURNING queued_jobs")
                    .bind(sign)
                    .bind(user)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get(0)?,
            ),
            None => None,
        };
        Ok((project, user))
    }
}

/// The job's row if `run` is its current run, running on `instance`, read in the transaction.
async fn current_run(tx: &mut WriteTx, run: RunRef<'_>) -> DbResult<Option<JobRow>> {
    let row = sqlx::query(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND state = 'running' AND run = $2 AND instance = $3"
    ))
    .bind(run.job_id)
    .bind(run.run)
    .bind(run.instance)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(job_from).transpose()
}

/// pending -> running, as a new run on `instance`, in `tx` ([`Db::start_run`]).
async fn start_run_in(
    tx: &mut WriteTx,
    id: i64,
    instance: &str,
    gpu_ids: &str,
    detail: &str,
) -> DbResult<Option<NewRun>> {
    let now = now_ms();
    let row = sqlx::query(
        "UPDATE jobs SET state = 'running', reason = '', run = run + 1, started_at = $1, heartbeat_at = $1, \
         ended_at = NULL, instance = $2, gpu_ids = $3 WHERE id = $4 AND state = 'pending' \
         RETURNING run, command, env, inputs, workdir, project_id, user_id, gpus, cpus, nodes, time_limit_s",
    )
    .bind(now)
    .bind(instance)
    .bind(gpu_ids)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let new_run = NewRun {
        run: row.try_get("run")?,
        command: row.try_get("command")?,
        env: row.try_get("env")?,
        inputs: row.try_get("inputs")?,
        workdir: row.try_get("workdir")?,
    };
    Queued::from_row(&row)?.count(tx, -1).await?;
    let run = new_run.run;
    let mut text = format!("run {run}");
    if !gpu_ids.is_empty() {
        text.push_str(&format!(", GPUs {gpu_ids}"));
    }
    if !detail.is_empty() {
        text.push_str(&format!(", {detail}"));
    }
    event(tx, id, now, "running", &text).await?;
    Ok(Some(new_run))
}

/// running -> an end state, in `tx` ([`Db::finish_run`]).
async fn finish_run_in(tx: &mut WriteTx, run: RunRef<'_>, ending: &Ending<'_>) -> DbResult<bool> {
    // Fenced by the run it ends, and never before that run's start.
    let row = sqlx::query(&format!(
        "UPDATE jobs SET state = $1, exit_code = $2, reason = $3, \
         ended_at = CASE WHEN started_at > $4 THEN started_at ELSE $4 END, cpu_time_ms = $5, memory_peak_mb = $6 \
         WHERE id = $7 AND state = 'running' AND run = $8 AND instance = $9 RETURNING {QUEUED_COLUMNS}"
    ))
    .bind(ending.state)
    .bind(ending.exit_code)
    .bind(ending.reason)
    .bind(ending.ended_at)
    .bind(ending.cpu_time_ms)
    .bind(ending.memory_peak_mb)
    .bind(run.job_id)
    .bind(run.run)
    .bind(run.instance)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(false) };
    let job = job_from(&row)?;
    let ended_at = job.ended_at.unwrap_or(ending.ended_at);
    charge(tx, &job, ended_at).await?;
    let detail = match ending.exit_code {
        Some(code) if ending.reason.is_empty() => format!("exit code {code}"),
        Some(code) => format!("exit code {code}: {}", ending.reason),
        None => ending.reason.to_owned(),
    };
    event(tx, job.id, ended_at, ending.state, &detail).await?;
    Ok(true)
}

/// running -> pending again (or cancelled), in `tx` ([`Db::requeue_run`]).
async fn requeue_run_in(tx: &mut WriteTx, run: RunRef<'_>, reason: &str, ended_at: i64) -> DbResult<Requeued> {
    let Some(job) = current_run(tx, run).await? else { return Ok(Requeued::Stale) };
    let ended_at = ended_at.max(job.started_at.unwrap_or(0));
    charge(tx, &job, ended_at).await?;
    let outcome = if job.cancel_requested {
        sqlx::query(
            "UPDATE jobs SET state = 'cancelled', reason = 'cancelled', ended_at = $1 \
             WHERE id = $2 AND state = 'running' AND run = $3",
        )
        .bind(ended_at)
        .bind(job.id)
        .bind(job.run)
        .execute(&mut **tx)
        .await?;
        event(tx, job.id, ended_at, "cancelled", &format!("cancelled while stopping ({reason})")).await?;
        Requeued::Cancelled
    } else {
        sqlx::query(
            "UPDATE jobs SET state = 'pending', reason = $1, restart_count = restart_count + 1, started_at = NULL, \
             heartbeat_at = NULL, instance = NULL, gpu_ids = '' WHERE id = $2 AND state = 'running' AND run = $3",
        )
        .bind(reason)
        .bind(job.id)
        .bind(job.run)
        .execute(&mut **tx)
        .await?;
        Queued::of(&job).count(tx, 1).await?;
        event(tx, job.id, ended_at, "preempted", reason).await?;
        event(tx, job.id, ended_at, "pending", &format!("requeued, restart {}", job.restart_count + 1)).await?;
        Requeued::Pending
    };
    Ok(outcome)
}

impl Db {
    pub async fn create_project(&self, project: &NewProject<'_>, actor: &str) -> DbResult<ProjectRow> {
        let mut tx = self.write_tx().await?;
        let created = self.create_project_in(&mut tx, project, actor).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Creates a project inside a transaction, audited in it.
    pub(crate) async fn create_project_in(
        &self,
        tx: &mut WriteTx,
        project: &NewProject<'_>,
        actor: &str,
    ) -> DbResult<ProjectRow> {
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO projects (name, gpu_hours, cpu_hours, storage_gb, valid_from, valid_until, created_at, \
             principal_investigator) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {PROJECT_COLUMNS}"
        ))
        .bind(project.name)
        .bind(project.gpu_hours)
        .bind(project.cpu_hours)
        .bind(project.storage_gb)
        .bind(project.valid_from.unwrap_or(now))
        .bind(project.valid_until)
        .bind(now)
        .bind(project.principal_investigator)
        .fetch_one(&mut **tx)
        .await
        .map_err(conflict_as("a project with this name"))?;
        let created = project_from(&row)?;
        let detail = format!("{} GPU-hours, {} CPU-hours", project.gpu_hours, project.cpu_hours);
        let entry =
            AuditEntry { actor, action: "project.create", object: &format!("project:{}", created.id), detail: &detail };
        audit::append(tx, self.audit_key(), &entry).await?;
        Ok(created)
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

    /// The name, submitter and QoS of each job of a project, by job id: what a usage export
    /// names its records with (no command, environment or inputs read).
    pub async fn job_labels(
        &self,
        project_id: i64,
    ) -> DbResult<std::collections::HashMap<i64, (String, Option<i64>, String)>> {
        let rows = sqlx::query("SELECT id, name, user_id, qos FROM jobs WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?)))).collect()
    }

    /// How many members each project has, by project id (a project without any is absent).
    pub async fn project_member_counts(&self) -> DbResult<std::collections::HashMap<i64, i64>> {
        let rows = sqlx::query(
            "SELECT scope_id, COUNT(*) FROM role_grants WHERE role = 'project_member' AND scope_kind = 'project' \
             GROUP BY scope_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
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

    /// Queues a job, or every task of an array (one job each, in one transaction), if its user
    /// and its project have room for all of them under `quota`; the job, or the first task. The
    /// user's and the project's rows are locked first (PostgreSQL; SQLite's write lock covers
    /// all), so that concurrent submissions are counted one after the other.
    pub async fn create_job(&self, job: NewJob<'_>, quota: QueueQuota) -> DbResult<Result<JobRow, QueueFull>> {
        let count = job.array_tasks.len().max(1) as i64;
        let mut tx = self.write_tx().await?;
        // Counted first: the totals after it say whether the jobs fit (if not, nothing is
        // committed).
        let queued = Queued::new(job.project_id, job.user_id, (job.gpus, job.cpus, job.nodes), job.time_limit_s);
        let (project_waiting, user_waiting) = queued.count(&mut tx, count).await?;
        if let Some(waiting) = user_waiting
            && waiting > quota.per_user
        {
            return Ok(Err(QueueFull::User { waiting: waiting - count }));
        }
        if project_waiting > quota.per_project {
            return Ok(Err(QueueFull::Project { waiting: project_waiting - count }));
        }
        let now = now_ms();
        let tasks: Vec<Option<i64>> =
            if job.array_tasks.is_empty() { vec![None] } else { job.array_tasks.iter().copied().map(Some).collect() };
        let mut first: Option<JobRow> = None;
        for task in tasks {
            let row = sqlx::query(&format!(
                "INSERT INTO jobs (project_id, user_id, name, command, qos, cpus, gpus, memory_mb, time_limit_s, \
                 state, reason, submitted_at, env, network, nodes, inputs, dependencies, array_job_id, array_task_id, \
                 array_limit, workdir) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 'Priority', $10, $11, \
                 $12, $13, $14, $15, $16, $17, $18, $19) RETURNING {JOB_COLUMNS}"
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
            .bind(job.env)
            .bind(i64::from(job.network))
            .bind(job.nodes)
            .bind(job.inputs)
            .bind(job.dependencies)
            .bind(first.as_ref().map(|first| first.id))
            .bind(task)
            .bind(task.and(job.array_limit))
            .bind(job.workdir)
            .fetch_one(&mut *tx)
            .await?;
            let mut created = job_from(&row)?;
            if task.is_some() && first.is_none() {
                // The array's id is its first task's.
                sqlx::query("UPDATE jobs SET array_job_id = id WHERE id = $1")
                    .bind(created.id)
                    .execute(&mut *tx)
                    .await?;
                created.array_job_id = Some(created.id);
            }
            event(&mut tx, created.id, now, "pending", "submitted").await?;
            first.get_or_insert(created);
        }
        let first = first.expect("at least one job");
        tx.commit().await?;
        Ok(Ok(first))
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

    /// Every job that is pending or running, oldest first.
    pub async fn active_jobs(&self) -> DbResult<Vec<JobRow>> {
        let rows =
            sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('pending', 'running') ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(job_from).collect()
    }

    /// Every running job, and the pending jobs submitted after `after_id` if given (what is new
    /// since a read), each oldest first, in one read. Without their command, environment, inputs
    /// and working directory (empty here; up to 192 KiB a job, read by [`Db::start_run`] when the
    /// job starts), so that a full queue costs the scheduler little memory.
    pub async fn running_and_pending_after(&self, after_id: Option<i64>) -> DbResult<(Vec<JobRow>, Vec<JobRow>)> {
        let rows = sqlx::query(&format!(
            "SELECT {QUEUED_COLUMNS} FROM jobs WHERE state = 'running' OR (state = 'pending' AND id > $1) ORDER BY id"
        ))
        .bind(after_id.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let jobs = rows.iter().map(job_from).collect::<DbResult<Vec<JobRow>>>()?;
        Ok(jobs.into_iter().partition(|job| job.state == "running"))
    }

    /// The ids of the pending jobs, in order: cheap enough to read at every pass.
    pub async fn pending_job_ids(&self) -> DbResult<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM jobs WHERE state = 'pending' ORDER BY id").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Pending jobs among `ids`, without command and environment as in
    /// [`Db::running_and_pending_after`].
    pub async fn pending_jobs_in(&self, ids: &[i64]) -> DbResult<Vec<JobRow>> {
        let mut jobs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            // Ids are integers, so inlining them is safe.
            let list = chunk.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            let rows = sqlx::query(&format!(
                "SELECT {QUEUED_COLUMNS} FROM jobs WHERE state = 'pending' AND id IN ({list}) ORDER BY id"
            ))
            .fetch_all(&self.pool)
            .await?;
            for row in &rows {
                jobs.push(job_from(row)?);
            }
        }
        Ok(jobs)
    }

    /// What a project's active jobs take at `now`, in resource-milliseconds: `running`, what its
    /// running jobs have run so far (each up to its time limit); `reserved`, what its running
    /// jobs may still use up to their time limits and its pending ones (the row's totals, as read).
    /// One aggregate over the running jobs, whatever the queue.
    /// A project's standing at `now`: what it was charged, and what its running and queued jobs
    /// and the gateway's requests in flight may still use. One statement, so one snapshot: a job that starts or ends meanwhile is
    /// counted once (a separate read of the project's row and then of its running jobs could
    /// count a job just started both as queued and as running).
    pub async fn project_standing(&self, project_id: i64, now: i64) -> DbResult<(Amount, Commitments)> {
        // Elapsed time of a running job, clamped to [0, its time limit].
        let elapsed = "CASE WHEN started_at IS NULL THEN 0 \
                       WHEN $2 - started_at < 0 THEN 0 \
                       WHEN $2 - started_at > time_limit_s * 1000 THEN time_limit_s * 1000 \
                       ELSE $2 - started_at END";
        let row = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(gpus * nodes * ({elapsed})), 0) AS BIGINT) AS running_gpu, \
             CAST(COALESCE(SUM(cpus * nodes * ({elapsed})), 0) AS BIGINT) AS running_cpu, \
             CAST(COALESCE(SUM(gpus * nodes * (time_limit_s * 1000 - ({elapsed}))), 0) AS BIGINT) AS left_gpu, \
             CAST(COALESCE(SUM(cpus * nodes * (time_limit_s * 1000 - ({elapsed}))), 0) AS BIGINT) AS left_cpu, \
             (SELECT used_gpu_ms FROM projects WHERE id = $1) AS used_gpu, \
             (SELECT used_cpu_ms FROM projects WHERE id = $1) AS used_cpu, \
             (SELECT queued_gpu_ms FROM projects WHERE id = $1) AS queued_gpu, \
             (SELECT queued_cpu_ms FROM projects WHERE id = $1) AS queued_cpu, \
             (SELECT reserved_gpu_ms FROM projects WHERE id = $1) AS gateway_gpu \
             FROM jobs WHERE project_id = $1 AND state = 'running'"
        ))
        .bind(project_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let amount = |gpu: &str, cpu: &str| -> DbResult<Amount> {
            let read = |column: &str| -> DbResult<i64> { Ok(row.try_get::<Option<i64>, _>(column)?.unwrap_or(0)) };
            Ok(Amount { gpu_ms: read(gpu)?, cpu_ms: read(cpu)? })
        };
        let left = amount("left_gpu", "left_cpu")?;
        let used = amount("used_gpu", "used_cpu")?;
        let queued = amount("queued_gpu", "queued_cpu")?;
        // What the gateway's requests in flight hold of the same allocation.
        let gateway = Amount { gpu_ms: row.try_get::<Option<i64>, _>("gateway_gpu")?.unwrap_or(0), cpu_ms: 0 };
        let reserved = left.plus(queued).plus(gateway);
        Ok((used, Commitments { running: amount("running_gpu", "running_cpu")?, reserved }))
    }

    /// pending -> running, as a new run on `instance`, before anything is started: the run
    /// and what to launch, or `None` if the job is no longer pending (cancelled meanwhile, say).
    pub async fn start_run(&self, id: i64, instance: &str, gpu_ids: &str, detail: &str) -> DbResult<Option<NewRun>> {
        let mut tx = self.write_tx().await?;
        let started = start_run_in(&mut tx, id, instance, gpu_ids, detail).await?;
        tx.commit().await?;
        Ok(started)
    }

    /// running -> an end state, charging the run; false if `run` is no longer the job's current
    /// run on that server (a stale server: nothing is written).
    pub async fn finish_run(&self, run: RunRef<'_>, ending: &Ending<'_>) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let finished = finish_run_in(&mut tx, run, ending).await?;
        tx.commit().await?;
        Ok(finished)
    }

    /// running -> preempted -> pending (restart count up), charging the run up to `ended_at`;
    /// a job whose cancellation was asked ends cancelled instead. Nothing is written for a run
    /// that is no longer current on that server.
    pub async fn requeue_run(&self, run: RunRef<'_>, reason: &str, ended_at: i64) -> DbResult<Requeued> {
        let mut tx = self.write_tx().await?;
        let requeued = requeue_run_in(&mut tx, run, reason, ended_at).await?;
        tx.commit().await?;
        Ok(requeued)
    }

    /// Several runs' ends and starts in one transaction, in order (the scheduler's pass: the
    /// runs that ended, then those it starts); what each did.
    pub async fn change_runs(&self, changes: &[RunChange<'_>]) -> DbResult<Vec<RunChanged>> {
        let mut tx = self.write_tx().await?;
        let mut done = Vec::with_capacity(changes.len());
        for change in changes {
            done.push(match change {
                RunChange::Finish(run, ending) => RunChanged::Finished(finish_run_in(&mut tx, *run, ending).await?),
                RunChange::Requeue(run, reason, ended_at) => {
                    RunChanged::Requeued(requeue_run_in(&mut tx, *run, reason, *ended_at).await?)
                }
                RunChange::Start { job_id, instance, gpu_ids, detail } => {
                    RunChanged::Started(start_run_in(&mut tx, *job_id, instance, gpu_ids, detail).await?)
                }
            });
        }
        tx.commit().await?;
        Ok(done)
    }

    /// A server says it still runs its jobs.
    pub async fn heartbeat(&self, instance: &str) -> DbResult<()> {
        self.write_one(
            sqlx::query("UPDATE jobs SET heartbeat_at = $1 WHERE instance = $2 AND state = 'running'")
                .bind(now_ms())
                .bind(instance),
        )
        .await?;
        Ok(())
    }

    /// Cancels a job: a pending one at once; a running one is flagged for its executor to stop.
    /// Says which, read and decided in one transaction.
    pub async fn cancel_job(&self, id: i64, actor: &str) -> DbResult<Cancellation> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let job = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("job {id}")))?;
        let job = job_from(&job)?;
        let outcome = match job.state.as_str() {
            "running" if job.cancel_requested => Cancellation::AlreadyRequested,
            "pending" if job.external_id.is_some() && job.cancel_requested => Cancellation::AlreadyRequested,
            // Handed to Slurm: Slurm cancels it, and says so.
            "pending" if job.external_id.is_some() => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
                event(&mut tx, id, now, "pending", &format!("cancel requested by {actor}")).await?;
                Cancellation::Requested
            }
            "pending" => {
                sqlx::query("UPDATE jobs SET state = 'cancelled', reason = '', ended_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Queued::of(&job).count(&mut tx, -1).await?;
                event(&mut tx, id, now, "cancelled", &format!("by {actor}")).await?;
                Cancellation::Cancelled
            }
            "running" => {
                sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1").bind(id).execute(&mut *tx).await?;
                event(&mut tx, id, now, "running", &format!("cancel requested by {actor}")).await?;
                Cancellation::Requested
            }
            _ => Cancellation::AlreadyEnded,
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Records the outside scheduler's id of a pending job.
    /// Only while the job waits and has none: false if it was cancelled (or handed over by
    /// another server) meanwhile, and the caller cancels what it submitted.
    pub async fn set_external_id(&self, id: i64, external_id: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let set =
            sqlx::query("UPDATE jobs SET external_id = $1 WHERE id = $2 AND state = 'pending' AND external_id IS NULL")
                .bind(external_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        if set {
            event(&mut tx, id, now_ms(), "pending", &format!("submitted to Slurm as job {external_id}")).await?;
        }
        tx.commit().await?;
        Ok(set)
    }

    /// pending -> an end state without running (cancelled in Slurm's queue, say).
    pub async fn end_pending(&self, id: i64, state: &str, reason: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let ended = sqlx::query(&format!(
            "UPDATE jobs SET state = $1, reason = $2, ended_at = $3 WHERE id = $4 AND state = 'pending' \
             RETURNING {}",
            Queued::COLUMNS
        ))
        .bind(state)
        .bind(reason)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(ended) = ended else { return Ok(false) };
        Queued::from_row(&ended)?.count(&mut tx, -1).await?;
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

    /// The states of the jobs `ids` (those that exist).
    pub async fn job_states(&self, ids: &[i64]) -> DbResult<Vec<(i64, String)>> {
        self.job_column(ids, "state").await
    }

    /// The projects of the jobs `ids` (those that exist).
    pub async fn job_project_ids(&self, ids: &[i64]) -> DbResult<Vec<(i64, i64)>> {
        self.job_column(ids, "project_id").await
    }

    /// One column of the jobs `ids`, by id.
    async fn job_column<T>(&self, ids: &[i64], column: &str) -> DbResult<Vec<(i64, T)>>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.jobs_where_in(ids, &format!("SELECT id, {column} FROM jobs WHERE id IN"), "").await
    }

    /// The state of every task of the arrays `ids` (an array's id is its first task's), by
    /// array.
    pub async fn array_task_states(&self, ids: &[i64]) -> DbResult<Vec<(i64, String)>> {
        self.jobs_where_in(ids, "SELECT array_job_id, state FROM jobs WHERE array_job_id IN", "").await
    }

    /// `select (ids...) rest` over `ids`, a thousand at a time (PostgreSQL takes at most 65,535
    /// parameters in one statement), as (id, value) pairs.
    async fn jobs_where_in<T>(&self, ids: &[i64], select: &str, rest: &str) -> DbResult<Vec<(i64, T)>>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        let mut found = Vec::new();
        for chunk in ids.chunks(1000) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!("{select} ({}) {rest}", placeholders.join(", "));
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&self.pool).await? {
                found.push((row.try_get(0)?, row.try_get(1)?));
            }
        }
        Ok(found)
    }

    /// Whether a job named `name` of the project is queued or running.
    pub async fn named_job_active(&self, project_id: i64, name: &str) -> DbResult<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM jobs WHERE project_id = $1 AND name = $2 AND state IN ('pending', 'running')",
        )
        .bind(project_id)
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Records pending jobs' estimated starts (none: no estimate), in one transaction.
    pub async fn set_estimated_starts(&self, estimates: &[(i64, Option<i64>)]) -> DbResult<()> {
        if estimates.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (id, at) in estimates {
            sqlx::query("UPDATE jobs SET estimated_start_at = $1 WHERE id = $2 AND state = 'pending'")
                .bind(*at)
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

    /// Locks the job's row (PostgreSQL; SQLite's write transaction holds the whole database)
    /// and reads its metric counts, so that the check against a quota and the insert it allows
    /// are one step.
    async fn lock_metric_counts(tx: &mut WriteTx, job_id: i64) -> DbResult<MetricCounts> {
        let row = sqlx::query(
            "UPDATE jobs SET metric_points = metric_points WHERE id = $1 RETURNING metric_points, metrics_dropped",
        )
        .bind(job_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("job {job_id}")))?;
        Ok(MetricCounts { points: row.try_get("metric_points")?, dropped: row.try_get("metrics_dropped")? })
    }

    async fn insert_metrics(tx: &mut WriteTx, job_id: i64, points: &[MetricPoint]) -> DbResult<()> {
        for chunk in points.chunks(METRIC_ROWS_PER_INSERT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${}, ${}, ${})", 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4, 5 * i + 5))
                .collect();
            let sql = format!("INSERT INTO job_metrics (job_id, key, value, step, at) VALUES {}", rows.join(", "));
            let mut query = sqlx::query(&sql);
            for point in chunk {
                query = query.bind(job_id).bind(&point.key).bind(point.value).bind(point.step).bind(point.at);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Appends a batch of metric points to a job, whole or not at all: none is stored if the job
    /// would then hold more than `limit` points.
    pub async fn add_metrics(&self, job_id: i64, points: &[MetricPoint], limit: i64) -> DbResult<MetricsAdded> {
        let mut tx = self.write_tx().await?;
        let held = Self::lock_metric_counts(&mut tx, job_id).await?.points;
        let count = points.len() as i64;
        if held.saturating_add(count) > limit {
            return Ok(MetricsAdded::OverLimit { held });
        }
        Self::insert_metrics(&mut tx, job_id, points).await?;
        sqlx::query("UPDATE jobs SET metric_points = metric_points + $1 WHERE id = $2")
            .bind(count)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(MetricsAdded::Stored { held: held + count })
    }

    /// Appends the metric points a job printed, in order, as many as fit within `limit` points;
    /// the rest, and `unreadable` metric lines that were refused before, are counted as
    /// dropped. Returns how many were stored.
    pub async fn add_output_metrics(
        &self,
        job_id: i64,
        points: &[MetricPoint],
        unreadable: u64,
        limit: i64,
    ) -> DbResult<usize> {
        let mut tx = self.write_tx().await?;
        let held = Self::lock_metric_counts(&mut tx, job_id).await?.points;
        let room = usize::try_from(limit.saturating_sub(held)).unwrap_or(0);
        let stored = &points[..points.len().min(room)];
        let dropped =
            i64::try_from(unreadable).unwrap_or(i64::MAX).saturating_add((points.len() - stored.len()) as i64);
        Self::insert_metrics(&mut tx, job_id, stored).await?;
        sqlx::query(
            "UPDATE jobs SET metric_points = metric_points + $1, metrics_dropped = metrics_dropped + $2 WHERE id = $3",
        )
        .bind(stored.len() as i64)
        .bind(dropped)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored.len())
    }

    pub async fn metric_counts(&self, job_id: i64) -> DbResult<MetricCounts> {
        let row = sqlx::query("SELECT metric_points, metrics_dropped FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                Ok(MetricCounts { points: row.try_get("metric_points")?, dropped: row.try_get("metrics_dropped")? })
            }
            None => Ok(MetricCounts::default()),
        }
    }

    /// A job's metric points, by key, step and arrival; at most `limit` of them.
    pub async fn job_metrics(&self, job_id: i64, limit: i64) -> DbResult<Vec<MetricPoint>> {
        let rows = sqlx::query(
            "SELECT key, value, step, at FROM job_metrics WHERE job_id = $1 ORDER BY key, step, id LIMIT $2",
        )
        .bind(job_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(metric_from).collect()
    }

    /// The value of a job's metric at its last step (the last recorded of that step).
    pub async fn last_metric(&self, job_id: i64, key: &str) -> DbResult<Option<f64>> {
        let row = sqlx::query(
            "SELECT value FROM job_metrics WHERE job_id = $1 AND key = $2 ORDER BY step DESC, id DESC LIMIT 1",
        )
        .bind(job_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    /// The first `limit` keys of a job's metrics, in order, with how many points each has and
    /// its first and last step.
    pub async fn job_metric_keys(&self, job_id: i64, limit: i64) -> DbResult<Vec<MetricKey>> {
        let rows = sqlx::query(
            "SELECT key, COUNT(*) AS points, MIN(step) AS first_step, MAX(step) AS last_step FROM job_metrics \
             WHERE job_id = $1 GROUP BY key ORDER BY key LIMIT $2",
        )
        .bind(job_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MetricKey {
                    key: row.try_get("key")?,
                    points: row.try_get("points")?,
                    first_step: row.try_get("first_step")?,
                    last_step: row.try_get("last_step")?,
                })
            })
            .collect()
    }

    /// The first `limit` points of one key of a job's metrics, as (step, value) in step order.
    pub async fn job_metric_points(&self, job_id: i64, key: &str, limit: i64) -> DbResult<Vec<(i64, f64)>> {
        let rows = sqlx::query(
            "SELECT step, value FROM job_metrics WHERE job_id = $1 AND key = $2 ORDER BY step, id LIMIT $3",
        )
        .bind(job_id)
        .bind(key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("step")?, row.try_get("value")?))).collect()
    }

    /// One key of a job's metrics summed up in buckets of `width_steps` consecutive steps (by
    /// `step / width_steps`): for each, its first and last step and its lowest and highest value,
    /// in step order. The database does the work; only the buckets leave it.
    pub async fn job_metric_buckets(&self, job_id: i64, key: &str, width_steps: i64) -> DbResult<Vec<MetricBucket>> {
        let rows = sqlx::query(
            "SELECT MIN(step) AS first_step, MAX(step) AS last_step, MIN(value) AS low, MAX(value) AS high \
             FROM job_metrics WHERE job_id = $1 AND key = $2 GROUP BY step / $3 ORDER BY MIN(step)",
        )
        .bind(job_id)
        .bind(key)
        .bind(width_steps.max(1))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MetricBucket {
                    first_step: row.try_get("first_step")?,
                    last_step: row.try_get("last_step")?,
                    low: row.try_get("low")?,
                    high: row.try_get("high")?,
                })
            })
            .collect()
    }

    /// Each charge of a project, oldest first.
    pub async fn usage_records(&self, project_id: i64) -> DbResult<Vec<UsageRecord>> {
        let rows = sqlx::query(
            "SELECT job_id, run, started_at, at, gpu_ms, cpu_ms FROM usage_records WHERE project_id = $1 \
             ORDER BY at, id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(UsageRecord {
                    job_id: row.try_get("job_id")?,
                    run: row.try_get("run")?,
                    started_at: row.try_get("started_at")?,
                    at: row.try_get("at")?,
                    gpu_ms: row.try_get("gpu_ms")?,
                    cpu_ms: row.try_get("cpu_ms")?,
                })
            })
            .collect()
    }

    /// Charges of every project since `since`: (project, time, GPU-ms, CPU-ms).
    pub async fn usage_since(&self, since: i64) -> DbResult<Vec<(i64, i64, i64, i64)>> {
        let rows = sqlx::query("SELECT project_id, at, gpu_ms, cpu_ms FROM usage_records WHERE at >= $1 ORDER BY at")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((row.try_get("project_id")?, row.try_get("at")?, row.try_get("gpu_ms")?, row.try_get("cpu_ms")?))
            })
            .collect()
    }
}

impl Db {
    /// Records that `user_id` sent the working-directory archive `digest` (stored by the caller);
    /// sending it again makes it new again ([`Db::forget_workdirs`]).
    pub async fn record_workdir_upload(&self, digest: &str, user_id: i64, files: i64, bytes: i64) -> DbResult<()> {
        self.write_one(
            sqlx::query(
                "INSERT INTO workdir_uploads (digest, user_id, files, bytes, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (digest, user_id) DO UPDATE SET created_at = excluded.created_at",
            )
            .bind(digest)
            .bind(user_id)
            .bind(files)
            .bind(bytes)
            .bind(now_ms()),
        )
        .await?;
        Ok(())
    }

    /// The bytes of files in the archives `user_id` sent (each counted once).
    pub async fn workdir_bytes_of(&self, user_id: i64) -> DbResult<i64> {
        let row = sqlx::query("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM workdir_uploads WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Forgets the working-directory archives sent before `before` that no job of their sender
    /// still needs (none pending or running names it, none that ended since `before`; the admin
    /// token's jobs, of no user, count as user 0's, as its uploads do), so that
    /// they leave their sender's quota; the digests that nobody holds any more, whose files the
    /// caller deletes.
    pub async fn forget_workdirs(&self, before: i64) -> DbResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let forgotten = sqlx::query(
            "DELETE FROM workdir_uploads WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM jobs \
             WHERE jobs.workdir <> '' AND jobs.workdir = workdir_uploads.digest \
             AND COALESCE(jobs.user_id, 0) = workdir_uploads.user_id \
             AND (jobs.state IN ('pending', 'running') OR jobs.ended_at >= $1)) RETURNING digest",
        )
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        let mut unheld = Vec::new();
        for row in &forgotten {
            let digest: String = row.try_get(0)?;
            let held = sqlx::query(
                "SELECT 1 FROM workdir_uploads WHERE digest = $1 UNION ALL \
                 SELECT 1 FROM jobs WHERE workdir <> '' AND workdir = $1 AND state IN ('pending', 'running') LIMIT 1",
            )
            .bind(&digest)
            .fetch_optional(&mut *tx)
            .await?;
            if held.is_none() && !unheld.contains(&digest) {
                unheld.push(digest);
            }
        }
        tx.commit().await?;
        Ok(unheld)
    }

    /// Whether `user_id` sent the archive `digest` (`None`, the admin token: whether anyone did).
    pub async fn has_workdir_upload(&self, digest: &str, user_id: Option<i64>) -> DbResult<bool> {
        let row = sqlx::query("SELECT 1 FROM workdir_uploads WHERE digest = $1 AND ($2 < 0 OR user_id = $2) LIMIT 1")
            .bind(digest)
            .bind(user_id.unwrap_or(-1))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use grappe_domain::account::Email;

    use crate::scratch::Scratch;
    use crate::{NewJob, NewUser, QueueQuota, now_ms};

    /// An archive is forgotten only once it is old and no job of its sender needs it; its file
    /// is given back to be deleted only when nobody holds it any more.
    #[tokio::test]
    async fn only_old_archives_that_no_job_needs_are_forgotten() {
        let scratch = Scratch::new("sweep").await;
        let db = &scratch.db;
        let email = Email::parse("camille@example.org").unwrap();
        let new = NewUser { email: &email, name: "Camille", password_hash: "x", organisation_id: None };
        let user = db.create_user(new, "test").await.unwrap().id;
        let project = scratch.project("balai").await;
        // "alone": nobody needs it; "queued": a pending job names it; "shared": two senders.
        // "admin": the admin token's (user 0), named by its job, of no user.
        let digests = [("alone", user), ("queued", user), ("shared", user), ("shared", 0), ("admin", 0)];
        for (digest, sender) in digests {
            db.record_workdir_upload(digest, sender, 1, 10).await.unwrap();
        }
        let job = |workdir, user_id| NewJob {
            project_id: project,
            user_id,
            name: "j",
            command: "[\"true\"]",
            qos: "normal",
            cpus: 1,
            gpus: 0,
            memory_mb: 100,
            time_limit_s: 60,
            env: "{}",
            network: false,
            nodes: 1,
            inputs: "[]",
            dependencies: "",
            array_tasks: &[],
            array_limit: None,
            workdir,
        };
        let quota = QueueQuota { per_user: 10, per_project: 10 };
        db.create_job(job("admin", None), quota).await.unwrap().unwrap();
        db.create_job(job("queued", Some(user)), quota).await.unwrap().unwrap();
        // Sent a minute ago: not old yet.
        assert!(db.forget_workdirs(now_ms() - 60_000).await.unwrap().is_empty());
        assert_eq!(db.workdir_bytes_of(user).await.unwrap(), 30);
        // Old: the two that no job needs are forgotten (the shared one by both senders).
        let mut unheld = db.forget_workdirs(now_ms() + 1).await.unwrap();
        unheld.sort();
        assert_eq!(unheld, ["alone", "shared"]);
        assert_eq!(db.workdir_bytes_of(user).await.unwrap(), 10, "the queued job's archive stays counted");
        assert!(db.has_workdir_upload("queued", Some(user)).await.unwrap());
        assert!(!db.has_workdir_upload("shared", None).await.unwrap());
        assert!(db.has_workdir_upload("admin", Some(0)).await.unwrap(), "the admin token's job needs it");
        scratch.close().await;
    }
}
