//! Records of a text file (CSV rows, JSON lines), read in bounded memory with their line
//! numbers, before any parser sees them.
//!
//! A record ends at a newline; for CSV, not at a newline inside a quoted field, as RFC 4180 and
//! arrow-csv's defaults (csv-core) read it: a field is quoted when it starts with `"`, `""`
//! inside it is a quote, and a `"` inside an unquoted field is a plain character.
//! A record longer than its bound is refused as soon as the bound is passed: a 1 GiB line is
//! never held whole. Each record must be UTF-8; a leading byte order mark is dropped.

use std::io::{self, BufRead};

/// Why a record could not be read.
#[derive(Debug)]
pub(crate) enum RecordError {
    Io(io::Error),
    /// `line` is the record's first line.
    TooLong {
        line: u64,
        max_bytes: usize,
    },
    InvalidUtf8 {
        line: u64,
        column_byte: usize,
    },
}

/// Where a CSV scanner stands, byte by byte.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsvState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` seen inside a quoted field: the end of the quotes, or the first of `""`.
    QuoteInQuoted,
}

/// What one byte was to a CSV scanner.
#[derive(PartialEq, Eq)]
pub(crate) enum CsvByte {
    Delimiter,
    RecordEnd,
    NewlineInQuotes,
    Other,
}

impl CsvState {
    pub(crate) fn step(&mut self, byte: u8, delimiter: u8) -> CsvByte {
        use CsvState::*;
        let (next, kind) = match (*self, byte) {
            (Quoted, b'"') => (QuoteInQuoted, CsvByte::Other),
            (Quoted, b'\n') => (Quoted, CsvByte::NewlineInQuotes),
            (Quoted, _) => (Quoted, CsvByte::Other),
            (QuoteInQuoted, b'"') => (Quoted, CsvByte::Other),
            (FieldStart, b'"') => (Quoted, CsvByte::Other),
            (_, b'\n') => (FieldStart, CsvByte::RecordEnd),
            (_, b) if b == delimiter => (FieldStart, CsvByte::Delimiter),
            _ => (Unquoted, CsvByte::Other),
        };
        *self = next;
        kind
    }
}

pub(crate) struct Records<R> {
    reader: R,
    /// CSV's delimiter; `None` for JSON lines, which end at every newline.
    csv_delimiter: Option<u8>,
    max_bytes: usize,
    /// The line the next record starts on (1-based).
    next_line: u64,
    at_start: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> Records<R> {
    pub(crate) fn new(reader: R, csv_delimiter: Option<u8>, max_bytes: usize) -> Records<R> {
        Records { reader, csv_delimiter, max_bytes, next_line: 1, at_start: true, buf: Vec::new() }
    }

    /// Reads the next records as CSV with this delimiter.
    pub(crate) fn set_csv_delimiter(&mut self, delimiter: u8) {
        self.csv_delimiter = Some(delimiter);
    }

    /// The next record that holds more than whitespace, with its first line; it always ends
    /// with `\n` (one is added to a last record without it).
    pub(crate) fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, RecordError> {
        loop {
            let line = self.next_line;
            if !self.read_record()? {
                return Ok(None);
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if let Err(error) = std::str::from_utf8(&self.buf) {
                let valid = &self.buf[..error.valid_up_to()];
                let newlines = valid.iter().filter(|&&b| b == b'\n').count() as u64;
                let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                return Err(RecordError::InvalidUtf8 {
                    line: line + newlines,
                    column_byte: valid.len() - line_start + 1,
                });
            }
            return Ok(Some((line, &self.buf)));
        }
    }

    /// Reads one record into `buf`; false at the end of the input.
    fn read_record(&mut self) -> Result<bool, RecordError> {
        self.buf.clear();
        let first_line = self.next_line;
        let mut csv = CsvState::FieldStart;
        loop {
            let available = self.reader.fill_buf().map_err(RecordError::Io)?;
            if available.is_empty() {
                if self.buf.is_empty() {
                    return Ok(false);
                }
                self.buf.push(b'\n');
                self.next_line += 1;
                return Ok(true);
            }
            let mut end = None;
            for (i, &byte) in available.iter().enumerate() {
                let kind = match self.csv_delimiter {
                    Some(delimiter) => csv.step(byte, delimiter),
                    None if byte == b'\n' => CsvByte::RecordEnd,
                    None => CsvByte::Other,
                };
                match kind {
                    CsvByte::NewlineInQuotes => self.next_line += 1,
                    CsvByte::RecordEnd => {
                        end = Some(i + 1);
                        break;
                    }
                    CsvByte::Delimiter | CsvByte::Other => {}
                }
            }
            let take = end.unwrap_or(available.len());
            if self.buf.len() + take > self.max_bytes {
                return Err(RecordError::TooLong { line: first_line, max_bytes: self.max_bytes });
            }
            self.buf.extend_from_slice(&available[..take]);
            self.reader.consume(take);
            if self.at_start {
                self.at_start = false;
                if self.buf.starts_with(b"\xEF\xBB\xBF") {
                    self.buf.drain(..3);
                }
            }
            if end.is_some() {
                self.next_line += 1;
                return Ok(true);
            }
        }
    }
}
