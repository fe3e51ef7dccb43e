//! The built-in language model, pure: a small byte-level neural language model trained on CPU
//! from a text of the data commons, so that the AI-as-a-Service gateway has a real model to serve
//! without a GPU or a download. Values in, values out: a text in, a [`Checkpoint`] advanced a
//! minibatch at a time, a [`Model`] out; both as bytes with a versioned header, their length and
//! a BLAKE3 hash (`grappe_train::codec`), so that a torn or changed file is refused. Reading
//! files, writing checkpoints, signals and HTTP are the caller's (`grappe train language-model`,
//! `grappe model serve`).
//!
//! The model ([`model`]) is Bengio et al.'s neural probabilistic language model (2003) over
//! bytes: the tokens are the 256 byte values of UTF-8 and one special, [`Token::END`], the
//! boundary of a text. The embeddings of the last `context` tokens (8 by default, 32 numbers
//! each) are concatenated, go through a `tanh` hidden layer (128) and a softmax over the 257
//! tokens: 74,273 parameters by default. Training ([`train`]) is minibatch Adam on the
//! cross-entropy with hand-written backpropagation, in `f32` with every sum in a fixed order, each
//! epoch's order drawn from the seed (`grappe_train::rng`, our SplitMix64): the same text and
//! settings give the same bytes, stopped and resumed or not. Generation ([`Generation`]) samples
//! only what keeps the output valid UTF-8 and never starts a character that `max_tokens` would
//! cut, so a completion of `n` tokens is exactly `n` bytes of text: [`count_tokens`] of it.
//!
//! Why no ML framework (candle, burn), which the issue suggested: a framework adds minutes of
//! build time on our two-core CI and hundreds of dependencies, for a model whose forward and
//! backward passes are four matrix products written in a hundred lines. The point of this model
//! is the mechanics of serving (the OpenAI format, streaming, exact token counts, checkpoints),
//! not the quality of its French: it learns a text's spelling and common words in seconds, and
//! whoever needs a real model registers one and serves it with vLLM on a GPU node.
//!
//! ```
//! use grappe_lm::{TrainConfig, Trainer, count_tokens};
//!
//! let text = "Le salarié a droit à un congé payé.\nL'employeur verse le salaire.\n";
//! let config = TrainConfig { epochs: 2, ..TrainConfig::DEFAULT };
//! let trainer = Trainer::new(config, text).expect("valid text");
//! let mut state = trainer.start();
//! while let Some(_batch_loss) = trainer.step(&mut state) {}
//! let model = state.model();
//! let text: String = model.generate("Le ", 20, 0.0, 0).pieces().collect();
//! assert!(count_tokens(&text) <= 20);
//! ```

pub mod examples;
pub mod model;
pub mod train;

pub use examples::{Examples, ExamplesError, read_examples};
pub use grappe_train::{DecodeError, TrainError};
pub use model::{Generation, Model, Pieces, Shape, Stop};
pub use train::{Checkpoint, TrainConfig, Trainer};

/// Tokens: the 256 byte values, then the specials.
pub const VOCABULARY: usize = 257;
/// The most parameters a model may have: 16 MiB of `f32`.
pub const MAX_PARAMETERS: usize = 1 << 22;
/// The longest training text.
pub const MAX_TEXT_BYTES: usize = 64 << 20;

/// A token: a byte of UTF-8 text (`0..=255`) or a special.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(u16);

impl Token {
    /// The boundary of a text: the context before a text's first byte is made of it, and the
    /// model writes it to end a text.
    pub const END: Token = Token(256);

    pub fn byte(byte: u8) -> Token {
        Token(u16::from(byte))
    }

    /// The byte this token stands for, if it is not a special.
    pub fn as_byte(self) -> Option<u8> {
        u8::try_from(self.0).ok()
    }

    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The token of index `index`, if there is one.
    pub fn from_index(index: usize) -> Option<Token> {
        (index < VOCABULARY).then_some(Token(index as u16))
    }
}

/// How many tokens the model reads for `text` as a prompt, and how many it wrote for `text` as a
/// completion: one per UTF-8 byte. The [`Token::END`]s that stand before a prompt are the model's
/// own context, not the caller's text, and the one that ends a completion is not written out:
/// neither is counted.
pub fn count_tokens(text: &str) -> u64 {
    text.len() as u64
}

/// `text`'s tokens, as the model reads them.
pub fn tokenize(text: &str) -> impl Iterator<Item = Token> + '_ {
    text.bytes().map(Token::byte)
}
