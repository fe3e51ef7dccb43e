//! The challenge pages: the list, and a challenge's page (its description, data, metric, phases
//! and limits; the public board with each leading team's score history as a chart; the private
//! board once revealed; the reader's team, its submissions and the forms to make a team and to
//! submit predictions).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grappe_chart as chart;
use grappe_db::{ChallengeRow, now_ms};
use serde::Deserialize;

use crate::challenges::{
    BoardLine, NewTeamBody, Status, board_lines, challenge_for, metric_of, new_team, organises, phases,
    private_visible, scored, status, submit_predictions,
};
use crate::kit::caller::Caller;
use crate::kit::error::AppError;
use crate::kit::i18n::Time;
use crate::kit::i18n::{Locale, Tr};
use crate::kit::page::{Chrome, after_form, form_target, not_found_page, render};
use crate::kit::state::AppState;

struct ChallengeCard {
    id: i64,
    title: String,
    metric: String,
    status: String,
    opens: Time,
    closes: Time,
}

#[derive(Template)]
#[template(path = "challenges.html")]
struct ListPage {
    chrome: Chrome,
    challenges: Vec<ChallengeCard>,
}

fn status_label(tr: &Tr, status: Status) -> String {
    tr.t(&format!("challenge-status-{}", status.as_str()))
}

pub async fn list_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let now = now_ms();
    let challenges = state
        .db
        .challenges(200)
        .await?
        .iter()
        .map(|c| ChallengeCard {
            id: c.id,
            title: c.title.clone(),
            metric: c.metric.clone(),
            status: status_label(&chrome.tr, status(c, now)),
            opens: chrome.tr.locale.datetime(c.opens_at),
            closes: chrome.tr.locale.datetime(c.closes_at),
        })
        .collect();
    Ok(render(&ListPage { chrome, challenges }, StatusCode::OK))
}

struct PhaseLine {
    name: String,
    starts: Time,
    ends: Time,
    current: bool,
}

struct Line {
    rank: String,
    team: String,
    score: String,
    entries: String,
    date: Time,
    baseline: bool,
    own: bool,
}

struct SubmissionLine {
    id: i64,
    date: Time,
    kind: String,
    state: String,
    public: String,
    private: String,
    chosen: bool,
    reason: String,
    note: String,
}

struct TeamPanel {
    name: String,
    members: String,
    submissions: Vec<SubmissionLine>,
}

#[derive(Template)]
#[template(path = "challenge.html")]
struct ChallengePage {
    chrome: Chrome,
    challenge: ChallengeRow,
    description: String,
    dataset: String,
    direction: String,
    status: String,
    open: bool,
    phases: Vec<PhaseLine>,
    public_board: Vec<Line>,
    private_board: Option<Vec<Line>>,
    history_svg: Option<String>,
    signed_in: bool,
    team: Option<TeamPanel>,
    invitations: Vec<(i64, String)>,
    ladder: Option<String>,
    code: bool,
    code_resources: String,
    closes: Time,
    short_version: String,
}

fn score_text(locale: Locale, score: f64) -> String {
    locale.fixed(score, 4)
}

fn lines(board: &[BoardLine], locale: Locale, own_team: Option<i64>) -> Vec<Line> {
    board
        .iter()
        .map(|line| Line {
            rank: line.rank.map(|r| r.to_string()).unwrap_or_else(|| "–".to_owned()),
            team: line.team.clone(),
            score: score_text(locale, line.score),
            entries: locale.integer(line.entries as i64),
            date: locale.datetime(line.submitted_at),
            baseline: line.baseline,
            own: !line.baseline && Some(line.team_id) == own_team,
        })
        .collect()
}

/// The five leading teams' best public score over time (days since the opening), as steps.
async fn history_chart(
    state: &AppState,
    challenge: &ChallengeRow,
    board: &[BoardLine],
    tr: &Tr,
) -> Result<Option<String>, AppError> {
    const COLOURS: [&str; 5] = ["#2f68b1", "#c0392b", "#1e8449", "#8e44ad", "#b9770e"];
    let higher = metric_of(challenge)?.higher_is_better();
    let (entries, _) = scored(state, challenge).await?;
    let leaders: Vec<&BoardLine> = board.iter().filter(|line| !line.baseline).take(COLOURS.len()).collect();
    if leaders.is_empty() {
        return Ok(None);
    }
    let day = grappe_db::DAY_MS as f64;
    let at = |ms: i64| (ms - challenge.opens_at) as f64 / day;
    let end = at(now_ms().min(challenge.closes_at));
    // Each team's best so far as steps, held to now, so that one submission draws a line too.
    let series_points: Vec<(String, Vec<(f64, f64)>)> = leaders
        .iter()
        .map(|leader| {
            let mut best: Option<f64> = None;
            let mut points = Vec::new();
            for entry in entries.iter().filter(|e| e.team == leader.team_id) {
                let better = best.is_none_or(|b| if higher { entry.shown > b } else { entry.shown < b });
                if better {
                    if let Some(previous) = best {
                        points.push((at(entry.created_at), previous));
                    }
                    best = Some(entry.shown);
                    points.push((at(entry.created_at), entry.shown));
                }
            }
            if let Some(best) = best {
                points.push((end.max(points.last().map_or(end, |p| p.0)), best));
            }
            (leader.team.clone(), points)
        })
        .collect();
    let title = tr.t("challenge-history");
    let x_label = tr.t("challenge-history-days");
    let series = series_points
        .iter()
        .zip(COLOURS)
        .map(|((label, points), colour)| chart::Series { label, colour, points: points.clone() })
        .collect();
    Ok(Some(chart::line_chart(&chart::LineChart {
        title: &title,
        x_label: &x_label,
        y_label: &challenge.metric,
        series,
    })))
}

pub async fn challenge_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let chrome = Chrome::new(&headers, &uri, Some(&caller));
    let Some(id) = id.parse::<i64>().ok() else { return Ok(not_found_page(chrome)) };
    let Ok(challenge) = challenge_for(&state, id).await else { return Ok(not_found_page(chrome)) };
    let now = now_ms();
    let locale = chrome.tr.locale;
    let metric = metric_of(&challenge)?;
    let current = status(&challenge, now);
    let user = caller.actor.user_id();
    let own = match user {
        Some(user) => state.db.team_of(challenge.id, user).await?,
        None => None,
    };
    let public = board_lines(&state, &challenge, false).await?;
    let history_svg = history_chart(&state, &challenge, &public, &chrome.tr).await?;
    let private_shown = private_visible(&caller, &challenge, now);
    let private_board = if private_shown {
        Some(lines(&board_lines(&state, &challenge, true).await?, locale, own.as_ref().map(|t| t.id)))
    } else {
        None
    };
    let organiser = organises(&caller, &challenge);
    let team = match &own {
        Some(team) => {
            let members = state.db.team_members(team.id).await?;
            let submissions = state.db.team_submissions(team.id).await?;
            Some(TeamPanel {
                name: team.name.clone(),
                members: members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
                submissions: submissions
                    .iter()
                    .rev()
                    .map(|s| SubmissionLine {
                        id: s.id,
                        date: locale.datetime(s.created_at),
                        kind: chrome.tr.t(&format!("challenge-kind-{}", s.kind)),
                        state: chrome.tr.t(&format!("challenge-state-{}", s.state)),
                        public: s.shown_score.map(|v| score_text(locale, v)).unwrap_or_default(),
                        private: s
                            .private_score
                            .filter(|_| private_shown || organiser)
                            .map(|v| score_text(locale, v))
                            .unwrap_or_default(),
                        chosen: s.chosen,
                        reason: s.reason.clone(),
                        note: s.note.clone(),
                    })
                    .collect(),
            })
        }
        None => None,
    };
    let invitations = match user {
        Some(user) => state.db.invitations(challenge.id, user).await?.into_iter().map(|t| (t.id, t.name)).collect(),
        None => Vec::new(),
    };
    let dataset = state.db.dataset_by_id(challenge.dataset_id).await?.map(|d| d.name).unwrap_or_default();
    let page = ChallengePage {
        description: grappe_dataset::render_markdown(&challenge.description),
        dataset,
        direction: chrome.tr.t(if metric.higher_is_better() { "challenge-higher" } else { "challenge-lower" }),
        status: status_label(&chrome.tr, current),
        open: matches!(current, Status::Open(_)),
        phases: phases(&challenge)
            .into_iter()
            .enumerate()
            .map(|(i, p)| PhaseLine {
                name: p.name,
                starts: locale.datetime(p.starts_at),
                ends: locale.datetime(p.ends_at),
                current: current == Status::Open(i),
            })
            .collect(),
        public_board: lines(&public, locale, own.as_ref().map(|t| t.id)),
        private_board,
        history_svg,
        signed_in: user.is_some(),
        team,
        invitations,
        ladder: challenge.ladder_step.map(|step| locale.decimal(step)),
        code: challenge.code_project_id.is_some(),
        code_resources: format!(
            "{} CPU · {} · {} s",
            challenge.code_cpus,
            locale.bytes(challenge.code_memory_mb as u64 * 1024 * 1024),
            locale.integer(challenge.code_time_limit_s)
        ),
        closes: locale.datetime(challenge.closes_at),
        short_version: challenge.dataset_version.chars().take(12).collect(),
        challenge,
        chrome,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
pub struct TeamForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// The challenge a page's form acts on, its CSRF token checked; else the page to answer.
async fn form_challenge(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    uri: &Uri,
    id: &str,
    csrf: &str,
) -> Result<(Chrome, ChallengeRow), Response> {
    let (chrome, id) = form_target(Chrome::new(headers, uri, Some(caller)), caller, csrf, id).map_err(|page| *page)?;
    match challenge_for(state, id).await {
        Ok(challenge) => Ok((chrome, challenge)),
        Err(_) => Err(not_found_page(chrome)),
    }
}

pub async fn team_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<TeamForm>,
) -> Result<Response, AppError> {
    let (chrome, challenge) = match form_challenge(&state, &caller, &headers, &uri, &id, &form.csrf).await {
        Ok(target) => target,
        Err(page) => return Ok(page),
    };
    let done = new_team(&state, &caller, &challenge, NewTeamBody { name: form.name, baseline: false }).await;
    after_form(chrome, &format!("/challenges/{}#team", challenge.id), done)
}

#[derive(Deserialize)]
pub struct SubmissionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    predictions: String,
    #[serde(default)]
    note: String,
}

pub async fn submission_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    Form(form): Form<SubmissionForm>,
) -> Result<Response, AppError> {
    let (chrome, challenge) = match form_challenge(&state, &caller, &headers, &uri, &id, &form.csrf).await {
        Ok(target) => target,
        Err(page) => return Ok(page),
    };
    let done = submit_predictions(&state, &caller, &challenge, form.predictions.as_bytes(), &form.note).await;
    after_form(chrome, &format!("/challenges/{}#submissions", challenge.id), done)
}
