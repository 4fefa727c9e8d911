//! Export: trained heads and encoders to the bundle the board loads.
//!
//! - [`heads`]: trained heads to ONNX (Conv, MaxPool, bidirectional LSTM, attention).
//! - [`bundle`]: heads and encoders to a bundle, the int8 variant, the quantisation
//!   report.

pub mod bundle;
pub mod heads;
