//! The compute loop: in the process that holds the `scheduler` lease, it reads the queue from
//! the database, asks `grappe-sched` what to start and preempt, runs jobs with the local
//! executor, enforces time limits and cancellations, and records every end.
//!
//! Record first, act second: a start is recorded (a new numbered run of the job, on this
//! server) before its process is launched, and a job cancelled meanwhile is not launched; every
//! later write names the run, so that a server that lost its lease can never end, requeue or
//! charge a run that is no longer its own. A run whose server died is recovered by the next
//! holder: if its shim wrote how it ended, that end is recorded; otherwise what is left of it is
//! killed and it is requeued (`node_restart`), charged up to its last heartbeat. None runs twice
//! at once, none is left running unwatched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use grappe_db::{Ending, JobRow, MetricPoint, NewRun, Requeued, RunChange, RunChanged, RunRef, now_ms};
use grappe_domain::allocation::{Allocation, Amount};
use grappe_exec::cgroup::Cgroups;
use grappe_exec::sandbox::{self, Isolation, View};
use grappe_exec::shim::Status;
use grappe_exec::{ExecConfig, Exit, Finished, LaunchSpec, LocalExecutor, MetricLine};
use grappe_sched::engine::{self, EngineConfig, Node, PendingJob, ProjectState, Resources, RunningJob, Snapshot};
use tokio::sync::{mpsc, watch};

use crate::kit::state::{AppState, ExecutorKind, ServerConfig};

pub const LEASE: &str = "scheduler";

/// Why a job of a project outside its allocation's period waits.
const OUTSIDE_PERIOD: &str = "AllocationPeriod";
/// The reason of a job that waits for others (`dependency`), and of an array's task held by its
/// array's `%N`, as Slurm says them.
const DEPENDENCY: &str = "Dependency";
const ARRAY_LIMIT: &str = "JobArrayTaskLimit";

/// The PATH every job starts with, before the folder where it finds `grappe` (last, so that a
/// system's programs come first).
const JOB_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a sandboxed job finds this program, so that `grappe train ...` is a job command like
/// any other: the server's own executable, bound read-only. Not under `/opt`: the system
/// folders are bound read-only whole, and bwrap cannot make a mount point inside one.
const JOB_GRAPPE_DIR: &str = "/run/grappe/bin";

/// Why this process is stopping a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
    /// For the job with this id.
    Preempt(Option<i64>),
    /// This server is stopping: the run goes back to the queue.
    Shutdown,
    /// This server lost the lease: the run is no longer its own.
    Lost,
}

struct Stopping {
    why: Stop,
    signalled_at: Instant,
    killed: bool,
}

/// A run this process started.
struct Child {
    run: i64,
    shim_pid: u32,
    stopping: Option<Stopping>,
}

/// A job whose run was recorded by a pass and whose launch is under way in a task of its own,
/// so that the loop goes on deciding meanwhile.
struct Starting {
    job: JobRow,
    gpu_ids: Vec<u32>,
}

/// What a start task reports back.
struct Started {
    job_id: i64,
    outcome: StartOutcome,
}

enum StartOutcome {
    Running {
        run: i64,
        shim_pid: u32,
    },
    /// Its run was recorded, and ended at once as failed: it could not be launched.
    Failed,
}

/// A run's end as the loop learnt it, written with the next pass's starts ([`Loop::commit`]).
struct RunEnd {
    job_id: i64,
    run: i64,
    write: EndWrite,
}

enum EndWrite {
    /// Back to the queue (preempted, or this server stops), or cancelled if that was asked.
    Requeue { reason: String, ended_at: i64 },
    /// Ended: how (its `reason` left empty), and the reason, kept here.
    Finish(Ending<'static>, String),
}

/// Of `jobs`, those that wait for others still (held), and those that never will start, with
/// why: a condition that can no longer hold (`afterok` on a job that failed), a job waited for
/// that is gone, or a stored dependency that no longer reads. A dependency on an array's id
/// (its first task's) is on every task of the array, as in Slurm.
async fn dependency_holds<'a>(
    state: &AppState,
    jobs: impl Iterator<Item = &'a JobRow>,
) -> anyhow::Result<(std::collections::HashSet<i64>, Vec<(i64, String)>)> {
    use grappe_domain::dependency::parse_dependencies;
    let (mut held, mut never) = (std::collections::HashSet::new(), Vec::new());
    let mut waiting = Vec::new();
    for job in jobs.filter(|job| !job.dependencies.is_empty()) {
        match parse_dependencies(&job.dependencies) {
            Ok(on) => waiting.push((job.id, on)),
            Err(error) => never.push((job.id, format!("DependencyNeverSatisfied: {error}"))),
        }
    }
    if waiting.is_empty() {
        return Ok((held, never));
    }
    let mut ids: Vec<i64> = waiting.iter().flat_map(|(_, on)| on.iter().map(|dependency| dependency.job)).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut states: HashMap<i64, Vec<String>> = HashMap::new();
    for (array, task_state) in state.db.array_task_states(&ids).await? {
        states.entry(array).or_default().push(task_state);
    }
    for (id, job_state) in state.db.job_states(&ids).await? {
        states.entry(id).or_insert_with(|| vec![job_state]);
    }
    for (id, on) in waiting {
        let mut ready = true;
        for dependency in on {
            let Some(ended) = states.get(&dependency.job) else {
                never.push((id, format!("DependencyNeverSatisfied: job {} is gone", dependency.job)));
                ready = false;
                break;
            };
            let holds: Vec<Option<bool>> = ended.iter().map(|state| dependency.kind.holds(state)).collect();
            if let Some(position) = holds.iter().position(|holds| *holds == Some(false)) {
                let why = format!("DependencyNeverSatisfied: job {} ended {}", dependency.job, ended[position]);
                never.push((id, why));
                ready = false;
                break;
            }
            ready &= holds.iter().all(|holds| *holds == Some(true));
        }
        if !ready && !never.iter().any(|(job, _)| *job == id) {
            held.insert(id);
        }
    }
    Ok((held, never))
}

/// The pending tasks of arrays held by their array's limit: with `running` of an array running
/// (or handed over), only its first `limit - running` pending tasks may be considered.
fn array_throttled<'a>(
    running: impl Iterator<Item = &'a JobRow>,
    pending: impl Iterator<Item = &'a JobRow>,
) -> std::collections::HashSet<i64> {
    let mut room: HashMap<i64, i64> = HashMap::new();
    for job in running {
        if let (Some(array), Some(limit)) = (job.array_job_id, job.array_limit) {
            *room.entry(array).or_insert(limit) -= 1;
        }
    }
    let mut held = std::collections::HashSet::new();
    let mut pending: Vec<&JobRow> = pending.filter(|job| job.array_limit.is_some()).collect();
    pending.sort_by_key(|job| job.id);
    for job in pending {
        let (Some(array), Some(limit)) = (job.array_job_id, job.array_limit) else { continue };
        let left = room.entry(array).or_insert(limit);
        if *left > 0 {
            *left -= 1;
        } else {
            held.insert(job.id);
        }
    }
    held
}

/// How often the queue is replayed for estimated starts (the live loop waits for a replay, off
/// the async runtime), how many passes a replay makes at most, and by how much an estimate
/// must move to be written again.
const ESTIMATE_EVERY: Duration = Duration::from_secs(5);
const ESTIMATE_PASSES: usize = 500;
/// Past this many pending jobs, no replay: it would hold up the live passes that wait for it.
const ESTIMATE_MAX_PENDING: usize = 5000;
const ESTIMATE_SLACK_MS: i64 = 5000;

struct Loop {
    state: AppState,
    executor: Option<Arc<LocalExecutor>>,
    engine: EngineConfig,
    node: Node,
    children: HashMap<i64, Child>,
    /// The reason last written for each pending job, to write only changes.
    reasons: HashMap<i64, &'static str>,
    /// Reasons changed since they were last written, and when that was: written at most twice a
    /// second (a reason is for people to read; each write is a transaction).
    unwritten_reasons: HashMap<i64, &'static str>,
    reasons_written_at: Option<Instant>,
    /// The estimated start last written for each pending job (Unix ms), and when the queue was
    /// last replayed for them: every [`ESTIMATE_EVERY`].
    estimates: HashMap<i64, i64>,
    estimated_at: Option<Instant>,
    held: bool,
    /// When the lease was last renewed (with the heartbeat of this server's runs): a pass within
    /// a third of its time-to-live does not renew it again (passes come at every submission and
    /// every end).
    renewed_at: Option<Instant>,
    /// Projects, their usage (charged and running) and fair-share, recomputed at most once a
    /// second.
    projects_cache: Option<(Instant, Vec<CachedProject>)>,
    /// The pending jobs as last read: new submissions are read at every pass, the jobs this
    /// server requeues at once, and the whole list of pending ids at least twice a second (to see
    /// cancellations and other servers' changes). It may hold a job cancelled meanwhile, so every
    /// action on it reads through to the database first: a start is a compare-and-set from
    /// `pending`, and a preemption first checks that the job it is for still waits.
    pending: BTreeMap<i64, JobRow>,
    pending_read_at: Option<Instant>,
    /// Jobs whose start is under way, their resources held; and ends that came for them before
    /// their start was reported.
    starting: HashMap<i64, Starting>,
    early_ends: HashMap<i64, Finished>,
    /// Ends of this server's runs not written yet: the pass that follows writes them with its
    /// starts, in one transaction (their resources are free once their processes are gone).
    ends: Vec<RunEnd>,
    started_tx: mpsc::UnboundedSender<Started>,
    /// On Slurm, how far each running job's output file was read for metric lines.
    slurm_outputs: HashMap<i64, SlurmOutput>,
    /// On Slurm, the jobs being handed over (`hand_to_slurm`), each by one task.
    slurm_handing: Arc<std::sync::Mutex<HashSet<i64>>>,
    /// Slurm's view of its jobs as last read, and when: read again at most every
    /// [`SLURM_POLL`] (each `squeue` is work for Slurm's controller, which schedules meanwhile).
    slurm_seen: Option<(Instant, Arc<HashMap<String, grappe_exec::slurm::SlurmJob>>)>,
}

/// Where the reading of a Slurm job's output file stands.
struct SlurmOutput {
    read: u64,
    lines: grappe_exec::MetricLines,
}

/// A wake (a submission, a cancel) that comes within this long of the last pass, while jobs
/// wait, is acted on this long after it: under a stream of submissions, the passes that ends
/// bring and the ticks take several at once; on an idle queue a job still starts at once.
const WAKE_GAP: Duration = Duration::from_millis(5);

/// How often Slurm is asked for its jobs' states at most.
const SLURM_POLL: Duration = Duration::from_millis(500);

/// The most bytes of a running Slurm job's output read in one pass, and of the rest at its end.
const SLURM_READ_MAX: u64 = 1 << 20;
const SLURM_END_READ_MAX: u64 = 16 << 20;

#[derive(Clone)]
struct CachedProject {
    id: i64,
    /// Its allocation's period: its jobs start only within it.
    valid_from: i64,
    valid_until: Option<i64>,
    allocation: Allocation,
    used: Amount,
    share: f64,
    usage_share: f64,
}

/// A path under a job's working directory, for the server to read what the job left: relative,
/// its parts plain names, each folder on the way a real folder (the job owns its directory and
/// could have put a link there to anywhere). Whatever reads the file must still refuse a link
/// in its last part.
pub fn job_work_path(state: &AppState, job_id: i64, relative: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let relative = std::path::Path::new(relative);
    let parts: Vec<&std::ffi::OsStr> = relative
        .components()
        .map(|part| match part {
            Component::Normal(name) => Ok(name),
            _ => Err(format!("`{}`: a path inside the job's working directory, without `..`", relative.display())),
        })
        .collect::<Result<_, _>>()?;
    if parts.is_empty() {
        return Err("give a path inside the job's working directory".to_owned());
    }
    let mut path = state.config.job_dir(job_id).join("work");
    for folder in &parts[..parts.len() - 1] {
        path.push(folder);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_dir() => {}
            _ => return Err(format!("`{}` is not a folder of the job's working directory", relative.display())),
        }
    }
    path.push(parts[parts.len() - 1]);
    Ok(path)
}

pub fn local_node(state: &AppState) -> Node {
    let compute = &state.config.compute;
    Node {
        name: "local".to_owned(),
        partition: "local".to_owned(),
        capacity: Resources { cpus: compute.cpus, gpus: compute.gpus, memory_mb: compute.memory_mb },
    }
}

/// What the server, if root, runs a project's jobs as.
fn identity(config: &ServerConfig, project_id: i64) -> Option<(u32, u32)> {
    if !grappe_exec::running_as_root() {
        return None;
    }
    let id = config.compute.job_uid_base.saturating_add(u32::try_from(project_id).unwrap_or(u32::MAX));
    Some((id, id))
}

/// Finds how this machine sandboxes jobs, and refuses to go on without a sandbox unless the
/// operator said `--unsafe-unsandboxed-jobs`.
pub fn exec_config(config: &ServerConfig, installation: &str) -> anyhow::Result<ExecConfig> {
    let compute = &config.compute;
    let isolation = if compute.sandbox_required {
        let root = grappe_exec::running_as_root();
        let probe_identity = identity(config, 0);
        sandbox::probe(compute.bwrap.as_deref(), probe_identity, !root).map_err(|reason| {
            anyhow::anyhow!(
                "jobs cannot be sandboxed on this machine: {reason}.\nInstall bubblewrap (Debian: `apt install \
                 bubblewrap`), or start with --unsafe-unsandboxed-jobs to run jobs without a sandbox (then any \
                 job can read this server's files and secrets)"
            )
        })?
    } else {
        Isolation::Unsandboxed
    };
    // Job groups are named by job and run under the installation's name: two installations on
    // one machine never share one, and any server of this one finds those of the runs it
    // recovers.
    let cgroups = match Cgroups::detect(&format!("{}/{installation}", compute.cgroup_parent)) {
        Ok(cgroups) => Some(cgroups),
        Err(reason) => {
            tracing::warn!(%reason, "no control group for jobs: memory is bounded by rlimits only");
            None
        }
    };
    let mut hidden = vec![config.data_dir.clone()];
    if let Some(path) = config.database_url.strip_prefix("sqlite://")
        && let Some(dir) = Path::new(path.split('?').next().unwrap_or(path)).parent()
    {
        hidden.push(dir.to_path_buf());
    }
    let shim_program = this_program()?.with_file_name("grappe-shim");
    if !shim_program.is_file() {
        anyhow::bail!("the job shim {} is missing: install grappe-shim beside grappe", shim_program.display());
    }
    tracing::info!(
        sandbox = isolation.describe(),
        cgroups = cgroups.as_ref().map_or_else(|| "none".to_owned(), Cgroups::describe),
        "local executor"
    );
    Ok(ExecConfig {
        shim_program,
        isolation,
        cgroups,
        view: View::standard(&compute.sandbox_binds, hidden),
        max_procs: compute.max_procs,
    })
}

/// How jobs run here, in a few words for the timeline and the compute page.
pub fn executor_summary(state: &AppState) -> String {
    match &state.exec {
        Some(exec) => format!(
            "sandbox: {}; limits: {}",
            exec.isolation.describe(),
            exec.cgroups.as_ref().map_or("rlimits only (no control group)", Cgroups::version)
        ),
        None => "Slurm".to_owned(),
    }
}

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    // Read now, before an upgrade can replace the file (on Slurm, nothing asked before).
    if let Err(error) = this_program() {
        tracing::warn!(error = %format!("{error:#}"), "jobs will not find grappe");
    }
    let (finished_tx, mut finished_rx) = mpsc::channel::<Finished>(1024);
    let (metrics_tx, mut metrics_rx) = mpsc::channel::<MetricLine>(4096);
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Started>();
    let executor = state.exec.as_ref().map(|exec| {
        Arc::new(LocalExecutor::new((**exec).clone(), finished_tx, metrics_tx, &state.config.compute.metric_prefix))
    });
    let mut lp = Loop {
        node: local_node(&state),
        engine: EngineConfig { preempt_exempt_s: state.config.compute.preempt_exempt_s, ..EngineConfig::default() },
        state: state.clone(),
        executor,
        children: HashMap::new(),
        reasons: HashMap::new(),
        unwritten_reasons: HashMap::new(),
        reasons_written_at: None,
        estimates: HashMap::new(),
        estimated_at: None,
        held: false,
        renewed_at: None,
        projects_cache: None,
        pending: BTreeMap::new(),
        pending_read_at: None,
        starting: HashMap::new(),
        early_ends: HashMap::new(),
        ends: Vec::new(),
        started_tx,
        slurm_outputs: HashMap::new(),
        slurm_handing: Arc::default(),
        slurm_seen: None,
    };
    let mut interval = tokio::time::interval(state.config.compute.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = state.scheduler_wake.clone();
    // When the last pass ended, and when a wake that came too soon after it is due.
    let mut passed_at: Option<Instant> = None;
    let mut wake_due: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = wake.notified() => {
                // Only while jobs wait: on an idle queue, a submission makes its pass at once.
                let busy = !lp.pending.is_empty();
                if let Some(due) = passed_at.map(|at| at + WAKE_GAP).filter(|due| busy && *due > Instant::now()) {
                    wake_due = Some(due);
                    continue;
                }
            }
            () = tokio::time::sleep_until(wake_due.unwrap_or_else(Instant::now).into()), if wake_due.is_some() => {}
            Some(finished) = finished_rx.recv() => {
                lp.finished(finished).await;
                while let Ok(more) = finished_rx.try_recv() {
                    lp.finished(more).await;
                }
            }
            Some(started) = started_rx.recv() => {
                let mut changed = lp.started(started).await;
                while let Ok(more) = started_rx.try_recv() {
                    changed |= lp.started(more).await;
                }
                if !changed {
                    // A run launched as decided: its resources were held already.
                    continue;
                }
            }
            Some(metric) = metrics_rx.recv() => {
                let mut batch = vec![metric];
                while let Ok(more) = metrics_rx.try_recv() {
                    batch.push(more);
                }
                lp.metrics(batch, None).await;
                continue;
            }
            _ = shutdown.changed() => break,
        }
        wake_due = None;
        let started = Instant::now();
        if let Err(error) = lp.pass().await {
            tracing::warn!(error = %error, "scheduling pass failed");
        }
        // Ends that no pass wrote (no lease, or the pass failed before its starts).
        lp.commit(Vec::new()).await;
        passed_at = Some(Instant::now());
        tracing::debug!(pass_us = started.elapsed().as_micros() as u64, "scheduling pass");
    }
    lp.stop_all(Stop::Shutdown, &mut finished_rx, &mut started_rx).await;
    if let Some(executor) = &lp.executor {
        executor.wind_down().await;
    }
    if lp.held {
        state.scheduler_here.store(false, Ordering::Relaxed);
        let _ = state.db.release_lease(LEASE, &state.instance).await;
    }
}

/// The end state, exit code and reason of a run that ended on its own or was stopped.
fn ending_for(finished: &Finished, stop: Option<Stop>, memory_mb: i64) -> (&'static str, Option<i64>, String) {
    let code = match finished.exit {
        Exit::Code(code) => Some(i64::from(code)),
        Exit::Signal(signal) => Some(128 + i64::from(signal)),
        Exit::NotStarted(_) => None,
    };
    match (stop, &finished.exit) {
        (Some(Stop::Cancel), _) => ("cancelled", code, "cancelled".to_owned()),
        (_, Exit::NotStarted(reason)) => ("failed", None, format!("the command could not be started: {reason}")),
        _ if finished.oom_killed => ("failed", code, format!("out of memory (its limit is {memory_mb} MB)")),
        (Some(Stop::Timeout), _) => ("timeout", code, "time limit reached".to_owned()),
        (_, Exit::Code(0)) => ("completed", code, String::new()),
        (_, Exit::Code(_)) => ("failed", code, String::new()),
        (_, Exit::Signal(signal)) => ("failed", code, format!("killed by signal {signal} from outside Grappe")),
    }
}

impl Loop {
    fn me(&self) -> &str {
        &self.state.instance
    }

    /// A run of this server ended: its end is written by the pass that follows, with that
    /// pass's starts ([`Loop::commit`]).
    async fn finished(&mut self, finished: Finished) {
        let id = finished.job_id;
        if self.starting.contains_key(&id) {
            self.early_ends.insert(id, finished);
            return;
        }
        let Some(child) = self.children.get(&id).filter(|child| child.run == finished.run) else { return };
        let stop = child.stopping.as_ref().map(|stopping| stopping.why);
        self.children.remove(&id);
        let ended_at = finished.ended_at_ms.unwrap_or_else(now_ms);
        let write = match stop {
            Some(Stop::Lost) => return,
            Some(Stop::Preempt(for_job)) => EndWrite::Requeue {
                reason: for_job.map_or_else(|| "preempted".to_owned(), |job| format!("preempted for job {job}")),
                ended_at,
            },
            Some(Stop::Shutdown) => EndWrite::Requeue { reason: "server_restart".to_owned(), ended_at },
            _ => {
                let memory_mb = if finished.oom_killed {
                    self.state.db.job(id).await.ok().flatten().map_or(0, |job| job.memory_mb)
                } else {
                    0
                };
                let (state, exit_code, mut reason) = ending_for(&finished, stop, memory_mb);
                if finished.dropped_bytes > 0 {
                    reason = format!(
                        "{reason}{}output capped ({} bytes dropped)",
                        if reason.is_empty() { "" } else { "; " },
                        finished.dropped_bytes
                    );
                }
                let ending = Ending {
                    state,
                    exit_code,
                    reason: "",
                    ended_at,
                    cpu_time_ms: finished.cpu_time_ms.map(|ms| ms as i64),
                    memory_peak_mb: finished.memory_peak_mb.map(|mb| mb as i64),
                };
                EndWrite::Finish(ending, reason)
            }
        };
        self.ends.push(RunEnd { job_id: id, run: finished.run, write });
    }

    /// Writes the ends of runs not written yet and the runs of `starts` (decided by a pass: the
    /// job and its GPUs) in one transaction, then launches each run recorded (a job no longer
    /// pending, cancelled meanwhile, starts nothing). If the write fails, the jobs to start wait
    /// again, and the ended runs, still `running` with no process, are recovered by the next
    /// pass from what their shims wrote.
    async fn commit(&mut self, starts: Vec<(JobRow, Vec<u32>)>) {
        if self.ends.is_empty() && starts.is_empty() {
            return;
        }
        let ends = std::mem::take(&mut self.ends);
        let instance = self.state.instance.clone();
        let detail = executor_summary(&self.state);
        let gpu_lists: Vec<String> = starts.iter().map(|(_, gpu_ids)| gpu_list(gpu_ids)).collect();
        let mut changes = Vec::with_capacity(ends.len() + starts.len());
        for end in &ends {
            let run = RunRef { job_id: end.job_id, run: end.run, instance: &instance };
            changes.push(match &end.write {
                EndWrite::Requeue { reason, ended_at } => RunChange::Requeue(run, reason, *ended_at),
                EndWrite::Finish(ending, reason) => RunChange::Finish(run, Ending { reason, ..*ending }),
            });
        }
        for ((job, _), gpu_ids) in starts.iter().zip(&gpu_lists) {
            changes.push(RunChange::Start { job_id: job.id, instance: &instance, gpu_ids, detail: &detail });
        }
        let done = match self.state.db.change_runs(&changes).await {
            Ok(done) => done,
            Err(error) => {
                tracing::error!(error = %error, "recording runs' ends and starts failed");
                for (job, _) in starts {
                    self.pending.insert(job.id, job);
                }
                return;
            }
        };
        drop(changes);
        let mut ended = done;
        let started = ended.split_off(ends.len());
        for (end, outcome) in ends.iter().zip(&ended) {
            if *outcome == RunChanged::Requeued(Requeued::Pending)
                && let Err(error) = self.requeued(end.job_id).await
            {
                tracing::warn!(job.id = end.job_id, error = %error, "reading a requeued job failed");
            }
        }
        for ((job, gpu_ids), outcome) in starts.into_iter().zip(started) {
            if let RunChanged::Started(Some(new_run)) = outcome {
                self.launch(job, gpu_ids, new_run);
            }
        }
    }

    /// Takes a start's outcome; whether it changed what the next pass would decide (a start
    /// that did not happen, or a run that already ended, gives its resources back).
    async fn started(&mut self, started: Started) -> bool {
        let id = started.job_id;
        self.starting.remove(&id);
        let StartOutcome::Running { run, shim_pid } = started.outcome else {
            // Recorded and ended as failed by its start task.
            self.early_ends.remove(&id);
            return true;
        };
        self.children.insert(id, Child { run, shim_pid, stopping: None });
        if !self.held {
            // The lease was lost while it started: the new holder recovers it.
            self.stop(id, Stop::Lost);
            self.kill_all();
        }
        match self.early_ends.remove(&id) {
            Some(finished) => {
                self.finished(finished).await;
                true
            }
            None => false,
        }
    }

    /// Stores the metric lines of jobs' output, and hands a model server's announcement
    /// (`{"serve": {"model", "url"}}`) to the gateway, with `node`, the Slurm node that runs the
    /// job (none for this machine's jobs). A line that is not a metric (no JSON
    /// object with a key and a number), or whose point is refused (a value not finite or past ±1e15), and
    /// the points past a job's quota, are dropped and counted on the job (its page shows how
    /// many), never stored.
    async fn metrics(&mut self, lines: Vec<MetricLine>, node: Option<&str>) {
        #[derive(Default)]
        struct Batch {
            points: Vec<MetricPoint>,
            unreadable: u64,
        }
        let mut by_job: HashMap<i64, Batch> = HashMap::new();
        let now = now_ms();
        for line in lines {
            let batch = by_job.entry(line.job_id).or_default();
            let parsed = serde_json::from_str::<serde_json::Value>(&line.line).ok();
            if let Some(serve) = parsed.as_ref().and_then(|value| value.get("serve")) {
                // A model server's announcement, checked off this loop.
                let node = node.map(str::to_owned);
                tokio::spawn(crate::gateway::announce(self.state.clone(), line.job_id, serve.clone(), node));
                continue;
            }
            let point = parsed.and_then(|value| {
                let (key, number) = (value["key"].as_str()?, value["value"].as_f64()?);
                if super::metric_refusal(key, number).is_some() {
                    return None;
                }
                let step = value["step"].as_i64().unwrap_or(0);
                Some(MetricPoint { key: key.to_owned(), value: number, step, at: now })
            });
            match point {
                Some(point) => batch.points.push(point),
                None => batch.unreadable += 1,
            }
        }
        let limit = self.state.config.compute.metric_points_per_job;
        for (job_id, batch) in by_job {
            if let Err(error) = self.state.db.add_output_metrics(job_id, &batch.points, batch.unreadable, limit).await {
                tracing::warn!(job.id = job_id, error = %error, "storing metrics failed");
            }
        }
    }

    /// Signals every run of this process to stop, waits for them for the grace period, kills
    /// what is left and records each end.
    async fn stop_all(
        &mut self,
        why: Stop,
        finished_rx: &mut mpsc::Receiver<Finished>,
        started_rx: &mut mpsc::UnboundedReceiver<Started>,
    ) {
        let grace = self.state.config.compute.grace;
        let deadline = Instant::now() + grace + Duration::from_secs(5);
        let mut killed = false;
        while !(self.children.is_empty() && self.starting.is_empty()) && Instant::now() < deadline {
            let ids: Vec<i64> = self.children.keys().copied().collect();
            for id in ids {
                self.stop(id, why);
            }
            if !killed && Instant::now() >= deadline - Duration::from_secs(5) {
                self.kill_all();
                killed = true;
            }
            tokio::select! {
                Some(finished) = finished_rx.recv() => self.finished(finished).await,
                Some(started) = started_rx.recv() => {
                    self.started(started).await;
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            self.commit(Vec::new()).await;
        }
    }

    fn kill_all(&mut self) {
        let Some(executor) = &self.executor else { return };
        for (id, child) in &self.children {
            executor.kill(*id, child.run, child.shim_pid);
        }
    }

    /// SIGTERM to a run this process started (once), remembering why.
    fn stop(&mut self, id: i64, why: Stop) {
        let Some(child) = self.children.get_mut(&id) else { return };
        if let Some(stopping) = &mut child.stopping {
            // A cancel or this server's end overrides a preemption or a time limit.
            if matches!(why, Stop::Cancel | Stop::Shutdown | Stop::Lost) && stopping.why != Stop::Cancel {
                stopping.why = why;
            }
            return;
        }
        let _ = grappe_exec::terminate(child.shim_pid);
        child.stopping = Some(Stopping { why, signalled_at: Instant::now(), killed: false });
    }

    async fn pass(&mut self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let ttl = state.config.lease_ttl;
        let fresh = self.held && self.renewed_at.is_some_and(|at| at.elapsed() < ttl / 3);
        let held =
            fresh || state.db.try_acquire_lease(LEASE, &state.instance, now_ms(), ttl.as_millis() as i64).await?;
        if held != self.held {
            tracing::info!(lease = LEASE, instance = %state.instance, held, "scheduler lease changed hands");
            self.held = held;
            state.scheduler_here.store(held, Ordering::Relaxed);
            if !held {
                // Another server now runs the jobs: ours are no longer ours.
                let ids: Vec<i64> = self.children.keys().copied().collect();
                for id in ids {
                    self.stop(id, Stop::Lost);
                }
                self.kill_all();
                self.pending.clear();
            }
        }
        if !held {
            return Ok(());
        }
        if !fresh {
            self.renewed_at = Some(Instant::now());
            state.db.heartbeat(&state.instance).await?;
        }
        if state.config.compute.executor == ExecutorKind::Slurm {
            return self.slurm_pass().await;
        }
        // New submissions are read with the running jobs; the whole queue at least twice a second.
        let partial = self.pending_read_at.is_some_and(|at| at.elapsed() < Duration::from_millis(500));
        let newest = self.pending.keys().next_back().copied().unwrap_or(0);
        let (running, new_pending) = state.db.running_and_pending_after(partial.then_some(newest)).await?;
        let mut mine = Vec::with_capacity(running.len());
        for job in running {
            if self.starting.contains_key(&job.id) || self.ends.iter().any(|end| end.job_id == job.id) {
                continue;
            }
            if job.instance.as_deref() == Some(self.me()) && self.children.contains_key(&job.id) {
                self.enforce(&job);
                mine.push(job);
            } else {
                self.recover(&job).await?;
            }
        }
        self.refresh_pending(partial.then_some(new_pending)).await?;
        self.schedule(&mine).await
    }

    /// A running job that no live process of this server runs: its server died (or lost the
    /// lease), or this server failed to record its end. Records the end its shim wrote, or
    /// kills what is left and requeues it, charged up to its last heartbeat.
    async fn recover(&mut self, job: &JobRow) -> anyhow::Result<()> {
        let Some(instance) = job.instance.as_deref() else { return Ok(()) };
        let run = RunRef { job_id: job.id, run: job.run, instance };
        let run_dir = self.state.config.job_dir(job.id);
        let db = &self.state.db;
        let status = Status::read(&grappe_exec::status_path(&run_dir, job.run));
        let ending = |state, exit_code, reason: String, ended_at| (state, exit_code, reason, ended_at);
        let ended = match status {
            Some(Status::Exited { code, ended_at_ms }) => Some(ending(
                if code == 0 { "completed" } else { "failed" },
                Some(i64::from(code)),
                String::new(),
                ended_at_ms,
            )),
            Some(Status::Signalled { signal, ended_at_ms }) => {
                Some(ending("failed", Some(128 + i64::from(signal)), format!("killed by signal {signal}"), ended_at_ms))
            }
            Some(Status::SetupFailed(reason)) => Some(ending(
                "failed",
                None,
                format!("the command could not be started: {reason}"),
                job.started_at.unwrap_or(0),
            )),
            None => None,
        };
        if let Some((state, exit_code, reason, ended_at)) = ended {
            let ending =
                Ending { state, exit_code, reason: &reason, ended_at, cpu_time_ms: None, memory_peak_mb: None };
            if db.finish_run(run, &ending).await? {
                tracing::warn!(job.id = job.id, "recorded the end of a job whose server had stopped");
            }
        } else {
            if let Some(executor) = &self.executor {
                executor.kill_leftovers(&run_dir, job.id, job.run);
            }
            let until = job.heartbeat_at.or(job.started_at).unwrap_or(0);
            match db.requeue_run(run, "node_restart", until).await? {
                Requeued::Pending => {
                    tracing::warn!(job.id = job.id, "requeued a job whose server had stopped");
                    self.requeued(job.id).await?;
                }
                Requeued::Cancelled => {
                    tracing::warn!(job.id = job.id, "a job whose server had stopped ended cancelled")
                }
                Requeued::Stale => {}
            }
        }
        self.state.scheduler_wake.notify_one();
        Ok(())
    }

    /// A job this server sent back to the queue: pending again at once.
    async fn requeued(&mut self, id: i64) -> Result<(), grappe_db::DbError> {
        if let Some(job) = self.state.db.job(id).await?.filter(|job| job.state == "pending") {
            self.pending.insert(id, job);
        }
        Ok(())
    }

    /// Adds `new` (pending jobs submitted since the last read) to the queue, or with `None`
    /// reads the whole queue again.
    async fn refresh_pending(&mut self, new: Option<Vec<JobRow>>) -> anyhow::Result<()> {
        let db = &self.state.db;
        if let Some(new) = new {
            for job in new {
                if !self.starting.contains_key(&job.id) {
                    self.pending.insert(job.id, job);
                }
            }
            return Ok(());
        }
        let ids = db.pending_job_ids().await?;
        self.pending_read_at = Some(Instant::now());
        let keep: std::collections::HashSet<i64> =
            ids.iter().copied().filter(|id| !self.starting.contains_key(id)).collect();
        self.pending.retain(|id, _| keep.contains(id));
        self.reasons.retain(|id, _| keep.contains(id));
        self.unwritten_reasons.retain(|id, _| keep.contains(id));
        let missing: Vec<i64> =
            ids.into_iter().filter(|id| keep.contains(id) && !self.pending.contains_key(id)).collect();
        if !missing.is_empty() {
            for job in db.pending_jobs_in(&missing).await? {
                self.pending.insert(job.id, job);
            }
        }
        Ok(())
    }

    /// Time limits and cancellations of a run this process started: SIGTERM, then SIGKILL after
    /// the grace period.
    fn enforce(&mut self, job: &JobRow) {
        let over_time = job.started_at.is_some_and(|started| now_ms() > started + job.time_limit_s * 1000);
        if job.cancel_requested {
            self.stop(job.id, Stop::Cancel);
        } else if over_time {
            self.stop(job.id, Stop::Timeout);
        }
        let grace = self.state.config.compute.grace;
        let Some(child) = self.children.get_mut(&job.id) else { return };
        if let Some(stopping) = &mut child.stopping
            && !stopping.killed
            && stopping.signalled_at.elapsed() >= grace
        {
            if let Some(executor) = &self.executor {
                executor.kill(job.id, child.run, child.shim_pid);
            }
            stopping.killed = true;
        }
    }

    async fn project_cache(&mut self) -> anyhow::Result<Vec<CachedProject>> {
        if let Some((at, projects)) = &self.projects_cache
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(projects.clone());
        }
        let db = &self.state.db;
        let projects = db.list_projects().await?;
        let now = now_ms();
        let half_life_ms = 14 * 86_400 * 1000;
        let usage = db.usage_since(now - 8 * half_life_ms).await?;
        // One unit: a GPU-second, or eight CPU-seconds.
        let units = |gpu_ms: i64, cpu_ms: i64| (gpu_ms as f64 + cpu_ms as f64 / 8.0) / 1000.0;
        let mut decayed: HashMap<i64, f64> = HashMap::new();
        for (project, at, gpu, cpu) in &usage {
            *decayed.entry(*project).or_default() +=
                engine::decayed(units(*gpu, *cpu), (now - at) / 1000, half_life_ms / 1000);
        }
        let total_decayed: f64 = decayed.values().sum();
        let granted = |p: &grappe_db::ProjectRow| units(p.gpu_hours * 3_600_000, p.cpu_hours * 3_600_000);
        let total_allocation: f64 = projects.iter().map(granted).sum();
        let mut cached = Vec::with_capacity(projects.len());
        for project in &projects {
            // Charged, and what its running jobs have run so far (the 100 % rule).
            let (charged, commitments) = db.project_standing(project.id, now).await?;
            let used = charged.plus(commitments.running);
            cached.push(CachedProject {
                id: project.id,
                valid_from: project.valid_from,
                valid_until: project.valid_until,
                allocation: Allocation { gpu_hours: project.gpu_hours, cpu_hours: project.cpu_hours },
                used,
                share: if total_allocation > 0.0 { granted(project) / total_allocation } else { 0.0 },
                usage_share: if total_decayed > 0.0 {
                    decayed.get(&project.id).copied().unwrap_or(0.0) / total_decayed
                } else {
                    0.0
                },
            });
        }
        self.projects_cache = Some((Instant::now(), cached.clone()));
        Ok(cached)
    }

    async fn schedule(&mut self, running: &[JobRow]) -> anyhow::Result<()> {
        let now = now_ms();
        let cache = self.project_cache().await?;
        // Jobs of a project outside its allocation's period wait, and say why.
        let outside: std::collections::HashSet<i64> = cache
            .iter()
            .filter(|project| project.valid_from > now || project.valid_until.is_some_and(|until| until < now))
            .map(|project| project.id)
            .collect();
        let projects: Vec<ProjectState> = cache
            .into_iter()
            .map(|project| ProjectState {
                id: project.id as u64,
                share: project.share,
                usage_share: project.usage_share,
                allocation_used: project.allocation.share(project.used),
            })
            .collect();
        let (mut held, never) = dependency_holds(&self.state, self.pending.values()).await?;
        for (id, why) in never {
            self.state.db.end_pending(id, "cancelled", &why).await?;
            self.pending.remove(&id);
        }
        let running_tasks = running.iter().chain(self.starting.values().map(|starting| &starting.job));
        let throttled = array_throttled(running_tasks, self.pending.values());
        held.extend(throttled.iter().copied());
        let running_view: Vec<RunningJob> = running
            .iter()
            .map(|job| (job, job.started_at.unwrap_or(now)))
            .chain(self.starting.values().map(|starting| (&starting.job, now)))
            .map(|(job, started_at)| RunningJob {
                id: job.id as u64,
                project: job.project_id as u64,
                qos: job.qos.clone(),
                node: 0,
                request: resources(job),
                start_s: started_at / 1000,
                time_limit_s: job.time_limit_s,
                stopping: self.children.get(&job.id).is_some_and(|child| child.stopping.is_some()),
            })
            .collect();
        let pending_view: Vec<PendingJob> = self
            .pending
            .values()
            .filter(|job| !outside.contains(&job.project_id) && !held.contains(&job.id))
            .map(|job| PendingJob {
                id: job.id as u64,
                user: job.user_id.unwrap_or(0) as u64,
                project: job.project_id as u64,
                qos: job.qos.clone(),
                partition: None,
                request: resources(job),
                time_limit_s: job.time_limit_s,
                submit_s: job.submitted_at / 1000,
            })
            .collect();
        let nodes = [self.node.clone()];
        let snapshot = Snapshot {
            now_s: now / 1000,
            nodes: &nodes,
            running: &running_view,
            pending: &pending_view,
            projects: &projects,
        };
        let decisions = engine::schedule(&self.engine, &snapshot);
        if self.estimated_at.is_none_or(|at| at.elapsed() >= ESTIMATE_EVERY)
            && pending_view.len() <= ESTIMATE_MAX_PENDING
        {
            self.estimated_at = Some(Instant::now());
            let (nodes, running, pending) = (nodes.to_vec(), running_view.clone(), pending_view.clone());
            let (engine, projects) = (self.engine.clone(), projects.clone());
            let starts = tokio::task::spawn_blocking(move || {
                let snapshot = Snapshot {
                    now_s: now / 1000,
                    nodes: &nodes,
                    running: &running,
                    pending: &pending,
                    projects: &projects,
                };
                grappe_sched::estimate::estimate_starts(&engine, &snapshot, ESTIMATE_PASSES)
            })
            .await?;
            self.write_estimates(&pending_view, starts).await?;
        }
        if let Some(for_job) = decisions.preempt_for.map(|id| id as i64) {
            // Read through: the job to preempt for may have been cancelled since it was read.
            if self.state.db.job(for_job).await?.is_some_and(|job| job.state == "pending") {
                for victim in &decisions.preempt {
                    self.stop(*victim as i64, Stop::Preempt(Some(for_job)));
                }
            } else {
                self.pending.remove(&for_job);
            }
        }
        let mut used_gpus: Vec<u32> = running
            .iter()
            .flat_map(|job| job.gpu_ids.split(',').filter_map(|id| id.parse().ok()).collect::<Vec<u32>>())
            .chain(self.starting.values().flat_map(|starting| starting.gpu_ids.clone()))
            .collect();
        let mut starts = Vec::with_capacity(decisions.start.len());
        for (id, _node) in &decisions.start {
            let Some(job) = self.pending.remove(&(*id as i64)) else { continue };
            let gpu_ids: Vec<u32> = (0..self.state.config.compute.gpus)
                .filter(|gpu| !used_gpus.contains(gpu))
                .take(job.gpus as usize)
                .collect();
            used_gpus.extend(&gpu_ids);
            self.reasons.remove(&job.id);
            self.unwritten_reasons.remove(&job.id);
            starts.push((job, gpu_ids));
        }
        self.commit(starts).await;
        let expired =
            self.pending.values().filter(|job| outside.contains(&job.project_id)).map(|job| (job.id, OUTSIDE_PERIOD));
        let waiting = decisions.waiting.iter().map(|(id, _, reason)| (*id as i64, reason.as_str()));
        let dependent = held.iter().map(|id| (*id, if throttled.contains(id) { ARRAY_LIMIT } else { DEPENDENCY }));
        for (id, reason) in waiting.chain(expired).chain(dependent) {
            if self.reasons.get(&id) != Some(&reason) {
                self.unwritten_reasons.insert(id, reason);
            } else {
                self.unwritten_reasons.remove(&id);
            }
        }
        if !self.unwritten_reasons.is_empty()
            && self.reasons_written_at.is_none_or(|at| at.elapsed() >= Duration::from_millis(500))
        {
            let changed: Vec<(i64, &'static str)> = self.unwritten_reasons.drain().collect();
            self.state.db.set_reasons(&changed).await?;
            self.reasons.extend(changed);
            self.reasons_written_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Writes the estimates that moved by more than [`ESTIMATE_SLACK_MS`] (or appeared or went).
    async fn write_estimates(&mut self, pending: &[PendingJob], starts: Vec<(u64, i64)>) -> anyhow::Result<()> {
        let starts: HashMap<i64, i64> = starts.into_iter().map(|(id, at_s)| (id as i64, at_s * 1000)).collect();
        let mut changed = Vec::new();
        for job in pending {
            let id = job.id as i64;
            let (before, now) = (self.estimates.get(&id).copied(), starts.get(&id).copied());
            let moved = match (before, now) {
                (Some(before), Some(now)) => (before - now).abs() > ESTIMATE_SLACK_MS,
                (before, now) => before.is_some() != now.is_some(),
            };
            if moved {
                changed.push((id, now));
            }
        }
        self.state.db.set_estimated_starts(&changed).await?;
        self.estimates = starts;
        Ok(())
    }

    /// Launches a run just recorded in a task of its own, its resources held until it reports
    /// back as [`Started`].
    fn launch(&mut self, job: JobRow, gpu_ids: Vec<u32>, new_run: NewRun) {
        let Some(executor) = self.executor.clone() else { return };
        let (state, started_tx, id) = (self.state.clone(), self.started_tx.clone(), job.id);
        self.starting.insert(id, Starting { job: job.clone(), gpu_ids: gpu_ids.clone() });
        tokio::spawn(async move {
            let outcome = match launch_run(&state, &executor, &job, gpu_ids, new_run).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!(job.id = id, error = %format!("{error:#}"), "starting a job failed");
                    StartOutcome::Failed
                }
            };
            let _ = started_tx.send(Started { job_id: id, outcome });
        });
    }

    /// Slurm decides: every queued job is handed to `sbatch` at once, and Slurm's view of each
    /// (`squeue --json`, which no job can forge: `grappe_exec::slurm`) is copied into Grappe's
    /// states, with accounting kept here.
    async fn slurm_pass(&mut self) -> anyhow::Result<()> {
        use grappe_exec::slurm;
        let db = self.state.db.clone();
        let active = db.active_jobs().await?;
        // The outputs of jobs no longer active (ended at the last pass, or by another path)
        // are read no more.
        let ids: HashSet<i64> = active.iter().map(|job| job.id).collect();
        self.slurm_outputs.retain(|id, _| ids.contains(id));
        if active.is_empty() {
            return Ok(());
        }
        let known = match &self.slurm_seen {
            Some((at, known)) if at.elapsed() < SLURM_POLL => known.clone(),
            _ => {
                let known = Arc::new(slurm::show_jobs().await?);
                self.slurm_seen = Some((Instant::now(), known.clone()));
                known
            }
        };
        let mut reasons = Vec::new();
        // An array's tasks are handed over up to its limit; the rest wait here.
        let handed = active.iter().filter(|job| job.external_id.is_some());
        let throttled = array_throttled(handed, active.iter().filter(|job| job.external_id.is_none()));
        for job in active {
            let Some(external) = job.external_id.clone() else {
                // Held here until what it waits for has ended (Slurm is handed ready jobs only).
                let (held, never) = dependency_holds(&self.state, std::iter::once(&job)).await?;
                if let Some((_, why)) = never.first() {
                    db.end_pending(job.id, "cancelled", why).await?;
                    continue;
                }
                let waits = if !held.is_empty() {
                    Some(DEPENDENCY)
                } else {
                    throttled.contains(&job.id).then_some(ARRAY_LIMIT)
                };
                if let Some(reason) = waits {
                    if job.reason != reason {
                        db.set_reasons(&[(job.id, reason)]).await?;
                    }
                    continue;
                }
                // Handed over by a task of its own: preparing its inputs may take as long as
                // copying a dataset, and the pass goes on meanwhile for every other job.
                let handing = self.slurm_handing.clone();
                if handing.lock().is_ok_and(|mut set| set.insert(job.id)) {
                    let state = self.state.clone();
                    tokio::spawn(async move {
                        let job_id = job.id;
                        if let Err(error) = hand_to_slurm(&state, job).await {
                            tracing::warn!(job = job_id, error = %format!("{error:#}"), "handing a job to Slurm failed");
                        }
                        if let Ok(mut set) = handing.lock() {
                            set.remove(&job_id);
                        }
                        state.scheduler_wake.notify_one();
                    });
                }
                continue;
            };
            let instance = format!("slurm:{external}");
            let run = RunRef { job_id: job.id, run: job.run, instance: &instance };
            if job.cancel_requested
                && let Err(error) = slurm::scancel(&external).await
            {
                tracing::warn!(job.id = job.id, %error, "scancel failed");
            }
            let Some(seen) = known.get(&external) else {
                if now_ms() - job.submitted_at > 120_000 {
                    let reason = format!("Slurm no longer knows job {external}");
                    if job.state == "running" {
                        let ending = Ending::failed(&reason, now_ms());
                        db.finish_run(run, &ending).await?;
                    } else {
                        db.end_pending(job.id, "failed", &reason).await?;
                    }
                }
                continue;
            };
            let exit_code = seen.exit_code.map(|code| {
                if seen.signal.unwrap_or(0) > 0 { 128 + i64::from(seen.signal.unwrap_or(0)) } else { i64::from(code) }
            });
            let ended = match seen.state.as_str() {
                "COMPLETED" => Some(("completed", String::new())),
                "CANCELLED" => Some(("cancelled", "cancelled in Slurm".to_owned())),
                "TIMEOUT" | "DEADLINE" => Some(("timeout", "time limit reached".to_owned())),
                "OUT_OF_MEMORY" => Some(("failed", "out of memory".to_owned())),
                "FAILED" | "NODE_FAIL" | "BOOT_FAIL" => Some(("failed", format!("Slurm: {}", seen.state))),
                _ => None,
            };
            let running = matches!(seen.state.as_str(), "RUNNING" | "COMPLETING" | "SUSPENDED");
            if job.state == "pending" && running {
                // Recorded running before its output is read: a model server's announcement
                // read now is checked against a running job.
                db.start_run(job.id, &instance, "", "").await?;
            }
            if running || ended.is_some() {
                // Seen here to start its first run: its output is read from the start. Found
                // running, or rerun (Slurm appends to the same file), by a server that did not
                // read the runs before: from its end, not to store points twice.
                let from_start = job.state == "pending" && job.restart_count == 0;
                let max = if ended.is_some() { SLURM_END_READ_MAX } else { SLURM_READ_MAX };
                let lines = self.slurm_metric_lines(job.id, from_start, max);
                if !lines.is_empty() {
                    // A node Slurm did not name (empty) matches no address: nothing is announced.
                    let node = seen.batch_host.clone().unwrap_or_default();
                    self.metrics(lines, Some(&node)).await;
                }
            }
            match (job.state.as_str(), ended, running) {
                ("pending", Some(("cancelled", reason)), _) => {
                    db.end_pending(job.id, "cancelled", &reason).await?;
                }
                (_, Some((state, reason)), _) => {
                    let run = if job.state == "pending" {
                        match db.start_run(job.id, &instance, "", "").await? {
                            Some(new_run) => RunRef { run: new_run.run, ..run },
                            None => continue,
                        }
                    } else {
                        run
                    };
                    let ending = Ending {
                        state,
                        exit_code,
                        reason: &reason,
                        ended_at: now_ms(),
                        cpu_time_ms: None,
                        memory_peak_mb: None,
                    };
                    db.finish_run(run, &ending).await?;
                }
                ("running", None, false) => {
                    db.requeue_run(run, &format!("requeued by Slurm ({})", seen.state), now_ms()).await?;
                }
                ("pending", None, false) if job.reason != seen.reason => reasons.push((job.id, seen.reason.clone())),
                _ => {}
            }
        }
        let reasons: Vec<(i64, &str)> = reasons.iter().map(|(id, reason)| (*id, reason.as_str())).collect();
        db.set_reasons(&reasons).await?;
        Ok(())
    }

    /// The metric lines a Slurm job printed since its output file was last read, at most `max`
    /// bytes of it. `from_start`: the first read starts at the file's beginning, else at its end.
    fn slurm_metric_lines(&mut self, job_id: i64, from_start: bool, max: u64) -> Vec<MetricLine> {
        let path = self.state.config.job_log(job_id);
        let prefix = &self.state.config.compute.metric_prefix;
        let output = match self.slurm_outputs.entry(job_id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                // Found running: from the file's end (no file yet: Slurm has not started it).
                let read = if from_start {
                    0
                } else {
                    grappe_exec::slurm::read_output(&path, 0, 0).ok().flatten().map_or(0, |(_, length)| length)
                };
                entry.insert(SlurmOutput { read, lines: grappe_exec::MetricLines::new(prefix) })
            }
        };
        let Ok(Some((bytes, length))) = grappe_exec::slurm::read_output(&path, output.read, max) else {
            return Vec::new();
        };
        if output.read > length {
            // The file was cut shorter than what was read: read again from its start next time.
            *output = SlurmOutput { read: 0, lines: grappe_exec::MetricLines::new(prefix) };
            return Vec::new();
        }
        output.read += bytes.len() as u64;
        let mut found = Vec::new();
        output.lines.feed(&bytes, |line| found.push(MetricLine { job_id, line }));
        found
    }
}

/// The GPUs' ids as `0,1`, as runs record them.
fn gpu_list(gpu_ids: &[u32]) -> String {
    gpu_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Launches a run just recorded; one that cannot be launched ends failed with the reason.
async fn launch_run(
    state: &AppState,
    executor: &LocalExecutor,
    job: &JobRow,
    gpu_ids: Vec<u32>,
    new_run: NewRun,
) -> anyhow::Result<StartOutcome> {
    let gpu_list = gpu_list(&gpu_ids);
    let run = new_run.run;
    let launched = async {
        let sandboxed = executor.config().isolation.is_sandboxed();
        let identity = identity(&state.config, job.project_id);
        let dirs = prepare_dirs(state, job, &new_run.workdir, identity).await?;
        let (grappe_bind, grappe_dir) = grappe_for_jobs(sandboxed)?;
        let mut env = job_env(state, job, &new_run.env, &dirs, &grappe_dir)?;
        env.push(("GRAPPE_RUN".to_owned(), run.to_string()));
        env.push(("GRAPPE_GPU_IDS".to_owned(), gpu_list.clone()));
        // In the sandbox only the job's GPUs exist, numbered from 0; outside it, their ids.
        let visible = if sandboxed {
            (0..gpu_ids.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
        } else {
            gpu_list.clone()
        };
        env.push(("CUDA_VISIBLE_DEVICES".to_owned(), visible));
        let inputs = crate::data::inputs::prepare(state, &new_run.inputs, &dirs.run_dir, sandboxed).await?;
        if let Some(place) = inputs.env {
            env.push(("GRAPPE_INPUTS".to_owned(), place));
        }
        let spec = LaunchSpec {
            job_id: job.id,
            run,
            argv: serde_json::from_str(&new_run.command)?,
            env,
            workdir: dirs.work.clone(),
            writable: vec![dirs.checkpoints.clone()],
            inputs: inputs.binds.into_iter().chain(grappe_bind).collect(),
            log_path: state.config.job_log(job.id),
            run_dir: dirs.run_dir.clone(),
            cpus: job.cpus as u32,
            memory_mb: job.memory_mb as u64,
            gpu_ids,
            network: job.network,
            identity,
            time_limit_s: job.time_limit_s,
            log_cap_bytes: state.config.compute.log_cap_bytes,
        };
        Ok::<u32, anyhow::Error>(executor.launch(spec).await?)
    };
    match launched.await {
        Ok(shim_pid) => Ok(StartOutcome::Running { run, shim_pid }),
        Err(error) => {
            tracing::info!(job.id = job.id, error = %format!("{error:#}"), "job could not start");
            let reason = format!("the command could not be started: {error:#}");
            let ending = Ending::failed(&reason, now_ms());
            state.db.finish_run(RunRef { job_id: job.id, run, instance: &state.instance }, &ending).await?;
            Ok(StartOutcome::Failed)
        }
    }
}

/// This program for a job: the read-only bind a sandboxed job needs to see it, and the folder to
/// put last on the job's PATH (`JOB_GRAPPE_DIR` in the sandbox; else, as on Slurm's nodes,
/// where Grappe is installed alike, the executable's own folder).
fn grappe_for_jobs(sandboxed: bool) -> anyhow::Result<(Option<(PathBuf, PathBuf)>, PathBuf)> {
    let program = this_program()?;
    if sandboxed {
        let dir = PathBuf::from(JOB_GRAPPE_DIR);
        return Ok((Some((program.to_path_buf(), dir.join("grappe"))), dir));
    }
    Ok((None, program.parent().context("this program's folder")?.to_path_buf()))
}

/// This program's path as it was started, read once, at start ([`exec_config`] and [`run`] ask
/// first). Read later, after an upgrade replaced the file, the kernel would name the running
/// program `PATH (deleted)`, which no sandbox can show; jobs find the new one at PATH.
fn this_program() -> anyhow::Result<&'static Path> {
    static PROGRAM: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| std::env::current_exe().ok()).as_deref().context("finding this program, for jobs")
}

/// A job's directories: its own (log, run status files: the server's only), its working
/// directory and its checkpoint directory (kept across requeues), the last two the job's own.
struct JobDirs {
    run_dir: PathBuf,
    work: PathBuf,
    checkpoints: PathBuf,
}

/// Hands a pending job to Slurm: its directories, its environment, its inputs (links into the
/// machine's cache, which Slurm's nodes see on this server's data folder, as they see the job's
/// working directory), then `sbatch`. A job cancelled meanwhile is not handed over, and one
/// cancelled while `sbatch` ran is cancelled in Slurm at once. What cannot be made ends the job,
/// alone.
async fn hand_to_slurm(state: &AppState, job: JobRow) -> anyhow::Result<()> {
    use grappe_exec::slurm;
    let db = &state.db;
    let dirs = match prepare_dirs(state, &job, &job.workdir, None).await {
        Ok(dirs) => dirs,
        Err(error) => {
            tracing::warn!(job = job.id, %error, "its working directory could not be made");
            db.end_pending(job.id, "failed", "its working directory could not be made").await?;
            return Ok(());
        }
    };
    let mut env = job_env(state, &job, &job.env, &dirs, &grappe_for_jobs(false)?.1)?;
    // Kept until the job is handed over: its versions stay in the cache meanwhile.
    let inputs = match crate::data::inputs::prepare(state, &job.inputs, &dirs.run_dir, false).await {
        Ok(inputs) => inputs,
        Err(error) => {
            let reason = format!("its inputs could not be prepared: {error:#}");
            db.end_pending(job.id, "failed", &reason).await?;
            return Ok(());
        }
    };
    env.extend(inputs.env.clone().map(|place| ("GRAPPE_INPUTS".to_owned(), place)));
    if db.job(job.id).await?.is_none_or(|now| now.state != "pending") {
        return Ok(());
    }
    let compute = &state.config.compute;
    let spec = slurm::SlurmSpec {
        job_id: job.id,
        argv: serde_json::from_str(&job.command)?,
        workdir: dirs.work.clone(),
        log_path: state.config.job_log(job.id),
        env,
        nodes: job.nodes as u32,
        cpus: job.cpus as u32,
        gpus: job.gpus as u32,
        memory_mb: job.memory_mb as u64,
        time_limit_s: job.time_limit_s,
        grace_s: compute.grace.as_secs(),
        account: compute.slurm_accounting.then(|| format!("grappe-{}", job.project_id)),
        qos: compute.slurm_accounting.then(|| job.qos.clone()),
    };
    match slurm::sbatch(&spec).await {
        Ok(external) => {
            if !db.set_external_id(job.id, &external).await? {
                slurm::scancel(&external).await?;
            }
        }
        Err(error) => {
            db.end_pending(job.id, "failed", &format!("sbatch refused the job: {error}")).await?;
        }
    }
    drop(inputs);
    Ok(())
}

/// A job's directories, made (plain system calls: a few microseconds each). Before its first
/// run, its working directory is unpacked from the archive it was sent with (`workdir`: its
/// digest) on the blocking pool, into a folder beside it renamed into place once whole; later
/// runs find the directory as the job left it.
async fn prepare_dirs(
    state: &AppState,
    job: &JobRow,
    workdir: &str,
    identity: Option<(u32, u32)>,
) -> anyhow::Result<JobDirs> {
    let run_dir = state.config.job_dir(job.id);
    let dirs = JobDirs { work: run_dir.join("work"), checkpoints: run_dir.join("checkpoints"), run_dir };
    if !workdir.is_empty() && !dirs.work.exists() {
        let (archive, partial, work) =
            (state.config.workdir_archive(workdir), dirs.run_dir.join("work.partial"), dirs.work.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let _ = std::fs::remove_dir_all(&partial);
            unpack_workdir(&archive, &partial, identity)?;
            std::fs::rename(&partial, &work).with_context(|| format!("moving {} into place", partial.display()))
        })
        .await??;
    }
    for dir in [&dirs.work, &dirs.checkpoints] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some((uid, gid)) = identity {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).with_context(|| format!("chown {}", dir.display()))?;
        }
    }
    Ok(dirs)
}

/// A working-directory archive (checked again: it is read from disk) unpacked into `into`, each
/// file and folder its job's own.
fn unpack_workdir(archive: &Path, into: &Path, identity: Option<(u32, u32)>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bytes = std::fs::read(archive).with_context(|| format!("reading {}", archive.display()))?;
    let entries = grappe_domain::workdir::unpack(&bytes)?;
    let own = |path: &Path| -> anyhow::Result<()> {
        if let Some((uid, gid)) = identity {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    };
    std::fs::create_dir_all(into)?;
    own(into)?;
    for entry in &entries {
        // Checked paths: relative, without `..`; folders made one level at a time, each owned.
        let path = into.join(entry.path());
        let mut parents: Vec<&Path> = path.ancestors().skip(1).take_while(|dir| *dir != into).collect();
        parents.reverse();
        for dir in parents
            .into_iter()
            .chain(matches!(entry, grappe_domain::workdir::Entry::Dir { .. }).then_some(path.as_path()))
        {
            if !dir.exists() {
                std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
                own(dir)?;
            }
        }
        if let grappe_domain::workdir::Entry::File { bytes, executable, .. } = entry {
            let mode = if *executable { 0o755 } else { 0o644 };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.write_all(bytes)?;
            own(&path)?;
        }
    }
    Ok(())
}

/// The whole environment of a job, on either executor: an allowlist, the job's own variables
/// (with its replica token, which a model server it runs proves its address with and requires
/// of the gateway), and what it declared (`declared`: its stored JSON object).
fn job_env(
    state: &AppState,
    job: &JobRow,
    declared: &str,
    dirs: &JobDirs,
    grappe_dir: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = vec![
        ("PATH".to_owned(), format!("{JOB_PATH}:{}", grappe_dir.display())),
        ("HOME".to_owned(), dirs.work.display().to_string()),
        ("TMPDIR".to_owned(), "/tmp".to_owned()),
        ("LANG".to_owned(), std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".to_owned())),
    ];
    if let Ok(tz) = std::env::var("TZ") {
        env.push(("TZ".to_owned(), tz));
    }
    env.extend([
        ("GRAPPE_JOB_ID".to_owned(), job.id.to_string()),
        ("GRAPPE_PROJECT_ID".to_owned(), job.project_id.to_string()),
        ("GRAPPE_CHECKPOINT_DIR".to_owned(), dirs.checkpoints.display().to_string()),
        ("GRAPPE_RESTART_COUNT".to_owned(), job.restart_count.to_string()),
        (crate::gateway::REPLICA_TOKEN_ENV.to_owned(), crate::gateway::replica_token(state, job.id)),
    ]);
    if let Some(url) = state.url_for_jobs() {
        env.push((crate::kit::state::SERVER_URL_ENV.to_owned(), url));
    }
    if let (Some(array), Some(task)) = (job.array_job_id, job.array_task_id) {
        env.push(("GRAPPE_ARRAY_JOB_ID".to_owned(), array.to_string()));
        env.push(("GRAPPE_ARRAY_TASK_ID".to_owned(), task.to_string()));
    }
    let declared: BTreeMap<String, String> =
        serde_json::from_str(declared).with_context(|| format!("job {}: its stored environment", job.id))?;
    for (key, value) in declared {
        match env.iter_mut().find(|(existing, _)| *existing == key) {
            Some(slot) => slot.1 = value,
            None => env.push((key, value)),
        }
    }
    Ok(env)
}

fn resources(job: &JobRow) -> Resources {
    Resources { cpus: job.cpus as u32, gpus: job.gpus as u32, memory_mb: job.memory_mb as u64 }
}
