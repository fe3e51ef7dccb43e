//! The AI-as-a-Service gateway's records: its models, the projects' keys, reservations of a
//! project's GPU allocation for requests in flight, shared rate windows, usage. A request
//! reserves its most cost and counts against its limits in one transaction, so that concurrent
//! requests never spend more than the allocation and several server processes on one database
//! enforce one limit; it settles what it really cost, in one transaction again. Both lock the
//! project's row before its windows', as the reaper does, so that they never wait on each other
//! in a circle on PostgreSQL.

mod ledger;
pub(crate) mod writer;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{self, AuditEntry};
use crate::{Db, DbError, DbResult, conflict_as, now_ms};
use ledger::{Arg, Ledger};
use writer::{GroupWrite, in_group};

/// The rate windows: a minute, and a UTC day.
pub const WINDOW_MS: i64 = 60_000;
const DAY_WINDOW_MS: i64 = 86_400_000;

/// How long a row that the gateway reads on every request is kept in the process.
const CACHE_TTL: Duration = Duration::from_secs(1);
/// The most rows of a kind kept; past it, the cache starts over.
const CACHE_ROWS: usize = 10_000;

/// Rows the gateway reads on every request and that seldom change, kept for at most
/// [`CACHE_TTL`]: live keys by their hash, models by their name. Only rows found are kept, so a
/// key or model created by any process is seen at once. A key revoked by this process is
/// forgotten at once; one revoked by another process is refused at once by [`Db::reserve`],
/// which reads the key's row in its transaction, and by every other route within
/// [`CACHE_TTL`]. Models are never changed once registered.
#[derive(Debug, Default)]
pub(crate) struct GatewayCache {
    keys: Recent<GatewayKeyRow>,
    models: Recent<GatewayModelRow>,
}

/// Rows by name, each with when it was read.
#[derive(Debug)]
struct Recent<T> {
    rows: Mutex<RecentRows<T>>,
}

#[derive(Debug)]
struct RecentRows<T> {
    by_name: HashMap<String, (Instant, T)>,
    /// Moves at every [`Recent::forget`]: a row read before it is not kept.
    generation: u64,
}

impl<T> Default for Recent<T> {
    fn default() -> Recent<T> {
        Recent { rows: Mutex::new(RecentRows { by_name: HashMap::new(), generation: 0 }) }
    }
}

impl<T: Clone> Recent<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, RecentRows<T>> {
        // Nothing here can panic halfway through a change: a poisoned lock holds whole rows.
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The row read less than [`CACHE_TTL`] ago, or the generation to [`Recent::keep`] a row
    /// read now under.
    fn get(&self, name: &str) -> Result<T, u64> {
        let rows = self.lock();
        match rows.by_name.get(name) {
            Some((read_at, row)) if read_at.elapsed() < CACHE_TTL => Ok(row.clone()),
            _ => Err(rows.generation),
        }
    }

    /// Keeps a row read in `generation`, unless something was forgotten since.
    fn keep(&self, name: &str, row: &T, generation: u64) {
        let mut rows = self.lock();
        if rows.generation != generation {
            return;
        }
        if rows.by_name.len() >= CACHE_ROWS {
            rows.by_name.clear();
        }
        rows.by_name.insert(name.to_owned(), (Instant::now(), row.clone()));
    }

    fn forget(&self, which: impl Fn(&T) -> bool) {
        let mut rows = self.lock();
        rows.generation += 1;
        rows.by_name.retain(|_, (_, row)| !which(row));
    }
}

/// Limits of requests and tokens per minute and per day; none: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayLimits {
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_day: Option<i64>,
}

impl GatewayLimits {
    /// (requests, tokens) per minute.
    fn per_minute(&self) -> (Option<i64>, Option<i64>) {
        (self.requests_per_minute, self.tokens_per_minute)
    }

    /// (requests, tokens) per UTC day.
    fn per_day(&self) -> (Option<i64>, Option<i64>) {
        (self.requests_per_day, self.tokens_per_day)
    }
}

/// What a key or a project counted in the current minute and day: (requests, tokens) each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub minute: (i64, i64),
    pub day: (i64, i64),
}

/// A server of a model: its administrator's upstream (no job), or a replica that a running job
/// of its project announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub url: String,
    pub job_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayModelRow {
    pub id: i64,
    pub name: String,
    /// The administrator's upstream; none for a model only served by jobs.
    pub upstream: Option<String>,
    /// Only this project's keys may call it; none: every project's.
    pub project_id: Option<i64>,
    pub input_gpu_ms_per_1k: i64,
    pub output_gpu_ms_per_1k: i64,
    pub max_output_tokens: i64,
    pub max_concurrency: i64,
    /// The registry version it serves, if it is one (and so may be fine-tuned here).
    pub version_id: Option<i64>,
    pub created_at: i64,
    /// How its versions are fine-tuned and served (JSON); none: the built-in model's way.
    pub recipe: Option<String>,
}

pub struct NewGatewayModel<'a> {
    pub name: &'a str,
    pub upstream: Option<&'a str>,
    pub project_id: Option<i64>,
    pub input_gpu_ms_per_1k: i64,
    pub output_gpu_ms_per_1k: i64,
    pub max_output_tokens: i64,
    pub max_concurrency: i64,
    pub version_id: Option<i64>,
    pub recipe: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayKeyRow {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub prefix: String,
    pub limits: GatewayLimits,
    /// It may start fine-tuning jobs.
    pub fine_tuning: bool,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub struct NewGatewayKey<'a> {
    pub project_id: i64,
    pub name: &'a str,
    /// SHA-256 of the key, hex.
    pub key_hash: &'a str,
    pub prefix: &'a str,
    pub limits: GatewayLimits,
    pub fine_tuning: bool,
}

/// What a request asks to hold, on its key's project, before it is forwarded.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub key_id: i64,
    pub gpu_ms: i64,
    pub tokens: i64,
    /// How long the reservation lives if its request never settles.
    pub ttl_ms: i64,
}

/// Why a request was refused before it was forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The key was revoked (by another process: this one knew it already).
    Revoked,
    /// The project's GPU allocation cannot hold the request's most cost.
    Budget { asked_gpu_ms: i64, left_gpu_ms: i64 },
    /// The allocation is not valid now.
    Expired,
    /// A limit of the key or the project is reached in this minute.
    RateLimited { scope: &'static str, retry_after_ms: i64 },
}

/// What a request really was, once it ended.
pub struct Settlement {
    /// The reservation it ends.
    pub reservation: i64,
    pub key_id: i64,
    pub project_id: i64,
    pub model: String,
    pub endpoint: &'static str,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub gpu_ms: i64,
    pub status: &'static str,
    pub first_token_ms: Option<i64>,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayUsageRow {
    pub id: i64,
    pub key_id: i64,
    pub model: String,
    pub endpoint: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub gpu_ms: i64,
    pub status: String,
    pub first_token_ms: Option<i64>,
    pub duration_ms: i64,
    pub created_at: i64,
}

const MODEL_COLUMNS: &str = "id, name, upstream, project_id, input_gpu_ms_per_1k, output_gpu_ms_per_1k, \
    max_output_tokens, created_at, max_concurrency, version_id, recipe";
const KEY_COLUMNS: &str = "id, project_id, name, prefix, requests_per_minute, tokens_per_minute, requests_per_day, \
    tokens_per_day, created_by, created_at, revoked_at, fine_tuning";

fn model_from(row: &AnyRow) -> DbResult<GatewayModelRow> {
    Ok(GatewayModelRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        upstream: row.try_get(2)?,
        project_id: row.try_get(3)?,
        input_gpu_ms_per_1k: row.try_get(4)?,
        output_gpu_ms_per_1k: row.try_get(5)?,
        max_output_tokens: row.try_get(6)?,
        created_at: row.try_get(7)?,
        max_concurrency: row.try_get(8)?,
        version_id: row.try_get(9)?,
        recipe: row.try_get(10)?,
    })
}

fn key_from(row: &AnyRow) -> DbResult<GatewayKeyRow> {
    Ok(GatewayKeyRow {
        id: row.try_get(0)?,
        project_id: row.try_get(1)?,
        name: row.try_get(2)?,
        prefix: row.try_get(3)?,
        limits: GatewayLimits {
            requests_per_minute: row.try_get(4)?,
            tokens_per_minute: row.try_get(5)?,
            requests_per_day: row.try_get(6)?,
            tokens_per_day: row.try_get(7)?,
        },
        created_by: row.try_get(8)?,
        created_at: row.try_get(9)?,
        revoked_at: row.try_get(10)?,
        fine_tuning: row.try_get::<i64, _>(11)? != 0,
    })
}

/// The rate windows a key's request counts in: the key's and its project's, per minute and per
/// UTC day.
struct Windows {
    key_minute: String,
    key_day: String,
    project_minute: String,
    project_day: String,
}

impl Windows {
    fn of(key_id: i64, project_id: i64) -> Windows {
        Windows {
            key_minute: format!("key:{key_id}"),
            key_day: format!("key:{key_id}:day"),
            project_minute: format!("project:{project_id}"),
            project_day: format!("project:{project_id}:day"),
        }
    }
}

impl Db {
    pub async fn create_gateway_model(&self, new: &NewGatewayModel<'_>, actor: &str) -> DbResult<GatewayModelRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO gateway_models (name, upstream, project_id, input_gpu_ms_per_1k, output_gpu_ms_per_1k, \
             max_output_tokens, max_concurrency, version_id, created_by, created_at, recipe) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {MODEL_COLUMNS}"
        ))
        .bind(new.name)
        .bind(new.upstream)
        .bind(new.project_id)
        .bind(new.input_gpu_ms_per_1k)
        .bind(new.output_gpu_ms_per_1k)
        .bind(new.max_output_tokens)
        .bind(new.max_concurrency)
        .bind(new.version_id)
        .bind(actor)
        .bind(now_ms())
        .bind(new.recipe)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("a model with this name"))?;
        let model = model_from(&row)?;
        let object = format!("gateway_model:{}", model.id);
        let detail = format!("{} at {}", model.name, model.upstream.as_deref().unwrap_or("its jobs"));
        let entry = AuditEntry { actor, action: "gateway.model.create", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(model)
    }

    pub async fn gateway_models(&self) -> DbResult<Vec<GatewayModelRow>> {
        let rows = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM gateway_models ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(model_from).collect()
    }

    /// The model of this name, as read at most [`CACHE_TTL`] ago.
    pub async fn gateway_model(&self, name: &str) -> DbResult<Option<GatewayModelRow>> {
        let generation = match self.gateway_cache.models.get(name) {
            Ok(model) => return Ok(Some(model)),
            Err(generation) => generation,
        };
        let row = sqlx::query(&format!("SELECT {MODEL_COLUMNS} FROM gateway_models WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        let model = row.as_ref().map(model_from).transpose()?;
        if let Some(model) = &model {
            self.gateway_cache.models.keep(name, model, generation);
        }
        Ok(model)
    }

    /// Records that run `run` of job `job_id` serves `model` at `url` (replacing what the job
    /// announced before). Only a model of the job's project has replicas, never one open to
    /// every project ([`Db::model_upstreams`] relies on it).
    pub async fn add_replica(&self, model_id: i64, job_id: i64, run: i64, url: &str) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM gateway_replicas WHERE model_id = $1 AND job_id = $2")
            .bind(model_id)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO gateway_replicas (model_id, job_id, run, url, added_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(model_id)
            .bind(job_id)
            .bind(run)
            .bind(url)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Where `model` is served now: the administrator's upstream, then the replicas whose run
    /// of their job is still running.
    pub async fn model_upstreams(&self, model: &GatewayModelRow) -> DbResult<Vec<Upstream>> {
        let mut upstreams: Vec<Upstream> =
            model.upstream.iter().map(|url| Upstream { url: url.clone(), job_id: None }).collect();
        if model.project_id.is_none() {
            // Open to every project: no project's job serves it.
            return Ok(upstreams);
        }
        let rows = sqlx::query(
            "SELECT r.url, r.job_id FROM gateway_replicas r JOIN jobs j ON j.id = r.job_id AND j.run = r.run \
             AND j.state = 'running' WHERE r.model_id = $1 ORDER BY r.job_id",
        )
        .bind(model.id)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            upstreams.push(Upstream { url: row.try_get(0)?, job_id: Some(row.try_get(1)?) });
        }
        Ok(upstreams)
    }

    /// A new key of a project, stored by its hash, audited.
    pub async fn create_gateway_key(&self, new: &NewGatewayKey<'_>, actor: &str) -> DbResult<GatewayKeyRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO gateway_keys (project_id, name, key_hash, prefix, requests_per_minute, tokens_per_minute, \
             requests_per_day, tokens_per_day, created_by, created_at, fine_tuning) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {KEY_COLUMNS}"
        ))
        .bind(new.project_id)
        .bind(new.name)
        .bind(new.key_hash)
        .bind(new.prefix)
        .bind(new.limits.requests_per_minute)
        .bind(new.limits.tokens_per_minute)
        .bind(new.limits.requests_per_day)
        .bind(new.limits.tokens_per_day)
        .bind(actor)
        .bind(now_ms())
        .bind(i64::from(new.fine_tuning))
        .fetch_one(&mut *tx)
        .await?;
        let key = key_from(&row)?;
        let object = format!("project:{}", new.project_id);
        let right = if key.fine_tuning { ", may fine-tune" } else { "" };
        let detail = format!("gateway key {} `{}` ({}...){right}", key.id, key.name, key.prefix);
        let entry = AuditEntry { actor, action: "gateway.key.create", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// A project's keys, revoked ones too, newest first.
    pub async fn gateway_keys(&self, project_id: i64) -> DbResult<Vec<GatewayKeyRow>> {
        let rows =
            sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM gateway_keys WHERE project_id = $1 ORDER BY id DESC"))
                .bind(project_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(key_from).collect()
    }

    /// The live key with this hash, as read at most [`CACHE_TTL`] ago (see [`GatewayCache`]).
    pub async fn gateway_key_by_hash(&self, key_hash: &str) -> DbResult<Option<GatewayKeyRow>> {
        let generation = match self.gateway_cache.keys.get(key_hash) {
            Ok(key) => return Ok(Some(key)),
            Err(generation) => generation,
        };
        let row =
            sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM gateway_keys WHERE key_hash = $1 AND revoked_at IS NULL"))
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        let key = row.as_ref().map(key_from).transpose()?;
        if let Some(key) = &key {
            self.gateway_cache.keys.keep(key_hash, key, generation);
        }
        Ok(key)
    }

    /// Revokes a project's key at once, audited; false if it has no such live key.
    pub async fn revoke_gateway_key(&self, project_id: i64, key_id: i64, actor: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE gateway_keys SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(key_id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            let object = format!("project:{project_id}");
            let detail = format!("gateway key {key_id}");
            let entry = AuditEntry { actor, action: "gateway.key.revoke", object: &object, detail: &detail };
            audit::append(&mut tx, self.audit_key(), &entry).await?;
            tx.commit().await?;
            self.gateway_cache.keys.forget(|key| key.id == key_id);
        }
        Ok(done)
    }

    /// Holds a request's most cost on its key's project's GPU allocation and counts it against
    /// the key's and the project's limits, all or nothing: the reservation's id, or why not (in
    /// this order: the key revoked, the allocation not valid now, a limit reached, the
    /// allocation too small).
    pub async fn reserve(&self, ask: &Ask) -> DbResult<Result<i64, Refused>> {
        if let Some(writer) = &self.gateway_writer {
            return in_group(writer, |reply| GroupWrite::Reserve(*ask, reply)).await;
        }
        let mut tx = self.write_tx().await?;
        let reserved = self.reserve_on(&mut *tx, ask).await?;
        if reserved.is_ok() {
            tx.commit().await?;
        }
        Ok(reserved)
    }

    /// [`Db::reserve`]'s statements, on a transaction that the caller commits if it reserved,
    /// and rolls back if not.
    pub(crate) async fn reserve_on(&self, tx: &mut impl Ledger, ask: &Ask) -> DbResult<Result<i64, Refused>> {
        let now = now_ms();
        // The key as it is now, whatever this process remembers of it.
        let rows = tx.rows(ledger::KEY_AND_PROJECT, &[Arg::Int(ask.key_id)]).await?;
        let row = rows.first().ok_or_else(|| DbError::NotFound(format!("gateway key {}", ask.key_id)))?;
        if row[0].maybe_int()?.is_some() {
            self.gateway_cache.keys.forget(|key| key.id == ask.key_id);
            return Ok(Err(Refused::Revoked));
        }
        let limits_at = |first: usize| -> DbResult<GatewayLimits> {
            Ok(GatewayLimits {
                requests_per_minute: row[first].maybe_int()?,
                tokens_per_minute: row[first + 1].maybe_int()?,
                requests_per_day: row[first + 2].maybe_int()?,
                tokens_per_day: row[first + 3].maybe_int()?,
            })
        };
        let (key_limits, project_limits) = (limits_at(1)?, limits_at(11)?);
        let project_id = row[5].int()?;
        let (valid_from, valid_until) = (row[7].int()?, row[8].maybe_int()?);
        if now < valid_from || valid_until.is_some_and(|until| now >= until) {
            return Ok(Err(Refused::Expired));
        }
        // The project's row before the windows' (see above); a refusal for the allocation comes
        // after the limits', all rolled back.
        let held = tx.execute(ledger::HOLD, &[Arg::Int(ask.gpu_ms), Arg::Int(project_id)]).await? == 1;
        let window_start = now - now.rem_euclid(WINDOW_MS);
        let day_start = now - now.rem_euclid(DAY_WINDOW_MS);
        let windows = Windows::of(ask.key_id, project_id);
        let counted = tx
            .rows(
                ledger::COUNT,
                &[
                    Arg::Text(&windows.key_minute),
                    Arg::Text(&windows.key_day),
                    Arg::Text(&windows.project_minute),
                    Arg::Text(&windows.project_day),
                    Arg::Int(window_start),
                    Arg::Int(day_start),
                    Arg::Int(ask.tokens),
                ],
            )
            .await?;
        let mut counts = HashMap::with_capacity(counted.len());
        for row in &counted {
            counts.insert(row[0].text()?.to_owned(), (row[1].int()?, row[2].int()?));
        }
        let minute_left = window_start + WINDOW_MS - now;
        let day_left = day_start + DAY_WINDOW_MS - now;
        let checks = [
            ("key", &windows.key_minute, key_limits.per_minute(), minute_left),
            ("key", &windows.key_day, key_limits.per_day(), day_left),
            ("project", &windows.project_minute, project_limits.per_minute(), minute_left),
            ("project", &windows.project_day, project_limits.per_day(), day_left),
        ];
        for (scope, window, (most_requests, most_tokens), retry_after_ms) in checks {
            let (requests, tokens) = *counts
                .get(window.as_str())
                .ok_or_else(|| DbError::Corrupt(format!("no count of the window {window}")))?;
            if most_requests.is_some_and(|most| requests > most) || most_tokens.is_some_and(|most| tokens > most) {
                return Ok(Err(Refused::RateLimited { scope, retry_after_ms }));
            }
        }
        if !held {
            let (gpu_hours, used, reserved) = (row[6].int()?, row[9].int()?, row[10].int()?);
            let left_gpu_ms = (gpu_hours * 3_600_000 - used - reserved).max(0);
            return Ok(Err(Refused::Budget { asked_gpu_ms: ask.gpu_ms, left_gpu_ms }));
        }
        let arguments = [
            Arg::Int(project_id),
            Arg::Int(ask.key_id),
            Arg::Int(ask.gpu_ms),
            Arg::Int(ask.tokens),
            Arg::Int(window_start),
            Arg::Int(now + ask.ttl_ms),
        ];
        let id = tx.rows(ledger::RESERVATION, &arguments).await?;
        Ok(Ok(id.first().ok_or_else(|| DbError::Corrupt("a reservation without its id".into()))?[0].int()?))
    }

    /// Ends a reservation: the request's real cost is charged (never more than was reserved),
    /// the rest released, the windows corrected to the tokens really used, and its usage
    /// recorded. A reservation the reaper already released is charged all the same. What was
    /// charged.
    pub async fn settle(&self, done: Settlement) -> DbResult<i64> {
        if let Some(writer) = &self.gateway_writer {
            return in_group(writer, |reply| GroupWrite::Settle(done, reply)).await;
        }
        let mut tx = self.write_tx().await?;
        let charged = self.settle_on(&mut *tx, &done).await?;
        tx.commit().await?;
        Ok(charged)
    }

    /// [`Db::settle`]'s statements, on a transaction that the caller commits.
    pub(crate) async fn settle_on(&self, tx: &mut impl Ledger, done: &Settlement) -> DbResult<i64> {
        let held = tx.rows(ledger::TAKE_RESERVATION, &[Arg::Int(done.reservation)]).await?;
        // A reservation the reaper released holds nothing: the cost is charged all the same.
        let (held_gpu_ms, charged, unused) = match held.first() {
            Some(row) => {
                let (gpu_ms, tokens, window_start) = (row[0].int()?, row[1].int()?, row[2].int()?);
                let unused = tokens - (done.prompt_tokens + done.completion_tokens).min(tokens);
                (gpu_ms, done.gpu_ms.min(gpu_ms), Some((unused, window_start)))
            }
            None => (0, done.gpu_ms, None),
        };
        // The project's row before the windows'.
        let arguments = [Arg::Int(held_gpu_ms), Arg::Int(charged), Arg::Int(done.project_id)];
        tx.execute(ledger::CHARGE, &arguments).await?;
        if let Some((unused, window_start)) = unused
            && unused > 0
        {
            let windows = Windows::of(done.key_id, done.project_id);
            let arguments = [
                Arg::Int(unused),
                Arg::Text(&windows.key_minute),
                Arg::Text(&windows.project_minute),
                Arg::Text(&windows.key_day),
                Arg::Text(&windows.project_day),
                Arg::Int(window_start),
                Arg::Int(window_start - window_start.rem_euclid(DAY_WINDOW_MS)),
            ];
            tx.execute(ledger::UNCOUNT, &arguments).await?;
        }
        let arguments = [
            Arg::Int(done.project_id),
            Arg::Int(done.key_id),
            Arg::Text(&done.model),
            Arg::Text(done.endpoint),
            Arg::Int(done.prompt_tokens),
            Arg::Int(done.completion_tokens),
            Arg::Int(charged),
            Arg::Text(done.status),
            Arg::MaybeInt(done.first_token_ms),
            Arg::Int(done.duration_ms),
            Arg::Int(now_ms()),
        ];
        tx.execute(ledger::USAGE, &arguments).await?;
        Ok(charged)
    }

    /// Releases the reservations whose requests died with their server (how many), and forgets
    /// old rate windows and the replicas of runs that ended.
    pub async fn release_expired_reservations(&self, now: i64) -> DbResult<u64> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query("DELETE FROM gateway_reservations WHERE expires_at < $1 RETURNING project_id, gpu_ms")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let (project, gpu_ms): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            sqlx::query("UPDATE projects SET reserved_gpu_ms = reserved_gpu_ms - $1 WHERE id = $2")
                .bind(gpu_ms)
                .bind(project)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM gateway_windows WHERE window_start < $1 AND scope NOT LIKE '%:day'")
            .bind(now - 2 * WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM gateway_windows WHERE window_start < $1")
            .bind(now - 2 * DAY_WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM gateway_replicas WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = gateway_replicas.job_id \
             AND j.run = gateway_replicas.run AND j.state = 'running')",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// What `scope` (`key:ID`, `project:ID`) counted in the current minute and UTC day.
    pub async fn counted(&self, scope: &str, now: i64) -> DbResult<Counted> {
        let mut counted = Counted::default();
        let windows = [
            (scope.to_owned(), now - now.rem_euclid(WINDOW_MS)),
            (format!("{scope}:day"), now - now.rem_euclid(DAY_WINDOW_MS)),
        ];
        for (i, (scope, start)) in windows.iter().enumerate() {
            let row =
                sqlx::query("SELECT requests, tokens FROM gateway_windows WHERE scope = $1 AND window_start = $2")
                    .bind(scope)
                    .bind(start)
                    .fetch_optional(&self.pool)
                    .await?;
            let pair = match row {
                Some(row) => (row.try_get(0)?, row.try_get(1)?),
                None => (0, 0),
            };
            if i == 0 { counted.minute = pair } else { counted.day = pair }
        }
        Ok(counted)
    }

    /// A project's own gateway limits.
    pub async fn project_gateway_limits(&self, project_id: i64) -> DbResult<GatewayLimits> {
        let row = sqlx::query(
            "SELECT gateway_requests_per_minute, gateway_tokens_per_minute, gateway_requests_per_day, \
             gateway_tokens_per_day FROM projects WHERE id = $1",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(GatewayLimits {
            requests_per_minute: row.try_get(0)?,
            tokens_per_minute: row.try_get(1)?,
            requests_per_day: row.try_get(2)?,
            tokens_per_day: row.try_get(3)?,
        })
    }

    /// Sets a project's gateway limits, audited.
    pub async fn set_project_gateway_limits(
        &self,
        project_id: i64,
        limits: &GatewayLimits,
        actor: &str,
    ) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE projects SET gateway_requests_per_minute = $1, gateway_tokens_per_minute = $2, \
             gateway_requests_per_day = $3, gateway_tokens_per_day = $4 WHERE id = $5",
        )
        .bind(limits.requests_per_minute)
        .bind(limits.tokens_per_minute)
        .bind(limits.requests_per_day)
        .bind(limits.tokens_per_day)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        let object = format!("project:{project_id}");
        let detail = format!("{limits:?}");
        let entry = AuditEntry { actor, action: "gateway.limits", object: &object, detail: &detail };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Requests the gateway answered, and the tokens they read and wrote, over all projects.
    pub async fn gateway_totals(&self) -> DbResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) FROM gateway_usage \
             WHERE status LIKE 'ok%'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// What a project's requests hold now: reservations in flight, and the GPU-ms they hold.
    pub async fn gateway_reserved(&self, project_id: i64) -> DbResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), (SELECT reserved_gpu_ms FROM projects WHERE id = $1) FROM gateway_reservations \
             WHERE project_id = $1",
        )
        .bind(project_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get::<Option<i64>, _>(1)?.unwrap_or(0)))
    }

    /// A project's gateway usage, newest first, at most `limit` records.
    pub async fn gateway_usage(&self, project_id: i64, limit: i64) -> DbResult<Vec<GatewayUsageRow>> {
        let rows = sqlx::query(
            "SELECT id, key_id, model, endpoint, prompt_tokens, completion_tokens, gpu_ms, status, first_token_ms, \
             duration_ms, created_at FROM gateway_usage WHERE project_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(project_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(GatewayUsageRow {
                    id: row.try_get(0)?,
                    key_id: row.try_get(1)?,
                    model: row.try_get(2)?,
                    endpoint: row.try_get(3)?,
                    prompt_tokens: row.try_get(4)?,
                    completion_tokens: row.try_get(5)?,
                    gpu_ms: row.try_get(6)?,
                    status: row.try_get(7)?,
                    first_token_ms: row.try_get(8)?,
                    duration_ms: row.try_get(9)?,
                    created_at: row.try_get(10)?,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFileRow {
    pub id: i64,
    pub project_id: i64,
    pub filename: String,
    pub purpose: String,
    pub bytes: i64,
    pub store_version: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayBatchRow {
    pub id: i64,
    pub project_id: i64,
    pub key_id: i64,
    pub endpoint: String,
    pub input_file_id: i64,
    pub status: String,
    pub total: i64,
    /// Input lines answered so far (failed ones included).
    pub done: i64,
    pub failed: i64,
    pub output_file_id: Option<i64>,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    /// The compute job that runs it, once queued.
    pub job_id: Option<i64>,
}

/// How a batch ended.
pub struct BatchEnd<'a> {
    pub status: &'a str,
    pub output_file_id: Option<i64>,
    pub done: i64,
    pub failed: i64,
}

const FILE_COLUMNS: &str = "id, project_id, filename, purpose, bytes, store_version, created_at";
const BATCH_COLUMNS: &str = "id, project_id, key_id, endpoint, input_file_id, status, total, done, failed, output_file_id, created_at, ended_at, job_id";

fn file_from(row: &AnyRow) -> DbResult<GatewayFileRow> {
    Ok(GatewayFileRow {
        id: row.try_get(0)?,
        project_id: row.try_get(1)?,
        filename: row.try_get(2)?,
        purpose: row.try_get(3)?,
        bytes: row.try_get(4)?,
        store_version: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

fn batch_from(row: &AnyRow) -> DbResult<GatewayBatchRow> {
    Ok(GatewayBatchRow {
        id: row.try_get(0)?,
        project_id: row.try_get(1)?,
        key_id: row.try_get(2)?,
        endpoint: row.try_get(3)?,
        input_file_id: row.try_get(4)?,
        status: row.try_get(5)?,
        total: row.try_get(6)?,
        done: row.try_get(7)?,
        failed: row.try_get(8)?,
        output_file_id: row.try_get(9)?,
        created_at: row.try_get(10)?,
        ended_at: row.try_get(11)?,
        job_id: row.try_get(12)?,
    })
}

impl Db {
    pub async fn add_gateway_file(
        &self,
        project_id: i64,
        filename: &str,
        purpose: &str,
        bytes: i64,
        store_version: &str,
    ) -> DbResult<GatewayFileRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO gateway_files (project_id, filename, purpose, bytes, store_version, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {FILE_COLUMNS}"
        ))
        .bind(project_id)
        .bind(filename)
        .bind(purpose)
        .bind(bytes)
        .bind(store_version)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        file_from(&row)
    }

    /// A project's file.
    pub async fn gateway_file(&self, project_id: i64, id: i64) -> DbResult<Option<GatewayFileRow>> {
        let row = sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM gateway_files WHERE id = $1 AND project_id = $2"))
            .bind(id)
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(file_from).transpose()
    }

    pub async fn gateway_files(&self, project_id: i64) -> DbResult<Vec<GatewayFileRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {FILE_COLUMNS} FROM gateway_files WHERE project_id = $1 ORDER BY id DESC LIMIT 1000"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(file_from).collect()
    }

    pub async fn create_gateway_batch(
        &self,
        key: &GatewayKeyRow,
        endpoint: &str,
        input_file_id: i64,
        total: i64,
    ) -> DbResult<GatewayBatchRow> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO gateway_batches (project_id, key_id, endpoint, input_file_id, status, total, done, failed, \
             created_at) VALUES ($1, $2, $3, $4, 'in_progress', $5, 0, 0, $6) RETURNING {BATCH_COLUMNS}"
        ))
        .bind(key.project_id)
        .bind(key.id)
        .bind(endpoint)
        .bind(input_file_id)
        .bind(total)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let batch = batch_from(&row)?;
        let object = format!("project:{}", key.project_id);
        let detail = format!("batch {} of {total} requests to {endpoint}, key {}", batch.id, key.id);
        let entry = AuditEntry {
            actor: &format!("key:{}", key.id),
            action: "gateway.batch.create",
            object: &object,
            detail: &detail,
        };
        audit::append(&mut tx, self.audit_key(), &entry).await?;
        tx.commit().await?;
        Ok(batch)
    }

    /// A project's batch.
    pub async fn gateway_batch(&self, project_id: i64, id: i64) -> DbResult<Option<GatewayBatchRow>> {
        let row =
            sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM gateway_batches WHERE id = $1 AND project_id = $2"))
                .bind(id)
                .bind(project_id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(batch_from).transpose()
    }

    pub async fn gateway_batches(&self, project_id: i64) -> DbResult<Vec<GatewayBatchRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS} FROM gateway_batches WHERE project_id = $1 ORDER BY id DESC LIMIT 1000"
        ))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_from).collect()
    }

    /// Every batch still to run, oldest first.
    pub async fn running_gateway_batches(&self) -> DbResult<Vec<GatewayBatchRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {BATCH_COLUMNS} FROM gateway_batches WHERE status IN ('in_progress', 'cancelling') ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_from).collect()
    }

    /// Records the compute job that runs a batch: only once, and while the batch is not ended.
    pub async fn set_batch_job(&self, id: i64, job_id: i64) -> DbResult<bool> {
        let set = self
            .write_one(
                sqlx::query(
                    "UPDATE gateway_batches SET job_id = $1 WHERE id = $2 AND job_id IS NULL \
                     AND status IN ('in_progress', 'cancelling')",
                )
                .bind(job_id)
                .bind(id),
            )
            .await?;
        Ok(set == 1)
    }

    /// The batch a compute job runs, ended or not.
    pub async fn batch_of_job(&self, job_id: i64) -> DbResult<Option<GatewayBatchRow>> {
        let row = sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM gateway_batches WHERE job_id = $1"))
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(batch_from).transpose()
    }

    /// Ends a batch that runs: `completed`, `expired`, `cancelled` or `failed`, with its output
    /// file and the input lines answered (`done`, failed ones among them); false if it had ended.
    pub async fn end_gateway_batch(&self, id: i64, end: &BatchEnd<'_>) -> DbResult<bool> {
        let ended = self
            .write_one(
                sqlx::query(
                    "UPDATE gateway_batches SET status = $1, output_file_id = $2, done = $3, failed = $4, ended_at = $5 \
                     WHERE id = $6 AND status IN ('in_progress', 'cancelling')",
                )
                .bind(end.status)
                .bind(end.output_file_id)
                .bind(end.done)
                .bind(end.failed)
                .bind(now_ms())
                .bind(id),
            )
            .await?;
        Ok(ended == 1)
    }

    /// Asks a running batch to stop (its job is cancelled); false if it is not running.
    pub async fn cancel_gateway_batch(&self, project_id: i64, id: i64) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE gateway_batches SET status = 'cancelling' WHERE id = $1 AND project_id = $2 AND status = 'in_progress'",
        )
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(done)
    }

    /// A key by its id, live or not (a batch's).
    pub async fn gateway_key(&self, id: i64) -> DbResult<Option<GatewayKeyRow>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM gateway_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from).transpose()
    }
}

/// What the jobs that served a model were measured to use, and the tokens it served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServingMeasure {
    /// CPU- and GPU-milliseconds of its replicas' jobs: their ended runs as charged, and their
    /// running run so far.
    pub cpu_ms: i64,
    pub gpu_ms: i64,
    /// Prompt and completion tokens of every request to it.
    pub tokens: i64,
}

impl Db {
    /// [`ServingMeasure`] of the model named `model`, at `now`.
    pub async fn serving_measure(&self, model: &str, now: i64) -> DbResult<ServingMeasure> {
        let row = sqlx::query(
            "WITH served AS (SELECT r.job_id FROM gateway_replicas r JOIN gateway_models m ON m.id = r.model_id \
             WHERE m.name = $1), \
             ended AS (SELECT COALESCE(SUM(cpu_ms), 0) AS cpu, COALESCE(SUM(gpu_ms), 0) AS gpu FROM usage_records \
             WHERE job_id IN (SELECT job_id FROM served)), \
             running AS (SELECT COALESCE(SUM(($2 - started_at) * cpus * nodes), 0) AS cpu, \
             COALESCE(SUM(($2 - started_at) * gpus * nodes), 0) AS gpu FROM jobs \
             WHERE state = 'running' AND id IN (SELECT job_id FROM served)) \
             SELECT CAST(ended.cpu + running.cpu AS BIGINT), CAST(ended.gpu + running.gpu AS BIGINT), \
             CAST((SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM gateway_usage WHERE model = $1) \
             AS BIGINT) FROM ended, running",
        )
        .bind(model)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(ServingMeasure { cpu_ms: row.try_get(0)?, gpu_ms: row.try_get(1)?, tokens: row.try_get(2)? })
    }
}

#[cfg(test)]
mod tests {
    use crate::scratch::Scratch;
    use crate::{Ask, NewGatewayKey, Refused, Settlement};

    /// Reservations that arrive together are written together (group commit on SQLite), yet
    /// each holds or is refused alone: of 40 at once on room for 10, 10 hold and are counted,
    /// the 30 refused leave nothing; settled at once, all 10 are charged and recorded.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reservations_written_together_hold_or_are_refused_each_alone() {
        let scratch = Scratch::new("group").await;
        let db = scratch.db.clone();
        let project = scratch.project("groupe").await;
        let new = NewGatewayKey {
            project_id: project,
            name: "k",
            key_hash: "h",
            prefix: "p",
            limits: Default::default(),
            fine_tuning: false,
        };
        let key = db.create_gateway_key(&new, "test").await.unwrap();
        let ask = Ask { key_id: key.id, gpu_ms: 360_000, tokens: 3, ttl_ms: 60_000 };
        // All in one minute's window.
        let minute_left_ms = super::WINDOW_MS - crate::now_ms().rem_euclid(super::WINDOW_MS);
        if minute_left_ms < 5_000 {
            tokio::time::sleep(std::time::Duration::from_millis(minute_left_ms as u64 + 10)).await;
        }
        let asked: Vec<_> = (0..40)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.reserve(&ask).await.unwrap() })
            })
            .collect();
        let mut held = Vec::new();
        for reserved in asked {
            match reserved.await.unwrap() {
                Ok(reservation) => held.push(reservation),
                Err(refused) => assert!(matches!(refused, Refused::Budget { .. }), "{refused:?}"),
            }
        }
        assert_eq!(held.len(), 10);
        assert_eq!(db.gateway_reserved(project).await.unwrap(), (10, 3_600_000));
        assert_eq!(db.counted(&format!("key:{}", key.id), crate::now_ms()).await.unwrap().minute, (10, 30));
        let settled: Vec<_> = held
            .into_iter()
            .map(|reservation| {
                let db = db.clone();
                let done = Settlement {
                    reservation,
                    key_id: key.id,
                    project_id: project,
                    model: "m".into(),
                    endpoint: "/chat/completions",
                    prompt_tokens: 1,
                    completion_tokens: 1,
                    gpu_ms: 7,
                    status: "ok",
                    first_token_ms: None,
                    duration_ms: 1,
                };
                tokio::spawn(async move { db.settle(done).await.unwrap() })
            })
            .collect();
        for charged in settled {
            assert_eq!(charged.await.unwrap(), 7);
        }
        assert_eq!(db.gateway_reserved(project).await.unwrap(), (0, 0));
        assert_eq!(db.gateway_usage(project, 100).await.unwrap().len(), 10);
        assert_eq!(db.counted(&format!("key:{}", key.id), crate::now_ms()).await.unwrap().minute, (10, 20));
        scratch.close().await;
    }
}
