//! The model registry: models owned by a project, public or private, and their versions,
//! registered from the output of a job that succeeded. The files are copied from the job's
//! working directory into the store (`AppState::store`); the lineage of a version (its job, the
//! dataset versions the job read, the compute charged to it, its last metrics) is read from the
//! server's own records, never taken from the caller.
//!
//! ## Who sees what
//! A public model is seen by anyone; a private one by its project's members (and
//! administrators) only, on every route: to anyone else it does not exist (404). A project's
//! members create its models and register versions from jobs they may act on
//! ([`policy::may_act_on_job`]).

pub mod pages;

use std::path::PathBuf;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{JobRow, ModelRow, ModelVersionRow, NewModel, NewModelVersion};
use grappe_domain::policy::{self, Access};
use grappe_store::{DatasetPath, Name, Splits, StoreError, Version, folder_bytes};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;
use crate::kit::stored::{self, blocking};

pub fn routes() -> Vec<Route> {
    use Access::{Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Get, Post};
    vec![
        route(Api, Get, "/api/v1/models", Public, "Models the caller may see", list),
        route(Api, Post, "/api/v1/models", SignedIn, "Create a model owned by a project (members)", create)
            .body("NewModel"),
        route(Api, Get, "/api/v1/models/{name}", Public, "A model and its versions with their lineage", show),
        route(
            Api,
            Post,
            "/api/v1/models/{name}/versions",
            SignedIn,
            "Register a version from the output of a job that succeeded (members who may act on the job)",
            register,
        )
        .body("NewModelVersion"),
        route(Api, Get, "/api/v1/models/{name}/versions/{version}", Public, "A version: lineage, files, card", version),
        route(
            Api,
            Get,
            "/api/v1/models/{name}/versions/{version}/files/{*path}",
            Public,
            "A file of a version; Range for a part",
            file,
        ),
        route(Page, Get, "/models", Public, "The model registry", pages::models_page),
        route(Page, Get, "/models/{name}", Public, "A model's page", pages::model_page),
    ]
}

/// At most this many models in one answer.
const LIST_LIMIT: i64 = 500;
/// The metrics of a job recorded with a version: its first keys, by name.
const METRIC_KEYS: i64 = 50;
/// The longest card a version may carry.
const CARD_MAX_BYTES: usize = 64 * 1024;

/// The model `name` if the caller may see it; to anyone else it does not exist.
pub(crate) async fn visible_model(state: &AppState, caller: &Caller, name: &str) -> AppResult<ModelRow> {
    let not_found = || AppError::NotFound(format!("no model named `{name}`"));
    let model = state.db.model(name).await?.ok_or_else(not_found)?;
    if !(model.public || policy::may_use_project(&caller.actor, model.project_id)) {
        return Err(not_found());
    }
    Ok(model)
}

/// The name a model's versions have in the store, beside the datasets' names.
pub(crate) fn store_name(model: &str) -> AppResult<Name> {
    Name::parse(&format!("model.{model}"))
        .map_err(|_| AppError::Invalid(format!("a model's name is at most {} characters", 100 - "model.".len())))
}

fn check_card(card: &str) -> AppResult<()> {
    if card.len() > CARD_MAX_BYTES {
        return Err(AppError::Invalid(format!("the card is {} bytes, at most {CARD_MAX_BYTES}", card.len())));
    }
    Ok(())
}

/// `latest`, `N` or `vN` among `versions` (newest first).
fn find_version<'a>(model: &ModelRow, versions: &'a [ModelVersionRow], which: &str) -> AppResult<&'a ModelVersionRow> {
    let found = match which {
        "latest" => versions.first(),
        _ => which
            .strip_prefix('v')
            .unwrap_or(which)
            .parse()
            .ok()
            .and_then(|seq: i64| versions.iter().find(|v| v.seq == seq)),
    };
    found.ok_or_else(|| AppError::NotFound(format!("model `{}` has no version `{which}`", model.name)))
}

fn model_json(model: &ModelRow) -> Value {
    json!({
        "name": model.name,
        "project": model.project_id,
        "visibility": if model.public { "public" } else { "private" },
        "card": model.card,
        "created_at": model.created_at,
        "created_by": model.created_by,
    })
}

/// Milliseconds as hours, for people.
pub(crate) fn hours(ms: i64) -> f64 {
    ms as f64 / 3_600_000.0
}

pub(crate) fn version_json(model: &ModelRow, row: &ModelVersionRow) -> Value {
    json!({
        "model": model.name,
        "version": row.seq,
        "job": row.job_id,
        "base": row.base.as_ref().map(|(name, seq)| format!("{name}@{seq}")),
        "inputs": serde_json::from_str::<Value>(&row.inputs).unwrap_or(Value::Null),
        "metrics": serde_json::from_str::<Value>(&row.metrics).unwrap_or(Value::Null),
        "cpu_ms": row.cpu_ms,
        "gpu_ms": row.gpu_ms,
        "cpu_hours": hours(row.cpu_ms),
        "gpu_hours": hours(row.gpu_ms),
        "store_version": row.store_version,
        "files": row.files,
        "size_bytes": row.size_bytes,
        "card": row.card,
        "created_at": row.created_at,
        "created_by": row.created_by,
    })
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> AppResult<Json<Value>> {
    let projects = policy::projects_used_by(&caller.actor);
    let models = state.db.list_models(projects.as_deref(), LIST_LIMIT).await?;
    Ok(Json(json!({ "items": models.iter().map(model_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewModelBody {
    pub name: String,
    pub project: i64,
    /// Public models are listed for everyone; private by default.
    #[serde(default)]
    pub public: bool,
    /// The model's card (Markdown); each version may carry its own.
    #[serde(default)]
    pub card: String,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewModelBody>,
) -> AppResult<Response> {
    let created = new_model(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(model_json(&created))).into_response())
}

/// Checks and creates a model: the one path for the API and the demo.
pub async fn new_model(state: &AppState, caller: &Caller, body: NewModelBody) -> AppResult<ModelRow> {
    let name = Name::parse(&body.name).map_err(|error| AppError::Invalid(error.to_string()))?;
    store_name(name.as_str())?;
    check_card(&body.card)?;
    if state.db.project(body.project).await?.is_none() {
        return Err(AppError::Invalid(format!("no project {}", body.project)));
    }
    if !policy::may_use_project(&caller.actor, body.project) {
        return Err(AppError::Forbidden("only the project's members create its models"));
    }
    let new = NewModel {
        name: name.as_str(),
        project_id: body.project,
        public: body.public,
        card: &body.card,
        created_by: caller.user.as_ref().map(|user| user.id),
    };
    Ok(state.db.create_model(&new, &caller.audit_name()).await?)
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> AppResult<Json<Value>> {
    let model = visible_model(&state, &caller, &name).await?;
    let versions = state.db.model_versions(model.id).await?;
    let mut answer = model_json(&model);
    answer["versions"] = versions.iter().map(|row| version_json(&model, row)).collect();
    answer["may_register"] = Value::Bool(policy::may_use_project(&caller.actor, model.project_id));
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVersionBody {
    /// The job whose output this is.
    pub job: i64,
    /// A folder under the job's working directory.
    pub path: String,
    /// The version this one was trained from: `NAME@N`.
    #[serde(default)]
    pub base: Option<String>,
    /// The version's card (Markdown).
    #[serde(default)]
    pub card: Option<String>,
}

/// A job that succeeded and that the caller may act on; to whoever cannot see its project, it
/// does not exist.
async fn finished_job(state: &AppState, caller: &Caller, id: i64) -> AppResult<JobRow> {
    let job = state.db.job(id).await?.filter(|job| policy::may_use_project(&caller.actor, job.project_id));
    let job = job.ok_or_else(|| AppError::NotFound(format!("job {id} not found")))?;
    if !policy::may_act_on_job(&caller.actor, job.project_id, job.user_id) {
        return Err(AppError::Forbidden(
            "only the job's owner or a coordinator of its project may register its output",
        ));
    }
    if job.state != "completed" {
        return Err(AppError::Conflict(format!(
            "job {id} is {}: only the output of a job that succeeded is registered",
            job.state
        )));
    }
    Ok(job)
}

/// The folder `path` in the job's working directory: each part on the way a real folder, no link
/// (`compute::scheduler::job_work_path`), and itself a folder.
fn folder_inside(state: &AppState, job_id: i64, path: &str) -> AppResult<PathBuf> {
    let refuse =
        |why: String| AppError::Invalid(format!("`path`: {why}; give a folder under the job's working directory"));
    let folder = crate::compute::scheduler::job_work_path(state, job_id, path).map_err(refuse)?;
    match std::fs::symlink_metadata(&folder) {
        Ok(meta) if meta.file_type().is_dir() => Ok(folder),
        _ => Err(refuse(format!("`{path}` is not a folder"))),
    }
}

/// `NAME@N`: a version the caller may see.
pub(crate) async fn base_version(state: &AppState, caller: &Caller, base: &str) -> AppResult<i64> {
    let (name, which) =
        base.split_once('@').ok_or_else(|| AppError::Invalid(format!("`base` is NAME@N, not `{base}`")))?;
    let model = visible_model(state, caller, name).await?;
    let versions = state.db.model_versions(model.id).await?;
    Ok(find_version(&model, &versions, which)?.id)
}

/// The last value of each of the job's metrics, as a JSON object.
async fn last_metrics(state: &AppState, job_id: i64) -> AppResult<String> {
    let metrics = state.db.job_last_metrics(job_id, METRIC_KEYS).await?;
    let object: Map<String, Value> = metrics.into_iter().map(|(key, value)| (key, json!(value))).collect();
    Ok(Value::Object(object).to_string())
}

pub async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    ApiJson(body): ApiJson<NewVersionBody>,
) -> AppResult<Response> {
    let (model, added) = register_version(&state, &caller, &name, body).await?;
    Ok((StatusCode::CREATED, Json(version_json(&model, &added))).into_response())
}

/// Registers a completed job's output folder as a new version of a model, its lineage from the
/// server's records: the one path for the API and the demo.
pub async fn register_version(
    state: &AppState,
    caller: &Caller,
    name: &str,
    body: NewVersionBody,
) -> AppResult<(ModelRow, ModelVersionRow)> {
    let model = visible_model(state, caller, name).await?;
    if !policy::may_use_project(&caller.actor, model.project_id) {
        return Err(AppError::Forbidden("only the model's project's members register its versions"));
    }
    let card = body.card.unwrap_or_default();
    check_card(&card)?;
    let job = finished_job(state, caller, body.job).await?;
    let base_version_id = match &body.base {
        Some(base) => Some(base_version(state, caller, base).await?),
        None => None,
    };
    let created_by = caller.user.as_ref().map(|user| user.id);
    let output = JobOutput { job: &job, path: &body.path, base_version_id, card: Some(&card), created_by };
    let added = record_job_output(state, &model, &output, &caller.audit_name()).await?;
    Ok((model, added))
}

/// A folder a job that succeeded wrote, to become a version of a model.
pub(crate) struct JobOutput<'a> {
    pub job: &'a JobRow,
    /// Under the job's working directory.
    pub path: &'a str,
    pub base_version_id: Option<i64>,
    /// None: the `card.md` the folder holds (as the built-in recipes write), if any.
    pub card: Option<&'a str>,
    pub created_by: Option<i64>,
}

/// Copies a job's output folder into the store and records it as the model's next version, its
/// lineage from the server's records. The caller has checked who may: the API above, or the
/// gateway's fine-tuning for the project's own job.
pub(crate) async fn record_job_output(
    state: &AppState,
    model: &ModelRow,
    output: &JobOutput<'_>,
    actor: &str,
) -> AppResult<ModelVersionRow> {
    let job = output.job;
    let folder = folder_inside(state, job.id, output.path)?;
    let (folder, size) = blocking(move || {
        let size = folder_bytes(&folder);
        Ok((folder, size))
    })
    .await?;
    stored::check_storage(state, model.project_id, |held| held.saturating_add(size), "register fewer files").await?;
    let store = state.store.clone();
    let store_name = store_name(&model.name)?;
    let version_card = output.card.unwrap_or_default().to_owned();
    let shown = output.path.to_owned();
    let (committed, version) = blocking(move || {
        let refused = |error: StoreError| match error {
            StoreError::NotARegularFile { .. } => AppError::Invalid(format!(
                "`{shown}` holds something other than files and folders (symbolic links and devices are refused)"
            )),
            StoreError::Manifest(error) => AppError::Invalid(format!("`{shown}`: {error}")),
            other => AppError::Internal(other.into()),
        };
        let (committed, _) = store.push_dir(&folder, &store_name, version_card, Splits::default()).map_err(refused)?;
        let version = store.version(&committed.id).map_err(|error| AppError::Internal(error.into()))?;
        Ok((committed, version))
    })
    .await?;
    let card = match output.card {
        Some(card) => card.to_owned(),
        None => folder_card(state, &version).await?,
    };
    let (cpu_ms, gpu_ms) = state.db.job_charged_ms(job.id).await?;
    let new = NewModelVersion {
        job_id: Some(job.id),
        base_version_id: output.base_version_id,
        inputs: &job.inputs,
        metrics: &last_metrics(state, job.id).await?,
        cpu_ms,
        gpu_ms,
        store_version: &committed.id.to_string(),
        files: version.manifest().files().len() as i64,
        size_bytes: version.manifest().total_bytes() as i64,
        card: &card,
        created_by: output.created_by,
    };
    Ok(state.db.add_model_version(model, &new, actor).await?)
}

/// The `card.md` of a stored version, read from the store (never from the job's folder, where
/// it could be a link), if it is there, UTF-8 and not too long; else no card.
async fn folder_card(state: &AppState, version: &Version) -> AppResult<String> {
    let path = DatasetPath::parse("card.md").map_err(|error| AppError::Internal(anyhow::anyhow!("{error}")))?;
    if version.manifest().file(&path).is_none_or(|entry| entry.size_bytes > CARD_MAX_BYTES as u64) {
        return Ok(String::new());
    }
    let store = state.store.clone();
    let id = version.id();
    let bytes = blocking(move || {
        let mut bytes = Vec::new();
        store.read_file(&id, &path, &mut bytes).map_err(|error| AppError::Internal(error.into()))?;
        Ok(bytes)
    })
    .await?;
    Ok(String::from_utf8(bytes).unwrap_or_default())
}

/// The model, the version a path names and its stored content, if the caller may see them.
pub(crate) async fn version_at(
    state: &AppState,
    caller: &Caller,
    name: &str,
    which: &str,
) -> AppResult<(ModelRow, ModelVersionRow, Version)> {
    let model = visible_model(state, caller, name).await?;
    let versions = state.db.model_versions(model.id).await?;
    let row = find_version(&model, &versions, which)?.clone();
    let version = crate::kit::stored::stored_version(state, &row.store_version).await?;
    Ok((model, row, version))
}

pub async fn version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((name, which)): UrlPath<(String, String)>,
) -> AppResult<Json<Value>> {
    let (model, row, version) = version_at(&state, &caller, &name, &which).await?;
    let mut answer = version_json(&model, &row);
    answer["files"] = version
        .manifest()
        .files()
        .iter()
        .map(
            |file| json!({ "path": file.path.as_str(), "size_bytes": file.size_bytes, "digest": file.digest.to_hex() }),
        )
        .collect();
    Ok(Json(answer))
}

pub async fn file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((name, which, path)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let (model, row, version) = version_at(&state, &caller, &name, &which).await?;
    let path = DatasetPath::parse(&path).map_err(|error| AppError::NotFound(error.to_string()))?;
    let entry = version.manifest().file(&path).ok_or_else(|| {
        AppError::NotFound(format!("version {} of model `{}` has no file `{path}`", row.seq, model.name))
    })?;
    Ok(stored::serve_file(&headers, state.store.clone(), entry.clone()))
}
