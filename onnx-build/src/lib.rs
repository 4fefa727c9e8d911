//! onnx-build: the ONNX writer every host export goes through. It knows nothing of
//! emotions or training: it builds graphs, quantises their weight products to int8 and
//! measures the activation ranges that fix their scales.
//!
//! - [`graph`]: a small builder for ONNX graphs (`tract_onnx::pb`).
//! - [`quantize`]: int8 quantisation of a graph's weight matrix products.
//! - [`calibration`]: activation ranges for fixed-scale int8 activations.

pub mod calibration;
pub mod graph;
pub mod quantize;
