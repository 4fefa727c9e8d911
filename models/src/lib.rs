//! The contract between the host that trains and the board that listens.
//!
//! Both sides link this crate so that a feature the heads were trained on is,
//! bit for bit, the feature the board computes for the same samples.
//!
//! - [`labels`]: the seven emotions, their order and their TESS codes.
//! - [`frontend`]: WAV decoding, mono mix-down, resampling to 16 kHz, normalisation.
//! - [`transcript`]: the template that turns a spoken word into the text the text encoder reads.
//! - [`tokenizer`]: one transcript to token ids, with padding and truncation off.
//! - [`encoder`]: runs an exported encoder graph (pruned HuBERT, BERT) with tract.

pub mod encoder;
pub mod frontend;
pub mod labels;
pub mod tokenizer;
pub mod transcript;

pub use frontend::{AudioError, Frontend, FrontendConfig};
pub use labels::Emotion;
pub use transcript::TranscriptTemplate;
