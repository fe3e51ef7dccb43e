//! Profiles of tabular files (CSV, TSV, JSON Lines, Parquet) through arrow-rs: schema, row
//! count, nulls and statistics per column, and a preview of the first rows.
//!
//! Memory is bounded whatever the file's size: files are read in batches of at most
//! [`ProfileLimits::batch_rows`] rows and [`ProfileLimits::batch_bytes`] bytes of text, a text
//! record longer than [`ProfileLimits::max_record_bytes`] is refused as soon as the bound is
//! passed, statistics are running sums and a capped set of hashes per column, and a Parquet read
//! (footer or column chunk) is refused past [`ProfileLimits::max_read_bytes`].
//!
//! Text files are typed from their first [`ProfileLimits::infer_rows`] rows (arrow's
//! inference); a later row that does not fit those types is reported with its line, as is any
//! row arrow cannot decode: a failed batch is decoded again one record at a time to find it.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType, SchemaRef};
use grappe_store::{DatasetPath, MediaType};
use serde::Serialize;

use crate::records::{CsvByte, CsvState, RecordError, Records};

/// Bounds on the work and memory of one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLimits {
    /// Bytes of one text record (a CSV row, possibly over several lines, or a JSON line).
    pub max_record_bytes: usize,
    /// Rows decoded at once.
    pub batch_rows: usize,
    /// Bytes of text decoded at once (a batch ends at whichever bound comes first).
    pub batch_bytes: usize,
    /// Rows of a text file that its column types are inferred from.
    pub infer_rows: usize,
    pub max_columns: usize,
    pub preview_rows: usize,
    /// Characters of a preview cell; a longer value is cut and ends with `…`.
    pub preview_cell_chars: usize,
    /// Distinct values counted exactly per text column; past it, "at least". Each takes about
    /// 20 to 40 bytes, so 4096 take at most about 160 KiB a column.
    pub distinct_cap: usize,
    /// Most frequent values listed for a categorical text column.
    pub top_values: usize,
    /// Bytes of one read of a Parquet file: its footer, a column chunk.
    pub max_read_bytes: usize,
}

impl ProfileLimits {
    pub const DEFAULT: ProfileLimits = ProfileLimits {
        max_record_bytes: 8 << 20,
        batch_rows: 8192,
        batch_bytes: 8 << 20,
        infer_rows: 1000,
        max_columns: 1000,
        preview_rows: 20,
        preview_cell_chars: 200,
        distinct_cap: 4096,
        top_values: 10,
        max_read_bytes: 256 << 20,
    };
}

impl Default for ProfileLimits {
    fn default() -> ProfileLimits {
        ProfileLimits::DEFAULT
    }
}

/// The file formats profiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    Jsonl,
    Parquet,
}

impl Format {
    /// The format of a media type, `None` for files that are not profiled.
    pub fn from_media_type(media_type: &MediaType) -> Option<Format> {
        match media_type.as_str() {
            "text/csv" => Some(Format::Csv),
            "text/tab-separated-values" => Some(Format::Tsv),
            "application/jsonl" | "application/x-ndjson" | "application/jsonlines" => Some(Format::Jsonl),
            "application/vnd.apache.parquet" => Some(Format::Parquet),
            _ => None,
        }
    }
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileProfile {
    pub path: String,
    pub format: Format,
    /// CSV and TSV: the field delimiter (`,`, or `;` when the header has more fields by it, as
    /// French spreadsheets write; a tab for TSV).
    pub delimiter: Option<char>,
    pub row_count: u64,
    pub columns: Vec<ColumnProfile>,
    /// The first rows as text, one value per column, `None` for null.
    pub preview: Vec<Vec<Option<String>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnProfile {
    pub name: String,
    /// Arrow's name of the type, such as `Int64`, `Utf8`, `List(Int64)`.
    pub data_type: String,
    pub nullable: bool,
    pub null_count: u64,
    /// `None` for types without statistics (dates, lists, structs, ...).
    pub stats: Option<ColumnStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnStats {
    /// Over the non-null, non-NaN values, as `f64`; `None` when there are none.
    Numeric {
        min: Option<f64>,
        max: Option<f64>,
        mean: Option<f64>,
    },
    /// Lengths in characters; `distinct` is exact unless `distinct_capped`, then a lower bound
    /// (values are counted by a 64-bit hash). `top_values`, most frequent first, only for a
    /// column of at most [`CATEGORICAL_MAX`] distinct values (labels, categories), else empty.
    Text {
        min_length: Option<u64>,
        max_length: Option<u64>,
        distinct: u64,
        distinct_capped: bool,
        top_values: Vec<TopValue>,
    },
    Boolean {
        true_count: u64,
        false_count: u64,
    },
}

/// Bytes of a Parquet file's footer (its metadata, decoded into memory whole). Footers of
/// real files are kilobytes to a few megabytes.
pub const MAX_PARQUET_FOOTER_BYTES: usize = 16 << 20;

/// The most distinct values a text column may have for its most frequent values to be listed.
pub const CATEGORICAL_MAX: usize = 256;

/// A value and the rows that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopValue {
    /// Cut to 100 characters.
    pub value: String,
    pub count: u64,
}

/// Why a file could not be profiled. Each names the file; text files name the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {media_type} files are not profiled (CSV, TSV, JSON Lines and Parquet are)")]
    Unsupported { path: String, media_type: String },
    #[error("{path}: the file is empty")]
    Empty { path: String },
    #[error("{path}, line {line}: {message}")]
    Line { path: String, line: u64, message: String },
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Profiles one file. Parquet needs `Seek` (its footer is at the end); text formats read the
/// reader once, front to back.
pub fn profile<R: Read + Seek + Send + 'static>(
    path: &DatasetPath,
    media_type: &MediaType,
    reader: R,
    limits: &ProfileLimits,
) -> Result<FileProfile, ProfileError> {
    let format = Format::from_media_type(media_type)
        .ok_or_else(|| ProfileError::Unsupported { path: path.to_string(), media_type: media_type.to_string() })?;
    let mut profiler: Option<Profiler> = None;
    let decoded = for_each_batch(path, format, reader, limits, &mut |batch| {
        profiler.get_or_insert_with(|| Profiler::new(&batch.schema())).add(batch, limits)
    })?;
    let profiler = profiler.unwrap_or_else(|| Profiler::new(&decoded.schema));
    Ok(profiler.finish(path, format, &decoded, limits))
}

/// What a file's decoding found besides its batches.
pub(crate) struct Decoded {
    pub(crate) schema: SchemaRef,
    /// CSV and TSV: the field delimiter.
    pub(crate) delimiter: Option<u8>,
}

/// A visitor of batches; its error ends the reading.
pub(crate) type Visit<'a> = dyn FnMut(&RecordBatch) -> Result<(), ArrowError> + 'a;

/// Decodes a file batch by batch, handing each to `visit`.
///
/// The decoders are arrow-rs's, which still panic on some damaged Parquet files (overflows,
/// negative lengths: 7 of 3,000 files with random bytes changed, parquet 60.1); such a panic
/// is caught here and reported as the file's error, so a hostile file cannot crash the caller.
pub(crate) fn for_each_batch<R: Read + Seek + Send + 'static>(
    path: &DatasetPath,
    format: Format,
    reader: R,
    limits: &ProfileLimits,
    visit: &mut Visit<'_>,
) -> Result<Decoded, ProfileError> {
    let context = Context { path, limits };
    // Nothing that outlives a panic is left half-changed: the caller gets an error and drops
    // what `visit` accumulated.
    let decode = std::panic::AssertUnwindSafe(|| match format {
        Format::Csv => context.text(BufReader::with_capacity(64 << 10, reader), TextFormat::Csv(b','), visit),
        Format::Tsv => context.text(BufReader::with_capacity(64 << 10, reader), TextFormat::Csv(b'\t'), visit),
        Format::Jsonl => context.text(BufReader::with_capacity(64 << 10, reader), TextFormat::Jsonl, visit),
        Format::Parquet => context.parquet(reader, visit),
    });
    std::panic::catch_unwind(decode).unwrap_or_else(|panic| {
        let reason = panic.downcast_ref::<&str>().copied().or(panic.downcast_ref::<String>().map(String::as_str));
        Err(context
            .file_error(format_args!("the decoder failed on damaged data ({})", reason.unwrap_or("no reason given"))))
    })
}

#[derive(Clone, Copy)]
enum TextFormat {
    /// With its delimiter.
    Csv(u8),
    Jsonl,
}

impl TextFormat {
    fn delimiter(self) -> Option<u8> {
        match self {
            TextFormat::Csv(delimiter) => Some(delimiter),
            TextFormat::Jsonl => None,
        }
    }
}

/// The arrow decoders of CSV and JSON, which share this shape.
trait TextDecoder {
    fn decode(&mut self, bytes: &[u8]) -> Result<usize, ArrowError>;
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
}

impl TextDecoder for arrow_csv::reader::Decoder {
    fn decode(&mut self, bytes: &[u8]) -> Result<usize, ArrowError> {
        arrow_csv::reader::Decoder::decode(self, bytes)
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        arrow_csv::reader::Decoder::flush(self)
    }
}

impl TextDecoder for arrow_json::reader::Decoder {
    fn decode(&mut self, bytes: &[u8]) -> Result<usize, ArrowError> {
        arrow_json::reader::Decoder::decode(self, bytes)
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        arrow_json::reader::Decoder::flush(self)
    }
}

/// Whole records waiting to be decoded, with their first lines.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// (first line, offset in `bytes`) of each record.
    starts: Vec<(u64, usize)>,
}

impl Pending {
    fn push(&mut self, line: u64, record: &[u8]) {
        self.starts.push((line, self.bytes.len()));
        self.bytes.extend_from_slice(record);
    }

    fn records(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.starts.iter().enumerate().map(|(i, &(line, start))| {
            let end = self.starts.get(i + 1).map_or(self.bytes.len(), |&(_, next)| next);
            (line, &self.bytes[start..end])
        })
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.starts.clear();
    }
}

struct Context<'a> {
    path: &'a DatasetPath,
    limits: &'a ProfileLimits,
}

impl Context<'_> {
    fn file_error(&self, message: impl fmt::Display) -> ProfileError {
        ProfileError::File { path: self.path.to_string(), message: cut(message.to_string()) }
    }

    fn line_error(&self, line: u64, message: impl fmt::Display) -> ProfileError {
        ProfileError::Line { path: self.path.to_string(), line, message: cut(message.to_string()) }
    }

    fn record_error(&self, error: RecordError) -> ProfileError {
        match error {
            RecordError::Io(error) => self.file_error(format_args!("read error: {error}")),
            RecordError::TooLong { line, .. } | RecordError::InvalidUtf8 { line, .. } => {
                let message = error.to_string();
                let prefix = format!("line {line}: ");
                self.line_error(line, message.strip_prefix(&prefix).unwrap_or(&message))
            }
        }
    }

    fn check_columns(&self, schema: &SchemaRef) -> Result<(), ProfileError> {
        self.check_column_count(schema.fields().len())
    }

    fn check_column_count(&self, count: usize) -> Result<(), ProfileError> {
        if count > self.limits.max_columns {
            return Err(self.file_error(format_args!("{count} columns, at most {}", self.limits.max_columns)));
        }
        Ok(())
    }

    fn empty(&self) -> ProfileError {
        ProfileError::Empty { path: self.path.to_string() }
    }

    /// For CSV, the header and the delimiter: `;` rather than `,` when the header has more
    /// fields by it, as French spreadsheets write. The format as given for JSON lines.
    fn csv_header<R: BufRead>(
        &self,
        records: &mut Records<R>,
        format: TextFormat,
    ) -> Result<(TextFormat, Option<Vec<u8>>), ProfileError> {
        let TextFormat::Csv(delimiter) = format else { return Ok((format, None)) };
        let Some((_, header)) = records.next_record().map_err(|e| self.record_error(e))? else {
            return Err(self.empty());
        };
        let semicolons = delimiter == b',' && csv_field_count(header, b';') > csv_field_count(header, b',');
        let delimiter = if semicolons { b';' } else { delimiter };
        // Counted before arrow builds a field for each.
        self.check_column_count(csv_field_count(header, delimiter))?;
        let header = header.to_vec();
        records.set_csv_delimiter(delimiter);
        Ok((TextFormat::Csv(delimiter), Some(header)))
    }

    fn text<R: BufRead>(&self, reader: R, format: TextFormat, visit: &mut Visit<'_>) -> Result<Decoded, ProfileError> {
        let limits = self.limits;
        let mut records = Records::new(reader, format.delimiter(), limits.max_record_bytes);
        let (format, header) = self.csv_header(&mut records, format)?;
        let mut pending = Pending::default();
        let mut at_end = false;
        while pending.starts.len() < limits.infer_rows.max(1) && pending.bytes.len() < limits.batch_bytes {
            match records.next_record().map_err(|e| self.record_error(e))? {
                Some((line, record)) => pending.push(line, record),
                None => {
                    at_end = true;
                    break;
                }
            }
        }
        let schema = match (format, &header) {
            (TextFormat::Csv(delimiter), Some(header)) => self.infer_csv(delimiter, header, &pending)?,
            _ if pending.starts.is_empty() => return Err(self.empty()),
            _ => self.infer_json(&pending)?,
        };
        self.check_columns(&schema)?;
        let new_decoder = |batch_rows: usize| -> Result<Box<dyn TextDecoder>, ArrowError> {
            Ok(match format {
                TextFormat::Csv(delimiter) => Box::new(
                    arrow_csv::ReaderBuilder::new(schema.clone())
                        .with_header(false)
                        .with_delimiter(delimiter)
                        .with_batch_size(batch_rows)
                        .build_decoder(),
                ),
                TextFormat::Jsonl => Box::new(
                    arrow_json::ReaderBuilder::new(schema.clone())
                        .with_batch_size(batch_rows)
                        .with_strict_mode(true)
                        .build_decoder()?,
                ),
            })
        };
        let mut decoder = new_decoder(limits.batch_rows).map_err(|e| self.file_error(e))?;
        loop {
            let full = pending.starts.len() >= limits.batch_rows || pending.bytes.len() >= limits.batch_bytes;
            if (full || at_end) && !pending.starts.is_empty() {
                self.decode(format, decoder.as_mut(), &pending, &new_decoder, visit)?;
                pending.clear();
            }
            if at_end {
                return Ok(Decoded { schema, delimiter: format.delimiter() });
            }
            match records.next_record().map_err(|e| self.record_error(e))? {
                Some((line, record)) => pending.push(line, record),
                None => at_end = true,
            }
        }
    }

    /// Decodes whole records into batches for `visit`; on a decoding error, the first record
    /// that fails alone names the line.
    fn decode(
        &self,
        format: TextFormat,
        decoder: &mut dyn TextDecoder,
        pending: &Pending,
        new_decoder: &dyn Fn(usize) -> Result<Box<dyn TextDecoder>, ArrowError>,
        visit: &mut Visit<'_>,
    ) -> Result<(), ProfileError> {
        let mut decode_all = || -> Result<Vec<RecordBatch>, ArrowError> {
            let mut batches = Vec::new();
            let mut offset = 0;
            while offset < pending.bytes.len() {
                let decoded = decoder.decode(&pending.bytes[offset..])?;
                offset += decoded;
                if decoded == 0 || offset == pending.bytes.len() {
                    match decoder.flush()? {
                        Some(batch) => batches.push(batch),
                        None if decoded == 0 => {
                            return Err(ArrowError::ParseError("the decoder made no progress".into()));
                        }
                        None => {}
                    }
                }
            }
            Ok(batches)
        };
        let batches = decode_all().map_err(|error| {
            self.locate(pending, &error, |record| {
                if let TextFormat::Jsonl = format {
                    json_object(record)?;
                }
                let mut alone = new_decoder(1).map_err(|e| self.explain(&e))?;
                alone.decode(record).and_then(|_| alone.flush()).map(|_| ()).map_err(|e| self.explain(&e))
            })
        })?;
        for batch in &batches {
            visit(batch).map_err(|e| self.file_error(e))?;
        }
        Ok(())
    }

    /// The message of the first record that fails `check` alone, at its line; else `error` at
    /// the first record's line.
    fn locate(
        &self,
        pending: &Pending,
        error: &ArrowError,
        mut check: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> ProfileError {
        for (line, record) in pending.records() {
            if let Err(message) = check(record) {
                return self.line_error(line, message);
            }
        }
        let line = pending.starts.first().map_or(1, |&(line, _)| line);
        self.line_error(line, format_args!("in the rows from this line on: {}", self.explain(error)))
    }

    /// Arrow's message for one record, without its prefix and its own line count (it counts
    /// what it was given, not the file); a value that does not fit its column's type gets a note
    /// on where types come from.
    fn explain(&self, error: &ArrowError) -> String {
        let (text, typed) = match error {
            ArrowError::ParseError(text) => (text, true),
            // A JSON record reaches arrow once it is known to be a valid JSON object.
            ArrowError::JsonError(text) => (text, true),
            ArrowError::CsvError(text) => (text, false),
            other => return other.to_string(),
        };
        let text = without_line_numbers(text);
        if typed {
            format!("{text} (column types are inferred from the first {} rows)", self.limits.infer_rows)
        } else {
            text
        }
    }

    fn infer_csv(&self, delimiter: u8, header: &[u8], pending: &Pending) -> Result<SchemaRef, ProfileError> {
        let format = arrow_csv::reader::Format::default().with_header(true).with_delimiter(delimiter);
        let infer = |rows: &[u8]| format.infer_schema(header.chain(rows), None).map(|(schema, _)| Arc::new(schema));
        let inferred = infer(&pending.bytes).map_err(|error| {
            self.locate(pending, &error, |record| infer(record).map(|_| ()).map_err(|e| self.explain(&e)))
        })?;
        Ok(codes_as_text(inferred, delimiter, pending))
    }

    fn infer_json(&self, pending: &Pending) -> Result<SchemaRef, ProfileError> {
        let mut failure = None;
        let max_columns = self.limits.max_columns;
        let values = pending.records().map_while(|(line, record)| match json_object(record) {
            // Counted before arrow builds a field for each.
            Ok(value) if value.as_object().is_some_and(|fields| fields.len() > max_columns) => {
                failure = Some(self.line_error(line, format_args!("more than {max_columns} fields")));
                None
            }
            Ok(value) => Some(Ok(value)),
            Err(message) => {
                failure = Some(self.line_error(line, message));
                None
            }
        });
        let schema = arrow_json::reader::infer_json_schema_from_iterator(values);
        if let Some(failure) = failure {
            return Err(failure);
        }
        schema.map(Arc::new).map_err(|e| self.file_error(e))
    }

    fn parquet<R: Read + Seek + Send + 'static>(
        &self,
        mut reader: R,
        visit: &mut Visit<'_>,
    ) -> Result<Decoded, ProfileError> {
        let not_parquet = |reason: &str| self.file_error(format_args!("not a Parquet file: {reason}"));
        let len = reader.seek(SeekFrom::End(0)).map_err(|e| self.file_error(format_args!("read error: {e}")))?;
        if len == 0 {
            return Err(self.empty());
        }
        if len < 12 {
            return Err(not_parquet("shorter than its magic numbers"));
        }
        let mut tail = [0u8; 8];
        reader
            .seek(SeekFrom::End(-8))
            .and_then(|_| reader.read_exact(&mut tail))
            .map_err(|e| self.file_error(format_args!("read error: {e}")))?;
        if &tail[4..] != b"PAR1" {
            return Err(not_parquet("no `PAR1` at its end (truncated?)"));
        }
        let footer_bytes = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
        let max_footer_bytes = self.limits.max_read_bytes.min(MAX_PARQUET_FOOTER_BYTES);
        if footer_bytes > max_footer_bytes {
            return Err(self.file_error(format_args!("a footer of {footer_bytes} bytes, at most {max_footer_bytes}")));
        }
        let source =
            SeekSource { inner: Arc::new(Mutex::new(reader)), len, max_read_bytes: self.limits.max_read_bytes };
        let parquet_error =
            |error: parquet::errors::ParquetError| self.file_error(format_args!("unreadable Parquet: {error}"));
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(source).map_err(parquet_error)?;
        let schema = builder.schema().clone();
        self.check_columns(&schema)?;
        let batches = builder.with_batch_size(self.limits.batch_rows).build().map_err(parquet_error)?;
        for batch in batches {
            let batch = batch.map_err(|e| self.file_error(format_args!("unreadable Parquet: {e}")))?;
            visit(&batch).map_err(|e| self.file_error(e))?;
        }
        Ok(Decoded { schema, delimiter: None })
    }
}

/// A `Read + Seek` shared by Parquet's readers, each read bounded.
struct SeekSource<R> {
    inner: Arc<Mutex<R>>,
    len: u64,
    max_read_bytes: usize,
}

/// A reader from an offset of a [`SeekSource`], reading on demand.
struct SourceReader<R> {
    inner: Arc<Mutex<R>>,
    position: u64,
}

impl<R: Read + Seek> Read for SourceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut inner = self.inner.lock().map_err(|_| io::Error::other("a reader panicked"))?;
        inner.seek(SeekFrom::Start(self.position))?;
        let read = inner.read(buf)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl<R> parquet::file::reader::Length for SeekSource<R> {
    fn len(&self) -> u64 {
        self.len
    }
}

impl<R: Read + Seek + Send + 'static> parquet::file::reader::ChunkReader for SeekSource<R> {
    type T = SourceReader<R>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<SourceReader<R>> {
        Ok(SourceReader { inner: self.inner.clone(), position: start })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        if length > self.max_read_bytes {
            return Err(parquet::errors::ParquetError::General(format!(
                "a read of {length} bytes (a column chunk or footer), at most {}",
                self.max_read_bytes
            )));
        }
        let mut buffer = Vec::with_capacity(length);
        self.get_read(start)?.take(length as u64).read_to_end(&mut buffer)?;
        if buffer.len() != length {
            return Err(parquet::errors::ParquetError::EOF(format!("{length} bytes at {start}, the file ends before")));
        }
        Ok(buffer.into())
    }
}

/// Accumulates statistics and the preview, batch by batch.
struct Profiler {
    columns: Vec<ColumnAccumulator>,
    row_count: u64,
    preview: Vec<Vec<Option<String>>>,
}

struct ColumnAccumulator {
    null_count: u64,
    stats: Accumulator,
}

enum Accumulator {
    Numeric { min: f64, max: f64, sum: f64, count: u64 },
    Text(TextAccumulator),
    Boolean { true_count: u64, false_count: u64 },
    Nothing,
}

impl Profiler {
    fn new(schema: &SchemaRef) -> Profiler {
        let columns = schema
            .fields()
            .iter()
            .map(|field| ColumnAccumulator {
                null_count: 0,
                stats: match field.data_type() {
                    t if t.is_numeric() => {
                        Accumulator::Numeric { min: f64::INFINITY, max: f64::NEG_INFINITY, sum: 0.0, count: 0 }
                    }
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                        Accumulator::Text(TextAccumulator::default())
                    }
                    DataType::Boolean => Accumulator::Boolean { true_count: 0, false_count: 0 },
                    _ => Accumulator::Nothing,
                },
            })
            .collect();
        Profiler { columns, row_count: 0, preview: Vec::new() }
    }

    fn add(&mut self, batch: &RecordBatch, limits: &ProfileLimits) -> Result<(), ArrowError> {
        let options = FormatOptions::default();
        let preview_rows = limits.preview_rows.saturating_sub(self.preview.len()).min(batch.num_rows());
        if preview_rows > 0 {
            let formatters = batch
                .columns()
                .iter()
                .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..preview_rows {
                let cells = batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(column, formatter)| {
                        (!column.is_null(row)).then(|| capped_display(&formatter.value(row), limits.preview_cell_chars))
                    })
                    .collect();
                self.preview.push(cells);
            }
        }
        self.row_count += batch.num_rows() as u64;
        for (accumulator, column) in self.columns.iter_mut().zip(batch.columns()) {
            accumulator.null_count += column.logical_null_count() as u64;
            match &mut accumulator.stats {
                Accumulator::Numeric { min, max, sum, count } => {
                    let values = arrow_cast::cast(column, &DataType::Float64)?;
                    for value in values.as_primitive::<Float64Type>().iter().flatten().filter(|v| !v.is_nan()) {
                        *min = min.min(value);
                        *max = max.max(value);
                        *sum += value;
                        *count += 1;
                    }
                }
                Accumulator::Text(text) => {
                    for value in strings(column.as_ref()).flatten() {
                        text.add(value, limits);
                    }
                }
                Accumulator::Boolean { true_count, false_count } => {
                    if let Some(booleans) = column.as_boolean_opt() {
                        let trues = booleans.true_count() as u64;
                        *true_count += trues;
                        *false_count += (booleans.len() - booleans.null_count()) as u64 - trues;
                    }
                }
                Accumulator::Nothing => {}
            }
        }
        Ok(())
    }

    fn finish(self, path: &DatasetPath, format: Format, decoded: &Decoded, limits: &ProfileLimits) -> FileProfile {
        let columns = decoded
            .schema
            .fields()
            .iter()
            .zip(self.columns)
            .map(|(field, accumulator)| ColumnProfile {
                name: field.name().clone(),
                data_type: field.data_type().to_string(),
                nullable: field.is_nullable(),
                null_count: accumulator.null_count,
                stats: match accumulator.stats {
                    Accumulator::Numeric { min, max, sum, count } => Some(ColumnStats::Numeric {
                        min: (count > 0).then_some(min),
                        max: (count > 0).then_some(max),
                        mean: (count > 0).then(|| sum / count as f64),
                    }),
                    Accumulator::Text(text) => Some(text.finish(limits)),
                    Accumulator::Boolean { true_count, false_count } => {
                        Some(ColumnStats::Boolean { true_count, false_count })
                    }
                    Accumulator::Nothing => None,
                },
            })
            .collect();
        FileProfile {
            path: path.to_string(),
            format,
            delimiter: decoded.delimiter.map(char::from),
            row_count: self.row_count,
            columns,
            preview: self.preview,
        }
    }
}

/// Lengths and distinct values of a text column; the values themselves are kept while there
/// are at most [`CATEGORICAL_MAX`], for the most frequent.
#[derive(Default)]
struct TextAccumulator {
    /// Over the non-null values.
    count: u64,
    min_length: u64,
    max_length: u64,
    /// Rows per distinct value's hash, for at most `distinct_cap` values.
    counts: HashMap<u64, u64>,
    /// The values, cut to 100 characters, while `counts` holds at most [`CATEGORICAL_MAX`].
    values: HashMap<u64, String>,
    capped: bool,
}

impl TextAccumulator {
    fn add(&mut self, value: &str, limits: &ProfileLimits) {
        let length = value.chars().count() as u64;
        self.min_length = if self.count == 0 { length } else { self.min_length.min(length) };
        self.max_length = self.max_length.max(length);
        self.count += 1;
        let hash = hash64(value.as_bytes());
        if let Some(rows) = self.counts.get_mut(&hash) {
            *rows += 1;
        } else if self.counts.len() < limits.distinct_cap {
            self.counts.insert(hash, 1);
            if self.counts.len() <= CATEGORICAL_MAX {
                self.values.insert(hash, capped_display(&value, 100));
            } else if !self.values.is_empty() {
                self.values = HashMap::new();
            }
        } else {
            self.capped = true;
        }
    }

    fn finish(self, limits: &ProfileLimits) -> ColumnStats {
        // Past the cap, new values went uncounted: no list rather than a wrong one.
        let values = if self.capped { HashMap::new() } else { self.values };
        let mut top_values: Vec<TopValue> = values
            .into_iter()
            .map(|(hash, value)| TopValue { value, count: self.counts.get(&hash).copied().unwrap_or(0) })
            .collect();
        top_values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        top_values.truncate(limits.top_values);
        ColumnStats::Text {
            min_length: (self.count > 0).then_some(self.min_length),
            max_length: (self.count > 0).then_some(self.max_length),
            distinct: self.counts.len() as u64,
            distinct_capped: self.capped,
            top_values,
        }
    }
}

/// The values of a string column (`Utf8`, `LargeUtf8`, `Utf8View`); empty for other types.
fn strings(array: &dyn Array) -> Box<dyn Iterator<Item = Option<&str>> + '_> {
    match array.data_type() {
        DataType::Utf8 => Box::new(array.as_string::<i32>().iter()),
        DataType::LargeUtf8 => Box::new(array.as_string::<i64>().iter()),
        DataType::Utf8View => Box::new(array.as_string_view().iter()),
        _ => Box::new(std::iter::empty()),
    }
}

/// A value's display, cut at `max_chars` characters (then ending with `…`), without writing
/// more than that.
pub(crate) fn capped_display(value: &dyn fmt::Display, max_chars: usize) -> String {
    struct Capped {
        text: String,
        room: usize,
        cut: bool,
    }
    impl fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if self.room == 0 {
                    self.cut = true;
                    return Err(fmt::Error);
                }
                self.text.push(c);
                self.room -= 1;
            }
            Ok(())
        }
    }
    let mut capped = Capped { text: String::new(), room: max_chars, cut: false };
    // An error here is the cut, or a formatter's own failure: either way, what was written.
    let _ = write!(capped, "{value}");
    if capped.cut {
        capped.text.push('…');
    }
    capped.text
}

/// The fields of a CSV record: its delimiters outside quotes, plus one.
/// Columns typed as numbers whose sampled values have a leading zero (`01001`, `0612`) are
/// codes, not quantities: INSEE commune and département codes, postcodes, phone numbers. They
/// are read as text, which keeps their zeros and the letters that come later (Corsica's `2A`,
/// past the rows types are inferred from).
fn codes_as_text(schema: SchemaRef, delimiter: u8, pending: &Pending) -> SchemaRef {
    use arrow_schema::{Field, Schema};
    let numeric = |data_type: &DataType| matches!(data_type, DataType::Int64 | DataType::Float64);
    if !schema.fields().iter().any(|field| numeric(field.data_type())) {
        return schema;
    }
    let text_schema = Arc::new(Schema::new(
        schema.fields().iter().map(|field| Field::new(field.name(), DataType::Utf8, true)).collect::<Vec<_>>(),
    ));
    let mut decoder = arrow_csv::ReaderBuilder::new(text_schema)
        .with_header(false)
        .with_delimiter(delimiter)
        .with_batch_size(pending.starts.len().max(1))
        .build_decoder();
    let sample = match decoder.decode(&pending.bytes).and_then(|_| decoder.flush()) {
        Ok(Some(batch)) => batch,
        _ => return schema,
    };
    let has_leading_zero = |value: &str| {
        let digits = value.trim_start_matches(['+', '-']);
        digits.len() > 1 && digits.starts_with('0') && digits.as_bytes()[1].is_ascii_digit()
    };
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let code = numeric(field.data_type())
                && sample
                    .column(i)
                    .as_string_opt::<i32>()
                    .is_some_and(|values| values.iter().flatten().any(has_leading_zero));
            if code { Field::new(field.name(), DataType::Utf8, true) } else { field.as_ref().clone() }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn csv_field_count(record: &[u8], delimiter: u8) -> usize {
    let mut state = CsvState::FieldStart;
    1 + record.iter().filter(|&&byte| state.step(byte, delimiter) == CsvByte::Delimiter).count()
}

/// One JSON line as an object, or what is wrong with it.
fn json_object(record: &[u8]) -> Result<serde_json::Value, String> {
    match serde_json::from_slice::<serde_json::Value>(record) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!("expected a JSON object, found `{}`", capped_display(&other, 100))),
        Err(error) => Err(format!("not valid JSON: {error}")),
    }
}

/// `text` without arrow's " at line N" and " for line N".
fn without_line_numbers(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let found =
            [" at line ", " for line "].iter().filter_map(|marker| rest.find(marker).map(|i| (i, marker.len()))).min();
        let Some((at, marker_len)) = found else {
            out.push_str(rest);
            return out;
        };
        let digits = rest[at + marker_len..].bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..if digits == 0 { at + marker_len } else { at }]);
        rest = &rest[at + marker_len + digits..];
    }
}

/// A 64-bit hash of bytes, the same within one process (SipHash with fixed keys).
pub(crate) fn hash64(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Cuts an error message from a parser, which may quote a whole row, to 500 characters.
fn cut(message: String) -> String {
    capped_display(&message, 500)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use grappe_store::DatasetPath;

    use super::{Format, ProfileError, ProfileLimits, capped_display, for_each_batch, without_line_numbers};

    #[test]
    fn a_panic_while_decoding_is_the_file_error() {
        let path = DatasetPath::parse("a.csv").expect("path");
        let reader = Cursor::new(b"a\n1\n".to_vec());
        let result = for_each_batch(&path, Format::Csv, reader, &ProfileLimits::DEFAULT, &mut |_| panic!("overflow"));
        assert_eq!(
            result.err(),
            Some(ProfileError::File {
                path: "a.csv".into(),
                message: "the decoder failed on damaged data (overflow)".into()
            })
        );
    }

    #[test]
    fn arrow_line_numbers_are_dropped() {
        for (text, expected) in [
            ("incorrect number of fields for line 1, expected 2 got 1", "incorrect number of fields, expected 2 got 1"),
            ("value 'x' for column 0 at line 0. Row data: '[x]'", "value 'x' for column 0. Row data: '[x]'"),
            ("at line end, for line x", "at line end, for line x"),
            ("nothing", "nothing"),
        ] {
            assert_eq!(without_line_numbers(text), expected);
        }
    }

    #[test]
    fn display_is_cut_at_the_cap() {
        assert_eq!(capped_display(&"abcdef", 3), "abc…");
        assert_eq!(capped_display(&"abc", 3), "abc");
        assert_eq!(capped_display(&"ééé", 2), "éé…");
    }
}
