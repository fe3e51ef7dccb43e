//! `grappe model create|register|list|show`, against the server the CLI is logged in to;
//! `grappe model serve` (`lm_serve.rs`) runs on its own.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Session, answer};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Create a model owned by one of your projects (private unless `--public`).
    Create {
        /// The model's name.
        name: String,
        /// The project that owns it (its id).
        #[arg(long)]
        project: i64,
        /// List it publicly (private to the project otherwise).
        #[arg(long)]
        public: bool,
        /// The model's card, a Markdown file.
        #[arg(long)]
        card: Option<PathBuf>,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Register a version from a folder a job that succeeded wrote under its working directory.
    Register {
        /// The model's name.
        name: String,
        /// The job that succeeded and wrote the folder (its id).
        #[arg(long)]
        job: i64,
        /// The folder, relative to the job's working directory (`out/model`).
        #[arg(long)]
        path: String,
        /// The version it was trained from, `NAME@N`.
        #[arg(long)]
        base: Option<String>,
        /// The version's card, a Markdown file.
        #[arg(long)]
        card: Option<PathBuf>,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The models you may see.
    List {
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A model and its versions with their lineage.
    Show {
        /// The model's name.
        name: String,
        /// Print the server's JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve a model of `grappe train language-model` over HTTP in OpenAI's format (here, or as
    /// a job); prints `serving NAME on http://ADDR/v1` once listening.
    Serve(crate::lm_serve::ServeFlags),
    /// Put a model server that speaks OpenAI's format (vLLM, TGI, llama.cpp's server), started
    /// by the same job, behind the gateway: announce it, prove the job's token, relay the
    /// gateway's requests.
    Proxy(crate::model_proxy::ProxyFlags),
}

fn read_card(card: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    card.map(|path| std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))).transpose()
}

/// One line of a version: its number, job, base, inputs, compute and metrics.
fn version_line(version: &Value) -> String {
    let inputs: Vec<String> = version["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|input| {
            let id = input["version"].as_str().unwrap_or("");
            format!("{}@{}", input["dataset"].as_str().unwrap_or("?"), id.chars().take(12).collect::<String>())
        })
        .collect();
    format!(
        "v{}  job {}  base {}  data [{}]  {:.3} CPU-h {:.3} GPU-h  metrics {}",
        version["version"],
        version["job"],
        version["base"].as_str().unwrap_or("-"),
        inputs.join(", "),
        version["cpu_hours"].as_f64().unwrap_or(0.0),
        version["gpu_hours"].as_f64().unwrap_or(0.0),
        version["metrics"],
    )
}

pub fn run(command: ModelCommand) -> anyhow::Result<()> {
    let session = Session::load()?;
    match command {
        ModelCommand::Serve(_) | ModelCommand::Proxy(_) => {
            anyhow::bail!("`grappe model serve` and `proxy` run on the runtime")
        }
        ModelCommand::Create { name, project, public, card, json: as_json } => {
            let body = json!({ "name": name, "project": project, "public": public, "card": read_card(card)?.unwrap_or_default() });
            let reply = answer(session.post("/api/v1/models", &body)?)?;
            crate::print_record(&reply, as_json);
        }
        ModelCommand::Register { name, job, path, base, card, json: as_json } => {
            let body = json!({ "job": job, "path": path, "base": base, "card": read_card(card)? });
            let reply = answer(session.post(&format!("/api/v1/models/{name}/versions"), &body)?)?;
            if as_json {
                outln!("{reply}");
            } else {
                outln!("Registered {name} {}", version_line(&reply));
            }
        }
        ModelCommand::List { json: as_json } => {
            let reply = answer(session.get("/api/v1/models")?)?;
            if as_json {
                outln!("{reply}");
                return Ok(());
            }
            outln!("{:<30} {:>7}  {:<10}", "NAME", "PROJECT", "VISIBILITY");
            for model in reply["items"].as_array().into_iter().flatten() {
                outln!(
                    "{:<30} {:>7}  {:<10}",
                    model["name"].as_str().unwrap_or(""),
                    model["project"],
                    model["visibility"].as_str().unwrap_or("")
                );
            }
        }
        ModelCommand::Show { name, json: as_json } => {
            let reply = answer(session.get(&format!("/api/v1/models/{name}"))?)?;
            if as_json {
                outln!("{reply}");
                return Ok(());
            }
            outln!("{} (project {}, {})", name, reply["project"], reply["visibility"].as_str().unwrap_or(""));
            for version in reply["versions"].as_array().into_iter().flatten() {
                outln!("{}", version_line(version));
            }
        }
    }
    Ok(())
}
