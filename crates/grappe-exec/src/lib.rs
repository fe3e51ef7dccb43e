//! Running jobs on this machine. Each run of a job goes through the job shim ([`shim`]) into a
//! sandbox ([`sandbox`]: bubblewrap) inside control groups of its own ([`cgroup`]): the job
//! sees an empty environment plus its own variables, runs under an unprivileged identity, sees
//! only its own directories and the system read-only, and cannot outgrow its memory, CPUs or
//! process count. Its output is captured to a file up to a cap (the rest is counted and dropped,
//! so a job that prints gigabytes costs no disk); lines that start with a prefix are also handed
//! back (metrics). When a run ends (its first process, and then everything it left behind), a
//! [`Finished`] message says how.

pub mod cgroup;
pub mod sandbox;
pub mod shim;
pub mod slurm;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

use crate::cgroup::{Cgroups, JobCgroup, Limits};
use crate::sandbox::{Isolation, SandboxSpec, View};
use crate::shim::{ShimArgs, Status};

/// How this machine runs jobs: found once at start, the same for every job.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// The `grappe-shim` program, which starts each job.
    pub shim_program: PathBuf,
    pub isolation: Isolation,
    /// Where job control groups are made; `None`: rlimits only (said in each job's log).
    pub cgroups: Option<Cgroups>,
    pub view: View,
    /// Most processes (and threads) one job may have at once.
    pub max_procs: u64,
}

/// One run of a job.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub job_id: i64,
    /// The run number: each start of a job is a new run, with its own control group and status.
    pub run: i64,
    pub argv: Vec<String>,
    /// The whole environment of the job (nothing else is passed).
    pub env: Vec<(String, String)>,
    pub workdir: PathBuf,
    /// Read-write besides the working directory (the checkpoint directory).
    pub writable: Vec<PathBuf>,
    /// Read-only inputs: (source, place in the sandbox).
    pub inputs: Vec<(PathBuf, PathBuf)>,
    pub log_path: PathBuf,
    /// Where the shim writes how the run ended ([`status_path`]).
    pub run_dir: PathBuf,
    pub cpus: u32,
    pub memory_mb: u64,
    pub gpu_ids: Vec<u32>,
    pub network: bool,
    /// The uid and gid the job runs as, when the server may choose (it runs as root).
    pub identity: Option<(u32, u32)>,
    pub time_limit_s: i64,
    pub log_cap_bytes: u64,
}

/// How a job's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// It could not be started (the reason).
    NotStarted(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub job_id: i64,
    pub run: i64,
    pub exit: Exit,
    /// When the job's first process ended, as the shim saw it.
    pub ended_at_ms: Option<i64>,
    /// Bytes of output dropped past the cap.
    pub dropped_bytes: u64,
    /// The kernel killed a process of the job for exceeding its memory.
    pub oom_killed: bool,
    pub cpu_time_ms: Option<u64>,
    pub memory_peak_mb: Option<u64>,
}

/// A line of a job's output that starts with the metric prefix (prefix removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricLine {
    pub job_id: i64,
    pub line: String,
}

/// Where a job's output goes: the file up to the cap, the metric channel for prefixed lines.
struct Output {
    file: tokio::fs::File,
    written: u64,
    dropped: u64,
    cap: u64,
}

pub struct LocalExecutor {
    config: ExecConfig,
    finished: mpsc::Sender<Finished>,
    metrics: mpsc::Sender<MetricLine>,
    metric_prefix: String,
    /// Held (read) by each run until its group is removed and its log synced, after its end
    /// was told; [`LocalExecutor::wind_down`] waits for them all.
    tidying: Arc<tokio::sync::RwLock<()>>,
}

/// The longest output line scanned for a metric; longer lines are passed over.
const MAX_METRIC_LINE: usize = 64 * 1024;

/// The file where the shim of a run writes how it ended.
pub fn status_path(run_dir: &Path, run: i64) -> PathBuf {
    run_dir.join(format!("run-{run}.status"))
}

/// The file naming the shim of a run, where there are no control groups: its pid and start time.
fn pid_path(run_dir: &Path, run: i64) -> PathBuf {
    run_dir.join(format!("run-{run}.pid"))
}

/// Where `program` would be found in the sandbox, looked up from outside (the sandbox shows the
/// system directories, the job's own directories and inputs at the same places). `None` if
/// nowhere.
fn find_program(spec: &LaunchSpec) -> Option<PathBuf> {
    let program = spec.argv.first()?;
    let outside = |inside: PathBuf| -> PathBuf {
        for (source, target) in &spec.inputs {
            if let Ok(rest) = inside.strip_prefix(target) {
                // A file bound as itself (grappe's own program): joining "" would add a slash.
                return if rest.as_os_str().is_empty() { source.clone() } else { source.join(rest) };
            }
        }
        inside
    };
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = outside(spec.workdir.join(program));
        return executable(&path).then_some(path);
    }
    let path_var = spec.env.iter().find(|(key, _)| key == "PATH").map_or("/usr/bin:/bin", |(_, value)| value);
    path_var
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| outside(Path::new(dir).join(program)))
        .find(|p| executable(p))
}

impl LocalExecutor {
    pub fn new(
        config: ExecConfig,
        finished: mpsc::Sender<Finished>,
        metrics: mpsc::Sender<MetricLine>,
        metric_prefix: &str,
    ) -> LocalExecutor {
        LocalExecutor {
            config,
            finished,
            metrics,
            metric_prefix: metric_prefix.to_owned(),
            tidying: Arc::new(tokio::sync::RwLock::new(())),
        }
    }

    /// When the server stops, after every run ended: waits (10 s at most) until each run's
    /// group is removed, then removes the installation's parent groups if nothing is left in
    /// them.
    pub async fn wind_down(&self) {
        let _all = tokio::time::timeout(Duration::from_secs(10), self.tidying.write()).await;
        if let Some(cgroups) = &self.config.cgroups {
            cgroups.remove_parents();
        }
    }

    pub fn config(&self) -> &ExecConfig {
        &self.config
    }

    /// Starts a run; its end comes later as a [`Finished`] message. Returns the shim's pid. An
    /// error means nothing was started.
    pub async fn launch(&self, spec: LaunchSpec) -> io::Result<u32> {
        // Plain system calls, not the blocking pool: each is microseconds, and a start is on the
        // scheduler's path.
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&spec.log_path)?;
        let written = file.metadata()?.len();
        let file = tokio::fs::File::from_std(file);
        let output = Arc::new(Mutex::new(Output { file, written, dropped: 0, cap: spec.log_cap_bytes }));
        if spec.argv.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        }
        if find_program(&spec).is_none() {
            let message = format!("{}: no such program (or not executable) where the job runs", spec.argv[0]);
            let _ = output.lock().await.file.write_all(format!("grappe: {message}\n").as_bytes()).await;
            return Err(io::Error::new(io::ErrorKind::NotFound, message));
        }
        let limits = Limits {
            memory_bytes: spec.memory_mb.saturating_mul(1 << 20),
            cpus: spec.cpus,
            max_procs: self.config.max_procs,
        };
        let group = match &self.config.cgroups {
            Some(cgroups) => Some(cgroups.create_job(spec.job_id, spec.run, &limits)?),
            None => None,
        };
        if group.is_none() {
            let note = "grappe: no writable control group on this machine: memory is bounded by an rlimit \
                        and CPU time by the time limit; CPUs and process count are not enforced\n";
            let _ = output.lock().await.file.write_all(note.as_bytes()).await;
        }
        let status = status_path(&spec.run_dir, spec.run);
        let _ = std::fs::remove_file(&status);
        let sandboxed = self.config.isolation.is_sandboxed();
        let (program, args): (OsString, Vec<OsString>) = match &self.config.isolation {
            Isolation::UserNamespace { bwrap } | Isolation::RootSetpriv { bwrap, .. } => {
                let sandbox = SandboxSpec {
                    workdir: &spec.workdir,
                    writable: &spec.writable,
                    inputs: &spec.inputs,
                    network: spec.network,
                    gpu_ids: &spec.gpu_ids,
                    identity: spec.identity,
                    argv: &spec.argv,
                };
                (bwrap.as_os_str().to_owned(), sandbox::bwrap_args(&self.config.isolation, &self.config.view, &sandbox))
            }
            Isolation::Unsandboxed => {
                (spec.argv[0].clone().into(), spec.argv[1..].iter().map(OsString::from).collect())
            }
        };
        // bwrap as root drops to the job's uid itself (setpriv inside); otherwise the shim does.
        let shim_identity = match &self.config.isolation {
            Isolation::RootSetpriv { .. } => None,
            _ => spec.identity,
        };
        let shim = ShimArgs {
            parent: std::process::id(),
            status: status.clone(),
            cgroup_procs: group.as_ref().map(JobCgroup::procs_files).unwrap_or_default(),
            rlimit_data_bytes: group.is_none().then(|| spec.memory_mb.saturating_mul(1 << 20)),
            rlimit_cpu_s: group
                .is_none()
                .then(|| u64::from(spec.cpus.max(1)).saturating_mul(spec.time_limit_s.max(1) as u64)),
            identity: shim_identity,
            sandbox: sandboxed,
            program,
            args,
        };
        let mut command = tokio::process::Command::new(&self.config.shim_program);
        command
            .args(shim.to_args())
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&spec.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                if let Some(group) = &group {
                    let _ = group.remove();
                }
                return Err(error);
            }
        };
        let pid = child.id().ok_or_else(|| io::Error::other("child has no pid"))?;
        // Without control groups, the shim's pid is how a restarted server finds what is left.
        if group.is_none() {
            let start = shim::start_time(pid).unwrap_or(0);
            if let Err(error) = std::fs::write(pid_path(&spec.run_dir, spec.run), format!("{pid} {start}\n")) {
                tracing::warn!(job.id = spec.job_id, %error, "could not record the job's pid");
            }
        }
        let readers: Vec<_> = [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        .map(|stream| {
            tokio::spawn(capture(stream, output.clone(), self.metrics.clone(), self.metric_prefix.clone(), spec.job_id))
        })
        .collect();
        let finished = self.finished.clone();
        let (job_id, run) = (spec.job_id, spec.run);
        let tidying = self.tidying.clone().read_owned().await;
        tokio::spawn(async move {
            let waited = child.wait().await;
            // The run ends with its last process: kill what is left (the shim did, unless it was
            // killed itself), then read what the control group counted.
            let group = match group {
                // Usually nothing is left: no trip to the blocking pool, where killing waits.
                Some(group) if group.pids().is_empty() => Some(group),
                Some(group) => tokio::task::spawn_blocking(move || {
                    group.kill_all(&[], Duration::from_secs(10));
                    group
                })
                .await
                .ok(),
                None => None,
            };
            let usage = group.as_ref().map(JobCgroup::usage).unwrap_or_default();
            // Output still in the pipes is read for a moment.
            for reader in readers {
                let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
            }
            let dropped_bytes = {
                let mut out = output.lock().await;
                let dropped = out.dropped;
                if dropped > 0 {
                    let note = format!("\ngrappe: output capped at {} bytes; {dropped} bytes dropped\n", out.cap);
                    let _ = out.file.write_all(note.as_bytes()).await;
                }
                let _ = out.file.flush().await;
                dropped
            };
            let (exit, ended_at_ms) = match Status::read(&status) {
                Some(Status::Exited { code, ended_at_ms }) => (Exit::Code(code), Some(ended_at_ms)),
                Some(Status::Signalled { signal, ended_at_ms }) => (Exit::Signal(signal), Some(ended_at_ms)),
                Some(Status::SetupFailed(reason)) => (Exit::NotStarted(reason), None),
                // No status: the shim itself was killed (by us, at the end of a grace period).
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    let signal = waited.ok().and_then(|status| status.signal()).unwrap_or(9);
                    (Exit::Signal(signal), None)
                }
            };
            let _ = finished
                .send(Finished {
                    job_id,
                    run,
                    exit,
                    ended_at_ms,
                    dropped_bytes,
                    oom_killed: usage.oom_killed,
                    cpu_time_ms: usage.cpu_time_ms,
                    memory_peak_mb: usage.memory_peak_bytes.map(|bytes| bytes.div_ceil(1 << 20)),
                })
                .await;
            // The group goes and the log reaches the disk after the end is told: neither is on
            // the way from one job to the next.
            if let Some(group) = group {
                let removed = tokio::task::spawn_blocking(move || group.remove()).await;
                if let Ok(Err(error)) = removed {
                    tracing::warn!(job.id = job_id, %error, "could not remove the job's control group");
                }
            }
            let _ = output.lock().await.file.sync_all().await;
            drop(tidying);
        });
        Ok(pid)
    }

    /// Kills every process of a run: the shim's process group (bubblewrap goes with it, and the
    /// sandbox with bubblewrap) and whatever is in its control group.
    pub fn kill(&self, job_id: i64, run: i64, shim_pid: u32) {
        let _ = signal_group(shim_pid, Signal::KILL);
        if let Some(cgroups) = &self.config.cgroups {
            cgroups.job(job_id, run).signal(Signal::KILL, &[]);
        }
    }

    /// Kills what may be left of a run that a server which died was running, found by its
    /// control group and the pid file of its shim (checked against the start time, so that a
    /// reused pid is left alone). The control group is removed.
    pub fn kill_leftovers(&self, run_dir: &Path, job_id: i64, run: i64) {
        if let Ok(text) = std::fs::read_to_string(pid_path(run_dir, run)) {
            let mut fields = text.split_whitespace().map(|field| field.parse::<u64>().ok());
            if let (Some(Some(pid)), Some(Some(start))) = (fields.next(), fields.next())
                && shim::start_time(pid as u32) == Some(start)
            {
                let _ = signal_group(pid as u32, Signal::KILL);
            }
        }
        if let Some(cgroups) = &self.config.cgroups {
            let group = cgroups.job(job_id, run);
            if group.pids().is_empty() || group.kill_all(&[], Duration::from_secs(10)) {
                let _ = group.remove();
            }
        }
    }
}

async fn capture(
    mut stream: Box<dyn AsyncRead + Send + Unpin>,
    output: Arc<Mutex<Output>>,
    metrics: mpsc::Sender<MetricLine>,
    prefix: String,
    job_id: i64,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lines = MetricLines::new(&prefix);
    loop {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        {
            let mut out = output.lock().await;
            let room = out.cap.saturating_sub(out.written) as usize;
            let kept = room.min(chunk.len());
            if kept > 0 && out.file.write_all(&chunk[..kept]).await.is_ok() {
                out.written += kept as u64;
            }
            out.dropped += (chunk.len() - kept) as u64;
        }
        // A full channel drops the metric rather than stalling the job's output.
        lines.feed(chunk, |line| drop(metrics.try_send(MetricLine { job_id, line })));
    }
}

/// Cuts a job's output into lines, as it comes, and finds those that start with the metric
/// prefix: each handed on without the prefix, trimmed; a line longer than 64 KiB
/// is dropped whole. The local executor reads a job's pipes through one; the Slurm executor,
/// the output file Slurm writes.
pub struct MetricLines {
    prefix: Vec<u8>,
    line: Vec<u8>,
    overlong: bool,
}

impl MetricLines {
    pub fn new(prefix: &str) -> MetricLines {
        MetricLines { prefix: prefix.as_bytes().to_vec(), line: Vec::new(), overlong: false }
    }

    /// Reads the next bytes of the output; `found` gets each metric line they complete.
    pub fn feed(&mut self, chunk: &[u8], mut found: impl FnMut(String)) {
        for &byte in chunk {
            if byte == b'\n' {
                if !self.overlong
                    && let Some(rest) = self.line.strip_prefix(self.prefix.as_slice())
                {
                    found(String::from_utf8_lossy(rest).trim().to_owned());
                }
                self.line.clear();
                self.overlong = false;
            } else if self.line.len() < MAX_METRIC_LINE {
                self.line.push(byte);
            } else {
                self.overlong = true;
            }
        }
    }
}

/// Signals a whole process group.
pub fn signal_group(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = Pid::from_raw(pid as i32).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    rustix::process::kill_process_group(pid, signal).map_err(io::Error::from)
}

/// Asks a run to stop: SIGTERM to its shim, which passes it to every process of the job.
pub fn terminate(shim_pid: u32) -> io::Result<()> {
    let pid = Pid::from_raw(shim_pid as i32).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    rustix::process::kill_process(pid, Signal::TERM).map_err(io::Error::from)
}

/// Whether this process runs as root (and so may run jobs under other uids).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// GPUs this machine has: `GRAPPE_GPUS` if set, else the lines of `nvidia-smi -L`, else none.
pub fn detect_gpus() -> u32 {
    if let Some(count) = std::env::var("GRAPPE_GPUS").ok().and_then(|text| text.parse().ok()) {
        return count;
    }
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or(0, |output| {
            String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.starts_with("GPU ")).count() as u32
        })
}

/// Total memory of this machine in MiB, from /proc/meminfo.
pub fn total_memory_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(1024, |kib| kib / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str], path: &str, inputs: Vec<(PathBuf, PathBuf)>) -> LaunchSpec {
        LaunchSpec {
            job_id: 1,
            run: 1,
            argv: argv.iter().map(|arg| arg.to_string()).collect(),
            env: vec![("PATH".into(), path.into())],
            workdir: std::env::temp_dir(),
            writable: vec![],
            inputs,
            log_path: PathBuf::new(),
            run_dir: PathBuf::new(),
            cpus: 1,
            memory_mb: 1,
            gpu_ids: vec![],
            network: true,
            identity: None,
            time_limit_s: 1,
            log_cap_bytes: 1,
        }
    }

    #[test]
    fn programs_are_found_as_the_sandbox_would() {
        assert_eq!(find_program(&spec(&["sh"], "/nowhere:/bin", vec![])), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_program(&spec(&["no-such-program"], "/usr/bin:/bin", vec![])), None);
        assert_eq!(find_program(&spec(&["/bin/sh"], "", vec![])), Some(PathBuf::from("/bin/sh")));
        // A program inside an input is looked up where the input comes from.
        let inputs = vec![(PathBuf::from("/usr/bin"), PathBuf::from("/inputs/tools"))];
        assert_eq!(find_program(&spec(&["/inputs/tools/env"], "", inputs)), Some(PathBuf::from("/usr/bin/env")));
    }
}
