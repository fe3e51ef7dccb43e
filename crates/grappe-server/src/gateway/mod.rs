//! AI-as-a-Service: an OpenAI-compatible gateway in front of model servers, paid from the same
//! project allocations as the compute service. A project's members create its keys (shown
//! once, stored hashed); administrators register the models (an upstream that speaks OpenAI's
//! format, its prices in GPU-milliseconds per 1,000 tokens, public or one project's); a key
//! calls `/v1/...` as OpenAI's clients do, and every request reserves its most cost on the
//! project's allocation before it is forwarded and settles its real cost after (`proxy.rs`).

pub mod batches;
pub mod energy;
pub mod fine_tuning;
pub mod pages;
pub mod proxy;
pub mod replicas;
pub mod served;

pub use replicas::{REPLICA_TOKEN_ENV, announce, replica_proof, replica_token};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{GatewayKeyRow, GatewayLimits, GatewayModelRow, NewGatewayKey, NewGatewayModel, now_ms};
use grappe_domain::policy::{self, Access};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::gateway::energy::Energy;
use crate::kit::caller::{self, Caller};
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

/// The most live keys, and models of its own, one project has.
const MAX_LIVE_KEYS: usize = 100;
const MAX_PROJECT_MODELS: usize = 50;

pub fn routes() -> Vec<Route> {
    use Access::{GlobalRole, ProjectKey, Public, SignedIn};
    use Kind::{Api, OpenAi, Page};
    use Method::{Delete, Get, Post};
    use grappe_domain::account::Role::Admin;
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
            Get,
            "/api/v1/projects/{id}/gateway-usage.csv",
            SignedIn,
            "The project's gateway requests as CSV (its members)",
            usage_csv,
        ),
        route(
            Api,
            Post,
            "/api/v1/projects/{id}/gateway-limits",
            GlobalRole(Admin),
            "Set the project's gateway limits per minute and per day (administrators)",
            set_limits,
        )
        .body("GatewayLimits"),
        route(
            Api,
            Post,
            "/api/v1/gateway/models",
            SignedIn,
            "Register a model: an upstream and prices (administrators), or a project's own, served by its jobs (its members)",
            create_model,
        )
        .body("NewGatewayModel"),
        route(
            Api,
            Post,
            "/api/v1/gateway/models/{name}/serve",
            SignedIn,
            "Serve a project's model from its registry version, as a job of the project, unless one serves it (its members)",
            serve_model,
        ),
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
        route(
            OpenAi,
            Post,
            "/v1/responses",
            ProjectKey,
            "Responses, minimal: text or messages in, one message out (OpenAI's format)",
            proxy::responses,
        ),
        route(OpenAi, Post, "/v1/files", ProjectKey, "Send a batch's input file (multipart: file, purpose=batch)", batches::upload_file),
        route(OpenAi, Get, "/v1/files", ProjectKey, "The project's files", batches::files),
        route(OpenAi, Get, "/v1/files/{id}", ProjectKey, "A file", batches::file),
        route(OpenAi, Get, "/v1/files/{id}/content", ProjectKey, "A file's bytes", batches::file_content),
        route(OpenAi, Post, "/v1/batches", ProjectKey, "Run a file of requests as a batch, paid as any request", batches::create_batch),
        route(OpenAi, Get, "/v1/batches", ProjectKey, "The project's batches", batches::batches),
        route(OpenAi, Get, "/v1/batches/{id}", ProjectKey, "A batch: its status and counts, its output file", batches::batch),
        route(OpenAi, Post, "/v1/batches/{id}/cancel", ProjectKey, "Stop a batch after its request under way", batches::cancel_batch),
        route(
            OpenAi,
            Post,
            "/v1/fine_tuning/jobs",
            ProjectKey,
            "Fine-tune a model served from the registry on a file: quoted, then run as a compute job of the project",
            fine_tuning::create,
        ),
        route(OpenAi, Get, "/v1/fine_tuning/jobs", ProjectKey, "The project's fine-tuning jobs", fine_tuning::list),
        route(OpenAi, Get, "/v1/fine_tuning/jobs/{id}", ProjectKey, "A fine-tuning job and its quote", fine_tuning::show),
        route(
            OpenAi,
            Post,
            "/v1/fine_tuning/jobs/{id}/start",
            ProjectKey,
            "Start a job created with auto_start false, after its quote",
            fine_tuning::start_job,
        ),
        route(OpenAi, Post, "/v1/fine_tuning/jobs/{id}/cancel", ProjectKey, "Cancel a fine-tuning job", fine_tuning::cancel),
        route(
            OpenAi,
            Get,
            "/v1/fine_tuning/jobs/{id}/events",
            ProjectKey,
            "A fine-tuning job's events: quote, start, loss per epoch, end",
            fine_tuning::events,
        ),
        route(
            OpenAi,
            Get,
            "/v1/fine_tuning/jobs/{id}/checkpoints",
            ProjectKey,
            "A fine-tuning job's checkpoint: the registry version it made",
            fine_tuning::checkpoints,
        ),
        route(
            OpenAi,
            Get,
            "/v1/usage",
            ProjectKey,
            "This key's project: its allocation, limits, what this minute and day counted, recent requests",
            key_usage,
        ),
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

fn limits_json(limits: &GatewayLimits) -> Value {
    json!({
        "requests_per_minute": limits.requests_per_minute,
        "tokens_per_minute": limits.tokens_per_minute,
        "requests_per_day": limits.requests_per_day,
        "tokens_per_day": limits.tokens_per_day,
    })
}

/// Limits as a body gives them: each 1 to 10^9, or none.
fn checked_limits(limits: LimitsBody) -> AppResult<GatewayLimits> {
    let fields = [
        ("requests_per_minute", limits.requests_per_minute),
        ("tokens_per_minute", limits.tokens_per_minute),
        ("requests_per_day", limits.requests_per_day),
        ("tokens_per_day", limits.tokens_per_day),
    ];
    for (field, limit) in fields {
        if limit.is_some_and(|limit| !(1..=1_000_000_000).contains(&limit)) {
            return Err(AppError::Invalid(format!("`{field}`: 1 to 1,000,000,000, or none")));
        }
    }
    Ok(GatewayLimits {
        requests_per_minute: limits.requests_per_minute,
        tokens_per_minute: limits.tokens_per_minute,
        requests_per_day: limits.requests_per_day,
        tokens_per_day: limits.tokens_per_day,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
    #[serde(default)]
    pub tokens_per_minute: Option<i64>,
    #[serde(default)]
    pub requests_per_day: Option<i64>,
    #[serde(default)]
    pub tokens_per_day: Option<i64>,
}

fn key_json(key: &GatewayKeyRow) -> Value {
    json!({
        "id": key.id,
        "project": key.project_id,
        "name": key.name,
        "prefix": key.prefix,
        "limits": limits_json(&key.limits),
        "fine_tuning": key.fine_tuning,
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
    pub limits: Option<LimitsBody>,
    /// It may start fine-tuning jobs, which spend the project's GPU-hours outside the key's
    /// token limits: only when asked.
    #[serde(default)]
    pub fine_tuning: bool,
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
    let limits = checked_limits(body.limits.unwrap_or_default())?;
    let live = state.db.gateway_keys(project).await?.iter().filter(|key| key.revoked_at.is_none()).count();
    if live >= MAX_LIVE_KEYS {
        return Err(AppError::Conflict(format!("a project has at most {MAX_LIVE_KEYS} live keys: revoke one first")));
    }
    let key = caller::new_gateway_key();
    let prefix: String = key.chars().take(caller::GATEWAY_KEY_PREFIX.len() + 6).collect();
    let new = NewGatewayKey {
        project_id: project,
        name: &name,
        key_hash: &grappe_db::sha256_hex(key.as_bytes()),
        prefix: &prefix,
        limits,
        fine_tuning: body.fine_tuning,
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
    let items = usage_items(&state, &state.db.gateway_usage(project, 1000).await?).await?;
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
    /// The most requests one replica is sent at once (default 32); more wait, people first.
    #[serde(default = "thirty_two")]
    pub max_concurrency: i64,
    /// The registry version (`NAME@N`) the project's jobs serve as this model, which may then be
    /// fine-tuned; the registry model must be public or the project's.
    #[serde(default)]
    pub version: Option<String>,
    /// How its versions are fine-tuned and served (administrators only, with `version`); none:
    /// the built-in language model's way.
    #[serde(default)]
    pub recipe: Option<served::Recipe>,
}

fn thirty_two() -> i64 {
    32
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
    if !(1..=10_000).contains(&body.max_concurrency) {
        return Err(AppError::Invalid("`max_concurrency`: 1 to 10,000".into()));
    }
    if let Some(project) = body.project {
        if state.db.project(project).await?.is_none() {
            return Err(AppError::Invalid(format!("no project {project}")));
        }
        let owned = state.db.gateway_models().await?.iter().filter(|model| model.project_id == Some(project)).count();
        if owned >= MAX_PROJECT_MODELS {
            return Err(AppError::Conflict(format!("a project has at most {MAX_PROJECT_MODELS} models")));
        }
    }
    let version_id = match &body.version {
        Some(_) if upstream.is_some() => {
            return Err(AppError::Invalid("`version`: a model served from the registry has no `upstream`".into()));
        }
        Some(version) => {
            let id = crate::models::base_version(&state, &caller, version).await?;
            let registry = state.db.model_version_by_id(id).await?.map(|(model, _)| model);
            let readable = registry.is_some_and(|model| model.public || Some(model.project_id) == body.project);
            if body.project.is_none() || !readable {
                return Err(AppError::Invalid(
                    "`version`: served by the jobs of `project`, which must be the registry model's or a public one"
                        .into(),
                ));
            }
            Some(id)
        }
        None => None,
    };
    let recipe = match body.recipe {
        // A recipe's scripts run in the project's jobs: an administrator's to write.
        Some(_) if !caller.actor.is_admin() => {
            return Err(AppError::Forbidden("a recipe runs commands in a project's jobs: administrators set them"));
        }
        Some(_) if version_id.is_none() => {
            return Err(AppError::Invalid("`recipe`: for a model served from the registry (`version`)".into()));
        }
        Some(recipe) => Some(recipe.checked()?),
        None => None,
    };
    let new = NewGatewayModel {
        name: name.as_str(),
        upstream,
        project_id: body.project,
        input_gpu_ms_per_1k: body.input_gpu_ms_per_1k,
        output_gpu_ms_per_1k: body.output_gpu_ms_per_1k,
        max_output_tokens: body.max_output_tokens,
        max_concurrency: body.max_concurrency,
        version_id,
        recipe: recipe.as_deref(),
    };
    let model = state.db.create_gateway_model(&new, &caller.audit_name()).await?;
    Ok((StatusCode::CREATED, Json(model_json(&model))).into_response())
}

/// Queues the serving job of a project's model served from the registry, unless one is queued
/// or running: after its last one ended, or after a fine-tuning its allocation could not serve.
pub async fn serve_model(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> AppResult<Json<Value>> {
    let not_found = || AppError::NotFound(format!("no model named `{name}`"));
    let model = state.db.gateway_model(&name).await?.ok_or_else(not_found)?;
    let project = model.project_id.filter(|project| policy::may_use_project(&caller.actor, *project));
    let project = state.db.project(project.ok_or_else(not_found)?).await?.ok_or_else(not_found)?;
    let version_id = model
        .version_id
        .ok_or_else(|| AppError::Invalid(format!("`{name}` is not served from the registry: its jobs announce it")))?;
    let (_, version) = served::registry_version(&state, version_id).await?;
    let new = NewGatewayModel {
        name: &model.name,
        upstream: None,
        project_id: model.project_id,
        input_gpu_ms_per_1k: model.input_gpu_ms_per_1k,
        output_gpu_ms_per_1k: model.output_gpu_ms_per_1k,
        max_output_tokens: model.max_output_tokens,
        max_concurrency: model.max_concurrency,
        version_id: model.version_id,
        recipe: model.recipe.as_deref(),
    };
    let longest = served::SERVING_LONGEST_S;
    served::serve_version(&state, &new, &project, caller.actor.user_id(), &version, longest, &caller.audit_name())
        .await?;
    Ok(Json(json!({ "model": model.name, "served": true })))
}

/// Whether a key's project may call `model`.
pub fn may_call(key: &GatewayKeyRow, model: &GatewayModelRow) -> bool {
    model.project_id.is_none_or(|project| project == key.project_id)
}

/// The caller's key: every gateway route runs with one (the route's rule).
pub fn key_of(caller: &Caller) -> AppResult<&GatewayKeyRow> {
    caller.key.as_ref().ok_or(AppError::Unauthenticated)
}

/// The caller's key, if it was made to start fine-tuning jobs.
pub fn fine_tuning_key(caller: &Caller) -> AppResult<&GatewayKeyRow> {
    let key = key_of(caller)?;
    if !key.fine_tuning {
        return Err(AppError::Forbidden(
            "this key may not start fine-tuning jobs: make one with \"fine_tuning\": true",
        ));
    }
    Ok(key)
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

fn usage_json(u: &grappe_db::GatewayUsageRow, energy: &Energy) -> Value {
    json!({
        "id": u.id, "key": u.key_id, "model": u.model, "endpoint": u.endpoint,
        "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "gpu_ms": u.gpu_ms,
        "status": u.status, "first_token_ms": u.first_token_ms, "duration_ms": u.duration_ms,
        "created_at": u.created_at, "energy_wh": energy.of_request(u),
    })
}

/// Usage records as JSON, each with its estimated energy.
async fn usage_items(state: &AppState, rows: &[grappe_db::GatewayUsageRow]) -> AppResult<Vec<Value>> {
    let energy = Energy::of(state, rows).await?;
    Ok(rows.iter().map(|row| usage_json(row, &energy)).collect())
}

pub async fn usage_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Response> {
    let project = member_project(&state, &caller, id).await?;
    let mut csv = String::from(
        "id,key,model,endpoint,prompt_tokens,completion_tokens,gpu_ms,status,first_token_ms,duration_ms,created_at,energy_wh\n",
    );
    let field = crate::kit::page::csv_field;
    let rows = state.db.gateway_usage(project, 1_000_000).await?;
    let energy = Energy::of(&state, &rows).await?;
    for u in &rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            u.id,
            u.key_id,
            field(&u.model),
            field(&u.endpoint),
            u.prompt_tokens,
            u.completion_tokens,
            u.gpu_ms,
            field(&u.status),
            u.first_token_ms.map(|ms| ms.to_string()).unwrap_or_default(),
            u.duration_ms,
            crate::kit::page::iso_datetime(u.created_at),
            energy.of_request(u).map(|wh| format!("{wh:.6}")).unwrap_or_default()
        ));
    }
    Ok(crate::kit::page::csv_download(&format!("project-{project}-gateway-usage.csv"), csv))
}

pub async fn set_limits(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<LimitsBody>,
) -> AppResult<Json<Value>> {
    let project = member_project(&state, &caller, id).await?;
    let limits = checked_limits(body)?;
    state.db.set_project_gateway_limits(project, &limits, &caller.audit_name()).await?;
    Ok(Json(limits_json(&limits)))
}

/// `GET /v1/usage`: what the key's project has and has left, its limits and the key's, what
/// this minute and this UTC day counted, and its last requests.
pub async fn key_usage(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let answered = async {
        let key = key_of(&caller)?;
        let project = state.db.project(key.project_id).await?.ok_or_else(|| AppError::NotFound("no project".into()))?;
        let now = now_ms();
        let budget = project.gpu_hours * 3_600_000;
        let (in_flight, reserved) = state.db.gateway_reserved(project.id).await?;
        let counted = |c: grappe_db::Counted| {
            json!({
                "minute": { "requests": c.minute.0, "tokens": c.minute.1 },
                "day": { "requests": c.day.0, "tokens": c.day.1 },
            })
        };
        let recent = usage_items(&state, &state.db.gateway_usage(project.id, 100).await?).await?;
        Ok::<_, AppError>(json!({
            "object": "usage",
            "project": project.name,
            "allocation": {
                "gpu_ms": budget, "used_gpu_ms": project.used.gpu_ms, "reserved_gpu_ms": reserved,
                "left_gpu_ms": (budget - project.used.gpu_ms - reserved).max(0), "requests_in_flight": in_flight,
            },
            "limits": {
                "key": limits_json(&key.limits),
                "project": limits_json(&state.db.project_gateway_limits(project.id).await?),
            },
            "counted": {
                "key": counted(state.db.counted(&format!("key:{}", key.id), now).await?),
                "project": counted(state.db.counted(&format!("project:{}", project.id), now).await?),
            },
            "recent": recent,
        }))
    };
    match answered.await {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.openai_response(),
    }
}
