//! A reservation's and a settlement's statements ([`Db::reserve_on`], [`Db::settle_on`]), written
//! once over [`Ledger`]: a connection that runs a statement with its arguments. sqlx's
//! connection is one (PostgreSQL; SQLite without the group writer); the group writer's, which
//! calls SQLite in place, is another (`writer.rs`). The statements' text is the same on both:
//! `$N` names the N-th argument.
//!
//! [`Db::reserve_on`]: crate::Db::reserve_on
//! [`Db::settle_on`]: crate::Db::settle_on

use std::future::Future;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::{DbError, DbResult};

/// The key's state and limits, and its project's allocation and limits (`Db::reserve_on` reads
/// them by position).
pub(crate) const KEY_AND_PROJECT: &str = "SELECT k.revoked_at, k.requests_per_minute, k.tokens_per_minute, \
     k.requests_per_day, k.tokens_per_day, p.id, p.gpu_hours, p.valid_from, p.valid_until, p.used_gpu_ms, \
     p.reserved_gpu_ms, p.gateway_requests_per_minute, p.gateway_tokens_per_minute, p.gateway_requests_per_day, \
     p.gateway_tokens_per_day FROM gateway_keys k JOIN projects p ON p.id = k.project_id WHERE k.id = $1";
/// Holds `$1` GPU-ms of project `$2`'s allocation if it has them (one row changed) or not (none).
pub(crate) const HOLD: &str = "UPDATE projects SET reserved_gpu_ms = reserved_gpu_ms + $1 \
     WHERE id = $2 AND used_gpu_ms + reserved_gpu_ms + $1 <= gpu_hours * 3600000";
/// Counts a request and its `$7` tokens in four windows: the key's (`$1`, `$2`) and the
/// project's (`$3`, `$4`) minute (`$5`) and day (`$6`); each window's counts.
pub(crate) const COUNT: &str = "INSERT INTO gateway_windows (scope, window_start, requests, tokens) \
     VALUES ($1, $5, 1, $7), ($2, $6, 1, $7), ($3, $5, 1, $7), ($4, $6, 1, $7) \
     ON CONFLICT (scope, window_start) DO UPDATE SET requests = gateway_windows.requests + 1, \
     tokens = gateway_windows.tokens + excluded.tokens RETURNING scope, requests, tokens";
pub(crate) const RESERVATION: &str = "INSERT INTO gateway_reservations \
     (project_id, key_id, gpu_ms, tokens, window_start, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
pub(crate) const TAKE_RESERVATION: &str =
    "DELETE FROM gateway_reservations WHERE id = $1 RETURNING gpu_ms, tokens, window_start";
/// Releases `$1` GPU-ms held and charges `$2` to project `$3`.
pub(crate) const CHARGE: &str =
    "UPDATE projects SET reserved_gpu_ms = reserved_gpu_ms - $1, used_gpu_ms = used_gpu_ms + $2 WHERE id = $3";
/// Gives back `$1` tokens counted but not used to the minute (`$2`, `$3`; from `$6`) and day
/// (`$4`, `$5`; from `$7`) windows of a key and its project.
pub(crate) const UNCOUNT: &str = "UPDATE gateway_windows SET tokens = tokens - $1 \
     WHERE (scope IN ($2, $3) AND window_start = $6) OR (scope IN ($4, $5) AND window_start = $7)";
pub(crate) const USAGE: &str = "INSERT INTO gateway_usage (project_id, key_id, model, endpoint, prompt_tokens, \
     completion_tokens, gpu_ms, status, first_token_ms, duration_ms, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// An argument of a ledger statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(&'a str),
}

/// A cell of a row a ledger statement returns: every column the ledger reads is an integer
/// (perhaps NULL) or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Text(String),
}

impl Cell {
    pub(crate) fn maybe_int(&self) -> DbResult<Option<i64>> {
        match self {
            Cell::Int(value) => Ok(*value),
            Cell::Text(text) => Err(DbError::Corrupt(format!("an integer was expected, not `{text}`"))),
        }
    }

    pub(crate) fn int(&self) -> DbResult<i64> {
        self.maybe_int()?.ok_or_else(|| DbError::Corrupt("an integer was expected, not NULL".into()))
    }

    pub(crate) fn text(&self) -> DbResult<&str> {
        match self {
            Cell::Text(text) => Ok(text),
            Cell::Int(_) => Err(DbError::Corrupt("text was expected, not an integer".into())),
        }
    }
}

/// A connection, in a transaction, that runs the ledger's statements.
pub(crate) trait Ledger {
    /// The rows `sql` returns.
    fn rows(&mut self, sql: &'static str, args: &[Arg<'_>]) -> impl Future<Output = DbResult<Vec<Vec<Cell>>>> + Send;

    /// How many rows `sql` changed.
    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> impl Future<Output = DbResult<u64>> + Send;
}

fn bound<'q>(sql: &'q str, args: &[Arg<'q>]) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(value) => query.bind(value),
        Arg::MaybeInt(value) => query.bind(value),
        Arg::Text(value) => query.bind(value),
    })
}

fn cells(row: &AnyRow) -> DbResult<Vec<Cell>> {
    (0..row.len())
        .map(|i| match row.try_get::<Option<i64>, _>(i) {
            Ok(value) => Ok(Cell::Int(value)),
            Err(_) => Ok(Cell::Text(row.try_get(i)?)),
        })
        .collect()
}

impl Ledger for AnyConnection {
    fn rows(&mut self, sql: &'static str, args: &[Arg<'_>]) -> impl Future<Output = DbResult<Vec<Vec<Cell>>>> + Send {
        let query = bound(sql, args);
        async move { query.fetch_all(self).await?.iter().map(cells).collect() }
    }

    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> impl Future<Output = DbResult<u64>> + Send {
        let query = bound(sql, args);
        async move { Ok(query.execute(self).await?.rows_affected()) }
    }
}
