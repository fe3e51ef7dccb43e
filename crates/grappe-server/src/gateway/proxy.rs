//! Forwarding a request to its model's upstream, paid for exactly once.
//!
//! Before: the request's most cost is reserved on its project's allocation, and it is counted
//! against the key's and the project's limits, in one transaction ([`grappe_db::Db::reserve`]).
//! Its prompt is bounded by its body's length (every token covers at least one byte of the text
//! it encodes, and the JSON around each message is longer than the template tokens a model adds),
//! its answer by `max_tokens` (or the model's most), which the upstream is told to obey.
//!
//! After: the upstream's `usage` (asked for in streams with `stream_options.include_usage`) is
//! charged, never more than was reserved; the rest is released. A stream that ends early (the
//! client gone, the upstream failing) is charged for the prompt and the chunks sent. An answer
//! without `usage` is charged what was reserved. A reservation whose request died with its
//! server is released by the ticker once it expires.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use grappe_db::{Ask, GatewayKeyRow, GatewayModelRow, Refused, Settlement};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::gateway::replicas::{self, NoReplica, Priority};
use crate::gateway::{key_of, may_call};
use crate::kit::caller::{Caller, Via};
use crate::kit::error::AppError;
use crate::kit::extract::OpenAiBody;
use crate::kit::state::AppState;

/// How long a request may take, and so how long its reservation lives before the reaper may
/// release it.
pub const REQUEST_TTL: Duration = Duration::from_secs(600);
/// How long a person's request waits for a busy model's replica before a 429.
const INTERACTIVE_PATIENCE: Duration = Duration::from_secs(30);
/// The most bytes of one event of a stream, waiting for its end.
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The most bytes of a whole (not streamed) answer read from an upstream.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// The pooled HTTP client of the gateway's requests to model servers (and of `grappe model proxy`'s).
pub fn client() -> &'static Client<HttpConnector, Body> {
    static CLIENT: OnceLock<Client<HttpConnector, Body>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector)
    })
}

/// The endpoints, as OpenAI names them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The endpoint of a path as a batch names it (`/v1/chat/completions`).
    pub(crate) fn of_url(url: &str) -> Option<Endpoint> {
        [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings]
            .into_iter()
            .find(|endpoint| url.strip_prefix("/v1") == Some(endpoint.path()))
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }
}

pub async fn chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiBody(body): OpenAiBody,
) -> Response {
    by_key(&state, &caller, body, Endpoint::Chat).await
}

pub async fn completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiBody(body): OpenAiBody,
) -> Response {
    by_key(&state, &caller, body, Endpoint::Completions).await
}

pub async fn embeddings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiBody(body): OpenAiBody,
) -> Response {
    by_key(&state, &caller, body, Endpoint::Embeddings).await
}

async fn by_key(state: &AppState, caller: &Caller, body: Bytes, endpoint: Endpoint) -> Response {
    let key = match key_of(caller) {
        Ok(key) => key.clone(),
        Err(error) => return error.openai_response(),
    };
    let priority = if caller.via == Via::BatchJob { Priority::Batch } else { Priority::Interactive };
    settled(state, key, body, endpoint, priority).await.unwrap_or_else(AppError::openai_response)
}

/// Forwards in a task of its own, so that a client that leaves mid-request does not cut the
/// request off between its reservation and its settlement: it runs to its end and is paid for
/// (the answer then goes nowhere).
async fn settled(
    state: &AppState,
    key: GatewayKeyRow,
    body: Bytes,
    endpoint: Endpoint,
    priority: Priority,
) -> Result<Response, AppError> {
    let state = state.clone();
    tokio::spawn(async move { forward(&state, key, body, endpoint, priority).await })
        .await
        .map_err(|error| AppError::Internal(error.into()))?
}

/// `POST /v1/responses`, minimal: text or messages in (`input`, `instructions`,
/// `max_output_tokens`), one message out, no streaming, no tools; forwarded as a chat
/// completion and answered in the Responses shape.
pub async fn responses(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiBody(body): OpenAiBody,
) -> Response {
    let answered = async {
        let key = key_of(&caller)?.clone();
        let request: Value = serde_json::from_slice(&body)
            .map_err(|error| AppError::BadRequest(format!("the body is not JSON: {error}")))?;
        if request.get("stream").and_then(Value::as_bool) == Some(true) {
            return Err(AppError::Invalid("`stream`: not on /v1/responses yet; use /v1/chat/completions".into()));
        }
        let mut messages = Vec::new();
        if let Some(instructions) = request.get("instructions").and_then(Value::as_str) {
            messages.push(json!({ "role": "system", "content": instructions }));
        }
        match request.get("input") {
            Some(Value::String(text)) => messages.push(json!({ "role": "user", "content": text })),
            Some(Value::Array(items)) => messages.extend(items.iter().cloned()),
            _ => return Err(AppError::Invalid("`input`: a text or a list of messages".into())),
        }
        let mut chat = json!({ "model": request.get("model").cloned().unwrap_or(Value::Null), "messages": messages });
        if let Some(most) = request.get("max_output_tokens") {
            chat["max_tokens"] = most.clone();
        }
        let answer = settled(&state, key, Bytes::from(chat.to_string()), Endpoint::Chat, Priority::Interactive).await?;
        if !answer.status().is_success() {
            return Ok(answer);
        }
        let bytes = axum::body::to_bytes(answer.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|error| AppError::Internal(anyhow::anyhow!("reading an answer: {error}")))?;
        let completion: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = completion["choices"][0]["message"]["content"].as_str().unwrap_or_default();
        let (input, output) = usage_of(&completion).unwrap_or((0, 0));
        let id = completion["id"].as_str().unwrap_or("x").trim_start_matches("chatcmpl-").to_owned();
        let response = json!({
            "id": format!("resp_{id}"),
            "object": "response",
            "created_at": grappe_db::now_ms() / 1000,
            "status": "completed",
            "model": completion["model"],
            "output": [{
                "type": "message", "id": format!("msg_{id}"), "status": "completed", "role": "assistant",
                "content": [{ "type": "output_text", "text": text, "annotations": [] }],
            }],
            "usage": { "input_tokens": input, "output_tokens": output, "total_tokens": input + output },
        });
        Ok(axum::Json(response).into_response())
    };
    answered.await.unwrap_or_else(AppError::openai_response)
}

/// A chat request paid by `key` (the playground's, for a member of the key's project).
pub async fn chat_as(state: &AppState, key: GatewayKeyRow, body: Bytes) -> Result<Response, AppError> {
    settled(state, key, body, Endpoint::Chat, Priority::Interactive).await
}

/// A request as the gateway checked it: its model, its upstream body, its bounds.
struct Checked {
    model: GatewayModelRow,
    body: Value,
    stream: bool,
    /// The client asked for the usage chunk of its stream (else the gateway drops it).
    wants_usage: bool,
    prompt_bound: i64,
    max_output: i64,
}

async fn check(state: &AppState, key: &GatewayKeyRow, raw: &[u8], endpoint: Endpoint) -> Result<Checked, AppError> {
    let mut body: Value =
        serde_json::from_slice(raw).map_err(|error| AppError::BadRequest(format!("the body is not JSON: {error}")))?;
    let Some(object) = body.as_object_mut() else {
        return Err(AppError::BadRequest("the body must be a JSON object".into()));
    };
    let name =
        object.get("model").and_then(Value::as_str).ok_or_else(|| AppError::Invalid("`model`: required".into()))?;
    let model = state.db.gateway_model(name).await?.filter(|model| may_call(key, model)).ok_or_else(|| {
        AppError::NotFound(format!("The model `{name}` does not exist or you do not have access to it."))
    })?;
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) if endpoint != Endpoint::Embeddings => *stream,
        Some(_) => return Err(AppError::Invalid("`stream`: true or false, and not for embeddings".into())),
    };
    let wants_usage =
        object.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    let asked =
        ["max_completion_tokens", "max_tokens"].iter().find_map(|field| object.get(*field).map(|v| (*field, v)));
    let max_output = match (endpoint, asked) {
        (Endpoint::Embeddings, _) => 0,
        (_, None) => model.max_output_tokens,
        (_, Some((field, value))) => match value.as_i64() {
            Some(n) if (1..=model.max_output_tokens).contains(&n) => n,
            _ => {
                return Err(AppError::Invalid(format!(
                    "`{field}`: 1 to {}, the most this model answers",
                    model.max_output_tokens
                )));
            }
        },
    };
    if endpoint != Endpoint::Embeddings {
        // The upstream is held to what was reserved.
        object.remove("max_completion_tokens");
        object.insert("max_tokens".into(), json!(max_output));
    }
    if stream {
        object.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Checked { model, body, stream, wants_usage, prompt_bound: raw.len() as i64, max_output })
}

/// GPU-milliseconds of `tokens` at `per_1k` per thousand, rounded up.
fn cost(tokens: i64, per_1k: i64) -> i64 {
    (tokens.max(0) * per_1k + 999) / 1000
}

fn refused(refusal: Refused) -> AppError {
    match refusal {
        Refused::Revoked => AppError::Unauthenticated,
        Refused::Budget { asked_gpu_ms, left_gpu_ms } => AppError::OverQuota(format!(
            "this request may cost {asked_gpu_ms} GPU-ms; the project's allocation has {left_gpu_ms} left"
        )),
        Refused::Expired => AppError::OverQuota("the project's allocation is not valid now".into()),
        Refused::RateLimited { scope, retry_after_ms } => {
            tracing::debug!(scope, "a gateway request over its limit");
            AppError::TooManyRequests {
                retry_after_s: u64::try_from(retry_after_ms).unwrap_or(0).div_ceil(1000).max(1),
            }
        }
    }
}

/// One request's account, from reservation to settlement.
struct Account {
    state: AppState,
    key: GatewayKeyRow,
    model: GatewayModelRow,
    endpoint: Endpoint,
    reservation: i64,
    prompt_bound: i64,
    max_output: i64,
    started: Instant,
}

impl Account {
    fn reserved_gpu_ms(&self) -> i64 {
        cost(self.prompt_bound, self.model.input_gpu_ms_per_1k) + cost(self.max_output, self.model.output_gpu_ms_per_1k)
    }

    /// Settles with the tokens used (`None`: unknown, charged what was reserved).
    async fn settle(self, usage: Option<(i64, i64)>, status: &'static str, first_token: Option<Duration>) {
        let (prompt, completion, gpu_ms) = match usage {
            Some((prompt, completion)) => (
                prompt,
                completion,
                cost(prompt, self.model.input_gpu_ms_per_1k) + cost(completion, self.model.output_gpu_ms_per_1k),
            ),
            None => (self.prompt_bound, self.max_output, self.reserved_gpu_ms()),
        };
        let done = Settlement {
            reservation: self.reservation,
            key_id: self.key.id,
            project_id: self.key.project_id,
            model: self.model.name.clone(),
            endpoint: self.endpoint.path(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            gpu_ms,
            status,
            first_token_ms: first_token.map(|d| d.as_millis() as i64),
            duration_ms: self.started.elapsed().as_millis() as i64,
        };
        if let Err(error) = self.state.db.settle(done).await {
            // The reaper releases the reservation once it expires; the usage is lost.
            tracing::error!(error = %error, reservation = self.reservation, "a gateway request could not be settled");
        }
    }
}

/// `usage.prompt_tokens` and `usage.completion_tokens` of an answer or a stream's chunk.
/// (A model server of a member's job says what it likes: counts below 0 are read as 0, so that
/// no answer can give back allocation or lower a window's count.)
fn usage_of(value: &Value) -> Option<(i64, i64)> {
    let usage = value.get("usage").filter(|usage| usage.is_object())?;
    let prompt = usage.get("prompt_tokens").and_then(Value::as_i64)?.max(0);
    let completion = usage.get("completion_tokens").and_then(Value::as_i64).unwrap_or(0).max(0);
    Some((prompt, completion))
}

async fn forward(
    state: &AppState,
    key: GatewayKeyRow,
    raw: Bytes,
    endpoint: Endpoint,
    priority: Priority,
) -> Result<Response, AppError> {
    let checked = check(state, &key, &raw, endpoint).await?;
    let ask = Ask {
        key_id: key.id,
        gpu_ms: cost(checked.prompt_bound, checked.model.input_gpu_ms_per_1k)
            + cost(checked.max_output, checked.model.output_gpu_ms_per_1k),
        tokens: checked.prompt_bound + checked.max_output,
        ttl_ms: REQUEST_TTL.as_millis() as i64,
    };
    let reservation = state.db.reserve(&ask).await?.map_err(refused)?;
    let account = Account {
        state: state.clone(),
        key,
        model: checked.model.clone(),
        endpoint,
        reservation,
        prompt_bound: checked.prompt_bound,
        max_output: checked.max_output,
        started: Instant::now(),
    };
    let upstreams = state.db.model_upstreams(&checked.model).await?;
    let urls: Vec<String> = upstreams.iter().map(|upstream| upstream.url.clone()).collect();
    let payload = Bytes::from(checked.body.to_string());
    // The least loaded replica; one that cannot be reached is set aside and the next is tried
    // (nothing reached it, so nothing ran twice).
    let mut tried = Vec::new();
    let most = usize::try_from(checked.model.max_concurrency).unwrap_or(1);
    let patience = match priority {
        Priority::Interactive => INTERACTIVE_PATIENCE,
        Priority::Batch => REQUEST_TTL,
    };
    let (answer, held) = loop {
        let held = match replicas::acquire(&urls, &tried, most, priority, patience).await {
            Ok(held) => held,
            Err(NoReplica::Unreachable) => {
                account.settle(Some((0, 0)), "no_replica", None).await;
                return Err(AppError::Unavailable(
                    "no server of this model can be reached now; nothing was charged".into(),
                ));
            }
            Err(NoReplica::Busy) => {
                account.settle(Some((0, 0)), "busy", None).await;
                return Err(AppError::TooManyRequests { retry_after_s: 1 });
            }
        };
        let mut request =
            Request::post(format!("{}{}", held.url, endpoint.path())).header(header::CONTENT_TYPE, "application/json");
        // A job's model server answers only the gateway: its job's replica token as bearer.
        if let Some(job_id) = upstreams.iter().find(|upstream| upstream.url == held.url).and_then(|up| up.job_id) {
            request =
                request.header(header::AUTHORIZATION, format!("Bearer {}", replicas::replica_token(state, job_id)));
        }
        let request = request.body(Body::from(payload.clone())).map_err(|error| AppError::Internal(error.into()))?;
        match tokio::time::timeout(REQUEST_TTL, client().request(request)).await {
            Ok(Ok(answer)) => break (answer, held),
            Ok(Err(error)) if error.is_connect() => {
                tracing::warn!(error = %error, model = %account.model.name, url = %held.url, "a replica could not be reached");
                replicas::set_aside(&held.url);
                tried.push(held.url.clone());
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error, model = %account.model.name, "the upstream failed");
                account.settle(Some((0, 0)), "upstream_failed", None).await;
                return Err(AppError::Unavailable("the model's server failed; nothing was charged".into()));
            }
            Err(_) => {
                account.settle(Some((0, 0)), "upstream_timeout", None).await;
                return Err(AppError::Unavailable(
                    "the model's server did not answer in time; nothing was charged".into(),
                ));
            }
        }
    };
    let status = answer.status();
    let body = Body::new(answer.into_body());
    if !status.is_success() {
        // The upstream refused: its error goes back as it is, and nothing is charged.
        let bytes = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await.unwrap_or_default();
        account.settle(Some((0, 0)), "upstream_error", None).await;
        return Ok(json_response(status, bytes));
    }
    if checked.stream {
        return Ok(stream(account, body, checked.wants_usage, held));
    }
    let bytes = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            account.settle(None, "upstream_broken", None).await;
            return Err(AppError::Unavailable("the model's server broke off its answer".into()));
        }
    };
    let usage = serde_json::from_slice::<Value>(&bytes).ok().as_ref().and_then(usage_of);
    let first = account.started.elapsed();
    account.settle(usage, if usage.is_some() { "ok" } else { "ok_without_usage" }, Some(first)).await;
    Ok(json_response(StatusCode::OK, bytes))
}

fn json_response(status: StatusCode, bytes: Bytes) -> Response {
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Relays a stream of server-sent events, one event at a time, reading the usage from its last
/// chunk (dropped unless the client asked for it) and settling when it ends however it ends.
fn stream(account: Account, upstream: Body, wants_usage: bool, held: replicas::Held) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut frames = upstream.into_data_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut usage = None;
        let mut chunks = 0i64;
        let mut first_token = None;
        let mut outcome = "upstream_broken";
        'read: loop {
            let frame = match frames.next().await {
                Some(Ok(frame)) => frame,
                Some(Err(_)) => break,
                None => {
                    outcome = if usage.is_some() { "ok" } else { "ok_without_usage" };
                    break;
                }
            };
            pending.extend_from_slice(&frame);
            if pending.len() > MAX_EVENT_BYTES {
                // An event that never ends: the stream is broken off rather than held in memory.
                break;
            }
            while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let data: Option<String> = std::str::from_utf8(&event)
                    .ok()
                    .and_then(|text| text.trim().strip_prefix("data:"))
                    .map(|data| data.trim().to_owned());
                let done = data.as_deref() == Some("[DONE]");
                let mut relay = true;
                if let Some(data) = &data
                    && !done
                    && let Ok(chunk) = serde_json::from_str::<Value>(data)
                {
                    if let Some(found) = usage_of(&chunk) {
                        usage = Some(found);
                        let only_usage = chunk.get("choices").and_then(Value::as_array).is_none_or(Vec::is_empty);
                        relay = wants_usage || !only_usage;
                    } else {
                        chunks += 1;
                        first_token.get_or_insert_with(|| account.started.elapsed());
                    }
                }
                if relay && sender.send(Ok(Bytes::from(event))).await.is_err() {
                    outcome = "client_gone";
                    break 'read;
                }
                if done {
                    outcome = if usage.is_some() { "ok" } else { "ok_without_usage" };
                    break 'read;
                }
            }
        }
        if outcome == "upstream_broken" {
            // The replica broke off: the next requests go to another while there is one.
            replicas::set_aside(&held.url);
            let error = json!({ "error": { "message": "the model's server broke off its answer", "type": "api_error", "param": null, "code": "upstream_broken" } });
            let _ = sender.send(Ok(Bytes::from(format!("data: {error}\n\n")))).await;
        }
        // A stream cut short is charged for the prompt's bound and the chunks that went out.
        let usage = usage.or((outcome != "ok_without_usage").then_some((account.prompt_bound, chunks)));
        account.settle(usage, outcome, first_token).await;
        drop(held);
    });
    let body = Body::from_stream(tokio_stream_of(receiver));
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A receiver as a stream of body frames.
fn tokio_stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_below_zero_is_read_as_zero_and_costs_round_up() {
        let answer = json!({ "usage": { "prompt_tokens": -1000, "completion_tokens": -5 } });
        assert_eq!(usage_of(&answer), Some((0, 0)));
        assert_eq!(usage_of(&json!({ "usage": null })), None);
        assert_eq!(usage_of(&json!({ "usage": { "prompt_tokens": 7 } })), Some((7, 0)));
        assert_eq!(cost(1, 1), 1, "a token of any price costs at least what it rounds up to");
        assert_eq!(cost(1000, 2000), 2000);
        assert_eq!(cost(-5, 1000), 0);
    }
}
