//! The sandbox a job runs in, built by bubblewrap (`bwrap`, the sandbox Flatpak uses): new
//! mount, PID, IPC and UTS namespaces (and a network namespace with only its own loopback when
//! the job asks for no network); the system directories read-only; a private `/tmp`, `/proc` and
//! `/dev`; the job's working and checkpoint directories read-write and its inputs read-only;
//! nothing else of the machine, and in particular nothing of Grappe's data directory. The job
//! runs under an unprivileged identity: its project's uid when the server is root, else the
//! server's uid inside a user namespace. When the job's first process exits, the PID namespace
//! ends and the kernel kills every process left in it.
//!
//! Two ways to drop to the job's identity, both chosen at start by [`probe`]:
//! - [`Isolation::UserNamespace`]: bwrap runs as the job's uid and makes a user namespace (the
//!   common case: unprivileged user namespaces are allowed);
//! - [`Isolation::RootSetpriv`]: where unprivileged user namespaces are off, bwrap runs as root
//!   and the job's command is started by `setpriv` inside, which drops to the project's uid, every
//!   capability and any later privilege gain (`no_new_privs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// How jobs are isolated on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// bwrap as the job's uid, in a user namespace.
    UserNamespace { bwrap: PathBuf },
    /// bwrap as root, `setpriv` inside to the job's uid.
    RootSetpriv { bwrap: PathBuf, setpriv: PathBuf },
    /// No sandbox: the operator said `--unsafe-unsandboxed-jobs`.
    Unsandboxed,
}

impl Isolation {
    pub fn describe(&self) -> &'static str {
        match self {
            Isolation::UserNamespace { .. } => "bubblewrap, user namespace",
            Isolation::RootSetpriv { .. } => "bubblewrap as root, setpriv to the project's uid",
            Isolation::Unsandboxed => "none (--unsafe-unsandboxed-jobs)",
        }
    }

    pub fn is_sandboxed(&self) -> bool {
        !matches!(self, Isolation::Unsandboxed)
    }
}

/// What a sandbox shows of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Directories bound read-only at the same place (`/usr`, `/etc`, ...). Those that are
    /// symbolic links (`/bin -> usr/bin` on merged-/usr systems) become the same links.
    pub system: Vec<PathBuf>,
    /// Directories hidden under an empty tmpfs even if a system directory contains them (the
    /// data directory).
    pub hidden: Vec<PathBuf>,
}

impl View {
    /// The system directories of a Linux machine, those that exist, plus `extra`.
    pub fn standard(extra: &[PathBuf], hidden: Vec<PathBuf>) -> View {
        let mut system: Vec<PathBuf> = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"]
            .iter()
            .map(PathBuf::from)
            .filter(|path| path.symlink_metadata().is_ok())
            .collect();
        system.extend(extra.iter().cloned());
        View { system, hidden }
    }
}

/// One job's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec<'a> {
    pub workdir: &'a Path,
    /// Read-write besides the working directory (the checkpoint directory).
    pub writable: &'a [PathBuf],
    /// Read-only inputs: (source, place in the sandbox).
    pub inputs: &'a [(PathBuf, PathBuf)],
    pub network: bool,
    /// GPU indices this job may use: their `/dev/nvidiaN` nodes, and the driver's control nodes.
    pub gpu_ids: &'a [u32],
    /// The job's uid and gid (used inside by `setpriv` in [`Isolation::RootSetpriv`]).
    pub identity: Option<(u32, u32)>,
    pub argv: &'a [String],
}

fn push(args: &mut Vec<OsString>, items: &[&str]) {
    args.extend(items.iter().map(OsString::from));
}

fn push_path(args: &mut Vec<OsString>, flag: &str, source: &Path, target: &Path) {
    args.push(flag.into());
    args.push(source.as_os_str().to_owned());
    args.push(target.as_os_str().to_owned());
}

/// The driver nodes every CUDA program opens, when the machine has them.
const GPU_CONTROL_NODES: [&str; 4] =
    ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"];

/// bwrap's arguments for a job (everything after the program name), ending with the command.
pub fn bwrap_args(isolation: &Isolation, view: &View, spec: &SandboxSpec<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    push(&mut args, &["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
    push(&mut args, &["--unshare-cgroup-try", "--hostname", "grappe-job"]);
    if matches!(isolation, Isolation::UserNamespace { .. }) {
        push(&mut args, &["--unshare-user", "--disable-userns"]);
    }
    if !spec.network {
        push(&mut args, &["--unshare-net"]);
    }
    for dir in &view.system {
        match std::fs::read_link(dir) {
            Ok(target) => push_path(&mut args, "--symlink", &target, dir),
            Err(_) => push_path(&mut args, "--ro-bind", dir, dir),
        }
    }
    // /etc/resolv.conf may point into /run, which is not shown: show its target.
    if spec.network
        && let Ok(resolv) = std::fs::canonicalize("/etc/resolv.conf")
        && !view.system.iter().any(|dir| resolv.starts_with(dir))
    {
        push_path(&mut args, "--ro-bind", &resolv, &resolv);
    }
    push(&mut args, &["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]);
    for gpu in spec.gpu_ids {
        let node = PathBuf::from(format!("/dev/nvidia{gpu}"));
        if node.exists() {
            push_path(&mut args, "--dev-bind", &node, &node);
        }
    }
    if !spec.gpu_ids.is_empty() {
        for node in GPU_CONTROL_NODES.iter().map(Path::new).filter(|node| node.exists()) {
            push_path(&mut args, "--dev-bind", node, node);
        }
    }
    for hidden in &view.hidden {
        if view.system.iter().any(|dir| hidden.starts_with(dir)) {
            args.push("--tmpfs".into());
            args.push(hidden.as_os_str().to_owned());
        }
    }
    // The directories above the job's own, which bwrap would otherwise make private to root:
    // traversable by the job, and holding nothing else.
    let targets: Vec<&Path> = std::iter::once(spec.workdir)
        .chain(spec.writable.iter().map(PathBuf::as_path))
        .chain(spec.inputs.iter().map(|(_, target)| target.as_path()))
        .collect();
    let mut parents: Vec<&Path> = targets
        .iter()
        .flat_map(|target| target.ancestors().skip(1))
        .filter(|dir| dir.parent().is_some() && !view.system.iter().any(|system| dir.starts_with(system)))
        .filter(|dir| !targets.contains(dir) && *dir != Path::new("/tmp"))
        .collect();
    parents.sort_by_key(|dir| (dir.components().count(), dir.to_path_buf()));
    parents.dedup();
    for dir in parents {
        push(&mut args, &["--perms", "0755", "--dir"]);
        args.push(dir.as_os_str().to_owned());
    }
    push_path(&mut args, "--bind", spec.workdir, spec.workdir);
    for dir in spec.writable {
        push_path(&mut args, "--bind", dir, dir);
    }
    for (source, target) in spec.inputs {
        push_path(&mut args, "--ro-bind", source, target);
    }
    args.push("--chdir".into());
    args.push(spec.workdir.as_os_str().to_owned());
    args.push("--".into());
    if let (Isolation::RootSetpriv { setpriv, .. }, Some((uid, gid))) = (isolation, spec.identity) {
        args.push(setpriv.as_os_str().to_owned());
        args.push(format!("--reuid={uid}").into());
        args.push(format!("--regid={gid}").into());
        push(&mut args, &["--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]);
    }
    args.extend(spec.argv.iter().map(OsString::from));
    args
}

/// A program on the usual system paths.
fn find_program(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// Runs `true` in a sandbox of the given kind, as `identity`; the error says what failed.
fn try_sandbox(isolation: &Isolation, identity: Option<(u32, u32)>) -> Result<(), String> {
    let bwrap = match isolation {
        Isolation::UserNamespace { bwrap } | Isolation::RootSetpriv { bwrap, .. } => bwrap,
        Isolation::Unsandboxed => return Ok(()),
    };
    let dir = std::env::temp_dir();
    let argv = ["true".to_owned()];
    let spec =
        SandboxSpec { workdir: &dir, writable: &[], inputs: &[], network: false, gpu_ids: &[], identity, argv: &argv };
    let view = View::standard(&[], Vec::new());
    let mut command = std::process::Command::new(bwrap);
    command.args(bwrap_args(isolation, &view, &spec)).env_clear().stdin(Stdio::null()).stdout(Stdio::null());
    if let (Isolation::UserNamespace { .. }, Some((uid, gid))) = (isolation, identity) {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(gid);
    }
    let output =
        command.stderr(Stdio::piped()).output().map_err(|error| format!("cannot run {}: {error}", bwrap.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {}", bwrap.display(), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// Finds how this machine can sandbox jobs: a user namespace if bwrap can make one as the
/// job's identity, else (as root) bwrap with `setpriv`. The error says what is missing and how
/// to install it.
pub fn probe(
    bwrap: Option<&Path>,
    identity: Option<(u32, u32)>,
    prefer_user_namespace: bool,
) -> Result<Isolation, String> {
    let bwrap = bwrap.map(Path::to_path_buf).or_else(|| find_program("bwrap")).filter(|path| path.is_file());
    let bwrap = bwrap.ok_or_else(|| "bubblewrap (`bwrap`) is not installed".to_owned())?;
    let mut reasons = Vec::new();
    if prefer_user_namespace {
        let isolation = Isolation::UserNamespace { bwrap: bwrap.clone() };
        match try_sandbox(&isolation, identity) {
            Ok(()) => return Ok(isolation),
            Err(error) => reasons.push(format!("user namespace: {error}")),
        }
    }
    if crate::running_as_root() {
        let setpriv = find_program("setpriv").ok_or_else(|| {
            "setpriv is not installed: install util-linux (Debian: `apt install util-linux`)".to_owned()
        })?;
        let isolation = Isolation::RootSetpriv { bwrap, setpriv };
        match try_sandbox(&isolation, identity) {
            Ok(()) => return Ok(isolation),
            Err(error) => reasons.push(format!("as root: {error}")),
        }
    } else {
        reasons.push(
            "as a user other than root, bwrap needs unprivileged user namespaces \
             (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0)"
                .to_owned(),
        );
    }
    Err(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args_text(isolation: &Isolation, spec: &SandboxSpec<'_>, view: &View) -> String {
        bwrap_args(isolation, view, spec)
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_sandbox_shows_only_what_the_job_may_see() {
        let view = View {
            system: vec!["/usr".into(), "/etc".into()],
            hidden: vec!["/etc/grappe-data".into(), "/srv/data".into()],
        };
        let workdir = PathBuf::from("/srv/data/jobs/7/work");
        let writable = [PathBuf::from("/srv/data/jobs/7/checkpoints")];
        let inputs = [(PathBuf::from("/srv/data/cache/abc"), PathBuf::from("/inputs/corpus"))];
        let argv = ["python3".to_owned(), "train.py".to_owned()];
        let spec = SandboxSpec {
            workdir: &workdir,
            writable: &writable,
            inputs: &inputs,
            network: false,
            gpu_ids: &[],
            identity: Some((200_007, 200_007)),
            argv: &argv,
        };
        let userns = args_text(&Isolation::UserNamespace { bwrap: "/usr/bin/bwrap".into() }, &spec, &view);
        for part in [
            "--die-with-parent --new-session --unshare-pid",
            "--unshare-user --disable-userns --unshare-net",
            "--ro-bind /usr /usr --ro-bind /etc /etc",
            "--proc /proc --dev /dev --perms 1777 --tmpfs /tmp",
            // The data directory is hidden where a system directory would show it.
            "--tmpfs /etc/grappe-data --perms 0755 --dir /inputs --perms 0755 --dir /srv --perms 0755 --dir /srv/data",
            "--perms 0755 --dir /srv/data/jobs/7 --bind /srv/data/jobs/7/work /srv/data/jobs/7/work",
            "--bind /srv/data/jobs/7/checkpoints /srv/data/jobs/7/checkpoints",
            "--ro-bind /srv/data/cache/abc /inputs/corpus",
            "--chdir /srv/data/jobs/7/work -- python3 train.py",
        ] {
            assert!(userns.contains(part), "{part} in {userns}");
        }
        assert!(!userns.contains("--tmpfs /srv/data"), "a directory nobody shows needs no hiding: {userns}");
        let root = Isolation::RootSetpriv { bwrap: "/usr/bin/bwrap".into(), setpriv: "/usr/bin/setpriv".into() };
        let text = args_text(&root, &SandboxSpec { network: true, ..spec.clone() }, &view);
        assert!(!text.contains("--unshare-user") && !text.contains("--unshare-net"), "{text}");
        assert!(
            text.ends_with(
                "-- /usr/bin/setpriv --reuid=200007 --regid=200007 --clear-groups --no-new-privs \
                 --inh-caps=-all --bounding-set=-all -- python3 train.py"
            ),
            "{text}"
        );
    }
}
