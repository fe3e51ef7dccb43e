//! The built-in training recipe, pure: a French (or any) text classifier trained on CPU.
//! Values in, values out: rows of text and label in, a [`Checkpoint`] advanced a few examples at
//! a time, a [`Model`] out; both as bytes with a versioned header, their length and a BLAKE3
//! hash, so that a torn file is refused. Reading files, writing checkpoints and signals are the
//! caller's (`grappe train`).
//!
//! The method: hashed features ([`features`]: word 1-2 grams and character 3-5 grams of NFKC,
//! lowercased text into 2^20 signed buckets, sublinear counts, unit length) and multinomial
//! logistic regression trained by SGD with AdaGrad and an L2 penalty ([`train`]), deterministic
//! for a seed: our own SplitMix64 shuffles each epoch from the seed and the epoch's number.
//!
//! Why no ML framework (candle, burn): for a linear model over sparse features a framework adds
//! minutes of build time and hundreds of dependencies, and its dense tensors would hold a
//! 2^20-wide input per example; sparse updates in a few lines of Rust train in seconds on a
//! laptop's CPU. On topic classification of French legal or administrative text, this
//! fastText-like recipe is a strong baseline: the character n-grams carry French morphology
//! (inflections, elisions), and a deeper model would need a GPU to do much better.
//!
//! ```
//! use grappe_train::{TrainConfig, Trainer};
//!
//! let rows: Vec<(String, String)> = [("congé payé", "conges"), ("salaire minimum", "salaire")]
//!     .iter()
//!     .map(|(text, label)| (text.to_string(), label.to_string()))
//!     .collect();
//! let config = TrainConfig { epochs: 3, ..TrainConfig::DEFAULT };
//! let trainer = Trainer::new(config, &rows).expect("valid data");
//! let mut state = trainer.start();
//! while !trainer.is_done(&state) {
//!     trainer.step(&mut state, 64); // returns the epoch's mean loss when one ends
//! }
//! assert_eq!(state.model().predict("un congé"), "conges");
//! ```

pub mod codec;
pub mod features;
mod model;
pub mod rng;
pub mod train;

pub use features::{FeatureConfig, SparseVector, featurize};
pub use model::Model;
pub use train::{Checkpoint, Example, TrainConfig, Trainer};

/// The most labels a model may have.
pub const MAX_LABELS: usize = 1024;
/// The most weights (buckets times labels) a model may have: 256 MiB of `f32`.
pub const MAX_WEIGHTS: usize = 1 << 26;

/// Why bytes are not a model or a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a {kind} file")]
    NotThisKind { kind: String },
    #[error("format version {found}, this program reads version {supported}")]
    Version { found: u32, supported: u32 },
    #[error("{found} bytes where the header says {expected}: the file is torn or was cut short")]
    Length { expected: u64, found: u64 },
    #[error("its hash does not match its content: the file is damaged")]
    Hash,
    #[error("malformed: {0}")]
    Malformed(String),
}

/// Why training cannot start or resume.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid settings: {0}")]
    Config(String),
    #[error("invalid training data: {0}")]
    Data(String),
    #[error("the checkpoint is of another run (other training data, labels or settings)")]
    OtherRun,
}
