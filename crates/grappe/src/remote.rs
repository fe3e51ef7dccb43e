//! `grappe dataset ...` against the server the CLI is logged in to.
//!
//! Push: the folder is chunked and hashed here exactly as the store would
//! ([`grappe_store::scan_dir`]); every batch of about 8 MiB of chunks is offered to the server,
//! which names those it lacks, and only those are sent; then the version's canonical manifest is
//! committed. Chunks the server has kept are never sent again, so a push that was interrupted
//! (a lost connection, a kill) resumes where it stopped when run again.
//!
//! Pull: the version's canonical manifest, then each file with `Range` from what a previous pull
//! left in `PATH.grappe-partial`; every file is checked against its BLAKE3 before it is renamed
//! into place, and a file already there with the right hash is kept. A wrong byte fails loudly.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use grappe_dataset::Card;
use grappe_server::data::validate::declared_splits;
use grappe_store::{Digest, Name, Splits, StoreConfig, Version, VersionId, scan_dir};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{Session, answer};

const OCTETS: &str = "application/octet-stream";

/// Chunks offered to the server at once.
const BATCH_BYTES: usize = 8 << 20;

/// A progress bar on standard error (drawn only on a terminal).
fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A dataset name, safe in a URL path (its characters are all unreserved).
fn dataset_path(name: &str) -> anyhow::Result<String> {
    Ok(format!("/api/v1/datasets/{}", Name::parse(name)?))
}

/// What the push has sent so far.
#[derive(Default)]
struct Sent {
    chunks_offered: u64,
    chunks_sent: u64,
    bytes_sent: u64,
}

struct Pusher<'a> {
    session: &'a Session,
    request: &'a PushRequest<'a>,
    /// The dataset is made on the server at the first batch, so that a folder refused here
    /// (empty, or with a link) leaves nothing there.
    ensured: bool,
    base: String,
    batch: Vec<(Digest, Vec<u8>)>,
    batch_bytes: usize,
    seen: HashSet<Digest>,
    sent: Sent,
    bar: &'a ProgressBar,
}

impl Pusher<'_> {
    fn add(&mut self, digest: Digest, bytes: &[u8]) -> anyhow::Result<()> {
        self.bar.inc(bytes.len() as u64);
        if !self.seen.insert(digest) {
            return Ok(());
        }
        self.batch_bytes += bytes.len();
        self.batch.push((digest, bytes.to_vec()));
        if self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn ensure(&mut self) -> anyhow::Result<()> {
        if !self.ensured {
            ensure_dataset(self.session, self.request.name, self.request.project, self.request.public)?;
            self.ensured = true;
        }
        Ok(())
    }

    /// Offers the batch, then sends what the server lacks.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.ensure()?;
        let offered: Vec<String> = self.batch.iter().map(|(digest, _)| digest.to_hex()).collect();
        let reply =
            answer(self.session.post(&format!("{}/chunks/missing", self.base), &json!({ "chunks": offered }))?)?;
        let missing: HashSet<&str> = reply["missing"]
            .as_array()
            .context("the server's answer lacks `missing`")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut body = Vec::with_capacity(self.batch_bytes + 36 * missing.len());
        let mut count = 0;
        for (digest, bytes) in &self.batch {
            if missing.contains(digest.to_hex().as_str()) {
                body.extend_from_slice(digest.as_bytes());
                body.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                body.extend_from_slice(bytes);
                count += 1;
                self.sent.bytes_sent += bytes.len() as u64;
            }
        }
        if count > 0 {
            answer(self.session.post_bytes(&format!("{}/chunks", self.base), OCTETS, &body)?)?;
        }
        self.sent.chunks_offered += self.batch.len() as u64;
        self.sent.chunks_sent += count;
        let saved = self.bar.position().saturating_sub(self.sent.bytes_sent);
        self.bar.set_message(format!(
            "sent {}, {} already there",
            indicatif::HumanBytes(self.sent.bytes_sent),
            indicatif::HumanBytes(saved)
        ));
        self.batch.clear();
        self.batch_bytes = 0;
        Ok(())
    }
}

/// Creates the dataset if the server has none of that name (owned by `project`, public or not).
fn ensure_dataset(session: &Session, name: &str, project: Option<&str>, public: bool) -> anyhow::Result<()> {
    let base = dataset_path(name)?;
    let response = session.get(&base)?;
    if response.status() != 404 {
        answer(response)?;
        return Ok(());
    }
    let project = match project {
        None => None,
        Some(text) => Some(project_id(session, text)?),
    };
    answer(session.post("/api/v1/datasets", &json!({ "name": name, "project": project, "public": public }))?)
        .with_context(|| format!("creating the dataset `{name}` (give its project with --project)"))?;
    Ok(())
}

/// A project's id from its id or its name.
fn project_id(session: &Session, text: &str) -> anyhow::Result<i64> {
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    let projects = answer(session.get("/api/v1/projects")?)?;
    projects["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|project| project["name"].as_str() == Some(text))
        .and_then(|project| project["id"].as_i64())
        .with_context(|| format!("you are a member of no project named `{text}`"))
}

pub struct PushRequest<'a> {
    pub dir: &'a Path,
    pub name: &'a str,
    pub card: String,
    pub splits: Splits,
    pub project: Option<&'a str>,
    pub public: bool,
}

pub fn push(session: &Session, request: PushRequest<'_>) -> anyhow::Result<Value> {
    // The card is checked here first, as the server will, before anything is sent.
    let card = match request.card.trim() {
        "" => None,
        text => Some(Card::parse(text).map_err(|errors| anyhow::anyhow!("{errors}"))?.card),
    };
    let config = StoreConfig::default();
    let bar = bar(grappe_store::folder_bytes(request.dir));
    let mut pusher = Pusher {
        session,
        request: &request,
        ensured: false,
        base: dataset_path(request.name)?,
        batch: Vec::new(),
        batch_bytes: 0,
        seen: HashSet::new(),
        sent: Sent::default(),
        bar: &bar,
    };
    let manifest = scan_dir(request.dir, &config, |_, digest, bytes| pusher.add(digest, bytes))?;
    pusher.flush()?;
    // A folder of empty files has no chunk, and so no batch.
    pusher.ensure()?;
    // Without --split, the splits the card declares.
    let splits = match &card {
        Some(card) if request.splits.is_empty() => {
            declared_splits(card, &manifest).map_err(anyhow::Error::msg)?.unwrap_or_default()
        }
        _ => request.splits.clone(),
    };
    let version = Version::new(manifest, request.card.clone(), splits, &config.limits)?;
    let encoded = version.encode();
    let committed = answer(session.post_bytes(&format!("{}/versions", pusher.base), OCTETS, &encoded)?)?;
    bar.finish_and_clear();
    let total = version.manifest().total_bytes();
    Ok(json!({
        "name": request.name,
        "version": committed["version"],
        "seq": committed["seq"],
        "unchanged": committed["unchanged"],
        "files": version.manifest().files().len(),
        "bytes": total,
        "chunks": pusher.sent.chunks_offered,
        "chunks_sent": pusher.sent.chunks_sent,
        "bytes_sent": pusher.sent.bytes_sent,
        "bytes_saved_by_dedup": total.saturating_sub(pusher.sent.bytes_sent),
    }))
}

/// `NAME` or `NAME@VERSION` to the API path of that version (`latest` by default).
fn version_path(reference: &str) -> anyhow::Result<String> {
    let (name, which) = reference.split_once('@').unwrap_or((reference, "latest"));
    let which_ok = !which.is_empty() && which.bytes().all(|b| b.is_ascii_alphanumeric());
    if !which_ok {
        bail!("`{which}`: a version is `latest`, `vN` or (the start of) a version id");
    }
    Ok(format!("{}/versions/{which}", dataset_path(name)?))
}

/// A version's canonical manifest, parsed, and its id (the BLAKE3 of those bytes; checked
/// against the reference when it gave a whole id).
pub fn fetch_version(session: &Session, reference: &str) -> anyhow::Result<(VersionId, Version)> {
    let path = format!("{}/manifest", version_path(reference)?);
    let mut response = session.get_from(&path, 0)?;
    if !response.status().is_success() {
        answer(response)?;
        bail!("the server refused {path}");
    }
    let limits = StoreConfig::default().limits;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(limits.max_manifest_bytes as u64)
        .read_to_vec()
        .with_context(|| format!("reading {path}"))?;
    let id = VersionId(Digest::of(&bytes));
    if let Some((_, which)) = reference.split_once('@')
        && which.len() == 64
        && which != id.to_string()
    {
        bail!("the server sent version {id} for {reference}: refusing it");
    }
    Ok((id, Version::parse(&bytes, &limits)?))
}

/// The BLAKE3 of a file, or `None` if it cannot be read.
fn file_digest(path: &Path) -> Option<Digest> {
    let mut file = File::open(path).ok()?;
    let mut hasher = grappe_store::digest::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Some(hasher.finish()),
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// What a pull cut short at byte `at` of `path` means, and what to do.
fn stopped(path: &grappe_store::DatasetPath, at: u64) -> String {
    format!(
        "downloading {path}: the server stopped sending at byte {at}; run the pull again to resume (if it stops \
         at the same byte again, the server's copy is damaged: its operator's `grappe store verify` names it)"
    )
}

/// Where the bytes of a file being pulled wait: named after its content, so that what an
/// interrupted pull left is resumed only for the same content.
fn partial_path(target: &Path, digest: &Digest) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.grappe-partial", &digest.to_hex()[..16]));
    target.with_file_name(name)
}

pub fn pull(session: &Session, reference: &str, dir: &Path) -> anyhow::Result<Value> {
    let (id, version) = fetch_version(session, reference)?;
    let base =
        format!("{}/versions/{id}", dataset_path(reference.split_once('@').map_or(reference, |(name, _)| name))?);
    let bar = bar(version.manifest().total_bytes());
    let (mut downloaded, mut kept) = (0u64, 0u64);
    for file in version.manifest().files() {
        // Dataset paths are relative, without `..` or empty segments (checked when parsed).
        let target = dir.join(file.path.as_str());
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        if fs::metadata(&target).is_ok_and(|m| m.len() == file.size_bytes) && file_digest(&target) == Some(file.digest)
        {
            kept += file.size_bytes;
            bar.inc(file.size_bytes);
            continue;
        }
        let partial = partial_path(&target, &file.digest);
        let mut have = fs::metadata(&partial).map_or(0, |m| m.len());
        if have > file.size_bytes {
            fs::remove_file(&partial).with_context(|| format!("removing {}", partial.display()))?;
            have = 0;
        }
        bar.inc(have);
        // Opened (and so made) even for an empty file, which has nothing to download.
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .with_context(|| format!("opening {}", partial.display()))?;
        if have < file.size_bytes {
            let path = format!("{base}/files/{}", file.path);
            // A server that fails on the file's first bytes drops the connection before it answers.
            let mut response = session.get_from(&path, have).with_context(|| stopped(&file.path, have))?;
            let resumed = response.status() == 206;
            if !response.status().is_success() {
                answer(response)?;
                bail!("the server refused {path}");
            }
            if have > 0 && !resumed {
                // The server sent the whole file: start again.
                out.set_len(0)?;
                bar.set_position(bar.position().saturating_sub(have));
            }
            let mut reader = response.body_mut().as_reader();
            // Where this answer starts in the file, and what of it is written.
            let (start, mut written) = (if resumed { have } else { 0 }, 0u64);
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let read = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        return Err(error).with_context(|| stopped(&file.path, start + written));
                    }
                };
                out.write_all(&buffer[..read]).with_context(|| format!("writing {}", partial.display()))?;
                downloaded += read as u64;
                written += read as u64;
                bar.inc(read as u64);
            }
            out.sync_all()?;
        }
        let length = fs::metadata(&partial).map_or(0, |m| m.len());
        if length != file.size_bytes || file_digest(&partial) != Some(file.digest) {
            fs::remove_file(&partial).ok();
            bail!(
                "{}: the bytes received ({length} of {}) do not hash to the manifest's {}: discarded; nothing \
                 wrong was kept",
                file.path,
                file.size_bytes,
                file.digest
            );
        }
        fs::rename(&partial, &target).with_context(|| format!("moving {} into place", target.display()))?;
    }
    bar.finish_and_clear();
    Ok(json!({
        "version": id.to_string(),
        "dir": dir.display().to_string(),
        "files": version.manifest().files().len(),
        "bytes": version.manifest().total_bytes(),
        "bytes_downloaded": downloaded,
        "bytes_kept": kept,
    }))
}
