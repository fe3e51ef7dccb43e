//! The job shim (the `grappe-shim` program, next to `grappe`): the small process between the
//! server and a job, as `slurmstepd` is between `slurmd` and a step. The server starts it with
//! the job's environment only; it
//! 1. enters the job's control groups, so that everything the job starts is in them from its
//!    first instruction;
//! 2. asks the kernel to kill it if the server dies (`PR_SET_PDEATHSIG`), and bubblewrap's
//!    `--die-with-parent` then takes the sandbox down with it: no job outlives its server
//!    unwatched;
//! 3. applies the fallback rlimits when there is no control group;
//! 4. starts the job (bubblewrap, or the command itself when unsandboxed) as the job's uid;
//! 5. passes the signals it receives (SIGTERM at a time limit, a cancel or a preemption) to every
//!    process of the job, and to nothing else;
//! 6. when the job's first process ends, kills what is left of it and writes the exit status to
//!    a file, so that a server that died meanwhile learns how the run ended instead of running
//!    it again.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::process::{Resource, Rlimit, Signal};

/// The exit code of the shim when it could not start the job.
pub const SETUP_FAILED: i32 = 125;

/// What the shim is told.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShimArgs {
    pub parent: u32,
    pub status: PathBuf,
    pub cgroup_procs: Vec<PathBuf>,
    pub rlimit_data_bytes: Option<u64>,
    pub rlimit_cpu_s: Option<u64>,
    pub identity: Option<(u32, u32)>,
    /// The program is bubblewrap: the job is the PID namespace it makes.
    pub sandbox: bool,
    pub program: OsString,
    pub args: Vec<OsString>,
}

impl ShimArgs {
    /// The arguments as `grappe-shim` takes them.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--parent".into(), self.parent.to_string().into()];
        args.push("--status".into());
        args.push(self.status.as_os_str().to_owned());
        for file in &self.cgroup_procs {
            args.push("--cgroup".into());
            args.push(file.as_os_str().to_owned());
        }
        if let Some(bytes) = self.rlimit_data_bytes {
            args.extend(["--rlimit-data".into(), bytes.to_string().into()]);
        }
        if let Some(seconds) = self.rlimit_cpu_s {
            args.extend(["--rlimit-cpu".into(), seconds.to_string().into()]);
        }
        if let Some((uid, gid)) = self.identity {
            args.extend(["--uid".into(), uid.to_string().into(), "--gid".into(), gid.to_string().into()]);
        }
        if self.sandbox {
            args.push("--sandbox".into());
        }
        args.push("--".into());
        args.push(self.program.clone());
        args.extend(self.args.iter().cloned());
        args
    }

    pub fn parse(args: &[OsString]) -> Result<ShimArgs, String> {
        let mut parsed = ShimArgs::default();
        let mut rest = args.iter();
        let number = |value: Option<&OsString>, flag: &str| -> Result<u64, String> {
            value.and_then(|v| v.to_str()).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} needs a number"))
        };
        let mut uid = None;
        let mut gid = None;
        while let Some(arg) = rest.next() {
            match arg.to_str().unwrap_or("") {
                "--parent" => parsed.parent = number(rest.next(), "--parent")? as u32,
                "--status" => parsed.status = rest.next().ok_or("--status needs a path")?.into(),
                "--cgroup" => parsed.cgroup_procs.push(rest.next().ok_or("--cgroup needs a path")?.into()),
                "--rlimit-data" => parsed.rlimit_data_bytes = Some(number(rest.next(), "--rlimit-data")?),
                "--rlimit-cpu" => parsed.rlimit_cpu_s = Some(number(rest.next(), "--rlimit-cpu")?),
                "--uid" => uid = Some(number(rest.next(), "--uid")? as u32),
                "--gid" => gid = Some(number(rest.next(), "--gid")? as u32),
                "--sandbox" => parsed.sandbox = true,
                "--" => {
                    parsed.program = rest.next().ok_or("a program after --")?.clone();
                    parsed.args = rest.cloned().collect();
                    break;
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        parsed.identity = match (uid, gid) {
            (Some(uid), Some(gid)) => Some((uid, gid)),
            (None, None) => None,
            _ => return Err("--uid and --gid go together".to_owned()),
        };
        if parsed.program.is_empty() || parsed.status.as_os_str().is_empty() || parsed.parent == 0 {
            return Err("usage: grappe-shim --parent PID --status FILE [...] -- PROGRAM [ARGS...]".to_owned());
        }
        Ok(parsed)
    }
}

/// How a run ended, as the shim saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Exited {
        code: i32,
        ended_at_ms: i64,
    },
    Signalled {
        signal: i32,
        ended_at_ms: i64,
    },
    /// The job could not be started (the reason).
    SetupFailed(String),
}

impl Status {
    fn render(&self) -> String {
        match self {
            Status::Exited { code, ended_at_ms } => format!("exit_code={code}\nended_at_ms={ended_at_ms}\n"),
            Status::Signalled { signal, ended_at_ms } => format!("signal={signal}\nended_at_ms={ended_at_ms}\n"),
            Status::SetupFailed(reason) => format!("error={}\n", reason.replace('\n', " ")),
        }
    }

    /// Reads a status file; `None` if it is missing or incomplete (the shim was killed).
    pub fn read(path: &Path) -> Option<Status> {
        let text = std::fs::read_to_string(path).ok()?;
        let field = |key: &str| text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('='));
        if let Some(reason) = field("error") {
            return Some(Status::SetupFailed(reason.to_owned()));
        }
        let ended_at_ms = field("ended_at_ms")?.parse().ok()?;
        if let Some(code) = field("exit_code") {
            return Some(Status::Exited { code: code.parse().ok()?, ended_at_ms });
        }
        Some(Status::Signalled { signal: field("signal")?.parse().ok()?, ended_at_ms })
    }

    /// Writes the file whole or not at all (a temporary file renamed into place). Not synced
    /// to disk: it tells a server restarted after a crash of the server, not of the machine
    /// (which takes every job down with it).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let temporary = path.with_extension("tmp");
        std::fs::File::create(&temporary)?.write_all(self.render().as_bytes())?;
        std::fs::rename(&temporary, path)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `(ppid, pgrp)` of a process, from `/proc/PID/stat` (the command name may hold spaces and
/// parentheses: fields are read after its last `)`).
pub(crate) fn parent_and_group(pid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.get(text.rfind(')')? + 2..)?.split(' ');
    let _state = fields.next()?;
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

/// The start time of a process, in clock ticks since boot (field 22 of `/proc/PID/stat`): with
/// the pid, it names a process even after the pid is reused.
pub fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.get(text.rfind(')')? + 2..)?.split(' ').nth(19)?.parse().ok()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// What is left of a job once its first process has ended: what is in its control groups, or,
/// unsandboxed without any, its process group (sandboxed, the PID namespace ended with its first
/// process); never the shim.
fn leftovers(args: &ShimArgs) -> Vec<u32> {
    let me = std::process::id();
    let mut found: Vec<u32> = Vec::new();
    for file in &args.cgroup_procs {
        if let Ok(text) = std::fs::read_to_string(file) {
            found.extend(text.lines().filter_map(|line| line.trim().parse::<u32>().ok()));
        }
    }
    if args.cgroup_procs.is_empty() && !args.sandbox {
        found =
            all_pids().into_iter().filter(|&pid| parent_and_group(pid).is_some_and(|(_, group)| group == me)).collect();
    }
    found.sort_unstable();
    found.dedup();
    found.retain(|&pid| pid != me);
    found
}

/// The processes of a running job: in the PID namespace under `child` (bubblewrap), or in the
/// shim's process group (unsandboxed); plus those in its control groups; never the shim nor
/// bubblewrap.
fn job_processes(args: &ShimArgs, child: u32) -> Vec<u32> {
    let me = std::process::id();
    let pids = all_pids();
    let mut found: Vec<u32> = if args.sandbox {
        let namespace = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let init = pids.iter().copied().find(|&pid| parent_and_group(pid).is_some_and(|(ppid, _)| ppid == child));
        match init.and_then(namespace) {
            Some(ns) => pids.iter().copied().filter(|&pid| namespace(pid).as_ref() == Some(&ns)).collect(),
            None => Vec::new(),
        }
    } else {
        pids.iter().copied().filter(|&pid| parent_and_group(pid).is_some_and(|(_, group)| group == me)).collect()
    };
    for file in &args.cgroup_procs {
        if let Ok(text) = std::fs::read_to_string(file) {
            found.extend(text.lines().filter_map(|line| line.trim().parse::<u32>().ok()));
        }
    }
    found.sort_unstable();
    found.dedup();
    found.retain(|&pid| pid != me && !(args.sandbox && pid == child));
    found
}

fn setup(args: &ShimArgs) -> Result<(), String> {
    // The server keeps its own files private; a job's files are its own to share: the usual mask.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let me = std::process::id().to_string();
    for file in &args.cgroup_procs {
        std::fs::write(file, &me).map_err(|error| format!("cannot enter {}: {error}", file.display()))?;
    }
    if let Some(bytes) = args.rlimit_data_bytes {
        rustix::process::setrlimit(Resource::Data, Rlimit { current: Some(bytes), maximum: Some(bytes) })
            .map_err(|error| format!("cannot set the memory rlimit: {error}"))?;
    }
    if let Some(seconds) = args.rlimit_cpu_s {
        rustix::process::setrlimit(Resource::Cpu, Rlimit { current: Some(seconds), maximum: Some(seconds + 5) })
            .map_err(|error| format!("cannot set the CPU-time rlimit: {error}"))?;
    }
    Ok(())
}

/// The shim's whole life; returns its exit code. Plain threads, no async runtime: it starts
/// with every job, so it must start fast.
pub fn main(raw: &[OsString]) -> i32 {
    let args = match ShimArgs::parse(raw) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("grappe-shim: {error}");
            return 2;
        }
    };
    let fail = |reason: String| {
        eprintln!("grappe: {reason}");
        let _ = Status::SetupFailed(reason).write(&args.status);
        SETUP_FAILED
    };
    // From here on the shim dies with its server. A server that died before this line cannot
    // kill it: the command has not started, and the shim leaves without a status, so that the
    // server that recovers the run requeues it rather than recording it failed.
    if let Err(error) = rustix::process::set_parent_process_death_signal(Some(Signal::KILL)) {
        return fail(format!("cannot set the parent-death signal: {error}"));
    }
    if rustix::process::getppid().map(|pid| pid.as_raw_nonzero().get() as u32) != Some(args.parent) {
        eprintln!("grappe: the server is gone; the command was not started");
        return SETUP_FAILED;
    }
    if let Err(reason) = setup(&args) {
        return fail(reason);
    }
    let status = match supervise(&args) {
        Ok(status) => status,
        Err(reason) => return fail(reason),
    };
    if let Err(error) = status.write(&args.status) {
        eprintln!("grappe: cannot write the job's status to {}: {error}", args.status.display());
    }
    match status {
        Status::Exited { code, .. } => code,
        Status::Signalled { signal, .. } => 128 + signal,
        Status::SetupFailed(_) => SETUP_FAILED,
    }
}

fn supervise(args: &ShimArgs) -> Result<Status, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    // Caught before the job starts, so that none is missed.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2])
        .map_err(|error| format!("cannot catch signals: {error}"))?;
    let mut command = std::process::Command::new(&args.program);
    command.args(&args.args);
    if let Some((uid, gid)) = args.identity {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    let mut child =
        command.spawn().map_err(|error| format!("cannot start {}: {error}", args.program.to_string_lossy()))?;
    let child_pid = child.id();
    let relay_args = args.clone();
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if let Some(signal) = Signal::from_named_raw(signal) {
                crate::cgroup::send(&job_processes(&relay_args, child_pid), signal);
            }
        }
    });
    let exit = child.wait().map_err(|error| format!("waiting for the job: {error}"))?;
    let ended_at_ms = now_ms();
    // What the job left behind ends with it. Sandboxed, its PID namespace ended with its first
    // process: one sweep of its control groups is enough (the server waits for them to empty).
    let mut pause = std::time::Duration::from_micros(50);
    for _ in 0..200 {
        let left = leftovers(args);
        if left.is_empty() {
            break;
        }
        crate::cgroup::send(&left, Signal::KILL);
        if args.sandbox {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(match (exit.code(), exit.signal()) {
        // bubblewrap reports a job ended by a signal as 128 + signal, as shells do.
        (Some(code), _) if args.sandbox && (129..=192).contains(&code) => {
            Status::Signalled { signal: code - 128, ended_at_ms }
        }
        (Some(code), _) => Status::Exited { code, ended_at_ms },
        (None, Some(signal)) => Status::Signalled { signal, ended_at_ms },
        (None, None) => Status::Exited { code: -1, ended_at_ms },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip() {
        let args = ShimArgs {
            parent: 42,
            status: "/data/jobs/7/run-1.status".into(),
            cgroup_procs: vec!["/sys/fs/cgroup/memory/grappe/job-7-1/cgroup.procs".into()],
            rlimit_data_bytes: Some(1 << 30),
            rlimit_cpu_s: None,
            identity: Some((200_001, 200_001)),
            sandbox: true,
            program: "/usr/bin/bwrap".into(),
            args: vec!["--".into(), "--parent".into()],
        };
        assert_eq!(ShimArgs::parse(&args.to_args()), Ok(args));
        assert!(ShimArgs::parse(&["--uid".into(), "3".into()]).is_err());
    }

    #[test]
    fn status_files_round_trip_and_partial_ones_read_as_missing() {
        let dir = std::env::temp_dir().join(format!("grappe-shim-status-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run-1.status");
        for status in [
            Status::Exited { code: 3, ended_at_ms: 1_700_000_000_123 },
            Status::Signalled { signal: 9, ended_at_ms: 5 },
            Status::SetupFailed("cannot enter x: denied".into()),
        ] {
            status.write(&path).unwrap();
            assert_eq!(Status::read(&path), Some(status));
        }
        std::fs::write(&path, "exit_code=0\n").unwrap();
        assert_eq!(Status::read(&path), None, "no end time: the shim died while writing");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proc_stat_survives_odd_command_names() {
        let (ppid, group) = parent_and_group(std::process::id()).unwrap();
        assert_eq!(ppid, rustix::process::getppid().unwrap().as_raw_nonzero().get() as u32);
        assert!(group > 0);
        assert!(start_time(std::process::id()).is_some());
    }
}
