//! Text to a sparse vector: NFKC and lowercase, words (runs of letters and digits), word n-grams
//! and character n-grams of each word padded as `<word>`, each hashed (FNV-1a, then SplitMix64's
//! finaliser) into `2^buckets_log2` buckets with a sign from the hash's top bit, so that
//! collisions cancel on average instead of piling up; counts made sublinear (`1 + ln tf`), then
//! the vector scaled to unit length; then weighed by the training set's inverse document
//! frequencies ([`idf`], [`weigh`]) and scaled to unit length again.

use unicode_normalization::UnicodeNormalization;

use crate::rng::mix64;

/// What features a text gives. Part of a model: the same text must give the same features when
/// the model is trained and when it predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureConfig {
    /// Buckets: `2^buckets_log2`, from 10 to 24.
    pub buckets_log2: u32,
    /// Word n-grams from 1 to this (0: none).
    pub word_ngrams_max: u32,
    /// Character n-grams from `char_ngrams_min` to `char_ngrams_max` (0: none).
    pub char_ngrams_min: u32,
    pub char_ngrams_max: u32,
}

impl FeatureConfig {
    pub const DEFAULT: FeatureConfig =
        FeatureConfig { buckets_log2: 20, word_ngrams_max: 2, char_ngrams_min: 3, char_ngrams_max: 5 };
    pub const MIN_BUCKETS_LOG2: u32 = 10;
    pub const MAX_BUCKETS_LOG2: u32 = 24;
    /// The longest n-gram, words or characters: longer ones say little and cost much.
    pub const MAX_NGRAM: u32 = 8;

    pub fn buckets(&self) -> usize {
        1 << self.buckets_log2
    }

    /// Why this configuration cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(Self::MIN_BUCKETS_LOG2..=Self::MAX_BUCKETS_LOG2).contains(&self.buckets_log2) {
            return Err(format!(
                "buckets_log2 must be from {} to {}, not {}",
                Self::MIN_BUCKETS_LOG2,
                Self::MAX_BUCKETS_LOG2,
                self.buckets_log2
            ));
        }
        if self.word_ngrams_max > Self::MAX_NGRAM || self.char_ngrams_max > Self::MAX_NGRAM {
            return Err(format!("n-grams are at most {} long", Self::MAX_NGRAM));
        }
        if self.char_ngrams_max > 0 && !(1..=self.char_ngrams_max).contains(&self.char_ngrams_min) {
            return Err("character n-grams need 1 <= min <= max".to_owned());
        }
        if self.word_ngrams_max == 0 && self.char_ngrams_max == 0 {
            return Err("no features: word or character n-grams are needed".to_owned());
        }
        Ok(())
    }
}

/// A sparse vector: bucket indices, increasing and distinct, with their values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

/// The features of one text.
pub fn featurize(text: &str, config: &FeatureConfig) -> SparseVector {
    let normalized: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let words: Vec<&str> = normalized.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let mask = (config.buckets() - 1) as u64;
    let mut hits: Vec<(u32, f32)> = Vec::new();
    let mut add = |hash: u64| {
        let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
        hits.push(((hash & mask) as u32, sign));
    };
    for n in 1..=config.word_ngrams_max as usize {
        for gram in words.windows(n) {
            let mut hash = Fnv::new(b'w');
            for (i, word) in gram.iter().enumerate() {
                if i > 0 {
                    hash.write(b" ");
                }
                hash.write(word.as_bytes());
            }
            add(hash.finish());
        }
    }
    if config.char_ngrams_max > 0 {
        let mut chars: Vec<char> = Vec::new();
        for word in &words {
            chars.clear();
            chars.push('<');
            chars.extend(word.chars());
            chars.push('>');
            for n in config.char_ngrams_min as usize..=config.char_ngrams_max as usize {
                for gram in chars.windows(n) {
                    let mut hash = Fnv::new(b'c');
                    let mut utf8 = [0; 4];
                    for c in gram {
                        hash.write(c.encode_utf8(&mut utf8).as_bytes());
                    }
                    add(hash.finish());
                }
            }
        }
    }
    hits.sort_unstable_by_key(|&(index, _)| index);
    let mut vector = SparseVector::default();
    for (index, sign) in hits {
        if vector.indices.last() == Some(&index) {
            *vector.values.last_mut().expect("a value beside each index") += sign;
        } else {
            vector.indices.push(index);
            vector.values.push(sign);
        }
    }
    for value in &mut vector.values {
        *value = if *value == 0.0 { 0.0 } else { value.signum() * (1.0 + value.abs().ln()) };
    }
    normalize(&mut vector);
    vector
}

/// Inverse document frequencies of the buckets over `examples` (smoothed as scikit-learn's
/// `TfidfVectorizer`: `ln((1 + n) / (1 + df)) + 1`), so that words every text holds weigh less.
pub fn idf(examples: &[SparseVector], buckets: usize) -> Vec<f32> {
    let mut document_frequency = vec![0u32; buckets];
    for example in examples {
        for &index in &example.indices {
            document_frequency[index as usize] += 1;
        }
    }
    let n = examples.len() as f32;
    document_frequency.iter().map(|&df| ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0).collect()
}

/// The features of one text weighed by `idf`: what a model reads.
pub fn weighed_features(text: &str, config: &FeatureConfig, idf: &[f32]) -> SparseVector {
    let mut x = featurize(text, config);
    weigh(&mut x, idf);
    x
}

/// `x` weighed by `idf`, then scaled to unit length again.
pub fn weigh(x: &mut SparseVector, idf: &[f32]) {
    for (value, &index) in x.values.iter_mut().zip(&x.indices) {
        *value *= idf[index as usize];
    }
    normalize(x);
}

fn normalize(x: &mut SparseVector) {
    let norm = x.values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        x.values.iter_mut().for_each(|v| *v /= norm);
    }
}

/// FNV-1a, 64 bits, started from a byte naming the kind of n-gram.
struct Fnv(u64);

impl Fnv {
    fn new(kind: u8) -> Fnv {
        let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
        fnv.write(&[kind]);
        fnv
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn finish(&self) -> u64 {
        mix64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_compatibility_forms_do_not_matter() {
        let config = FeatureConfig::DEFAULT;
        assert_eq!(featurize("L'EMPLOYEUR ﬁxe", &config), featurize("l'employeur fixe", &config));
        assert_ne!(featurize("employeur", &config), featurize("salarié", &config));
    }

    #[test]
    fn vectors_are_sorted_and_of_unit_length() {
        let vector = featurize("Le salarié, le salarié et l'employeur.", &FeatureConfig::DEFAULT);
        assert!(vector.indices.windows(2).all(|pair| pair[0] < pair[1]));
        let norm: f32 = vector.values.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(featurize(" ,;", &FeatureConfig::DEFAULT), SparseVector::default());
    }

    #[test]
    fn configurations_out_of_range_are_refused() {
        let with = |change: fn(&mut FeatureConfig)| {
            let mut config = FeatureConfig::DEFAULT;
            change(&mut config);
            config.check()
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|c| c.buckets_log2 = 30).is_err());
        assert!(with(|c| c.char_ngrams_min = 6).is_err());
        assert!(
            with(|c| {
                c.word_ngrams_max = 0;
                c.char_ngrams_max = 0;
            })
            .is_err()
        );
    }
}
