//! `grappe job submit|list|show|logs|cancel`, against the server the CLI is logged in to.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Session, answer};
use crate::text;

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: `grappe job submit --project P --time 2h -- CMD ARGS`, or `--script FILE`.
    Submit(Box<SubmitArgs>),
    /// Jobs of your projects, newest first, one line each (as Slurm's `squeue`).
    List {
        /// Only this project's jobs (its id).
        #[arg(long)]
        project: Option<i64>,
        /// Print the server's JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// One job: what it runs, on what, and how it went.
    Show {
        /// The job's id.
        id: i64,
        /// Print the server's JSON instead of the labelled lines.
        #[arg(long)]
        json: bool,
    },
    /// A job's output; `-f` follows it until the job ends.
    Logs {
        /// The job's id.
        id: i64,
        /// Keep printing new output until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Cancel a job: a waiting one at once; a running one is stopped (SIGTERM, then SIGKILL).
    Cancel {
        /// The job's id.
        id: i64,
        /// Print the server's JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// A folder as a working-directory archive: its files and folders by path, in a stable order;
/// a link, or more than the bounds, is an error that names it.
fn pack_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use grappe_domain::workdir::{Entry, MAX_BYTES, MAX_ENTRIES, pack};
    let mut entries = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut bytes = 0u64;
    while let Some(folder) = pending.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&folder)
            .with_context(|| format!("reading {}", folder.display()))?
            .collect::<Result<_, _>>()?;
        children.sort_by_key(|child| child.file_name());
        for child in children {
            let path = child.path();
            let relative =
                path.strip_prefix(dir)?.to_str().with_context(|| format!("{}: not UTF-8", path.display()))?;
            let kind = child.file_type()?;
            if kind.is_dir() {
                entries.push(Entry::Dir { path: relative.to_owned() });
                pending.push(path);
            } else if kind.is_file() {
                let metadata = child.metadata()?;
                bytes += metadata.len();
                if bytes > MAX_BYTES {
                    bail!("{}: more than {} MiB of files", dir.display(), MAX_BYTES >> 20);
                }
                let executable = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o111 != 0;
                let content = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                entries.push(Entry::File { path: relative.to_owned(), bytes: content, executable });
            } else {
                bail!("{}: a link or a special file (only files and folders are sent)", path.display());
            }
            if entries.len() > MAX_ENTRIES {
                bail!("{}: more than {MAX_ENTRIES} files and folders", dir.display());
            }
        }
    }
    if entries.is_empty() {
        bail!("{}: an empty folder", dir.display());
    }
    Ok(pack(&entries)?)
}

/// `--qos`'s help: the QoS levels of the scheduler's defaults, with their time caps.
fn qos_help() -> String {
    let levels: Vec<String> = grappe_sched::engine::default_qos()
        .iter()
        .map(|qos| format!("{} (up to {})", qos.name, text::human_duration(qos.max_wall_s)))
        .collect();
    format!("Quality of service: {}", levels.join(", "))
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The project it runs on and is charged to: its name or id.
    #[arg(long)]
    project: String,
    /// CPUs per node.
    #[arg(long, default_value = "1")]
    cpus: i64,
    /// GPUs per node.
    #[arg(long, default_value = "0", alias = "gpus-per-node")]
    gpus: i64,
    /// Nodes (more than one needs a server with the Slurm executor).
    #[arg(long, default_value = "1")]
    nodes: i64,
    /// A variable for the job, `NAME=VALUE` (repeat for more).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Run the job without any network (not even the loopback of this machine).
    #[arg(long)]
    no_network: bool,
    /// A dataset the job reads, `NAME`, `NAME@vN` or `NAME@VERSION_ID` (repeat for more): read-only
    /// at `$GRAPPE_INPUTS/NAME`.
    #[arg(long = "input", value_name = "NAME[@VERSION]")]
    inputs: Vec<String>,
    /// Memory per node: `16G`, `512M`, or megabytes.
    #[arg(long, default_value = "1G")]
    mem: String,
    /// Time limit: `2h`, `30m`, `90s`, `1:30:00`, or seconds.
    #[arg(long)]
    time: String,
    #[arg(long, default_value = "normal", help = qos_help())]
    qos: String,
    /// A name to find it by (default: the program's name, the command's first word).
    #[arg(long)]
    name: Option<String>,
    /// A shell script to run (its content is sent; it runs with `sh`).
    #[arg(long, conflicts_with = "command")]
    script: Option<PathBuf>,
    /// Start only once other jobs of the project ended, in Slurm's syntax:
    /// `afterok:12:13` (completed), `afterany:14` (ended however), `afternotok:15` (did not
    /// complete); conditions separated by `,` must all hold.
    #[arg(long, short = 'd')]
    dependency: Option<String>,
    /// A job array, in Slurm's syntax: `0-999%50` submits 1,000 tasks at once, at most 50
    /// running at a time; each is told its number in `GRAPPE_ARRAY_TASK_ID`.
    #[arg(long, short = 'a')]
    array: Option<String>,
    /// A small folder (at most 16 MiB, 10,000 files; no links) sent with the job: its working
    /// directory starts as a copy of it, so `-- python train.py` finds `train.py`.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Print what it would cost in CPU- and GPU-hours and what would remain; submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the server's JSON instead of a sentence.
    #[arg(long)]
    json: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

/// `16G`, `512M`, `2T` or a plain number of megabytes, in megabytes.
pub fn parse_memory_mb(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let (digits, factor) = match text.char_indices().last() {
        Some((at, 'G' | 'g')) => (&text[..at], 1024),
        Some((at, 'M' | 'm')) => (&text[..at], 1),
        Some((at, 'T' | 't')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    let value: i64 = digits.parse().with_context(|| format!("memory `{text}`: use 16G, 512M or megabytes"))?;
    Ok(value * factor)
}

/// `2h`, `30m`, `90s`, `1d`, `H:MM:SS`, `MM:SS` or plain seconds, in seconds.
pub fn parse_duration_s(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let bad = || anyhow::anyhow!("time `{text}`: use 2h, 30m, 90s, 1:30:00 or seconds");
    if text.contains(':') {
        let parts: Vec<i64> =
            text.split(':').map(|part| part.parse::<i64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
        return match parts.as_slice() {
            [h, m, s] => Ok(h * 3600 + m * 60 + s),
            [m, s] => Ok(m * 60 + s),
            _ => Err(bad()),
        };
    }
    let (digits, factor) = match text.char_indices().last() {
        Some((at, 'd')) => (&text[..at], 86_400),
        Some((at, 'h')) => (&text[..at], 3600),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 's')) => (&text[..at], 1),
        _ => (text, 1),
    };
    Ok(digits.parse::<i64>().map_err(|_| bad())? * factor)
}

/// A cell of a table or a labelled line: control characters (a newline in a name) shown as
/// U+FFFD, so that one job is one line.
fn cell(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect()
}

/// A JSON string as a cell, `-` when absent or empty.
fn cell_or_dash(value: &Value) -> String {
    match value.as_str() {
        Some(text) if !text.is_empty() => cell(text),
        _ => "-".to_owned(),
    }
}

/// The reason a job waits, and its estimated start once known (as `squeue --start`).
fn reason_or_start(job: &Value) -> String {
    let reason = cell(job["reason"].as_str().unwrap_or(""));
    match job["estimated_start_at"].as_i64() {
        Some(at) => {
            format!("{reason} (start by {})", grappe_server::kit::page::iso_datetime(at)).trim_start().to_owned()
        }
        None => reason,
    }
}

/// The table `grappe job list` prints: squeue's columns, names cut to a fixed width.
fn job_table(jobs: &[Value]) -> Vec<String> {
    use text::Align::{Left, Right};
    let header = ["ID", "NAME", "PROJECT", "USER", "STATE", "TIME", "TIME_LIMIT", "REASON"];
    let mut rows = vec![header.map(str::to_owned).to_vec()];
    for job in jobs {
        let project = match job["project_name"].as_str() {
            Some(name) => cell(name),
            None => job["project"].to_string(),
        };
        rows.push(vec![
            job["id"].to_string(),
            text::shorten(&cell(job["name"].as_str().unwrap_or("")), 20),
            text::shorten(&project, 16),
            text::shorten(&cell_or_dash(&job["user_name"]), 16),
            cell(job["state"].as_str().unwrap_or("?")),
            text::clock_duration(job["elapsed_s"].as_i64().unwrap_or(0)),
            text::clock_duration(job["time_limit_s"].as_i64().unwrap_or(0)),
            reason_or_start(job),
        ]);
    }
    text::table(&[Right, Left, Left, Left, Left, Right, Right, Left], &rows)
}

/// An argv as one would type it in a shell (`grappe_exec::slurm::shell_words`, as the job's page
/// shows it).
fn shell_words(argv: &[Value]) -> String {
    let words: Vec<String> = argv.iter().map(|word| word.as_str().unwrap_or("").to_owned()).collect();
    grappe_exec::slurm::shell_words(&words)
}

/// `grappe job show`: one labelled line per fact, in words.
fn job_lines(job: &Value) -> Vec<String> {
    let when = |key: &str| job[key].as_i64().map_or_else(|| "-".to_owned(), grappe_server::kit::page::iso_datetime);
    let named = |name: &Value, id: &Value| match name.as_str() {
        Some(name) => format!("{} ({id})", cell(name)),
        None if id.is_null() => "-".to_owned(),
        None => id.to_string(),
    };
    let per_node = format!("{} CPU, {} GPU, {} MB of memory", job["cpus"], job["gpus"], job["memory_mb"]);
    let resources = match job["nodes"].as_i64() {
        Some(1) | None => per_node,
        Some(nodes) => format!("{nodes} nodes, each {per_node}"),
    };
    let duration = |key: &str| job[key].as_i64().map_or_else(|| "-".to_owned(), text::human_duration);
    let mut lines: Vec<(&str, String)> = vec![
        ("Job", format!("{} {}", job["id"], cell(job["name"].as_str().unwrap_or("")))),
        ("Project", named(&job["project_name"], &job["project"])),
        ("User", named(&job["user_name"], &job["user_id"])),
        ("State", cell(job["state"].as_str().unwrap_or("?"))),
        ("Reason", cell_or_dash(&job["reason"])),
        ("Command", cell(&shell_words(job["command"].as_array().map_or(&[][..], Vec::as_slice)))),
        ("Resources", resources),
        ("QoS", cell(job["qos"].as_str().unwrap_or("?"))),
        ("Time limit", duration("time_limit_s")),
        ("Elapsed", duration("elapsed_s")),
        ("Submitted", when("submitted_at")),
        ("Started", when("started_at")),
        ("Ended", when("ended_at")),
    ];
    if !job["estimated_start_at"].is_null() {
        // While pending: when a replay of the queue starts it, at the latest.
        lines.insert(5, ("Start by", when("estimated_start_at")));
    }
    if !job["exit_code"].is_null() {
        lines.push(("Exit code", job["exit_code"].to_string()));
    }
    let cpu_time = job["cpu_time_s"].as_f64().map(|cpu_s| text::human_duration(cpu_s.round() as i64));
    lines.push(("CPU time", cpu_time.unwrap_or_else(|| "-".to_owned())));
    let peak = job["memory_peak_mb"].as_i64().map(|peak| format!("{peak} MB"));
    lines.push(("Memory peak", peak.unwrap_or_else(|| "-".to_owned())));
    if job["restart_count"].as_i64().is_some_and(|count| count > 0) {
        lines.push(("Restarts", job["restart_count"].to_string()));
    }
    if job["cancel_requested"].as_bool() == Some(true) && job["ended_at"].is_null() {
        lines.push(("Cancel", "requested; the job is being stopped".to_owned()));
    }
    let rows: Vec<Vec<String>> = lines.into_iter().map(|(label, value)| vec![label.to_owned(), value]).collect();
    text::table(&[text::Align::Left, text::Align::Left], &rows)
}

/// Hours as people read them: `2`, `0.5`, `0.03`, `19,995`.
fn hours(value: &Value) -> String {
    let text = format!("{:.2}", value.as_f64().unwrap_or(0.0));
    let text = text.trim_end_matches('0').trim_end_matches('.');
    let (sign, text) = text.strip_prefix('-').map_or(("", text), |rest| ("-", rest));
    let (whole, fraction) = text.split_once('.').map_or((text, None), |(whole, fraction)| (whole, Some(fraction)));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `--dry-run`'s answer as a sentence.
fn estimate_sentence(estimate: &Value, project: &str) -> String {
    let committed = match estimate["allocation_committed_after"].as_f64() {
        Some(share) if share < 0.01 => " (less than 1 % of it then committed)".to_owned(),
        Some(share) => format!(" ({:.0} % of it then committed)", share * 100.0),
        None => String::new(),
    };
    format!(
        "This job would cost at most {} CPU-hours and {} GPU-hours (if it runs to its time limit), leaving \
         {} CPU-hours and {} GPU-hours of project {project}'s allocation{committed}. Nothing was submitted.",
        hours(&estimate["estimated_cpu_hours"]),
        hours(&estimate["estimated_gpu_hours"]),
        hours(&estimate["cpu_hours_left_after"]),
        hours(&estimate["gpu_hours_left_after"]),
    )
}

/// `grappe job cancel`'s answer as a sentence, from what the server says it did.
fn cancel_sentence(job: &Value) -> String {
    let id = &job["id"];
    let state = job["state"].as_str().unwrap_or("?");
    match job["cancellation"].as_str() {
        Some("cancelled") => format!("Job {id} cancelled before it started."),
        Some("requested") => format!("Job {id}: cancellation requested; it is being stopped."),
        Some("already_requested") => format!("Job {id}: cancellation already requested; it is being stopped."),
        Some("already_ended") => format!("Job {id} already ended ({state}); nothing to cancel."),
        _ => format!("Job {id}: {state}."),
    }
}

pub fn run(command: JobCommand) -> anyhow::Result<()> {
    let session = Session::load()?;
    match command {
        JobCommand::Submit(args) => {
            let SubmitArgs {
                project,
                cpus,
                gpus,
                nodes,
                env,
                no_network,
                inputs,
                mem,
                time,
                qos,
                name,
                script,
                dependency,
                array,
                workdir,
                dry_run,
                json: as_json,
                command,
            } = *args;
            let mut variables = serde_json::Map::new();
            for pair in env {
                let (key, value) = pair.split_once('=').with_context(|| format!("--env `{pair}`: use NAME=VALUE"))?;
                variables.insert(key.to_owned(), json!(value));
            }
            let argv = match script {
                Some(path) => {
                    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                    vec!["sh".to_owned(), "-c".to_owned(), text]
                }
                None if command.is_empty() => bail!("give a command after `--`, or --script FILE"),
                None => command,
            };
            let project: Value = project.parse::<i64>().map_or_else(|_| json!(project), |id| json!(id));
            let workdir = match workdir {
                Some(dir) if !dry_run => {
                    let archive = pack_dir(&dir)?;
                    let sent = answer(session.post_bytes("/api/v1/workdirs", "application/x-tar", &archive)?)?;
                    sent["workdir"].as_str().map(str::to_owned)
                }
                _ => None,
            };
            let body = json!({
                "project": project, "command": argv, "cpus": cpus, "gpus": gpus, "nodes": nodes,
                "env": variables, "network": !no_network, "inputs": inputs,
                "memory_mb": parse_memory_mb(&mem)?, "time_limit_s": parse_duration_s(&time)?,
                "qos": qos, "name": name, "dry_run": dry_run, "dependency": dependency,
                "array": array, "workdir": workdir,
            });
            let reply = answer(session.post("/api/v1/jobs", &body)?)?;
            let project = body["project"].as_str().map_or_else(|| body["project"].to_string(), str::to_owned);
            if dry_run && !as_json {
                outln!("{}", estimate_sentence(&reply, &project));
            } else if as_json {
                outln!("{reply}");
            } else {
                let state = reply["state"].as_str().unwrap_or("?");
                // The server checked the array; the reply is its first task, whose id is the array's.
                match array.as_deref().map(grappe_domain::array::parse_array) {
                    Some(Ok(spec)) => {
                        outln!("Submitted array job {}: {} tasks ({state})", reply["id"], spec.tasks.len())
                    }
                    _ => outln!("Submitted job {} ({state})", reply["id"]),
                }
            }
        }
        JobCommand::List { project, json: as_json } => {
            let path = match project {
                Some(project) => format!("/api/v1/jobs?project={project}"),
                None => "/api/v1/jobs".to_owned(),
            };
            let reply = answer(session.get(&path)?)?;
            if as_json {
                outln!("{reply}");
                return Ok(());
            }
            let jobs = reply["items"].as_array().map_or(&[][..], Vec::as_slice);
            for line in job_table(jobs) {
                outln!("{line}");
            }
        }
        JobCommand::Show { id, json: as_json } => {
            let job = answer(session.get(&format!("/api/v1/jobs/{id}"))?)?;
            if as_json {
                outln!("{job}");
            } else {
                for line in job_lines(&job) {
                    outln!("{line}");
                }
            }
        }
        JobCommand::Logs { id, follow } => {
            let path = format!("/api/v1/jobs/{id}/logs{}", if follow { "?follow=true" } else { "" });
            let mut response = session.get_streaming(&path)?;
            if !response.status().is_success() {
                answer(response)?;
                return Ok(());
            }
            let mut reader = response.body_mut().as_reader();
            let mut stdout = std::io::stdout().lock();
            let mut buffer = [0u8; 16 * 1024];
            loop {
                let read = std::io::Read::read(&mut reader, &mut buffer)?;
                if read == 0 {
                    break;
                }
                if let Err(error) = stdout.write_all(&buffer[..read]).and_then(|()| stdout.flush()) {
                    text::stdout_failed(&error);
                }
            }
        }
        JobCommand::Cancel { id, json: as_json } => {
            let job = answer(session.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))?)?;
            if as_json {
                outln!("{job}");
            } else {
                outln!("{}", cancel_sentence(&job));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_lines_up_as_squeue() {
        let jobs = [
            json!({ "id": 7, "name": "a-rather-long-training-run", "project_name": "llm", "user_name": "Léa",
                    "state": "running", "elapsed_s": 3725, "time_limit_s": 7200, "reason": "" }),
            json!({ "id": 12, "name": "eval\nnext", "project": 3, "user_name": null, "state": "pending",
                    "elapsed_s": null, "time_limit_s": 90_000, "reason": "Priority" }),
        ];
        let lines = job_table(&jobs);
        assert_eq!(
            lines,
            [
                "ID  NAME                  PROJECT  USER  STATE       TIME  TIME_LIMIT  REASON",
                " 7  a-rather-long-train…  llm      Léa   running  1:02:05     2:00:00",
                "12  eval\u{fffd}next             3        -     pending     0:00  1-01:00:00  Priority",
            ]
        );
    }

    #[test]
    fn a_pending_job_says_when_it_should_start() {
        let waiting = json!({ "reason": "Priority", "estimated_start_at": 1_795_975_200_000_i64 });
        assert_eq!(reason_or_start(&waiting), "Priority (start by 2026-11-29 18:00 UTC)");
        assert_eq!(reason_or_start(&json!({ "reason": "Resources" })), "Resources");
    }

    #[test]
    fn a_command_is_shown_as_typed() {
        let argv = [json!("sh"), json!("-c"), json!("echo 'hi'; sleep 1"), json!("")];
        assert_eq!(shell_words(&argv), r#"sh -c 'echo '\''hi'\''; sleep 1' ''"#);
    }

    #[test]
    fn answers_in_sentences() {
        let estimate = json!({ "estimated_cpu_hours": 2.0, "estimated_gpu_hours": 0.0, "cpu_hours_left_after": 7.5,
                               "gpu_hours_left_after": 0.0, "allocation_committed_after": 0.25 });
        assert_eq!(
            estimate_sentence(&estimate, "llm"),
            "This job would cost at most 2 CPU-hours and 0 GPU-hours (if it runs to its time limit), leaving 7.5 \
             CPU-hours and 0 GPU-hours of project llm's allocation (25 % of it then committed). Nothing was submitted."
        );
        let large = json!({ "estimated_cpu_hours": 0.033, "estimated_gpu_hours": 1234.5, "cpu_hours_left_after": -2.5,
                            "gpu_hours_left_after": 1_234_567.0, "allocation_committed_after": 0.0002 });
        assert_eq!(
            estimate_sentence(&large, "7"),
            "This job would cost at most 0.03 CPU-hours and 1,234.5 GPU-hours (if it runs to its time limit), \
             leaving -2.5 CPU-hours and 1,234,567 GPU-hours of project 7's allocation (less than 1 % of it then \
             committed). Nothing was submitted."
        );
        let cancel = |cancellation: &str, state: &str| {
            cancel_sentence(&json!({ "id": 4, "state": state, "cancellation": cancellation }))
        };
        assert_eq!(cancel("requested", "running"), "Job 4: cancellation requested; it is being stopped.");
        assert_eq!(cancel("cancelled", "cancelled"), "Job 4 cancelled before it started.");
        assert_eq!(cancel("already_ended", "completed"), "Job 4 already ended (completed); nothing to cancel.");
    }

    #[test]
    fn memory_and_time() {
        assert_eq!(parse_memory_mb("16G").unwrap(), 16_384);
        assert_eq!(parse_memory_mb("512M").unwrap(), 512);
        assert_eq!(parse_memory_mb("2048").unwrap(), 2048);
        assert!(parse_memory_mb("lots").is_err());
        assert_eq!(parse_duration_s("2h").unwrap(), 7200);
        assert_eq!(parse_duration_s("30m").unwrap(), 1800);
        assert_eq!(parse_duration_s("90s").unwrap(), 90);
        assert_eq!(parse_duration_s("1:30:00").unwrap(), 5400);
        assert_eq!(parse_duration_s("10:00").unwrap(), 600);
        assert_eq!(parse_duration_s("45").unwrap(), 45);
        assert!(parse_duration_s("soon").is_err());
    }
}
