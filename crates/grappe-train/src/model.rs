//! A trained text classifier: its feature configuration, its labels, and a linear layer (one
//! weight per bucket and label, one bias per label) under a softmax.

use crate::DecodeError;
use crate::codec::{Reader, Writer, decode, encode};
use crate::features::{FeatureConfig, SparseVector, weighed_features};

const MAGIC: &[u8; 8] = b"GRPMODEL";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub(crate) features: FeatureConfig,
    pub(crate) labels: Vec<String>,
    /// The training set's inverse document frequency of each bucket.
    pub(crate) idf: Vec<f32>,
    /// Bucket-major: the weights of bucket `i` are `weights[i * labels.len()..][..labels.len()]`.
    pub(crate) weights: Vec<f32>,
    pub(crate) bias: Vec<f32>,
}

impl Model {
    pub(crate) fn zeros(features: FeatureConfig, labels: Vec<String>, idf: Vec<f32>) -> Model {
        let classes = labels.len();
        Model { features, weights: vec![0.0; features.buckets() * classes], bias: vec![0.0; classes], labels, idf }
    }

    /// A text's features as this model weighs them.
    pub fn featurize(&self, text: &str) -> SparseVector {
        weighed_features(text, &self.features, &self.idf)
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn features(&self) -> &FeatureConfig {
        &self.features
    }

    /// The scores before the softmax.
    pub(crate) fn logits(&self, x: &SparseVector) -> Vec<f32> {
        let classes = self.labels.len();
        let mut logits = self.bias.clone();
        for (&index, &value) in x.indices.iter().zip(&x.values) {
            let row = &self.weights[index as usize * classes..][..classes];
            for (logit, weight) in logits.iter_mut().zip(row) {
                *logit += value * weight;
            }
        }
        logits
    }

    /// The index of the most likely label of a text featurized by [`Model::featurize`] (the
    /// first on ties).
    pub fn predict_features(&self, x: &SparseVector) -> usize {
        let logits = self.logits(x);
        let mut best = 0;
        for (k, &logit) in logits.iter().enumerate() {
            if logit > logits[best] {
                best = k;
            }
        }
        best
    }

    /// The most likely label of a text.
    pub fn predict(&self, text: &str) -> &str {
        &self.labels[self.predict_features(&self.featurize(text))]
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(MAGIC, VERSION, |body| self.write(body))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Model, DecodeError> {
        decode(MAGIC, VERSION, bytes, Model::read)
    }

    pub(crate) fn write(&self, out: &mut Writer) {
        let f = &self.features;
        for value in [f.buckets_log2, f.word_ngrams_max, f.char_ngrams_min, f.char_ngrams_max] {
            out.u32(value);
        }
        out.u64(self.labels.len() as u64);
        for label in &self.labels {
            out.bytes(label.as_bytes());
        }
        out.f32s(&self.idf);
        out.f32s(&self.weights);
        out.f32s(&self.bias);
    }

    pub(crate) fn read(input: &mut Reader<'_>) -> Result<Model, DecodeError> {
        let features = FeatureConfig {
            buckets_log2: input.u32()?,
            word_ngrams_max: input.u32()?,
            char_ngrams_min: input.u32()?,
            char_ngrams_max: input.u32()?,
        };
        features.check().map_err(DecodeError::Malformed)?;
        let count = input.u64()?;
        if !(2..=crate::MAX_LABELS as u64).contains(&count) {
            return Err(DecodeError::Malformed(format!("{count} labels")));
        }
        let labels = (0..count).map(|_| input.string()).collect::<Result<Vec<_>, _>>()?;
        let idf = input.f32s()?;
        let weights = input.f32s()?;
        let bias = input.f32s()?;
        let buckets = features.buckets();
        if idf.len() != buckets || weights.len() != buckets * labels.len() || bias.len() != labels.len() {
            return Err(DecodeError::Malformed("weights of the wrong shape".to_owned()));
        }
        Ok(Model { features, labels, idf, weights, bias })
    }
}
