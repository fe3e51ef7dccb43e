//! `grappe challenge list|show|board|team|join|submit`, against the server the CLI is logged in
//! to.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Session, answer};

#[derive(Subcommand)]
pub enum ChallengeCommand {
    /// Challenges, newest first.
    List {
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A challenge: its data, metric, phases and limits.
    Show {
        /// The challenge's id.
        id: i64,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The public leaderboard; `--private` once the challenge closed (or as its organiser).
    Board {
        /// The challenge's id.
        id: i64,
        /// The private leaderboard (once the challenge closed, or as its organiser).
        #[arg(long)]
        private: bool,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Your team, its members and submissions; `--create NAME` makes one, `--invite EMAIL`
    /// invites someone into it.
    Team {
        /// The challenge's id.
        id: i64,
        /// Create a team of this name, with you in it.
        #[arg(long, conflicts_with = "invite")]
        create: Option<String>,
        /// Invite the person with this e-mail into your team.
        #[arg(long)]
        invite: Option<String>,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Accept a team's invitation (from another team: both merge, within the limits).
    Join {
        /// The challenge's id.
        id: i64,
        /// The id of the team whose invitation you accept.
        team: i64,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Submit predictions: a CSV file (`id` and one value column), a completed job's output
    /// (`--job ID [--path predictions.csv]`), or code run as a job without network (after
    /// `--`: it writes `predictions.csv` in its working directory).
    Submit {
        /// The challenge's id.
        id: i64,
        /// A predictions file: CSV with `id` and one value column.
        file: Option<PathBuf>,
        /// Submit this completed job's output instead of a file.
        #[arg(long, conflicts_with = "file")]
        job: Option<i64>,
        /// With `--job`: the file in the job's working directory (default `predictions.csv`).
        #[arg(long, requires = "job")]
        path: Option<String>,
        /// For code: a dataset it reads besides the challenge's (repeat for more).
        #[arg(long = "input", value_name = "NAME[@VERSION]")]
        inputs: Vec<String>,
        /// A note for your team, kept with the submission.
        #[arg(long, default_value = "")]
        note: String,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Code to run as a job without network, after `--`; it writes `predictions.csv`.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

fn print(value: &Value, as_json: bool) {
    if as_json {
        outln!("{value}");
    } else {
        crate::print_record(value, false);
    }
}

fn submission_line(s: &Value) -> String {
    let score = |key: &str| s[key].as_f64().map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"));
    format!(
        "{:>6}  {:<5} {:<8} {:>8} {:>8}  {}",
        s["id"],
        s["kind"].as_str().unwrap_or(""),
        s["state"].as_str().unwrap_or(""),
        score("public_score"),
        score("private_score"),
        s["reason"].as_str().unwrap_or("")
    )
}

pub fn run(command: ChallengeCommand) -> anyhow::Result<()> {
    let session = Session::load()?;
    match command {
        ChallengeCommand::List { json: as_json } => {
            let reply = answer(session.get("/api/v1/challenges")?)?;
            if as_json {
                outln!("{reply}");
                return Ok(());
            }
            outln!("{:>4}  {:<8} {:<16} TITLE", "ID", "STATUS", "METRIC");
            for c in reply["items"].as_array().into_iter().flatten() {
                let text = |key: &str| c[key].as_str().unwrap_or("").to_owned();
                outln!("{:>4}  {:<8} {:<16} {}", c["id"], text("status"), text("metric"), text("title"));
            }
        }
        ChallengeCommand::Show { id, json: as_json } => {
            print(&answer(session.get(&format!("/api/v1/challenges/{id}"))?)?, as_json);
        }
        ChallengeCommand::Board { id, private, json: as_json } => {
            let which = if private { "private" } else { "public" };
            let reply = answer(session.get(&format!("/api/v1/challenges/{id}/leaderboard?board={which}"))?)?;
            if as_json {
                outln!("{reply}");
                return Ok(());
            }
            outln!("{:>4}  {:<32} {:>10} {:>7}", "RANK", "TEAM", "SCORE", "ENTRIES");
            for row in reply["rows"].as_array().into_iter().flatten() {
                let rank = row["rank"].as_i64().map_or_else(|| "-".to_owned(), |r| r.to_string());
                let mut team = row["team"].as_str().unwrap_or("").to_owned();
                if row["baseline"] == true {
                    team.push_str(" (baseline)");
                }
                let score = row["score"].as_f64().unwrap_or(f64::NAN);
                outln!("{rank:>4}  {team:<32} {score:>10.4} {:>7}", row["entries"]);
            }
        }
        ChallengeCommand::Team { id, create, invite, json: as_json } => {
            if let Some(name) = create {
                let reply = answer(session.post(&format!("/api/v1/challenges/{id}/teams"), &json!({ "name": name }))?)?;
                print(&reply, as_json);
                return Ok(());
            }
            if let Some(email) = invite {
                let path = format!("/api/v1/challenges/{id}/team/invitations");
                print(&answer(session.post(&path, &json!({ "email": email }))?)?, as_json);
                return Ok(());
            }
            let reply = answer(session.get(&format!("/api/v1/challenges/{id}/team"))?)?;
            if as_json {
                outln!("{reply}");
                return Ok(());
            }
            for invitation in reply["invitations"].as_array().into_iter().flatten() {
                outln!(
                    "Invited by team {} ({}): grappe challenge join {id} {}",
                    invitation["team"],
                    invitation["name"],
                    invitation["team"]
                );
            }
            if reply["team"].is_null() {
                outln!("You are in no team of this challenge: grappe challenge team {id} --create NAME");
                return Ok(());
            }
            let members: Vec<&str> =
                reply["members"].as_array().into_iter().flatten().filter_map(|m| m["name"].as_str()).collect();
            outln!(
                "Team {} ({}): {}",
                reply["team"]["id"],
                reply["team"]["name"].as_str().unwrap_or(""),
                members.join(", ")
            );
            outln!("{:>6}  {:<5} {:<8} {:>8} {:>8}  REASON", "ID", "KIND", "STATE", "PUBLIC", "PRIVATE");
            for s in reply["submissions"].as_array().into_iter().flatten() {
                outln!("{}", submission_line(s));
            }
        }
        ChallengeCommand::Join { id, team, json: as_json } => {
            print(&answer(session.post(&format!("/api/v1/challenges/{id}/teams/{team}/join"), &json!({}))?)?, as_json);
        }
        ChallengeCommand::Submit { id, file, job, path, inputs, note, json: as_json, command } => {
            let base = format!("/api/v1/challenges/{id}/submissions");
            let reply = match (file, job, command.is_empty()) {
                (Some(file), None, true) => {
                    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                    let note = grappe_server::kit::page::url_encode(&note);
                    answer(session.post_bytes(&format!("{base}?note={note}"), "text/csv", &bytes)?)?
                }
                (None, Some(job), true) => {
                    let mut body = json!({ "job": job, "note": note });
                    if let Some(path) = path {
                        body["path"] = json!(path);
                    }
                    answer(session.post(&base, &body)?)?
                }
                (None, None, false) => {
                    let body = json!({ "command": command, "inputs": inputs, "note": note });
                    answer(session.post(&format!("{base}/code"), &body)?)?
                }
                _ => bail!("give one of: a predictions file, --job ID, or a command after `--`"),
            };
            if as_json {
                outln!("{reply}");
            } else {
                outln!("{}", submission_line(&reply));
            }
        }
    }
    Ok(())
}
