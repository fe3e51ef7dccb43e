//! Training: each line of the text is a document; every byte of it, and the [`Token::END`] after
//! it, is an example to predict from the `context` tokens before it (the first ones `END`s).
//! Minibatches of examples, in an order drawn from the seed and the epoch's number, the
//! cross-entropy's gradient by hand-written backpropagation, and Adam. A run stopped between two
//! minibatches and resumed from its [`Checkpoint`] ends with the same bytes as a run never
//! stopped.

use std::sync::Mutex;

use grappe_train::codec::{decode, encode};
use grappe_train::rng::{SplitMix64, mix64};

use crate::model::{Activations, Model, Shape, parts, parts_mut};
use crate::{DecodeError, MAX_TEXT_BYTES, Token, TrainError, VOCABULARY};

/// How to train. Everything but `epochs` is part of the run's fingerprint: a checkpoint resumes
/// only a run with the same text and the same settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    pub shape: Shape,
    pub epochs: u32,
    pub seed: u64,
    /// Examples per minibatch.
    pub batch: u32,
    /// Adam's step size.
    pub learning_rate: f32,
}

impl TrainConfig {
    pub const DEFAULT: TrainConfig =
        TrainConfig { shape: Shape::DEFAULT, epochs: 10, seed: 0, batch: 32, learning_rate: 0.003 };

    fn check(&self) -> Result<(), TrainError> {
        self.shape.check().map_err(TrainError::Config)?;
        if !(1..=4096).contains(&self.batch) {
            return Err(TrainError::Config(format!("a batch of {} examples (1 to 4096)", self.batch)));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(TrainError::Config("the learning rate must be positive".to_owned()));
        }
        Ok(())
    }
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;
const CHECKPOINT_MAGIC: &[u8; 8] = b"GRPLMCKP";
const CHECKPOINT_VERSION: u32 = 1;

/// The text as tokens, the examples in it, and the run's fingerprint.
pub struct Trainer {
    config: TrainConfig,
    /// `context` `END`s, then each document followed by `context` `END`s.
    tokens: Vec<Token>,
    /// The positions in `tokens` of the tokens to predict.
    targets: Vec<u32>,
    fingerprint: [u8; 32],
    /// The model a fine-tuning run starts from; none: [`Model::initial`].
    base: Option<Model>,
    /// The current epoch's order and the buffers of a step, kept between steps.
    scratch: Mutex<Scratch>,
}

struct Scratch {
    epoch: Option<u32>,
    order: Vec<u32>,
    gradient: Vec<f32>,
    activations: Activations,
    /// The gradients of the logits, of the hidden layer and of the input.
    d_logits: Vec<f32>,
    d_hidden: Vec<f32>,
    d_input: Vec<f32>,
}

/// Where a run stands: the model, Adam's moments, and the position in the run (`epoch` epochs
/// done, `position` examples into the next).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    fingerprint: [u8; 32],
    pub epoch: u32,
    pub position: u64,
    /// The sum of the losses of the examples seen in the current epoch.
    loss_sum: f64,
    /// The mean training loss of every epoch done.
    pub losses: Vec<f64>,
    /// Adam's steps so far, and `BETA1` and `BETA2` to that power.
    steps: u64,
    beta1_power: f32,
    beta2_power: f32,
    model: Model,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
}

impl Trainer {
    pub fn new(config: TrainConfig, text: &str) -> Result<Trainer, TrainError> {
        config.check()?;
        if text.len() > MAX_TEXT_BYTES {
            return Err(TrainError::Data(format!("{} bytes of text, at most {MAX_TEXT_BYTES}", text.len())));
        }
        let context = config.shape.context as usize;
        let mut tokens = vec![Token::END; context];
        let mut targets = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            targets.extend((tokens.len()..=tokens.len() + line.len()).map(|at| at as u32));
            tokens.extend(crate::tokenize(line));
            tokens.extend(std::iter::repeat_n(Token::END, context));
        }
        if targets.is_empty() {
            return Err(TrainError::Data("the text has no line with anything but spaces".to_owned()));
        }
        let mut hasher = blake3::Hasher::new();
        let shape = &config.shape;
        for value in [shape.context, shape.embedding, shape.hidden, config.batch] {
            hasher.update(&value.to_le_bytes());
        }
        hasher.update(&config.seed.to_le_bytes());
        hasher.update(&config.learning_rate.to_le_bytes());
        hasher.update(text.as_bytes());
        let scratch = Scratch {
            epoch: None,
            order: Vec::new(),
            gradient: vec![0.0; shape.parameters()],
            activations: Activations::new(shape),
            d_logits: vec![0.0; VOCABULARY],
            d_hidden: vec![0.0; shape.hidden as usize],
            d_input: vec![0.0; shape.input()],
        };
        Ok(Trainer {
            config,
            tokens,
            targets,
            fingerprint: *hasher.finalize().as_bytes(),
            base: None,
            scratch: Mutex::new(scratch),
        })
    }

    /// The same run, started from `base` instead of fresh weights: fine-tuning. The base must
    /// have the run's shape; it is part of the run's fingerprint.
    pub fn with_base(mut self, base: Model) -> Result<Trainer, TrainError> {
        if base.shape() != self.config.shape {
            return Err(TrainError::Config(format!(
                "the base model's shape ({:?}) is not the run's ({:?})",
                base.shape(),
                self.config.shape
            )));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.fingerprint);
        hasher.update(&base.to_bytes());
        self.fingerprint = *hasher.finalize().as_bytes();
        self.base = Some(base);
        Ok(self)
    }

    /// The examples of an epoch: the text's bytes, and one end per line.
    pub fn examples(&self) -> usize {
        self.targets.len()
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The state of a run that has not started.
    pub fn start(&self) -> Checkpoint {
        let model = self.base.clone().unwrap_or_else(|| Model::initial(self.config.shape, self.config.seed));
        let parameters = model.parameters();
        Checkpoint {
            fingerprint: self.fingerprint,
            epoch: 0,
            position: 0,
            loss_sum: 0.0,
            losses: Vec::new(),
            steps: 0,
            beta1_power: 1.0,
            beta2_power: 1.0,
            model,
            first_moment: vec![0.0; parameters],
            second_moment: vec![0.0; parameters],
        }
    }

    /// `checkpoint`, if it is of a run on this text with these settings.
    pub fn resume(&self, checkpoint: Checkpoint) -> Result<Checkpoint, TrainError> {
        if checkpoint.fingerprint != self.fingerprint || checkpoint.model.shape != self.config.shape {
            return Err(TrainError::OtherRun);
        }
        Ok(checkpoint)
    }

    pub fn is_done(&self, state: &Checkpoint) -> bool {
        state.epoch >= self.config.epochs
    }

    /// Trains on one minibatch (shorter at the end of an epoch) and returns its mean loss before
    /// the step; `None` once the run is done. When an epoch ends, its mean loss is pushed onto
    /// `state.losses`.
    pub fn step(&self, state: &mut Checkpoint) -> Option<f64> {
        if self.is_done(state) {
            return None;
        }
        let mut scratch = self.scratch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let scratch = &mut *scratch;
        if scratch.epoch != Some(state.epoch) {
            scratch.order = (0..self.targets.len() as u32).collect();
            SplitMix64::new(self.config.seed ^ mix64(u64::from(state.epoch) + 1)).shuffle(&mut scratch.order);
            scratch.epoch = Some(state.epoch);
        }
        let start = (state.position as usize).min(scratch.order.len());
        let end = (start + self.config.batch as usize).min(scratch.order.len());
        scratch.gradient.fill(0.0);
        let scale = 1.0 / (end - start) as f32;
        let mut batch_loss = 0.0f64;
        for i in start..end {
            let at = self.targets[scratch.order[i] as usize] as usize;
            let context = &self.tokens[at - self.config.shape.context as usize..at];
            batch_loss += f64::from(self.backward(&state.model, context, self.tokens[at], scale, scratch));
        }
        adam(state, &scratch.gradient, self.config.learning_rate);
        state.loss_sum += batch_loss;
        state.position = end as u64;
        if end == scratch.order.len() {
            state.losses.push(state.loss_sum / end as f64);
            state.epoch += 1;
            state.position = 0;
            state.loss_sum = 0.0;
        }
        Some(batch_loss / (end - start) as f64)
    }

    /// Adds `scale` times the gradient of one example's loss to `scratch.gradient`; returns the
    /// loss, `-ln p(target)`.
    fn backward(&self, model: &Model, context: &[Token], target: Token, scale: f32, scratch: &mut Scratch) -> f32 {
        let shape = &self.config.shape;
        let (embedding, input, hidden) = (shape.embedding as usize, shape.input(), shape.hidden as usize);
        let activations = &mut scratch.activations;
        model.forward(context, activations);
        let max = activations.logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0f32;
        for (d, &z) in scratch.d_logits.iter_mut().zip(&activations.logits) {
            *d = (z - max).exp();
            total += *d;
        }
        let loss = total.ln() - (activations.logits[target.index()] - max);
        for d in &mut scratch.d_logits {
            *d *= scale / total;
        }
        scratch.d_logits[target.index()] -= scale;

        let p = parts(shape, &model.parameters);
        let g = parts_mut(shape, &mut scratch.gradient);
        // Output layer: the weights' gradient, and the hidden layer's.
        scratch.d_hidden.fill(0.0);
        for (((&d, row), g_row), g_bias) in scratch
            .d_logits
            .iter()
            .zip(p.output_weights.chunks_exact(hidden))
            .zip(g.output_weights.chunks_exact_mut(hidden))
            .zip(g.output_bias.iter_mut())
        {
            *g_bias += d;
            for ((g_w, &h), (d_h, &w)) in
                g_row.iter_mut().zip(&activations.hidden).zip(scratch.d_hidden.iter_mut().zip(row))
            {
                *g_w += d * h;
                *d_h += d * w;
            }
        }
        // Through tanh, then the hidden layer: its weights' gradient, and the input's.
        scratch.d_input.fill(0.0);
        for ((((&d_h, &h), row), g_row), g_bias) in scratch
            .d_hidden
            .iter()
            .zip(&activations.hidden)
            .zip(p.hidden_weights.chunks_exact(input))
            .zip(g.hidden_weights.chunks_exact_mut(input))
            .zip(g.hidden_bias.iter_mut())
        {
            let d_a = d_h * (1.0 - h * h);
            *g_bias += d_a;
            for ((g_w, &x), (d_x, &w)) in
                g_row.iter_mut().zip(&activations.input).zip(scratch.d_input.iter_mut().zip(row))
            {
                *g_w += d_a * x;
                *d_x += d_a * w;
            }
        }
        // Each context token's embedding.
        for (token, d_x) in context.iter().zip(scratch.d_input.chunks_exact(embedding)) {
            for (g_e, &d) in g.embeddings[token.index() * embedding..][..embedding].iter_mut().zip(d_x) {
                *g_e += d;
            }
        }
        loss
    }
}

/// One Adam step over every parameter.
fn adam(state: &mut Checkpoint, gradient: &[f32], learning_rate: f32) {
    state.steps += 1;
    state.beta1_power *= BETA1;
    state.beta2_power *= BETA2;
    let (correction1, correction2) = (1.0 - state.beta1_power, 1.0 - state.beta2_power);
    for (((w, &g), m), v) in state
        .model
        .parameters
        .iter_mut()
        .zip(gradient)
        .zip(state.first_moment.iter_mut())
        .zip(state.second_moment.iter_mut())
    {
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *w -= learning_rate * (*m / correction1) / ((*v / correction2).sqrt() + EPSILON);
    }
}

impl Checkpoint {
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Minibatches trained so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, |body| {
            body.bytes(&self.fingerprint);
            body.u32(self.epoch);
            body.u64(self.position);
            body.f64(self.loss_sum);
            body.f64s(&self.losses);
            body.u64(self.steps);
            body.u32(self.beta1_power.to_bits());
            body.u32(self.beta2_power.to_bits());
            self.model.write(body);
            body.f32s(&self.first_moment);
            body.f32s(&self.second_moment);
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
                steps: input.u64()?,
                beta1_power: f32::from_bits(input.u32()?),
                beta2_power: f32::from_bits(input.u32()?),
                model: Model::read(input)?,
                first_moment: input.f32s()?,
                second_moment: input.f32s()?,
            })
        })?;
        let parameters = checkpoint.model.parameters();
        if checkpoint.first_moment.len() != parameters || checkpoint.second_moment.len() != parameters {
            return Err(DecodeError::Malformed("optimizer state of the wrong shape".into()));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
