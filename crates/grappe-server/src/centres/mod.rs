//! The IA-cluster centres (issue 11): each application an `ia_cluster` call selected has a
//! public profile (city, summary, partners, research themes) and a training offer by level and
//! academic year (places, students enrolled), kept by its project's coordinators; the programme
//! adds the students up as the specialists it trains. Pages `/centres` and `/centres/{id}`, and
//! the same as JSON.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Form, Json};
use grappe_chart::{self as chart, Histogram};
use grappe_db::{CentreRow, TrainingRow};
use grappe_domain::account::InvalidInput;
use grappe_domain::centre::{Profile, Training, TrainingLevel};
use grappe_domain::policy::{self, Access};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::{ApiJson, Id};
use crate::kit::page::{Chrome, FormErrors, after_form, checked_form, form_checked, message_page, render};
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::{Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Get, Post};
    vec![
        route(Page, Get, "/centres", Public, "The IA-cluster centres and their training offer", centres_page),
        route(Page, Get, "/centres/{id}", Public, "A centre's profile and training offer", centre_page),
        route(
            Page,
            Post,
            "/centres/{id}/profile",
            SignedIn,
            "Write a centre's profile (its coordinators)",
            profile_form,
        ),
        route(
            Page,
            Post,
            "/centres/{id}/trainings",
            SignedIn,
            "Record a training of a centre (its coordinators)",
            training_form,
        ),
        route(Api, Get, "/api/v1/centres", Public, "The centres, with students enrolled", list),
        route(Api, Get, "/api/v1/centres/{id}", Public, "A centre: profile and trainings", show),
        route(Api, Post, "/api/v1/centres/{id}", SignedIn, "Write a centre's profile (its coordinators)", save_profile)
            .body("CentreProfile"),
        route(
            Api,
            Post,
            "/api/v1/centres/{id}/trainings",
            SignedIn,
            "Record a training in a year, or its new figures (its coordinators)",
            save_training,
        )
        .body("Training"),
    ]
}

async fn centre_or_404(state: &AppState, id: i64) -> AppResult<CentreRow> {
    state.db.centre(id).await?.ok_or_else(|| AppError::NotFound(format!("no centre {id}")))
}

/// A centre the caller keeps: a 404 if it is no centre, a 403 if the caller may not.
async fn centre_to_edit(state: &AppState, caller: &Caller, id: i64) -> AppResult<CentreRow> {
    let centre = centre_or_404(state, id).await?;
    if !may_edit(caller, &centre) {
        return Err(AppError::Forbidden("only the centre's coordinators keep its profile and trainings"));
    }
    Ok(centre)
}

/// A centre's profile and trainings are kept by its project's coordinators and administrators.
fn may_edit(caller: &Caller, centre: &CentreRow) -> bool {
    caller.actor.is_admin()
        || centre.project_id.is_some_and(|project| policy::may_coordinate_project(&caller.actor, project))
}

fn training_json(row: &TrainingRow) -> Value {
    let training = &row.training;
    json!({
        "level": training.level.as_str(),
        "title": training.title,
        "year": training.year,
        "places": training.places,
        "enrolled": training.enrolled,
    })
}

fn centre_json(centre: &CentreRow) -> Value {
    json!({
        "id": centre.id,
        "organisation": centre.organisation,
        "title": centre.title,
        "call": centre.call_name,
        "city": centre.profile.city,
        "summary": { "fr": centre.profile.summary_fr, "en": centre.profile.summary_en },
        "partners": centre.profile.partners,
        "themes": centre.profile.themes,
        "enrolled": centre.enrolled,
    })
}

pub async fn list(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let centres = state.db.centres().await?;
    let enrolled: i64 = centres.iter().map(|c| c.enrolled).sum();
    Ok(Json(json!({ "items": centres.iter().map(centre_json).collect::<Vec<_>>(), "enrolled": enrolled })))
}

pub async fn show(State(state): State<AppState>, Id(id): Id) -> AppResult<Json<Value>> {
    let centre = centre_or_404(&state, id).await?;
    let trainings = state.db.trainings(Some(id)).await?;
    let mut body = centre_json(&centre);
    body["trainings"] = json!(trainings.iter().map(training_json).collect::<Vec<_>>());
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub summary_fr: String,
    #[serde(default)]
    pub summary_en: String,
    #[serde(default)]
    pub partners: Vec<String>,
    #[serde(default)]
    pub themes: Vec<String>,
}

async fn write_profile(state: &AppState, caller: &Caller, id: i64, body: &ProfileBody) -> AppResult<CentreRow> {
    centre_to_edit(state, caller, id).await?;
    let profile = Profile::parse(&body.city, &body.summary_fr, &body.summary_en, &body.partners, &body.themes)?;
    state.db.save_centre_profile(id, &profile, &caller.audit_name()).await?;
    centre_or_404(state, id).await
}

pub async fn save_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<ProfileBody>,
) -> AppResult<Json<Value>> {
    Ok(Json(centre_json(&write_profile(&state, &caller, id, &body).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingBody {
    pub level: String,
    pub title: String,
    pub year: i64,
    pub places: i64,
    pub enrolled: i64,
}

pub async fn save_training(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    ApiJson(body): ApiJson<TrainingBody>,
) -> AppResult<(StatusCode, Json<Value>)> {
    centre_to_edit(&state, &caller, id).await?;
    let training = Training::parse(&body.level, &body.title, body.year, body.places, body.enrolled)?;
    state.db.save_training(id, &training, &caller.audit_name()).await?;
    show(State(state), Id(id)).await.map(|body| (StatusCode::CREATED, body))
}

struct CentreLine {
    id: i64,
    organisation: String,
    title: String,
    city: String,
    themes: String,
    enrolled: String,
}

#[derive(Template)]
#[template(path = "centres.html")]
struct CentresPage {
    chrome: Chrome,
    centres: Vec<CentreLine>,
    enrolled: String,
    chart_svg: Option<String>,
}

/// Students enrolled by level, a bar each, levels in the seed's order.
fn by_level_chart(chrome: &Chrome, trainings: &[TrainingRow], title: &str) -> Option<String> {
    if trainings.is_empty() {
        return None;
    }
    let bins = TrainingLevel::ALL
        .iter()
        .map(|level| {
            let enrolled: i64 =
                trainings.iter().filter(|t| t.training.level == *level).map(|t| t.training.enrolled).sum();
            (chrome.tr.t(&format!("level-{}", level.as_str())), enrolled.max(0) as u64)
        })
        .collect();
    let (x_label, y_label) = (chrome.tr.t("centres-level"), chrome.tr.t("centres-students"));
    Some(chart::histogram(&Histogram { title, x_label: &x_label, y_label: &y_label, bins }))
}

pub async fn centres_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let locale = chrome.tr.locale;
    let rows = state.db.centres().await?;
    let trainings = state.db.trainings(None).await?;
    let enrolled = locale.integer(rows.iter().map(|c| c.enrolled).sum());
    let centres = rows
        .into_iter()
        .map(|c| CentreLine {
            id: c.id,
            organisation: c.organisation,
            title: c.title,
            city: c.profile.city,
            themes: c.profile.themes.join(", "),
            enrolled: locale.integer(c.enrolled),
        })
        .collect();
    let chart_svg = by_level_chart(&chrome, &trainings, &chrome.tr.t("centres-chart-title"));
    Ok(render(&CentresPage { chrome, centres, enrolled, chart_svg }, StatusCode::OK))
}

struct TrainingLine {
    level: String,
    title: String,
    year: String,
    places: String,
    enrolled: String,
}

#[derive(Template)]
#[template(path = "centre.html")]
struct CentrePage {
    chrome: Chrome,
    id: i64,
    organisation: String,
    title: String,
    city: String,
    summary: String,
    partners: Vec<String>,
    themes: Vec<String>,
    trainings: Vec<TrainingLine>,
    chart_svg: Option<String>,
    /// The reader keeps this centre: the forms are shown, filled with what is there.
    editable: bool,
    partners_text: String,
    themes_text: String,
    summary_fr: String,
    summary_en: String,
    levels: Vec<(&'static str, String)>,
    /// The training form as typed (empty but for the year at first), and what is wrong with it.
    form: TrainingForm,
    errors: FormErrors,
}

pub async fn centre_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let year = grappe_domain::calendar::year_of(grappe_db::now_ms()).to_string();
    let form = TrainingForm { year, ..TrainingForm::default() };
    centre_response(&state, &caller, chrome, id, form, FormErrors::default(), StatusCode::OK).await
}

/// A centre's page: its profile, its offer, and for its coordinators the forms (the training
/// form as typed, with what is wrong with it).
async fn centre_response(
    state: &AppState,
    caller: &Caller,
    chrome: Chrome,
    id: i64,
    form: TrainingForm,
    errors: FormErrors,
    status: StatusCode,
) -> Result<Response, AppError> {
    let locale = chrome.tr.locale;
    let centre = centre_or_404(state, id).await?;
    let rows = state.db.trainings(Some(id)).await?;
    // Enrolled by year, oldest first: the offer growing (or not).
    let mut by_year: BTreeMap<i64, i64> = BTreeMap::new();
    for row in &rows {
        *by_year.entry(row.training.year).or_default() += row.training.enrolled;
    }
    let chart_svg = (!by_year.is_empty()).then(|| {
        let (title, x_label, y_label) =
            (chrome.tr.t("centre-chart-title"), chrome.tr.t("centres-year"), chrome.tr.t("centres-students"));
        let bins = by_year.iter().map(|(year, enrolled)| (year.to_string(), (*enrolled).max(0) as u64)).collect();
        chart::histogram(&Histogram { title: &title, x_label: &x_label, y_label: &y_label, bins })
    });
    let trainings = rows
        .iter()
        .map(|row| TrainingLine {
            level: chrome.tr.t(&format!("level-{}", row.training.level.as_str())),
            title: row.training.title.clone(),
            year: format!("{}-{}", row.training.year, row.training.year + 1),
            places: locale.integer(row.training.places),
            enrolled: locale.integer(row.training.enrolled),
        })
        .collect();
    let levels =
        TrainingLevel::ALL.iter().map(|l| (l.as_str(), chrome.tr.t(&format!("level-{}", l.as_str())))).collect();
    let profile = &centre.profile;
    let page = CentrePage {
        id,
        editable: may_edit(caller, &centre),
        summary: locale.pick(&profile.summary_fr, &profile.summary_en).to_owned(),
        partners_text: profile.partners.join("\n"),
        themes_text: profile.themes.join("\n"),
        summary_fr: profile.summary_fr.clone(),
        summary_en: profile.summary_en.clone(),
        city: profile.city.clone(),
        partners: profile.partners.clone(),
        themes: profile.themes.clone(),
        organisation: centre.organisation,
        title: centre.title,
        trainings,
        chart_svg,
        levels,
        form,
        errors,
        chrome,
    };
    Ok(render(&page, status))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ProfileForm {
    csrf: String,
    city: String,
    summary_fr: String,
    summary_en: String,
    partners: String,
    themes: String,
}

pub async fn profile_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<ProfileForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let split = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    let body = ProfileBody {
        city: form.city,
        summary_fr: form.summary_fr,
        summary_en: form.summary_en,
        partners: split(&form.partners),
        themes: split(&form.themes),
    };
    let done = write_profile(&state, &caller, id, &body);
    checked_form(chrome, &caller, &form.csrf, &format!("/centres/{id}"), done).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TrainingForm {
    csrf: String,
    level: String,
    title: String,
    year: String,
    places: String,
    enrolled: String,
}

impl TrainingForm {
    /// The training typed, or what is wrong with it in the reader's language: each field that is
    /// not a whole number, else the first rule of [`Training::parse`] it breaks.
    fn training(&self, tr: &crate::kit::i18n::Tr) -> Result<Training, FormErrors> {
        let mut errors = FormErrors::default();
        let mut whole = |field: &'static str, text: &str| {
            let number = text.chars().filter(|c| !c.is_whitespace() && *c != '\u{202f}').collect::<String>().parse();
            if number.is_err() {
                errors.fields.push((field, tr.t(&format!("centre-error-{field}"))));
            }
            number.ok()
        };
        let (year, places, enrolled) =
            (whole("year", &self.year), whole("places", &self.places), whole("enrolled", &self.enrolled));
        let (Some(year), Some(places), Some(enrolled)) = (year, places, enrolled) else { return Err(errors) };
        Training::parse(&self.level, &self.title, year, places, enrolled).map_err(
            |InvalidInput::Field { field, .. }| FormErrors {
                fields: vec![(field, tr.t(&format!("centre-error-{field}")))],
                form: None,
            },
        )
    }
}

pub async fn training_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<TrainingForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let chrome = match form_checked(chrome, &caller, &form.csrf) {
        Ok(chrome) => chrome,
        Err(refusal) => return Ok(*refusal),
    };
    if let Err(refused) = centre_to_edit(&state, &caller, id).await {
        return Ok(message_page(chrome, refused.status(), refused.to_string()));
    }
    match form.training(&chrome.tr) {
        Ok(training) => {
            let done = state.db.save_training(id, &training, &caller.audit_name()).await;
            after_form(chrome, &format!("/centres/{id}#trainings"), done.map_err(AppError::from))
        }
        // What was typed stays, with what is wrong next to its field.
        Err(errors) => {
            centre_response(&state, &caller, chrome, id, form, errors, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}
