//! The model registry: models (owning project, visibility, card) and their versions, numbered
//! per model, each with its lineage: the job that made it, its base version, the dataset
//! versions the job read, the compute charged to the job and its last metrics. The files are in
//! the store, named by the store's version id.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::datasets::visible_in;
use crate::{Db, DbResult, conflict_as, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub id: i64,
    pub name: String,
    pub project_id: i64,
    pub public: bool,
    pub card: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersionRow {
    pub id: i64,
    pub model_id: i64,
    /// 1 for the first version of the model, then 2, 3...
    pub seq: i64,
    pub job_id: Option<i64>,
    /// The base version's model name and number.
    pub base: Option<(String, i64)>,
    /// The job's inputs, as its `inputs` column: a JSON array of `{"dataset", "version"}`.
    pub inputs: String,
    /// The job's last value of each metric, as a JSON object.
    pub metrics: String,
    pub cpu_ms: i64,
    pub gpu_ms: i64,
    /// The store's version id of the files.
    pub store_version: String,
    pub files: i64,
    pub size_bytes: i64,
    pub card: String,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

pub struct NewModel<'a> {
    pub name: &'a str,
    pub project_id: i64,
    pub public: bool,
    pub card: &'a str,
    pub created_by: Option<i64>,
}

pub struct NewModelVersion<'a> {
    pub job_id: Option<i64>,
    /// The base version's row id.
    pub base_version_id: Option<i64>,
    pub inputs: &'a str,
    pub metrics: &'a str,
    pub cpu_ms: i64,
    pub gpu_ms: i64,
    pub store_version: &'a str,
    pub files: i64,
    pub size_bytes: i64,
    pub card: &'a str,
    pub created_by: Option<i64>,
}

const MODEL_COLUMNS: &str = "id, name, project_id, public, card, created_by, created_at";
const VERSION_COLUMNS: &str = "v.id, v.model_id, v.seq, v.job_id, b.name, bv.seq, v.inputs, v.metrics, v.cpu_ms, \
                               v.gpu_ms, v.store_version, v.files, v.size_bytes, v.card, v.created_by, v.created_at";
/// Versions with their base's model name and number.
const VERSION_FROM: &str = "model_versions v LEFT JOIN model_versions bv ON bv.id = v.base_version_id \
                            LEFT JOIN models b ON b.id = bv.model_id";

fn model_from(row: &AnyRow) -> DbResult<ModelRow> {
    Ok(ModelRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        project_id: row.try_get(2)?,
        public: row.try_get::<i64, _>(3)? != 0,
        card: row.try_get(4)?,
        created_by: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

fn version_from(row: &AnyRow) -> DbResult<ModelVersionRow> {
    let base_name: Option<String> = row.try_get(4)?;
    let base_seq: Option<i64> = row.try_get(5)?;
    Ok(ModelVersionRow {
        id: row.try_get(0)?,
        model_id: row.try_get(1)?,
        seq: row.try_get(2)?,
        job_id: row.try_get(3)?,
        base: base_name.zip(base_seq),
        inputs: row.try_get(6)?,
        metrics: row.try_get(7)?,
        cpu_ms: row.try_get(8)?,
        gpu_ms: row.try_get(9)?,
        store_version: row.try_get(10)?,
        files: row.try_get(11)?,
        size_bytes: row.try_get(12)?,
        card: row.try_get(13)?,
        created_by: row.try_get(14)?,
        created_at: row.try_get(15)?,
    })
}

impl Db {
    pub async fn create_model(&self, model: &NewModel<'_>, actor: &str) -> DbResult<ModelRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO models (name, project_id, public, card, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {MODEL_COLUMNS}"
        ))
        .bind(model.name)
        .bind(model.project_id)
        .bind(i64::from(model.public))
        .bind(model.card)
        .bind(model.created_by)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a model with this name"))?;
        let created = model_from(&row)?;
        let detail = format!("{} project:{}", if model.public { "public" } else { "private" }, model.project_id);
        let object = format!("model:{}", created.name);
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "model.create", object: &object, detail: &detail },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn model(&self, name: &str) -> DbResult<Option<ModelRow>> {
        let row = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(model_from).transpose()
    }

    /// Public models and those of `projects` (every one with `None`), by name, at most `limit`.
    pub async fn list_models(&self, projects: Option<&[i64]>, limit: i64) -> DbResult<Vec<ModelRow>> {
        let visible = visible_in(projects);
        let rows = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE {visible} ORDER BY name LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(model_from).collect()
    }

    /// A model's versions, newest first.
    pub async fn model_versions(&self, model_id: i64) -> DbResult<Vec<ModelVersionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.model_id = $1 ORDER BY v.seq DESC"
        ))
        .bind(model_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from).collect()
    }

    /// A version by its row id, with its model.
    pub async fn model_version_by_id(&self, id: i64) -> DbResult<Option<(ModelRow, ModelVersionRow)>> {
        let row = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(version) = row.as_ref().map(version_from).transpose()? else {
            return Ok(None);
        };
        let model = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM models WHERE id = $1"))
            .bind(version.model_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Some((model_from(&model)?, version)))
    }

    /// Adds the model's next version, audited in the same transaction.
    pub async fn add_model_version(
        &self,
        model: &ModelRow,
        version: &NewModelVersion<'_>,
        actor: &str,
    ) -> DbResult<ModelVersionRow> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO model_versions (model_id, seq, job_id, base_version_id, inputs, metrics, cpu_ms, gpu_ms, \
             store_version, files, size_bytes, card, created_by, created_at) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM model_versions WHERE model_id = $1), \
             $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(model.id)
        .bind(version.job_id)
        .bind(version.base_version_id)
        .bind(version.inputs)
        .bind(version.metrics)
        .bind(version.cpu_ms)
        .bind(version.gpu_ms)
        .bind(version.store_version)
        .bind(version.files)
        .bind(version.size_bytes)
        .bind(version.card)
        .bind(version.created_by)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let row = sqlx::query(&format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let added = version_from(&row)?;
        let object = format!("model:{}", model.name);
        let detail = format!(
            "version {} from job {} ({}), {} files, {} bytes",
            added.seq,
            version.job_id.map_or_else(|| "none".to_owned(), |id| id.to_string()),
            version.store_version,
            version.files,
            version.size_bytes
        );
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "model.register", object: &object, detail: &detail },
        )
        .await?;
        tx.commit().await?;
        Ok(added)
    }

    /// What a project holds against its storage allocation, in bytes: its datasets' latest
    /// versions and every version of its models.
    pub async fn project_stored_bytes(&self, project_id: i64) -> DbResult<i64> {
        let row = sqlx::query(
            "SELECT CAST((SELECT COALESCE(SUM(latest_bytes), 0) FROM datasets WHERE project_id = $1) \
             + (SELECT COALESCE(SUM(v.size_bytes), 0) FROM model_versions v JOIN models m ON m.id = v.model_id \
             WHERE m.project_id = $1) \
             + (SELECT COALESCE(SUM(bytes), 0) FROM gateway_files WHERE project_id = $1) AS BIGINT)",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// What a job was charged over all its runs: (CPU-ms, GPU-ms).
    pub async fn job_charged_ms(&self, job_id: i64) -> DbResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(cpu_ms), 0) AS BIGINT), CAST(COALESCE(SUM(gpu_ms), 0) AS BIGINT) \
             FROM usage_records WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The last value (highest step, then latest) of each of a job's first `limit` metric keys.
    pub async fn job_last_metrics(&self, job_id: i64, limit: i64) -> DbResult<Vec<(String, f64)>> {
        let rows = sqlx::query(
            "SELECT m.key, m.value FROM job_metrics m WHERE m.job_id = $1 AND m.id = \
             (SELECT l.id FROM job_metrics l WHERE l.job_id = $1 AND l.key = m.key ORDER BY l.step DESC, l.id DESC \
             LIMIT 1) ORDER BY m.key LIMIT $2",
        )
        .bind(job_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }
}
