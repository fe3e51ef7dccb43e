//! `grappe job submit|list|show|logs|cancel`, against the server the CLI is logged in to.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Session, answer};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job: `grappe job submit --project P --time 2h -- CMD ARGS`, or `--script FILE`.
    Submit(Box<SubmitArgs>),
    /// Jobs of your projects, newest first.
    List {
        #[arg(long)]
        project: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// A job's output; `-f` follows it until the job ends.
    Logs {
        id: i64,
        #[arg(short, long)]
        follow: bool,
    },
    Cancel {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct SubmitArgs {
    #[arg(long)]
    project: String,
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
    /// Memory: `16G`, `512M`, or megabytes.
    #[arg(long, default_value = "1G")]
    mem: String,
    /// Time limit: `2h`, `30m`, `90s`, `1:30:00`, or seconds.
    #[arg(long)]
    time: String,
    #[arg(long, default_value = "normal")]
    qos: String,
    #[arg(long)]
    name: Option<String>,
    /// A shell script to run (its content is sent; it runs with `sh`).
    #[arg(long, conflicts_with = "command")]
    script: Option<PathBuf>,
    /// Print the cost in GPU- and CPU-hours and what would remain; submit nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
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

fn print_job(job: &Value, as_json: bool) {
    if as_json {
        println!("{job}");
        return;
    }
    let record = json!({
        "id": job["id"], "name": job["name"], "project": job["project"], "state": job["state"],
        "reason": job["reason"], "exit_code": job["exit_code"], "qos": job["qos"],
        "resources": format!("{} CPU, {} GPU, {} MB, {} s", job["cpus"], job["gpus"], job["memory_mb"], job["time_limit_s"]),
        "restarts": job["restart_count"],
        "cpu_time_s": job["cpu_time_s"], "memory_peak_mb": job["memory_peak_mb"],
    });
    crate::print_record(&record, false);
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
            let body = json!({
                "project": project, "command": argv, "cpus": cpus, "gpus": gpus, "nodes": nodes,
                "env": variables, "network": !no_network, "inputs": inputs,
                "memory_mb": parse_memory_mb(&mem)?, "time_limit_s": parse_duration_s(&time)?,
                "qos": qos, "name": name, "dry_run": dry_run,
            });
            let reply = answer(session.post("/api/v1/jobs", &body)?)?;
            if dry_run && !as_json {
                crate::print_record(&reply, false);
            } else if as_json {
                println!("{reply}");
            } else {
                println!("Submitted job {} ({})", reply["id"], reply["state"].as_str().unwrap_or("?"));
            }
        }
        JobCommand::List { project, json: as_json } => {
            let path = match project {
                Some(project) => format!("/api/v1/jobs?project={project}"),
                None => "/api/v1/jobs".to_owned(),
            };
            let reply = answer(session.get(&path)?)?;
            if as_json {
                println!("{reply}");
                return Ok(());
            }
            println!("{:>6}  {:<10} {:<20} {:>7}  {:<20}", "ID", "STATE", "NAME", "PROJECT", "REASON");
            for job in reply["items"].as_array().into_iter().flatten() {
                println!(
                    "{:>6}  {:<10} {:<20} {:>7}  {:<20}",
                    job["id"],
                    job["state"].as_str().unwrap_or(""),
                    job["name"].as_str().unwrap_or("").chars().take(20).collect::<String>(),
                    job["project"],
                    job["reason"].as_str().unwrap_or("")
                );
            }
        }
        JobCommand::Show { id, json: as_json } => {
            print_job(&answer(session.get(&format!("/api/v1/jobs/{id}"))?)?, as_json)
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
                stdout.write_all(&buffer[..read])?;
                stdout.flush()?;
            }
        }
        JobCommand::Cancel { id, json: as_json } => {
            print_job(&answer(session.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))?)?, as_json)
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
