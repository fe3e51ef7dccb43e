//! Two-column CSV files, read by our own byte-level scanner (RFC 4180: fields in double quotes
//! may hold commas, newlines and doubled quotes; CRLF or LF line ends; a UTF-8 BOM skipped;
//! blank lines skipped, as pandas does).
//!
//! A `Table` owns its text once: the file (`from_bytes` takes it without a copy), then the
//! unescaped copies of the few quoted fields that held a doubled quote. Rows are spans into it,
//! 20 bytes a row, so a file is limited to 4 GiB (an error says so).

use std::fmt;

use memchr::{memchr, memchr3};

use crate::error::{ScoreError, shorten};

/// Which file a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Truth,
    Predictions,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Truth => "truth",
            Role::Predictions => "predictions",
        })
    }
}

/// Byte offsets into a table's text.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Clone, Copy, Debug)]
struct Row {
    id: Span,
    value: Span,
    line: u32,
}

/// A parsed two-column CSV (header; an `id` column and exactly one value column, in either
/// order), rows in file order with their line numbers.
#[derive(Debug)]
pub struct Table {
    role: Role,
    text: String,
    rows: Vec<Row>,
}

const BOM: &str = "\u{feff}";

impl Table {
    pub fn parse(bytes: &[u8], role: Role) -> Result<Table, ScoreError> {
        Table::from_bytes(bytes.to_vec(), role)
    }

    /// Same as `parse`, keeping the file's bytes as the table's text instead of copying them.
    pub fn from_bytes(bytes: Vec<u8>, role: Role) -> Result<Table, ScoreError> {
        let file_error = |line: Option<u64>, problem: String| ScoreError::File { role, line, problem };
        if u32::try_from(bytes.len()).is_err() {
            return Err(file_error(None, format!("the file has {} bytes, over the limit of 4 GiB", bytes.len())));
        }
        let mut text = String::from_utf8(bytes).map_err(|error| {
            let line = line_of(error.as_bytes(), error.utf8_error().valid_up_to());
            file_error(Some(line), "not valid UTF-8".to_owned())
        })?;
        let start = if text.starts_with(BOM) { BOM.len() } else { 0 };
        let (rows, unescaped) = scan(&text, start, role)?;
        if u32::try_from(text.len() + unescaped.len()).is_err() {
            return Err(file_error(None, "the file and its unescaped fields are over the limit of 4 GiB".to_owned()));
        }
        text.push_str(&unescaped);
        let table = Table { role, text, rows };
        for index in 0..table.rows.len() {
            if table.id(index as u32).is_empty() {
                return Err(table.row_error(index as u32, "empty id".to_owned()));
            }
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|row| self.span(row.id))
    }

    /// The value column, in file order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|row| self.span(row.value))
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub(crate) fn id(&self, row: u32) -> &str {
        self.span(self.rows[row as usize].id)
    }

    pub(crate) fn line(&self, row: u32) -> u64 {
        u64::from(self.rows[row as usize].line)
    }

    /// An error about one row, naming its line and id.
    pub(crate) fn row_error(&self, row: u32, problem: String) -> ScoreError {
        ScoreError::Row { role: self.role, line: self.line(row), id: shorten(self.id(row)), problem }
    }

    fn span(&self, span: Span) -> &str {
        // Spans end on ASCII delimiters of valid UTF-8 text, so they are character boundaries.
        self.text.get(span.start as usize..span.end as usize).unwrap_or_default()
    }
}

/// The rows of a file's text from `start` (past a BOM), and the unescaped quoted fields that
/// their spans past the text's end point into.
fn scan(text: &str, start: usize, role: Role) -> Result<(Vec<Row>, String), ScoreError> {
    let file_error = |line: Option<u64>, problem: String| ScoreError::File { role, line, problem };
    let bytes = text.as_bytes();
    let mut scanner = Scanner { bytes, position: start, line: 1, unescaped: String::new(), role };
    let (header, header_line) = loop {
        if scanner.at_end() {
            return Err(file_error(None, "the file is empty: expected a header `id,<value column>`".to_owned()));
        }
        let line = scanner.line;
        let fields = scanner.record()?;
        if fields.count > 0 {
            break (fields, line);
        }
    };
    let id_first = match header.as_slice() {
        [first, second] => {
            let first = scanner.field_text(text, *first);
            let second = scanner.field_text(text, *second);
            match (first == "id", second == "id") {
                (true, false) => true,
                (false, true) => false,
                (true, true) => {
                    return Err(file_error(Some(header_line), "two `id` columns in the header".to_owned()));
                }
                (false, false) => {
                    return Err(file_error(
                        Some(header_line),
                        format!(
                            "no `id` column in the header (found \"{}\" and \"{}\")",
                            shorten(first),
                            shorten(second)
                        ),
                    ));
                }
            }
        }
        fields => {
            return Err(file_error(
                Some(header_line),
                format!("the header has {}: expected two columns, `id` and one value column", count(fields.len())),
            ));
        }
    };
    let mut rows = Vec::with_capacity(bytes.len() / 16);
    while !scanner.at_end() {
        let line = scanner.line;
        let fields = scanner.record()?;
        match fields.as_slice() {
            [] => {}
            [first, second] => {
                let (id, value) = if id_first { (*first, *second) } else { (*second, *first) };
                rows.push(Row { id, value, line: line as u32 });
            }
            fields => {
                let id = if id_first { fields[0] } else { fields.get(1).copied().unwrap_or(fields[0]) };
                return Err(ScoreError::Row {
                    role,
                    line,
                    id: shorten(scanner.field_text(text, id)),
                    problem: format!("{}: expected two", count(fields.len())),
                });
            }
        }
    }
    Ok((rows, scanner.unescaped))
}

/// A number of fields, as read: `Scanner::record` stops counting at 3.
fn count(fields: usize) -> &'static str {
    match fields {
        1 => "1 field",
        2 => "2 fields",
        _ => "3 or more fields",
    }
}

/// The 1-based line of a byte offset.
fn line_of(bytes: &[u8], offset: usize) -> u64 {
    1 + memchr::memchr_iter(b'\n', &bytes[..offset.min(bytes.len())]).count() as u64
}

struct Scanner<'a> {
    bytes: &'a [u8],
    position: usize,
    line: u64,
    /// Quoted fields that held a doubled quote, unescaped; spans past the file's end point here.
    unescaped: String,
    role: Role,
}

impl Scanner<'_> {
    fn at_end(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn field_text<'t>(&'t self, text: &'t str, span: Span) -> &'t str {
        let (start, end) = (span.start as usize, span.end as usize);
        if start >= text.len() {
            self.unescaped.get(start - text.len()..end - text.len()).unwrap_or_default()
        } else {
            text.get(start..end).unwrap_or_default()
        }
    }

    fn error(&self, line: u64, problem: &str) -> ScoreError {
        ScoreError::File { role: self.role, line: Some(line), problem: problem.to_owned() }
    }

    /// One record's fields (at most 3 are kept: more is an error); none for a blank line.
    fn record(&mut self) -> Result<Fields, ScoreError> {
        let mut fields = Fields { spans: [Span { start: 0, end: 0 }; 3], count: 0 };
        let record_line = self.line;
        let rest = &self.bytes[self.position..];
        if rest.first() == Some(&b'\n') || rest.starts_with(b"\r\n") {
            self.position += if rest[0] == b'\n' { 1 } else { 2 };
            self.line += 1;
            return Ok(fields);
        }
        loop {
            if fields.count == 3 {
                // Many fields are an error; the rest of the record is skipped, not kept.
                self.skip_record(record_line)?;
                return Ok(fields);
            }
            let (span, end) = self.field(record_line)?;
            fields.spans[fields.count] = span;
            fields.count += 1;
            match end {
                FieldEnd::Comma => {}
                FieldEnd::Newline | FieldEnd::Eof => return Ok(fields),
            }
        }
    }

    /// Skips to the end of the current record, counting its fields only as far as needed.
    fn skip_record(&mut self, record_line: u64) -> Result<(), ScoreError> {
        loop {
            let (_, end) = self.field(record_line)?;
            if !matches!(end, FieldEnd::Comma) {
                return Ok(());
            }
        }
    }

    fn field(&mut self, record_line: u64) -> Result<(Span, FieldEnd), ScoreError> {
        let start = self.position;
        let rest = &self.bytes[start..];
        if rest.first() == Some(&b'"') {
            return self.quoted_field(record_line);
        }
        match memchr3(b',', b'\n', b'"', rest) {
            None => {
                self.position = self.bytes.len();
                let end = if rest.ends_with(b"\r") { self.bytes.len() - 1 } else { self.bytes.len() };
                Ok((span(start, end), FieldEnd::Eof))
            }
            Some(offset) => match rest[offset] {
                b',' => {
                    self.position = start + offset + 1;
                    Ok((span(start, start + offset), FieldEnd::Comma))
                }
                b'\n' => {
                    self.position = start + offset + 1;
                    self.line += 1;
                    let end = if offset > 0 && rest[offset - 1] == b'\r' { start + offset - 1 } else { start + offset };
                    Ok((span(start, end), FieldEnd::Newline))
                }
                _ => Err(self.error(
                    record_line,
                    "a double quote inside a field that does not start with one (quote the whole field)",
                )),
            },
        }
    }

    fn quoted_field(&mut self, record_line: u64) -> Result<(Span, FieldEnd), ScoreError> {
        let content_start = self.position + 1;
        let mut search = content_start;
        let mut doubled = false;
        let content_end = loop {
            let Some(offset) = memchr(b'"', &self.bytes[search..]) else {
                return Err(self.error(record_line, "a quoted field is never closed"));
            };
            let quote = search + offset;
            if self.bytes.get(quote + 1) == Some(&b'"') {
                doubled = true;
                search = quote + 2;
            } else {
                break quote;
            }
        };
        let content = &self.bytes[content_start..content_end];
        self.line += memchr::memchr_iter(b'\n', content).count() as u64;
        self.position = content_end + 1;
        let end = match self.bytes.get(self.position..).unwrap_or_default() {
            [] => FieldEnd::Eof,
            [b',', ..] => {
                self.position += 1;
                FieldEnd::Comma
            }
            [b'\n', ..] => {
                self.position += 1;
                self.line += 1;
                FieldEnd::Newline
            }
            [b'\r', b'\n', ..] => {
                self.position += 2;
                self.line += 1;
                FieldEnd::Newline
            }
            [b'\r'] => {
                self.position += 1;
                FieldEnd::Eof
            }
            _ => return Err(self.error(record_line, "text after the closing quote of a field")),
        };
        if !doubled {
            return Ok((span(content_start, content_end), end));
        }
        // The content lies between ASCII quotes of valid UTF-8, so it is valid UTF-8 itself.
        let content = String::from_utf8_lossy(content).replace("\"\"", "\"");
        let start = self.bytes.len() + self.unescaped.len();
        self.unescaped.push_str(&content);
        Ok((span(start, start + content.len()), end))
    }
}

struct Fields {
    spans: [Span; 3],
    count: usize,
}

impl Fields {
    fn as_slice(&self) -> &[Span] {
        &self.spans[..self.count]
    }
}

enum FieldEnd {
    Comma,
    Newline,
    Eof,
}

fn span(start: usize, end: usize) -> Span {
    // `parse` refuses files whose text does not fit in u32 offsets; the unescaped copies are
    // checked once at the end, and a span past the limit then reads as empty text.
    Span { start: start.try_into().unwrap_or(u32::MAX), end: end.try_into().unwrap_or(u32::MAX) }
}
