//! `grappe model proxy`: any model server that speaks OpenAI's format (vLLM, TGI, llama.cpp's
//! server), started by the same job, served through the gateway. It waits until the server
//! answers `GET /models` (a model may load for minutes), then does for it what `grappe model
//! serve` does itself: announces the job as a replica of the model, proves the job's token to the
//! gateway's probe, and answers only requests that carry that token as bearer, which it relays to
//! the server (streams as they come).
//!
//! ```sh
//! vllm serve /models/x --served-model-name x --port 8000 &
//! exec grappe model proxy --upstream http://127.0.0.1:8000/v1 --name x
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;

use crate::lm_serve::{ApiError, announce, from_gateway, proved, replica_token};

#[derive(Args)]
pub struct ProxyFlags {
    /// The model server's OpenAI base URL, as the job reaches it (`http://127.0.0.1:8000/v1`).
    #[arg(long)]
    upstream: String,
    /// The model's name at the gateway; the server must know the model by it too (vLLM's
    /// `--served-model-name`).
    #[arg(long)]
    name: String,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// The host in the address announced to the gateway (default: the address listened on); on
    /// Slurm, the node's name (`$SLURMD_NODENAME`), with `--addr 0.0.0.0:0`.
    #[arg(long)]
    announce_host: Option<String>,
    /// How long to wait for the server to answer before giving up, in seconds.
    #[arg(long, default_value_t = 1800)]
    wait_s: u64,
    /// The variable that holds the key the server asks for (vLLM's `--api-key`), if it asks.
    #[arg(long)]
    upstream_key_env: Option<String>,
}

struct Proxy {
    upstream: String,
    upstream_key: Option<HeaderValue>,
    replica_token: Option<String>,
}

pub async fn run(flags: ProxyFlags) -> anyhow::Result<()> {
    let upstream = flags.upstream.trim_end_matches('/').to_owned();
    if !upstream.starts_with("http://") {
        bail!("--upstream: an http:// URL of the server, as `http://127.0.0.1:8000/v1`");
    }
    let upstream_key = match &flags.upstream_key_env {
        Some(name) => {
            let key = std::env::var(name).with_context(|| format!("{name} is not set"))?;
            Some(HeaderValue::try_from(format!("Bearer {key}")).context("the upstream's key")?)
        }
        None => None,
    };
    let proxy = Arc::new(Proxy { upstream, upstream_key, replica_token: replica_token() });
    wait_for_upstream(&proxy, Duration::from_secs(flags.wait_s)).await?;
    let listener =
        tokio::net::TcpListener::bind(flags.addr).await.with_context(|| format!("listening on {}", flags.addr))?;
    let addr = listener.local_addr().context("the listening address")?;
    outln!("relaying {} on http://{addr}/v1 to {}", flags.name, proxy.upstream);
    if proxy.replica_token.is_some() {
        announce(&flags.name, addr, flags.announce_host.as_deref());
    }
    let router = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(relay))
        .route("/v1/completions", post(relay))
        .route("/v1/embeddings", post(relay))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Unknown request URL.", "invalid_request_error") })
        .with_state(proxy);
    axum::serve(listener, router).with_graceful_shutdown(crate::shutdown_signal()).await?;
    Ok(())
}

/// Asks the server for its models until it answers 200, for at most `wait`.
async fn wait_for_upstream(proxy: &Proxy, wait: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut told = false;
    loop {
        match send(proxy, Method::GET, "/models", Body::empty(), None).await {
            Ok(answer) if answer.status() == StatusCode::OK => return Ok(()),
            Ok(answer) if started.elapsed() > wait => {
                bail!("{} answered {} for {} s", proxy.upstream, answer.status(), wait.as_secs())
            }
            Err(error) if started.elapsed() > wait => {
                bail!("{} did not answer for {} s: {error}", proxy.upstream, wait.as_secs())
            }
            _ if !told => {
                outln!("waiting for {} to answer", proxy.upstream);
                told = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A request to the server: `path` after its base URL.
async fn send(
    proxy: &Proxy,
    method: Method,
    path: &str,
    body: Body,
    content_type: Option<&HeaderValue>,
) -> Result<Response, String> {
    let mut request = axum::http::Request::builder().method(method).uri(format!("{}{path}", proxy.upstream));
    if let Some(key) = &proxy.upstream_key {
        request = request.header(AUTHORIZATION, key);
    }
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    let request = request.body(body).map_err(|error| error.to_string())?;
    let answer = grappe_server::gateway::proxy::client().request(request).await.map_err(|error| error.to_string())?;
    Ok(answer.map(Body::new))
}

/// The server's answer as it comes: its status, its type, its body streamed.
fn relayed(answer: Result<Response, String>) -> Response {
    match answer {
        Ok(answer) => {
            let mut relayed = Response::new(Body::empty());
            *relayed.status_mut() = answer.status();
            if let Some(content_type) = answer.headers().get(CONTENT_TYPE) {
                relayed.headers_mut().insert(CONTENT_TYPE, content_type.clone());
            }
            *relayed.body_mut() = answer.into_body();
            relayed
        }
        Err(error) => {
            ApiError::new(StatusCode::BAD_GATEWAY, format!("the model's server failed: {error}"), "api_error")
                .into_response()
        }
    }
}

async fn models(State(proxy): State<Arc<Proxy>>, headers: HeaderMap) -> Response {
    let list = relayed(send(&proxy, Method::GET, "/models", Body::empty(), None).await);
    proved(proxy.replica_token.as_deref(), &headers, list)
}

async fn relay(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    if let Err(refused) = from_gateway(proxy.replica_token.as_deref(), request.headers()) {
        return refused.into_response();
    }
    let path = request.uri().path().trim_start_matches("/v1").to_owned();
    let content_type = request.headers().get(CONTENT_TYPE).cloned();
    let body = request.into_body();
    relayed(send(&proxy, Method::POST, &path, body, content_type.as_ref()).await)
}
