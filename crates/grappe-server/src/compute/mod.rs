//! Compute for everyone: projects with GPU-hour allocations, jobs, their logs, events, metrics
//! and usage. The HTTP handlers are here; the loop that runs jobs is in [`scheduler`].

pub mod pages;
pub mod scheduler;
pub mod words;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use grappe_db::{JobRow, MetricPoint, MetricsAdded, NewJob, NewProject, ProjectRow, QueueFull, QueueQuota, now_ms};
use grappe_domain::account::{DisplayName, Role, RoleGrant, Scope, ScopeKind};
use grappe_domain::allocation::{Allocation, Amount, Commitments, Mismatch};
use grappe_domain::compute::{JobRequest, JobSpec, NodeShape};
use grappe_domain::policy::{self, Access};
use grappe_sched::engine::{self, EngineConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::{ApiJson, ApiQuery, Id};
use crate::kit::page::iso_date;
use crate::kit::range;
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::{AppState, ExecutorKind};

pub fn routes() -> Vec<Route> {
    use Access::{GlobalRole, Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Get, Post};
    let admin = GlobalRole(Role::Admin);
    vec![
        route(Api, Post, "/api/v1/projects", admin, "Create a project with its allocation", create_project)
            .body("NewProject"),
        route(Api, Get, "/api/v1/projects", SignedIn, "The projects the caller belongs to", list_projects),
        route(
            Api,
            Get,
            "/api/v1/projects/{id}",
            SignedIn,
            "A project, its allocation and usage (members)",
            get_project,
        ),
        route(Api, Post, "/api/v1/projects/{id}/members", admin, "Add a member to a project", add_member)
            .body("NewMember"),
        route(
            Api,
            Post,
            "/api/v1/projects/{id}/coordinators",
            SignedIn,
            "Name a member coordinator (the principal investigator or an admin)",
            add_coordinator,
        )
        .body("NewMember"),
        route(Api, Get, "/api/v1/projects/{id}/usage.csv", SignedIn, "A project's usage as CSV (members)", usage_csv),
        route(
            Api,
            Post,
            "/api/v1/jobs",
            SignedIn,
            "Submit a job, or estimate its cost with dry_run (members)",
            submit_job,
        )
        .body("NewJob"),
        route(
            Api,
            Post,
            "/api/v1/workdirs",
            SignedIn,
            "Send a job's working directory (a ustar archive, at most 16 MiB of files); its digest names it in `workdir`",
            upload_workdir,
        ),
        route(Api, Get, "/api/v1/jobs", SignedIn, "Jobs of the caller's projects, newest first", list_jobs),
        route(Api, Get, "/api/v1/jobs/{id}", SignedIn, "A job (members of its project)", get_job),
        route(Api, Get, "/api/v1/jobs/{id}/logs", SignedIn, "A job's output; ?follow=true streams it", job_logs),
        route(Api, Get, "/api/v1/jobs/{id}/events", SignedIn, "A job's timeline", job_events),
        route(Api, Post, "/api/v1/jobs/{id}/cancel", SignedIn, "Cancel a job", cancel_job),
        route(Api, Post, "/api/v1/jobs/{id}/metrics", SignedIn, "Append metrics (MLflow log-batch shape)", log_batch)
            .body("LogBatch"),
        route(Api, Get, "/api/v1/jobs/{id}/metrics", SignedIn, "A job's metrics", job_metrics),
        route(Page, Get, "/compute", Public, "Compute: projects and the queue", pages::compute_page),
        route(Page, Get, "/compute/projects/{id}", SignedIn, "A project's page", pages::project_page),
        route(Page, Post, "/compute/projects/{id}/jobs", SignedIn, "Submit a job from the form", pages::submit_form),
        route(Page, Get, "/compute/jobs/{id}", SignedIn, "A job's page", pages::job_page),
        route(Page, Post, "/compute/jobs/{id}/cancel", SignedIn, "Cancel a job from its page", pages::cancel_form),
    ]
}

/// What a project's allocation holds and what its jobs take from it, now.
pub struct Ledger {
    pub allocation: Allocation,
    /// Charged: runs that ended.
    pub used: Amount,
    /// Running jobs so far, and what running and pending jobs may still use.
    pub commitments: Commitments,
}

impl Ledger {
    /// The share of the allocation used and running (the 100 % rule).
    pub fn used_share(&self) -> f64 {
        self.allocation.share(self.used.plus(self.commitments.running))
    }

    /// The share used, running and reserved, with `extra` (a new job) on top (the 125 % rule).
    pub fn committed_share(&self, extra: Amount) -> f64 {
        self.allocation.share(self.used.plus(self.commitments.running).plus(self.commitments.reserved).plus(extra))
    }
}

pub async fn ledger(state: &AppState, project: &ProjectRow) -> AppResult<Ledger> {
    let (used, commitments) = state.db.project_standing(project.id, now_ms()).await?;
    Ok(Ledger {
        allocation: Allocation { gpu_hours: project.gpu_hours, cpu_hours: project.cpu_hours },
        used,
        commitments,
    })
}

fn project_json(project: &ProjectRow, ledger: &Ledger, members: &[i64]) -> Value {
    let Commitments { running, reserved } = ledger.commitments;
    json!({
        "id": project.id,
        "name": project.name,
        "gpu_hours": project.gpu_hours,
        "cpu_hours": project.cpu_hours,
        "storage_gb": project.storage_gb,
        "valid_from": project.valid_from,
        "valid_until": project.valid_until,
        "principal_investigator": project.principal_investigator,
        "used_gpu_hours": ledger.used.gpu_hours(),
        "used_cpu_hours": ledger.used.cpu_hours(),
        "running_gpu_hours": running.gpu_hours(),
        "running_cpu_hours": running.cpu_hours(),
        "reserved_gpu_hours": reserved.gpu_hours(),
        "reserved_cpu_hours": reserved.cpu_hours(),
        "allocation_used": finite(ledger.used_share()),
        "allocation_committed": finite(ledger.committed_share(Amount::default())),
        "members": members,
    })
}

fn finite(value: f64) -> Value {
    if value.is_finite() { json!(value) } else { Value::Null }
}

pub fn job_json(job: &JobRow) -> Value {
    let command: Value = serde_json::from_str(&job.command).unwrap_or(Value::Null);
    json!({
        "id": job.id,
        "project": job.project_id,
        "user_id": job.user_id,
        "name": job.name,
        "command": command,
        "qos": job.qos,
        "cpus": job.cpus,
        "gpus": job.gpus,
        "memory_mb": job.memory_mb,
        "time_limit_s": job.time_limit_s,
        "nodes": job.nodes,
        "network": job.network,
        "env": serde_json::from_str::<Value>(&job.env).unwrap_or(Value::Null),
        "inputs": crate::data::inputs::stored_inputs(&job.inputs),
        "state": job.state,
        "reason": job.reason,
        "exit_code": job.exit_code,
        "restart_count": job.restart_count,
        "run": job.run,
        "cpu_time_s": job.cpu_time_ms.map(|ms| ms as f64 / 1000.0),
        "memory_peak_mb": job.memory_peak_mb,
        "submitted_at": job.submitted_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        // Since its (last) start, until its end or now, by the server's clock.
        "elapsed_s": job.started_at.map(|start| (job.ended_at.unwrap_or_else(now_ms) - start).max(0) / 1000),
        "gpu_ids": job.gpu_ids,
        "cancel_requested": job.cancel_requested,
        "estimated_start_at": job.estimated_start_at.filter(|_| job.state == "pending"),
        "dependency": job.dependencies,
        "array_job_id": job.array_job_id,
        "array_task_id": job.array_task_id,
    })
}

/// Adds what people read instead of ids to jobs as [`job_json`] writes them: `project_name` and
/// `user_name` (the submitter's display name; null when none). One query for the users, whatever
/// the number of jobs.
async fn add_names(state: &AppState, projects: &[ProjectRow], jobs: &mut [Value]) -> AppResult<()> {
    let user_ids: std::collections::BTreeSet<i64> = jobs.iter().filter_map(|job| job["user_id"].as_i64()).collect();
    let users = state.db.user_names(&user_ids.into_iter().collect::<Vec<_>>()).await?;
    for job in jobs {
        let project = projects.iter().find(|project| job["project"].as_i64() == Some(project.id));
        job["project_name"] = json!(project.map(|project| &project.name));
        job["user_name"] = json!(job["user_id"].as_i64().and_then(|id| users.get(&id)));
    }
    Ok(())
}

pub(crate) async fn project_for(state: &AppState, caller: &Caller, id: i64) -> AppResult<ProjectRow> {
    // A project the caller may not see answers 404, as if it did not exist.
    let project = state.db.project(id).await?.filter(|_| policy::may_use_project(&caller.actor, id));
    project.ok_or_else(|| AppError::NotFound(format!("project {id} not found")))
}

pub(crate) async fn job_for(state: &AppState, caller: &Caller, id: i64) -> AppResult<JobRow> {
    let job = state.db.job(id).await?.filter(|job| policy::may_use_project(&caller.actor, job.project_id));
    job.ok_or_else(|| AppError::NotFound(format!("job {id} not found")))
}

#[derive(Deserialize)]
pub struct NewProjectBody {
    pub name: String,
    pub gpu_hours: i64,
    pub cpu_hours: i64,
    #[serde(default)]
    pub storage_gb: i64,
    #[serde(default)]
    pub valid_from: Option<i64>,
    #[serde(default)]
    pub valid_until: Option<i64>,
    #[serde(default)]
    pub members: Vec<i64>,
    /// A member who may name the project's coordinators, and is one.
    #[serde(default)]
    pub principal_investigator: Option<i64>,
}

fn project_grant(role: Role, project_id: i64) -> RoleGrant {
    RoleGrant { role, scope: Scope::Object { kind: ScopeKind::Project, id: project_id } }
}

pub async fn create_project(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewProjectBody>,
) -> AppResult<Response> {
    let (project, members) = new_project(&state, &caller, body).await?;
    let ledger = ledger(&state, &project).await?;
    let body = project_json(&project, &ledger, &members);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Checks and creates a project with its members: the one path for the API and the admin page.
pub async fn new_project(state: &AppState, caller: &Caller, body: NewProjectBody) -> AppResult<(ProjectRow, Vec<i64>)> {
    let name = DisplayName::parse("name", &body.name)?;
    for (field, value) in
        [("gpu_hours", body.gpu_hours), ("cpu_hours", body.cpu_hours), ("storage_gb", body.storage_gb)]
    {
        if !(0..=1_000_000_000).contains(&value) {
            return Err(AppError::Invalid(format!("`{field}` must be between 0 and 1e9")));
        }
    }
    if let (Some(from), Some(until)) = (body.valid_from, body.valid_until)
        && until <= from
    {
        return Err(AppError::Invalid("`valid_until` must come after `valid_from`".into()));
    }
    let mut members = body.members.clone();
    members.extend(body.principal_investigator.filter(|pi| !members.contains(pi)));
    for member in &members {
        if state.db.user_by_id(*member).await?.is_none() {
            return Err(AppError::NotFound(format!("user {member} not found")));
        }
    }
    let actor = caller.audit_name();
    let new = NewProject {
        name: name.as_str(),
        gpu_hours: body.gpu_hours,
        cpu_hours: body.cpu_hours,
        storage_gb: body.storage_gb,
        valid_from: body.valid_from,
        valid_until: body.valid_until,
        principal_investigator: body.principal_investigator,
    };
    let project = state.db.create_project(&new, &actor).await?;
    for member in &members {
        state.db.grant_role(*member, &project_grant(Role::ProjectMember, project.id), &actor).await?;
    }
    if let Some(pi) = body.principal_investigator {
        state.db.grant_role(pi, &project_grant(Role::ProjectCoordinator, project.id), &actor).await?;
    }
    Ok((project, members))
}

/// Names a member coordinator of the project: its principal investigator or an administrator.
pub async fn add_coordinator(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<NewMember>,
) -> AppResult<Response> {
    let project = project_for(&state, &caller, id).await?;
    let is_pi = project.principal_investigator.is_some() && project.principal_investigator == caller.actor.user_id();
    if !caller.actor.is_admin() && !is_pi {
        return Err(AppError::Forbidden(
            "only the project's principal investigator or an administrator names coordinators",
        ));
    }
    if !state.db.project_member_ids(id).await?.contains(&body.user_id) {
        return Err(AppError::Conflict(format!("user {} is not a member of project {id}", body.user_id)));
    }
    state.db.grant_role(body.user_id, &project_grant(Role::ProjectCoordinator, id), &caller.audit_name()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "project": id, "user_id": body.user_id, "role": "project_coordinator" })))
        .into_response())
}

pub async fn list_projects(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> AppResult<Json<Value>> {
    let mut items = Vec::new();
    for project in state.db.list_projects().await? {
        if policy::may_use_project(&caller.actor, project.id) {
            let ledger = ledger(&state, &project).await?;
            items.push(project_json(&project, &ledger, &state.db.project_member_ids(project.id).await?));
        }
    }
    Ok(Json(json!({ "items": items })))
}

pub async fn get_project(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    let project = project_for(&state, &caller, id).await?;
    let ledger = ledger(&state, &project).await?;
    Ok(Json(project_json(&project, &ledger, &state.db.project_member_ids(id).await?)))
}

/// A user to make a member, or a coordinator, of a project.
#[derive(Deserialize)]
pub struct NewMember {
    user_id: i64,
}

pub async fn add_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<NewMember>,
) -> AppResult<Response> {
    project_for(&state, &caller, id).await?;
    let grant = RoleGrant { role: Role::ProjectMember, scope: Scope::Object { kind: ScopeKind::Project, id } };
    state.db.grant_role(body.user_id, &grant, &caller.audit_name()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "project": id, "user_id": body.user_id }))).into_response())
}

/// Usage records as CSV: one line per charge.
#[derive(Deserialize)]
pub struct CsvQuery {
    /// `excel-fr`: `;` between fields, a decimal comma and a byte order mark, as a French
    /// spreadsheet opens it; else RFC 4180 with a decimal point.
    #[serde(default)]
    dialect: Option<String>,
}

/// A project's charges, one line per run: the machine columns first (their order is kept),
/// then the job's name, its user, QoS, the run's start and end in ISO 8601 and its length.
pub async fn usage_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiQuery(query): ApiQuery<CsvQuery>,
) -> AppResult<Response> {
    let project = project_for(&state, &caller, id).await?;
    let french = match query.dialect.as_deref() {
        None | Some("") => false,
        Some("excel-fr") => true,
        Some(other) => return Err(AppError::Invalid(format!("`dialect`: excel-fr, or none (not `{other}`)"))),
    };
    let jobs = state.db.job_labels(id).await?;
    let user_ids: Vec<i64> = jobs.values().filter_map(|(_, user, _)| *user).collect();
    let users = state.db.user_names(&user_ids).await?;
    let separator = if french { ";" } else { "," };
    let number = |value: f64| {
        let text = format!("{value:.6}");
        if french { text.replace('.', ",") } else { text }
    };
    let field = |text: &str| {
        let text = crate::kit::page::csv_field(text);
        // csv_field quotes for commas; a French file also quotes what holds its separator.
        if french && text.contains(';') && !text.starts_with('"') {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    };
    let header = [
        "time_ms",
        "job_id",
        "gpu_hours",
        "cpu_hours",
        "run",
        "started_ms",
        "gpu_ms",
        "cpu_ms",
        "job_name",
        "user",
        "qos",
        "start",
        "end",
        "elapsed_s",
    ];
    let mut csv = if french { String::from("\u{feff}") } else { String::new() };
    csv.push_str(&header.join(separator));
    csv.push('\n');
    for record in state.db.usage_records(id).await? {
        let amount = Amount { gpu_ms: record.gpu_ms, cpu_ms: record.cpu_ms };
        let (name, user, qos) =
            jobs.get(&record.job_id).map_or(("", None, ""), |(name, user, qos)| (name.as_str(), *user, qos.as_str()));
        let user = user.and_then(|user| users.get(&user)).map_or("", String::as_str);
        let fields = [
            record.at.to_string(),
            record.job_id.to_string(),
            number(amount.gpu_hours()),
            number(amount.cpu_hours()),
            record.run.to_string(),
            record.started_at.to_string(),
            record.gpu_ms.to_string(),
            record.cpu_ms.to_string(),
            field(name),
            field(user),
            field(qos),
            crate::kit::page::iso8601(record.started_at),
            crate::kit::page::iso8601(record.at),
            number((record.at - record.started_at) as f64 / 1000.0),
        ];
        csv.push_str(&fields.join(separator));
        csv.push('\n');
    }
    let suffix = if french { "-excel-fr" } else { "" };
    Ok(crate::kit::page::csv_download(&format!("usage-{}{suffix}.csv", project.id), csv))
}

/// A project given by id or by name.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ProjectRef {
    Id(i64),
    Name(String),
}

/// A job submission's body. A field it does not know is refused, named (a misspelt
/// `time_limt_s` must not run the job with the default).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJobBody {
    pub project: ProjectRef,
    pub command: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "one")]
    pub cpus: i64,
    #[serde(default)]
    pub gpus: Option<i64>,
    #[serde(default)]
    pub gpus_per_node: Option<i64>,
    #[serde(default = "default_memory")]
    pub memory_mb: i64,
    pub time_limit_s: i64,
    #[serde(default = "normal")]
    pub qos: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub network: bool,
    #[serde(default = "one")]
    pub nodes: i64,
    /// Dataset versions the job reads: `NAME`, `NAME@vN`, `NAME@VERSION_ID`.
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// The jobs of the same project it waits for, in Slurm's syntax: `afterok:12:13,afterany:14`.
    #[serde(default)]
    pub dependency: Option<String>,
    /// A job array, in Slurm's syntax: `0-999%50`, one job per task, at most 50 running at once.
    #[serde(default)]
    pub array: Option<String>,
    /// The working directory it starts in: the digest of an archive the caller sent to
    /// `POST /api/v1/workdirs`.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Set by the server only, for a job that sends the gateway requests its project pays for
    /// as tokens (a batch's): it is accepted on an allocation of GPU-hours only, where CPU time
    /// counts for nothing, instead of being refused as a CPU job.
    #[serde(skip)]
    pub pays_as_requests: bool,
}

impl NewJobBody {
    /// A job the server queues itself (`queue`): `command` in project `project`, for
    /// `time_limit_s`, without a network, every other field as a submission leaves it.
    pub fn made_by_server(project: i64, command: Vec<String>, time_limit_s: i64) -> NewJobBody {
        NewJobBody {
            project: ProjectRef::Id(project),
            command,
            name: None,
            cpus: one(),
            gpus: None,
            gpus_per_node: None,
            memory_mb: default_memory(),
            time_limit_s,
            qos: normal(),
            env: BTreeMap::new(),
            network: false,
            nodes: one(),
            inputs: Vec::new(),
            dry_run: false,
            dependency: None,
            array: None,
            workdir: None,
            pays_as_requests: false,
        }
    }
}

fn one() -> i64 {
    1
}

fn yes() -> bool {
    true
}

fn default_memory() -> i64 {
    1024
}

fn normal() -> String {
    "normal".to_owned()
}

/// What a node of this server's executor offers.
fn node_shape(state: &AppState) -> NodeShape {
    let compute = &state.config.compute;
    NodeShape {
        cpus: compute.cpus,
        gpus: compute.gpus,
        memory_mb: compute.memory_mb,
        max_nodes: match compute.executor {
            ExecutorKind::Local => 1,
            ExecutorKind::Slurm => compute.slurm_max_nodes,
        },
    }
}

/// What a submission gave: a job, or with `dry_run` an estimate.
pub enum Submitted {
    Job(Box<JobRow>),
    Estimate(Value),
}

pub async fn submit_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewJobBody>,
) -> AppResult<Response> {
    Ok(match submit(&state, &caller, body).await? {
        Submitted::Job(job) => (StatusCode::CREATED, Json(job_json(&job))).into_response(),
        Submitted::Estimate(estimate) => Json(estimate).into_response(),
    })
}

/// Checks a submission (membership, the job's spec, QoS, the allocation with what running and
/// queued jobs may still use) and queues it: the one path for the API, the CLI and the web form.
pub async fn submit(state: &AppState, caller: &Caller, body: NewJobBody) -> AppResult<Submitted> {
    let project = match &body.project {
        ProjectRef::Id(id) => state.db.project(*id).await?,
        ProjectRef::Name(name) => state.db.project_by_name(name).await?,
    };
    // A project the caller may not use answers as one that does not exist: names are not
    // guessable by their answers.
    let project = project
        .filter(|project| policy::may_use_project(&caller.actor, project.id))
        .ok_or_else(|| AppError::NotFound("project not found".into()))?;
    // A job naming an archive is queued before the daily sweep can forget that archive, or
    // after it did (and is then refused): the two take turns.
    let _turn = match &body.workdir {
        Some(_) => Some(WORKDIR_FILES.lock().await),
        None => None,
    };
    if let Some(digest) = &body.workdir {
        // The caller's own archive; the admin token may name anyone's.
        let sender = if caller.actor.is_admin() { None } else { Some(caller.actor.user_id().unwrap_or(0)) };
        let known = is_digest(digest) && state.db.has_workdir_upload(digest, sender).await?;
        if !known {
            return Err(AppError::Invalid(
                "`workdir`: no archive of yours has this digest; send the directory first (POST /api/v1/workdirs)"
                    .into(),
            ));
        }
    }
    let inputs = crate::data::inputs::resolve_inputs(state, caller, &body.inputs).await?;
    queue(state, caller.actor.user_id(), &project, body, &inputs).await
}

/// A SHA-256 in lower-case hex.
fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Receives a working directory as a ustar archive (`grappe_domain::workdir`: files and folders
/// only, bounded), checks it whole and keeps it once by its SHA-256; the digest names it in a
/// job's `workdir`. The same archive sent again is the same digest.
pub async fn upload_workdir(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Body,
) -> AppResult<(StatusCode, Json<Value>)> {
    // Files, a header and padding per entry, and the 10 KiB record GNU tar rounds up to.
    let limit = grappe_domain::workdir::MAX_BYTES as usize + grappe_domain::workdir::MAX_ENTRIES * 1024 + 10_240;
    let bytes = crate::kit::extract::body_within(body, limit).await?;
    let (digest, files, size) = store_workdir(&state, &caller, bytes.to_vec()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "workdir": digest, "files": files, "bytes": size }))))
}

/// The most bytes of working directories one user keeps on the server (their archives, each
/// counted once).
pub const WORKDIR_BYTES_PER_USER: i64 = 1 << 30;

/// Uploads, submissions that name an archive, and the daily sweep take turns over the archives'
/// files and records, so that the sweep never deletes a file that an upload is keeping nor
/// forgets an archive between a submission's check and its job's insert.
static WORKDIR_FILES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Checks a working-directory archive and keeps it under its SHA-256, rewritten canonically
/// (its entries packed again: bounded, and one digest for one content), written to a file of its
/// own, synced, then renamed into place; records that the caller sent it. An archive the caller
/// already holds counts once against their quota. Its digest, files and bytes of files. The admin
/// token's uploads are recorded as user 0.
pub async fn store_workdir(state: &AppState, caller: &Caller, archive: Vec<u8>) -> AppResult<(String, i64, i64)> {
    let user = caller.actor.user_id().unwrap_or(0);
    let (digest, canonical, files, size) = tokio::task::spawn_blocking(move || -> AppResult<_> {
        let entries = grappe_domain::workdir::unpack(&archive)
            .map_err(|bad| AppError::Invalid(format!("the working directory's archive: {bad}")))?;
        let canonical = grappe_domain::workdir::pack(&entries).map_err(|bad| AppError::Invalid(bad.0))?;
        let (mut files, mut size) = (0, 0);
        for entry in &entries {
            if let grappe_domain::workdir::Entry::File { bytes, .. } = entry {
                files += 1;
                size += bytes.len() as i64;
            }
        }
        Ok((grappe_db::sha256_hex(&canonical), canonical, files, size))
    })
    .await
    .map_err(anyhow::Error::from)??;
    let _turn = WORKDIR_FILES.lock().await;
    if !state.db.has_workdir_upload(&digest, Some(user)).await?
        && state.db.workdir_bytes_of(user).await? + size > WORKDIR_BYTES_PER_USER
    {
        return Err(AppError::OverQuota(format!(
            "your working directories would hold more than {} MiB on the server",
            WORKDIR_BYTES_PER_USER >> 20
        )));
    }
    let path = state.config.workdir_archive(&digest);
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        // A complete copy is already there when its length is the archive's (it was renamed
        // into place only once synced).
        if std::fs::metadata(&path).is_ok_and(|meta| meta.len() == canonical.len() as u64) {
            return Ok(());
        }
        std::fs::create_dir_all(path.parent().unwrap_or(&path))?;
        let partial = path.with_extension(format!("{}.partial", crate::kit::caller::new_secret()));
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(&canonical).and_then(|()| file.sync_all())?;
        std::fs::rename(&partial, &path)
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(anyhow::Error::from)?;
    state.db.record_workdir_upload(&digest, user, files, size).await?;
    Ok((digest, files, size))
}

/// How long an archive that no job needs is kept after it was last sent: 30 days.
const WORKDIR_KEPT_MS: i64 = 30 * 24 * 3600 * 1000;

/// Forgets the working-directory archives that no job needs and that were last sent more than
/// 30 days ago (they leave their senders' quotas), and deletes the files that nobody holds any
/// more (the ticker, once a day). How many files were deleted.
pub async fn forget_unused_workdirs(state: &AppState) -> anyhow::Result<usize> {
    let _turn = WORKDIR_FILES.lock().await;
    let before = grappe_db::now_ms() - WORKDIR_KEPT_MS;
    let unheld = state.db.forget_workdirs(before).await?;
    let paths: Vec<_> = unheld.iter().map(|digest| state.config.workdir_archive(digest)).collect();
    let deleted =
        tokio::task::spawn_blocking(move || paths.iter().filter(|path| std::fs::remove_file(path).is_ok()).count())
            .await?;
    Ok(deleted)
}

/// Checks and queues a job of `user_id` on `project`, reading `inputs` (resolved, as stored):
/// the project's dates, the job's spec, QoS and the allocation; whether the user may use the
/// project is the caller's to check ([`submit`]; a challenge runs participants' code on its own
/// project).
pub async fn queue(
    state: &AppState,
    user_id: Option<i64>,
    project: &ProjectRow,
    body: NewJobBody,
    inputs: &str,
) -> AppResult<Submitted> {
    let now = now_ms();
    if project.valid_from > now {
        return Err(AppError::Conflict(format!("the project's allocation starts on {}", iso_date(project.valid_from))));
    }
    if let Some(until) = project.valid_until.filter(|until| *until < now) {
        return Err(AppError::Conflict(format!("the project's allocation ended on {}", iso_date(until))));
    }
    let request = JobRequest {
        command: body.command,
        name: body.name,
        cpus: body.cpus,
        gpus: body.gpus,
        gpus_per_node: body.gpus_per_node,
        memory_mb: body.memory_mb,
        time_limit_s: body.time_limit_s,
        qos: body.qos,
        env: body.env.into_iter().collect(),
        network: body.network,
        nodes: body.nodes,
    };
    let spec = JobSpec::parse(request, &node_shape(state))?;
    let dependencies = checked_dependencies(state, project, body.dependency.as_deref().unwrap_or("")).await?;
    let array = body.array.as_deref().map(grappe_domain::array::parse_array).transpose()?;
    let (array_tasks, array_limit) = array.map_or((Vec::new(), None), |array| (array.tasks, array.limit));
    let jobs = array_tasks.len().max(1) as i64;
    let ledger = ledger(state, project).await?;
    match ledger.allocation.accepts(i64::from(spec.gpus())) {
        Err(Mismatch::GpuOnly) if body.pays_as_requests => {}
        accepted => accepted.map_err(|mismatch| AppError::Conflict(mismatch.to_string()))?,
    }
    let nodes = i64::from(spec.nodes());
    // An array commits what all its tasks may use.
    let cost = Amount::of(
        i64::from(spec.gpus()) * nodes * jobs,
        i64::from(spec.cpus()) * nodes * jobs,
        spec.time_limit_s().saturating_mul(1000),
    );
    let committed = ledger.committed_share(cost);
    engine::admit(&EngineConfig::default(), spec.qos(), spec.time_limit_s(), committed).map_err(
        |refusal| match refusal {
            engine::Refusal::AllocationExhausted { .. } => AppError::Conflict(refusal.to_string()),
            other => AppError::Invalid(other.to_string()),
        },
    )?;
    if body.dry_run {
        let taken = ledger.used.plus(ledger.commitments.running).plus(ledger.commitments.reserved).plus(cost);
        return Ok(Submitted::Estimate(json!({
            "dry_run": true,
            "project": project.id,
            "estimated_gpu_hours": cost.gpu_hours(),
            "estimated_cpu_hours": cost.cpu_hours(),
            "gpu_hours_left_after": project.gpu_hours as f64 - taken.gpu_hours(),
            "cpu_hours_left_after": project.cpu_hours as f64 - taken.cpu_hours(),
            "allocation_committed_after": finite(committed),
        })));
    }
    let command = serde_json::to_string(spec.command()).map_err(anyhow::Error::from)?;
    let env: BTreeMap<&str, &str> = spec.env().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let env = serde_json::to_string(&env).map_err(anyhow::Error::from)?;
    let limits = &state.config.limits;
    let job = state
        .db
        .create_job(
            NewJob {
                project_id: project.id,
                user_id,
                name: spec.name().as_str(),
                command: &command,
                qos: spec.qos(),
                cpus: i64::from(spec.cpus()),
                gpus: i64::from(spec.gpus()),
                memory_mb: spec.memory_mb() as i64,
                time_limit_s: spec.time_limit_s(),
                env: &env,
                network: spec.network(),
                nodes,
                inputs,
                dependencies: &dependencies,
                array_tasks: &array_tasks,
                array_limit,
                workdir: body.workdir.as_deref().unwrap_or(""),
            },
            QueueQuota { per_user: limits.queued_jobs_per_user, per_project: limits.queued_jobs_per_project },
        )
        .await?
        .map_err(|full| {
            AppError::OverQuota(match full {
                QueueFull::User { waiting } => format!(
                    "you have {waiting} jobs waiting, the most one user may queue ({}); wait for some to start",
                    limits.queued_jobs_per_user
                ),
                QueueFull::Project { waiting } => format!(
                    "the project has {waiting} jobs waiting, the most one project may queue ({})",
                    limits.queued_jobs_per_project
                ),
            })
        })?;
    state.scheduler_wake.notify_one();
    Ok(Submitted::Job(Box::new(job)))
}

/// A submission's dependencies, read and normalised: each one a job of the same project (a job
/// never waits on another project's, whose states are not its to learn).
async fn checked_dependencies(state: &AppState, project: &ProjectRow, text: &str) -> AppResult<String> {
    let dependencies = grappe_domain::dependency::parse_dependencies(text)?;
    let ids: Vec<i64> = dependencies.iter().map(|dependency| dependency.job).collect();
    let known = state.db.job_project_ids(&ids).await?;
    for id in &ids {
        if !known.iter().any(|(job, owner)| job == id && *owner == project.id) {
            return Err(AppError::Invalid(format!("`dependency`: job {id} is not a job of project {}", project.name)));
        }
    }
    Ok(grappe_domain::dependency::format_dependencies(&dependencies))
}

#[derive(Deserialize)]
pub struct JobPage {
    #[serde(default = "max_id")]
    before: i64,
    #[serde(default = "fifty")]
    limit: i64,
    #[serde(default)]
    project: Option<i64>,
}

fn max_id() -> i64 {
    i64::MAX
}

fn fifty() -> i64 {
    50
}

/// About the most bytes of one page of the job list.
const LIST_PAGE_BYTES: usize = 4 * 1024 * 1024;

pub async fn list_jobs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(page): ApiQuery<JobPage>,
) -> AppResult<Json<Value>> {
    let projects = state.db.list_projects().await?;
    let visible: Option<Vec<i64>> = if caller.actor.is_admin() && page.project.is_none() {
        None
    } else {
        Some(
            projects
                .iter()
                .map(|p| p.id)
                .filter(|id| policy::may_use_project(&caller.actor, *id))
                .filter(|id| page.project.is_none_or(|wanted| wanted == *id))
                .collect(),
        )
    };
    // Read in batches, and end the page past LIST_PAGE_BYTES (commands may be long): the next
    // page starts with `before` set to its last id, as always.
    let limit = page.limit.clamp(1, 500) as usize;
    let (mut items, mut bytes, mut before) = (Vec::new(), 0, page.before);
    while items.len() < limit && bytes <= LIST_PAGE_BYTES {
        let wanted = (limit - items.len()).min(50);
        let batch = state.db.list_jobs(visible.as_deref(), before, wanted as i64).await?;
        for job in &batch {
            if bytes > LIST_PAGE_BYTES {
                break;
            }
            bytes += job.command.len() + job.env.len() + 512;
            items.push(job_json(job));
        }
        match batch.last() {
            Some(last) if batch.len() == wanted => before = last.id,
            _ => break,
        }
    }
    add_names(&state, &projects, &mut items).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    let job = job_for(&state, &caller, id).await?;
    let projects: Vec<ProjectRow> = state.db.project(job.project_id).await?.into_iter().collect();
    let mut shown = [job_json(&job)];
    add_names(&state, &projects, &mut shown).await?;
    let [shown] = shown;
    Ok(Json(shown))
}

pub async fn job_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    job_for(&state, &caller, id).await?;
    let events = state.db.job_events(id).await?;
    let items: Vec<Value> =
        events.iter().map(|e| json!({ "at": e.at, "state": e.state, "detail": e.detail })).collect();
    Ok(Json(json!({ "items": items })))
}

/// A job the caller may act on (cancel, write metrics to): [`policy::may_act_on_job`].
pub(crate) async fn job_to_act_on(state: &AppState, caller: &Caller, id: i64) -> AppResult<JobRow> {
    let job = job_for(state, caller, id).await?;
    if !policy::may_act_on_job(&caller.actor, job.project_id, job.user_id) {
        return Err(AppError::Forbidden("only the job's owner or a coordinator of its project may do this"));
    }
    Ok(job)
}

pub async fn cancel_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    job_to_act_on(&state, &caller, id).await?;
    let cancellation = state.db.cancel_job(id, &caller.audit_name()).await?;
    state.scheduler_wake.notify_one();
    let job = state.db.job(id).await?.ok_or_else(|| AppError::NotFound(format!("job {id} not found")))?;
    let mut answer = job_json(&job);
    // What this call did: `cancelled`, `requested`, `already_requested` or `already_ended`.
    answer["cancellation"] = json!(cancellation.as_str());
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    follow: bool,
}

pub(crate) fn terminal(state: &str) -> bool {
    grappe_domain::compute::ended(state)
}

/// How much of a log one read takes: a request never holds a whole log in memory.
const LOG_CHUNK: usize = 64 * 1024;

/// The bytes `first..=last` of a file, read a chunk at a time.
fn file_stream(file: tokio::fs::File, first: u64, last: u64) -> Body {
    let stream = futures_util::stream::unfold((file, first), move |(mut file, at)| async move {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if at > last {
            return None;
        }
        let want = ((last - at + 1) as usize).min(LOG_CHUNK);
        let mut chunk = vec![0u8; want];
        let read = async {
            file.seek(std::io::SeekFrom::Start(at)).await?;
            file.read(&mut chunk).await
        };
        match read.await {
            Ok(0) => None,
            Ok(read) => {
                chunk.truncate(read);
                Some((Ok::<_, std::io::Error>(chunk), (file, at + read as u64)))
            }
            Err(error) => Some((Err(error), (file, last + 1))),
        }
    });
    Body::from_stream(stream)
}

/// The job's output as text, streamed a chunk at a time, with `Range` for a part of it; with
/// `?follow=true`, a stream that follows the file as it grows and ends when the job does (at
/// most `log_streams_per_user` at once per user, `log_streams` in all).
pub async fn job_logs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> AppResult<Response> {
    job_for(&state, &caller, id).await?;
    let path = state.config.job_log(id);
    let text_plain = (header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if !query.follow {
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(([text_plain, (header::ACCEPT_RANGES, "bytes")], Vec::new()).into_response());
            }
            Err(error) => return Err(AppError::Internal(error.into())),
        };
        let size = file.metadata().await.map_err(anyhow::Error::from)?.len();
        return Ok(range::ranged(&headers, size, "text/plain; charset=utf-8", |first, last| {
            file_stream(file, first, last)
        }));
    }
    let holder = caller.audit_name();
    let Some(permit) = state.log_streams.try_acquire(&holder) else {
        let (per_user, total) = state.log_streams.limits();
        return Err(AppError::OverQuota(format!(
            "too many live log streams: at most {per_user} per user and {total} in all; close one, or read the \
             log without follow"
        )));
    };
    struct Follow {
        state: AppState,
        path: std::path::PathBuf,
        offset: u64,
        id: i64,
        /// When the job's state was last read: at most once a second.
        checked: Option<std::time::Instant>,
        _permit: crate::kit::permits::Permit,
    }
    let start = Follow { state: state.clone(), path, offset: 0, id, checked: None, _permit: permit };
    let stream = futures_util::stream::unfold(start, |mut follow| async move {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        loop {
            if follow.state.stopping.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            // The state is read before the file: once the job is seen ended, its output is
            // complete, and an empty read means the end.
            let mut ended = false;
            if follow.checked.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                ended = match follow.state.db.job(follow.id).await {
                    Ok(Some(job)) => terminal(&job.state),
                    _ => true,
                };
                follow.checked = Some(std::time::Instant::now());
            }
            let mut chunk = Vec::new();
            if let Ok(mut file) = tokio::fs::File::open(&follow.path).await
                && file.seek(std::io::SeekFrom::Start(follow.offset)).await.is_ok()
            {
                let _ = (&mut file).take(LOG_CHUNK as u64).read_to_end(&mut chunk).await;
            }
            if !chunk.is_empty() {
                follow.offset += chunk.len() as u64;
                return Some((Ok::<_, std::io::Error>(chunk), follow));
            }
            if ended {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Ok(([text_plain], Body::from_stream(stream)).into_response())
}

/// The largest magnitude of a metric value. A value past it (`1.8e308`, say) is almost always a
/// run that diverged; refused here, it cannot reach a chart, and metrics stay comparable.
pub const METRIC_VALUE_MAX: f64 = 1e15;
/// The longest metric key, in bytes.
pub const METRIC_KEY_MAX_BYTES: usize = 250;
/// The most points in one `POST /api/v1/jobs/{id}/metrics`.
pub const METRIC_BATCH_MAX: usize = 1000;

/// Why a metric point is refused, or `None` if it is accepted: the one rule for the API and
/// for output lines.
pub(crate) fn metric_refusal(key: &str, value: f64) -> Option<String> {
    if key.is_empty() || key.len() > METRIC_KEY_MAX_BYTES {
        return Some(format!("its key has {} bytes (1 to {METRIC_KEY_MAX_BYTES})", key.len()));
    }
    if !value.is_finite() || value.abs() > METRIC_VALUE_MAX {
        return Some(format!("its value {value:e} is not a finite number within ±{METRIC_VALUE_MAX:e}"));
    }
    None
}

/// A metric's value as sent: a number, or anything else JSON can hold, refused with its text.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    Number(f64),
    Other(Value),
}

#[derive(Deserialize)]
pub struct MetricBody {
    key: String,
    value: MetricValue,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    step: i64,
}

#[derive(Deserialize)]
pub struct LogBatch {
    metrics: Vec<MetricBody>,
}

/// A value, shortly, for a refusal.
fn shortly(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Append-only metrics, shaped like MLflow's `log-batch`: the whole batch or nothing. A point
/// whose value is not a finite number within ±1e15 is refused (422, naming it); a batch that
/// would take the job past its quota of points is refused (409).
pub async fn log_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<LogBatch>,
) -> AppResult<Json<Value>> {
    job_to_act_on(&state, &caller, id).await?;
    if body.metrics.len() > METRIC_BATCH_MAX {
        return Err(AppError::Invalid(format!("at most {METRIC_BATCH_MAX} metrics per batch")));
    }
    let refused = |index: usize, key: &str, step: i64, reason: String| {
        let key = shortly(&Value::String(key.to_owned()));
        AppError::Invalid(format!(
            "metric {index} ({key}, step {step}) refused: {reason}; nothing of this batch was recorded"
        ))
    };
    let mut points = Vec::with_capacity(body.metrics.len());
    for (index, metric) in body.metrics.into_iter().enumerate() {
        let value = match metric.value {
            MetricValue::Number(value) => match metric_refusal(&metric.key, value) {
                None => value,
                Some(reason) => return Err(refused(index, &metric.key, metric.step, reason)),
            },
            MetricValue::Other(other) => {
                let reason = format!("its value {} is not a number", shortly(&other));
                return Err(refused(index, &metric.key, metric.step, reason));
            }
        };
        points.push(MetricPoint {
            key: metric.key,
            value,
            step: metric.step,
            at: metric.timestamp.unwrap_or_else(now_ms),
        });
    }
    let limit = state.config.compute.metric_points_per_job;
    match state.db.add_metrics(id, &points, limit).await? {
        MetricsAdded::Stored { held } => Ok(Json(json!({ "recorded": points.len(), "points": held, "limit": limit }))),
        MetricsAdded::OverLimit { held } => Err(AppError::Conflict(format!(
            "job {id} holds {held} metric points; these {} would pass its limit of {limit} points per job, \
             so none was recorded",
            points.len()
        ))),
    }
}

/// A job's metric points (at most its quota's worth), with how many it holds and how many
/// lines of its output were dropped.
pub async fn job_metrics(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    job_for(&state, &caller, id).await?;
    let limit = state.config.compute.metric_points_per_job;
    let counts = state.db.metric_counts(id).await?;
    let items: Vec<Value> = state
        .db
        .job_metrics(id, limit)
        .await?
        .iter()
        .map(|m| json!({ "key": m.key, "value": m.value, "step": m.step, "timestamp": m.at }))
        .collect();
    Ok(Json(json!({ "items": items, "points": counts.points, "dropped": counts.dropped, "limit": limit })))
}
