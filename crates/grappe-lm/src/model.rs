//! The model: embeddings of the last `context` tokens, concatenated, a `tanh` hidden layer and a
//! softmax over the vocabulary; its bytes; and generation, greedy or sampled, as an iterator of
//! tokens that stops at [`Token::END`] or at `max_tokens`, and never writes invalid UTF-8.

use grappe_train::codec::{Reader, Writer, decode, encode};
use grappe_train::rng::SplitMix64;

use crate::{DecodeError, MAX_PARAMETERS, Token, VOCABULARY};

const MAGIC: &[u8; 8] = b"GRPLMMOD";
const VERSION: u32 = 1;

/// The model's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How many tokens the model reads before the one it predicts.
    pub context: u32,
    /// The numbers per token's embedding.
    pub embedding: u32,
    /// The hidden layer's width.
    pub hidden: u32,
}

impl Shape {
    pub const DEFAULT: Shape = Shape { context: 8, embedding: 32, hidden: 128 };

    pub fn check(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.context)
            || !(1..=256).contains(&self.embedding)
            || !(1..=4096).contains(&self.hidden)
        {
            return Err(format!(
                "context {} (1 to 64), embedding {} (1 to 256), hidden {} (1 to 4096)",
                self.context, self.embedding, self.hidden
            ));
        }
        if self.parameters() > MAX_PARAMETERS {
            return Err(format!("{} parameters, at most {MAX_PARAMETERS}", self.parameters()));
        }
        Ok(())
    }

    /// The width of the hidden layer's input: the context's embeddings side by side.
    pub(crate) fn input(&self) -> usize {
        self.context as usize * self.embedding as usize
    }

    /// Where each part lies in the parameters: embeddings (token-major), hidden weights (one row
    /// of `input` per hidden unit), hidden bias, output weights (one row of `hidden` per token),
    /// output bias; the last bound is the count.
    pub(crate) fn bounds(&self) -> [usize; 6] {
        let (embedding, hidden) = (self.embedding as usize, self.hidden as usize);
        let mut bounds = [0; 6];
        let sizes = [VOCABULARY * embedding, hidden * self.input(), hidden, VOCABULARY * hidden, VOCABULARY];
        for (i, size) in sizes.iter().enumerate() {
            bounds[i + 1] = bounds[i] + size;
        }
        bounds
    }

    pub fn parameters(&self) -> usize {
        self.bounds()[5]
    }
}

/// The parameters, split into their parts (read-only or mutable: gradients have the same shape).
pub(crate) struct Parts<T> {
    pub(crate) embeddings: T,
    pub(crate) hidden_weights: T,
    pub(crate) hidden_bias: T,
    pub(crate) output_weights: T,
    pub(crate) output_bias: T,
}

pub(crate) fn parts<'a>(shape: &Shape, values: &'a [f32]) -> Parts<&'a [f32]> {
    let b = shape.bounds();
    Parts {
        embeddings: &values[b[0]..b[1]],
        hidden_weights: &values[b[1]..b[2]],
        hidden_bias: &values[b[2]..b[3]],
        output_weights: &values[b[3]..b[4]],
        output_bias: &values[b[4]..b[5]],
    }
}

pub(crate) fn parts_mut<'a>(shape: &Shape, values: &'a mut [f32]) -> Parts<&'a mut [f32]> {
    let b = shape.bounds();
    let (embeddings, rest) = values[..b[5]].split_at_mut(b[1]);
    let (hidden_weights, rest) = rest.split_at_mut(b[2] - b[1]);
    let (hidden_bias, rest) = rest.split_at_mut(b[3] - b[2]);
    let (output_weights, output_bias) = rest.split_at_mut(b[4] - b[3]);
    Parts { embeddings, hidden_weights, hidden_bias, output_weights, output_bias }
}

/// A forward pass's values, kept for the backward pass.
pub(crate) struct Activations {
    /// The context's embeddings, side by side.
    pub(crate) input: Vec<f32>,
    /// After `tanh`.
    pub(crate) hidden: Vec<f32>,
    /// The scores before the softmax.
    pub(crate) logits: Vec<f32>,
}

impl Activations {
    pub(crate) fn new(shape: &Shape) -> Activations {
        Activations {
            input: vec![0.0; shape.input()],
            hidden: vec![0.0; shape.hidden as usize],
            logits: vec![0.0; VOCABULARY],
        }
    }
}

/// A dot product in a fixed order: eight running sums (which the compiler may keep in one
/// vector register), then the tail, then the eight added pairwise.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut sums = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7])) + tail
}

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub(crate) shape: Shape,
    pub(crate) parameters: Vec<f32>,
}

impl Model {
    /// A model to train: embeddings uniform in ±1, weights uniform in ±1/√(fan-in), biases 0,
    /// drawn from `seed`.
    pub(crate) fn initial(shape: Shape, seed: u64) -> Model {
        let mut rng = SplitMix64::new(seed ^ 0x6C6D_2D69_6E69_7431);
        let mut uniform = |bound: f32| {
            // 24 random bits: every value is exact in f32.
            let unit = (rng.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
            (unit * 2.0 - 1.0) * bound
        };
        let mut parameters = vec![0.0; shape.parameters()];
        let input_bound = 1.0 / (shape.input() as f32).sqrt();
        let hidden_bound = 1.0 / (shape.hidden as f32).sqrt();
        let p = parts_mut(&shape, &mut parameters);
        p.embeddings.iter_mut().for_each(|w| *w = uniform(1.0));
        p.hidden_weights.iter_mut().for_each(|w| *w = uniform(input_bound));
        p.output_weights.iter_mut().for_each(|w| *w = uniform(hidden_bound));
        Model { shape, parameters }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn parameters(&self) -> usize {
        self.parameters.len()
    }

    /// The scores of the next token after `context` (exactly `shape.context` tokens), into
    /// `activations.logits`.
    pub(crate) fn forward(&self, context: &[Token], activations: &mut Activations) {
        let p = parts(&self.shape, &self.parameters);
        let (embedding, input) = (self.shape.embedding as usize, self.shape.input());
        for (slot, token) in activations.input.chunks_exact_mut(embedding).zip(context) {
            slot.copy_from_slice(&p.embeddings[token.index() * embedding..][..embedding]);
        }
        for ((h, row), bias) in
            activations.hidden.iter_mut().zip(p.hidden_weights.chunks_exact(input)).zip(p.hidden_bias)
        {
            *h = (bias + dot(row, &activations.input)).tanh();
        }
        let hidden = self.shape.hidden as usize;
        for ((z, row), bias) in
            activations.logits.iter_mut().zip(p.output_weights.chunks_exact(hidden)).zip(p.output_bias)
        {
            *z = bias + dot(row, &activations.hidden);
        }
    }

    /// Continues `prompt` with at most `max_tokens` tokens: the most likely token each time when
    /// `temperature` is 0 (or less), else a token drawn from the softmax of the scores divided by
    /// `temperature`, by a generator seeded with `seed`. Either way the same arguments give the
    /// same tokens. Only tokens that keep the output valid UTF-8 are considered, and a character
    /// is started only if `max_tokens` leaves room for all its bytes; [`Token::END`] only
    /// between characters, and it ends the generation without being yielded.
    pub fn generate(&self, prompt: &str, max_tokens: u32, temperature: f32, seed: u64) -> Generation<'_> {
        let mut context = vec![Token::END; self.shape.context as usize];
        let skip = prompt.len().saturating_sub(context.len());
        for &byte in &prompt.as_bytes()[skip..] {
            context.rotate_left(1);
            *context.last_mut().expect("a context of one token or more") = Token::byte(byte);
        }
        Generation {
            model: self,
            context,
            left: max_tokens,
            temperature,
            rng: SplitMix64::new(seed),
            utf8: Utf8::default(),
            end_allowed: true,
            stopped: None,
            activations: Activations::new(&self.shape),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        encode(MAGIC, VERSION, |body| self.write(body))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Model, DecodeError> {
        decode(MAGIC, VERSION, bytes, Model::read)
    }

    pub(crate) fn write(&self, out: &mut Writer) {
        for value in [self.shape.context, self.shape.embedding, self.shape.hidden] {
            out.u32(value);
        }
        out.f32s(&self.parameters);
    }

    pub(crate) fn read(input: &mut Reader<'_>) -> Result<Model, DecodeError> {
        let shape = Shape { context: input.u32()?, embedding: input.u32()?, hidden: input.u32()? };
        shape.check().map_err(DecodeError::Malformed)?;
        let parameters = input.f32s()?;
        if parameters.len() != shape.parameters() {
            return Err(DecodeError::Malformed(format!(
                "{} parameters where its shape has {}",
                parameters.len(),
                shape.parameters()
            )));
        }
        if !parameters.iter().all(|w| w.is_finite()) {
            return Err(DecodeError::Malformed("a parameter is not a finite number".to_owned()));
        }
        Ok(Model { shape, parameters })
    }
}

/// Why a generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The model wrote [`Token::END`].
    End,
    /// `max_tokens` were written.
    Length,
}

/// Where the output stands in UTF-8: how many continuation bytes the current character still
/// needs, and the range of the next one (narrower after some first bytes: no overlong forms, no
/// surrogates, nothing past U+10FFFF).
#[derive(Debug, Clone, Copy)]
struct Utf8 {
    pending: u8,
    low: u8,
    high: u8,
}

impl Default for Utf8 {
    fn default() -> Utf8 {
        Utf8 { pending: 0, low: 0x80, high: 0xBF }
    }
}

/// A first byte's character length and the range of its second byte (RFC 3629's table).
fn lead(byte: u8) -> Option<(u8, u8, u8)> {
    Some(match byte {
        0x00..=0x7F => (1, 0x80, 0xBF),
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xF0 => (4, 0x90, 0xBF),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        _ => return None,
    })
}

impl Utf8 {
    /// Whether `token` may come next with `left` tokens left (this one included).
    fn allows(&self, token: Token, left: u32) -> bool {
        match token.as_byte() {
            None => self.pending == 0,
            Some(byte) if self.pending > 0 => (self.low..=self.high).contains(&byte),
            Some(byte) => lead(byte).is_some_and(|(length, _, _)| u32::from(length) <= left),
        }
    }

    fn push(&mut self, byte: u8) {
        if self.pending > 0 {
            *self = Utf8 { pending: self.pending - 1, ..Utf8::default() };
        } else if let Some((length, low, high)) = lead(byte) {
            *self = Utf8 { pending: length - 1, low, high };
        }
    }
}

/// The tokens a model writes after a prompt; see [`Model::generate`].
pub struct Generation<'m> {
    model: &'m Model,
    context: Vec<Token>,
    left: u32,
    temperature: f32,
    rng: SplitMix64,
    utf8: Utf8,
    end_allowed: bool,
    stopped: Option<Stop>,
    activations: Activations,
}

impl<'m> Generation<'m> {
    /// Why it stopped, once it has.
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    /// Never ends before `max_tokens` (vLLM's `ignore_eos`): for load tests.
    pub fn ignoring_end(mut self) -> Self {
        self.end_allowed = false;
        self
    }

    /// The same tokens as text, one piece per character.
    pub fn pieces(self) -> Pieces<'m> {
        Pieces { tokens: self, buffer: Vec::with_capacity(4) }
    }

    fn choose(&mut self) -> Token {
        self.model.forward(&self.context, &mut self.activations);
        let logits = &self.activations.logits;
        let allowed = |index: usize| {
            let token = Token::from_index(index).expect("a score per token");
            let allowed = self.utf8.allows(token, self.left) && (self.end_allowed || token != Token::END);
            allowed.then_some(token)
        };
        // The first allowed token of highest score: greedy, and the reference of the softmax.
        let mut best: Option<(Token, f32)> = None;
        for (index, &logit) in logits.iter().enumerate() {
            if let Some(token) = allowed(index)
                && best.is_none_or(|(_, score)| logit > score)
            {
                best = Some((token, logit));
            }
        }
        let (best, max) = best.expect("an ASCII byte or a continuation byte is always allowed");
        if self.temperature.is_nan() || self.temperature <= 0.0 {
            return best;
        }
        let weights: Vec<(Token, f64)> = logits
            .iter()
            .enumerate()
            .filter_map(|(index, &logit)| {
                allowed(index).map(|token| (token, f64::from(((logit - max) / self.temperature).exp())))
            })
            .collect();
        let total: f64 = weights.iter().map(|(_, weight)| weight).sum();
        // 53 random bits: a uniform draw in [0, total).
        let mut draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        for &(token, weight) in &weights {
            if draw < weight {
                return token;
            }
            draw -= weight;
        }
        weights.last().map_or(best, |&(token, _)| token)
    }
}

impl Iterator for Generation<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if self.stopped.is_some() {
            return None;
        }
        if self.left == 0 {
            self.stopped = Some(Stop::Length);
            return None;
        }
        let token = self.choose();
        let Some(byte) = token.as_byte() else {
            self.stopped = Some(Stop::End);
            return None;
        };
        self.utf8.push(byte);
        self.left -= 1;
        self.context.rotate_left(1);
        *self.context.last_mut().expect("a context of one token or more") = token;
        Some(token)
    }
}

/// A model's tokens as text: each item is one whole character, whose [`crate::count_tokens`] is
/// the number of tokens it took.
pub struct Pieces<'m> {
    tokens: Generation<'m>,
    buffer: Vec<u8>,
}

impl Pieces<'_> {
    /// Why it stopped, once it has.
    pub fn stopped(&self) -> Option<Stop> {
        self.tokens.stopped
    }
}

impl Iterator for Pieces<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        // A generation writes whole characters only, so the buffer is empty when it stops.
        for token in self.tokens.by_ref() {
            self.buffer.extend(token.as_byte());
            if let Ok(piece) = std::str::from_utf8(&self.buffer) {
                let piece = piece.to_owned();
                self.buffer.clear();
                return Some(piece);
            }
        }
        debug_assert!(self.buffer.is_empty(), "a generation cut a character");
        None
    }
}
