//! host-trainer: everything that happens on the host before a model reaches the board,
//! one folder per stage of the pipeline, in the order the demo runs them:
//!
//! - [`data`]: a corpus on disk (TESS, RAVDESS, CREMA-D, SAVEE, EmoDB, a CSV list) → a
//!   manifest of utterances (labels through a label map) → splits.
//! - [`encoders`]: HF checkpoints (fetched or random) → pruned ONNX encoder graphs.
//! - [`features`]: the encoders run over a manifest, into a feature cache.
//! - [`train`]: the speech, text and fusion heads and the keyword spotter, fitted on it.
//! - [`evaluate`]: metrics on the test parts, the comparison, the layer probe.
//! - [`export`]: heads and encoders → the bundle the board loads (fp32 and int8).
//! - [`report`]: the HTML and Markdown report, its figures and maps.
//!
//! [`commands`] holds the command-line workflows that string the stages together; the
//! ONNX writer they all use is its own crate, `onnx-build`.

pub mod commands;
pub mod data;
pub mod encoders;
pub mod evaluate;
pub mod export;
pub mod features;
pub mod report;
pub mod train;
