//! The programme: its file loaded by administrators, payments recorded by programme managers,
//! and what the public sees: the API, the dashboard whose figures come from every module's
//! records and link to them (`dashboard.rs`), its tables as open data, listed in the DCAT-AP
//! catalogue of `data/catalog.rs` (`opendata.rs`), and the yearly report (`report.rs`).

mod dashboard;
pub mod opendata;
mod report;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use grappe_db::{CommitmentRow, LoadRefused, NewPayment, PaymentRefused, PaymentRow, StoredProgramme};
use grappe_domain::account::Role;
use grappe_domain::calendar;
use grappe_domain::policy::Access;
use grappe_domain::programme::Programme;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    vec![
        route(
            Kind::Api,
            Method::Get,
            "/api/v1/programme",
            Access::Public,
            "Instruments, budget lines (euro cents: committed and disbursed from records) and key figures",
            programme,
        ),
        route(
            Kind::Api,
            Method::Post,
            "/api/v1/programme",
            Access::GlobalRole(Role::Admin),
            "Load or update the programme (its file as JSON; `grappe programme load FILE.toml`)",
            load,
        )
        .body("Programme"),
        route(
            Kind::Api,
            Method::Get,
            "/api/v1/programme/lines/{code}",
            Access::Public,
            "A budget line with the decisions that committed it and the payments that disbursed it",
            line_records,
        ),
        route(
            Kind::Api,
            Method::Post,
            "/api/v1/programme/payments",
            Access::GlobalRole(Role::ProgrammeManager),
            "Record a payment on a selected application's grant (its transfer reference unique)",
            record_payment,
        )
        .body("Payment"),
        route(Kind::Page, Method::Get, "/", Access::Public, "Programme dashboard", dashboard::dashboard),
        route(
            Kind::Page,
            Method::Get,
            "/programme/lines/{code}",
            Access::Public,
            "A budget line's records",
            dashboard::line_page,
        ),
        route(
            Kind::Page,
            Method::Get,
            "/programme/report/{year}",
            Access::Public,
            "The programme's yearly report (print-styled)",
            report::report,
        ),
        route(
            Kind::Api,
            Method::Get,
            "/api/v1/opendata/{file}",
            Access::Public,
            "One of the programme's tables as CSV or JSON (`budget-lines.csv`, `commitments.json`...)",
            opendata::table,
        ),
    ]
}

/// What a refused load says.
pub fn refusal(refused: &LoadRefused) -> String {
    match refused {
        LoadRefused::LineHasRecords { code, records } => format!(
            "the file leaves out budget line `{code}`, which {records} decisions and payments stand on: keep it \
             (its envelope may change)"
        ),
        LoadRefused::InstrumentHasCalls { code, calls } => {
            format!("the file leaves out instrument `{code}`, which {calls} calls are under: keep it")
        }
    }
}

pub fn programme_json(programme: &StoredProgramme) -> Value {
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
                    "records": format!("/api/v1/programme/lines/{}", line.code),
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
                "source": kpi.source,
            })
        })
        .collect();
    let header = programme.header.as_ref().map(|header| {
        json!({
            "code": header.code,
            "name": { "fr": header.name_fr, "en": header.name_en },
            "source": header.source,
            "loaded_at": crate::kit::page::iso8601(header.loaded_at),
        })
    });
    json!({ "programme": header, "currency": "EUR", "instruments": instruments, "kpis": kpis })
}

pub async fn programme(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let programme = state.db.programme().await?;
    let mut body = programme_json(&programme);
    // The audit chain's head as of today: archived by anyone, it shows later whether the
    // chain was rewritten.
    let anchor = state
        .db
        .audit_anchors(1)
        .await?
        .into_iter()
        .next()
        .map(|anchor| json!({ "day": anchor.day, "seq": anchor.seq, "hash": anchor.hash }));
    body["audit_anchor"] = json!(anchor);
    Ok(Json(body))
}

/// Loads the programme the body describes (the TOML file's structure, as JSON): checked whole
/// first, then loaded in one transaction, or refused with nothing changed.
pub async fn load(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<Value>,
) -> AppResult<Json<Value>> {
    let programme: Programme =
        serde_json::from_value(body).map_err(|error| AppError::Invalid(format!("not a programme: {error}")))?;
    programme.check().map_err(|error| AppError::Invalid(error.0))?;
    match state.db.load_programme(&programme, &caller.audit_name()).await? {
        Ok(summary) => Ok(Json(json!({
            "programme": programme.programme.code,
            "instruments": summary.instruments,
            "budget_lines": summary.budget_lines,
            "kpis": summary.kpis,
            "removed": summary.removed,
        }))),
        Err(refused) => Err(AppError::Conflict(refusal(&refused))),
    }
}

pub fn commitment_json(commitment: &CommitmentRow) -> Value {
    json!({
        "application": commitment.application_id,
        "call": commitment.call_name,
        "title": commitment.title,
        "organisation": commitment.organisation,
        "amount_cents": commitment.amount_cents,
        "paid_cents": commitment.paid_cents,
        "project": commitment.project_id,
        "decided_at": crate::kit::page::iso8601(commitment.decided_at),
    })
}

/// A payment as the public sees it: its transfer reference stays with the programme's staff.
pub fn payment_json(payment: &PaymentRow) -> Value {
    json!({
        "id": payment.id,
        "application": payment.application_id,
        "budget_line": payment.budget_line,
        "amount_cents": payment.amount_cents,
        "paid_on": payment.paid_on,
    })
}

pub async fn line_records(State(state): State<AppState>, UrlPath(code): UrlPath<String>) -> AppResult<Json<Value>> {
    let programme = state.db.programme().await?;
    let line = programme.line(&code).ok_or_else(|| AppError::NotFound(format!("no budget line `{code}`")))?;
    let commitments = state.db.commitments(Some(&code)).await?;
    let payments = state.db.payments(Some(&code)).await?;
    Ok(Json(json!({
        "code": line.code,
        "label": { "fr": line.label_fr, "en": line.label_en },
        "envelope_cents": line.envelope_cents,
        "committed_cents": line.committed_cents,
        "disbursed_cents": line.disbursed_cents,
        "commitments": commitments.iter().map(commitment_json).collect::<Vec<_>>(),
        "payments": payments.iter().map(payment_json).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub application: i64,
    pub amount_cents: i64,
    /// `YYYY-MM-DD`, not after today.
    pub paid_on: String,
    /// The transfer's reference: a payment is recorded once.
    pub reference: String,
}

/// The longest transfer reference taken.
const MAX_REFERENCE: usize = 100;

pub async fn record_payment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<PaymentBody>,
) -> AppResult<(StatusCode, Json<Value>)> {
    if body.amount_cents <= 0 {
        return Err(AppError::Invalid("`amount_cents` must be a positive number of cents".into()));
    }
    let today = grappe_db::now_ms().div_euclid(calendar::DAY_MS);
    match calendar::parse_date(&body.paid_on) {
        None => return Err(AppError::Invalid("`paid_on` must be a date as YYYY-MM-DD".into())),
        Some(day) if day > today => return Err(AppError::Invalid("`paid_on` is after today".into())),
        // Before the national strategy (2018), a date is a mistyped one.
        Some(day) if day < calendar::days_from_civil(2018, 1, 1) => {
            return Err(AppError::Invalid("`paid_on` is before 2018, when the programme began".into()));
        }
        Some(_) => {}
    }
    let reference = body.reference.trim();
    if reference.is_empty() || reference.chars().count() > MAX_REFERENCE || reference.chars().any(char::is_control) {
        return Err(AppError::Invalid(format!("`reference` must be 1 to {MAX_REFERENCE} printable characters")));
    }
    let payment = NewPayment {
        application_id: body.application,
        amount_cents: body.amount_cents,
        paid_on: body.paid_on.trim(),
        reference,
    };
    match state.db.record_payment(&payment, &caller.audit_name()).await? {
        Ok(row) => {
            let mut body = payment_json(&row);
            body["reference"] = json!(row.reference);
            Ok((StatusCode::CREATED, Json(body)))
        }
        Err(PaymentRefused::NotGranted) => {
            Err(AppError::NotFound(format!("application {} has no grant to pay", body.application)))
        }
        Err(PaymentRefused::OverGrant { granted_cents, paid_cents }) => Err(AppError::Conflict(format!(
            "the grant is {granted_cents} cents and {paid_cents} are paid: {} cents more would pass it",
            body.amount_cents
        ))),
        Err(PaymentRefused::DuplicateReference) => {
            Err(AppError::Conflict(format!("a payment with reference `{reference}` is recorded already")))
        }
    }
}
