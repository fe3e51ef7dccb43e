use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use grappe_dataset::{ColumnStats, FileProfile, Format, ProfileError, ProfileLimits, TopValue, profile};
use grappe_store::{DatasetPath, MediaType};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

pub(crate) fn run(name: &str, bytes: impl Into<Vec<u8>>, limits: &ProfileLimits) -> Result<FileProfile, ProfileError> {
    let path = DatasetPath::parse(name).expect("path");
    profile(&path, &MediaType::guess(&path), Cursor::new(bytes.into()), limits)
}

fn ok(name: &str, bytes: impl Into<Vec<u8>>) -> FileProfile {
    run(name, bytes, &ProfileLimits::DEFAULT).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Asserts the error names the line and says `words`.
fn line_error(result: Result<FileProfile, ProfileError>, expected_line: u64, words: &str) {
    match result {
        Err(ProfileError::Line { line, message, .. }) => {
            assert_eq!(line, expected_line, "{message}");
            assert!(message.contains(words), "{message:?} does not say {words:?}");
        }
        other => panic!("expected a line error, got {other:?}"),
    }
}

fn top(values: &[(&str, u64)]) -> Vec<TopValue> {
    values.iter().map(|&(value, count)| TopValue { value: value.into(), count }).collect()
}

fn types(profile: &FileProfile) -> Vec<(&str, &str)> {
    profile.columns.iter().map(|c| (c.name.as_str(), c.data_type.as_str())).collect()
}

#[test]
fn csv_schema_counts_stats_and_preview() {
    let csv = "id,score,name,ok\n1,2.5,Paris,true\n2,,Lyon,false\n3,4.5,,true\n4,-1,Paris,\n";
    let profile = ok("villes.csv", csv);
    assert_eq!(profile.format, Format::Csv);
    assert_eq!(profile.row_count, 4);
    assert_eq!(types(&profile), [("id", "Int64"), ("score", "Float64"), ("name", "Utf8"), ("ok", "Boolean")]);
    let nulls: Vec<u64> = profile.columns.iter().map(|c| c.null_count).collect();
    assert_eq!(nulls, [0, 1, 1, 1]);
    assert_eq!(
        profile.columns[0].stats,
        Some(ColumnStats::Numeric { min: Some(1.0), max: Some(4.0), mean: Some(2.5) })
    );
    assert_eq!(
        profile.columns[1].stats,
        Some(ColumnStats::Numeric { min: Some(-1.0), max: Some(4.5), mean: Some(2.0) })
    );
    assert_eq!(
        profile.columns[2].stats,
        Some(ColumnStats::Text {
            min_length: Some(4),
            max_length: Some(5),
            distinct: 2,
            distinct_capped: false,
            top_values: top(&[("Paris", 2), ("Lyon", 1)])
        })
    );
    assert_eq!(profile.columns[3].stats, Some(ColumnStats::Boolean { true_count: 2, false_count: 1 }));
    assert_eq!(profile.preview.len(), 4);
    assert_eq!(profile.preview[1], [Some("2".into()), None, Some("Lyon".into()), Some("false".into())]);
    let json = serde_json::to_value(&profile).expect("json");
    assert_eq!(json["columns"][2]["stats"]["kind"], "text");
}

#[test]
fn csv_quoted_newlines_bom_crlf_and_tsv() {
    let profile = ok("a.csv", "\u{feff}id,text\r\n1,\"two\r\nlines, \"\"quoted\"\"\"\r\n2,plain\r\n");
    assert_eq!(types(&profile), [("id", "Int64"), ("text", "Utf8")]);
    assert_eq!(profile.row_count, 2);
    assert_eq!(profile.preview[0][1].as_deref(), Some("two\r\nlines, \"quoted\""));
    let tsv = ok("a.tsv", "a\tb\n1\tx,y\n");
    assert_eq!(tsv.format, Format::Tsv);
    assert_eq!(tsv.delimiter, Some('\t'));
    assert_eq!(types(&tsv), [("a", "Int64"), ("b", "Utf8")]);
    // A `"` inside an unquoted field is a plain character, as csv-core reads it.
    let inches = ok("c.csv", "size,n\n5\"3,1\n6\"1,2\n");
    assert_eq!(inches.row_count, 2);
    assert_eq!(inches.preview[1][0].as_deref(), Some("6\"1"));
    // A quoted newline moves the line numbers: the bad row is on line 5.
    line_error(run("b.csv", "id,text\n1,\"x\ny\"\n2,z\n3\n", &ProfileLimits::DEFAULT), 5, "");
}

/// French spreadsheets write `;` between fields (and `,` in numbers): such a CSV is read by
/// `;`, its quoted fields and newlines included.
#[test]
fn csv_with_semicolons_as_french_spreadsheets_write() {
    let profile =
        ok("communes.csv", "code;nom;population\n75056;Paris;\"2 133 111\"\n69123;\"Lyon;\nRhône\";522 250\n");
    assert_eq!(profile.delimiter, Some(';'));
    assert_eq!(types(&profile), [("code", "Int64"), ("nom", "Utf8"), ("population", "Utf8")]);
    assert_eq!(profile.preview[1][1].as_deref(), Some("Lyon;\nRhône"));
    assert_eq!(ok("a.csv", "a,b;c\n1,2;3\n").delimiter, Some(','));
}

#[test]
fn csv_header_only_and_empty_files() {
    let profile = ok("h.csv", "a,b\n");
    assert_eq!(profile.row_count, 0);
    assert_eq!(profile.columns.len(), 2);
    assert!(profile.preview.is_empty());
    for (name, bytes) in
        [("e.csv", ""), ("e.jsonl", ""), ("w.jsonl", "\n  \n\n"), ("e.parquet", ""), ("blank.csv", "\n\n")]
    {
        match run(name, bytes, &ProfileLimits::DEFAULT) {
            Err(error @ ProfileError::Empty { .. }) => {
                assert_eq!(error.to_string(), format!("{name}: the file is empty"))
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn csv_row_with_wrong_field_count_names_its_line() {
    // Within the rows types are inferred from, and past them.
    line_error(run("a.csv", "a,b\n1,2\n3,4\n5\n6,7\n", &ProfileLimits::DEFAULT), 4, "Expected 2 records, found 1");
    let late = ProfileLimits { infer_rows: 1, ..ProfileLimits::DEFAULT };
    line_error(run("a.csv", "a,b\n1,2\n3,4\n5\n6,7\n", &late), 4, "incorrect number of fields, expected 2 got 1");
}

#[test]
fn csv_value_that_breaks_the_inferred_type_names_its_line() {
    let limits = ProfileLimits { infer_rows: 2, batch_rows: 3, ..ProfileLimits::DEFAULT };
    line_error(run("a.csv", "n\n1\n2\n3\n4\n5\nabc\n7\n", &limits), 7, "inferred from the first 2 rows");
}

#[test]
fn invalid_utf8_names_its_line() {
    line_error(run("a.csv", b"a,b\n1,ok\n2,caf\xe9\n".to_vec(), &ProfileLimits::DEFAULT), 3, "invalid UTF-8 at byte 6");
    line_error(run("a.csv", b"a,b\n1,ok\n2,caf\xe9\n".to_vec(), &ProfileLimits::DEFAULT), 3, "iconv -f WINDOWS-1252");
    line_error(run("a.jsonl", b"{\"a\":1}\n{\"a\":\"\xff\"}\n".to_vec(), &ProfileLimits::DEFAULT), 2, "invalid UTF-8");
}

/// A reader of `len` bytes of `a` without a newline (a 1 GiB line), counting what was read.
struct Endless {
    left: u64,
    read: Arc<AtomicU64>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        buf[..n].fill(b'a');
        self.left -= n as u64;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Seek for Endless {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Err(io::Error::other("not seekable"))
    }
}

#[test]
fn a_1_gib_line_is_refused_without_reading_it_whole() {
    for (name, prefix) in [("long.csv", "a\n"), ("long.jsonl", "")] {
        let read = Arc::new(AtomicU64::new(0));
        let path = DatasetPath::parse(name).expect("path");
        let header = Cursor::new(prefix.as_bytes().to_vec());
        let reader = header.chain(Endless { left: 1 << 30, read: read.clone() });
        let result = profile(&path, &MediaType::guess(&path), SeekChain(reader), &ProfileLimits::DEFAULT);
        line_error(result, if prefix.is_empty() { 1 } else { 2 }, "longer than 8388608 bytes");
        assert!(read.load(Ordering::Relaxed) < 9 << 20, "read {} bytes", read.load(Ordering::Relaxed));
    }
}

/// A `Read` made `Seek` for the text formats, which never seek.
struct SeekChain<R>(R);

impl<R: Read> Read for SeekChain<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Seek for SeekChain<R> {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Err(io::Error::other("not seekable"))
    }
}

#[test]
fn many_batches_give_the_same_statistics_and_capped_distinct_counts() {
    let mut csv = String::from("id,group\n");
    for i in 0..10_000 {
        csv.push_str(&format!("{i},g{}\n", i % 50));
    }
    let limits = ProfileLimits {
        batch_rows: 64,
        batch_bytes: 1000,
        distinct_cap: 20,
        preview_rows: 3,
        ..ProfileLimits::DEFAULT
    };
    let profile = run("big.csv", csv.clone(), &limits).expect("profile");
    assert_eq!(profile.row_count, 10_000);
    assert_eq!(
        profile.columns[0].stats,
        Some(ColumnStats::Numeric { min: Some(0.0), max: Some(9999.0), mean: Some(4999.5) })
    );
    assert_eq!(
        profile.columns[1].stats,
        Some(ColumnStats::Text {
            min_length: Some(2),
            max_length: Some(3),
            distinct: 20,
            distinct_capped: true,
            top_values: Vec::new()
        })
    );
    assert_eq!(profile.preview.len(), 3);
    let exact = run("big.csv", csv, &ProfileLimits::DEFAULT).expect("profile");
    assert_eq!(
        exact.columns[1].stats,
        Some(ColumnStats::Text {
            min_length: Some(2),
            max_length: Some(3),
            distinct: 50,
            distinct_capped: false,
            // Ties in name order.
            top_values: top(&[
                ("g0", 200),
                ("g1", 200),
                ("g10", 200),
                ("g11", 200),
                ("g12", 200),
                ("g13", 200),
                ("g14", 200),
                ("g15", 200),
                ("g16", 200),
                ("g17", 200)
            ])
        })
    );
}

#[test]
fn top_values_only_for_categorical_columns() {
    let mut csv = String::from("label,id\n");
    for i in 0..1000 {
        csv.push_str(&format!("{},x{i}\n", ["pos", "neg", "neutre"][i % 3]));
    }
    let profile = ok("a.csv", csv);
    let top_of = |column: usize| match &profile.columns[column].stats {
        Some(ColumnStats::Text { top_values, .. }) => top_values.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(top_of(0), top(&[("pos", 334), ("neg", 333), ("neutre", 333)]));
    assert_eq!(top_of(1), []);
}

#[test]
fn preview_cells_are_cut() {
    let long = "é".repeat(1000);
    let profile = ok("a.csv", format!("text\n{long}\n"));
    let cell = profile.preview[0][0].clone().expect("a value");
    assert_eq!(cell.chars().count(), 201);
    assert!(cell.ends_with('…'));
}

#[test]
fn jsonl_schema_nested_values_and_nulls() {
    let jsonl = "{\"id\": 1, \"text\": \"bonjour\", \"meta\": {\"lang\": \"fr\"}, \"tags\": [\"a\"]}\n\n{\"id\": 2, \"text\": null, \"meta\": {\"lang\": \"oc\"}, \"tags\": []}\n{\"id\": 3}\n";
    let profile = ok("a.jsonl", jsonl);
    assert_eq!(profile.format, Format::Jsonl);
    assert_eq!(profile.row_count, 3);
    let names: Vec<&str> = profile.columns.iter().map(|c| c.name.as_str()).collect();
    // Arrow's inference orders JSON fields by name.
    assert_eq!(names, ["id", "meta", "tags", "text"]);
    assert_eq!(profile.columns[0].data_type, "Int64");
    assert_eq!(profile.columns[3].null_count, 2);
    assert!(profile.columns[1].data_type.starts_with("Struct"), "{}", profile.columns[1].data_type);
    assert_eq!(profile.columns[1].stats, None);
    assert_eq!(profile.preview[0][1].as_deref(), Some("{lang: fr}"));
}

#[test]
fn jsonl_errors_name_their_line() {
    let limits = ProfileLimits::DEFAULT;
    line_error(run("a.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":\n", &limits), 3, "not valid JSON");
    line_error(run("a.jsonl", "{\"a\":1}\n[1,2]\n", &limits), 2, "expected a JSON object");
    let deep = format!("{{\"a\":1}}\n{{\"a\":{}1{}}}\n", "[".repeat(100_000), "]".repeat(100_000));
    line_error(run("a.jsonl", deep, &limits), 2, "recursion limit exceeded");
    let late = ProfileLimits { infer_rows: 2, ..ProfileLimits::DEFAULT };
    line_error(
        run("a.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":\"x\"}\n", &late),
        4,
        "inferred from the first 2 rows",
    );
    line_error(
        run("a.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3, \"b\":1}\n", &late),
        3,
        "column 'b' missing from schema",
    );
    line_error(run("a.jsonl", "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{oops}\n", &late), 4, "not valid JSON");
}

fn parquet_file(compression: Compression) -> Vec<u8> {
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..3000));
    let scores: ArrayRef = Arc::new(Float64Array::from_iter((0..3000).map(|i| (i % 3 != 0).then_some(i as f64 / 2.0))));
    let names: ArrayRef = Arc::new(StringArray::from_iter((0..3000).map(|i| Some(format!("commune-{}", i % 7)))));
    let flags: ArrayRef = Arc::new(BooleanArray::from_iter((0..3000).map(|i| Some(i % 2 == 0))));
    let batch =
        RecordBatch::try_from_iter([("id", ids), ("score", scores), ("name", names), ("flag", flags)]).expect("batch");
    let properties =
        WriterProperties::builder().set_compression(compression).set_max_row_group_row_count(Some(1000)).build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    bytes
}

#[test]
fn parquet_written_here_is_profiled() {
    for compression in [Compression::UNCOMPRESSED, Compression::SNAPPY, Compression::ZSTD(Default::default())] {
        let profile = ok("data/x.parquet", parquet_file(compression));
        assert_eq!(profile.format, Format::Parquet);
        assert_eq!(profile.row_count, 3000);
        assert_eq!(types(&profile), [("id", "Int64"), ("score", "Float64"), ("name", "Utf8"), ("flag", "Boolean")]);
        assert_eq!(profile.columns[1].null_count, 1000);
        assert_eq!(
            profile.columns[0].stats,
            Some(ColumnStats::Numeric { min: Some(0.0), max: Some(2999.0), mean: Some(1499.5) })
        );
        assert_eq!(
            profile.columns[2].stats,
            Some(ColumnStats::Text {
                min_length: Some(9),
                max_length: Some(9),
                distinct: 7,
                distinct_capped: false,
                top_values: top(&[
                    ("commune-0", 429),
                    ("commune-1", 429),
                    ("commune-2", 429),
                    ("commune-3", 429),
                    ("commune-4", 428),
                    ("commune-5", 428),
                    ("commune-6", 428)
                ])
            })
        );
        assert_eq!(profile.columns[3].stats, Some(ColumnStats::Boolean { true_count: 1500, false_count: 1500 }));
        assert_eq!(profile.preview[0], [Some("0".into()), None, Some("commune-0".into()), Some("true".into())]);
    }
}

#[test]
fn damaged_parquet_is_a_clear_error() {
    let good = parquet_file(Compression::SNAPPY);
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle - 64..middle + 64].fill(0xAB);
    let cases = [
        ("garbage", b"not parquet at all".to_vec()),
        ("truncated", good[..good.len() - 100].to_vec()),
        ("footer only", good[good.len() - 8..].to_vec()),
        ("flipped", flipped),
    ];
    for (case, bytes) in cases {
        match run("x.parquet", bytes, &ProfileLimits::DEFAULT) {
            Err(ProfileError::File { path, message }) => {
                assert_eq!(path, "x.parquet");
                assert!(!message.is_empty(), "{case}");
            }
            other => panic!("{case}: {other:?}"),
        }
    }
    let mut forged = good.clone();
    let at = forged.len() - 8;
    forged[at..at + 4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    match run("x.parquet", forged, &ProfileLimits::DEFAULT) {
        Err(ProfileError::File { message, .. }) => {
            assert_eq!(message, "a footer of 2147483647 bytes, at most 16777216")
        }
        other => panic!("{other:?}"),
    }
    let small = ProfileLimits { max_read_bytes: 100, ..ProfileLimits::DEFAULT };
    match run("x.parquet", good, &small) {
        Err(ProfileError::File { message, .. }) => assert!(message.contains("at most 100"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_media_types_are_not_profiled() {
    match run("img.png", vec![1, 2, 3], &ProfileLimits::DEFAULT) {
        Err(error @ ProfileError::Unsupported { .. }) => {
            assert_eq!(
                error.to_string(),
                "img.png: image/png files are not profiled (CSV, TSV, JSON Lines and Parquet are)"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_columns_is_an_error() {
    let header = (0..20).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
    let limits = ProfileLimits { max_columns: 10, ..ProfileLimits::DEFAULT };
    match run("a.csv", format!("{header}\n"), &limits) {
        Err(ProfileError::File { message, .. }) => assert_eq!(message, "20 columns, at most 10"),
        other => panic!("{other:?}"),
    }
    // Quoted delimiters are not separators.
    let quoted = (0..10).map(|i| format!("\"c,{i}\"")).collect::<Vec<_>>().join(",");
    assert_eq!(run("a.csv", format!("{quoted}\n"), &limits).expect("10 columns").columns.len(), 10);
    let object = (0..20).map(|i| format!("\"c{i}\": {i}")).collect::<Vec<_>>().join(", ");
    line_error(run("a.jsonl", format!("{{\"a\": 1}}\n{{{object}}}\n"), &limits), 2, "more than 10 fields");
}

/// Parquet files with random bytes changed: each is profiled or refused with an error, never a
/// panic (parquet 60.1 panics on a few; `profile` turns those into errors).
#[test]
fn parquet_with_random_damage_never_panics() {
    let files = [parquet_file(Compression::UNCOMPRESSED), parquet_file(Compression::SNAPPY)];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut decoder_failures = 0;
    for i in 0..1500 {
        let mut bytes = files[i % 2].clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if let Err(ProfileError::File { message, .. }) = run("x.parquet", bytes, &ProfileLimits::DEFAULT) {
            decoder_failures += usize::from(message.starts_with("the decoder failed on damaged data"));
        }
    }
    eprintln!("{decoder_failures} panics caught");
}

/// INSEE codes look like numbers for a thousand rows, then Corsica's `2A004` comes: columns
/// whose numbers have a leading zero are codes, read as text from the start.
#[test]
fn codes_with_leading_zeros_are_text_and_quantities_stay_numbers() {
    let mut csv = String::from("code,population\n");
    for i in 0..1500 {
        csv.push_str(&format!("{:05},{}\n", 1001 + i, 100 + i));
    }
    csv.push_str("2A004,60\n");
    let profile = ok("communes.csv", csv);
    assert_eq!(types(&profile), [("code", "Utf8"), ("population", "Int64")]);
    assert_eq!(profile.row_count, 1501);
    assert_eq!(profile.preview[0][0].as_deref(), Some("01001"), "the zero is kept");
    // A column of plain numbers with a later letter is still a line error, as before.
    let mut plain = String::from("n\n");
    for i in 0..1500 {
        plain.push_str(&format!("{}\n", 10 + i));
    }
    plain.push_str("x\n");
    line_error(run("plain.csv", plain, &ProfileLimits::DEFAULT), 1502, "Int64");
}
