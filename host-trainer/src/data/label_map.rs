//! The label map: which corpus label becomes which of the model's emotions, and which
//! labels are left out. Corpora label differently (RAVDESS has calm, EmoDB boredom,
//! TESS says `ps` where the others say surprise); the readers spell every label in one
//! vocabulary ([`VOCABULARY`]) and this map decides what the model learns from it.
//!
//! The file format is one rule a line, `label = emotion` or `label = drop`, `#` starts a
//! comment. A label without a rule maps to the emotion of the same name when there is
//! one (`angry` → angry, `surprise` → pleasant surprise), else it is dropped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emotion_core::Emotion;

use crate::data::manifest::CorpusManifest;

/// Every label the corpus readers write, in one spelling across corpora.
pub const VOCABULARY: [&str; 10] = [
    "angry", "boredom", "calm", "disgust", "fear", "happy", "neutral", "ps", "sad", "surprise",
];

/// What one corpus label becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// Trained as this emotion.
    Emotion(Emotion),
    /// Left out: a rule says `drop`.
    Dropped,
    /// Left out: no rule and no emotion of that name.
    Unknown,
}

/// A label map file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelMapError {
    /// File-system trouble.
    #[error("cannot read the label map {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line that is not `label = emotion` or `label = drop`.
    #[error("{path}, line {line}: {problem} (expected `label = emotion` or `label = drop`)")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Corpus label → model emotion or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelMap {
    rules: BTreeMap<String, Option<Emotion>>,
}

impl Default for LabelMap {
    /// Calm and boredom have no emotion among the seven: dropped unless a map says otherwise.
    fn default() -> Self {
        let rules = [("boredom", None), ("calm", None)]
            .into_iter()
            .map(|(label, to)| (label.to_string(), to))
            .collect();
        Self { rules }
    }
}

impl LabelMap {
    /// The default map with the rules of `text` on top (a later rule wins).
    pub fn parse(text: &str, path: &Path) -> Result<Self, LabelMapError> {
        let mut map = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let problem = |problem: String| LabelMapError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                problem,
            };
            let (label, target) = line
                .split_once('=')
                .or_else(|| line.split_once("->"))
                .ok_or_else(|| problem(format!("'{line}' has no '='")))?;
            let label = label.trim().to_ascii_lowercase();
            let target = target.trim().trim_start_matches('>').trim();
            if label.is_empty() || label.contains(char::is_whitespace) {
                return Err(problem(format!("'{label}' is not one label")));
            }
            let to = if target.eq_ignore_ascii_case("drop") {
                None
            } else {
                Some(
                    target
                        .parse::<Emotion>()
                        .map_err(|e| problem(e.to_string()))?,
                )
            };
            map.rules.insert(label, to);
        }
        Ok(map)
    }

    /// Reads a map file.
    pub fn read(path: &Path) -> Result<Self, LabelMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelMapError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// What `label` becomes.
    pub fn map(&self, label: &str) -> Mapped {
        let label = label.trim().to_ascii_lowercase();
        match self.rules.get(&label) {
            Some(Some(emotion)) => Mapped::Emotion(*emotion),
            Some(None) => Mapped::Dropped,
            None => Emotion::from_code(&label).map_or(Mapped::Unknown, Mapped::Emotion),
        }
    }

    /// The rules in the file format, for the record beside a manifest.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "# label map: corpus label = model emotion (or drop); other labels map to the emotion of that name\n",
        );
        for (label, to) in &self.rules {
            let _ = writeln!(out, "{label} = {}", to.map_or("drop", |e| e.code()));
        }
        out
    }
}

/// The map a manifest was made with, as far as its rows show it: each corpus label
/// trained as an emotion of another name (`calm → neutral, surprise → ps`), sorted;
/// empty when every label is its emotion's code (TESS). Runs' provenance and bundles
/// record it.
pub fn applied(manifest: &CorpusManifest) -> String {
    let pairs: std::collections::BTreeSet<String> = manifest
        .entries()
        .iter()
        .filter(|e| e.label != e.emotion.code())
        .map(|e| format!("{} → {}", e.label, e.emotion.code()))
        .collect();
    pairs.into_iter().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_seven_drops_calm_and_boredom() {
        let map = LabelMap::default();
        assert_eq!(map.map("angry"), Mapped::Emotion(Emotion::Angry));
        assert_eq!(
            map.map("surprise"),
            Mapped::Emotion(Emotion::PleasantSurprise)
        );
        assert_eq!(map.map("ps"), Mapped::Emotion(Emotion::PleasantSurprise));
        assert_eq!(map.map("calm"), Mapped::Dropped);
        assert_eq!(map.map("boredom"), Mapped::Dropped);
        assert_eq!(map.map("contempt"), Mapped::Unknown);
        for label in VOCABULARY {
            assert_ne!(map.map(label), Mapped::Unknown, "{label}");
        }
    }

    #[test]
    fn a_file_overrides_the_defaults() {
        let text = "# RAVDESS: calm is close to neutral\ncalm = neutral\nsurprise -> drop\n\nFEAR = sad  # odd, but allowed\n";
        let map = LabelMap::parse(text, Path::new("m.txt")).unwrap();
        assert_eq!(map.map("calm"), Mapped::Emotion(Emotion::Neutral));
        assert_eq!(map.map("surprise"), Mapped::Dropped);
        assert_eq!(map.map("fear"), Mapped::Emotion(Emotion::Sad));
        assert_eq!(map.map("boredom"), Mapped::Dropped);
        let again = LabelMap::parse(&map.to_text(), Path::new("again")).unwrap();
        assert_eq!(again, map);
    }

    #[test]
    fn applied_names_only_labels_trained_under_another_name() {
        use crate::data::manifest::CorpusEntry;
        let entry = |id: &str, label: &str, emotion: Emotion| CorpusEntry {
            id: id.into(),
            path: format!("/{id}.wav").into(),
            speaker: "s".into(),
            word: String::new(),
            emotion,
            transcript: String::new(),
            sample_rate: 16_000,
            duration_s: 1.0,
            corpus: "ravdess".into(),
            label: label.into(),
            intensity: String::new(),
        };
        let tess_like = CorpusManifest::new(vec![entry("a", "angry", Emotion::Angry)]);
        assert_eq!(applied(&tess_like), "");
        let mapped = CorpusManifest::new(vec![
            entry("a", "angry", Emotion::Angry),
            entry("b", "surprise", Emotion::PleasantSurprise),
            entry("c", "calm", Emotion::Neutral),
            entry("d", "calm", Emotion::Neutral),
        ]);
        assert_eq!(applied(&mapped), "calm → neutral, surprise → ps");
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, needle) in [
            ("calm neutral\n", "line 1"),
            ("calm = neutral\nboredom = tired\n", "line 2"),
            (" = neutral\n", "not one label"),
        ] {
            let err = LabelMap::parse(text, Path::new("m.txt")).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
