//! The programme's yearly report (`/programme/report/{year}`): one page of HTML styled for
//! print, which a browser prints to PDF as it is (A4, no navigation, no row cut across pages).
//! Its figures are the records': what the year's decisions committed and its payments
//! disbursed, month by month; GPU-hours used; the decisions and payments themselves; and the
//! platform's figures and the programme's headline figures as of the day it is read.

use askama::Template;
use axum::Extension;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_chart::{self as chart, Histogram};
use grappe_domain::calendar;

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::i18n::Time;
use crate::kit::page::{Chrome, render};
use crate::kit::state::AppState;
use crate::programme::dashboard::{
    CommitmentView, Figure, KpiView, MODULES, commitment_view, hours, kpi_views, module_figures,
};

struct PaymentLine {
    paid_on: String,
    application: i64,
    line: String,
    amount: String,
}

struct Total {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Report {
    chrome: Chrome,
    year: i64,
    name: String,
    printed_on: Time,
    totals: Vec<Total>,
    chart_svg: String,
    commitments: Vec<CommitmentView>,
    payments: Vec<PaymentLine>,
    figures: Vec<Figure>,
    kpis: Vec<KpiView>,
}

/// Years a report may be asked for: the programme's (France 2030 runs 2021 to 2030) and some
/// margin; any other is a 404 rather than an empty report.
const YEARS: std::ops::RangeInclusive<i64> = 2018..=2035;

pub async fn report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(year): UrlPath<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let year: i64 = year
        .parse()
        .ok()
        .filter(|year| YEARS.contains(year))
        .ok_or_else(|| AppError::NotFound(format!("no report for `{year}`: a year from 2018 to 2035")))?;
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let page = report_view(&state, chrome, year).await?;
    Ok(render(&page, StatusCode::OK))
}

async fn report_view(state: &AppState, chrome: Chrome, year: i64) -> AppResult<Report> {
    let (tr, locale) = (&chrome.tr, chrome.tr.locale);
    let programme = state.db.programme().await?;
    let in_year = |ms: i64| calendar::year_of(ms) == year;
    let year_text = year.to_string();
    let commitments: Vec<_> = state.db.commitments(None).await?.into_iter().filter(|c| in_year(c.decided_at)).collect();
    let payments: Vec<_> =
        state.db.payments(None).await?.into_iter().filter(|p| p.paid_on.starts_with(&year_text)).collect();
    let months = state.db.programme_months().await?;
    let committed: i64 = commitments.iter().map(|c| c.amount_cents).sum();
    let disbursed: i64 = payments.iter().map(|p| p.amount_cents).sum();
    let gpu_ms: i64 = months.iter().filter(|(month, _)| month.starts_with(&year_text)).map(|(_, f)| f.gpu_ms).sum();
    let envelope: i64 = programme.lines().map(|(_, line)| line.envelope_cents).sum();
    let totals = vec![
        Total { label: tr.t("report-envelope"), value: locale.money(envelope) },
        Total { label: tr.t("report-committed-in-year"), value: locale.money(committed) },
        Total { label: tr.t("report-disbursed-in-year"), value: locale.money(disbursed) },
        Total { label: tr.t("report-selected-in-year"), value: locale.integer(commitments.len() as i64) },
        Total { label: tr.t("report-gpu-hours-in-year"), value: locale.integer(hours(gpu_ms)) },
    ];
    // Each month of the year, committed and disbursed, in thousands of euros.
    let bins = |pick: fn(&grappe_db::MonthFigures) -> i64| -> Vec<(String, u64)> {
        (1..=12)
            .map(|month| {
                let key = format!("{year:04}-{month:02}");
                let cents = months.get(&key).map_or(0, pick);
                (format!("{month:02}"), (cents / 100_000).max(0) as u64)
            })
            .collect()
    };
    let (month, thousands) = (tr.t("chart-month"), tr.t("chart-thousand-euros"));
    let (committed_title, disbursed_title) = (tr.t("report-chart-committed"), tr.t("report-chart-disbursed"));
    let chart_svg = chart::stack(&[
        chart::histogram(&Histogram {
            title: &committed_title,
            x_label: &month,
            y_label: &thousands,
            bins: bins(|f| f.committed_cents),
        }),
        chart::histogram(&Histogram {
            title: &disbursed_title,
            x_label: &month,
            y_label: &thousands,
            bins: bins(|f| f.disbursed_cents),
        }),
    ]);
    let lines: std::collections::HashMap<String, String> = programme
        .lines()
        .map(|(_, line)| (line.code.clone(), locale.pick(&line.label_fr, &line.label_en).to_owned()))
        .collect();
    let payments = payments
        .iter()
        .map(|p| PaymentLine {
            paid_on: p.paid_on.clone(),
            application: p.application_id,
            line: lines.get(&p.budget_line).cloned().unwrap_or_else(|| p.budget_line.clone()),
            amount: locale.money(p.amount_cents),
        })
        .collect();
    let platform = state.db.platform_figures().await?;
    let figures = MODULES.iter().flat_map(|module| module_figures(&chrome, module, &platform)).collect();
    let kpis = kpi_views(&chrome, &programme);
    let name = programme
        .header
        .as_ref()
        .map_or_else(|| tr.t("dashboard-title"), |header| locale.pick(&header.name_fr, &header.name_en).to_owned());
    let commitments = commitments.iter().map(|c| commitment_view(locale, c)).collect();
    let printed_on = locale.datetime(grappe_db::now_ms());
    Ok(Report { chrome, year, name, printed_on, totals, chart_svg, commitments, payments, figures, kpis })
}
