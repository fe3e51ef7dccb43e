//! Control groups for jobs: one group per run (`job-<id>-<run>` under a parent, by default
//! `grappe/<installation>` so that two servers on one machine never share a name), with the memory, CPU and process-count limits of the job, read back at the end for
//! its CPU time, memory peak and whether the kernel killed it for memory.
//!
//! Both layouts exist on the machines we run on: cgroup v1, where each controller is its own
//! hierarchy (`/sys/fs/cgroup/memory`, `cpu`, `pids`, and `cpuacct` for CPU time), and the
//! unified v2 hierarchy (`memory.max`, `cpu.max`, `pids.max`). v1 is used when its controllers
//! are mounted and writable (a hybrid machine keeps its controllers there), else v2 when the
//! parent group can be made and the controllers enabled in it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// The CPU period for CFS quotas, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// Where the job groups live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// One directory per controller: memory, cpu, pids, and cpuacct if mounted apart from cpu.
    V1 { memory: PathBuf, cpu: PathBuf, pids: PathBuf, cpuacct: Option<PathBuf> },
    /// The unified hierarchy: the parent group, with memory, cpu and pids enabled for children.
    V2 { parent: PathBuf },
}

/// What a job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpus: u32,
    pub max_procs: u64,
}

/// What a job used, read when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub cpu_time_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    /// The kernel killed a process of the job for exceeding its memory.
    pub oom_killed: bool,
}

/// The group of one run of a job: a directory per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCgroup {
    dirs: Vec<PathBuf>,
    version: u8,
}

/// Controllers (v1 hierarchies) from `/proc/self/mountinfo`: mount point of each cgroup v1
/// hierarchy by controller name, and the cgroup2 mount point.
fn mounts(mountinfo: &str) -> (Vec<(String, PathBuf)>, Option<PathBuf>) {
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in mountinfo.lines() {
        // `ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(mount_point) = left.split(' ').nth(4) else { continue };
        let mut right = right.split(' ');
        let fs_type = right.next().unwrap_or("");
        let super_options = right.nth(1).unwrap_or("");
        match fs_type {
            "cgroup" => {
                for option in super_options.split(',') {
                    if matches!(option, "memory" | "cpu" | "cpuacct" | "pids") {
                        v1.push((option.to_owned(), PathBuf::from(mount_point)));
                    }
                }
            }
            "cgroup2" => v2 = Some(PathBuf::from(mount_point)),
            _ => {}
        }
    }
    (v1, v2)
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))
}

/// Sends `signal` to each of `pids`; how many it reached.
pub(crate) fn send(pids: &[u32], signal: Signal) -> usize {
    pids.iter()
        .filter_map(|pid| Pid::from_raw(*pid as i32))
        .filter(|pid| rustix::process::kill_process(*pid, signal).is_ok())
        .count()
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`memory.events`, `cpu.stat`, `memory.oom_control`).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Cgroups {
    /// Finds a hierarchy where this process can make job groups under `parent_name` (a name
    /// under each v1 controller, or a path under the v2 mount), making the parent groups. `None`
    /// with the reason when none is writable.
    pub fn detect(parent_name: &str) -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|error| format!("cannot read /proc/self/mountinfo: {error}"))?;
        let (v1, v2) = mounts(&mountinfo);
        let find = |name: &str| v1.iter().find(|(controller, _)| controller == name).map(|(_, path)| path.clone());
        let mut reasons = Vec::new();
        if let (Some(memory), Some(cpu), Some(pids)) = (find("memory"), find("cpu"), find("pids")) {
            let cpuacct = find("cpuacct").filter(|path| *path != cpu);
            let groups = Cgroups::V1 {
                memory: memory.join(parent_name),
                cpu: cpu.join(parent_name),
                pids: pids.join(parent_name),
                cpuacct: cpuacct.map(|path| path.join(parent_name)),
            };
            match groups.probe() {
                Ok(()) => return Ok(groups),
                Err(error) => reasons.push(format!("cgroup v1: {error}")),
            }
        }
        if let Some(root) = v2 {
            let groups = Cgroups::V2 { parent: root.join(parent_name) };
            match groups.probe() {
                Ok(()) => return Ok(groups),
                Err(error) => reasons.push(format!("cgroup v2: {error}")),
            }
        }
        if reasons.is_empty() {
            reasons.push("no cgroup hierarchy with the memory, cpu and pids controllers is mounted".to_owned());
        }
        Err(reasons.join("; "))
    }

    fn parents(&self) -> Vec<&Path> {
        match self {
            Cgroups::V1 { memory, cpu, pids, cpuacct } => {
                let mut all = vec![memory.as_path(), cpu.as_path(), pids.as_path()];
                all.extend(cpuacct.as_deref());
                all
            }
            Cgroups::V2 { parent } => vec![parent.as_path()],
        }
    }

    /// Makes the parent groups (and on v2 enables the controllers for their children), then
    /// makes and removes a probe group in each.
    fn probe(&self) -> io::Result<()> {
        self.make_parents()?;
        let probe = self.job_cgroup_named(&format!("probe-{}", std::process::id()));
        probe.create(&Limits { memory_bytes: 64 << 20, cpus: 1, max_procs: 16 })?;
        probe.remove()
    }

    /// Makes the parent groups, and on v2 hands the controllers down to their children.
    fn make_parents(&self) -> io::Result<()> {
        for parent in self.parents() {
            std::fs::create_dir_all(parent)
                .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", parent.display())))?;
        }
        if let Cgroups::V2 { parent } = self {
            // Each level from the mount down hands the controllers to its children.
            let levels: Vec<&Path> =
                parent.ancestors().take_while(|dir| dir.join("cgroup.controllers").exists()).collect();
            let Some(root) = levels.last() else {
                return Err(io::Error::other(format!("{} is not in a cgroup v2 hierarchy", parent.display())));
            };
            let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            for controller in ["memory", "cpu", "pids"] {
                if !available.split_whitespace().any(|c| c == controller) {
                    return Err(io::Error::other(format!("the {controller} controller is not available")));
                }
            }
            for level in levels.iter().rev() {
                write(&level.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
            }
        }
        Ok(())
    }

    /// Removes the parent groups if no group is left in them: a server that stops leaves no
    /// empty group behind (each one costs every later CPU-limit write a little: the kernel
    /// checks the whole tree of groups).
    pub fn remove_parents(&self) {
        for parent in self.parents() {
            let _ = std::fs::remove_dir(parent);
        }
    }

    fn job_cgroup_named(&self, name: &str) -> JobCgroup {
        let version = if matches!(self, Cgroups::V1 { .. }) { 1 } else { 2 };
        JobCgroup { dirs: self.parents().iter().map(|parent| parent.join(name)).collect(), version }
    }

    /// The group of one run of one job (not made yet).
    pub fn job(&self, job_id: i64, run: i64) -> JobCgroup {
        self.job_cgroup_named(&format!("job-{job_id}-{run}"))
    }

    /// Makes the group of one run with its limits, and the parent groups again if another
    /// server of this installation removed them when it stopped.
    pub fn create_job(&self, job_id: i64, run: i64, limits: &Limits) -> io::Result<JobCgroup> {
        let group = self.job(job_id, run);
        match group.create(limits) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let _ = group.remove();
                self.make_parents()?;
                group.create(limits)?;
            }
            other => other?,
        }
        Ok(group)
    }

    /// `cgroup v1` or `cgroup v2`.
    pub fn version(&self) -> &'static str {
        match self {
            Cgroups::V1 { .. } => "cgroup v1",
            Cgroups::V2 { .. } => "cgroup v2",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Cgroups::V1 { memory, .. } => format!("cgroup v1 ({})", memory.display()),
            Cgroups::V2 { parent } => format!("cgroup v2 ({})", parent.display()),
        }
    }
}

impl JobCgroup {
    /// Makes the group (empty if it was left over) and sets its limits.
    pub fn create(&self, limits: &Limits) -> io::Result<()> {
        for dir in &self.dirs {
            let made = match std::fs::create_dir(dir) {
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    // Left over by a server that died: emptied, removed and made again.
                    self.remove()?;
                    std::fs::create_dir(dir)
                }
                other => other,
            };
            made.map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", dir.display())))?;
        }
        let quota_us = u64::from(limits.cpus.max(1)) * CPU_PERIOD_US;
        if self.version == 1 {
            let [memory, cpu, pids, ..] = self.dirs.as_slice() else {
                return Err(io::Error::other("cgroup v1 needs the memory, cpu and pids hierarchies"));
            };
            write(&memory.join("memory.limit_in_bytes"), &limits.memory_bytes.to_string())?;
            // No swap past the limit, where the kernel accounts swap.
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &limits.memory_bytes.to_string())?;
            }
            // Each write of a CFS setting walks every group of the machine: the period is written
            // only when it is not already the kernel's default.
            let period = cpu.join("cpu.cfs_period_us");
            if read_u64(&period) != Some(CPU_PERIOD_US) {
                write(&period, &CPU_PERIOD_US.to_string())?;
            }
            write(&cpu.join("cpu.cfs_quota_us"), &quota_us.to_string())?;
            write(&pids.join("pids.max"), &limits.max_procs.to_string())?;
        } else {
            let dir = &self.dirs[0];
            write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
            let swap = dir.join("memory.swap.max");
            if swap.exists() {
                write(&swap, "0")?;
            }
            write(&dir.join("cpu.max"), &format!("{quota_us} {CPU_PERIOD_US}"))?;
            write(&dir.join("pids.max"), &limits.max_procs.to_string())?;
        }
        Ok(())
    }

    /// The files a process writes its pid to, to enter the group (before it starts the job).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// Every process in the group.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .procs_files()
            .iter()
            .filter_map(|file| std::fs::read_to_string(file).ok())
            .flat_map(|text| text.lines().filter_map(|line| line.trim().parse().ok()).collect::<Vec<u32>>())
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Every process of the group but `except`.
    fn pids_but(&self, except: &[u32]) -> Vec<u32> {
        self.pids().into_iter().filter(|pid| !except.contains(pid)).collect()
    }

    /// Sends `signal` to every process of the group but `except`; how many it reached.
    pub fn signal(&self, signal: Signal, except: &[u32]) -> usize {
        send(&self.pids_but(except), signal)
    }

    /// Kills every process of the group (but `except`) until none is left or `timeout` passes;
    /// true when the group is empty (of all but `except`).
    pub fn kill_all(&self, except: &[u32], timeout: Duration) -> bool {
        let started = Instant::now();
        // Processes that just died stay listed for a moment: look again soon, then less often.
        let mut pause = Duration::from_micros(50);
        loop {
            let left = self.pids_but(except);
            if left.is_empty() {
                return true;
            }
            send(&left, Signal::KILL);
            if started.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// CPU time, memory peak and OOM kills so far.
    pub fn usage(&self) -> Usage {
        if self.version == 1 {
            let memory = &self.dirs[0];
            // cpuacct: its own hierarchy (fourth), or combined with cpu (second).
            let cpuacct = self.dirs.get(3).unwrap_or(&self.dirs[1]);
            Usage {
                cpu_time_ms: read_u64(&cpuacct.join("cpuacct.usage")).map(|ns| ns / 1_000_000),
                memory_peak_bytes: read_u64(&memory.join("memory.max_usage_in_bytes")),
                oom_killed: keyed(&memory.join("memory.oom_control"), "oom_kill").unwrap_or(0) > 0,
            }
        } else {
            let dir = &self.dirs[0];
            Usage {
                cpu_time_ms: keyed(&dir.join("cpu.stat"), "usage_usec").map(|us| us / 1000),
                memory_peak_bytes: read_u64(&dir.join("memory.peak")),
                oom_killed: keyed(&dir.join("memory.events"), "oom_kill").unwrap_or(0) > 0,
            }
        }
    }

    /// Removes the group; every process in it must have ended (they are killed first).
    pub fn remove(&self) -> io::Result<()> {
        // An empty group goes at once; one that still holds processes (the kernel refuses to
        // remove it) is emptied first.
        if self.remove_dirs().is_ok() {
            return Ok(());
        }
        self.kill_all(&[], Duration::from_secs(5));
        self.remove_dirs()
    }

    fn remove_dirs(&self) -> io::Result<()> {
        let mut first_error = None;
        for dir in &self.dirs {
            if let Err(error) = std::fs::remove_dir(dir)
                && error.kind() != io::ErrorKind::NotFound
            {
                first_error.get_or_insert(io::Error::new(error.kind(), format!("{}: {error}", dir.display())));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_names_each_hierarchy() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let (v1, v2) = mounts(text);
        let names: Vec<&str> = v1.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory", "pids"]);
        assert_eq!(v1[0].1, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn keyed_files_are_read_by_key() {
        let dir = std::env::temp_dir().join(format!("grappe-cgroup-keyed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("memory.oom_control");
        std::fs::write(&file, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(keyed(&file, "oom_kill"), Some(3));
        assert_eq!(keyed(&file, "oom"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
