//! IA Booster, the SME track: a company registers (SIREN, size class, NAF rev. 2 code), answers
//! the AI-maturity self-diagnostic (`grappe_booster::diagnostic`, its rubric), reads its result
//! (scores, a radar chart, its position among its peers only where k-anonymity holds,
//! recommendations linked to the platform's resources), asks the Booster's rolling call for
//! support (an application of the calls module, decided by its managers: a selected one becomes
//! a project with a small GPU allocation), and reports outcomes.
//!
//! Privacy: a company's diagnostics are read by its members (the `company_member` role over its
//! organisation) and the programme's staff (`policy::may_read_company`), a 404 for anyone else
//! on every route; the public figures are [`grappe_booster::peers`]'s, thresholded at k = 5.

pub mod pages;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_booster::diagnostic::{MAX_ANSWER, SCALE};
use grappe_booster::peers::{self, Benchmark, K_ANONYMITY, Position};
use grappe_booster::{
    Answers, DiagnosticError, Dimension, Naf, NafError, QUESTIONS, RiskClass, Scores, Siren, SirenError, naf, recommend,
};
use grappe_db::{
    ApplicationRow, CallRow, CompanyRow, DiagnosticRow, NewCompany, NewDiagnostic, NewOutcome, OutcomeRow,
};
use grappe_domain::account::{DisplayName, Email, Role, RoleGrant, Scope, ScopeKind, SizeClass};
use grappe_domain::policy::{self, Access};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::calls::{ApplicationBody, check_application, fields, not_saved, user_of};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::{ApiJson, ApiQuery, Id};
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::{Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Get, Post};
    vec![
        route(Api, Get, "/api/v1/booster/questions", Public, "The diagnostic's questions, scale and rubric", questions),
        route(Api, Post, "/api/v1/booster/companies", SignedIn, "Register a company (SIREN, size, NAF)", create)
            .body("NewCompany"),
        route(Api, Get, "/api/v1/booster/companies", SignedIn, "The caller's companies", mine),
        route(
            Api,
            Get,
            "/api/v1/booster/companies/{id}",
            SignedIn,
            "A company: diagnostics, support requests, outcomes (members, staff)",
            show,
        ),
        route(
            Api,
            Post,
            "/api/v1/booster/companies/{id}/diagnostics",
            SignedIn,
            "Submit a diagnostic (members)",
            submit_diagnostic,
        )
        .body("NewDiagnostic"),
        route(
            Api,
            Get,
            "/api/v1/booster/diagnostics/{id}",
            SignedIn,
            "A diagnostic: answers, scores, peers, recommendations (members, staff)",
            show_diagnostic,
        ),
        route(
            Api,
            Post,
            "/api/v1/booster/companies/{id}/support",
            SignedIn,
            "Ask the Booster's rolling call for support (members)",
            support,
        )
        .body("SupportRequest"),
        route(
            Api,
            Post,
            "/api/v1/booster/companies/{id}/outcomes",
            SignedIn,
            "Report an outcome: prototype, product, jobs (members)",
            outcome,
        )
        .body("NewOutcome"),
        route(
            Api,
            Post,
            "/api/v1/booster/companies/{id}/members",
            SignedIn,
            "Add a member to a company, by e-mail (members)",
            add_member,
        )
        .body("NewMember"),
        route(
            Api,
            Get,
            "/api/v1/booster/benchmark",
            Public,
            "Median scores by size class and NAF section, groups of 5 companies or more",
            benchmark,
        ),
        route(Page, Get, "/booster", Public, "IA Booster: register, my companies, the public benchmark", pages::home),
        route(Page, Post, "/booster/companies", SignedIn, "Register a company from the form", pages::register_form),
        route(Page, Get, "/booster/companies/{id}", SignedIn, "A company (members, staff)", pages::company_page),
        route(
            Page,
            Get,
            "/booster/companies/{id}/diagnostic",
            SignedIn,
            "The diagnostic's questionnaire (members)",
            pages::questionnaire,
        ),
        route(
            Page,
            Post,
            "/booster/companies/{id}/diagnostic",
            SignedIn,
            "Submit the questionnaire",
            pages::questionnaire_form,
        ),
        route(
            Page,
            Get,
            "/booster/diagnostics/{id}",
            SignedIn,
            "A diagnostic's result (members, staff)",
            pages::result,
        ),
        route(
            Page,
            Post,
            "/booster/companies/{id}/support",
            SignedIn,
            "Ask for support from the form",
            pages::support_form,
        ),
        route(
            Page,
            Post,
            "/booster/companies/{id}/outcomes",
            SignedIn,
            "Report an outcome from the form",
            pages::outcome_form,
        ),
        route(
            Page,
            Post,
            "/booster/companies/{id}/members",
            SignedIn,
            "Add a member from the form",
            pages::member_form,
        ),
    ]
}

/// The most GPU-hours a support request may ask: the Booster grants small allocations.
pub const MAX_SUPPORT_GPU_HOURS: i64 = 2_000;
/// The most characters of an outcome's note.
const MAX_NOTE_CHARS: usize = 1_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CompanyBody {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub siren: String,
    /// `sme` or `eti`.
    #[serde(default)]
    pub size_class: String,
    /// NAF rev. 2: `62.01Z` or `6201Z`.
    #[serde(default)]
    pub naf: String,
}

/// What is wrong with one field of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Name(String),
    Siren(SirenError),
    /// Not `sme`, `eti` or `large`.
    SizeUnknown,
    /// A large company: the Booster is for SMEs and mid-sized companies.
    SizeLarge,
    Naf(NafError),
}

impl FieldError {
    pub fn field(&self) -> &'static str {
        match self {
            FieldError::Name(_) => "name",
            FieldError::Siren(_) => "siren",
            FieldError::SizeUnknown | FieldError::SizeLarge => "size_class",
            FieldError::Naf(_) => "naf",
        }
    }

    /// In English, for the API.
    fn message(&self) -> String {
        match self {
            FieldError::Name(problem) => format!("`name` {problem}"),
            FieldError::Siren(error) => format!("`siren`: {error}"),
            FieldError::SizeUnknown => "`size_class` must be sme or eti".into(),
            FieldError::SizeLarge => {
                "`size_class`: IA Booster is for SMEs and mid-sized companies (sme, eti), not large ones".into()
            }
            FieldError::Naf(error) => format!("`naf`: {error}"),
        }
    }

    /// In the reader's language, for the form (next to its field).
    pub fn words(&self, tr: &crate::kit::i18n::Tr) -> String {
        match self {
            FieldError::Name(_) => tr.t("booster-error-name"),
            FieldError::Siren(SirenError::Length(digits)) => tr.count("booster-error-siren-length", *digits as i64),
            FieldError::Siren(SirenError::NotADigit(_)) => tr.t("booster-error-siren-digit"),
            FieldError::Siren(SirenError::CheckDigit) => tr.t("booster-error-siren-check"),
            FieldError::SizeUnknown => tr.t("booster-error-size"),
            FieldError::SizeLarge => tr.t("booster-error-size-large"),
            FieldError::Naf(NafError::Shape(_)) => tr.t("booster-error-naf-shape"),
            FieldError::Naf(NafError::Unknown(_)) => tr.t("booster-error-naf-unknown"),
        }
    }
}

/// A registration, checked.
pub struct CheckedCompany {
    name: DisplayName,
    siren: Siren,
    size_class: SizeClass,
    naf: Naf,
}

/// Every field checked; each wrong one named (the form shows each next to its field).
pub fn check_company(body: &CompanyBody) -> Result<CheckedCompany, Vec<FieldError>> {
    let name = DisplayName::parse("name", &body.name).map_err(|error| FieldError::Name(error.to_string()));
    let siren = Siren::parse(&body.siren).map_err(FieldError::Siren);
    let size_class = match body.size_class.trim().parse::<SizeClass>() {
        Ok(SizeClass::Large) => Err(FieldError::SizeLarge),
        Ok(size) => Ok(size),
        Err(_) => Err(FieldError::SizeUnknown),
    };
    let naf = naf::lookup(&body.naf).map_err(FieldError::Naf);
    match (name, siren, size_class, naf) {
        (Ok(name), Ok(siren), Ok(size_class), Ok(naf)) => Ok(CheckedCompany { name, siren, size_class, naf }),
        (name, siren, size_class, naf) => {
            Err([name.err(), siren.err(), size_class.err(), naf.err()].into_iter().flatten().collect())
        }
    }
}

fn field_errors(errors: &[FieldError]) -> AppError {
    AppError::BadRequest(errors.iter().map(FieldError::message).collect::<Vec<_>>().join("; "))
}

/// Registers a checked company with the caller as its first member: the one path for the API
/// and the form.
pub async fn register(state: &AppState, caller: &Caller, company: &CheckedCompany) -> AppResult<CompanyRow> {
    let user = user_of(caller)?;
    let new = NewCompany {
        name: company.name.as_str(),
        size_class: company.size_class,
        siren: company.siren.as_str(),
        naf_code: company.naf.code,
        naf_section: company.naf.section,
    };
    Ok(state.db.register_company(&new, user).await?)
}

/// The company `id` if the caller may read it (`act`: act for it); else a 404, as for a
/// company that does not exist.
pub async fn company_for(state: &AppState, caller: &Caller, id: i64, act: bool) -> AppResult<CompanyRow> {
    let allowed =
        if act { policy::may_act_for_company(&caller.actor, id) } else { policy::may_read_company(&caller.actor, id) };
    let company = if allowed { state.db.company(id).await? } else { None };
    company.ok_or_else(|| AppError::NotFound(format!("company {id} not found")))
}

fn diagnostic_error(error: DiagnosticError) -> AppError {
    AppError::BadRequest(error.to_string())
}

/// Checks and records a diagnostic: the one path for the API and the form.
pub async fn diagnose(
    state: &AppState,
    caller: &Caller,
    company: &CompanyRow,
    answers: &[(String, i64)],
    ai_act_class: &str,
) -> AppResult<DiagnosticRow> {
    let user = user_of(caller)?;
    let parsed = Answers::parse(answers.iter().map(|(id, value)| (id.as_str(), *value)), ai_act_class)
        .map_err(diagnostic_error)?;
    let scores = parsed.scores();
    let stored: Vec<(&str, i64)> = parsed.iter().map(|(question, value)| (question.id, i64::from(value))).collect();
    let new = NewDiagnostic {
        answers: &stored,
        ai_act_class: parsed.risk_class().key(),
        scores: Dimension::ALL.map(|dimension| i64::from(scores.get(dimension))),
    };
    Ok(state.db.record_diagnostic(company.id, user, &new).await?)
}

/// A stored diagnostic's scores and class.
pub fn scores_of(diagnostic: &DiagnosticRow) -> AppResult<(Scores, RiskClass)> {
    let corrupt = || AppError::Internal(anyhow::anyhow!("diagnostic {} holds invalid scores", diagnostic.id));
    let scores = Scores::from_values(diagnostic.scores).ok_or_else(corrupt)?;
    let class = RiskClass::parse(&diagnostic.ai_act_class).map_err(|_| corrupt())?;
    Ok((scores, class))
}

/// Where a diagnostic's scores put the company among the companies of its size class and NAF
/// section (the others by their latest diagnostic, the company by this one); none under k.
pub async fn position_of(state: &AppState, company: &CompanyRow, scores: Scores) -> AppResult<Option<Position>> {
    let others = state.db.latest_scores(Some((&company.size_class, &company.naf_section))).await?;
    let others: Vec<_> = others.into_iter().filter(|peer| peer.company_id != company.id).collect();
    let mut group: Vec<(i64, Scores)> =
        others.iter().filter_map(|peer| Some((peer.company_id, Scores::from_values(peer.scores)?))).collect();
    group.push((company.id, scores));
    let registrants = others.iter().map(|peer| peer.registered_by).chain([company.registered_by]);
    if !enough_registrants(registrants) {
        return Ok(None);
    }
    Ok(peers::position(company.id, &group))
}

/// Whether a group's companies were registered by at least k distinct people: one account that
/// registers four companies around a fifth learns nothing of it.
fn enough_registrants(registrants: impl Iterator<Item = i64>) -> bool {
    registrants.collect::<std::collections::HashSet<_>>().len() >= K_ANONYMITY
}

/// The groups (size class, NAF section) of at least k companies, with their aggregates.
pub async fn benchmark_groups(
    state: &AppState,
    group: Option<(&str, &str)>,
) -> AppResult<Vec<(String, String, Benchmark)>> {
    let rows = state.db.latest_scores(group).await?;
    let mut out = Vec::new();
    // Rows come ordered by group: each run of one group is aggregated on its own.
    for run in rows.chunk_by(|a, b| a.size_class == b.size_class && a.naf_section == b.naf_section) {
        if !enough_registrants(run.iter().map(|peer| peer.registered_by)) {
            continue;
        }
        let scores: Vec<(i64, Scores)> =
            run.iter().filter_map(|peer| Some((peer.company_id, Scores::from_values(peer.scores)?))).collect();
        if let Some(shown) = peers::benchmark(&scores) {
            out.push((run[0].size_class.clone(), run[0].naf_section.clone(), shown));
        }
    }
    Ok(out)
}

/// The Booster's rolling call taking applications now (the newest, if several).
pub async fn booster_call(state: &AppState) -> AppResult<Option<CallRow>> {
    let now = grappe_db::now_ms();
    Ok(state
        .db
        .calls(200)
        .await?
        .into_iter()
        .filter(|call| call.instrument == BOOSTER_INSTRUMENT && grappe_db::call_takes_applications(call, now))
        .max_by_key(|call| call.id))
}

/// The programme's instrument of the Booster (`grappe_domain::programme`).
pub const BOOSTER_INSTRUMENT: &str = "ia_booster";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SupportBody {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub requested_cents: i64,
    #[serde(default)]
    pub requested_gpu_hours: i64,
}

/// Asks the Booster's rolling call for support, for the company: the one path for the API and
/// the form.
pub async fn request_support(
    state: &AppState,
    caller: &Caller,
    company: &CompanyRow,
    body: SupportBody,
) -> AppResult<ApplicationRow> {
    let user = user_of(caller)?;
    if !(1..=MAX_SUPPORT_GPU_HOURS).contains(&body.requested_gpu_hours) {
        return Err(AppError::BadRequest(format!(
            "`requested_gpu_hours`: 1 to {MAX_SUPPORT_GPU_HOURS} (the Booster grants small allocations)"
        )));
    }
    let call = booster_call(state)
        .await?
        .ok_or_else(|| AppError::Conflict("no IA Booster call takes requests at this time".into()))?;
    let application = ApplicationBody {
        organisation: company.name.clone(),
        title: body.title,
        summary: body.summary,
        partners: Vec::new(),
        keywords: vec![format!("NAF {}", company.naf_code)],
        requested_cents: body.requested_cents,
        requested_gpu_hours: body.requested_gpu_hours,
        version: None,
    };
    // The calls module's refusals are 422s; here, as every Booster refusal, 400s.
    let checked = check_application(&call, &application).map_err(|error| match error {
        AppError::Invalid(detail) => AppError::BadRequest(detail),
        other => other,
    })?;
    state
        .db
        .request_support(&call, company.id, user, &fields(&application, &checked))
        .await?
        .map_err(|why| not_saved(&call, why))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    #[serde(default)]
    pub kind: String,
    #[serde(default = "one")]
    pub quantity: i64,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub occurred_on: String,
    #[serde(default)]
    pub note: String,
}

fn one() -> i64 {
    1
}

/// The kinds of outcome.
pub const OUTCOME_KINDS: [&str; 3] = ["prototype", "product", "jobs"];

/// Checks and records an outcome: the one path for the API and the form.
pub async fn record_outcome(
    state: &AppState,
    caller: &Caller,
    company: &CompanyRow,
    body: &OutcomeBody,
) -> AppResult<OutcomeRow> {
    let user = user_of(caller)?;
    let kind = body.kind.trim();
    if !OUTCOME_KINDS.contains(&kind) {
        return Err(AppError::BadRequest("`kind` must be prototype, product or jobs".into()));
    }
    if kind != "jobs" && body.quantity != 1 {
        return Err(AppError::BadRequest("`quantity`: a prototype or a product counts 1".into()));
    }
    if !(1..=100_000).contains(&body.quantity) {
        return Err(AppError::BadRequest("`quantity`: 1 to 100,000 jobs".into()));
    }
    let day = body.occurred_on.trim();
    let Some(days) = grappe_domain::calendar::parse_date(day) else {
        return Err(AppError::BadRequest("`occurred_on`: a date written YYYY-MM-DD".into()));
    };
    let today = grappe_db::now_ms().div_euclid(grappe_domain::calendar::DAY_MS);
    if days > today {
        let today = crate::kit::page::iso_date(grappe_db::now_ms());
        return Err(AppError::BadRequest(format!("`occurred_on`: {day} is after today ({today})")));
    }
    if days < grappe_domain::calendar::days_from_civil(2018, 1, 1) {
        return Err(AppError::BadRequest(format!("`occurred_on`: {day} is before 2018, when the programme began")));
    }
    if body.note.chars().count() > MAX_NOTE_CHARS {
        return Err(AppError::BadRequest(format!("`note`: at most {MAX_NOTE_CHARS} characters")));
    }
    let new = NewOutcome { kind, quantity: body.quantity, occurred_on: day, note: body.note.trim() };
    Ok(state.db.record_outcome(company.id, user, &new).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    #[serde(default)]
    pub email: String,
}

/// Gives a user of the platform, named by e-mail, the `company_member` role over the company
/// (audited with the grant): the one path for the API and the form.
pub async fn add_company_member(
    state: &AppState,
    caller: &Caller,
    company: &CompanyRow,
    email: &str,
) -> AppResult<i64> {
    let actor = format!("user:{}", user_of(caller)?);
    let email = Email::parse(email.trim()).map_err(|error| AppError::BadRequest(error.to_string()))?;
    let user = state
        .db
        .user_by_email(&email)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no user with the e-mail {}", email.as_str())))?;
    let grant =
        RoleGrant { role: Role::CompanyMember, scope: Scope::Object { kind: ScopeKind::Organisation, id: company.id } };
    state.db.grant_role(user.id, &grant, &actor).await?;
    Ok(user.id)
}

// The JSON API.

fn dimension_values(values: impl Fn(Dimension) -> Value, overall: Value) -> Value {
    let mut out = Map::new();
    for dimension in Dimension::ALL {
        out.insert(dimension.key().to_owned(), values(dimension));
    }
    out.insert("overall".to_owned(), overall);
    Value::Object(out)
}

fn company_json(company: &CompanyRow) -> Value {
    json!({
        "id": company.id, "name": company.name, "siren": company.siren, "size_class": company.size_class,
        "naf": company.naf_code, "naf_section": company.naf_section, "registered_at": company.registered_at,
    })
}

fn benchmark_json(size_class: &str, section: &str, shown: &Benchmark) -> Value {
    json!({
        "size_class": size_class,
        "naf_section": section,
        "companies": shown.companies,
        "median": dimension_values(|dimension| json!(shown.medians[dimension as usize]), json!(shown.median_overall)),
    })
}

pub async fn questions() -> Json<Value> {
    let questions: Vec<Value> = QUESTIONS
        .iter()
        .map(|question| {
            json!({
                "id": question.id, "dimension": question.dimension.key(),
                "text": { "fr": question.text.fr, "en": question.text.en },
            })
        })
        .collect();
    let scale: Vec<Value> =
        SCALE.iter().enumerate().map(|(value, text)| json!({"value": value, "fr": text.fr, "en": text.en})).collect();
    let classes: Vec<Value> = RiskClass::ALL
        .iter()
        .map(|class| json!({"key": class.key(), "fr": class.name().fr, "en": class.name().en}))
        .collect();
    Json(json!({
        "questions": questions,
        "scale": scale,
        "max_answer": MAX_ANSWER,
        "ai_act_classes": classes,
        "rubric": "Each dimension: round(100 * sum of its answers / (3 * its questions)); overall: the mean of \
                   the five, rounded; level: 0-19 discovering, 20-39 exploring, 40-59 experimenting, 60-79 \
                   deploying, 80-100 leading.",
        "k_anonymity": K_ANONYMITY,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CompanyBody>,
) -> AppResult<Response> {
    let checked = check_company(&body).map_err(|errors| field_errors(&errors))?;
    let company = register(&state, &caller, &checked).await?;
    Ok((StatusCode::CREATED, Json(company_json(&company))).into_response())
}

pub async fn mine(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> AppResult<Json<Value>> {
    let companies = match caller.actor.user_id() {
        Some(user) => state.db.companies_of(user).await?,
        None => Vec::new(),
    };
    Ok(Json(json!({ "companies": companies.iter().map(company_json).collect::<Vec<_>>() })))
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    let company = company_for(&state, &caller, id, false).await?;
    let diagnostics: Vec<Value> = state
        .db
        .diagnostics(company.id)
        .await?
        .iter()
        .map(|diagnostic| {
            let overall = Scores::from_values(diagnostic.scores).map(|scores| scores.overall());
            json!({"id": diagnostic.id, "submitted_at": diagnostic.submitted_at, "overall": overall})
        })
        .collect();
    let support: Vec<Value> = state
        .db
        .support_requests(company.id)
        .await?
        .iter()
        .map(|request| {
            json!({
                "application": request.application_id, "call": request.call_id, "title": request.title,
                "requested_gpu_hours": request.requested_gpu_hours, "requested_at": request.requested_at,
                "selected": request.selected, "gpu_hours": request.gpu_hours, "project": request.project_id,
            })
        })
        .collect();
    let outcomes: Vec<Value> = state
        .db
        .outcomes(company.id)
        .await?
        .iter()
        .map(|outcome| {
            json!({
                "id": outcome.id, "kind": outcome.kind, "quantity": outcome.quantity,
                "occurred_on": outcome.occurred_on, "note": outcome.note,
            })
        })
        .collect();
    let mut body = company_json(&company);
    body["diagnostics"] = json!(diagnostics);
    body["support_requests"] = json!(support);
    body["outcomes"] = json!(outcomes);
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticBody {
    /// Question id to answer, 0 to 3.
    pub answers: Map<String, Value>,
    pub ai_act_class: String,
}

pub async fn submit_diagnostic(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<DiagnosticBody>,
) -> AppResult<Response> {
    let company = company_for(&state, &caller, id, true).await?;
    let mut answers = Vec::with_capacity(body.answers.len());
    for (question, value) in &body.answers {
        let value = value.as_i64().ok_or_else(|| {
            AppError::BadRequest(format!("`{question}`: the answer must be a whole number from 0 to {MAX_ANSWER}"))
        })?;
        answers.push((question.clone(), value));
    }
    let diagnostic = diagnose(&state, &caller, &company, &answers, &body.ai_act_class).await?;
    Ok((StatusCode::CREATED, Json(diagnostic_json(&state, &company, &diagnostic).await?)).into_response())
}

async fn diagnostic_json(state: &AppState, company: &CompanyRow, diagnostic: &DiagnosticRow) -> AppResult<Value> {
    let (scores, class) = scores_of(diagnostic)?;
    let answers: Map<String, Value> = state
        .db
        .diagnostic_answers(diagnostic.id)
        .await?
        .into_iter()
        .map(|(question, value)| (question, json!(value)))
        .collect();
    let recommendations: Vec<Value> = recommend(&scores, class)
        .iter()
        .map(|advice| {
            let reason = match advice.reason {
                grappe_booster::recommend::Reason::Weak(dimension) => format!("weak:{}", dimension.key()),
                grappe_booster::recommend::Reason::AiAct(class) => format!("ai_act:{}", class.key()),
            };
            json!({
                "reason": reason, "text": {"fr": advice.text.fr, "en": advice.text.en},
                "resources": advice.resources.iter().map(|resource| resource.key()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let peers = position_of(state, company, scores).await?.map(|position| {
        let mut shown = benchmark_json(&company.size_class, &company.naf_section, &position.benchmark);
        shown["percentile"] = dimension_values(
            |dimension| json!(position.percentiles[dimension as usize]),
            json!(position.percentile_overall),
        );
        shown
    });
    Ok(json!({
        "id": diagnostic.id,
        "company": company.id,
        "submitted_at": diagnostic.submitted_at,
        "ai_act_class": class.key(),
        "answers": answers,
        "scores": dimension_values(|dimension| json!(scores.get(dimension)), json!(scores.overall())),
        "level": scores.level().key(),
        "recommendations": recommendations,
        "peers": peers,
    }))
}

/// A diagnostic and its company, if the caller may read them; else a 404.
pub async fn diagnostic_for(state: &AppState, caller: &Caller, id: i64) -> AppResult<(CompanyRow, DiagnosticRow)> {
    let not_found = || AppError::NotFound(format!("diagnostic {id} not found"));
    let diagnostic = state.db.diagnostic(id).await?.ok_or_else(not_found)?;
    let company = company_for(state, caller, diagnostic.company_id, false)
        .await
        .map_err(|error| if error.status().is_client_error() { not_found() } else { error })?;
    Ok((company, diagnostic))
}

pub async fn show_diagnostic(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    let (company, diagnostic) = diagnostic_for(&state, &caller, id).await?;
    Ok(Json(diagnostic_json(&state, &company, &diagnostic).await?))
}

pub async fn support(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<SupportBody>,
) -> AppResult<Response> {
    let company = company_for(&state, &caller, id, true).await?;
    let application = request_support(&state, &caller, &company, body).await?;
    Ok((StatusCode::CREATED, Json(crate::calls::application_json(&application))).into_response())
}

pub async fn add_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<MemberBody>,
) -> AppResult<Response> {
    let company = company_for(&state, &caller, id, true).await?;
    let user = add_company_member(&state, &caller, &company, &body.email).await?;
    Ok((StatusCode::CREATED, Json(json!({ "company": company.id, "user": user }))).into_response())
}

pub async fn outcome(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<OutcomeBody>,
) -> AppResult<Response> {
    let company = company_for(&state, &caller, id, true).await?;
    let outcome = record_outcome(&state, &caller, &company, &body).await?;
    let body = json!({
        "id": outcome.id, "company": outcome.company_id, "kind": outcome.kind, "quantity": outcome.quantity,
        "occurred_on": outcome.occurred_on, "note": outcome.note, "recorded_at": outcome.recorded_at,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkQuery {
    pub size_class: Option<String>,
    pub naf_section: Option<String>,
}

pub async fn benchmark(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BenchmarkQuery>,
) -> AppResult<Json<Value>> {
    let group = match (&query.size_class, &query.naf_section) {
        (Some(size), Some(section)) => Some((size.as_str(), section.as_str())),
        (None, None) => None,
        _ => return Err(AppError::BadRequest("give both `size_class` and `naf_section`, or neither".into())),
    };
    let groups: Vec<Value> = benchmark_groups(&state, group)
        .await?
        .iter()
        .map(|(size, section, shown)| benchmark_json(size, section, shown))
        .collect();
    Ok(Json(json!({ "k_anonymity": K_ANONYMITY, "groups": groups })))
}
