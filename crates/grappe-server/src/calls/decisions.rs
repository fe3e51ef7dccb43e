//! Decisions: the call's managers decide a batch of applications once the call is closed (a
//! rolling call, one by one at any time); each selected application becomes a compute project
//! with its GPU-hours and its amount is committed on the programme's budget line, all in one
//! transaction. Applicants read their decision and their reviews without the jurors' names;
//! the selected applications are open data (JSON and CSV).

use std::collections::HashMap;

use axum::extract::{Path as UrlPath, State};
use axum::response::Response;
use axum::{Extension, Json};
use grappe_db::{ApplicationRow, CallRow, DecisionRefused, DecisionRow, NewDecision, now_ms};
use grappe_domain::policy;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::calls::{Phase, call_for, readable_application};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub application: i64,
    pub selected: bool,
    /// The amount granted: at most what was asked (it may be cut).
    #[serde(default)]
    pub amount_cents: i64,
    #[serde(default)]
    pub gpu_hours: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsBody {
    pub decisions: Vec<DecisionBody>,
}

/// The most decisions of one batch.
const MAX_BATCH: usize = 1000;

fn decision_json(decision: &DecisionRow, application: Option<&ApplicationRow>) -> Value {
    json!({
        "application": decision.application_id,
        "title": application.map(|a| a.title.clone()),
        "organisation": application.map(|a| a.organisation.clone()),
        "selected": decision.selected,
        "amount_cents": decision.amount_cents,
        "gpu_hours": decision.gpu_hours,
        "project": decision.project_id,
        "budget_line": decision.budget_line,
        "decided_at": decision.decided_at,
    })
}

/// Checks and records a batch of decisions: the one path for the API and the demo.
pub async fn take_decisions(
    state: &AppState,
    caller: &Caller,
    call: &CallRow,
    body: DecisionsBody,
) -> AppResult<Vec<DecisionRow>> {
    if !policy::may_manage_call(&caller.actor, call.id) {
        return Err(AppError::Forbidden("only the call's managers decide"));
    }
    let phase = Phase::of(call, now_ms());
    if call.closes_at.is_some() && matches!(phase, Phase::Draft | Phase::Open) {
        return Err(AppError::Conflict("decisions are taken once the call is closed".into()));
    }
    if body.decisions.is_empty() || body.decisions.len() > MAX_BATCH {
        return Err(AppError::Invalid(format!("`decisions`: 1 to {MAX_BATCH}")));
    }
    let applications: HashMap<i64, ApplicationRow> =
        state.db.applications(call.id, None).await?.into_iter().map(|a| (a.id, a)).collect();
    let mut names = Vec::with_capacity(body.decisions.len());
    for (i, decision) in body.decisions.iter().enumerate() {
        let Some(application) = applications.get(&decision.application) else {
            return Err(AppError::Invalid(format!(
                "decisions[{i}]: no application {} in this call",
                decision.application
            )));
        };
        if body.decisions[..i].iter().any(|other| other.application == decision.application) {
            return Err(AppError::Invalid(format!("decisions[{i}]: application {} twice", decision.application)));
        }
        if decision.selected {
            if !(1..=application.requested_cents).contains(&decision.amount_cents) {
                return Err(AppError::Invalid(format!(
                    "decisions[{i}].amount_cents: above 0, at most the {} cents asked",
                    application.requested_cents
                )));
            }
            if !(0..=application.requested_gpu_hours).contains(&decision.gpu_hours) {
                return Err(AppError::Invalid(format!(
                    "decisions[{i}].gpu_hours: at most the {} asked",
                    application.requested_gpu_hours
                )));
            }
        }
        names.push(format!("{}-{}", call.name, application.id));
    }
    let decisions: Vec<NewDecision> = body
        .decisions
        .iter()
        .zip(&names)
        .map(|(decision, name)| NewDecision {
            application: &applications[&decision.application],
            selected: decision.selected,
            amount_cents: decision.amount_cents,
            gpu_hours: decision.gpu_hours,
            project_name: name,
        })
        .collect();
    state.db.decide(call, &decisions, &caller.audit_name()).await?.map_err(|refused| match refused {
        DecisionRefused::AlreadyDecided { application_id } => {
            AppError::Conflict(format!("application {application_id} is already decided"))
        }
        DecisionRefused::OverEnvelope { asked_cents, left_cents } => AppError::Conflict(format!(
            "these decisions grant {asked_cents} cents; {left_cents} are left in the call's envelope"
        )),
        DecisionRefused::NoBudgetLine { instrument } => {
            AppError::Conflict(format!("the programme has no budget line for `{instrument}`"))
        }
    })
}

pub async fn decide(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<DecisionsBody>,
) -> AppResult<Json<Value>> {
    let call = call_for(&state, id).await?;
    let recorded = take_decisions(&state, &caller, &call, body).await?;
    let items: Vec<Value> = recorded.iter().map(|d| decision_json(d, None)).collect();
    Ok(Json(json!({ "items": items })))
}

/// The decisions to show this caller: every one to the call's managers, the selected ones
/// (open data) to anyone else.
async fn shown(
    state: &AppState,
    caller: &Caller,
    call: &CallRow,
) -> AppResult<Vec<(DecisionRow, Option<ApplicationRow>)>> {
    let manager = policy::may_manage_call(&caller.actor, call.id);
    let applications: HashMap<i64, ApplicationRow> =
        state.db.applications(call.id, None).await?.into_iter().map(|a| (a.id, a)).collect();
    Ok(state
        .db
        .decisions(call.id)
        .await?
        .into_iter()
        .filter(|decision| manager || decision.selected)
        .map(|decision| {
            let application = applications.get(&decision.application_id).cloned();
            (decision, application)
        })
        .collect())
}

pub async fn decisions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = call_for(&state, id).await?;
    let items: Vec<Value> =
        shown(&state, &caller, &call).await?.iter().map(|(d, a)| decision_json(d, a.as_ref())).collect();
    Ok(Json(json!({ "call": call.name, "items": items })))
}

pub async fn decisions_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Response> {
    let call = call_for(&state, id).await?;
    let mut csv = String::from("application,title,organisation,selected,amount_cents,gpu_hours,decided_at\n");
    for (decision, application) in shown(&state, &caller, &call).await? {
        let field = |text: Option<&str>| crate::kit::page::csv_field(text.unwrap_or(""));
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            decision.application_id,
            field(application.as_ref().map(|a| a.title.as_str())),
            field(application.as_ref().map(|a| a.organisation.as_str())),
            decision.selected,
            decision.amount_cents,
            decision.gpu_hours,
            crate::kit::page::iso_datetime(decision.decided_at)
        ));
    }
    Ok(crate::kit::page::csv_download(&format!("{}-decisions.csv", call.name), csv))
}

/// An application's decision, with its reviews without the jurors' names, for its author and
/// the call's managers, once decided.
pub async fn application_decision(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let application = readable_application(&state, &caller, id).await?;
    let author_or_manager = caller.actor.user_id() == Some(application.submitted_by)
        || policy::may_manage_call(&caller.actor, application.call_id);
    if !author_or_manager {
        return Err(AppError::NotFound(format!("application {id} not found")));
    }
    let decision = state
        .db
        .decisions(application.call_id)
        .await?
        .into_iter()
        .find(|decision| decision.application_id == application.id)
        .ok_or_else(|| AppError::NotFound("no decision yet".into()))?;
    let reviews: Vec<Value> = state
        .db
        .counted_reviews(application.id)
        .await?
        .iter()
        .enumerate()
        .map(|(i, review)| {
            json!({
                "reviewer": format!("R{}", i + 1),
                "scores": serde_json::from_str::<Value>(&review.scores).unwrap_or(Value::Null),
                "justifications": serde_json::from_str::<Value>(&review.justifications).unwrap_or(Value::Null),
                "confidence": review.confidence,
            })
        })
        .collect();
    let mut answer = decision_json(&decision, Some(&application));
    answer["reviews"] = Value::Array(reviews);
    Ok(Json(answer))
}

/// One application of the ranking.
pub struct Ranked {
    pub application: ApplicationRow,
    pub reviews: usize,
    /// The mean of its reviews' weighted scores, on the call's scale.
    pub raw: Option<f64>,
    /// The mean z-score of its reviews within each juror's own.
    pub z: Option<f64>,
    /// Quality in the least-squares model of juror bias, on the call's scale.
    pub calibrated: Option<f64>,
    /// Highest minus lowest weighted score of its reviews.
    pub spread: f64,
    /// Large spreads are flagged for discussion (over 40 % of the scale).
    pub flagged: bool,
    /// Its place by Borda and by Schulze over the jurors' own orderings.
    pub borda: usize,
    pub schulze: usize,
    /// What the applications ranked up to this one ask, in all.
    pub cumulative_cents: i64,
    /// Whether that still fits the envelope.
    pub fits: bool,
}

/// A review's weighted score: the criteria's weighted mean.
fn weighted(call: &CallRow, scores: &str) -> Option<f64> {
    let scores: serde_json::Map<String, Value> = serde_json::from_str(scores).ok()?;
    let criteria = crate::calls::criteria(call);
    let total: f64 = criteria.iter().map(|c| c.weight).sum();
    (total > 0.0).then(|| {
        criteria.iter().map(|c| c.weight * scores.get(&c.key).and_then(Value::as_f64).unwrap_or(0.0)).sum::<f64>()
            / total
    })
}

/// The call's applications ranked by calibrated score (then raw), with what fits the envelope;
/// and the Borda and Schulze places from each juror's own ordering, for comparison.
pub async fn ranking_of(state: &AppState, call: &CallRow) -> AppResult<Vec<Ranked>> {
    let applications = state.db.applications(call.id, None).await?;
    let mut jurors: HashMap<i64, usize> = HashMap::new();
    // (juror, application, weighted score), by positions.
    let mut reviews: Vec<grappe_jury::calibrate::Review> = Vec::new();
    for (a, application) in applications.iter().enumerate() {
        for review in state.db.counted_reviews(application.id).await? {
            let next = jurors.len();
            let j = *jurors.entry(review.user_id).or_insert(next);
            if let Some(score) = weighted(call, &review.scores) {
                reviews.push((j, a, score));
            }
        }
    }
    let calibration = |error: grappe_jury::calibrate::CalibrationError| AppError::Internal(anyhow::anyhow!("{error}"));
    let z = grappe_jury::calibrate::z_scores(&reviews, jurors.len()).map_err(calibration)?;
    let model = grappe_jury::calibrate::bias_model(&reviews, jurors.len(), applications.len()).map_err(calibration)?;
    // Each juror's ordering of the applications they reviewed, best first.
    let mut orderings: Vec<Vec<(f64, usize)>> = vec![Vec::new(); jurors.len()];
    for &(j, a, score) in &reviews {
        orderings[j].push((score, a));
    }
    let orderings: Vec<Vec<usize>> = orderings
        .into_iter()
        .map(|mut own| {
            own.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            own.into_iter().map(|(_, a)| a).collect()
        })
        .collect();
    let place = |order: Vec<usize>| {
        let mut places = vec![0; applications.len()];
        order.into_iter().enumerate().for_each(|(i, a)| places[a] = i + 1);
        places
    };
    let borda = place(grappe_jury::rank::borda(&orderings, applications.len()).into_iter().map(|(a, _)| a).collect());
    let schulze =
        place(grappe_jury::rank::schulze(&orderings, applications.len()).into_iter().map(|(a, _)| a).collect());
    let mut ranked: Vec<Ranked> = applications
        .into_iter()
        .enumerate()
        .map(|(a, application)| {
            let own: Vec<(f64, f64)> =
                reviews.iter().zip(&z).filter(|((_, x, _), _)| *x == a).map(|((_, _, s), z)| (*s, *z)).collect();
            let n = own.len();
            let mean = |f: &dyn Fn(&(f64, f64)) -> f64| (n > 0).then(|| own.iter().map(f).sum::<f64>() / n as f64);
            let max = own.iter().map(|(s, _)| *s).fold(f64::NEG_INFINITY, f64::max);
            let min = own.iter().map(|(s, _)| *s).fold(f64::INFINITY, f64::min);
            let spread = if n > 1 { max - min } else { 0.0 };
            Ranked {
                application,
                reviews: n,
                raw: mean(&|(s, _)| *s),
                z: mean(&|(_, z)| *z),
                calibrated: model.quality[a],
                spread,
                flagged: spread > 0.4 * call.scale_max as f64,
                borda: borda[a],
                schulze: schulze[a],
                cumulative_cents: 0,
                fits: false,
            }
        })
        .collect();
    let key = |r: &Ranked| (r.calibrated.unwrap_or(f64::NEG_INFINITY), r.raw.unwrap_or(f64::NEG_INFINITY));
    ranked.sort_by(|x, y| {
        let (a, b) = (key(x), key(y));
        b.0.total_cmp(&a.0).then(b.1.total_cmp(&a.1)).then(x.application.id.cmp(&y.application.id))
    });
    let mut cumulative = 0i64;
    for line in &mut ranked {
        cumulative = cumulative.saturating_add(line.application.requested_cents);
        line.cumulative_cents = cumulative;
        line.fits = cumulative <= call.envelope_cents;
    }
    Ok(ranked)
}

pub async fn ranking(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = call_for(&state, id).await?;
    if !policy::may_manage_call(&caller.actor, call.id) {
        return Err(AppError::Forbidden("only the call's managers see the ranking"));
    }
    let items: Vec<Value> = ranking_of(&state, &call)
        .await?
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({
                "rank": i + 1,
                "application": r.application.id,
                "title": r.application.title,
                "reviews": r.reviews,
                "raw": r.raw,
                "z": r.z,
                "calibrated": r.calibrated,
                "spread": r.spread,
                "flagged": r.flagged,
                "borda": r.borda,
                "schulze": r.schulze,
                "requested_cents": r.application.requested_cents,
                "cumulative_cents": r.cumulative_cents,
                "fits": r.fits,
            })
        })
        .collect();
    Ok(Json(json!({ "envelope_cents": call.envelope_cents, "items": items })))
}
