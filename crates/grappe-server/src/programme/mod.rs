//! The programme: its instruments, budget lines and key figures, as a public API and as the
//! dashboard (a chart of envelopes, commitments and disbursements, and a table).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Json};
use grappe_chart::{self as chart, Bar, BarChart};
use grappe_db::StoredProgramme;
use grappe_domain::policy::Access;
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::page::{Chrome, render};
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        route(
            Kind::Api,
            Method::Get,
            "/api/v1/programme",
            Access::Public,
            "Instruments, budget lines (euro cents) and key figures",
            programme,
        ),
        route(Kind::Page, Method::Get, "/", Access::Public, "Programme dashboard", dashboard),
    ]
}

pub async fn programme(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let programme = state.db.programme().await?;
    let instruments: Vec<Value> = programme
        .instruments
        .iter()
        .map(|instrument| {
            json!({
                "code": instrument.code,
                "name": { "fr": instrument.name_fr, "en": instrument.name_en },
                "summary": { "fr": instrument.summary_fr, "en": instrument.summary_en },
                "module": instrument.module,
                "budget_lines": instrument.budget_lines.iter().map(|line| json!({
                    "code": line.code,
                    "label": { "fr": line.label_fr, "en": line.label_en },
                    "envelope_cents": line.envelope_cents,
                    "committed_cents": line.committed_cents,
                    "disbursed_cents": line.disbursed_cents,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let kpis: Vec<Value> = programme
        .kpis
        .iter()
        .map(|kpi| {
            json!({
                "code": kpi.code,
                "label": { "fr": kpi.label_fr, "en": kpi.label_en },
                "value": kpi.value,
                "unit": kpi.unit,
                "approximate": kpi.approximate,
            })
        })
        .collect();
    // The audit chain's head as of today: archived by anyone, it shows later whether the
    // chain was rewritten.
    let anchor = state
        .db
        .audit_anchors(1)
        .await?
        .into_iter()
        .next()
        .map(|anchor| json!({ "day": anchor.day, "seq": anchor.seq, "hash": anchor.hash }));
    Ok(Json(json!({ "currency": "EUR", "instruments": instruments, "kpis": kpis, "audit_anchor": anchor })))
}

struct LineView {
    label: String,
    envelope: String,
    committed: String,
    disbursed: String,
}

struct InstrumentView {
    name: String,
    summary: String,
    href: String,
    budget: Option<String>,
}

struct KpiView {
    label: String,
    value: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    chart_svg: String,
    lines: Vec<LineView>,
    instruments: Vec<InstrumentView>,
    kpis: Vec<KpiView>,
    /// Figures counted from the platform's own records.
    records: Vec<KpiView>,
}

fn dashboard_view(chrome: Chrome, programme: &StoredProgramme, gateway: (i64, i64)) -> Dashboard {
    let locale = chrome.tr.locale;
    let money = |cents: i64| locale.money(cents);
    let all_lines = programme.instruments.iter().flat_map(|instrument| instrument.budget_lines.iter());
    let lines: Vec<LineView> = all_lines
        .clone()
        .map(|line| LineView {
            label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
            envelope: money(line.envelope_cents),
            committed: money(line.committed_cents),
            disbursed: money(line.disbursed_cents),
        })
        .collect();
    let bars = all_lines
        .map(|line| Bar {
            label: locale.pick(&line.label_fr, &line.label_en).to_owned(),
            whole: line.envelope_cents,
            part: line.committed_cents,
            inner_part: line.disbursed_cents,
            value_text: money(line.envelope_cents),
        })
        .collect();
    let (title, description) = (chrome.tr.t("dashboard-chart-title"), chrome.tr.t("dashboard-chart-desc"));
    let legend = [chrome.tr.t("legend-envelope"), chrome.tr.t("legend-committed"), chrome.tr.t("legend-disbursed")];
    let chart_svg = chart::horizontal_bars(&BarChart {
        title: &title,
        description: &description,
        legend: [&legend[0], &legend[1], &legend[2]],
        bars,
    });
    let instruments = programme
        .instruments
        .iter()
        .map(|instrument| {
            let total: i64 = instrument.budget_lines.iter().map(|line| line.envelope_cents).sum();
            InstrumentView {
                name: locale.pick(&instrument.name_fr, &instrument.name_en).to_owned(),
                summary: locale.pick(&instrument.summary_fr, &instrument.summary_en).to_owned(),
                href: format!("/{}", instrument.module),
                budget: (total > 0).then(|| money(total)),
            }
        })
        .collect();
    let approximately = chrome.tr.t("dashboard-approximate");
    let kpis = programme
        .kpis
        .iter()
        .map(|kpi| {
            let figure = if kpi.unit == "cents" { money(kpi.value) } else { kpi.value.to_string() };
            KpiView {
                label: locale.pick(&kpi.label_fr, &kpi.label_en).to_owned(),
                value: if kpi.approximate { format!("{approximately} {figure}") } else { figure },
            }
        })
        .collect();
    let records = vec![
        KpiView { label: chrome.tr.t("dashboard-gateway-requests"), value: locale.integer(gateway.0) },
        KpiView { label: chrome.tr.t("dashboard-gateway-tokens"), value: locale.integer(gateway.1) },
    ];
    Dashboard { chrome, chart_svg, lines, instruments, kpis, records }
}

pub async fn dashboard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let programme = state.db.programme().await?;
    let gateway = state.db.gateway_totals().await?;
    let view = dashboard_view(Chrome::new(&headers, &uri, Some(&caller)), &programme, gateway);
    Ok(render(&view, StatusCode::OK))
}
