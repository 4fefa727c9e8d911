//! host-trainer: everything that happens on the host before a model reaches the board.
//!
//! - [`corpus`]: where the embedded synthetic corpus lives.
//! - [`tess`]: scanning a TESS download into a manifest.
//! - [`manifest`]: the manifest (one row per utterance) and its count table.
//! - [`splits`]: seeded random, speaker-independent and word-disjoint splits.
//! - [`encoders`]: HF checkpoints (HuBERT/wav2vec2, BERT) to pruned ONNX encoder graphs.
//! - [`fetch`]: downloading the reference checkpoints from the Hugging Face Hub.
//! - [`feature_cache`]: encoder outputs on disk, keyed by what they depend on.
//! - [`extract`]: front-end and encoders over a manifest, into the cache.
//! - [`hidden_dump`]: every hidden state of one input, for checking an import by hand.
//! - [`heads`]: the speech, text and fusion heads (burn modules and their configs).
//! - [`training`]: the training loop (AdamW, early stopping), saving and loading heads.
//! - [`keyword_spotting`]: the keyword spotter (which vocabulary word was said), its
//!   threshold and its evaluation.
//! - [`metrics`]: sklearn-style classification report and confusion matrix.
//! - [`dataset`]: a split's examples, read from the feature cache.
//! - [`runs`]: one model trained on one split, saved with its curves; evaluation of runs.
//! - [`evaluation`]: per-split reports, the model comparison and `metrics.json`.
//! - [`bundle_evaluation`]: a split's test part classified through an exported bundle.
//! - [`export`]: heads and encoders to a bundle, int8 variant, quantisation report.
//! - [`head_export`]: trained heads to ONNX (Conv, MaxPool, bidirectional LSTM, attention).
//! - [`projection`]: PCA and t-SNE maps to two dimensions, and the silhouette score.
//! - [`plots`]: the report's figures (plotters), each as PNG and SVG.
//! - [`representations`]: each trained head's representations, mapped and scored.
//! - [`probe`]: a linear probe per encoder layer (where emotion lives).
//! - [`report`]: the HTML and Markdown report that compares the three models.

pub mod bundle_evaluation;
pub mod corpus;
pub mod dataset;
pub mod encoders;
pub mod evaluation;
pub mod export;
pub mod extract;
pub mod feature_cache;
pub mod fetch;
pub mod head_export;
pub mod heads;
pub mod hidden_dump;
pub mod keyword_spotting;
pub mod manifest;
pub mod metrics;
pub mod plots;
pub mod probe;
pub mod projection;
pub mod report;
pub mod representations;
pub mod runs;
pub mod splits;
pub mod tess;
pub mod training;
