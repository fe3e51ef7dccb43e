//! Grappe's HTTP server: the JSON API under `/api/v1`, the web UI, health and metrics, and the
//! background loops, in one process. [`run`] is all the binary calls.
// The OpenAPI document is one `json!` literal, deeper than the default limit.
#![recursion_limit = "512"]

pub mod account;
pub mod booster;
pub mod calls;
pub mod centres;
pub mod challenges;
pub mod compute;
pub mod data;
pub mod demo;
pub mod gateway;
pub mod kit;
pub mod models;
pub mod openapi;
pub mod programme;
pub mod routes;
pub mod system;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use grappe_db::{Db, PoolConfig};
use tokio::sync::watch;

pub use kit::state::{AppState, ComputeConfig, ExecutorKind, ServerConfig};

use crate::kit::caller::{self, LoginThrottle};
use crate::kit::metrics::Metrics;
use crate::kit::{background, error, page};

/// Builds the shared state: opens the database and applies migrations.
pub async fn connect(config: ServerConfig) -> anyhow::Result<AppState> {
    kit::zone::set(config.time_zone);
    let db = Db::open(&config.database_url, &PoolConfig::default())
        .await
        .with_context(|| format!("opening the database at {}", redact_url(&config.database_url)))?;
    let db = if config.audit_key.is_empty() { db } else { db.with_audit_key(&config.audit_key) };
    let instance = format!("{}-{}-{}", hostname(), std::process::id(), &caller::new_secret()[..6]);
    let config_limits = config.limits.clone();
    let (config_store, config_data_dir) = (config.store.clone(), config.data_dir.clone());
    let (installation, secret) = db
        .installation(&caller::new_secret()[..16], &caller::new_secret())
        .await
        .context("reading the installation's name")?;
    let exec = match config.compute.executor {
        ExecutorKind::Local => Some(Arc::new(compute::scheduler::exec_config(&config, &installation)?)),
        ExecutorKind::Slurm => None,
    };
    if !config.audit_key.is_empty() && !db.check_audit_key(&config.audit_key).await? {
        anyhow::bail!(
            "this server's audit key is not the one this database's audit chain is keyed with: give every server \
             of one database the same GRAPPE_AUDIT_KEY (or the same DATA_DIR/audit.key)"
        );
    }
    Ok(AppState {
        db,
        login_throttle: Arc::new(LoginThrottle::new(config.login_attempts_per_window, config.login_window)),
        config: Arc::new(config),
        metrics: Arc::new(Metrics::default()),
        instance: instance.into(),
        ticker_here: Arc::new(AtomicBool::new(false)),
        scheduler_wake: Arc::new(tokio::sync::Notify::new()),
        scheduler_here: Arc::new(AtomicBool::new(false)),
        exec,
        log_streams: Arc::new(kit::permits::Permits::new(
            config_limits.log_streams_per_user,
            config_limits.log_streams,
        )),
        stopping: Arc::new(AtomicBool::new(false)),
        secret: secret.into_bytes().into(),
        store: Arc::new(data::open_store(&config_store, &config_data_dir)?),
        listening: Arc::default(),
    })
}

/// The whole application: routes, fallback, body limit, the error envelope, request metrics.
pub fn app(state: AppState) -> Router {
    routes::router(state.clone())
        .fallback(page::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(ensure_envelope))
        .layer(middleware::from_fn(close_after_unread_body))
        .layer(middleware::from_fn_with_state(state.clone(), answer_in_time))
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
}

/// Serves until `shutdown` resolves, then drains requests in flight and stops the loops.
pub async fn run(state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(state.config.addr)
        .await
        .with_context(|| format!("binding {}", state.config.addr))?;
    let addr = listener.local_addr()?;
    let _ = state.listening.set(addr);
    // On stdout, for people and for scripts that start the server on port 0.
    println!("Grappe listening on http://{addr} (database: {})", state.db.backend().as_str());
    let (stop_loops, loops_stopped) = watch::channel(false);
    let ticker = tokio::spawn(background::ticker(state.clone(), loops_stopped.clone()));
    let scoring = tokio::spawn(challenges::scoring::run(state.clone(), loops_stopped.clone()));
    let replicas = tokio::spawn(gateway::replicas::health(state.clone(), loops_stopped.clone()));
    let scheduler = tokio::spawn(compute::scheduler::run(state.clone(), loops_stopped));
    let db = state.db.clone();
    let config = &state.config;
    let limits = kit::serve::HttpLimits {
        header_read: config.limits.header_read,
        request: config.limits.request,
        per_client: config.limits.connections_per_client,
        total: config.limits.connections,
        per_client_applies: !config.trusted_proxy,
        drain: Duration::from_secs(30),
    };
    let stopping = state.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    kit::serve::serve(listener, app(state), limits, shutdown).await;
    let _ = stop_loops.send(true);
    let _ = ticker.await;
    let _ = scheduler.await;
    let _ = scoring.await;
    let _ = replicas.await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Security headers on every answer: a strict content policy (our own scripts, styles and
/// images only; no framing), no type sniffing, no referrer beyond our origin; and answers to a
/// caller with credentials are not stored by any cache.
async fn security_headers(request: Request, next: Next) -> Response {
    use axum::http::HeaderValue;
    use axum::http::header;
    let headers = request.headers();
    let private = headers.contains_key(header::AUTHORIZATION)
        || headers
            .get_all(header::COOKIE)
            .iter()
            .any(|value| value.to_str().is_ok_and(|text| text.contains("session=")));
    let mut response = next.run(request).await;
    let sets_cookie = response.headers().contains_key(header::SET_COOKIE);
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if private || sets_cookie {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Every request is answered (its response head) within the configured time, or gets 408.
async fn answer_in_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config.limits.request;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::AppError::Timeout(limit).into_response(),
    }
}

/// Counts and times each request by its route pattern, and logs it.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(&route, method, status, elapsed);
    if status >= 500 {
        tracing::warn!(http.method = method, http.route = %route, http.status = status, latency_ms = elapsed.as_millis() as u64, "request failed");
    } else {
        tracing::debug!(http.method = method, http.route = %route, http.status = status, latency_ms = elapsed.as_millis() as u64, "request");
    }
    response
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// A refusal or an error may be answered before the request's body was read (a rule's refusal,
/// a 404 before the upload): the connection then holds bytes the server will not read, and
/// hyper closes it, racing a client that already sends its next request on it. Saying
/// `Connection: close` on those answers tells the client not to reuse the connection.
async fn close_after_unread_body(request: Request, next: Next) -> Response {
    let has_body = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|length| length != "0")
        || request.headers().contains_key(axum::http::header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    if has_body && response.status().as_u16() >= 300 {
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    response
}

/// Gives every error that the framework answers itself (405, a form that does not parse) the
/// same JSON envelope as our own; our JSON errors and HTML pages pass through unchanged.
async fn ensure_envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let code = status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_");
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&body);
    let detail = if detail.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        detail.trim().to_owned()
    };
    // Keep what the original said besides its body (`Allow` on a 405, say).
    let (envelope_parts, body) = error::envelope(status, &code, &detail).into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.extend(envelope_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "grappe".to_owned(), |name| name.trim().to_owned())
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
