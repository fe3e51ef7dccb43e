//! IA Booster, the SME track, pure: values in, values out. No I/O, no clock, no serde, no HTTP,
//! no SQL: the server stores and shows what these functions compute.
//!
//! [`siren`]: SIREN numbers, Luhn-checked. [`naf`]: NAF rev. 2, INSEE's list of activities,
//! embedded from `data/` (source and licence in its README). [`diagnostic`]: the AI-maturity
//! questionnaire and its documented rubric (the module comment is the rubric the result page
//! shows). [`recommend`]: advice from the weakest dimensions and the AI Act class, each linked to
//! the platform's resources. [`peers`]: a company against companies of its size class and NAF
//! section, with k-anonymity (k = 5): a smaller group gives nothing.

pub mod diagnostic;
pub mod naf;
pub mod peers;
pub mod recommend;
pub mod siren;

pub use diagnostic::{Answers, DiagnosticError, Dimension, Level, QUESTIONS, RiskClass, Scores};
pub use naf::{Naf, NafError};
pub use peers::{Benchmark, K_ANONYMITY, Position};
pub use recommend::{Recommendation, Resource, recommend};
pub use siren::{Siren, SirenError};
