//! The public dashboard (`/`): the budget lines with what decisions committed and payments
//! disbursed, those figures month by month, what every module's records count, the headline
//! figures with their sources; every figure links to the records behind it. And one budget
//! line's records (`/programme/lines/{code}`).

use askama::Template;
use axum::Extension;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_chart::{self as chart, Bar, BarChart, Histogram};
use grappe_db::{CommitmentRow, PaymentRow, PlatformFigures, StoredProgramme};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::i18n::Locale;
use crate::kit::i18n::Time;
use crate::kit::page::{Chrome, render};
use crate::kit::state::AppState;

struct LineView {
    code: String,
    label: String,
    envelope: String,
    committed: String,
    disbursed: String,
}

/// A figure with where its records are.
pub struct Figure {
    pub label: String,
    pub value: String,
    pub href: String,
}

struct InstrumentView {
    name: String,
    summary: String,
    href: String,
    budget: Option<String>,
    figures: Vec<Figure>,
}

pub struct KpiView {
    pub label: String,
    pub value: String,
    pub source: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    name: Option<String>,
    chart_svg: String,
    months_svg: Option<String>,
    lines: Vec<LineView>,
    instruments: Vec<InstrumentView>,
    kpis: Vec<KpiView>,
    /// The figures of modules that no instrument of the programme runs.
    others: Vec<Figure>,
    year: i64,
}

/// The modules whose records the dashboard counts.
pub const MODULES: [&str; 6] = ["calls", "compute", "data", "models", "challenges", "booster"];

/// GPU-hours of GPU-milliseconds, rounded to the hour.
pub fn hours(ms: i64) -> i64 {
    (ms + 1_800_000) / 3_600_000
}

/// What each module's records count, under the instrument that module runs.
pub fn module_figures(chrome: &Chrome, module: &str, figures: &PlatformFigures) -> Vec<Figure> {
    let (tr, locale) = (&chrome.tr, chrome.tr.locale);
    let figure = |key: &str, value: i64, href: &str| Figure {
        label: tr.t(key),
        value: locale.integer(value),
        href: href.to_owned(),
    };
    match module {
        "calls" => vec![
            figure("figure-calls", figures.calls, "/calls"),
            figure("figure-applications", figures.applications, "/calls"),
            figure("figure-selected", figures.selected, "/api/v1/opendata/commitments.csv"),
            figure("figure-specialists", figures.specialists_trained, "/centres"),
        ],
        "compute" => vec![
            figure("figure-gpu-hours-allocated", figures.gpu_hours_allocated, "/compute"),
            figure("figure-gpu-hours-used", hours(figures.gpu_ms_used), "/compute"),
            figure("figure-jobs-completed", figures.jobs_completed, "/compute"),
            figure("figure-gateway-requests", figures.gateway_requests, "/ai"),
            figure("figure-gateway-tokens", figures.gateway_tokens, "/ai"),
        ],
        "data" => vec![
            figure("figure-datasets", figures.public_datasets, "/data"),
            figure("figure-dataset-versions", figures.dataset_versions, "/data"),
        ],
        "models" => vec![
            figure("figure-models", figures.models, "/models"),
            figure("figure-model-versions", figures.model_versions, "/models"),
        ],
        "challenges" => vec![
            figure("figure-challenges", figures.challenges, "/challenges"),
            figure("figure-teams", figures.teams, "/challenges"),
            figure("figure-submissions", figures.submissions, "/challenges"),
        ],
        "booster" => vec![
            figure("figure-companies", figures.booster.companies_registered, "/booster"),
            figure("figure-companies-diagnosed", figures.booster.companies_diagnosed, "/booster"),
            figure("figure-companies-supported", figures.booster.companies_supported, "/booster"),
            figure("figure-jobs-created", figures.booster.jobs_created, "/booster"),
        ],
        _ => Vec::new(),
    }
}

/// A `YYYY-MM` month as a count of months since year 0.
fn month_index(month: &str) -> Option<i64> {
    let (year, month) = month.split_once('-')?;
    Some(year.parse::<i64>().ok()? * 12 + month.parse::<i64>().ok()? - 1)
}

/// The money of a programme's lines, month by month: what was committed and disbursed in all
/// (running sums, thousands of euros) and the GPU-hours used each month.
async fn months_chart(state: &AppState, chrome: &Chrome) -> AppResult<Option<String>> {
    let months = state.db.programme_months().await?;
    if months.is_empty() {
        return Ok(None);
    }
    let tr = &chrome.tr;
    let (mut committed, mut disbursed) = (0i64, 0i64);
    let mut committed_bins = Vec::new();
    let mut disbursed_bins = Vec::new();
    let mut gpu_bins = Vec::new();
    // Every month from the first record's (a year back at least) to this one, those without
    // records included: the running totals stand still there.
    let this_month = month_index(&grappe_domain::calendar::iso_date(grappe_db::now_ms())[..7]).unwrap_or(0);
    // Ten years back at most, whatever the records hold.
    let first = months.keys().next().and_then(|month| month_index(month)).unwrap_or(this_month).max(this_month - 119);
    let empty = grappe_db::MonthFigures::default();
    let start = first.min(this_month - 11);
    // What came before the window starts the running totals.
    for (_, figures) in months.iter().filter(|(month, _)| month_index(month).is_some_and(|index| index < start)) {
        committed += figures.committed_cents;
        disbursed += figures.disbursed_cents;
    }
    for index in start..=this_month.max(first) {
        let month = format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1);
        let figures = months.get(&month).unwrap_or(&empty);
        committed += figures.committed_cents;
        disbursed += figures.disbursed_cents;
        committed_bins.push((month.clone(), (committed / 100_000).max(0) as u64));
        disbursed_bins.push((month.clone(), (disbursed / 100_000).max(0) as u64));
        gpu_bins.push((month, hours(figures.gpu_ms).max(0) as u64));
    }
    let month = tr.t("chart-month");
    let panel = |title: String, y_label: String, bins| {
        chart::histogram(&Histogram { title: &title, x_label: &month, y_label: &y_label, bins })
    };
    let mut panels = vec![
        panel(tr.t("chart-committed-over-time"), tr.t("chart-thousand-euros"), committed_bins),
        panel(tr.t("chart-disbursed-over-time"), tr.t("chart-thousand-euros"), disbursed_bins),
    ];
    // GPU-hours only once some were used: an empty panel says nothing.
    if gpu_bins.iter().any(|(_, hours)| *hours > 0) {
        panels.push(panel(tr.t("chart-gpu-hours-by-month"), tr.t("chart-gpu-hours"), gpu_bins));
    }
    Ok(Some(chart::stack(&panels)))
}

fn budget_chart(chrome: &Chrome, programme: &StoredProgramme) -> String {
    let locale = chrome.tr.locale;
    let bars = programme
        .lines()
        .map(|(_, line)| line)
        .map(|line| Bar {
            label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
            whole: line.envelope_cents,
            part: line.committed_cents,
            inner_part: line.disbursed_cents,
            value_text: locale.money(line.envelope_cents),
        })
        .collect();
    let (title, description) = (chrome.tr.t("dashboard-chart-title"), chrome.tr.t("dashboard-chart-desc"));
    let legend = [chrome.tr.t("legend-envelope"), chrome.tr.t("legend-committed"), chrome.tr.t("legend-disbursed")];
    chart::horizontal_bars(&BarChart {
        title: &title,
        description: &description,
        legend: [&legend[0], &legend[1], &legend[2]],
        bars,
    })
}

/// The headline figures in words: money as money, counts as numbers, "about" where the source
/// says so; with their sources.
pub fn kpi_views(chrome: &Chrome, programme: &StoredProgramme) -> Vec<KpiView> {
    let locale = chrome.tr.locale;
    programme
        .kpis
        .iter()
        .map(|kpi| {
            let figure = if kpi.unit == "cents" { locale.money(kpi.value) } else { locale.integer(kpi.value) };
            KpiView {
                label: locale.pick(&kpi.label_fr, &kpi.label_en).to_owned(),
                value: if kpi.approximate {
                    format!("{} {figure}", chrome.tr.t("dashboard-approximate"))
                } else {
                    figure
                },
                source: kpi.source.clone(),
            }
        })
        .collect()
}

pub async fn dashboard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let programme = state.db.programme().await?;
    let figures = state.db.platform_figures().await?;
    let locale = chrome.tr.locale;
    let money = |cents: i64| locale.money(cents);
    let lines = programme
        .lines()
        .map(|(_, line)| line)
        .map(|line| LineView {
            code: line.code.clone(),
            label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
            envelope: money(line.envelope_cents),
            committed: money(line.committed_cents),
            disbursed: money(line.disbursed_cents),
        })
        .collect();
    // A module's figures go under the first instrument it runs, not under each.
    let mut shown = std::collections::HashSet::new();
    let instruments = programme
        .instruments
        .iter()
        .map(|instrument| {
            let total: i64 = instrument.budget_lines.iter().map(|line| line.envelope_cents).sum();
            let first = shown.insert(instrument.module.as_str());
            InstrumentView {
                name: locale.pick(&instrument.name_fr, &instrument.name_en).to_owned(),
                summary: locale.pick(&instrument.summary_fr, &instrument.summary_en).to_owned(),
                href: format!("/{}", instrument.module),
                budget: (total > 0).then(|| money(total)),
                figures: if first { module_figures(&chrome, &instrument.module, &figures) } else { Vec::new() },
            }
        })
        .collect();
    let kpis = kpi_views(&chrome, &programme);
    let name = programme.header.as_ref().map(|header| locale.pick(&header.name_fr, &header.name_en).to_owned());
    let chart_svg = budget_chart(&chrome, &programme);
    let months_svg = months_chart(&state, &chrome).await?;
    let year = grappe_domain::calendar::year_of(grappe_db::now_ms());
    // What modules no instrument runs count (all of them while no programme is loaded).
    let others = MODULES
        .iter()
        .filter(|module| !shown.contains(**module))
        .flat_map(|module| module_figures(&chrome, module, &figures))
        .collect();
    let view = Dashboard { chrome, name, chart_svg, months_svg, lines, instruments, kpis, others, year };
    Ok(render(&view, StatusCode::OK))
}

pub struct CommitmentView {
    pub call_id: i64,
    pub call: String,
    pub title: String,
    pub organisation: String,
    pub amount: String,
    pub paid: String,
    pub decided: Time,
}

struct PaymentView {
    application: i64,
    amount: String,
    paid_on: String,
}

#[derive(Template)]
#[template(path = "budget_line.html")]
struct LinePage {
    chrome: Chrome,
    code: String,
    label: String,
    envelope: String,
    committed: String,
    disbursed: String,
    commitments: Vec<CommitmentView>,
    payments: Vec<PaymentView>,
}

pub fn commitment_view(locale: Locale, commitment: &CommitmentRow) -> CommitmentView {
    CommitmentView {
        call_id: commitment.call_id,
        call: commitment.call_name.clone(),
        title: commitment.title.clone(),
        organisation: commitment.organisation.clone(),
        amount: locale.money(commitment.amount_cents),
        paid: locale.money(commitment.paid_cents),
        decided: locale.datetime(commitment.decided_at),
    }
}

fn payment_view(locale: Locale, payment: &PaymentRow) -> PaymentView {
    PaymentView {
        application: payment.application_id,
        amount: locale.money(payment.amount_cents),
        paid_on: payment.paid_on.clone(),
    }
}

pub async fn line_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(code): UrlPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let programme = state.db.programme().await?;
    let line = programme.line(&code).ok_or_else(|| AppError::NotFound(format!("no budget line `{code}`")))?;
    let locale = chrome.tr.locale;
    let commitments = state.db.commitments(Some(&code)).await?.iter().map(|c| commitment_view(locale, c)).collect();
    let payments = state.db.payments(Some(&code)).await?.iter().map(|p| payment_view(locale, p)).collect();
    let page = LinePage {
        code: line.code.clone(),
        label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
        envelope: locale.money(line.envelope_cents),
        committed: locale.money(line.committed_cents),
        disbursed: locale.money(line.disbursed_cents),
        commitments,
        payments,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}
