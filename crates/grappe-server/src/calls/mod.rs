//! Calls for proposals and the applications to them (the first half of the calls-and-jury
//! module: jurors, conflicts, assignment, reviews and decisions come next). A call has weighted
//! criteria on one score scale, a budget envelope on a programme budget line, and dates; an
//! application is written by a signed-in user for an organisation, saved whole as a new version
//! each time, and locked by the server at the deadline. Applicants see their own applications,
//! the call's managers all of them; anyone else gets 404.

pub mod application_page;
pub mod attachments;
pub mod decisions;
pub mod discussion;
pub mod jury;
pub mod pages;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{
    ApplicationFields, ApplicationRow, CallDates, CallRow, NewCall, NotSaved, call_takes_applications, now_ms,
};
use grappe_domain::money::{Cents, format_short};
use grappe_domain::policy::{self, Access};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::{Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Delete, Get, Post};
    vec![
        route(Api, Get, "/api/v1/calls", Public, "Calls for proposals, newest first", list),
        route(Api, Post, "/api/v1/calls", SignedIn, "Open a call (call managers)", create).body("NewCall"),
        route(Api, Get, "/api/v1/calls/{id}", Public, "A call: criteria, envelope, dates, phase", show),
        route(
            Api,
            Post,
            "/api/v1/calls/{id}/dates",
            SignedIn,
            "Move the call's dates, until its first decision (its managers)",
            dates,
        )
        .body("CallDates"),
        route(Api, Post, "/api/v1/calls/{id}/applications", SignedIn, "Apply to a call", apply).body("Application"),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/applications",
            SignedIn,
            "A call's applications: the caller's own, or all for its managers",
            applications,
        ),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}",
            SignedIn,
            "An application (its author, the call's managers)",
            application,
        ),
        route(
            Api,
            Post,
            "/api/v1/applications/{id}",
            SignedIn,
            "Save a new version of an application, until the deadline (its author)",
            update,
        )
        .body("Application"),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}/versions",
            SignedIn,
            "Every saved version of an application",
            versions,
        ),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}/attachments",
            SignedIn,
            "An application's attachments (whoever may read it)",
            attachments::list,
        ),
        route(
            Api,
            Post,
            "/api/v1/applications/{id}/attachments",
            SignedIn,
            "Attach a file (?name=&version=, the raw bytes), until the deadline (its author)",
            attachments::upload,
        ),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}/attachments/{name}",
            SignedIn,
            "Download an attachment (whoever may read the application)",
            attachments::download,
        ),
        route(
            Api,
            Delete,
            "/api/v1/applications/{id}/attachments/{name}",
            SignedIn,
            "Remove an attachment (?version=), until the deadline (its author)",
            attachments::remove,
        ),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}/discussion",
            SignedIn,
            "The jury's discussion of an application (managers; its jurors once their review is in)",
            discussion::messages,
        ),
        route(
            Api,
            Post,
            "/api/v1/applications/{id}/discussion",
            SignedIn,
            "Post to the jury's discussion (managers; its jurors once their review is in)",
            discussion::post,
        )
        .body("Message"),
        route(
            Api,
            Post,
            "/api/v1/calls/{id}/jurors",
            SignedIn,
            "Invite a juror (the call's managers)",
            jury::add_juror,
        )
        .body("NewJuror"),
        route(Api, Get, "/api/v1/calls/{id}/jurors", SignedIn, "The call's jurors (its managers)", jury::jurors),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/conflicts",
            SignedIn,
            "Conflicts of interest, lifted ones too (the call's managers)",
            jury::conflicts,
        ),
        route(
            Api,
            Post,
            "/api/v1/calls/{id}/conflicts",
            SignedIn,
            "Add or lift a conflict, saying why (the call's managers)",
            jury::set_conflict,
        )
        .body("Conflict"),
        route(
            Api,
            Post,
            "/api/v1/applications/{id}/conflict",
            SignedIn,
            "Declare a conflict with an application (its call's jurors)",
            jury::declare_conflict,
        )
        .body("Declaration"),
        route(
            Api,
            Post,
            "/api/v1/calls/{id}/assignment",
            SignedIn,
            "Assign k jurors to every application, total affinity maximal (the call's managers)",
            jury::assign,
        )
        .body("Assign"),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/assignment",
            SignedIn,
            "The call's assignment (its managers)",
            jury::assignment,
        ),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/assigned",
            SignedIn,
            "The applications assigned to the caller, not conflicted",
            jury::assigned,
        ),
        route(
            Api,
            Post,
            "/api/v1/applications/{id}/review",
            SignedIn,
            "Write or rewrite one's review (an assigned juror, not conflicted)",
            jury::review,
        )
        .body("Review"),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}/reviews",
            SignedIn,
            "Reviews: all for managers; others' for a juror once theirs is in",
            jury::reviews,
        ),
        route(
            Api,
            Post,
            "/api/v1/calls/{id}/decisions",
            SignedIn,
            "Decide a batch: projects, allocations and commitments, all or none (the call's managers)",
            decisions::decide,
        )
        .body("Decisions"),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/decisions",
            Public,
            "Decisions: the selected applications (open data); all for the call's managers",
            decisions::decisions,
        ),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/decisions.csv",
            Public,
            "Decisions as CSV (open data)",
            decisions::decisions_csv,
        ),
        route(
            Api,
            Get,
            "/api/v1/applications/{id}/decision",
            SignedIn,
            "An application's decision and its reviews without names (its author, managers)",
            decisions::application_decision,
        ),
        route(
            Api,
            Get,
            "/api/v1/calls/{id}/ranking",
            SignedIn,
            "Applications by calibrated score, with what fits the envelope (the call's managers)",
            decisions::ranking,
        ),
        route(Page, Get, "/calls", Public, "Calls and jury", pages::list_page),
        route(Page, Get, "/calls/{id}", Public, "A call and the reader's applications", pages::call_page),
        route(Page, Post, "/calls/{id}/applications", SignedIn, "Apply from the form", pages::apply_form),
        route(
            Page,
            Post,
            "/calls/{id}/assignment",
            SignedIn,
            "Assign the jury from the page (managers)",
            pages::assign_form,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/decisions",
            SignedIn,
            "Decide from the ranking's form (the call's managers)",
            pages::decisions_form,
        ),
        route(
            Page,
            Get,
            "/calls/{id}/applications/{application}/letter",
            SignedIn,
            "An application's decision letter, printable (its author, managers)",
            pages::letter_page,
        ),
        route(
            Page,
            Get,
            "/calls/{id}/applications/{application}",
            SignedIn,
            "An application: fields, attachments, versions, reviews, discussion (whoever may read it)",
            application_page::application_page,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/applications/{application}/attachments",
            SignedIn,
            "Attach a file from the form (its author, until the deadline)",
            application_page::attachment_form,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/applications/{application}/attachments/{name}/remove",
            SignedIn,
            "Remove an attachment from the form (its author, until the deadline)",
            application_page::remove_attachment_form,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/applications/{application}/discussion",
            SignedIn,
            "Post to the discussion from the form",
            application_page::message_form,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/applications/{application}/conflict",
            SignedIn,
            "Declare a conflict from the form (the call's jurors)",
            application_page::declaration_form,
        ),
        route(Page, Post, "/calls/{id}/jurors", SignedIn, "Invite a juror from the form (managers)", pages::juror_form),
        route(
            Page,
            Post,
            "/calls/{id}/conflicts",
            SignedIn,
            "Add or lift a conflict from the form (managers)",
            pages::conflict_form,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/dates",
            SignedIn,
            "Move the call's dates from the form (managers)",
            pages::dates_form,
        ),
        route(
            Page,
            Post,
            "/calls/{id}/reviews/{application}",
            SignedIn,
            "Write one's review from the page (assigned jurors)",
            pages::review_form,
        ),
    ]
}

/// The most bytes of a call's text, or of an application's summary.
const MAX_TEXT: usize = 64 * 1024;
const MAX_CRITERIA: usize = 20;
const MAX_LIST: usize = 50;

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    pub key: String,
    pub fr: String,
    pub en: String,
    pub weight: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCallBody {
    pub name: String,
    /// The programme instrument whose budget line the call spends (`ia_cluster`, ...).
    pub instrument: String,
    pub title_fr: String,
    pub title_en: String,
    #[serde(default)]
    pub text_fr: String,
    #[serde(default)]
    pub text_en: String,
    pub criteria: Vec<Criterion>,
    #[serde(default = "five")]
    pub scale_max: i64,
    pub envelope_cents: i64,
    #[serde(default = "three")]
    pub reviewers_per_application: i64,
    pub opens_at: i64,
    /// None: a rolling call, decided application by application.
    #[serde(default)]
    pub closes_at: Option<i64>,
    #[serde(default)]
    pub review_ends_at: Option<i64>,
}

fn five() -> i64 {
    5
}
fn three() -> i64 {
    3
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Draft,
    Open,
    Review,
    Deliberation,
}

impl Phase {
    pub fn of(call: &CallRow, now: i64) -> Phase {
        if now < call.opens_at {
            Phase::Draft
        } else if call_takes_applications(call, now) {
            Phase::Open
        } else if call.review_ends_at.is_none_or(|ends| now < ends) {
            Phase::Review
        } else {
            Phase::Deliberation
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Draft => "draft",
            Phase::Open => "open",
            Phase::Review => "review",
            Phase::Deliberation => "deliberation",
        }
    }
}

pub fn criteria(call: &CallRow) -> Vec<Criterion> {
    serde_json::from_str(&call.criteria).unwrap_or_default()
}

fn call_json(call: &CallRow, now: i64) -> Value {
    json!({
        "id": call.id,
        "name": call.name,
        "instrument": call.instrument,
        "title_fr": call.title_fr,
        "title_en": call.title_en,
        "text_fr": call.text_fr,
        "text_en": call.text_en,
        "criteria": criteria(call),
        "scale_max": call.scale_max,
        "envelope_cents": call.envelope_cents,
        "reviewers_per_application": call.reviewers_per_application,
        "opens_at": call.opens_at,
        "closes_at": call.closes_at,
        "rolling": call.closes_at.is_none(),
        "review_ends_at": call.review_ends_at,
        "phase": Phase::of(call, now).as_str(),
    })
}

/// A stored JSON list of strings (partners, keywords).
pub(crate) fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

pub fn application_json(application: &ApplicationRow) -> Value {
    json!({
        "id": application.id,
        "call": application.call_id,
        "submitted_by": application.submitted_by,
        "organisation": application.organisation,
        "title": application.title,
        "summary": application.summary,
        "partners": strings(&application.partners),
        "keywords": strings(&application.keywords),
        "requested_cents": application.requested_cents,
        "requested_gpu_hours": application.requested_gpu_hours,
        "version": application.version,
        "created_at": application.created_at,
        "updated_at": application.updated_at,
    })
}

pub(crate) async fn call_for(state: &AppState, id: i64) -> AppResult<CallRow> {
    state.db.call(id).await?.ok_or_else(|| AppError::NotFound(format!("call {id} not found")))
}

/// Where a call stands as its readers see it: its phase by its dates, or `decided` once a call
/// with a deadline has decided every application it received.
pub async fn shown_phase(state: &AppState, call: &CallRow, now: i64) -> AppResult<&'static str> {
    let phase = Phase::of(call, now);
    if call.closes_at.is_some() && !matches!(phase, Phase::Draft | Phase::Open) {
        let applications = state.db.applications(call.id, None).await?.len();
        if applications > 0 && state.db.decisions(call.id).await?.len() == applications {
            return Ok("decided");
        }
    }
    Ok(phase.as_str())
}

async fn shown_call(state: &AppState, call: &CallRow, now: i64) -> AppResult<Value> {
    let mut answer = call_json(call, now);
    answer["phase"] = json!(shown_phase(state, call, now).await?);
    Ok(answer)
}

pub async fn list(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let now = now_ms();
    let mut items = Vec::new();
    for call in state.db.calls(200).await? {
        items.push(shown_call(&state, &call, now).await?);
    }
    Ok(Json(json!({ "items": items })))
}

pub async fn show(State(state): State<AppState>, UrlPath(id): UrlPath<i64>) -> AppResult<Json<Value>> {
    Ok(Json(shown_call(&state, &call_for(&state, id).await?, now_ms()).await?))
}

/// A short text field: trimmed, 1 to `max_chars` characters, no control characters.
pub(crate) fn text_field(what: &str, value: &str, max_chars: usize) -> AppResult<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max_chars || value.chars().any(char::is_control) {
        return Err(AppError::Invalid(format!("`{what}`: 1 to {max_chars} characters, no control characters")));
    }
    Ok(value.to_owned())
}

fn check_call(state_instruments: &[String], body: &NewCallBody) -> AppResult<()> {
    if state_instruments.is_empty() {
        return Err(AppError::Conflict("no programme is loaded, and a call spends one of its instruments (`grappe serve --demo` loads France 2030's)".into()));
    }
    if !state_instruments.contains(&body.instrument) {
        return Err(AppError::Invalid(format!(
            "`instrument`: one of the programme's ({}), not `{}`",
            state_instruments.join(", "),
            body.instrument
        )));
    }
    text_field("title_fr", &body.title_fr, 200)?;
    text_field("title_en", &body.title_en, 200)?;
    if body.text_fr.len() > MAX_TEXT || body.text_en.len() > MAX_TEXT {
        return Err(AppError::Invalid(format!("`text_fr`, `text_en`: at most {MAX_TEXT} bytes")));
    }
    if body.criteria.is_empty() || body.criteria.len() > MAX_CRITERIA {
        return Err(AppError::Invalid(format!("`criteria`: 1 to {MAX_CRITERIA}")));
    }
    for (i, criterion) in body.criteria.iter().enumerate() {
        text_field(&format!("criteria[{i}].key"), &criterion.key, 40)?;
        text_field(&format!("criteria[{i}].fr"), &criterion.fr, 200)?;
        text_field(&format!("criteria[{i}].en"), &criterion.en, 200)?;
        if !(criterion.weight.is_finite() && criterion.weight > 0.0 && criterion.weight <= 1000.0) {
            return Err(AppError::Invalid(format!("`criteria[{i}].weight`: above 0, at most 1000")));
        }
        if body.criteria[..i].iter().any(|other| other.key == criterion.key) {
            return Err(AppError::Invalid(format!("`criteria[{i}].key`: `{}` twice", criterion.key)));
        }
    }
    if !(1..=100).contains(&body.scale_max) {
        return Err(AppError::Invalid("`scale_max`: 1 to 100".into()));
    }
    if body.envelope_cents <= 0 {
        return Err(AppError::Invalid("`envelope_cents`: above 0".into()));
    }
    if !(1..=20).contains(&body.reviewers_per_application) {
        return Err(AppError::Invalid("`reviewers_per_application`: 1 to 20".into()));
    }
    check_dates(&body.dates())
}

impl NewCallBody {
    fn dates(&self) -> CallDates {
        CallDates { opens_at: self.opens_at, closes_at: self.closes_at, review_ends_at: self.review_ends_at }
    }
}

/// A call's dates follow each other: it opens, closes (unless rolling), then its review ends.
fn check_dates(dates: &CallDates) -> AppResult<()> {
    if let Some(closes) = dates.closes_at
        && closes <= dates.opens_at
    {
        return Err(AppError::Invalid("`closes_at`: after `opens_at`".into()));
    }
    if let Some(ends) = dates.review_ends_at
        && ends <= dates.closes_at.unwrap_or(dates.opens_at)
    {
        return Err(AppError::Invalid("`review_ends_at`: after the deadline".into()));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatesBody {
    pub opens_at: i64,
    #[serde(default)]
    pub closes_at: Option<i64>,
    #[serde(default)]
    pub review_ends_at: Option<i64>,
}

/// Moves a call's dates (its managers), until its first decision: the one path for the API and
/// the demo.
pub async fn move_dates(state: &AppState, caller: &Caller, call: &CallRow, body: DatesBody) -> AppResult<CallRow> {
    if !policy::may_manage_call(&caller.actor, call.id) {
        return Err(AppError::Forbidden("only the call's managers move its dates"));
    }
    let dates = CallDates { opens_at: body.opens_at, closes_at: body.closes_at, review_ends_at: body.review_ends_at };
    check_dates(&dates)?;
    state
        .db
        .set_call_dates(call.id, &dates, &caller.audit_name())
        .await?
        .ok_or_else(|| AppError::Conflict("the call has decisions: its dates are final".into()))
}

pub async fn dates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<DatesBody>,
) -> AppResult<Json<Value>> {
    let call = call_for(&state, id).await?;
    let call = move_dates(&state, &caller, &call, body).await?;
    Ok(Json(call_json(&call, now_ms())))
}

/// Checks and opens a call: the one path for the API and the demo.
pub async fn new_call(state: &AppState, caller: &Caller, body: NewCallBody) -> AppResult<CallRow> {
    if !policy::may_create_call(&caller.actor) {
        return Err(AppError::Forbidden("only call managers open calls"));
    }
    let name = grappe_store::Name::parse(&body.name).map_err(|error| AppError::Invalid(error.to_string()))?;
    let instruments: Vec<String> = state.db.programme().await?.instruments.into_iter().map(|i| i.code).collect();
    check_call(&instruments, &body)?;
    let criteria = serde_json::to_string(&body.criteria).map_err(anyhow::Error::from)?;
    let new = NewCall {
        name: name.as_str(),
        instrument: &body.instrument,
        title_fr: body.title_fr.trim(),
        title_en: body.title_en.trim(),
        text_fr: &body.text_fr,
        text_en: &body.text_en,
        criteria: &criteria,
        scale_max: body.scale_max,
        envelope_cents: body.envelope_cents,
        reviewers_per_application: body.reviewers_per_application,
        opens_at: body.opens_at,
        closes_at: body.closes_at,
        review_ends_at: body.review_ends_at,
        created_by: caller.actor.user_id(),
    };
    Ok(state.db.create_call(&new, &caller.audit_name()).await?)
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewCallBody>,
) -> AppResult<Response> {
    let call = new_call(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(call_json(&call, now_ms()))).into_response())
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationBody {
    pub organisation: String,
    pub title: String,
    pub summary: String,
    #[serde(default)]
    pub partners: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub requested_cents: i64,
    #[serde(default)]
    pub requested_gpu_hours: i64,
    /// On a save: the version the author read; a save over another one made meanwhile is
    /// refused.
    #[serde(default, skip_serializing)]
    pub version: Option<i64>,
}

/// An application's fields checked, with their lists and the whole as JSON.
pub(crate) struct Checked {
    partners: String,
    keywords: String,
    body: String,
}

pub(crate) fn check_application(call: &CallRow, body: &ApplicationBody) -> AppResult<Checked> {
    text_field("organisation", &body.organisation, 200)?;
    text_field("title", &body.title, 300)?;
    if body.summary.trim().is_empty() || body.summary.len() > MAX_TEXT {
        return Err(AppError::Invalid(format!("`summary`: 1 to {MAX_TEXT} bytes")));
    }
    for (what, list) in [("partners", &body.partners), ("keywords", &body.keywords)] {
        if list.len() > MAX_LIST {
            return Err(AppError::Invalid(format!("`{what}`: at most {MAX_LIST}")));
        }
        for (i, item) in list.iter().enumerate() {
            text_field(&format!("{what}[{i}]"), item, 200)?;
        }
    }
    if body.requested_cents <= 0 || body.requested_cents > call.envelope_cents {
        return Err(AppError::Invalid(format!(
            "`requested_cents`: above 0, at most the call's envelope ({})",
            format_short(Cents::new(call.envelope_cents), '.')
        )));
    }
    if !(0..=100_000_000).contains(&body.requested_gpu_hours) {
        return Err(AppError::Invalid("`requested_gpu_hours`: 0 to 100,000,000".into()));
    }
    let trimmed = |list: &[String]| list.iter().map(|item| item.trim().to_owned()).collect::<Vec<_>>();
    Ok(Checked {
        partners: serde_json::to_string(&trimmed(&body.partners)).map_err(anyhow::Error::from)?,
        keywords: serde_json::to_string(&trimmed(&body.keywords)).map_err(anyhow::Error::from)?,
        body: serde_json::to_string(body).map_err(anyhow::Error::from)?,
    })
}

pub(crate) fn fields<'a>(body: &'a ApplicationBody, checked: &'a Checked) -> ApplicationFields<'a> {
    ApplicationFields {
        organisation: body.organisation.trim(),
        title: body.title.trim(),
        summary: &body.summary,
        partners: &checked.partners,
        keywords: &checked.keywords,
        requested_cents: body.requested_cents,
        requested_gpu_hours: body.requested_gpu_hours,
        body: &checked.body,
    }
}

pub(crate) fn not_saved(call: &CallRow, why: NotSaved) -> AppError {
    match why {
        NotSaved::Closed if now_ms() < call.opens_at => {
            AppError::Conflict(format!("the call opens on {}", crate::kit::page::iso_datetime(call.opens_at)))
        }
        NotSaved::Closed => AppError::Conflict(format!(
            "the call's deadline passed ({}): applications are locked",
            call.closes_at.map(crate::kit::page::iso_datetime).unwrap_or_default()
        )),
        NotSaved::UnderReview => AppError::Conflict(
            "the application is with its jurors or decided (a rolling call): it no longer changes".into(),
        ),
        NotSaved::Stale { last } => AppError::Conflict(format!(
            "the application was saved meanwhile (version {last}): read it again, then save"
        )),
    }
}

pub(crate) fn user_of(caller: &Caller) -> AppResult<i64> {
    caller.actor.user_id().ok_or(AppError::Forbidden("applications are written by user accounts"))
}

/// Checks and saves a new application: the one path for the API, the form and the demo.
pub async fn new_application(
    state: &AppState,
    caller: &Caller,
    call: &CallRow,
    body: ApplicationBody,
) -> AppResult<ApplicationRow> {
    let user = user_of(caller)?;
    let checked = check_application(call, &body)?;
    state.db.create_application(call, user, &fields(&body, &checked)).await?.map_err(|why| not_saved(call, why))
}

pub async fn apply(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<ApplicationBody>,
) -> AppResult<Response> {
    let call = call_for(&state, id).await?;
    let application = new_application(&state, &caller, &call, body).await?;
    Ok((StatusCode::CREATED, Json(application_json(&application))).into_response())
}

pub async fn applications(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = call_for(&state, id).await?;
    let only = if policy::may_manage_call(&caller.actor, call.id) { None } else { Some(user_of(&caller)?) };
    let items: Vec<Value> = state.db.applications(call.id, only).await?.iter().map(application_json).collect();
    Ok(Json(json!({ "items": items })))
}

/// An application the caller may read: its author's; any for the call's managers; those
/// assigned to a juror and not conflicted; others get 404, as for one that does not exist.
pub(crate) async fn readable_application(state: &AppState, caller: &Caller, id: i64) -> AppResult<ApplicationRow> {
    let found = match state.db.application(id).await? {
        Some(application)
            if caller.actor.user_id() == Some(application.submitted_by)
                || policy::may_manage_call(&caller.actor, application.call_id)
                || jury::juror_reads(state, caller, &application).await? =>
        {
            Some(application)
        }
        _ => None,
    };
    found.ok_or_else(|| AppError::NotFound(format!("application {id} not found")))
}

pub async fn application(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let application = readable_application(&state, &caller, id).await?;
    let mut answer = application_json(&application);
    answer["attachments"] = Value::Array(attachments::list_for(&state, &application).await?);
    Ok(Json(answer))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<ApplicationBody>,
) -> AppResult<Json<Value>> {
    let application = readable_application(&state, &caller, id).await?;
    if caller.actor.user_id() != Some(application.submitted_by) {
        return Err(AppError::Forbidden("only its author edits an application"));
    }
    let call = call_for(&state, application.call_id).await?;
    let read = body.version.ok_or_else(|| AppError::Invalid("`version`: the version you read".into()))?;
    let checked = check_application(&call, &body)?;
    let user = user_of(&caller)?;
    let saved = state
        .db
        .update_application(&call, id, read, user, &fields(&body, &checked))
        .await?
        .map_err(|why| not_saved(&call, why))?;
    Ok(Json(application_json(&saved)))
}

pub async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let application = readable_application(&state, &caller, id).await?;
    let items: Vec<Value> = state
        .db
        .application_versions(application.id)
        .await?
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "saved_by": v.saved_by,
                "saved_at": v.saved_at,
                "attachments": v.attachments,
                "application": serde_json::from_str::<Value>(&v.body).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
