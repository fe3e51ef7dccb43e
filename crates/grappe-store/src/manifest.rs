//! Manifests and versions: what a dataset version is, valid by construction, and its canonical
//! bytes, whose BLAKE3 is the version's id.
//!
//! ## Canonical encoding
//!
//! UTF-8 text, lines ending in `\n`, numbers in decimal without leading zeros, digests in
//! lowercase hex:
//!
//! ```text
//! grappe-version 1
//! files <count>
//! file <size_bytes> <file digest> <media type> <chunk count> <path>      (sorted by path, bytewise)
//! <chunk digest> <chunk bytes>                                          (chunk count lines, in order)
//! splits <count>
//! split <name> <path count>                                             (sorted by name)
//! <path>                                                                (sorted)
//! card <byte length>
//! <card bytes, exactly that many, to the end>
//! ```
//!
//! A path is the last field of its line and may hold spaces; it holds no control character, so
//! no newline. The card is length-prefixed and may hold anything UTF-8. [`Version::parse`]
//! re-encodes what it parsed and refuses bytes that differ, so one version has exactly one
//! encoding and one id.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::Digest;

/// Bounds on what a version may hold. Every bound is checked where a value is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_files: usize,
    pub max_path_bytes: usize,
    pub max_component_bytes: usize,
    pub max_file_bytes: u64,
    pub max_card_bytes: usize,
    pub max_splits: usize,
    /// Bytes of a version's canonical encoding (its chunk lists included).
    pub max_manifest_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_files: 1_000_000,
        max_path_bytes: 1024,
        max_component_bytes: 255,
        max_file_bytes: 1 << 40,
        max_card_bytes: 1 << 20,
        max_splits: 64,
        max_manifest_bytes: 512 << 20,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Why a path, name, manifest or version was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("invalid name {name:?}: {reason}")]
    Name { name: String, reason: &'static str },
    #[error("invalid media type {media_type:?}")]
    MediaType { media_type: String },
    #[error("path {path} appears twice")]
    DuplicatePath { path: DatasetPath },
    #[error("{file} is a file and {other} is under it: a path cannot be both a file and a folder")]
    FileIsFolder { file: DatasetPath, other: DatasetPath },
    #[error("a dataset version must contain at least one file")]
    Empty,
    #[error("too many {what}: {count}, at most {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
    #[error("{path}: {reason}")]
    File { path: DatasetPath, reason: String },
    #[error("split {split} names {path}, which is not in the version")]
    SplitPath { split: SplitName, path: DatasetPath },
    #[error("not a canonical version encoding: {reason}")]
    Encoding { reason: String },
}

/// A file's path inside a dataset: relative, `/`-separated, valid UTF-8, no empty, `.` or `..`
/// component, no control character or backslash, bounded length.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DatasetPath(String);

impl DatasetPath {
    pub fn parse(text: &str) -> Result<DatasetPath, ManifestError> {
        DatasetPath::parse_with(text, &Limits::DEFAULT)
    }

    pub fn parse_with(text: &str, limits: &Limits) -> Result<DatasetPath, ManifestError> {
        let refuse = |reason| Err(ManifestError::Path { path: text.chars().take(200).collect(), reason });
        if text.is_empty() {
            return refuse("empty");
        }
        if text.len() > limits.max_path_bytes {
            return refuse("too long");
        }
        if text.starts_with('/') {
            return refuse("absolute");
        }
        if text.chars().any(|c| c.is_control()) {
            return refuse("control character");
        }
        if text.contains('\\') {
            return refuse("backslash");
        }
        for component in text.split('/') {
            match component {
                "" => return refuse("empty component"),
                "." | ".." => return refuse("'.' or '..' component"),
                _ if component.len() > limits.max_component_bytes => return refuse("component too long"),
                _ => {}
            }
        }
        Ok(DatasetPath(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components, for joining onto a folder.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for DatasetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DatasetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A dataset, split or tag name: 1 to 100 ASCII letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit. Safe as a blob key segment.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Dataset names.
pub type DatasetName = Name;
/// Split names (`train`, `test`, ...).
pub type SplitName = Name;

impl Name {
    pub fn parse(text: &str) -> Result<Name, ManifestError> {
        let refuse = |reason| Err(ManifestError::Name { name: text.chars().take(200).collect(), reason });
        if text.is_empty() || text.len() > 100 {
            return refuse("1 to 100 characters");
        }
        if !text.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) {
            return refuse("starts with a letter or a digit");
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return refuse("only ASCII letters, digits, '.', '_' and '-'");
        }
        Ok(Name(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A media type such as `text/csv`: lowercase `type/subtype` of letters, digits and `.+-_`,
/// at most 100 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MediaType(String);

impl MediaType {
    pub fn parse(text: &str) -> Result<MediaType, ManifestError> {
        let token = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-' | b'_'))
        };
        match text.split_once('/') {
            Some((kind, subtype)) if text.len() <= 100 && token(kind) && token(subtype) => {
                Ok(MediaType(text.to_string()))
            }
            _ => Err(ManifestError::MediaType { media_type: text.chars().take(100).collect() }),
        }
    }

    /// A guess from the file name's extension; `application/octet-stream` when unknown.
    pub fn guess(path: &DatasetPath) -> MediaType {
        let extension = path.as_str().rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
        let known = match extension.as_str() {
            "txt" | "text" => "text/plain",
            "md" => "text/markdown",
            "csv" => "text/csv",
            "tsv" => "text/tab-separated-values",
            "json" => "application/json",
            "jsonl" | "ndjson" => "application/jsonl",
            "parquet" => "application/vnd.apache.parquet",
            "arrow" | "feather" => "application/vnd.apache.arrow.file",
            "xml" => "application/xml",
            "html" | "htm" => "text/html",
            "png" => "image/png",
            "jpg" | "jpeg" => "image/jpeg",
            "wav" => "audio/wav",
            "flac" => "audio/flac",
            "mp3" => "audio/mpeg",
            "gz" => "application/gzip",
            "zst" => "application/zstd",
            "zip" => "application/zip",
            "tar" => "application/x-tar",
            "npy" => "application/x-npy",
            _ => "application/octet-stream",
        };
        MediaType(known.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One chunk of a file: its digest and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    pub digest: Digest,
    pub len_bytes: u32,
}

/// One file of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: DatasetPath,
    pub size_bytes: u64,
    /// BLAKE3 of the whole file.
    pub digest: Digest,
    pub media_type: MediaType,
    /// The file's chunks, in order; their lengths add up to `size_bytes`.
    pub chunks: Vec<ChunkRef>,
}

/// The files of a version: non-empty, sorted by path, no duplicate, no file under another,
/// each file's chunks adding up to its size, within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    files: Vec<FileEntry>,
}

impl Manifest {
    pub fn new(mut files: Vec<FileEntry>, limits: &Limits) -> Result<Manifest, ManifestError> {
        if files.is_empty() {
            return Err(ManifestError::Empty);
        }
        if files.len() > limits.max_files {
            return Err(ManifestError::TooMany { what: "files", count: files.len(), max: limits.max_files });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        for pair in files.windows(2) {
            let (a, b) = (&pair[0].path, &pair[1].path);
            if a == b {
                return Err(ManifestError::DuplicatePath { path: a.clone() });
            }
        }
        let paths: BTreeSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
        for file in &files {
            let mut prefix_end = 0;
            let text = file.path.as_str();
            while let Some(slash) = text[prefix_end..].find('/') {
                let folder = &text[..prefix_end + slash];
                if paths.contains(folder) {
                    let folder = DatasetPath(folder.to_string());
                    return Err(ManifestError::FileIsFolder { file: folder, other: file.path.clone() });
                }
                prefix_end += slash + 1;
            }
        }
        for file in &files {
            let file_error = |reason: String| ManifestError::File { path: file.path.clone(), reason };
            if file.size_bytes > limits.max_file_bytes {
                return Err(file_error(format!("{} bytes, at most {}", file.size_bytes, limits.max_file_bytes)));
            }
            let total: u64 = file.chunks.iter().map(|chunk| u64::from(chunk.len_bytes)).sum();
            if total != file.size_bytes {
                return Err(file_error(format!("chunks add up to {total} bytes, the file is {}", file.size_bytes)));
            }
            if file.chunks.iter().any(|chunk| chunk.len_bytes == 0) {
                return Err(file_error("an empty chunk".into()));
            }
        }
        Ok(Manifest { files })
    }

    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn file(&self, path: &DatasetPath) -> Option<&FileEntry> {
        self.files.binary_search_by(|file| file.path.cmp(path)).ok().map(|i| &self.files[i])
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.size_bytes).sum()
    }
}

/// Named subsets of a version's files (`train`, `test`, ...).
pub type Splits = BTreeMap<SplitName, BTreeSet<DatasetPath>>;

/// The id of a version: BLAKE3 of its canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VersionId(pub Digest);

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A dataset version: files, card and splits. Immutable once built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    manifest: Manifest,
    card: String,
    splits: Splits,
}

impl Version {
    pub fn new(manifest: Manifest, card: String, splits: Splits, limits: &Limits) -> Result<Version, ManifestError> {
        if card.len() > limits.max_card_bytes {
            return Err(ManifestError::TooMany { what: "card bytes", count: card.len(), max: limits.max_card_bytes });
        }
        if splits.len() > limits.max_splits {
            return Err(ManifestError::TooMany { what: "splits", count: splits.len(), max: limits.max_splits });
        }
        for (split, paths) in &splits {
            if let Some(path) = paths.iter().find(|path| manifest.file(path).is_none()) {
                return Err(ManifestError::SplitPath { split: split.clone(), path: path.clone() });
            }
        }
        let version = Version { manifest, card, splits };
        let bytes = version.encode().len();
        if bytes > limits.max_manifest_bytes {
            return Err(ManifestError::TooMany {
                what: "manifest bytes",
                count: bytes,
                max: limits.max_manifest_bytes,
            });
        }
        Ok(version)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn card(&self) -> &str {
        &self.card
    }

    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// The canonical bytes (see the module comment).
    pub fn encode(&self) -> Vec<u8> {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "grappe-version 1");
        let _ = writeln!(out, "files {}", self.manifest.files.len());
        for file in &self.manifest.files {
            let _ = writeln!(
                out,
                "file {} {} {} {} {}",
                file.size_bytes,
                file.digest,
                file.media_type,
                file.chunks.len(),
                file.path
            );
            for chunk in &file.chunks {
                let _ = writeln!(out, "{} {}", chunk.digest, chunk.len_bytes);
            }
        }
        let _ = writeln!(out, "splits {}", self.splits.len());
        for (name, paths) in &self.splits {
            let _ = writeln!(out, "split {name} {}", paths.len());
            for path in paths {
                let _ = writeln!(out, "{path}");
            }
        }
        let _ = writeln!(out, "card {}", self.card.len());
        out.push_str(&self.card);
        out.into_bytes()
    }

    pub fn id(&self) -> VersionId {
        VersionId(Digest::of(&self.encode()))
    }

    /// Parses canonical bytes; anything else (another order, extra spaces, a bad path, a
    /// trailing byte) is refused.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Version, ManifestError> {
        let bad = |reason: String| ManifestError::Encoding { reason };
        if bytes.len() > limits.max_manifest_bytes {
            return Err(bad(format!("{} bytes, at most {}", bytes.len(), limits.max_manifest_bytes)));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let mut rest = text;
        let mut line = |what: &str| -> Result<&str, ManifestError> {
            let (line, after) = rest.split_once('\n').ok_or_else(|| bad(format!("ends before {what}")))?;
            rest = after;
            Ok(line)
        };
        if line("the header")? != "grappe-version 1" {
            return Err(bad("header is not 'grappe-version 1'".into()));
        }
        let file_count = count(line("the file count")?, "files ", limits.max_files)?;
        let mut files = Vec::with_capacity(file_count);
        for _ in 0..file_count {
            let header = line("a file")?;
            let fields =
                header.strip_prefix("file ").ok_or_else(|| bad(format!("expected a file line: {header:?}")))?;
            let mut parts = fields.splitn(5, ' ');
            let mut next = || parts.next().ok_or_else(|| bad(format!("short file line: {header:?}")));
            let size_bytes = number(next()?)?;
            let digest = Digest::parse(next()?).map_err(|e| bad(e.to_string()))?;
            let media_type = MediaType::parse(next()?)?;
            let chunk_count = usize::try_from(number(next()?)?).map_err(|_| bad("chunk count".into()))?;
            let path = DatasetPath::parse_with(next()?, limits)?;
            if chunk_count as u64 > size_bytes {
                return Err(bad(format!("{path}: more chunks than bytes")));
            }
            let mut chunks = Vec::with_capacity(chunk_count.min(1 << 20));
            for _ in 0..chunk_count {
                let chunk_line = line("a chunk")?;
                let (digest, len) =
                    chunk_line.split_once(' ').ok_or_else(|| bad(format!("bad chunk line {chunk_line:?}")))?;
                let digest = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
                let len_bytes = u32::try_from(number(len)?).map_err(|_| bad("chunk length".into()))?;
                chunks.push(ChunkRef { digest, len_bytes });
            }
            files.push(FileEntry { path, size_bytes, digest, media_type, chunks });
        }
        let split_count = count(line("the split count")?, "splits ", limits.max_splits)?;
        let mut splits = Splits::new();
        for _ in 0..split_count {
            let header = line("a split")?;
            let fields =
                header.strip_prefix("split ").ok_or_else(|| bad(format!("expected a split line: {header:?}")))?;
            let (name, path_count) = fields.split_once(' ').ok_or_else(|| bad(format!("bad split line {header:?}")))?;
            let name = Name::parse(name)?;
            let path_count = count(path_count, "", file_count)?;
            let mut paths = BTreeSet::new();
            for _ in 0..path_count {
                paths.insert(DatasetPath::parse_with(line("a split path")?, limits)?);
            }
            splits.insert(name, paths);
        }
        let card_len = count(line("the card")?, "card ", limits.max_card_bytes)?;
        if rest.len() != card_len {
            return Err(bad(format!("card is {} bytes, {card_len} announced", rest.len())));
        }
        let card = rest.to_string();
        let version = Version::new(Manifest::new(files, limits)?, card, splits, limits)?;
        if version.encode() != bytes {
            return Err(bad("not in canonical order or form".into()));
        }
        Ok(version)
    }

    /// What changed from `self` to `newer`.
    pub fn diff(&self, newer: &Version) -> VersionDiff {
        let old: BTreeMap<&DatasetPath, &FileEntry> = self.manifest.files.iter().map(|f| (&f.path, f)).collect();
        let new: BTreeMap<&DatasetPath, &FileEntry> = newer.manifest.files.iter().map(|f| (&f.path, f)).collect();
        let mut diff = VersionDiff::default();
        for (path, file) in &new {
            match old.get(path) {
                None => diff.added.push((*path).clone()),
                Some(before) if before.digest != file.digest || before.media_type != file.media_type => {
                    diff.changed.push((*path).clone());
                }
                Some(_) => {}
            }
        }
        diff.removed = old.keys().filter(|path| !new.contains_key(*path)).map(|path| (*path).clone()).collect();
        diff.card_changed = self.card != newer.card;
        diff.splits_changed = self.splits != newer.splits;
        diff
    }
}

/// Paths added, removed and changed (content or media type) between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionDiff {
    pub added: Vec<DatasetPath>,
    pub removed: Vec<DatasetPath>,
    pub changed: Vec<DatasetPath>,
    pub card_changed: bool,
    pub splits_changed: bool,
}

impl VersionDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.card_changed
            && !self.splits_changed
    }
}

fn number(text: &str) -> Result<u64, ManifestError> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    match text.parse::<u64>() {
        Ok(n) if canonical => Ok(n),
        _ => Err(ManifestError::Encoding {
            reason: format!("not a canonical number: {:?}", text.chars().take(30).collect::<String>()),
        }),
    }
}

fn count(line: &str, prefix: &str, max: usize) -> Result<usize, ManifestError> {
    let text = line.strip_prefix(prefix).ok_or_else(|| ManifestError::Encoding {
        reason: format!("expected '{prefix}N': {:?}", line.chars().take(60).collect::<String>()),
    })?;
    let n = number(text)?;
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ManifestError::Encoding { reason: format!("{prefix}{n}: at most {max}") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> FileEntry {
        let path = DatasetPath::parse(path).expect("valid path");
        let chunks = if content.is_empty() {
            Vec::new()
        } else {
            vec![ChunkRef { digest: Digest::of(content), len_bytes: content.len() as u32 }]
        };
        FileEntry {
            media_type: MediaType::guess(&path),
            path,
            size_bytes: content.len() as u64,
            digest: Digest::of(content),
            chunks,
        }
    }

    fn check_path(text: &str, expected: Result<(), &str>) {
        let got = DatasetPath::parse(text).map(|_| ()).map_err(|error| match error {
            ManifestError::Path { reason, .. } => reason,
            other => panic!("{other}"),
        });
        assert_eq!(got, expected, "{text:?}");
    }

    #[test]
    fn paths() {
        check_path("a.csv", Ok(()));
        check_path("data/train/part 1.csv", Ok(()));
        check_path("données/été.txt", Ok(()));
        check_path("..hidden/x", Ok(()));
        check_path("", Err("empty"));
        check_path("/etc/passwd", Err("absolute"));
        check_path("../x", Err("'.' or '..' component"));
        check_path("a/../../x", Err("'.' or '..' component"));
        check_path("a/./x", Err("'.' or '..' component"));
        check_path("a//x", Err("empty component"));
        check_path("a/", Err("empty component"));
        check_path("a\0b", Err("control character"));
        check_path("a\nb", Err("control character"));
        check_path("a\\..\\b", Err("backslash"));
        check_path(&"x".repeat(256), Err("component too long"));
        check_path(&"x/".repeat(600), Err("too long"));
    }

    #[test]
    fn names() {
        for good in ["cord19", "fr-wiki_2024.v2", "A"] {
            assert!(Name::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "é", &"x".repeat(101)] {
            assert!(Name::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifests_refuse_duplicates_empties_and_file_folders() {
        let limits = Limits::DEFAULT;
        assert_eq!(Manifest::new(vec![], &limits), Err(ManifestError::Empty));
        assert!(matches!(
            Manifest::new(vec![file("a", b"1"), file("a", b"2")], &limits),
            Err(ManifestError::DuplicatePath { .. })
        ));
        assert!(matches!(
            Manifest::new(vec![file("a", b"1"), file("a-b", b"1"), file("a/b", b"2")], &limits),
            Err(ManifestError::FileIsFolder { .. })
        ));
        let mut lying = file("x", b"abc");
        lying.size_bytes = 4;
        assert!(matches!(Manifest::new(vec![lying], &limits), Err(ManifestError::File { .. })));
        let few = Limits { max_files: 1, ..limits };
        assert!(matches!(
            Manifest::new(vec![file("a", b"1"), file("b", b"1")], &few),
            Err(ManifestError::TooMany { .. })
        ));
    }

    fn sample() -> Version {
        let limits = Limits::DEFAULT;
        let manifest = Manifest::new(
            vec![file("test.csv", b"id\n2\n"), file("train.csv", b"id\n1\n"), file("empty", b"")],
            &limits,
        )
        .expect("manifest");
        let mut splits = Splits::new();
        splits.insert(Name::parse("train").expect("name"), [DatasetPath::parse("train.csv").expect("path")].into());
        Version::new(manifest, "# Card\n\nwith lines\n".into(), splits, &limits).expect("version")
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let version = sample();
        let bytes = version.encode();
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.starts_with("grappe-version 1\nfiles 3\nfile 0 "), "{text}");
        assert!(text.ends_with("card 19\n# Card\n\nwith lines\n"), "{text}");
        let parsed = Version::parse(&bytes, &Limits::DEFAULT).expect("parse");
        assert_eq!(parsed, version);
        assert_eq!(parsed.id(), version.id());
        // Files in another order, a leading zero, a trailing byte: refused.
        let lines: Vec<&str> = text.lines().collect();
        let mut reordered = lines.clone();
        reordered.swap(2, 4);
        for bad in [reordered.join("\n") + "\n", text.replace("card 19", "card 019"), format!("{text} ")] {
            assert!(Version::parse(bad.as_bytes(), &Limits::DEFAULT).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn splits_must_name_files_of_the_version() {
        let version = sample();
        let mut splits = Splits::new();
        splits.insert(Name::parse("test").expect("name"), [DatasetPath::parse("nope.csv").expect("path")].into());
        let error = Version::new(version.manifest().clone(), String::new(), splits, &Limits::DEFAULT);
        assert!(matches!(error, Err(ManifestError::SplitPath { .. })));
    }

    #[test]
    fn diff_names_added_removed_changed() {
        let limits = Limits::DEFAULT;
        let v1 = Version::new(
            Manifest::new(vec![file("a", b"1"), file("b", b"2"), file("c", b"3")], &limits).expect("m"),
            String::new(),
            Splits::new(),
            &limits,
        )
        .expect("v1");
        let v2 = Version::new(
            Manifest::new(vec![file("a", b"1"), file("b", b"22"), file("d", b"4")], &limits).expect("m"),
            "card".into(),
            Splits::new(),
            &limits,
        )
        .expect("v2");
        let diff = v1.diff(&v2);
        let names = |paths: &[DatasetPath]| paths.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(
            (names(&diff.added), names(&diff.removed), names(&diff.changed)),
            (vec!["d".to_string()], vec!["c".to_string()], vec!["b".to_string()])
        );
        assert!(diff.card_changed && !diff.splits_changed);
        assert!(v1.diff(&v1).is_empty());
    }
}
