//! The account pages: logging in and out (a session cookie, CSRF-protected forms), and the
//! caller's account (organisation, roles, API tokens).

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use grappe_db::sha256_hex;
use grappe_domain::account::{Scope, ScopeKind};
use serde::Deserialize;

use crate::account::api;
use crate::kit::caller::{self, Caller, SESSION_COOKIE};
use crate::kit::error::AppError;
use crate::kit::page::{Chrome, NextQuery, after_form, form_target, iso_date, local_path, render};
use crate::kit::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    email: String,
    error: Option<String>,
}

pub async fn login_form(
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Query(query): Query<NextQuery>,
) -> Response {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let page = LoginPage { chrome, next: local_path(query.next.as_deref()), email: String::new(), error: None };
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

pub async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    let client = api::client_ip(&state, peer, &headers);
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let next = local_path(form.next.as_deref());
    let failed = |chrome: Chrome, key: &str, status| {
        let error = Some(chrome.tr.t(key));
        render(&LoginPage { chrome, next: next.clone(), email: form.email.clone(), error }, status)
    };
    if !caller::check_csrf(&caller, &form.csrf) {
        return Ok(failed(chrome, "login-csrf", StatusCode::FORBIDDEN));
    }
    let user = match api::authenticate(&state, client, &form.email, form.password.clone()).await {
        Ok(user) => user,
        Err(AppError::Unauthenticated) => {
            return Ok(failed(chrome, "login-failed", StatusCode::UNAUTHORIZED));
        }
        Err(AppError::TooManyRequests { .. }) => {
            return Ok(failed(chrome, "login-throttled", StatusCode::TOO_MANY_REQUESTS));
        }
        Err(other) => return Err(other),
    };
    let session = caller::new_secret();
    let ttl = state.config.session_ttl;
    let expires_at = grappe_db::now_ms() + ttl.as_millis() as i64;
    state.db.create_session(&sha256_hex(session.as_bytes()), user.id, expires_at).await?;
    let mut response = Redirect::to(&next).into_response();
    let secure = state.config.secure_cookies;
    let name = caller::session_cookie_name(SESSION_COOKIE, secure);
    let cookie = caller::set_cookie(&name, &session, ttl.as_secs(), secure);
    response.headers_mut().append(SET_COOKIE, cookie);
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Form(form): Form<crate::kit::extract::CsrfForm>,
) -> Result<Response, AppError> {
    if !caller::check_csrf(&caller, &form.csrf) {
        return Err(AppError::Forbidden("the form expired; reload the page and try again"));
    }
    let secure = state.config.secure_cookies;
    let name = caller::session_cookie_name(SESSION_COOKIE, secure);
    if let Some(session) = caller::cookie(&headers, &name) {
        state.db.delete_session(&sha256_hex(session.as_bytes())).await?;
    }
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().append(SET_COOKIE, caller::set_cookie(&name, "", 0, secure));
    Ok(response)
}

struct RoleView {
    role: String,
    scope: String,
}

struct TokenView {
    id: i64,
    name: String,
    created: String,
    revoked: bool,
}

/// A grant's scope in words: everywhere, or the object's kind and name (`le projet llm`).
pub(crate) async fn scope_in_words(
    state: &AppState,
    tr: &crate::kit::i18n::Tr,
    scope: &Scope,
) -> Result<String, AppError> {
    let Scope::Object { kind, id } = scope else { return Ok(tr.t("role-scope-global")) };
    let name = match kind {
        ScopeKind::Project => state.db.project(*id).await?.map(|project| project.name),
        ScopeKind::Call => {
            state.db.call(*id).await?.map(|call| tr.locale.pick(&call.title_fr, &call.title_en).to_owned())
        }
        ScopeKind::Challenge => state.db.challenge(*id).await?.map(|challenge| challenge.title),
        ScopeKind::Organisation => {
            state.db.list_organisations().await?.into_iter().find(|org| org.id == *id).map(|org| org.name)
        }
    };
    let kind_word = tr.t(&format!("scope-{}", kind.as_str()));
    Ok(format!("{kind_word} {}", name.unwrap_or_else(|| format!("#{id}"))))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    name: String,
    email: String,
    organisation: Option<String>,
    roles: Vec<RoleView>,
    tokens: Vec<TokenView>,
}

pub async fn account(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(user) = caller.user.clone() else {
        return Err(AppError::BadRequest("the admin token has no account page".into()));
    };
    let organisations = state.db.list_organisations().await?;
    let organisation = organisations.into_iter().find(|org| Some(org.id) == user.organisation_id).map(|org| org.name);
    let mut roles = Vec::new();
    for row in state.db.grants_of(user.id).await? {
        roles.push(RoleView {
            role: chrome.tr.t(&format!("role-{}", row.grant.role.as_str())),
            scope: scope_in_words(&state, &chrome.tr, &row.grant.scope).await?,
        });
    }
    let tokens = state
        .db
        .api_tokens_of(user.id)
        .await?
        .into_iter()
        .map(|token| TokenView {
            id: token.id,
            name: token.name,
            created: iso_date(token.created_at),
            revoked: token.revoked_at.is_some(),
        })
        .collect();
    let page = AccountPage { chrome, name: user.name, email: user.email, organisation, roles, tokens };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Revokes one of the caller's API tokens from the account page.
pub async fn revoke_token_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(refusal) => return Ok(*refusal),
    };
    let done = super::api::revoke_own_token(&state, &caller, id).await;
    after_form(chrome, "/account#tokens", done)
}
