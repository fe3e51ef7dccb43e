//! `grappe jury assign`: the contract of DESIGN.md. Reads `{"reviewers_per_application": k,
//! "max_load": L, "affinity": [[a, r, score], ...], "conflicts": [[a, r], ...], "applications":
//! [...], "reviewers": [...]}` (ids are JSON strings or numbers, printed back as given), solves it
//! with `grappe-jury`, and prints `{"assignment": [[a, r], ...], "total_affinity": X}` with
//! `--json`; `--fair` maximises the worst pair's affinity first (`grappe_jury::assign_fair`) and
//! adds `"worst_pair_affinity"`. Exit code 1 with the explanation on stderr when no assignment exists; 2 on bad
//! input (unreadable file, bad JSON, unknown or repeated ids, k or L out of range).

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use grappe_jury::{Problem, ProblemSpec};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

#[derive(Subcommand)]
pub enum JuryCommand {
    /// Assign k reviewers to every application, at most L applications per reviewer, no
    /// conflicted pair, total affinity maximal (pairs not listed have affinity 0).
    Assign(AssignFlags),
}

#[derive(Args)]
pub struct AssignFlags {
    /// The problem, as JSON (see DESIGN.md, "Contracts").
    #[arg(long)]
    input: PathBuf,
    /// Print `{"assignment": [[a, r], ...], "total_affinity": X}`.
    #[arg(long)]
    json: bool,
    /// Fairness mode: first the worst assigned pair's affinity as high as any assignment allows,
    /// then the total affinity maximal among those; prints `worst_pair_affinity` too.
    #[arg(long)]
    fair: bool,
}

const INFEASIBLE: u8 = 1;
const BAD_INPUT: u8 = 2;

pub fn run(command: JuryCommand) -> ExitCode {
    let JuryCommand::Assign(flags) = command;
    let text = match std::fs::read_to_string(&flags.input) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: reading {}: {error}", flags.input.display());
            return ExitCode::from(BAD_INPUT);
        }
    };
    let (problem, ids) = match parse(&text) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {}: {message}", flags.input.display());
            return ExitCode::from(BAD_INPUT);
        }
    };
    let solved = if flags.fair {
        grappe_jury::assign_fair(&problem).map(|fair| (fair.assignment, fair.worst_pair_affinity))
    } else {
        grappe_jury::assign(&problem).map(|assignment| (assignment, None))
    };
    let (assignment, worst_pair) = match solved {
        Ok(solved) => solved,
        Err(infeasible) => {
            eprintln!("error: {infeasible}");
            return ExitCode::from(INFEASIBLE);
        }
    };
    let mut out = String::with_capacity(assignment.pairs.len() * 16 + 64);
    if flags.json {
        out.push_str("{\"assignment\": [");
        for (i, &(a, r)) in assignment.pairs.iter().enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            let _ = write!(out, "{comma}[{}, {}]", ids.applications[a].json(), ids.reviewers[r].json());
        }
        let total = serde_json::Value::from(assignment.total_affinity);
        let _ = write!(out, "], \"total_affinity\": {total}");
        if let Some(worst) = worst_pair {
            let _ = write!(out, ", \"worst_pair_affinity\": {}", serde_json::Value::from(worst));
        }
        out.push_str("}\n");
    } else {
        for &(a, r) in &assignment.pairs {
            let _ = writeln!(out, "{}\t{}", ids.applications[a].json(), ids.reviewers[r].json());
        }
        let _ = writeln!(out, "total affinity: {}", assignment.total_affinity);
        if let Some(worst) = worst_pair {
            let _ = writeln!(out, "worst pair's affinity: {worst}");
        }
    }
    crate::text::write_stdout(format_args!("{out}"));
    ExitCode::SUCCESS
}

/// An id as written: a string, or a number kept as its text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Id<'a> {
    Text(Cow<'a, str>),
    Number(String),
}

impl Id<'_> {
    /// The id as JSON, as it was given.
    fn json(&self) -> String {
        match self {
            Id::Text(text) => serde_json::Value::from(text.as_ref()).to_string(),
            Id::Number(number) => number.clone(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor<'a>(std::marker::PhantomData<Id<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
            type Value = Id<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an id: a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Id<'a>, E> {
                Ok(Id::Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Id<'a>, E> {
                Ok(Id::Text(Cow::Owned(value.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Id<'a>, E> {
                Ok(Id::Number(value.to_string()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Id<'a>, E> {
                Ok(Id::Number(value.to_string()))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Id<'a>, E> {
                Ok(Id::Number(serde_json::Value::from(value).to_string()))
            }
        }
        deserializer.deserialize_any(IdVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Input<'a> {
    reviewers_per_application: u64,
    max_load: u64,
    #[serde(borrow)]
    applications: Vec<Id<'a>>,
    #[serde(borrow)]
    reviewers: Vec<Id<'a>>,
    #[serde(borrow, default)]
    affinity: Vec<(Id<'a>, Id<'a>, f64)>,
    #[serde(borrow, default)]
    conflicts: Vec<(Id<'a>, Id<'a>)>,
}

/// Positions by id; an id listed twice is an error.
fn index<'i, 'a>(list: &str, ids: &'i [Id<'a>]) -> Result<HashMap<&'i Id<'a>, usize>, String> {
    let mut index = HashMap::with_capacity(ids.len());
    for (at, id) in ids.iter().enumerate() {
        match index.entry(id) {
            Entry::Vacant(entry) => entry.insert(at),
            Entry::Occupied(_) => return Err(format!("\"{list}\" lists {} twice", id.json())),
        };
    }
    Ok(index)
}

struct Ids<'a> {
    applications: Vec<Id<'a>>,
    reviewers: Vec<Id<'a>>,
}

fn parse(text: &str) -> Result<(Problem, Ids<'_>), String> {
    let input: Input = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let Input {
        reviewers_per_application,
        max_load,
        applications,
        reviewers,
        affinity: raw_affinity,
        conflicts: raw_conflicts,
    } = input;
    // The ids' pairs become positions, and are freed before the problem is built.
    let (affinity, conflicts) = {
        let application_index = index("applications", &applications)?;
        let reviewer_index = index("reviewers", &reviewers)?;
        let find = |list: &str, item: usize, a: &Id, r: &Id| -> Result<(usize, usize), String> {
            let a = *application_index
                .get(a)
                .ok_or_else(|| format!("{list} entry {item}: application {} is not in \"applications\"", a.json()))?;
            let r = *reviewer_index
                .get(r)
                .ok_or_else(|| format!("{list} entry {item}: reviewer {} is not in \"reviewers\"", r.json()))?;
            Ok((a, r))
        };
        let mut affinity = Vec::with_capacity(raw_affinity.len());
        for (item, (a, r, score)) in raw_affinity.into_iter().enumerate() {
            let (a, r) = find("affinity", item, &a, &r)?;
            affinity.push((a, r, score));
        }
        let mut conflicts = Vec::with_capacity(raw_conflicts.len());
        for (item, (a, r)) in raw_conflicts.into_iter().enumerate() {
            conflicts.push(find("conflicts", item, &a, &r)?);
        }
        (affinity, conflicts)
    };
    let spec = ProblemSpec {
        applications: applications.iter().map(Id::json).collect(),
        reviewers: reviewers.iter().map(Id::json).collect(),
        reviewers_per_application: usize::try_from(reviewers_per_application).unwrap_or(usize::MAX),
        max_load: usize::try_from(max_load).unwrap_or(usize::MAX),
        affinity,
        conflicts,
    };
    let problem = Problem::new(spec).map_err(|error| error.to_string())?;
    Ok((problem, Ids { applications, reviewers }))
}
