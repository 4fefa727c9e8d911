//! The corpus side: utterances on disk, their labels, and the splits.
//!
//! - [`corpus`]: where the embedded synthetic corpus lives.
//! - [`tess`]: scanning a TESS download into a manifest.
//! - [`manifest`]: the manifest (one row per utterance) and its count table.
//! - [`splits`]: seeded random, speaker-independent and word-disjoint splits.
//! - [`negatives`]: recorded speech without a vocabulary word, split by speaker, for the
//!   keyword spotter's "not a keyword".

pub mod corpus;
pub mod manifest;
pub mod negatives;
pub mod splits;
pub mod tess;
