//! Where a model is served: its administrator's upstream, and the replicas its project's jobs
//! announce. A model server running as a job prints `{"serve": {"model", "url"}}` after the
//! metric prefix; the gateway then asks the address for `/models` with a fresh nonce in
//! [`REPLICA_HEADER`] and keeps it only if the answer proves that the server holds the job's
//! replica token (`GRAPPE_REPLICA_TOKEN`, an HMAC of the job under the installation's secret,
//! given to that job alone; on Slurm, where every job runs as the server's user, other jobs can
//! read it): [`replica_proof`] of the nonce. So a job cannot point its model at
//! another service, and the token itself is never sent back. Every request the gateway forwards
//! to a replica carries the token as its bearer, which the model server requires (it may listen
//! where others reach it). The address is on loopback for a job of the local executor, and on
//! the node that runs it for a Slurm job (`http://NODE:PORT/v1`, the node as Slurm names it). A
//! replica serves while its run runs, no longer.
//!
//! Requests go to the replica with the fewest requests outstanding; one that cannot be reached
//! is set aside for a while and the request goes to the next. Every process also asks each
//! replica for `/models` every few seconds ([`health`]) and sets aside those that do not answer,
//! so that a dead replica is skipped before a request finds it dead; a job's replica is asked
//! for its proof again each time, and one that answers without it is sent nothing until it
//! proves itself (another process may have taken the port of a server that stopped).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;

use crate::kit::state::AppState;

/// The variable that holds a job's replica token.
pub const REPLICA_TOKEN_ENV: &str = "GRAPPE_REPLICA_TOKEN";
/// The header of the gateway's nonce on a request for `/models`, and of the model server's
/// proof on its answer.
pub const REPLICA_HEADER: &str = "x-grappe-replica";
/// How long a replica that could not be reached is set aside.
const SET_ASIDE: Duration = Duration::from_secs(10);
/// How often every replica is asked whether it is up.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// The replica token of job `job_id`: the same for each of its runs (Slurm runs a requeued
/// job's script again as it was written).
pub fn replica_token(state: &AppState, job_id: i64) -> String {
    crate::kit::caller::keyed_token(&state.secret, "replica", &job_id.to_string())
}

/// What a model server holding `token` answers to the gateway's `nonce`.
pub fn replica_proof(token: &str, nonce: &str) -> String {
    crate::kit::caller::keyed_token(token.as_bytes(), "replica-proof", nonce)
}

/// The announced address if a job may serve there: `http://HOST:PORT/v1` where HOST is on
/// loopback (`127.0.0.1`, `localhost`, `[::1]`) for a job of this machine, or is `node`, the
/// node Slurm runs the job on; none if it is anything else.
fn job_url(url: &str, node: Option<&str>) -> Option<String> {
    let url = url.trim_end_matches('/');
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/')?;
    let (host, port) = authority.rsplit_once(':')?;
    let allowed = match node {
        None => matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        Some(node) => !node.is_empty() && host.eq_ignore_ascii_case(node),
    };
    (allowed && port.parse::<u16>().is_ok_and(|p| p > 0) && path == "v1").then(|| url.to_owned())
}

/// Checks and records a job's announcement that it serves a model of its project (`node`: the
/// Slurm node that runs it; none for a job of this machine). At most a few are checked at once:
/// a job that prints announcements without end has the rest dropped.
pub async fn announce(state: AppState, job_id: i64, serve: Value, node: Option<String>) {
    static PROBES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);
    let Ok(_probe) = PROBES.try_acquire() else {
        tracing::warn!(job.id = job_id, "too many model server announcements at once: one dropped");
        return;
    };
    let outcome = async {
        let job = state.db.job(job_id).await?.ok_or_else(|| anyhow::anyhow!("no job {job_id}"))?;
        anyhow::ensure!(job.state == "running", "job {job_id} is not running");
        let name = serve["model"].as_str().unwrap_or_default();
        let model = state
            .db
            .gateway_model(name)
            .await?
            .filter(|model| model.project_id == Some(job.project_id))
            .ok_or_else(|| anyhow::anyhow!("the job's project has no gateway model `{name}`"))?;
        let url = job_url(serve["url"].as_str().unwrap_or_default(), node.as_deref()).ok_or_else(|| match &node {
            None => anyhow::anyhow!("`url`: http://127.0.0.1:PORT/v1 (a job's own address on loopback)"),
            Some(node) => anyhow::anyhow!("`url`: http://{node}:PORT/v1 (the address of the node that runs the job)"),
        })?;
        let answered = ask(&state, &url, Some(job.id), Duration::from_secs(5)).await?;
        anyhow::ensure!(answered.proved, "{url} did not prove that it holds the job's replica token");
        state.db.add_replica(model.id, job.id, job.run, &url).await?;
        anyhow::Ok((model.name, url))
    };
    match outcome.await {
        Ok((model, url)) => tracing::info!(job.id = job_id, model, url, "a job serves a gateway model"),
        Err(error) => {
            tracing::warn!(job.id = job_id, error = %error, "a job's announcement of a model server was refused")
        }
    }
}

/// What an address answered to `GET /models`.
struct Answered {
    /// With success.
    ok: bool,
    /// For a job's address, with the proof that it holds the job's token (always, otherwise).
    proved: bool,
}

/// Asks `url` for `/models` within `wait`; for the address of job `job_id`, with a fresh nonce
/// whose proof the answer must carry.
async fn ask(state: &AppState, url: &str, job_id: Option<i64>, wait: Duration) -> anyhow::Result<Answered> {
    let nonce = crate::kit::caller::new_secret();
    let mut probe = Request::get(format!("{url}/models"));
    if job_id.is_some() {
        probe = probe.header(REPLICA_HEADER, &nonce);
    }
    let answer = tokio::time::timeout(wait, super::proxy::client().request(probe.body(Body::empty())?)).await??;
    let proved = job_id.is_none_or(|job_id| {
        let proof = answer.headers().get(REPLICA_HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let expected = replica_proof(&replica_token(state, job_id), &nonce);
        crate::kit::caller::constant_time_eq(proof.as_bytes(), expected.as_bytes())
    });
    Ok(Answered { ok: answer.status().is_success(), proved })
}

/// Asks every replica of every model whether it answers, until the server stops; those that do
/// not are set aside, those that do are taken back.
pub async fn health(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(HEALTH_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => break,
        }
        let Ok(models) = state.db.gateway_models().await else { continue };
        for model in models {
            let Ok(upstreams) = state.db.model_upstreams(&model).await else { continue };
            for grappe_db::Upstream { url, job_id } in upstreams {
                // A job's server proves itself again: another process that took its port once it
                // stopped would otherwise be sent prompts and the bearer.
                match ask(&state, &url, job_id, Duration::from_secs(2)).await {
                    Ok(Answered { ok: true, proved: true }) => take_back(&url),
                    Ok(Answered { ok: true, proved: false }) => disown(&url),
                    _ => set_aside(&url),
                }
            }
        }
    }
}

fn take_back(url: &str) {
    if let Ok(mut loads) = loads().lock()
        && let Some(load) = loads.get_mut(url)
    {
        load.set_aside_until = None;
        load.unproved = false;
    }
}

/// A job's address where something answers without the job's proof: sent nothing, not even as
/// a last resort, until its server proves itself again.
fn disown(url: &str) {
    if let Ok(mut loads) = loads().lock() {
        loads.entry(url.to_owned()).or_default().unproved = true;
    }
    tracing::warn!(url, "a replica's address answered without its job's proof: nothing is sent there");
}

#[derive(Default)]
struct Load {
    outstanding: usize,
    set_aside_until: Option<Instant>,
    /// Answered the health probe without the proof of its job's token ([`disown`]).
    unproved: bool,
}

fn loads() -> &'static Mutex<HashMap<String, Load>> {
    static LOADS: OnceLock<Mutex<HashMap<String, Load>>> = OnceLock::new();
    LOADS.get_or_init(Mutex::default)
}

/// A request's hold on a replica: counted outstanding until dropped.
pub struct Held {
    pub url: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut loads) = loads().lock()
            && let Some(load) = loads.get_mut(&self.url)
        {
            load.outstanding = load.outstanding.saturating_sub(1);
        }
        freed().notify_waiters();
    }
}

/// Who waits for a busy replica: people, then batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Interactive,
    Batch,
}

/// Why no replica was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReplica {
    /// None can be reached (none serves, or all are set aside or tried).
    Unreachable,
    /// All are at their most requests at once, for as long as the request may wait.
    Busy,
}

fn freed() -> &'static tokio::sync::Notify {
    static FREED: OnceLock<tokio::sync::Notify> = OnceLock::new();
    FREED.get_or_init(tokio::sync::Notify::new)
}

/// People waiting for a replica now: a batch waits while there are any.
static PEOPLE_WAITING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Waiting;

impl Waiting {
    fn new() -> Waiting {
        PEOPLE_WAITING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        PEOPLE_WAITING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The replica of `urls` with the fewest requests outstanding, among those not in `tried` and
/// not set aside (or, if all are, among those), if it has fewer than `most` and the caller's
/// turn has come.
fn pick(urls: &[String], tried: &[String], most: usize, priority: Priority) -> Result<Held, NoReplica> {
    let mut loads = loads().lock().map_err(|_| NoReplica::Unreachable)?;
    let now = Instant::now();
    let healthy =
        |url: &&String| loads.get(*url).and_then(|load| load.set_aside_until).is_none_or(|until| until <= now);
    let untried: Vec<&String> =
        urls.iter().filter(|url| !tried.contains(url) && !loads.get(*url).is_some_and(|load| load.unproved)).collect();
    // Replicas set aside are a last resort: better one that failed a moment ago than none.
    let candidates: Vec<&String> = match untried.iter().copied().filter(healthy).collect::<Vec<_>>() {
        healthy if healthy.is_empty() => untried,
        healthy => healthy,
    };
    let url = candidates
        .into_iter()
        .min_by_key(|url| loads.get(*url).map_or(0, |load| load.outstanding))
        .ok_or(NoReplica::Unreachable)?
        .clone();
    let load = loads.entry(url.clone()).or_default();
    let waiting_people = PEOPLE_WAITING.load(std::sync::atomic::Ordering::SeqCst);
    if load.outstanding >= most || (priority == Priority::Batch && waiting_people > 0) {
        return Err(NoReplica::Busy);
    }
    load.outstanding += 1;
    Ok(Held { url })
}

/// A replica as [`pick`] gives it, waiting up to `patience` while all are busy: people wait
/// ahead of batches.
pub async fn acquire(
    urls: &[String],
    tried: &[String],
    most: usize,
    priority: Priority,
    patience: Duration,
) -> Result<Held, NoReplica> {
    let deadline = tokio::time::Instant::now() + patience;
    let _waiting = (priority == Priority::Interactive).then(Waiting::new);
    loop {
        let notified = freed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match pick(urls, tried, most, priority) {
            Err(NoReplica::Busy) => {}
            done => return done,
        }
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(deadline) => return Err(NoReplica::Busy),
        }
    }
}

/// Sets a replica aside after it could not be reached.
pub fn set_aside(url: &str) {
    if let Ok(mut loads) = loads().lock() {
        loads.entry(url.to_owned()).or_default().set_aside_until = Some(Instant::now() + SET_ASIDE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_serves_on_loopback_here_or_on_its_own_slurm_node() {
        assert_eq!(job_url("http://127.0.0.1:8001/v1/", None).as_deref(), Some("http://127.0.0.1:8001/v1"));
        assert!(job_url("http://localhost:9/v1", None).is_some());
        for refused in [
            "http://10.0.0.5:8000/v1",
            "http://169.254.169.254:80/v1",
            "http://127.0.0.1:0/v1",
            "http://127.0.0.1/v1",
            "https://127.0.0.1:8000/v1",
            "http://127.0.0.1:8000/admin",
            "http://user@127.0.0.1:8000/v1",
        ] {
            assert_eq!(job_url(refused, None), None, "{refused}");
        }
        // On Slurm: the node that runs the job, and nothing else (not even loopback: that
        // would be the gateway's own machine).
        assert!(job_url("http://gpu-07:8000/v1", Some("gpu-07")).is_some());
        for refused in
            ["http://gpu-08:8000/v1", "http://127.0.0.1:8000/v1", "http://x@gpu-07:8000/v1", "http://gpu-07/v1"]
        {
            assert_eq!(job_url(refused, Some("gpu-07")), None, "{refused}");
        }
        // A node Slurm did not name: no address at all.
        assert_eq!(job_url("http://:8000/v1", Some("")), None);
    }

    #[test]
    fn an_address_that_answers_without_its_proof_is_sent_nothing_until_it_proves_itself() {
        let urls: Vec<String> = ["http://127.0.0.1:3/v1"].map(str::to_owned).to_vec();
        disown(&urls[0]);
        assert!(pick(&urls, &[], 8, Priority::Interactive).is_err(), "not even as a last resort");
        take_back(&urls[0]);
        assert!(pick(&urls, &[], 8, Priority::Interactive).is_ok());
    }

    #[test]
    fn a_proof_answers_one_nonce_with_one_token() {
        let proof = replica_proof("token-a", "nonce-1");
        assert_eq!(proof, replica_proof("token-a", "nonce-1"));
        assert_ne!(proof, replica_proof("token-b", "nonce-1"));
        assert_ne!(proof, replica_proof("token-a", "nonce-2"));
        assert!(!proof.contains("token-a"));
    }

    #[test]
    fn requests_go_to_the_least_loaded_replica_and_skip_one_set_aside() {
        let urls: Vec<String> = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"].map(str::to_owned).to_vec();
        let first = pick(&urls, &[], 8, Priority::Interactive).unwrap();
        let second = pick(&urls, &[], 8, Priority::Interactive).unwrap();
        assert_ne!(first.url, second.url, "the second goes to the idle replica");
        drop(first);
        set_aside(&second.url);
        let third = pick(&urls, &[], 8, Priority::Interactive).unwrap();
        assert_ne!(third.url, second.url, "a replica set aside is passed over");
        let tried = std::slice::from_ref(&third.url);
        let last_resort = pick(&urls, tried, 8, Priority::Interactive).unwrap();
        assert_eq!(last_resort.url, second.url, "but taken when it is the only one left");
        let both = [third.url.clone(), second.url.clone()];
        assert_eq!(pick(&urls, &both, 8, Priority::Interactive).err(), Some(NoReplica::Unreachable));
    }

    #[tokio::test]
    async fn a_busy_replica_serves_people_before_batches() {
        let urls = vec!["http://127.0.0.1:3/v1".to_owned()];
        let held = pick(&urls, &[], 1, Priority::Interactive).unwrap();
        assert_eq!(pick(&urls, &[], 1, Priority::Batch).err(), Some(NoReplica::Busy));
        let wait = Duration::from_secs(5);
        let (person, batch) = (urls.clone(), urls.clone());
        let person =
            tokio::spawn(
                async move { acquire(&person, &[], 1, Priority::Interactive, wait).await.map(|_| Instant::now()) },
            );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let batch = tokio::spawn(async move {
            let held = acquire(&batch, &[], 1, Priority::Batch, wait).await;
            held.map(|_| Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        let (person, batch) = (person.await.unwrap().unwrap(), batch.await.unwrap().unwrap());
        assert!(person <= batch, "the person got the replica first");
        let gone = acquire(&urls, &[], 0, Priority::Interactive, Duration::from_millis(20)).await;
        assert_eq!(gone.err(), Some(NoReplica::Busy), "no room for as long as it may wait");
    }
}
