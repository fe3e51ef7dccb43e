pub mod chunk;
pub mod digest;
#[doc(hidden)]
pub mod testing;

pub use digest::Digest;
