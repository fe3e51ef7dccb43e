//! The calls' pages: the list, and a call's page (its text and criteria in the reader's
//! language, its envelope and dates; the reader's applications and the form to apply; every
//! application for the call's managers).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_db::{ApplicationRow, CallRow, now_ms};
use grappe_domain::money::{Cents, format_short};
use grappe_domain::policy;
use serde::Deserialize;

use crate::calls::{ApplicationBody, Phase, call_for, criteria, new_application};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::{Locale, Tr};
use crate::kit::page::{Chrome, after_form, form_target, iso_datetime, not_found_page, render};
use crate::kit::state::AppState;

struct CallCard {
    id: i64,
    title: String,
    phase: String,
    envelope: String,
    closes: String,
}

#[derive(Template)]
#[template(path = "calls.html")]
struct ListPage {
    chrome: Chrome,
    calls: Vec<CallCard>,
}

fn title(locale: Locale, call: &CallRow) -> String {
    locale.pick(&call.title_fr, &call.title_en).to_owned()
}

fn money(locale: Locale, cents: i64) -> String {
    format_short(Cents::new(cents), locale.decimal_separator())
}

fn phase_label(tr: &Tr, phase: Phase) -> String {
    tr.t(&format!("call-phase-{}", phase.as_str()))
}

fn deadline(tr: &Tr, call: &CallRow) -> String {
    call.closes_at.map(iso_datetime).unwrap_or_else(|| tr.t("call-rolling"))
}

pub async fn list_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let locale = chrome.tr.locale;
    let now = now_ms();
    let calls = state
        .db
        .calls(200)
        .await?
        .iter()
        .map(|call| CallCard {
            id: call.id,
            title: title(locale, call),
            phase: phase_label(&chrome.tr, Phase::of(call, now)),
            envelope: money(locale, call.envelope_cents),
            closes: deadline(&chrome.tr, call),
        })
        .collect();
    Ok(render(&ListPage { chrome, calls }, StatusCode::OK))
}

struct CriterionLine {
    name: String,
    weight: String,
}

struct ApplicationLine {
    id: i64,
    title: String,
    organisation: String,
    requested: String,
    gpu_hours: String,
    version: i64,
    updated: String,
}

#[derive(Template)]
#[template(path = "call.html")]
struct CallPage {
    chrome: Chrome,
    call: CallRow,
    title: String,
    text: String,
    phase: String,
    open: bool,
    envelope: String,
    opens: String,
    closes: String,
    criteria: Vec<CriterionLine>,
    signed_in: bool,
    manager: bool,
    applications: Vec<ApplicationLine>,
}

fn line(locale: Locale, application: &ApplicationRow) -> ApplicationLine {
    ApplicationLine {
        id: application.id,
        title: application.title.clone(),
        organisation: application.organisation.clone(),
        requested: money(locale, application.requested_cents),
        gpu_hours: locale.integer(application.requested_gpu_hours),
        version: application.version,
        updated: iso_datetime(application.updated_at),
    }
}

pub async fn call_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(id) = id.parse::<i64>().ok() else { return Ok(not_found_page(chrome)) };
    let Ok(call) = call_for(&state, id).await else { return Ok(not_found_page(chrome)) };
    let locale = chrome.tr.locale;
    let phase = Phase::of(&call, now_ms());
    let manager = policy::may_manage_call(&caller.actor, call.id);
    let applications = match caller.actor.user_id() {
        Some(user) => state.db.applications(call.id, if manager { None } else { Some(user) }).await?,
        None if manager => state.db.applications(call.id, None).await?,
        None => Vec::new(),
    };
    let page = CallPage {
        title: title(locale, &call),
        text: grappe_dataset::render_markdown(locale.pick(&call.text_fr, &call.text_en)),
        phase: phase_label(&chrome.tr, phase),
        open: phase == Phase::Open,
        envelope: money(locale, call.envelope_cents),
        opens: iso_datetime(call.opens_at),
        closes: deadline(&chrome.tr, &call),
        criteria: criteria(&call)
            .into_iter()
            .map(|c| CriterionLine { name: locale.pick(&c.fr, &c.en).to_owned(), weight: locale.trimmed(c.weight, 2) })
            .collect(),
        signed_in: caller.actor.user_id().is_some(),
        manager,
        applications: applications.iter().map(|a| line(locale, a)).collect(),
        call,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
pub struct ApplyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    partners: String,
    #[serde(default)]
    keywords: String,
    /// Euros, as people write them.
    #[serde(default)]
    requested_euros: i64,
    #[serde(default)]
    requested_gpu_hours: i64,
}

/// A comma-separated list, its items trimmed, the empty ones left out.
fn items(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

pub async fn apply_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<ApplyForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let Ok(call) = call_for(&state, id).await else { return Ok(not_found_page(chrome)) };
    let body = ApplicationBody {
        organisation: form.organisation,
        title: form.title,
        summary: form.summary,
        partners: items(&form.partners),
        keywords: items(&form.keywords),
        requested_cents: form.requested_euros.saturating_mul(100),
        requested_gpu_hours: form.requested_gpu_hours,
        version: None,
    };
    let done = new_application(&state, &caller, &call, body).await;
    after_form(chrome, &format!("/calls/{id}#applications"), done)
}
