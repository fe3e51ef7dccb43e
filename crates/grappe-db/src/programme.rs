//! The programme: its header, instruments, budget lines and headline figures as its file loads
//! them; what is committed (decisions of calls) and disbursed (payments) summed from those
//! records at every read, never stored beside them; payments; the figures over time.

use std::collections::{BTreeMap, HashSet};

use grappe_domain::programme::Programme;
use sqlx::Row;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbResult, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBudgetLine {
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
    pub envelope_cents: i64,
    /// The selected decisions' amounts on this line.
    pub committed_cents: i64,
    /// The payments recorded on this line.
    pub disbursed_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstrument {
    pub code: String,
    pub name_fr: String,
    pub name_en: String,
    pub summary_fr: String,
    pub summary_en: String,
    pub module: String,
    pub budget_lines: Vec<StoredBudgetLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKpi {
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
    pub value: i64,
    pub unit: String,
    pub approximate: bool,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgrammeHeader {
    pub code: String,
    pub name_fr: String,
    pub name_en: String,
    pub source: String,
    pub loaded_by: String,
    pub loaded_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredProgramme {
    /// `None`: no programme was ever loaded on this server.
    pub header: Option<ProgrammeHeader>,
    pub instruments: Vec<StoredInstrument>,
    pub kpis: Vec<StoredKpi>,
}

impl StoredProgramme {
    /// Every budget line, with the code of its instrument, in the programme's order.
    pub fn lines(&self) -> impl Iterator<Item = (&str, &StoredBudgetLine)> {
        self.instruments.iter().flat_map(|i| i.budget_lines.iter().map(move |line| (i.code.as_str(), line)))
    }

    pub fn line(&self, code: &str) -> Option<&StoredBudgetLine> {
        self.lines().map(|(_, line)| line).find(|line| line.code == code)
    }
}

/// Why a programme file was not loaded (nothing of it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadRefused {
    /// The file leaves out a budget line that records (decisions, payments) stand on.
    LineHasRecords { code: String, records: i64 },
    /// The file leaves out an instrument that calls are open under.
    InstrumentHasCalls { code: String, calls: i64 },
}

/// What a load changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadSummary {
    pub instruments: usize,
    pub budget_lines: usize,
    pub kpis: usize,
    /// Instruments, lines and figures of the earlier programme that the file left out.
    pub removed: Vec<String>,
}

/// A payment on a selected application's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub id: i64,
    pub application_id: i64,
    pub budget_line: String,
    pub amount_cents: i64,
    /// `YYYY-MM-DD`.
    pub paid_on: String,
    pub reference: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

pub struct NewPayment<'a> {
    pub application_id: i64,
    pub amount_cents: i64,
    pub paid_on: &'a str,
    pub reference: &'a str,
}

/// Why a payment was refused (nothing recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRefused {
    /// No decision on that application, or one that did not select it.
    NotGranted,
    /// More than what the decision granted, counting what was paid already.
    OverGrant { granted_cents: i64, paid_cents: i64 },
    /// A payment with this reference is recorded already.
    DuplicateReference,
}

/// A decision that committed money on a line, with what was paid on it: the records behind a
/// line's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitmentRow {
    pub application_id: i64,
    pub call_id: i64,
    pub call_name: String,
    pub title: String,
    pub organisation: String,
    pub amount_cents: i64,
    pub paid_cents: i64,
    pub project_id: Option<i64>,
    pub decided_at: i64,
}

/// The figures one month added (`month`: `YYYY-MM`, in UTC).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonthFigures {
    pub committed_cents: i64,
    pub disbursed_cents: i64,
    pub gpu_ms: i64,
}

/// The whole platform's figures, from its records, for the public dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlatformFigures {
    pub projects: i64,
    pub gpu_hours_allocated: i64,
    pub gpu_ms_used: i64,
    pub cpu_ms_used: i64,
    pub jobs_completed: i64,
    pub public_datasets: i64,
    pub dataset_versions: i64,
    pub models: i64,
    pub model_versions: i64,
    pub challenges: i64,
    pub teams: i64,
    pub submissions: i64,
    pub calls: i64,
    pub applications: i64,
    pub selected: i64,
    pub gateway_requests: i64,
    pub gateway_tokens: i64,
    /// Students enrolled in the centres' training programmes, all years together.
    pub specialists_trained: i64,
    pub booster: crate::BoosterTotals,
}

const PAYMENT_COLUMNS: &str =
    "id, application_id, budget_line, amount_cents, paid_on, reference, recorded_by, recorded_at";

fn payment_from(row: &sqlx::any::AnyRow) -> DbResult<PaymentRow> {
    Ok(PaymentRow {
        id: row.try_get(0)?,
        application_id: row.try_get(1)?,
        budget_line: row.try_get(2)?,
        amount_cents: row.try_get(3)?,
        paid_on: row.try_get(4)?,
        reference: row.try_get(5)?,
        recorded_by: row.try_get(6)?,
        recorded_at: row.try_get(7)?,
    })
}

impl Db {
    /// Loads a programme (checked by [`Programme::check`]) in one transaction: the header, the
    /// instruments, lines and figures updated by code, and those the file leaves out removed;
    /// a line with records or an instrument with calls cannot be left out, and then nothing is
    /// loaded.
    pub async fn load_programme(
        &self,
        programme: &Programme,
        actor: &str,
    ) -> DbResult<Result<LoadSummary, LoadRefused>> {
        let mut tx = self.write_tx().await?;
        let mut summary = LoadSummary::default();
        let instrument_codes: HashSet<&str> = programme.instruments.iter().map(|i| i.code.as_str()).collect();
        let line_codes: HashSet<&str> =
            programme.instruments.iter().flat_map(|i| i.budget_lines.iter().map(|l| l.code.as_str())).collect();
        let kpi_codes: HashSet<&str> = programme.kpis.iter().map(|k| k.code.as_str()).collect();

        // What the file leaves out: refused where records stand on it, removed otherwise.
        for row in sqlx::query(
            "SELECT code, (SELECT COUNT(*) FROM call_decisions d WHERE d.budget_line = b.code) \
               + (SELECT COUNT(*) FROM payments p WHERE p.budget_line = b.code) FROM budget_lines b",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let code: String = row.try_get(0)?;
            let records: i64 = row.try_get(1)?;
            if !line_codes.contains(code.as_str()) {
                if records > 0 {
                    return Ok(Err(LoadRefused::LineHasRecords { code, records }));
                }
                sqlx::query("DELETE FROM budget_lines WHERE code = $1").bind(&code).execute(&mut *tx).await?;
                summary.removed.push(format!("budget line {code}"));
            }
        }
        for row in
            sqlx::query("SELECT code, (SELECT COUNT(*) FROM calls c WHERE c.instrument = i.code) FROM instruments i")
                .fetch_all(&mut *tx)
                .await?
        {
            let code: String = row.try_get(0)?;
            let calls: i64 = row.try_get(1)?;
            if !instrument_codes.contains(code.as_str()) {
                if calls > 0 {
                    return Ok(Err(LoadRefused::InstrumentHasCalls { code, calls }));
                }
                sqlx::query(
                    "DELETE FROM budget_lines WHERE instrument_id = (SELECT id FROM instruments WHERE code = $1)",
                )
                .bind(&code)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM instruments WHERE code = $1").bind(&code).execute(&mut *tx).await?;
                summary.removed.push(format!("instrument {code}"));
            }
        }
        for row in sqlx::query("SELECT code FROM kpis").fetch_all(&mut *tx).await? {
            let code: String = row.try_get(0)?;
            if !kpi_codes.contains(code.as_str()) {
                sqlx::query("DELETE FROM kpis WHERE code = $1").bind(&code).execute(&mut *tx).await?;
                summary.removed.push(format!("figure {code}"));
            }
        }

        let header = &programme.programme;
        sqlx::query(
            "INSERT INTO programme (id, code, name_fr, name_en, source, loaded_by, loaded_at) \
             VALUES (1, $1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET code = excluded.code, name_fr = excluded.name_fr, \
               name_en = excluded.name_en, source = excluded.source, loaded_by = excluded.loaded_by, \
               loaded_at = excluded.loaded_at",
        )
        .bind(&header.code)
        .bind(&header.name.fr)
        .bind(&header.name.en)
        .bind(&header.source)
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        for (position, instrument) in programme.instruments.iter().enumerate() {
            let row = sqlx::query(
                "INSERT INTO instruments (code, position, name_fr, name_en, summary_fr, summary_en, module) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (code) DO UPDATE SET position = excluded.position, name_fr = excluded.name_fr, \
                   name_en = excluded.name_en, summary_fr = excluded.summary_fr, \
                   summary_en = excluded.summary_en, module = excluded.module \
                 RETURNING id",
            )
            .bind(&instrument.code)
            .bind(position as i64)
            .bind(&instrument.name.fr)
            .bind(&instrument.name.en)
            .bind(&instrument.summary.fr)
            .bind(&instrument.summary.en)
            .bind(&instrument.module)
            .fetch_one(&mut *tx)
            .await?;
            let instrument_id: i64 = row.try_get(0)?;
            summary.instruments += 1;
            for (line_position, line) in instrument.budget_lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO budget_lines (instrument_id, code, position, label_fr, label_en, envelope_cents) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (code) DO UPDATE SET instrument_id = excluded.instrument_id, \
                       position = excluded.position, label_fr = excluded.label_fr, \
                       label_en = excluded.label_en, envelope_cents = excluded.envelope_cents",
                )
                .bind(instrument_id)
                .bind(&line.code)
                .bind(line_position as i64)
                .bind(&line.label.fr)
                .bind(&line.label.en)
                .bind(line.envelope().get())
                .execute(&mut *tx)
                .await?;
                summary.budget_lines += 1;
            }
        }
        for (position, kpi) in programme.kpis.iter().enumerate() {
            let (value, unit) = kpi.stored();
            sqlx::query(
                "INSERT INTO kpis (code, position, label_fr, label_en, value, unit, approximate, source) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (code) DO UPDATE SET position = excluded.position, label_fr = excluded.label_fr, \
                   label_en = excluded.label_en, value = excluded.value, unit = excluded.unit, \
                   approximate = excluded.approximate, source = excluded.source",
            )
            .bind(&kpi.code)
            .bind(position as i64)
            .bind(&kpi.label.fr)
            .bind(&kpi.label.en)
            .bind(value)
            .bind(unit)
            .bind(i64::from(kpi.approximate))
            .bind(&kpi.source)
            .execute(&mut *tx)
            .await?;
            summary.kpis += 1;
        }
        let detail = format!(
            "{}: {} instruments, {} budget lines, {} figures{}",
            header.code,
            summary.instruments,
            summary.budget_lines,
            summary.kpis,
            if summary.removed.is_empty() {
                String::new()
            } else {
                format!("; removed {}", summary.removed.join(", "))
            }
        );
        let entry = AuditEntry { actor, action: "programme.load", object: "programme", detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(Ok(summary))
    }

    pub async fn programme(&self) -> DbResult<StoredProgramme> {
        let header = sqlx::query("SELECT code, name_fr, name_en, source, loaded_by, loaded_at FROM programme")
            .fetch_optional(&self.pool)
            .await?
            .map(|row| -> DbResult<ProgrammeHeader> {
                Ok(ProgrammeHeader {
                    code: row.try_get(0)?,
                    name_fr: row.try_get(1)?,
                    name_en: row.try_get(2)?,
                    source: row.try_get(3)?,
                    loaded_by: row.try_get(4)?,
                    loaded_at: row.try_get(5)?,
                })
            })
            .transpose()?;
        let instrument_rows = sqlx::query(
            "SELECT id, code, name_fr, name_en, summary_fr, summary_en, module FROM instruments ORDER BY position, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let line_rows = sqlx::query(
            "SELECT b.instrument_id, b.code, b.label_fr, b.label_en, b.envelope_cents, \
               CAST((SELECT COALESCE(SUM(d.amount_cents), 0) FROM call_decisions d \
                     WHERE d.budget_line = b.code AND d.selected = 1) AS BIGINT), \
               CAST((SELECT COALESCE(SUM(p.amount_cents), 0) FROM payments p WHERE p.budget_line = b.code) AS BIGINT) \
             FROM budget_lines b ORDER BY b.instrument_id, b.position, b.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut instruments = Vec::with_capacity(instrument_rows.len());
        for row in &instrument_rows {
            let id: i64 = row.try_get("id")?;
            let mut budget_lines = Vec::new();
            for line in line_rows.iter().filter(|line| line.try_get::<i64, _>(0).ok() == Some(id)) {
                budget_lines.push(StoredBudgetLine {
                    code: line.try_get(1)?,
                    label_fr: line.try_get(2)?,
                    label_en: line.try_get(3)?,
                    envelope_cents: line.try_get(4)?,
                    committed_cents: line.try_get(5)?,
                    disbursed_cents: line.try_get(6)?,
                });
            }
            instruments.push(StoredInstrument {
                code: row.try_get("code")?,
                name_fr: row.try_get("name_fr")?,
                name_en: row.try_get("name_en")?,
                summary_fr: row.try_get("summary_fr")?,
                summary_en: row.try_get("summary_en")?,
                module: row.try_get("module")?,
                budget_lines,
            });
        }
        let kpis = sqlx::query(
            "SELECT code, label_fr, label_en, value, unit, approximate, source FROM kpis ORDER BY position",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(StoredKpi {
                code: row.try_get(0)?,
                label_fr: row.try_get(1)?,
                label_en: row.try_get(2)?,
                value: row.try_get(3)?,
                unit: row.try_get(4)?,
                approximate: row.try_get::<i64, _>(5)? != 0,
                source: row.try_get(6)?,
            })
        })
        .collect::<DbResult<Vec<_>>>()?;
        Ok(StoredProgramme { header, instruments, kpis })
    }

    /// Records a payment on a selected application's grant, on the line its decision committed:
    /// never more than the grant, never twice with one reference.
    pub async fn record_payment(
        &self,
        payment: &NewPayment<'_>,
        actor: &str,
    ) -> DbResult<Result<PaymentRow, PaymentRefused>> {
        let mut tx = self.write_tx().await?;
        // The decision's row, locked on PostgreSQL: two payments of one grant are summed in turn.
        let lock = if self.backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        let decision = sqlx::query(&format!(
            "SELECT amount_cents, budget_line FROM call_decisions WHERE application_id = $1 AND selected = 1{lock}"
        ))
        .bind(payment.application_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(decision) = decision else {
            return Ok(Err(PaymentRefused::NotGranted));
        };
        let granted: i64 = decision.try_get(0)?;
        let line: Option<String> = decision.try_get(1)?;
        let Some(line) = line else {
            return Ok(Err(PaymentRefused::NotGranted));
        };
        let paid: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM payments WHERE application_id = $1",
        )
        .bind(payment.application_id)
        .fetch_one(&mut *tx)
        .await?;
        if paid.saturating_add(payment.amount_cents) > granted {
            return Ok(Err(PaymentRefused::OverGrant { granted_cents: granted, paid_cents: paid }));
        }
        let taken = sqlx::query("SELECT 1 FROM payments WHERE reference = $1")
            .bind(payment.reference)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(Err(PaymentRefused::DuplicateReference));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO payments (application_id, budget_line, amount_cents, paid_on, reference, recorded_by, \
               recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PAYMENT_COLUMNS}"
        ))
        .bind(payment.application_id)
        .bind(&line)
        .bind(payment.amount_cents)
        .bind(payment.paid_on)
        .bind(payment.reference)
        .bind(actor)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await;
        // Two payments of one reference on two grants at once: the unique index refuses the second.
        let row = match row {
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                return Ok(Err(PaymentRefused::DuplicateReference));
            }
            row => payment_from(&row?)?,
        };
        let detail = format!(
            "application {}: {} cents paid on {} ({}), reference {}",
            row.application_id, row.amount_cents, row.paid_on, row.budget_line, row.reference
        );
        let object = format!("payment:{}", row.id);
        let entry = AuditEntry { actor, action: "payment.record", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(Ok(row))
    }

    /// Payments, newest first; of one line when `line` is given.
    pub async fn payments(&self, line: Option<&str>) -> DbResult<Vec<PaymentRow>> {
        let filter = if line.is_some() { "WHERE budget_line = $1" } else { "" };
        let query = format!("SELECT {PAYMENT_COLUMNS} FROM payments {filter} ORDER BY paid_on DESC, id DESC");
        let mut query = sqlx::query(&query);
        if let Some(line) = line {
            query = query.bind(line);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(payment_from).collect()
    }

    /// The selected decisions behind the committed figures, with what was paid on each; of one
    /// line when `line` is given.
    pub async fn commitments(&self, line: Option<&str>) -> DbResult<Vec<CommitmentRow>> {
        let filter = if line.is_some() { "AND d.budget_line = $1" } else { "" };
        let query = format!(
            "SELECT d.application_id, d.call_id, c.name, a.title, a.organisation, d.amount_cents, \
               CAST((SELECT COALESCE(SUM(p.amount_cents), 0) FROM payments p \
                     WHERE p.application_id = d.application_id) AS BIGINT), d.project_id, d.decided_at \
             FROM call_decisions d JOIN calls c ON c.id = d.call_id JOIN applications a ON a.id = d.application_id \
             WHERE d.selected = 1 {filter} ORDER BY d.decided_at DESC, d.application_id"
        );
        let mut query = sqlx::query(&query);
        if let Some(line) = line {
            query = query.bind(line);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(CommitmentRow {
                    application_id: row.try_get(0)?,
                    call_id: row.try_get(1)?,
                    call_name: row.try_get(2)?,
                    title: row.try_get(3)?,
                    organisation: row.try_get(4)?,
                    amount_cents: row.try_get(5)?,
                    paid_cents: row.try_get(6)?,
                    project_id: row.try_get(7)?,
                    decided_at: row.try_get(8)?,
                })
            })
            .collect()
    }

    /// What each month added: commitments (by decision date), payments (by payment date) and
    /// GPU time used (by the end of each run), in UTC months.
    pub async fn programme_months(&self) -> DbResult<BTreeMap<String, MonthFigures>> {
        let mut months: BTreeMap<String, MonthFigures> = BTreeMap::new();
        for row in sqlx::query("SELECT decided_at, amount_cents FROM call_decisions WHERE selected = 1")
            .fetch_all(&self.pool)
            .await?
        {
            let month = month_of_ms(row.try_get(0)?);
            months.entry(month).or_default().committed_cents += row.try_get::<i64, _>(1)?;
        }
        for row in sqlx::query("SELECT paid_on, amount_cents FROM payments").fetch_all(&self.pool).await? {
            let paid_on: String = row.try_get(0)?;
            let month = paid_on.get(..7).unwrap_or_default().to_owned();
            months.entry(month).or_default().disbursed_cents += row.try_get::<i64, _>(1)?;
        }
        // Summed by the database per day, then folded into months here: one row per day of use.
        for row in sqlx::query(
            "SELECT at / 86400000, CAST(SUM(gpu_ms) AS BIGINT) FROM usage_records WHERE gpu_ms > 0 \
             GROUP BY at / 86400000",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let day: i64 = row.try_get(0)?;
            months.entry(month_of_ms(day * 86_400_000)).or_default().gpu_ms += row.try_get::<i64, _>(1)?;
        }
        Ok(months)
    }

    /// The platform's own figures: what every module's records add up to.
    pub async fn platform_figures(&self) -> DbResult<PlatformFigures> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM projects), \
               CAST((SELECT COALESCE(SUM(gpu_hours), 0) FROM projects) AS BIGINT), \
               CAST((SELECT COALESCE(SUM(used_gpu_ms), 0) FROM projects) AS BIGINT), \
               CAST((SELECT COALESCE(SUM(used_cpu_ms), 0) FROM projects) AS BIGINT), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'completed'), \
               (SELECT COUNT(*) FROM datasets WHERE public = 1), \
               (SELECT COUNT(*) FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.public = 1), \
               (SELECT COUNT(*) FROM models WHERE public = 1), \
               (SELECT COUNT(*) FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.public = 1), \
               (SELECT COUNT(*) FROM challenges), \
               (SELECT COUNT(*) FROM challenge_teams WHERE baseline = 0 AND merged_into IS NULL), \
               (SELECT COUNT(*) FROM challenge_submissions), \
               (SELECT COUNT(*) FROM calls), \
               (SELECT COUNT(*) FROM applications), \
               (SELECT COUNT(*) FROM call_decisions WHERE selected = 1), \
               (SELECT COUNT(*) FROM gateway_usage WHERE status LIKE 'ok%'), \
               CAST((SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM gateway_usage \
                     WHERE status LIKE 'ok%') AS BIGINT), \
               CAST((SELECT COALESCE(SUM(enrolled), 0) FROM centre_trainings) AS BIGINT)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(PlatformFigures {
            projects: row.try_get(0)?,
            gpu_hours_allocated: row.try_get(1)?,
            gpu_ms_used: row.try_get(2)?,
            cpu_ms_used: row.try_get(3)?,
            jobs_completed: row.try_get(4)?,
            public_datasets: row.try_get(5)?,
            dataset_versions: row.try_get(6)?,
            models: row.try_get(7)?,
            model_versions: row.try_get(8)?,
            challenges: row.try_get(9)?,
            teams: row.try_get(10)?,
            submissions: row.try_get(11)?,
            calls: row.try_get(12)?,
            applications: row.try_get(13)?,
            selected: row.try_get(14)?,
            gateway_requests: row.try_get(15)?,
            gateway_tokens: row.try_get(16)?,
            specialists_trained: row.try_get(17)?,
            booster: self.booster_totals().await?,
        })
    }
}

/// `YYYY-MM` of a UTC time in milliseconds.
fn month_of_ms(ms: i64) -> String {
    grappe_domain::calendar::iso_date(ms)[..7].to_owned()
}
