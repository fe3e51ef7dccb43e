//! The byte framing of models and checkpoints: an 8-byte magic naming the kind, a format
//! version, the body's length, the body, then the BLAKE3 of everything before it. A file cut
//! short, grown, or changed anywhere is refused, never half read. Shared with `grappe-lm`.

use crate::DecodeError;

const HEADER_BYTES: usize = 8 + 4 + 8;
const HASH_BYTES: usize = 32;

/// `body` framed as `magic`, version `version`.
pub fn frame(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len() + HASH_BYTES);
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(body);
    let hash = blake3::hash(&bytes);
    bytes.extend_from_slice(hash.as_bytes());
    bytes
}

/// The body of a frame of kind `magic` and version `version`, checked whole.
pub fn unframe<'a>(magic: &[u8; 8], version: u32, bytes: &'a [u8]) -> Result<&'a [u8], DecodeError> {
    if bytes.len() < HEADER_BYTES + HASH_BYTES || &bytes[..8] != magic {
        return Err(DecodeError::NotThisKind {
            kind: String::from_utf8_lossy(magic).trim_end_matches('\0').to_owned(),
        });
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if found != version {
        return Err(DecodeError::Version { found, supported: version });
    }
    let body_bytes = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let expected = (HEADER_BYTES + HASH_BYTES) as u64 + body_bytes;
    if bytes.len() as u64 != expected {
        return Err(DecodeError::Length { expected, found: bytes.len() as u64 });
    }
    let (framed, hash) = bytes.split_at(bytes.len() - HASH_BYTES);
    if blake3::hash(framed).as_bytes() != hash {
        return Err(DecodeError::Hash);
    }
    Ok(&framed[HEADER_BYTES..])
}

/// What `write` writes, framed as `magic`, version `version`.
pub fn encode(magic: &[u8; 8], version: u32, write: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut body = Writer::default();
    write(&mut body);
    frame(magic, version, &body.0)
}

/// What `read` makes of the body of a frame of kind `magic` and version `version`; the body
/// must end where `read` stops.
pub fn decode<T>(
    magic: &[u8; 8],
    version: u32,
    bytes: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut reader = Reader(unframe(magic, version, bytes)?);
    let value = read(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// Appends little-endian values.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn f64(&mut self, value: f64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.u64(value.len() as u64);
        self.0.extend_from_slice(value);
    }

    pub fn f32s(&mut self, values: &[f32]) {
        self.u64(values.len() as u64);
        self.0.reserve(values.len() * 4);
        for value in values {
            self.0.extend_from_slice(&value.to_le_bytes());
        }
    }

    pub fn f64s(&mut self, values: &[f64]) {
        self.u64(values.len() as u64);
        for value in values {
            self.f64(*value);
        }
    }
}

/// Reads what a [`Writer`] wrote; every count is checked against what is left.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, count: u64) -> Result<&'a [u8], DecodeError> {
        if count > self.0.len() as u64 {
            return Err(DecodeError::Malformed("a field runs past the end".to_owned()));
        }
        let (taken, rest) = self.0.split_at(count as usize);
        self.0 = rest;
        Ok(taken)
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let count = self.u64()?;
        self.take(count)
    }

    /// A run's fingerprint, a BLAKE3 hash.
    pub fn fingerprint(&mut self) -> Result<[u8; 32], DecodeError> {
        self.bytes()?.try_into().map_err(|_| DecodeError::Malformed("a fingerprint of the wrong size".into()))
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::Malformed("a text is not UTF-8".to_owned()))
    }

    pub fn f32s(&mut self) -> Result<Vec<f32>, DecodeError> {
        let count = self.u64()?;
        let raw = self.take(count.saturating_mul(4))?;
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    pub fn f64s(&mut self) -> Result<Vec<f64>, DecodeError> {
        let count = self.u64()?;
        let raw = self.take(count.saturating_mul(8))?;
        Ok(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    pub fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("bytes left after the last field".to_owned()))
        }
    }
}
