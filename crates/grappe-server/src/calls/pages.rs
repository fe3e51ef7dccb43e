//! The calls' pages: the list, and a call's page (its text and criteria in the reader's
//! language, its envelope and dates; the reader's applications and the form to apply; every
//! application for the call's managers).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_db::{ApplicationRow, CallRow, now_ms};
use grappe_domain::policy;
use serde::Deserialize;

use crate::calls::{ApplicationBody, Phase, call_for, criteria, new_application};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::Time;
use crate::kit::i18n::{Locale, Tr};
use crate::kit::page::{Chrome, after_form, datetime_local, form_target, not_found_page, parse_datetime_local, render};
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

fn phase_label(tr: &Tr, phase: &str) -> String {
    tr.t(&format!("call-phase-{phase}"))
}

fn deadline(tr: &Tr, call: &CallRow) -> String {
    call.closes_at.map(|at| tr.locale.datetime(at).into_text()).unwrap_or_else(|| tr.t("call-rolling"))
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
    let mut calls = Vec::new();
    for call in state.db.calls(200).await? {
        calls.push(CallCard {
            id: call.id,
            title: title(locale, &call),
            phase: phase_label(&chrome.tr, crate::calls::shown_phase(&state, &call, now).await?),
            envelope: locale.money(call.envelope_cents),
            closes: deadline(&chrome.tr, &call),
        });
    }
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
    updated: Time,
    /// Decided: its letter can be read.
    decided: bool,
}

struct JurorLine {
    name: String,
    organisation: String,
    country: String,
    keywords: String,
    assigned: usize,
    reviewed: usize,
}

struct ConflictLine {
    application: i64,
    juror: String,
    source: String,
    reason: String,
    active: bool,
}

/// One row of the assignment matrix: an application and, per juror, "assigned", "conflict" or
/// "".
struct MatrixRow {
    id: i64,
    title: String,
    cells: Vec<&'static str>,
}

struct RankLine {
    rank: usize,
    id: i64,
    title: String,
    reviews: usize,
    raw: String,
    calibrated: String,
    borda: usize,
    schulze: usize,
    flagged: bool,
    requested: String,
    cumulative: String,
    fits: bool,
    decision: String,
    /// Not decided yet: the form offers it, with what was asked.
    undecided: bool,
    requested_euros: i64,
    requested_gpu_hours: i64,
}

/// What the call's managers see.
struct ManagerView {
    jurors: Vec<JurorLine>,
    conflicts: Vec<ConflictLine>,
    matrix: Vec<MatrixRow>,
    juror_names: Vec<String>,
    ranking: Vec<RankLine>,
    ranking_svg: Option<String>,
    may_assign: bool,
    /// Whether decisions may be taken now (the call closed, or a rolling one).
    may_decide: bool,
    /// For the conflict form: the applications and the jurors, as (id, label).
    application_options: Vec<(i64, String)>,
    juror_options: Vec<(i64, String)>,
    /// The dates as the form shows them (`datetime-local`, UTC); none once decided.
    dates: Option<[String; 3]>,
}

struct CriterionField {
    key: String,
    name: String,
    score: String,
    justification: String,
}

/// An application assigned to the reader, a juror, with their review so far.
struct ToReview {
    id: i64,
    title: String,
    organisation: String,
    summary: String,
    fields: Vec<CriterionField>,
    confidence: i64,
    done: bool,
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
    opens: Time,
    closes: String,
    criteria: Vec<CriterionLine>,
    signed_in: bool,
    manager: bool,
    applications: Vec<ApplicationLine>,
    manage: Option<ManagerView>,
    to_review: Vec<ToReview>,
    reviewing: bool,
    scale: Vec<i64>,
}

fn line(locale: Locale, application: &ApplicationRow, decided: &[i64]) -> ApplicationLine {
    ApplicationLine {
        id: application.id,
        title: application.title.clone(),
        organisation: application.organisation.clone(),
        requested: locale.money(application.requested_cents),
        gpu_hours: locale.integer(application.requested_gpu_hours),
        version: application.version,
        updated: locale.datetime(application.updated_at),
        decided: decided.contains(&application.id),
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
    let decided: Vec<i64> = state.db.decisions(call.id).await?.iter().map(|d| d.application_id).collect();
    let manage = if manager { Some(manager_view(&state, &call, &chrome.tr).await?) } else { None };
    let (reviewing, to_review) = match caller.actor.user_id() {
        Some(user) => juror_view(&state, &call, user, locale).await?,
        None => (false, Vec::new()),
    };
    let page = CallPage {
        manage,
        to_review,
        reviewing,
        scale: (0..=call.scale_max).collect(),
        title: title(locale, &call),
        text: grappe_dataset::render_markdown(locale.pick(&call.text_fr, &call.text_en)),
        phase: phase_label(&chrome.tr, crate::calls::shown_phase(&state, &call, now_ms()).await?),
        open: phase == Phase::Open,
        envelope: locale.money(call.envelope_cents),
        opens: locale.datetime(call.opens_at),
        closes: deadline(&chrome.tr, &call),
        criteria: criteria(&call)
            .into_iter()
            .map(|c| CriterionLine { name: locale.pick(&c.fr, &c.en).to_owned(), weight: locale.trimmed(c.weight, 2) })
            .collect(),
        signed_in: caller.actor.user_id().is_some(),
        manager,
        applications: applications.iter().map(|a| line(locale, a, &decided)).collect(),
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

async fn manager_view(state: &AppState, call: &CallRow, tr: &Tr) -> Result<ManagerView, AppError> {
    let locale = tr.locale;
    let jurors = state.db.jurors(call.id).await?;
    let applications = state.db.applications(call.id, None).await?;
    let assignments = state.db.assignments(call.id).await?;
    let conflicts = state.db.conflicts(call.id).await?;
    let mut reviewed: std::collections::HashSet<(i64, i64)> = std::collections::HashSet::new();
    for application in &applications {
        for review in state.db.reviews(application.id).await? {
            reviewed.insert((review.application_id, review.user_id));
        }
    }
    let name_of =
        |user: i64| jurors.iter().find(|j| j.user_id == user).map_or_else(|| user.to_string(), |j| j.name.clone());
    let decisions = state.db.decisions(call.id).await?;
    let ranked = crate::calls::decisions::ranking_of(state, call).await?;
    let score = |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| locale.fixed(v, 2));
    let bars: Vec<grappe_chart::Bar> = ranked
        .iter()
        .filter_map(|r| {
            let value = r.calibrated?;
            Some(grappe_chart::Bar {
                label: format!("#{} {}", r.application.id, r.application.title),
                whole: call.scale_max * 1000,
                part: (value.clamp(0.0, call.scale_max as f64) * 1000.0) as i64,
                inner_part: 0,
                value_text: locale.fixed(value, 2),
            })
        })
        .collect();
    let (title, description, legend) =
        (tr.t("call-ranking-chart"), tr.t("call-ranking-chart-desc"), tr.t("call-calibrated"));
    let ranking_svg = (!bars.is_empty()).then(|| {
        grappe_chart::horizontal_bars(&grappe_chart::BarChart {
            title: &title,
            description: &description,
            legend: [&legend, "", ""],
            bars,
        })
    });
    Ok(ManagerView {
        jurors: jurors
            .iter()
            .map(|j| JurorLine {
                name: j.name.clone(),
                organisation: j.organisation.clone(),
                country: j.country.clone(),
                keywords: serde_json::from_str::<Vec<String>>(&j.keywords).unwrap_or_default().join(", "),
                assigned: assignments.iter().filter(|a| a.user_id == j.user_id).count(),
                reviewed: reviewed.iter().filter(|(_, user)| *user == j.user_id).count(),
            })
            .collect(),
        conflicts: conflicts
            .iter()
            .map(|c| ConflictLine {
                application: c.application_id,
                juror: name_of(c.user_id),
                source: tr.t(&format!("call-conflict-{}", c.source)),
                reason: c.reason.clone(),
                active: c.active,
            })
            .collect(),
        matrix: applications
            .iter()
            .map(|a| MatrixRow {
                id: a.id,
                title: a.title.clone(),
                cells: jurors
                    .iter()
                    .map(|j| {
                        if conflicts.iter().any(|c| c.active && c.application_id == a.id && c.user_id == j.user_id) {
                            "conflict"
                        } else if reviewed.contains(&(a.id, j.user_id)) {
                            "reviewed"
                        } else if assignments.iter().any(|p| p.application_id == a.id && p.user_id == j.user_id) {
                            "assigned"
                        } else {
                            ""
                        }
                    })
                    .collect(),
            })
            .collect(),
        juror_names: jurors.iter().map(|j| j.name.clone()).collect(),
        ranking: ranked
            .iter()
            .enumerate()
            .map(|(i, r)| RankLine {
                rank: i + 1,
                id: r.application.id,
                title: r.application.title.clone(),
                reviews: r.reviews,
                raw: score(r.raw),
                calibrated: score(r.calibrated),
                borda: r.borda,
                schulze: r.schulze,
                flagged: r.flagged,
                requested: locale.money(r.application.requested_cents),
                cumulative: locale.money(r.cumulative_cents),
                fits: r.fits,
                undecided: !decisions.iter().any(|d| d.application_id == r.application.id),
                requested_euros: r.application.requested_cents / 100,
                requested_gpu_hours: r.application.requested_gpu_hours,
                decision: decisions.iter().find(|d| d.application_id == r.application.id).map_or_else(
                    String::new,
                    |d| {
                        if d.selected {
                            format!("{} · {}", tr.t("call-selected"), locale.money(d.amount_cents))
                        } else {
                            tr.t("call-not-selected")
                        }
                    },
                ),
            })
            .collect(),
        ranking_svg,
        may_assign: !jurors.is_empty()
            && if call.closes_at.is_none() {
                applications.iter().any(|a| !assignments.iter().any(|p| p.application_id == a.id))
            } else {
                !applications.is_empty() && reviewed.is_empty()
            },
        application_options: applications.iter().map(|a| (a.id, format!("#{} {}", a.id, a.title))).collect(),
        juror_options: jurors.iter().map(|j| (j.user_id, format!("{} ({})", j.name, j.organisation))).collect(),
        dates: decisions.is_empty().then(|| {
            [
                datetime_local(call.opens_at),
                call.closes_at.map(datetime_local).unwrap_or_default(),
                call.review_ends_at.map(datetime_local).unwrap_or_default(),
            ]
        }),
        may_decide: (call.closes_at.is_none() || !matches!(Phase::of(call, now_ms()), Phase::Draft | Phase::Open))
            && ranked.iter().any(|r| !decisions.iter().any(|d| d.application_id == r.application.id)),
    })
}

/// Whether the reader is a juror of the call, and the applications they may review.
async fn juror_view(
    state: &AppState,
    call: &CallRow,
    user: i64,
    locale: Locale,
) -> Result<(bool, Vec<ToReview>), AppError> {
    if !state.db.jurors(call.id).await?.iter().any(|j| j.user_id == user) {
        return Ok((false, Vec::new()));
    }
    let mut to_review = Vec::new();
    for pair in state.db.assignments(call.id).await?.iter().filter(|p| p.user_id == user) {
        if !state.db.may_review(pair.application_id, user).await? {
            continue;
        }
        let Some(application) = state.db.application(pair.application_id).await? else { continue };
        let own = state.db.reviews(application.id).await?.into_iter().find(|r| r.user_id == user);
        let scores: serde_json::Map<String, serde_json::Value> =
            own.as_ref().and_then(|r| serde_json::from_str(&r.scores).ok()).unwrap_or_default();
        let texts: serde_json::Map<String, serde_json::Value> =
            own.as_ref().and_then(|r| serde_json::from_str(&r.justifications).ok()).unwrap_or_default();
        to_review.push(ToReview {
            id: application.id,
            title: application.title.clone(),
            organisation: application.organisation.clone(),
            summary: application.summary.clone(),
            fields: criteria(call)
                .into_iter()
                .map(|c| CriterionField {
                    score: scores
                        .get(&c.key)
                        .and_then(serde_json::Value::as_f64)
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    justification: texts.get(&c.key).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned(),
                    name: locale.pick(&c.fr, &c.en).to_owned(),
                    key: c.key,
                })
                .collect(),
            confidence: own.as_ref().map_or(3, |r| r.confidence),
            done: own.is_some(),
        });
    }
    Ok((true, to_review))
}

pub async fn assign_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<crate::kit::extract::CsrfForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let done = crate::calls::jury::assign_call(&state, &caller, id, None).await;
    after_form(chrome, &format!("/calls/{id}#assignment"), done)
}

pub async fn review_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application)): Path<(String, i64)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let mut scores = serde_json::Map::new();
    let mut justifications = serde_json::Map::new();
    let mut confidence = 0;
    for (key, value) in &form {
        if let Some(criterion) = key.strip_prefix("score.") {
            scores.insert(
                criterion.to_owned(),
                value.parse::<f64>().map_or(serde_json::Value::Null, serde_json::Value::from),
            );
        } else if let Some(criterion) = key.strip_prefix("why.") {
            justifications.insert(criterion.to_owned(), serde_json::Value::from(value.as_str()));
        } else if key == "confidence" {
            confidence = value.parse().unwrap_or(0);
        }
    }
    let body = crate::calls::jury::ReviewBody { scores, justifications, confidence };
    let done = crate::calls::jury::write_review(&state, &caller, application, body).await;
    after_form(chrome, &format!("/calls/{id}#review-{application}"), done)
}

#[derive(Template)]
#[template(path = "letter.html")]
struct LetterPage {
    chrome: Chrome,
    date: String,
    organisation: String,
    call_title: String,
    application_id: i64,
    application_title: String,
    selected: bool,
    amount: String,
    gpu_hours: String,
    project: Option<i64>,
    /// Each review, without its juror's name: "Reviewer 1", and a line per criterion.
    reviews: Vec<(String, Vec<String>)>,
}

/// An application's decision letter, in the reader's language, for its author and the call's
/// managers, once decided: printable (the page's chrome is left out on paper).
pub async fn letter_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application)): Path<(String, i64)>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(id) = id.parse::<i64>().ok() else { return Ok(not_found_page(chrome)) };
    let Ok(call) = call_for(&state, id).await else { return Ok(not_found_page(chrome)) };
    let found = state.db.application(application).await?.filter(|a| {
        a.call_id == call.id
            && (caller.actor.user_id() == Some(a.submitted_by) || policy::may_manage_call(&caller.actor, call.id))
    });
    let Some(application) = found else { return Ok(not_found_page(chrome)) };
    let Some(decision) = state.db.decisions(call.id).await?.into_iter().find(|d| d.application_id == application.id)
    else {
        return Ok(not_found_page(chrome));
    };
    let locale = chrome.tr.locale;
    let criteria = criteria(&call);
    let reviews = state
        .db
        .counted_reviews(application.id)
        .await?
        .iter()
        .enumerate()
        .map(|(i, review)| {
            let scores: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&review.scores).unwrap_or_default();
            let texts: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&review.justifications).unwrap_or_default();
            let lines = criteria
                .iter()
                .map(|c| {
                    let score = scores
                        .get(&c.key)
                        .and_then(serde_json::Value::as_f64)
                        .map_or_else(String::new, |s| locale.trimmed(s, 1));
                    let text = texts.get(&c.key).and_then(serde_json::Value::as_str).unwrap_or_default();
                    let colon = locale.pick(" :", ":");
                    format!("{}{colon} {score} / {} — {text}", locale.pick(&c.fr, &c.en), call.scale_max)
                })
                .collect();
            (format!("{} {}", chrome.tr.t("letter-reviewer"), i + 1), lines)
        })
        .collect();
    let page = LetterPage {
        date: crate::kit::page::iso_date(decision.decided_at),
        organisation: application.organisation.clone(),
        call_title: title(locale, &call),
        application_id: application.id,
        application_title: application.title.clone(),
        selected: decision.selected,
        amount: locale.money(decision.amount_cents),
        gpu_hours: locale.integer(decision.gpu_hours),
        project: decision.project_id,
        reviews,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

/// The managers' decision form: per application, `decide.ID` (`yes`, `no`, or empty to leave
/// it), `amount.ID` in euros and `gpu.ID`.
pub async fn decisions_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (chrome, id) =
        match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, field("csrf").unwrap_or(""), &id) {
            Ok(target) => target,
            Err(page) => return Ok(*page),
        };
    let Ok(call) = call_for(&state, id).await else { return Ok(not_found_page(chrome)) };
    let number = |name: String| field(&name).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0);
    let decisions = form
        .iter()
        .filter_map(|(key, value)| {
            let application = key.strip_prefix("decide.")?.parse::<i64>().ok()?;
            let selected = match value.as_str() {
                "yes" => true,
                "no" => false,
                _ => return None,
            };
            Some(crate::calls::decisions::DecisionBody {
                application,
                selected,
                amount_cents: number(format!("amount.{application}")).saturating_mul(100),
                gpu_hours: number(format!("gpu.{application}")),
            })
        })
        .collect();
    let body = crate::calls::decisions::DecisionsBody { decisions };
    let done = crate::calls::decisions::take_decisions(&state, &caller, &call, body).await;
    after_form(chrome, &format!("/calls/{id}#ranking"), done)
}

#[derive(Deserialize)]
pub struct JurorForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub organisation: String,
    #[serde(default)]
    pub keywords: String,
}

/// A manager invites a juror from the call's page.
pub async fn juror_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<JurorForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let body = crate::calls::jury::NewJurorBody {
        email: form.email.trim().to_owned(),
        country: form.country,
        organisation: form.organisation,
        keywords: items(&form.keywords),
    };
    let done = match call_for(&state, id).await {
        Ok(call) => crate::calls::jury::invite_juror(&state, &caller, &call, body).await,
        Err(error) => Err(error),
    };
    after_form(chrome, &format!("/calls/{id}#jury"), done)
}

#[derive(Deserialize)]
pub struct ConflictForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub application: i64,
    #[serde(default)]
    pub juror: i64,
    /// `add` or `lift`.
    #[serde(default)]
    pub change: String,
    #[serde(default)]
    pub why: String,
}

/// A manager adds or lifts a conflict from the call's page.
pub async fn conflict_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<ConflictForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let body = crate::calls::jury::ConflictBody {
        application: form.application,
        juror: form.juror,
        active: form.change != "lift",
        why: form.why,
    };
    let done = crate::calls::jury::change_conflict(&state, &caller, id, body).await;
    after_form(chrome, &format!("/calls/{id}#conflicts"), done)
}

#[derive(Deserialize)]
pub struct DatesForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub opens: String,
    #[serde(default)]
    pub closes: String,
    #[serde(default)]
    pub review_ends: String,
}

/// A manager moves the call's dates from its page (UTC; an empty deadline makes it rolling).
pub async fn dates_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<DatesForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let optional = |what: &str, text: &str| match text.trim() {
        "" => Ok(None),
        text => parse_datetime_local(text)
            .map(Some)
            .ok_or_else(|| AppError::Invalid(format!("`{what}`: a date and time, YYYY-MM-DDTHH:MM (UTC)"))),
    };
    let done = async {
        let opens = optional("opens", &form.opens)?.ok_or_else(|| AppError::Invalid("`opens`: required".into()))?;
        let body = crate::calls::DatesBody {
            opens_at: opens,
            closes_at: optional("closes", &form.closes)?,
            review_ends_at: optional("review_ends", &form.review_ends)?,
        };
        let call = call_for(&state, id).await?;
        crate::calls::move_dates(&state, &caller, &call, body).await
    }
    .await;
    after_form(chrome, &format!("/calls/{id}#dates"), done)
}
