//! Datasets as job inputs. A job declares `"inputs": ["NAME@VERSION", ...]`; at submission each
//! is resolved to an exact version the submitter may read (a later push does not change what the
//! job reads, and a rerun reads the same bytes). At launch each version is materialised once per
//! machine, in a read-only cache keyed by version id (`DATA_DIR/inputs/<id>`), and shown to the
//! job read-only at `$GRAPPE_INPUTS/NAME`. The cache keeps at most `inputs_cache_bytes`,
//! removing the versions that no running job reads (nor one handed to Slurm), least recently
//! used first.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use grappe_store::{Digest, VersionId};
use serde::{Deserialize, Serialize};

use crate::data::{resolve, visible_dataset};
use crate::kit::caller::Caller;
use crate::kit::error::{AppError, AppResult};
use crate::kit::state::AppState;

/// Inputs one job may declare.
pub const MAX_INPUTS: usize = 16;

/// Where inputs are inside the sandbox.
const SANDBOX_INPUTS: &str = "/grappe/inputs";

/// One input of a job, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub dataset: String,
    pub version: String,
}

/// Resolves a submission's inputs to exact versions the caller may read: the JSON to store.
pub async fn resolve_inputs(state: &AppState, caller: &Caller, references: &[String]) -> AppResult<String> {
    if references.len() > MAX_INPUTS {
        return Err(AppError::Invalid(format!("at most {MAX_INPUTS} inputs, {} given", references.len())));
    }
    let mut inputs: Vec<Input> = Vec::with_capacity(references.len());
    for reference in references {
        let (name, which) = reference.split_once('@').unwrap_or((reference.as_str(), "latest"));
        let unknown = |error: AppError| match error {
            AppError::NotFound(detail) => AppError::Invalid(format!("input `{reference}`: {detail}")),
            other => other,
        };
        let dataset = visible_dataset(state, caller, name).await.map_err(unknown)?;
        if inputs.iter().any(|input| input.dataset == dataset.name) {
            return Err(AppError::Invalid(format!("input `{reference}`: the dataset `{name}` is declared twice")));
        }
        let versions = state.db.dataset_versions(dataset.id).await?;
        let row = resolve(&dataset, &versions, which).map_err(unknown)?;
        inputs.push(Input { dataset: dataset.name.clone(), version: row.version.clone() });
    }
    Ok(serde_json::to_string(&inputs).map_err(anyhow::Error::from)?)
}

/// A job's stored inputs.
pub fn stored_inputs(json: &str) -> Vec<Input> {
    serde_json::from_str(json).unwrap_or_default()
}

/// What a run needs to read its inputs: the read-only binds (cache, place in the sandbox) and
/// `GRAPPE_INPUTS`. Without a sandbox the job sees a folder of links into the cache instead.
/// Its versions stay in the cache while it is kept: until the job is recorded running, or handed
/// to Slurm, after which the job's own record keeps them.
pub struct Prepared {
    pub binds: Vec<(PathBuf, PathBuf)>,
    pub env: Option<String>,
    _held: Held,
}

/// The versions that runs being prepared in this process hold in the cache, each with how many
/// hold it.
fn held_versions() -> &'static std::sync::Mutex<std::collections::HashMap<String, usize>> {
    static HELD: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
        std::sync::OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// A hold on versions in the cache, let go when dropped.
struct Held(Vec<String>);

impl Held {
    fn new(inputs: &[Input]) -> Held {
        let versions: Vec<String> = inputs.iter().map(|input| input.version.clone()).collect();
        if let Ok(mut held) = held_versions().lock() {
            for version in &versions {
                *held.entry(version.clone()).or_default() += 1;
            }
        }
        Held(versions)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut held) = held_versions().lock() {
            for version in &self.0 {
                if let Some(count) = held.get_mut(version) {
                    *count -= 1;
                    if *count == 0 {
                        held.remove(version);
                    }
                }
            }
        }
    }
}

pub async fn prepare(state: &AppState, inputs_json: &str, run_dir: &Path, sandboxed: bool) -> anyhow::Result<Prepared> {
    let inputs = stored_inputs(inputs_json);
    let held = Held::new(&inputs);
    if inputs.is_empty() {
        return Ok(Prepared { binds: Vec::new(), env: None, _held: held });
    }
    let mut binds = Vec::with_capacity(inputs.len());
    let mut added = false;
    for input in &inputs {
        let (cached, new) = materialized(state, &input.version)
            .await
            .with_context(|| format!("preparing the input {}@{}", input.dataset, input.version))?;
        added |= new;
        binds.push((cached, Path::new(SANDBOX_INPUTS).join(&input.dataset)));
    }
    if added {
        evict(state, &inputs).await?;
    }
    if sandboxed {
        return Ok(Prepared { binds, env: Some(SANDBOX_INPUTS.to_owned()), _held: held });
    }
    let view = run_dir.join("inputs");
    std::fs::create_dir_all(&view).with_context(|| format!("creating {}", view.display()))?;
    for ((cached, _), input) in binds.iter().zip(&inputs) {
        let link = view.join(&input.dataset);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(cached, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(Prepared { binds: Vec::new(), env: Some(view.display().to_string()), _held: held })
}

/// The version's files in the machine's cache, and whether they were just added: materialised
/// first if they are not there yet, into a staging folder, made readable to jobs' identities
/// (folders 0755, files 0644), then renamed into place, so that the cache holds whole versions
/// only. A version found there is marked as used now (its folder's time), for eviction.
async fn materialized(state: &AppState, version: &str) -> anyhow::Result<(PathBuf, bool)> {
    let id = VersionId(Digest::parse(version).map_err(|error| anyhow::anyhow!("{error}"))?);
    let cache = state.config.data_dir.join("inputs");
    let target = cache.join(id.to_string());
    if target.is_dir() {
        let _ = std::fs::File::open(&target).and_then(|dir| dir.set_modified(std::time::SystemTime::now()));
        return Ok((target, false));
    }
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<(PathBuf, bool)> {
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let staging = cache.join(format!(".{id}.{}.{nonce}", std::process::id()));
        std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        let built = staging.join("v");
        let result =
            store.materialize(&id, &built).map_err(anyhow::Error::from).and_then(|_| readable_to_all(&built)).and_then(
                |()| match std::fs::rename(&built, &target) {
                    Ok(()) => Ok(()),
                    // Another run materialised it meanwhile: theirs is the same.
                    Err(_) if target.is_dir() => Ok(()),
                    Err(error) => Err(error).with_context(|| format!("moving it to {}", target.display())),
                },
            );
        let _ = std::fs::remove_dir_all(&staging);
        result.map(|()| (target, true))
    })
    .await?
}

/// Keeps the cache within `inputs_cache_bytes`: removes the versions that no running job reads,
/// nor a job handed to Slurm, nor a run being prepared (the job whose `preparing` inputs were
/// just added among them), least recently used first.
async fn evict(state: &AppState, preparing: &[Input]) -> anyhow::Result<()> {
    let limit = state.config.compute.inputs_cache_bytes;
    // Read by a running job, or by one handed to Slurm (its links point into the cache).
    let in_use: std::collections::HashSet<String> = state
        .db
        .active_jobs()
        .await?
        .iter()
        .filter(|job| job.state == "running" || job.external_id.is_some())
        .flat_map(|job| stored_inputs(&job.inputs))
        .chain(preparing.iter().cloned())
        .map(|input| input.version)
        .chain(held_versions().lock().map(|held| held.keys().cloned().collect::<Vec<_>>()).unwrap_or_default())
        .collect();
    let cache = state.config.data_dir.join("inputs");
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut versions = Vec::new();
        for entry in std::fs::read_dir(&cache).with_context(|| format!("listing {}", cache.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Whole versions only: staging folders start with a dot.
            if name.starts_with('.') || !entry.file_type()?.is_dir() {
                continue;
            }
            let used = entry.metadata()?.modified()?;
            versions.push((used, grappe_store::folder_bytes(&entry.path()), name, entry.path()));
        }
        let mut total: u64 = versions.iter().map(|(_, bytes, _, _)| bytes).sum();
        versions.sort();
        for (_, bytes, name, path) in versions {
            if total <= limit {
                break;
            }
            if in_use.contains(&name) {
                continue;
            }
            if std::fs::remove_dir_all(&path).is_ok() {
                tracing::info!(version = name, bytes, "an input version left the cache");
                total -= bytes;
            }
        }
        Ok(())
    })
    .await?
}

fn readable_to_all(dir: &Path) -> anyhow::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            readable_to_all(&path)?;
        } else {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("chmod {}", path.display()))?;
        }
    }
    Ok(())
}
