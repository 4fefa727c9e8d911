//! Training: the heads (burn) fitted on cached features, one run per model and split, and
//! the keyword spotter.
//!
//! - [`heads`]: the speech, text and fusion heads (burn modules and their configs).
//! - [`dataset`]: a split's examples, read from the feature cache.
//! - [`trainer`]: the training loop (AdamW, early stopping), saving and loading heads;
//!   its [`trainer::resume`] is the per-epoch training checkpoint a stopped training
//!   resumes from (not an encoder checkpoint).
//! - [`runs`]: one model trained on one split, saved with its curves; evaluation of runs.
//! - [`keyword_spotter`]: the keyword spotter (which vocabulary word was said), its
//!   threshold and its evaluation.

pub mod dataset;
pub mod heads;
pub mod keyword_spotter;
pub mod runs;
pub mod trainer;
