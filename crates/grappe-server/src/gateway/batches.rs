//! Files and batches as OpenAI's clients send them (`/v1/files`, `/v1/batches`): a JSONL file
//! of requests, each answered in turn through the gateway and paid by the batch's key as any
//! request is (reserved, then settled), the answers gathered into an output file.
//!
//! A batch runs as a compute job of its project (`grappe batch run`), at the lowest priority
//! (QoS `long`), for as long as its allocation admits up to the 24 hours of OpenAI's window: it
//! waits its turn in the queue, is charged for the time it runs as any job is, and may be
//! preempted and requeued. The job reads the file as its input and sends each request to this
//! server's `/v1/...` with `gjob-JOB-TOKEN` (its replica token), which stands for the batch's key
//! on the batch's endpoint only, while the job runs, and waits behind people for a busy replica
//! (`Priority::Batch`). Each answer is appended to `answers.jsonl` in the job's working directory
//! and synced before the next request, so that a requeued job goes on from the first request
//! without a recorded answer (one answered but not recorded when its run died is asked again,
//! and paid again: at most one per run). The process that holds the ticker lease follows the
//! jobs ([`advance`]): once a job ended, its answers become the batch's output file. Files live
//! in the data store, one store version each.

use std::collections::HashSet;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{BatchEnd, GatewayBatchRow, GatewayFileRow, GatewayKeyRow, JobRow};
use grappe_store::{DatasetPath, Name, Splits};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::compute::{NewJobBody, Submitted};
use crate::gateway::key_of;
use crate::gateway::proxy::Endpoint;
use crate::gateway::served::input_of;
use crate::kit::caller::{Caller, constant_time_eq};
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::OpenAiBody;
use crate::kit::multipart;
use crate::kit::state::AppState;
use crate::kit::stored::{Scratch, blocking, version_id};

/// The most bytes of a file, and the most requests of a batch.
pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;
pub const MAX_REQUESTS: usize = 50_000;
/// The most bytes of a batch's output kept as its file (read whole by the server).
const MAX_OUTPUT_BYTES: u64 = 256 * 1024 * 1024;
/// How long a batch's job may run, longest first: the first the project's allocation admits.
const BATCH_TIMES_S: [i64; 4] = [24 * 3600, 4 * 3600, 3600, 900];
/// The job's command: the input file read from its input, the endpoint and the batch's number
/// given as `$1` and `$2`, so that nothing is parsed by the shell.
const BATCH_SCRIPT: &str = r#"exec grappe batch run --endpoint "$1" --batch "$2" --input "$GRAPPE_INPUTS/requests/content" --output answers.jsonl"#;
/// Where the job writes its answers, in its working directory.
const ANSWERS: &str = "answers.jsonl";
/// A batch whose job was not recorded this long after it was made (the server stopped in
/// between, or it was made before batches ran as jobs) is given one by [`advance`].
const QUEUE_GRACE_MS: i64 = 60_000;

pub(crate) fn answered<T: Into<Value>>(done: AppResult<T>) -> Response {
    match done {
        Ok(body) => Json(body.into()).into_response(),
        Err(error) => error.openai_response(),
    }
}

fn file_json(file: &GatewayFileRow) -> Value {
    json!({
        "id": format!("file-{}", file.id), "object": "file", "bytes": file.bytes,
        "created_at": file.created_at / 1000, "filename": file.filename, "purpose": file.purpose, "status": "processed",
    })
}

/// A batch in OpenAI's shape; its counts are those of [`counts`].
fn batch_json(batch: &GatewayBatchRow, (done, failed): (i64, i64)) -> Value {
    json!({
        "id": format!("batch_{}", batch.id), "object": "batch", "endpoint": batch.endpoint,
        "input_file_id": format!("file-{}", batch.input_file_id), "completion_window": "24h",
        "status": batch.status,
        "output_file_id": batch.output_file_id.map(|id| format!("file-{id}")), "error_file_id": null,
        "created_at": batch.created_at / 1000, "completed_at": batch.ended_at.map(|at| at / 1000),
        "request_counts": { "total": batch.total, "completed": done - failed, "failed": failed },
    })
}

/// The requests a batch answered, and how many of those failed: while its job runs, as the job
/// last told them (its metrics `answered` and `failed`); once it ended, as its output holds them.
async fn counts(state: &AppState, batch: &GatewayBatchRow) -> AppResult<(i64, i64)> {
    match batch.job_id {
        Some(job) if batch.ended_at.is_none() => {
            let answered = state.db.last_metric(job, "answered").await?.unwrap_or(0.0) as i64;
            let failed = state.db.last_metric(job, "failed").await?.unwrap_or(0.0) as i64;
            Ok((answered.clamp(0, batch.total), failed.clamp(0, answered.max(0))))
        }
        _ => Ok((batch.done, batch.failed)),
    }
}

async fn shown(state: &AppState, batch: &GatewayBatchRow) -> AppResult<Value> {
    Ok(batch_json(batch, counts(state, batch).await?))
}

/// The number in an id as OpenAI writes them (`file-12`, `batch_3`).
pub(crate) fn number(id: &str, prefix: &str) -> AppResult<i64> {
    id.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| AppError::NotFound(format!("No such object: {id}")))
}

/// Keeps `bytes` in the data store as a file of the project.
async fn store_file(
    state: &AppState,
    project: i64,
    filename: &str,
    purpose: &str,
    bytes: Vec<u8>,
) -> AppResult<GatewayFileRow> {
    let size = bytes.len() as i64;
    crate::kit::stored::check_storage(state, project, |held| held.saturating_add(size as u64), "delete files").await?;
    let scratch = Scratch::new(state, "gateway-file")?;
    let store = state.store.clone();
    let name = Name::parse(&format!("gateway-files.{project}"))
        .map_err(|error| AppError::Internal(anyhow::anyhow!("{error}")))?;
    let version = blocking(move || {
        std::fs::write(scratch.0.join("content"), &bytes).map_err(|error| AppError::Internal(error.into()))?;
        let (committed, _) = store
            .push_dir(&scratch.0, &name, String::new(), Splits::default())
            .map_err(|error| AppError::Internal(error.into()))?;
        Ok(committed.id.to_string())
    })
    .await?;
    Ok(state.db.add_gateway_file(project, filename, purpose, size, &version).await?)
}

/// A file's bytes, read back from the data store.
pub(crate) async fn file_bytes(state: &AppState, file: &GatewayFileRow) -> AppResult<Vec<u8>> {
    let id = version_id(&file.store_version)?;
    let store = state.store.clone();
    blocking(move || {
        let path = DatasetPath::parse("content").map_err(|error| AppError::Internal(anyhow::anyhow!("{error}")))?;
        let mut bytes = Vec::new();
        store.read_file(&id, &path, &mut bytes).map_err(|error| AppError::Internal(error.into()))?;
        Ok(bytes)
    })
    .await
}

pub async fn upload_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let done = async {
        let key = key_of(&caller)?;
        let (body, boundary) = multipart::read(&headers, body, MAX_FILE_BYTES + 64 * 1024).await?;
        let parts = multipart::parts_of(&body, &boundary)?;
        let purpose = match multipart::text(&parts, "purpose") {
            Some(purpose @ ("batch" | "fine-tune")) => purpose,
            _ => return Err(AppError::Invalid("`purpose`: batch or fine-tune".into())),
        };
        let file = parts
            .iter()
            .find(|part| part.name == "file")
            .ok_or_else(|| AppError::Invalid("`file`: required".into()))?;
        let filename: String = file
            .filename
            .clone()
            .unwrap_or_else(|| format!("{purpose}.jsonl"))
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        if purpose == "fine-tune" {
            crate::gateway::fine_tuning::check_fine_tuning_file(file.bytes)?;
        }
        let stored = store_file(&state, key.project_id, &filename, purpose, file.bytes.to_vec()).await?;
        Ok(file_json(&stored))
    };
    answered(done.await)
}

pub async fn files(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let done = async {
        let key = key_of(&caller)?;
        let data: Vec<Value> = state.db.gateway_files(key.project_id).await?.iter().map(file_json).collect();
        Ok(json!({ "object": "list", "data": data }))
    };
    answered(done.await)
}

async fn project_file(state: &AppState, caller: &Caller, id: &str) -> AppResult<GatewayFileRow> {
    let key = key_of(caller)?;
    let number = number(id, "file-")?;
    state
        .db
        .gateway_file(key.project_id, number)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No such File object: {id}")))
}

pub async fn file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    answered(project_file(&state, &caller, &id).await.map(|file| file_json(&file)))
}

pub async fn file_content(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let done = async {
        let file = project_file(&state, &caller, &id).await?;
        file_bytes(&state, &file).await
    };
    match done.await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/jsonl")], bytes).into_response(),
        Err(error) => error.openai_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    pub input_file_id: String,
    pub endpoint: String,
    #[serde(default)]
    pub completion_window: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A batch's requests: `(custom_id, body)` of each line, checked.
fn requests_of(bytes: &[u8], endpoint: &str) -> AppResult<Vec<(String, Value)>> {
    let text = std::str::from_utf8(bytes).map_err(|_| AppError::Invalid("the input file is not UTF-8".into()))?;
    let mut seen = HashSet::new();
    let mut requests = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let at = |what: &str| AppError::Invalid(format!("line {}: {what}", i + 1));
        let request: Value = serde_json::from_str(line).map_err(|error| at(&format!("not JSON ({error})")))?;
        let custom_id = request["custom_id"].as_str().ok_or_else(|| at("`custom_id`: required"))?.to_owned();
        if request["method"] != "POST" || request["url"].as_str() != Some(endpoint) {
            return Err(at(&format!("`method` POST and `url` {endpoint}, as the batch's endpoint")));
        }
        if !request["body"].is_object() || request["body"]["stream"] == json!(true) {
            return Err(at("`body`: a request's JSON object, not streamed"));
        }
        if !seen.insert(custom_id.clone()) {
            return Err(at(&format!("`custom_id` {custom_id} twice")));
        }
        requests.push((custom_id, request["body"].clone()));
        if requests.len() > MAX_REQUESTS {
            return Err(AppError::Invalid(format!("at most {MAX_REQUESTS} requests in a batch")));
        }
    }
    if requests.is_empty() {
        return Err(AppError::Invalid("the input file holds no request".into()));
    }
    Ok(requests)
}

pub async fn create_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiBody(body): OpenAiBody,
) -> Response {
    let done = async {
        let key = key_of(&caller)?.clone();
        let asked: NewBatch =
            serde_json::from_slice(&body).map_err(|error| AppError::BadRequest(format!("the body: {error}")))?;
        if asked.completion_window.as_deref().is_some_and(|window| window != "24h") {
            return Err(AppError::Invalid("`completion_window`: 24h".into()));
        }
        if asked.metadata.as_ref().is_some_and(|metadata| !metadata.is_object()) {
            return Err(AppError::Invalid("`metadata`: an object".into()));
        }
        if Endpoint::of_url(&asked.endpoint).is_none() {
            return Err(AppError::Invalid(
                "`endpoint`: /v1/chat/completions, /v1/completions or /v1/embeddings".into(),
            ));
        }
        let input = project_file(&state, &caller, &asked.input_file_id).await?;
        let requests = requests_of(&file_bytes(&state, &input).await?, &asked.endpoint)?;
        let batch = state.db.create_gateway_batch(&key, &asked.endpoint, input.id, requests.len() as i64).await?;
        // Refused by the project's allocation: the batch ends at once, and the caller is told why.
        if let Err(error) = queue_job(&state, &batch, &input).await {
            let end = BatchEnd { status: "failed", output_file_id: None, done: 0, failed: 0 };
            state.db.end_gateway_batch(batch.id, &end).await?;
            return Err(error);
        }
        let batch = project_batch(&state, &caller, &format!("batch_{}", batch.id)).await?;
        shown(&state, &batch).await
    };
    answered(done.await)
}

/// Queues the compute job that runs `batch`, for the longest of [`BATCH_TIMES_S`] its project's
/// allocation admits, and records it as the batch's.
async fn queue_job(state: &AppState, batch: &GatewayBatchRow, input: &GatewayFileRow) -> AppResult<()> {
    let project = state.db.project(batch.project_id).await?;
    let project =
        project.ok_or_else(|| AppError::Internal(anyhow::anyhow!("project {} is missing", batch.project_id)))?;
    let inputs = serde_json::to_string(&[input_of("requests", &input.store_version)]).map_err(anyhow::Error::from)?;
    let mut refused = None;
    for time_limit_s in BATCH_TIMES_S {
        match crate::compute::queue(state, None, &project, job_body(batch, time_limit_s), &inputs).await {
            Ok(Submitted::Job(job)) => {
                if !state.db.set_batch_job(batch.id, job.id).await? {
                    // Given one by another path meanwhile, or ended: this one is not needed.
                    state.db.cancel_job(job.id, "gateway").await?;
                }
                state.scheduler_wake.notify_one();
                return Ok(());
            }
            Ok(Submitted::Estimate(_)) => {
                return Err(AppError::Internal(anyhow::anyhow!("a batch's job was only estimated")));
            }
            Err(AppError::Conflict(why)) => refused = Some(why),
            Err(error) => return Err(error),
        }
    }
    let why = refused.unwrap_or_default();
    Err(AppError::Conflict(format!("a batch runs as a CPU job of its project, which its allocation refuses: {why}")))
}

/// A batch's job is named after it: `batch batch_N`.
const JOB_NAME_PREFIX: &str = "batch batch_";

fn job_name(batch: i64) -> String {
    format!("{JOB_NAME_PREFIX}{batch}")
}

fn job_body(batch: &GatewayBatchRow, time_limit_s: i64) -> NewJobBody {
    let command = ["sh", "-c", BATCH_SCRIPT, "batch", &batch.endpoint, &batch.id.to_string()].map(str::to_owned);
    NewJobBody {
        name: Some(job_name(batch.id)),
        gpus: Some(0),
        memory_mb: 512,
        // The lowest priority: a batch waits behind people's jobs.
        qos: "long".to_owned(),
        // It reaches this server's gateway.
        network: true,
        // Its requests are paid as tokens: a project of GPU-hours only runs it too.
        pays_as_requests: true,
        ..NewJobBody::made_by_server(batch.project_id, command.to_vec(), time_limit_s)
    }
}

/// The key a batch's job pays with: `credential` is `JOB-TOKEN` (after `gjob-`), TOKEN the job's
/// replica token; only for the batch's endpoint (`path`), while the batch and its job run (or
/// Slurm may run it). The
/// key is returned revoked or not: the reservation refuses a revoked one, and the answer says so.
pub async fn job_key(state: &AppState, credential: &str, path: &str) -> AppResult<GatewayKeyRow> {
    let (job_id, token) = credential.split_once('-').ok_or(AppError::Unauthenticated)?;
    let job_id: i64 = job_id.parse().map_err(|_| AppError::Unauthenticated)?;
    let expected = crate::gateway::replica_token(state, job_id);
    if !constant_time_eq(expected.as_bytes(), token.as_bytes()) {
        return Err(AppError::Unauthenticated);
    }
    // Running; or handed to Slurm, which may start it before this server has seen it start.
    let may_run = |job: &JobRow| job.state == "running" || (job.state == "pending" && job.external_id.is_some());
    let job = state.db.job(job_id).await?.filter(may_run).ok_or(AppError::Unauthenticated)?;
    let Some(batch) = state.db.batch_of_job(job_id).await?.filter(|batch| batch.ended_at.is_none()) else {
        // A batch's job that started before it was recorded as the batch's: asked again in a
        // moment. Any other job's token opens nothing.
        let queued_for_a_batch = job.user_id.is_none() && job.name.starts_with(JOB_NAME_PREFIX);
        return Err(if queued_for_a_batch {
            AppError::Unavailable("this job's batch is not recorded yet".into())
        } else {
            AppError::Unauthenticated
        });
    };
    if batch.endpoint != path {
        return Err(AppError::Unauthenticated);
    }
    state.db.gateway_key(batch.key_id).await?.ok_or(AppError::Unauthenticated)
}

async fn project_batch(state: &AppState, caller: &Caller, id: &str) -> AppResult<GatewayBatchRow> {
    let key = key_of(caller)?;
    let number = number(id, "batch_")?;
    state
        .db
        .gateway_batch(key.project_id, number)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No such Batch object: {id}")))
}

pub async fn batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let done = async {
        let batch = project_batch(&state, &caller, &id).await?;
        shown(&state, &batch).await
    };
    answered(done.await)
}

pub async fn batches(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let done = async {
        let key = key_of(&caller)?;
        let mut data = Vec::new();
        for batch in state.db.gateway_batches(key.project_id).await? {
            data.push(shown(&state, &batch).await?);
        }
        Ok(json!({ "object": "list", "data": data }))
    };
    answered(done.await)
}

pub async fn cancel_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let done = async {
        let batch = project_batch(&state, &caller, &id).await?;
        if !state.db.cancel_gateway_batch(batch.project_id, batch.id).await? {
            return Err(AppError::Conflict(format!("batch {id} is {}", batch.status)));
        }
        if let Some(job) = batch.job_id {
            state.db.cancel_job(job, &caller.audit_name()).await?;
            state.scheduler_wake.notify_one();
        }
        shown(&state, &project_batch(&state, &caller, &id).await?).await
    };
    answered(done.await)
}

/// Follows every batch not ended, in the process holding the ticker lease: queues the job of one
/// that has none (made before batches ran as jobs, or by a server that stopped before it was
/// queued), cancels the job of one being cancelled, and ends each whose job ended.
pub async fn advance(state: &AppState) -> AppResult<()> {
    for batch in state.db.running_gateway_batches().await? {
        let Some(job_id) = batch.job_id else {
            if grappe_db::now_ms() - batch.created_at < QUEUE_GRACE_MS {
                continue;
            }
            if batch.status == "cancelling" {
                let end = BatchEnd { status: "cancelled", output_file_id: None, done: 0, failed: 0 };
                state.db.end_gateway_batch(batch.id, &end).await?;
                continue;
            }
            let input = state.db.gateway_file(batch.project_id, batch.input_file_id).await?;
            let queued = match input {
                Some(input) => queue_job(state, &batch, &input).await,
                None => Err(AppError::Internal(anyhow::anyhow!("the input file is missing"))),
            };
            if let Err(error) = queued {
                tracing::warn!(batch = batch.id, error = %error, "a batch's job could not be queued");
                let end = BatchEnd { status: "failed", output_file_id: None, done: 0, failed: 0 };
                state.db.end_gateway_batch(batch.id, &end).await?;
            }
            continue;
        };
        let Some(job) = state.db.job(job_id).await? else { continue };
        if !crate::compute::terminal(&job.state) {
            if batch.status == "cancelling" && !job.cancel_requested {
                state.db.cancel_job(job.id, "gateway").await?;
                state.scheduler_wake.notify_one();
            }
            continue;
        }
        if let Err(error) = finish(state, &batch, &job).await {
            tracing::warn!(batch = batch.id, error = %error, "ending a batch failed; tried again at the next tick");
        }
    }
    Ok(())
}

/// Ends a batch whose job ended: its answers kept as its output file, its status from how the
/// job ended.
async fn finish(state: &AppState, batch: &GatewayBatchRow, job: &JobRow) -> AppResult<()> {
    let path = state.config.job_dir(job.id).join("work").join(ANSWERS);
    let answers = match blocking(move || read_answers(&path)).await {
        Ok(answers) => answers,
        Err(AppError::Invalid(why)) => {
            tracing::warn!(batch = batch.id, why, "a batch's answers cannot be kept");
            let end = BatchEnd { status: "failed", output_file_id: None, done: 0, failed: 0 };
            state.db.end_gateway_batch(batch.id, &end).await?;
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let done = answers.lines().count() as i64;
    let failed = answers
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .map_or(true, |answer| answer["response"]["status_code"].as_i64().is_none_or(|code| code >= 400))
        })
        .count() as i64;
    let status = match job.state.as_str() {
        _ if batch.status == "cancelling" => "cancelled",
        "completed" if done == batch.total => "completed",
        "cancelled" => "cancelled",
        "timeout" => "expired",
        _ => "failed",
    };
    let output_file_id = if answers.is_empty() {
        None
    } else {
        let filename = format!("batch_{}_output.jsonl", batch.id);
        match store_file(state, batch.project_id, &filename, "batch_output", answers.into_bytes()).await {
            Ok(file) => Some(file.id),
            // Over the project's storage: the batch ends without its output, and says why.
            Err(error @ AppError::Conflict(_)) => {
                tracing::warn!(batch = batch.id, error = %error, "a batch's output could not be kept");
                None
            }
            Err(error) => return Err(error),
        }
    };
    state.db.end_gateway_batch(batch.id, &BatchEnd { status, output_file_id, done, failed }).await?;
    Ok(())
}

/// The whole answers a job wrote (a last line cut short by the job's end is left out).
fn read_answers(path: &std::path::Path) -> AppResult<String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(AppError::Internal(error.into())),
    };
    if bytes.len() as u64 > MAX_OUTPUT_BYTES {
        return Err(AppError::Invalid(format!("the answers are over {MAX_OUTPUT_BYTES} bytes")));
    }
    let whole = bytes.iter().rposition(|&byte| byte == b'\n').map_or(0, |at| at + 1);
    String::from_utf8(bytes[..whole].to_vec()).map_err(|_| AppError::Invalid("the answers are not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_file_is_checked_line_by_line() {
        let good = b"{\"custom_id\": \"a\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {\"model\": \"m\"}}\n\n";
        assert_eq!(requests_of(good, "/v1/chat/completions").unwrap().len(), 1);
        let twice = [&good[..], &good[..]].concat();
        assert!(requests_of(&twice, "/v1/chat/completions").unwrap_err().to_string().contains("line 3"));
        assert!(requests_of(good, "/v1/embeddings").is_err(), "another endpoint");
        assert!(requests_of(b"", "/v1/chat/completions").is_err());
        assert!(requests_of(b"{not json\n", "/v1/chat/completions").unwrap_err().to_string().contains("line 1"));
        let streamed = b"{\"custom_id\": \"a\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", \"body\": {\"stream\": true}}";
        assert!(requests_of(streamed, "/v1/chat/completions").is_err());
        assert_eq!(number("file-12", "file-").unwrap(), 12);
        assert!(number("batch_x", "batch_").is_err());
    }
}
