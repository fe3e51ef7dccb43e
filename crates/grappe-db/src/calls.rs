//! Calls for proposals and their applications. An application is saved whole each time, as a
//! new version kept beside the others; the deadline is checked in the transaction that saves
//! it, against the time the database writes, so that no edit lands after it.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, WriteTx, conflict_as, now_ms, qualified};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: i64,
    pub name: String,
    pub instrument: String,
    pub title_fr: String,
    pub title_en: String,
    pub text_fr: String,
    pub text_en: String,
    /// JSON: `[{"key", "fr", "en", "weight"}]`.
    pub criteria: String,
    pub scale_max: i64,
    pub envelope_cents: i64,
    pub reviewers_per_application: i64,
    pub opens_at: i64,
    /// `None`: a rolling call.
    pub closes_at: Option<i64>,
    pub review_ends_at: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

pub struct NewCall<'a> {
    pub name: &'a str,
    pub instrument: &'a str,
    pub title_fr: &'a str,
    pub title_en: &'a str,
    pub text_fr: &'a str,
    pub text_en: &'a str,
    pub criteria: &'a str,
    pub scale_max: i64,
    pub envelope_cents: i64,
    pub reviewers_per_application: i64,
    pub opens_at: i64,
    pub closes_at: Option<i64>,
    pub review_ends_at: Option<i64>,
    pub created_by: Option<i64>,
}

/// A call's dates, in milliseconds since the epoch: no deadline makes a rolling call.
#[derive(Debug, Clone, Copy)]
pub struct CallDates {
    pub opens_at: i64,
    pub closes_at: Option<i64>,
    pub review_ends_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    pub id: i64,
    pub call_id: i64,
    pub submitted_by: i64,
    pub organisation: String,
    pub title: String,
    pub summary: String,
    /// JSON arrays of strings.
    pub partners: String,
    pub keywords: String,
    pub requested_cents: i64,
    pub requested_gpu_hours: i64,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The data store's version of its attachments (a BLAKE3 in hex); none without files.
    pub attachments: Option<String>,
}

/// What an applicant writes; saved whole as a new version.
pub struct ApplicationFields<'a> {
    pub organisation: &'a str,
    pub title: &'a str,
    pub summary: &'a str,
    pub partners: &'a str,
    pub keywords: &'a str,
    pub requested_cents: i64,
    pub requested_gpu_hours: i64,
    /// The whole saved state, as JSON, kept as the version's record.
    pub body: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationVersionRow {
    pub version: i64,
    pub body: String,
    pub saved_by: i64,
    pub saved_at: i64,
    /// The attachment set it had (the data store's version).
    pub attachments: Option<String>,
}

/// Why an application was not saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSaved {
    /// The call does not take applications at this time: it opens later, or its deadline passed.
    Closed,
    /// Someone saved another version meanwhile (the version the writer read is not the last).
    Stale { last: i64 },
    /// A rolling call's application, once assigned to jurors (they review what they were given)
    /// or decided.
    UnderReview,
}

const CALL_COLUMNS: &str = "id, name, instrument, title_fr, title_en, text_fr, text_en, criteria, scale_max, \
    envelope_cents, reviewers_per_application, opens_at, closes_at, review_ends_at, created_by, created_at";
const APPLICATION_COLUMNS: &str = "id, call_id, submitted_by, organisation, title, summary, partners, keywords, \
    requested_cents, requested_gpu_hours, version, created_at, updated_at, attachments";

fn call_from(row: &AnyRow) -> DbResult<CallRow> {
    Ok(CallRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        instrument: row.try_get(2)?,
        title_fr: row.try_get(3)?,
        title_en: row.try_get(4)?,
        text_fr: row.try_get(5)?,
        text_en: row.try_get(6)?,
        criteria: row.try_get(7)?,
        scale_max: row.try_get(8)?,
        envelope_cents: row.try_get(9)?,
        reviewers_per_application: row.try_get(10)?,
        opens_at: row.try_get(11)?,
        closes_at: row.try_get(12)?,
        review_ends_at: row.try_get(13)?,
        created_by: row.try_get(14)?,
        created_at: row.try_get(15)?,
    })
}

fn application_from(row: &AnyRow) -> DbResult<ApplicationRow> {
    Ok(ApplicationRow {
        id: row.try_get(0)?,
        call_id: row.try_get(1)?,
        submitted_by: row.try_get(2)?,
        organisation: row.try_get(3)?,
        title: row.try_get(4)?,
        summary: row.try_get(5)?,
        partners: row.try_get(6)?,
        keywords: row.try_get(7)?,
        requested_cents: row.try_get(8)?,
        requested_gpu_hours: row.try_get(9)?,
        version: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        attachments: row.try_get(13)?,
    })
}

/// Whether a call takes applications at `now`: open, and before its deadline if it has one.
pub fn call_takes_applications(call: &CallRow, now: i64) -> bool {
    call.opens_at <= now && call.closes_at.is_none_or(|closes| now < closes)
}

async fn insert_assignments(tx: &mut WriteTx, call_id: i64, pairs: &[AssignmentRow]) -> DbResult<()> {
    let now = now_ms();
    for pair in pairs {
        sqlx::query(
            "INSERT INTO call_assignments (call_id, application_id, user_id, affinity, assigned_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(call_id)
        .bind(pair.application_id)
        .bind(pair.user_id)
        .bind(pair.affinity)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The call as the transaction sees it, its row locked until the transaction ends: its dates may
/// have moved since the caller read it, and cannot move before this save commits.
async fn call_in(tx: &mut WriteTx, call_id: i64) -> DbResult<CallRow> {
    let row = sqlx::query(&format!("UPDATE calls SET id = id WHERE id = $1 RETURNING {CALL_COLUMNS}"))
        .bind(call_id)
        .fetch_one(&mut **tx)
        .await?;
    call_from(&row)
}

/// Whether an edit of an application is refused before it is tried: the call does not take
/// applications now, or, in a rolling call, the application is already with its jurors or
/// decided.
async fn edit_refused(tx: &mut WriteTx, call: &CallRow, application_id: i64, now: i64) -> DbResult<Option<NotSaved>> {
    let call = call_in(tx, call.id).await?;
    if !call_takes_applications(&call, now) {
        return Ok(Some(NotSaved::Closed));
    }
    if call.closes_at.is_none() {
        let taken: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM call_assignments WHERE application_id = $1) \
             + (SELECT COUNT(*) FROM call_decisions WHERE application_id = $1)",
        )
        .bind(application_id)
        .fetch_one(&mut **tx)
        .await?;
        if taken > 0 {
            return Ok(Some(NotSaved::UnderReview));
        }
    }
    Ok(None)
}

/// The last version of an application (to say why a save was refused).
async fn last_version(tx: &mut WriteTx, application_id: i64) -> DbResult<i64> {
    Ok(sqlx::query("SELECT version FROM applications WHERE id = $1")
        .bind(application_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("application {application_id}")))?
        .try_get(0)?)
}

/// Records `application` as it now is (its version number and attachment set) with `body`,
/// the whole saved state as JSON.
async fn save_version(
    tx: &mut WriteTx,
    application: &ApplicationRow,
    body: &str,
    user_id: i64,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO application_versions (application_id, version, body, saved_by, saved_at, attachments) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(application.id)
    .bind(application.version)
    .bind(body)
    .bind(user_id)
    .bind(now)
    .bind(application.attachments.as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    pub async fn create_call(&self, new: &NewCall<'_>, actor: &str) -> DbResult<CallRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO calls (name, instrument, title_fr, title_en, text_fr, text_en, criteria, scale_max, \
             envelope_cents, reviewers_per_application, opens_at, closes_at, review_ends_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING {CALL_COLUMNS}"
        ))
        .bind(new.name)
        .bind(new.instrument)
        .bind(new.title_fr)
        .bind(new.title_en)
        .bind(new.text_fr)
        .bind(new.text_en)
        .bind(new.criteria)
        .bind(new.scale_max)
        .bind(new.envelope_cents)
        .bind(new.reviewers_per_application)
        .bind(new.opens_at)
        .bind(new.closes_at)
        .bind(new.review_ends_at)
        .bind(new.created_by)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a call with this name"))?;
        let call = call_from(&row)?;
        let object = format!("call:{}", call.id);
        let detail = format!("{} on {}, envelope {} cents", call.name, call.instrument, call.envelope_cents);
        let entry = AuditEntry { actor, action: "call.create", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(call)
    }

    /// Moves a call's dates (a deadline extended, a phase ended early), audited; refused once any
    /// of its applications is decided, since a reopened call would unlock decided applications.
    pub async fn set_call_dates(&self, call_id: i64, dates: &CallDates, actor: &str) -> DbResult<Option<CallRow>> {
        let mut tx = self.write_tx().await?;
        let decided: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_decisions WHERE call_id = $1")
            .bind(call_id)
            .fetch_one(&mut *tx)
            .await?;
        if decided > 0 {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "UPDATE calls SET opens_at = $2, closes_at = $3, review_ends_at = $4 WHERE id = $1 RETURNING {CALL_COLUMNS}"
        ))
        .bind(call_id)
        .bind(dates.opens_at)
        .bind(dates.closes_at)
        .bind(dates.review_ends_at)
        .fetch_one(&mut *tx)
        .await?;
        let call = call_from(&row)?;
        let object = format!("call:{call_id}");
        let detail =
            format!("opens {}, closes {:?}, review ends {:?}", dates.opens_at, dates.closes_at, dates.review_ends_at);
        let entry = AuditEntry { actor, action: "call.dates", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(Some(call))
    }

    pub async fn call(&self, id: i64) -> DbResult<Option<CallRow>> {
        let row = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(call_from).transpose()
    }

    pub async fn call_by_name(&self, name: &str) -> DbResult<Option<CallRow>> {
        let row = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(call_from).transpose()
    }

    /// Calls, newest first, at most `limit`.
    pub async fn calls(&self, limit: i64) -> DbResult<Vec<CallRow>> {
        let rows = sqlx::query(&format!("SELECT {CALL_COLUMNS} FROM calls ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_from).collect()
    }

    /// A new application, its first version saved, if the call takes applications now.
    pub async fn create_application(
        &self,
        call: &CallRow,
        user_id: i64,
        fields: &ApplicationFields<'_>,
    ) -> DbResult<Result<ApplicationRow, NotSaved>> {
        let mut tx = self.write_tx().await?;
        let created = self.create_application_in(&mut tx, call, user_id, fields).await?;
        if created.is_ok() {
            tx.commit().await?;
        }
        Ok(created)
    }

    /// [`Db::create_application`] inside a transaction, audited in it (the Booster's support
    /// requests record their company in the same one).
    pub(crate) async fn create_application_in(
        &self,
        tx: &mut WriteTx,
        call: &CallRow,
        user_id: i64,
        fields: &ApplicationFields<'_>,
    ) -> DbResult<Result<ApplicationRow, NotSaved>> {
        let now = now_ms();
        if !call_takes_applications(&call_in(tx, call.id).await?, now) {
            return Ok(Err(NotSaved::Closed));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO applications (call_id, submitted_by, organisation, title, summary, partners, keywords, \
             requested_cents, requested_gpu_hours, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $10) RETURNING {APPLICATION_COLUMNS}"
        ))
        .bind(call.id)
        .bind(user_id)
        .bind(fields.organisation)
        .bind(fields.title)
        .bind(fields.summary)
        .bind(fields.partners)
        .bind(fields.keywords)
        .bind(fields.requested_cents)
        .bind(fields.requested_gpu_hours)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let application = application_from(&row)?;
        save_version(tx, &application, fields.body, user_id, now).await?;
        let object = format!("call:{}", call.id);
        let detail = format!("application {} by user {user_id}", application.id);
        let entry = AuditEntry {
            actor: &format!("user:{user_id}"),
            action: "application.create",
            object: &object,
            detail: &detail,
        };
        audit::append(tx, self.audit_key(), &entry).await?;
        Ok(Ok(application))
    }

    /// Saves a new version of an application, if the call still takes applications and
    /// `read_version` is its last version (no edit of someone else is overwritten unseen).
    pub async fn update_application(
        &self,
        call: &CallRow,
        application_id: i64,
        read_version: i64,
        user_id: i64,
        fields: &ApplicationFields<'_>,
    ) -> DbResult<Result<ApplicationRow, NotSaved>> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        if let Some(refused) = edit_refused(&mut tx, call, application_id, now).await? {
            return Ok(Err(refused));
        }
        let updated = sqlx::query(&format!(
            "UPDATE applications SET organisation = $1, title = $2, summary = $3, partners = $4, keywords = $5, \
             requested_cents = $6, requested_gpu_hours = $7, version = version + 1, updated_at = $8 \
             WHERE id = $9 AND version = $10 RETURNING {APPLICATION_COLUMNS}"
        ))
        .bind(fields.organisation)
        .bind(fields.title)
        .bind(fields.summary)
        .bind(fields.partners)
        .bind(fields.keywords)
        .bind(fields.requested_cents)
        .bind(fields.requested_gpu_hours)
        .bind(now)
        .bind(application_id)
        .bind(read_version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else {
            return Ok(Err(NotSaved::Stale { last: last_version(&mut tx, application_id).await? }));
        };
        let application = application_from(&row)?;
        save_version(&mut tx, &application, fields.body, user_id, now).await?;
        tx.commit().await?;
        Ok(Ok(application))
    }

    /// Points an application at a new attachment set (the store's version, none for no files)
    /// as a new version, if the call still takes applications and `read_version` is its last.
    /// The version's record is the last one's, with the new set.
    pub async fn set_attachments(
        &self,
        call: &CallRow,
        application_id: i64,
        read_version: i64,
        user_id: i64,
        attachments: Option<&str>,
    ) -> DbResult<Result<ApplicationRow, NotSaved>> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        if let Some(refused) = edit_refused(&mut tx, call, application_id, now).await? {
            return Ok(Err(refused));
        }
        let updated = sqlx::query(&format!(
            "UPDATE applications SET attachments = $1, version = version + 1, updated_at = $2 \
             WHERE id = $3 AND version = $4 RETURNING {APPLICATION_COLUMNS}"
        ))
        .bind(attachments)
        .bind(now)
        .bind(application_id)
        .bind(read_version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = updated else {
            return Ok(Err(NotSaved::Stale { last: last_version(&mut tx, application_id).await? }));
        };
        let application = application_from(&row)?;
        let body: String =
            sqlx::query_scalar("SELECT body FROM application_versions WHERE application_id = $1 AND version = $2")
                .bind(application_id)
                .bind(read_version)
                .fetch_one(&mut *tx)
                .await?;
        save_version(&mut tx, &application, &body, user_id, now).await?;
        tx.commit().await?;
        Ok(Ok(application))
    }

    pub async fn application(&self, id: i64) -> DbResult<Option<ApplicationRow>> {
        let row = sqlx::query(&format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(application_from).transpose()
    }

    /// A call's applications, by id; only those of `user` when given.
    pub async fn applications(&self, call_id: i64, user: Option<i64>) -> DbResult<Vec<ApplicationRow>> {
        let rows = match user {
            Some(user) => sqlx::query(&format!(
                "SELECT {APPLICATION_COLUMNS} FROM applications WHERE call_id = $1 AND submitted_by = $2 ORDER BY id"
            ))
            .bind(call_id)
            .bind(user)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query(&format!("SELECT {APPLICATION_COLUMNS} FROM applications WHERE call_id = $1 ORDER BY id"))
                    .bind(call_id)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(application_from).collect()
    }

    /// Every saved state of an application, oldest first.
    pub async fn application_versions(&self, application_id: i64) -> DbResult<Vec<ApplicationVersionRow>> {
        let rows = sqlx::query(
            "SELECT version, body, saved_by, saved_at, attachments FROM application_versions WHERE application_id = $1 \
             ORDER BY version",
        )
        .bind(application_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApplicationVersionRow {
                    version: row.try_get(0)?,
                    body: row.try_get(1)?,
                    saved_by: row.try_get(2)?,
                    saved_at: row.try_get(3)?,
                    attachments: row.try_get(4)?,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JurorRow {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub country: String,
    pub organisation: String,
    /// JSON array of strings.
    pub keywords: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRow {
    pub application_id: i64,
    pub user_id: i64,
    /// `declared`, `detected` or `manager`.
    pub source: String,
    pub reason: String,
    pub active: bool,
    pub changed_by: String,
    pub changed_at: i64,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentRow {
    pub application_id: i64,
    pub user_id: i64,
    pub affinity: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    pub application_id: i64,
    pub user_id: i64,
    /// JSON objects keyed by criterion.
    pub scores: String,
    pub justifications: String,
    pub confidence: i64,
    pub submitted_at: i64,
    pub updated_at: i64,
}

/// A juror as a call manager invites them.
pub struct NewJuror<'a> {
    pub country: &'a str,
    pub organisation: &'a str,
    pub keywords: &'a str,
    pub invited_by: Option<i64>,
}

/// A review as its juror writes it.
pub struct ReviewFields<'a> {
    pub scores: &'a str,
    pub justifications: &'a str,
    pub confidence: i64,
}

fn conflict_from(row: &AnyRow) -> DbResult<ConflictRow> {
    Ok(ConflictRow {
        application_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        source: row.try_get(2)?,
        reason: row.try_get(3)?,
        active: row.try_get::<i64, _>(4)? != 0,
        changed_by: row.try_get(5)?,
        changed_at: row.try_get(6)?,
        why: row.try_get(7)?,
    })
}

fn review_from(row: &AnyRow) -> DbResult<ReviewRow> {
    Ok(ReviewRow {
        application_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        scores: row.try_get(2)?,
        justifications: row.try_get(3)?,
        confidence: row.try_get(4)?,
        submitted_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}

const CONFLICT_COLUMNS: &str = "application_id, user_id, source, reason, active, changed_by, changed_at, why";
const REVIEW_COLUMNS: &str = "application_id, user_id, scores, justifications, confidence, submitted_at, updated_at";

impl Db {
    /// Invites a user into a call's jury, or updates what is known of them (idempotent).
    pub async fn invite_juror(&self, call_id: i64, user_id: i64, juror: &NewJuror<'_>, actor: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE call_jurors SET country = $1, organisation = $2, keywords = $3 WHERE call_id = $4 AND user_id = $5",
        )
        .bind(juror.country)
        .bind(juror.organisation)
        .bind(juror.keywords)
        .bind(call_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO call_jurors (call_id, user_id, country, organisation, keywords, invited_by, invited_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(call_id)
            .bind(user_id)
            .bind(juror.country)
            .bind(juror.organisation)
            .bind(juror.keywords)
            .bind(juror.invited_by)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
            let object = format!("call:{call_id}");
            let detail = format!("juror user:{user_id} ({}, {})", juror.organisation, juror.country);
            let entry = AuditEntry { actor, action: "juror.invite", object: &object, detail: &detail };
            audit::append(&mut tx, self.audit_key(), &entry).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn jurors(&self, call_id: i64) -> DbResult<Vec<JurorRow>> {
        let rows = sqlx::query(
            "SELECT j.user_id, u.name, u.email, j.country, j.organisation, j.keywords FROM call_jurors j \
             JOIN users u ON u.id = j.user_id WHERE j.call_id = $1 ORDER BY j.user_id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JurorRow {
                    user_id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    email: row.try_get(2)?,
                    country: row.try_get(3)?,
                    organisation: row.try_get(4)?,
                    keywords: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Records a conflict, or makes it active again with its new source and reason; a conflict
    /// the server detects is only added if none was ever recorded for the pair (a lifted one
    /// stays lifted). True if something changed.
    pub async fn record_conflict(&self, call_id: i64, conflict: &ConflictRow, actor: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT active FROM call_conflicts WHERE application_id = $1 AND user_id = $2")
            .bind(conflict.application_id)
            .bind(conflict.user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let changed = match existing {
            Some(_) if conflict.source == "detected" => false,
            Some(row) => {
                let was_active = row.try_get::<i64, _>(0)? != 0;
                sqlx::query(
                    "UPDATE call_conflicts SET source = $1, reason = $2, active = $3, changed_by = $4, changed_at = $5, \
                     why = $6 WHERE application_id = $7 AND user_id = $8",
                )
                .bind(&conflict.source)
                .bind(&conflict.reason)
                .bind(i64::from(conflict.active))
                .bind(&conflict.changed_by)
                .bind(conflict.changed_at)
                .bind(&conflict.why)
                .bind(conflict.application_id)
                .bind(conflict.user_id)
                .execute(&mut *tx)
                .await?;
                was_active != conflict.active || conflict.active
            }
            None => {
                sqlx::query(&format!(
                    "INSERT INTO call_conflicts (call_id, {CONFLICT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(call_id)
                .bind(conflict.application_id)
                .bind(conflict.user_id)
                .bind(&conflict.source)
                .bind(&conflict.reason)
                .bind(i64::from(conflict.active))
                .bind(&conflict.changed_by)
                .bind(conflict.changed_at)
                .bind(&conflict.why)
                .execute(&mut *tx)
                .await?;
                true
            }
        };
        if changed {
            let object = format!("call:{call_id}");
            let detail = format!(
                "application {} juror user:{} {} ({}): {}{}",
                conflict.application_id,
                conflict.user_id,
                if conflict.active { "conflicted" } else { "lifted" },
                conflict.source,
                conflict.reason,
                if conflict.why.is_empty() { String::new() } else { format!("; why: {}", conflict.why) }
            );
            let entry = AuditEntry { actor, action: "conflict.change", object: &object, detail: &detail };
            audit::append(&mut tx, self.audit_key(), &entry).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Every conflict of a call, lifted ones included.
    pub async fn conflicts(&self, call_id: i64) -> DbResult<Vec<ConflictRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {CONFLICT_COLUMNS} FROM call_conflicts WHERE call_id = $1 ORDER BY application_id, user_id"
        ))
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conflict_from).collect()
    }

    /// Adds jurors to applications of a rolling call that have none yet, audited; refused (with
    /// the application) if one of them was assigned meanwhile.
    pub async fn add_assignments(
        &self,
        call_id: i64,
        pairs: &[AssignmentRow],
        actor: &str,
    ) -> DbResult<Result<(), i64>> {
        let mut tx = self.write_tx().await?;
        let mut applications: Vec<i64> = pairs.iter().map(|pair| pair.application_id).collect();
        applications.dedup();
        for application in &applications {
            let assigned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM call_assignments WHERE application_id = $1")
                .bind(application)
                .fetch_one(&mut *tx)
                .await?;
            if assigned > 0 {
                return Ok(Err(*application));
            }
        }
        insert_assignments(&mut tx, call_id, pairs).await?;
        let total: f64 = pairs.iter().map(|pair| pair.affinity).sum();
        let object = format!("call:{call_id}");
        let detail = format!("{} pairs for {} applications, total affinity {total}", pairs.len(), applications.len());
        let entry = AuditEntry { actor, action: "assignment.add", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Replaces a call's assignment, if no review was written yet.
    pub async fn replace_assignments(
        &self,
        call_id: i64,
        pairs: &[AssignmentRow],
        actor: &str,
    ) -> DbResult<Result<(), i64>> {
        let mut tx = self.write_tx().await?;
        let reviews: i64 = sqlx::query("SELECT COUNT(*) FROM call_reviews WHERE call_id = $1")
            .bind(call_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if reviews > 0 {
            return Ok(Err(reviews));
        }
        sqlx::query("DELETE FROM call_assignments WHERE call_id = $1").bind(call_id).execute(&mut *tx).await?;
        insert_assignments(&mut tx, call_id, pairs).await?;
        let total: f64 = pairs.iter().map(|pair| pair.affinity).sum();
        let object = format!("call:{call_id}");
        let detail = format!("{} pairs, total affinity {total}", pairs.len());
        let entry = AuditEntry { actor, action: "assignment.replace", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub async fn assignments(&self, call_id: i64) -> DbResult<Vec<AssignmentRow>> {
        let rows = sqlx::query(
            "SELECT application_id, user_id, affinity FROM call_assignments WHERE call_id = $1 \
             ORDER BY application_id, user_id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AssignmentRow {
                    application_id: row.try_get(0)?,
                    user_id: row.try_get(1)?,
                    affinity: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// Whether the juror is assigned the application and not (actively) conflicted with it: the
    /// one test of a juror's access to an application.
    pub async fn may_review(&self, application_id: i64, user_id: i64) -> DbResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM call_assignments a WHERE a.application_id = $1 AND a.user_id = $2 AND NOT EXISTS \
             (SELECT 1 FROM call_conflicts c WHERE c.application_id = $1 AND c.user_id = $2 AND c.active = 1)",
        )
        .bind(application_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Saves a juror's review (one per juror and application: a second save edits it), in the
    /// audit chain with it.
    pub async fn save_review(
        &self,
        call_id: i64,
        application_id: i64,
        user_id: i64,
        review: &ReviewFields<'_>,
    ) -> DbResult<ReviewRow> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let updated = sqlx::query(&format!(
            "UPDATE call_reviews SET scores = $1, justifications = $2, confidence = $3, updated_at = $4 \
             WHERE application_id = $5 AND user_id = $6 RETURNING {REVIEW_COLUMNS}"
        ))
        .bind(review.scores)
        .bind(review.justifications)
        .bind(review.confidence)
        .bind(now)
        .bind(application_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (row, action) = match updated {
            Some(row) => (row, "review.edit"),
            None => {
                let row = sqlx::query(&format!(
                    "INSERT INTO call_reviews (call_id, {REVIEW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     RETURNING {REVIEW_COLUMNS}"
                ))
                .bind(call_id)
                .bind(application_id)
                .bind(user_id)
                .bind(review.scores)
                .bind(review.justifications)
                .bind(review.confidence)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_as("a review of this application by this juror"))?;
                (row, "review.submit")
            }
        };
        let saved = review_from(&row)?;
        let object = format!("call:{call_id}");
        let detail = format!("application {application_id} juror user:{user_id}: {}", review.scores);
        let entry = AuditEntry { actor: &format!("user:{user_id}"), action, object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The reviews that count: those of jurors not (actively) conflicted with the application.
    pub async fn counted_reviews(&self, application_id: i64) -> DbResult<Vec<ReviewRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM call_reviews r WHERE r.application_id = $1 AND NOT EXISTS (SELECT 1 FROM call_conflicts c \
             WHERE c.application_id = r.application_id AND c.user_id = r.user_id AND c.active = 1) ORDER BY r.user_id",
            qualified("r", REVIEW_COLUMNS)
        ))
        .bind(application_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(review_from).collect()
    }

    pub async fn reviews(&self, application_id: i64) -> DbResult<Vec<ReviewRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {REVIEW_COLUMNS} FROM call_reviews WHERE application_id = $1 ORDER BY user_id"
        ))
        .bind(application_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(review_from).collect()
    }
}

/// A message of the jury's discussion of an application, with its author's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: i64,
    pub application_id: i64,
    pub user_id: i64,
    pub author: String,
    pub body: String,
    pub posted_at: i64,
}

impl Db {
    /// Adds a message to an application's discussion, in the audit chain with it.
    pub async fn post_message(&self, application: &ApplicationRow, user_id: i64, body: &str) -> DbResult<i64> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO call_messages (call_id, application_id, user_id, body, posted_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(application.call_id)
        .bind(application.id)
        .bind(user_id)
        .bind(body)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let object = format!("application:{}", application.id);
        let detail = format!("message {id}, {} bytes", body.len());
        let entry = AuditEntry {
            actor: &format!("user:{user_id}"),
            action: "application.message",
            object: &object,
            detail: &detail,
        };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// An application's discussion, oldest first.
    pub async fn messages(&self, application_id: i64) -> DbResult<Vec<MessageRow>> {
        let rows = sqlx::query(
            "SELECT m.id, m.application_id, m.user_id, u.name, m.body, m.posted_at FROM call_messages m \
             JOIN users u ON u.id = m.user_id WHERE m.application_id = $1 ORDER BY m.id",
        )
        .bind(application_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MessageRow {
                    id: row.try_get(0)?,
                    application_id: row.try_get(1)?,
                    user_id: row.try_get(2)?,
                    author: row.try_get(3)?,
                    body: row.try_get(4)?,
                    posted_at: row.try_get(5)?,
                })
            })
            .collect()
    }
}

/// A decision on an application, as the call's managers take it.
pub struct NewDecision<'a> {
    pub application: &'a ApplicationRow,
    pub selected: bool,
    pub amount_cents: i64,
    pub gpu_hours: i64,
    /// The compute project a selected application becomes.
    pub project_name: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    pub application_id: i64,
    pub call_id: i64,
    pub selected: bool,
    pub amount_cents: i64,
    pub gpu_hours: i64,
    pub project_id: Option<i64>,
    pub budget_line: Option<String>,
    pub decided_by: String,
    pub decided_at: i64,
}

/// Why a batch of decisions was refused (nothing of it recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionRefused {
    AlreadyDecided { application_id: i64 },
    OverEnvelope { asked_cents: i64, left_cents: i64 },
    NoBudgetLine { instrument: String },
}

const DECISION_COLUMNS: &str = "application_id, call_id, selected, amount_cents, gpu_hours, project_id, budget_line, \
    decided_by, decided_at";

fn decision_from(row: &AnyRow) -> DbResult<DecisionRow> {
    Ok(DecisionRow {
        application_id: row.try_get(0)?,
        call_id: row.try_get(1)?,
        selected: row.try_get::<i64, _>(2)? != 0,
        amount_cents: row.try_get(3)?,
        gpu_hours: row.try_get(4)?,
        project_id: row.try_get(5)?,
        budget_line: row.try_get(6)?,
        decided_by: row.try_get(7)?,
        decided_at: row.try_get(8)?,
    })
}

impl Db {
    /// Records a batch of decisions, all or none: each selected application becomes a compute
    /// project (its applicant principal investigator, member and coordinator) with its
    /// GPU-hours, and its amount is committed on the first budget line of the call's
    /// instrument (the line's committed figure is the sum of its decisions); the call's
    /// envelope is never passed.
    pub async fn decide(
        &self,
        call: &CallRow,
        decisions: &[NewDecision<'_>],
        actor: &str,
    ) -> DbResult<Result<Vec<DecisionRow>, DecisionRefused>> {
        use grappe_domain::account::{Role, RoleGrant, Scope, ScopeKind};
        let mut tx = self.write_tx().await?;
        // The call's row, locked: a second batch of the same call waits here, then reads what
        // this one granted (PostgreSQL's read committed would otherwise let both pass the
        // envelope; SQLite's write transaction already holds the database).
        call_in(&mut tx, call.id).await?;
        for decision in decisions {
            let done = sqlx::query("SELECT 1 FROM call_decisions WHERE application_id = $1")
                .bind(decision.application.id)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                return Ok(Err(DecisionRefused::AlreadyDecided { application_id: decision.application.id }));
            }
        }
        let granted: i64 =
            sqlx::query("SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM call_decisions WHERE call_id = $1")
                .bind(call.id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let asked: i64 = decisions.iter().filter(|d| d.selected).map(|d| d.amount_cents).sum();
        if granted.saturating_add(asked) > call.envelope_cents {
            return Ok(Err(DecisionRefused::OverEnvelope {
                asked_cents: asked,
                left_cents: call.envelope_cents - granted,
            }));
        }
        let line = sqlx::query(
            "SELECT b.code FROM budget_lines b JOIN instruments i ON i.id = b.instrument_id WHERE i.code = $1 \
             ORDER BY b.position LIMIT 1",
        )
        .bind(&call.instrument)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(line) = line else {
            return Ok(Err(DecisionRefused::NoBudgetLine { instrument: call.instrument.clone() }));
        };
        let line: String = line.try_get(0)?;
        let now = now_ms();
        let mut recorded = Vec::with_capacity(decisions.len());
        for decision in decisions {
            let application = decision.application;
            let (project_id, budget_line) = if decision.selected {
                let project = crate::NewProject {
                    name: decision.project_name,
                    gpu_hours: decision.gpu_hours,
                    cpu_hours: 0,
                    storage_gb: 100,
                    valid_from: None,
                    valid_until: None,
                    principal_investigator: Some(application.submitted_by),
                };
                let project = self.create_project_in(&mut tx, &project, actor).await?;
                let scope = Scope::Object { kind: ScopeKind::Project, id: project.id };
                for role in [Role::ProjectMember, Role::ProjectCoordinator] {
                    let grant = RoleGrant { role, scope: scope.clone() };
                    self.grant_in(&mut tx, application.submitted_by, &grant, actor).await?;
                }
                (Some(project.id), Some(line.clone()))
            } else {
                (None, None)
            };
            let row = sqlx::query(&format!(
                "INSERT INTO call_decisions ({DECISION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 RETURNING {DECISION_COLUMNS}"
            ))
            .bind(application.id)
            .bind(call.id)
            .bind(i64::from(decision.selected))
            .bind(if decision.selected { decision.amount_cents } else { 0 })
            .bind(if decision.selected { decision.gpu_hours } else { 0 })
            .bind(project_id)
            .bind(&budget_line)
            .bind(actor)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let row = decision_from(&row)?;
            let object = format!("call:{}", call.id);
            let detail = format!(
                "application {}: {}{}",
                application.id,
                if row.selected { "selected" } else { "not selected" },
                if row.selected {
                    format!(
                        ", {} cents and {} GPU-hours on {line}, project {}",
                        row.amount_cents,
                        row.gpu_hours,
                        project_id.unwrap_or(0)
                    )
                } else {
                    String::new()
                }
            );
            let entry = AuditEntry { actor, action: "decision.record", object: &object, detail: &detail };
            audit::append(&mut tx, self.audit_key(), &entry).await?;
            recorded.push(row);
        }
        tx.commit().await?;
        Ok(Ok(recorded))
    }

    /// A call's decisions, by application.
    pub async fn decisions(&self, call_id: i64) -> DbResult<Vec<DecisionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DECISION_COLUMNS} FROM call_decisions WHERE call_id = $1 ORDER BY application_id"
        ))
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_from).collect()
    }
}
