//! `data scan` for every corpus: which corpus a folder holds, the walk over its files,
//! and the steps all readers share (duplicates, WAV headers, the label map, warnings).
//! Each reader ([`tess`](super::tess), [`ravdess`](super::ravdess),
//! [`crema_d`](super::crema_d), [`savee`](super::savee), [`emodb`](super::emodb),
//! [`csv_list`](super::csv_list)) only says what one file's name means.
//!
//! The download's layout is left as it is; a file the scan passes over is always named
//! in a warning, never skipped silently.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use emotion_core::TranscriptTemplate;
use emotion_core::frontend::probe_wav;
use indicatif::{ProgressBar, ProgressStyle};
use walkdir::WalkDir;

use crate::data::label_map::{LabelMap, Mapped};
use crate::data::labelled::{Candidate, Labelled, Skip};
use crate::data::manifest::{CorpusEntry, CorpusManifest};
use crate::data::{crema_d, csv_list, emodb, ravdess, savee, tess};

/// The corpora `data scan` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Corpus {
    /// Toronto Emotional Speech Set (`OAF_back_angry.wav`).
    Tess,
    /// RAVDESS (`03-01-05-01-02-01-12.wav`).
    Ravdess,
    /// CREMA-D (`1001_DFA_ANG_XX.wav`).
    CremaD,
    /// SAVEE (`AudioData/DC/a01.wav`).
    Savee,
    /// Berlin EmoDB (`03a01Fa.wav`).
    EmoDb,
    /// Any corpus listed in a CSV file (path, label, speaker, optional transcript).
    Csv,
}

impl Corpus {
    /// All corpora, in the order detection tries them.
    pub const ALL: [Corpus; 6] = [
        Corpus::Tess,
        Corpus::Ravdess,
        Corpus::CremaD,
        Corpus::Savee,
        Corpus::EmoDb,
        Corpus::Csv,
    ];

    /// The name used on the command line and in the manifest's `corpus` column.
    pub fn name(self) -> &'static str {
        match self {
            Corpus::Tess => "tess",
            Corpus::Ravdess => "ravdess",
            Corpus::CremaD => "crema-d",
            Corpus::Savee => "savee",
            Corpus::EmoDb => "emodb",
            Corpus::Csv => "csv",
        }
    }

    /// What one WAV's path below the corpus root means. Not for [`Corpus::Csv`], whose
    /// labels come from its list.
    fn parse(self, relative: &Path) -> Result<Labelled, Skip> {
        let file_name = relative
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Skip::BadName("the file name is not UTF-8".into()))?;
        match self {
            Corpus::Tess => tess::labelled(file_name),
            Corpus::Ravdess => ravdess::labelled(file_name),
            Corpus::CremaD => crema_d::labelled(file_name),
            Corpus::Savee => savee::labelled(relative),
            Corpus::EmoDb => emodb::labelled(file_name),
            Corpus::Csv => Err(Skip::BadName("not listed in a CSV".into())),
        }
    }
}

impl fmt::Display for Corpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Corpus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        let wanted = match wanted.as_str() {
            "cremad" => "crema-d",
            "emo-db" | "berlin" => "emodb",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|c| c.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown corpus '{text}': expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Options for [`scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// How each word or sentence becomes a transcript.
    pub transcript: TranscriptTemplate,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// The corpus, or `None` to detect it from the file names.
    pub corpus: Option<Corpus>,
    /// Which labels become which emotions, and which are left out.
    pub label_map: LabelMap,
}

/// A file the scan passed over or treated specially, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanWarning {
    /// The file name does not parse; the file is skipped.
    BadName {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The WAV header cannot be read; the file is skipped.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The front-end's error, as text.
        reason: String,
    },
    /// A second file for an utterance already listed (TESS's duplicated top folder):
    /// counted once, the first path in sorted order kept.
    Duplicate {
        /// The file kept.
        kept: PathBuf,
        /// The file dropped.
        dropped: PathBuf,
        /// Whether the two files have the same size.
        same_size: bool,
    },
    /// A video recording: only audio is read.
    VideoOnly {
        /// The file.
        path: PathBuf,
        /// Why it counts as video.
        reason: String,
    },
    /// A recording that is not speech (RAVDESS song).
    NotSpeech {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Audio in another format than WAV (CREMA-D's `AudioMP3` copies); skipped.
    NotWav {
        /// The file.
        path: PathBuf,
    },
    /// Utterances whose label the label map leaves out.
    LabelDropped {
        /// The label.
        label: String,
        /// How many utterances carry it.
        count: usize,
        /// Whether a rule says `drop` (else: no rule and no emotion of that name).
        by_rule: bool,
    },
    /// The corpus's own metadata disagrees with the files (CREMA-D's demographics).
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What disagrees.
        problem: String,
    },
}

impl ScanWarning {
    /// A short name of the kind, for grouping many warnings of one kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ScanWarning::BadName { .. } => "unparsable name",
            ScanWarning::Unreadable { .. } => "unreadable WAV",
            ScanWarning::Duplicate { .. } => "duplicate",
            ScanWarning::VideoOnly { .. } => "video",
            ScanWarning::NotSpeech { .. } => "not speech",
            ScanWarning::NotWav { .. } => "not WAV",
            ScanWarning::LabelDropped { .. } => "label dropped",
            ScanWarning::Metadata { .. } => "metadata",
        }
    }
}

impl fmt::Display for ScanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanWarning::BadName { path, reason } | ScanWarning::Unreadable { path, reason } => {
                write!(f, "skipped {}: {reason}", path.display())
            }
            ScanWarning::Duplicate {
                kept,
                dropped,
                same_size,
            } => {
                let bytes = if *same_size {
                    "same size"
                } else {
                    "DIFFERENT bytes"
                };
                write!(
                    f,
                    "duplicate {} is the same utterance as {} ({bytes}); kept the latter",
                    dropped.display(),
                    kept.display()
                )
            }
            ScanWarning::VideoOnly { path, reason } => {
                write!(
                    f,
                    "skipped video {}: {reason}; only audio-only speech is read",
                    path.display()
                )
            }
            ScanWarning::NotSpeech { path, reason } => {
                write!(f, "skipped {}: {reason}", path.display())
            }
            ScanWarning::NotWav { path } => write!(
                f,
                "skipped {}: not a WAV file (only WAV recordings are read)",
                path.display()
            ),
            ScanWarning::LabelDropped {
                label,
                count,
                by_rule,
            } => {
                let why = if *by_rule {
                    "the label map drops it"
                } else {
                    "no emotion has that name and the label map has no rule for it"
                };
                write!(
                    f,
                    "left out {count} utterance(s) labelled '{label}': {why} (map it with --label-map, e.g. `{label} = neutral`)"
                )
            }
            ScanWarning::Metadata { path, problem } => {
                write!(f, "{}: {problem}", path.display())
            }
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// The corpus read (given or detected).
    pub corpus: Corpus,
    /// One entry per distinct utterance kept, sorted by id.
    pub manifest: CorpusManifest,
    /// Files passed over or worth a look, in path order, then the labels left out.
    pub warnings: Vec<ScanWarning>,
    /// Files seen again for an utterance already listed, counted once.
    pub duplicates: usize,
    /// Facts about the corpus's own metadata worth printing (CREMA-D's demographics).
    pub notes: Vec<String>,
}

/// A scan that could not start or found nothing.
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
    /// No file name under the folder follows any corpus's naming.
    #[error(
        "cannot tell which corpus {0} holds: no WAV file name below it follows the naming of TESS, RAVDESS, CREMA-D, SAVEE or EmoDB; pass --corpus NAME, or list the files in a CSV (path,label,speaker[,transcript]) and scan that with --corpus csv"
    )]
    Undetected(PathBuf),
    /// The CSV list is missing, malformed or names no usable column.
    #[error("{0}")]
    List(String),
    /// A file given where a folder is expected, or the reverse.
    #[error("{0}")]
    Usage(String),
    /// Nothing kept.
    #[error("no {corpus} utterances kept under {path}: {hint}")]
    Empty {
        /// The corpus.
        corpus: Corpus,
        /// The folder or list.
        path: PathBuf,
        /// What to check.
        hint: String,
    },
}

/// Reads the corpus at `path` (a folder, or a CSV list for [`Corpus::Csv`]) into a
/// manifest. Files are visited in sorted path order, so which copy of a duplicate is
/// kept does not depend on the file system. A file the scan cannot use is a warning,
/// not an error: the scan goes on.
pub fn scan(path: &Path, options: &ScanOptions) -> Result<ScanReport, ScanError> {
    let root = path.canonicalize().map_err(|source| ScanError::Directory {
        path: path.to_path_buf(),
        source,
    })?;
    let corpus = which_corpus(&root, options.corpus)?;
    let mut warnings = Vec::new();
    let candidates = candidates(&root, corpus, &mut warnings)?;

    let bar = if options.progress {
        ProgressBar::new(candidates.len() as u64).with_style(
            ProgressStyle::with_template("scanning {bar:30} {pos}/{len} files {per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    } else {
        ProgressBar::hidden()
    };
    let mut duplicates = 0;
    let mut dropped: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut seen: BTreeMap<String, (PathBuf, u64)> = BTreeMap::new();
    let mut kept: Vec<CorpusEntry> = Vec::new();
    for (path, parsed) in candidates {
        bar.inc(1);
        let labelled = match parsed {
            Ok(labelled) => labelled,
            Err(Skip::BadName(reason)) => {
                warnings.push(ScanWarning::BadName { path, reason });
                continue;
            }
            Err(Skip::VideoOnly(reason)) => {
                warnings.push(ScanWarning::VideoOnly { path, reason });
                continue;
            }
            Err(Skip::NotSpeech(reason)) => {
                warnings.push(ScanWarning::NotSpeech { path, reason });
                continue;
            }
        };
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if let Some((first, first_size)) = seen.get(&labelled.id) {
            duplicates += 1;
            warnings.push(ScanWarning::Duplicate {
                kept: first.clone(),
                dropped: path,
                same_size: *first_size == size,
            });
            continue;
        }
        seen.insert(labelled.id.clone(), (path.clone(), size));
        let emotion = match options.label_map.map(&labelled.label) {
            Mapped::Emotion(emotion) => emotion,
            other => {
                let slot = dropped.entry(labelled.label).or_insert((0, false));
                slot.0 += 1;
                slot.1 = other == Mapped::Dropped;
                continue;
            }
        };
        let info = match probe_wav(&path) {
            Ok(info) => info,
            Err(err) => {
                let reason = if is_lfs_pointer(&path) {
                    "a Git LFS pointer, not audio (CREMA-D's repository keeps its audio in LFS: run `git lfs pull`)".to_string()
                } else {
                    err.to_string()
                };
                warnings.push(ScanWarning::Unreadable { path, reason });
                continue;
            }
        };
        kept.push(CorpusEntry {
            id: labelled.id,
            transcript: options.transcript.fill(&labelled.text),
            path,
            speaker: labelled.speaker,
            word: labelled.text,
            emotion,
            sample_rate: info.sample_rate,
            duration_s: info.duration_seconds,
            corpus: corpus.name().to_string(),
            label: labelled.label,
            intensity: labelled.intensity,
        });
    }
    bar.finish_and_clear();

    for (label, (count, by_rule)) in dropped {
        warnings.push(ScanWarning::LabelDropped {
            label,
            count,
            by_rule,
        });
    }
    let entries = kept;
    let mut notes = Vec::new();
    if corpus == Corpus::CremaD {
        let check = crema_d::check_demographics(&root, &entries);
        if let Some(path) = check.path {
            warnings.extend(
                check
                    .problems
                    .into_iter()
                    .map(|problem| ScanWarning::Metadata {
                        path: path.clone(),
                        problem,
                    }),
            );
        }
        notes.push(check.note);
    }
    if entries.is_empty() {
        let hint = if warnings.is_empty() {
            format!(
                "no file follows {corpus}'s naming; is this the folder the download unpacked to?"
            )
        } else {
            let first: Vec<String> = warnings.iter().take(3).map(|w| w.to_string()).collect();
            format!(
                "{} file(s) or label(s) were passed over, among them:\n  {}",
                warnings.len(),
                first.join("\n  ")
            )
        };
        return Err(ScanError::Empty {
            corpus,
            path: root,
            hint,
        });
    }
    Ok(ScanReport {
        corpus,
        manifest: CorpusManifest::new(entries),
        warnings,
        duplicates,
        notes,
    })
}

/// The corpus to read at `root`: the one given, else a CSV list for a file, else the
/// one detected from the file names.
fn which_corpus(root: &Path, given: Option<Corpus>) -> Result<Corpus, ScanError> {
    match (given, root.is_file()) {
        (Some(Corpus::Csv) | None, true) => Ok(Corpus::Csv),
        (Some(Corpus::Csv), false) => Err(ScanError::Usage(format!(
            "--corpus csv takes the CSV list itself, not the folder {}",
            root.display()
        ))),
        (Some(other), true) => Err(ScanError::Usage(format!(
            "{} is a file: a {other} scan takes the corpus folder (a file is read as a CSV list with --corpus csv)",
            root.display()
        ))),
        (Some(corpus), false) => Ok(corpus),
        (None, false) => detect(root),
    }
}

/// Every recording with what its reader makes of it, in path (or list) order; video and
/// non-WAV audio go straight to `warnings`.
fn candidates(
    root: &Path,
    corpus: Corpus,
    warnings: &mut Vec<ScanWarning>,
) -> Result<Vec<Candidate>, ScanError> {
    if corpus == Corpus::Csv {
        return csv_list::read(root).map_err(ScanError::List);
    }
    let mut candidates = Vec::new();
    for (path, kind) in media_files(root)? {
        match kind {
            Media::Wav => {
                let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                candidates.push((path, corpus.parse(&relative)));
            }
            Media::Video => warnings.push(ScanWarning::VideoOnly {
                path,
                reason: "a video file".into(),
            }),
            Media::OtherAudio => warnings.push(ScanWarning::NotWav { path }),
        }
    }
    Ok(candidates)
}

/// Whether `path` is a Git LFS pointer file (a clone made without `git lfs`).
fn is_lfs_pointer(path: &Path) -> bool {
    use std::io::Read as _;
    const MAGIC: &[u8] = b"version https://git-lfs";
    let mut head = [0u8; MAGIC.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == MAGIC)
}

/// Which corpus a folder holds: the reader that understands the most WAV file names
/// (ties go to the earlier in [`Corpus::ALL`]).
pub fn detect(root: &Path) -> Result<Corpus, ScanError> {
    let wavs: Vec<PathBuf> = media_files(root)?
        .into_iter()
        .filter(|(_, kind)| *kind == Media::Wav)
        .map(|(path, _)| path.strip_prefix(root).unwrap_or(&path).to_path_buf())
        .collect();
    let understood = |corpus: Corpus| {
        wavs.iter()
            .filter(|path| !matches!(corpus.parse(path), Err(Skip::BadName(_))))
            .count()
    };
    let mut best = (0, Corpus::Tess);
    for corpus in Corpus::ALL.into_iter().filter(|c| *c != Corpus::Csv) {
        let n = understood(corpus);
        if n > best.0 {
            best = (n, corpus);
        }
    }
    if best.0 == 0 {
        return Err(ScanError::Undetected(root.to_path_buf()));
    }
    Ok(best.1)
}

/// What kind of media file a path is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Media {
    Wav,
    Video,
    OtherAudio,
}

fn media_kind(path: &Path) -> Option<Media> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "wav" => Some(Media::Wav),
        "mp4" | "flv" | "avi" | "mov" | "mkv" | "webm" => Some(Media::Video),
        "mp3" | "flac" | "ogg" | "m4a" | "aac" | "opus" => Some(Media::OtherAudio),
        _ => None,
    }
}

/// Every audio or video file under `root` (any case), sorted by path; other files
/// (READMEs, metadata) are not media and are left alone.
fn media_files(root: &Path) -> Result<Vec<(PathBuf, Media)>, ScanError> {
    let mut files = Vec::new();
    for item in WalkDir::new(root).sort_by_file_name() {
        let item = item.map_err(|source| ScanError::Walk {
            path: source.path().unwrap_or(root).to_path_buf(),
            source,
        })?;
        if !item.file_type().is_file() {
            continue;
        }
        if let Some(kind) = media_kind(item.path()) {
            files.push((item.into_path(), kind));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_names_parse_and_unknown_ones_list_the_choices() {
        for corpus in Corpus::ALL {
            assert_eq!(corpus.name().parse::<Corpus>(), Ok(corpus));
        }
        assert_eq!("CREMAD".parse::<Corpus>(), Ok(Corpus::CremaD));
        assert_eq!("emo_db".parse::<Corpus>(), Ok(Corpus::EmoDb));
        let err = "iemocap".parse::<Corpus>().unwrap_err();
        assert!(err.contains("ravdess") && err.contains("csv"), "{err}");
    }

    #[test]
    fn each_corpus_understands_only_its_own_names() {
        let names = [
            (Corpus::Tess, "OAF_back_angry.wav"),
            (Corpus::Ravdess, "03-01-05-01-02-01-12.wav"),
            (Corpus::CremaD, "1001_DFA_ANG_XX.wav"),
            (Corpus::Savee, "AudioData/DC/a01.wav"),
            (Corpus::EmoDb, "03a01Fa.wav"),
        ];
        for (corpus, _) in names {
            for (owner, name) in names {
                let understood = corpus.parse(Path::new(name)).is_ok();
                assert_eq!(understood, corpus == owner, "{corpus} on {name}");
            }
        }
    }
}
