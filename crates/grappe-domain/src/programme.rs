//! The programme: its instruments, their budget lines and its headline figures, as a file
//! (TOML, `programmes/france-2030-ia.toml` for France 2030's AI plan) that an operator loads and
//! updates. Amounts are whole euros in the file and cents everywhere else; what is committed
//! and disbursed never comes from the file but from the records of decisions and payments.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::money::Cents;

/// The Grappe module that runs an instrument; its page lives at `/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    Calls,
    Compute,
    Data,
    Models,
    /// AI as a service: the OpenAI-compatible gateway.
    Ai,
    Challenges,
    Booster,
}

impl Module {
    pub const ALL: [Module; 7] =
        [Module::Calls, Module::Compute, Module::Data, Module::Models, Module::Ai, Module::Challenges, Module::Booster];

    pub fn path(self) -> &'static str {
        match self {
            Module::Calls => "calls",
            Module::Compute => "compute",
            Module::Data => "data",
            Module::Models => "models",
            Module::Ai => "ai",
            Module::Challenges => "challenges",
            Module::Booster => "booster",
        }
    }

    pub fn parse(path: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|module| module.path() == path)
    }
}

/// France 2030's AI plan as the announcement states it (`shared/seed`), shipped with Grappe.
pub const FRANCE_2030_IA: &str = include_str!("../../../programmes/france-2030-ia.toml");

/// A text in French and in English; both are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub fr: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub code: String,
    pub name: Text,
    /// Where the figures come from (an announcement, a decree).
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetLine {
    pub code: String,
    pub label: Text,
    pub envelope_eur: i64,
}

impl BudgetLine {
    pub fn envelope(&self) -> Cents {
        Cents::from_euros(self.envelope_eur)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    pub code: String,
    /// The module that runs it (`calls`, `compute`, `data`, `models`, `ai`, `challenges`, `booster`).
    pub module: String,
    pub name: Text,
    pub summary: Text,
    #[serde(default)]
    pub budget_lines: Vec<BudgetLine>,
}

/// A headline figure of the programme that is not a budget line of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kpi {
    pub code: String,
    pub label: Text,
    pub value: i64,
    /// `eur` (whole euros, kept in cents) or the noun of what is counted (`centres`).
    pub unit: String,
    /// The source says "près de" (nearly): the figure is approximate.
    #[serde(default)]
    pub approximate: bool,
    /// The words of the source the figure comes from.
    #[serde(default)]
    pub source: String,
}

impl Kpi {
    /// The stored value and unit: euros become cents (`cents`), counts stay as they are.
    pub fn stored(&self) -> (i64, &str) {
        if self.unit == "eur" { (Cents::from_euros(self.value).get(), "cents") } else { (self.value, &self.unit) }
    }
}

/// A programme as its file describes it, checked: every code unique and well-formed, every text
/// in both languages, every amount within bounds, every module known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Programme {
    pub programme: Header,
    #[serde(default)]
    pub instruments: Vec<Instrument>,
    #[serde(default)]
    pub kpis: Vec<Kpi>,
}

/// Why a programme file was refused; the message names the place (`instruments[2].code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProgrammeError(pub String);

/// The largest envelope a line may state: a thousand billion euros (cents stay far from
/// `i64::MAX` once lines are summed).
pub const MAX_ENVELOPE_EUR: i64 = 1_000_000_000_000;
const MAX_TEXT: usize = 400;
const MAX_ITEMS: usize = 200;

impl Programme {
    /// Reads and checks a TOML programme file.
    pub fn from_toml(text: &str) -> Result<Programme, ProgrammeError> {
        let programme: Programme =
            toml::from_str(text).map_err(|error| ProgrammeError(format!("not a valid programme file: {error}")))?;
        programme.check()?;
        Ok(programme)
    }

    /// France 2030's AI plan, as shipped.
    pub fn france_2030() -> Programme {
        Programme::from_toml(FRANCE_2030_IA).expect("the shipped programme file is checked by a test")
    }

    /// Checks what serde cannot: codes, texts, amounts, modules, sizes.
    pub fn check(&self) -> Result<(), ProgrammeError> {
        let fail = |at: String, problem: &str| Err(ProgrammeError(format!("{at}: {problem}")));
        check_code("programme.code", &self.programme.code)?;
        check_text("programme.name", &self.programme.name)?;
        if self.instruments.len() > MAX_ITEMS || self.kpis.len() > MAX_ITEMS {
            return fail("programme".into(), &format!("at most {MAX_ITEMS} instruments and {MAX_ITEMS} figures"));
        }
        let mut instrument_codes = HashSet::new();
        let mut line_codes = HashSet::new();
        for (i, instrument) in self.instruments.iter().enumerate() {
            let at = format!("instruments[{i}]");
            check_code(&format!("{at}.code"), &instrument.code)?;
            if !instrument_codes.insert(instrument.code.as_str()) {
                return fail(format!("{at}.code"), &format!("`{}` is used by two instruments", instrument.code));
            }
            if Module::parse(&instrument.module).is_none() {
                let known: Vec<&str> = Module::ALL.iter().map(|m| m.path()).collect();
                return fail(
                    format!("{at}.module"),
                    &format!("`{}` is not a module; one of: {}", instrument.module, known.join(", ")),
                );
            }
            check_text(&format!("{at}.name"), &instrument.name)?;
            check_text(&format!("{at}.summary"), &instrument.summary)?;
            for (l, line) in instrument.budget_lines.iter().enumerate() {
                let at = format!("{at}.budget_lines[{l}]");
                check_code(&format!("{at}.code"), &line.code)?;
                if !line_codes.insert(line.code.as_str()) {
                    return fail(format!("{at}.code"), &format!("`{}` is used by two budget lines", line.code));
                }
                check_text(&format!("{at}.label"), &line.label)?;
                if !(0..=MAX_ENVELOPE_EUR).contains(&line.envelope_eur) {
                    return fail(
                        format!("{at}.envelope_eur"),
                        &format!("must be between 0 and {MAX_ENVELOPE_EUR} euros"),
                    );
                }
            }
        }
        let mut kpi_codes = HashSet::new();
        for (k, kpi) in self.kpis.iter().enumerate() {
            let at = format!("kpis[{k}]");
            check_code(&format!("{at}.code"), &kpi.code)?;
            if !kpi_codes.insert(kpi.code.as_str()) {
                return fail(format!("{at}.code"), &format!("`{}` is used by two figures", kpi.code));
            }
            check_text(&format!("{at}.label"), &kpi.label)?;
            check_code(&format!("{at}.unit"), &kpi.unit)?;
            if !(0..=MAX_ENVELOPE_EUR).contains(&kpi.value) {
                return fail(format!("{at}.value"), &format!("must be between 0 and {MAX_ENVELOPE_EUR}"));
            }
            if kpi.source.chars().count() > MAX_TEXT {
                return fail(format!("{at}.source"), &format!("is longer than {MAX_TEXT} characters"));
            }
        }
        Ok(())
    }
}

/// A code: 1 to 64 lower-case ASCII letters, digits, `_` or `-`, starting with a letter.
fn check_code(at: &str, code: &str) -> Result<(), ProgrammeError> {
    let well_formed = code.len() <= 64
        && code.starts_with(|c: char| c.is_ascii_lowercase())
        && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if well_formed {
        Ok(())
    } else {
        Err(ProgrammeError(format!(
            "{at}: `{code}` is not a code (1 to 64 of a-z, 0-9, `_`, `-`, starting with a letter)"
        )))
    }
}

fn check_text(at: &str, text: &Text) -> Result<(), ProgrammeError> {
    for (language, value) in [("fr", &text.fr), ("en", &text.en)] {
        if value.trim().is_empty() {
            return Err(ProgrammeError(format!("{at}.{language}: is empty")));
        }
        if value.chars().count() > MAX_TEXT {
            return Err(ProgrammeError(format!("{at}.{language}: is longer than {MAX_TEXT} characters")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(code: &str) -> i64 {
        let programme = Programme::france_2030();
        let mut lines = programme.instruments.iter().flat_map(|i| i.budget_lines.iter());
        lines.find(|l| l.code == code).map(|l| l.envelope().get()).unwrap()
    }

    #[test]
    fn the_shipped_file_has_the_seed_figures_in_cents() {
        assert_eq!(envelope("ia_cluster"), 50_000_000_000);
        assert_eq!(envelope("open_datasets"), 4_000_000_000);
        assert_eq!(envelope("ia_booster"), 2_500_000_000);
        assert_eq!(envelope("strategy_public"), 150_000_000_000);
        assert_eq!(envelope("strategy_private"), 50_600_000_000);
        let programme = Programme::france_2030();
        let total = programme.kpis.iter().find(|k| k.code == "strategy_total").unwrap();
        assert_eq!(total.stored(), (220_000_000_000, "cents"));
        assert!(total.approximate);
        for module in Module::ALL {
            assert_eq!(Module::parse(module.path()), Some(module));
        }
    }

    fn refused(text: &str) -> String {
        Programme::from_toml(text).unwrap_err().0
    }

    const HEADER: &str = "[programme]\ncode = \"p\"\nname = { fr = \"P\", en = \"P\" }\n";

    #[test]
    fn bad_files_are_refused_with_the_place_named() {
        assert!(refused("nonsense = ").starts_with("not a valid programme file"));
        assert!(refused("[programme]\ncode = \"p\"\n").contains("missing field `name`"));
        let unknown = format!("{HEADER}colour = 3\n");
        assert!(refused(&unknown).contains("unknown field `colour`"), "{}", refused(&unknown));
        let instrument = |extra: &str| {
            format!(
                "{HEADER}[[instruments]]\ncode = \"a\"\nmodule = \"calls\"\nname = {{ fr = \"A\", en = \"A\" }}\n\
                 summary = {{ fr = \"S\", en = \"S\" }}\n{extra}"
            )
        };
        assert_eq!(Programme::from_toml(&instrument("")).unwrap().instruments.len(), 1);
        let twice = format!("{}{}", instrument(""), &instrument("")[HEADER.len()..]);
        assert_eq!(refused(&twice), "instruments[1].code: `a` is used by two instruments");
        assert!(refused(&instrument("").replace("calls", "bank")).starts_with("instruments[0].module: `bank`"));
        assert_eq!(refused(&instrument("").replace("fr = \"S\"", "fr = \" \"")), "instruments[0].summary.fr: is empty");
        let line = |eur: &str| {
            instrument(&format!(
                "budget_lines = [{{ code = \"l\", label = {{ fr = \"L\", en = \"L\" }}, envelope_eur = {eur} }}]\n"
            ))
        };
        assert_eq!(
            Programme::from_toml(&line("25_000_000")).unwrap().instruments[0].budget_lines[0].envelope_eur,
            25_000_000
        );
        assert!(refused(&line("-1")).starts_with("instruments[0].budget_lines[0].envelope_eur: must be between"));
        assert!(refused(&line("9223372036854775807")).contains("envelope_eur: must be between"));
        assert!(refused(&line("1.5")).starts_with("not a valid programme file"));
        assert!(refused(&line("1").replace("code = \"l\"", "code = \"L l\"")).contains("is not a code"));
    }
}
