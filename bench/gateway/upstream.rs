//! The gateway benchmark's model server: `/v1/chat/completions` in OpenAI's format, as fast as
//! it can answer, so that what is measured through a gateway is the gateway. A whole answer
//! with `usage`; or a stream of three chunks, the usage chunk when the request asks for it
//! (`stream_options.include_usage`, as OpenAI), then `[DONE]`. No model runs: every answer is
//! the same few hundred bytes.
//!
//!   cargo build --release -p grappe --example gateway_upstream
//!   target/release/examples/gateway_upstream [ADDR] [WORKER_THREADS]
//!
//! (default 127.0.0.1:0 and 1 thread). Prints `listening on http://ADDR/v1` once it listens.

use std::io::Write;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

const CHUNKS: usize = 3;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let worker_threads: usize = args.next().map_or(Ok(1), |threads| threads.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(worker_threads).enable_all().build()?;
    runtime.block_on(serve(&addr))
}

async fn serve(addr: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(|| async { axum::Json(json!({ "object": "list", "data": [] })) }));
    println!("listening on http://{}/v1", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn chat(body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let model = request.get("model").cloned().unwrap_or(Value::Null);
    let usage = json!({ "prompt_tokens": 12, "completion_tokens": CHUNKS, "total_tokens": 12 + CHUNKS });
    if request.get("stream") != Some(&Value::Bool(true)) {
        let answer = json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Bonjour !" }, "finish_reason": "stop" }],
            "usage": usage,
        });
        return axum::Json(answer).into_response();
    }
    let wants_usage = request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let mut events: Vec<Result<Bytes, std::io::Error>> = (0..CHUNKS)
        .map(|i| {
            let chunk = json!({
                "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                "choices": [{ "index": 0, "delta": { "content": format!("m{i}") }, "finish_reason": if i + 1 == CHUNKS { Some("stop") } else { None } }],
            });
            Ok(Bytes::from(format!("data: {chunk}\n\n")))
        })
        .collect();
    if wants_usage {
        let chunk = json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model, "choices": [], "usage": usage });
        events.push(Ok(Bytes::from(format!("data: {chunk}\n\n"))));
    }
    events.push(Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    let mut response = Body::from_stream(futures_util::stream::iter(events)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}
