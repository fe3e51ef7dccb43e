//! An application's page, for whoever may read it (its author, the call's managers, its
//! assigned jurors who are not conflicted; anyone else gets the page for a missing one): its
//! fields, its attachments (sent and removed by its author until the deadline), its saved
//! versions, the reviews as the reader may see them, and the jury's discussion. A juror
//! declares a conflict from here.

use askama::Template;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_db::{ApplicationRow, CallRow, now_ms};
use grappe_domain::policy;
use serde::Deserialize;

use crate::calls::attachments::{self, MAX_FILE_BYTES};
use crate::calls::discussion::{self, MAX_MESSAGE};
use crate::calls::{Phase, call_for, criteria, readable_application, strings};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::Time;
use crate::kit::multipart;
use crate::kit::page::{Chrome, after_form, form_target, not_found_page, render, url_encode};
use crate::kit::state::AppState;

struct FileLine {
    name: String,
    size: String,
    url: String,
    /// Where its removal form posts.
    remove: String,
}

struct VersionLine {
    version: i64,
    saved: Time,
    files: bool,
}

struct ReviewLine {
    juror: String,
    scores: Vec<String>,
    confidence: i64,
}

struct MessageLine {
    author: String,
    posted: Time,
    body: String,
}

/// The discussion as the reader sees it: the messages and whether they may post, or why not.
enum Discussion {
    Open { messages: Vec<MessageLine>, may_post: bool },
    Closed(String),
    Hidden,
}

#[derive(Template)]
#[template(path = "application.html")]
struct ApplicationPage {
    chrome: Chrome,
    call: CallRow,
    call_title: String,
    application: ApplicationRow,
    partners: String,
    keywords: String,
    requested: String,
    gpu_hours: String,
    updated: Time,
    editable: bool,
    juror: bool,
    files: Vec<FileLine>,
    versions: Vec<VersionLine>,
    criteria: Vec<String>,
    reviews: Vec<ReviewLine>,
    discussion: Discussion,
    max_message: usize,
}

/// The call and the application of a page's path, if the caller may read it.
async fn target(state: &AppState, caller: &Caller, id: &str, application: &str) -> Option<(CallRow, ApplicationRow)> {
    let (id, application) = (id.parse::<i64>().ok()?, application.parse::<i64>().ok()?);
    let application = readable_application(state, caller, application).await.ok()?;
    let call = call_for(state, id).await.ok()?;
    (application.call_id == call.id).then_some((call, application))
}

pub async fn application_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some((call, application)) = target(&state, &caller, &id, &application).await else {
        return Ok(not_found_page(chrome));
    };
    let locale = chrome.tr.locale;
    let user = caller.actor.user_id();
    let author = user == Some(application.submitted_by);
    let manager = policy::may_manage_call(&caller.actor, call.id);
    let juror = match user {
        Some(user) => !author && !manager && state.db.may_review(application.id, user).await?,
        None => false,
    };
    let files = attachments::list_for(&state, &application)
        .await?
        .iter()
        .map(|file| {
            let name = file["name"].as_str().unwrap_or_default().to_owned();
            FileLine {
                remove: format!(
                    "/calls/{}/applications/{}/attachments/{}/remove",
                    call.id,
                    application.id,
                    url_encode(&name)
                ),
                size: locale.bytes(file["size_bytes"].as_u64().unwrap_or(0)),
                url: file["url"].as_str().unwrap_or_default().to_owned(),
                name,
            }
        })
        .collect();
    let versions = state
        .db
        .application_versions(application.id)
        .await?
        .iter()
        .rev()
        .map(|v| VersionLine { version: v.version, saved: locale.datetime(v.saved_at), files: v.attachments.is_some() })
        .collect();
    let all_reviews = state.db.reviews(application.id).await?;
    let own_in = all_reviews.iter().any(|review| Some(review.user_id) == user);
    let names: Vec<(i64, String)> =
        state.db.jurors(call.id).await?.into_iter().map(|juror| (juror.user_id, juror.name)).collect();
    let keys: Vec<(String, String)> =
        criteria(&call).into_iter().map(|c| (c.key.clone(), locale.pick(&c.fr, &c.en).to_owned())).collect();
    let reviews = all_reviews
        .iter()
        .filter(|_| manager || own_in)
        .enumerate()
        .map(|(i, review)| {
            let scores: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&review.scores).unwrap_or_default();
            ReviewLine {
                juror: match names.iter().find(|(id, _)| *id == review.user_id) {
                    Some((_, name)) if manager || Some(review.user_id) == user => name.clone(),
                    _ => format!("R{}", i + 1),
                },
                scores: keys
                    .iter()
                    .map(|(key, _)| {
                        scores
                            .get(key)
                            .and_then(serde_json::Value::as_f64)
                            .map_or(String::new(), |s| locale.trimmed(s, 1))
                    })
                    .collect(),
                confidence: review.confidence,
            }
        })
        .collect();
    let discussion = match discussion::discussed_application(&state, &caller, application.id).await {
        Ok(_) => {
            let decided = state.db.decisions(call.id).await?.iter().any(|d| d.application_id == application.id);
            let messages = state
                .db
                .messages(application.id)
                .await?
                .into_iter()
                .map(|m| MessageLine { author: m.author, posted: locale.datetime(m.posted_at), body: m.body })
                .collect();
            Discussion::Open { messages, may_post: !decided }
        }
        Err(AppError::Forbidden(_)) => Discussion::Closed(chrome.tr.t("call-discussion-after-review")),
        Err(_) => Discussion::Hidden,
    };
    let page = ApplicationPage {
        call_title: locale.pick(&call.title_fr, &call.title_en).to_owned(),
        partners: strings(&application.partners).join(", "),
        keywords: strings(&application.keywords).join(", "),
        requested: locale.money(application.requested_cents),
        gpu_hours: locale.integer(application.requested_gpu_hours),
        updated: locale.datetime(application.updated_at),
        editable: author && Phase::of(&call, now_ms()) == Phase::Open,
        juror,
        files,
        versions,
        criteria: keys.into_iter().map(|(_, name)| name).collect(),
        reviews,
        discussion,
        max_message: MAX_MESSAGE,
        application,
        call,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

fn here(id: i64, application: i64, anchor: &str) -> String {
    format!("/calls/{id}/applications/{application}#{anchor}")
}

/// A file sent from the page's form (`multipart/form-data`: csrf, version, file).
pub async fn attachment_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application)): Path<(String, i64)>,
    body: Body,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    // The file, the fields and the parts' headers.
    let (bytes, boundary) = multipart::read(&headers, body, MAX_FILE_BYTES + 64 * 1024).await?;
    let parts = multipart::parts_of(&bytes, &boundary)?;
    let csrf = multipart::text(&parts, "csrf").unwrap_or("");
    let (chrome, id) = match form_target(chrome, &caller, csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let read = multipart::text(&parts, "version").and_then(|v| v.parse().ok()).unwrap_or(0);
    let done = match parts.iter().find(|part| part.name == "file") {
        Some(file) => {
            let name = file.filename.clone().unwrap_or_default();
            attachments::attach(&state, &caller, application, read, &name, file.bytes.to_vec()).await
        }
        None => Err(AppError::Invalid("choose a file".into())),
    };
    after_form(chrome, &here(id, application, "attachments"), done)
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub version: i64,
}

pub async fn remove_attachment_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application, name)): Path<(String, i64, String)>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let done = attachments::detach(&state, &caller, application, form.version, name).await;
    after_form(chrome, &here(id, application, "attachments"), done)
}

#[derive(Deserialize)]
pub struct MessageForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub body: String,
}

pub async fn message_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application)): Path<(String, i64)>,
    Form(form): Form<MessageForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let done = discussion::post_message(&state, &caller, application, &form.body).await;
    after_form(chrome, &here(id, application, "discussion"), done)
}

#[derive(Deserialize)]
pub struct DeclarationForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub reason: String,
}

/// A juror declares a conflict from the page; the application is then out of their reach, so
/// they go back to the call's page.
pub async fn declaration_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, application)): Path<(String, i64)>,
    Form(form): Form<DeclarationForm>,
) -> Result<Response, AppError> {
    let (chrome, id) = match form_target(Chrome::new(&headers, &uri, Some(&caller)), &caller, &form.csrf, &id) {
        Ok(target) => target,
        Err(page) => return Ok(*page),
    };
    let body = crate::calls::jury::DeclarationBody { reason: form.reason };
    let done = crate::calls::jury::declare(&state, &caller, application, body).await;
    after_form(chrome, &format!("/calls/{id}#to-review"), done)
}
