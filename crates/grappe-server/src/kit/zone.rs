//! The platform's time zone, for the dates people read on its pages (files and the API keep UTC,
//! in ISO 8601). UTC, or a European zone under the EU's summer time: from 01:00 UTC on the last
//! Sunday of March to 01:00 UTC on the last Sunday of October, one hour ahead of its standard
//! time (Directive 2000/84/EC). That covers the zones of the EU and its neighbours whose rules
//! have not changed since 1996; no tz database is shipped for them. Set once at start
//! (`GRAPPE_TIME_ZONE`, `Europe/Paris` by default).

use std::sync::OnceLock;

use grappe_domain::calendar::days_from_civil;

/// A zone: its name, its standard offset from UTC in minutes, and its abbreviations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Zone {
    pub name: &'static str,
    standard_offset_min: i64,
    standard: &'static str,
    /// `None`: no summer time (UTC).
    summer: Option<&'static str>,
}

const fn european(name: &'static str, offset: i64, standard: &'static str, summer: &'static str) -> Zone {
    Zone { name, standard_offset_min: offset, standard, summer: Some(summer) }
}

/// The zones taken, by name.
const ZONES: [Zone; 24] = [
    Zone { name: "UTC", standard_offset_min: 0, standard: "UTC", summer: None },
    european("Europe/London", 0, "GMT", "BST"),
    european("Europe/Dublin", 0, "GMT", "IST"),
    european("Europe/Lisbon", 0, "WET", "WEST"),
    european("Europe/Paris", 60, "CET", "CEST"),
    european("Europe/Brussels", 60, "CET", "CEST"),
    european("Europe/Luxembourg", 60, "CET", "CEST"),
    european("Europe/Amsterdam", 60, "CET", "CEST"),
    european("Europe/Berlin", 60, "CET", "CEST"),
    european("Europe/Zurich", 60, "CET", "CEST"),
    european("Europe/Vienna", 60, "CET", "CEST"),
    european("Europe/Rome", 60, "CET", "CEST"),
    european("Europe/Madrid", 60, "CET", "CEST"),
    european("Europe/Copenhagen", 60, "CET", "CEST"),
    european("Europe/Stockholm", 60, "CET", "CEST"),
    european("Europe/Oslo", 60, "CET", "CEST"),
    european("Europe/Prague", 60, "CET", "CEST"),
    european("Europe/Warsaw", 60, "CET", "CEST"),
    european("Europe/Budapest", 60, "CET", "CEST"),
    european("Europe/Helsinki", 120, "EET", "EEST"),
    european("Europe/Athens", 120, "EET", "EEST"),
    european("Europe/Bucharest", 120, "EET", "EEST"),
    european("Europe/Sofia", 120, "EET", "EEST"),
    european("Europe/Tallinn", 120, "EET", "EEST"),
];

pub const DEFAULT_ZONE: &str = "Europe/Paris";

static ZONE: OnceLock<Zone> = OnceLock::new();

impl Zone {
    pub fn parse(name: &str) -> Result<Zone, String> {
        ZONES.iter().find(|zone| zone.name == name).copied().ok_or_else(|| {
            let names: Vec<&str> = ZONES.iter().map(|zone| zone.name).collect();
            format!("time zone `{name}`: one of {}", names.join(", "))
        })
    }

    /// The offset from UTC (minutes) and the abbreviation in force at `unix_ms`.
    pub fn at(self, unix_ms: i64) -> (i64, &'static str) {
        match self.summer {
            Some(summer) if in_eu_summer(unix_ms) => (self.standard_offset_min + 60, summer),
            _ => (self.standard_offset_min, self.standard),
        }
    }
}

/// The platform's zone: set once at start; UTC if never set (tests of pure code).
pub fn set(zone: Zone) {
    let _ = ZONE.set(zone);
}

pub fn current() -> Zone {
    ZONE.get().copied().unwrap_or(ZONES[0])
}

/// 01:00 UTC on the last Sunday of `month` (31 days: March or October) of `year`, in ms.
fn last_sunday_1am(year: i64, month: i64) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday: day 0 has weekday 4 (Sunday 0).
    let sunday = last - (last + 4).rem_euclid(7);
    sunday * 86_400_000 + 3_600_000
}

fn in_eu_summer(unix_ms: i64) -> bool {
    let year = grappe_domain::calendar::year_of(unix_ms);
    (last_sunday_1am(year, 3)..last_sunday_1am(year, 10)).contains(&unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn summer_time_starts_and_ends_on_the_last_sundays_at_one_utc() {
        let paris = Zone::parse("Europe/Paris").unwrap();
        // 2026: 29 March and 25 October.
        let start = days_from_civil(2026, 3, 29) * 86_400_000 + HOUR;
        let end = days_from_civil(2026, 10, 25) * 86_400_000 + HOUR;
        assert_eq!(paris.at(start - 1), (60, "CET"));
        assert_eq!(paris.at(start), (120, "CEST"));
        assert_eq!(paris.at(end - 1), (120, "CEST"));
        assert_eq!(paris.at(end), (60, "CET"));
        let london = Zone::parse("Europe/London").unwrap();
        assert_eq!(london.at(start), (60, "BST"));
        assert_eq!(Zone::parse("UTC").unwrap().at(start), (0, "UTC"));
        assert!(Zone::parse("America/New_York").unwrap_err().contains("Europe/Paris"));
    }

    #[test]
    fn the_last_sunday_of_march_2027_is_the_28th() {
        assert_eq!(last_sunday_1am(2027, 3), days_from_civil(2027, 3, 28) * 86_400_000 + HOUR);
    }
}
