//! The gateway's page: what it is and how to call it (the base URL for OpenAI's clients), the
//! models with their prices and whether they are served now; for a project's members, its
//! keys (created here, shown once, revoked here), its usage over the last 30 days as a chart,
//! and a playground that streams a model's answer, paid by one of the project's keys.

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_db::{DAY_MS, GatewayKeyRow, now_ms};
use grappe_domain::policy;
use serde::Deserialize;
use serde_json::json;

use crate::gateway::{NewKeyBody, issue_key, may_call, proxy};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::Locale;
use crate::kit::i18n::Time;
use crate::kit::page::{Chrome, after_form, base_url, form_target, iso_date, message_page, render};
use crate::kit::state::AppState;

struct ModelLine {
    name: String,
    owner: String,
    input_price: String,
    output_price: String,
    max_tokens: String,
    serving: bool,
}

struct KeyLine {
    id: i64,
    name: String,
    prefix: String,
    fine_tuning: bool,
    created: Time,
    revoked: Option<Time>,
}

struct ProjectView {
    id: i64,
    name: String,
    keys: Vec<KeyLine>,
    requests: String,
    prompt_tokens: String,
    completion_tokens: String,
    gpu_seconds: String,
    /// GPU-hours left of the allocation, after what requests in flight hold.
    left_gpu_hours: String,
    /// The project's limits, as the reader's words: "60 / min · 1 000 / j", or none.
    limits: Vec<String>,
    chart: Option<String>,
    /// Watt-hours over the 30 days, estimated (`energy.rs`); none where nothing was measured.
    energy_wh: Option<String>,
    fine_tunes: Vec<FineTuneLine>,
}

/// A fine-tuning job of the project, as its table shows it.
struct FineTuneLine {
    id: String,
    base: String,
    /// The status, in the reader's words.
    status: String,
    /// The fine-tuned model, once it succeeded.
    model: Option<String>,
    tokens: String,
    created: Time,
}

#[derive(Template)]
#[template(path = "gateway.html")]
struct GatewayPage {
    chrome: Chrome,
    base_url: String,
    models: Vec<ModelLine>,
    projects: Vec<ProjectView>,
    /// For the playground: (key id, "project · key") and the models one may call.
    playground_keys: Vec<(i64, String)>,
    playground_models: Vec<String>,
}

/// The projects whose gateway the caller sees: those it is a member of.
async fn member_projects(state: &AppState, caller: &Caller) -> Result<Vec<grappe_db::ProjectRow>, AppError> {
    if caller.actor.user_id().is_none() && !caller.actor.is_admin() {
        return Ok(Vec::new());
    }
    Ok(state.db.list_projects().await?.into_iter().filter(|p| policy::may_use_project(&caller.actor, p.id)).collect())
}

fn price(locale: Locale, gpu_ms_per_1k: i64) -> String {
    // GPU-seconds per million tokens reads better than milliseconds per thousand.
    locale.trimmed(gpu_ms_per_1k as f64, 3)
}

async fn project_view(
    state: &AppState,
    locale: Locale,
    tr: &crate::kit::i18n::Tr,
    project: &grappe_db::ProjectRow,
) -> Result<ProjectView, AppError> {
    let keys = state
        .db
        .gateway_keys(project.id)
        .await?
        .into_iter()
        .map(|key| KeyLine {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            fine_tuning: key.fine_tuning,
            created: locale.datetime(key.created_at),
            revoked: key.revoked_at.map(|at| locale.datetime(at)),
        })
        .collect();
    let since = now_ms() - 30 * DAY_MS;
    let usage: Vec<_> =
        state.db.gateway_usage(project.id, 10_000).await?.into_iter().filter(|u| u.created_at >= since).collect();
    let (prompt, completion, gpu_ms) =
        usage.iter().fold((0, 0, 0), |(p, c, g), u| (p + u.prompt_tokens, c + u.completion_tokens, g + u.gpu_ms));
    // Tokens per day, oldest first, for the chart.
    let mut days: Vec<(String, i64)> = Vec::new();
    for record in usage.iter().rev() {
        let day = iso_date(record.created_at);
        match days.last_mut() {
            Some((last, tokens)) if *last == day => *tokens += record.prompt_tokens + record.completion_tokens,
            _ => days.push((day, record.prompt_tokens + record.completion_tokens)),
        }
    }
    let most = days.iter().map(|(_, tokens)| *tokens).max().unwrap_or(0);
    let (title, description, legend) = (tr.t("gateway-chart"), tr.t("gateway-chart-desc"), tr.t("gateway-tokens"));
    let chart = (!days.is_empty()).then(|| {
        grappe_chart::horizontal_bars(&grappe_chart::BarChart {
            title: &title,
            description: &description,
            legend: [&legend, "", ""],
            bars: days
                .iter()
                .map(|(day, tokens)| grappe_chart::Bar {
                    label: day.clone(),
                    whole: most.max(1),
                    part: *tokens,
                    inner_part: 0,
                    value_text: locale.integer(*tokens),
                })
                .collect(),
        })
    });
    let energy = crate::gateway::energy::Energy::of(state, &usage).await?;
    let measured: Vec<f64> = usage.iter().filter_map(|u| energy.of_request(u)).collect();
    let energy_wh = (!measured.is_empty()).then(|| locale.trimmed(measured.iter().sum(), 3));
    let models = state.db.gateway_models().await?;
    let fine_tunes = state
        .db
        .fine_tunes(project.id, i64::MAX, 20)
        .await?
        .into_iter()
        .map(|fine_tune| FineTuneLine {
            id: format!("ftjob-{}", fine_tune.id),
            base: models.iter().find(|m| m.id == fine_tune.base_model_id).map(|m| m.name.clone()).unwrap_or_default(),
            status: tr.t(&format!("gateway-ft-{}", fine_tune.status)),
            model: fine_tune.fine_tuned_model,
            tokens: locale.integer(fine_tune.trained_tokens),
            created: locale.datetime(fine_tune.created_at),
        })
        .collect();
    let (_, reserved) = state.db.gateway_reserved(project.id).await?;
    let left_ms = (project.gpu_hours * 3_600_000 - project.used.gpu_ms - reserved).max(0);
    let limits = state.db.project_gateway_limits(project.id).await?;
    let limits = [
        (limits.requests_per_minute, "gateway-requests-per-minute"),
        (limits.tokens_per_minute, "gateway-tokens-per-minute"),
        (limits.requests_per_day, "gateway-requests-per-day"),
        (limits.tokens_per_day, "gateway-tokens-per-day"),
    ]
    .into_iter()
    .filter_map(|(limit, label)| limit.map(|limit| format!("{} {}", locale.integer(limit), tr.t(label))))
    .collect();
    Ok(ProjectView {
        left_gpu_hours: locale.trimmed(left_ms as f64 / 3_600_000.0, 3),
        limits,
        id: project.id,
        name: project.name.clone(),
        keys,
        requests: locale.integer(usage.len() as i64),
        prompt_tokens: locale.integer(prompt),
        completion_tokens: locale.integer(completion),
        gpu_seconds: locale.trimmed(gpu_ms as f64 / 1000.0, 3),
        chart,
        energy_wh,
        fine_tunes,
    })
}

pub async fn gateway_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let locale = chrome.tr.locale;
    let projects = member_projects(&state, &caller).await?;
    // The public models and the reader's projects' own.
    let visible: Vec<_> = state
        .db
        .gateway_models()
        .await?
        .into_iter()
        .filter(|model| model.project_id.is_none_or(|owner| projects.iter().any(|p| p.id == owner)))
        .collect();
    let mut models = Vec::new();
    for model in &visible {
        let owner = match model.project_id {
            None => chrome.tr.t("gateway-public"),
            Some(owner) => projects.iter().find(|p| p.id == owner).map(|p| p.name.clone()).unwrap_or_default(),
        };
        models.push(ModelLine {
            name: model.name.clone(),
            owner,
            input_price: price(locale, model.input_gpu_ms_per_1k),
            output_price: price(locale, model.output_gpu_ms_per_1k),
            max_tokens: locale.integer(model.max_output_tokens),
            serving: !state.db.model_upstreams(model).await?.is_empty(),
        });
    }
    let mut views = Vec::new();
    let mut playground_keys = Vec::new();
    for project in &projects {
        let view = project_view(&state, locale, &chrome.tr, project).await?;
        for key in view.keys.iter().filter(|key| key.revoked.is_none()) {
            playground_keys.push((key.id, format!("{} · {}", project.name, key.name)));
        }
        views.push(view);
    }
    let playground_models = visible.iter().map(|model| model.name.clone()).collect();
    let base_url = format!("{}/v1", base_url(&state, &headers));
    let page = GatewayPage { chrome, base_url, models, projects: views, playground_keys, playground_models };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    /// The checkbox: present when ticked.
    #[serde(default)]
    pub fine_tuning: Option<String>,
}

#[derive(Template)]
#[template(path = "gateway_key.html")]
struct NewKeyPage {
    chrome: Chrome,
    project: String,
    name: String,
    key: String,
    base_url: String,
}

/// A key created from the page, shown once on the page that answers.
pub async fn key_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<KeyForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let body = NewKeyBody { name: form.name, limits: None, fine_tuning: form.fine_tuning.is_some() };
    match issue_key(&state, &caller, id, body).await {
        Ok((row, key)) => {
            let project = state.db.project(row.project_id).await?.map(|p| p.name).unwrap_or_default();
            let base_url = format!("{}/v1", base_url(&state, &headers));
            Ok(render(&NewKeyPage { chrome, project, name: row.name, key, base_url }, StatusCode::CREATED))
        }
        Err(error) => after_form(chrome, "/ai#keys", Err::<(), _>(error)),
    }
}

pub async fn revoke_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, key_id)): Path<(String, i64)>,
    Form(form): Form<crate::kit::extract::CsrfForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let done = crate::gateway::revoke(&state, &caller, id, key_id).await;
    after_form(chrome, "/ai#keys", done)
}

#[derive(Deserialize)]
pub struct PlaygroundForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    /// Set by the page's script: answer as a stream of events, which it shows as they come.
    #[serde(default)]
    pub stream: Option<String>,
}

#[derive(Template)]
#[template(path = "gateway_answer.html")]
struct AnswerPage {
    chrome: Chrome,
    model: String,
    prompt: String,
    answer: String,
}

/// The playground: a prompt to a model, paid by one of the caller's projects' keys; streamed
/// to the page's script, or answered whole on a page without it.
pub async fn playground(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<PlaygroundForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    if !crate::kit::caller::check_csrf(&caller, &form.csrf) {
        let message = chrome.tr.t("login-csrf");
        return Ok(message_page(chrome, StatusCode::FORBIDDEN, message));
    }
    let key = playground_key(&state, &caller, form.key).await;
    let stream = form.stream.is_some();
    let answered = async {
        let key = key?;
        let model = state.db.gateway_model(&form.model).await?.filter(|model| may_call(&key, model));
        let model = model.ok_or_else(|| AppError::NotFound(format!("no model `{}` for this key", form.model)))?;
        let prompt = crate::calls::text_field("prompt", &form.prompt, 8000)?;
        let body = json!({ "model": model.name, "messages": [{ "role": "user", "content": prompt }], "max_tokens": model.max_output_tokens.min(256), "stream": stream });
        proxy::chat_as(&state, key, Bytes::from(body.to_string())).await
    }
    .await;
    match answered {
        Ok(response) if stream || !response.status().is_success() => Ok(response),
        Ok(response) => {
            let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.unwrap_or_default();
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let answer = value["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
            Ok(render(&AnswerPage { chrome, model: form.model, prompt: form.prompt, answer }, StatusCode::OK))
        }
        Err(error) if stream => Ok(error.openai_response()),
        Err(error) => after_form(chrome, "/ai#playground", Err::<(), _>(error)),
    }
}

/// A live key of a project the caller is a member of.
async fn playground_key(state: &AppState, caller: &Caller, id: i64) -> Result<GatewayKeyRow, AppError> {
    for project in member_projects(state, caller).await? {
        if let Some(key) =
            state.db.gateway_keys(project.id).await?.into_iter().find(|k| k.id == id && k.revoked_at.is_none())
        {
            return Ok(key);
        }
    }
    Err(AppError::NotFound("choose a live key of one of your projects".into()))
}
