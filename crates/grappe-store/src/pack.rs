//! Packs: chunks appended into blobs of tens of MiB, each with an index blob.
//!
//! ## Pack format (`packs/<id>.pack`)
//!
//! ```text
//! pack  := "GRPACK01" entry*
//! entry := digest[32] flags:u8 stored_len:u32le raw_len:u32le stored[stored_len]
//! ```
//!
//! `digest` is the BLAKE3 of the chunk's raw bytes; `flags` bit 0 says that `stored` is a zstd
//! frame of the raw bytes (otherwise `stored` is the raw bytes). A pack is self-describing: its
//! index could be rebuilt from it alone.
//!
//! ## Index format (`index/<id>.idx`)
//!
//! ```text
//! index := "GRINDX01" count:u32le item*
//! item  := digest[32] offset:u64le stored_len:u32le raw_len:u32le flags:u8 stored_digest[32]
//! ```
//!
//! `offset` is where the entry (its header) starts in the pack. `stored_digest` is the BLAKE3 of
//! the stored bytes (the same as `digest` for a raw chunk): a compressed chunk's frame is checked
//! before it is decompressed, so that even a flipped bit that zstd ignores (its frame header has
//! an unused bit) is found. The pack's id is the BLAKE3 of
//! its index bytes, so an index is checked by its own name, and the same chunks packed the same
//! way get the same id (a repeated write is harmless).
//!
//! Both sides of the edge are checked: the writer hashes each chunk (its digest *is* the hash);
//! the reader checks the entry header against the index, decompresses into at most `raw_len`
//! bytes, and re-hashes. A mismatch is a [`ChunkDamage`], never bytes.

use crate::Digest;

pub const PACK_MAGIC: &[u8; 8] = b"GRPACK01";
pub const INDEX_MAGIC: &[u8; 8] = b"GRINDX01";
pub const ENTRY_HEADER_BYTES: usize = 32 + 1 + 4 + 4;
const INDEX_ITEM_BYTES: usize = 32 + 8 + 4 + 4 + 1 + 32;
const FLAG_ZSTD: u8 = 1;

/// How chunks are stored.
///
/// The default is zstd level 1. Measured on one core of the development VM, 64 KiB chunks of
/// the benchmark's data (`cargo bench -p grappe-store --bench probe -- zstd`): text 302 MiB/s
/// at level 1 (size ratio 0.46) against 198 MiB/s at level 3 (0.42); CSV 350 MiB/s (0.36)
/// against 208 MiB/s (0.38); random bytes 5,090 against 4,159 MiB/s, kept raw either way. Level
/// 3 saves a few percent more on text and costs half again the ingest time, which on two cores
/// is what keeps ingest near `cp`'s speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// zstd at this level, per chunk; a chunk is kept raw unless its frame is at most 31/32 of
    /// its size (random bytes, already-compressed formats).
    Zstd {
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Compression {
        Compression::Zstd { level: 1 }
    }
}

/// One chunk in a pack, as the index describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub digest: Digest,
    /// Where the entry's header starts in the pack.
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub compressed: bool,
    /// BLAKE3 of the stored bytes (`digest` itself when not compressed).
    pub stored_digest: Digest,
}

impl IndexEntry {
    /// Bytes of the entry in the pack, header included.
    pub fn entry_bytes(&self) -> usize {
        ENTRY_HEADER_BYTES + self.stored_len as usize
    }
}

/// A chunk ready to be appended: hashed and, if it helped, compressed.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    pub digest: Digest,
    pub raw_len: u32,
    pub compressed: bool,
    pub stored: Vec<u8>,
    pub stored_digest: Digest,
}

impl SealedChunk {
    /// Hashes and compresses `raw` (at most 4 GiB - 1; chunks are far smaller).
    pub fn seal(raw: &[u8], compression: Compression) -> SealedChunk {
        SealedChunk::seal_with_digest(Digest::of(raw), raw, compression)
    }

    /// Compresses `raw`, whose digest the caller has just computed from these very bytes.
    pub fn seal_with_digest(digest: Digest, raw: &[u8], compression: Compression) -> SealedChunk {
        let raw_len = raw.len() as u32;
        match compress(raw, compression) {
            Some(frame) => {
                SealedChunk { digest, raw_len, compressed: true, stored: frame.bytes, stored_digest: frame.digest }
            }
            None => SealedChunk { digest, raw_len, compressed: false, stored: raw.to_vec(), stored_digest: digest },
        }
    }
}

/// A chunk's zstd frame and its hash.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

thread_local! {
    /// One zstd context per thread and level, reused from chunk to chunk.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The zstd frame of `raw`, if compression is on and the frame is at most 31/32 of the raw size.
pub fn compress(raw: &[u8], compression: Compression) -> Option<Frame> {
    let Compression::Zstd { level } = compression else { return None };
    let frame = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(cached, _)| *cached != level) {
            *cell = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        cell.as_mut()?.1.compress(raw).ok()
    })?;
    if frame.len() > raw.len() - raw.len() / 32 {
        return None;
    }
    Some(Frame { digest: Digest::of(&frame), bytes: frame })
}

/// Builds one pack in memory (bounded by the target size plus one chunk).
#[derive(Debug)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<IndexEntry>,
}

/// A finished pack: its id, its bytes and its index bytes.
#[derive(Debug)]
pub struct FinishedPack {
    pub id: Digest,
    pub bytes: Vec<u8>,
    pub index: Vec<u8>,
    pub entries: Vec<IndexEntry>,
}

impl Default for PackBuilder {
    fn default() -> PackBuilder {
        PackBuilder::new()
    }
}

impl PackBuilder {
    pub fn new() -> PackBuilder {
        PackBuilder::with_buffer(Vec::new())
    }

    /// A builder that reuses `buffer`'s memory (a written pack's bytes).
    pub fn with_buffer(mut buffer: Vec<u8>) -> PackBuilder {
        buffer.clear();
        buffer.extend_from_slice(PACK_MAGIC);
        PackBuilder { bytes: buffer, entries: Vec::new() }
    }

    pub fn push(&mut self, chunk: &SealedChunk) {
        let frame = chunk.compressed.then_some((chunk.stored.as_slice(), chunk.stored_digest));
        self.append(chunk.digest, chunk.raw_len, &chunk.stored, frame);
    }

    /// Appends a chunk straight from its raw bytes, or its frame when `frame` is given.
    pub fn push_parts(&mut self, digest: Digest, raw: &[u8], frame: Option<&Frame>) {
        let raw_len = raw.len() as u32;
        match frame {
            Some(frame) => self.append(digest, raw_len, &frame.bytes, Some((&frame.bytes, frame.digest))),
            None => self.append(digest, raw_len, raw, None),
        }
    }

    fn append(&mut self, digest: Digest, raw_len: u32, stored: &[u8], frame: Option<(&[u8], Digest)>) {
        let offset = self.bytes.len() as u64;
        let compressed = frame.is_some();
        self.bytes.extend_from_slice(digest.as_bytes());
        self.bytes.push(if compressed { FLAG_ZSTD } else { 0 });
        self.bytes.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&raw_len.to_le_bytes());
        self.bytes.extend_from_slice(stored);
        self.entries.push(IndexEntry {
            digest,
            offset,
            stored_len: stored.len() as u32,
            raw_len,
            compressed,
            stored_digest: frame.map_or(digest, |(_, stored_digest)| stored_digest),
        });
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn finish(self) -> FinishedPack {
        let index = encode_index(&self.entries);
        FinishedPack { id: Digest::of(&index), bytes: self.bytes, index, entries: self.entries }
    }
}

pub fn pack_key(id: &Digest) -> String {
    format!("packs/{id}.pack")
}

pub fn index_key(id: &Digest) -> String {
    format!("index/{id}.idx")
}

/// The pack id named by a `packs/<id>.pack` or `index/<id>.idx` key.
pub fn id_from_key(key: &str) -> Option<Digest> {
    let name = key.strip_prefix("packs/").and_then(|k| k.strip_suffix(".pack"));
    let name = name.or_else(|| key.strip_prefix("index/").and_then(|k| k.strip_suffix(".idx")))?;
    Digest::parse(name).ok()
}

fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + entries.len() * INDEX_ITEM_BYTES);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for entry in entries {
        out.extend_from_slice(entry.digest.as_bytes());
        out.extend_from_slice(&entry.offset.to_le_bytes());
        out.extend_from_slice(&entry.stored_len.to_le_bytes());
        out.extend_from_slice(&entry.raw_len.to_le_bytes());
        out.push(if entry.compressed { FLAG_ZSTD } else { 0 });
        out.extend_from_slice(entry.stored_digest.as_bytes());
    }
    out
}

/// An index blob that does not parse, or whose hash is not its pack's id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index of pack {pack} is damaged: {reason}")]
pub struct IndexDamage {
    pub pack: Digest,
    pub reason: String,
}

/// Parses and checks an index blob against the pack id it is stored under.
pub fn parse_index(pack: Digest, bytes: &[u8]) -> Result<Vec<IndexEntry>, IndexDamage> {
    let damage = |reason: String| IndexDamage { pack, reason };
    if Digest::of(bytes) != pack {
        return Err(damage("its hash is not the pack's id".into()));
    }
    if bytes.len() < 12 || &bytes[..8] != INDEX_MAGIC {
        return Err(damage("bad header".into()));
    }
    let count = u32_at(bytes, 8) as usize;
    if bytes.len() != 12 + count * INDEX_ITEM_BYTES {
        return Err(damage(format!("{} bytes for {count} entries", bytes.len())));
    }
    let mut entries = Vec::with_capacity(count);
    for item in bytes[12..].chunks_exact(INDEX_ITEM_BYTES) {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&item[..32]);
        let flags = item[48];
        let mut stored_digest = [0u8; 32];
        stored_digest.copy_from_slice(&item[49..81]);
        if flags & !FLAG_ZSTD != 0 {
            return Err(damage(format!("unknown flags {flags:#x}")));
        }
        entries.push(IndexEntry {
            digest: Digest::from_bytes(digest),
            offset: u64_at(item, 32),
            stored_len: u32_at(item, 40),
            raw_len: u32_at(item, 44),
            compressed: flags & FLAG_ZSTD != 0,
            stored_digest: Digest::from_bytes(stored_digest),
        });
    }
    Ok(entries)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Why a chunk read from a pack was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkDamage {
    #[error("entry header does not match the index")]
    HeaderMismatch,
    #[error("compressed bytes hash to {actual}")]
    StoredHash { actual: Digest },
    #[error("cannot decompress: {0}")]
    Decompress(String),
    #[error("{actual} bytes after decompression, {expected} expected")]
    Length { expected: u32, actual: usize },
    #[error("content hashes to {actual}")]
    Hash { actual: Digest },
}

/// Checks and decodes one entry (`bytes` = header and stored bytes, as the index locates them)
/// into the chunk's raw bytes.
pub fn decode_entry(entry: &IndexEntry, bytes: &[u8]) -> Result<Vec<u8>, ChunkDamage> {
    if bytes.len() != entry.entry_bytes()
        || bytes[..32] != *entry.digest.as_bytes()
        || bytes[32] != if entry.compressed { FLAG_ZSTD } else { 0 }
        || u32_at(bytes, 33) != entry.stored_len
        || u32_at(bytes, 37) != entry.raw_len
    {
        return Err(ChunkDamage::HeaderMismatch);
    }
    let stored = &bytes[ENTRY_HEADER_BYTES..];
    let raw = if entry.compressed {
        let actual = Digest::of(stored);
        if actual != entry.stored_digest {
            return Err(ChunkDamage::StoredHash { actual });
        }
        zstd::bulk::decompress(stored, entry.raw_len as usize)
            .map_err(|error| ChunkDamage::Decompress(error.to_string()))?
    } else {
        stored.to_vec()
    };
    if raw.len() != entry.raw_len as usize {
        return Err(ChunkDamage::Length { expected: entry.raw_len, actual: raw.len() });
    }
    let actual = Digest::of(&raw);
    if actual != entry.digest {
        return Err(ChunkDamage::Hash { actual });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;

    fn sample_pack() -> (FinishedPack, Vec<Vec<u8>>) {
        let mut rng = Rng::new(5);
        let chunks =
            vec![b"text text text text text text text text text text text text".repeat(100), rng.bytes(5000), vec![]];
        let mut builder = PackBuilder::new();
        for chunk in &chunks {
            builder.push(&SealedChunk::seal(chunk, Compression::default()));
        }
        (builder.finish(), chunks)
    }

    #[test]
    fn round_trip_with_and_without_compression() {
        let (pack, chunks) = sample_pack();
        let entries = parse_index(pack.id, &pack.index).expect("index");
        assert_eq!(entries, pack.entries);
        assert_eq!(entries.iter().map(|e| e.compressed).collect::<Vec<_>>(), [true, false, false]);
        for (entry, chunk) in entries.iter().zip(&chunks) {
            let at = entry.offset as usize;
            assert_eq!(&decode_entry(entry, &pack.bytes[at..at + entry.entry_bytes()]).expect("decode"), chunk);
        }
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let (pack, _) = sample_pack();
        for entry in &pack.entries {
            let at = entry.offset as usize;
            for i in 0..entry.entry_bytes() {
                let mut bytes = pack.bytes[at..at + entry.entry_bytes()].to_vec();
                bytes[i] ^= 0x10;
                assert!(decode_entry(entry, &bytes).is_err(), "flip at {i} of entry at {at} was accepted");
            }
        }
    }

    #[test]
    fn a_damaged_index_is_refused() {
        let (pack, _) = sample_pack();
        let mut index = pack.index.clone();
        index[20] ^= 1;
        assert!(parse_index(pack.id, &index).is_err());
        assert!(parse_index(pack.id, &pack.index[..pack.index.len() - 1]).is_err());
    }
}
