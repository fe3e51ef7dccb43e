//! Running jobs on this machine. Each job is a process group of its own, in its own working
//! directory, with its memory bounded by an rlimit and its output captured to a file up to a
//! cap (the rest is counted and dropped, so a job that prints gigabytes costs no disk). Lines
//! that start with a prefix are also handed back (metrics). When a job ends, a [`Finished`]
//! message says how.

pub mod slurm;

use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rustix::process::{Pid, Resource, Rlimit, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

/// What to run.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub job_id: i64,
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    pub log_path: PathBuf,
    pub env: Vec<(String, String)>,
    pub memory_mb: u64,
    pub log_cap_bytes: u64,
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// It could not be started (no such program, say).
    NotStarted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub job_id: i64,
    pub exit: Exit,
    /// Bytes of output dropped past the cap.
    pub dropped_bytes: u64,
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
    finished: mpsc::Sender<Finished>,
    metrics: mpsc::Sender<MetricLine>,
    metric_prefix: String,
}

/// The longest output line scanned for a metric; longer lines are passed over.
const MAX_METRIC_LINE: usize = 64 * 1024;

impl LocalExecutor {
    pub fn new(
        finished: mpsc::Sender<Finished>,
        metrics: mpsc::Sender<MetricLine>,
        metric_prefix: &str,
    ) -> LocalExecutor {
        LocalExecutor { finished, metrics, metric_prefix: metric_prefix.to_owned() }
    }

    /// Starts a job; its end comes later as a [`Finished`] message. Returns its process id.
    pub async fn launch(&self, spec: LaunchSpec) -> io::Result<u32> {
        tokio::fs::create_dir_all(&spec.workdir).await?;
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&spec.log_path).await?;
        let written = file.metadata().await?.len();
        let program = spec.argv.first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(&spec.argv[1..])
            .current_dir(&spec.workdir)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let output = Arc::new(Mutex::new(Output { file, written, dropped: 0, cap: spec.log_cap_bytes }));
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let mut out = output.lock().await;
                let _ = out.file.write_all(format!("grappe: cannot start {program}: {error}\n").as_bytes()).await;
                return Err(error);
            }
        };
        let pid = child.id().ok_or_else(|| io::Error::other("child has no pid"))?;
        if let Some(raw) = Pid::from_raw(pid as i32) {
            let bytes = spec.memory_mb.saturating_mul(1024 * 1024);
            let limit = Rlimit { current: Some(bytes), maximum: Some(bytes) };
            if let Err(error) = rustix::process::prlimit(Some(raw), Resource::Data, limit) {
                tracing::warn!(job.id = spec.job_id, %error, "could not set the memory limit");
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
        let job_id = spec.job_id;
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(code), _) => Exit::Code(code),
                        (None, Some(signal)) => Exit::Signal(signal),
                        (None, None) => Exit::Code(-1),
                    }
                }
                Err(_) => Exit::Code(-1),
            };
            // Output still in the pipes is read for a moment; a grandchild that keeps them
            // open does not hold the job's end back.
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
                let _ = out.file.sync_all().await;
                dropped
            };
            let _ = finished.send(Finished { job_id, exit, dropped_bytes }).await;
        });
        Ok(pid)
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
    let mut line: Vec<u8> = Vec::new();
    let mut overlong = false;
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
        for &byte in chunk {
            if byte == b'\n' {
                if !overlong && let Some(rest) = line.strip_prefix(prefix.as_bytes()) {
                    let text = String::from_utf8_lossy(rest).trim().to_owned();
                    // A full channel drops the metric rather than stalling the job's output.
                    let _ = metrics.try_send(MetricLine { job_id, line: text });
                }
                line.clear();
                overlong = false;
            } else if line.len() < MAX_METRIC_LINE {
                line.push(byte);
            } else {
                overlong = true;
            }
        }
    }
}

/// Signals a job's whole process group.
pub fn signal_group(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = Pid::from_raw(pid as i32).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
    rustix::process::kill_process_group(pid, signal).map_err(io::Error::from)
}

pub fn terminate(pid: u32) -> io::Result<()> {
    signal_group(pid, Signal::TERM)
}

pub fn kill(pid: u32) -> io::Result<()> {
    signal_group(pid, Signal::KILL)
}

/// Whether any process of the group is still there.
pub fn group_alive(pid: u32) -> bool {
    Pid::from_raw(pid as i32).is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
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

    async fn run(argv: &[&str], cap: u64, memory_mb: u64) -> (Finished, String, Vec<MetricLine>) {
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("grappe-exec-{}-{run}", std::process::id()));
        let (finished_tx, mut finished_rx) = mpsc::channel(4);
        let (metrics_tx, mut metrics_rx) = mpsc::channel(64);
        let executor = LocalExecutor::new(finished_tx, metrics_tx, "GRAPPE_METRIC ");
        let spec = LaunchSpec {
            job_id: 1,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: dir.clone(),
            log_path: dir.join("output.log"),
            env: vec![("GREETING".into(), "bonjour".into())],
            memory_mb,
            log_cap_bytes: cap,
        };
        let _ = std::fs::remove_file(&spec.log_path);
        executor.launch(spec.clone()).await.unwrap();
        let finished = finished_rx.recv().await.unwrap();
        let log = std::fs::read_to_string(&spec.log_path).unwrap();
        let mut metrics = Vec::new();
        while let Ok(metric) = metrics_rx.try_recv() {
            metrics.push(metric);
        }
        let _ = std::fs::remove_dir_all(&dir);
        (finished, log, metrics)
    }

    #[tokio::test]
    async fn output_exit_code_environment_and_metrics() {
        let script = "echo $GREETING; echo 'GRAPPE_METRIC {\"key\":\"loss\",\"value\":0.5}' >&2; exit 3";
        let (finished, log, metrics) = run(&["sh", "-c", script], 1 << 20, 512).await;
        assert_eq!(finished.exit, Exit::Code(3));
        assert!(log.contains("bonjour\n"));
        assert_eq!(metrics, vec![MetricLine { job_id: 1, line: r#"{"key":"loss","value":0.5}"#.into() }]);
    }

    #[tokio::test]
    async fn output_is_capped() {
        let (finished, log, _) = run(&["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"], 10_000, 512).await;
        assert_eq!(finished.exit, Exit::Code(0));
        assert_eq!(finished.dropped_bytes, 3_000_000 - 10_000);
        assert!(log.len() < 10_200 && log.contains("output capped at 10000 bytes"));
    }

    #[tokio::test]
    async fn memory_is_bounded() {
        // Python allocating 400 MiB under a 100 MiB data limit fails.
        let (finished, _, _) = run(&["python3", "-c", "x = bytearray(400 * 1024 * 1024)"], 1 << 20, 100).await;
        assert_ne!(finished.exit, Exit::Code(0));
    }
}
