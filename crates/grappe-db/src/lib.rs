//! Grappe's persistence: one schema, one set of queries, on SQLite (embedded default) or
//! PostgreSQL (scale-out). Every write that a caller is told succeeded has been committed.
//! Queries use `$N` parameters and portable SQL; the only dialect difference, the auto-increment
//! key, is substituted into the migrations at start (`migrate.rs`).

mod accounts;
mod audit;
mod auth;
mod booster;
mod calls;
mod centres;
mod challenges;
mod compute;
mod datasets;
mod fine_tunes;
mod gateway;
mod leases;
mod migrate;
mod models;
mod programme;

use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use accounts::{GrantRow, NewUser, OrganisationRow, UserRow};
pub use audit::{AuditAnchor, AuditEvent, ChainBreak};
pub use auth::ApiTokenRow;
pub use booster::{
    BoosterTotals, CompanyRow, DiagnosticRow, NewCompany, NewDiagnostic, NewOutcome, OutcomeRow, PeerScores, SupportRow,
};
pub use calls::{
    ApplicationFields, ApplicationRow, ApplicationVersionRow, AssignmentRow, CallDates, CallRow, ConflictRow,
    DecisionRefused, DecisionRow, JurorRow, MessageRow, NewCall, NewDecision, NewJuror, NotSaved, ReviewFields,
    ReviewRow, call_takes_applications,
};
pub use centres::{CentreRow, TrainingRow};
pub use challenges::{
    ChallengeRow, DAY_MS, LimitReached, Limits, MemberRow, NewChallenge, NewSubmission, Outcome, Shown, SubmissionRow,
    TeamRow,
};
pub use compute::{
    Cancellation, Ending, JobEvent, JobRow, MetricBucket, MetricCounts, MetricKey, MetricPoint, MetricsAdded, NewJob,
    NewProject, NewRun, ProjectRow, QueueFull, QueueQuota, Requeued, RunChange, RunChanged, RunRef, UsageRecord,
};
pub use datasets::{DatasetFilter, DatasetRow, DatasetVersionRow, NewDataset, NewDatasetVersion, Published};
pub use fine_tunes::{FineTuneEnd, FineTuneRow, NewFineTune};
pub use gateway::{
    Ask, BatchEnd, Counted, GatewayBatchRow, GatewayFileRow, GatewayKeyRow, GatewayLimits, GatewayModelRow,
    GatewayUsageRow, NewGatewayKey, NewGatewayModel, Refused, ServingMeasure, Settlement, Upstream, WINDOW_MS,
};
pub use leases::LeaseRow;
pub use models::{ModelRow, ModelVersionRow, NewModel, NewModelVersion};
pub use programme::{
    CommitmentRow, LoadRefused, LoadSummary, MonthFigures, NewPayment, PaymentRefused, PaymentRow, PlatformFigures,
    ProgrammeHeader, StoredBudgetLine, StoredInstrument, StoredKpi, StoredProgramme,
};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A write that was to be committed with others, whose transaction failed (its cause is
    /// logged once, where it happened).
    #[error("not written: {0}")]
    NotWritten(&'static str),
    #[error("unsupported database URL scheme `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// From the gateway's group writer, which calls SQLite in place (`gateway/writer.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl DbError {
    /// No connection could be had within the pool's acquire timeout: the database is overloaded
    /// or unreachable, and the request may be retried.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Sql(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
            || matches!(self, DbError::Sqlite(error) if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy))
    }
}

pub type DbResult<T> = Result<T, DbError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Pool limits: bounded size and acquire timeout (a request waits at most this long).
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// How long a write transaction waits for the write lock: in the process (SQLite's write
/// permit) and then in SQLite (its busy handler, for other processes).
const WRITE_WAIT: Duration = Duration::from_secs(10);

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's one writer at a time, as a place in a queue: a write transaction takes it before
    /// `BEGIN IMMEDIATE`, so that the process's writers wait their turn in order and are woken
    /// at once, instead of sleeping and retrying in SQLite's busy handler (which is left to
    /// other processes on the same file). None on PostgreSQL, whose writers lock rows.
    writer: Option<Arc<Semaphore>>,
    /// The key of the audit chain's links, kept outside the database ([`Db::with_audit_key`]).
    audit_key: Option<std::sync::Arc<[u8]>>,
    /// What the gateway reads on every request and seldom changes (`gateway.rs`).
    gateway_cache: Arc<gateway::GatewayCache>,
    /// On SQLite, where the gateway's reservations and settlements go to be written in groups
    /// ([`gateway::writer`]).
    gateway_writer: Option<tokio::sync::mpsc::Sender<gateway::writer::GroupWrite>>,
}

/// A write transaction ([`Db::write_tx`]), used as its connection. On SQLite it holds the
/// process's write permit until it ends: committed, or dropped, then rolled back before the
/// permit goes, so that the next writer never finds the lock still held.
pub(crate) struct WriteTx {
    /// Some until committed.
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
    permit: Option<OwnedSemaphorePermit>,
}

impl WriteTx {
    pub(crate) async fn commit(mut self) -> DbResult<()> {
        let tx = self.tx.take().expect("a transaction is there until it is committed");
        tx.commit().await?;
        Ok(())
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.tx.as_ref().expect("a transaction is there until it is committed")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.tx.as_mut().expect("a transaction is there until it is committed")
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        // A transaction dropped before its commit (a refusal, an error) is rolled back; sqlx
        // would only queue its rollback, so the permit is held until the rollback is done.
        if let (Some(tx), Some(permit)) = (self.tx.take(), self.permit.take())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(error) = tx.rollback().await {
                    tracing::warn!(error = %error, "a write transaction could not be rolled back");
                }
                drop(permit);
            });
        }
    }
}

/// A SQLite connection's settings: WAL, commits synced as `synchronous` says, foreign keys
/// (off by default in SQLite), and [`WRITE_WAIT`] for another process's write lock.
fn sqlite_settings(synchronous: &str) -> String {
    format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; \
         PRAGMA busy_timeout = {};",
        WRITE_WAIT.as_millis()
    )
}

impl Db {
    /// Connects, sets the durability pragmas on SQLite, and applies pending migrations.
    pub async fn open(url: &str, config: &PoolConfig) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            // The scheme only: the rest of a URL may hold a password.
            return Err(DbError::UnsupportedUrl(url.split(':').next().unwrap_or("").to_owned()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            // A ping before every acquire finds PostgreSQL connections that the network lost; an
            // embedded SQLite connection cannot be lost, and the ping would cost a round trip to
            // its thread each time.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |connection, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL with FULL sync: a committed transaction survives a crash of the
                        // process or of the machine. Foreign keys are off by default in SQLite.
                        connection.execute(sqlite_settings("FULL").as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await?;
        let writer = (backend == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1)));
        let mut db = Db { pool, backend, writer, audit_key: None, gateway_cache: Arc::default(), gateway_writer: None };
        migrate::run(&db).await?;
        // The gateway's group writer opens the database's file again; an in-memory database has
        // none, and its gateway writes go through sqlx one by one.
        if backend == Backend::Sqlite && !url.contains(":memory:") && !url.contains("mode=memory") {
            let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.get_filename().to_owned();
            db.gateway_writer = Some(gateway::writer::start(db.clone(), &file)?);
        }
        Ok(db)
    }

    /// A transaction for writing. On SQLite it first waits for the process's write permit (at
    /// most [`WRITE_WAIT`], then fails as unavailable), then takes the write lock at `BEGIN`
    /// (IMMEDIATE): a deferred transaction that reads and then writes fails at once with
    /// SQLITE_BUSY when another connection wrote in between, where an immediate one waits its
    /// turn. While it holds the permit, a transaction must not open another (it would wait for
    /// itself): the functions that share a transaction take it as an argument (`..._in`).
    pub(crate) async fn write_tx(&self) -> DbResult<WriteTx> {
        let permit = self.write_permit().await?;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx { tx: Some(tx), permit })
    }

    /// On SQLite, the process's write permit (at most [`WRITE_WAIT`], then unavailable).
    pub(crate) async fn write_permit(&self) -> DbResult<Option<OwnedSemaphorePermit>> {
        match &self.writer {
            Some(writer) => Ok(Some(
                tokio::time::timeout(WRITE_WAIT, writer.clone().acquire_owned())
                    .await
                    .map_err(|_| DbError::Sql(sqlx::Error::PoolTimedOut))?
                    .expect("the write permit's semaphore is never closed"),
            )),
            None => Ok(None),
        }
    }

    /// One statement written alone, through the write permit ([`Db::write_tx`]); the rows it
    /// changed.
    pub(crate) async fn write_one<'q>(
        &self,
        statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> DbResult<u64> {
        let mut tx = self.write_tx().await?;
        let done = statement.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Now, in Unix milliseconds: the one time format stored.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// Maps a unique-constraint violation to [`DbError::Conflict`] with a message for the client.
fn conflict_as(what: &str) -> impl FnOnce(sqlx::Error) -> DbError + '_ {
    move |error| match &error {
        sqlx::Error::Database(db_error) if db_error.is_unique_violation() => DbError::Conflict(what.to_owned()),
        _ => DbError::Sql(error),
    }
}

/// Hex of the SHA-256 of `bytes`: how tokens are stored and how the audit chain links.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// `a, b` as `t.a, t.b`: a list of columns qualified by a table's alias, for joins.
pub(crate) fn qualified(alias: &str, columns: &str) -> String {
    columns.split(", ").map(|column| format!("{alias}.{column}")).collect::<Vec<_>>().join(", ")
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// What the crate's own tests share.
#[cfg(test)]
pub(crate) mod scratch {
    use std::path::PathBuf;

    use crate::{Db, NewProject, PoolConfig};

    /// A fresh SQLite database in a folder of its own, which `close` removes.
    pub struct Scratch {
        pub db: Db,
        dir: PathBuf,
    }

    impl Scratch {
        pub async fn new(label: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("grappe-{label}-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}/{label}.db?mode=rwc", dir.display());
            Scratch { db: Db::open(&url, &PoolConfig::default()).await.unwrap(), dir }
        }

        /// A project of 1 GPU-hour and 1 CPU-hour.
        pub async fn project(&self, name: &str) -> i64 {
            let new = NewProject {
                name,
                gpu_hours: 1,
                cpu_hours: 1,
                storage_gb: 1,
                valid_from: None,
                valid_until: None,
                principal_investigator: None,
            };
            self.db.create_project(&new, "test").await.unwrap().id
        }

        pub async fn close(self) {
            self.db.close().await;
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::scratch::Scratch;

    /// Writers of one process take turns for SQLite's lock, each reading then writing: none fails
    /// and none is lost; one dropped before its commit is rolled back and gives its turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_take_turns_and_a_dropped_transaction_gives_its_turn() {
        let scratch = Scratch::new("writers").await;
        let db = scratch.db.clone();
        sqlx::query("CREATE TABLE counter (n BIGINT NOT NULL)").execute(db.pool()).await.unwrap();
        sqlx::query("INSERT INTO counter (n) VALUES (0)").execute(db.pool()).await.unwrap();
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut tx = db.write_tx().await.unwrap();
                    let n: i64 = sqlx::query_scalar("SELECT n FROM counter").fetch_one(&mut *tx).await.unwrap();
                    sqlx::query("UPDATE counter SET n = $1").bind(n + 1).execute(&mut *tx).await.unwrap();
                    if i % 4 != 0 {
                        tx.commit().await.unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT n FROM counter").fetch_one(db.pool()).await.unwrap();
        assert_eq!(n, 48);
        scratch.close().await;
    }
}
