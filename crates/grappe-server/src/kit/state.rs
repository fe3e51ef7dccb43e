//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use grappe_db::Db;

use crate::kit::caller::LoginThrottle;
use crate::kit::metrics::Metrics;

/// Settings the server runs with; the binary builds it from flags, environment and file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: std::net::SocketAddr,
    /// Where jobs' working directories, logs and checkpoints live.
    pub data_dir: std::path::PathBuf,
    pub database_url: String,
    pub demo: bool,
    /// `GRAPPE_ADMIN_TOKEN`: a bearer token that acts as an administrator.
    pub admin_token: Option<String>,
    /// The key of the audit chain's links (`GRAPPE_AUDIT_KEY`, or `DATA_DIR/audit.key`), kept
    /// outside the database.
    pub audit_key: Vec<u8>,
    /// The URL people reach the server at, if set (its origin is the one browser writes must
    /// come from).
    pub public_url: Option<String>,
    /// Cookies get `Secure` and the `__Host-` prefix when the public URL is https (TLS ends at a
    /// proxy in front).
    pub secure_cookies: bool,
    /// The zone of the dates people read on the pages (`GRAPPE_TIME_ZONE`).
    pub time_zone: crate::kit::zone::Zone,
    pub body_limit_bytes: usize,
    pub session_ttl: Duration,
    pub lease_ttl: Duration,
    pub lease_tick: Duration,
    /// Login attempts one client address may make per `login_window`, whatever the accounts
    /// (each account from each address is also slowed down after three failures).
    pub login_attempts_per_window: u32,
    /// A reverse proxy in front sets `X-Forwarded-For`; rate limits key on the address it gives.
    pub trusted_proxy: bool,
    pub login_window: Duration,
    pub compute: ComputeConfig,
    /// What one client may hold or ask of the server (`kit::serve`, streams, queues).
    pub limits: Limits,
    /// The data commons' store: a folder, or `s3://BUCKET/PREFIX?endpoint=...`; by default
    /// `DATA_DIR/store`.
    pub store: Option<String>,
}

/// Limits on what clients may hold or ask, each with a clear refusal past it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must send a request's headers within this (idle keep-alive ones too).
    pub header_read: Duration,
    /// A request must be answered (its response head) within this.
    pub request: Duration,
    pub connections_per_client: usize,
    pub connections: usize,
    /// Live `logs?follow=true` streams per user and in all.
    pub log_streams_per_user: usize,
    pub log_streams: usize,
    /// Pending jobs per user and per project; past them, submissions get 429.
    pub queued_jobs_per_user: i64,
    pub queued_jobs_per_project: i64,
    /// The most one request of a dataset push may carry (a batch of chunks, or a manifest).
    pub dataset_upload_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(20),
            request: Duration::from_secs(30),
            connections_per_client: 256,
            connections: 4096,
            log_streams_per_user: 8,
            log_streams: 256,
            queued_jobs_per_user: 1000,
            queued_jobs_per_project: 10_000,
            dataset_upload_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Who runs the jobs: this machine, or a Slurm cluster (which then decides the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    Local,
    Slurm,
}

/// The executor, the local machine and the limits.
#[derive(Debug, Clone)]
pub struct ComputeConfig {
    pub executor: ExecutorKind,
    pub cpus: u32,
    pub gpus: u32,
    pub memory_mb: u64,
    /// Between SIGTERM and SIGKILL, at a time limit, a cancellation or a preemption.
    pub grace: Duration,
    pub log_cap_bytes: u64,
    /// Output lines starting with this are metrics (JSON: `{"key", "value", "step"}`).
    pub metric_prefix: String,
    /// The most metric points one job may hold: the API refuses a batch that would pass it,
    /// output lines past it are dropped and counted.
    pub metric_points_per_job: i64,
    /// How often the scheduler runs when nothing wakes it.
    pub tick: Duration,
    /// Jobs run in a sandbox (the default), or not at all if none can be built; `false` only
    /// with `--unsafe-unsandboxed-jobs`.
    pub sandbox_required: bool,
    /// bubblewrap, if not on the system's paths.
    pub bwrap: Option<std::path::PathBuf>,
    /// When the server runs as root, project `p`'s jobs run as uid and gid `job_uid_base + p`.
    pub job_uid_base: u32,
    /// Directories shown read-only in every sandbox besides the system ones (`/opt/conda`, say).
    pub sandbox_binds: Vec<std::path::PathBuf>,
    /// The control group under which job groups are made (`grappe`).
    pub cgroup_parent: String,
    /// Most processes and threads one job may have.
    pub max_procs: u64,
    /// The most bytes the cache of dataset versions that jobs read (`DATA_DIR/inputs`) keeps:
    /// past it, the versions that no running job reads (nor one handed to Slurm) are removed,
    /// least recently used first.
    pub inputs_cache_bytes: u64,
    /// A running job younger than this is not preempted.
    pub preempt_exempt_s: i64,
    /// Most nodes one Slurm job may ask for.
    pub slurm_max_nodes: u32,
    /// Pass projects to Slurm as `--account` and QoS as `--qos` (needs Slurm's accounting).
    pub slurm_accounting: bool,
}

impl ComputeConfig {
    /// This machine, as detected.
    pub fn detect() -> ComputeConfig {
        ComputeConfig {
            executor: ExecutorKind::Local,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            gpus: grappe_exec::detect_gpus(),
            memory_mb: grappe_exec::total_memory_mb(),
            grace: Duration::from_secs(30),
            log_cap_bytes: 64 * 1024 * 1024,
            metric_prefix: "GRAPPE_METRIC ".to_owned(),
            metric_points_per_job: 100_000,
            tick: Duration::from_secs(1),
            sandbox_required: true,
            bwrap: None,
            job_uid_base: 200_000,
            sandbox_binds: Vec::new(),
            cgroup_parent: "grappe".to_owned(),
            max_procs: 4096,
            inputs_cache_bytes: 100 << 30,
            preempt_exempt_s: 0,
            slurm_max_nodes: 16,
            slurm_accounting: false,
        }
    }
}

impl ServerConfig {
    /// A job's own folder: its log and run files, `work/` (its working directory) and
    /// `checkpoints/`.
    pub fn job_dir(&self, job_id: i64) -> std::path::PathBuf {
        self.data_dir.join("jobs").join(job_id.to_string())
    }

    /// A job's output, every run's (the executors write it, the pages and the API read it).
    pub fn job_log(&self, job_id: i64) -> std::path::PathBuf {
        self.job_dir(job_id).join("output.log")
    }

    /// Where a working-directory archive is kept, by its digest (64 hex digits: the callers
    /// check it, or computed it).
    pub fn workdir_archive(&self, digest: &str) -> std::path::PathBuf {
        self.data_dir.join("workdirs").join(format!("{digest}.tar"))
    }

    pub fn new(addr: std::net::SocketAddr, database_url: String) -> ServerConfig {
        ServerConfig {
            addr,
            data_dir: std::path::PathBuf::from("./grappe-data"),
            database_url,
            demo: false,
            admin_token: None,
            audit_key: Vec::new(),
            public_url: None,
            secure_cookies: false,
            time_zone: crate::kit::zone::Zone::parse(crate::kit::zone::DEFAULT_ZONE).expect("a known zone"),
            body_limit_bytes: 1024 * 1024,
            session_ttl: Duration::from_secs(14 * 24 * 3600),
            lease_ttl: Duration::from_secs(10),
            lease_tick: Duration::from_secs(1),
            login_attempts_per_window: 100,
            trusted_proxy: false,
            compute: ComputeConfig::detect(),
            login_window: Duration::from_secs(15 * 60),
            limits: Limits::default(),
            store: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    pub login_throttle: Arc<LoginThrottle>,
    /// This process's name in lease rows: host, pid and a random suffix.
    pub instance: Arc<str>,
    /// Whether this process holds the ticker lease now.
    pub ticker_here: Arc<AtomicBool>,
    /// Wakes the scheduler at once (a submission, a cancellation).
    pub scheduler_wake: Arc<tokio::sync::Notify>,
    /// Whether this process holds the scheduler lease (and so runs the jobs) now.
    pub scheduler_here: Arc<AtomicBool>,
    /// How the local executor runs jobs (`None` with Slurm), found at start.
    pub exec: Option<Arc<grappe_exec::ExecConfig>>,
    /// Live log streams, per user and in all.
    pub log_streams: Arc<crate::kit::permits::Permits>,
    /// Set when the server begins to stop: streams end, so that connections drain.
    pub stopping: Arc<AtomicBool>,
    /// The installation's secret: the key of CSRF tokens.
    pub secret: Arc<[u8]>,
    /// The data commons' store (datasets' bytes); its catalogue is in the database.
    pub store: Arc<grappe_store::Store>,
    /// The address the server listens on, once bound.
    pub listening: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
}

/// The variable of a job's environment that holds [`AppState::url_for_jobs`].
pub const SERVER_URL_ENV: &str = "GRAPPE_SERVER_URL";

impl AppState {
    /// Where jobs reach this server ([`SERVER_URL_ENV`] in their environment): its public URL
    /// if set (Slurm's nodes on other machines need it), else the address it listens on, on
    /// loopback when it listens on every address.
    pub fn url_for_jobs(&self) -> Option<String> {
        if let Some(url) = &self.config.public_url {
            return Some(url.trim_end_matches('/').to_owned());
        }
        let mut addr = *self.listening.get()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Some(format!("http://{addr}"))
    }
}
