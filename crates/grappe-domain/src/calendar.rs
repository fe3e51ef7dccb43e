//! The proleptic Gregorian calendar in UTC, by Howard Hinnant's days-from-civil algorithms:
//! dates people type (`YYYY-MM-DD`) and the Unix milliseconds the records keep.

pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The days of `month` in `year`.
pub fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(month.clamp(1, 12) - 1) as usize]
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (years 1 to 9999); none if it is not one.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let mut field = |digits: usize| {
        parts.next().filter(|part| part.len() == digits && part.bytes().all(|b| b.is_ascii_digit()))?.parse().ok()
    };
    let (year, month, day): (i64, i64, i64) = (field(4)?, field(2)?, field(2)?);
    let valid =
        (1..=9999).contains(&year) && (1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day);
    valid.then(|| days_from_civil(year, month, day))
}

/// The year (UTC) of Unix milliseconds.
pub fn year_of(unix_ms: i64) -> i64 {
    civil_from_days(unix_ms.div_euclid(DAY_MS)).0
}

/// `YYYY-MM-DD` of Unix milliseconds (UTC).
pub fn iso_date(unix_ms: i64) -> String {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(DAY_MS));
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-800_000, -1, 0, 59, 60, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(iso_date(1_798_000_000_000), "2026-12-23");
        assert_eq!(year_of(1_798_000_000_000), 2026);
    }

    #[test]
    fn typed_dates_are_checked() {
        assert_eq!(parse_date("2024-02-29"), Some(days_from_civil(2024, 2, 29)));
        for bad in ["2023-02-29", "2024-13-01", "2024-1-01", "24-01-01", "2024-01-01x", "", "2024-04-31", "0000-01-01"]
        {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}
