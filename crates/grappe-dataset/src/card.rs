//! Dataset cards: Markdown with a YAML front matter, read where it overlaps with Hugging Face's
//! dataset cards (`license`, `language`, `task_categories`, `size_categories`, `pretty_name`,
//! `tags`, `configs`), plus Grappe's own fields (`provenance`, `personal_data`, `intended_uses`,
//! `out_of_scope_uses`, `specificity`, `id_column`).
//!
//! Every field is checked and every error is reported, each naming its field and saying what is
//! expected. Fields Grappe does not read are kept in [`Card::extra`]; those Hugging Face defines
//! are kept silently, any other is reported as a warning (often a misspelt field).
//!
//! Grappe's own fields, beside Hugging Face's (`license` and `personal_data` are required):
//!
//! ```yaml
//! provenance:
//!   source: Délibérations publiées par les communes   # required in `provenance`
//!   producer: Etalab
//!   collection_method: Moissonnage des sites des communes
//!   url: https://www.data.gouv.fr/
//! personal_data: none            # or {level: pseudonymised | personal, legal_basis: consent |
//!                                #     contract | legal_obligation | vital_interests |
//!                                #     public_task | legitimate_interests}
//! intended_uses: [Entraîner des classifieurs d'actes administratifs]
//! out_of_scope_uses: [Profilage d'élus]
//! specificity: Langue administrative française, droit des collectivités
//! id_column: id                  # no id in two splits
//! ```
//!
//! The YAML is parsed by `serde-saphyr` under a budget (bytes, events, nodes, depth, anchors,
//! aliases and alias replay), so a hostile front matter (an alias bomb, deep nesting) is refused
//! in time and memory proportional to the bounds below, never expanded.

use std::collections::BTreeMap;
use std::fmt;

use grappe_store::{DatasetPath, SplitName};
use serde::Serialize;
use serde_json::{Map, Value};

/// Bytes of a whole card, front matter and body (the store's own bound on a card).
pub const MAX_CARD_BYTES: usize = 1 << 20;
/// Bytes of the YAML front matter.
pub const MAX_FRONT_MATTER_BYTES: usize = 64 << 10;
/// Items in any list of the front matter.
pub const MAX_LIST_ITEMS: usize = 100;
/// Characters of a short value: a name, a tag, a code, a column name.
pub const MAX_SHORT_CHARS: usize = 200;
/// Characters of a prose value: a use, a provenance description, the specificity.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Nesting depth of the YAML (a card's fields nest three deep; the rest is for kept fields).
const MAX_YAML_DEPTH: usize = 16;

/// The smallest valid card, shown when a card has no front matter.
pub const MINIMAL_CARD: &str = "---\nlicense: etalab-2.0\nlanguage: fr\npersonal_data: none\n---\n# My dataset\n";

/// Hugging Face's `size_categories` values.
pub const SIZE_CATEGORIES: &[&str] = &[
    "n<1K",
    "1K<n<10K",
    "10K<n<100K",
    "100K<n<1M",
    "1M<n<10M",
    "10M<n<100M",
    "100M<n<1B",
    "1B<n<10B",
    "10B<n<100B",
    "100B<n<1T",
    "n>1T",
    "other",
];

/// Hugging Face card fields that Grappe keeps without reading them.
const KEPT_HF_FIELDS: &[&str] = &[
    "annotations_creators",
    "language_creators",
    "language_details",
    "license_details",
    "multilinguality",
    "source_datasets",
    "task_ids",
    "dataset_info",
    "paperswithcode_id",
    "viewer",
    "library_name",
    "extra_gated_prompt",
    "extra_gated_fields",
    "train-eval-index",
];

/// A parsed, valid card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Card {
    pub pretty_name: Option<String>,
    pub license: License,
    /// ISO 639-1, 639-2 or 639-3 codes, or `multilingual` / `code`.
    pub languages: Vec<String>,
    pub task_categories: Vec<String>,
    pub size_categories: Vec<String>,
    pub tags: Vec<String>,
    pub configs: Vec<Config>,
    pub provenance: Option<Provenance>,
    pub personal_data: PersonalData,
    pub intended_uses: Vec<String>,
    pub out_of_scope_uses: Vec<String>,
    /// What is French or European about the dataset.
    pub specificity: Option<String>,
    /// The column that identifies a row, checked for overlap between splits.
    pub id_column: Option<String>,
    /// Front matter fields Grappe does not read, kept as they were.
    pub extra: BTreeMap<String, Value>,
    /// The Markdown after the front matter.
    pub body: String,
}

/// A licence: an SPDX-like identifier as Hugging Face lists them (`cc-by-4.0`, `etalab-2.0`,
/// `mit`, ...), lowercase; `other` comes with a name and a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum License {
    Id { id: String },
    Other { name: String, link: String },
}

/// A Hugging Face `configs` entry: its splits and the file patterns of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub name: String,
    /// Split name to paths in the version; a path may hold `*` (any characters but `/`).
    #[serde(serialize_with = "serialize_data_files")]
    pub data_files: BTreeMap<SplitName, Vec<String>>,
}

fn serialize_data_files<S: serde::Serializer>(
    files: &BTreeMap<SplitName, Vec<String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(files.iter().map(|(split, paths)| (split.as_str(), paths)))
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub source: String,
    pub producer: Option<String>,
    pub collection_method: Option<String>,
    pub url: Option<String>,
}

/// Whether the data holds personal data, in the GDPR's sense. Pseudonymised data is still
/// personal data (GDPR recital 26), so it needs a legal basis too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "level", rename_all = "snake_case")]
pub enum PersonalData {
    None,
    Pseudonymised { legal_basis: LegalBasis },
    Personal { legal_basis: LegalBasis },
}

/// The six legal bases of GDPR article 6(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterests,
    PublicTask,
    LegitimateInterests,
}

impl LegalBasis {
    const ALL: [(&'static str, LegalBasis); 6] = [
        ("consent", LegalBasis::Consent),
        ("contract", LegalBasis::Contract),
        ("legal_obligation", LegalBasis::LegalObligation),
        ("vital_interests", LegalBasis::VitalInterests),
        ("public_task", LegalBasis::PublicTask),
        ("legitimate_interests", LegalBasis::LegitimateInterests),
    ];
}

/// One problem with one field (`field` is a path such as `configs[0].data_files[1].split`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardIssue {
    pub field: String,
    pub message: String,
}

impl fmt::Display for CardIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every error found in a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct CardErrors {
    pub errors: Vec<CardIssue>,
}

impl fmt::Display for CardErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the dataset card has {} error(s):", self.errors.len())?;
        for issue in &self.errors {
            write!(f, "\n- {issue}")?;
        }
        Ok(())
    }
}

/// A valid card and what deserves a look without being wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CardParse {
    pub card: Card,
    pub warnings: Vec<CardIssue>,
}

impl Card {
    /// Parses and validates a card; on failure, every error found.
    pub fn parse(text: &str) -> Result<CardParse, CardErrors> {
        let one =
            |field: &str, message: String| CardErrors { errors: vec![CardIssue { field: field.into(), message }] };
        if text.len() > MAX_CARD_BYTES {
            return Err(one("card", format!("{} bytes, at most {MAX_CARD_BYTES}", text.len())));
        }
        let (yaml, body) = split_front_matter(text).ok_or_else(|| {
            one(
                "front matter",
                format!(
                    "a card starts with a YAML front matter between two `---` lines; a minimal card:\n{MINIMAL_CARD}"
                ),
            )
        })?;
        if yaml.len() > MAX_FRONT_MATTER_BYTES {
            return Err(one("front matter", format!("{} bytes, at most {MAX_FRONT_MATTER_BYTES}", yaml.len())));
        }
        let fields = parse_yaml(yaml).map_err(|message| one("front matter", message))?;
        let mut checker = Checker::default();
        match checker.card(fields, body) {
            Some(card) if checker.errors.is_empty() => Ok(CardParse { card, warnings: checker.warnings }),
            _ => Err(CardErrors { errors: checker.errors }),
        }
    }
}

/// The front matter and the body, or `None` when the text does not open with `---`.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text.strip_prefix("---\n").or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\r', '\n']) == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

fn parse_yaml(yaml: &str) -> Result<Map<String, Value>, String> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 20_000;
    budget.max_nodes = 10_000;
    budget.max_depth = MAX_YAML_DEPTH;
    budget.max_anchors = 100;
    budget.max_aliases = 100;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_FRONT_MATTER_BYTES;
    budget.max_recorded_anchor_events = 10_000;
    budget.max_recorded_anchor_bytes = MAX_FRONT_MATTER_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 10_000;
    options.alias_limits.max_alias_expansions_per_anchor = 100;
    // YAML 1.2 booleans only: `language: no` is Norwegian, not `false`.
    options.strict_booleans = true;
    options.with_snippet = false;
    let value: Value = serde_saphyr::from_str_with_options(yaml, options).map_err(|error| {
        // Lines counted in the card, whose first line is the opening `---`.
        let mut render = serde_saphyr::RenderOptions::default();
        render.line_offset = 1;
        render.snippets = serde_saphyr::SnippetMode::Off;
        let message =
            error.render_with_options(render).replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        let message: String = message.chars().take(500).collect();
        format!("not valid YAML within Grappe's bounds: {message}")
    })?;
    match value {
        Value::Object(fields) => Ok(fields),
        Value::Null => Ok(Map::new()),
        other => Err(format!("expected a mapping of fields, found {}", kind(&other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<CardIssue>,
    warnings: Vec<CardIssue>,
}

impl Checker {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(CardIssue { field: field.into(), message: message.into() });
    }

    fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.warnings.push(CardIssue { field: field.into(), message: message.into() });
    }

    /// The card, `None` when a required field is missing (each failure is in `errors`).
    fn card(&mut self, mut fields: Map<String, Value>, body: &str) -> Option<Card> {
        let mut take = |name: &str| fields.remove(name);
        let pretty_name = take("pretty_name").and_then(|v| self.text("pretty_name", &v, MAX_SHORT_CHARS));
        let license = self.license(take("license"), take("license_name"), take("license_link"));
        let languages = self.codes(
            "language",
            take("language"),
            "an ISO 639-1, 639-2 or 639-3 code (2 or 3 lowercase letters, such as `fr` or `fra`), or `multilingual` \
             or `code`",
            is_language,
        );
        let task_categories = self.codes(
            "task_categories",
            take("task_categories"),
            "a Hugging Face task id in lowercase words joined by `-`, such as `text-classification`",
            is_slug,
        );
        let size_categories = self.codes(
            "size_categories",
            take("size_categories"),
            &format!("one of {}", SIZE_CATEGORIES.join(", ")),
            |code| SIZE_CATEGORIES.contains(&code),
        );
        let tags = self.texts("tags", take("tags"), MAX_SHORT_CHARS);
        let configs = take("configs").map(|v| self.configs(&v)).unwrap_or_default();
        let provenance = take("provenance").and_then(|v| self.provenance(&v));
        let personal_data = self.personal_data(take("personal_data"));
        let intended_uses = self.texts("intended_uses", take("intended_uses"), MAX_TEXT_CHARS);
        let out_of_scope_uses = self.texts("out_of_scope_uses", take("out_of_scope_uses"), MAX_TEXT_CHARS);
        let specificity = take("specificity").and_then(|v| self.text("specificity", &v, MAX_TEXT_CHARS));
        let id_column = take("id_column").and_then(|v| self.text("id_column", &v, MAX_SHORT_CHARS));
        for name in fields.keys() {
            if !KEPT_HF_FIELDS.contains(&name.as_str()) {
                self.warn(name, "not a field Grappe reads: kept as is (is it misspelt?)");
            }
        }
        if provenance.is_none() {
            self.warn(
                "provenance",
                "not declared: say where the data comes from (`source`, `producer`, `collection_method`, `url`)",
            );
        }
        if languages.is_empty() {
            self.warn("language", "not declared");
        }
        Some(Card {
            license: license?,
            personal_data: personal_data?,
            pretty_name,
            languages,
            task_categories,
            size_categories,
            tags,
            configs,
            provenance,
            intended_uses,
            out_of_scope_uses,
            specificity,
            id_column,
            extra: fields.into_iter().collect(),
            body: body.to_string(),
        })
    }

    /// A non-empty string of at most `max_chars` characters, trimmed.
    fn text(&mut self, field: &str, value: &Value, max_chars: usize) -> Option<String> {
        let Value::String(text) = value else {
            self.error(field, format!("expected a string, found {}", kind(value)));
            return None;
        };
        let text = text.trim();
        if text.is_empty() {
            self.error(field, "expected a non-empty string");
            return None;
        }
        let chars = text.chars().count();
        if chars > max_chars {
            self.error(field, format!("{chars} characters, at most {max_chars}"));
            return None;
        }
        Some(text.to_string())
    }

    /// One value or a list of at most [`MAX_LIST_ITEMS`]; `field[i]` names an item.
    fn list<'v>(&mut self, field: &str, value: &'v Value) -> Vec<(String, &'v Value)> {
        match value {
            Value::Array(items) if items.len() > MAX_LIST_ITEMS => {
                self.error(field, format!("{} items, at most {MAX_LIST_ITEMS}", items.len()));
                Vec::new()
            }
            Value::Array(items) => items.iter().enumerate().map(|(i, item)| (format!("{field}[{i}]"), item)).collect(),
            Value::Null => Vec::new(),
            one => vec![(field.to_string(), one)],
        }
    }

    fn texts(&mut self, field: &str, value: Option<Value>, max_chars: usize) -> Vec<String> {
        let Some(value) = value else { return Vec::new() };
        self.list(field, &value).into_iter().filter_map(|(name, item)| self.text(&name, item, max_chars)).collect()
    }

    /// A list of codes, each accepted by `valid`, else an error that says `expected`.
    fn codes(
        &mut self,
        field: &str,
        value: Option<Value>,
        expected: &str,
        valid: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut codes = Vec::new();
        for (name, item) in value.as_ref().map(|value| self.list(field, value)).unwrap_or_default() {
            let Some(code) = self.text(&name, item, MAX_SHORT_CHARS) else { continue };
            if valid(&code) {
                codes.push(code);
            } else {
                self.error(&name, format!("expected {expected}; found `{code}`"));
            }
        }
        codes
    }

    fn license(&mut self, id: Option<Value>, name: Option<Value>, link: Option<Value>) -> Option<License> {
        let Some(id) = id else {
            self.error(
                "license",
                "required: a licence id such as `etalab-2.0`, `cc-by-4.0`, `odbl` or `mit`, or `other` with \
                 `license_name` and `license_link`",
            );
            return None;
        };
        let id = match &id {
            Value::Array(items) if items.len() == 1 => &items[0],
            Value::Array(_) => {
                self.error(
                    "license",
                    "expected one licence; for several, use `other` with `license_name` and `license_link`",
                );
                return None;
            }
            one => one,
        };
        let id = self.text("license", id, 64)?.to_ascii_lowercase();
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')) {
            self.error(
                "license",
                format!("expected an SPDX-like id (letters, digits, `.`, `+`, `-`), such as `cc-by-4.0`; found `{id}`"),
            );
            return None;
        }
        if id != "other" {
            return Some(License::Id { id });
        }
        let name = match name {
            Some(name) => self.text("license_name", &name, MAX_SHORT_CHARS),
            None => {
                self.error("license_name", "required when `license` is `other`: the licence's name");
                None
            }
        };
        let link = match link {
            Some(link) => self.text("license_link", &link, MAX_SHORT_CHARS).filter(|link| {
                let valid = is_web_url(link) || (!link.contains(':') && DatasetPath::parse(link).is_ok());
                if !valid {
                    self.error(
                        "license_link",
                        format!("expected an http(s) URL or a file of the dataset such as `LICENSE`; found `{link}`"),
                    );
                }
                valid
            }),
            None => {
                self.error(
                    "license_link",
                    "required when `license` is `other`: an http(s) URL or a file of the dataset such as `LICENSE`",
                );
                None
            }
        };
        Some(License::Other { name: name?, link: link? })
    }

    fn configs(&mut self, value: &Value) -> Vec<Config> {
        let mut configs = Vec::new();
        for (field, item) in self.list("configs", value) {
            let Some(config) = self.mapping(&field, item) else { continue };
            let mut config = config.clone();
            let name = match config.remove("config_name") {
                Some(name) => self.text(&format!("{field}.config_name"), &name, MAX_SHORT_CHARS),
                None => Some("default".to_string()),
            };
            config.remove("default");
            let data_files = match config.remove("data_files") {
                Some(files) => self.data_files(&format!("{field}.data_files"), &files),
                None => {
                    self.error(
                        &format!("{field}.data_files"),
                        "required: a list of `- split: NAME` and `path: PATH` (or a list of paths)",
                    );
                    BTreeMap::new()
                }
            };
            for key in config.keys() {
                self.warn(&format!("{field}.{key}"), "not a field Grappe reads in a config: kept as is");
            }
            if let Some(name) = name {
                if configs.iter().any(|c: &Config| c.name == name) {
                    self.error(&format!("{field}.config_name"), format!("`{name}` appears twice"));
                }
                configs.push(Config { name, data_files });
            }
        }
        configs
    }

    fn data_files(&mut self, field: &str, value: &Value) -> BTreeMap<SplitName, Vec<String>> {
        let mut splits: BTreeMap<SplitName, Vec<String>> = BTreeMap::new();
        for (field, item) in self.list(field, value) {
            let Some(entry) = self.mapping(&field, item) else { continue };
            let split = match entry.get("split") {
                Some(split) => self.text(&format!("{field}.split"), split, MAX_SHORT_CHARS).and_then(|split| {
                    SplitName::parse(&split)
                        .map_err(|_| {
                            let expected = "expected 1 to 100 ASCII letters, digits, `.`, `_` or `-`, such as `train`";
                            self.error(&format!("{field}.split"), format!("{expected}; found `{split}`"))
                        })
                        .ok()
                }),
                None => {
                    self.error(
                        &format!("{field}.split"),
                        "required: the split's name, such as `train`, `validation` or `test`",
                    );
                    None
                }
            };
            let paths = match entry.get("path") {
                Some(paths) => self
                    .list(&format!("{field}.path"), paths)
                    .into_iter()
                    .filter_map(|(name, path)| {
                        let path = self.text(&name, path, MAX_SHORT_CHARS)?;
                        DatasetPath::parse(&path)
                            .map_err(|error| {
                                self.error(&name, format!("expected a relative path inside the dataset: {error}"))
                            })
                            .ok()
                            .map(|_| path)
                    })
                    .collect(),
                None => {
                    self.error(
                        &format!("{field}.path"),
                        "required: a path in the dataset (`*` matches any characters but `/`), or a list of them",
                    );
                    Vec::new()
                }
            };
            for key in entry.keys().filter(|key| !matches!(key.as_str(), "split" | "path")) {
                self.warn(&format!("{field}.{key}"), "not a field Grappe reads in `data_files`: ignored");
            }
            if let Some(split) = split {
                splits.entry(split).or_default().extend(paths);
            }
        }
        splits
    }

    fn mapping<'v>(&mut self, field: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.error(field, format!("expected a mapping, found {}", kind(other)));
                None
            }
        }
    }

    fn provenance(&mut self, value: &Value) -> Option<Provenance> {
        let map = self.mapping("provenance", value)?;
        let mut optional =
            |name: &str| map.get(name).and_then(|v| self.text(&format!("provenance.{name}"), v, MAX_TEXT_CHARS));
        let producer = optional("producer");
        let collection_method = optional("collection_method");
        let url = optional("url");
        let source = match map.get("source") {
            Some(source) => self.text("provenance.source", source, MAX_TEXT_CHARS),
            None => {
                self.error("provenance.source", "required: where the data comes from");
                None
            }
        };
        if let Some(url) = url.as_ref().filter(|url| !is_web_url(url)) {
            self.error("provenance.url", format!("expected an http(s) URL; found `{url}`"));
        }
        for key in map.keys().filter(|key| !matches!(key.as_str(), "source" | "producer" | "collection_method" | "url"))
        {
            self.warn(&format!("provenance.{key}"), "not a field Grappe reads in `provenance`: ignored");
        }
        Some(Provenance { source: source?, producer, collection_method, url })
    }

    fn personal_data(&mut self, value: Option<Value>) -> Option<PersonalData> {
        const LEVELS: &str = "`none`, `pseudonymised` or `personal`";
        let Some(value) = value else {
            self.error(
                "personal_data",
                format!(
                    "required: {LEVELS}; with personal data, `personal_data: {{level: personal, legal_basis: consent}}`"
                ),
            );
            return None;
        };
        let (level, basis) = match &value {
            Value::String(level) => (Some(level.trim().to_string()), None),
            Value::Object(map) => {
                for key in map.keys().filter(|key| !matches!(key.as_str(), "level" | "legal_basis")) {
                    self.warn(&format!("personal_data.{key}"), "not a field Grappe reads in `personal_data`: ignored");
                }
                let level = match map.get("level") {
                    Some(level) => self.text("personal_data.level", level, MAX_SHORT_CHARS),
                    None => {
                        self.error("personal_data.level", format!("required: {LEVELS}"));
                        None
                    }
                };
                (level, map.get("legal_basis"))
            }
            other => {
                self.error(
                    "personal_data",
                    format!("expected {LEVELS}, or a mapping with `level` and `legal_basis`; found {}", kind(other)),
                );
                return None;
            }
        };
        let level = level?;
        if level == "none" {
            return Some(PersonalData::None);
        }
        if !matches!(level.as_str(), "pseudonymised" | "personal") {
            self.error("personal_data", format!("expected {LEVELS}; found `{level}`"));
            return None;
        }
        let bases = LegalBasis::ALL.map(|(name, _)| name).join(", ");
        let Some(basis) = basis else {
            self.error(
                "personal_data.legal_basis",
                format!("required for {level} data (GDPR article 6): one of {bases}"),
            );
            return None;
        };
        let basis = self.text("personal_data.legal_basis", basis, MAX_SHORT_CHARS)?;
        let Some(&(_, legal_basis)) = LegalBasis::ALL.iter().find(|(name, _)| *name == basis) else {
            self.error("personal_data.legal_basis", format!("expected one of {bases}; found `{basis}`"));
            return None;
        };
        Some(if level == "personal" {
            PersonalData::Personal { legal_basis }
        } else {
            PersonalData::Pseudonymised { legal_basis }
        })
    }
}

fn is_language(code: &str) -> bool {
    matches!(code, "multilingual" | "code")
        || ((2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase()))
}

fn is_slug(code: &str) -> bool {
    code.len() <= 64
        && code
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn is_web_url(text: &str) -> bool {
    (text.starts_with("https://") || text.starts_with("http://"))
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}
