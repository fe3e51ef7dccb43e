//! `grappe`: one binary for every role. `serve` runs the platform; `admin` acts on its database
//! from the shell; `login` and `whoami` talk to a running server.

/// `println!` for everything the CLI prints on standard output, through
/// [`text::write_stdout`]: a closed pipe ends the program quietly instead of a panic.
macro_rules! outln {
    () => {
        crate::text::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        crate::text::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod batch;
mod challenge;
mod client;
mod dataset;
mod job;
mod jury;
mod lm_serve;
mod model;
mod model_proxy;
mod programme;
mod remote;
mod score;
mod settings;
mod simulate;
mod text;
mod train;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use grappe_domain::account::{Email, RoleGrant};
use grappe_server::account::api::{NewUserFields, create_user_from};
use serde_json::{Value, json};

use crate::settings::ServeFlags;

#[derive(Parser)]
#[command(name = "grappe", version, about = "The platform for the instruments of a national AI programme")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform: API, web UI and background loops, in one process.
    Serve(ServeFlags),
    /// Administer accounts directly on the database (first set-up, automation).
    Admin {
        #[command(flatten)]
        target: DatabaseTarget,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Log in to a server and keep an API token in your configuration directory.
    Login {
        /// The server's address, as `https://grappe.example.org`.
        #[arg(long)]
        url: String,
        /// Your e-mail (asked for when not given).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from this environment variable instead of standard input.
        #[arg(long, default_value = "GRAPPE_PASSWORD")]
        password_env: String,
    },
    /// Replay a workload trace (SWF) under a scheduling policy and print wait, slowdown and
    /// utilization.
    Simulate(simulate::SimulateFlags),
    /// Score a predictions file against a truth file (CSV: `id` and one value column) with a
    /// scikit-learn or sacrebleu metric; exit code 2 on a bad file or row.
    Score(score::ScoreFlags),
    /// The jury's tools: `assign` reviewers to applications (JSON in, JSON out; exit code 1 when
    /// no assignment exists, 2 on bad input).
    Jury {
        #[command(subcommand)]
        command: jury::JuryCommand,
    },
    /// Submit, follow and cancel jobs on the server you are logged in to.
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// Take part in challenges: teams, submissions (files, a job's output, code), leaderboards.
    Challenge {
        #[command(subcommand)]
        command: challenge::ChallengeCommand,
    },
    /// Create models, register versions from jobs' output, list and show them, on the server
    /// you are logged in to; serve a built-in language model in OpenAI's format.
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
    /// Run a gateway batch's requests, as the batch's job does (the server starts it).
    Batch {
        #[command(subcommand)]
        command: batch::BatchCommand,
    },
    /// Train a model with a built-in recipe, on this machine or as a job; resumes from its
    /// checkpoint.
    Train {
        #[command(subcommand)]
        command: train::TrainCommand,
    },
    /// Push, pull, list, show and compare dataset versions on the server you are logged in to
    /// (`--store DIR`: directly on a local store).
    Dataset {
        #[command(flatten)]
        target: dataset::StoreTarget,
        #[command(subcommand)]
        command: dataset::DatasetCommand,
    },
    /// Check (`verify`) or clean up (`gc`) a local store.
    Store {
        #[command(flatten)]
        target: dataset::StoreTarget,
        #[command(subcommand)]
        command: dataset::StoreCommand,
    },
    /// Check the audit chain (every link, and the daily anchors) directly on the database; names
    /// the first broken link and exits non-zero.
    Audit {
        #[command(flatten)]
        target: DatabaseTarget,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Load or update the programme (instruments, budget lines, figures) from its file, on the
    /// server you are logged in to as an administrator.
    Programme {
        #[command(subcommand)]
        command: programme::ProgrammeCommand,
    },
    /// Show who the stored token belongs to.
    Whoami {
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the stored token and forget it.
    Logout,
}

#[derive(Args)]
struct DatabaseTarget {
    /// Data directory; its `grappe.db` is used unless --database says otherwise.
    #[arg(long, env = "GRAPPE_DATA_DIR", default_value = "./grappe-data", global = true)]
    data_dir: std::path::PathBuf,
    /// Database URL: `postgres://...`, or `sqlite://PATH`.
    #[arg(long, env = "GRAPPE_DATABASE", global = true)]
    database: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum AuditCommand {
    Verify,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user; the password is read from standard input (one line).
    CreateUser {
        /// The user's e-mail, with which they log in.
        #[arg(long)]
        email: String,
        /// The user's name, as others see it.
        #[arg(long)]
        name: String,
    },
    /// Grant a role to a user, globally or over one object (`--scope project:12`).
    Grant {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// The role granted.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Where it holds: `global`, or one object as `project:12`, `call:3`, `challenge:5`.
        #[arg(long, default_value = "global")]
        scope: String,
    },
    /// Create an API token for a user and print it once.
    CreateToken {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
        /// The token's name, to tell it from the user's others.
        #[arg(long, default_value = "admin cli")]
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    ProgrammeManager,
    CallManager,
    Juror,
    Applicant,
    ProjectMember,
    ChallengeOrganiser,
    Participant,
}

impl RoleArg {
    fn role(self) -> grappe_domain::account::Role {
        use grappe_domain::account::Role;
        match self {
            RoleArg::Admin => Role::Admin,
            RoleArg::ProgrammeManager => Role::ProgrammeManager,
            RoleArg::CallManager => Role::CallManager,
            RoleArg::Juror => Role::Juror,
            RoleArg::Applicant => Role::Applicant,
            RoleArg::ProjectMember => Role::ProjectMember,
            RoleArg::ChallengeOrganiser => Role::ChallengeOrganiser,
            RoleArg::Participant => Role::Participant,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Scoring is pure computation on two files: no runtime, no logging set-up.
    if let Command::Score(flags) = cli.command {
        return score::run(flags);
    }
    let cli = match cli.command {
        Command::Jury { command } => return jury::run(command),
        command => Cli { command },
    };
    settings::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<train::Stopped>() => {
            eprintln!("{error}");
            ExitCode::from(143)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(flags) => serve(flags).await,
        Command::Admin { target, command } => admin(target, command).await,
        Command::Login { url, email, password_env } => client::login(&url, email, &password_env),
        Command::Whoami { json } => client::whoami(json),
        Command::Simulate(flags) => simulate::run(flags),
        // `main` runs it before starting the runtime, for its own exit codes.
        Command::Score(_) => bail!("`grappe score` runs outside the runtime"),
        Command::Jury { .. } => bail!("`grappe jury` runs outside the runtime"),
        Command::Job { command } => job::run(command),
        Command::Programme { command } => programme::run(command),
        Command::Challenge { command } => challenge::run(command),
        Command::Model { command: model::ModelCommand::Serve(flags) } => lm_serve::run(flags).await,
        Command::Model { command: model::ModelCommand::Proxy(flags) } => model_proxy::run(flags).await,
        Command::Model { command } => model::run(command),
        Command::Train { command } => train::run(command),
        Command::Batch { command } => batch::run(command),
        Command::Dataset { target, command } => dataset::run_dataset(target, command),
        Command::Store { target, command } => dataset::run_store(target, command),
        Command::Audit { target, command: AuditCommand::Verify } => audit_verify(target).await,
        Command::Logout => client::logout(),
    }
}

async fn audit_verify(target: DatabaseTarget) -> anyhow::Result<()> {
    let url = settings::database_url(&target.data_dir, target.database.as_deref())?;
    let key = settings::audit_key(&target.data_dir, None)?;
    let db = grappe_db::Db::open(&url, &grappe_db::PoolConfig::default()).await?.with_audit_key(&key);
    let broken = db.verify_audit_chain().await?;
    let anchors = db.audit_anchors(1).await?;
    db.close().await;
    match broken {
        None => {
            let anchor =
                anchors.first().map_or_else(String::new, |a| format!("; last anchor {} at event {}", a.day, a.seq));
            outln!("the audit chain holds{anchor}");
            Ok(())
        }
        Some(broken) => anyhow::bail!("the audit chain is broken at event {}", broken.seq),
    }
}

async fn serve(flags: ServeFlags) -> anyhow::Result<()> {
    // What the server writes (database, logs, job directories) is its own: no group, no others.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let config = settings::server_config(flags)?;
    std::fs::set_permissions(&config.data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("making {} private", config.data_dir.display()))?;
    let demo = config.demo;
    let state = grappe_server::connect(config).await?;
    if demo {
        let accounts = grappe_server::demo::load(&state).await.map_err(|error| anyhow::anyhow!("{error}"))?;
        outln!("Demo mode: the France 2030 programme is loaded. Accounts (new passwords at every start):");
        for account in accounts {
            outln!("  {:<20} {:<40} {}", account.role.as_str(), account.email, account.password);
        }
    }
    grappe_server::run(state, shutdown_signal()).await
}

/// SIGTERM or Ctrl-C: stop accepting, finish requests in flight, stop the loops.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

async fn admin(target: DatabaseTarget, command: AdminCommand) -> anyhow::Result<()> {
    let url = settings::database_url(&target.data_dir, target.database.as_deref())?;
    let key = settings::audit_key(&target.data_dir, None)?;
    let db = grappe_db::Db::open(&url, &grappe_db::PoolConfig::default()).await?.with_audit_key(&key);
    let output = match command {
        AdminCommand::CreateUser { email, name } => {
            let password = read_password("Password for the new user")?;
            let fields = NewUserFields { name, email, password, organisation_id: None };
            let user = create_user_from(&db, fields, "admin-cli").await.map_err(|error| anyhow::anyhow!("{error}"))?;
            json!({ "id": user.id, "email": user.email, "name": user.name })
        }
        AdminCommand::Grant { email, role, scope } => {
            let user = find_user(&db, &email).await?;
            let grant = RoleGrant::parse(role.role().as_str(), &scope)?;
            let row = db.grant_role(user.id, &grant, "admin-cli").await?;
            json!({ "id": row.id, "user": user.email, "role": grant.role.as_str(), "scope": grant.scope.to_string() })
        }
        AdminCommand::CreateToken { email, name } => {
            let user = find_user(&db, &email).await?;
            let token = grappe_server::kit::caller::new_api_token();
            let row = db.create_api_token(user.id, &name, &grappe_db::sha256_hex(token.as_bytes())).await?;
            json!({ "id": row.id, "user": user.email, "name": row.name, "token": token })
        }
    };
    db.close().await;
    print_record(&output, target.json);
    Ok(())
}

async fn find_user(db: &grappe_db::Db, email: &str) -> anyhow::Result<grappe_db::UserRow> {
    let email = Email::parse(email)?;
    db.user_by_email(&email).await?.with_context(|| format!("no user with email {email}"))
}

/// One line from standard input; a prompt only when it is a terminal.
pub fn read_password(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}: ");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(password)
}

/// A flat JSON object as `key  value` lines, or as JSON with `--json`.
pub fn print_record(value: &Value, as_json: bool) {
    if as_json {
        outln!("{value}");
        return;
    }
    if let Value::Object(fields) = value {
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, field) in fields {
            let text = match field {
                Value::String(text) => text.clone(),
                Value::Null => "-".to_owned(),
                other => other.to_string(),
            };
            outln!("{key:<width$}  {text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command, as `grappe job submit --qos`, that `--help` shows with no
    /// text.
    fn without_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && !arg.is_hide_set() && arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!(
                    "{path} {}",
                    arg.get_long().map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"))
                ));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() != "help" {
                without_help(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
    }

    #[test]
    fn every_flag_has_help_text() {
        let mut missing = Vec::new();
        without_help(&super::Cli::command(), "grappe", &mut missing);
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_qos_help_lists_the_schedulers_levels() {
        let mut command = super::Cli::command();
        let help = command
            .find_subcommand_mut("job")
            .and_then(|job| job.find_subcommand_mut("submit"))
            .map(|submit| submit.render_help().to_string())
            .unwrap_or_default();
        for qos in grappe_sched::engine::default_qos() {
            assert!(help.contains(&format!("{} (up to", qos.name)), "{help}");
        }
    }
}
