//! Training: multinomial logistic regression on hashed features by stochastic gradient descent,
//! one example at a time, with AdaGrad's per-weight steps and an L2 penalty applied to the
//! weights each example touches (lazily, as sparse SGD does). Examples are visited in an order
//! drawn from the seed and the epoch, so a run stopped anywhere and resumed from its
//! [`Checkpoint`] ends with the same bytes as a run never stopped.

use std::collections::BTreeSet;

use crate::codec::{decode, encode};
use crate::features::{FeatureConfig, SparseVector, featurize, idf, weigh, weighed_features};
use crate::model::Model;
use crate::rng::{SplitMix64, mix64};
use crate::{DecodeError, TrainError};

/// How to train. Everything but `epochs` is part of the data fingerprint: a checkpoint resumes
/// only a run with the same data and the same settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub features: FeatureConfig,
    pub epochs: u32,
    pub seed: u64,
    pub learning_rate: f32,
    pub l2: f32,
}

impl TrainConfig {
    pub const DEFAULT: TrainConfig =
        TrainConfig { features: FeatureConfig::DEFAULT, epochs: 5, seed: 0, learning_rate: 0.2, l2: 1e-6 };
}

/// One featurized example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub features: SparseVector,
    pub label: usize,
}

/// The training data, featurized once, with its labels (sorted) and its fingerprint.
pub struct Trainer {
    config: TrainConfig,
    labels: Vec<String>,
    idf: Vec<f32>,
    examples: Vec<Example>,
    fingerprint: [u8; 32],
}

/// Where a run stands: the model, AdaGrad's sums of squared gradients, and the position in the
/// run (`epoch` epochs done, `position` examples into the next).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    fingerprint: [u8; 32],
    pub epoch: u32,
    pub position: u64,
    /// The sum of the losses of the examples seen in the current epoch.
    loss_sum: f64,
    /// The mean training loss of every epoch done.
    pub losses: Vec<f64>,
    model: Model,
    squared_weights: Vec<f32>,
    squared_bias: Vec<f32>,
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"GRPCKPT\0";
const CHECKPOINT_VERSION: u32 = 1;
const EPSILON: f32 = 1e-8;

impl Trainer {
    /// `rows` are (text, label) pairs.
    pub fn new(config: TrainConfig, rows: &[(String, String)]) -> Result<Trainer, TrainError> {
        config.features.check().map_err(TrainError::Config)?;
        if !(config.learning_rate.is_finite()
            && config.learning_rate > 0.0
            && config.l2.is_finite()
            && config.l2 >= 0.0)
        {
            return Err(TrainError::Config(
                "the learning rate must be positive and the L2 penalty not negative".into(),
            ));
        }
        let labels: Vec<String> =
            rows.iter().map(|(_, label)| label.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        if labels.len() < 2 {
            return Err(TrainError::Data(format!("at least two labels are needed, found {}", labels.len())));
        }
        if labels.len() > crate::MAX_LABELS || labels.len() * config.features.buckets() > crate::MAX_WEIGHTS {
            return Err(TrainError::Data(format!(
                "{} labels over {} buckets are too many weights (at most {})",
                labels.len(),
                config.features.buckets(),
                crate::MAX_WEIGHTS
            )));
        }
        let mut hasher = blake3::Hasher::new();
        let f = &config.features;
        for value in [f.buckets_log2, f.word_ngrams_max, f.char_ngrams_min, f.char_ngrams_max] {
            hasher.update(&value.to_le_bytes());
        }
        hasher.update(&config.seed.to_le_bytes());
        hasher.update(&config.learning_rate.to_le_bytes());
        hasher.update(&config.l2.to_le_bytes());
        let mut examples: Vec<Example> = rows
            .iter()
            .map(|(text, label)| {
                for part in [text, label] {
                    hasher.update(&(part.len() as u64).to_le_bytes());
                    hasher.update(part.as_bytes());
                }
                let label = labels.binary_search(label).expect("every label is in the list");
                Example { features: featurize(text, &config.features), label }
            })
            .collect();
        let features: Vec<SparseVector> = examples.iter().map(|example| example.features.clone()).collect();
        let idf = idf(&features, config.features.buckets());
        drop(features);
        for example in &mut examples {
            weigh(&mut example.features, &idf);
        }
        Ok(Trainer { config, labels, idf, examples, fingerprint: *hasher.finalize().as_bytes() })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn examples(&self) -> usize {
        self.examples.len()
    }

    /// A text's features as the models of this run weigh them.
    pub fn featurize(&self, text: &str) -> SparseVector {
        weighed_features(text, &self.config.features, &self.idf)
    }

    /// The state of a run that has not started.
    pub fn start(&self) -> Checkpoint {
        let model = Model::zeros(self.config.features, self.labels.clone(), self.idf.clone());
        Checkpoint {
            fingerprint: self.fingerprint,
            epoch: 0,
            position: 0,
            loss_sum: 0.0,
            losses: Vec::new(),
            squared_weights: vec![0.0; model.weights.len()],
            squared_bias: vec![0.0; model.bias.len()],
            model,
        }
    }

    /// `checkpoint`, if it is of a run on this data with these settings.
    pub fn resume(&self, checkpoint: Checkpoint) -> Result<Checkpoint, TrainError> {
        if checkpoint.fingerprint != self.fingerprint || checkpoint.model.labels != self.labels {
            return Err(TrainError::OtherRun);
        }
        Ok(checkpoint)
    }

    pub fn is_done(&self, state: &Checkpoint) -> bool {
        state.epoch >= self.config.epochs
    }

    /// Trains on at most `max_examples` examples, stopping early at the end of an epoch; returns
    /// the epoch's mean loss when one ended.
    pub fn step(&self, state: &mut Checkpoint, max_examples: usize) -> Option<f64> {
        if self.is_done(state) {
            return None;
        }
        let mut order: Vec<u32> = (0..self.examples.len() as u32).collect();
        SplitMix64::new(self.config.seed ^ mix64(u64::from(state.epoch) + 1)).shuffle(&mut order);
        let start = state.position as usize;
        let end = start.saturating_add(max_examples).min(order.len());
        for &i in &order[start..end] {
            state.loss_sum += f64::from(self.update(state, &self.examples[i as usize]));
        }
        state.position = end as u64;
        if end < order.len() {
            return None;
        }
        let loss = state.loss_sum / order.len().max(1) as f64;
        state.losses.push(loss);
        state.epoch += 1;
        state.position = 0;
        state.loss_sum = 0.0;
        Some(loss)
    }

    /// One AdaGrad step on one example; its loss before the step.
    fn update(&self, state: &mut Checkpoint, example: &Example) -> f32 {
        let classes = self.labels.len();
        let logits = state.model.logits(&example.features);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = logits.iter().map(|z| (z - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        let gradients: Vec<f32> =
            exps.iter().enumerate().map(|(k, e)| e / total - if k == example.label { 1.0 } else { 0.0 }).collect();
        let loss = -(exps[example.label] / total).max(1e-30).ln();
        let (rate, l2) = (self.config.learning_rate, self.config.l2);
        let model = &mut state.model;
        for ((bias, squared), &g) in model.bias.iter_mut().zip(&mut state.squared_bias).zip(&gradients) {
            *squared += g * g;
            *bias -= rate * g / (squared.sqrt() + EPSILON);
        }
        for (&index, &value) in example.features.indices.iter().zip(&example.features.values) {
            let at = index as usize * classes;
            let weights = &mut model.weights[at..at + classes];
            let squared = &mut state.squared_weights[at..at + classes];
            for ((weight, squared), &gradient) in weights.iter_mut().zip(squared).zip(&gradients) {
                let g = gradient * value + l2 * *weight;
                *squared += g * g;
                *weight -= rate * g / (squared.sqrt() + EPSILON);
            }
        }
        loss
    }
}

impl Checkpoint {
    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, |body| {
            body.bytes(&self.fingerprint);
            body.u32(self.epoch);
            body.u64(self.position);
            body.f64(self.loss_sum);
            body.f64s(&self.losses);
            self.model.write(body);
            body.f32s(&self.squared_weights);
            body.f32s(&self.squared_bias);
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
        let checkpoint = decode(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, bytes, |input| {
            Ok(Checkpoint {
                fingerprint: input.fingerprint()?,
                epoch: input.u32()?,
                position: input.u64()?,
                loss_sum: input.f64()?,
                losses: input.f64s()?,
                model: Model::read(input)?,
                squared_weights: input.f32s()?,
                squared_bias: input.f32s()?,
            })
        })?;
        if checkpoint.squared_weights.len() != checkpoint.model.weights.len()
            || checkpoint.squared_bias.len() != checkpoint.model.bias.len()
        {
            return Err(DecodeError::Malformed("optimizer state of the wrong shape".into()));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Vec<(String, String)> {
        let mut rows = Vec::new();
        for i in 0..40 {
            rows.push((format!("le salarié prend un congé payé numéro {i}"), "conges".to_owned()));
            rows.push((format!("l'employeur verse le salaire minimum numéro {i}"), "salaire".to_owned()));
            rows.push((format!("la formation professionnelle continue numéro {i}"), "formation".to_owned()));
        }
        rows
    }

    fn small() -> TrainConfig {
        TrainConfig { features: FeatureConfig { buckets_log2: 14, ..FeatureConfig::DEFAULT }, ..TrainConfig::DEFAULT }
    }

    fn train(trainer: &Trainer, mut state: Checkpoint, batch: usize) -> Checkpoint {
        while !trainer.is_done(&state) {
            trainer.step(&mut state, batch);
        }
        state
    }

    #[test]
    fn learns_a_separable_toy_set_to_100_percent() {
        let rows = toy();
        let trainer = Trainer::new(small(), &rows).unwrap();
        let state = train(&trainer, trainer.start(), 16);
        let model = state.model();
        let truth: Vec<usize> = rows.iter().map(|(_, label)| trainer.labels().binary_search(label).unwrap()).collect();
        let predicted: Vec<usize> = rows
            .iter()
            .map(|(text, _)| trainer.labels().binary_search(&model.predict(text).to_owned()).unwrap())
            .collect();
        assert_eq!(truth, predicted, "every training example learnt");
        assert_eq!(model.predict("un congé payé pour le salarié"), "conges");
        assert!(state.losses.windows(2).all(|pair| pair[1] < pair[0]), "{:?}", state.losses);
    }

    #[test]
    fn a_seed_gives_the_same_bytes_and_another_seed_others() {
        let rows = toy();
        let run = |seed| {
            let trainer = Trainer::new(TrainConfig { seed, ..small() }, &rows).unwrap();
            train(&trainer, trainer.start(), 1000).model().to_bytes()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn a_run_stopped_anywhere_and_resumed_ends_the_same() {
        let rows = toy();
        let trainer = Trainer::new(small(), &rows).unwrap();
        let whole = train(&trainer, trainer.start(), usize::MAX);
        let mut state = trainer.start();
        for _ in 0..7 {
            trainer.step(&mut state, 13);
        }
        assert_eq!((state.epoch, state.position), (0, 91));
        let bytes = state.to_bytes();
        let resumed = trainer.resume(Checkpoint::from_bytes(&bytes).unwrap()).unwrap();
        assert_eq!(resumed, state);
        let resumed = train(&trainer, resumed, 50);
        assert_eq!(resumed.model().to_bytes(), whole.model().to_bytes());
        assert_eq!(resumed.losses, whole.losses);
    }

    #[test]
    fn checkpoints_and_models_round_trip_and_torn_ones_are_refused() {
        let rows = toy();
        let trainer = Trainer::new(small(), &rows).unwrap();
        let mut state = trainer.start();
        trainer.step(&mut state, 100);
        let bytes = state.to_bytes();
        assert_eq!(Checkpoint::from_bytes(&bytes).unwrap(), state);
        let model = Model::from_bytes(&state.model().to_bytes()).unwrap();
        assert_eq!(&model, state.model());
        for torn in [&bytes[..bytes.len() / 2], &bytes[..bytes.len() - 1]] {
            assert!(matches!(Checkpoint::from_bytes(torn), Err(DecodeError::Length { .. })));
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(matches!(Checkpoint::from_bytes(&flipped), Err(DecodeError::Hash)));
        assert!(matches!(Checkpoint::from_bytes(b"GRPCKPT"), Err(DecodeError::NotThisKind { .. })));
        assert!(matches!(Model::from_bytes(&bytes), Err(DecodeError::NotThisKind { .. })));
        let mut later = bytes.clone();
        later[8] = 9;
        assert!(matches!(Checkpoint::from_bytes(&later), Err(DecodeError::Version { found: 9, .. })));
    }

    #[test]
    fn a_checkpoint_of_other_data_or_settings_is_refused() {
        let rows = toy();
        let trainer = Trainer::new(small(), &rows).unwrap();
        let state = trainer.start();
        let other_seed = Trainer::new(TrainConfig { seed: 9, ..small() }, &rows).unwrap();
        assert!(matches!(other_seed.resume(state.clone()), Err(TrainError::OtherRun)));
        let other_data = Trainer::new(small(), &rows[1..]).unwrap();
        assert!(matches!(other_data.resume(state.clone()), Err(TrainError::OtherRun)));
        let more_epochs = Trainer::new(TrainConfig { epochs: 9, ..small() }, &rows).unwrap();
        assert!(more_epochs.resume(state).is_ok());
    }

    #[test]
    fn bad_data_is_refused() {
        let one_label = vec![("a".to_owned(), "x".to_owned()), ("b".to_owned(), "x".to_owned())];
        assert!(matches!(Trainer::new(small(), &one_label), Err(TrainError::Data(_))));
        let bad_rate = TrainConfig { learning_rate: f32::NAN, ..small() };
        assert!(matches!(Trainer::new(bad_rate, &toy()), Err(TrainError::Config(_))));
    }
}
