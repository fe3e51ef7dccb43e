use std::time::{Duration, Instant};

use grappe_dataset::{Card, CardErrors, LegalBasis, License, PersonalData};

const FULL: &str = r#"---
pretty_name: Délibérations municipales
license: etalab-2.0
language:
- fr
- oc
task_categories: [text-classification, summarization]
size_categories: 10K<n<100K
tags: [france, collectivités]
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.csv
  - split: test
    path: [data/test.csv]
provenance:
  source: Délibérations publiées par les communes
  producer: Etalab
  collection_method: Moissonnage des sites des communes
  url: https://www.data.gouv.fr/
personal_data:
  level: pseudonymised
  legal_basis: public_task
intended_uses: Entraîner des classifieurs d'actes administratifs
out_of_scope_uses:
- Profilage d'élus
specificity: Langue administrative française, droit des collectivités
id_column: id
annotations_creators: [expert-generated]
colour: blue
---
# Délibérations

Texte.
"#;

fn errors(text: &str) -> CardErrors {
    Card::parse(text).expect_err("an invalid card")
}

/// Asserts that every `(field, words)` pair names an error of that field whose message holds
/// the words.
fn check_errors(text: &str, expected: &[(&str, &str)]) {
    let errors = errors(text);
    for (field, words) in expected {
        assert!(
            errors.errors.iter().any(|e| e.field == *field && e.message.contains(words)),
            "no error for {field} saying {words:?} in:\n{errors}"
        );
    }
    assert_eq!(errors.errors.len(), expected.len(), "{errors}");
}

#[test]
fn full_card_reads_every_field() {
    let parsed = Card::parse(FULL).expect("valid");
    let card = parsed.card;
    assert_eq!(card.pretty_name.as_deref(), Some("Délibérations municipales"));
    assert_eq!(card.license, License::Id { id: "etalab-2.0".into() });
    assert_eq!(card.languages, ["fr", "oc"]);
    assert_eq!(card.task_categories, ["text-classification", "summarization"]);
    assert_eq!(card.size_categories, ["10K<n<100K"]);
    assert_eq!(card.tags, ["france", "collectivités"]);
    assert_eq!(card.configs.len(), 1);
    let files = &card.configs[0].data_files;
    let names: Vec<&str> = files.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["test", "train"]);
    assert_eq!(files.values().flatten().collect::<Vec<_>>(), ["data/test.csv", "data/train-*.csv"]);
    let provenance = card.provenance.expect("provenance");
    assert_eq!(provenance.producer.as_deref(), Some("Etalab"));
    assert_eq!(card.personal_data, PersonalData::Pseudonymised { legal_basis: LegalBasis::PublicTask });
    assert_eq!(card.intended_uses.len(), 1);
    assert_eq!(card.out_of_scope_uses, ["Profilage d'élus"]);
    assert!(card.specificity.is_some());
    assert_eq!(card.id_column.as_deref(), Some("id"));
    assert!(card.body.starts_with("# Délibérations"));
    // Unread fields are kept; only the one Hugging Face does not define is a warning.
    assert!(card.extra.contains_key("annotations_creators") && card.extra.contains_key("colour"));
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
    assert_eq!(parsed.warnings[0].field, "colour");
    // Outputs serialize for the API.
    let json = serde_json::to_value(card.personal_data).expect("json");
    assert_eq!(json, serde_json::json!({"level": "pseudonymised", "legal_basis": "public_task"}));
}

#[test]
fn minimal_card_warns_about_missing_provenance() {
    let parsed = Card::parse("---\nlicense: MIT\npersonal_data: none\n---\n").expect("valid");
    assert_eq!(parsed.card.license, License::Id { id: "mit".into() });
    assert_eq!(parsed.card.personal_data, PersonalData::None);
    let fields: Vec<&str> = parsed.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["provenance", "language"]);
}

#[test]
fn card_without_front_matter_shows_a_minimal_card() {
    for text in ["# Just Markdown\n", "", "---\nlicense: mit\n(never closed)\n"] {
        let errors = errors(text);
        assert_eq!(errors.errors.len(), 1);
        assert_eq!(errors.errors[0].field, "front matter");
        assert!(
            errors.errors[0].message.contains("license: etalab-2.0\nlanguage: fr\npersonal_data: none"),
            "{errors}"
        );
    }
}

#[test]
fn every_error_is_reported_with_its_field() {
    let text = r#"---
language: [fr, French]
size_categories: lots
task_categories: Text Classification
configs:
- data_files:
  - split: "train set"
    path: ../escape.csv
  - path: data.csv
provenance:
  producer: Moi
  url: javascript:alert(1)
personal_data: personal
pretty_name: 42
---
"#;
    check_errors(
        text,
        &[
            ("license", "required"),
            ("language[1]", "ISO 639"),
            ("size_categories", "one of n<1K"),
            ("task_categories", "text-classification"),
            ("configs[0].data_files[0].split", "ASCII letters"),
            ("configs[0].data_files[0].path", "'.' or '..'"),
            ("configs[0].data_files[1].split", "required"),
            ("provenance.source", "required"),
            ("provenance.url", "http(s) URL"),
            ("personal_data.legal_basis", "consent, contract, legal_obligation"),
            ("pretty_name", "expected a string, found a number"),
        ],
    );
}

#[test]
fn personal_data_needs_a_gdpr_legal_basis() {
    let card = |personal: &str| format!("---\nlicense: mit\nlanguage: fr\npersonal_data: {personal}\n---\n");
    for (personal, expected) in [
        ("{level: personal, legal_basis: consent}", Some(PersonalData::Personal { legal_basis: LegalBasis::Consent })),
        ("{level: personal, legal_basis: because}", None),
        ("{level: pseudonymised}", None),
        ("anonymous", None),
        ("[none]", None),
    ] {
        match (Card::parse(&card(personal)), expected) {
            (Ok(parsed), Some(expected)) => assert_eq!(parsed.card.personal_data, expected),
            (Err(errors), None) => assert!(errors.errors[0].field.starts_with("personal_data"), "{errors}"),
            (other, _) => panic!("{personal}: {other:?}"),
        }
    }
    check_errors("---\nlicense: mit\n---\n", &[("personal_data", "required")]);
}

#[test]
fn license_other_needs_a_name_and_a_link() {
    check_errors(
        "---\nlicense: other\npersonal_data: none\n---\n",
        &[("license_name", "required"), ("license_link", "required")],
    );
    check_errors(
        "---\nlicense: other\nlicense_name: x\nlicense_link: javascript:x\npersonal_data: none\n---\n",
        &[("license_link", "http(s) URL or a file")],
    );
    let parsed =
        Card::parse("---\nlicense: other\nlicense_name: lo-3\nlicense_link: LICENSE.md\npersonal_data: none\n---\n")
            .expect("valid");
    assert_eq!(parsed.card.license, License::Other { name: "lo-3".into(), link: "LICENSE.md".into() });
    check_errors("---\nlicense: [mit, odbl]\npersonal_data: none\n---\n", &[("license", "one licence")]);
    check_errors("---\nlicense: \"cc by\"\npersonal_data: none\n---\n", &[("license", "SPDX-like")]);
}

#[test]
fn language_no_is_norwegian_not_false() {
    let parsed = Card::parse("---\nlicense: mit\nlanguage: no\npersonal_data: none\n---\n").expect("valid");
    assert_eq!(parsed.card.languages, ["no"]);
}

#[test]
fn bounds_on_lists_strings_and_front_matter() {
    let many = (0..101).map(|i| format!("t{i}")).collect::<Vec<_>>().join(", ");
    check_errors(
        &format!("---\nlicense: mit\npersonal_data: none\ntags: [{many}]\n---\n"),
        &[("tags", "101 items, at most 100")],
    );
    let long = "x".repeat(5000);
    check_errors(
        &format!("---\nlicense: mit\npersonal_data: none\nspecificity: {long}\n---\n"),
        &[("specificity", "5000 characters, at most 4000")],
    );
    let huge = format!("---\nlicense: mit\npersonal_data: none\nnotes: \"{}\"\n---\n", "y".repeat(70_000));
    check_errors(&huge, &[("front matter", "at most 65536")]);
    check_errors(&format!("---\n---\n{}", "z".repeat(1 << 20)), &[("card", "at most 1048576")]);
    check_errors(
        "---\nlicense: mit\nlicense: odbl\npersonal_data: none\n---\n",
        &[("front matter", "duplicate mapping key: license at line 3, column 1")],
    );
    check_errors("---\n- a list\n---\n", &[("front matter", "expected a mapping of fields, found a list")]);
}

/// Hostile YAML is refused quickly, in bounded memory: this test would exhaust memory or the
/// stack if aliases were expanded or nesting followed.
#[test]
fn hostile_yaml_is_refused_quickly() {
    let mut laughs = String::from(
        "---\nlicense: mit\npersonal_data: none\na0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let previous = format!("*a{}", i - 1);
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![previous; 9].join(",")));
    }
    laughs.push_str("---\n");
    let deep_flow = format!("---\nlicense: mit\nx: {}{}\n---\n", "[".repeat(30_000), "]".repeat(30_000));
    let deep_block = {
        let mut text = String::from("---\nlicense: mit\nx:\n");
        for depth in 1..300 {
            text.push_str(&format!("{}k:\n", " ".repeat(depth)));
        }
        text + "---\n"
    };
    let anchors: String = (0..2000).map(|i| format!("k{i}: &a{i} v\n")).collect();
    let many_anchors = format!("---\nlicense: mit\n{anchors}---\n");
    for (name, text) in
        [("billion laughs", laughs), ("deep flow", deep_flow), ("deep block", deep_block), ("anchors", many_anchors)]
    {
        let start = Instant::now();
        let errors = errors(&text);
        assert!(start.elapsed() < Duration::from_secs(2), "{name} took {:?}", start.elapsed());
        assert_eq!(errors.errors.len(), 1, "{name}: {errors}");
        assert_eq!(errors.errors[0].field, "front matter", "{name}: {errors}");
        assert!(errors.errors[0].message.len() < 1000, "{name}: the message is cut");
        let message = &errors.errors[0].message;
        assert!(message.contains("budget breached") || message.contains("recursion limit"), "{name}: {message}");
    }
}

/// A card as Hugging Face's hub writes it is read as is; only Grappe's required
/// `personal_data` is missing.
#[test]
fn hugging_face_card_needs_only_personal_data() {
    let card = r#"---
annotations_creators:
- no-annotation
language_creators:
- found
language:
- fr
license: cc-by-sa-4.0
multilinguality:
- monolingual
size_categories:
- 1M<n<10M
source_datasets:
- original
task_categories:
- text-generation
task_ids:
- language-modeling
pretty_name: Wikipédia FR
dataset_info:
  features:
  - name: id
    dtype: string
  - name: text
    dtype: string
  splits:
  - name: train
    num_bytes: 7284734283
    num_examples: 2564646
  download_size: 4156574226
  dataset_size: 7284734283
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---

# Dataset Card for Wikipédia FR
"#;
    check_errors(card, &[("personal_data", "required")]);
    let with_personal_data = card.replacen("license:", "personal_data: none\nlicense:", 1);
    let parsed = Card::parse(&with_personal_data).expect("valid");
    let fields: Vec<&str> = parsed.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["provenance"]);
    assert_eq!(parsed.card.extra.len(), 6);
}
