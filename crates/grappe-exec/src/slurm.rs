//! Handing jobs to Slurm: `sbatch` a script that sets the job's environment and `exec`s its
//! command, follow it with `squeue --json`, cancel it with `scancel`. Slurm decides the order;
//! its output file is the job's log. The commands read `SLURM_CONF` like any client.
//!
//! Nothing of the server's environment reaches Slurm: `sbatch` runs with an empty environment
//! but for `PATH` and `SLURM_CONF`, and the script asks for `--export=NONE`, so the job gets only
//! the variables the script exports (the same allowlist as the local executor) and Slurm's own.
//!
//! Slurm's view of the jobs is read from a format that no job can forge. `scontrol show job -o`
//! cannot be parsed safely: it writes `Key=Value` tokens separated by spaces, values unquoted,
//! and a job can set free-text fields of its own record while it runs (`scontrol update
//! JobId=$SLURM_JOB_ID JobName='x JobId=57 JobState=COMPLETED'`, or `Comment=`), which then
//! read as another job's id and state (checked on Slurm 22.05: the line of such a job holds
//! `JobId=57` after its own id and `JobState=COMPLETED` after its own state). So:
//! - `squeue --json --states=all` first: every field is a JSON value, strings are escaped, and
//!   each job is one object, so no text inside a field can become another field or another job.
//!   Slurm 22.05 (data parser `openapi/v0.0.38`) lists every job the controller remembers, ended
//!   ones too (for `MinJobAge`), whatever the filters; `exit_code` is then the wait status
//!   (`768` is exit 3, `15` is signal 15). Later parsers write `exit_code` as an object
//!   (`return_code`, `signal`), numbers as `{"set", "number"}` and `job_state` as a list: all
//!   are read. Its size is about 3.5 kB a job, for every job of the cluster.
//! - Where `--json` is refused or its output cannot be read (a Slurm without its JSON plugin),
//!   `squeue --noheader --states=all --Format=...` with only fields that hold no text of the
//!   job's owner (id, state, exit code, restarts, then the reason code last), separated by the
//!   ASCII unit separator (0x1F). A line whose fields are not of their expected shape is passed
//!   over, and an id seen twice is dropped (Slurm never lists a job twice). The switch is
//!   remembered for the life of the process and logged once.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::Value;
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

/// A job as `squeue` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// The base state: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, `TIMEOUT`...
    pub state: String,
    /// Why it waits or ended, as Slurm's reason code (`Resources`, `NonZeroExitCode`, `None`).
    pub reason: String,
    /// The exit code of its batch script, and the signal that killed it (0 if none), as
    /// `scontrol` shows them in `ExitCode=code:signal`.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub restarts: i64,
    /// The node that runs its batch script, once it runs: where a model server it starts is
    /// reached (`None` before, or where squeue does not say).
    pub batch_host: Option<String>,
}

/// At most `max` bytes of a job's output file from `from`, and the file's length; none when no
/// regular file is there. Opened without following a link and without waiting, so that a job
/// that put a link or a pipe in its place reads as nothing rather than holding the reader.
pub fn read_output(path: &Path, from: u64, max: u64) -> io::Result<Option<(Vec<u8>, u64)>> {
    use rustix::fs::{Mode, OFlags};
    use std::io::{Read, Seek, SeekFrom};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(from.min(meta.len())))?;
    file.take(max).read_to_end(&mut bytes)?;
    Ok(Some((bytes, meta.len())))
}

/// `'…'` for the shell, with single quotes escaped.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A command as one line a shell reads back to the same words: each word as it is when it
/// needs no quoting, else in `'…'`. What people see of a job's command, to copy.
pub fn shell_words(words: &[String]) -> String {
    let plain = |word: &String| {
        !word.is_empty()
            && word.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'_' | b'-' | b'.' | b'/' | b'=' | b':' | b',' | b'@' | b'%' | b'+')
            })
    };
    let quoted: Vec<String> =
        words.iter().map(|word| if plain(word) { word.clone() } else { shell_quote(word) }).collect();
    quoted.join(" ")
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

/// `squeue --json`'s document, only the fields read; serde passes over the others.
#[derive(Deserialize)]
struct SqueueJson {
    #[serde(default)]
    errors: Vec<Value>,
    #[serde(default)]
    jobs: Vec<JsonJob>,
}

#[derive(Deserialize)]
struct JsonJob {
    #[serde(default)]
    job_id: Value,
    #[serde(default)]
    job_state: Value,
    #[serde(default)]
    state_reason: Value,
    #[serde(default)]
    exit_code: Value,
    #[serde(default)]
    restart_cnt: Value,
    #[serde(default)]
    batch_host: Value,
}

/// A number as any of Slurm's data parsers writes it: `3`, or `{"set": true, "number": 3}`.
fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Object(fields) if fields.get("set").and_then(Value::as_bool) != Some(false) => {
            fields.get("number").and_then(Value::as_i64)
        }
        other => other.as_i64(),
    }
}

/// The exit code and signal: from the wait status (`openapi/v0.0.38`), or from an object with
/// `return_code` and `signal` (later parsers).
fn exit_of(value: &Value) -> (Option<i32>, Option<i32>) {
    if let Some(status) = number(value) {
        let status = i32::try_from(status).unwrap_or(0);
        let signal = status & 0x7f;
        return if signal != 0 { (Some(0), Some(signal)) } else { (Some((status >> 8) & 0xff), Some(0)) };
    }
    let code = value.get("return_code").and_then(number).and_then(|code| i32::try_from(code).ok());
    let signal = value.get("signal").and_then(|signal| signal.get("id").or_else(|| signal.get("signal_id")));
    let signal = signal.and_then(number).and_then(|signal| i32::try_from(signal).ok());
    (code, signal.or(code.map(|_| 0)))
}

/// Parses `squeue --json`: one entry per job id. An error reported in the document, or a
/// document that is not one, is an error (the caller falls back).
pub fn parse_squeue_json(text: &str) -> Result<HashMap<String, SlurmJob>, String> {
    let document: SqueueJson = serde_json::from_str(text).map_err(|error| format!("squeue --json: {error}"))?;
    if !document.errors.is_empty() {
        return Err(format!("squeue --json reported errors: {}", Value::Array(document.errors)));
    }
    let mut jobs = HashMap::with_capacity(document.jobs.len());
    for job in document.jobs {
        let Some(id) = number(&job.job_id).filter(|id| *id > 0) else { continue };
        let state = match &job.job_state {
            Value::String(state) => state.clone(),
            Value::Array(states) => states.first().and_then(Value::as_str).unwrap_or("UNKNOWN").to_owned(),
            _ => "UNKNOWN".to_owned(),
        };
        let (exit_code, signal) = exit_of(&job.exit_code);
        jobs.insert(
            id.to_string(),
            SlurmJob {
                state,
                reason: job.state_reason.as_str().unwrap_or("None").to_owned(),
                exit_code,
                signal,
                restarts: number(&job.restart_cnt).unwrap_or(0),
                batch_host: job.batch_host.as_str().and_then(node_name),
            },
        );
    }
    Ok(jobs)
}

/// A node's name as Slurm gives it, if it is one (letters, digits, `-`, `.`, `_`; not empty).
fn node_name(text: &str) -> Option<String> {
    let ok = !text.is_empty()
        && text.len() <= 253
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    ok.then(|| text.to_owned())
}

/// The ASCII unit separator between the fallback's fields.
const SEPARATOR: char = '\u{1f}';

/// The fallback's `--Format`: fields that hold no text of the job's owner, the reason last.
fn fallback_format() -> String {
    ["JobID", "State", "exit_code", "RestartCnt", "BatchHost", "Reason"]
        .map(|field| format!("{field}:{SEPARATOR}"))
        .join(",")
}

/// Parses the fallback's lines: `id␟STATE␟wait status␟restarts␟batch host␟reason␟`.
pub fn parse_squeue_fields(text: &str) -> HashMap<String, SlurmJob> {
    let mut jobs = HashMap::new();
    let mut twice = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(SEPARATOR).collect();
        let [id, state, exit, restarts, host, reason, ""] = fields[..] else { continue };
        let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let word = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
        if !(digits(id) && word(state) && digits(exit) && digits(restarts)) {
            continue;
        }
        let (exit_code, signal) = exit_of(&Value::from(exit.parse::<i64>().unwrap_or(0)));
        let job = SlurmJob {
            state: state.to_owned(),
            reason: reason.trim().to_owned(),
            exit_code,
            signal,
            restarts: restarts.parse().unwrap_or(0),
            batch_host: node_name(host.trim()),
        };
        if jobs.insert(id.to_owned(), job).is_some() {
            twice.push(id.to_owned());
        }
    }
    for id in twice {
        tracing::warn!(slurm.job = %id, "squeue listed a job twice: its lines are not trusted");
        jobs.remove(&id);
    }
    jobs
}

/// Set once `squeue --json` failed: this Slurm cannot give JSON, the fallback is used from then.
static JSON_UNUSABLE: AtomicBool = AtomicBool::new(false);

/// Every job Slurm still remembers (running, queued, or ended within `MinJobAge`).
pub async fn show_jobs() -> io::Result<HashMap<String, SlurmJob>> {
    if !JSON_UNUSABLE.load(Ordering::Relaxed) {
        let json = run(Command::new("squeue").args(["--json", "--states=all"])).await;
        match json.map_err(|error| error.to_string()).and_then(|text| parse_squeue_json(&text)) {
            Ok(jobs) => return Ok(jobs),
            Err(reason) => {
                tracing::warn!(%reason, "squeue --json is unusable here: reading squeue --Format from now on");
                JSON_UNUSABLE.store(true, Ordering::Relaxed);
            }
        }
    }
    let out =
        run(Command::new("squeue").args(["--noheader", "--states=all"]).arg(format!("--Format={}", fallback_format())))
            .await?;
    Ok(parse_squeue_fields(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's output file is read from where the last read stopped; a link or a pipe put in
    /// its place reads as nothing, at once.
    #[test]
    fn output_is_read_from_a_regular_file_only() {
        let dir = std::env::temp_dir().join(format!("grappe-output-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("output.log");
        std::fs::write(&file, "abc\n").unwrap();
        assert_eq!(read_output(&file, 1, 10).unwrap(), Some((b"bc\n".to_vec(), 4)));
        assert_eq!(read_output(&file, 9, 10).unwrap(), Some((Vec::new(), 4)));
        assert_eq!(read_output(&dir.join("none"), 0, 10).unwrap(), None);
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_output(&link, 0, 10).unwrap(), None);
        let pipe = dir.join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&pipe).status().unwrap().success());
        assert_eq!(read_output(&pipe, 0, 10).unwrap(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_command_is_shown_as_a_shell_reads_it_back() {
        let words: Vec<String> =
            ["sh", "-c", "echo début; sleep 2", "", "it's", "a=b/c.txt"].iter().map(|w| w.to_string()).collect();
        let line = shell_words(&words);
        assert_eq!(line, r"sh -c 'echo début; sleep 2' '' 'it'\''s' a=b/c.txt");
        let read_back = std::process::Command::new("sh")
            .args(["-c", &format!("for w in {line}; do printf '[%s]' \"$w\"; done")])
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&read_back.stdout), "[sh][-c][echo début; sleep 2][][it's][a=b/c.txt]");
    }

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

    /// What Slurm 22.05 wrote for a job that renamed itself and set its comment to look like
    /// another job (trimmed to the fields read and a few around them).
    const SPOOFING_JSON: &str = r#"{
      "meta": {"plugin": {"type": "openapi\/v0.0.38"}},
      "errors": [],
      "jobs": [
        {"job_id": 2109, "name": "wrap", "comment": "", "job_state": "RUNNING", "state_reason": "None",
         "exit_code": 0, "restart_cnt": 0},
        {"job_id": 2110, "name": "x JobId=2109 y", "comment": "c JobId=2109 JobState=COMPLETED ExitCode=0:0",
         "job_state": "FAILED", "state_reason": "NonZeroExitCode", "exit_code": 1280, "restart_cnt": 0,
         "command": "sh -c 'echo \"JobId=2109\nJobState=COMPLETED\"'"}
      ]
    }"#;

    #[test]
    fn a_job_named_like_another_cannot_overwrite_its_state() {
        let jobs = parse_squeue_json(SPOOFING_JSON).unwrap();
        assert_eq!(jobs.len(), 2);
        let victim = &jobs["2109"];
        assert_eq!((victim.state.as_str(), victim.exit_code, victim.signal), ("RUNNING", Some(0), Some(0)));
        let spoofer = &jobs["2110"];
        assert_eq!((spoofer.state.as_str(), spoofer.reason.as_str()), ("FAILED", "NonZeroExitCode"));
        assert_eq!((spoofer.exit_code, spoofer.signal), (Some(5), Some(0)));
    }

    #[test]
    fn squeue_json_parses_every_parser_version() {
        let check = |job: &str, expected: SlurmJob| {
            let text = format!(r#"{{"errors": [], "jobs": [{job}]}}"#);
            let jobs = parse_squeue_json(&text).unwrap();
            assert_eq!(jobs.get("12"), Some(&expected), "{job}");
        };
        let job = |state: &str, reason: &str, exit_code, signal, restarts| SlurmJob {
            state: state.into(),
            reason: reason.into(),
            exit_code: Some(exit_code),
            signal: Some(signal),
            restarts,
            batch_host: None,
        };
        // openapi/v0.0.38 (Slurm 22.05): the wait status.
        check(
            r#"{"job_id": 12, "job_state": "COMPLETED", "state_reason": "None", "exit_code": 0, "restart_cnt": 0}"#,
            job("COMPLETED", "None", 0, 0, 0),
        );
        check(
            r#"{"job_id": 12, "job_state": "FAILED", "state_reason": "NonZeroExitCode", "exit_code": 768, "restart_cnt": 1}"#,
            job("FAILED", "NonZeroExitCode", 3, 0, 1),
        );
        check(
            r#"{"job_id": 12, "job_state": "CANCELLED", "state_reason": "None", "exit_code": 15, "restart_cnt": 0}"#,
            job("CANCELLED", "None", 0, 15, 0),
        );
        // Running: its node; a host that is not a node's name is not taken.
        check(
            r#"{"job_id": 12, "job_state": "RUNNING", "state_reason": "None", "exit_code": 0, "batch_host": "gpu-07.cluster"}"#,
            SlurmJob { batch_host: Some("gpu-07.cluster".into()), ..job("RUNNING", "None", 0, 0, 0) },
        );
        check(
            r#"{"job_id": 12, "job_state": "RUNNING", "state_reason": "None", "exit_code": 0, "batch_host": "evil/host:1"}"#,
            job("RUNNING", "None", 0, 0, 0),
        );
        // Later parsers: numbers as objects, the state as a list, the exit code as an object.
        check(
            r#"{"job_id": 12, "job_state": ["PENDING"], "state_reason": "Resources",
                "exit_code": {"status": ["PENDING"], "return_code": {"set": true, "infinite": false, "number": 0},
                              "signal": {"id": {"set": false, "infinite": false, "number": 0}, "name": ""}},
                "restart_cnt": 2}"#,
            job("PENDING", "Resources", 0, 0, 2),
        );
        check(
            r#"{"job_id": {"set": true, "number": 12}, "job_state": "FAILED", "state_reason": "NonZeroExitCode",
                "exit_code": {"status": "SIGNALED", "return_code": 0, "signal": {"signal_id": 9, "name": "KILL"}}}"#,
            job("FAILED", "NonZeroExitCode", 0, 9, 0),
        );
        assert!(
            parse_squeue_json(r#"{"errors": [{"error": "Unable to contact slurm controller"}], "jobs": []}"#).is_err()
        );
        assert!(parse_squeue_json("squeue: unrecognized option '--json'").is_err());
    }

    #[test]
    fn the_fallback_reads_only_fields_of_their_shape() {
        let line = |fields: &[&str]| fields.iter().map(|field| format!("{field}{SEPARATOR}")).collect::<String>();
        let text = [
            line(&["12", "COMPLETED", "0", "0", "n1", "None"]),
            line(&["13", "FAILED", "768", "1", "n1", "NonZeroExitCode"]),
            line(&["14", "CANCELLED", "15", "0", "", "None"]),
            line(&["15", "PENDING", "0", "0", "", "ReqNodeNotAvail, UnavailableNodes:n[1-3]"]),
            // Not of their shape: passed over.
            line(&["16 JobId=12", "COMPLETED", "0", "0", "n1", "None"]),
            line(&["17", "COMPLETED", "0", "0", "n1"]),
            line(&["18", "Completed", "0", "0", "n1", "None"]),
            // A job listed twice: neither line is trusted.
            line(&["19", "RUNNING", "0", "0", "n1", "None"]),
            line(&["19", "COMPLETED", "0", "0", "n1", "None"]),
        ]
        .join("\n");
        let jobs = parse_squeue_fields(&text);
        let mut ids: Vec<&str> = jobs.keys().map(String::as_str).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["12", "13", "14", "15"]);
        assert_eq!((jobs["13"].exit_code, jobs["13"].signal, jobs["13"].restarts), (Some(3), Some(0), 1));
        assert_eq!((jobs["14"].exit_code, jobs["14"].signal), (Some(0), Some(15)));
        assert_eq!(jobs["15"].reason, "ReqNodeNotAvail, UnavailableNodes:n[1-3]");
        assert_eq!((jobs["12"].batch_host.as_deref(), jobs["14"].batch_host.as_deref()), (Some("n1"), None));
        assert!(fallback_format().starts_with("JobID:\u{1f},State:\u{1f},"));
    }
}
