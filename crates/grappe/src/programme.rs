//! `grappe programme load FILE.toml`: the programme's file checked here (its errors name the
//! line, or the instrument and field), then sent to the server the CLI is logged in to, which
//! checks it again and loads it in one transaction. `--check` stops after the first step.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use grappe_domain::programme::Programme;

use crate::client::{Session, answer};

#[derive(Subcommand)]
pub enum ProgrammeCommand {
    /// Load or update the programme from its TOML file (as `programmes/france-2030-ia.toml`);
    /// an administrator's command.
    Load {
        /// The programme's file.
        file: PathBuf,
        /// Only check the file; send nothing.
        #[arg(long)]
        check: bool,
    },
}

pub fn run(command: ProgrammeCommand) -> anyhow::Result<()> {
    match command {
        ProgrammeCommand::Load { file, check } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let programme = Programme::from_toml(&text).with_context(|| format!("{}", file.display()))?;
            let lines: usize = programme.instruments.iter().map(|i| i.budget_lines.len()).sum();
            if check {
                outln!(
                    "{}: {} instruments, {lines} budget lines, {} figures: the file is valid",
                    programme.programme.code,
                    programme.instruments.len(),
                    programme.kpis.len()
                );
                return Ok(());
            }
            let session = Session::load()?;
            let loaded = answer(session.post("/api/v1/programme", &serde_json::to_value(&programme)?)?)?;
            outln!(
                "{}: {} instruments, {} budget lines, {} figures loaded",
                loaded["programme"].as_str().unwrap_or_default(),
                loaded["instruments"],
                loaded["budget_lines"],
                loaded["kpis"]
            );
            for removed in loaded["removed"].as_array().into_iter().flatten() {
                outln!("  removed: {}", removed.as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}
