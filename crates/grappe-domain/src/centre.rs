//! The IA-cluster centres' training offer: programmes by level, with the places they open and the
//! students enrolled each academic year, which the programme adds up as "specialists trained",
//! from specialised technician to leading researcher.

use std::fmt;
use std::str::FromStr;

use crate::account::{InvalidInput, named_enum};

named_enum!(
    /// The levels of the seed's ambition, "du technicien spécialisé au chercheur de pointe".
    TrainingLevel, "level" {
        Technician => "technician",
        Bachelor => "bachelor",
        Master => "master",
        Engineer => "engineer",
        Phd => "phd",
        Continuing => "continuing",
    }
);

/// Academic years a training may be recorded for (the year it starts).
pub const YEARS: std::ops::RangeInclusive<i64> = 2018..=2035;
/// The most places one programme opens in a year.
pub const MAX_PLACES: i64 = 100_000;
const MAX_TITLE: usize = 200;

/// One training programme in one academic year, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Training {
    pub level: TrainingLevel,
    pub title: String,
    pub year: i64,
    pub places: i64,
    pub enrolled: i64,
}

impl Training {
    pub fn parse(level: &str, title: &str, year: i64, places: i64, enrolled: i64) -> Result<Training, InvalidInput> {
        let level: TrainingLevel = level.parse()?;
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
            return Err(InvalidInput::field("title", format!("must be 1 to {MAX_TITLE} printable characters")));
        }
        if !YEARS.contains(&year) {
            return Err(InvalidInput::field("year", format!("must be from {} to {}", YEARS.start(), YEARS.end())));
        }
        if !(0..=MAX_PLACES).contains(&places) {
            return Err(InvalidInput::field("places", format!("must be from 0 to {MAX_PLACES}")));
        }
        if !(0..=places).contains(&enrolled) {
            return Err(InvalidInput::field("enrolled", "must be from 0 to the places opened"));
        }
        Ok(Training { level, title: title.to_owned(), year, places, enrolled })
    }
}

/// A centre's public profile as its coordinators write it; partners and themes one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    pub city: String,
    pub summary_fr: String,
    pub summary_en: String,
    pub partners: Vec<String>,
    pub themes: Vec<String>,
}

const MAX_SUMMARY: usize = 2000;
const MAX_ITEMS: usize = 50;
const MAX_ITEM: usize = 200;

impl Profile {
    pub fn parse(
        city: &str,
        summary_fr: &str,
        summary_en: &str,
        partners: &[String],
        themes: &[String],
    ) -> Result<Profile, InvalidInput> {
        let line = |field: &'static str, text: &str, max: usize| {
            let text = text.trim();
            if text.chars().count() > max || text.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
                return Err(InvalidInput::field(field, format!("must be at most {max} printable characters")));
            }
            Ok(text.to_owned())
        };
        let list = |field: &'static str, items: &[String]| -> Result<Vec<String>, InvalidInput> {
            let items: Vec<&str> = items.iter().map(|item| item.trim()).filter(|item| !item.is_empty()).collect();
            if items.len() > MAX_ITEMS {
                return Err(InvalidInput::field(field, format!("at most {MAX_ITEMS}")));
            }
            items
                .into_iter()
                .map(|item| line(field, item, MAX_ITEM).map(|item| item.replace(['\n', '\r'], " ")))
                .collect()
        };
        Ok(Profile {
            city: line("city", city, MAX_ITEM)?.replace(['\n', '\r'], " "),
            summary_fr: line("summary_fr", summary_fr, MAX_SUMMARY)?,
            summary_en: line("summary_en", summary_en, MAX_SUMMARY)?,
            partners: list("partners", partners)?,
            themes: list("themes", themes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trainings_are_checked_field_by_field() {
        let ok = Training::parse("master", "  Master IA  ", 2025, 40, 38).unwrap();
        assert_eq!((ok.level, ok.title.as_str()), (TrainingLevel::Master, "Master IA"));
        let field = |result: Result<Training, InvalidInput>| match result.unwrap_err() {
            InvalidInput::Field { field, .. } => field,
        };
        assert_eq!(field(Training::parse("doctorate", "T", 2025, 1, 1)), "level");
        assert_eq!(field(Training::parse("phd", " ", 2025, 1, 1)), "title");
        assert_eq!(field(Training::parse("phd", "T", 1990, 1, 1)), "year");
        assert_eq!(field(Training::parse("phd", "T", 2025, -1, 0)), "places");
        assert_eq!(field(Training::parse("phd", "T", 2025, 10, 11)), "enrolled");
    }

    #[test]
    fn profiles_drop_empty_items_and_refuse_long_ones() {
        let profile = Profile::parse("Lille", "", "", &["Inria".into(), " ".into()], &[]).unwrap();
        assert_eq!(profile.partners, ["Inria"]);
        assert!(Profile::parse("Lille", "", "", &["x".repeat(201)], &[]).is_err());
        assert!(Profile::parse("Lille", &"x".repeat(2001), "", &[], &[]).is_err());
    }
}
