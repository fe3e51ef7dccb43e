//! The international challenge: challenges on a public dataset version of the data commons,
//! with hidden test labels; teams; submissions of prediction files (scored at once) or of code
//! (run as a job without network on the challenge's project, its `predictions.csv` scored when
//! it ends: [`scoring`]); public and private leaderboards (`grappe_eval::board`). The hidden
//! labels are read from the database by [`scoring`] only and never leave it: no answer, page,
//! log or job carries them, and errors name only the predictions' lines and the (public) ids.

pub mod pages;
pub mod scoring;

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use grappe_db::{
    ChallengeRow, LimitReached, Limits, NewChallenge, NewSubmission, Outcome, SubmissionRow, TeamRow, now_ms,
};
use grappe_domain::account::Email;
use grappe_domain::policy::{self, Access};
use grappe_eval::board::{self, Scored, Standing};
use grappe_eval::{Metric, Role as TableRole, Table};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::compute::{NewJobBody, Submitted};
use crate::kit::caller::{Caller, new_secret};
use crate::kit::error::{AppError, AppResult};
use crate::kit::extract::{ApiJson, ApiQuery};
use crate::kit::route::{Kind, Method, Route, route};
use crate::kit::state::AppState;

pub fn routes() -> Vec<Route> {
    use Access::{Public, SignedIn};
    use Kind::{Api, Page};
    use Method::{Get, Post};
    vec![
        route(Api, Get, "/api/v1/challenges", Public, "Challenges, newest first", list),
        route(Api, Post, "/api/v1/challenges", SignedIn, "Create a challenge (challenge organisers)", create)
            .body("NewChallenge"),
        route(Api, Get, "/api/v1/challenges/{id}", Public, "A challenge: data, metric, phases, limits", show),
        route(
            Api,
            Get,
            "/api/v1/challenges/{id}/leaderboard",
            Public,
            "The public board; ?board=private once revealed",
            leaderboard,
        ),
        route(
            Api,
            Get,
            "/api/v1/challenges/{id}/leaderboard.csv",
            Public,
            "A board as CSV; ?board=private once revealed",
            leaderboard_csv,
        ),
        route(Api, Post, "/api/v1/challenges/{id}/teams", SignedIn, "Create a team and join it", create_team)
            .body("NewTeam"),
        route(
            Api,
            Get,
            "/api/v1/challenges/{id}/team",
            SignedIn,
            "The caller's team, invitations, submissions",
            my_team,
        ),
        route(
            Api,
            Post,
            "/api/v1/challenges/{id}/team/invitations",
            SignedIn,
            "Invite someone into the caller's team (members)",
            invite,
        )
        .body("Invitation"),
        route(
            Api,
            Post,
            "/api/v1/challenges/{id}/teams/{team}/join",
            SignedIn,
            "Accept a team's invitation; from another team, merge it in",
            join,
        ),
        route(Api, Post, "/api/v1/challenges/{id}/team/leave", SignedIn, "Leave the caller's team", leave),
        route(
            Api,
            Post,
            "/api/v1/challenges/{id}/submissions",
            SignedIn,
            "Submit predictions: a CSV body (id and one value column), or a job's output as JSON",
            submit_file,
        ),
        route(
            Api,
            Post,
            "/api/v1/challenges/{id}/submissions/code",
            SignedIn,
            "Submit code, run as a job without network",
            submit_code,
        )
        .body("CodeSubmission"),
        route(
            Api,
            Get,
            "/api/v1/challenges/{id}/submissions/{submission}",
            SignedIn,
            "A submission (its team, organisers)",
            show_submission,
        ),
        route(
            Api,
            Post,
            "/api/v1/challenges/{id}/finals",
            SignedIn,
            "Choose the team's final submissions (at most two)",
            choose_finals,
        )
        .body("Finals"),
        route(Page, Get, "/challenges", Public, "Challenges", pages::list_page),
        route(Page, Get, "/challenges/{id}", Public, "A challenge: boards, team, submissions", pages::challenge_page),
        route(Page, Post, "/challenges/{id}/teams", SignedIn, "Create a team from the form", pages::team_form),
        route(
            Page,
            Post,
            "/challenges/{id}/submissions",
            SignedIn,
            "Submit predictions from the form",
            pages::submission_form,
        ),
    ]
}

/// The most test rows a challenge may have.
const MAX_TEST_ROWS: usize = 5_000_000;
/// The most bytes of a description.
const MAX_DESCRIPTION: usize = 64 * 1024;
/// The most phases of a challenge.
const MAX_PHASES: usize = 10;
/// How long a code submission may wait in the queue beyond its time limit before it is given
/// up (not counted against the team).
pub const QUEUE_ALLOWANCE_MS: i64 = 6 * 3600 * 1000;
/// The most challenges a list shows.
const LIST_LIMIT: i64 = 200;

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    /// Unix milliseconds, UTC.
    pub starts_at: i64,
    pub ends_at: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeResources {
    /// The project whose allocation runs the code (the organiser must be its member).
    pub project: i64,
    #[serde(default = "one")]
    pub cpus: i64,
    #[serde(default = "default_memory")]
    pub memory_mb: i64,
    #[serde(default = "ten_minutes")]
    pub time_limit_s: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChallengeBody {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// `NAME`, `NAME@vN` or `NAME@VERSION_ID`: a public dataset.
    pub dataset: String,
    pub metric: String,
    /// The hidden test labels: CSV with an `id` column and one value column.
    pub labels: String,
    #[serde(default = "thirty")]
    pub public_percent: i64,
    pub phases: Vec<Phase>,
    #[serde(default = "five")]
    pub per_day: i64,
    #[serde(default = "hundred")]
    pub total: i64,
    #[serde(default = "five")]
    pub team_size: i64,
    #[serde(default)]
    pub ladder_step: Option<f64>,
    #[serde(default)]
    pub code: Option<CodeResources>,
}

fn one() -> i64 {
    1
}
fn five() -> i64 {
    5
}
fn thirty() -> i64 {
    30
}
fn hundred() -> i64 {
    100
}
fn default_memory() -> i64 {
    1024
}
fn ten_minutes() -> i64 {
    600
}

/// Where a challenge stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Upcoming,
    /// Taking submissions, in this phase (its index).
    Open(usize),
    /// Between two phases.
    Paused,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Upcoming => "upcoming",
            Status::Open(_) => "open",
            Status::Paused => "paused",
            Status::Closed => "closed",
        }
    }
}

pub fn phases(challenge: &ChallengeRow) -> Vec<Phase> {
    serde_json::from_str(&challenge.phases).unwrap_or_default()
}

pub fn status(challenge: &ChallengeRow, now: i64) -> Status {
    if now < challenge.opens_at {
        return Status::Upcoming;
    }
    if now >= challenge.closes_at {
        return Status::Closed;
    }
    phases(challenge)
        .iter()
        .position(|phase| phase.starts_at <= now && now < phase.ends_at)
        .map_or(Status::Paused, Status::Open)
}

pub fn metric_of(challenge: &ChallengeRow) -> AppResult<Metric> {
    challenge.metric.parse().map_err(|_| anyhow::anyhow!("challenge {}: unknown metric", challenge.id).into())
}

/// Whether the private board is shown to this caller: to everyone once the challenge closed,
/// to its organisers always.
pub fn private_visible(caller: &Caller, challenge: &ChallengeRow, now: i64) -> bool {
    now >= challenge.closes_at || organises(caller, challenge)
}

pub fn organises(caller: &Caller, challenge: &ChallengeRow) -> bool {
    policy::may_organise_challenge(&caller.actor, challenge.id, challenge.created_by)
}

/// The 64-bit hash that draws a test row into the public part: SHA-256 of the key and the id.
fn split_hash(key: &[u8], id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new().chain_update(key).chain_update(id.as_bytes()).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Which ids are public: those whose hash under the challenge's key (its random secret, as
/// stored) is at most the threshold.
pub struct Split {
    key: Vec<u8>,
    threshold: u64,
}

impl Split {
    pub fn of(challenge: &ChallengeRow) -> AppResult<Split> {
        let threshold = u64::from_str_radix(&challenge.split_threshold, 16)
            .map_err(|_| anyhow::anyhow!("challenge {}: its split is unreadable", challenge.id))?;
        Ok(Split { key: challenge.split_key.as_bytes().to_vec(), threshold })
    }

    /// Draws the public part: the `percent` of ids with the smallest hashes (at least one row
    /// in each part).
    fn draw(key: &[u8], truth: &Table, percent: i64) -> Split {
        let mut hashes: Vec<u64> = truth.ids().map(|id| split_hash(key, id)).collect();
        hashes.sort_unstable();
        let rows = hashes.len() as i64;
        let public = ((rows * percent + 50) / 100).clamp(1, rows - 1);
        Split { key: key.to_vec(), threshold: hashes[(public - 1) as usize] }
    }

    pub fn is_public(&self, id: &str) -> bool {
        split_hash(&self.key, id) <= self.threshold
    }
}

/// Scores predictions against the challenge's hidden labels: (public, private). A
/// `ScoreError` names the predictions' line and id, never a label.
pub async fn score_predictions(
    state: &AppState,
    challenge: &ChallengeRow,
    predictions: &[u8],
) -> AppResult<(f64, f64)> {
    let metric = metric_of(challenge)?;
    let split = Split::of(challenge)?;
    let predictions =
        Table::parse(predictions, TableRole::Predictions).map_err(|e| AppError::Invalid(e.to_string()))?;
    let labels = state.db.challenge_labels(challenge.id).await?;
    tokio::task::spawn_blocking(move || {
        let truth = Table::parse(labels.as_bytes(), TableRole::Truth)
            .map_err(|_| anyhow::anyhow!("the stored labels do not parse"))?;
        let scores = grappe_eval::score_parts(metric, &truth, &predictions, &|id| split.is_public(id))
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        if !(scores.0.is_finite() && scores.1.is_finite()) {
            return Err(AppError::Invalid("these predictions give no finite score".into()));
        }
        Ok(scores)
    })
    .await
    .map_err(anyhow::Error::from)?
}

/// What the public board shows for a score: itself, or through the Ladder.
pub fn shown(challenge: &ChallengeRow, metric: Metric) -> impl Fn(Option<f64>, f64) -> f64 + Send + Sync + 'static {
    let step = challenge.ladder_step;
    let higher = metric.higher_is_better();
    move |previous, score| match step {
        Some(step) => board::ladder(previous, score, step, higher),
        None => score,
    }
}

fn challenge_json(challenge: &ChallengeRow, dataset: &str, now: i64) -> Value {
    let metric = metric_of(challenge).ok();
    json!({
        "id": challenge.id,
        "name": challenge.name,
        "title": challenge.title,
        "description": challenge.description,
        "dataset": dataset,
        "dataset_version": challenge.dataset_version,
        "metric": challenge.metric,
        "higher_is_better": metric.map(Metric::higher_is_better),
        "public_percent": challenge.public_percent,
        "test_rows": challenge.test_rows,
        "phases": phases(challenge),
        "opens_at": challenge.opens_at,
        "closes_at": challenge.closes_at,
        "status": status(challenge, now).as_str(),
        "private_revealed": now >= challenge.closes_at,
        "per_day": challenge.per_day,
        "total": challenge.total,
        "team_size": challenge.team_size,
        "ladder_step": challenge.ladder_step,
        "code": challenge.code_project_id.map(|_| json!({
            "cpus": challenge.code_cpus,
            "memory_mb": challenge.code_memory_mb,
            "time_limit_s": challenge.code_time_limit_s,
            "network": false,
        })),
    })
}

/// A submission as its team sees it: the public score as the board shows it; the private
/// score once revealed; organisers see the exact public score too.
pub fn submission_json(submission: &SubmissionRow, private_shown: bool, organiser: bool) -> Value {
    json!({
        "id": submission.id,
        "team": submission.team_id,
        "kind": submission.kind,
        "phase": submission.phase,
        "state": submission.state,
        "counts": submission.counts,
        "reason": submission.reason,
        "job": submission.job_id,
        "public_score": submission.shown_score,
        "exact_public_score": if organiser { submission.public_score } else { None },
        "private_score": if private_shown { submission.private_score } else { None },
        "final": submission.chosen,
        "note": submission.note,
        "submitted_at": submission.created_at,
        "ended_at": submission.ended_at,
    })
}

pub(crate) async fn challenge_for(state: &AppState, id: i64) -> AppResult<ChallengeRow> {
    state.db.challenge(id).await?.ok_or_else(|| AppError::NotFound(format!("challenge {id} not found")))
}

async fn dataset_name(state: &AppState, challenge: &ChallengeRow) -> AppResult<String> {
    Ok(state.db.dataset_by_id(challenge.dataset_id).await?.map(|d| d.name).unwrap_or_default())
}

pub async fn list(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let now = now_ms();
    let mut items = Vec::new();
    for challenge in state.db.challenges(LIST_LIMIT).await? {
        let dataset = dataset_name(&state, &challenge).await?;
        items.push(challenge_json(&challenge, &dataset, now));
    }
    Ok(Json(json!({ "items": items })))
}

pub async fn show(State(state): State<AppState>, UrlPath(id): UrlPath<i64>) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let dataset = dataset_name(&state, &challenge).await?;
    Ok(Json(challenge_json(&challenge, &dataset, now_ms())))
}

fn check_phases(phases: &[Phase]) -> AppResult<()> {
    if phases.is_empty() || phases.len() > MAX_PHASES {
        return Err(AppError::Invalid(format!("give 1 to {MAX_PHASES} phases")));
    }
    for (i, phase) in phases.iter().enumerate() {
        let name = phase.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AppError::Invalid(format!("phase {}: a name of 1 to 100 characters", i + 1)));
        }
        if phase.starts_at >= phase.ends_at {
            return Err(AppError::Invalid(format!("phase `{name}`: it must end after it starts")));
        }
        if i > 0 && phases[i - 1].ends_at > phase.starts_at {
            return Err(AppError::Invalid(format!("phase `{name}`: it starts before the previous one ends")));
        }
    }
    Ok(())
}

fn within(what: &str, value: i64, low: i64, high: i64) -> AppResult<()> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(AppError::Invalid(format!("`{what}`: from {low} to {high}, not {value}")))
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewChallengeBody>,
) -> AppResult<Response> {
    let (created, dataset) = new_challenge(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(challenge_json(&created, &dataset, now_ms()))).into_response())
}

/// Checks and creates a challenge (with its dataset's name): the one path for the API and the
/// demo.
pub async fn new_challenge(
    state: &AppState,
    caller: &Caller,
    body: NewChallengeBody,
) -> AppResult<(ChallengeRow, String)> {
    if !policy::may_create_challenge(&caller.actor) {
        return Err(AppError::Forbidden("only challenge organisers create challenges"));
    }
    let name = grappe_store::Name::parse(&body.name).map_err(|error| AppError::Invalid(error.to_string()))?;
    let title = body.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::Invalid("`title`: 1 to 200 characters".into()));
    }
    if body.description.len() > MAX_DESCRIPTION {
        return Err(AppError::Invalid(format!("`description`: at most {MAX_DESCRIPTION} bytes")));
    }
    let metric: Metric = body.metric.parse().map_err(|e: grappe_eval::ScoreError| AppError::Invalid(e.to_string()))?;
    within("public_percent", body.public_percent, 1, 99)?;
    within("per_day", body.per_day, 1, 1000)?;
    within("total", body.total, 1, 100_000)?;
    within("team_size", body.team_size, 1, 100)?;
    if let Some(step) = body.ladder_step
        && !(step.is_finite() && step > 0.0)
    {
        return Err(AppError::Invalid("`ladder_step`: a number above 0".into()));
    }
    check_phases(&body.phases)?;
    if let Some(code) = &body.code {
        within("code.time_limit_s", code.time_limit_s, 1, 86_400)?;
        within("code.cpus", code.cpus, 1, 1024)?;
        within("code.memory_mb", code.memory_mb, 16, 16 * 1024 * 1024)?;
        if state.db.project(code.project).await?.is_none() || !policy::may_use_project(&caller.actor, code.project) {
            return Err(AppError::Invalid(format!("`code.project`: no project {} of yours", code.project)));
        }
    }
    // The dataset: public, resolved to one version as a job's input is.
    let resolved = crate::data::inputs::resolve_inputs(state, caller, std::slice::from_ref(&body.dataset)).await?;
    let input = crate::data::inputs::stored_inputs(&resolved)
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Invalid(format!("`dataset`: `{}` has no version", body.dataset)))?;
    let dataset = state.db.dataset(&input.dataset).await?.ok_or_else(|| AppError::NotFound("dataset".into()))?;
    if !dataset.public {
        return Err(AppError::Invalid(format!(
            "`dataset`: `{}` is private; participants must be able to read it",
            dataset.name
        )));
    }
    // The labels: they parse, and score against themselves on both parts.
    let percent = body.public_percent;
    let labels = body.labels;
    let (labels, rows, key, threshold) =
        tokio::task::spawn_blocking(move || -> AppResult<(String, usize, String, u64)> {
            let truth =
                Table::parse(labels.as_bytes(), TableRole::Truth).map_err(|e| AppError::Invalid(e.to_string()))?;
            if truth.len() < 2 || truth.len() > MAX_TEST_ROWS {
                return Err(AppError::Invalid(format!("`labels`: 2 to {MAX_TEST_ROWS} rows, not {}", truth.len())));
            }
            let key = new_secret();
            let split = Split::draw(key.as_bytes(), &truth, percent);
            grappe_eval::score_parts(metric, &truth, &truth, &|id| split.is_public(id)).map_err(|e| {
                AppError::Invalid(format!("`labels` cannot be scored with {metric} on both parts: {e}"))
            })?;
            let rows = truth.len();
            drop(truth);
            Ok((labels, rows, key, split.threshold))
        })
        .await
        .map_err(anyhow::Error::from)??;
    let phases_json = serde_json::to_string(&body.phases).map_err(anyhow::Error::from)?;
    let new = NewChallenge {
        name: name.as_str(),
        title,
        description: &body.description,
        dataset_id: dataset.id,
        dataset_version: &input.version,
        metric: metric.name(),
        public_percent: body.public_percent,
        split_key: &key,
        split_threshold: &format!("{threshold:016x}"),
        test_rows: rows as i64,
        phases: &phases_json,
        opens_at: body.phases.first().map_or(0, |p| p.starts_at),
        closes_at: body.phases.last().map_or(0, |p| p.ends_at),
        per_day: body.per_day,
        total: body.total,
        team_size: body.team_size,
        ladder_step: body.ladder_step,
        code_project_id: body.code.as_ref().map(|c| c.project),
        code_cpus: body.code.as_ref().map_or(1, |c| c.cpus),
        code_memory_mb: body.code.as_ref().map_or(1024, |c| c.memory_mb),
        code_time_limit_s: body.code.as_ref().map_or(600, |c| c.time_limit_s),
        created_by: caller.actor.user_id(),
        labels: &labels,
    };
    let created = state.db.create_challenge(&new, &caller.audit_name()).await?;
    Ok((created, dataset.name))
}

/// One line of a board, for the API, the CSV and the page.
pub struct BoardLine {
    pub rank: Option<usize>,
    pub team: String,
    pub team_id: i64,
    pub score: f64,
    pub submission: i64,
    pub submitted_at: i64,
    pub baseline: bool,
    /// The team's scored submissions.
    pub entries: usize,
}

/// The scored submissions of a challenge as the boards take them: a baseline submission is a
/// line of its own, named by its note.
pub async fn scored(state: &AppState, challenge: &ChallengeRow) -> AppResult<(Vec<Scored>, HashMap<i64, String>)> {
    let teams: HashMap<i64, TeamRow> = state.db.teams(challenge.id).await?.into_iter().map(|t| (t.id, t)).collect();
    let mut names = HashMap::new();
    let mut entries = Vec::new();
    for submission in state.db.scored_submissions(challenge.id).await? {
        let Some(team) = teams.get(&submission.team_id) else { continue };
        let (Some(public), Some(private), Some(shown)) =
            (submission.public_score, submission.private_score, submission.shown_score)
        else {
            continue;
        };
        let line = if team.baseline { -submission.id } else { team.id };
        let name = if team.baseline && !submission.note.is_empty() { &submission.note } else { &team.name };
        names.entry(line).or_insert_with(|| name.clone());
        entries.push(Scored {
            submission: submission.id,
            team: line,
            created_at: submission.created_at,
            public,
            shown,
            private,
            chosen: submission.chosen,
            baseline: team.baseline,
        });
    }
    Ok((entries, names))
}

/// A board: public, or private (the caller must be allowed to see it).
pub async fn board_lines(state: &AppState, challenge: &ChallengeRow, private: bool) -> AppResult<Vec<BoardLine>> {
    let higher = metric_of(challenge)?.higher_is_better();
    let (entries, names) = scored(state, challenge).await?;
    let standings: Vec<Standing> =
        if private { board::private_board(&entries, higher) } else { board::public_board(&entries, higher) };
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for entry in &entries {
        *counts.entry(entry.team).or_default() += 1;
    }
    Ok(standings
        .into_iter()
        .map(|s| BoardLine {
            rank: s.rank,
            team: names.get(&s.team).cloned().unwrap_or_default(),
            team_id: s.team.max(0),
            score: s.score,
            submission: s.submission,
            submitted_at: s.created_at,
            baseline: s.baseline,
            entries: counts.get(&s.team).copied().unwrap_or(0),
        })
        .collect())
}

#[derive(Deserialize, Default)]
pub struct BoardQuery {
    #[serde(default)]
    pub board: Option<String>,
}

/// Which board a query asks for, if the caller may see it.
async fn asked_board(caller: &Caller, challenge: &ChallengeRow, query: &BoardQuery) -> AppResult<bool> {
    match query.board.as_deref() {
        None | Some("public") => Ok(false),
        Some("private") if private_visible(caller, challenge, now_ms()) => Ok(true),
        Some("private") => Err(AppError::Conflict(format!(
            "the private board is revealed when the challenge closes, {}",
            crate::kit::page::iso_datetime(challenge.closes_at)
        ))),
        Some(other) => Err(AppError::Invalid(format!("`board`: public or private, not `{other}`"))),
    }
}

pub async fn leaderboard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiQuery(query): ApiQuery<BoardQuery>,
) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let private = asked_board(&caller, &challenge, &query).await?;
    let lines: Vec<Value> = board_lines(&state, &challenge, private)
        .await?
        .iter()
        .map(|line| {
            json!({
                "rank": line.rank,
                "team": line.team,
                "team_id": if line.baseline { None } else { Some(line.team_id) },
                "score": line.score,
                "submission": line.submission,
                "submitted_at": line.submitted_at,
                "baseline": line.baseline,
                "entries": line.entries,
            })
        })
        .collect();
    Ok(Json(json!({
        "board": if private { "private" } else { "public" },
        "metric": challenge.metric,
        "ladder_step": challenge.ladder_step,
        "rows": lines,
    })))
}

pub async fn leaderboard_csv(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiQuery(query): ApiQuery<BoardQuery>,
) -> AppResult<Response> {
    let challenge = challenge_for(&state, id).await?;
    let private = asked_board(&caller, &challenge, &query).await?;
    let mut csv = String::from("rank,team,score,submission,submitted_at,baseline,entries\n");
    for line in board_lines(&state, &challenge, private).await? {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            line.rank.map(|r| r.to_string()).unwrap_or_default(),
            crate::kit::page::csv_field(&line.team),
            line.score,
            line.submission,
            crate::kit::page::iso_datetime(line.submitted_at),
            line.baseline,
            line.entries
        ));
    }
    let which = if private { "private" } else { "public" };
    Ok(crate::kit::page::csv_download(&format!("{}-{which}.csv", challenge.name), csv))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeamBody {
    pub name: String,
    /// A baseline (organisers only): its submissions are shown on the boards, never ranked.
    #[serde(default)]
    pub baseline: bool,
}

fn user_of(caller: &Caller) -> AppResult<i64> {
    caller.actor.user_id().ok_or(AppError::Forbidden("teams are made of user accounts, not the admin token"))
}

/// Creates a team for the caller: the one path for the API and the page's form.
pub async fn new_team(
    state: &AppState,
    caller: &Caller,
    challenge: &ChallengeRow,
    body: NewTeamBody,
) -> AppResult<TeamRow> {
    let user = user_of(caller)?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(AppError::Invalid("`name`: 1 to 80 characters, no control characters".into()));
    }
    if body.baseline && !organises(caller, challenge) {
        return Err(AppError::Forbidden("only the challenge's organisers make baselines"));
    }
    if status(challenge, now_ms()) == Status::Closed {
        return Err(AppError::Conflict("the challenge is closed".into()));
    }
    Ok(state.db.create_team(challenge.id, name, user, body.baseline).await?)
}

pub async fn create_team(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<NewTeamBody>,
) -> AppResult<Response> {
    let challenge = challenge_for(&state, id).await?;
    let team = new_team(&state, &caller, &challenge, body).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": team.id, "name": team.name, "baseline": team.baseline })))
        .into_response())
}

/// The caller's team in the challenge, or a clear error.
pub async fn caller_team(state: &AppState, caller: &Caller, challenge: &ChallengeRow) -> AppResult<TeamRow> {
    let user = user_of(caller)?;
    state.db.team_of(challenge.id, user).await?.ok_or_else(|| {
        AppError::Conflict("you are in no team of this challenge: create one, or accept an invitation".into())
    })
}

pub async fn my_team(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let user = user_of(&caller)?;
    let invitations: Vec<Value> = state
        .db
        .invitations(challenge.id, user)
        .await?
        .iter()
        .map(|team| json!({ "team": team.id, "name": team.name }))
        .collect();
    let Some(team) = state.db.team_of(challenge.id, user).await? else {
        return Ok(Json(json!({ "team": null, "invitations": invitations })));
    };
    let private = private_visible(&caller, &challenge, now_ms());
    let organiser = organises(&caller, &challenge);
    let members: Vec<Value> =
        state.db.team_members(team.id).await?.iter().map(|m| json!({ "id": m.user_id, "name": m.name })).collect();
    let submissions: Vec<Value> =
        state.db.team_submissions(team.id).await?.iter().map(|s| submission_json(s, private, organiser)).collect();
    Ok(Json(json!({
        "team": { "id": team.id, "name": team.name, "baseline": team.baseline },
        "members": members,
        "invitations": invitations,
        "submissions": submissions,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    pub email: String,
}

pub async fn invite(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<InvitationBody>,
) -> AppResult<Response> {
    let challenge = challenge_for(&state, id).await?;
    let team = caller_team(&state, &caller, &challenge).await?;
    let email = Email::parse(&body.email)?;
    // An unknown address answers as a known one: invitations do not tell who has an account.
    if let Some(user) = state.db.user_by_email(&email).await? {
        state.db.invite_to_team(team.id, user.id, user_of(&caller)?).await?;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "team": team.id, "invited": body.email }))).into_response())
}

pub async fn join(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, team_id)): UrlPath<(i64, i64)>,
) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let user = user_of(&caller)?;
    let team = state
        .db
        .team(team_id)
        .await?
        .filter(|team| team.challenge_id == challenge.id && team.merged_into.is_none())
        .ok_or_else(|| AppError::NotFound(format!("team {team_id} not found in this challenge")))?;
    if status(&challenge, now_ms()) == Status::Closed {
        return Err(AppError::Conflict("the challenge is closed".into()));
    }
    let limits = Limits { per_day: challenge.per_day, total: challenge.total };
    match state.db.team_of(challenge.id, user).await? {
        // From another team: the whole team merges in, if the invitation holds and both stay
        // within the limits together.
        Some(own) if own.id != team.id => {
            if !state.db.invitations(challenge.id, user).await?.iter().any(|t| t.id == team.id) {
                return Err(AppError::NotFound("no invitation from this team".into()));
            }
            state.db.merge_teams(&own, &team, challenge.team_size, &limits, &caller.audit_name()).await?;
        }
        Some(_) => return Err(AppError::Conflict("you are already in this team".into())),
        None => state.db.join_team(&team, user, challenge.team_size).await?,
    }
    Ok(Json(json!({ "team": team.id, "name": team.name })))
}

pub async fn leave(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let team = caller_team(&state, &caller, &challenge).await?;
    // Leaving a team that has submitted would start a new one with fresh limits.
    if state.db.team_submissions(team.id).await?.iter().any(|s| s.counts) {
        return Err(AppError::Conflict("a team that has submitted cannot be left".into()));
    }
    state.db.leave_team(challenge.id, user_of(&caller)?).await?;
    Ok(Json(json!({ "left": team.id })))
}

/// The phase a submission now falls in, or why none.
fn open_phase(challenge: &ChallengeRow) -> AppResult<String> {
    let now = now_ms();
    match status(challenge, now) {
        Status::Open(index) => Ok(phases(challenge).swap_remove(index).name),
        Status::Upcoming => Err(AppError::Conflict(format!(
            "the challenge opens on {}",
            crate::kit::page::iso_datetime(challenge.opens_at)
        ))),
        Status::Paused => Err(AppError::Conflict("no phase is open now".into())),
        Status::Closed => Err(AppError::Conflict("the challenge is closed".into())),
    }
}

fn limit_error(challenge: &ChallengeRow, reached: LimitReached) -> AppError {
    AppError::OverQuota(match reached {
        LimitReached::Day { used } => format!(
            "your team has made {used} submissions today, the most a day ({}); the count starts again at 00:00 UTC",
            challenge.per_day
        ),
        LimitReached::Total { used } => {
            format!("your team has made {used} submissions, the most in all ({})", challenge.total)
        }
    })
}

/// The limits of a team: none for a baseline.
fn limits_for(challenge: &ChallengeRow, team: &TeamRow) -> Limits {
    if team.baseline {
        Limits { per_day: i64::MAX, total: i64::MAX }
    } else {
        Limits { per_day: challenge.per_day, total: challenge.total }
    }
}

/// Scores and records a predictions file: the one path for the API and the page's form.
/// Invalid files are refused before they are recorded and do not count.
pub async fn submit_predictions(
    state: &AppState,
    caller: &Caller,
    challenge: &ChallengeRow,
    predictions: &[u8],
    note: &str,
) -> AppResult<SubmissionRow> {
    let team = caller_team(state, caller, challenge).await?;
    let phase = open_phase(challenge)?;
    let note = clean_note(note)?;
    let (public, private) = score_predictions(state, challenge, predictions).await?;
    let metric = metric_of(challenge)?;
    let show = shown(challenge, metric);
    let new = NewSubmission {
        challenge_id: challenge.id,
        team_id: team.id,
        user_id: caller.actor.user_id(),
        phase: &phase,
        kind: "file",
        note: &note,
        outcome: Outcome::Scored { public, private },
    };
    let shown = grappe_db::Shown { higher_is_better: metric.higher_is_better(), show: &show };
    state.db.add_submission(&new, &limits_for(challenge, &team), shown).await?.map_err(|r| limit_error(challenge, r))
}

fn clean_note(note: &str) -> AppResult<String> {
    let note = note.trim();
    if note.chars().count() > 200 || note.chars().any(char::is_control) {
        return Err(AppError::Invalid("`note`: at most 200 characters, no control characters".into()));
    }
    Ok(note.to_owned())
}

#[derive(Deserialize, Default)]
pub struct NoteQuery {
    #[serde(default)]
    pub note: String,
}

pub async fn submit_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiQuery(query): ApiQuery<NoteQuery>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Response> {
    let challenge = challenge_for(&state, id).await?;
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let limit = state.config.limits.dataset_upload_bytes;
    let bytes = crate::kit::extract::body_within(body, limit).await?;
    let submission = if media.starts_with("text/csv") {
        submit_predictions(&state, &caller, &challenge, &bytes, &query.note).await?
    } else if media.starts_with("application/json") {
        let output: JobOutput = serde_json::from_slice(&bytes)
            .map_err(|error| AppError::BadRequest(format!("a job's output, as {{\"job\", \"path\"}}: {error}")))?;
        submit_job_output(&state, &caller, &challenge, &output).await?
    } else {
        return Err(AppError::UnsupportedMediaType(
            "send the predictions as `Content-Type: text/csv`, or name a job's output as JSON".into(),
        ));
    };
    let organiser = organises(&caller, &challenge);
    Ok((
        StatusCode::CREATED,
        Json(submission_json(&submission, private_visible(&caller, &challenge, now_ms()), organiser)),
    )
        .into_response())
}

/// Predictions a job wrote, submitted as a file: `{"job", "path"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOutput {
    pub job: i64,
    #[serde(default = "predictions_csv")]
    pub path: String,
    #[serde(default)]
    pub note: String,
}

fn predictions_csv() -> String {
    scoring::PREDICTIONS.to_owned()
}

/// Submits the predictions a completed job of the caller's wrote: the one path for the API and
/// the demo.
pub async fn submit_job_output(
    state: &AppState,
    caller: &Caller,
    challenge: &ChallengeRow,
    output: &JobOutput,
) -> AppResult<SubmissionRow> {
    let predictions = job_output(state, caller, output).await?;
    submit_predictions(state, caller, challenge, &predictions, &output.note).await
}

/// The file a completed job of the caller's wrote in its working directory.
async fn job_output(state: &AppState, caller: &Caller, output: &JobOutput) -> AppResult<Vec<u8>> {
    let job = state
        .db
        .job(output.job)
        .await?
        .filter(|job| policy::may_act_on_job(&caller.actor, job.project_id, job.user_id))
        .ok_or_else(|| AppError::NotFound(format!("job {} not found", output.job)))?;
    if job.state != "completed" {
        return Err(AppError::Conflict(format!("job {} has not completed (it is {})", job.id, job.state)));
    }
    scoring::read_predictions(state, job.id, &output.path).await.map_err(AppError::Invalid)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSubmissionBody {
    /// The argv; it reads the challenge's dataset at `$GRAPPE_INPUTS/NAME` and writes
    /// `predictions.csv` in its working directory.
    pub command: Vec<String>,
    /// More datasets the team may read (its code, a model), as a job's inputs.
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub note: String,
}

pub async fn submit_code(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<CodeSubmissionBody>,
) -> AppResult<Response> {
    let challenge = challenge_for(&state, id).await?;
    let Some(project_id) = challenge.code_project_id else {
        return Err(AppError::Invalid("this challenge takes prediction files only".into()));
    };
    let team = caller_team(&state, &caller, &challenge).await?;
    let phase = open_phase(&challenge)?;
    let note = clean_note(&body.note)?;
    let dataset = dataset_name(&state, &challenge).await?;
    let mut references = vec![format!("{dataset}@{}", challenge.dataset_version)];
    references.extend(body.inputs);
    let inputs = crate::data::inputs::resolve_inputs(&state, &caller, &references).await?;
    let project = state.db.project(project_id).await?.ok_or_else(|| anyhow::anyhow!("project {project_id} is gone"))?;
    let metric = metric_of(&challenge)?;
    let show = shown(&challenge, metric);
    let deadline = now_ms() + challenge.code_time_limit_s * 1000 + QUEUE_ALLOWANCE_MS;
    let new = NewSubmission {
        challenge_id: challenge.id,
        team_id: team.id,
        user_id: caller.actor.user_id(),
        phase: &phase,
        kind: "code",
        note: &note,
        outcome: Outcome::Running { deadline },
    };
    let shown = grappe_db::Shown { higher_is_better: metric.higher_is_better(), show: &show };
    let submission = state
        .db
        .add_submission(&new, &limits_for(&challenge, &team), shown)
        .await?
        .map_err(|r| limit_error(&challenge, r))?;
    let job = NewJobBody {
        name: Some(format!("{}-submission-{}", challenge.name, submission.id)),
        cpus: challenge.code_cpus,
        memory_mb: challenge.code_memory_mb,
        ..NewJobBody::made_by_server(project.id, body.command, challenge.code_time_limit_s)
    };
    match crate::compute::queue(&state, caller.actor.user_id(), &project, job, &inputs).await {
        Ok(Submitted::Job(job)) => {
            state.db.set_submission_job(submission.id, job.id).await?;
            let mut answer = submission_json(&submission, false, organises(&caller, &challenge));
            answer["job"] = json!(job.id);
            Ok((StatusCode::CREATED, Json(answer)).into_response())
        }
        Ok(Submitted::Estimate(_)) => Err(anyhow::anyhow!("a code submission is never a dry run").into()),
        Err(error) => {
            // Not run: it does not count.
            let outcome = Outcome::Failed { reason: error.to_string(), counts: false };
            state.db.end_submission(&submission, &outcome, shown).await?;
            Err(error)
        }
    }
}

pub async fn show_submission(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath((id, submission_id)): UrlPath<(i64, i64)>,
) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let organiser = organises(&caller, &challenge);
    let own = match caller.actor.user_id() {
        Some(user) => state.db.team_of(challenge.id, user).await?.map(|t| t.id),
        None => None,
    };
    let submission = state
        .db
        .submission(submission_id)
        .await?
        .filter(|s| s.challenge_id == challenge.id && (organiser || Some(s.team_id) == own))
        .ok_or_else(|| AppError::NotFound(format!("submission {submission_id} not found")))?;
    Ok(Json(submission_json(&submission, private_visible(&caller, &challenge, now_ms()), organiser)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalsBody {
    pub submissions: Vec<i64>,
}

pub async fn choose_finals(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    UrlPath(id): UrlPath<i64>,
    ApiJson(body): ApiJson<FinalsBody>,
) -> AppResult<Json<Value>> {
    let challenge = challenge_for(&state, id).await?;
    let team = caller_team(&state, &caller, &challenge).await?;
    if status(&challenge, now_ms()) == Status::Closed {
        return Err(AppError::Conflict("the challenge is closed: the final choice is made".into()));
    }
    let mut chosen = body.submissions;
    chosen.sort_unstable();
    chosen.dedup();
    if chosen.len() > board::MAX_FINALS {
        return Err(AppError::Invalid(format!("choose at most {} submissions", board::MAX_FINALS)));
    }
    state.db.choose_finals(team.id, &chosen).await?;
    Ok(Json(json!({ "team": team.id, "final": chosen })))
}
