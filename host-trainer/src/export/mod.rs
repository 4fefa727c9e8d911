//! Export: trained heads and encoders to the bundle the board loads.
//!
//! - [`bundle`]: the export's stages, in order, from trained runs to a bundle in place.
//! - [`heads`]: trained heads to ONNX (Conv, MaxPool, bidirectional LSTM, attention).
//! - [`variants`]: the fp32 and int8 variants' graphs (quantisation, calibration).
//! - [`keyword_spotter`]: the keyword table and the spotter, measured per variant.
//! - [`measure`]: each variant through the staged bundle: accuracy, agreement, latency.
//! - [`default_variant`]: which variant the board loads unless told.
//! - [`quantization_report`]: `quantization.md`.

pub mod bundle;
pub mod default_variant;
pub mod heads;
pub mod keyword_spotter;
pub mod measure;
pub mod quantization_report;
pub mod variants;
