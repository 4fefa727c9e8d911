//! Evaluation: how well the trained heads do, on the test parts and through a bundle.
//!
//! - [`metrics`]: sklearn-style classification report and confusion matrix.
//! - [`summary`]: per-split reports, the model comparison and `metrics.json`.
//! - [`corpora`]: with several corpora, the corpus × corpus table and each corpus's
//!   confusion matrices (`corpora.md`, `corpora.json`).
//! - [`through_bundle`]: a split's test part classified through an exported bundle.
//! - [`probe`]: a linear probe per encoder layer (where emotion lives).

pub mod corpora;
pub mod metrics;
pub mod probe;
pub mod summary;
pub mod through_bundle;
