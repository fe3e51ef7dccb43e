//! The Booster's pages: the home page (the reader's companies, the registration form, the
//! public benchmark), a company's page (its diagnostics, support requests and outcomes, with
//! their forms), the questionnaire, and a diagnostic's result (scores, radar chart, peers when
//! k-anonymity holds, recommendations, the rubric, the answers).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use grappe_booster::diagnostic::{MAX_ANSWER, SCALE};
use grappe_booster::recommend::{Reason, Resource};
use grappe_booster::{Dimension, QUESTIONS, RiskClass, Siren, naf, recommend};
use grappe_chart::{self as chart, Radar, RadarSeries};
use grappe_db::CompanyRow;
use grappe_domain::policy;
use serde::Deserialize;

use crate::booster::{
    CompanyBody, FieldError, OUTCOME_KINDS, OutcomeBody, SupportBody, add_company_member, benchmark_groups,
    booster_call, check_company, company_for, diagnose, diagnostic_for, position_of, record_outcome, register,
    request_support, scores_of,
};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::{Time, Tr};
use crate::kit::page::{Chrome, FormErrors, after_form, form_checked, iso_date, not_found_page, render};
use crate::kit::state::AppState;

struct GroupLine {
    size: String,
    section: String,
    companies: String,
    medians: Vec<String>,
    overall: String,
}

/// The registration form's values as typed, and each field's error in words.
#[derive(Default)]
struct RegisterView {
    name: String,
    siren: String,
    size_class: String,
    naf: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "booster.html")]
struct HomePage {
    chrome: Chrome,
    signed_in: bool,
    companies: Vec<(i64, String, String)>,
    form: RegisterView,
    dimensions: Vec<String>,
    groups: Vec<GroupLine>,
    sections: Vec<(char, &'static str)>,
}

fn size_words(tr: &Tr, size_class: &str) -> String {
    tr.t(&format!("org-size-{size_class}"))
}

async fn home_page(
    state: &AppState,
    caller: &Caller,
    chrome: Chrome,
    form: RegisterView,
    status: StatusCode,
) -> Result<Response, AppError> {
    let tr = chrome.tr;
    let companies = match caller.actor.user_id() {
        Some(user) => state.db.companies_of(user).await?,
        None => Vec::new(),
    };
    let groups = benchmark_groups(state, None)
        .await?
        .into_iter()
        .map(|(size, section, shown)| GroupLine {
            size: size_words(&tr, &size),
            section: format!("{section} · {}", section.chars().next().and_then(naf::section_label).unwrap_or_default()),
            companies: tr.locale.integer(shown.companies as i64),
            medians: shown.medians.iter().map(|median| tr.locale.trimmed(*median, 1)).collect(),
            overall: tr.locale.trimmed(shown.median_overall, 1),
        })
        .collect();
    let page = HomePage {
        signed_in: caller.actor.user_id().is_some(),
        companies: companies
            .iter()
            .map(|company| (company.id, company.name.clone(), size_words(&tr, &company.size_class)))
            .collect(),
        form,
        dimensions: Dimension::ALL
            .iter()
            .map(|dimension| tr.locale.pick(dimension.name().fr, dimension.name().en).to_owned())
            .collect(),
        groups,
        sections: naf::sections().to_vec(),
        chrome,
    };
    Ok(render(&page, status))
}

pub async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    home_page(&state, &caller, chrome, RegisterView::default(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    siren: String,
    #[serde(default)]
    size_class: String,
    #[serde(default)]
    naf: String,
}

/// The registration form: a wrong field is shown next to itself, in the reader's language, with
/// everything typed kept (400); a conflict (SIREN or name taken) as a message page.
pub async fn register_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &Uri::from_static("/booster"), Some(&caller));
    let chrome = match form_checked(chrome, &caller, &form.csrf) {
        Ok(chrome) => chrome,
        Err(page) => return Ok(*page),
    };
    let body = CompanyBody { name: form.name, siren: form.siren, size_class: form.size_class, naf: form.naf };
    let checked = match check_company(&body) {
        Ok(checked) => checked,
        Err(errors) => {
            let view = RegisterView {
                errors: FormErrors {
                    fields: errors.iter().map(|error: &FieldError| (error.field(), error.words(&chrome.tr))).collect(),
                    form: Some(chrome.tr.t("booster-register-fix")),
                },
                name: body.name,
                siren: body.siren,
                size_class: body.size_class,
                naf: body.naf,
            };
            return home_page(&state, &caller, chrome, view, StatusCode::BAD_REQUEST).await;
        }
    };
    match register(&state, &caller, &checked).await {
        Ok(company) => Ok(Redirect::to(&format!("/booster/companies/{}", company.id)).into_response()),
        Err(error) => after_form(chrome, "/booster", Err::<(), _>(error)),
    }
}

struct HistoryLine {
    id: i64,
    date: Time,
    overall: String,
    level: String,
}

struct SupportLine {
    title: String,
    date: Time,
    gpu_hours: String,
    status: String,
    project: Option<i64>,
}

struct OutcomeLine {
    kind: String,
    quantity: String,
    date: String,
    note: String,
}

#[derive(Template)]
#[template(path = "booster_company.html")]
struct CompanyPage {
    chrome: Chrome,
    company: CompanyRow,
    siren: String,
    size: String,
    naf_label: String,
    may_act: bool,
    history: Vec<HistoryLine>,
    /// The Booster's rolling call taking requests now, if any.
    call: Option<i64>,
    max_gpu_hours: i64,
    support: Vec<SupportLine>,
    outcome_kinds: Vec<(&'static str, String)>,
    outcomes: Vec<OutcomeLine>,
    today: String,
    members: Vec<String>,
}

/// The company a page shows, or the page to answer (a 404 for whoever may not read it).
async fn page_company(
    state: &AppState,
    caller: &Caller,
    chrome: Chrome,
    id: &str,
    act: bool,
) -> Result<(Chrome, CompanyRow), Response> {
    let Ok(id) = id.parse::<i64>() else { return Err(not_found_page(chrome)) };
    match company_for(state, caller, id, act).await {
        Ok(company) => Ok((chrome, company)),
        Err(error) if error.status().is_client_error() => Err(not_found_page(chrome)),
        // The database's own failure is not a missing company.
        Err(error) => Err(axum::response::IntoResponse::into_response(error)),
    }
}

/// The company a page's form acts for: its CSRF token checked, then the company, which the
/// caller must act for; else the page to answer.
async fn form_company(
    state: &AppState,
    caller: &Caller,
    chrome: Chrome,
    csrf: &str,
    id: &str,
) -> Result<(Chrome, CompanyRow), Response> {
    let chrome = form_checked(chrome, caller, csrf).map_err(|page| *page)?;
    page_company(state, caller, chrome, id, true).await
}

/// A form acting for a company ([`form_company`]), then `action`, then back to the company's page
/// at `anchor` (or the refusal, as a page).
async fn act_for_company<T>(
    state: &AppState,
    caller: &Caller,
    (headers, uri): (&HeaderMap, &Uri),
    (id, csrf): (&str, &str),
    anchor: &str,
    action: impl AsyncFnOnce(&CompanyRow) -> Result<T, AppError>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(headers, uri, Some(caller));
    let (chrome, company) = match form_company(state, caller, chrome, csrf, id).await {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let done = action(&company).await;
    after_form(chrome, &format!("/booster/companies/{}#{anchor}", company.id), done)
}

pub async fn company_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let (chrome, company) = match page_company(&state, &caller, chrome, &id, false).await {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let tr = chrome.tr;
    let mut history = Vec::new();
    for diagnostic in state.db.diagnostics(company.id).await? {
        let (scores, _) = scores_of(&diagnostic)?;
        history.push(HistoryLine {
            id: diagnostic.id,
            date: tr.locale.datetime(diagnostic.submitted_at),
            overall: tr.locale.integer(i64::from(scores.overall())),
            level: tr.locale.pick(scores.level().name().fr, scores.level().name().en).to_owned(),
        });
    }
    let support = state
        .db
        .support_requests(company.id)
        .await?
        .into_iter()
        .map(|request| SupportLine {
            status: match request.selected {
                None => tr.t("booster-support-pending"),
                Some(true) => tr.t("booster-support-selected"),
                Some(false) => tr.t("booster-support-not-selected"),
            },
            gpu_hours: tr.locale.integer(if request.selected == Some(true) {
                request.gpu_hours
            } else {
                request.requested_gpu_hours
            }),
            title: request.title,
            date: tr.locale.datetime(request.requested_at),
            project: request.project_id,
        })
        .collect();
    let outcomes = state
        .db
        .outcomes(company.id)
        .await?
        .into_iter()
        .map(|outcome| OutcomeLine {
            kind: tr.t(&format!("booster-outcome-{}", outcome.kind)),
            quantity: tr.locale.integer(outcome.quantity),
            date: outcome.occurred_on,
            note: outcome.note,
        })
        .collect();
    let page = CompanyPage {
        siren: Siren::parse(&company.siren).map(|siren| siren.to_string()).unwrap_or_else(|_| company.siren.clone()),
        size: size_words(&tr, &company.size_class),
        naf_label: naf::lookup(&company.naf_code).map(|naf| naf.label).unwrap_or_default().to_owned(),
        may_act: policy::may_act_for_company(&caller.actor, company.id),
        history,
        call: booster_call(&state).await?.map(|call| call.id),
        max_gpu_hours: crate::booster::MAX_SUPPORT_GPU_HOURS,
        support,
        outcome_kinds: OUTCOME_KINDS.iter().map(|kind| (*kind, tr.t(&format!("booster-outcome-{kind}")))).collect(),
        outcomes,
        today: iso_date(grappe_db::now_ms()),
        members: state.db.company_members(company.id).await?.into_iter().map(|(_, name)| name).collect(),
        company,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

struct QuestionView {
    id: &'static str,
    /// `data-inventory`: the question's id as an HTML id.
    html_id: String,
    text: String,
    /// The scale's values and words, each with whether it was chosen.
    options: Vec<(u8, String, bool)>,
    error: Option<String>,
}

struct DimensionView {
    name: String,
    questions: Vec<QuestionView>,
}

#[derive(Template)]
#[template(path = "booster_questionnaire.html")]
struct QuestionnairePage {
    chrome: Chrome,
    company: CompanyRow,
    dimensions: Vec<DimensionView>,
    classes: Vec<(&'static str, String, bool)>,
    class_missing: bool,
    error: Option<String>,
}

fn questionnaire_page(
    chrome: Chrome,
    company: CompanyRow,
    typed: &[(String, String)],
    error: Option<(String, Vec<&str>)>,
    status: StatusCode,
) -> Response {
    let tr = chrome.tr;
    let value = |id: &str| typed.iter().find(|(name, _)| name == id).map(|(_, value)| value.as_str());
    let flagged: Vec<&str> = error.as_ref().map(|(_, names)| names.clone()).unwrap_or_default();
    let scale: Vec<(u8, String)> =
        (0..=MAX_ANSWER).zip(SCALE).map(|(at, text)| (at, tr.locale.pick(text.fr, text.en).to_owned())).collect();
    let dimensions = Dimension::ALL
        .iter()
        .map(|dimension| DimensionView {
            name: tr.locale.pick(dimension.name().fr, dimension.name().en).to_owned(),
            questions: QUESTIONS
                .iter()
                .filter(|question| question.dimension == *dimension)
                .map(|question| QuestionView {
                    id: question.id,
                    html_id: question.id.replace('.', "-"),
                    text: tr.locale.pick(question.text.fr, question.text.en).to_owned(),
                    options: scale
                        .iter()
                        .map(|(at, words)| (*at, words.clone(), value(question.id) == Some(at.to_string().as_str())))
                        .collect(),
                    error: flagged.contains(&question.id).then(|| tr.t("booster-error-question")),
                })
                .collect(),
        })
        .collect();
    let class = value("ai_act_class");
    let page = QuestionnairePage {
        classes: RiskClass::ALL
            .iter()
            .map(|each| {
                (each.key(), tr.locale.pick(each.name().fr, each.name().en).to_owned(), class == Some(each.key()))
            })
            .collect(),
        class_missing: flagged.contains(&"ai_act_class"),
        error: error.map(|(words, _)| words),
        dimensions,
        company,
        chrome,
    };
    render(&page, status)
}

pub async fn questionnaire(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    match page_company(&state, &caller, chrome, &id, true).await {
        Ok((chrome, company)) => Ok(questionnaire_page(chrome, company, &[], None, StatusCode::OK)),
        Err(page) => Ok(page),
    }
}

/// The questionnaire sent: recorded and shown as a result, or the questionnaire again with what
/// was chosen kept and the questions left unanswered marked (400).
pub async fn questionnaire_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(typed): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let csrf = typed.iter().find(|(name, _)| name == "csrf").map(|(_, value)| value.as_str()).unwrap_or_default();
    let (chrome, company) = match form_company(&state, &caller, chrome, csrf, &id).await {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let mut answers = Vec::new();
    let mut class = String::new();
    for (name, value) in &typed {
        match name.as_str() {
            "csrf" => {}
            "ai_act_class" => class.clone_from(value),
            // A value that is no number is out of range: the crate names the question.
            _ => answers.push((name.clone(), value.trim().parse::<i64>().unwrap_or(-1))),
        }
    }
    let unanswered: Vec<&str> = QUESTIONS
        .iter()
        .map(|question| question.id)
        .filter(|id| !answers.iter().any(|(name, _)| name == id))
        .chain(class.is_empty().then_some("ai_act_class"))
        .collect();
    if !unanswered.is_empty() {
        let words = chrome.tr.count("booster-error-incomplete", unanswered.len() as i64);
        return Ok(questionnaire_page(chrome, company, &typed, Some((words, unanswered)), StatusCode::BAD_REQUEST));
    }
    match diagnose(&state, &caller, &company, &answers, &class).await {
        Ok(diagnostic) => Ok(Redirect::to(&format!("/booster/diagnostics/{}", diagnostic.id)).into_response()),
        Err(error) if error.status().is_client_error() => {
            let words = error.to_string();
            Ok(questionnaire_page(chrome, company, &typed, Some((words, Vec::new())), StatusCode::BAD_REQUEST))
        }
        Err(error) => Err(error),
    }
}

struct ScoreLine {
    dimension: String,
    score: String,
    median: String,
    percentile: String,
}

struct AdviceLine {
    reason: String,
    text: String,
    links: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "booster_result.html")]
struct ResultPage {
    chrome: Chrome,
    company: CompanyRow,
    date: Time,
    overall: String,
    level: String,
    ai_act: String,
    radar_svg: String,
    peers_shown: bool,
    peer_companies: String,
    lines: Vec<ScoreLine>,
    advice: Vec<AdviceLine>,
    answers: Vec<(String, String)>,
    k: usize,
}

fn resource_link(tr: &Tr, resource: Resource, company: i64) -> (String, String) {
    let href = match resource {
        Resource::Datasets => "/data".to_owned(),
        Resource::Compute => format!("/booster/companies/{company}#support"),
        Resource::Centres => "/centres".to_owned(),
        Resource::Models => "/models".to_owned(),
        Resource::Gateway => "/ai".to_owned(),
    };
    (href, tr.t(&format!("booster-resource-{}", resource.key())))
}

pub async fn result(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Ok(id) = id.parse::<i64>() else { return Ok(not_found_page(chrome)) };
    let Ok((company, diagnostic)) = diagnostic_for(&state, &caller, id).await else {
        return Ok(not_found_page(chrome));
    };
    let tr = chrome.tr;
    let (scores, class) = scores_of(&diagnostic)?;
    let position = position_of(&state, &company, scores).await?;
    let names: Vec<String> = Dimension::ALL
        .iter()
        .map(|dimension| tr.locale.pick(dimension.name().fr, dimension.name().en).to_owned())
        .collect();
    let company_label = tr.t("booster-series-company");
    let peers_label = tr.t("booster-series-peers");
    let mut series = vec![RadarSeries {
        label: &company_label,
        values: Dimension::ALL.iter().map(|dimension| f64::from(scores.get(*dimension))).collect(),
    }];
    if let Some(position) = &position {
        series.push(RadarSeries { label: &peers_label, values: position.benchmark.medians.to_vec() });
    }
    let title = tr.t("booster-radar-title");
    let description = names
        .iter()
        .zip(Dimension::ALL)
        .map(|(name, dimension)| format!("{name}{}{}", tr.locale.pick(" : ", ": "), scores.get(dimension)))
        .collect::<Vec<_>>()
        .join(", ");
    let radar_svg = chart::radar(&Radar {
        title: &title,
        description: &description,
        axes: names.iter().map(String::as_str).collect(),
        max: 100.0,
        series,
    });
    let lines = Dimension::ALL
        .iter()
        .zip(&names)
        .map(|(dimension, name)| ScoreLine {
            dimension: name.clone(),
            score: tr.locale.integer(i64::from(scores.get(*dimension))),
            median: position
                .as_ref()
                .map(|position| tr.locale.trimmed(position.benchmark.medians[*dimension as usize], 1))
                .unwrap_or_default(),
            percentile: position
                .as_ref()
                .map(|position| tr.locale.integer(i64::from(position.percentiles[*dimension as usize])))
                .unwrap_or_default(),
        })
        .collect();
    let advice = recommend(&scores, class)
        .iter()
        .map(|advice| AdviceLine {
            reason: match advice.reason {
                Reason::Weak(dimension) => tr.locale.pick(dimension.name().fr, dimension.name().en).to_owned(),
                Reason::AiAct(_) => tr.t("booster-ai-act"),
            },
            text: tr.locale.pick(advice.text.fr, advice.text.en).to_owned(),
            links: advice.resources.iter().map(|resource| resource_link(&tr, *resource, company.id)).collect(),
        })
        .collect();
    let answers = state
        .db
        .diagnostic_answers(diagnostic.id)
        .await?
        .into_iter()
        .filter_map(|(id, value)| {
            let question = QUESTIONS.iter().find(|question| question.id == id)?;
            let answer = SCALE.get(usize::try_from(value).ok()?)?;
            Some((
                tr.locale.pick(question.text.fr, question.text.en).to_owned(),
                tr.locale.pick(answer.fr, answer.en).to_owned(),
            ))
        })
        .collect();
    let page = ResultPage {
        date: tr.locale.datetime(diagnostic.submitted_at),
        overall: tr.locale.integer(i64::from(scores.overall())),
        level: tr.locale.pick(scores.level().name().fr, scores.level().name().en).to_owned(),
        ai_act: tr.locale.pick(class.name().fr, class.name().en).to_owned(),
        radar_svg,
        peers_shown: position.is_some(),
        peer_companies: position
            .as_ref()
            .map(|position| tr.locale.integer(position.benchmark.companies as i64))
            .unwrap_or_default(),
        lines,
        advice,
        answers,
        k: grappe_booster::K_ANONYMITY,
        company,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
pub struct SupportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    requested_euros: String,
    #[serde(default)]
    requested_gpu_hours: String,
}

pub async fn support_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<SupportForm>,
) -> Result<Response, AppError> {
    let body = SupportBody {
        title: form.title,
        summary: form.summary,
        requested_cents: form.requested_euros.trim().parse::<i64>().unwrap_or(0).saturating_mul(100),
        requested_gpu_hours: form.requested_gpu_hours.trim().parse::<i64>().unwrap_or(0),
    };
    act_for_company(&state, &caller, (&headers, &uri), (&id, &form.csrf), "support", async |company| {
        request_support(&state, &caller, company, body).await
    })
    .await
}

#[derive(Deserialize)]
pub struct OutcomeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    quantity: String,
    #[serde(default)]
    occurred_on: String,
    #[serde(default)]
    note: String,
}

pub async fn outcome_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<OutcomeForm>,
) -> Result<Response, AppError> {
    let body = OutcomeBody {
        kind: form.kind,
        quantity: form.quantity.trim().parse::<i64>().unwrap_or(1),
        occurred_on: form.occurred_on,
        note: form.note,
    };
    act_for_company(&state, &caller, (&headers, &uri), (&id, &form.csrf), "outcomes", async |company| {
        record_outcome(&state, &caller, company, &body).await
    })
    .await
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

pub async fn member_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<MemberForm>,
) -> Result<Response, AppError> {
    act_for_company(&state, &caller, (&headers, &uri), (&id, &form.csrf), "members", async |company| {
        add_company_member(&state, &caller, company, &form.email).await
    })
    .await
}
