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
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("read error: {0}")]
    Io(io::Error),
    /// `line` is the record's first line.
    #[error(
        "line {line}: a record longer than {max_bytes} bytes (read in bounded memory; is the file binary, or a \
         quote left open?)"
    )]
    TooLong { line: u64, max_bytes: usize },
    #[error(
        "line {line}: invalid UTF-8 at byte {column_byte} of the line (text files must be UTF-8; from a \
         spreadsheet, try `iconv -f WINDOWS-1252 -t UTF-8`)"
    )]
    InvalidUtf8 { line: u64, column_byte: usize },
}

/// The rows of a CSV file as unquoted fields, with the line each starts on: for readers that
/// want text values rather than Arrow batches (the training recipe). A record ending in `\r\n`
/// loses its `\r`.
pub struct CsvRows<R> {
    records: Records<R>,
    delimiter: u8,
}

impl<R: BufRead> CsvRows<R> {
    pub fn new(reader: R, delimiter: u8, max_record_bytes: usize) -> CsvRows<R> {
        CsvRows { records: Records::new(reader, Some(delimiter), max_record_bytes), delimiter }
    }

    /// The next row that holds more than whitespace.
    pub fn next_row(&mut self) -> Result<Option<(u64, Vec<String>)>, RecordError> {
        let delimiter = self.delimiter;
        let Some((line, record)) = self.records.next_record()? else { return Ok(None) };
        let record = match record {
            [rest @ .., b'\r', b'\n'] => rest,
            [rest @ .., b'\n'] => rest,
            rest => rest,
        };
        let mut fields = Vec::new();
        let mut field = Vec::new();
        let mut state = CsvState::FieldStart;
        for &byte in record {
            let before = state;
            match (state.step(byte, delimiter), before, byte) {
                (CsvByte::Delimiter | CsvByte::RecordEnd, ..) => fields.push(std::mem::take(&mut field)),
                // Opening and closing quotes, and the first of `""`.
                (CsvByte::Other, CsvState::FieldStart | CsvState::Quoted, b'"') => {}
                _ => field.push(byte),
            }
        }
        fields.push(field);
        let fields = fields
            .into_iter()
            .map(|field| String::from_utf8(field).expect("a record of UTF-8 cut at ASCII bytes"))
            .collect();
        Ok(Some((line, fields)))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(u64, Vec<String>)> {
        let mut reader = CsvRows::new(text.as_bytes(), b',', 1000);
        std::iter::from_fn(|| reader.next_row().unwrap()).collect()
    }

    #[test]
    fn csv_rows_are_unquoted() {
        let text = "id,text\r\n1,\"Il dit \"\"oui\"\",\npuis part\"\n\n2,plain\"quote\n3,\"\"\n";
        let expected = [
            (1, vec!["id", "text"]),
            (2, vec!["1", "Il dit \"oui\",\npuis part"]),
            (5, vec!["2", "plain\"quote"]),
            (6, vec!["3", ""]),
        ];
        let expected: Vec<(u64, Vec<String>)> =
            expected.iter().map(|(line, fields)| (*line, fields.iter().map(|f| f.to_string()).collect())).collect();
        assert_eq!(rows(text), expected);
        assert_eq!(rows("a,b"), [(1, vec!["a".to_owned(), "b".to_owned()])]);
    }

    #[test]
    fn a_csv_row_too_long_is_refused_with_its_line() {
        let text = format!("a\n\"open quote\n{}", "more\n".repeat(100));
        let mut reader = CsvRows::new(text.as_bytes(), b',', 50);
        assert!(reader.next_row().unwrap().is_some());
        let error = reader.next_row().unwrap_err();
        assert!(error.to_string().starts_with("line 2: a record longer than 50 bytes"), "{error}");
    }
}
