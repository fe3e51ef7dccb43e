//! The compute pages: the module's front page (projects with their gauges, the queue with its
//! reasons), a project (usage against allocation over time, members, a submission form) and a
//! job (state, timeline, live log, metric charts).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use grappe_db::{JobRow, MetricKey, ProjectRow, UsageRecord};
use grappe_domain::policy;
use serde::Deserialize;

use super::{NewJobBody, ProjectRef, Submitted, submit, terminal, words};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::Locale;
use crate::kit::i18n::Time;
use crate::kit::multipart;
use crate::kit::page::{Chrome, FormErrors, form_target, message_page, not_found_page, render};
use crate::kit::state::AppState;
use grappe_chart as chart;
use grappe_domain::workdir::Entry;

struct ProjectView {
    id: i64,
    name: String,
    gauge_svg: String,
    /// One line per resource: used, running, reserved of granted.
    used_lines: [String; 2],
}

struct JobLine {
    id: i64,
    name: String,
    project: String,
    state: String,
    reason: String,
    submitted: Time,
    /// While pending: when it is estimated to start.
    estimated_start: Option<Time>,
}

#[derive(Template)]
#[template(path = "compute.html")]
struct ComputePage {
    chrome: Chrome,
    signed_in: bool,
    /// Said to everyone when jobs run without a sandbox or without control groups.
    unsafe_executor: Option<String>,
    weak_limits: Option<String>,
    projects: Vec<ProjectView>,
    jobs: Vec<JobLine>,
}

async fn project_view(
    state: &AppState,
    project: &ProjectRow,
    tr: &crate::kit::i18n::Tr,
) -> Result<ProjectView, AppError> {
    let ledger = super::ledger(state, project).await?;
    let allocation = ledger.allocation;
    let parts = chart::GaugeParts {
        used: allocation.share(ledger.used),
        running: ledger.used_share() - allocation.share(ledger.used),
        reserved: ledger.committed_share(Default::default()) - ledger.used_share(),
    };
    let legend = [tr.t("legend-used"), tr.t("legend-running"), tr.t("legend-reserved")];
    let (running, reserved) = (ledger.commitments.running, ledger.commitments.reserved);
    let locale = tr.locale;
    let line = |unit: &str, used: f64, running: f64, reserved: f64, granted: i64| {
        format!(
            "{unit}{} {} {} · {} {} · {} {} / {}",
            locale.pick(" :", ":"),
            locale.fixed(used, 2),
            legend[0],
            locale.fixed(running, 2),
            legend[1],
            locale.fixed(reserved, 2),
            legend[2],
            locale.integer(granted)
        )
    };
    Ok(ProjectView {
        id: project.id,
        name: project.name.clone(),
        gauge_svg: chart::gauge(parts, &project.name, [&legend[0], &legend[1], &legend[2]]),
        used_lines: [
            line("GPU-h", ledger.used.gpu_hours(), running.gpu_hours(), reserved.gpu_hours(), project.gpu_hours),
            line("CPU-h", ledger.used.cpu_hours(), running.cpu_hours(), reserved.cpu_hours(), project.cpu_hours),
        ],
    })
}

/// When a pending job is estimated to start, for people.
fn estimated_start(job: &JobRow, locale: Locale) -> Option<Time> {
    job.estimated_start_at.filter(|_| job.state == "pending").map(|at| locale.datetime(at))
}

fn job_line(job: &JobRow, projects: &[ProjectRow], locale: Locale) -> JobLine {
    JobLine {
        id: job.id,
        name: job.name.clone(),
        project: projects.iter().find(|p| p.id == job.project_id).map_or_else(String::new, |p| p.name.clone()),
        state: job.state.clone(),
        reason: words::in_words(locale, &words::Actors::new(), &job.reason),
        submitted: locale.datetime(job.submitted_at),
        estimated_start: estimated_start(job, locale),
    }
}

pub async fn compute_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let signed_in = caller.actor.user_id().is_some() || caller.actor.is_admin();
    let all = state.db.list_projects().await?;
    let visible: Vec<ProjectRow> = all.into_iter().filter(|p| policy::may_use_project(&caller.actor, p.id)).collect();
    let mut projects = Vec::with_capacity(visible.len());
    for project in &visible {
        projects.push(project_view(&state, project, &chrome.tr).await?);
    }
    let ids: Vec<i64> = visible.iter().map(|p| p.id).collect();
    let jobs = state.db.list_jobs(Some(&ids), i64::MAX, 100).await?;
    let jobs = jobs.iter().map(|job| job_line(job, &visible, chrome.tr.locale)).collect();
    let exec = state.exec.as_deref();
    let unsafe_executor =
        exec.filter(|exec| !exec.isolation.is_sandboxed()).map(|_| chrome.tr.t("compute-unsafe-executor"));
    let weak_limits = exec.filter(|exec| exec.cgroups.is_none()).map(|_| chrome.tr.t("compute-no-cgroups"));
    Ok(render(&ComputePage { chrome, signed_in, unsafe_executor, weak_limits, projects, jobs }, StatusCode::OK))
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    chrome: Chrome,
    project: ProjectView,
    usage_svg: String,
    members: i64,
    jobs: Vec<JobLine>,
    gpus_here: u32,
    /// The submission form as typed, and what is wrong with it.
    form: JobForm,
    errors: FormErrors,
}

/// Cumulative GPU-hours (or CPU-hours) used against the allocation, by day since creation.
fn usage_chart(project: &ProjectRow, records: &[UsageRecord], tr: &crate::kit::i18n::Tr) -> String {
    // GPU-hours when the project has used or holds any, else CPU-hours.
    let gpu_used: i64 = records.iter().map(|record| record.gpu_ms).sum();
    let cpu_used: i64 = records.iter().map(|record| record.cpu_ms).sum();
    let gpu = gpu_used > 0 || (cpu_used == 0 && project.gpu_hours > 0);
    let allocation = if gpu { project.gpu_hours } else { project.cpu_hours } as f64;
    let mut total = 0.0;
    let mut used = vec![(0.0, 0.0)];
    for record in records {
        total += if gpu { record.gpu_ms } else { record.cpu_ms } as f64 / 3_600_000.0;
        used.push((((record.at - project.created_at).max(0)) as f64 / 86_400_000.0, total));
    }
    let last_x = used.last().map_or(1.0, |(x, _)| x.max(1.0));
    let title = tr.t("project-usage-chart");
    let x_label = tr.t("project-usage-days");
    let y_label = if gpu { "GPU-h" } else { "CPU-h" };
    let (allocation_label, used_label) = (tr.t("legend-allocation"), tr.t("legend-used"));
    chart::line_chart(&chart::LineChart {
        title: &title,
        x_label: &x_label,
        y_label,
        series: vec![
            chart::Series {
                label: &allocation_label,
                colour: "#8a94a3",
                points: vec![(0.0, allocation), (last_x, allocation)],
            },
            chart::Series { label: &used_label, colour: "#2f68b1", points: used },
        ],
    })
}

pub async fn project_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(id) = id.parse::<i64>().ok() else { return Ok(not_found_page(chrome)) };
    let Ok(project) = super::project_for(&state, &caller, id).await else { return Ok(not_found_page(chrome)) };
    project_response(&state, chrome, project, JobForm::default(), FormErrors::default(), StatusCode::OK).await
}

/// The project's page, its form filled as given (empty: the defaults).
async fn project_response(
    state: &AppState,
    chrome: Chrome,
    project: ProjectRow,
    form: JobForm,
    errors: FormErrors,
    status: StatusCode,
) -> Result<Response, AppError> {
    let id = project.id;
    let records = state.db.usage_records(id).await?;
    let usage_svg = usage_chart(&project, &records, &chrome.tr);
    let members = state.db.project_member_ids(id).await?.len() as i64;
    let jobs = state.db.list_jobs(Some(&[id]), i64::MAX, 100).await?;
    let projects = [project.clone()];
    let jobs = jobs.iter().map(|job| job_line(job, &projects, chrome.tr.locale)).collect();
    let view = project_view(state, &project, &chrome.tr).await?;
    let gpus_here = state.config.compute.gpus;
    let page = ProjectPage { chrome, project: view, usage_svg, members, jobs, gpus_here, form, errors };
    Ok(render(&page, status))
}

/// The submission form as typed: every field a string, so that a wrong value comes back to its
/// field with a message, never as a refusal of the whole request.
#[derive(Deserialize)]
#[serde(default)]
pub struct JobForm {
    csrf: String,
    name: String,
    command: String,
    cpus: String,
    gpus: String,
    /// In GiB, a decimal (a comma or a point).
    memory_gib: String,
    time_limit_min: String,
    qos: String,
    /// A checkbox: present when ticked.
    network: Option<String>,
    /// Datasets the job reads, separated by spaces or commas.
    inputs: String,
}

impl Default for JobForm {
    fn default() -> JobForm {
        JobForm {
            csrf: String::new(),
            name: String::new(),
            command: String::new(),
            cpus: "1".to_owned(),
            gpus: "0".to_owned(),
            memory_gib: "1".to_owned(),
            time_limit_min: "60".to_owned(),
            qos: "normal".to_owned(),
            network: Some("on".to_owned()),
            inputs: String::new(),
        }
    }
}

impl JobForm {
    /// The job it asks for, or what is wrong with each field.
    fn body(&self, project: i64, gpus_here: u32, tr: &crate::kit::i18n::Tr) -> Result<NewJobBody, FormErrors> {
        let mut errors = FormErrors::default();
        let whole =
            |text: &str, least: i64, most: i64| text.trim().parse::<i64>().ok().filter(|n| (least..=most).contains(n));
        let command = self.command.trim();
        if command.is_empty() {
            errors.fields.push(("command", tr.t("job-error-command")));
        }
        if self.name.chars().count() > 200 {
            errors.fields.push(("name", tr.t("job-error-name")));
        }
        let cpus = whole(&self.cpus, 1, 100_000);
        if cpus.is_none() {
            errors.fields.push(("cpus", tr.t("job-error-cpus")));
        }
        // Past what a node has, JobSpec refuses it, saying so.
        let gpus = whole(&self.gpus, 0, i64::from(gpus_here.max(1)) * 1024);
        if gpus.is_none() {
            errors.fields.push(("gpus", tr.t("job-error-gpus")));
        }
        let gib = self.memory_gib.trim().replace(',', ".").parse::<f64>().ok().filter(|gib| *gib > 0.0 && *gib <= 1e6);
        if gib.is_none() {
            errors.fields.push(("memory_gib", tr.t("job-error-memory")));
        }
        let minutes = whole(&self.time_limit_min, 1, grappe_domain::compute::MAX_TIME_LIMIT_S / 60);
        if minutes.is_none() {
            errors.fields.push(("time_limit_min", tr.t("job-error-time")));
        }
        let (Some(cpus), Some(gpus), Some(gib), Some(minutes), true) =
            (cpus, gpus, gib, minutes, errors.fields.is_empty())
        else {
            return Err(errors);
        };
        Ok(NewJobBody {
            project: ProjectRef::Id(project),
            command: vec!["sh".to_owned(), "-c".to_owned(), command.to_owned()],
            name: Some(self.name.trim().to_owned()).filter(|name| !name.is_empty()),
            cpus,
            gpus: Some(gpus),
            gpus_per_node: None,
            memory_mb: (gib * 1024.0).round().max(1.0) as i64,
            time_limit_s: minutes * 60,
            qos: self.qos.clone(),
            env: Default::default(),
            network: self.network.is_some(),
            nodes: 1,
            inputs: self.inputs.split([' ', ',']).filter(|input| !input.is_empty()).map(str::to_owned).collect(),
            dry_run: false,
            dependency: None,
            array: None,
            workdir: None,
            pays_as_requests: false,
        })
    }
}

/// A script sent with the form: its file name (the name it gets in the working directory) and
/// its bytes.
struct Script {
    name: String,
    bytes: Vec<u8>,
}

/// The most bytes of a script sent with the form.
const SCRIPT_MAX_BYTES: usize = 1 << 20;

/// The job form as the browser sends it: `multipart/form-data` when it carries a script file,
/// else URL-encoded.
async fn read_job_form(headers: &HeaderMap, body: axum::body::Body) -> Result<(JobForm, Option<Script>), AppError> {
    if !multipart::is_multipart(headers) {
        let bytes = crate::kit::extract::body_within(body, 64 * 1024).await?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|error| AppError::BadRequest(format!("the form could not be read: {error}")))?;
        return Ok((form, None));
    }
    let (bytes, boundary) = multipart::read(headers, body, SCRIPT_MAX_BYTES + 64 * 1024).await?;
    let parts = multipart::parts_of(&bytes, &boundary)?;
    let text = |name: &str| multipart::text(&parts, name).map(str::to_owned);
    let defaults = JobForm::default();
    let form = JobForm {
        csrf: text("csrf").unwrap_or_default(),
        name: text("name").unwrap_or_default(),
        command: text("command").unwrap_or_default(),
        cpus: text("cpus").unwrap_or(defaults.cpus),
        gpus: text("gpus").unwrap_or(defaults.gpus),
        memory_gib: text("memory_gib").unwrap_or(defaults.memory_gib),
        time_limit_min: text("time_limit_min").unwrap_or(defaults.time_limit_min),
        qos: text("qos").unwrap_or(defaults.qos),
        network: text("network"),
        inputs: text("inputs").unwrap_or_default(),
    };
    let script = parts
        .iter()
        .find(|part| part.name == "script" && !part.bytes.is_empty())
        .map(|part| Script { name: part.filename.clone().unwrap_or_default(), bytes: part.bytes.to_vec() });
    if script.as_ref().is_some_and(|script| script.bytes.len() > SCRIPT_MAX_BYTES) {
        return Err(AppError::PayloadTooLarge);
    }
    Ok((form, script))
}

/// The script as the file it becomes in the working directory (its name's last part, checked),
/// and the command that runs it when none was typed: Python for `.py`, else the shell.
fn script_entry(script: Script, tr: &crate::kit::i18n::Tr) -> Result<(Entry, String), FormErrors> {
    // Letters, digits, `.`, `_` and `-`, not first: a name the shell reads as it is written.
    let name = script.name.rsplit(['/', '\\']).next().unwrap_or_default().to_owned();
    let plain = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['-', '.'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !plain {
        return Err(FormErrors { fields: vec![("script", tr.t("job-error-script"))], form: None });
    }
    let run = format!("{} {name}", if name.ends_with(".py") { "python3" } else { "sh" });
    Ok((Entry::File { path: name, bytes: script.bytes, executable: true }, run))
}

/// Submits the form's job, with its script (if one was sent) as its working directory.
async fn submit_with_script(
    state: &AppState,
    caller: &Caller,
    mut body: NewJobBody,
    script: Option<Entry>,
) -> Result<Submitted, AppError> {
    if let Some(file) = script {
        let archive = grappe_domain::workdir::pack(&[file]).map_err(|bad| AppError::Invalid(bad.0))?;
        body.workdir = Some(super::store_workdir(state, caller, archive).await?.0);
    }
    submit(state, caller, body).await
}

pub async fn submit_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let (mut form, script) = match read_job_form(&headers, body).await {
        Ok(read) => read,
        Err(AppError::PayloadTooLarge) => {
            // Only a form with a file is sent as multipart.
            let too_large = if multipart::is_multipart(&headers) {
                "job-error-script-too-large"
            } else {
                "job-error-form-too-large"
            };
            let message = chrome.tr.t(too_large);
            return Ok(message_page(chrome, StatusCode::PAYLOAD_TOO_LARGE, message));
        }
        Err(error) => return Ok(message_page(chrome, error.status(), error.to_string())),
    };
    let (chrome, id) = match form_target(chrome, &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(refusal) => return Ok(*refusal),
    };
    let Ok(project) = super::project_for(&state, &caller, id).await else { return Ok(not_found_page(chrome)) };
    let refused = StatusCode::UNPROCESSABLE_ENTITY;
    let script = match script.map(|script| script_entry(script, &chrome.tr)).transpose() {
        Ok(script) => script,
        Err(errors) => return project_response(&state, chrome, project, form, errors, refused).await,
    };
    if let Some((_, run)) = &script
        && form.command.trim().is_empty()
    {
        form.command = run.clone();
    }
    let body = match form.body(id, state.config.compute.gpus, &chrome.tr) {
        Ok(body) => body,
        Err(errors) => return project_response(&state, chrome, project, form, errors, refused).await,
    };
    let errors = match submit_with_script(&state, &caller, body, script.map(|(file, _)| file)).await {
        Ok(Submitted::Job(job)) => return Ok(Redirect::to(&format!("/compute/jobs/{}", job.id)).into_response()),
        Ok(Submitted::Estimate(_)) => return Ok(Redirect::to(&format!("/compute/projects/{id}")).into_response()),
        Err(error) if error.status().is_client_error() => {
            FormErrors { fields: Vec::new(), form: Some(format!("{} {error}", chrome.tr.t("job-form-refused"))) }
        }
        Err(error) => return Err(error),
    };
    project_response(&state, chrome, project, form, errors, refused).await
}

struct EventLine {
    at: Time,
    state: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    chrome: Chrome,
    job: JobRow,
    project: String,
    command: String,
    active: bool,
    events: Vec<EventLine>,
    log: String,
    metric_svgs: Vec<String>,
    /// "recorded / limit" and the dropped points, as the reader's language writes numbers; none
    /// when the job has no metric.
    metric_points: Option<String>,
    metrics_dropped: Option<String>,
    /// More keys than charts drawn.
    more_metrics: bool,
    /// The dataset versions it reads (its lineage).
    inputs: Vec<crate::data::inputs::Input>,
    /// The run's time so far (or in all, once ended) against its limit; none before a start.
    elapsed: Option<String>,
    /// Why it waits or how it ended, in the reader's words.
    reason: String,
    estimated_start: Option<Time>,
}

/// The most metric charts on a job's page: its first keys by name.
const METRIC_CHARTS_MAX: usize = 20;
/// Buckets of steps a long metric is read in: about one per point drawn.
const METRIC_BUCKETS: i64 = chart::MAX_LINE_POINTS as i64;

/// A metric's points for its chart, with bounded work however many it has: all of them if they
/// are few (at most two per bucket), else the database sums them up in `METRIC_BUCKETS` buckets
/// of consecutive steps, each narrower than a pixel of the chart, and each gives two points, its
/// lowest and its highest value (so no peak is lost); the chart then thins them with LTTB.
async fn metric_series(state: &AppState, job_id: i64, key: &MetricKey) -> Result<Vec<(f64, f64)>, AppError> {
    if key.points <= 2 * METRIC_BUCKETS {
        let points = state.db.job_metric_points(job_id, &key.key, 2 * METRIC_BUCKETS).await?;
        return Ok(points.into_iter().map(|(step, value)| (step as f64, value)).collect());
    }
    let span = i128::from(key.last_step) - i128::from(key.first_step);
    let width = i64::try_from(span / i128::from(METRIC_BUCKETS) + 1).unwrap_or(i64::MAX);
    let mut points = Vec::with_capacity(2 * METRIC_BUCKETS as usize + 4);
    for bucket in state.db.job_metric_buckets(job_id, &key.key, width).await? {
        points.push((bucket.first_step as f64, bucket.low));
        if bucket.last_step != bucket.first_step || bucket.high != bucket.low {
            points.push((bucket.last_step as f64, bucket.high));
        }
    }
    Ok(points)
}

/// The last `limit` bytes of a job's output, cut at a character boundary.
/// The last `limit` bytes of a log: only they are read, however long the log is.
async fn log_tail(path: &std::path::Path, limit: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let Ok(mut file) = tokio::fs::File::open(path).await else { return String::new() };
    let length = file.metadata().await.map(|meta| meta.len()).unwrap_or(0);
    let start = length.saturating_sub(limit as u64);
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return String::new();
    }
    let mut bytes = Vec::with_capacity(limit.min(length as usize));
    let _ = file.take(limit as u64).read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

pub async fn job_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(id) = id.parse::<i64>().ok() else { return Ok(not_found_page(chrome)) };
    let Ok(job) = super::job_for(&state, &caller, id).await else { return Ok(not_found_page(chrome)) };
    let project = state.db.project(job.project_id).await?.map_or_else(String::new, |p| p.name);
    let events = state.db.job_events(id).await?;
    let mut actors = words::Actors::new();
    for user in events.iter().filter_map(|event| words::actor_ids(&event.detail)) {
        if let Some(row) = state.db.user_by_id(user).await? {
            actors.insert(format!("user:{user}"), row.name);
        }
    }
    let locale = chrome.tr.locale;
    let events = events
        .into_iter()
        .map(|event| EventLine {
            at: locale.datetime_seconds(event.at),
            detail: words::in_words(locale, &actors, &event.detail),
            state: event.state,
        })
        .collect();
    let log = log_tail(&state.config.job_log(id), 64 * 1024).await;
    let mut keys = state.db.job_metric_keys(id, METRIC_CHARTS_MAX as i64 + 1).await?;
    let more_metrics = keys.len() > METRIC_CHARTS_MAX;
    keys.truncate(METRIC_CHARTS_MAX);
    let mut by_key = Vec::with_capacity(keys.len());
    for key in &keys {
        by_key.push((key.key.clone(), metric_series(&state, id, key).await?));
    }
    let step_label = chrome.tr.t("job-metric-step");
    let metric_svgs = by_key
        .into_iter()
        .map(|(key, points)| {
            // Down-sampled to at most `chart::MAX_LINE_POINTS` by the chart itself.
            chart::line_chart(&chart::LineChart {
                title: &key,
                x_label: &step_label,
                y_label: &key,
                series: vec![chart::Series { label: &key, colour: "#2f68b1", points }],
            })
        })
        .collect();
    let counts = state.db.metric_counts(id).await?;
    let metric_limit = state.config.compute.metric_points_per_job;
    let metric_points = (counts.points > 0 || counts.dropped > 0)
        .then(|| format!("{} / {}", locale.integer(counts.points), locale.integer(metric_limit)));
    let metrics_dropped = (counts.dropped > 0).then(|| locale.integer(counts.dropped));
    let command: Vec<String> = serde_json::from_str(&job.command).unwrap_or_default();
    let active = !terminal(&job.state);
    let elapsed = job.started_at.map(|started| {
        let until = if active { grappe_db::now_ms() } else { job.ended_at.unwrap_or_else(grappe_db::now_ms) };
        let seconds = (until - started).max(0) / 1000;
        format!("{} / {}", locale.duration(seconds), locale.duration(job.time_limit_s))
    });
    let page = JobPage {
        chrome,
        command: grappe_exec::slurm::shell_words(&command),
        active,
        project,
        events,
        log,
        metric_svgs,
        metric_points,
        metrics_dropped,
        more_metrics,
        inputs: crate::data::inputs::stored_inputs(&job.inputs),
        elapsed,
        estimated_start: estimated_start(&job, locale),
        reason: words::in_words(locale, &actors, &job.reason),
        job,
    };
    Ok(render(&page, StatusCode::OK))
}

pub async fn cancel_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<crate::kit::extract::CsrfForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(refusal) => return Ok(*refusal),
    };
    match super::job_to_act_on(&state, &caller, id).await {
        Ok(_) => {}
        Err(error @ AppError::Forbidden(_)) => return Ok(message_page(chrome, error.status(), error.to_string())),
        Err(_) => return Ok(not_found_page(chrome)),
    }
    state.db.cancel_job(id, &caller.audit_name()).await?;
    state.scheduler_wake.notify_one();
    Ok(Redirect::to(&format!("/compute/jobs/{id}")).into_response())
}
