//! Splits: a card's declared splits resolved against a version's files, and the check that no
//! id appears in two splits.
//!
//! ## Overlap in bounded memory
//!
//! Ids are read from the id column of every file of every split (batch by batch, as
//! [`mod@crate::profile`] reads files), rendered as text and hashed to 64 bits; a map from hash to
//! the split that first held it is kept for at most `max_ids` ids (16 bytes an entry, 20 to 40
//! with the hash table's spare room: 4 million ids take 80 to 160 MiB). Past that bound, later ids are still looked up, so an
//! overlap with an id already indexed is found, but new ids are not indexed, and the report
//! says it is incomplete. Two different ids share a 64-bit hash with probability about
//! n²/2^65 (4·10⁻⁷ for 4 million ids): the examples quote the ids as read, for a person to
//! confirm.
//!
//! ```
//! use std::io::Cursor;
//! use grappe_dataset::{Card, OverlapLimits, ProfileLimits, check_overlap, resolve_splits};
//! use grappe_store::{DatasetPath, Digest, FileEntry, Limits, Manifest, MediaType};
//!
//! let card = "---\nlicense: mit\npersonal_data: none\nid_column: id\nconfigs:\n- data_files:\n  \
//!             - {split: train, path: 'data/train-*.csv'}\n  - {split: test, path: data/test.csv}\n---\n";
//! let card = Card::parse(card).expect("a valid card").card;
//! let files = [("data/train-0.csv", "id\n1\n2\n"), ("data/test.csv", "id\n2\n3\n")];
//! let entries = files.iter().map(|(path, bytes)| {
//!     let path = DatasetPath::parse(path).expect("a path");
//!     let digest = Digest::of(bytes.as_bytes());
//!     FileEntry { media_type: MediaType::guess(&path), path, size_bytes: 0, digest, chunks: Vec::new() }
//! });
//! let manifest = Manifest::new(entries.collect(), &Limits::DEFAULT).expect("a manifest");
//!
//! let splits = resolve_splits(&card.configs[0].data_files, &manifest).expect("declared files exist").splits;
//! let open = |path: &DatasetPath| {
//!     let (_, bytes) = files.iter().find(|(name, _)| *name == path.as_str()).expect("a file");
//!     Ok(Cursor::new(bytes.as_bytes().to_vec()))
//! };
//! let id_column = card.id_column.as_deref().expect("an id column");
//! let report = check_overlap(&splits, &manifest, id_column, open, &ProfileLimits::DEFAULT, &OverlapLimits::DEFAULT)
//!     .expect("readable files");
//! assert_eq!((report.overlapping, report.examples[0].id.as_str()), (1, "2"));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::io::{self, Read, Seek};

use arrow_array::Array;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::ArrowError;
use grappe_store::{DatasetPath, Manifest, SplitName, Splits};
use serde::Serialize;

use crate::profile::{Format, ProfileError, ProfileLimits, capped_display, for_each_batch, hash64};

/// The split names tools expect; others are allowed, with a warning.
pub const USUAL_SPLITS: &[&str] = &["train", "validation", "test"];

/// One problem with one split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitIssue {
    pub split: String,
    pub message: String,
}

impl fmt::Display for SplitIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "split {}: {}", self.split, self.message)
    }
}

/// Every error found in the declared splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct SplitErrors {
    pub errors: Vec<SplitIssue>,
}

impl fmt::Display for SplitErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the declared splits have {} error(s):", self.errors.len())?;
        for issue in &self.errors {
            write!(f, "\n- {issue}")?;
        }
        Ok(())
    }
}

/// Declared splits as the version's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSplits {
    pub splits: Splits,
    pub warnings: Vec<SplitIssue>,
}

/// Resolves a card's `data_files` (split to paths, where `*` matches any characters but `/`)
/// against a version's files: every path must name a file, every pattern match one, and no
/// file may be in two splits.
pub fn resolve_splits(
    declared: &BTreeMap<SplitName, Vec<String>>,
    manifest: &Manifest,
) -> Result<ResolvedSplits, SplitErrors> {
    let files = manifest.files();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut splits = Splits::new();
    let mut owner: BTreeMap<&DatasetPath, &SplitName> = BTreeMap::new();
    for (split, patterns) in declared {
        let issue = |message: String| SplitIssue { split: split.to_string(), message };
        if !USUAL_SPLITS.contains(&split.as_str()) {
            warnings.push(issue(format!("not one of the usual names ({})", USUAL_SPLITS.join(", "))));
        }
        if patterns.is_empty() {
            errors.push(issue("no file declared".into()));
        }
        let paths = splits.entry(split.clone()).or_default();
        for pattern in patterns {
            // Files are sorted by path: those a pattern can match start with its literal prefix.
            let prefix = &pattern[..pattern.find('*').unwrap_or(pattern.len())];
            let first = files.partition_point(|file| file.path.as_str() < prefix);
            let matched: Vec<&DatasetPath> = files[first..]
                .iter()
                .take_while(|file| file.path.as_str().starts_with(prefix))
                .map(|file| &file.path)
                .filter(|path| matches_pattern(pattern, path.as_str()))
                .collect();
            if matched.is_empty() {
                let what = if pattern.contains('*') {
                    "no file of the version matches"
                } else {
                    "is not a file of the version"
                };
                errors.push(issue(format!("`{pattern}` {what}")));
            }
            for path in matched {
                match owner.insert(path, split) {
                    Some(other) if other != split => {
                        errors.push(issue(format!("`{path}` is also in split {other}: a file belongs to one split")))
                    }
                    _ => {}
                }
                paths.insert(path.clone());
            }
        }
    }
    if errors.is_empty() { Ok(ResolvedSplits { splits, warnings }) } else { Err(SplitErrors { errors }) }
}

/// `*` matches any run of characters but `/`; everything else matches itself.
fn matches_pattern(pattern: &str, path: &str) -> bool {
    let (pattern, path) = (pattern.as_bytes(), path.as_bytes());
    let (mut p, mut s) = (0, 0);
    // Where the last `*` was, and where in `path` its match ends so far: greedy with one
    // backtrack point, linear in practice, never exponential.
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, s));
            p += 1;
        } else if p < pattern.len() && pattern[p] == path[s] {
            p += 1;
            s += 1;
        } else if let Some((star_p, star_s)) = star.filter(|&(_, star_s)| path[star_s] != b'/') {
            p = star_p + 1;
            s = star_s + 1;
            star = Some((star_p, s));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// What the overlap check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverlapReport {
    pub id_column: String,
    /// Non-null ids read, in all splits.
    pub ids_read: u64,
    pub null_ids: u64,
    /// Rows whose id was already seen in another split.
    pub overlapping: u64,
    /// A few of them.
    pub examples: Vec<OverlapExample>,
    /// False when more than `max_ids` distinct ids were read: ids past the bound were checked
    /// against those indexed, not against each other.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverlapExample {
    /// The id as read, cut to 200 characters.
    pub id: String,
    pub first_split: String,
    pub second_split: String,
}

/// Bounds of [`check_overlap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlapLimits {
    /// Distinct ids indexed (see the module comment for the memory).
    pub max_ids: usize,
    pub max_examples: usize,
}

impl OverlapLimits {
    pub const DEFAULT: OverlapLimits = OverlapLimits { max_ids: 4_000_000, max_examples: 10 };
}

impl Default for OverlapLimits {
    fn default() -> OverlapLimits {
        OverlapLimits::DEFAULT
    }
}

/// Checks that no value of `id_column` appears in two splits. `open` gives a file's bytes (the
/// caller's I/O); every file of every split must be CSV, TSV, JSON Lines or Parquet and hold
/// the column.
pub fn check_overlap<R, F>(
    splits: &Splits,
    manifest: &Manifest,
    id_column: &str,
    mut open: F,
    profile_limits: &ProfileLimits,
    limits: &OverlapLimits,
) -> Result<OverlapReport, ProfileError>
where
    R: Read + Seek + Send + 'static,
    F: FnMut(&DatasetPath) -> io::Result<R>,
{
    let mut report = OverlapReport {
        id_column: id_column.to_string(),
        ids_read: 0,
        null_ids: 0,
        overlapping: 0,
        examples: Vec::new(),
        complete: true,
    };
    let split_names: Vec<&SplitName> = splits.keys().collect();
    let mut first_split: HashMap<u64, usize> = HashMap::new();
    let mut id = String::new();
    for (split_index, (split, paths)) in splits.iter().enumerate() {
        for path in paths {
            let file_error = |message: String| ProfileError::File { path: path.to_string(), message };
            let entry = manifest.file(path).ok_or_else(|| file_error("not a file of the version".into()))?;
            let format = Format::from_media_type(&entry.media_type).ok_or_else(|| ProfileError::Unsupported {
                path: path.to_string(),
                media_type: entry.media_type.to_string(),
            })?;
            let reader = open(path).map_err(|error| file_error(format!("read error: {error}")))?;
            let no_column = || format!("no column `{id_column}` (the card's `id_column`)");
            let options = FormatOptions::default();
            let decoded = for_each_batch(path, format, reader, profile_limits, &mut |batch| {
                let column = batch.column_by_name(id_column).ok_or_else(|| ArrowError::SchemaError(no_column()))?;
                let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
                for row in 0..column.len() {
                    if column.is_null(row) {
                        report.null_ids += 1;
                        continue;
                    }
                    id.clear();
                    write!(id, "{}", formatter.value(row))
                        .map_err(|_| ArrowError::ComputeError("an id could not be written".into()))?;
                    report.ids_read += 1;
                    let hash = hash64(id.as_bytes());
                    match first_split.get(&hash) {
                        Some(&first) if first != split_index => {
                            report.overlapping += 1;
                            if report.examples.len() < limits.max_examples {
                                report.examples.push(OverlapExample {
                                    id: capped_display(&id, 200),
                                    first_split: split_names.get(first).map(|s| s.to_string()).unwrap_or_default(),
                                    second_split: split.to_string(),
                                });
                            }
                        }
                        Some(_) => {}
                        None if first_split.len() < limits.max_ids => {
                            first_split.insert(hash, split_index);
                        }
                        None => report.complete = false,
                    }
                }
                Ok(())
            })?;
            if decoded.schema.index_of(id_column).is_err() {
                return Err(file_error(no_column()));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::matches_pattern;

    #[test]
    fn star_matches_within_one_component() {
        for (pattern, path, expected) in [
            ("data/train.csv", "data/train.csv", true),
            ("data/train.csv", "data/train.csvx", false),
            ("data/*.csv", "data/a.csv", true),
            ("data/*.csv", "data/.csv", true),
            ("data/*.csv", "data/sub/a.csv", false),
            ("*/*.csv", "a/b.csv", true),
            ("data/train-*", "data/train-00001-of-00002.parquet", true),
            ("data/*-*.csv", "data/a-b-c.csv", true),
            ("data/*x", "data/abc", false),
            ("*", "a/b", false),
            ("**", "ab", true),
            ("a*b*c*d", &"a".repeat(200), false),
        ] {
            assert_eq!(matches_pattern(pattern, path), expected, "{pattern} against {path}");
        }
    }
}
