//! The open data commons' catalogue: datasets (owner, visibility, the card's headline fields)
//! and their published versions. The bytes live in the store; a version is published when its
//! row is written here, after the store has committed it.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbResult, conflict_as, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRow {
    pub id: i64,
    pub name: String,
    /// The owning project (its members push); `None`: the programme's own (administrators).
    pub project_id: Option<i64>,
    pub public: bool,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub title: String,
    pub licence: String,
    pub languages: Vec<String>,
    pub tasks: Vec<String>,
    pub latest_version: Option<String>,
    /// The latest version's size in bytes.
    pub latest_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetVersionRow {
    pub dataset_id: i64,
    /// The version id (hex BLAKE3 of its canonical manifest).
    pub version: String,
    /// 1 for the first version of the dataset, then 2, 3...
    pub seq: i64,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub files: i64,
    pub size_bytes: i64,
    /// What validation found, as JSON.
    pub report: String,
    /// Its first files, as JSON (see [`NewDatasetVersion::listing`]).
    pub listing: String,
}

pub struct NewDataset<'a> {
    pub name: &'a str,
    pub project_id: Option<i64>,
    pub public: bool,
    pub created_by: Option<i64>,
}

/// A version to publish, with the card's headline fields that the catalogue filters on.
pub struct NewDatasetVersion<'a> {
    pub version: &'a str,
    pub files: i64,
    pub size_bytes: i64,
    pub report: &'a str,
    /// Its first files: a JSON array of `{"path", "size_bytes", "media_type", "digest"}`.
    pub listing: &'a str,
    pub created_by: Option<i64>,
    pub title: &'a str,
    pub licence: &'a str,
    pub languages: &'a [String],
    pub tasks: &'a [String],
}

/// What the catalogue is searched by; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct DatasetFilter<'a> {
    /// Words found in the name or the title.
    pub text: &'a str,
    pub licence: &'a str,
    pub language: &'a str,
    pub task: &'a str,
}

/// Whether a version was added by [`Db::publish_dataset_version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    New(DatasetVersionRow),
    /// The dataset's latest version already was this one: nothing changed.
    Unchanged(DatasetVersionRow),
}

/// Digests per statement (well under SQLite's 32,766 parameters and PostgreSQL's 65,535).
const CHUNK_BATCH: usize = 1000;

const DATASET_COLUMNS: &str = "id, name, project_id, public, created_by, created_at, updated_at, title, licence, \
                               languages, tasks, latest_version, latest_bytes";
const VERSION_COLUMNS: &str = "dataset_id, version, seq, created_by, created_at, files, size_bytes, report, listing";

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

/// ` a b ` from `[a, b]`: stored with a space at each end so that `LIKE '% a %'` finds a code.
fn spaced(codes: &[String]) -> String {
    if codes.is_empty() { String::new() } else { format!(" {} ", codes.join(" ")) }
}

fn dataset_from(row: &AnyRow) -> DbResult<DatasetRow> {
    Ok(DatasetRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        project_id: row.try_get(2)?,
        public: row.try_get::<i64, _>(3)? != 0,
        created_by: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
        title: row.try_get(7)?,
        licence: row.try_get(8)?,
        languages: words(&row.try_get::<String, _>(9)?),
        tasks: words(&row.try_get::<String, _>(10)?),
        latest_version: row.try_get(11)?,
        latest_bytes: row.try_get(12)?,
    })
}

fn version_from(row: &AnyRow) -> DbResult<DatasetVersionRow> {
    Ok(DatasetVersionRow {
        dataset_id: row.try_get(0)?,
        version: row.try_get(1)?,
        seq: row.try_get(2)?,
        created_by: row.try_get(3)?,
        created_at: row.try_get(4)?,
        files: row.try_get(5)?,
        size_bytes: row.try_get(6)?,
        report: row.try_get(7)?,
        listing: row.try_get(8)?,
    })
}

/// The SQL condition on a table with `public` and `project_id` columns: public rows and those of
/// `projects` (every row with `None`).
pub(crate) fn visible_in(projects: Option<&[i64]>) -> String {
    match projects {
        None => "1 = 1".to_owned(),
        Some([]) => "public = 1".to_owned(),
        Some(ids) => {
            format!("(public = 1 OR project_id IN ({}))", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
        }
    }
}

/// `%text%` for LIKE, with the wildcards of `text` escaped (`\` is the escape character).
fn like_containing(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Db {
    pub async fn create_dataset(&self, dataset: &NewDataset<'_>, actor: &str) -> DbResult<DatasetRow> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO datasets (name, project_id, public, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {DATASET_COLUMNS}"
        ))
        .bind(dataset.name)
        .bind(dataset.project_id)
        .bind(i64::from(dataset.public))
        .bind(dataset.created_by)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a dataset with this name"))?;
        let created = dataset_from(&row)?;
        let detail = format!(
            "{} {}",
            if dataset.public { "public" } else { "private" },
            dataset.project_id.map_or_else(|| "programme".to_owned(), |id| format!("project:{id}"))
        );
        let object = format!("dataset:{}", created.name);
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "dataset.create", object: &object, detail: &detail },
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    pub async fn dataset_by_id(&self, id: i64) -> DbResult<Option<DatasetRow>> {
        let row = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(dataset_from).transpose()
    }

    pub async fn dataset(&self, name: &str) -> DbResult<Option<DatasetRow>> {
        let row = sqlx::query(&format!("SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(dataset_from).transpose()
    }

    /// The datasets that match `filter`, public ones and those of `projects` (every one with
    /// `None`), by name, at most `limit`.
    pub async fn list_datasets(
        &self,
        projects: Option<&[i64]>,
        filter: &DatasetFilter<'_>,
        limit: i64,
    ) -> DbResult<Vec<DatasetRow>> {
        let visible = visible_in(projects);
        let rows = sqlx::query(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE {visible} AND latest_version IS NOT NULL \
             AND ($1 = '' OR LOWER(name) LIKE LOWER($2) ESCAPE '\\' OR LOWER(title) LIKE LOWER($2) ESCAPE '\\') \
             AND ($3 = '' OR licence = $3) \
             AND ($4 = '' OR languages LIKE $5) \
             AND ($6 = '' OR tasks LIKE $7) \
             ORDER BY name LIMIT $8"
        ))
        .bind(filter.text)
        .bind(like_containing(filter.text))
        .bind(filter.licence)
        .bind(filter.language)
        .bind(like_containing(&format!(" {} ", filter.language)))
        .bind(filter.task)
        .bind(like_containing(&format!(" {} ", filter.task)))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(dataset_from).collect()
    }

    /// Publishes a version the store has committed: a no-op if it is already the latest. The
    /// history is of publications, as the store's refs: a version pushed again after another
    /// becomes the latest again, with a new number.
    pub async fn publish_dataset_version(
        &self,
        dataset: &DatasetRow,
        version: &NewDatasetVersion<'_>,
        actor: &str,
    ) -> DbResult<Published> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        // The dataset's row first: it serialises concurrent publications (PostgreSQL; SQLite's
        // write lock covers all).
        let latest: Option<String> =
            sqlx::query("UPDATE datasets SET updated_at = updated_at WHERE id = $1 RETURNING latest_version")
                .bind(dataset.id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if latest.as_deref() == Some(version.version) {
            let row = sqlx::query(&format!(
                "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = $1 AND version = $2 \
                 ORDER BY seq DESC LIMIT 1"
            ))
            .bind(dataset.id)
            .bind(version.version)
            .fetch_one(&mut *tx)
            .await?;
            return Ok(Published::Unchanged(version_from(&row)?));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO dataset_versions (dataset_id, version, seq, created_by, created_at, files, size_bytes, report, \
             listing) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM dataset_versions WHERE dataset_id = $1), \
             $3, $4, $5, $6, $7, $8) RETURNING {VERSION_COLUMNS}"
        ))
        .bind(dataset.id)
        .bind(version.version)
        .bind(version.created_by)
        .bind(now)
        .bind(version.files)
        .bind(version.size_bytes)
        .bind(version.report)
        .bind(version.listing)
        .fetch_one(&mut *tx)
        .await?;
        let published = version_from(&row)?;
        sqlx::query(
            "UPDATE datasets SET latest_version = $2, updated_at = $3, title = $4, licence = $5, languages = $6, \
             tasks = $7, latest_bytes = $8 WHERE id = $1",
        )
        .bind(dataset.id)
        .bind(version.version)
        .bind(now)
        .bind(version.title)
        .bind(version.licence)
        .bind(spaced(version.languages))
        .bind(spaced(version.tasks))
        .bind(version.size_bytes)
        .execute(&mut *tx)
        .await?;
        let object = format!("dataset:{}", dataset.name);
        let detail = format!(
            "version {} ({}), {} files, {} bytes",
            published.seq, version.version, version.files, version.size_bytes
        );
        audit::append(
            &mut tx,
            self.audit_key(),
            &AuditEntry { actor, action: "dataset.publish", object: &object, detail: &detail },
        )
        .await?;
        tx.commit().await?;
        Ok(Published::New(published))
    }

    /// Records that `project` (0: anyone, for public versions) may use these chunks.
    pub async fn add_dataset_chunks(&self, project: i64, digests: &[String]) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        for batch in digests.chunks(CHUNK_BATCH) {
            let values: Vec<String> = (0..batch.len()).map(|i| format!("($1, ${})", i + 2)).collect();
            let sql = format!(
                "INSERT INTO dataset_chunks (project_id, digest) VALUES {} ON CONFLICT DO NOTHING",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(project);
            for digest in batch {
                query = query.bind(digest.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Which of `digests` any of `projects` may use.
    pub async fn known_dataset_chunks(&self, projects: &[i64], digests: &[String]) -> DbResult<Vec<String>> {
        let mut known = Vec::new();
        let projects = projects.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        for batch in digests.chunks(CHUNK_BATCH) {
            let places: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 1)).collect();
            let sql = format!(
                "SELECT DISTINCT digest FROM dataset_chunks WHERE project_id IN ({projects}) AND digest IN ({})",
                places.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for digest in batch {
                query = query.bind(digest.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                known.push(row.try_get(0)?);
            }
        }
        Ok(known)
    }

    /// A dataset's versions, newest first.
    pub async fn dataset_versions(&self, dataset_id: i64) -> DbResult<Vec<DatasetVersionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = $1 ORDER BY seq DESC"
        ))
        .bind(dataset_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from).collect()
    }
}
