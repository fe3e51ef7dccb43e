//! AI-as-a-Service: an OpenAI-compatible gateway in front of model servers, paid from the same
//! project allocations as the compute service. A project's members create its keys (shown
//! once, stored hashed); administrators register the models (an upstream that speaks OpenAI's
//! format, its prices in GPU-milliseconds per 1,000 tokens, public or one project's); a key
//! calls `/v1/...` as OpenAI's clients do, and every request reserves its most cost on the
//! project's allocation before it is forwarded and settles its real cost after (`proxy.rs`).

pub mod pages;
pub mod proxy;
pub mod replicas;

pub use replicas::{REPLICA_TOKEN_ENV, announce, replica_token};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{GatewayKeyRow, GatewayModelRow, NewGatewayKey, NewGatewayModel};
use grappe_domain::policy::{self, Access};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::caller::{self, Caller};
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::{ProjectKey, Public, SignedIn};
    use Kind::{Api, OpenAi, Page};
    use Method::{Delete, Get, Post};
    vec![
        route(
            Api,
            Post,
            "/api/v1/projects/{id}/keys",
            SignedIn,
            "Create a gateway key of the project, shown once (its members)",
            create_key,
        )
        .body("NewKey"),
        route(Api, Get, "/api/v1/projects/{id}/keys", SignedIn, "The project's gateway keys (its members)", keys),
        route(
            Api,
            Delete,
            "/api/v1/projects/{id}/keys/{key_id}",
            SignedIn,
            "Revoke a gateway key at once (its members)",
            revoke_key,
        ),
        route(
            Api,
            Get,
            "/api/v1/projects/{id}/gateway-usage",
            SignedIn,
            "The project's gateway requests: tokens, cost, status (its members)",
            usage,
        ),
        route(
            Api,
            Post,
            "/api/v1/gateway/models",
            SignedIn,
            "Register a model: an upstream and prices (administrators), or a project's own, served by its jobs (its members)",
            create_model,
        )
        .body("NewGatewayModel"),
        route(Page, Get, "/ai", Public, "AI as a service: models, keys, usage, playground", pages::gateway_page),
        route(Page, Post, "/ai/projects/{id}/keys", SignedIn, "Create a key from the page (members)", pages::key_form),
        route(
            Page,
            Post,
            "/ai/projects/{id}/keys/{key_id}/revoke",
            SignedIn,
            "Revoke a key from the page (members)",
            pages::revoke_form,
        ),
        route(
            Page,
            Post,
            "/ai/playground",
            SignedIn,
            "A prompt to a model, paid by one of the caller's projects' keys",
            pages::playground,
        ),
        route(OpenAi, Get, "/v1/models", ProjectKey, "The models this key may call (OpenAI's format)", models),
        route(OpenAi, Post, "/v1/chat/completions", ProjectKey, "Chat completions (OpenAI's format)", proxy::chat),
        route(OpenAi, Post, "/v1/completions", ProjectKey, "Completions (OpenAI's format)", proxy::completions),
        route(OpenAi, Post, "/v1/embeddings", ProjectKey, "Embeddings (OpenAI's format)", proxy::embeddings),
    ]
}

/// The project whose keys the caller manages: its members, and administrators; a 404 to
/// anyone else, as for a project that does not exist.
async fn member_project(state: &AppState, caller: &Caller, id: i64) -> AppResult<i64> {
    let exists = state.db.project(id).await?.is_some();
    if !exists || !policy::may_use_project(&caller.actor, id) {
        return Err(AppError::NotFound(format!("project {id} not found")));
    }
    Ok(id)
}

fn key_json(key: &GatewayKeyRow) -> Value {
    json!({
        "id": key.id,
        "project": key.project_id,
        "name": key.name,
        "prefix": key.prefix,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "created_by": key.created_by,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    pub name: String,
    /// Limits of this key, besides the project's (none: only the project's).
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
    #[serde(default)]
    pub tokens_per_minute: Option<i64>,
}

/// Creates a key of a project for a member: the one path for the API and the page. The row,
/// and the key itself, which is never shown again.
pub async fn issue_key(
    state: &AppState,
    caller: &Caller,
    id: i64,
    body: NewKeyBody,
) -> AppResult<(GatewayKeyRow, String)> {
    let project = member_project(state, caller, id).await?;
    let name = crate::calls::text_field("name", &body.name, 100)?;
    for (field, limit) in
        [("requests_per_minute", body.requests_per_minute), ("tokens_per_minute", body.tokens_per_minute)]
    {
        if limit.is_some_and(|limit| !(1..=1_000_000_000).contains(&limit)) {
            return Err(AppError::Invalid(format!("`{field}`: 1 to 1,000,000,000, or none")));
        }
    }
    let key = caller::new_gateway_key();
    let prefix: String = key.chars().take(caller::GATEWAY_KEY_PREFIX.len() + 6).collect();
    let new = NewGatewayKey {
        project_id: project,
        name: &name,
        key_hash: &grappe_db::sha256_hex(key.as_bytes()),
        prefix: &prefix,
        requests_per_minute: body.requests_per_minute,
        tokens_per_minute: body.tokens_per_minute,
    };
    let row = state.db.create_gateway_key(&new, &caller.audit_name()).await?;
    Ok((row, key))
}

pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<NewKeyBody>,
) -> AppResult<Response> {
    let (row, key) = issue_key(&state, &caller, id, body).await?;
    let mut answer = key_json(&row);
    answer["key"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub async fn keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let project = member_project(&state, &caller, id).await?;
    let items: Vec<Value> = state.db.gateway_keys(project).await?.iter().map(key_json).collect();
    Ok(Json(json!({ "items": items })))
}

/// Revokes a project's key at once: the one path for the API and the page.
pub async fn revoke(state: &AppState, caller: &Caller, id: i64, key_id: i64) -> AppResult<()> {
    let project = member_project(state, caller, id).await?;
    if !state.db.revoke_gateway_key(project, key_id, &caller.audit_name()).await? {
        return Err(AppError::NotFound(format!("project {id} has no live key {key_id}")));
    }
    Ok(())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, key_id)): UrlPath<(i64, i64)>,
) -> AppResult<StatusCode> {
    revoke(&state, &caller, id, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn usage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let project = member_project(&state, &caller, id).await?;
    let (in_flight, reserved_gpu_ms) = state.db.gateway_reserved(project).await?;
    let items: Vec<Value> = state
        .db
        .gateway_usage(project, 1000)
        .await?
        .iter()
        .map(|u| {
            json!({
                "id": u.id, "key": u.key_id, "model": u.model, "endpoint": u.endpoint,
                "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "gpu_ms": u.gpu_ms,
                "status": u.status, "first_token_ms": u.first_token_ms, "duration_ms": u.duration_ms,
                "created_at": u.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "in_flight": in_flight, "reserved_gpu_ms": reserved_gpu_ms, "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewModelBody {
    pub name: String,
    /// The upstream's base URL, `http://host:port/v1` (administrators only); none: the model
    /// is served by its project's jobs.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Only this project's keys may call it; none: every project's.
    #[serde(default)]
    pub project: Option<i64>,
    pub input_gpu_ms_per_1k: i64,
    pub output_gpu_ms_per_1k: i64,
    pub max_output_tokens: i64,
}

fn model_json(model: &GatewayModelRow) -> Value {
    json!({
        "id": model.name,
        "object": "model",
        "created": model.created_at / 1000,
        "owned_by": model.project_id.map_or_else(|| "grappe".to_owned(), |project| format!("project-{project}")),
    })
}

pub async fn create_model(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewModelBody>,
) -> AppResult<Response> {
    // An administrator's model may call any upstream; a project's own is served by its jobs.
    let own_project = body.project.is_some_and(|project| policy::may_use_project(&caller.actor, project));
    if !(caller.actor.is_admin() || (own_project && body.upstream.is_none())) {
        return Err(AppError::Forbidden(
            "administrators register upstreams; a project's members register its own models, served by its jobs",
        ));
    }
    let name = grappe_store::Name::parse(&body.name).map_err(|error| AppError::Invalid(format!("`name`: {error}")))?;
    let upstream = body.upstream.as_deref().map(|upstream| upstream.trim_end_matches('/'));
    if let Some(upstream) = upstream {
        let authority = upstream.strip_prefix("http://").unwrap_or("");
        if authority.is_empty() || authority.contains(['?', '#', '@', ' ']) || upstream.len() > 500 {
            return Err(AppError::Invalid("`upstream`: an http:// base URL, as http://host:port/v1".into()));
        }
    }
    for (field, value) in
        [("input_gpu_ms_per_1k", body.input_gpu_ms_per_1k), ("output_gpu_ms_per_1k", body.output_gpu_ms_per_1k)]
    {
        if !(0..=3_600_000_000).contains(&value) {
            return Err(AppError::Invalid(format!("`{field}`: 0 to 3,600,000,000 (a thousand GPU-hours)")));
        }
    }
    if !(1..=1_000_000).contains(&body.max_output_tokens) {
        return Err(AppError::Invalid("`max_output_tokens`: 1 to 1,000,000".into()));
    }
    if let Some(project) = body.project
        && state.db.project(project).await?.is_none()
    {
        return Err(AppError::Invalid(format!("no project {project}")));
    }
    let new = NewGatewayModel {
        name: name.as_str(),
        upstream,
        project_id: body.project,
        input_gpu_ms_per_1k: body.input_gpu_ms_per_1k,
        output_gpu_ms_per_1k: body.output_gpu_ms_per_1k,
        max_output_tokens: body.max_output_tokens,
    };
    let model = state.db.create_gateway_model(&new, &caller.audit_name()).await?;
    Ok((StatusCode::CREATED, Json(model_json(&model))).into_response())
}

/// Whether a key's project may call `model`.
pub fn may_call(key: &GatewayKeyRow, model: &GatewayModelRow) -> bool {
    model.project_id.is_none_or(|project| project == key.project_id)
}

/// The caller's key: every gateway route runs with one (the route's rule).
pub fn key_of(caller: &Caller) -> AppResult<&GatewayKeyRow> {
    caller.key.as_ref().ok_or(AppError::Unauthenticated)
}

pub async fn models(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let listed = async {
        let key = key_of(&caller)?;
        let data: Vec<Value> =
            state.db.gateway_models().await?.iter().filter(|model| may_call(key, model)).map(model_json).collect();
        Ok::<_, AppError>(json!({ "object": "list", "data": data }))
    };
    match listed.await {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.openai_response(),
    }
}
