//! The jury's discussion of an application: its assigned, non-conflicted jurors talk it over
//! with the call's managers (a large spread between reviews is flagged for it). A juror joins
//! once its own review is in, as it reads the others' reviews only then, so that no one's
//! opinion is formed by the discussion before it is written down. Messages are kept, never
//! edited, and go into the audit chain; none is taken once the application is decided.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{ApplicationRow, MessageRow};
use grappe_domain::policy;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::state::AppState;

/// The most characters of one message.
pub const MAX_MESSAGE: usize = 4000;

/// The application whose discussion the caller may read and join: any for the call's managers;
/// for a juror, one assigned and not conflicted whose review it has written. Anyone who may
/// not read the application gets 404; a juror who has not reviewed it yet, 403 with the reason.
pub(crate) async fn discussed_application(state: &AppState, caller: &Caller, id: i64) -> AppResult<ApplicationRow> {
    let application = crate::calls::readable_application(state, caller, id).await?;
    if policy::may_manage_call(&caller.actor, application.call_id) {
        return Ok(application);
    }
    let Some(user) = caller.actor.user_id() else {
        return Err(AppError::NotFound(format!("application {id} not found")));
    };
    if !state.db.may_review(application.id, user).await? {
        return Err(AppError::NotFound(format!("application {id} not found")));
    }
    if !state.db.reviews(application.id).await?.iter().any(|review| review.user_id == user) {
        return Err(AppError::Forbidden("write your review first: the discussion opens to a juror once it is in"));
    }
    Ok(application)
}

pub fn message_json(message: &MessageRow) -> Value {
    json!({
        "id": message.id,
        "author": message.author,
        "body": message.body,
        "posted_at": message.posted_at,
    })
}

pub async fn messages(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let application = discussed_application(&state, &caller, id).await?;
    let items: Vec<Value> = state.db.messages(application.id).await?.iter().map(message_json).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    pub body: String,
}

/// Checks and posts a message: the one path for the API, the form and the demo.
pub async fn post_message(state: &AppState, caller: &Caller, id: i64, body: &str) -> AppResult<i64> {
    let application = discussed_application(state, caller, id).await?;
    let user = caller.actor.user_id().ok_or(AppError::Forbidden("messages are written by user accounts"))?;
    let text = body.trim();
    let stray_control = text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
    if text.is_empty() || text.chars().count() > MAX_MESSAGE || stray_control {
        return Err(AppError::Invalid(format!(
            "`body`: 1 to {MAX_MESSAGE} characters, lines but no other control characters"
        )));
    }
    let decided = state.db.decisions(application.call_id).await?.iter().any(|d| d.application_id == application.id);
    if decided {
        return Err(AppError::Conflict("the application is decided: its discussion is closed".into()));
    }
    Ok(state.db.post_message(&application, user, text).await?)
}

pub async fn post(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<MessageBody>,
) -> AppResult<Response> {
    let message = post_message(&state, &caller, id, &body.body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": message }))).into_response())
}
