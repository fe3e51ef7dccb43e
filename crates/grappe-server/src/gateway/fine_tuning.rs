//! Fine-tuning as OpenAI's clients ask for it (`/v1/fine_tuning/jobs`): a project's key asks
//! for a gateway model that serves a registry version (`served.rs`) to be trained further on a
//! JSONL file of examples it sent (`/v1/files`, purpose `fine-tune`).
//!
//! 1. **Quote.** The file is read as the trainer reads it (`grappe_lm::read_examples`): its
//!    examples, the tokens an epoch trains on, and the run's time limit from the recipe's
//!    measured speed. The compute service estimates the job against the project's allocation,
//!    as a `dry_run` submission does: what it may cost at most (its time limit times its
//!    resources) and what would be left. With `"auto_start": false` (Mistral's API) the job
//!    waits, `validated`, until `POST .../start`; else it starts at once.
//! 2. **Run.** A compute job of the project, at normal priority and charged as any job, runs
//!    the recipe's training script (the built-in one: `grappe train language-model --jsonl
//!    --base ...`) with the file and the base version's files as its inputs. Its loss per epoch is read back as the job's events.
//! 3. **Result.** The process holding the ticker lease follows started jobs ([`advance`]): once
//!    the compute job completed, its output becomes the next version of the project's registry
//!    model `BASE-ft-pPROJECT` (lineage: the job, the base version, the file), served as
//!    `ft:BASE:PROJECT[:SUFFIX]:ID` through the gateway for the project's keys.
//!
//! Only models served from a registry version can be fine-tuned here, by their recipe
//! (`served::Recipe`: the built-in language model's, or an administrator's script for any
//! other); an administrator's upstream cannot.

use axum::Extension;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::Response;
use grappe_db::{FineTuneEnd, FineTuneRow, GatewayKeyRow, GatewayModelRow, JobRow, NewFineTune, NewGatewayModel};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::compute::{NewJobBody, Submitted};
use crate::gateway::batches::{answered, file_bytes, number};
use crate::gateway::served::{Recipe, input_of, registry_version, serve_version};
use crate::gateway::{fine_tuning_key, key_of, may_call};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::OpenAiBody;
use crate::kit::state::AppState;

const DEFAULT_EPOCHS: i64 = 3;
const MAX_EPOCHS: i64 = 50;
/// The job's time limit: twice the estimate, and a minute to start and write its output.
const LIMIT_FACTOR: i64 = 2;
const STARTUP_S: i64 = 60;
/// Where the job writes its model, under its working directory (as every recipe does).
const OUTPUT: &str = "model";
/// The most jobs one answer lists.
const MAX_LIST: i64 = 100;
/// How long a fine-tuned model is served once made (one CPU): part of the quote; its project
/// serves it longer with `POST /api/v1/gateway/models/{name}/serve`.
const SERVING_S: i64 = 4 * 3600;
/// The most fine-tuning jobs of a project not ended at once, waiting ones included.
const MAX_OPEN: i64 = 20;

/// The fine-tuned model's name: `ft:BASE:PROJECT:ID`, with the suffix before the id if given;
/// the base of a fine-tuned base is the first one.
fn fine_tuned_name(base: &str, fine_tune: &FineTuneRow) -> String {
    let root = base.strip_prefix("ft:").and_then(|rest| rest.split(':').next()).unwrap_or(base);
    match &fine_tune.suffix {
        Some(suffix) => format!("ft:{root}:{}:{suffix}:{}", fine_tune.project_id, fine_tune.id),
        None => format!("ft:{root}:{}:{}", fine_tune.project_id, fine_tune.id),
    }
}

/// The registry model that holds a project's fine-tuned versions of a base registry model.
fn registry_name(base: &str, project: i64) -> String {
    let suffix = format!("-ft-p{project}");
    format!("{}{suffix}", base.strip_suffix(&suffix).unwrap_or(base))
}

fn fine_tune_json(fine_tune: &FineTuneRow, base: &str) -> Value {
    let seconds = |ms: i64| ms / 1000;
    // `registering` is ours: to OpenAI's clients the job still runs.
    let status = if fine_tune.status == "registering" { "running" } else { fine_tune.status.as_str() };
    json!({
        "object": "fine_tuning.job",
        "id": format!("ftjob-{}", fine_tune.id),
        "model": base,
        "created_at": seconds(fine_tune.created_at),
        "finished_at": fine_tune.finished_at.map(seconds),
        "fine_tuned_model": fine_tune.fine_tuned_model,
        "organization_id": format!("project-{}", fine_tune.project_id),
        "result_files": [],
        "status": status,
        "validation_file": null,
        "training_file": format!("file-{}", fine_tune.training_file_id),
        "hyperparameters": { "n_epochs": fine_tune.epochs, "batch_size": "auto", "learning_rate_multiplier": "auto" },
        "trained_tokens": (fine_tune.status == "succeeded").then_some(fine_tune.trained_tokens),
        "error": fine_tune.error.as_ref().map(|message| json!({ "code": "job_failed", "message": message, "param": null })),
        "seed": fine_tune.seed,
        "estimated_finish": null,
        "method": { "type": "supervised" },
        "quote": serde_json::from_str::<Value>(&fine_tune.quote).unwrap_or(Value::Null),
        "job": fine_tune.job_id,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFineTuneBody {
    pub model: String,
    pub training_file: String,
    #[serde(default)]
    pub validation_file: Option<String>,
    #[serde(default)]
    pub hyperparameters: Option<Hyperparameters>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub seed: Option<i64>,
    /// Mistral's: false quotes the job and waits for `POST .../start`.
    #[serde(default = "yes")]
    pub auto_start: bool,
    #[serde(default)]
    pub method: Option<Value>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    #[serde(default)]
    pub n_epochs: Option<Value>,
    #[serde(default)]
    pub batch_size: Option<Value>,
    #[serde(default)]
    pub learning_rate_multiplier: Option<Value>,
}

/// The epochs asked for: a number from 1 to [`MAX_EPOCHS`] or `auto`; the recipe sets the rest.
fn epochs_of(hyperparameters: Option<&Hyperparameters>) -> AppResult<i64> {
    let Some(hyperparameters) = hyperparameters else {
        return Ok(DEFAULT_EPOCHS);
    };
    let auto = |value: &Option<Value>| value.as_ref().is_none_or(|value| value == "auto");
    if !auto(&hyperparameters.batch_size) || !auto(&hyperparameters.learning_rate_multiplier) {
        return Err(AppError::Invalid(
            "`hyperparameters`: only `n_epochs` is set here; `batch_size` and `learning_rate_multiplier` are the recipe's (\"auto\")".into(),
        ));
    }
    match &hyperparameters.n_epochs {
        None => Ok(DEFAULT_EPOCHS),
        Some(value) if value == "auto" => Ok(DEFAULT_EPOCHS),
        Some(value) => value
            .as_i64()
            .filter(|epochs| (1..=MAX_EPOCHS).contains(epochs))
            .ok_or_else(|| AppError::Invalid(format!("`hyperparameters.n_epochs`: \"auto\" or 1 to {MAX_EPOCHS}"))),
    }
}

/// A suffix for the model's name: up to 40 lowercase letters, digits and `-`.
fn checked_suffix(suffix: Option<String>) -> AppResult<Option<String>> {
    let Some(suffix) = suffix.filter(|suffix| !suffix.is_empty()) else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if suffix.len() > 40 || !suffix.chars().all(allowed) {
        return Err(AppError::Invalid("`suffix`: up to 40 lowercase letters, digits and `-`".into()));
    }
    Ok(Some(suffix))
}

/// A model this key may call and fine-tune: one served from a registry version the key's
/// project may read (public, or its own).
async fn tunable_model(state: &AppState, key: &GatewayKeyRow, name: &str) -> AppResult<(GatewayModelRow, i64)> {
    let model = state.db.gateway_model(name).await?.filter(|model| may_call(key, model)).ok_or_else(|| {
        AppError::NotFound(format!("The model `{name}` does not exist or you do not have access to it."))
    })?;
    let cannot = |why: &str| AppError::Invalid(format!("the model `{name}` cannot be fine-tuned here: {why}"));
    let version_id = model
        .version_id
        .ok_or_else(|| cannot("it is served by an upstream, not from a version of the model registry"))?;
    let (registry, _) = registry_version(state, version_id).await?;
    if !(registry.public || registry.project_id == key.project_id) {
        return Err(cannot("its weights are private to another project"));
    }
    Ok((model, version_id))
}

/// The compute job of a fine-tuning run, with the time limit that bounds its cost.
fn job_body(
    recipe: &Recipe,
    fine_tune_name: &str,
    project: i64,
    epochs: i64,
    seed: i64,
    time_limit_s: i64,
) -> NewJobBody {
    let (epochs, seed) = (epochs.to_string(), seed.to_string());
    NewJobBody {
        name: Some(format!("fine-tune {fine_tune_name}")),
        ..recipe.job(&recipe.train, &[fine_tune_name, &epochs, &seed], project, time_limit_s)
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    OpenAiBody(body): OpenAiBody,
) -> Response {
    answered(create_fine_tune(&state, &caller, &body).await)
}

async fn create_fine_tune(state: &AppState, caller: &Caller, body: &[u8]) -> AppResult<Value> {
    let key = fine_tuning_key(caller)?;
    let body: NewFineTuneBody =
        serde_json::from_slice(body).map_err(|error| AppError::Invalid(format!("the body: {error}")))?;
    if body.validation_file.is_some() {
        return Err(AppError::Invalid("`validation_file`: the built-in recipe reports its training loss only".into()));
    }
    if body.method.as_ref().is_some_and(|method| method["type"] != "supervised") {
        return Err(AppError::Invalid("`method`: only {\"type\": \"supervised\"}".into()));
    }
    let epochs = epochs_of(body.hyperparameters.as_ref())?;
    let suffix = checked_suffix(body.suffix)?;
    let seed = body.seed.unwrap_or(0);
    if !(0..=i64::from(u32::MAX)).contains(&seed) {
        return Err(AppError::Invalid("`seed`: 0 to 4294967295".into()));
    }
    if state.db.open_fine_tunes(key.project_id).await? >= MAX_OPEN {
        return Err(AppError::OverQuota(format!(
            "the project has {MAX_OPEN} fine-tuning jobs not ended, the most; cancel or wait for some"
        )));
    }
    let (model, _) = tunable_model(state, key, &body.model).await?;
    let recipe = Recipe::of(model.recipe.as_deref())?;
    let file_id = number(&body.training_file, "file-")?;
    let file = state
        .db
        .gateway_file(key.project_id, file_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No such File object: {}", body.training_file)))?;
    if file.purpose != "fine-tune" {
        return Err(AppError::Invalid(format!(
            "`training_file`: {} was sent for `{}`, not `fine-tune`",
            body.training_file, file.purpose
        )));
    }
    let bytes = file_bytes(state, &file).await?;
    let examples = read_file_examples(&bytes)?;
    // Every byte of an example and one end per example: the trainer's examples per epoch.
    let tokens_per_epoch = examples.text.len() as i64;
    let trained_tokens = tokens_per_epoch.saturating_mul(epochs);
    let estimated_s = (trained_tokens + recipe.tokens_per_second - 1) / recipe.tokens_per_second;
    let time_limit_s = estimated_s.saturating_mul(LIMIT_FACTOR).saturating_add(STARTUP_S);
    let project = state
        .db
        .project(key.project_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the key's project is missing")))?;
    let mut estimate_body = job_body(&recipe, "quote", project.id, epochs, seed, time_limit_s);
    estimate_body.dry_run = true;
    let Submitted::Estimate(estimate) = crate::compute::queue(state, None, &project, estimate_body, "[]").await? else {
        return Err(AppError::Internal(anyhow::anyhow!("a dry run queued a job")));
    };
    let quote = json!({
        "examples": examples.count,
        "epochs": epochs,
        "trained_tokens": trained_tokens,
        "estimated_duration_s": estimated_s,
        "time_limit_s": time_limit_s,
        "cpus": recipe.cpus,
        "gpus": recipe.gpus,
        "max_cpu_hours": estimate["estimated_cpu_hours"],
        "max_gpu_hours": estimate["estimated_gpu_hours"],
        "serving_hours": SERVING_S / 3600,
        "serving_cpu_hours": (SERVING_S * recipe.cpus) as f64 / 3600.0,
        "serving_gpu_hours": (SERVING_S * recipe.gpus) as f64 / 3600.0,
        "gpu_hours_left_after": estimate["gpu_hours_left_after"],
        "cpu_hours_left_after": estimate["cpu_hours_left_after"],
    });
    let new = NewFineTune {
        project_id: key.project_id,
        key_id: key.id,
        base_model_id: model.id,
        training_file_id: file.id,
        epochs,
        seed,
        suffix: suffix.as_deref(),
        examples: examples.count as i64,
        trained_tokens,
        time_limit_s,
        quote: &quote.to_string(),
    };
    let mut fine_tune = state.db.create_fine_tune(&new).await?;
    if body.auto_start {
        fine_tune = start(state, key, fine_tune).await?;
    }
    Ok(fine_tune_json(&fine_tune, &model.name))
}

/// A fine-tuning file's examples, or why it is not one.
fn read_file_examples(bytes: &[u8]) -> AppResult<grappe_lm::Examples> {
    let text = std::str::from_utf8(bytes).map_err(|_| AppError::Invalid("the file is not UTF-8 text".into()))?;
    grappe_lm::read_examples(text).map_err(|error| AppError::Invalid(format!("the file's {error}")))
}

/// Checks a file sent for fine-tuning as the job will read it, before it is kept.
pub fn check_fine_tuning_file(bytes: &[u8]) -> AppResult<()> {
    read_file_examples(bytes).map(|_| ())
}

/// Starts a validated job: its compute job queued on the project. A start the allocation or the
/// queue refuses leaves it validated.
async fn start(state: &AppState, key: &GatewayKeyRow, fine_tune: FineTuneRow) -> AppResult<FineTuneRow> {
    if !state.db.claim_fine_tune_start(fine_tune.id).await? {
        return Err(AppError::Conflict(format!(
            "fine-tuning job ftjob-{} is {}: only a validated job starts",
            fine_tune.id, fine_tune.status
        )));
    }
    let queued = queue_job(state, key, &fine_tune).await;
    match queued {
        Ok(job) => {
            if !state.db.set_fine_tune_job(fine_tune.id, job.id).await? {
                // Cancelled while its job was being queued: the job goes too.
                state.db.cancel_job(job.id, &format!("key:{}", key.id)).await?;
                state.scheduler_wake.notify_one();
            }
        }
        Err(error) => {
            state.db.unclaim_fine_tune_start(fine_tune.id).await?;
            return Err(error);
        }
    }
    let started = state.db.fine_tune(fine_tune.project_id, fine_tune.id).await?;
    started.ok_or_else(|| AppError::Internal(anyhow::anyhow!("fine-tuning job {} is missing", fine_tune.id)))
}

async fn queue_job(state: &AppState, key: &GatewayKeyRow, fine_tune: &FineTuneRow) -> AppResult<JobRow> {
    let project = state.db.project(key.project_id).await?;
    let project = project.ok_or_else(|| AppError::Internal(anyhow::anyhow!("the key's project is missing")))?;
    let base = gateway_model_by_id(state, fine_tune.base_model_id).await?;
    let version_id = base.version_id.ok_or_else(|| AppError::Internal(anyhow::anyhow!("the base has no version")))?;
    let (_, version) = registry_version(state, version_id).await?;
    let file = state
        .db
        .gateway_file(fine_tune.project_id, fine_tune.training_file_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("file {} is missing", fine_tune.training_file_id)))?;
    let name = fine_tuned_name(&base.name, fine_tune);
    let recipe = Recipe::of(base.recipe.as_deref())?;
    let body = job_body(&recipe, &name, project.id, fine_tune.epochs, fine_tune.seed, fine_tune.time_limit_s);
    let inputs = [input_of("training", &file.store_version), input_of("base", &version.store_version)];
    let inputs = serde_json::to_string(&inputs).map_err(anyhow::Error::from)?;
    match crate::compute::queue(state, None, &project, body, &inputs).await? {
        Submitted::Job(job) => Ok(*job),
        Submitted::Estimate(_) => Err(AppError::Internal(anyhow::anyhow!("a fine-tuning job was only estimated"))),
    }
}

async fn gateway_model_by_id(state: &AppState, id: i64) -> AppResult<GatewayModelRow> {
    let models = state.db.gateway_models().await?;
    models
        .into_iter()
        .find(|model| model.id == id)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("gateway model {id} is missing")))
}

/// The key's project's fine-tuning job named by the path, with its base model's name.
async fn own_fine_tune(state: &AppState, key: &GatewayKeyRow, id: &str) -> AppResult<(FineTuneRow, String)> {
    let number = number(id, "ftjob-")?;
    let fine_tune = state
        .db
        .fine_tune(key.project_id, number)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("No such fine-tuning job: {id}")))?;
    let base = gateway_model_by_id(state, fine_tune.base_model_id).await?;
    Ok((fine_tune, base.name))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Response {
    let listed = async {
        let key = key_of(&caller)?;
        let before = match &query.after {
            Some(after) => number(after, "ftjob-")?,
            None => i64::MAX,
        };
        let limit = query.limit.unwrap_or(20).clamp(1, MAX_LIST);
        let rows = state.db.fine_tunes(key.project_id, before, limit + 1).await?;
        let mut data = Vec::with_capacity(rows.len());
        for fine_tune in rows.iter().take(limit as usize) {
            let base = gateway_model_by_id(&state, fine_tune.base_model_id).await?;
            data.push(fine_tune_json(fine_tune, &base.name));
        }
        Ok::<_, AppError>(json!({ "object": "list", "data": data, "has_more": rows.len() as i64 > limit }))
    };
    answered(listed.await)
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let shown = async {
        let (fine_tune, base) = own_fine_tune(&state, key_of(&caller)?, &id).await?;
        Ok::<_, AppError>(fine_tune_json(&fine_tune, &base))
    };
    answered(shown.await)
}

pub async fn start_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let started = async {
        let key = fine_tuning_key(&caller)?;
        let (fine_tune, base) = own_fine_tune(&state, key, &id).await?;
        let started = start(&state, key, fine_tune).await?;
        Ok::<_, AppError>(fine_tune_json(&started, &base))
    };
    answered(started.await)
}

pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let cancelled = async {
        let key = key_of(&caller)?;
        let (fine_tune, base) = own_fine_tune(&state, key, &id).await?;
        if !state.db.end_fine_tune(fine_tune.id, &FineTuneEnd::Cancelled).await? {
            return Err(AppError::Conflict(format!(
                "fine-tuning job {id} is {}: it can no longer be cancelled",
                fine_tune_json(&fine_tune, &base)["status"].as_str().unwrap_or_default()
            )));
        }
        if let Some(job) = fine_tune.job_id {
            state.db.cancel_job(job, &format!("key:{}", key.id)).await?;
            state.scheduler_wake.notify_one();
        }
        let (cancelled, _) = own_fine_tune(&state, key, &id).await?;
        Ok(fine_tune_json(&cancelled, &base))
    };
    answered(cancelled.await)
}

/// One event of a job, OpenAI's shape.
fn event(fine_tune: &FineTuneRow, seq: usize, at_ms: i64, level: &str, message: String, data: Value) -> Value {
    json!({
        "object": "fine_tuning.job.event",
        "id": format!("ftevent-{}-{seq}", fine_tune.id),
        "created_at": at_ms / 1000,
        "level": level,
        "message": message,
        "data": data,
        "type": if data.is_null() { "message" } else { "metrics" },
    })
}

/// A job's events, newest first, read from its records: its creation and quote, its start, the
/// compute job's loss per epoch, its end.
pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let listed = async {
        let (fine_tune, _) = own_fine_tune(&state, key_of(&caller)?, &id).await?;
        let mut events = vec![event(
            &fine_tune,
            0,
            fine_tune.created_at,
            "info",
            format!(
                "Validated {} examples of file-{}: {} tokens over {} epochs, at most {} s",
                fine_tune.examples,
                fine_tune.training_file_id,
                fine_tune.trained_tokens,
                fine_tune.epochs,
                fine_tune.time_limit_s
            ),
            Value::Null,
        )];
        if let (Some(at), Some(job)) = (fine_tune.started_at, fine_tune.job_id) {
            events.push(event(&fine_tune, 1, at, "info", format!("Queued as compute job {job}"), Value::Null));
            for (i, point) in state.db.job_metrics(job, 1000).await?.iter().filter(|p| p.key == "loss").enumerate() {
                let message = format!("Epoch {}: training loss {:.4}", point.step, point.value);
                let data = json!({ "step": point.step, "train_loss": point.value });
                events.push(event(&fine_tune, 2 + i, point.at, "info", message, data));
            }
        }
        if let (Some(at), Some(model)) = (fine_tune.finished_at, &fine_tune.fine_tuned_model)
            && !crate::gateway::served::is_served(&state, fine_tune.project_id, model).await?
        {
            let message = format!(
                "{model} is not served now: its project serves it with POST /api/v1/gateway/models/{model}/serve"
            );
            events.push(event(&fine_tune, usize::MAX - 1, at, "warn", message, Value::Null));
        }
        if let Some(at) = fine_tune.finished_at {
            let (level, message) = match fine_tune.status.as_str() {
                "succeeded" => {
                    ("info", format!("The job succeeded: {}", fine_tune.fine_tuned_model.as_deref().unwrap_or("")))
                }
                "cancelled" => ("warn", "The job was cancelled".to_owned()),
                _ => ("error", format!("The job failed: {}", fine_tune.error.as_deref().unwrap_or(""))),
            };
            events.push(event(&fine_tune, usize::MAX, at, level, message, Value::Null));
        }
        events.reverse();
        Ok::<_, AppError>(json!({ "object": "list", "data": events, "has_more": false }))
    };
    answered(listed.await)
}

/// The checkpoint of a job that succeeded: the registry version it made.
pub async fn checkpoints(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let listed = async {
        let (fine_tune, _) = own_fine_tune(&state, key_of(&caller)?, &id).await?;
        let mut data = Vec::new();
        if let (Some(version_id), Some(model)) = (fine_tune.result_version_id, &fine_tune.fine_tuned_model) {
            let (registry, version) = registry_version(&state, version_id).await?;
            let metrics: Value = serde_json::from_str(&version.metrics).unwrap_or(Value::Null);
            data.push(json!({
                "object": "fine_tuning.job.checkpoint",
                "id": format!("ftckpt-{version_id}"),
                "created_at": version.created_at / 1000,
                "fine_tuned_model_checkpoint": model,
                "fine_tuning_job_id": id,
                "step_number": fine_tune.epochs,
                "metrics": { "train_loss": metrics["loss"] },
                "registry_version": format!("{}@{}", registry.name, version.seq),
            }));
        }
        Ok::<_, AppError>(json!({ "object": "list", "data": data, "has_more": false }))
    };
    answered(listed.await)
}

/// Follows every started job, in the process holding the ticker lease: running when its compute
/// job runs; once that completed, its output registered and served; failed when it did not.
pub async fn advance(state: &AppState) -> AppResult<()> {
    for fine_tune in state.db.active_fine_tunes().await? {
        let Some(job_id) = fine_tune.job_id else {
            // Claimed, and the server stopped before its job was queued.
            if fine_tune.started_at.is_some_and(|at| grappe_db::now_ms() - at > 60_000) {
                let error = "the server stopped while starting the job; create it again";
                state.db.end_fine_tune(fine_tune.id, &FineTuneEnd::Failed { error }).await?;
            }
            continue;
        };
        let Some(job) = state.db.job(job_id).await? else { continue };
        match job.state.as_str() {
            "running" if fine_tune.status == "queued" => state.db.fine_tune_running(fine_tune.id).await?,
            "completed" => match publish(state, &fine_tune, &job).await {
                Ok(()) => {}
                // Ours (the database, the store): tried again at the next tick.
                Err(error @ (AppError::Internal(_) | AppError::Unavailable(_) | AppError::Timeout(_))) => {
                    tracing::warn!(fine_tune = fine_tune.id, error = %error, "registering a fine-tuned model failed");
                }
                Err(error) => {
                    let error = format!("its output could not be registered: {error}");
                    state.db.end_fine_tune(fine_tune.id, &FineTuneEnd::Failed { error: &error }).await?;
                }
            },
            ended if crate::compute::terminal(ended) => {
                let reason = if job.reason.is_empty() { String::new() } else { format!(" ({})", job.reason) };
                let error = format!("its compute job {} ended {ended}{reason}", job.id);
                state.db.end_fine_tune(fine_tune.id, &FineTuneEnd::Failed { error: &error }).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A completed job's output as the next version of the project's registry model of the base,
/// served as the fine-tuned model. Each step is done once, so that a run cut short by a restart
/// is finished by the next.
async fn publish(state: &AppState, fine_tune: &FineTuneRow, job: &JobRow) -> AppResult<()> {
    if !state.db.claim_fine_tune_registration(fine_tune.id).await? {
        return Ok(());
    }
    let base = gateway_model_by_id(state, fine_tune.base_model_id).await?;
    let base_version_id =
        base.version_id.ok_or_else(|| AppError::Internal(anyhow::anyhow!("the base has no version")))?;
    let (base_registry, _) = registry_version(state, base_version_id).await?;
    let actor = format!("key:{}", fine_tune.key_id);
    let mut registry_name = registry_name(&base_registry.name, fine_tune.project_id);
    let found = state.db.model(&registry_name).await?;
    if found.as_ref().is_some_and(|model| model.project_id != fine_tune.project_id) {
        // Taken by another project (names are first come): never add to its versions.
        let unguessable = &crate::kit::caller::new_secret()[..8];
        registry_name = format!("{registry_name}-{unguessable}");
    }
    let registry = match found.filter(|model| model.project_id == fine_tune.project_id) {
        Some(model) => model,
        None => {
            crate::models::store_name(&registry_name)?;
            let card = format!(
                "# {registry_name}\n\nVersions of `{}` fine-tuned by project {} through the gateway \
                 (`/v1/fine_tuning/jobs`).\n",
                base_registry.name, fine_tune.project_id
            );
            let new = grappe_db::NewModel {
                name: &registry_name,
                project_id: fine_tune.project_id,
                public: false,
                card: &card,
                created_by: None,
            };
            state.db.create_model(&new, &actor).await?
        }
    };
    let versions = state.db.model_versions(registry.id).await?;
    let version = match versions.into_iter().find(|version| version.job_id == Some(job.id)) {
        Some(version) => version,
        None => {
            let output = crate::models::JobOutput {
                job,
                path: OUTPUT,
                base_version_id: Some(base_version_id),
                card: None,
                created_by: None,
            };
            crate::models::record_job_output(state, &registry, &output, &actor).await?
        }
    };
    let name = fine_tuned_name(&base.name, fine_tune);
    let new = NewGatewayModel {
        name: &name,
        upstream: None,
        project_id: Some(fine_tune.project_id),
        input_gpu_ms_per_1k: base.input_gpu_ms_per_1k,
        output_gpu_ms_per_1k: base.output_gpu_ms_per_1k,
        max_output_tokens: base.max_output_tokens,
        max_concurrency: base.max_concurrency,
        version_id: Some(version.id),
        // Fine-tuned and served again as its base is.
        recipe: base.recipe.as_deref(),
    };
    let project = state.db.project(fine_tune.project_id).await?;
    let project =
        project.ok_or_else(|| AppError::Internal(anyhow::anyhow!("project {} is missing", fine_tune.project_id)))?;
    match serve_version(state, &new, &project, job.user_id, &version, SERVING_S, &actor).await {
        // Registered all the same: the project serves it later (`POST .../serve`).
        Ok(_) | Err(AppError::Conflict(_)) => {}
        Err(error) => return Err(error),
    }
    state.db.end_fine_tune(fine_tune.id, &FineTuneEnd::Succeeded { model: &name, version_id: version.id }).await?;
    Ok(())
}
