//! The administrators' page, `/admin`: users with their roles, organisations and projects, and
//! the forms that create them and grant roles, so that nothing needs curl. Every form goes
//! through the API's own checks (`api::create_user_from`, `api::grant`, `api::new_organisation`,
//! `compute::new_project`); people are named by e-mail, objects chosen from lists.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Form};
use grappe_domain::account::{Email, Role};
use serde::Deserialize;

use crate::account::api;
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::page::{Chrome, checked_form, render};
use crate::kit::state::AppState;

struct UserLine {
    name: String,
    email: String,
    roles: String,
}

struct ProjectLine {
    name: String,
    gpu_hours: String,
    cpu_hours: String,
    members: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    users: Vec<UserLine>,
    /// (id, name, kind in words)
    organisations: Vec<(i64, String, String)>,
    projects: Vec<ProjectLine>,
    /// (value, label): the roles, and what a role may be granted over.
    roles: Vec<(String, String)>,
    scopes: Vec<(String, String)>,
}

/// The most users, calls and challenges listed (the API pages through all).
const USERS_SHOWN: i64 = 500;
const LISTED: i64 = 500;

pub async fn admin_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let tr = chrome.tr;
    let projects = state.db.list_projects().await?;
    let organisations = state.db.list_organisations().await?;
    let roles =
        Role::ALL.iter().map(|role| (role.as_str().to_owned(), tr.t(&format!("role-{}", role.as_str())))).collect();
    // Every object a role may be granted over, in words: the grant form's choices, and the
    // words of the grants listed (read here once, not once per grant).
    let mut scopes = vec![(String::new(), tr.t("role-scope-global"))];
    scopes.extend(
        projects.iter().map(|p| (format!("project:{}", p.id), format!("{} {}", tr.t("scope-project"), p.name))),
    );
    scopes.extend(
        organisations
            .iter()
            .map(|o| (format!("organisation:{}", o.id), format!("{} {}", tr.t("scope-organisation"), o.name))),
    );
    for call in state.db.calls(LISTED).await? {
        let title = tr.locale.pick(&call.title_fr, &call.title_en);
        scopes.push((format!("call:{}", call.id), format!("{} {title}", tr.t("scope-call"))));
    }
    for challenge in state.db.challenges(LISTED).await? {
        scopes
            .push((format!("challenge:{}", challenge.id), format!("{} {}", tr.t("scope-challenge"), challenge.title)));
    }
    let listed = state.db.list_users(0, USERS_SHOWN).await?;
    let ids: Vec<i64> = listed.iter().map(|user| user.id).collect();
    let grants = state.db.grants_of_users(&ids).await?;
    let mut users = Vec::with_capacity(listed.len());
    for user in listed {
        let mut words = Vec::new();
        for row in grants.iter().filter(|row| row.user_id == user.id) {
            let key = match &row.grant.scope {
                grappe_domain::account::Scope::Global => String::new(),
                scope => scope.to_string(),
            };
            let scope = match scopes.iter().find(|(value, _)| *value == key) {
                Some((_, label)) => label.clone(),
                // An object past the lists' length: read on its own.
                None => super::pages::scope_in_words(&state, &tr, &row.grant.scope).await?,
            };
            words.push(format!("{} ({scope})", tr.t(&format!("role-{}", row.grant.role.as_str()))));
        }
        users.push(UserLine { name: user.name, email: user.email, roles: words.join(", ") });
    }
    let members = state.db.project_member_counts().await?;
    let project_lines = projects
        .iter()
        .map(|project| ProjectLine {
            name: project.name.clone(),
            gpu_hours: tr.locale.integer(project.gpu_hours),
            cpu_hours: tr.locale.integer(project.cpu_hours),
            members: tr.count("project-members", members.get(&project.id).copied().unwrap_or(0)),
        })
        .collect();
    let organisations =
        organisations.into_iter().map(|org| (org.id, org.name, tr.t(&format!("org-kind-{}", org.kind)))).collect();
    let page = AdminPage { chrome, users, organisations, projects: project_lines, roles, scopes };
    Ok(render(&page, StatusCode::OK))
}

/// A user named by e-mail on a form.
async fn user_by_email(state: &AppState, email: &str) -> AppResult<i64> {
    let parsed = Email::parse(email.trim())?;
    let user = state.db.user_by_email(&parsed).await?;
    Ok(user.ok_or_else(|| AppError::NotFound(format!("no user with the e-mail {}", email.trim())))?.id)
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    organisation: String,
}

pub async fn create_user_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<UserForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let fields = api::NewUserFields {
        name: form.name.clone(),
        email: form.email.clone(),
        password: form.password.clone(),
        organisation_id: form.organisation.parse().ok(),
    };
    let actor = caller.audit_name();
    let done = api::create_user_from(&state.db, fields, &actor);
    checked_form(chrome, &caller, &form.csrf, "/admin#users", done).await
}

#[derive(Deserialize)]
pub struct GrantForm {
    #[serde(default)]
    csrf: String,
    email: String,
    role: String,
    #[serde(default)]
    scope: String,
}

pub async fn grant_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<GrantForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let done = async {
        let user = user_by_email(&state, &form.email).await?;
        api::grant(&state, &caller, user, &form.role, &form.scope).await
    };
    checked_form(chrome, &caller, &form.csrf, "/admin#users", done).await
}

#[derive(Deserialize)]
pub struct OrganisationForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    organisation: api::NewOrganisation,
}

pub async fn create_organisation_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<OrganisationForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let done = api::new_organisation(&state, &caller, &form.organisation);
    checked_form(chrome, &caller, &form.csrf, "/admin#organisations", done).await
}

/// A project as the form gives it: hours as typed, members by e-mail.
#[derive(Deserialize)]
pub struct ProjectForm {
    #[serde(default)]
    csrf: String,
    name: String,
    gpu_hours: String,
    cpu_hours: String,
    #[serde(default)]
    storage_gb: String,
    /// E-mails, separated by commas, spaces or lines.
    #[serde(default)]
    members: String,
}

pub async fn create_project_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<ProjectForm>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let done = async {
        let hours = |field: &str, text: &str| {
            let text = text.trim();
            text.parse::<i64>().map_err(|_| AppError::Invalid(format!("`{field}`: a whole number, not `{text}`")))
        };
        let mut members = Vec::new();
        for email in form.members.split([',', ' ', '\n', '\r', ';']).filter(|email| !email.is_empty()) {
            members.push(user_by_email(&state, email).await?);
        }
        let body = crate::compute::NewProjectBody {
            name: form.name.clone(),
            gpu_hours: hours("gpu_hours", &form.gpu_hours)?,
            cpu_hours: hours("cpu_hours", &form.cpu_hours)?,
            storage_gb: if form.storage_gb.trim().is_empty() { 0 } else { hours("storage_gb", &form.storage_gb)? },
            valid_from: None,
            valid_until: None,
            members,
            principal_investigator: None,
        };
        crate::compute::new_project(&state, &caller, body).await
    };
    checked_form(chrome, &caller, &form.csrf, "/admin#projects", done).await
}
