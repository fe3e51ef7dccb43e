//! Typed settings: flags, then `GRAPPE_*` variables, then a TOML file (`--config`), then
//! defaults. Secrets (the admin token) are only ever taken from the environment or the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use grappe_server::ServerConfig;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Executor {
    Local,
    Slurm,
}

#[derive(Args, Debug)]
pub struct ServeFlags {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "GRAPPE_ADDR")]
    addr: Option<SocketAddr>,
    /// Data directory: the SQLite database, jobs' files and (unless --store) the data store.
    #[arg(long, env = "GRAPPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The data commons' store: a folder (default: DATA_DIR/store).
    #[arg(long, env = "GRAPPE_STORE")]
    store: Option<String>,
    /// Database URL: `postgres://...`, or `sqlite://PATH` (default: DATA_DIR/grappe.db).
    #[arg(long, env = "GRAPPE_DATABASE")]
    database: Option<String>,
    /// Where jobs run: `local` (this machine, sandboxed) or `slurm` (sbatch to a Slurm cluster).
    #[arg(long, env = "GRAPPE_EXECUTOR", value_enum)]
    executor: Option<Executor>,
    /// Load the France 2030 programme and demo accounts (printed at start).
    #[arg(long, env = "GRAPPE_DEMO")]
    demo: bool,
    /// Run local jobs without a sandbox when none can be built: any job can then read this
    /// server's files and secrets. For development machines only; the compute page says so.
    #[arg(long, env = "GRAPPE_UNSAFE_UNSANDBOXED_JOBS")]
    unsafe_unsandboxed_jobs: bool,
    /// A TOML settings file.
    #[arg(long, env = "GRAPPE_CONFIG")]
    config: Option<PathBuf>,
}

/// The settings file; every key is optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    database: Option<String>,
    executor: Option<String>,
    demo: Option<bool>,
    admin_token: Option<String>,
    audit_key: Option<String>,
    public_url: Option<String>,
    /// The zone of the dates on the pages: `Europe/Paris` (the default), `UTC`, another of Europe.
    time_zone: Option<String>,
    body_limit_bytes: Option<usize>,
    session_ttl_hours: Option<u64>,
    lease_ttl_ms: Option<u64>,
    lease_tick_ms: Option<u64>,
    login_attempts_per_window: Option<u32>,
    trusted_proxy: Option<bool>,
    job_grace_s: Option<u64>,
    log_cap_bytes: Option<u64>,
    metric_points_per_job: Option<u32>,
    cpus: Option<u32>,
    job_uid_base: Option<u32>,
    bwrap: Option<PathBuf>,
    sandbox_binds: Option<Vec<PathBuf>>,
    cgroup_parent: Option<String>,
    job_max_procs: Option<u64>,
    inputs_cache_bytes: Option<u64>,
    preempt_exempt_s: Option<i64>,
    slurm_max_nodes: Option<u32>,
    slurm_accounting: Option<bool>,
    header_read_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_connections_per_client: Option<usize>,
    max_connections: Option<usize>,
    max_log_streams_per_user: Option<usize>,
    max_log_streams: Option<usize>,
    max_queued_jobs_per_user: Option<i64>,
    max_queued_jobs_per_project: Option<i64>,
    max_dataset_upload_bytes: Option<usize>,
}

fn env_number<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(text) => text.parse().map(Some).map_err(|_| anyhow::anyhow!("{name}={text} is not a number")),
        Err(_) => Ok(None),
    }
}

pub fn database_url(data_dir: &Path, database: Option<&str>) -> anyhow::Result<String> {
    if let Some(url) = database {
        return Ok(url.to_owned());
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    Ok(format!("sqlite://{}?mode=rwc", data_dir.join("grappe.db").display()))
}

/// The audit chain's key: `GRAPPE_AUDIT_KEY` (or `audit_key` in the file), at least 32
/// characters; else the file `DATA_DIR/audit.key`, made at first use (32 random bytes, mode
/// 0600). Keep it outside the database's reach: whoever can read it and write the database can
/// rebuild the chain (the daily anchors still tell).
pub fn audit_key(data_dir: &Path, configured: Option<String>) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = std::env::var("GRAPPE_AUDIT_KEY").ok().or(configured) {
        if key.len() < 32 {
            bail!("GRAPPE_AUDIT_KEY must have at least 32 characters");
        }
        return Ok(key.into_bytes());
    }
    let path = data_dir.join("audit.key");
    match std::fs::read_to_string(&path) {
        Ok(key) if key.trim().len() >= 32 => return Ok(key.trim().as_bytes().to_vec()),
        Ok(_) => bail!("{} holds no key of 32 characters or more", path.display()),
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let key = grappe_server::kit::caller::new_secret();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    Ok(key.into_bytes())
}

pub fn server_config(flags: ServeFlags) -> anyhow::Result<ServerConfig> {
    let file: FileSettings = match &flags.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FileSettings::default(),
    };
    let executor = match (flags.executor, file.executor.as_deref()) {
        (Some(executor), _) => executor,
        (None, Some("slurm")) => Executor::Slurm,
        (None, Some("local") | None) => Executor::Local,
        (None, Some(other)) => bail!("executor `{other}` is unknown: use local or slurm"),
    };
    let addr = flags.addr.or(file.addr).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let data_dir = flags.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("./grappe-data"));
    let database = database_url(&data_dir, flags.database.as_deref().or(file.database.as_deref()))?;
    // Absolute, since job scripts (Slurm's among them) run from other directories.
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&data_dir).with_context(|| format!("resolving {}", data_dir.display()))?;
    let mut config = ServerConfig::new(addr, database);
    config.data_dir = data_dir.clone();
    config.store = flags.store.or(file.store);
    config.compute.executor = match executor {
        Executor::Local => grappe_server::ExecutorKind::Local,
        Executor::Slurm => grappe_server::ExecutorKind::Slurm,
    };
    if let Some(ms) = env_number::<u64>("GRAPPE_SCHEDULER_TICK_MS")? {
        config.compute.tick = Duration::from_millis(ms.max(10));
    }
    if let Some(seconds) = env_number::<u64>("GRAPPE_JOB_GRACE_S")?.or(file.job_grace_s) {
        config.compute.grace = Duration::from_secs(seconds);
    }
    if let Some(bytes) = env_number("GRAPPE_LOG_CAP_BYTES")?.or(file.log_cap_bytes) {
        config.compute.log_cap_bytes = bytes;
    }
    if let Some(points) = env_number::<u32>("GRAPPE_METRIC_POINTS_PER_JOB")?.or(file.metric_points_per_job) {
        config.compute.metric_points_per_job = i64::from(points);
    }
    if let Some(cpus) = env_number("GRAPPE_CPUS")?.or(file.cpus) {
        config.compute.cpus = cpus;
    }
    let compute = &mut config.compute;
    compute.sandbox_required = !flags.unsafe_unsandboxed_jobs;
    compute.bwrap = std::env::var_os("GRAPPE_BWRAP").map(PathBuf::from).or(file.bwrap);
    if let Some(base) = env_number("GRAPPE_JOB_UID_BASE")?.or(file.job_uid_base) {
        if base < 1000 {
            bail!("GRAPPE_JOB_UID_BASE={base}: job uids must not be system accounts (use 1000 or more)");
        }
        compute.job_uid_base = base;
    }
    if let Ok(binds) = std::env::var("GRAPPE_SANDBOX_BINDS") {
        compute.sandbox_binds = binds.split(':').filter(|dir| !dir.is_empty()).map(PathBuf::from).collect();
    } else if let Some(binds) = file.sandbox_binds {
        compute.sandbox_binds = binds;
    }
    if let Some(bind) = compute.sandbox_binds.iter().find(|dir| !dir.is_absolute()) {
        bail!("sandbox bind `{}` must be an absolute path", bind.display());
    }
    if let Some(parent) = std::env::var("GRAPPE_CGROUP_PARENT").ok().or(file.cgroup_parent) {
        if parent.is_empty() || parent.split('/').any(|part| part == "..") {
            bail!("GRAPPE_CGROUP_PARENT `{parent}` must be a name under the cgroup hierarchy");
        }
        compute.cgroup_parent = parent;
    }
    if let Some(bytes) = env_number("GRAPPE_INPUTS_CACHE_BYTES")?.or(file.inputs_cache_bytes) {
        compute.inputs_cache_bytes = bytes;
    }
    if let Some(procs) = env_number("GRAPPE_JOB_MAX_PROCS")?.or(file.job_max_procs) {
        compute.max_procs = procs;
    }
    if let Some(seconds) = env_number("GRAPPE_PREEMPT_EXEMPT_S")?.or(file.preempt_exempt_s) {
        compute.preempt_exempt_s = seconds;
    }
    if let Some(nodes) = env_number("GRAPPE_SLURM_MAX_NODES")?.or(file.slurm_max_nodes) {
        compute.slurm_max_nodes = nodes;
    }
    compute.slurm_accounting = match std::env::var("GRAPPE_SLURM_ACCOUNTING").ok().as_deref() {
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(other) => bail!("GRAPPE_SLURM_ACCOUNTING={other}: use 1 or 0"),
        None => file.slurm_accounting.unwrap_or(false),
    };
    config.demo = flags.demo || file.demo.unwrap_or(false);
    config.audit_key = audit_key(&data_dir, file.audit_key)?;
    config.admin_token =
        std::env::var("GRAPPE_ADMIN_TOKEN").ok().or(file.admin_token).filter(|token| !token.is_empty());
    if let Some(token) = &config.admin_token
        && token.len() < 16
    {
        bail!("GRAPPE_ADMIN_TOKEN must have at least 16 characters");
    }
    let public_url = std::env::var("GRAPPE_PUBLIC_URL").ok().or(file.public_url);
    config.secure_cookies = public_url.as_ref().is_some_and(|url| url.starts_with("https://"));
    config.public_url = public_url;
    if let Some(zone) = std::env::var("GRAPPE_TIME_ZONE").ok().or(file.time_zone) {
        config.time_zone = grappe_server::kit::zone::Zone::parse(&zone).map_err(anyhow::Error::msg)?;
    }
    if let Some(bytes) = env_number("GRAPPE_BODY_LIMIT_BYTES")?.or(file.body_limit_bytes) {
        config.body_limit_bytes = bytes;
    }
    if let Some(hours) = env_number::<u64>("GRAPPE_SESSION_TTL_HOURS")?.or(file.session_ttl_hours) {
        config.session_ttl = Duration::from_secs(hours * 3600);
    }
    if let Some(ms) = env_number("GRAPPE_LEASE_TTL_MS")?.or(file.lease_ttl_ms) {
        config.lease_ttl = Duration::from_millis(ms);
    }
    if let Some(ms) = env_number("GRAPPE_LEASE_TICK_MS")?.or(file.lease_tick_ms) {
        config.lease_tick = Duration::from_millis(ms);
    }
    if let Some(attempts) = env_number("GRAPPE_LOGIN_ATTEMPTS")?.or(file.login_attempts_per_window) {
        config.login_attempts_per_window = attempts;
    }
    config.trusted_proxy = match std::env::var("GRAPPE_TRUSTED_PROXY").ok().as_deref() {
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(other) => bail!("GRAPPE_TRUSTED_PROXY={other}: use 1 or 0"),
        None => file.trusted_proxy.unwrap_or(false),
    };
    let limits = &mut config.limits;
    if let Some(ms) = env_number::<u64>("GRAPPE_HEADER_READ_TIMEOUT_MS")?.or(file.header_read_timeout_ms) {
        limits.header_read = Duration::from_millis(ms.max(100));
    }
    if let Some(ms) = env_number::<u64>("GRAPPE_REQUEST_TIMEOUT_MS")?.or(file.request_timeout_ms) {
        limits.request = Duration::from_millis(ms.max(100));
    }
    if let Some(count) = env_number("GRAPPE_MAX_CONNECTIONS_PER_CLIENT")?.or(file.max_connections_per_client) {
        limits.connections_per_client = count;
    }
    if let Some(count) = env_number("GRAPPE_MAX_CONNECTIONS")?.or(file.max_connections) {
        limits.connections = count;
    }
    if let Some(count) = env_number("GRAPPE_MAX_LOG_STREAMS_PER_USER")?.or(file.max_log_streams_per_user) {
        limits.log_streams_per_user = count;
    }
    if let Some(count) = env_number("GRAPPE_MAX_LOG_STREAMS")?.or(file.max_log_streams) {
        limits.log_streams = count;
    }
    if let Some(count) = env_number("GRAPPE_MAX_QUEUED_JOBS_PER_USER")?.or(file.max_queued_jobs_per_user) {
        limits.queued_jobs_per_user = count;
    }
    if let Some(count) = env_number("GRAPPE_MAX_QUEUED_JOBS_PER_PROJECT")?.or(file.max_queued_jobs_per_project) {
        limits.queued_jobs_per_project = count;
    }
    if let Some(bytes) = env_number("GRAPPE_MAX_DATASET_UPLOAD_BYTES")?.or(file.max_dataset_upload_bytes) {
        limits.dataset_upload_bytes = bytes;
    }
    if config.lease_tick >= config.lease_ttl {
        bail!("the lease tick ({:?}) must be shorter than the lease TTL ({:?})", config.lease_tick, config.lease_ttl);
    }
    Ok(config)
}

/// Logs to standard error; `GRAPPE_LOG` takes `info`, `debug`, or per-target levels
/// (`grappe_server=debug,info`).
pub fn init_logging() {
    let targets: tracing_subscriber::filter::Targets = std::env::var("GRAPPE_LOG")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| "info".parse().unwrap_or_default());
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        // Colours only for a person at a terminal: never in a file, a pipe or a service's journal.
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(targets)
        .try_init();
}
