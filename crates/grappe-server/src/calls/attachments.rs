//! An application's attachments (a PDF of the project, letters of support, a budget sheet):
//! files in the data store, one store dataset per application (`application.ID`) whose versions
//! are the attachment sets, so that every saved version of the application names the files it
//! had, and a file sent twice is stored once. Sent by the application's author until the
//! deadline, as the rest of it; read by whoever may read the application, always as a download
//! (`Content-Disposition: attachment`), never shown by the browser in our origin.

use std::path::Path;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::{Extension, Json};
use grappe_db::{ApplicationRow, CallRow};
use grappe_store::{DatasetPath, FileEntry, Name, Splits, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::calls::{application_json, call_for, not_saved, readable_application, user_of};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::state::AppState;
use crate::kit::stored::{self, Scratch, blocking, stored_version, version_id};

/// The most bytes of one attachment, and the most files of one application.
pub const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;
pub const MAX_FILES: usize = 10;

/// The kinds of files an application may carry, by extension: documents, sheets, images, text.
const EXTENSIONS: [&str; 11] = ["pdf", "odt", "ods", "docx", "xlsx", "pptx", "csv", "txt", "md", "png", "jpg"];

fn store_name(application: &ApplicationRow) -> Name {
    Name::parse(&format!("application.{}", application.id)).expect("a number makes a valid name")
}

/// A file name as sent: one path component, a known extension, and for a PDF, a PDF's bytes.
fn check_file(name: &str, bytes: &[u8]) -> AppResult<DatasetPath> {
    let refused = || {
        AppError::Invalid(format!(
            "`name`: a file name of at most 100 characters, without `/` or invisible and direction characters, ending in .{}",
            EXTENSIONS.join(", .")
        ))
    };
    let hidden = |c: char| c.is_control() || grappe_domain::account::is_bidi_or_invisible(c);
    if name.contains('/') || name.chars().count() > 100 || name.chars().any(hidden) {
        return Err(refused());
    }
    let path = DatasetPath::parse(name).map_err(|_| refused())?;
    let extension = name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).unwrap_or_default();
    if !EXTENSIONS.contains(&extension.as_str()) {
        return Err(refused());
    }
    if extension == "pdf" && !bytes.starts_with(b"%PDF-") {
        return Err(AppError::Invalid(format!("`{name}` is not a PDF (it does not start with %PDF-)")));
    }
    if bytes.is_empty() {
        return Err(AppError::Invalid(format!("`{name}` is empty")));
    }
    Ok(path)
}

/// The files of an attachment set, none for none.
async fn files_of(state: &AppState, set: Option<&str>) -> AppResult<Vec<FileEntry>> {
    let Some(hex) = set else { return Ok(Vec::new()) };
    Ok(stored_version(state, hex).await?.manifest().files().to_vec())
}

fn file_json(application: &ApplicationRow, file: &FileEntry) -> Value {
    json!({
        "name": file.path.as_str(),
        "size_bytes": file.size_bytes,
        "media_type": file.media_type.as_str(),
        "digest": file.digest.to_hex(),
        "url": format!("/api/v1/applications/{}/attachments/{}", application.id, file.path),
    })
}

/// An application's attachments, for whoever may read it.
pub async fn list_for(state: &AppState, application: &ApplicationRow) -> AppResult<Vec<Value>> {
    Ok(files_of(state, application.attachments.as_deref()).await?.iter().map(|f| file_json(application, f)).collect())
}

/// Writes the application's set with `change` applied to its files in a scratch folder, and
/// stores it: the new set's id, none when no file is left.
async fn new_set(
    state: &AppState,
    application: &ApplicationRow,
    change: impl FnOnce(&Path) -> AppResult<()> + Send + 'static,
) -> AppResult<Option<String>> {
    let scratch = Scratch::new(state, "attachments")?;
    let store = state.store.clone();
    let name = store_name(application);
    let current = application.attachments.as_deref().map(version_id).transpose()?;
    blocking(move || {
        let internal = |error: StoreError| AppError::Internal(error.into());
        if let Some(current) = current {
            store.materialize(&current, &scratch.0).map_err(internal)?;
        }
        change(&scratch.0)?;
        let left = std::fs::read_dir(&scratch.0).map_err(|error| AppError::Internal(error.into()))?.count();
        if left > MAX_FILES {
            return Err(AppError::Invalid(format!("an application carries at most {MAX_FILES} files")));
        }
        if left == 0 {
            return Ok(None);
        }
        let (committed, _) = store.push_dir(&scratch.0, &name, String::new(), Splits::default()).map_err(internal)?;
        Ok(Some(committed.id.to_string()))
    })
    .await
}

/// The application the caller may change the attachments of: its own, while the call is open,
/// at the version the caller read. Checked before anything goes to the store (the saving
/// transaction checks again), so that a refused change stores nothing.
async fn own_application(
    state: &AppState,
    caller: &Caller,
    id: i64,
    read: i64,
) -> AppResult<(ApplicationRow, CallRow)> {
    let application = readable_application(state, caller, id).await?;
    if caller.actor.user_id() != Some(application.submitted_by) {
        return Err(AppError::Forbidden("only its author changes an application's attachments"));
    }
    let call = call_for(state, application.call_id).await?;
    if !grappe_db::call_takes_applications(&call, grappe_db::now_ms()) {
        return Err(not_saved(&call, grappe_db::NotSaved::Closed));
    }
    if application.version != read {
        return Err(not_saved(&call, grappe_db::NotSaved::Stale { last: application.version }));
    }
    Ok((application, call))
}

/// Saves the new set as the application's next version, if `read` is still its last.
async fn save_set(
    state: &AppState,
    caller: &Caller,
    call: &CallRow,
    application: &ApplicationRow,
    read: i64,
    set: Option<String>,
) -> AppResult<Value> {
    let user = user_of(caller)?;
    let saved = state
        .db
        .set_attachments(call, application.id, read, user, set.as_deref())
        .await?
        .map_err(|why| not_saved(call, why))?;
    let mut answer = application_json(&saved);
    answer["attachments"] = Value::Array(list_for(state, &saved).await?);
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    pub name: String,
    /// The version of the application the sender read.
    pub version: i64,
}

/// Adds a file to an application (replacing one of the same name) as a new version: the one
/// path for the API and the form.
pub async fn attach(
    state: &AppState,
    caller: &Caller,
    id: i64,
    read: i64,
    name: &str,
    bytes: Vec<u8>,
) -> AppResult<Value> {
    let (application, call) = own_application(state, caller, id, read).await?;
    let path = check_file(name, &bytes)?;
    let set = new_set(state, &application, move |folder| {
        std::fs::write(folder.join(path.as_str()), &bytes).map_err(|error| AppError::Internal(error.into()))
    })
    .await?;
    save_set(state, caller, &call, &application, read, set).await
}

/// Removes a file from an application as a new version: the one path for the API and the form.
pub async fn detach(state: &AppState, caller: &Caller, id: i64, read: i64, name: String) -> AppResult<Value> {
    let (application, call) = own_application(state, caller, id, read).await?;
    let files = files_of(state, application.attachments.as_deref()).await?;
    if !files.iter().any(|file| file.path.as_str() == name) {
        return Err(AppError::NotFound(format!("application {id} has no attachment `{name}`")));
    }
    let set = new_set(state, &application, move |folder| {
        std::fs::remove_file(folder.join(&name)).map_err(|error| AppError::Internal(error.into()))
    })
    .await?;
    save_set(state, caller, &call, &application, read, set).await
}

pub async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    Query(query): Query<UploadQuery>,
    body: Body,
) -> AppResult<Json<Value>> {
    let bytes = crate::kit::extract::body_within(body, MAX_FILE_BYTES).await?;
    Ok(Json(attach(&state, &caller, id, query.version, &query.name, bytes.to_vec()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    pub version: i64,
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, name)): UrlPath<(i64, String)>,
    Query(query): Query<RemoveQuery>,
) -> AppResult<Json<Value>> {
    Ok(Json(detach(&state, &caller, id, query.version, name).await?))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let application = readable_application(&state, &caller, id).await?;
    Ok(Json(json!({ "items": list_for(&state, &application).await? })))
}

/// One attachment of the application's current set, as a download.
pub async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, name)): UrlPath<(i64, String)>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let application = readable_application(&state, &caller, id).await?;
    let files = files_of(&state, application.attachments.as_deref()).await?;
    let file = files
        .into_iter()
        .find(|file| file.path.as_str() == name)
        .ok_or_else(|| AppError::NotFound(format!("application {id} has no attachment `{name}`")))?;
    let mut response = stored::serve_file(&headers, state.store.clone(), file);
    let disposition = format!("attachment; filename*=UTF-8''{}", crate::kit::page::url_encode(&name));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_kinds_of_files_with_plain_names_are_taken() {
        assert!(check_file("projet.pdf", b"%PDF-1.7 ...").is_ok());
        assert!(check_file("Budget 2026.xlsx", b"PK").is_ok());
        assert!(check_file("faux.pdf", b"<html>").is_err(), "a PDF must look like one");
        assert!(check_file("page.html", b"<script>").is_err(), "HTML could run in our origin");
        assert!(check_file("../secret.pdf", b"%PDF-").is_err());
        assert!(check_file("a/b.pdf", b"%PDF-").is_err());
        assert!(check_file("facture\u{202E}fdp.txt", b"x").is_err(), "reads as facture.txt.pdf");
        assert!(check_file("sans-extension", b"x").is_err());
        assert!(check_file("vide.txt", b"").is_err());
        assert!(check_file(&format!("{}.txt", "n".repeat(100)), b"x").is_err());
    }
}
