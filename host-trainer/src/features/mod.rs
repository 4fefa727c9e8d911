//! Encoder features: the front-end and the frozen encoders run over a manifest once, into
//! a cache that the training and the reports read.
//!
//! - [`extract`]: front-end and encoders over a manifest, into the cache.
//! - [`cache`]: encoder outputs on disk, keyed by what they depend on.

pub mod cache;
pub mod extract;
