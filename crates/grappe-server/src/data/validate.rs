//! What a version is checked for before it is published, and what validation reports with it.
//!
//! Refused (422, every problem named): a card that does not parse (a public dataset must have
//! one; a private draft may have none), splits that differ from those the card declares, and an
//! id (the card's `id_column`) found in two splits. Reported, not refused: for each CSV, TSV,
//! JSON Lines and Parquet file, its schema, rows, nulls, statistics and first rows, or the error
//! with its line; card and split warnings. Files are read from the store a chunk at a time.

use std::sync::Arc;

use grappe_dataset::{
    Card, CardParse, FileProfile, Format, OverlapLimits, OverlapReport, ProfileLimits, check_overlap, profile,
    resolve_splits,
};
use grappe_store::{FileReader, Manifest, Splits, Store, Version};
use serde::Serialize;

use crate::kit::error::AppError;

/// Characters of a card's text kept as the dataset's description in the catalogue.
const DESCRIPTION_CHARS: usize = 2000;

/// Bytes of tabular files profiled per version; files past it are listed as not profiled.
const PROFILED_BYTES: u64 = 1 << 30;

/// The splits a card declares for these files (its `default` config, or its first), if any.
pub fn declared_splits(card: &Card, manifest: &Manifest) -> Result<Option<Splits>, String> {
    let config = card.configs.iter().find(|config| config.name == "default").or(card.configs.first());
    let Some(config) = config.filter(|config| !config.data_files.is_empty()) else { return Ok(None) };
    resolve_splits(&config.data_files, manifest).map(|resolved| Some(resolved.splits)).map_err(|e| e.to_string())
}

/// A file validation could not read, and why.
#[derive(Debug, Serialize)]
pub struct FileError {
    pub path: String,
    pub error: String,
}

/// What validation found, stored with the version and shown on its page.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The card's text without its front matter, cut to [`DESCRIPTION_CHARS`]: what harvesters
    /// get as the dataset's description.
    pub description: String,
    pub card_warnings: Vec<String>,
    pub files: Vec<FileProfile>,
    pub errors: Vec<FileError>,
    /// Tabular files left out, past [`PROFILED_BYTES`].
    pub not_profiled: Vec<String>,
    pub overlap: Option<OverlapReport>,
}

/// The checked card (none for a private draft) and the report.
pub struct Checked {
    pub card: Option<Card>,
    pub report: Report,
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::Invalid(message.into())
}

/// Checks a version before it is published; blocking (it reads files from the store).
pub fn check(store: &Arc<Store>, version: &Version, public: bool) -> Result<Checked, AppError> {
    let manifest = version.manifest();
    let parsed = match version.card().trim() {
        "" if public => {
            return Err(invalid(
                "a public dataset needs a card (--card CARD.md) with at least its licence and languages",
            ));
        }
        "" => None,
        text => Some(Card::parse(text).map_err(|errors| invalid(errors.to_string()))?),
    };
    let (card, card_warnings) = match parsed {
        Some(CardParse { card, warnings }) => (Some(card), warnings.iter().map(ToString::to_string).collect()),
        None => (None, Vec::new()),
    };
    let mut overlap = None;
    if let Some(card) = &card {
        match declared_splits(card, manifest).map_err(invalid)? {
            Some(declared) if &declared != version.splits() => {
                return Err(invalid(
                    "the splits sent differ from those the card declares (its `configs`): push again with the \
                     card's splits (the CLI takes them from the card when no --split is given)",
                ));
            }
            _ => {}
        }
        if let Some(id_column) = &card.id_column
            && version.splits().len() > 1
        {
            let open = |path: &grappe_store::DatasetPath| {
                let file = manifest.file(path).cloned().ok_or_else(|| std::io::Error::other("not in the version"))?;
                Ok(FileReader::new(store.clone(), file))
            };
            let report = check_overlap(
                version.splits(),
                manifest,
                id_column,
                open,
                &ProfileLimits::DEFAULT,
                &OverlapLimits::DEFAULT,
            )
            .map_err(|error| invalid(format!("checking that no `{id_column}` is in two splits: {error}")))?;
            if report.overlapping > 0 {
                let examples: Vec<String> = report.examples.iter().map(|e| format!("{e:?}")).collect();
                return Err(invalid(format!(
                    "{} rows have an `{id_column}` already in another split (for example {}): the splits must not \
                     overlap",
                    report.overlapping,
                    examples.join("; ")
                )));
            }
            overlap = Some(report);
        }
    }
    let description = card.as_ref().map(|card| card.body.trim().chars().take(DESCRIPTION_CHARS).collect());
    let mut report = Report {
        description: description.unwrap_or_default(),
        card_warnings,
        files: Vec::new(),
        errors: Vec::new(),
        not_profiled: Vec::new(),
        overlap,
    };
    let mut budget = PROFILED_BYTES;
    for file in manifest.files() {
        if Format::from_media_type(&file.media_type).is_none() {
            continue;
        }
        if file.size_bytes > budget {
            report.not_profiled.push(file.path.to_string());
            continue;
        }
        budget -= file.size_bytes;
        let reader = FileReader::new(store.clone(), file.clone());
        match profile(&file.path, &file.media_type, reader, &ProfileLimits::DEFAULT) {
            Ok(profile) => report.files.push(profile),
            Err(error) => report.errors.push(FileError { path: file.path.to_string(), error: error.to_string() }),
        }
    }
    Ok(Checked { card, report })
}
