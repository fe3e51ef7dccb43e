//! IA Booster: companies, their diagnostics, support requests and outcomes. Each write is one
//! transaction, audited in it; a company's registration creates its organisation, its Booster
//! record and its first member's grant together, or nothing.

use grappe_domain::account::{Role, RoleGrant, Scope, ScopeKind, SizeClass};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::calls::{ApplicationFields, ApplicationRow, CallRow, NotSaved};
use crate::{Db, DbError, DbResult, conflict_as, now_ms};

/// A company of the Booster: an organisation of kind `company` with its SIREN and NAF code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyRow {
    /// The organisation's id.
    pub id: i64,
    pub name: String,
    /// `sme`, `eti` or `large`.
    pub size_class: String,
    pub siren: String,
    pub naf_code: String,
    pub naf_section: String,
    pub registered_at: i64,
    /// Who registered it: peer groups count distinct registrants (k-anonymity against one
    /// person registering companies to surround another).
    pub registered_by: i64,
}

pub struct NewCompany<'a> {
    pub name: &'a str,
    pub size_class: SizeClass,
    /// 9 digits, checked by the caller.
    pub siren: &'a str,
    pub naf_code: &'a str,
    pub naf_section: char,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosticRow {
    pub id: i64,
    pub company_id: i64,
    pub submitted_by: i64,
    pub ai_act_class: String,
    /// Data, skills, use cases, infrastructure, governance: 0 to 100.
    pub scores: [i64; 5],
    pub submitted_at: i64,
}

pub struct NewDiagnostic<'a> {
    /// Every question with its answer.
    pub answers: &'a [(&'a str, i64)],
    pub ai_act_class: &'a str,
    pub scores: [i64; 5],
}

/// A company's latest diagnostic, with its peer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerScores {
    pub company_id: i64,
    pub registered_by: i64,
    pub size_class: String,
    pub naf_section: String,
    pub scores: [i64; 5],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportRow {
    pub application_id: i64,
    pub call_id: i64,
    pub company_id: i64,
    pub title: String,
    pub requested_gpu_hours: i64,
    pub requested_at: i64,
    /// None until the call's managers decide.
    pub selected: Option<bool>,
    pub gpu_hours: i64,
    pub project_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    pub id: i64,
    pub company_id: i64,
    /// `prototype`, `product` or `jobs`.
    pub kind: String,
    pub quantity: i64,
    /// `YYYY-MM-DD`.
    pub occurred_on: String,
    pub note: String,
    pub recorded_by: i64,
    pub recorded_at: i64,
}

pub struct NewOutcome<'a> {
    pub kind: &'a str,
    pub quantity: i64,
    pub occurred_on: &'a str,
    pub note: &'a str,
}

/// The Booster's figures for the programme's dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoosterTotals {
    pub companies_registered: i64,
    /// Companies with at least one diagnostic.
    pub companies_diagnosed: i64,
    /// Companies with at least one support request selected by the call's managers.
    pub companies_supported: i64,
    pub prototypes: i64,
    pub products: i64,
    pub jobs_created: i64,
}

/// The most rows a list reads (diagnostics, requests, outcomes of one company; a user's
/// companies); the peer figures read at most [`PEER_ROWS`].
const LIST_LIMIT: i64 = 200;
const PEER_ROWS: i64 = 100_000;

const COMPANY_SELECT: &str = "SELECT o.id, o.name, o.size_class, c.siren, c.naf_code, c.naf_section, c.registered_at, \
    c.registered_by \
    FROM booster_companies c JOIN organisations o ON o.id = c.organisation_id";
const DIAGNOSTIC_COLUMNS: &str = "id, organisation_id, submitted_by, ai_act_class, score_data, score_skills, \
    score_use_cases, score_infrastructure, score_governance, submitted_at";

fn company_from(row: &AnyRow) -> DbResult<CompanyRow> {
    Ok(CompanyRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        size_class: row.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
        siren: row.try_get(3)?,
        naf_code: row.try_get(4)?,
        naf_section: row.try_get(5)?,
        registered_at: row.try_get(6)?,
        registered_by: row.try_get(7)?,
    })
}

fn scores_at(row: &AnyRow, first: usize) -> DbResult<[i64; 5]> {
    Ok([
        row.try_get(first)?,
        row.try_get(first + 1)?,
        row.try_get(first + 2)?,
        row.try_get(first + 3)?,
        row.try_get(first + 4)?,
    ])
}

fn diagnostic_from(row: &AnyRow) -> DbResult<DiagnosticRow> {
    Ok(DiagnosticRow {
        id: row.try_get(0)?,
        company_id: row.try_get(1)?,
        submitted_by: row.try_get(2)?,
        ai_act_class: row.try_get(3)?,
        scores: scores_at(row, 4)?,
        submitted_at: row.try_get(9)?,
    })
}

fn outcome_from(row: &AnyRow) -> DbResult<OutcomeRow> {
    Ok(OutcomeRow {
        id: row.try_get(0)?,
        company_id: row.try_get(1)?,
        kind: row.try_get(2)?,
        quantity: row.try_get(3)?,
        occurred_on: row.try_get(4)?,
        note: row.try_get(5)?,
        recorded_by: row.try_get(6)?,
        recorded_at: row.try_get(7)?,
    })
}

impl Db {
    /// Registers a company: its organisation (kind `company`, its size class), its SIREN and NAF
    /// code, and `user_id` as its first member, all in one transaction. A SIREN or a name
    /// already registered is a [`DbError::Conflict`].
    pub async fn register_company(&self, new: &NewCompany<'_>, user_id: i64) -> DbResult<CompanyRow> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let taken = sqlx::query("SELECT 1 FROM booster_companies WHERE siren = $1")
            .bind(new.siren)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(DbError::Conflict(
                "a company with this SIREN is registered: ask its members to add you".into(),
            ));
        }
        let organisation: i64 = sqlx::query(
            "INSERT INTO organisations (name, kind, size_class, created_at) VALUES ($1, 'company', $2, $3) RETURNING id",
        )
        .bind(new.name)
        .bind(new.size_class.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("an organisation with this name"))?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO booster_companies (organisation_id, siren, naf_code, naf_section, registered_by, registered_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(organisation)
        .bind(new.siren)
        .bind(new.naf_code)
        .bind(new.naf_section.to_string())
        .bind(user_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(conflict_as("a company with this SIREN"))?;
        let actor = format!("user:{user_id}");
        let grant = RoleGrant {
            role: Role::CompanyMember,
            scope: Scope::Object { kind: ScopeKind::Organisation, id: organisation },
        };
        self.grant_in(&mut tx, user_id, &grant, &actor).await?;
        let object = format!("organisation:{organisation}");
        let detail =
            format!("company registered: SIREN {}, NAF {}, {}", new.siren, new.naf_code, new.size_class.as_str());
        let entry = AuditEntry { actor: &actor, action: "booster.company.register", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        self.company(organisation).await?.ok_or_else(|| DbError::NotFound(object))
    }

    pub async fn company(&self, id: i64) -> DbResult<Option<CompanyRow>> {
        let row = sqlx::query(&format!("{COMPANY_SELECT} WHERE o.id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(company_from).transpose()
    }

    /// The companies `user_id` is a member of, by name.
    pub async fn companies_of(&self, user_id: i64) -> DbResult<Vec<CompanyRow>> {
        let rows = sqlx::query(&format!(
            "{COMPANY_SELECT} JOIN role_grants g ON g.scope_id = o.id AND g.scope_kind = 'organisation' \
             WHERE g.user_id = $1 AND g.role = 'company_member' ORDER BY o.name LIMIT {LIST_LIMIT}"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(company_from).collect()
    }

    /// A company's members (the `company_member` grants over its organisation): id and name, by
    /// name.
    pub async fn company_members(&self, company_id: i64) -> DbResult<Vec<(i64, String)>> {
        let rows = sqlx::query(&format!(
            "SELECT u.id, u.name FROM role_grants g JOIN users u ON u.id = g.user_id \
             WHERE g.role = 'company_member' AND g.scope_kind = 'organisation' AND g.scope_id = $1 \
             ORDER BY u.name LIMIT {LIST_LIMIT}"
        ))
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Records a diagnostic with its answers, audited, in one transaction.
    pub async fn record_diagnostic(
        &self,
        company_id: i64,
        user_id: i64,
        new: &NewDiagnostic<'_>,
    ) -> DbResult<DiagnosticRow> {
        let mut tx = self.write_tx().await?;
        let [data, skills, use_cases, infrastructure, governance] = new.scores;
        let row = sqlx::query(&format!(
            "INSERT INTO booster_diagnostics (organisation_id, submitted_by, ai_act_class, score_data, score_skills, \
             score_use_cases, score_infrastructure, score_governance, submitted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {DIAGNOSTIC_COLUMNS}"
        ))
        .bind(company_id)
        .bind(user_id)
        .bind(new.ai_act_class)
        .bind(data)
        .bind(skills)
        .bind(use_cases)
        .bind(infrastructure)
        .bind(governance)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let diagnostic = diagnostic_from(&row)?;
        for (question, answer) in new.answers {
            sqlx::query("INSERT INTO booster_answers (diagnostic_id, question, answer) VALUES ($1, $2, $3)")
                .bind(diagnostic.id)
                .bind(*question)
                .bind(*answer)
                .execute(&mut *tx)
                .await?;
        }
        let actor = format!("user:{user_id}");
        let object = format!("organisation:{company_id}");
        // Neither answers nor scores: they are the company's private data, and the audit log is
        // read by administrators for other purposes.
        let detail = format!("diagnostic {} recorded", diagnostic.id);
        let entry = AuditEntry { actor: &actor, action: "booster.diagnostic.record", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(diagnostic)
    }

    /// A company's diagnostics, newest first.
    pub async fn diagnostics(&self, company_id: i64) -> DbResult<Vec<DiagnosticRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {DIAGNOSTIC_COLUMNS} FROM booster_diagnostics WHERE organisation_id = $1 \
             ORDER BY id DESC LIMIT {LIST_LIMIT}"
        ))
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(diagnostic_from).collect()
    }

    pub async fn diagnostic(&self, id: i64) -> DbResult<Option<DiagnosticRow>> {
        let row = sqlx::query(&format!("SELECT {DIAGNOSTIC_COLUMNS} FROM booster_diagnostics WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(diagnostic_from).transpose()
    }

    /// A diagnostic's answers, by question.
    pub async fn diagnostic_answers(&self, diagnostic_id: i64) -> DbResult<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT question, answer FROM booster_answers WHERE diagnostic_id = $1 ORDER BY question")
                .bind(diagnostic_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Every diagnosed company's latest scores with its group (size class, NAF section);
    /// one group only when both are given.
    pub async fn latest_scores(&self, group: Option<(&str, &str)>) -> DbResult<Vec<PeerScores>> {
        let filter = if group.is_some() { "AND o.size_class = $1 AND c.naf_section = $2" } else { "" };
        let sql = format!(
            "SELECT d.organisation_id, o.size_class, c.naf_section, d.score_data, d.score_skills, d.score_use_cases, \
             d.score_infrastructure, d.score_governance, c.registered_by \
             FROM booster_diagnostics d JOIN booster_companies c ON c.organisation_id = d.organisation_id \
             JOIN organisations o ON o.id = d.organisation_id \
             WHERE d.id = (SELECT MAX(id) FROM booster_diagnostics l WHERE l.organisation_id = d.organisation_id) {filter} \
             ORDER BY o.size_class, c.naf_section, d.organisation_id LIMIT {PEER_ROWS}"
        );
        let mut query = sqlx::query(&sql);
        if let Some((size_class, section)) = group {
            query = query.bind(size_class).bind(section);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(PeerScores {
                    company_id: row.try_get(0)?,
                    registered_by: row.try_get(8)?,
                    size_class: row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    naf_section: row.try_get(2)?,
                    scores: scores_at(row, 3)?,
                })
            })
            .collect()
    }

    /// A support request: an application to the Booster's call for `company_id`, recorded with
    /// its link to the company in one transaction, if the call takes applications now.
    pub async fn request_support(
        &self,
        call: &CallRow,
        company_id: i64,
        user_id: i64,
        fields: &ApplicationFields<'_>,
    ) -> DbResult<Result<ApplicationRow, NotSaved>> {
        let mut tx = self.write_tx().await?;
        let application = match self.create_application_in(&mut tx, call, user_id, fields).await? {
            Ok(application) => application,
            Err(why) => return Ok(Err(why)),
        };
        sqlx::query(
            "INSERT INTO booster_support (application_id, organisation_id, requested_by, requested_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(application.id)
        .bind(company_id)
        .bind(user_id)
        .bind(application.created_at)
        .execute(&mut *tx)
        .await?;
        let actor = format!("user:{user_id}");
        let object = format!("organisation:{company_id}");
        let detail = format!("support requested: application {} to call {}", application.id, call.id);
        let entry = AuditEntry { actor: &actor, action: "booster.support.request", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(Ok(application))
    }

    /// A company's support requests with their decisions, newest first.
    pub async fn support_requests(&self, company_id: i64) -> DbResult<Vec<SupportRow>> {
        let rows = sqlx::query(&format!(
            "SELECT s.application_id, a.call_id, s.organisation_id, a.title, a.requested_gpu_hours, s.requested_at, \
             d.selected, d.gpu_hours, d.project_id \
             FROM booster_support s JOIN applications a ON a.id = s.application_id \
             LEFT JOIN call_decisions d ON d.application_id = s.application_id \
             WHERE s.organisation_id = $1 ORDER BY s.application_id DESC LIMIT {LIST_LIMIT}"
        ))
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SupportRow {
                    application_id: row.try_get(0)?,
                    call_id: row.try_get(1)?,
                    company_id: row.try_get(2)?,
                    title: row.try_get(3)?,
                    requested_gpu_hours: row.try_get(4)?,
                    requested_at: row.try_get(5)?,
                    selected: row.try_get::<Option<i64>, _>(6)?.map(|selected| selected != 0),
                    gpu_hours: row.try_get::<Option<i64>, _>(7)?.unwrap_or(0),
                    project_id: row.try_get(8)?,
                })
            })
            .collect()
    }

    /// Records an outcome, audited, in one transaction.
    pub async fn record_outcome(&self, company_id: i64, user_id: i64, new: &NewOutcome<'_>) -> DbResult<OutcomeRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO booster_outcomes (organisation_id, kind, quantity, occurred_on, note, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             RETURNING id, organisation_id, kind, quantity, occurred_on, note, recorded_by, recorded_at",
        )
        .bind(company_id)
        .bind(new.kind)
        .bind(new.quantity)
        .bind(new.occurred_on)
        .bind(new.note)
        .bind(user_id)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let outcome = outcome_from(&row)?;
        let actor = format!("user:{user_id}");
        let object = format!("organisation:{company_id}");
        let detail = format!("outcome {}: {} x{} on {}", outcome.id, new.kind, new.quantity, new.occurred_on);
        let entry = AuditEntry { actor: &actor, action: "booster.outcome.record", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// A company's outcomes, newest first.
    pub async fn outcomes(&self, company_id: i64) -> DbResult<Vec<OutcomeRow>> {
        let rows = sqlx::query(&format!(
            "SELECT id, organisation_id, kind, quantity, occurred_on, note, recorded_by, recorded_at \
             FROM booster_outcomes WHERE organisation_id = $1 ORDER BY occurred_on DESC, id DESC LIMIT {LIST_LIMIT}"
        ))
        .bind(company_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outcome_from).collect()
    }

    /// The Booster's totals, in one statement (one snapshot).
    pub async fn booster_totals(&self) -> DbResult<BoosterTotals> {
        let count = |kind: &str| {
            format!("(SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM booster_outcomes WHERE kind = '{kind}')")
        };
        let row = sqlx::query(&format!(
            "SELECT (SELECT COUNT(*) FROM booster_companies), \
             (SELECT COUNT(DISTINCT organisation_id) FROM booster_diagnostics), \
             (SELECT COUNT(DISTINCT s.organisation_id) FROM booster_support s \
              JOIN call_decisions d ON d.application_id = s.application_id WHERE d.selected = 1), \
             {}, {}, {}",
            count("prototype"),
            count("product"),
            count("jobs")
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(BoosterTotals {
            companies_registered: row.try_get(0)?,
            companies_diagnosed: row.try_get(1)?,
            companies_supported: row.try_get(2)?,
            prototypes: row.try_get(3)?,
            products: row.try_get(4)?,
            jobs_created: row.try_get(5)?,
        })
    }
}
