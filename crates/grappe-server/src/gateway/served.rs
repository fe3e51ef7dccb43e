//! Versions of the model registry served through the gateway. A version becomes a gateway model
//! of its project (`version_id` set: it may then be fine-tuned, `fine_tuning.rs`) and a compute
//! job of the project that runs `grappe model serve` on the version's files, read as the job's
//! input; the job announces itself as a replica (`replicas.rs`) and serves until its time limit,
//! as any job. The demo's language model and every fine-tuned model take this one path.

use grappe_db::{GatewayModelRow, ModelRow, ModelVersionRow, NewGatewayModel, ProjectRow};

use crate::compute::{NewJobBody, Submitted};
use crate::data::inputs::Input;
use crate::kit::error::{AppError, AppResult};
use crate::kit::state::AppState;

/// How long a serving job may run, longest first: the first the project's allocation admits
/// (a serving job is charged as any job, for the time it runs).
const SERVING_TIMES_S: [i64; 4] = [100 * 3600, 20 * 3600, 4 * 3600, 3600];
/// The longest a model is served when nobody asked: the demo's, and a project's own again.
pub const SERVING_LONGEST_S: i64 = SERVING_TIMES_S[0];
/// The serving job's command: the model read from its input, the name given as `$1`, so that
/// no name is ever parsed by the shell. On a Slurm node it listens on the node's addresses and
/// announces the node's name (the gateway reaches it there); here, on loopback.
const SERVE_SCRIPT: &str = r#"set -- --name "$1"
if [ -n "${SLURMD_NODENAME:-}" ]; then set -- "$@" --addr 0.0.0.0:0 --announce-host "$SLURMD_NODENAME"; fi
exec grappe model serve --model "$GRAPPE_INPUTS/model/model.bin" "$@""#;

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
    let mut refused = None;
    for time_limit_s in SERVING_TIMES_S.into_iter().filter(|time_limit_s| *time_limit_s <= longest_s) {
        match crate::compute::queue(state, user_id, project, serving_job(new.name, project.id, time_limit_s), &inputs)
            .await
        {
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

fn serving_job(model: &str, project: i64, time_limit_s: i64) -> NewJobBody {
    let command = ["sh", "-c", SERVE_SCRIPT, "serve", model].map(str::to_owned).to_vec();
    NewJobBody {
        name: Some(serving_job_name(model)),
        gpus: Some(0),
        memory_mb: 512,
        qos: if time_limit_s > 20 * 3600 { "long" } else { "normal" }.to_owned(),
        // The gateway reaches the job on the machine's loopback, or on its Slurm node.
        network: true,
        ..NewJobBody::made_by_server(project, command, time_limit_s)
    }
}
