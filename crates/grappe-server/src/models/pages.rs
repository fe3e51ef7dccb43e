//! The model registry's pages: the list of models the caller may see, and a model's page (its
//! versions, each with its lineage: the job, its base version, the dataset versions read, the
//! compute charged, the last metrics; and the latest card).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_db::{ModelRow, ModelVersionRow};
use grappe_domain::policy;
use serde_json::Value;

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::i18n::Locale;
use crate::kit::page::{Chrome, iso_date, message_page, render};
use crate::kit::state::AppState;
use crate::models::{LIST_LIMIT, hours, visible_model};

struct ModelLine {
    name: String,
    public: bool,
    project: i64,
    created: String,
}

fn line_of(model: &ModelRow) -> ModelLine {
    ModelLine {
        name: model.name.clone(),
        public: model.public,
        project: model.project_id,
        created: iso_date(model.created_at),
    }
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    chrome: Chrome,
    models: Vec<ModelLine>,
}

pub async fn models_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> AppResult<Response> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let projects = policy::projects_used_by(&caller.actor);
    let models = state.db.list_models(projects.as_deref(), LIST_LIMIT).await?;
    Ok(render(&ModelsPage { chrome, models: models.iter().map(line_of).collect() }, StatusCode::OK))
}

struct Input {
    dataset: String,
    short_id: String,
}

struct Metric {
    key: String,
    value: String,
}

struct VersionView {
    seq: i64,
    date: String,
    job: Option<i64>,
    base: Option<(String, i64)>,
    inputs: Vec<Input>,
    metrics: Vec<Metric>,
    cpu_hours: String,
    gpu_hours: String,
    files: String,
    size: String,
}

/// A figure with up to four decimals (metrics near 0, a few seconds of compute in hours).
fn view_of(locale: Locale, row: &ModelVersionRow) -> VersionView {
    let inputs: Value = serde_json::from_str(&row.inputs).unwrap_or(Value::Null);
    let metrics: Value = serde_json::from_str(&row.metrics).unwrap_or(Value::Null);
    VersionView {
        seq: row.seq,
        date: iso_date(row.created_at),
        job: row.job_id,
        base: row.base.clone(),
        inputs: inputs
            .as_array()
            .into_iter()
            .flatten()
            .map(|input| Input {
                dataset: input["dataset"].as_str().unwrap_or("").to_owned(),
                short_id: input["version"].as_str().unwrap_or("").chars().take(12).collect(),
            })
            .collect(),
        metrics: metrics
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, value)| Metric {
                key: key.clone(),
                value: value.as_f64().map_or_else(String::new, |v| locale.trimmed(v, 4)),
            })
            .collect(),
        cpu_hours: locale.trimmed(hours(row.cpu_ms), 4),
        gpu_hours: locale.trimmed(hours(row.gpu_ms), 4),
        files: locale.integer(row.files),
        size: locale.bytes(row.size_bytes.max(0) as u64),
    }
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    chrome: Chrome,
    model: ModelLine,
    versions: Vec<VersionView>,
    card_html: String,
    may_register: bool,
    register_command: String,
}

pub async fn model_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
) -> AppResult<Response> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let model = match visible_model(&state, &caller, &name).await {
        Ok(model) => model,
        Err(AppError::NotFound(_)) => {
            let message = chrome.tr.t("models-not-found");
            return Ok(message_page(chrome, StatusCode::NOT_FOUND, message));
        }
        Err(error) => return Err(error),
    };
    let rows = state.db.model_versions(model.id).await?;
    let locale = chrome.tr.locale;
    let page = ModelPage {
        // The latest version's card that has one, else the model's.
        card_html: grappe_dataset::render_markdown(
            rows.iter().map(|row| &row.card).find(|card| !card.is_empty()).unwrap_or(&model.card),
        ),
        versions: rows.iter().map(|row| view_of(locale, row)).collect(),
        may_register: policy::may_use_project(&caller.actor, model.project_id),
        register_command: format!("grappe model register {} --job JOB --path out/model --card CARD.md", model.name),
        model: line_of(&model),
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}
