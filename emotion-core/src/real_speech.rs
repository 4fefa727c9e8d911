//! The real-speech clip set: recorded voices from Debian and PyPI packages, fetched into
//! a cache by `scripts/fetch-real-speech.sh` (the licences forbid committing them).
//!
//! The host trains the keyword spotter's "not a keyword" outcome on some of these
//! clips; the board's tests and the segmentation benchmark play them. Both read the
//! cache through this one reader of its `index.tsv`:
//!
//! ```text
//! path  source  licence  rate_hz  channels  duration_s  speaker  kind  transcript  language
//! ```
//!
//! `path` is relative to the cache; `kind` is `word`, `phrase`, `sentence`, `noise` or
//! `conversation`; `transcript` is lower case, empty when unknown; `language` is the
//! ISO 639-1 code of what is said (`en`, and `fr`, `it`, `ru` for the voices that never
//! say an English word).

use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable naming the cache.
pub const CACHE_ENV: &str = "EMOTION_REAL_SPEECH";
/// The cache when [`CACHE_ENV`] is not set (where `.ci/run` fetches it).
pub const DEFAULT_CACHE: &str = "/var/cache/emotion-edge/real-speech";
/// The index file in the cache.
pub const INDEX_FILE: &str = "index.tsv";
/// The script that makes the cache.
pub const FETCH_SCRIPT: &str = "scripts/fetch-real-speech.sh";

const COLUMNS: [&str; 10] = [
    "path",
    "source",
    "licence",
    "rate_hz",
    "channels",
    "duration_s",
    "speaker",
    "kind",
    "transcript",
    "language",
];

/// What a clip holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClipKind {
    /// One word.
    Word,
    /// A few words, at most about 3 s.
    Phrase,
    /// Longer read speech.
    Sentence,
    /// No speech: background noise.
    Noise,
    /// Several speakers taking turns.
    Conversation,
}

impl ClipKind {
    /// The name the index uses.
    pub fn name(self) -> &'static str {
        match self {
            ClipKind::Word => "word",
            ClipKind::Phrase => "phrase",
            ClipKind::Sentence => "sentence",
            ClipKind::Noise => "noise",
            ClipKind::Conversation => "conversation",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            ClipKind::Word,
            ClipKind::Phrase,
            ClipKind::Sentence,
            ClipKind::Noise,
            ClipKind::Conversation,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

impl fmt::Display for ClipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One recording of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The WAV file (the cache joined with the index's relative path).
    pub path: PathBuf,
    /// The package it came from (`asterisk`, `pocketsphinx`, ...).
    pub source: String,
    /// Its licence, as the package states it.
    pub licence: String,
    /// Sample rate, as the file says.
    pub rate_hz: u32,
    /// Channels, as the file says.
    pub channels: u16,
    /// Length in seconds.
    pub duration_s: f64,
    /// The best known speaker id, `unknown` when none.
    pub speaker: String,
    /// What it holds.
    pub kind: ClipKind,
    /// What is said, lower case; empty when unknown.
    pub transcript: String,
    /// The language said, ISO 639-1 (`en`, `fr`, ...).
    pub language: String,
}

impl Clip {
    /// True for English speech (the language of the board's vocabulary and of the
    /// segmentation benchmark's voices).
    pub fn is_english(&self) -> bool {
        self.language == "en"
    }
}

/// The set as the cache's index lists it.
#[derive(Debug, Clone)]
pub struct RealSpeech {
    /// The cache folder.
    pub root: PathBuf,
    /// Every clip of the index, in its order.
    pub clips: Vec<Clip>,
}

/// Why the set cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RealSpeechError {
    /// No index in the folder: the set was never fetched there.
    #[error(
        "{}: no real-speech set here; fetch it with `bash {FETCH_SCRIPT} {}` (or point {CACHE_ENV} at one)",
        .0.display(), .0.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    Missing(PathBuf),
    /// The index cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The index file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line of the index is malformed.
    #[error("{}:{line}: {reason}; fetch the set again with `bash {FETCH_SCRIPT}`", path.display())]
    Malformed {
        /// The index file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl RealSpeech {
    /// The cache folder: [`CACHE_ENV`] when set, else [`DEFAULT_CACHE`].
    pub fn default_root() -> PathBuf {
        std::env::var_os(CACHE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
    }

    /// Reads the index of the set in `root`.
    pub fn open(root: &Path) -> Result<Self, RealSpeechError> {
        let index = root.join(INDEX_FILE);
        let text = match std::fs::read_to_string(&index) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RealSpeechError::Missing(index));
            }
            Err(source) => {
                return Err(RealSpeechError::Io {
                    path: index,
                    source,
                });
            }
        };
        let malformed = |line: usize, reason: String| RealSpeechError::Malformed {
            path: index.clone(),
            line,
            reason,
        };
        let mut lines = text.lines().enumerate();
        let header: Vec<&str> = lines
            .next()
            .map(|(_, l)| l.split('\t').collect())
            .unwrap_or_default();
        if header != COLUMNS {
            return Err(malformed(
                1,
                format!("header {header:?}, expected {COLUMNS:?}"),
            ));
        }
        let mut clips = Vec::new();
        for (i, line) in lines {
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != COLUMNS.len() {
                return Err(malformed(
                    i + 1,
                    format!("{} fields, expected {}", fields.len(), COLUMNS.len()),
                ));
            }
            let number = |column: usize| -> Result<f64, RealSpeechError> {
                fields[column]
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| {
                        malformed(
                            i + 1,
                            format!(
                                "{} {:?} is not a positive number",
                                COLUMNS[column], fields[column]
                            ),
                        )
                    })
            };
            if fields[9].is_empty() {
                return Err(malformed(i + 1, "no language".to_owned()));
            }
            let kind = ClipKind::parse(fields[7])
                .ok_or_else(|| malformed(i + 1, format!("unknown kind {:?}", fields[7])))?;
            let (rate, channels) = (number(3)?, number(4)?);
            if rate.fract() != 0.0
                || rate > f64::from(u32::MAX)
                || channels.fract() != 0.0
                || channels > 64.0
            {
                return Err(malformed(
                    i + 1,
                    format!("rate {rate} Hz, {channels} channels"),
                ));
            }
            clips.push(Clip {
                path: root.join(fields[0]),
                source: fields[1].to_owned(),
                licence: fields[2].to_owned(),
                rate_hz: rate as u32,
                channels: channels as u16,
                duration_s: number(5)?,
                speaker: fields[6].to_owned(),
                kind,
                transcript: fields[8].to_owned(),
                language: fields[9].to_owned(),
            });
        }
        Ok(RealSpeech {
            root: root.to_owned(),
            clips,
        })
    }

    /// The clips of one kind.
    pub fn of_kind(&self, kind: ClipKind) -> impl Iterator<Item = &Clip> {
        self.clips.iter().filter(move |c| c.kind == kind)
    }

    /// For tests and benchmarks: the set in [`RealSpeech::default_root`]. When it cannot
    /// be read, this fails under CI (`CI` set: `.ci/run` fetches it, so its absence is a
    /// bug) and elsewhere prints why `what` is skipped and gives `None`.
    pub fn for_tests(what: &str) -> Option<Self> {
        match Self::open(&Self::default_root()) {
            Ok(set) => Some(set),
            Err(e) if under_ci() => panic!("{what}: the real-speech set is required under CI: {e}"),
            Err(e) => {
                eprintln!("skipped {what} (not under CI): {e}");
                None
            }
        }
    }
}

/// Whether this runs under CI (`CI` set, and not to `false` or `0`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_index(dir: &Path, body: &str) {
        std::fs::write(
            dir.join(INDEX_FILE),
            format!("{}\n{body}", COLUMNS.join("\t")),
        )
        .unwrap();
    }

    #[test]
    fn reads_the_index_the_fetch_script_writes() {
        let dir = tempfile::tempdir().unwrap();
        write_index(
            dir.path(),
            "clips/asterisk/hello.wav\tasterisk\tCC-BY-SA-3.0\t8000\t1\t0.790\tallison\tword\thello\ten\n\
             clips/asterisk-fr/activated.wav\tasterisk-fr\tCC-BY-SA-3.0\t8000\t1\t0.7\tjune\tword\tactivé\tfr\n\
             clips/alsa/Noise.wav\talsa\tGPL-2\t48000\t1\t1.000\tunknown\tnoise\t\ten\n",
        );
        let set = RealSpeech::open(dir.path()).unwrap();
        assert_eq!(set.clips.len(), 3);
        let hello = &set.clips[0];
        assert_eq!(hello.path, dir.path().join("clips/asterisk/hello.wav"));
        assert_eq!(
            (hello.rate_hz, hello.channels, hello.kind),
            (8000, 1, ClipKind::Word)
        );
        assert_eq!(hello.transcript, "hello");
        assert!(hello.is_english());
        assert_eq!(set.clips[1].transcript, "activé");
        assert!(!set.clips[1].is_english());
        assert_eq!(set.of_kind(ClipKind::Noise).count(), 1);
        assert_eq!(set.clips[2].transcript, "");
    }

    #[test]
    fn a_missing_set_says_how_to_fetch_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = RealSpeech::open(dir.path()).unwrap_err();
        assert!(matches!(err, RealSpeechError::Missing(_)));
        assert!(err.to_string().contains(FETCH_SCRIPT), "{err}");
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        let dir = tempfile::tempdir().unwrap();
        for (body, expected) in [
            ("a.wav\ts\tl\t8000\t1\t0.5\tx\tword\thi\n", "fields"),
            (
                "a.wav\ts\tl\t8000\t1\t0.5\tx\tshout\thi\ten\n",
                "unknown kind",
            ),
            ("a.wav\ts\tl\tNaN\t1\t0.5\tx\tword\thi\ten\n", "rate_hz"),
            ("a.wav\ts\tl\t8000\t1\t-1\tx\tword\thi\ten\n", "duration_s"),
            (
                "a.wav\ts\tl\t8000.5\t1\t1\tx\tword\thi\ten\n",
                "rate 8000.5",
            ),
            ("a.wav\ts\tl\t8000\t1\t1\tx\tword\thi\t\n", "no language"),
        ] {
            write_index(dir.path(), body);
            let err = RealSpeech::open(dir.path()).unwrap_err().to_string();
            assert!(err.contains(":2:") && err.contains(expected), "{err}");
        }
        std::fs::write(dir.path().join(INDEX_FILE), "path\tsource\n").unwrap();
        let err = RealSpeech::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(":1:") && err.contains("header"), "{err}");
    }
}
