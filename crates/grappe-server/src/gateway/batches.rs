//! Files and batches as OpenAI's clients send them (`/v1/files`, `/v1/batches`): a JSONL file
//! of requests, each answered in turn through the gateway and paid by the batch's key as any
//! request is (reserved, then settled), the answers gathered into an output file.
//!
//! A batch runs in the process that holds the ticker lease, one request at a time, and waits
//! behind people for a busy replica (`Priority::Batch`). Each answer is appended to
//! `DATA_DIR/gateway/batches/ID.jsonl` and synced before the batch's count moves, so a server
//! that stops, however it stops, goes on from the first request without a recorded answer (a
//! request answered but not counted when it died is asked again, and paid again: at most one per
//! crash). Cancelling stops after the request under way; the output holds what was answered.
//! Files live in the data store, one store version each.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{GatewayBatchRow, GatewayFileRow};
use grappe_store::{DatasetPath, Name, Splits};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::gateway::key_of;
use crate::gateway::proxy::{Endpoint, forward};
use crate::gateway::replicas::Priority;
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::multipart;
use crate::kit::state::AppState;
use crate::kit::stored::{Scratch, blocking, version_id};

/// The most bytes of a file, and the most requests of a batch.
pub const MAX_FILE_BYTES: usize = 50 * 1024 * 1024;
pub const MAX_REQUESTS: usize = 50_000;
/// The most bytes of one answer kept in a batch's output.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

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

fn batch_json(batch: &GatewayBatchRow) -> Value {
    json!({
        "id": format!("batch_{}", batch.id), "object": "batch", "endpoint": batch.endpoint,
        "input_file_id": format!("file-{}", batch.input_file_id), "completion_window": "24h",
        "status": batch.status,
        "output_file_id": batch.output_file_id.map(|id| format!("file-{id}")), "error_file_id": null,
        "created_at": batch.created_at / 1000, "completed_at": batch.ended_at.map(|at| at / 1000),
        "request_counts": { "total": batch.total, "completed": batch.done - batch.failed, "failed": batch.failed },
    })
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
    body: Bytes,
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
        tokio::spawn(run(state.clone(), batch.clone()));
        Ok(batch_json(&batch))
    };
    answered(done.await)
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
    answered(project_batch(&state, &caller, &id).await.map(|batch| batch_json(&batch)))
}

pub async fn batches(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let done = async {
        let key = key_of(&caller)?;
        let data: Vec<Value> = state.db.gateway_batches(key.project_id).await?.iter().map(batch_json).collect();
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
        Ok(batch_json(&project_batch(&state, &caller, &id).await?))
    };
    answered(done.await)
}

/// The batches this process runs now.
fn running() -> &'static Mutex<HashSet<i64>> {
    static RUNNING: OnceLock<Mutex<HashSet<i64>>> = OnceLock::new();
    RUNNING.get_or_init(Mutex::default)
}

/// Starts the batches left unfinished (by a server that stopped): the ticker calls it.
pub async fn resume(state: &AppState) -> Result<(), grappe_db::DbError> {
    for batch in state.db.running_gateway_batches().await? {
        tokio::spawn(run(state.clone(), batch));
    }
    Ok(())
}

/// Runs a batch from its first unanswered request to its end, once per process.
async fn run(state: AppState, batch: GatewayBatchRow) {
    if !running().lock().is_ok_and(|mut set| set.insert(batch.id)) {
        return;
    }
    if let Err(error) = run_batch(&state, &batch).await {
        tracing::error!(batch = batch.id, error = %error, "a gateway batch failed");
        let _ = state.db.end_gateway_batch(batch.id, "failed", None).await;
    }
    if let Ok(mut set) = running().lock() {
        set.remove(&batch.id);
    }
}

async fn run_batch(state: &AppState, batch: &GatewayBatchRow) -> AppResult<()> {
    let key = state.db.gateway_key(batch.key_id).await?.ok_or_else(|| AppError::Internal(anyhow::anyhow!("no key")))?;
    let input = state.db.gateway_file(batch.project_id, batch.input_file_id).await?;
    let input = input.ok_or_else(|| AppError::Internal(anyhow::anyhow!("no input file")))?;
    let requests = requests_of(&file_bytes(state, &input).await?, &batch.endpoint)?;
    let endpoint = Endpoint::of_url(&batch.endpoint).ok_or_else(|| AppError::Internal(anyhow::anyhow!("endpoint")))?;
    let folder = state.config.data_dir.join("gateway").join("batches");
    std::fs::create_dir_all(&folder).map_err(|error| AppError::Internal(error.into()))?;
    let path = folder.join(format!("{}.jsonl", batch.id));
    // The answers recorded: as many lines as the batch counted, no more.
    let kept: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .take(batch.done as usize)
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&path, kept.concat()).map_err(|error| AppError::Internal(error.into()))?;
    let mut output =
        std::fs::OpenOptions::new().append(true).open(&path).map_err(|error| AppError::Internal(error.into()))?;
    let mut status = "completed";
    for (n, (custom_id, body)) in requests.iter().enumerate().skip(batch.done as usize) {
        let now = state.db.gateway_batch(batch.project_id, batch.id).await?;
        if now.is_some_and(|now| now.status == "cancelling") {
            status = "cancelled";
            break;
        }
        let live = state.db.gateway_key(key.id).await?.is_some_and(|key| key.revoked_at.is_none());
        let (code, answer) = if live {
            match forward(state, key.clone(), Bytes::from(body.to_string()), endpoint, Priority::Batch).await {
                Ok(response) => {
                    let code = response.status().as_u16();
                    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await.unwrap_or_default();
                    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                }
                Err(error) => {
                    let response = error.openai_response();
                    let code = response.status().as_u16();
                    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await.unwrap_or_default();
                    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
                }
            }
        } else {
            (
                401,
                json!({ "error": { "message": "the batch's key was revoked", "type": "authentication_error", "code": "invalid_api_key" } }),
            )
        };
        let line = json!({
            "id": format!("batch_req_{}_{}", batch.id, n + 1), "custom_id": custom_id,
            "response": { "status_code": code, "body": answer }, "error": null,
        });
        output
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| output.sync_data())
            .map_err(|error| AppError::Internal(error.into()))?;
        if state.db.batch_line_done(batch.id, code >= 400).await?.is_none() {
            return Ok(());
        }
    }
    let bytes = std::fs::read(&path).map_err(|error| AppError::Internal(error.into()))?;
    let file =
        store_file(state, batch.project_id, &format!("batch_{}_output.jsonl", batch.id), "batch_output", bytes).await?;
    state.db.end_gateway_batch(batch.id, status, Some(file.id)).await?;
    let _ = std::fs::remove_file(&path);
    Ok(())
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
