//! Money in integer euro cents. Never floats.

use std::fmt;

/// An amount of euros, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cents(i64);

impl Cents {
    pub const ZERO: Cents = Cents(0);

    pub const fn new(cents: i64) -> Cents {
        Cents(cents)
    }

    /// Whole euros to cents; `const` so budget tables read as the seed writes them.
    pub const fn from_euros(euros: i64) -> Cents {
        Cents(euros * 100)
    }

    pub const fn from_million_euros(millions: i64) -> Cents {
        Cents::from_euros(millions * 1_000_000)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// This amount as a share of `whole`, in [0, 1]; zero when `whole` is zero.
    pub fn ratio_of(self, whole: Cents) -> f64 {
        if whole.0 <= 0 {
            return 0.0;
        }
        (self.0 as f64 / whole.0 as f64).clamp(0.0, 1.0)
    }
}

/// A short human figure in the French way, `1,5 Md€`, `506 M€`, `25 000 €`, with a no-break
/// space before the unit; the decimal separator is the caller's (`,` in French, `.` in English).
pub fn format_short(amount: Cents, decimal_separator: char) -> String {
    let euros = amount.0 / 100;
    let (value, unit) = if euros.abs() >= 1_000_000_000 {
        (euros as f64 / 1e9, "bn\u{a0}€")
    } else if euros.abs() >= 1_000_000 {
        (euros as f64 / 1e6, "M€")
    } else {
        let grouping = if decimal_separator == ',' { '\u{202f}' } else { ',' };
        return format!("{}\u{a0}€", group_thousands(euros, grouping));
    };
    let unit = if decimal_separator == ',' && unit == "bn\u{a0}€" { "Md€" } else { unit };
    let text = if (value - value.round()).abs() < 0.005 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}").replace('.', &decimal_separator.to_string())
    };
    format!("{text}\u{a0}{unit}")
}

/// An integer with its thousands grouped by `separator` (French: a narrow no-break space;
/// English: a comma).
pub fn group_thousands(value: i64, separator: char) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(separator);
        }
        grouped.push(digit);
    }
    if value < 0 { format!("-{grouped}") } else { grouped }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02} EUR", self.0 / 100, (self.0 % 100).abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cents: Cents, separator: char, expected: &str) {
        assert_eq!(format_short(cents, separator), expected);
    }

    #[test]
    fn short_figures_read_as_people_write_them() {
        // A no-break space before the unit: a figure never leaves its unit at a line's end.
        check(Cents::from_million_euros(500), ',', "500\u{a0}M€");
        check(Cents::from_million_euros(1_500), ',', "1,5\u{a0}Md€");
        check(Cents::from_million_euros(1_500), '.', "1.5\u{a0}bn\u{a0}€");
        check(Cents::from_million_euros(2_200), '.', "2.2\u{a0}bn\u{a0}€");
        check(Cents::from_euros(25_000), ',', "25\u{202f}000\u{a0}€");
        check(Cents::from_euros(25_000), '.', "25,000\u{a0}€");
        check(Cents::ZERO, ',', "0\u{a0}€");
    }

    #[test]
    fn ratio_is_bounded() {
        let whole = Cents::from_euros(100);
        assert_eq!(Cents::from_euros(50).ratio_of(whole), 0.5);
        assert_eq!(Cents::from_euros(500).ratio_of(whole), 1.0);
        assert_eq!(Cents::from_euros(5).ratio_of(Cents::ZERO), 0.0);
    }
}
