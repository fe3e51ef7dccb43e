//! The jury of a call: jurors invited by its managers; conflicts of interest declared by jurors,
//! detected by the server (same organisation, the juror's organisation among the partners, the
//! same e-mail domain) or set by a manager, each with its reason and who changed it; the
//! assignment (`grappe_jury`: exactly k reviewers per application, at most L applications per
//! juror, no conflicted pair, total TF-IDF affinity maximal); and reviews, which a juror writes
//! only for the applications assigned to them and not conflicted, and reads others' of only once
//! their own is in.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{
    ApplicationRow, AssignmentRow, CallRow, ConflictRow, JurorRow, NewJuror, ReviewFields, ReviewRow, now_ms,
};
use grappe_domain::account::{Email, Role, RoleGrant, Scope, ScopeKind};
use grappe_domain::policy;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::calls::{Phase, call_for, criteria, strings, text_field};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::ApiJson;
use crate::kit::state::AppState;

/// The most reviewers kept per application by affinity (the rest have affinity 0).
const AFFINITY_PER_APPLICATION: usize = 200;

/// The call, if the caller manages it; else 404 (a call's jury is its managers' business).
async fn managed_call(state: &AppState, caller: &Caller, id: i64) -> AppResult<CallRow> {
    let call = call_for(state, id).await?;
    if !policy::may_manage_call(&caller.actor, call.id) {
        return Err(AppError::Forbidden("only the call's managers do this"));
    }
    Ok(call)
}

fn juror_json(juror: &JurorRow) -> Value {
    json!({
        "id": juror.user_id,
        "name": juror.name,
        "email": juror.email,
        "country": juror.country,
        "organisation": juror.organisation,
        "keywords": strings(&juror.keywords),
    })
}

fn conflict_json(conflict: &ConflictRow) -> Value {
    json!({
        "application": conflict.application_id,
        "juror": conflict.user_id,
        "source": conflict.source,
        "reason": conflict.reason,
        "active": conflict.active,
        "changed_by": conflict.changed_by,
        "changed_at": conflict.changed_at,
        "why": conflict.why,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJurorBody {
    pub email: String,
    pub country: String,
    pub organisation: String,
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// Invites a juror (an existing account) into the call's jury: the one path for the API and
/// the demo. The conflicts the server can see are recorded at once.
pub async fn invite_juror(state: &AppState, caller: &Caller, call: &CallRow, body: NewJurorBody) -> AppResult<()> {
    if !policy::may_manage_call(&caller.actor, call.id) {
        return Err(AppError::Forbidden("only the call's managers invite jurors"));
    }
    let email = Email::parse(&body.email)?;
    let user = state
        .db
        .user_by_email(&email)
        .await?
        .ok_or_else(|| AppError::Invalid(format!("no account for {}: create it first", body.email)))?;
    let country = text_field("country", &body.country, 100)?;
    let organisation = text_field("organisation", &body.organisation, 200)?;
    if body.keywords.len() > 50 {
        return Err(AppError::Invalid("`keywords`: at most 50".into()));
    }
    let keywords: Vec<String> = body
        .keywords
        .iter()
        .enumerate()
        .map(|(i, k)| text_field(&format!("keywords[{i}]"), k, 100))
        .collect::<AppResult<_>>()?;
    let keywords = serde_json::to_string(&keywords).map_err(anyhow::Error::from)?;
    let juror = NewJuror {
        country: &country,
        organisation: &organisation,
        keywords: &keywords,
        invited_by: caller.actor.user_id(),
    };
    state.db.invite_juror(call.id, user.id, &juror, &caller.audit_name()).await?;
    let grant = RoleGrant { role: Role::Juror, scope: Scope::Object { kind: ScopeKind::Call, id: call.id } };
    state.db.grant_role(user.id, &grant, &caller.audit_name()).await?;
    detect_conflicts(state, call).await
}

pub async fn add_juror(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<NewJurorBody>,
) -> AppResult<Response> {
    let call = managed_call(&state, &caller, id).await?;
    invite_juror(&state, &caller, &call, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "call": call.id }))).into_response())
}

pub async fn jurors(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = managed_call(&state, &caller, id).await?;
    let items: Vec<Value> = state.db.jurors(call.id).await?.iter().map(juror_json).collect();
    Ok(Json(json!({ "items": items })))
}

fn normal(text: &str) -> String {
    text.trim().to_lowercase()
}

fn domain(email: &str) -> Option<String> {
    email.rsplit_once('@').map(|(_, domain)| domain.to_lowercase())
}

/// The conflicts the server sees between a juror and an application, with their reason.
fn detected(juror: &JurorRow, application: &ApplicationRow, applicant_email: Option<&str>) -> Option<String> {
    let organisation = normal(&juror.organisation);
    if organisation == normal(&application.organisation) {
        return Some(format!("same organisation ({})", juror.organisation));
    }
    if strings(&application.partners).iter().any(|partner| normal(partner) == organisation) {
        return Some(format!("the juror's organisation ({}) is a partner", juror.organisation));
    }
    let (Some(mine), Some(theirs)) = (domain(&juror.email), applicant_email.and_then(domain)) else { return None };
    (mine == theirs).then(|| format!("same e-mail domain ({mine})"))
}

/// Records every conflict the server sees in the call (those lifted by a manager stay lifted).
pub async fn detect_conflicts(state: &AppState, call: &CallRow) -> AppResult<()> {
    let jurors = state.db.jurors(call.id).await?;
    let applications = state.db.applications(call.id, None).await?;
    let mut emails: HashMap<i64, Option<String>> = HashMap::new();
    for application in &applications {
        if let std::collections::hash_map::Entry::Vacant(slot) = emails.entry(application.submitted_by) {
            slot.insert(state.db.user_by_id(application.submitted_by).await?.map(|user| user.email));
        }
    }
    for application in &applications {
        let email = emails.get(&application.submitted_by).cloned().flatten();
        for juror in &jurors {
            if let Some(reason) = detected(juror, application, email.as_deref()) {
                let conflict = ConflictRow {
                    application_id: application.id,
                    user_id: juror.user_id,
                    source: "detected".to_owned(),
                    reason,
                    active: true,
                    changed_by: "grappe".to_owned(),
                    changed_at: now_ms(),
                    why: String::new(),
                };
                state.db.record_conflict(call.id, &conflict, "grappe").await?;
            }
        }
    }
    Ok(())
}

pub async fn conflicts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = managed_call(&state, &caller, id).await?;
    detect_conflicts(&state, &call).await?;
    let items: Vec<Value> = state.db.conflicts(call.id).await?.iter().map(conflict_json).collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictBody {
    pub application: i64,
    pub juror: i64,
    /// True to add the conflict, false to lift it.
    pub active: bool,
    /// Why (required): recorded with the change.
    pub why: String,
}

/// A manager adds or lifts a conflict, saying why: the one path for the API and the form.
pub async fn change_conflict(state: &AppState, caller: &Caller, id: i64, body: ConflictBody) -> AppResult<ConflictRow> {
    let call = managed_call(state, caller, id).await?;
    let why = text_field("why", &body.why, 500)?;
    let application = state
        .db
        .application(body.application)
        .await?
        .filter(|application| application.call_id == call.id)
        .ok_or_else(|| AppError::Invalid(format!("no application {} in this call", body.application)))?;
    if !state.db.jurors(call.id).await?.iter().any(|juror| juror.user_id == body.juror) {
        return Err(AppError::Invalid(format!("user {} is not a juror of this call", body.juror)));
    }
    let conflict = ConflictRow {
        application_id: application.id,
        user_id: body.juror,
        source: "manager".to_owned(),
        reason: if body.active { why.clone() } else { "lifted".to_owned() },
        active: body.active,
        changed_by: caller.audit_name(),
        changed_at: now_ms(),
        why,
    };
    state.db.record_conflict(call.id, &conflict, &caller.audit_name()).await?;
    Ok(conflict)
}

pub async fn set_conflict(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<ConflictBody>,
) -> AppResult<Json<Value>> {
    Ok(Json(conflict_json(&change_conflict(&state, &caller, id, body).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclarationBody {
    pub reason: String,
}

/// A juror declares a conflict with an application of a call they judge: the one path for the
/// API and the form.
pub async fn declare(state: &AppState, caller: &Caller, id: i64, body: DeclarationBody) -> AppResult<ConflictRow> {
    let user = caller.actor.user_id().ok_or(AppError::Forbidden("jurors are user accounts"))?;
    let application = state.db.application(id).await?;
    let juror_of = match &application {
        Some(application) => state.db.jurors(application.call_id).await?.iter().any(|juror| juror.user_id == user),
        None => false,
    };
    let Some(application) = application.filter(|_| juror_of) else {
        return Err(AppError::NotFound(format!("application {id} not found")));
    };
    let reason = text_field("reason", &body.reason, 500)?;
    let conflict = ConflictRow {
        application_id: application.id,
        user_id: user,
        source: "declared".to_owned(),
        reason,
        active: true,
        changed_by: caller.audit_name(),
        changed_at: now_ms(),
        why: String::new(),
    };
    state.db.record_conflict(application.call_id, &conflict, &caller.audit_name()).await?;
    Ok(conflict)
}

pub async fn declare_conflict(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<DeclarationBody>,
) -> AppResult<Json<Value>> {
    Ok(Json(conflict_json(&declare(&state, &caller, id, body).await?)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// L: the most applications per juror; by default the fewest that can work, plus one.
    #[serde(default)]
    pub max_load: Option<usize>,
}

/// Computes and stores the call's assignment (before any review): the conflicts the server
/// sees are recorded first; an impossible one says which constraint cannot be met.
pub async fn assign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<AssignBody>,
) -> AppResult<Json<Value>> {
    Ok(Json(assign_call(&state, &caller, id, body.max_load).await?))
}

/// Assigns the call's jurors: the one path for the API and the manager's page.
pub async fn assign_call(state: &AppState, caller: &Caller, id: i64, max_load: Option<usize>) -> AppResult<Value> {
    let call = managed_call(state, caller, id).await?;
    detect_conflicts(state, &call).await?;
    let rolling = call.closes_at.is_none();
    let mut applications = state.db.applications(call.id, None).await?;
    if rolling {
        // A rolling call assigns the applications that came since: the others keep their jurors.
        let assigned: HashSet<i64> = state.db.assignments(call.id).await?.iter().map(|p| p.application_id).collect();
        applications.retain(|application| !assigned.contains(&application.id));
    }
    let jurors = state.db.jurors(call.id).await?;
    if applications.is_empty() || jurors.is_empty() {
        let what = if rolling { "applications not yet assigned" } else { "applications" };
        return Err(AppError::Conflict(format!("the call needs {what} and jurors to assign")));
    }
    let k = call.reviewers_per_application as usize;
    let max_load = max_load.unwrap_or_else(|| (k * applications.len()).div_ceil(jurors.len()) + 1);
    let app_index: HashMap<i64, usize> = applications.iter().enumerate().map(|(i, a)| (a.id, i)).collect();
    let juror_index: HashMap<i64, usize> = jurors.iter().enumerate().map(|(i, j)| (j.user_id, i)).collect();
    let conflicts: Vec<(usize, usize)> = state
        .db
        .conflicts(call.id)
        .await?
        .iter()
        .filter(|conflict| conflict.active)
        .filter_map(|c| Some((*app_index.get(&c.application_id)?, *juror_index.get(&c.user_id)?)))
        .collect();
    let app_texts: Vec<String> =
        applications.iter().map(|a| format!("{} {} {}", a.title, a.summary, strings(&a.keywords).join(" "))).collect();
    let juror_texts: Vec<String> = jurors.iter().map(|j| strings(&j.keywords).join(" ")).collect();
    let (assignment, affinity) = crate::kit::stored::blocking(move || {
        let apps: Vec<&str> = app_texts.iter().map(String::as_str).collect();
        let revs: Vec<&str> = juror_texts.iter().map(String::as_str).collect();
        let conflicted: HashSet<(usize, usize)> = conflicts.iter().copied().collect();
        let affinity: Vec<(usize, usize, f64)> = grappe_jury::affinity::tf_idf(&apps, &revs, AFFINITY_PER_APPLICATION)
            .into_iter()
            .filter(|(a, r, _)| !conflicted.contains(&(*a, *r)))
            .collect();
        let spec = grappe_jury::ProblemSpec {
            applications: (0..apps.len()).map(|i| i.to_string()).collect(),
            reviewers: (0..revs.len()).map(|i| i.to_string()).collect(),
            reviewers_per_application: k,
            max_load,
            affinity: affinity.clone(),
            conflicts,
        };
        let problem = grappe_jury::Problem::new(spec).map_err(|error| AppError::Invalid(error.to_string()))?;
        let assignment = grappe_jury::assign(&problem).map_err(|why| AppError::Conflict(why.to_string()));
        Ok((assignment, affinity))
    })
    .await?;
    let assignment = assignment.map_err(|error| match error {
        // The solver names applications by position: say which application it is.
        AppError::Conflict(text) => AppError::Conflict(name_positions(&text, &applications)),
        other => other,
    })?;
    let scores: HashMap<(usize, usize), f64> = affinity.iter().map(|(a, r, s)| ((*a, *r), *s)).collect();
    let pairs: Vec<AssignmentRow> = assignment
        .pairs
        .iter()
        .map(|(a, r)| AssignmentRow {
            application_id: applications[*a].id,
            user_id: jurors[*r].user_id,
            affinity: scores.get(&(*a, *r)).copied().unwrap_or(0.0),
        })
        .collect();
    if rolling {
        if let Err(application) = state.db.add_assignments(call.id, &pairs, &caller.audit_name()).await? {
            return Err(AppError::Conflict(format!("application {application} was assigned meanwhile: assign again")));
        }
    } else if let Err(reviews) = state.db.replace_assignments(call.id, &pairs, &caller.audit_name()).await? {
        return Err(AppError::Conflict(format!("{reviews} reviews are written: the assignment is kept")));
    }
    Ok(assignment_json(&pairs, max_load))
}

/// "application 3" (a position) as "application 17" (its id) in the solver's explanation.
fn name_positions(text: &str, applications: &[ApplicationRow]) -> String {
    let mut named = text.to_owned();
    for (position, application) in applications.iter().enumerate().rev() {
        named = named.replace(&format!("application {position}"), &format!("application #{}", application.id));
    }
    named
}

fn assignment_json(pairs: &[AssignmentRow], max_load: usize) -> Value {
    let total: f64 = pairs.iter().map(|pair| pair.affinity).sum();
    let items: Vec<Value> = pairs
        .iter()
        .map(|pair| json!({ "application": pair.application_id, "juror": pair.user_id, "affinity": pair.affinity }))
        .collect();
    json!({ "assignment": items, "total_affinity": total, "max_load": max_load })
}

pub async fn assignment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = managed_call(&state, &caller, id).await?;
    let pairs = state.db.assignments(call.id).await?;
    let max_load = {
        let mut loads: HashMap<i64, usize> = HashMap::new();
        pairs.iter().for_each(|pair| *loads.entry(pair.user_id).or_default() += 1);
        loads.values().copied().max().unwrap_or(0)
    };
    Ok(Json(assignment_json(&pairs, max_load)))
}

/// The applications assigned to the caller in a call, conflicted ones left out.
pub async fn assigned(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let call = call_for(&state, id).await?;
    let user = caller.actor.user_id().ok_or(AppError::Forbidden("jurors are user accounts"))?;
    let mut items = Vec::new();
    for pair in state.db.assignments(call.id).await?.iter().filter(|pair| pair.user_id == user) {
        if state.db.may_review(pair.application_id, user).await?
            && let Some(application) = state.db.application(pair.application_id).await?
        {
            items.push(crate::calls::application_json(&application));
        }
    }
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// A score per criterion, by its key, from 0 to the call's scale.
    pub scores: Map<String, Value>,
    /// A justification per criterion, by its key.
    pub justifications: Map<String, Value>,
    /// From 1 (not sure) to 5 (expert).
    pub confidence: i64,
}

fn review_json(review: &ReviewRow) -> Value {
    json!({
        "application": review.application_id,
        "juror": review.user_id,
        "scores": serde_json::from_str::<Value>(&review.scores).unwrap_or(Value::Null),
        "justifications": serde_json::from_str::<Value>(&review.justifications).unwrap_or(Value::Null),
        "confidence": review.confidence,
        "submitted_at": review.submitted_at,
        "updated_at": review.updated_at,
    })
}

/// A juror writes (or rewrites) their review of an application assigned to them and not
/// conflicted, during the call's review phase.
pub async fn review(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> AppResult<Json<Value>> {
    Ok(Json(review_json(&write_review(&state, &caller, id, body).await?)))
}

/// Checks and saves a juror's review: the one path for the API and the juror's page.
pub async fn write_review(state: &AppState, caller: &Caller, id: i64, body: ReviewBody) -> AppResult<ReviewRow> {
    let user = caller.actor.user_id().ok_or(AppError::Forbidden("jurors are user accounts"))?;
    let application = state.db.application(id).await?;
    let allowed = match &application {
        Some(application) => state.db.may_review(application.id, user).await?,
        None => false,
    };
    let Some(application) = application.filter(|_| allowed) else {
        return Err(AppError::NotFound(format!("application {id} not found")));
    };
    let call = call_for(state, application.call_id).await?;
    if !reviews_open(&call, now_ms()) {
        return Err(AppError::Conflict("reviews are written during the call's review phase".into()));
    }
    let criteria = criteria(&call);
    if !(1..=5).contains(&body.confidence) {
        return Err(AppError::Invalid("`confidence`: 1 to 5".into()));
    }
    for criterion in &criteria {
        let score = body.scores.get(&criterion.key).and_then(Value::as_f64);
        if !score.is_some_and(|score| (0.0..=call.scale_max as f64).contains(&score)) {
            return Err(AppError::Invalid(format!(
                "`scores.{}`: a number from 0 to {}",
                criterion.key, call.scale_max
            )));
        }
        let justification = body.justifications.get(&criterion.key).and_then(Value::as_str).unwrap_or("");
        if justification.trim().is_empty() || justification.len() > 10_000 {
            return Err(AppError::Invalid(format!("`justifications.{}`: 1 to 10,000 bytes", criterion.key)));
        }
    }
    if let Some(extra) =
        body.scores.keys().chain(body.justifications.keys()).find(|key| !criteria.iter().any(|c| &&c.key == key))
    {
        return Err(AppError::Invalid(format!("`{extra}` is not a criterion of the call")));
    }
    if state.db.decisions(call.id).await?.iter().any(|decision| decision.application_id == application.id) {
        return Err(AppError::Conflict("the application is decided: its reviews are final".into()));
    }
    let fields = ReviewFields {
        scores: &Value::Object(body.scores).to_string(),
        justifications: &Value::Object(body.justifications).to_string(),
        confidence: body.confidence,
    };
    Ok(state.db.save_review(call.id, application.id, user, &fields).await?)
}

/// An application's reviews: all of them for the call's managers; for a juror who may review
/// it, their own, and the others' once their own is in.
pub async fn reviews(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let user = caller.actor.user_id();
    let application = state.db.application(id).await?;
    let (manager, juror) = match (&application, user) {
        (Some(application), user) => (
            policy::may_manage_call(&caller.actor, application.call_id),
            match user {
                Some(user) => state.db.may_review(application.id, user).await?,
                None => false,
            },
        ),
        (None, _) => (false, false),
    };
    let Some(application) = application.filter(|_| manager || juror) else {
        return Err(AppError::NotFound(format!("application {id} not found")));
    };
    let all = state.db.reviews(application.id).await?;
    let own_in = all.iter().any(|review| Some(review.user_id) == user);
    let items: Vec<Value> =
        all.iter().filter(|review| manager || own_in || Some(review.user_id) == user).map(review_json).collect();
    Ok(Json(json!({ "items": items })))
}

/// Whether reviews are taken now: in the review phase, or at any time once a rolling call has
/// opened (its applications are assigned and decided one by one).
pub fn reviews_open(call: &CallRow, now: i64) -> bool {
    let phase = Phase::of(call, now);
    phase == Phase::Review || (call.closes_at.is_none() && phase != Phase::Draft)
}

/// Whether a juror may read an application: assigned and not conflicted.
pub(crate) async fn juror_reads(state: &AppState, caller: &Caller, application: &ApplicationRow) -> AppResult<bool> {
    Ok(match caller.actor.user_id() {
        Some(user) => state.db.may_review(application.id, user).await?,
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn juror(organisation: &str, email: &str) -> JurorRow {
        JurorRow {
            user_id: 1,
            name: "J".into(),
            email: email.into(),
            country: "DE".into(),
            organisation: organisation.into(),
            keywords: "[]".into(),
        }
    }

    fn application(organisation: &str, partners: &str) -> ApplicationRow {
        ApplicationRow {
            id: 7,
            call_id: 1,
            submitted_by: 2,
            organisation: organisation.into(),
            title: "T".into(),
            summary: "S".into(),
            partners: partners.into(),
            keywords: "[]".into(),
            requested_cents: 1,
            requested_gpu_hours: 0,
            version: 1,
            created_at: 0,
            updated_at: 0,
            attachments: None,
        }
    }

    #[test]
    fn conflicts_are_detected_with_their_reason() {
        let app = application("Université Paris-Saclay", r#"["Inria", "CNRS"]"#);
        let same = detected(&juror(" université paris-saclay ", "a@x.de"), &app, Some("b@y.fr")).unwrap();
        assert!(same.contains("same organisation"), "{same}");
        let partner = detected(&juror("Inria", "a@x.de"), &app, Some("b@y.fr")).unwrap();
        assert!(partner.contains("partner"), "{partner}");
        let domain = detected(&juror("ETH Zürich", "a@Saclay.fr"), &app, Some("b@saclay.fr")).unwrap();
        assert!(domain.contains("saclay.fr"), "{domain}");
        assert_eq!(detected(&juror("ETH Zürich", "a@ethz.ch"), &app, Some("b@saclay.fr")), None);
    }
}
