//! The international challenge: challenges on a dataset version, their hidden labels, teams
//! (members, invitations, merges) and submissions with their scores. Limits are checked in the
//! transaction that records a submission, so that two submissions at once cannot both take the
//! last place of the day.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, WriteTx, conflict_as, now_ms, qualified};

/// A UTC day, in milliseconds: the limits per day count from midnight UTC.
pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq)]
pub struct ChallengeRow {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub description: String,
    pub dataset_id: i64,
    pub dataset_version: String,
    pub metric: String,
    pub public_percent: i64,
    /// The key (hex) that draws the public rows, and the largest hash among them (hex).
    pub split_key: String,
    pub split_threshold: String,
    pub test_rows: i64,
    /// Phases, as JSON: `[{"name", "starts_at", "ends_at"}]`.
    pub phases: String,
    pub opens_at: i64,
    pub closes_at: i64,
    pub per_day: i64,
    pub total: i64,
    pub team_size: i64,
    pub ladder_step: Option<f64>,
    pub code_project_id: Option<i64>,
    pub code_cpus: i64,
    pub code_memory_mb: i64,
    pub code_time_limit_s: i64,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

/// A challenge as its organiser creates it, with its hidden labels (the CSV).
pub struct NewChallenge<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub dataset_id: i64,
    pub dataset_version: &'a str,
    pub metric: &'a str,
    pub public_percent: i64,
    pub split_key: &'a str,
    pub split_threshold: &'a str,
    pub test_rows: i64,
    pub phases: &'a str,
    pub opens_at: i64,
    pub closes_at: i64,
    pub per_day: i64,
    pub total: i64,
    pub team_size: i64,
    pub ladder_step: Option<f64>,
    pub code_project_id: Option<i64>,
    pub code_cpus: i64,
    pub code_memory_mb: i64,
    pub code_time_limit_s: i64,
    pub created_by: Option<i64>,
    pub labels: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRow {
    pub id: i64,
    pub challenge_id: i64,
    pub name: String,
    pub created_at: i64,
    pub baseline: bool,
    pub merged_into: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: i64,
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubmissionRow {
    pub id: i64,
    pub challenge_id: i64,
    pub team_id: i64,
    pub user_id: Option<i64>,
    pub phase: String,
    /// `file` or `code`.
    pub kind: String,
    /// `running`, `scored` or `failed`.
    pub state: String,
    /// Whether it counts against the limits (not when it failed through the platform's fault).
    pub counts: bool,
    pub job_id: Option<i64>,
    pub deadline: Option<i64>,
    pub reason: String,
    pub public_score: Option<f64>,
    pub private_score: Option<f64>,
    pub shown_score: Option<f64>,
    pub chosen: bool,
    pub note: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
}

/// The limits a team's counted submissions must stay within.
pub struct Limits {
    pub per_day: i64,
    pub total: i64,
}

/// A submission to record: scored at once (a file), or running (code, its job named later).
pub struct NewSubmission<'a> {
    pub challenge_id: i64,
    pub team_id: i64,
    pub user_id: Option<i64>,
    pub phase: &'a str,
    pub kind: &'a str,
    pub note: &'a str,
    pub outcome: Outcome,
}

/// How a submission ends, or what it is when recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Scored on the public and private parts.
    Scored { public: f64, private: f64 },
    /// Failed; `counts`: through the team's fault (it counts against the limits).
    Failed { reason: String, counts: bool },
    /// Running until `deadline`.
    Running { deadline: i64 },
}

/// Why a submission was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitReached {
    /// The team's submissions of this UTC day.
    Day {
        used: i64,
    },
    Total {
        used: i64,
    },
}

/// How the public board shows a score: exactly, or through the Ladder with its step.
#[derive(Clone, Copy)]
pub struct Shown<'a> {
    pub higher_is_better: bool,
    /// What to show for a public score, given the best shown to the team before.
    pub show: &'a (dyn Fn(Option<f64>, f64) -> f64 + Send + Sync),
}

const CHALLENGE_COLUMNS: &str = "id, name, title, description, dataset_id, dataset_version, metric, public_percent, \
    split_key, split_threshold, test_rows, phases, opens_at, closes_at, per_day, total, team_size, ladder_step, \
    code_project_id, code_cpus, code_memory_mb, code_time_limit_s, created_by, created_at";
const TEAM_COLUMNS: &str = "id, challenge_id, name, created_at, baseline, merged_into";
const SUBMISSION_COLUMNS: &str = "id, challenge_id, team_id, user_id, phase, kind, state, counts, job_id, deadline, \
    reason, public_score, private_score, shown_score, final, note, created_at, ended_at";

fn challenge_from(row: &AnyRow) -> DbResult<ChallengeRow> {
    Ok(ChallengeRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        title: row.try_get(2)?,
        description: row.try_get(3)?,
        dataset_id: row.try_get(4)?,
        dataset_version: row.try_get(5)?,
        metric: row.try_get(6)?,
        public_percent: row.try_get(7)?,
        split_key: row.try_get(8)?,
        split_threshold: row.try_get(9)?,
        test_rows: row.try_get(10)?,
        phases: row.try_get(11)?,
        opens_at: row.try_get(12)?,
        closes_at: row.try_get(13)?,
        per_day: row.try_get(14)?,
        total: row.try_get(15)?,
        team_size: row.try_get(16)?,
        ladder_step: row.try_get(17)?,
        code_project_id: row.try_get(18)?,
        code_cpus: row.try_get(19)?,
        code_memory_mb: row.try_get(20)?,
        code_time_limit_s: row.try_get(21)?,
        created_by: row.try_get(22)?,
        created_at: row.try_get(23)?,
    })
}

fn team_from(row: &AnyRow) -> DbResult<TeamRow> {
    Ok(TeamRow {
        id: row.try_get(0)?,
        challenge_id: row.try_get(1)?,
        name: row.try_get(2)?,
        created_at: row.try_get(3)?,
        baseline: row.try_get::<i64, _>(4)? != 0,
        merged_into: row.try_get(5)?,
    })
}

fn submission_from(row: &AnyRow) -> DbResult<SubmissionRow> {
    Ok(SubmissionRow {
        id: row.try_get(0)?,
        challenge_id: row.try_get(1)?,
        team_id: row.try_get(2)?,
        user_id: row.try_get(3)?,
        phase: row.try_get(4)?,
        kind: row.try_get(5)?,
        state: row.try_get(6)?,
        counts: row.try_get::<i64, _>(7)? != 0,
        job_id: row.try_get(8)?,
        deadline: row.try_get(9)?,
        reason: row.try_get(10)?,
        public_score: row.try_get(11)?,
        private_score: row.try_get(12)?,
        shown_score: row.try_get(13)?,
        chosen: row.try_get::<i64, _>(14)? != 0,
        note: row.try_get(15)?,
        created_at: row.try_get(16)?,
        ended_at: row.try_get(17)?,
    })
}

/// The team's counted submissions: today (UTC) and in all.
async fn counted(tx: &mut WriteTx, team_ids: &[i64], now: i64) -> DbResult<(i64, i64)> {
    let day_start = now - now.rem_euclid(DAY_MS);
    let mut today = 0;
    let mut total = 0;
    for team in team_ids {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END), 0) \
             FROM challenge_submissions WHERE team_id = $1 AND counts = 1",
        )
        .bind(team)
        .bind(day_start)
        .fetch_one(&mut **tx)
        .await?;
        total += row.try_get::<i64, _>(0)?;
        today += row.try_get::<i64, _>(1)?;
    }
    Ok((today, total))
}

/// The best score the public board showed the team so far.
async fn best_shown(tx: &mut WriteTx, team_id: i64, higher_is_better: bool) -> DbResult<Option<f64>> {
    let best = if higher_is_better { "MAX" } else { "MIN" };
    let row = sqlx::query(&format!(
        "SELECT {best}(shown_score) FROM challenge_submissions WHERE team_id = $1 AND state = 'scored'"
    ))
    .bind(team_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get(0)?)
}

/// The state, flags and scores of an outcome, with the shown score for a scored one.
async fn outcome_columns(
    tx: &mut WriteTx,
    team_id: i64,
    outcome: &Outcome,
    shown: Shown<'_>,
) -> DbResult<(&'static str, bool, String, Option<f64>, Option<f64>, Option<f64>, Option<i64>)> {
    Ok(match outcome {
        Outcome::Scored { public, private } => {
            let previous = best_shown(tx, team_id, shown.higher_is_better).await?;
            let show = (shown.show)(previous, *public);
            ("scored", true, String::new(), Some(*public), Some(*private), Some(show), None)
        }
        Outcome::Failed { reason, counts } => ("failed", *counts, reason.clone(), None, None, None, None),
        Outcome::Running { deadline } => ("running", true, String::new(), None, None, None, Some(*deadline)),
    })
}

impl Db {
    pub async fn create_challenge(&self, new: &NewChallenge<'_>, actor: &str) -> DbResult<ChallengeRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO challenges (name, title, description, dataset_id, dataset_version, metric, public_percent, \
             split_key, split_threshold, test_rows, phases, opens_at, closes_at, per_day, total, team_size, \
             ladder_step, code_project_id, code_cpus, code_memory_mb, code_time_limit_s, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
             $21, $22, $23) RETURNING {CHALLENGE_COLUMNS}"
        ))
        .bind(new.name)
        .bind(new.title)
        .bind(new.description)
        .bind(new.dataset_id)
        .bind(new.dataset_version)
        .bind(new.metric)
        .bind(new.public_percent)
        .bind(new.split_key)
        .bind(new.split_threshold)
        .bind(new.test_rows)
        .bind(new.phases)
        .bind(new.opens_at)
        .bind(new.closes_at)
        .bind(new.per_day)
        .bind(new.total)
        .bind(new.team_size)
        .bind(new.ladder_step)
        .bind(new.code_project_id)
        .bind(new.code_cpus)
        .bind(new.code_memory_mb)
        .bind(new.code_time_limit_s)
        .bind(new.created_by)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a challenge with this name"))?;
        let created = challenge_from(&row)?;
        sqlx::query("INSERT INTO challenge_labels (challenge_id, body) VALUES ($1, $2)")
            .bind(created.id)
            .bind(new.labels)
            .execute(&mut *tx)
            .await?;
        let object = format!("challenge:{}", created.id);
        let detail = format!("{} on {} ({} test rows)", created.metric, created.dataset_version, created.test_rows);
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "challenge.create", object: &object, detail: &detail },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn challenge(&self, id: i64) -> DbResult<Option<ChallengeRow>> {
        let row = sqlx::query(&format!("SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(challenge_from).transpose()
    }

    pub async fn challenge_by_name(&self, name: &str) -> DbResult<Option<ChallengeRow>> {
        let row = sqlx::query(&format!("SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(challenge_from).transpose()
    }

    /// Every challenge, newest first, at most `limit`.
    pub async fn challenges(&self, limit: i64) -> DbResult<Vec<ChallengeRow>> {
        let rows = sqlx::query(&format!("SELECT {CHALLENGE_COLUMNS} FROM challenges ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(challenge_from).collect()
    }

    /// The hidden labels: for scoring only, never for an answer.
    pub async fn challenge_labels(&self, challenge_id: i64) -> DbResult<String> {
        let row = sqlx::query("SELECT body FROM challenge_labels WHERE challenge_id = $1")
            .bind(challenge_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("labels of challenge {challenge_id}")))?;
        Ok(row.try_get(0)?)
    }

    /// Creates a team with its first member, who must be in no team of the challenge yet.
    pub async fn create_team(&self, challenge_id: i64, name: &str, user_id: i64, baseline: bool) -> DbResult<TeamRow> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO challenge_teams (challenge_id, name, created_at, baseline) VALUES ($1, $2, $3, $4) \
             RETURNING {TEAM_COLUMNS}"
        ))
        .bind(challenge_id)
        .bind(name)
        .bind(now)
        .bind(i64::from(baseline))
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a team with this name in this challenge"))?;
        let team = team_from(&row)?;
        sqlx::query(
            "INSERT INTO challenge_members (challenge_id, user_id, team_id, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(challenge_id)
        .bind(user_id)
        .bind(team.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_as("you are already in a team of this challenge"))?;
        tx.commit().await?;
        Ok(team)
    }

    pub async fn team(&self, team_id: i64) -> DbResult<Option<TeamRow>> {
        let row = sqlx::query(&format!("SELECT {TEAM_COLUMNS} FROM challenge_teams WHERE id = $1"))
            .bind(team_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(team_from).transpose()
    }

    /// The challenge's teams (merged ones excluded), by id.
    pub async fn teams(&self, challenge_id: i64) -> DbResult<Vec<TeamRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {TEAM_COLUMNS} FROM challenge_teams WHERE challenge_id = $1 AND merged_into IS NULL ORDER BY id"
        ))
        .bind(challenge_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(team_from).collect()
    }

    /// The caller's team in a challenge.
    pub async fn team_of(&self, challenge_id: i64, user_id: i64) -> DbResult<Option<TeamRow>> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM challenge_teams t JOIN challenge_members m ON m.team_id = t.id \
             WHERE m.challenge_id = $1 AND m.user_id = $2",
            qualified("t", TEAM_COLUMNS)
        ))
        .bind(challenge_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(team_from).transpose()
    }

    pub async fn team_members(&self, team_id: i64) -> DbResult<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT u.id, u.name, u.email FROM challenge_members m JOIN users u ON u.id = m.user_id \
             WHERE m.team_id = $1 ORDER BY m.joined_at, u.id",
        )
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(MemberRow { user_id: row.try_get(0)?, name: row.try_get(1)?, email: row.try_get(2)? }))
            .collect()
    }

    /// Invites a user into a team (idempotent).
    pub async fn invite_to_team(&self, team_id: i64, user_id: i64, invited_by: i64) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM challenge_invites WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            sqlx::query(
                "INSERT INTO challenge_invites (team_id, user_id, invited_by, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(team_id)
            .bind(user_id)
            .bind(invited_by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The teams of a challenge that invited this user.
    pub async fn invitations(&self, challenge_id: i64, user_id: i64) -> DbResult<Vec<TeamRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM challenge_teams t JOIN challenge_invites i ON i.team_id = t.id \
             WHERE t.challenge_id = $1 AND i.user_id = $2 AND t.merged_into IS NULL ORDER BY t.id",
            qualified("t", TEAM_COLUMNS)
        ))
        .bind(challenge_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(team_from).collect()
    }

    /// Accepts an invitation: the user joins the team if invited, in no team yet, and the team
    /// has room. `Err(Conflict)` says which does not hold.
    pub async fn join_team(&self, team: &TeamRow, user_id: i64, team_size: i64) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let invited = sqlx::query("DELETE FROM challenge_invites WHERE team_id = $1 AND user_id = $2")
            .bind(team.id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if invited.rows_affected() == 0 {
            return Err(DbError::NotFound("no invitation from this team".into()));
        }
        let size: i64 = sqlx::query("SELECT COUNT(*) FROM challenge_members WHERE team_id = $1")
            .bind(team.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if size >= team_size {
            return Err(DbError::Conflict(format!("the team is full ({team_size} members at most)")));
        }
        sqlx::query(
            "INSERT INTO challenge_members (challenge_id, user_id, team_id, joined_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(team.challenge_id)
        .bind(user_id)
        .bind(team.id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(conflict_as("you are already in a team of this challenge: leave it first"))?;
        tx.commit().await?;
        Ok(())
    }

    /// The user leaves their team; its submissions stay the team's.
    pub async fn leave_team(&self, challenge_id: i64, user_id: i64) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let left = sqlx::query("DELETE FROM challenge_members WHERE challenge_id = $1 AND user_id = $2")
            .bind(challenge_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(left.rows_affected() == 1)
    }

    /// Merges team `from` into `into`: members and submissions move, if together they stay
    /// within the team size and the limits (`Err(Conflict)` says which they would break).
    pub async fn merge_teams(
        &self,
        from: &TeamRow,
        into: &TeamRow,
        team_size: i64,
        limits: &Limits,
        actor: &str,
    ) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let size: i64 = sqlx::query("SELECT COUNT(*) FROM challenge_members WHERE team_id = $1 OR team_id = $2")
            .bind(from.id)
            .bind(into.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if size > team_size {
            return Err(DbError::Conflict(format!(
                "together the teams would have {size} members, more than {team_size}"
            )));
        }
        let (today, total) = counted(&mut tx, &[from.id, into.id], now_ms()).await?;
        if total > limits.total {
            return Err(DbError::Conflict(format!(
                "together the teams have made {total} submissions, more than the {} allowed in all",
                limits.total
            )));
        }
        if today > limits.per_day {
            return Err(DbError::Conflict(format!(
                "together the teams have made {today} submissions today, more than the {} allowed a day",
                limits.per_day
            )));
        }
        for table in ["challenge_members", "challenge_submissions"] {
            sqlx::query(&format!("UPDATE {table} SET team_id = $1 WHERE team_id = $2"))
                .bind(into.id)
                .bind(from.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM challenge_invites WHERE team_id = $1").bind(from.id).execute(&mut *tx).await?;
        sqlx::query("UPDATE challenge_teams SET merged_into = $1 WHERE id = $2")
            .bind(into.id)
            .bind(from.id)
            .execute(&mut *tx)
            .await?;
        let object = format!("challenge:{}", into.challenge_id);
        let detail = format!("team {} merged into team {}", from.id, into.id);
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "team.merge", object: &object, detail: &detail },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a submission if the team is within its limits; a scored one is shown as `shown`
    /// says (the Ladder against the team's best shown so far).
    pub async fn add_submission(
        &self,
        new: &NewSubmission<'_>,
        limits: &Limits,
        shown: Shown<'_>,
    ) -> DbResult<Result<SubmissionRow, LimitReached>> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let (today, total) = counted(&mut tx, &[new.team_id], now).await?;
        if total >= limits.total {
            return Ok(Err(LimitReached::Total { used: total }));
        }
        if today >= limits.per_day {
            return Ok(Err(LimitReached::Day { used: today }));
        }
        let (state, counts, reason, public, private, show, deadline) =
            outcome_columns(&mut tx, new.team_id, &new.outcome, shown).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO challenge_submissions (challenge_id, team_id, user_id, phase, kind, state, counts, deadline, \
             reason, public_score, private_score, shown_score, note, created_at, ended_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING {SUBMISSION_COLUMNS}"
        ))
        .bind(new.challenge_id)
        .bind(new.team_id)
        .bind(new.user_id)
        .bind(new.phase)
        .bind(new.kind)
        .bind(state)
        .bind(i64::from(counts))
        .bind(deadline)
        .bind(&reason)
        .bind(public)
        .bind(private)
        .bind(show)
        .bind(new.note)
        .bind(now)
        .bind((state != "running").then_some(now))
        .fetch_one(&mut *tx)
        .await?;
        let submission = submission_from(&row)?;
        self.audit_score(&mut tx, &submission, submission.shown_score).await?;
        tx.commit().await?;
        Ok(Ok(submission))
    }

    /// Names the job that runs a code submission.
    pub async fn set_submission_job(&self, submission_id: i64, job_id: i64) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE challenge_submissions SET job_id = $1 WHERE id = $2 AND state = 'running'")
            .bind(job_id)
            .bind(submission_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a running submission, once: a compare-and-set from `running`. False if it had ended.
    pub async fn end_submission(
        &self,
        submission: &SubmissionRow,
        outcome: &Outcome,
        shown: Shown<'_>,
    ) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let (state, counts, reason, public, private, show, _) =
            outcome_columns(&mut tx, submission.team_id, outcome, shown).await?;
        let ended = sqlx::query(
            "UPDATE challenge_submissions SET state = $1, counts = $2, reason = $3, public_score = $4, \
             private_score = $5, shown_score = $6, ended_at = $7 WHERE id = $8 AND state = 'running'",
        )
        .bind(state)
        .bind(i64::from(counts))
        .bind(&reason)
        .bind(public)
        .bind(private)
        .bind(show)
        .bind(now_ms())
        .bind(submission.id)
        .execute(&mut *tx)
        .await?;
        if ended.rows_affected() == 0 {
            return Ok(false);
        }
        self.audit_score(&mut tx, submission, show).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a score in the audit chain: what the public board shows of it.
    async fn audit_score(&self, tx: &mut WriteTx, submission: &SubmissionRow, shown: Option<f64>) -> DbResult<()> {
        if let Some(score) = shown {
            let object = format!("challenge:{}", submission.challenge_id);
            let detail = format!("submission {} of team {}: public {score}", submission.id, submission.team_id);
            let entry = AuditEntry { actor: "grappe", action: "submission.score", object: &object, detail: &detail };
            audit::append(tx, self.audit_key(), &entry).await?;
        }
        Ok(())
    }

    /// Running code submissions with their job's state (`None` before the job is named), at
    /// most `limit`, oldest first.
    pub async fn running_submissions(&self, limit: i64) -> DbResult<Vec<(SubmissionRow, Option<String>)>> {
        let rows = sqlx::query(&format!(
            "SELECT {}, j.state FROM challenge_submissions s LEFT JOIN jobs j ON j.id = s.job_id \
             WHERE s.state = 'running' ORDER BY s.id LIMIT $1",
            qualified("s", SUBMISSION_COLUMNS)
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((submission_from(row)?, row.try_get(18)?))).collect()
    }

    pub async fn submission(&self, id: i64) -> DbResult<Option<SubmissionRow>> {
        let row = sqlx::query(&format!("SELECT {SUBMISSION_COLUMNS} FROM challenge_submissions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(submission_from).transpose()
    }

    /// A team's submissions, oldest first.
    pub async fn team_submissions(&self, team_id: i64) -> DbResult<Vec<SubmissionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM challenge_submissions WHERE team_id = $1 ORDER BY created_at, id"
        ))
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(submission_from).collect()
    }

    /// Every scored submission of a challenge, oldest first: what the boards are made of.
    pub async fn scored_submissions(&self, challenge_id: i64) -> DbResult<Vec<SubmissionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SUBMISSION_COLUMNS} FROM challenge_submissions WHERE challenge_id = $1 AND state = 'scored' \
             ORDER BY created_at, id"
        ))
        .bind(challenge_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(submission_from).collect()
    }

    /// The team's final choice: these submissions (scored, its own), none else.
    pub async fn choose_finals(&self, team_id: i64, submissions: &[i64]) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE challenge_submissions SET final = 0 WHERE team_id = $1")
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
        for id in submissions {
            let chosen = sqlx::query(
                "UPDATE challenge_submissions SET final = 1 WHERE id = $1 AND team_id = $2 AND state = 'scored'",
            )
            .bind(id)
            .bind(team_id)
            .execute(&mut *tx)
            .await?;
            if chosen.rows_affected() == 0 {
                return Err(DbError::NotFound(format!("no scored submission {id} of your team")));
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
