//! The accounts API: tokens by password, the caller, API tokens, users and their role grants,
//! organisations, the audit log. Wire types are built here by hand from rows; nothing in the
//! domain or the database layer derives `Serialize`.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{ApiTokenRow, Db, GrantRow, NewUser, UserRow, sha256_hex};
use grappe_domain::account::{DisplayName, Email, OrganisationProfile, Password, RoleGrant, Scope};
use grappe_domain::policy::{self, Actor};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};

use crate::kit::caller::{self, Caller};
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::{ApiJson, ApiQuery, Id};
use crate::kit::state::AppState;

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

pub fn user_json(user: &UserRow, grants: &[GrantRow]) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "organisation_id": user.organisation_id,
        "disabled": user.disabled,
        "created_at": user.created_at,
        "roles": grants.iter().map(grant_json).collect::<Vec<_>>(),
    })
}

fn grant_json(grant: &GrantRow) -> Value {
    json!({ "id": grant.id, "role": grant.grant.role.as_str(), "scope": grant.grant.scope.to_string() })
}

fn token_json(token: &ApiTokenRow) -> Value {
    json!({ "id": token.id, "name": token.name, "created_at": token.created_at, "revoked_at": token.revoked_at })
}

#[derive(Deserialize)]
pub struct LoginToken {
    email: String,
    password: String,
    #[serde(default)]
    name: Option<String>,
}

/// The client's address: the TCP peer, or, behind a trusted reverse proxy
/// (`GRAPPE_TRUSTED_PROXY=1`), the last address the proxy appended to `X-Forwarded-For`.
pub fn client_ip(state: &AppState, peer: SocketAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    if state.config.trusted_proxy {
        let forwarded = headers.get("x-forwarded-for").and_then(|value| value.to_str().ok());
        if let Some(ip) = forwarded.and_then(|list| list.rsplit(',').next()).and_then(|ip| ip.trim().parse().ok()) {
            return ip;
        }
    }
    peer.ip()
}

/// Checks email and password under the login throttle; the one path to a user by password.
pub async fn authenticate(state: &AppState, client: IpAddr, email: &str, password: String) -> AppResult<UserRow> {
    // Keyed on the parsed address (at most 254 bytes), never on raw input of any size.
    let parsed = Email::parse(email).ok();
    let account = parsed.as_ref().map_or("(invalid)", |email| email.as_str()).to_owned();
    let address = client.to_string();
    state.login_throttle.check(&account, &address)?;
    let user = match &parsed {
        Some(email) => state.db.user_by_email(email).await?,
        None => None,
    };
    let user = user.filter(|user| !user.disabled);
    if !caller::verify_password(user.as_ref().map(|user| user.password_hash.clone()), password).await {
        state.login_throttle.failed(&account, &address);
        return Err(AppError::Unauthenticated);
    }
    state.login_throttle.succeeded(&account, &address);
    user.ok_or(AppError::Unauthenticated)
}

pub async fn login_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<LoginToken>,
) -> AppResult<Response> {
    let client = client_ip(&state, peer, &headers);
    let user = authenticate(&state, client, &body.email, body.password).await?;
    let name = DisplayName::parse("name", body.name.as_deref().unwrap_or("grappe cli"))?;
    issue_token(&state, user.id, name.as_str()).await
}

async fn issue_token(state: &AppState, user_id: i64, name: &str) -> AppResult<Response> {
    let token = caller::new_api_token();
    let row = state.db.create_api_token(user_id, name, &sha256_hex(token.as_bytes())).await?;
    let mut body = token_json(&row);
    body["token"] = Value::String(token);
    Ok(created(body))
}

pub async fn me(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> AppResult<Json<Value>> {
    match (&caller.actor, &caller.user) {
        (Actor::AdminToken, _) => Ok(Json(json!({
            "id": null, "email": null, "name": "GRAPPE_ADMIN_TOKEN",
            "roles": [{ "id": null, "role": "admin", "scope": "global" }],
        }))),
        (_, Some(user)) => {
            let mut body = user_json(user, &state.db.grants_of(user.id).await?);
            // A browser script writing with the session cookie sends this as X-CSRF-Token.
            if caller.via == caller::Via::Session {
                body["csrf_token"] = Value::String(caller.csrf.clone());
            }
            Ok(Json(body))
        }
        _ => Err(AppError::Unauthenticated),
    }
}

fn caller_user_id(caller: &Caller) -> AppResult<i64> {
    caller
        .actor
        .user_id()
        .ok_or(AppError::BadRequest("the admin token has no account of its own; use a user's token".into()))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> AppResult<Json<Value>> {
    let tokens = state.db.api_tokens_of(caller_user_id(&caller)?).await?;
    Ok(Json(json!({ "items": tokens.iter().map(token_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
pub struct NewToken {
    name: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewToken>,
) -> AppResult<Response> {
    let name = DisplayName::parse("name", &body.name)?;
    issue_token(&state, caller_user_id(&caller)?, name.as_str()).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<StatusCode> {
    revoke_own_token(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a token the caller may manage (its own, or any for an administrator): the one path
/// for the API and the account page.
pub async fn revoke_own_token(state: &AppState, caller: &Caller, id: i64) -> AppResult<()> {
    // Someone else's token answers 404, as if it did not exist: its existence is not disclosed.
    let token = state.db.api_token(id).await?.filter(|token| policy::may_manage_user(&caller.actor, token.user_id));
    let token = token.ok_or_else(|| AppError::NotFound(format!("token {id} not found")))?;
    state.db.revoke_api_token(token.id, &caller.audit_name()).await?;
    Ok(())
}

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    50
}

const MAX_PAGE: i64 = 500;

pub async fn list_users(State(state): State<AppState>, ApiQuery(page): ApiQuery<Page>) -> AppResult<Json<Value>> {
    let limit = page.limit.clamp(1, MAX_PAGE);
    let users = state.db.list_users(page.after, limit).await?;
    let mut items = Vec::with_capacity(users.len());
    for user in &users {
        items.push(user_json(user, &state.db.grants_of(user.id).await?));
    }
    let next = (users.len() as i64 == limit).then(|| users.last().map(|user| user.id)).flatten();
    Ok(Json(json!({ "items": items, "next_after": next })))
}

#[derive(Deserialize)]
pub struct NewUserFields {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub organisation_id: Option<i64>,
}

/// Creates a user from raw fields: the one path for the API, the CLI and the demo.
pub async fn create_user_from(db: &Db, body: NewUserFields, actor: &str) -> AppResult<UserRow> {
    let name = DisplayName::parse("name", &body.name)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password)?;
    let password_hash = caller::hash_password(password).await?;
    let new_user = NewUser {
        email: &email,
        name: name.as_str(),
        password_hash: &password_hash,
        organisation_id: body.organisation_id,
    };
    Ok(db.create_user(new_user, actor).await?)
}

pub async fn create_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewUserFields>,
) -> AppResult<Response> {
    let user = create_user_from(&state.db, body, &caller.audit_name()).await?;
    Ok(created(user_json(&user, &[])))
}

pub async fn get_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(id): Id,
) -> AppResult<Json<Value>> {
    if !policy::may_manage_user(&caller.actor, id) {
        return Err(AppError::forbidden());
    }
    let user = state.db.user_by_id(id).await?.ok_or_else(|| AppError::NotFound(format!("user {id} not found")))?;
    Ok(Json(user_json(&user, &state.db.grants_of(id).await?)))
}

#[derive(Deserialize)]
pub struct NewGrant {
    role: String,
    #[serde(default)]
    scope: String,
}

pub async fn grant_role(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Id(user_id): Id,
    ApiJson(body): ApiJson<NewGrant>,
) -> AppResult<Response> {
    let row = grant(&state, &caller, user_id, &body.role, &body.scope).await?;
    Ok(created(grant_json(&row)))
}

/// Grants a role over something that exists: the one path for the API and the admin page.
pub async fn grant(state: &AppState, caller: &Caller, user_id: i64, role: &str, scope: &str) -> AppResult<GrantRow> {
    let grant = RoleGrant::parse(role, scope)?;
    if state.db.user_by_id(user_id).await?.is_none() {
        return Err(AppError::NotFound(format!("user {user_id} not found")));
    }
    if let Scope::Object { kind, id } = grant.scope
        && !state.db.scope_exists(kind, id).await?
    {
        return Err(AppError::NotFound(format!("{kind}:{id} not found: a role is granted over something that exists")));
    }
    Ok(state.db.grant_role(user_id, &grant, &caller.audit_name()).await?)
}

pub async fn revoke_grant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((user_id, grant_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    let parse = |raw: &str| raw.parse::<i64>().map_err(|_| AppError::NotFound(format!("no object with id `{raw}`")));
    state.db.revoke_grant(parse(&user_id)?, parse(&grant_id)?, &caller.audit_name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_organisations(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let organisations = state.db.list_organisations().await?;
    let items: Vec<Value> = organisations
        .iter()
        .map(|org| json!({ "id": org.id, "name": org.name, "kind": org.kind, "size_class": org.size_class }))
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
pub struct NewOrganisation {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub size_class: Option<String>,
}

pub async fn create_organisation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewOrganisation>,
) -> AppResult<Response> {
    let (id, name, profile) = new_organisation(&state, &caller, &body).await?;
    Ok(created(json!({
        "id": id, "name": name.as_str(), "kind": profile.kind().as_str(),
        "size_class": profile.size_class().map(|size| size.as_str()),
    })))
}

/// Checks and creates an organisation: the one path for the API and the admin page.
pub async fn new_organisation(
    state: &AppState,
    caller: &Caller,
    body: &NewOrganisation,
) -> AppResult<(i64, DisplayName, OrganisationProfile)> {
    let name = DisplayName::parse("name", &body.name)?;
    let profile = OrganisationProfile::parse(&body.kind, body.size_class.as_deref().filter(|size| !size.is_empty()))?;
    let id = state.db.create_organisation(name.as_str(), profile).await?;
    state.db.audit(&caller.audit_name(), "organisation.create", &format!("organisation:{id}"), name.as_str()).await?;
    Ok((id, name, profile))
}

#[derive(Deserialize)]
pub struct AuditPage {
    #[serde(default = "i64_max")]
    before: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn i64_max() -> i64 {
    i64::MAX
}

pub async fn audit(State(state): State<AppState>, ApiQuery(page): ApiQuery<AuditPage>) -> AppResult<Json<Value>> {
    let events = state.db.audit_events(page.before, page.limit.clamp(1, MAX_PAGE)).await?;
    let chain_break = state.db.verify_audit_chain().await?;
    let items: Vec<Value> = events
        .iter()
        .map(|event| {
            json!({
                "seq": event.seq, "at": event.at, "actor": event.actor, "action": event.action,
                "object": event.object, "detail": event.detail, "hash": event.hash, "prev_hash": event.prev_hash,
            })
        })
        .collect();
    Ok(Json(json!({
        "items": items,
        "chain_ok": chain_break.is_none(),
        "chain_break_seq": chain_break.map(|broken| broken.seq),
    })))
}
