//! The data commons' pages: the catalogue (search and filters by licence, language and task)
//! and a dataset's page (its card, versions, files, splits, what validation found, and the
//! command that pulls it).

use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_db::DatasetRow;
use grappe_domain::policy;

use crate::data::{CatalogQuery, load_version, render_card, search, visible_dataset};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiQuery;
use crate::kit::i18n::Locale;
use crate::kit::page::{Chrome, iso_date, render};
use crate::kit::state::AppState;

struct DatasetCard {
    name: String,
    title: String,
    public: bool,
    licence: String,
    languages: String,
    tasks: String,
    updated: String,
}

/// One choice of a filter: its value, and whether it is the one chosen.
struct Choice {
    value: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "data.html")]
struct CataloguePage {
    chrome: Chrome,
    query: String,
    licences: Vec<Choice>,
    languages: Vec<Choice>,
    tasks: Vec<Choice>,
    datasets: Vec<DatasetCard>,
    filtered: bool,
}

/// The distinct values of a field over `datasets`, sorted, with `chosen` marked.
fn choices<'a>(values: impl Iterator<Item = &'a String>, chosen: &str) -> Vec<Choice> {
    let mut distinct: Vec<&String> = values.filter(|value| !value.is_empty()).collect();
    distinct.sort();
    distinct.dedup();
    distinct.into_iter().map(|value| Choice { value: value.clone(), selected: value == chosen }).collect()
}

fn card_of(dataset: &DatasetRow) -> DatasetCard {
    DatasetCard {
        name: dataset.name.clone(),
        title: dataset.title.clone(),
        public: dataset.public,
        licence: dataset.licence.clone(),
        languages: dataset.languages.join(", "),
        tasks: dataset.tasks.join(", "),
        updated: iso_date(dataset.updated_at),
    }
}

pub async fn catalogue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> AppResult<Response> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let everything =
        CatalogQuery { q: String::new(), licence: String::new(), language: String::new(), task: String::new() };
    let all = search(&state, &caller.actor, &everything).await?;
    let found = search(&state, &caller.actor, &query).await?;
    let page = CataloguePage {
        licences: choices(all.iter().map(|d| &d.licence), &query.licence),
        languages: choices(all.iter().flat_map(|d| d.languages.iter()), &query.language),
        tasks: choices(all.iter().flat_map(|d| d.tasks.iter()), &query.task),
        datasets: found.iter().map(card_of).collect(),
        filtered: !(query.q.is_empty()
            && query.licence.is_empty()
            && query.language.is_empty()
            && query.task.is_empty()),
        query: query.q,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

struct VersionLine {
    seq: i64,
    id: String,
    short_id: String,
    date: String,
    files: String,
    size: String,
}

struct FileLine {
    path: String,
    size: String,
    media_type: String,
    href: String,
}

struct SplitLine {
    name: String,
    files: String,
}

#[derive(Template)]
#[template(path = "dataset.html")]
struct DatasetPage {
    chrome: Chrome,
    dataset: DatasetCard,
    card_html: String,
    versions: Vec<VersionLine>,
    files: Vec<FileLine>,
    more_files: usize,
    splits: Vec<SplitLine>,
    pull_command: String,
    may_push: bool,
    push_command: String,
}

/// Files listed on the page; the rest are in the API.
const FILES_SHOWN: usize = 200;

pub async fn dataset_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
) -> AppResult<Response> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let locale: Locale = chrome.tr.locale;
    let dataset = match visible_dataset(&state, &caller, &name).await {
        Ok(dataset) => dataset,
        Err(AppError::NotFound(_)) => {
            let message = chrome.tr.t("data-not-found");
            return Ok(crate::kit::page::message_page(chrome, StatusCode::NOT_FOUND, message));
        }
        Err(error) => return Err(error),
    };
    let rows = state.db.dataset_versions(dataset.id).await?;
    let latest = match rows.first() {
        Some(row) => Some((row, load_version(&state, row).await?)),
        None => None,
    };
    let versions = rows
        .iter()
        .map(|row| VersionLine {
            seq: row.seq,
            short_id: row.version.chars().take(12).collect(),
            id: row.version.clone(),
            date: iso_date(row.created_at),
            files: locale.integer(row.files),
            size: locale.bytes(row.size_bytes.max(0) as u64),
        })
        .collect();
    let (mut files, mut splits, mut card_html, mut more_files) = (Vec::new(), Vec::new(), String::new(), 0);
    let mut pull_command = String::new();
    if let Some((row, version)) = &latest {
        let all = version.manifest().files();
        more_files = all.len().saturating_sub(FILES_SHOWN);
        files = all
            .iter()
            .take(FILES_SHOWN)
            .map(|file| FileLine {
                path: file.path.to_string(),
                size: locale.bytes(file.size_bytes),
                media_type: file.media_type.to_string(),
                href: format!("/api/v1/datasets/{}/versions/{}/files/{}", dataset.name, row.version, file.path),
            })
            .collect();
        splits = version
            .splits()
            .iter()
            .map(|(split, paths)| SplitLine {
                name: split.to_string(),
                files: paths.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "),
            })
            .collect();
        card_html = render_card(version.card());
        pull_command = format!("grappe dataset pull {}@v{} ./{}", dataset.name, row.seq, dataset.name);
    }
    let page = DatasetPage {
        may_push: policy::may_push_dataset(&caller.actor, dataset.project_id),
        push_command: format!("grappe dataset push ./{} --name {}", dataset.name, dataset.name),
        dataset: card_of(&dataset),
        card_html,
        versions,
        files,
        more_files,
        splits,
        pull_command,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}
