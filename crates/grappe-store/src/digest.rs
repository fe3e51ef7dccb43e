//! `Digest`: a BLAKE3 hash, the name of every chunk, file, pack and version in the store.

use std::fmt;
use std::str::FromStr;

/// A 32-byte BLAKE3 hash. Shown and parsed as 64 lowercase hexadecimal digits; a `Digest` that
/// exists was either computed or parsed from exactly that form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// Text that is not 64 lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a digest (64 lowercase hex digits): {text:?}")]
pub struct DigestParseError {
    /// The refused text, cut to 80 characters.
    pub text: String,
}

impl Digest {
    /// The BLAKE3 hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// A digest from its raw bytes (as stored in packs and indexes).
    pub fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 lowercase hex digits; anything else (upper case, spaces, other lengths) is
    /// refused, so that one digest has exactly one text form.
    pub fn parse(text: &str) -> Result<Digest, DigestParseError> {
        let refuse = || DigestParseError { text: text.chars().take(80).collect() };
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return Err(refuse());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(refuse)?;
            let low = hex_value(pair[1]).ok_or_else(refuse)?;
            out[i] = (high << 4) | low;
        }
        Ok(Digest(out))
    }

    /// The 64-digit lowercase hex form.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        for (i, byte) in self.0.iter().enumerate() {
            text[2 * i] = HEX[usize::from(byte >> 4)];
            text[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(text: &str) -> Result<Digest, DigestParseError> {
        Digest::parse(text)
    }
}

/// A streaming BLAKE3 hasher that yields a [`Digest`].
#[derive(Default, Clone)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher(blake3::Hasher::new())
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> Digest {
        Digest(*self.0.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value_and_round_trip() {
        // BLAKE3 of the empty input, from the BLAKE3 test vectors.
        let empty = Digest::of(b"");
        assert_eq!(empty.to_string(), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
        assert_eq!(Digest::parse(&empty.to_string()), Ok(empty));
        let mut hasher = Hasher::new();
        hasher.update(b"ab");
        hasher.update(b"c");
        assert_eq!(hasher.finish(), Digest::of(b"abc"));
    }

    #[test]
    fn parse_refuses_other_forms() {
        let good = Digest::of(b"x").to_string();
        for bad in
            [String::new(), good[..63].to_string(), format!("{good}0"), good.to_uppercase(), format!(" {}", &good[1..])]
        {
            assert!(Digest::parse(&bad).is_err(), "{bad:?} was accepted");
        }
    }
}
