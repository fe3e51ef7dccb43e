//! `grappe dataset ...` against the server the CLI is logged in to ([`crate::remote`]), or
//! directly on a store with `--store` (a folder, or `s3://BUCKET/PREFIX?endpoint=URL`; or
//! `--data-dir DIR`: its `store` folder); `grappe store ...` on a store (by default
//! `./grappe-data/store`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use grappe_store::{DatasetPath, Name, Splits, Store, StoreConfig, Version, VersionDiff, VersionId, open_blobs};
use serde_json::{Value, json};

use crate::client::{Session, answer};
use crate::remote;

#[derive(Args)]
pub struct StoreTarget {
    /// Work on this store directly, not through a server: a folder, or
    /// s3://BUCKET/PREFIX[?endpoint=URL&region=NAME] with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "GRAPPE_STORE", global = true)]
    store: Option<String>,
    /// Work directly on this data directory's `store` folder, not through a server.
    #[arg(long, env = "GRAPPE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl StoreTarget {
    /// The store named on the command line (`--store`, or `--data-dir`'s `store` folder), if any.
    fn local(&self) -> anyhow::Result<Option<String>> {
        match (&self.store, &self.data_dir) {
            (Some(spec), _) => Ok(Some(spec.clone())),
            (None, Some(dir)) => {
                let folder = dir.join("store");
                Ok(Some(folder.to_str().context("the data directory's path is not UTF-8")?.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }

    fn open(&self) -> anyhow::Result<Store> {
        let spec = self.local()?.unwrap_or_else(|| "./grappe-data/store".to_owned());
        let blobs = open_blobs(&spec).with_context(|| format!("opening the store at {spec}"))?;
        Store::open(blobs, StoreConfig::default()).with_context(|| format!("opening the store at {spec}"))
    }
}

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Store every file under DIR as a new version of NAME (a no-op if it is already the latest).
    Push {
        /// The folder whose files become the version.
        dir: PathBuf,
        /// The dataset's name.
        #[arg(long)]
        name: String,
        /// A file whose text becomes the version's card (README-style).
        #[arg(long)]
        card: Option<PathBuf>,
        /// A split: `--split train=data/train.csv`; repeat for more paths and splits.
        #[arg(long = "split", value_name = "SPLIT=PATH")]
        splits: Vec<String>,
        /// On a server, for a new dataset: the project that owns it (id or name).
        #[arg(long)]
        project: Option<String>,
        /// On a server, for a new dataset: list it publicly (private to the project otherwise).
        #[arg(long)]
        public: bool,
    },
    /// Write a version's files into DIR (created, or an empty folder): NAME, NAME@TAG or
    /// NAME@VERSION (a version id or 8+ of its first hex digits).
    Pull {
        /// The version: `NAME`, `NAME@TAG` or `NAME@VERSION`.
        reference: String,
        /// The folder to write into.
        dir: PathBuf,
    },
    /// The datasets, with their latest version.
    List,
    /// A version's files, splits and card.
    Show {
        /// The version: `NAME`, `NAME@TAG` or `NAME@VERSION`.
        reference: String,
    },
    /// Paths added, removed and changed between two versions.
    Diff {
        /// The version compared from: `NAME`, `NAME@TAG` or `NAME@VERSION`.
        old: String,
        /// The version compared to.
        new: String,
    },
    /// Name a version: `grappe dataset tag NAME@VERSION TAG`. Tags never move.
    Tag {
        /// The version: `NAME@VERSION` (or `NAME`, its latest).
        reference: String,
        /// The tag's name.
        tag: String,
    },
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Re-hash every chunk and check every version and ref; exits non-zero, naming each damaged
    /// thing, if anything is damaged.
    Verify,
    /// Remove what no version uses.
    Gc,
}

fn read_card(card: Option<&PathBuf>) -> anyhow::Result<String> {
    match card {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display())),
        None => Ok(String::new()),
    }
}

/// `grappe dataset ...` on the server the CLI is logged in to.
fn run_remote(target: &StoreTarget, command: DatasetCommand) -> anyhow::Result<()> {
    let session = Session::load()
        .context("`grappe dataset` works on the server you are logged in to, or on a local store with --store DIR")?;
    let output = match command {
        DatasetCommand::Push { dir, name, card, splits, project, public } => {
            let request = remote::PushRequest {
                dir: &dir,
                name: &name,
                card: read_card(card.as_ref())?,
                splits: parse_splits(&splits)?,
                project: project.as_deref(),
                public,
            };
            remote::push(&session, request)?
        }
        DatasetCommand::Pull { reference, dir } => remote::pull(&session, &reference, &dir)?,
        DatasetCommand::List => {
            let list = answer(session.get("/api/v1/datasets")?)?;
            if !target.json {
                for dataset in list["items"].as_array().into_iter().flatten() {
                    outln!(
                        "{}  {}  {}  latest {}",
                        dataset["name"].as_str().unwrap_or(""),
                        dataset["visibility"].as_str().unwrap_or(""),
                        dataset["title"].as_str().unwrap_or(""),
                        dataset["latest_version"].as_str().unwrap_or("-")
                    );
                }
                return Ok(());
            }
            json!({ "datasets": list["items"] })
        }
        DatasetCommand::Show { reference } => {
            let (id, version) = remote::fetch_version(&session, &reference)?;
            if !target.json {
                print_version(&id, &version);
                return Ok(());
            }
            version_json(&id, &version)
        }
        DatasetCommand::Diff { old, new } => {
            let (old, old_version) = remote::fetch_version(&session, &old)?;
            let (new, new_version) = remote::fetch_version(&session, &new)?;
            let diff = old_version.diff(&new_version);
            if !target.json {
                print_diff(&diff);
                return Ok(());
            }
            diff_json(&old, &new, &diff)
        }
        DatasetCommand::Tag { .. } => {
            bail!("tags are for local stores (--store); a server names versions vN and by their ids")
        }
    };
    crate::print_record(&output, target.json);
    Ok(())
}

fn diff_json(old: &VersionId, new: &VersionId, diff: &VersionDiff) -> Value {
    let paths = |paths: &[DatasetPath]| paths.iter().map(ToString::to_string).collect::<Vec<_>>();
    json!({
        "old": old.to_string(), "new": new.to_string(),
        "added": paths(&diff.added), "removed": paths(&diff.removed), "changed": paths(&diff.changed),
        "card_changed": diff.card_changed, "splits_changed": diff.splits_changed,
    })
}

pub fn run_dataset(target: StoreTarget, command: DatasetCommand) -> anyhow::Result<()> {
    if target.local()?.is_none() {
        return run_remote(&target, command);
    }
    let store = target.open()?;
    let output = match command {
        DatasetCommand::Push { dir, name, card, splits, project, public } => {
            if project.is_some() || public {
                bail!("--project and --public are for a server; a local store has no owners");
            }
            let name = Name::parse(&name)?;
            let card = read_card(card.as_ref())?;
            let splits = parse_splits(&splits)?;
            let (committed, stats) = store.push_dir(&dir, &name, card, splits)?;
            json!({
                "name": name.as_str(),
                "version": committed.id.to_string(),
                "created": committed.version_created,
                "ref_updated": committed.ref_updated,
                "files": stats.files,
                "bytes": stats.bytes_read,
                "chunks": stats.chunks,
                "new_chunks": stats.new_chunks,
                "stored_bytes": stats.stored_bytes + if committed.version_created { committed.manifest_bytes } else { 0 },
            })
        }
        DatasetCommand::Pull { reference, dir } => {
            let id = store.resolve(&reference)?;
            let bytes = store.materialize(&id, &dir)?;
            json!({ "version": id.to_string(), "bytes": bytes, "dir": dir.display().to_string() })
        }
        DatasetCommand::List => {
            let mut datasets = Vec::new();
            for name in store.names()? {
                let history = store.history(&name)?;
                let latest = history.last().map(ToString::to_string);
                datasets.push(json!({ "name": name.as_str(), "versions": history.len(), "latest": latest }));
            }
            if !target.json {
                for dataset in &datasets {
                    outln!(
                        "{}  {} version(s)  latest {}",
                        dataset["name"].as_str().unwrap_or(""),
                        dataset["versions"],
                        dataset["latest"].as_str().unwrap_or("-")
                    );
                }
                return Ok(());
            }
            json!({ "datasets": datasets })
        }
        DatasetCommand::Show { reference } => {
            let id = store.resolve(&reference)?;
            let version = store.version(&id)?;
            if !target.json {
                print_version(&id, &version);
                return Ok(());
            }
            version_json(&id, &version)
        }
        DatasetCommand::Diff { old, new } => {
            let (old, new) = (store.resolve(&old)?, store.resolve(&new)?);
            let diff = store.diff(&old, &new)?;
            if !target.json {
                print_diff(&diff);
                return Ok(());
            }
            diff_json(&old, &new, &diff)
        }
        DatasetCommand::Tag { reference, tag } => {
            let id = store.resolve(&reference)?;
            let name = Name::parse(reference.split_once('@').map_or(reference.as_str(), |(name, _)| name))?;
            let tag = Name::parse(&tag)?;
            store.tag(&name, &tag, &id)?;
            json!({ "name": name.as_str(), "tag": tag.as_str(), "version": id.to_string() })
        }
    };
    crate::print_record(&output, target.json);
    Ok(())
}

pub fn run_store(target: StoreTarget, command: StoreCommand) -> anyhow::Result<()> {
    let store = target.open()?;
    match command {
        StoreCommand::Verify => {
            let report = store.verify()?;
            let damage: Vec<String> = report.damage.iter().map(ToString::to_string).collect();
            let output = json!({
                "clean": report.is_clean(),
                "packs": report.packs, "chunks": report.chunks, "chunk_bytes": report.chunk_bytes,
                "versions": report.versions, "files": report.files, "refs": report.refs,
                "packs_without_index": report.packs_without_index, "unused_chunks": report.unused_chunks,
                "damage": damage,
            });
            if target.json {
                outln!("{output}");
            } else {
                for line in &damage {
                    outln!("DAMAGED: {line}");
                }
                outln!(
                    "{} packs, {} chunks ({} bytes), {} versions, {} files, {} refs checked; {} damaged; garbage: {} packs without index, {} unused chunks",
                    report.packs,
                    report.chunks,
                    report.chunk_bytes,
                    report.versions,
                    report.files,
                    report.refs,
                    damage.len(),
                    report.packs_without_index,
                    report.unused_chunks
                );
            }
            if !report.is_clean() {
                bail!("the store is damaged: {} problem(s)", damage.len());
            }
            Ok(())
        }
        StoreCommand::Gc => {
            let report = store.gc()?;
            let output = json!({
                "packs_deleted": report.packs_deleted, "packs_rewritten": report.packs_rewritten,
                "packs_written": report.packs_written, "chunks_removed": report.chunks_removed,
                "bytes_freed": report.bytes_freed, "temporaries_removed": report.temporaries_removed,
            });
            crate::print_record(&output, target.json);
            Ok(())
        }
    }
}

fn parse_splits(specs: &[String]) -> anyhow::Result<Splits> {
    let mut splits = Splits::new();
    for spec in specs {
        let (split, path) = spec.split_once('=').with_context(|| format!("--split {spec}: expected SPLIT=PATH"))?;
        splits.entry(Name::parse(split)?).or_default().insert(DatasetPath::parse(path)?);
    }
    Ok(splits)
}

fn version_json(id: &VersionId, version: &Version) -> Value {
    let files: Vec<Value> = version
        .manifest()
        .files()
        .iter()
        .map(|file| {
            json!({
                "path": file.path.as_str(), "size_bytes": file.size_bytes, "blake3": file.digest.to_string(),
                "media_type": file.media_type.as_str(), "chunks": file.chunks.len(),
            })
        })
        .collect();
    let splits: serde_json::Map<String, Value> = version
        .splits()
        .iter()
        .map(|(name, paths)| (name.to_string(), json!(paths.iter().map(ToString::to_string).collect::<Vec<_>>())))
        .collect();
    json!({ "version": id.to_string(), "files": files, "splits": splits, "card": version.card(),
            "size_bytes": version.manifest().total_bytes() })
}

fn print_version(id: &VersionId, version: &Version) {
    outln!("version {id}");
    outln!("{} files, {} bytes", version.manifest().files().len(), version.manifest().total_bytes());
    for file in version.manifest().files() {
        outln!("  {:>12}  {:<28}  {}  {}", file.size_bytes, file.media_type, file.digest, file.path);
    }
    for (name, paths) in version.splits() {
        outln!("split {name}: {} file(s)", paths.len());
    }
    if !version.card().is_empty() {
        outln!("\n{}", version.card());
    }
}

fn print_diff(diff: &VersionDiff) {
    for path in &diff.added {
        outln!("+ {path}");
    }
    for path in &diff.removed {
        outln!("- {path}");
    }
    for path in &diff.changed {
        outln!("~ {path}");
    }
    if diff.card_changed {
        outln!("~ (card)");
    }
    if diff.splits_changed {
        outln!("~ (splits)");
    }
}
