//! The compute loop: in the process that holds the `scheduler` lease, it reads the queue from
//! the database, asks `grappe-sched` what to start and preempt, runs jobs with the local
//! executor, enforces time limits and cancellations, and records every end. Jobs left running
//! by a process that died are killed if still there and requeued (`node_restart`): none is left
//! running forever, none runs twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use grappe_db::{Ending, JobRow, MetricPoint, now_ms};
use grappe_exec::{Exit, Finished, LaunchSpec, LocalExecutor, MetricLine};
use grappe_sched::engine::{self, EngineConfig, Node, PendingJob, ProjectState, Resources, RunningJob, Snapshot};
use tokio::sync::{mpsc, watch};

use crate::state::{AppState, ExecutorKind};

pub const LEASE: &str = "scheduler";

/// Why this process is stopping a job it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    Cancel,
    Preempt,
}

struct Stopping {
    why: Stop,
    signalled_at: Instant,
    killed: bool,
}

struct Loop {
    state: AppState,
    executor: LocalExecutor,
    engine: EngineConfig,
    node: Node,
    /// Jobs this process runs: id -> process group.
    children: HashMap<i64, u32>,
    stopping: HashMap<i64, Stopping>,
    /// The reason last written for each pending job, to write only changes.
    reasons: HashMap<i64, &'static str>,
    held: bool,
    /// When the lease was last renewed: a pass within a third of its time-to-live does not
    /// renew it again (passes come at every submission and every end).
    renewed_at: Option<Instant>,
    /// Project states for priorities, recomputed at most once a second.
    projects_cache: Option<(Instant, Vec<ProjectState>)>,
    /// The active jobs as last read in full, kept up to date with this loop's own starts and
    /// ends and with new submissions; read in full again every second (cancellations, jobs of
    /// other processes), so a pass does not read a long queue at every event.
    queue: Option<(Instant, Vec<JobRow>)>,
}

pub fn jobs_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("jobs")
}

pub fn local_node(state: &AppState) -> Node {
    let compute = &state.config.compute;
    Node {
        name: "local".to_owned(),
        partition: "local".to_owned(),
        capacity: Resources { cpus: compute.cpus, gpus: compute.gpus, memory_mb: compute.memory_mb },
    }
}

pub async fn run(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let (finished_tx, mut finished_rx) = mpsc::channel::<Finished>(1024);
    let (metrics_tx, mut metrics_rx) = mpsc::channel::<MetricLine>(4096);
    let executor = LocalExecutor::new(finished_tx, metrics_tx, &state.config.compute.metric_prefix);
    let mut lp = Loop {
        node: local_node(&state),
        engine: EngineConfig::default(),
        state: state.clone(),
        executor,
        children: HashMap::new(),
        stopping: HashMap::new(),
        reasons: HashMap::new(),
        held: false,
        renewed_at: None,
        projects_cache: None,
        queue: None,
    };
    let mut interval = tokio::time::interval(state.config.compute.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = state.scheduler_wake.clone();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = wake.notified() => {}
            Some(finished) = finished_rx.recv() => {
                let started = Instant::now();
                lp.finished(finished).await;
                while let Ok(more) = finished_rx.try_recv() {
                    lp.finished(more).await;
                }
                tracing::debug!(finish_us = started.elapsed().as_micros() as u64, "recorded job ends");
            }
            Some(metric) = metrics_rx.recv() => {
                let mut batch = vec![metric];
                while let Ok(more) = metrics_rx.try_recv() {
                    batch.push(more);
                }
                lp.metrics(batch).await;
                continue;
            }
            _ = shutdown.changed() => break,
        }
        let started = Instant::now();
        if let Err(error) = lp.pass().await {
            tracing::warn!(error = %error, "scheduling pass failed");
        }
        tracing::debug!(pass_us = started.elapsed().as_micros() as u64, "scheduling pass");
    }
    // Jobs keep running across a graceful restart of this process: the next holder finds them
    // (dead owner) and requeues them. Give the lease back so that happens at once.
    if lp.held {
        state.scheduler_here.store(false, Ordering::Relaxed);
        let _ = state.db.release_lease(LEASE, &state.instance).await;
    }
}

fn ending_for(exit: Exit, stop: Option<Stop>) -> (&'static str, Option<i64>, String) {
    let code = match exit {
        Exit::Code(code) => Some(i64::from(code)),
        Exit::Signal(signal) => Some(128 + i64::from(signal)),
        Exit::NotStarted => None,
    };
    match (stop, exit) {
        (Some(Stop::Timeout), _) => ("timeout", code, "time limit reached".to_owned()),
        (Some(Stop::Cancel), _) => ("cancelled", code, "cancelled".to_owned()),
        (_, Exit::Code(0)) => ("completed", code, String::new()),
        (_, Exit::Code(_)) => ("failed", code, String::new()),
        (_, Exit::Signal(signal)) => ("failed", code, format!("killed by signal {signal} from outside Grappe")),
        (_, Exit::NotStarted) => ("failed", None, "the command could not be started".to_owned()),
    }
}

impl Loop {
    async fn finished(&mut self, finished: Finished) {
        let id = finished.job_id;
        self.children.remove(&id);
        let stop = self.stopping.remove(&id).map(|stopping| stopping.why);
        let db = self.state.db.clone();
        self.queue_update(id, |jobs, position| {
            jobs.remove(position);
        });
        if stop == Some(Stop::Preempt) {
            // Back in the queue: read it in full at the next pass.
            self.queue = None;
        }
        let result = if stop == Some(Stop::Preempt) {
            db.requeue(id, "preempted by a higher QoS").await
        } else {
            let (state, exit_code, mut reason) = ending_for(finished.exit, stop);
            if finished.dropped_bytes > 0 {
                reason = format!(
                    "{reason}{}output capped ({} bytes dropped)",
                    if reason.is_empty() { "" } else { "; " },
                    finished.dropped_bytes
                );
            }
            db.mark_ended(id, &Ending { state, exit_code, reason: &reason }).await
        };
        if let Err(error) = result {
            tracing::error!(job.id = id, error = %error, "recording a job's end failed");
        }
        self.state.scheduler_wake.notify_one();
    }

    async fn metrics(&mut self, lines: Vec<MetricLine>) {
        let mut by_job: HashMap<i64, Vec<MetricPoint>> = HashMap::new();
        let now = now_ms();
        for line in lines {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line.line) else { continue };
            let (Some(key), Some(number)) = (value["key"].as_str(), value["value"].as_f64()) else { continue };
            if key.is_empty() || key.len() > 250 || !number.is_finite() {
                continue;
            }
            let step = value["step"].as_i64().unwrap_or(0);
            by_job.entry(line.job_id).or_default().push(MetricPoint {
                key: key.to_owned(),
                value: number,
                step,
                at: now,
            });
        }
        for (job_id, points) in by_job {
            if let Err(error) = self.state.db.add_metrics(job_id, &points).await {
                tracing::warn!(job.id = job_id, error = %error, "storing metrics failed");
            }
        }
    }

    async fn pass(&mut self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let ttl = state.config.lease_ttl;
        let fresh = self.held && self.renewed_at.is_some_and(|at| at.elapsed() < ttl / 3);
        let held =
            fresh || state.db.try_acquire_lease(LEASE, &state.instance, now_ms(), ttl.as_millis() as i64).await?;
        if held && !fresh {
            self.renewed_at = Some(Instant::now());
        }
        if held != self.held {
            tracing::info!(lease = LEASE, instance = %state.instance, held, "scheduler lease changed hands");
            self.held = held;
            state.scheduler_here.store(held, Ordering::Relaxed);
        }
        if !held {
            return Ok(());
        }
        if state.config.compute.executor == ExecutorKind::Slurm {
            return self.slurm_pass().await;
        }
        let active = self.active_jobs().await?;
        let (running, pending): (Vec<JobRow>, Vec<JobRow>) = active.into_iter().partition(|job| job.state == "running");
        let mut still_running = Vec::with_capacity(running.len());
        for job in running {
            if job.instance.as_deref() == Some(&*state.instance) {
                self.enforce(&job);
                still_running.push(job);
            } else {
                // Its process (a server that died) no longer watches it: stop it if it is still
                // there, then run it again.
                if let Some(pid) = job.pid.filter(|pid| *pid > 0)
                    && grappe_exec::group_alive(pid as u32)
                {
                    let _ = grappe_exec::kill(pid as u32);
                }
                state.db.requeue(job.id, "node_restart").await?;
                tracing::warn!(job.id = job.id, "requeued a job whose server had stopped");
            }
        }
        self.schedule(&still_running, &pending).await
    }

    async fn active_jobs(&mut self) -> anyhow::Result<Vec<JobRow>> {
        let db = &self.state.db;
        match &mut self.queue {
            Some((read_at, jobs)) if read_at.elapsed() < std::time::Duration::from_secs(1) => {
                let after = jobs.iter().map(|job| job.id).max().unwrap_or(0);
                jobs.extend(db.pending_jobs_after(after).await?);
                Ok(jobs.clone())
            }
            _ => {
                let jobs = db.active_jobs().await?;
                self.queue = Some((Instant::now(), jobs.clone()));
                Ok(jobs)
            }
        }
    }

    /// Keeps the kept queue in step with a change this loop made.
    fn queue_update(&mut self, id: i64, change: impl FnOnce(&mut Vec<JobRow>, usize)) {
        if let Some((_, jobs)) = &mut self.queue
            && let Some(position) = jobs.iter().position(|job| job.id == id)
        {
            change(jobs, position);
        }
    }

    /// Time limits and cancellations of a job this process runs: SIGTERM, then SIGKILL after the
    /// grace period.
    fn enforce(&mut self, job: &JobRow) {
        let Some(&pid) = self.children.get(&job.id) else { return };
        let now = now_ms();
        let over_time = job.started_at.is_some_and(|started| now > started + job.time_limit_s * 1000);
        let why = if job.cancel_requested {
            Some(Stop::Cancel)
        } else if over_time {
            Some(Stop::Timeout)
        } else {
            None
        };
        if let Some(why) = why {
            self.stopping.entry(job.id).or_insert_with(|| {
                let _ = grappe_exec::terminate(pid);
                Stopping { why, signalled_at: Instant::now(), killed: false }
            });
        }
        if let Some(stopping) = self.stopping.get_mut(&job.id)
            && !stopping.killed
            && stopping.signalled_at.elapsed() >= self.state.config.compute.grace
        {
            let _ = grappe_exec::kill(pid);
            stopping.killed = true;
        }
    }

    async fn project_states(&mut self) -> anyhow::Result<Vec<ProjectState>> {
        if let Some((at, states)) = &self.projects_cache
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return Ok(states.clone());
        }
        let states = self.compute_project_states().await?;
        self.projects_cache = Some((Instant::now(), states.clone()));
        Ok(states)
    }

    async fn compute_project_states(&self) -> anyhow::Result<Vec<ProjectState>> {
        let db = &self.state.db;
        let projects = db.list_projects().await?;
        let now = now_ms();
        let half_life_ms = 14 * 86_400 * 1000;
        let usage = db.usage_since(now - 8 * half_life_ms).await?;
        // One unit: a GPU-second, or eight CPU-seconds.
        let units = |gpu: i64, cpu: i64| gpu as f64 + cpu as f64 / 8.0;
        let mut decayed: HashMap<i64, f64> = HashMap::new();
        for (project, at, gpu, cpu) in &usage {
            *decayed.entry(*project).or_default() +=
                engine::decayed(units(*gpu, *cpu), (now - at) / 1000, half_life_ms / 1000);
        }
        let total_decayed: f64 = decayed.values().sum();
        let total_allocation: f64 = projects.iter().map(|p| units(p.gpu_hours * 3600, p.cpu_hours * 3600)).sum();
        let mut states = Vec::with_capacity(projects.len());
        for project in &projects {
            let used = db.project_usage(project.id).await?;
            states.push(ProjectState {
                id: project.id as u64,
                share: if total_allocation > 0.0 {
                    units(project.gpu_hours * 3600, project.cpu_hours * 3600) / total_allocation
                } else {
                    0.0
                },
                usage_share: if total_decayed > 0.0 {
                    decayed.get(&project.id).copied().unwrap_or(0.0) / total_decayed
                } else {
                    0.0
                },
                allocation_used: allocation_used(project.gpu_hours, project.cpu_hours, used),
            });
        }
        Ok(states)
    }

    async fn schedule(&mut self, running: &[JobRow], pending: &[JobRow]) -> anyhow::Result<()> {
        let state = self.state.clone();
        let projects = self.project_states().await?;
        let running_view: Vec<RunningJob> = running
            .iter()
            .map(|job| RunningJob {
                id: job.id as u64,
                qos: job.qos.clone(),
                node: 0,
                request: resources(job),
                start_s: job.started_at.unwrap_or(0) / 1000,
                time_limit_s: job.time_limit_s,
                preempting: self.stopping.contains_key(&job.id),
            })
            .collect();
        let pending_view: Vec<PendingJob> = pending
            .iter()
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
            now_s: now_ms() / 1000,
            nodes: &nodes,
            running: &running_view,
            pending: &pending_view,
            projects: &projects,
        };
        let decisions = engine::schedule(&self.engine, &snapshot);
        for victim in &decisions.preempt {
            let id = *victim as i64;
            if let Some(&pid) = self.children.get(&id) {
                let _ = grappe_exec::terminate(pid);
                self.stopping.insert(id, Stopping { why: Stop::Preempt, signalled_at: Instant::now(), killed: false });
            }
        }
        let mut used_gpus: Vec<u32> = running
            .iter()
            .flat_map(|job| job.gpu_ids.split(',').filter_map(|id| id.parse().ok()).collect::<Vec<u32>>())
            .collect();
        let by_id: HashMap<u64, &JobRow> = pending.iter().map(|job| (job.id as u64, job)).collect();
        for (id, _node) in &decisions.start {
            let Some(job) = by_id.get(id) else { continue };
            let gpu_ids: Vec<u32> =
                (0..state.config.compute.gpus).filter(|gpu| !used_gpus.contains(gpu)).take(job.gpus as usize).collect();
            used_gpus.extend(&gpu_ids);
            self.start(job, &gpu_ids).await?;
            self.reasons.remove(&job.id);
        }
        let changed: Vec<(i64, &'static str)> = decisions
            .waiting
            .iter()
            .map(|(id, _, reason)| (*id as i64, reason.as_str()))
            .filter(|(id, reason)| self.reasons.get(id) != Some(reason))
            .collect();
        state.db.set_reasons(&changed).await?;
        self.reasons.extend(changed);
        Ok(())
    }

    /// Slurm decides: every queued job is handed to `sbatch` at once, and Slurm's view of each
    /// (`scontrol show job`) is copied into Grappe's states, with accounting kept here.
    async fn slurm_pass(&mut self) -> anyhow::Result<()> {
        use grappe_exec::slurm;
        let db = self.state.db.clone();
        let active = db.active_jobs().await?;
        if active.is_empty() {
            return Ok(());
        }
        let known = slurm::show_jobs().await?;
        let mut reasons = Vec::new();
        for job in active {
            let Some(external) = job.external_id.clone() else {
                let (dir, argv, env) = job_launch(&self.state, &job).await?;
                let spec = slurm::SlurmSpec {
                    job_id: job.id,
                    argv,
                    workdir: dir.join("work"),
                    log_path: dir.join("output.log"),
                    env,
                    cpus: job.cpus as u32,
                    gpus: job.gpus as u32,
                    memory_mb: job.memory_mb as u64,
                    time_limit_s: job.time_limit_s,
                    grace_s: self.state.config.compute.grace.as_secs(),
                    account: None,
                    qos: None,
                };
                match slurm::sbatch(&spec).await {
                    Ok(id) => db.set_external_id(job.id, &id).await?,
                    Err(error) => {
                        db.end_pending(job.id, "failed", &format!("sbatch refused the job: {error}")).await?;
                    }
                }
                continue;
            };
            if job.cancel_requested
                && let Err(error) = slurm::scancel(&external).await
            {
                tracing::warn!(job.id = job.id, %error, "scancel failed");
            }
            let Some(seen) = known.get(&external) else {
                if now_ms() - job.submitted_at > 120_000 {
                    let reason = format!("Slurm no longer knows job {external}");
                    if job.state == "running" {
                        db.mark_ended(job.id, &Ending { state: "failed", exit_code: None, reason: &reason }).await?;
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
                "FAILED" | "OUT_OF_MEMORY" | "NODE_FAIL" | "BOOT_FAIL" => {
                    Some(("failed", format!("Slurm: {}", seen.state)))
                }
                _ => None,
            };
            let running = matches!(seen.state.as_str(), "RUNNING" | "COMPLETING" | "SUSPENDED");
            match (job.state.as_str(), ended, running) {
                ("pending", Some(("cancelled", reason)), _) => {
                    db.end_pending(job.id, "cancelled", &reason).await?;
                }
                (_, Some((state, reason)), _) => {
                    if job.state == "pending" {
                        db.mark_running(job.id, &format!("slurm:{external}"), 0, "").await?;
                    }
                    db.mark_ended(job.id, &Ending { state, exit_code, reason: &reason }).await?;
                }
                ("pending", None, true) => {
                    db.mark_running(job.id, &format!("slurm:{external}"), 0, "").await?;
                }
                ("running", None, false) => {
                    db.requeue(job.id, &format!("requeued by Slurm ({})", seen.state)).await?;
                }
                ("pending", None, false) if job.reason != seen.reason => reasons.push((job.id, seen.reason.clone())),
                _ => {}
            }
        }
        let reasons: Vec<(i64, &str)> = reasons.iter().map(|(id, reason)| (*id, reason.as_str())).collect();
        db.set_reasons(&reasons).await?;
        Ok(())
    }

    async fn start(&mut self, job: &JobRow, gpu_ids: &[u32]) -> anyhow::Result<()> {
        let state = &self.state;
        let gpu_list = gpu_ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let (dir, argv, mut env) = job_launch(state, job).await?;
        env.push(("CUDA_VISIBLE_DEVICES".to_owned(), gpu_list.clone()));
        let spec = LaunchSpec {
            job_id: job.id,
            argv,
            workdir: dir.join("work"),
            log_path: dir.join("output.log"),
            env,
            memory_mb: job.memory_mb as u64,
            log_cap_bytes: state.config.compute.log_cap_bytes,
        };
        match self.executor.launch(spec).await {
            Ok(pid) => {
                if state.db.mark_running(job.id, &state.instance, i64::from(pid), &gpu_list).await? {
                    self.children.insert(job.id, pid);
                    let instance = state.instance.to_string();
                    self.queue_update(job.id, |jobs, position| {
                        let job = &mut jobs[position];
                        job.state = "running".to_owned();
                        job.started_at = Some(now_ms());
                        job.instance = Some(instance);
                        job.pid = Some(i64::from(pid));
                        job.gpu_ids = gpu_list;
                    });
                } else {
                    // No longer pending (cancelled meanwhile): forget the kept queue.
                    self.queue = None;
                    // Cancelled between the read and the start: stop what was started.
                    let _ = grappe_exec::kill(pid);
                }
            }
            Err(error) => {
                tracing::info!(job.id = job.id, %error, "job could not start");
                if state.db.mark_running(job.id, &state.instance, 0, &gpu_list).await? {
                    let reason = format!("the command could not be started: {error}");
                    state.db.mark_ended(job.id, &Ending { state: "failed", exit_code: None, reason: &reason }).await?;
                }
                self.queue_update(job.id, |jobs, position| {
                    jobs.remove(position);
                });
            }
        }
        Ok(())
    }
}

/// A job's directory (made, with its persistent checkpoint directory), command and the
/// environment every executor gives it.
async fn job_launch(state: &AppState, job: &JobRow) -> anyhow::Result<(PathBuf, Vec<String>, Vec<(String, String)>)> {
    let dir = jobs_dir(state).join(job.id.to_string());
    let checkpoints = dir.join("checkpoints");
    tokio::fs::create_dir_all(&checkpoints).await?;
    tokio::fs::create_dir_all(dir.join("work")).await?;
    let argv: Vec<String> = serde_json::from_str(&job.command)?;
    let env = vec![
        ("GRAPPE_JOB_ID".to_owned(), job.id.to_string()),
        ("GRAPPE_PROJECT_ID".to_owned(), job.project_id.to_string()),
        ("GRAPPE_CHECKPOINT_DIR".to_owned(), checkpoints.display().to_string()),
        ("GRAPPE_RESTART_COUNT".to_owned(), job.restart_count.to_string()),
    ];
    Ok((dir, argv, env))
}

fn resources(job: &JobRow) -> Resources {
    Resources { cpus: job.cpus as u32, gpus: job.gpus as u32, memory_mb: job.memory_mb as u64 }
}

/// The share of its allocation a project has used: the larger of its GPU and CPU shares. Usage
/// of a kind it has no allocation of counts as over.
pub fn allocation_used(gpu_hours: i64, cpu_hours: i64, used: grappe_db::Usage) -> f64 {
    let share = |used_s: i64, hours: i64| match (used_s, hours) {
        (0, _) => 0.0,
        (_, 0) => f64::INFINITY,
        (used_s, hours) => used_s as f64 / (hours as f64 * 3600.0),
    };
    share(used.gpu_seconds, gpu_hours).max(share(used.cpu_seconds, cpu_hours))
}
