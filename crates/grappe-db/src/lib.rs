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

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

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
    NewProject, NewRun, ProjectRow, QueueFull, QueueQuota, Requeued, RunRef, UsageRecord,
};
pub use datasets::{DatasetFilter, DatasetRow, DatasetVersionRow, NewDataset, NewDatasetVersion, Published};
pub use fine_tunes::{FineTuneEnd, FineTuneRow, NewFineTune};
pub use gateway::{
    Ask, Counted, GatewayBatchRow, GatewayFileRow, GatewayKeyRow, GatewayLimits, GatewayModelRow, GatewayUsageRow,
    NewGatewayKey, NewGatewayModel, Refused, ServingMeasure, Settlement, WINDOW_MS,
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
    #[error("unsupported database URL scheme `{0}`: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

impl DbError {
    /// No connection could be had within the pool's acquire timeout: the database is overloaded
    /// or unreachable, and the request may be retried.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Sql(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
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

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// The key of the audit chain's links, kept outside the database ([`Db::with_audit_key`]).
    audit_key: Option<std::sync::Arc<[u8]>>,
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
            .after_connect(move |connection, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL with FULL sync: a committed transaction survives a crash of the
                        // process or of the machine. Foreign keys are off by default in SQLite.
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let db = Db { pool, backend, audit_key: None };
        migrate::run(&db).await?;
        Ok(db)
    }

    /// A transaction for writing. On SQLite it takes the write lock at `BEGIN` (IMMEDIATE): a
    /// deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
    /// another connection wrote in between, where an immediate one waits its turn.
    pub(crate) async fn write_tx(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
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
