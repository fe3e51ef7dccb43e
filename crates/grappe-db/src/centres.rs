//! The IA-cluster centres: the applications an `ia_cluster` call selected, with the public
//! profile their coordinators keep and their training offer year by year.

use grappe_domain::centre::{Profile, Training};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbResult, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentreRow {
    /// The selected application's id: the centre's id.
    pub id: i64,
    pub call_name: String,
    pub organisation: String,
    pub title: String,
    /// The compute project the decision made; its coordinators keep the profile.
    pub project_id: Option<i64>,
    pub profile: Profile,
    /// Students enrolled, all programmes and years together.
    pub enrolled: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingRow {
    pub centre_id: i64,
    pub training: Training,
}

const CENTRE_QUERY: &str = "SELECT a.id, c.name, a.organisation, a.title, d.project_id, \
       p.city, p.summary_fr, p.summary_en, p.partners, p.themes, a.partners, a.keywords, \
       CAST((SELECT COALESCE(SUM(t.enrolled), 0) FROM centre_trainings t WHERE t.application_id = a.id) AS BIGINT) \
     FROM call_decisions d JOIN calls c ON c.id = d.call_id JOIN applications a ON a.id = d.application_id \
       LEFT JOIN centres p ON p.application_id = a.id \
     WHERE d.selected = 1 AND c.instrument = 'ia_cluster'";

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).filter(|line| !line.is_empty()).collect()
}

fn centre_from(row: &AnyRow) -> DbResult<CentreRow> {
    let city: Option<String> = row.try_get(5)?;
    // Until its coordinators write a profile, a centre shows its application's partners and
    // keywords.
    let profile = match city {
        Some(city) => Profile {
            city,
            summary_fr: row.try_get(6)?,
            summary_en: row.try_get(7)?,
            partners: lines(&row.try_get::<String, _>(8)?),
            themes: lines(&row.try_get::<String, _>(9)?),
        },
        None => Profile {
            partners: serde_json::from_str(&row.try_get::<String, _>(10)?).unwrap_or_default(),
            themes: serde_json::from_str(&row.try_get::<String, _>(11)?).unwrap_or_default(),
            ..Profile::default()
        },
    };
    Ok(CentreRow {
        id: row.try_get(0)?,
        call_name: row.try_get(1)?,
        organisation: row.try_get(2)?,
        title: row.try_get(3)?,
        project_id: row.try_get(4)?,
        profile,
        enrolled: row.try_get(12)?,
    })
}

fn training_from(row: &AnyRow) -> DbResult<TrainingRow> {
    let level: String = row.try_get(1)?;
    Ok(TrainingRow {
        centre_id: row.try_get(0)?,
        training: Training {
            level: level.parse().map_err(|_| crate::DbError::Corrupt(format!("training level `{level}`")))?,
            title: row.try_get(2)?,
            year: row.try_get(3)?,
            places: row.try_get(4)?,
            enrolled: row.try_get(5)?,
        },
    })
}

impl Db {
    /// Every centre, by organisation.
    pub async fn centres(&self) -> DbResult<Vec<CentreRow>> {
        let rows = sqlx::query(&format!("{CENTRE_QUERY} ORDER BY a.organisation, a.id")).fetch_all(&self.pool).await?;
        rows.iter().map(centre_from).collect()
    }

    pub async fn centre(&self, id: i64) -> DbResult<Option<CentreRow>> {
        let row = sqlx::query(&format!("{CENTRE_QUERY} AND a.id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(centre_from).transpose()
    }

    /// Writes a centre's profile (the caller checked that `id` is a centre and who may).
    pub async fn save_centre_profile(&self, id: i64, profile: &Profile, actor: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO centres (application_id, city, summary_fr, summary_en, partners, themes, updated_by, \
               updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (application_id) DO UPDATE SET city = excluded.city, summary_fr = excluded.summary_fr, \
               summary_en = excluded.summary_en, partners = excluded.partners, themes = excluded.themes, \
               updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(&profile.city)
        .bind(&profile.summary_fr)
        .bind(&profile.summary_en)
        .bind(profile.partners.join("\n"))
        .bind(profile.themes.join("\n"))
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let object = format!("centre:{id}");
        let detail =
            format!("profile: {}, {} partners, {} themes", profile.city, profile.partners.len(), profile.themes.len());
        let entry = AuditEntry { actor, action: "centre.profile", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a training of a centre in a year, or its new figures if it is there already.
    pub async fn save_training(&self, id: i64, training: &Training, actor: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO centre_trainings (application_id, level, title, year, places, enrolled) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (application_id, level, title, year) DO UPDATE SET places = excluded.places, \
               enrolled = excluded.enrolled",
        )
        .bind(id)
        .bind(training.level.as_str())
        .bind(&training.title)
        .bind(training.year)
        .bind(training.places)
        .bind(training.enrolled)
        .execute(&mut *tx)
        .await?;
        let object = format!("centre:{id}");
        let detail = format!(
            "training {} ({}) {}: {} enrolled of {} places",
            training.title,
            training.level.as_str(),
            training.year,
            training.enrolled,
            training.places
        );
        let entry = AuditEntry { actor, action: "centre.training", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The trainings of one centre, or of all; by year (newest first), level and title.
    pub async fn trainings(&self, id: Option<i64>) -> DbResult<Vec<TrainingRow>> {
        let filter = if id.is_some() { "WHERE application_id = $1" } else { "" };
        let query = format!(
            "SELECT application_id, level, title, year, places, enrolled FROM centre_trainings {filter} \
             ORDER BY year DESC, level, title"
        );
        let mut query = sqlx::query(&query);
        if let Some(id) = id {
            query = query.bind(id);
        }
        query.fetch_all(&self.pool).await?.iter().map(training_from).collect()
    }
}
