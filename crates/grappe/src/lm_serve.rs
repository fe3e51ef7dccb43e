//! `grappe model serve`: a model of `grappe-lm` behind OpenAI's HTTP API, on this machine or as a
//! compute job, so that the gateway has a real upstream without a GPU or a download.
//! `GET /v1/models`, `POST /v1/chat/completions` (the messages' contents joined by newlines are
//! the prompt) and `POST /v1/completions`, whole or streamed as server-sent events; every answer
//! has its `usage`, counted exactly as the model reads and writes ([`grappe_lm::count_tokens`]);
//! errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`. Generation runs on the
//! blocking threads, at most `--concurrency` at once (more are refused with 429), and stops at
//! the next token once its client is gone: it writes into a bounded channel whose receiver goes
//! with the request. Run as a job (`GRAPPE_REPLICA_TOKEN` set), it announces its address to the
//! gateway, proves it to the gateway's probe, and answers generation requests only with the
//! job's token as bearer: only the gateway, which charges them, reaches it (on Slurm, where
//! every job runs as one user, another job can read the token: see the README).

use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use grappe_lm::{Model, Stop, count_tokens};
use grappe_server::gateway::replicas::REPLICA_HEADER;
use grappe_server::kit::caller::{bearer, constant_time_eq};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

#[derive(Args)]
pub struct ServeFlags {
    /// The model file `grappe train language-model` wrote (`OUT/model.bin`).
    #[arg(long)]
    model: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The host in the address announced to the gateway when run as a job (default: the address
    /// listened on); on Slurm, the node's name (`$SLURMD_NODENAME`), with `--addr 0.0.0.0:0`.
    #[arg(long)]
    announce_host: Option<String>,
    /// The name clients give as `model`.
    #[arg(long, default_value = "grappe-lm")]
    name: String,
    /// Generations at once; a request beyond is refused with 429.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The most tokens one request may ask for (`max_tokens`).
    #[arg(long, default_value_t = 4096)]
    max_tokens_limit: u32,
}

/// `max_tokens` when a request does not say.
const DEFAULT_MAX_TOKENS: u32 = 256;
/// The largest request body.
const MAX_BODY_BYTES: usize = 1 << 20;
/// Pieces a generation may write ahead of its client.
const CHANNEL_PIECES: usize = 64;

struct Served {
    model: Model,
    name: String,
    /// The model file's BLAKE3, shortened: the same fingerprint and seed give the same answer.
    fingerprint: String,
    created_s: u64,
    permits: Arc<Semaphore>,
    max_tokens_limit: u32,
    /// Numbers requests, for ids and seeds nobody gave.
    requests: AtomicU64,
    /// Run as a compute job: the job's replica token, which proves this server's address to the
    /// gateway (`/v1/models`) and which the gateway's requests carry as bearer.
    replica_token: Option<String>,
    hasher: std::collections::hash_map::RandomState,
}

pub async fn run(flags: ServeFlags) -> anyhow::Result<()> {
    let bytes = std::fs::read(&flags.model).with_context(|| format!("reading {}", flags.model.display()))?;
    let model = Model::from_bytes(&bytes).with_context(|| format!("loading {}", flags.model.display()))?;
    anyhow::ensure!(flags.concurrency > 0, "--concurrency must be 1 or more");
    anyhow::ensure!(flags.max_tokens_limit > 0, "--max-tokens-limit must be 1 or more");
    let served = Arc::new(Served {
        model,
        name: flags.name,
        fingerprint: format!("grappe-lm-{}", &blake3::hash(&bytes).to_hex()[..12]),
        created_s: now_s(),
        permits: Arc::new(Semaphore::new(flags.concurrency)),
        max_tokens_limit: flags.max_tokens_limit,
        requests: AtomicU64::new(0),
        hasher: std::collections::hash_map::RandomState::new(),
        replica_token: replica_token(),
    });
    let listener =
        tokio::net::TcpListener::bind(flags.addr).await.with_context(|| format!("listening on {}", flags.addr))?;
    let addr = listener.local_addr().context("the listening address")?;
    outln!("serving {} on http://{addr}/v1", served.name);
    if served.replica_token.is_some() {
        announce(&served.name, addr, flags.announce_host.as_deref());
    }
    axum::serve(listener, router(served)).with_graceful_shutdown(crate::shutdown_signal()).await?;
    Ok(())
}

/// The job's token, when run as a job (`GRAPPE_REPLICA_TOKEN`).
pub(crate) fn replica_token() -> Option<String> {
    std::env::var(grappe_server::gateway::REPLICA_TOKEN_ENV).ok().filter(|token| !token.is_empty())
}

/// As a job: the announcement the compute service hands to the gateway, `addr` with
/// `announce_host` (on Slurm, the node's name) for its host if given.
pub(crate) fn announce(name: &str, addr: SocketAddr, announce_host: Option<&str>) {
    let authority = match announce_host {
        Some(host) => format!("{host}:{}", addr.port()),
        None => addr.to_string(),
    };
    let serve = json!({ "serve": { "model": name, "url": format!("http://{authority}/v1") } });
    outln!("GRAPPE_METRIC {serve}");
}

/// The answer to `/v1/models`, with the proof of the job's token for the gateway's nonce.
pub(crate) fn proved(token: Option<&str>, headers: &HeaderMap, list: Response) -> Response {
    let nonce = headers.get(REPLICA_HEADER).and_then(|value| value.to_str().ok());
    match (token, nonce) {
        (Some(token), Some(nonce)) => {
            ([(REPLICA_HEADER, grappe_server::gateway::replica_proof(token, nonce))], list).into_response()
        }
        _ => list,
    }
}

fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{name}", get(model))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Unknown request URL.", "invalid_request_error") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(served)
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// An error as OpenAI writes them.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>, kind: &'static str) -> ApiError {
        ApiError { status, message: message.into(), kind, param: None, code: None }
    }

    /// A 400 about one parameter.
    fn invalid(param: &str, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            param: Some(param.to_owned()),
            code: Some(code),
            ..ApiError::new(StatusCode::BAD_REQUEST, message, "invalid_request_error")
        }
    }

    fn missing(param: &str) -> ApiError {
        ApiError::invalid(param, "missing_required_parameter", format!("Missing required parameter: '{param}'."))
    }

    fn wrong_type(param: &str, expected: &str) -> ApiError {
        ApiError::invalid(param, "invalid_type", format!("Invalid type for '{param}': expected {expected}."))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code }
        });
        (self.status, axum::Json(body)).into_response()
    }
}

async fn models(State(served): State<Arc<Served>>, headers: HeaderMap) -> Response {
    let list = axum::Json(json!({ "object": "list", "data": [model_object(&served)] }));
    proved(served.replica_token.as_deref(), &headers, list.into_response())
}

/// Run as a job (`token`), whether a request carries the job's token as bearer (always,
/// otherwise).
pub(crate) fn from_gateway(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = token else { return Ok(()) };
    let given = headers.get(AUTHORIZATION).and_then(bearer);
    if given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
        return Ok(());
    }
    Err(ApiError {
        code: Some("invalid_api_key"),
        ..ApiError::new(
            StatusCode::UNAUTHORIZED,
            "This model server answers its gateway only: send requests through Grappe's /v1 with a key.",
            "invalid_request_error",
        )
    })
}

async fn model(State(served): State<Arc<Served>>, Path(name): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    if name != served.name {
        return Err(model_not_found(&name));
    }
    Ok(axum::Json(model_object(&served)))
}

fn model_object(served: &Served) -> Value {
    json!({ "id": served.name, "object": "model", "created": served.created_s, "owned_by": "grappe" })
}

fn model_not_found(name: &str) -> ApiError {
    ApiError {
        param: Some("model".to_owned()),
        code: Some("model_not_found"),
        ..ApiError::new(StatusCode::NOT_FOUND, format!("The model '{name}' does not exist."), "invalid_request_error")
    }
}

/// Which of OpenAI's two text APIs a request came through: they differ in how the prompt is
/// given and in the shape of their answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Chat,
    Completion,
}

/// A request, parsed and checked.
struct Generate {
    prompt: String,
    max_tokens: u32,
    temperature: f32,
    seed: u64,
    stream: bool,
    include_usage: bool,
    ignore_eos: bool,
}

async fn chat_completions(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(served, Api::Chat, &headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn completions(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(served, Api::Completion, &headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

fn parse(served: &Served, api: Api, body: Result<Bytes, BytesRejection>) -> Result<Generate, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            format!("The request body could not be read: {rejection}"),
            "invalid_request_error",
        )
    })?;
    let request: Value = serde_json::from_slice(&body).map_err(|error| ApiError {
        code: Some("invalid_json"),
        ..ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("We could not parse the JSON body of your request: {error}."),
            "invalid_request_error",
        )
    })?;
    let Some(request) = request.as_object() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
            "invalid_request_error",
        ));
    };
    let field = |name: &str| request.get(name).filter(|value| !value.is_null());
    let name = field("model").ok_or_else(|| ApiError::missing("model"))?;
    let name = name.as_str().ok_or_else(|| ApiError::wrong_type("model", "a string"))?;
    if name != served.name {
        return Err(model_not_found(name));
    }
    let prompt = match api {
        Api::Chat => chat_prompt(field("messages").ok_or_else(|| ApiError::missing("messages"))?)?,
        Api::Completion => match field("prompt").ok_or_else(|| ApiError::missing("prompt"))? {
            Value::String(prompt) => prompt.clone(),
            Value::Array(prompts) if prompts.len() == 1 && prompts[0].is_string() => {
                prompts[0].as_str().unwrap_or_default().to_owned()
            }
            _ => return Err(ApiError::wrong_type("prompt", "a string (or an array of one string)")),
        },
    };
    let limit = served.max_tokens_limit;
    let (param, max_tokens) = match (field("max_completion_tokens"), field("max_tokens")) {
        (Some(value), _) => ("max_completion_tokens", Some(value)),
        (None, value) => ("max_tokens", value),
    };
    let max_tokens = match max_tokens {
        None => DEFAULT_MAX_TOKENS.min(limit),
        Some(value) => {
            let count = value.as_u64().ok_or_else(|| ApiError::wrong_type(param, "an integer"))?;
            if !(1..=u64::from(limit)).contains(&count) {
                return Err(ApiError::invalid(
                    param,
                    "invalid_value",
                    format!("'{param}' is {count}; this model writes 1 to {limit} tokens a request."),
                ));
            }
            count as u32
        }
    };
    let temperature = match field("temperature") {
        None => 1.0,
        Some(value) => {
            let temperature = value.as_f64().ok_or_else(|| ApiError::wrong_type("temperature", "a number"))?;
            if !(0.0..=2.0).contains(&temperature) {
                return Err(ApiError::invalid(
                    "temperature",
                    "invalid_value",
                    format!("'temperature' is {temperature}; it must be from 0 to 2."),
                ));
            }
            temperature as f32
        }
    };
    let request_number = served.requests.fetch_add(1, Ordering::Relaxed);
    let seed = match field("seed") {
        // A seed nobody gave differs from one request to the next.
        None => served.hasher.hash_one(request_number),
        Some(value) => match (value.as_u64(), value.as_i64()) {
            (Some(seed), _) => seed,
            (None, Some(seed)) => seed as u64,
            _ => return Err(ApiError::wrong_type("seed", "an integer")),
        },
    };
    if let Some(n) = field("n")
        && n.as_u64() != Some(1)
    {
        return Err(ApiError::invalid("n", "invalid_value", "This model writes one choice a request: 'n' must be 1."));
    }
    let flag = |name: &str, value: Option<&Value>| match value {
        None => Ok(false),
        Some(value) => value.as_bool().ok_or_else(|| ApiError::wrong_type(name, "a boolean")),
    };
    let stream = flag("stream", field("stream"))?;
    let include_usage = match field("stream_options") {
        None => false,
        Some(Value::Object(options)) => {
            flag("stream_options.include_usage", options.get("include_usage").filter(|value| !value.is_null()))?
        }
        Some(_) => return Err(ApiError::wrong_type("stream_options", "an object")),
    };
    let ignore_eos = flag("ignore_eos", field("ignore_eos"))?;
    Ok(Generate { prompt, max_tokens, temperature, seed, stream, include_usage, ignore_eos })
}

/// The messages' contents, joined by newlines: a content is a string, or an array of parts of
/// which the `text` ones count.
fn chat_prompt(messages: &Value) -> Result<String, ApiError> {
    let messages = messages.as_array().ok_or_else(|| ApiError::wrong_type("messages", "an array"))?;
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "empty_array", "'messages' must hold at least one message."));
    }
    let mut contents = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}].content");
        let content = match message.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for part in parts {
                    if part["type"] == "text" {
                        text.push_str(part["text"].as_str().ok_or_else(|| ApiError::wrong_type(&param, "text parts"))?);
                    }
                }
                text
            }
            Some(Value::Null) if message.is_object() => String::new(),
            None if message.is_object() => return Err(ApiError::missing(&param)),
            _ => return Err(ApiError::wrong_type(&param, "a string or an array of parts")),
        };
        contents.push(content);
    }
    Ok(contents.join("\n"))
}

/// The ids of one answer, and the shapes of its objects.
struct Reply {
    api: Api,
    id: String,
    created_s: u64,
    model: String,
    fingerprint: String,
    /// A stream that ends with its usage: every other chunk has `"usage": null`.
    usage_last: bool,
}

impl Reply {
    fn object(&self, object: &str, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": object,
            "created": self.created_s,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        })
    }

    fn whole(&self, text: &str, stop: Stop, usage: Value) -> Value {
        let finish = finish_reason(stop);
        let mut reply = match self.api {
            Api::Chat => self.object(
                "chat.completion",
                json!([{
                    "index": 0,
                    "message": { "role": "assistant", "content": text },
                    "logprobs": null,
                    "finish_reason": finish,
                }]),
            ),
            Api::Completion => self.object(
                "text_completion",
                json!([{ "index": 0, "text": text, "logprobs": null, "finish_reason": finish }]),
            ),
        };
        reply["usage"] = usage;
        reply
    }

    /// A chunk of a stream: a piece of text (for chat, the first one, empty, says the role), or
    /// the end with why.
    fn chunk(&self, text: Option<&str>, first: bool, stop: Option<Stop>) -> Value {
        let finish = stop.map(finish_reason);
        let mut chunk = match self.api {
            Api::Chat => {
                let delta = match (text, first) {
                    (Some(text), true) => json!({ "role": "assistant", "content": text }),
                    (Some(text), false) => json!({ "content": text }),
                    (None, _) => json!({}),
                };
                self.object(
                    "chat.completion.chunk",
                    json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]),
                )
            }
            Api::Completion => self.object(
                "text_completion",
                json!([{ "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish }]),
            ),
        };
        if self.usage_last {
            chunk["usage"] = Value::Null;
        }
        chunk
    }

    fn usage_chunk(&self, usage: Value) -> Value {
        let object = if self.api == Api::Chat { "chat.completion.chunk" } else { "text_completion" };
        let mut chunk = self.object(object, json!([]));
        chunk["usage"] = usage;
        chunk
    }
}

fn finish_reason(stop: Stop) -> &'static str {
    match stop {
        Stop::End => "stop",
        Stop::Length => "length",
    }
}

fn usage(prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

async fn answer(
    served: Arc<Served>,
    api: Api,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    from_gateway(served.replica_token.as_deref(), headers)?;
    let request = parse(&served, api, body)?;
    let permit = Arc::clone(&served.permits).try_acquire_owned().map_err(|_| ApiError {
        code: Some("rate_limit_exceeded"),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "The model is busy with other requests; try again shortly.",
            "rate_limit_error",
        )
    })?;
    let prefix = if api == Api::Chat { "chatcmpl" } else { "cmpl" };
    let reply = Reply {
        api,
        id: format!(
            "{prefix}-{:016x}",
            served.hasher.hash_one((request.seed, served.requests.load(Ordering::Relaxed)))
        ),
        created_s: now_s(),
        model: served.name.clone(),
        fingerprint: served.fingerprint.clone(),
        usage_last: request.stream && request.include_usage,
    };
    let prompt_tokens = count_tokens(&request.prompt);
    let (pieces, receiver) = mpsc::channel::<String>(CHANNEL_PIECES);
    let generating = Arc::clone(&served);
    let Generate { prompt, max_tokens, temperature, seed, ignore_eos, .. } = request;
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut generation = generating.model.generate(&prompt, max_tokens, temperature, seed);
        if ignore_eos {
            generation = generation.ignoring_end();
        }
        let mut text = generation.pieces();
        for piece in text.by_ref() {
            if pieces.blocking_send(piece).is_err() {
                tracing::debug!("generation stopped: its client is gone");
                return None;
            }
        }
        text.stopped()
    });
    let stream = Stream { reply, receiver, task: Some(task), prompt_tokens, completion_tokens: 0 };
    if request.stream { Ok(stream.events(request.include_usage).into_response()) } else { stream.whole().await }
}

/// A generation under way: its pieces as they come, and why it stopped at the end.
struct Stream {
    reply: Reply,
    receiver: mpsc::Receiver<String>,
    task: Option<tokio::task::JoinHandle<Option<Stop>>>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Stream {
    /// Why the generation stopped, once its pieces are all read.
    async fn stopped(&mut self) -> Result<Stop, ApiError> {
        let task = self.task.take();
        match task {
            Some(task) => match task.await {
                Ok(Some(stop)) => Ok(stop),
                Ok(None) | Err(_) => {
                    tracing::error!("a generation failed");
                    Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "The generation failed.", "server_error"))
                }
            },
            None => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "The generation failed.", "server_error")),
        }
    }

    async fn whole(mut self) -> Result<Response, ApiError> {
        let mut text = String::new();
        while let Some(piece) = self.receiver.recv().await {
            text.push_str(&piece);
        }
        let stop = self.stopped().await?;
        let usage = usage(self.prompt_tokens, count_tokens(&text));
        Ok(axum::Json(self.reply.whole(&text, stop, usage)).into_response())
    }

    /// Server-sent events: for chat a first chunk with the role, a chunk per piece (one
    /// character), the end with its reason, the usage
    /// when asked (`stream_options.include_usage`), then `[DONE]`. A generation that fails ends
    /// the stream with an error event and no `[DONE]`.
    fn events(self, include_usage: bool) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
        enum Phase {
            Role,
            Pieces,
            Usage,
            Done,
            Over,
        }
        let start = if self.reply.api == Api::Chat { Phase::Role } else { Phase::Pieces };
        let events = futures_util::stream::unfold((self, start), move |(mut stream, phase)| async move {
            let (data, next) = match phase {
                Phase::Role => (stream.reply.chunk(Some(""), true, None).to_string(), Phase::Pieces),
                Phase::Pieces => match stream.receiver.recv().await {
                    Some(piece) => {
                        stream.completion_tokens += count_tokens(&piece);
                        (stream.reply.chunk(Some(&piece), false, None).to_string(), Phase::Pieces)
                    }
                    None => match stream.stopped().await {
                        Ok(stop) => {
                            let next = if include_usage { Phase::Usage } else { Phase::Done };
                            (stream.reply.chunk(None, false, Some(stop)).to_string(), next)
                        }
                        Err(error) => {
                            let body = json!({ "error": { "message": error.message, "type": error.kind, "param": null, "code": null } });
                            (body.to_string(), Phase::Over)
                        }
                    },
                },
                Phase::Usage => {
                    let usage = usage(stream.prompt_tokens, stream.completion_tokens);
                    (stream.reply.usage_chunk(usage).to_string(), Phase::Done)
                }
                Phase::Done => ("[DONE]".to_owned(), Phase::Over),
                Phase::Over => return None,
            };
            Some((Ok(Event::default().data(data)), (stream, next)))
        });
        Sse::new(events)
    }
}
