//! Handing jobs to Slurm: `sbatch` a script that sets the job's environment and `exec`s its
//! command, follow it with `scontrol show job -o`, cancel it with `scancel`. Slurm decides the
//! order; its output file is the job's log. The commands read `SLURM_CONF` like any client.
//!
//! Nothing of the server's environment reaches Slurm: `sbatch` runs with an empty environment
//! but for `PATH` and `SLURM_CONF`, and the script asks for `--export=NONE`, so the job gets only
//! the variables the script exports (the same allowlist as the local executor) and Slurm's own.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use tokio::process::Command;

#[derive(Debug, Clone)]
pub struct SlurmSpec {
    pub job_id: i64,
    pub argv: Vec<String>,
    pub workdir: PathBuf,
    pub log_path: PathBuf,
    pub env: Vec<(String, String)>,
    pub nodes: u32,
    /// CPUs, GPUs and memory per node.
    pub cpus: u32,
    pub gpus: u32,
    pub memory_mb: u64,
    pub time_limit_s: i64,
    /// Seconds before the time limit at which Slurm sends SIGTERM.
    pub grace_s: u64,
    pub account: Option<String>,
    pub qos: Option<String>,
}

/// A job as `scontrol show job` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    pub state: String,
    pub reason: String,
    /// From `ExitCode=code:signal`.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub restarts: i64,
}

/// `'…'` for the shell, with single quotes escaped.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The batch script for a job.
pub fn batch_script(spec: &SlurmSpec) -> String {
    let minutes = ((spec.time_limit_s.max(1) + 59) / 60).max(1);
    let mut script = String::from("#!/bin/sh\n");
    let mut directive = |line: String| {
        script.push_str("#SBATCH ");
        script.push_str(&line);
        script.push('\n');
    };
    directive(format!("--job-name=grappe-{}", spec.job_id));
    directive(format!("--output={}", spec.log_path.display()));
    directive("--open-mode=append".to_owned());
    directive(format!("--chdir={}", spec.workdir.display()));
    directive(format!("--time={minutes}"));
    directive("--export=NONE".to_owned());
    directive(format!("--nodes={}", spec.nodes.max(1)));
    directive("--ntasks-per-node=1".to_owned());
    directive(format!("--cpus-per-task={}", spec.cpus.max(1)));
    directive(format!("--mem={}M", spec.memory_mb.max(1)));
    if spec.gpus > 0 {
        directive(format!("--gpus-per-node={}", spec.gpus));
    }
    directive(format!("--signal=B:TERM@{}", spec.grace_s.max(1)));
    directive("--requeue".to_owned());
    if let Some(account) = &spec.account {
        directive(format!("--account={account}"));
    }
    if let Some(qos) = &spec.qos {
        directive(format!("--qos={qos}"));
    }
    for (key, value) in &spec.env {
        script.push_str(&format!("export {key}={}\n", shell_quote(value)));
    }
    script.push_str("export GRAPPE_RESTART_COUNT=\"${SLURM_RESTART_COUNT:-0}\"\n");
    let command: Vec<String> = spec.argv.iter().map(|arg| shell_quote(arg)).collect();
    script.push_str(&format!("exec {}\n", command.join(" ")));
    script
}

async fn run(command: &mut Command) -> io::Result<String> {
    let output = command.output().await?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(io::Error::other(format!("{:?} failed: {}", command.as_std().get_program(), stderr.trim())));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Submits a job; returns Slurm's job id.
pub async fn sbatch(spec: &SlurmSpec) -> io::Result<String> {
    tokio::fs::create_dir_all(&spec.workdir).await?;
    let script_path = spec.workdir.join("grappe.sbatch");
    tokio::fs::write(&script_path, batch_script(spec)).await?;
    let mut command = Command::new("sbatch");
    command.arg("--parsable").arg(&script_path).env_clear();
    for name in ["PATH", "SLURM_CONF"] {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    let out = run(&mut command).await?;
    let id = out.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(io::Error::other(format!("sbatch answered `{}`", out.trim())));
    }
    Ok(id)
}

pub async fn scancel(id: &str) -> io::Result<()> {
    run(Command::new("scancel").arg(id)).await.map(|_| ())
}

/// Parses `scontrol show job -o` output: one job a line, `Key=Value` tokens.
pub fn parse_show_job(text: &str) -> HashMap<String, SlurmJob> {
    let mut jobs = HashMap::new();
    for line in text.lines() {
        let fields: HashMap<&str, &str> = line.split_whitespace().filter_map(|token| token.split_once('=')).collect();
        let Some(id) = fields.get("JobId") else { continue };
        let (exit_code, signal) = fields
            .get("ExitCode")
            .and_then(|text| text.split_once(':'))
            .map_or((None, None), |(code, signal)| (code.parse().ok(), signal.parse().ok()));
        jobs.insert(
            (*id).to_owned(),
            SlurmJob {
                state: fields.get("JobState").copied().unwrap_or("UNKNOWN").to_owned(),
                reason: fields.get("Reason").copied().unwrap_or("None").to_owned(),
                exit_code,
                signal,
                restarts: fields.get("Restarts").and_then(|text| text.parse().ok()).unwrap_or(0),
            },
        );
    }
    jobs
}

/// Every job Slurm still remembers (running, queued, or ended within `MinJobAge`).
pub async fn show_jobs() -> io::Result<HashMap<String, SlurmJob>> {
    let out = run(Command::new("scontrol").args(["show", "job", "-o"])).await?;
    Ok(parse_show_job(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_quote_everything_they_pass_on() {
        let spec = SlurmSpec {
            job_id: 7,
            argv: vec!["python3".into(), "-c".into(), "print('it''s')".into()],
            workdir: "/data/jobs/7/work".into(),
            log_path: "/data/jobs/7/output.log".into(),
            env: vec![("GRAPPE_JOB_ID".into(), "7".into())],
            nodes: 2,
            cpus: 4,
            gpus: 1,
            memory_mb: 16_384,
            time_limit_s: 3601,
            grace_s: 30,
            account: Some("proj".into()),
            qos: None,
        };
        let script = batch_script(&spec);
        for line in [
            "#SBATCH --time=61\n",
            "#SBATCH --export=NONE\n",
            "#SBATCH --nodes=2\n",
            "#SBATCH --ntasks-per-node=1\n",
            "#SBATCH --cpus-per-task=4\n",
            "#SBATCH --mem=16384M\n",
            "#SBATCH --gpus-per-node=1\n",
            "#SBATCH --signal=B:TERM@30\n",
            "#SBATCH --requeue\n",
            "#SBATCH --account=proj\n",
            "#SBATCH --output=/data/jobs/7/output.log\n",
            "export GRAPPE_JOB_ID='7'\n",
            r#"exec 'python3' '-c' 'print('\''it'\'''\''s'\'')'"#,
        ] {
            assert!(script.contains(line), "{line} in\n{script}");
        }
        assert!(!script.contains("--qos"));
    }

    #[test]
    fn show_job_lines_parse() {
        let text = "JobId=12 JobName=grappe-3 JobState=COMPLETED Reason=None Restarts=0 ExitCode=0:0\n\
                    JobId=13 JobName=grappe-4 JobState=FAILED Reason=NonZeroExitCode Restarts=1 ExitCode=3:0\n\
                    JobId=14 JobState=PENDING Reason=Resources ExitCode=0:0\n";
        let jobs = parse_show_job(text);
        assert_eq!(
            jobs["12"],
            SlurmJob {
                state: "COMPLETED".into(),
                reason: "None".into(),
                exit_code: Some(0),
                signal: Some(0),
                restarts: 0
            }
        );
        assert_eq!(jobs["13"].exit_code, Some(3));
        assert_eq!(jobs["13"].restarts, 1);
        assert_eq!(jobs["14"].reason, "Resources");
    }
}
