//! Versions of the model registry served through the gateway. A version becomes a gateway model
//! of its project (`version_id` set: it may then be fine-tuned, `fine_tuning.rs`) and a compute
//! job of the project that runs `grappe model serve` on the version's files, read as the job's
//! input; the job announces itself as a replica (`replicas.rs`) and serves until its time limit,
//! as any job. The demo's language model and every fine-tuned model take this one path.

use grappe_db::{GatewayModelRow, ModelRow, ModelVersionRow, NewGatewayModel, ProjectRow};
use serde::{Deserialize, Serialize};

use crate::compute::{NewJobBody, Submitted};
use crate::data::inputs::Input;
use crate::kit::error::{AppError, AppResult};
use crate::kit::state::AppState;

/// How long a serving job may run, longest first: the first the project's allocation admits
/// (a serving job is charged as any job, for the time it runs).
const SERVING_TIMES_S: [i64; 4] = [100 * 3600, 20 * 3600, 4 * 3600, 3600];
/// The longest a model is served when nobody asked: the demo's, and a project's own again.
pub const SERVING_LONGEST_S: i64 = SERVING_TIMES_S[0];
/// The built-in recipe's serving script: the model read from its input, the name given as `$1`,
/// so that no name is ever parsed by the shell. On a Slurm node it listens on the node's
/// addresses and announces the node's name (the gateway reaches it there); here, on loopback.
const SERVE_SCRIPT: &str = r#"set -- --name "$1"
if [ -n "${SLURMD_NODENAME:-}" ]; then set -- "$@" --addr 0.0.0.0:0 --announce-host "$SLURMD_NODENAME"; fi
exec grappe model serve --model "$GRAPPE_INPUTS/model/model.bin" "$@""#;
/// The built-in recipe's training script (`$1` the fine-tuned model's name, `$2` the epochs,
/// `$3` the seed).
const TRAIN_SCRIPT: &str = r#"exec grappe train language-model --jsonl --text "$GRAPPE_INPUTS/training/content" --base "$GRAPPE_INPUTS/base/model.bin" --out model --epochs "$2" --seed "$3" --name "$1""#;
/// Tokens `grappe train language-model` trains on per second on one of this machine's CPUs with
/// the default shape, measured (it prints its rate each epoch), rounded down.
const BUILT_IN_TOKENS_PER_SECOND: i64 = 20_000;
/// The largest script of a recipe.
const MAX_SCRIPT_BYTES: usize = 64 * 1024;

/// How a model's registry versions are fine-tuned and served by jobs of a project: Grappe's
/// built-in language model's way ([`Recipe::built_in`]), or an administrator's, set when the
/// model is registered, for any other model (a container or a script on Slurm's GPU nodes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// A shell script run in the job's working directory, `$1` the fine-tuned model's name, `$2`
    /// the epochs, `$3` the seed: it reads `$GRAPPE_INPUTS/training/content` (OpenAI's chat JSONL)
    /// and `$GRAPPE_INPUTS/base/` (the base version's files), writes the model's files into
    /// `model/`, and prints `GRAPPE_METRIC {"key": "loss", "value": L, "step": EPOCH}` lines.
    pub train: String,
    /// A shell script that serves `$GRAPPE_INPUTS/model/` (a version's files) as the model named
    /// `$1`: `grappe model serve`, or any server behind `grappe model proxy`.
    pub serve: String,
    /// What each of its jobs asks for.
    pub cpus: i64,
    pub gpus: i64,
    pub memory_mb: i64,
    /// Tokens (counted as the examples' bytes, a bound of any tokenizer's count) trained per
    /// second: the quote's estimate of a run's time.
    pub tokens_per_second: i64,
}

impl Recipe {
    pub fn built_in() -> Recipe {
        Recipe {
            train: TRAIN_SCRIPT.to_owned(),
            serve: SERVE_SCRIPT.to_owned(),
            cpus: 1,
            gpus: 0,
            memory_mb: 1024,
            tokens_per_second: BUILT_IN_TOKENS_PER_SECOND,
        }
    }

    /// A model's recipe, as stored with it (none: the built-in one).
    pub fn of(stored: Option<&str>) -> AppResult<Recipe> {
        match stored {
            None => Ok(Recipe::built_in()),
            Some(json) => serde_json::from_str(json)
                .map_err(|error| AppError::Internal(anyhow::anyhow!("a stored recipe does not read: {error}"))),
        }
    }

    /// An administrator's recipe checked, as JSON to store.
    pub fn checked(self) -> AppResult<String> {
        for (field, script) in [("train", &self.train), ("serve", &self.serve)] {
            if script.trim().is_empty() || script.len() > MAX_SCRIPT_BYTES || script.contains('\0') {
                return Err(AppError::Invalid(format!("`recipe.{field}`: a shell script of at most 64 KiB")));
            }
        }
        let ranges = [
            ("cpus", self.cpus, 1, 1024),
            ("gpus", self.gpus, 0, 64),
            ("memory_mb", self.memory_mb, 1, 4 << 20),
            ("tokens_per_second", self.tokens_per_second, 1, 1_000_000_000),
        ];
        for (field, value, least, most) in ranges {
            if !(least..=most).contains(&value) {
                return Err(AppError::Invalid(format!("`recipe.{field}`: {least} to {most}")));
            }
        }
        serde_json::to_string(&self).map_err(|error| AppError::Internal(error.into()))
    }

    /// A job of `project` that runs `script` with `args` after it (`$1`...), asking for the
    /// recipe's resources, for `time_limit_s` (QoS `long` past 20 hours).
    pub(crate) fn job(&self, script: &str, args: &[&str], project: i64, time_limit_s: i64) -> NewJobBody {
        let mut command = vec!["sh".to_owned(), "-c".to_owned(), script.to_owned(), "recipe".to_owned()];
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        NewJobBody {
            cpus: self.cpus,
            gpus: Some(self.gpus),
            memory_mb: self.memory_mb,
            qos: if time_limit_s > 20 * 3600 { "long" } else { "normal" }.to_owned(),
            ..NewJobBody::made_by_server(project, command, time_limit_s)
        }
    }
}

/// The serving job's name for a gateway model.
fn serving_job_name(model: &str) -> String {
    format!("serve {model}")
}

/// A registry version a gateway model or a fine-tuning names (by its row id), with its model.
pub(crate) async fn registry_version(state: &AppState, id: i64) -> AppResult<(ModelRow, ModelVersionRow)> {
    state
        .db
        .model_version_by_id(id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("version {id} is missing")))
}

/// Whether a serving job of `model` is queued or running in the project.
pub async fn is_served(state: &AppState, project: i64, model: &str) -> AppResult<bool> {
    Ok(state.db.named_job_active(project, &serving_job_name(model)).await?)
}

/// `version`'s files as a job's one input, `$GRAPPE_INPUTS/NAME`.
pub(crate) fn input_of(name: &str, store_version: &str) -> Input {
    Input { dataset: name.to_owned(), version: store_version.to_owned() }
}

/// Makes `new` (a gateway model of a project, `version_id` set) served: the gateway model, once,
/// and a serving job of `user_id` on the project unless one is queued or running, for the
/// longest of [`SERVING_TIMES_S`] up to `longest_s` its allocation admits (a refusal if none). Running it again
/// after a crash, or once the serving job ended, finishes what was left.
pub async fn serve_version(
    state: &AppState,
    new: &NewGatewayModel<'_>,
    project: &ProjectRow,
    user_id: Option<i64>,
    version: &ModelVersionRow,
    longest_s: i64,
    actor: &str,
) -> AppResult<GatewayModelRow> {
    let model = match state.db.gateway_model(new.name).await? {
        Some(model) => model,
        None => state.db.create_gateway_model(new, actor).await?,
    };
    if is_served(state, project.id, new.name).await? {
        return Ok(model);
    }
    let inputs = serde_json::to_string(&[input_of("model", &version.store_version)]).map_err(anyhow::Error::from)?;
    let recipe = Recipe::of(new.recipe)?;
    let mut refused = None;
    for time_limit_s in SERVING_TIMES_S.into_iter().filter(|time_limit_s| *time_limit_s <= longest_s) {
        let job = serving_job(&recipe, new.name, project.id, time_limit_s);
        match crate::compute::queue(state, user_id, project, job, &inputs).await {
            Ok(Submitted::Job(_)) => return Ok(model),
            Ok(Submitted::Estimate(_)) => {
                return Err(AppError::Internal(anyhow::anyhow!("a serving job was only estimated")));
            }
            Err(error @ AppError::Conflict(_)) => refused = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(refused.unwrap_or_else(|| AppError::Internal(anyhow::anyhow!("no serving time was tried"))))
}

fn serving_job(recipe: &Recipe, model: &str, project: i64, time_limit_s: i64) -> NewJobBody {
    NewJobBody {
        name: Some(serving_job_name(model)),
        // The gateway reaches the job on the machine's loopback, or on its Slurm node.
        network: true,
        ..recipe.job(&recipe.serve, &[model], project, time_limit_s)
    }
}
