//! The programme's instruments, budget lines and headline figures.

use grappe_domain::programme::{Instrument, Kpi};
use sqlx::Row;

use crate::{Db, DbResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBudgetLine {
    pub code: String,
    pub label_fr: String,
    pub label_en: String,
    pub envelope_cents: i64,
    pub committed_cents: i64,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredProgramme {
    pub instruments: Vec<StoredInstrument>,
    pub kpis: Vec<StoredKpi>,
}

impl Db {
    /// Loads instruments and figures, updating those already there by code; the committed and
    /// disbursed amounts, which decisions move, are left as they are.
    pub async fn load_programme(&self, instruments: &[Instrument], kpis: &[Kpi]) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        for (position, instrument) in instruments.iter().enumerate() {
            let row = sqlx::query(
                "INSERT INTO instruments (code, position, name_fr, name_en, summary_fr, summary_en, module) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (code) DO UPDATE SET position = excluded.position, name_fr = excluded.name_fr, \
                   name_en = excluded.name_en, summary_fr = excluded.summary_fr, \
                   summary_en = excluded.summary_en, module = excluded.module \
                 RETURNING id",
            )
            .bind(instrument.code)
            .bind(position as i64)
            .bind(instrument.name_fr)
            .bind(instrument.name_en)
            .bind(instrument.summary_fr)
            .bind(instrument.summary_en)
            .bind(instrument.module.path())
            .fetch_one(&mut *tx)
            .await?;
            let instrument_id: i64 = row.try_get(0)?;
            for (line_position, line) in instrument.budget_lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO budget_lines (instrument_id, code, position, label_fr, label_en, envelope_cents) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (code) DO UPDATE SET instrument_id = excluded.instrument_id, \
                       position = excluded.position, label_fr = excluded.label_fr, \
                       label_en = excluded.label_en, envelope_cents = excluded.envelope_cents",
                )
                .bind(instrument_id)
                .bind(line.code)
                .bind(line_position as i64)
                .bind(line.label_fr)
                .bind(line.label_en)
                .bind(line.envelope.get())
                .execute(&mut *tx)
                .await?;
            }
        }
        for (position, kpi) in kpis.iter().enumerate() {
            sqlx::query(
                "INSERT INTO kpis (code, position, label_fr, label_en, value, unit, approximate) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (code) DO UPDATE SET position = excluded.position, label_fr = excluded.label_fr, \
                   label_en = excluded.label_en, value = excluded.value, unit = excluded.unit, \
                   approximate = excluded.approximate",
            )
            .bind(kpi.code)
            .bind(position as i64)
            .bind(kpi.label_fr)
            .bind(kpi.label_en)
            .bind(kpi.value)
            .bind(kpi.unit)
            .bind(i64::from(kpi.approximate))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn programme(&self) -> DbResult<StoredProgramme> {
        let instrument_rows = sqlx::query(
            "SELECT id, code, name_fr, name_en, summary_fr, summary_en, module FROM instruments ORDER BY position, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let line_rows = sqlx::query(
            "SELECT instrument_id, code, label_fr, label_en, envelope_cents, committed_cents, disbursed_cents \
             FROM budget_lines ORDER BY instrument_id, position, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut instruments = Vec::with_capacity(instrument_rows.len());
        for row in &instrument_rows {
            let id: i64 = row.try_get("id")?;
            let mut budget_lines = Vec::new();
            for line in line_rows.iter().filter(|line| line.try_get::<i64, _>("instrument_id").ok() == Some(id)) {
                budget_lines.push(StoredBudgetLine {
                    code: line.try_get("code")?,
                    label_fr: line.try_get("label_fr")?,
                    label_en: line.try_get("label_en")?,
                    envelope_cents: line.try_get("envelope_cents")?,
                    committed_cents: line.try_get("committed_cents")?,
                    disbursed_cents: line.try_get("disbursed_cents")?,
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
        let kpis = sqlx::query("SELECT code, label_fr, label_en, value, unit, approximate FROM kpis ORDER BY position")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(StoredKpi {
                    code: row.try_get("code")?,
                    label_fr: row.try_get("label_fr")?,
                    label_en: row.try_get("label_en")?,
                    value: row.try_get("value")?,
                    unit: row.try_get("unit")?,
                    approximate: row.try_get::<i64, _>("approximate")? != 0,
                })
            })
            .collect::<DbResult<Vec<_>>>()?;
        Ok(StoredProgramme { instruments, kpis })
    }
}
