//! host-trainer: everything that happens on the host before a model reaches the board.
//!
//! - [`corpus`]: where the embedded synthetic corpus lives.
//! - [`tess`]: scanning a TESS download into a manifest.
//! - [`manifest`]: the manifest (one row per utterance) and its count table.
//! - [`splits`]: seeded random, speaker-independent and word-disjoint splits.
//! - [`onnx_graph`]: a small builder for ONNX graphs (`tract_onnx::pb`), used by every export.
//! - [`encoders`]: HF checkpoints (HuBERT/wav2vec2, BERT) to pruned ONNX encoder graphs.
//! - [`fetch`]: downloading the reference checkpoints from the Hugging Face Hub.
//! - [`feature_cache`]: encoder outputs on disk, keyed by what they depend on.
//! - [`extract`]: front-end and encoders over a manifest, into the cache.
//! - [`hidden_dump`]: every hidden state of one input, for checking an import by hand.

pub mod corpus;
pub mod encoders;
pub mod extract;
pub mod feature_cache;
pub mod fetch;
pub mod hidden_dump;
pub mod manifest;
pub mod onnx_graph;
pub mod splits;
pub mod tess;
