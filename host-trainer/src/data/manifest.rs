//! The corpus manifest (`manifest.csv`): one row per utterance (path, speaker, word,
//! emotion, transcript, sample rate, duration), written as CSV so people and pandas can
//! read it, and the emotion × speaker count table printed after a scan. Not the bundle's
//! manifest (`emotion_core::bundle::BundleManifest`), which lists a bundle's files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emotion_core::Emotion;
use emotion_core::fs::write_atomically;
use serde::{Deserialize, Serialize};

/// One utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusEntry {
    /// Unique, and the same on every machine (splits use it): `SPEAKER_word_emotion` for
    /// TESS, `corpus_stem` for the others (`ravdess_03-01-05-01-02-01-12`).
    pub id: String,
    /// Where the WAV is.
    pub path: PathBuf,
    /// Speaker code (`OAF`, `YAF`; other corpora prefix theirs: `ravdess-12`).
    pub speaker: String,
    /// TESS's target word, or the sentence said (empty where the corpus does not say).
    pub word: String,
    /// The emotion label.
    pub emotion: Emotion,
    /// The word through the transcript template.
    pub transcript: String,
    /// The file's sample rate in Hz (the front-end resamples it to 16 kHz).
    pub sample_rate: u32,
    /// Duration in seconds.
    pub duration_s: f64,
    /// The corpus it comes from (`tess`, `ravdess`, …; manifests from before the column
    /// were all TESS).
    #[serde(default)]
    pub corpus: String,
    /// The corpus's own label in the readers' common spelling (`calm`, `surprise`), which
    /// the label map turned into `emotion`.
    #[serde(default)]
    pub label: String,
    /// The corpus's intensity where it records one (`normal`, `strong`, `low`, …).
    #[serde(default)]
    pub intensity: String,
}

impl CorpusEntry {
    /// The id for a speaker, word and emotion, spelled as TESS names its files.
    pub fn id_of(speaker: &str, word: &str, emotion: Emotion) -> String {
        format!("{speaker}_{word}_{}", emotion.code())
    }
}

/// A manifest that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CorpusManifestError {
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The manifest file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row that does not parse.
    #[error("{path}: {source} (is this a manifest written by `host-trainer data scan`?)")]
    Csv {
        /// The manifest file.
        path: PathBuf,
        /// The cause, with its line.
        source: csv::Error,
    },
    /// The same id twice.
    #[error("{path}: utterance {id} is listed twice")]
    DuplicateId {
        /// The manifest file.
        path: PathBuf,
        /// The repeated id.
        id: String,
    },
    /// No rows.
    #[error("{0}: the manifest lists no utterance")]
    Empty(PathBuf),
}

/// All utterances of a corpus, sorted by id.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusManifest {
    entries: Vec<CorpusEntry>,
}

impl CorpusManifest {
    /// Wraps entries, sorting them by id.
    pub fn new(mut entries: Vec<CorpusEntry>) -> Self {
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Self { entries }
    }

    /// The utterances, sorted by id.
    pub fn entries(&self) -> &[CorpusEntry] {
        &self.entries
    }

    /// The utterance with this id.
    pub fn get(&self, id: &str) -> Option<&CorpusEntry> {
        self.entries
            .binary_search_by(|e| e.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Number of utterances.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no utterance.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the CSV atomically (a temporary file renamed into place), creating the
    /// parent directory.
    pub fn write_csv(&self, path: &Path) -> Result<(), CorpusManifestError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for entry in &self.entries {
            writer
                .serialize(entry)
                .map_err(|source| CorpusManifestError::Csv {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        let bytes = writer.into_inner().map_err(|e| CorpusManifestError::Io {
            path: path.to_path_buf(),
            source: e.into_error(),
        })?;
        write_atomically(path, &bytes).map_err(|source| CorpusManifestError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a CSV written by [`CorpusManifest::write_csv`].
    pub fn read_csv(path: &Path) -> Result<Self, CorpusManifestError> {
        let csv_error = |source| CorpusManifestError::Csv {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(|source| CorpusManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut entries: Vec<CorpusEntry> = Vec::new();
        for row in csv::Reader::from_reader(file).into_deserialize() {
            let mut entry: CorpusEntry = row.map_err(csv_error)?;
            if entry.corpus.is_empty() {
                entry.corpus = "tess".into();
            }
            if entry.label.is_empty() {
                entry.label = entry.emotion.code().into();
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(CorpusManifestError::Empty(path.to_path_buf()));
        }
        let manifest = Self::new(entries);
        if let Some(pair) = manifest.entries.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(CorpusManifestError::DuplicateId {
                path: path.to_path_buf(),
                id: pair[0].id.clone(),
            });
        }
        Ok(manifest)
    }

    /// Counts per emotion (rows) × speaker (columns).
    pub fn counts(&self) -> CountTable {
        self.counts_by(|e| e.speaker.clone())
    }

    /// Counts per emotion (rows) × corpus (columns): the table for corpora with too many
    /// speakers to show one column each (CREMA-D has 91).
    pub fn counts_by_corpus(&self) -> CountTable {
        self.counts_by(|e| e.corpus.clone())
    }

    fn counts_by(&self, column: impl Fn(&CorpusEntry) -> String) -> CountTable {
        let mut cells: BTreeMap<(Emotion, String), usize> = BTreeMap::new();
        for entry in &self.entries {
            *cells.entry((entry.emotion, column(entry))).or_default() += 1;
        }
        let mut speakers: Vec<String> = self.entries.iter().map(&column).collect();
        speakers.sort();
        speakers.dedup();
        CountTable { speakers, cells }
    }
}

/// Number of utterances per emotion × speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct CountTable {
    /// Column order (speakers, or corpora for [`CorpusManifest::counts_by_corpus`]).
    pub speakers: Vec<String>,
    /// Non-zero cells.
    pub cells: BTreeMap<(Emotion, String), usize>,
}

impl CountTable {
    /// The count in one cell.
    pub fn get(&self, emotion: Emotion, speaker: &str) -> usize {
        self.cells
            .get(&(emotion, speaker.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// A Markdown table with totals, readable in a terminal too.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| emotion |");
        for speaker in &self.speakers {
            let _ = write!(out, " {speaker} |");
        }
        out.push_str(" total |\n|---|");
        out.push_str(&"---:|".repeat(self.speakers.len() + 1));
        out.push('\n');
        let mut column_totals = vec![0; self.speakers.len()];
        for emotion in Emotion::ALL {
            let _ = write!(out, "| {emotion} |");
            let mut row_total = 0;
            for (i, speaker) in self.speakers.iter().enumerate() {
                let n = self.get(emotion, speaker);
                column_totals[i] += n;
                row_total += n;
                let _ = write!(out, " {n} |");
            }
            let _ = writeln!(out, " {row_total} |");
        }
        out.push_str("| **total** |");
        for n in &column_totals {
            let _ = write!(out, " {n} |");
        }
        let _ = writeln!(out, " {} |", column_totals.iter().sum::<usize>());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(speaker: &str, word: &str, emotion: Emotion) -> CorpusEntry {
        CorpusEntry {
            id: CorpusEntry::id_of(speaker, word, emotion),
            path: PathBuf::from(format!("/corpus/{speaker}_{word}_{}.wav", emotion.code())),
            speaker: speaker.into(),
            word: word.into(),
            emotion,
            transcript: word.into(),
            sample_rate: 24_414,
            duration_s: 1.5,
            corpus: "tess".into(),
            label: emotion.code().into(),
            intensity: String::new(),
        }
    }

    #[test]
    fn csv_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/manifest.csv");
        let manifest = CorpusManifest::new(vec![
            entry("YAF", "dog", Emotion::PleasantSurprise),
            entry("OAF", "back", Emotion::Angry),
        ]);
        manifest.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "id,path,speaker,word,emotion,transcript,sample_rate,duration_s,corpus,label,intensity\n"
            )
        );
        assert!(text.contains("YAF_dog_ps,"), "{text}");
        assert_eq!(CorpusManifest::read_csv(&path).unwrap(), manifest);
        assert_eq!(manifest.entries()[0].id, "OAF_back_angry");
        assert!(manifest.get("YAF_dog_ps").is_some());
        assert!(manifest.get("YAF_dog_sad").is_none());
    }

    #[test]
    fn reading_rejects_bad_rows_duplicates_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        std::fs::write(&path, "id,path\nx,y\n").unwrap();
        assert!(matches!(
            CorpusManifest::read_csv(&path),
            Err(CorpusManifestError::Csv { .. })
        ));

        let row = "OAF_back_angry,/a.wav,OAF,back,angry,back,24414,1.5\n";
        let header = "id,path,speaker,word,emotion,transcript,sample_rate,duration_s\n";
        std::fs::write(&path, format!("{header}{row}{row}")).unwrap();
        assert!(matches!(
            CorpusManifest::read_csv(&path),
            Err(CorpusManifestError::DuplicateId { .. })
        ));

        std::fs::write(&path, header).unwrap();
        assert!(matches!(
            CorpusManifest::read_csv(&path),
            Err(CorpusManifestError::Empty(_))
        ));

        std::fs::write(
            &path,
            format!("{header}{}", row.replace("angry,back", "calm,back")),
        )
        .unwrap();
        assert!(matches!(
            CorpusManifest::read_csv(&path),
            Err(CorpusManifestError::Csv { .. })
        ));
    }

    #[test]
    fn counts_per_emotion_and_speaker() {
        let manifest = CorpusManifest::new(vec![
            entry("OAF", "back", Emotion::Angry),
            entry("OAF", "dog", Emotion::Angry),
            entry("YAF", "dog", Emotion::Sad),
        ]);
        let table = manifest.counts();
        assert_eq!(table.speakers, vec!["OAF", "YAF"]);
        assert_eq!(table.get(Emotion::Angry, "OAF"), 2);
        assert_eq!(table.get(Emotion::Sad, "YAF"), 1);
        assert_eq!(table.get(Emotion::Sad, "OAF"), 0);
        let md = table.to_markdown();
        assert!(md.contains("| angry | 2 | 0 | 2 |"), "{md}");
        assert!(md.contains("| **total** | 2 | 1 | 3 |"), "{md}");
    }
}
