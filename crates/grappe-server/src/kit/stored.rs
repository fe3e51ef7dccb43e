//! Files of the store served over HTTP, store work run off the async threads, and the storage
//! allocation: what the data commons and the model registry share.

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use grappe_store::{Digest, FileEntry, Store, Version, VersionId, read_window};

use crate::kit::error::{AppError, AppResult};
use crate::kit::range;
use crate::kit::state::AppState;

/// Refuses what would take a project past its storage allocation (`storage_gb`), which its
/// datasets' latest versions, its models' versions and its gateway files share: `after(held)` is what it would
/// hold given what it holds now; `remedy` says what else the caller may do.
pub async fn check_storage(
    state: &AppState,
    project_id: i64,
    after: impl FnOnce(u64) -> u64,
    remedy: &str,
) -> AppResult<()> {
    let project = state.db.project(project_id).await?.ok_or_else(|| AppError::NotFound("project not found".into()))?;
    let granted = u64::try_from(project.storage_gb).unwrap_or(0).saturating_mul(1 << 30);
    let held = u64::try_from(state.db.project_stored_bytes(project_id).await?).unwrap_or(0);
    if after(held) > granted {
        return Err(AppError::Conflict(format!(
            "the project's datasets, models and files would hold more than its storage allocation ({} GiB; {held} bytes \
             held now): ask for more storage, or {remedy}",
            project.storage_gb
        )));
    }
    Ok(())
}

/// Runs store work off the async threads.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, AppError> + Send + 'static) -> AppResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|error| AppError::Internal(error.into()))?
}

/// A stored file as the answer to a request, honouring its `Range`.
pub fn serve_file(headers: &HeaderMap, store: Arc<Store>, entry: FileEntry) -> Response {
    let content_type = entry.media_type.as_str().to_owned();
    range::ranged(headers, entry.size_bytes, &content_type, move |first, last| file_stream(store, entry, first, last))
}

/// The bytes `first..=last` of a stored file, read a window of chunks at a time off the async
/// threads, each chunk checked against its digest. A damaged chunk ends the body early (the
/// client sees a short answer, never wrong bytes).
fn file_stream(store: Arc<Store>, file: FileEntry, first: u64, last: u64) -> Body {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        // The first chunk that ends past `first`, and where it starts.
        let (mut index, mut at) = (0, 0u64);
        while index < file.chunks.len() && at + u64::from(file.chunks[index].len_bytes) <= first {
            at += u64::from(file.chunks[index].len_bytes);
            index += 1;
        }
        while index < file.chunks.len() && at <= last {
            let window = read_window(&file.chunks, index);
            index = window.end;
            let chunks = match store.read_chunks(&file.chunks[window]) {
                Ok(chunks) => chunks,
                Err(error) => {
                    tracing::error!(error = %error, file = %file.path, "a dataset file could not be read");
                    let _ = sender.blocking_send(Err(std::io::Error::other(error.to_string())));
                    return;
                }
            };
            for bytes in chunks {
                let end = at + bytes.len() as u64;
                if at > last {
                    return;
                }
                let from = first.saturating_sub(at) as usize;
                let to = ((last + 1).min(end) - at) as usize;
                if sender.blocking_send(Ok(bytes[from..to].to_vec())).is_err() {
                    return;
                }
                at = end;
            }
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    Body::from_stream(stream)
}

/// The store's version id a database row names (hex); a malformed one is our fault.
pub fn version_id(hex: &str) -> AppResult<VersionId> {
    Digest::parse(hex)
        .map(VersionId)
        .map_err(|error| AppError::Internal(anyhow::anyhow!("stored version {hex}: {error}")))
}

/// The stored version a database row names, read off the async threads.
pub async fn stored_version(state: &AppState, hex: &str) -> AppResult<Version> {
    let id = version_id(hex)?;
    let store = state.store.clone();
    blocking(move || store.version(&id).map_err(|error| AppError::Internal(error.into()))).await
}

/// A folder under `DATA_DIR/tmp`, removed with everything in it when dropped: where files are
/// laid out before the store takes them.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(state: &AppState, what: &str) -> AppResult<Scratch> {
        let path = state.config.data_dir.join("tmp").join(format!("{what}-{}", crate::kit::caller::new_secret()));
        std::fs::create_dir_all(&path).map_err(|error| AppError::Internal(error.into()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
