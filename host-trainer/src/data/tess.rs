//! The TESS corpus as the Kaggle download lays it out: find its WAV files, read speaker,
//! word and emotion from each FILE name (never the folder, whose spelling varies), and
//! turn them into a [`CorpusManifest`].
//!
//! The download's quirks are handled here: a duplicated top folder (every file seen
//! twice), folder names in mixed case (`OAF_Fear`, `YAF_pleasant_surprised`), the code
//! `ps` for pleasant surprise, one file at 96 kHz among 24 414 Hz ones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use emotion_core::frontend::probe_wav;
use emotion_core::{Emotion, TranscriptTemplate};
use indicatif::{ProgressBar, ProgressStyle};
use walkdir::WalkDir;

use crate::data::manifest::{CorpusEntry, CorpusManifest};

/// Speaker, word and emotion as a TESS file name gives them (`OAF_back_angry.wav`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TessName {
    /// Speaker code, upper case (`OAF`, `YAF`).
    pub speaker: String,
    /// The target word, lower case.
    pub word: String,
    /// The emotion the word was spoken in.
    pub emotion: Emotion,
}

/// Why a file name is not a TESS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not `SPEAKER_word_emotion.wav`.
    #[error("expected SPEAKER_word_emotion.wav (like OAF_back_angry.wav)")]
    Shape,
    /// The last part is not one of the seven emotion codes.
    #[error("'{0}' is not an emotion code (angry, disgust, fear, happy, neutral, ps, sad)")]
    Emotion(String),
}

/// Parses `OAF_back_angry.wav`, `YAF_chair_ps.WAV`, also `…_pleasant_surprise(d).wav`.
pub fn parse_file_name(file_name: &str) -> Result<TessName, NameError> {
    let stem = file_name
        .strip_suffix(".wav")
        .or_else(|| file_name.strip_suffix(".WAV"))
        .or_else(|| file_name.strip_suffix(".Wav"))
        .ok_or(NameError::Shape)?;
    let mut parts: Vec<&str> = stem.split('_').collect();
    // The folder spelling of pleasant surprise, should it ever reach a file name.
    if parts.len() == 4 && parts[2].eq_ignore_ascii_case("pleasant") {
        let last = parts.pop().unwrap_or_default();
        let joined = format!("pleasant_{last}");
        if Emotion::from_code(&joined) != Some(Emotion::PleasantSurprise) {
            return Err(NameError::Emotion(joined));
        }
        parts[2] = "ps";
    }
    let [speaker, word, code] = parts[..] else {
        return Err(NameError::Shape);
    };
    let is_token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !is_token(speaker) || !word.chars().all(|c| c.is_ascii_alphabetic()) || word.is_empty() {
        return Err(NameError::Shape);
    }
    let emotion = Emotion::from_code(code).ok_or_else(|| NameError::Emotion(code.to_string()))?;
    Ok(TessName {
        speaker: speaker.to_ascii_uppercase(),
        word: word.to_ascii_lowercase(),
        emotion,
    })
}

/// Options for [`scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// How each word becomes a transcript.
    pub transcript: TranscriptTemplate,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// A file the scan skipped or treated specially, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanWarning {
    /// The file name does not parse; the file is skipped.
    BadName {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: NameError,
    },
    /// The WAV header cannot be read; the file is skipped.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The front-end's error, as text.
        reason: String,
    },
    /// A second file for the same speaker/word/emotion whose size differs from the
    /// first: only the first is kept, but the copies are not identical.
    DifferingDuplicate {
        /// The file kept.
        kept: PathBuf,
        /// The file dropped.
        dropped: PathBuf,
    },
}

impl fmt::Display for ScanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanWarning::BadName { path, reason } => {
                write!(f, "skipped {}: {reason}", path.display())
            }
            ScanWarning::Unreadable { path, reason } => {
                write!(f, "skipped {}: {reason}", path.display())
            }
            ScanWarning::DifferingDuplicate { kept, dropped } => write!(
                f,
                "{} has the same speaker/word/emotion as {} but different bytes; kept the latter",
                dropped.display(),
                kept.display()
            ),
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// One entry per distinct speaker/word/emotion, sorted by id.
    pub manifest: CorpusManifest,
    /// Files skipped or worth a look.
    pub warnings: Vec<ScanWarning>,
    /// WAV files seen again for a speaker/word/emotion already listed (the duplicated
    /// top folder of the download), counted once.
    pub duplicates: usize,
}

/// A scan that could not start.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The directory is missing or unreadable.
    #[error("cannot read corpus directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The walk failed below the root (permissions, a vanished folder).
    #[error("cannot walk {path}: {source}")]
    Walk {
        /// Where the walk failed.
        path: PathBuf,
        /// The cause.
        source: walkdir::Error,
    },
    /// Nothing that looks like TESS was found.
    #[error(
        "no TESS files (SPEAKER_word_emotion.wav) under {0}: is this the folder the Kaggle download unpacked to?"
    )]
    Empty(PathBuf),
}

/// Finds every TESS WAV under `root` (recursively) and reads its header.
///
/// Files are visited in sorted path order, so which copy of a duplicate is kept does not
/// depend on the file system. A bad name or an unreadable header is a warning, not an
/// error: the scan goes on.
pub fn scan(root: &Path, options: &ScanOptions) -> Result<ScanReport, ScanError> {
    let root = root.canonicalize().map_err(|source| ScanError::Directory {
        path: root.to_path_buf(),
        source,
    })?;
    let wav_paths = find_wavs(&root)?;

    let bar = if options.progress {
        ProgressBar::new(wav_paths.len() as u64).with_style(
            ProgressStyle::with_template("scanning {bar:30} {pos}/{len} files {per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };

    let mut warnings = Vec::new();
    let mut duplicates = 0;
    let mut kept: BTreeMap<String, (CorpusEntry, u64)> = BTreeMap::new();
    for path in wav_paths {
        bar.inc(1);
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let name = match parse_file_name(file_name) {
            Ok(name) => name,
            Err(reason) => {
                warnings.push(ScanWarning::BadName { path, reason });
                continue;
            }
        };
        let id = CorpusEntry::id_of(&name.speaker, &name.word, name.emotion);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if let Some((first, first_size)) = kept.get(&id) {
            duplicates += 1;
            if *first_size != size {
                warnings.push(ScanWarning::DifferingDuplicate {
                    kept: first.path.clone(),
                    dropped: path,
                });
            }
            continue;
        }
        let info = match probe_wav(&path) {
            Ok(info) => info,
            Err(err) => {
                warnings.push(ScanWarning::Unreadable {
                    path,
                    reason: err.to_string(),
                });
                continue;
            }
        };
        let entry = CorpusEntry {
            id: id.clone(),
            transcript: options.transcript.fill(&name.word),
            path,
            speaker: name.speaker,
            word: name.word,
            emotion: name.emotion,
            sample_rate: info.sample_rate,
            duration_s: info.duration_seconds,
        };
        kept.insert(id, (entry, size));
    }
    bar.finish_and_clear();

    if kept.is_empty() {
        return Err(ScanError::Empty(root));
    }
    Ok(ScanReport {
        manifest: CorpusManifest::new(kept.into_values().map(|(entry, _)| entry).collect()),
        warnings,
        duplicates,
    })
}

/// All `*.wav` files under `root` (any case), sorted by path.
fn find_wavs(root: &Path) -> Result<Vec<PathBuf>, ScanError> {
    let mut paths = Vec::new();
    for item in WalkDir::new(root).sort_by_file_name() {
        let item = item.map_err(|source| ScanError::Walk {
            path: source.path().unwrap_or(root).to_path_buf(),
            source,
        })?;
        let is_wav = item
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if item.file_type().is_file() && is_wav {
            paths.push(item.into_path());
        }
    }
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(speaker: &str, word: &str, emotion: Emotion) -> TessName {
        TessName {
            speaker: speaker.into(),
            word: word.into(),
            emotion,
        }
    }

    #[test]
    fn parses_tess_file_names() {
        assert_eq!(
            parse_file_name("OAF_back_angry.wav"),
            Ok(name("OAF", "back", Emotion::Angry))
        );
        assert_eq!(
            parse_file_name("YAF_chair_ps.wav"),
            Ok(name("YAF", "chair", Emotion::PleasantSurprise))
        );
        assert_eq!(
            parse_file_name("OAF_Food_Fear.WAV"),
            Ok(name("OAF", "food", Emotion::Fear))
        );
        assert_eq!(
            parse_file_name("yaf_dog_pleasant_surprised.wav"),
            Ok(name("YAF", "dog", Emotion::PleasantSurprise))
        );
    }

    #[test]
    fn rejects_names_that_are_not_tess() {
        assert_eq!(parse_file_name("OAF_back.wav"), Err(NameError::Shape));
        assert_eq!(
            parse_file_name("OAF_back_angry_2.wav"),
            Err(NameError::Shape)
        );
        assert_eq!(parse_file_name("OAF_back_angry.mp3"), Err(NameError::Shape));
        assert_eq!(
            parse_file_name("._OAF_back_angry.wav"),
            Err(NameError::Shape)
        );
        assert_eq!(
            parse_file_name("OAF_back_calm.wav"),
            Err(NameError::Emotion("calm".into()))
        );
        assert_eq!(
            parse_file_name("OAF_back_pleasant_mood.wav"),
            Err(NameError::Emotion("pleasant_mood".into()))
        );
    }
}
