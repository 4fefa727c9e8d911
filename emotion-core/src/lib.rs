//! The contract between the host that trains and the board that listens.
//!
//! Both sides link this crate so that a feature the heads were trained on is,
//! bit for bit, the feature the board computes for the same samples.
//!
//! - [`labels`]: the seven emotions, their order and their TESS codes.
//! - [`frontend`]: WAV decoding, mono mix-down, resampling to 16 kHz, normalisation.
//! - [`transcript`]: the template that turns a spoken word into the text the text encoder reads.
//! - [`tokenizer`]: one transcript to token ids, with padding and truncation off.
//! - [`cpu`]: this machine's CPU model, SIMD features and class, as tract sees them.
//! - [`int8`]: whether an int8 graph's products run on integer kernels or in float here.
//! - [`encoder`]: runs an exported encoder graph (pruned HuBERT, BERT) with tract.
//! - `onnx_model`: an ONNX file decoded through a small window, its weights apart.
//! - `graph_load`: ONNX graph to tract plan without holding the graph twice; one thread
//!   pool per thread count for every graph of the process.
//! - [`features`]: hidden states to the feature sequence a head reads (layer mean or stack).
//! - [`head_graph`]: the models (speech, text, fusion), the head-graph contract, running a head.
//! - [`keyword_spotter`]: which vocabulary word was said, from the speech features, or
//!   (open set) that none was.
//! - [`bundle`]: the model bundle: manifest, files, checksums, format version, keyword table.
//! - [`signature`]: signed bundles: the manifest's minisign signature, the keys a board trusts.
//! - [`memory`]: the C allocator's share of the board program's memory.
//! - [`fs`]: files written whole or not at all (temporary file, sync, rename).
//! - [`scores`]: softmax and argmax, one formula for host and board.
//! - [`pipeline`]: a bundle loaded for inference: samples (and text) to seven probabilities.
//! - [`vad`]: the neural voice-activity detector (Silero VAD), streamed chunk by chunk.
//! - [`real_speech`]: the recorded-speech test set's index (fetched into a cache, never committed).

pub mod bundle;
pub mod cpu;
pub mod encoder;
pub mod features;
pub mod frontend;
pub mod fs;
mod graph_load;
pub mod head_graph;
pub mod int8;
pub mod keyword_spotter;
pub mod labels;
pub mod memory;
mod onnx_model;
pub mod pipeline;
pub mod real_speech;
pub mod scores;
pub mod signature;
pub mod tokenizer;
pub mod transcript;
pub mod vad;

pub use frontend::{AudioError, Frontend, FrontendConfig};
pub use labels::Emotion;
pub use pipeline::{Classification, KeywordSource, Pipeline, PipelineOptions, TextInput};
pub use transcript::TranscriptTemplate;
