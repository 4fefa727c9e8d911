//! What a corpus reader makes of one recording's name: the labels of one utterance, or
//! why it is passed over. The readers ([`tess`](super::tess), [`ravdess`](super::ravdess),
//! …) produce these; [`scan`](super::scan) turns them into manifest rows and warnings.

use std::path::PathBuf;

/// What a reader takes from one file: the labels of one utterance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// Unique within the corpus and across corpora (TESS: `OAF_back_angry`; others:
    /// `corpus_stem`).
    pub id: String,
    /// Speaker code, prefixed with the corpus except for TESS (`ravdess-12`), so that
    /// two corpora in one run never share a speaker by accident.
    pub speaker: String,
    /// The corpus's label in the readers' common spelling (see `label_map::VOCABULARY`).
    pub label: String,
    /// TESS's word or the sentence said (empty where the corpus does not say).
    pub text: String,
    /// The corpus's intensity, where it records one (`normal`, `strong`, `low`, …).
    pub intensity: String,
}

/// A recording and what its reader made of it.
pub type Candidate = (PathBuf, Result<Labelled, Skip>);

/// Why a reader passes over a file; each becomes a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The name does not follow the corpus's naming; the reason says how it should read.
    BadName(String),
    /// A video recording (RAVDESS modality 01/02).
    VideoOnly(String),
    /// Not speech (RAVDESS song).
    NotSpeech(String),
}

/// The stem of a file name ending in `.wav` (any case), or a [`Skip::BadName`] saying
/// what the corpus's names look like.
pub(crate) fn wav_stem<'a>(file_name: &'a str, expected: &str) -> Result<&'a str, Skip> {
    let n = file_name.len();
    if n > 4 && file_name.is_char_boundary(n - 4) && file_name[n - 4..].eq_ignore_ascii_case(".wav")
    {
        Ok(&file_name[..n - 4])
    } else {
        Err(Skip::BadName(format!("expected {expected}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_stem_takes_any_case_and_refuses_other_files() {
        assert_eq!(wav_stem("a01.WAV", "x"), Ok("a01"));
        assert!(wav_stem(".wav", "x").is_err());
        assert!(wav_stem("a01.mp3", "x").is_err());
        assert!(wav_stem("é.wav", "x").is_ok());
    }
}
