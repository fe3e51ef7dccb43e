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
use serde_json::Value;

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
    let everything = CatalogQuery::default();
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

struct ColumnLine {
    name: String,
    data_type: String,
    nulls: String,
    summary: String,
}

/// What validation found in one file: its columns and first rows.
struct FileReport {
    path: String,
    rows: String,
    columns: Vec<ColumnLine>,
    header: Vec<String>,
    preview: Vec<Vec<String>>,
}

struct FileProblem {
    path: String,
    error: String,
}

/// Rows of the preview shown on the page (the report keeps more).
const PREVIEW_ROWS: usize = 5;

/// One line of a column's statistics.
fn column_summary(locale: Locale, tr: &crate::kit::i18n::Tr, stats: &Value) -> String {
    let number = |key: &str| stats[key].as_f64().map_or_else(|| "-".to_owned(), |v| locale.decimal(v));
    match stats["kind"].as_str() {
        Some("numeric") => format!(
            "{} {} · {} {} · {} {}",
            tr.t("data-min"),
            number("min"),
            tr.t("data-max"),
            number("max"),
            tr.t("data-mean"),
            number("mean")
        ),
        Some("text") => {
            let distinct = stats["distinct"].as_u64().map_or(0, |n| n as i64);
            let at_least = if stats["distinct_capped"].as_bool() == Some(true) { "≥ " } else { "" };
            let mut line = format!(
                "{} {}–{} · {at_least}{} {}",
                tr.t("data-length"),
                number("min_length"),
                number("max_length"),
                locale.integer(distinct),
                tr.t("data-distinct")
            );
            let top: Vec<String> = stats["top_values"]
                .as_array()
                .into_iter()
                .flatten()
                .take(3)
                .map(|top| {
                    let count = top["count"].as_u64().map_or(0, |n| n as i64);
                    format!("{} ({})", top["value"].as_str().unwrap_or(""), locale.integer(count))
                })
                .collect();
            if !top.is_empty() {
                line.push_str(&format!(" · {}", top.join(", ")));
            }
            line
        }
        Some("boolean") => format!("true {} · false {}", number("true_count"), number("false_count")),
        _ => String::new(),
    }
}

fn file_report(locale: Locale, tr: &crate::kit::i18n::Tr, file: &Value) -> FileReport {
    let columns: Vec<ColumnLine> = file["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|column| ColumnLine {
            name: column["name"].as_str().unwrap_or("").to_owned(),
            data_type: column["data_type"].as_str().unwrap_or("").to_owned(),
            nulls: locale.integer(column["null_count"].as_u64().map_or(0, |n| n as i64)),
            summary: column_summary(locale, tr, &column["stats"]),
        })
        .collect();
    let preview = file["preview"]
        .as_array()
        .into_iter()
        .flatten()
        .take(PREVIEW_ROWS)
        .map(|row| row.as_array().into_iter().flatten().map(|cell| cell.as_str().unwrap_or("∅").to_owned()).collect())
        .collect();
    FileReport {
        path: file["path"].as_str().unwrap_or("").to_owned(),
        rows: locale.integer(file["row_count"].as_u64().map_or(0, |n| n as i64)),
        header: columns.iter().map(|column| column.name.clone()).collect(),
        columns,
        preview,
    }
}

/// Rows per split as a bar chart, when every file of every split was profiled.
fn splits_chart(chrome: &Chrome, splits: &grappe_store::Splits, files: &[Value]) -> Option<String> {
    let rows_of = |path: &str| files.iter().find(|f| f["path"] == path).and_then(|f| f["row_count"].as_u64());
    let mut bars = Vec::new();
    for (split, paths) in splits {
        let rows: Option<u64> = paths.iter().map(|path| rows_of(path.as_str())).sum();
        let rows = rows? as i64;
        let text = chrome.tr.locale.integer(rows);
        bars.push(grappe_chart::Bar {
            label: split.to_string(),
            whole: rows,
            part: 0,
            inner_part: 0,
            value_text: text,
        });
    }
    if bars.is_empty() {
        return None;
    }
    let (title, description, legend) =
        (chrome.tr.t("data-rows-chart"), chrome.tr.t("data-rows-chart-desc"), chrome.tr.t("data-rows"));
    Some(grappe_chart::horizontal_bars(&grappe_chart::BarChart {
        title: &title,
        description: &description,
        legend: [&legend, "", ""],
        bars,
    }))
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
    splits_svg: Option<String>,
    reports: Vec<FileReport>,
    problems: Vec<FileProblem>,
    not_profiled: Vec<String>,
    card_warnings: Vec<String>,
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
    let (mut splits_svg, mut reports, mut problems, mut not_profiled, mut card_warnings) =
        (None, Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
        let report: Value = serde_json::from_str(&row.report).unwrap_or(Value::Null);
        let profiled = report["files"].as_array().cloned().unwrap_or_default();
        splits_svg = splits_chart(&chrome, version.splits(), &profiled);
        reports = profiled.iter().map(|file| file_report(locale, &chrome.tr, file)).collect();
        let texts = |key: &str| -> Vec<String> {
            report[key].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        };
        not_profiled = texts("not_profiled");
        card_warnings = texts("card_warnings");
        problems = report["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|problem| FileProblem {
                path: problem["path"].as_str().unwrap_or("").to_owned(),
                error: problem["error"].as_str().unwrap_or("").to_owned(),
            })
            .collect();
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
        splits_svg,
        reports,
        problems,
        not_profiled,
        card_warnings,
        pull_command,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}
