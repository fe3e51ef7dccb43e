//! The server itself: health, Prometheus metrics, background loops' leases, the style sheet,
//! the interface language.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::response::{IntoResponse, Redirect, Response};
use grappe_domain::account::Role;
use grappe_domain::policy::Access;
use serde_json::{Value, json};

use crate::kit::caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::i18n::Locale;
use crate::kit::page::{LANG_COOKIE, NextQuery, local_path};
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::{GlobalRole, Public};
    use Kind::{Api, Page};
    use Method::Get;
    vec![
        route(Api, Get, "/healthz", Public, "Liveness and database reachability", healthz),
        route(Api, Get, "/metrics", Public, "Prometheus metrics", metrics),
        route(
            Api,
            Get,
            "/api/v1/system/leases",
            GlobalRole(Role::Admin),
            "Background loops: which process holds each lease",
            leases,
        ),
        route(Page, Get, "/lang/{code}", Public, "Choose the interface language", set_language),
        route(Page, Get, "/static/app.css", Public, "Style sheet", stylesheet),
        route(Page, Get, "/static/job.js", Public, "The job page's script (follows the log)", job_script),
        route(
            Page,
            Get,
            "/static/gateway.js",
            Public,
            "The gateway page's script (streams the playground)",
            gateway_script,
        ),
    ]
}

pub async fn healthz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    state.db.ping().await.map_err(|error| AppError::Unavailable(format!("database: {error}")))?;
    Ok(Json(json!({ "status": "ok", "database": state.db.backend().as_str() })))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let here = f64::from(u8::from(state.ticker_here.load(Ordering::Relaxed)));
    let extra = [("grappe_lease_held", "lease=\"ticker\"".to_owned(), here)];
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(&extra)).into_response()
}

pub async fn leases(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let leases: Vec<Value> = state
        .db
        .leases()
        .await?
        .iter()
        .map(|lease| {
            json!({
                "name": lease.name, "holder": lease.holder, "acquired_at": lease.acquired_at,
                "expires_at": lease.expires_at, "ticks": lease.ticks,
            })
        })
        .collect();
    Ok(Json(json!({
        "instance": &*state.instance,
        "running_here": if state.ticker_here.load(Ordering::Relaxed) { vec!["ticker"] } else { vec![] },
        "leases": leases,
    })))
}

pub async fn stylesheet() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../static/app.css")).into_response()
}

pub async fn gateway_script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/gateway.js")).into_response()
}

pub async fn job_script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../static/job.js")).into_response()
}

pub async fn set_language(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(query): Query<NextQuery>,
) -> Result<Response, AppError> {
    let locale = Locale::parse(&code).ok_or_else(|| AppError::NotFound(format!("no language `{code}`")))?;
    let mut response = Redirect::to(&local_path(query.next.as_deref())).into_response();
    let one_year_s = 365 * 24 * 3600;
    response
        .headers_mut()
        .append(SET_COOKIE, caller::set_cookie(LANG_COOKIE, locale.code(), one_year_s, state.config.secure_cookies));
    Ok(response)
}
