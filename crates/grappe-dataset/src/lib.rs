//! Dataset cards and validation for the data commons, pure: no HTTP, no SQL, no store I/O.
//! Values and readers in, plain values out; every output derives `Serialize` for the server's
//! pages and API.
//!
//! The public API:
//!
//! - [`card`]: `Card::parse(&str) -> Result<CardParse { card, warnings }, CardErrors>` reads a
//!   card (Markdown with a YAML front matter, Hugging Face's fields where they overlap plus
//!   Grappe's own) and returns every error found, each naming its field.
//! - [`records`]: `CsvRows::new(reader, delimiter, max_record_bytes).next_row()`: CSV rows as
//!   unquoted text fields with their line numbers, in bounded memory.
//! - [`render`]: `render_markdown(&str) -> String` turns a card's body into sanitized HTML.
//! - [`mod@profile`]: `profile(&DatasetPath, &MediaType, impl Read + Seek + Send + 'static,
//!   &ProfileLimits) -> Result<FileProfile, ProfileError>` reads a CSV, TSV, JSON Lines or
//!   Parquet file in bounded memory and returns its schema, row count, nulls, statistics and
//!   first rows, or an error naming the file and the line.
//! - [`splits`]: `resolve_splits(&config.data_files, &Manifest) -> Result<ResolvedSplits {
//!   splits, warnings }, SplitErrors>` turns a card's declared splits into the version's files
//!   (the `Splits` of `Version::new`); `check_overlap(&Splits, &Manifest, id_column, open,
//!   &ProfileLimits, &OverlapLimits) -> Result<OverlapReport, ProfileError>` checks that no id
//!   is in two splits, reading each file through `open(&DatasetPath) -> io::Result<reader>`.
//!
//! ```
//! use std::io::Cursor;
//! use grappe_dataset::{Card, ProfileLimits, profile, render_markdown};
//! use grappe_store::{DatasetPath, MediaType};
//!
//! let parsed = Card::parse("---\nlicense: etalab-2.0\nlanguage: fr\npersonal_data: none\n---\n# Communes\n")
//!     .expect("a valid card");
//! assert_eq!(parsed.card.languages, ["fr"]);
//! assert_eq!(render_markdown(&parsed.card.body), "<h2>Communes</h2>");
//!
//! let path = DatasetPath::parse("communes.csv").expect("a path");
//! let csv = Cursor::new(b"code,name\n75056,Paris\n69123,Lyon\n".to_vec());
//! let profile = profile(&path, &MediaType::guess(&path), csv, &ProfileLimits::DEFAULT).expect("a profile");
//! assert_eq!(profile.row_count, 2);
//! assert_eq!(profile.columns[0].data_type, "Int64");
//! ```

pub mod card;
pub mod profile;
pub mod records;
pub mod render;
pub mod splits;

pub use card::{Card, CardErrors, CardIssue, CardParse, Config, LegalBasis, License, PersonalData, Provenance};
pub use profile::{ColumnProfile, ColumnStats, FileProfile, Format, ProfileError, ProfileLimits, TopValue, profile};
pub use records::{CsvRows, RecordError};
pub use render::render_markdown;
pub use splits::{
    OverlapExample, OverlapLimits, OverlapReport, ResolvedSplits, SplitErrors, SplitIssue, check_overlap,
    resolve_splits,
};
