//! SIREN, the 9-digit number INSEE gives each French company, its last digit a Luhn check.

use std::fmt;

/// A SIREN whose 9 digits pass the Luhn check. Typed with spaces (`732 829 320`) or without.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Siren(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SirenError {
    #[error("a SIREN has only digits (spaces allowed), this one has `{0}`")]
    NotADigit(char),
    #[error("a SIREN has 9 digits, this one has {0}")]
    Length(usize),
    #[error("this SIREN fails its check digit: a digit is probably mistyped")]
    CheckDigit,
}

impl Siren {
    pub fn parse(raw: &str) -> Result<Siren, SirenError> {
        let mut digits = String::with_capacity(9);
        for c in raw.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '\u{a0}' | '\u{202f}' => {}
                other => return Err(SirenError::NotADigit(other)),
            }
        }
        if digits.len() != 9 {
            return Err(SirenError::Length(digits.len()));
        }
        if !luhn(&digits) {
            return Err(SirenError::CheckDigit);
        }
        Ok(Siren(digits))
    }

    /// The 9 digits, no spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Siren {
    /// Grouped as INSEE writes it: `732 829 320`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", &self.0[..3], &self.0[3..6], &self.0[6..])
    }
}

/// Luhn: from the right, every second digit doubled (less 9 past 9); the sum ends in 0.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, byte)| {
            let digit = u32::from(byte - b'0');
            if i % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, SirenError>) {
        assert_eq!(Siren::parse(raw).map(|siren| siren.to_string()), expected.map(str::to_owned), "{raw:?}");
    }

    #[test]
    fn sirens() {
        check("732 829 320", Ok("732 829 320"));
        check("732829320", Ok("732 829 320"));
        check(" 552 100 554 ", Ok("552 100 554"));
        check("000000000", Ok("000 000 000"));
        check("732 829 321", Err(SirenError::CheckDigit));
        check("73282932", Err(SirenError::Length(8)));
        check("7328293200", Err(SirenError::Length(10)));
        check("", Err(SirenError::Length(0)));
        check("732-829-320", Err(SirenError::NotADigit('-')));
        check("٧٣٢٨٢٩٣٢٠", Err(SirenError::NotADigit('٧')));
    }

    #[test]
    fn messages_say_what_is_wrong() {
        assert_eq!(SirenError::Length(8).to_string(), "a SIREN has 9 digits, this one has 8");
        assert!(SirenError::CheckDigit.to_string().contains("check digit"));
    }
}
