//! The open data commons: datasets with cards, immutable versions and splits, pushed and pulled
//! over HTTP, browsed in the catalogue, harvested as DCAT-AP. The bytes are in the store
//! (`grappe-store`, [`AppState::store`]); the catalogue (owner, visibility, published versions)
//! in the database.
//!
//! ## Push, over HTTP
//! The client chunks its folder as the store would, and for each batch of chunks asks which the
//! server lacks (`chunks/missing`), sends those (`chunks`, a body of `digest (32 bytes), length
//! (u32 LE), bytes` frames, each re-hashed by the server), then sends the version's canonical
//! bytes (`versions`). The server checks every file of it whole, commits it to the store, then
//! publishes it in the catalogue. Chunks once stored stay (until a gc), so a push that was
//! interrupted starts again and sends only what the server still lacks.
//!
//! ## Who sees what
//! A public dataset is seen by anyone; a private one by its project's members (and
//! administrators) only, on every route: to anyone else it does not exist (404). Only members of
//! the owning project push versions (administrators for the programme's own datasets).

pub mod catalog;
pub mod inputs;
pub mod pages;
pub mod validate;

use std::collections::HashSet;
use std::path::Path;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_dataset::{Card, License, render_markdown};
use grappe_db::{DatasetFilter, DatasetRow, DatasetVersionRow, NewDataset, NewDatasetVersion, Published};
use grappe_domain::policy::{self, Access, Actor};
use grappe_store::{
    CommitCheck, DatasetPath, Digest, FileEntry, Name, Store, StoreConfig, StoreError, Version, VersionId, open_blobs,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::{ApiJson, ApiQuery};
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;
use crate::kit::stored::{self, blocking};

pub fn routes() -> Vec<Route> {
    use Access::{Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Get, Post};
    vec![
        route(Api, Get, "/api/v1/datasets", Public, "Datasets the caller may see; ?q=&licence=&language=&task=", list),
        route(Api, Post, "/api/v1/datasets", SignedIn, "Create a dataset owned by a project (members)", create)
            .body("NewDataset"),
        route(Api, Get, "/api/v1/datasets/{name}", Public, "A dataset and its versions", show),
        route(
            Api,
            Post,
            "/api/v1/datasets/{name}/chunks/missing",
            SignedIn,
            "Which of these chunks the store lacks (pushers)",
            missing_chunks,
        )
        .body("ChunkList"),
        route(Api, Post, "/api/v1/datasets/{name}/chunks", SignedIn, "Upload chunks (pushers)", upload_chunks),
        route(
            Api,
            Post,
            "/api/v1/datasets/{name}/versions",
            SignedIn,
            "Commit and publish a version from its canonical manifest (pushers)",
            commit,
        ),
        route(
            Api,
            Get,
            "/api/v1/datasets/{name}/versions/{version}",
            Public,
            "A version: files, splits, card",
            version,
        ),
        route(
            Api,
            Get,
            "/api/v1/datasets/{name}/versions/{version}/manifest",
            Public,
            "A version's canonical manifest (its BLAKE3 is the version id)",
            manifest,
        ),
        route(
            Api,
            Get,
            "/api/v1/datasets/{name}/versions/{version}/files/{*path}",
            Public,
            "A file of a version; Range for a part",
            file,
        ),
        route(
            Api,
            Get,
            "/api/v1/opendata/catalog",
            Public,
            "Public datasets as a DCAT-AP catalogue (JSON-LD)",
            catalog::catalog,
        ),
        route(Page, Get, "/data", Public, "Open data: the catalogue", pages::catalogue),
        route(Page, Get, "/data/{name}", Public, "A dataset's page", pages::dataset_page),
    ]
}

/// The store the server keeps datasets in: `spec` (a folder, or `s3://BUCKET/PREFIX?...`), or
/// `DATA_DIR/store`.
pub fn open_store(spec: &Option<String>, data_dir: &Path) -> anyhow::Result<Store> {
    let spec = match spec {
        Some(spec) => spec.clone(),
        None => data_dir.join("store").display().to_string(),
    };
    let blobs = open_blobs(&spec).map_err(|error| anyhow::anyhow!("opening the data store at {spec}: {error}"))?;
    Store::open(blobs, StoreConfig::default())
        .map_err(|error| anyhow::anyhow!("opening the data store at {spec}: {error}"))
}

/// A store error as the client should see it: what it sent wrong, or our failure.
fn store_error(error: StoreError) -> AppError {
    match error {
        StoreError::Manifest(error) => AppError::Invalid(error.to_string()),
        StoreError::ChunkTooLarge { .. } | StoreError::ChunkDigestMismatch { .. } => {
            AppError::BadRequest(error.to_string())
        }
        StoreError::MissingChunk { .. } | StoreError::ChunkLengthMismatch { .. } => {
            AppError::Conflict(format!("{error}: ask which chunks are missing and send them again"))
        }
        StoreError::FileDigestMismatch { .. } => AppError::Invalid(error.to_string()),
        other => AppError::Internal(other.into()),
    }
}

/// The dataset `name` if the caller may see it; to anyone else it does not exist.
pub(crate) async fn visible_dataset(state: &AppState, caller: &Caller, name: &str) -> AppResult<DatasetRow> {
    let not_found = || AppError::NotFound(format!("no dataset named `{name}`"));
    let dataset = state.db.dataset(name).await?.ok_or_else(not_found)?;
    if !policy::may_see_dataset(&caller.actor, dataset.project_id, dataset.public) {
        return Err(not_found());
    }
    Ok(dataset)
}

/// The dataset `name` if the caller may push versions of it.
async fn pushable_dataset(state: &AppState, caller: &Caller, name: &str) -> AppResult<DatasetRow> {
    let dataset = visible_dataset(state, caller, name).await?;
    if !policy::may_push_dataset(&caller.actor, dataset.project_id) {
        return Err(AppError::Forbidden("only the members of the dataset's project push its versions"));
    }
    Ok(dataset)
}

/// Refuses what would take a project past its storage allocation: `dataset`'s latest version
/// becoming `new_bytes`, or `incoming` more bytes arriving. The programme's own datasets have
/// no quota.
async fn check_storage(state: &AppState, dataset: &DatasetRow, new_bytes: u64, incoming: u64) -> AppResult<()> {
    let Some(project_id) = dataset.project_id else { return Ok(()) };
    let latest = u64::try_from(dataset.latest_bytes).unwrap_or(0);
    let after = |held: u64| held.saturating_sub(latest).saturating_add(new_bytes).max(held.saturating_add(incoming));
    stored::check_storage(state, project_id, after, "make the dataset smaller").await
}

/// The projects whose chunks a push to `dataset` may reuse without sending them: the dataset's
/// project's and those of public versions (0); `None`: any (administrators see every dataset).
fn chunk_scope(caller: &Caller, dataset: &DatasetRow) -> Option<Vec<i64>> {
    (!caller.actor.is_admin()).then(|| vec![dataset.project_id.unwrap_or(0), 0])
}

/// A version's chunks, each once, as hex.
fn version_chunks(version: &Version) -> Vec<String> {
    let mut seen = HashSet::new();
    let files = version.manifest().files();
    files.iter().flat_map(|file| &file.chunks).filter(|c| seen.insert(c.digest)).map(|c| c.digest.to_hex()).collect()
}

/// `latest`, a version id, 8 or more of its first hex digits, or `vN` (the Nth published).
pub(crate) fn resolve<'a>(
    dataset: &DatasetRow,
    versions: &'a [DatasetVersionRow],
    which: &str,
) -> AppResult<&'a DatasetVersionRow> {
    if versions.is_empty() {
        // Made by a push that did not finish (refused by the storage quota, or cut short).
        return Err(AppError::NotFound(format!(
            "dataset `{0}` has no version yet: no push to it has finished; push one with `grappe dataset push DIR {0}`",
            dataset.name
        )));
    }
    let not_found = || AppError::NotFound(format!("dataset `{}` has no version `{which}`", dataset.name));
    if which == "latest" {
        return versions.first().ok_or_else(not_found);
    }
    if let Some(seq) = which.strip_prefix('v').and_then(|n| n.parse::<i64>().ok()) {
        return versions.iter().find(|v| v.seq == seq).ok_or_else(not_found);
    }
    let is_hex = which.len() >= 8 && which.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if !is_hex {
        return Err(not_found());
    }
    // Newest first: a version published twice is its latest publication.
    let mut matching = versions.iter().filter(|v| v.version.starts_with(which));
    let found = matching.next().ok_or_else(not_found)?;
    if matching.any(|other| other.version != found.version) {
        return Err(AppError::NotFound(format!(
            "`{which}` names several versions of `{}`: give more digits",
            dataset.name
        )));
    }
    Ok(found)
}

/// A published version's content from the store.
pub(crate) async fn load_version(state: &AppState, row: &DatasetVersionRow) -> AppResult<Version> {
    let id = VersionId(Digest::parse(&row.version).map_err(|error| AppError::Internal(anyhow::anyhow!("{error}")))?);
    let store = state.store.clone();
    blocking(move || store.version(&id).map_err(store_error)).await
}

#[derive(Deserialize, Default)]
pub struct CatalogQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub licence: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub task: String,
}

/// At most this many datasets in one answer of the catalogue.
pub(crate) const CATALOGUE_LIMIT: i64 = 500;

/// The datasets `actor` may see that match `query`.
pub(crate) async fn search(state: &AppState, actor: &Actor, query: &CatalogQuery) -> AppResult<Vec<DatasetRow>> {
    let projects = policy::projects_used_by(actor);
    let filter =
        DatasetFilter { text: query.q.trim(), licence: &query.licence, language: &query.language, task: &query.task };
    Ok(state.db.list_datasets(projects.as_deref(), &filter, CATALOGUE_LIMIT).await?)
}

pub(crate) fn dataset_json(dataset: &DatasetRow) -> Value {
    json!({
        "name": dataset.name,
        "title": dataset.title,
        "project": dataset.project_id,
        "visibility": if dataset.public { "public" } else { "private" },
        "licence": dataset.licence,
        "languages": dataset.languages,
        "tasks": dataset.tasks,
        "latest_version": dataset.latest_version,
        "created_at": dataset.created_at,
        "updated_at": dataset.updated_at,
    })
}

fn version_row_json(row: &DatasetVersionRow) -> Value {
    json!({
        "version": row.version,
        "seq": row.seq,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "files": row.files,
        "size_bytes": row.size_bytes,
    })
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> AppResult<Json<Value>> {
    let items: Vec<Value> = search(&state, &caller.actor, &query).await?.iter().map(dataset_json).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDatasetBody {
    pub name: String,
    /// The owning project; only administrators may create a dataset without one.
    #[serde(default)]
    pub project: Option<i64>,
    /// Public datasets are listed in the catalogue and the DCAT-AP export; private by default.
    #[serde(default)]
    pub public: bool,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewDatasetBody>,
) -> AppResult<Response> {
    let name = Name::parse(&body.name).map_err(|error| AppError::Invalid(error.to_string()))?;
    if let Some(project) = body.project
        && state.db.project(project).await?.is_none()
    {
        return Err(AppError::Invalid(format!("no project {project}")));
    }
    if !policy::may_push_dataset(&caller.actor, body.project) {
        return Err(match body.project {
            None => AppError::Invalid("give the project that owns the dataset (`project`)".into()),
            Some(_) => AppError::Forbidden("only the project's members create its datasets"),
        });
    }
    let new = NewDataset {
        name: name.as_str(),
        project_id: body.project,
        public: body.public,
        created_by: caller.user.as_ref().map(|user| user.id),
    };
    let created = state.db.create_dataset(&new, &caller.audit_name()).await?;
    Ok((StatusCode::CREATED, Json(dataset_json(&created))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
) -> AppResult<Json<Value>> {
    let dataset = visible_dataset(&state, &caller, &name).await?;
    let versions: Vec<Value> = state.db.dataset_versions(dataset.id).await?.iter().map(version_row_json).collect();
    let mut answer = dataset_json(&dataset);
    answer["versions"] = Value::Array(versions);
    answer["may_push"] = Value::Bool(policy::may_push_dataset(&caller.actor, dataset.project_id));
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkList {
    pub chunks: Vec<String>,
}

/// The most digests one `chunks/missing` request may ask about.
const MISSING_BATCH: usize = 100_000;

pub async fn missing_chunks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    ApiJson(body): ApiJson<ChunkList>,
) -> AppResult<Json<Value>> {
    let dataset = pushable_dataset(&state, &caller, &name).await?;
    if body.chunks.len() > MISSING_BATCH {
        return Err(AppError::Invalid(format!(
            "at most {MISSING_BATCH} chunks per request, {} sent",
            body.chunks.len()
        )));
    }
    let digests = body
        .chunks
        .iter()
        .map(|text| Digest::parse(text).map_err(|error| AppError::Invalid(error.to_string())))
        .collect::<AppResult<Vec<Digest>>>()?;
    let store = state.store.clone();
    let asked = digests.clone();
    let absent = blocking(move || store.has_chunks(&asked).map_err(store_error)).await?;
    let mut missing: Vec<String> = absent.iter().map(Digest::to_hex).collect();
    // A chunk the store has is reported only if this project may use it: else the answer would
    // tell whether some other project's private data holds these bytes.
    if let Some(projects) = chunk_scope(&caller, &dataset) {
        let absent: HashSet<Digest> = absent.into_iter().collect();
        let mut seen = HashSet::new();
        let present: Vec<String> =
            digests.iter().filter(|d| !absent.contains(d) && seen.insert(**d)).map(Digest::to_hex).collect();
        let known: HashSet<String> = state.db.known_dataset_chunks(&projects, &present).await?.into_iter().collect();
        missing.extend(present.into_iter().filter(|digest| !known.contains(digest)));
    }
    Ok(Json(json!({ "missing": missing })))
}

/// A request body of at most the push limit.
async fn upload_body(state: &AppState, body: Body) -> AppResult<Bytes> {
    crate::kit::extract::body_within(body, state.config.limits.dataset_upload_bytes).await
}

/// `digest (32 bytes), length (u32 LE), bytes`, repeated to the end of the body.
fn parse_frames(body: &[u8]) -> AppResult<Vec<(Digest, &[u8])>> {
    let mut frames = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let bad = |what: &str| AppError::BadRequest(format!("chunk frame {}: {what}", frames.len() + 1));
        let (head, after) = rest.split_at_checked(36).ok_or_else(|| bad("shorter than its 36-byte head"))?;
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&head[..32]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[32..]);
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 {
            return Err(bad("an empty chunk"));
        }
        let (bytes, after) = after.split_at_checked(len).ok_or_else(|| bad("the body ends inside it"))?;
        frames.push((Digest::from_bytes(digest), bytes));
        rest = after;
    }
    Ok(frames)
}

pub async fn upload_chunks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    body: Body,
) -> AppResult<Json<Value>> {
    let dataset = pushable_dataset(&state, &caller, &name).await?;
    let body = upload_body(&state, body).await?;
    check_storage(&state, &dataset, 0, body.len() as u64).await?;
    // Storing the chunks and recording them for the project run to the end in a task of their
    // own: a client that goes away in between would otherwise leave stored chunks the project
    // is not told it has, and its next push would send them all again.
    let (store, db, project) = (state.store.clone(), state.db.clone(), dataset.project_id);
    let stats = tokio::spawn(async move {
        let (stats, sent) = blocking(move || {
            let frames = parse_frames(&body)?;
            let stats = store.put_chunks(&frames).map_err(store_error)?;
            Ok((stats, frames.iter().map(|(digest, _)| digest.to_hex()).collect::<Vec<_>>()))
        })
        .await?;
        if let Some(project) = project {
            db.add_dataset_chunks(project, &sent).await?;
        }
        Ok::<_, AppError>(stats)
    })
    .await
    .map_err(anyhow::Error::from)??;
    Ok(Json(json!({
        "chunks": stats.chunks,
        "new_chunks": stats.new_chunks,
        "new_chunk_bytes": stats.new_chunk_bytes,
        "stored_bytes": stats.stored_bytes,
    })))
}

/// What the catalogue shows of a version's card: its title, licence, languages and tasks.
pub(crate) struct Headline {
    pub title: String,
    pub licence: String,
    pub languages: Vec<String>,
    pub tasks: Vec<String>,
}

/// A card's Markdown body as sanitized HTML; a card that does not parse (pushed straight to a
/// store, with no server to check it) as escaped text.
pub(crate) fn render_card(text: &str) -> String {
    match Card::parse(text) {
        Ok(parsed) => render_markdown(&parsed.card.body),
        Err(_) if text.trim().is_empty() => String::new(),
        Err(_) => format!("<pre class=\"card-text\">{}</pre>", grappe_chart::escape(text)),
    }
}

/// The card's headline: its `pretty_name`, else its first heading, else the dataset's name.
pub(crate) fn headline(dataset: &str, card: Option<&Card>) -> Headline {
    let Some(card) = card else {
        return Headline {
            title: dataset.to_owned(),
            licence: String::new(),
            languages: Vec::new(),
            tasks: Vec::new(),
        };
    };
    let heading = card.body.lines().find_map(|line| line.strip_prefix("# ")).map(str::trim);
    let title = card.pretty_name.as_deref().or(heading).filter(|title| !title.is_empty()).unwrap_or(dataset);
    let licence = match &card.license {
        License::Id { id } => id.clone(),
        License::Other { name, .. } => name.clone(),
    };
    Headline {
        title: title.chars().take(200).collect(),
        licence,
        languages: card.languages.clone(),
        tasks: card.task_categories.clone(),
    }
}

pub async fn commit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(name): UrlPath<String>,
    body: Body,
) -> AppResult<Response> {
    let dataset = pushable_dataset(&state, &caller, &name).await?;
    let body = upload_body(&state, body).await?;
    let store = state.store.clone();
    let dataset_name = Name::parse(&dataset.name).map_err(|error| AppError::Internal(error.into()))?;
    let version =
        Version::parse(&body, &state.store.config().limits).map_err(|error| AppError::Invalid(error.to_string()))?;
    check_storage(&state, &dataset, version.manifest().total_bytes(), 0).await?;
    if let Some(projects) = chunk_scope(&caller, &dataset) {
        let chunks = version_chunks(&version);
        let known: HashSet<String> = state.db.known_dataset_chunks(&projects, &chunks).await?.into_iter().collect();
        if let Some(unsent) = chunks.iter().find(|digest| !known.contains(*digest)) {
            return Err(AppError::Conflict(format!(
                "chunk {unsent} was never sent for this project: ask which chunks are missing and send them"
            )));
        }
    }
    let public = dataset.public;
    let (version, checked, committed) = blocking(move || {
        let checked = validate::check(&store, &version, public)?;
        // The files' hashes come from the client: each file is read back whole and checked.
        let committed = store.commit_version(&version, &dataset_name, CommitCheck::WholeFiles).map_err(store_error)?;
        Ok((version, checked, committed))
    })
    .await?;
    let created_by = caller.user.as_ref().map(|user| user.id);
    let published =
        publish(&state, &dataset, &version, &checked, committed.id, created_by, &caller.audit_name()).await?;
    let (status, row) = match published {
        Published::New(row) => (StatusCode::CREATED, row),
        Published::Unchanged(row) => (StatusCode::OK, row),
    };
    let mut answer = version_row_json(&row);
    answer["dataset"] = Value::String(dataset.name);
    answer["unchanged"] = Value::Bool(status == StatusCode::OK);
    Ok((status, Json(answer)).into_response())
}

/// Files of a version listed in the catalogue (its first, by path); all are in its manifest.
pub(crate) const LISTED_FILES: usize = 200;

/// Publishes a version the store has committed: its card's headline and what validation found
/// go to the catalogue with it.
pub(crate) async fn publish(
    state: &AppState,
    dataset: &DatasetRow,
    version: &Version,
    checked: &validate::Checked,
    id: VersionId,
    created_by: Option<i64>,
    actor: &str,
) -> AppResult<Published> {
    let headline = headline(&dataset.name, checked.card.as_ref());
    let report = serde_json::to_string(&checked.report).map_err(anyhow::Error::from)?;
    let listing: Vec<Value> = version.manifest().files().iter().take(LISTED_FILES).map(file_json).collect();
    let listing = Value::Array(listing).to_string();
    let new = NewDatasetVersion {
        version: &id.to_string(),
        files: version.manifest().files().len() as i64,
        size_bytes: version.manifest().total_bytes() as i64,
        report: &report,
        listing: &listing,
        created_by,
        title: &headline.title,
        licence: &headline.licence,
        languages: &headline.languages,
        tasks: &headline.tasks,
    };
    let published = state.db.publish_dataset_version(dataset, &new, actor).await?;
    // Its chunks are its project's to reuse, and everyone's once it is public.
    let chunks = version_chunks(version);
    if let Some(project) = dataset.project_id {
        state.db.add_dataset_chunks(project, &chunks).await?;
    }
    if dataset.public {
        state.db.add_dataset_chunks(0, &chunks).await?;
    }
    Ok(published)
}

/// The dataset and the version a path names, if the caller may see them.
async fn version_at(
    state: &AppState,
    caller: &Caller,
    name: &str,
    which: &str,
) -> AppResult<(DatasetRow, DatasetVersionRow, Version)> {
    let dataset = visible_dataset(state, caller, name).await?;
    let versions = state.db.dataset_versions(dataset.id).await?;
    let row = resolve(&dataset, &versions, which)?.clone();
    let version = load_version(state, &row).await?;
    Ok((dataset, row, version))
}

pub(crate) fn file_json(file: &FileEntry) -> Value {
    json!({
        "path": file.path.as_str(),
        "size_bytes": file.size_bytes,
        "digest": file.digest.to_hex(),
        "media_type": file.media_type.as_str(),
        "chunks": file.chunks.len(),
    })
}

pub async fn version(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((name, which)): UrlPath<(String, String)>,
) -> AppResult<Json<Value>> {
    let (dataset, row, version) = version_at(&state, &caller, &name, &which).await?;
    let splits: serde_json::Map<String, Value> = version
        .splits()
        .iter()
        .map(|(split, paths)| (split.to_string(), paths.iter().map(|p| Value::from(p.as_str())).collect()))
        .collect();
    let mut answer = version_row_json(&row);
    answer["dataset"] = Value::String(dataset.name);
    answer["files"] = version.manifest().files().iter().map(file_json).collect();
    answer["splits"] = Value::Object(splits);
    answer["card"] = Value::String(version.card().to_owned());
    answer["report"] = serde_json::from_str(&row.report).unwrap_or(Value::Null);
    Ok(Json(answer))
}

pub async fn manifest(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((name, which)): UrlPath<(String, String)>,
) -> AppResult<Response> {
    let (_, _, version) = version_at(&state, &caller, &name, &which).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], version.encode()).into_response())
}

pub async fn file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((name, which, path)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let (dataset, _, version) = version_at(&state, &caller, &name, &which).await?;
    let path = DatasetPath::parse(&path).map_err(|error| AppError::NotFound(error.to_string()))?;
    let entry = version
        .manifest()
        .file(&path)
        .ok_or_else(|| AppError::NotFound(format!("dataset `{}` has no file `{path}` in this version", dataset.name)))?
        .clone();
    Ok(stored::serve_file(&headers, state.store.clone(), entry))
}
