use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor};

use grappe_dataset::{OverlapLimits, ProfileError, ProfileLimits, check_overlap, resolve_splits};
use grappe_store::{DatasetPath, Digest, FileEntry, Limits, Manifest, MediaType, SplitName, Splits};

/// A manifest of the given files (their bytes are served by `open` below).
fn manifest(files: &[(&str, &str)]) -> Manifest {
    let entries = files
        .iter()
        .map(|(path, _)| {
            let path = DatasetPath::parse(path).expect("path");
            FileEntry {
                media_type: MediaType::guess(&path),
                path,
                size_bytes: 0,
                digest: Digest::of(b""),
                chunks: Vec::new(),
            }
        })
        .collect();
    Manifest::new(entries, &Limits::DEFAULT).expect("manifest")
}

fn declared(splits: &[(&str, &[&str])]) -> BTreeMap<SplitName, Vec<String>> {
    splits
        .iter()
        .map(|(name, paths)| (SplitName::parse(name).expect("split"), paths.iter().map(|p| p.to_string()).collect()))
        .collect()
}

fn paths(splits: &Splits, split: &str) -> Vec<String> {
    splits[&SplitName::parse(split).expect("split")].iter().map(|p| p.to_string()).collect()
}

#[test]
fn declared_splits_resolve_to_files_with_patterns() {
    let manifest = manifest(&[
        ("README.md", ""),
        ("data/test.csv", ""),
        ("data/train-0.csv", ""),
        ("data/train-1.csv", ""),
        ("data/train/nested.csv", ""),
        ("extra/dev.jsonl", ""),
    ]);
    let resolved = resolve_splits(
        &declared(&[("train", &["data/train-*.csv"]), ("test", &["data/test.csv"]), ("dev", &["*/dev.jsonl"])]),
        &manifest,
    )
    .expect("resolved");
    assert_eq!(paths(&resolved.splits, "train"), ["data/train-0.csv", "data/train-1.csv"]);
    assert_eq!(paths(&resolved.splits, "test"), ["data/test.csv"]);
    assert_eq!(paths(&resolved.splits, "dev"), ["extra/dev.jsonl"]);
    assert_eq!(resolved.warnings.len(), 1);
    assert_eq!(resolved.warnings[0].split, "dev");
}

#[test]
fn missing_files_and_shared_files_are_all_reported() {
    let manifest = manifest(&[("data/a.csv", ""), ("data/b.csv", "")]);
    let errors = resolve_splits(
        &declared(&[
            ("train", &["data/*.csv", "data/missing.csv"]),
            ("test", &["data/b.csv", "other/*.csv"]),
            ("validation", &[]),
        ]),
        &manifest,
    )
    .expect_err("invalid");
    let messages: Vec<String> = errors.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        messages,
        [
            "split test: `other/*.csv` no file of the version matches",
            "split train: `data/b.csv` is also in split test: a file belongs to one split",
            "split train: `data/missing.csv` is not a file of the version",
            "split validation: no file declared",
        ]
    );
}

fn open_from(
    files: &'static [(&'static str, &'static str)],
) -> impl FnMut(&DatasetPath) -> io::Result<Cursor<Vec<u8>>> {
    move |path| {
        files
            .iter()
            .find(|(name, _)| *name == path.as_str())
            .map(|(_, bytes)| Cursor::new(bytes.as_bytes().to_vec()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
}

fn splits_of(entries: &[(&str, &[&str])]) -> Splits {
    entries
        .iter()
        .map(|(name, paths)| {
            let paths: BTreeSet<DatasetPath> = paths.iter().map(|p| DatasetPath::parse(p).expect("path")).collect();
            (SplitName::parse(name).expect("split"), paths)
        })
        .collect()
}

const FILES: &[(&str, &str)] = &[
    ("train.csv", "id,text\n1,a\n2,b\n3,c\n4,d\n,null id\n"),
    ("train2.jsonl", "{\"id\": 5}\n{\"id\": 6}\n{\"id\": 5}\n"),
    ("test.csv", "id,text\n3,c\n6,f\n7,g\n"),
    ("clean.csv", "id\n100\n101\n"),
    ("noid.csv", "other\n1\n"),
];

#[test]
fn overlapping_ids_are_counted_with_examples() {
    let manifest = manifest(FILES);
    let splits = splits_of(&[("train", &["train.csv", "train2.jsonl"]), ("test", &["test.csv"])]);
    let report =
        check_overlap(&splits, &manifest, "id", open_from(FILES), &ProfileLimits::DEFAULT, &OverlapLimits::DEFAULT)
            .expect("report");
    assert_eq!(report.ids_read, 10);
    assert_eq!(report.null_ids, 1);
    // Splits are read in name order: test first, then train's 3 and 6 are overlaps.
    assert_eq!(report.overlapping, 2);
    let examples: Vec<(&str, &str, &str)> =
        report.examples.iter().map(|e| (e.id.as_str(), e.first_split.as_str(), e.second_split.as_str())).collect();
    assert_eq!(examples, [("3", "test", "train"), ("6", "test", "train")]);
    assert!(report.complete);

    let clean = splits_of(&[("train", &["train.csv"]), ("test", &["clean.csv"])]);
    let report =
        check_overlap(&clean, &manifest, "id", open_from(FILES), &ProfileLimits::DEFAULT, &OverlapLimits::DEFAULT)
            .expect("report");
    assert_eq!(report.overlapping, 0);
}

#[test]
fn past_the_id_bound_the_report_says_incomplete() {
    let manifest = manifest(FILES);
    let splits = splits_of(&[("train", &["train.csv"]), ("test", &["test.csv"])]);
    let limits = OverlapLimits { max_ids: 2, max_examples: 1 };
    let report =
        check_overlap(&splits, &manifest, "id", open_from(FILES), &ProfileLimits::DEFAULT, &limits).expect("report");
    assert!(!report.complete);
    // test.csv's 3 and 6 are indexed; train's 3 is still found.
    assert_eq!(report.overlapping, 1);
    assert_eq!(report.examples.len(), 1);
}

#[test]
fn a_missing_id_column_or_file_is_an_error() {
    let manifest = manifest(FILES);
    let splits = splits_of(&[("train", &["noid.csv"])]);
    match check_overlap(&splits, &manifest, "id", open_from(FILES), &ProfileLimits::DEFAULT, &OverlapLimits::DEFAULT) {
        Err(ProfileError::File { path, message }) => {
            assert_eq!(path, "noid.csv");
            assert!(message.contains("no column `id`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let gone = splits_of(&[("train", &["gone.csv"])]);
    assert!(matches!(
        check_overlap(&gone, &manifest, "id", open_from(FILES), &ProfileLimits::DEFAULT, &OverlapLimits::DEFAULT),
        Err(ProfileError::File { .. })
    ));
}
