//! Export: trained heads and encoders to the bundle the board loads.
//!
//! - [`request`]: what an export is asked to do.
//! - [`bundle`]: the export's stages, in order, from trained runs to a bundle in place.
//! - [`head_onnx`]: trained burn heads written as ONNX graphs (Conv, MaxPool,
//!   bidirectional LSTM, attention) that the board runs with tract.
//! - [`variants`]: the fp32 and int8 variants' graphs (quantisation, calibration).
//! - [`keyword_spotter`]: the keyword table and the spotter, measured per variant.
//! - [`measure`]: each variant through the staged bundle: accuracy, agreement, latency.
//! - [`default_variant`]: which variant the board loads unless told.
//! - [`quantization_report`]: `quantization.md`.
//! - [`vad`]: the voice-activity detector the bundle carries (Silero), checked, and added
//!   to a bundle exported without it.
//! - [`signing`]: minisign key pairs and the signature of a bundle's manifest.

pub mod bundle;
pub mod default_variant;
pub mod head_onnx;
pub mod keyword_spotter;
pub mod measure;
pub mod quantization_report;
pub mod request;
pub mod signing;
pub mod vad;
pub mod variants;
