//! The corpus side: utterances on disk, their labels, and the splits.
//!
//! - [`scan`]: `data scan` for every corpus: detection, the walk, duplicates, WAV
//!   headers, the label map applied, warnings; the readers below only parse names.
//! - [`tess`], [`ravdess`], [`crema_d`], [`savee`], [`emodb`]: what each corpus's file
//!   names (and, for CREMA-D, its demographics file) say: speaker, label, sentence, as a
//!   [`labelled`] utterance or the reason it is passed over.
//! - [`csv_list`]: any other corpus, listed in a CSV (path, label, speaker, transcript).
//! - [`label_map`]: which corpus label becomes which emotion, which are left out.
//! - [`corpus`]: where the embedded synthetic corpus lives.
//! - [`manifest`]: the manifest (one row per utterance) and its count table.
//! - [`splits`]: seeded random, speaker-independent and word-disjoint splits.
//! - [`negatives`]: recorded speech without a vocabulary word, split by speaker, for the
//!   keyword spotter's "not a keyword".

pub mod corpus;
pub mod crema_d;
pub mod csv_list;
pub mod emodb;
pub mod label_map;
pub mod labelled;
pub mod manifest;
pub mod negatives;
pub mod ravdess;
pub mod savee;
pub mod scan;
pub mod splits;
pub mod tess;
