//! Train / validation / test splits, written to one JSON file that every later step and
//! report names (by path and by its content id).
//!
//! The protocols, all seeded and stratified by corpus × emotion:
//! - `random`: 70/15/15 within each corpus × emotion (the reference study's protocol);
//! - `speaker-A-to-B`: train and validate on every speaker but B, test on B, each
//!   speaker held out in turn, when a manifest has at most [`MAX_HELD_OUT_SPEAKERS`]
//!   (TESS: OAF→YAF and YAF→OAF; SAVEE: `speaker-others-to-savee-DC` and three more);
//! - `speaker-fold-i-of-k`: with more speakers, k-fold by speaker: each corpus's
//!   speakers dealt to [`SPEAKER_FOLDS`] folds, so every fold tests unseen speakers of
//!   every corpus;
//! - `word`: the words (or sentences) are split 70/15/15, so no word is in two parts
//!   (only with at least three distinct words);
//! - with two corpora or more: `within-A` (A alone, one fold of A's speakers tested) and
//!   `cross-A-to-B` (train and validate on all of A, test on all of B), the cells of the
//!   corpus × corpus table.
//!
//! Splits list utterance ids (`OAF_back_angry`), never paths, and the shuffles use a
//! portable generator (ChaCha8) over id-sorted input: the same seed gives the same split
//! on any machine, wherever the corpus sits.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emotion_core::Emotion;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::manifest::{CorpusEntry, CorpusManifest};
use emotion_core::fs::write_atomically;

/// Version of the splits file layout.
pub const FORMAT_VERSION: u32 = 1;

/// Up to this many speakers, each is held out in turn (`speaker-A-to-B`); above it the
/// speakers are split into [`SPEAKER_FOLDS`] folds.
pub const MAX_HELD_OUT_SPEAKERS: usize = 4;

/// Folds of the k-fold-by-speaker protocol.
pub const SPEAKER_FOLDS: usize = 5;

/// The word split needs this many distinct words (or sentences) to fill three parts.
const MIN_WORDS: usize = 3;

/// Seed and proportions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Seed of every shuffle.
    pub seed: u64,
    /// Relative sizes of train, validation and test (need not sum to 1).
    pub ratios: [f64; 3],
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            ratios: [0.70, 0.15, 0.15],
        }
    }
}

/// What a split keeps apart between its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitKind {
    /// Utterances shuffled within each emotion.
    Random,
    /// Test speaker never seen in training or validation.
    Speaker {
        /// Speakers of train and validation.
        train_speakers: Vec<String>,
        /// The held-out speaker.
        test_speaker: String,
    },
    /// No word in two parts.
    Word,
    /// One fold of the speakers tested, the other folds trained on.
    SpeakerFold {
        /// 1-based fold number.
        fold: usize,
        /// Number of folds.
        folds: usize,
        /// The speakers tested, sorted.
        test_speakers: Vec<String>,
    },
    /// One corpus alone, one fold of its speakers tested (the corpus × corpus diagonal).
    Within {
        /// The corpus.
        corpus: String,
        /// The speakers tested, sorted.
        test_speakers: Vec<String>,
    },
    /// Train and validate on one corpus, test on another.
    Cross {
        /// The corpus of train and validation.
        train_corpus: String,
        /// The corpus tested.
        test_corpus: String,
    },
}

/// One split: utterance ids per part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Name used on the command line, in reports and as a folder name (`random`,
    /// `speaker-OAF-to-YAF`, `speaker-fold-1-of-5`, `cross-tess-to-crema-d`, `word`).
    pub name: String,
    /// What is kept apart.
    #[serde(flatten)]
    pub kind: SplitKind,
    /// Training ids, sorted.
    pub train: Vec<String>,
    /// Validation ids (early stopping), sorted.
    pub val: Vec<String>,
    /// Test ids, sorted.
    pub test: Vec<String>,
}

impl Split {
    /// The three parts with their names.
    pub fn parts(&self) -> [(&'static str, &[String]); 3] {
        [
            ("train", &self.train),
            ("val", &self.val),
            ("test", &self.test),
        ]
    }
}

/// All splits of one manifest, as written to `splits.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSet {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// Content id (first 12 hex digits of a SHA-256 over seed, ratios and parts): reports
    /// quote it so a figure can be traced to the exact split.
    pub id: String,
    /// Seed and ratios used.
    pub config: SplitConfig,
    /// SHA-256 of the manifest's sorted ids: which corpus these splits are for.
    pub manifest_digest: String,
    /// Number of utterances in that manifest.
    pub utterances: usize,
    /// The splits, in a fixed order.
    pub splits: Vec<Split>,
}

/// Splits that cannot be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Ratios negative, all zero or not finite.
    #[error("split ratios {0:?} must be non-negative, finite and not all zero")]
    BadRatios([f64; 3]),
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The splits file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a splits file.
    #[error("{path}: not a splits file ({source}); make one with `host-trainer data split`")]
    Json {
        /// The splits file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Written by a newer version.
    #[error(
        "{path}: splits format {found} is newer than this program understands ({FORMAT_VERSION}); update host-trainer"
    )]
    NewerFormat {
        /// The splits file.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
    /// The file does not match its own id: edited by hand or damaged.
    #[error(
        "splits file id {stored} does not match its content ({computed}): it was edited or damaged; re-run `host-trainer data split`"
    )]
    Tampered {
        /// Id in the file.
        stored: String,
        /// Id of the content.
        computed: String,
    },
    /// Made for another manifest.
    #[error(
        "these splits were made for another manifest ({expected_utterances} utterances, digest {expected}) than the one given ({found_utterances} utterances, digest {found}); re-run `host-trainer data split` on it"
    )]
    OtherManifest {
        /// Digest in the splits file.
        expected: String,
        /// Digest of the manifest given.
        found: String,
        /// Utterances in the splits' manifest.
        expected_utterances: usize,
        /// Utterances in the manifest given.
        found_utterances: usize,
    },
    /// A promise broken: an id in two parts, a speaker or word on both sides, an id
    /// not in the manifest.
    #[error("split {split}: {problem}")]
    Broken {
        /// The split.
        split: String,
        /// What is wrong.
        problem: String,
    },
    /// No split of that name.
    #[error("no split named '{name}'; this file has: {available}")]
    Unknown {
        /// Name asked for.
        name: String,
        /// Names present.
        available: String,
    },
}

impl SplitSet {
    /// Makes every split of `manifest`.
    pub fn make(manifest: &CorpusManifest, config: SplitConfig) -> Result<Self, SplitError> {
        let ratios = config.ratios;
        if ratios.iter().any(|r| !r.is_finite() || *r < 0.0) || ratios.iter().sum::<f64>() <= 0.0 {
            return Err(SplitError::BadRatios(ratios));
        }
        let mut splits = vec![random_split(manifest, config)];
        let speakers: BTreeSet<&str> = manifest
            .entries()
            .iter()
            .map(|e| e.speaker.as_str())
            .collect();
        if (2..=MAX_HELD_OUT_SPEAKERS).contains(&speakers.len()) {
            let mut by_speaker: Vec<Split> = speakers
                .iter()
                .map(|test_speaker| speaker_split(manifest, config, test_speaker))
                .collect();
            by_speaker.sort_by(|a, b| a.name.cmp(&b.name));
            splits.extend(by_speaker);
        } else if speakers.len() > MAX_HELD_OUT_SPEAKERS {
            splits.extend(speaker_folds(manifest, config));
        }
        let words: BTreeSet<&str> = manifest
            .entries()
            .iter()
            .map(|e| e.word.as_str())
            .filter(|w| !w.is_empty())
            .collect();
        if words.len() >= MIN_WORDS {
            splits.push(word_split(manifest, config));
        }
        let corpora: BTreeSet<&str> = manifest
            .entries()
            .iter()
            .map(|e| e.corpus.as_str())
            .collect();
        if corpora.len() >= 2 {
            for corpus in &corpora {
                if let Some(split) = within_split(manifest, config, corpus) {
                    splits.push(split);
                }
            }
            for train in &corpora {
                for test in corpora.iter().filter(|c| *c != train) {
                    splits.push(cross_split(manifest, config, train, test));
                }
            }
        }
        let mut set = SplitSet {
            format: FORMAT_VERSION,
            id: String::new(),
            config,
            manifest_digest: manifest_digest(manifest),
            utterances: manifest.len(),
            splits,
        };
        set.id = set.content_id();
        Ok(set)
    }

    /// The split called `name`.
    pub fn get(&self, name: &str) -> Result<&Split, SplitError> {
        self.splits
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| SplitError::Unknown {
                name: name.to_string(),
                available: self.names().join(", "),
            })
    }

    /// Names of all splits, in file order.
    pub fn names(&self) -> Vec<String> {
        self.splits.iter().map(|s| s.name.clone()).collect()
    }

    /// Writes pretty JSON atomically.
    pub fn write_json(&self, path: &Path) -> Result<(), SplitError> {
        let io = |source| SplitError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| io(e.into()))?;
        text.push('\n');
        write_atomically(path, text.as_bytes()).map_err(io)
    }

    /// Reads a splits file and checks its format and its id.
    pub fn read_json(path: &Path) -> Result<Self, SplitError> {
        let text = std::fs::read_to_string(path).map_err(|source| SplitError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Look at the version first so a newer layout gets the right message.
        let json = |source| SplitError::Json {
            path: path.to_path_buf(),
            source,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(json)?;
        if let Some(found) = value.get("format").and_then(|f| f.as_u64())
            && found > u64::from(FORMAT_VERSION)
        {
            return Err(SplitError::NewerFormat {
                path: path.to_path_buf(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
            });
        }
        let set: SplitSet = serde_json::from_value(value).map_err(json)?;
        let computed = set.content_id();
        if computed != set.id {
            return Err(SplitError::Tampered {
                stored: set.id,
                computed,
            });
        }
        Ok(set)
    }

    /// Checks the splits against a manifest: same corpus, every id known, parts
    /// disjoint, speakers or words kept apart where the split promises it.
    pub fn check(&self, manifest: &CorpusManifest) -> Result<(), SplitError> {
        let found = manifest_digest(manifest);
        if found != self.manifest_digest {
            return Err(SplitError::OtherManifest {
                expected: self.manifest_digest.clone(),
                found,
                expected_utterances: self.utterances,
                found_utterances: manifest.len(),
            });
        }
        for split in &self.splits {
            check_split(split, manifest)?;
        }
        Ok(())
    }

    /// A Markdown table: per split and part, the number of utterances and the range of
    /// per-emotion counts (equal ranges show the stratification held).
    pub fn summary_markdown(&self, manifest: &CorpusManifest) -> String {
        let mut out = String::from(
            "| split | keeps apart | train | val | test |\n|---|---|---:|---:|---:|\n",
        );
        for split in &self.splits {
            let apart = match &split.kind {
                SplitKind::Random => "nothing (stratified by emotion)".to_string(),
                SplitKind::Speaker { test_speaker, .. } => format!("speaker {test_speaker}"),
                SplitKind::Word => "words".to_string(),
                SplitKind::SpeakerFold {
                    fold,
                    folds,
                    test_speakers,
                } => format!(
                    "test speakers: {} (fold {fold} of {folds})",
                    test_speakers.len()
                ),
                SplitKind::Within {
                    corpus,
                    test_speakers,
                } => format!("{corpus} only; test speakers: {}", test_speakers.len()),
                SplitKind::Cross {
                    train_corpus,
                    test_corpus,
                } => format!("corpus: {train_corpus} / {test_corpus}"),
            };
            let _ = write!(out, "| {} | {apart} |", split.name);
            for (_, ids) in split.parts() {
                let mut per_emotion = [0usize; Emotion::COUNT];
                for id in ids {
                    if let Some(entry) = manifest.get(id) {
                        per_emotion[entry.emotion.index()] += 1;
                    }
                }
                let min = per_emotion.iter().min().copied().unwrap_or(0);
                let max = per_emotion.iter().max().copied().unwrap_or(0);
                let spread = if min == max {
                    format!("{min}")
                } else {
                    format!("{min}–{max}")
                };
                let _ = write!(out, " {} ({spread}/emotion) |", ids.len());
            }
            out.push('\n');
        }
        out
    }

    fn content_id(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.config.seed.to_le_bytes());
        for ratio in self.config.ratios {
            hasher.update(ratio.to_le_bytes());
        }
        hasher.update(self.manifest_digest.as_bytes());
        for split in &self.splits {
            hasher.update(split.name.as_bytes());
            for (part, ids) in split.parts() {
                hasher.update(part.as_bytes());
                for id in ids {
                    hasher.update(id.as_bytes());
                    hasher.update(b"\n");
                }
            }
        }
        hex(&hasher.finalize())[..12].to_string()
    }
}

/// SHA-256 over the manifest's sorted ids: the corpus, independent of where it sits.
pub fn manifest_digest(manifest: &CorpusManifest) -> String {
    let mut hasher = Sha256::new();
    for entry in manifest.entries() {
        hasher.update(entry.id.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 70/15/15 within each emotion.
fn random_split(manifest: &CorpusManifest, config: SplitConfig) -> Split {
    let mut rng = rng_for(config.seed, "random");
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for group in by_corpus_emotion(manifest.entries().iter()) {
        let [train, val, test] = cut(shuffled(group, &mut rng), config.ratios);
        parts[0].extend(train);
        parts[1].extend(val);
        parts[2].extend(test);
    }
    finish("random".into(), SplitKind::Random, parts)
}

/// Train and validate on every speaker but `test_speaker`; test on `test_speaker`.
fn speaker_split(manifest: &CorpusManifest, config: SplitConfig, test_speaker: &str) -> Split {
    let mut train_speakers: Vec<String> = manifest
        .entries()
        .iter()
        .map(|e| e.speaker.clone())
        .filter(|s| s != test_speaker)
        .collect();
    train_speakers.sort();
    train_speakers.dedup();
    // `speaker-OAF-to-YAF` with two speakers; `speaker-others-to-B` with more (split
    // names become folder names: no `+`).
    let name = match &train_speakers[..] {
        [one] => format!("speaker-{one}-to-{test_speaker}"),
        _ => format!("speaker-others-to-{test_speaker}"),
    };
    let mut rng = rng_for(config.seed, &name);
    // Validation is carved from the training speakers, keeping train:val as in `ratios`.
    let seen = manifest
        .entries()
        .iter()
        .filter(|e| e.speaker != test_speaker);
    let mut parts = train_and_val(seen, config, &mut rng);
    parts[2] = manifest
        .entries()
        .iter()
        .filter(|e| e.speaker == test_speaker)
        .map(|e| e.id.clone())
        .collect();
    let kind = SplitKind::Speaker {
        train_speakers,
        test_speaker: test_speaker.to_string(),
    };
    finish(name, kind, parts)
}

/// Words split 70/15/15; every utterance follows its word. TESS says every word in all
/// seven emotions, so the emotion balance carries over to each part.
fn word_split(manifest: &CorpusManifest, config: SplitConfig) -> Split {
    let mut rng = rng_for(config.seed, "word");
    let words: BTreeSet<String> = manifest.entries().iter().map(|e| e.word.clone()).collect();
    let mut word_parts = cut(
        shuffled(words.into_iter().collect(), &mut rng),
        config.ratios,
    );
    // With few words rounding can empty a part; give each non-zero part one word.
    for part in [1, 2] {
        if word_parts[part].is_empty() && config.ratios[part] > 0.0 && word_parts[0].len() > 1 {
            let moved = word_parts[0].pop().unwrap_or_default();
            word_parts[part].push(moved);
        }
    }
    let part_of: BTreeMap<&str, usize> = word_parts
        .iter()
        .enumerate()
        .flat_map(|(i, words)| words.iter().map(move |w| (w.as_str(), i)))
        .collect();
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for entry in manifest.entries() {
        parts[part_of[entry.word.as_str()]].push(entry.id.clone());
    }
    finish("word".into(), SplitKind::Word, parts)
}

fn finish(name: String, kind: SplitKind, mut parts: [Vec<String>; 3]) -> Split {
    for part in &mut parts {
        part.sort();
    }
    let [train, val, test] = parts;
    Split {
        name,
        kind,
        train,
        val,
        test,
    }
}

/// Ids grouped by corpus × emotion, in corpus then emotion order, then id order. With
/// one corpus this is the grouping by emotion alone (the splits of older versions).
fn by_corpus_emotion<'a>(entries: impl Iterator<Item = &'a CorpusEntry>) -> Vec<Vec<String>> {
    let mut groups: BTreeMap<(&str, usize), Vec<String>> = BTreeMap::new();
    for entry in entries {
        groups
            .entry((entry.corpus.as_str(), entry.emotion.index()))
            .or_default()
            .push(entry.id.clone());
    }
    groups
        .into_values()
        .map(|mut group| {
            group.sort();
            group
        })
        .collect()
}

/// Training and validation parts from `seen`, train:val as in the ratios, stratified by
/// corpus × emotion; the test part is left empty for the caller.
fn train_and_val<'a>(
    seen: impl Iterator<Item = &'a CorpusEntry>,
    config: SplitConfig,
    rng: &mut ChaCha8Rng,
) -> [Vec<String>; 3] {
    let [train_ratio, val_ratio, _] = config.ratios;
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for group in by_corpus_emotion(seen) {
        let [train, val, _] = cut(shuffled(group, rng), [train_ratio, val_ratio, 0.0]);
        parts[0].extend(train);
        parts[1].extend(val);
    }
    parts
}

/// Each corpus's speakers, shuffled, dealt in turn to `folds` folds (the next corpus
/// starts where the last one stopped, so folds stay even in size).
fn deal_speakers(
    manifest: &CorpusManifest,
    corpus: Option<&str>,
    folds: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<BTreeSet<String>> {
    let mut by_corpus: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for entry in manifest.entries() {
        if corpus.is_none_or(|c| c == entry.corpus) {
            by_corpus
                .entry(entry.corpus.as_str())
                .or_default()
                .insert(entry.speaker.as_str());
        }
    }
    let mut dealt = vec![BTreeSet::new(); folds];
    let mut next = 0;
    for speakers in by_corpus.into_values() {
        let speakers: Vec<String> = speakers.into_iter().map(String::from).collect();
        for speaker in shuffled(speakers, rng) {
            dealt[next % folds].insert(speaker);
            next += 1;
        }
    }
    dealt
}

/// k-fold by speaker: fold i tested, the other folds trained and validated on.
fn speaker_folds(manifest: &CorpusManifest, config: SplitConfig) -> Vec<Split> {
    let mut rng = rng_for(config.seed, "speaker-folds");
    let dealt = deal_speakers(manifest, None, SPEAKER_FOLDS, &mut rng);
    dealt
        .iter()
        .enumerate()
        .map(|(i, test_speakers)| {
            let name = format!("speaker-fold-{}-of-{SPEAKER_FOLDS}", i + 1);
            let mut rng = rng_for(config.seed, &name);
            let seen = manifest
                .entries()
                .iter()
                .filter(|e| !test_speakers.contains(&e.speaker));
            let mut parts = train_and_val(seen, config, &mut rng);
            parts[2] = test_ids(manifest, |e| test_speakers.contains(&e.speaker));
            let kind = SplitKind::SpeakerFold {
                fold: i + 1,
                folds: SPEAKER_FOLDS,
                test_speakers: test_speakers.iter().cloned().collect(),
            };
            finish(name, kind, parts)
        })
        .collect()
}

/// One corpus alone, speaker-independent: the first of its speakers dealt to
/// min(speakers, [`SPEAKER_FOLDS`]) folds is tested. `None` for a corpus of one speaker.
fn within_split(manifest: &CorpusManifest, config: SplitConfig, corpus: &str) -> Option<Split> {
    let name = format!("within-{corpus}");
    let mut rng = rng_for(config.seed, &name);
    let speakers = manifest
        .entries()
        .iter()
        .filter(|e| e.corpus == corpus)
        .map(|e| e.speaker.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    if speakers < 2 {
        return None;
    }
    let folds = speakers.min(SPEAKER_FOLDS);
    let test_speakers = deal_speakers(manifest, Some(corpus), folds, &mut rng).swap_remove(0);
    let seen = manifest
        .entries()
        .iter()
        .filter(|e| e.corpus == corpus && !test_speakers.contains(&e.speaker));
    let mut parts = train_and_val(seen, config, &mut rng);
    parts[2] = test_ids(manifest, |e| {
        e.corpus == corpus && test_speakers.contains(&e.speaker)
    });
    let kind = SplitKind::Within {
        corpus: corpus.to_string(),
        test_speakers: test_speakers.into_iter().collect(),
    };
    Some(finish(name, kind, parts))
}

/// Train and validate on all of `train`, test on all of `test`.
fn cross_split(manifest: &CorpusManifest, config: SplitConfig, train: &str, test: &str) -> Split {
    let name = format!("cross-{train}-to-{test}");
    let mut rng = rng_for(config.seed, &name);
    let seen = manifest.entries().iter().filter(|e| e.corpus == train);
    let mut parts = train_and_val(seen, config, &mut rng);
    parts[2] = test_ids(manifest, |e| e.corpus == test);
    let kind = SplitKind::Cross {
        train_corpus: train.to_string(),
        test_corpus: test.to_string(),
    };
    finish(name, kind, parts)
}

/// The ids of the entries `keep` accepts, in id order.
fn test_ids(manifest: &CorpusManifest, keep: impl Fn(&CorpusEntry) -> bool) -> Vec<String> {
    manifest
        .entries()
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.id.clone())
        .collect()
}

/// Cuts `items` into three parts sized by `ratios` (rounded at cumulative boundaries,
/// so the parts always add up to the whole).
fn cut<T>(mut items: Vec<T>, ratios: [f64; 3]) -> [Vec<T>; 3] {
    let total: f64 = ratios.iter().sum();
    let n = items.len();
    let boundary = |upto: f64| ((n as f64 * upto / total).round() as usize).min(n);
    let first = boundary(ratios[0]);
    let second = boundary(ratios[0] + ratios[1]).max(first);
    let test = items.split_off(second);
    let val = items.split_off(first);
    [items, val, test]
}

/// A generator per split name, so adding a protocol never changes another's split.
fn rng_for(seed: u64, split_name: &str) -> ChaCha8Rng {
    // FNV-1a: a stable, portable hash of the name (std's hashers are neither).
    let stream = split_name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Fisher–Yates with an unbiased draw, independent of `rand`'s version.
fn shuffled<T>(mut items: Vec<T>, rng: &mut ChaCha8Rng) -> Vec<T> {
    for i in (1..items.len()).rev() {
        let bound = i as u64 + 1;
        let zone = u64::MAX - (u64::MAX % bound);
        let j = loop {
            let x = rng.next_u64();
            if x < zone {
                break (x % bound) as usize;
            }
        };
        items.swap(i, j);
    }
    items
}

fn check_split(split: &Split, manifest: &CorpusManifest) -> Result<(), SplitError> {
    let broken = |problem: String| SplitError::Broken {
        split: split.name.clone(),
        problem,
    };
    let mut part_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (part, ids) in split.parts() {
        for id in ids {
            if manifest.get(id).is_none() {
                return Err(broken(format!(
                    "{part} names {id}, which the manifest lacks"
                )));
            }
            if let Some(other) = part_of.insert(id, part) {
                return Err(broken(format!("{id} is in both {other} and {part}")));
            }
        }
    }
    let key_of = |entry: &CorpusEntry| -> Option<String> {
        match &split.kind {
            SplitKind::Random => None,
            SplitKind::Speaker { .. }
            | SplitKind::SpeakerFold { .. }
            | SplitKind::Within { .. } => Some(entry.speaker.clone()),
            SplitKind::Word => Some(entry.word.clone()),
            SplitKind::Cross { .. } => Some(entry.corpus.clone()),
        }
    };
    let mut side_of: BTreeMap<String, &str> = BTreeMap::new();
    for (part, ids) in split.parts() {
        // Speaker, fold, within and cross splits keep train and val together on one
        // side, test on the other.
        let side = match (&split.kind, part) {
            (SplitKind::Random | SplitKind::Word, _) => part,
            (_, "val") => "train",
            _ => part,
        };
        for id in ids {
            let Some(key) = manifest.get(id).and_then(key_of) else {
                continue;
            };
            if let Some(other) = side_of.insert(key.clone(), side)
                && other != side
            {
                return Err(broken(format!("{key} appears in both {other} and {part}")));
            }
        }
    }
    if let SplitKind::Speaker { test_speaker, .. } = &split.kind
        && let Some(id) = split
            .test
            .iter()
            .find(|id| manifest.get(id).is_some_and(|e| &e.speaker != test_speaker))
    {
        return Err(broken(format!(
            "test holds {id}, not spoken by {test_speaker}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: [&str; 12] = [
        "back", "bath", "chair", "dog", "food", "good", "home", "king", "love", "mood", "rain",
        "youth",
    ];

    fn corpus() -> CorpusManifest {
        let mut entries = Vec::new();
        for speaker in ["OAF", "YAF"] {
            for word in WORDS {
                for emotion in Emotion::ALL {
                    entries.push(CorpusEntry {
                        id: CorpusEntry::id_of(speaker, word, emotion),
                        path: format!("/x/{speaker}_{word}.wav").into(),
                        speaker: speaker.into(),
                        word: word.into(),
                        emotion,
                        transcript: word.into(),
                        sample_rate: 24_414,
                        duration_s: 1.0,
                        corpus: "tess".into(),
                        label: emotion.code().into(),
                        intensity: String::new(),
                    });
                }
            }
        }
        CorpusManifest::new(entries)
    }

    #[test]
    fn same_seed_same_splits_other_seed_other_splits() {
        let manifest = corpus();
        let a = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        let b = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        assert_eq!(a, b);
        let c = SplitSet::make(
            &manifest,
            SplitConfig {
                seed: 7,
                ..Default::default()
            },
        )
        .unwrap();
        assert_ne!(a.get("random").unwrap().test, c.get("random").unwrap().test);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn splits_do_not_depend_on_manifest_order_or_paths() {
        let manifest = corpus();
        let mut moved: Vec<CorpusEntry> = manifest.entries().to_vec();
        moved.reverse();
        for entry in &mut moved {
            entry.path = PathBuf::from("/elsewhere").join(&entry.id);
        }
        let a = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        let b = SplitSet::make(&CorpusManifest::new(moved), SplitConfig::default()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_protocol_keeps_its_promise() {
        let manifest = corpus();
        let set = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        assert_eq!(
            set.names(),
            ["random", "speaker-OAF-to-YAF", "speaker-YAF-to-OAF", "word"]
        );
        set.check(&manifest).unwrap();

        let random = set.get("random").unwrap();
        // 24 per emotion: 17 / 3 / 4, in every emotion.
        assert_eq!(
            (random.train.len(), random.val.len(), random.test.len()),
            (119, 21, 28)
        );

        let oaf_to_yaf = set.get("speaker-OAF-to-YAF").unwrap();
        assert!(oaf_to_yaf.test.iter().all(|id| id.starts_with("YAF_")));
        assert!(
            oaf_to_yaf
                .train
                .iter()
                .chain(&oaf_to_yaf.val)
                .all(|id| id.starts_with("OAF_"))
        );
        assert_eq!(oaf_to_yaf.test.len(), 84);
        assert_eq!(oaf_to_yaf.train.len() + oaf_to_yaf.val.len(), 84);
        assert!(!oaf_to_yaf.val.is_empty());

        let word = set.get("word").unwrap();
        let words = |ids: &[String]| -> BTreeSet<String> {
            ids.iter()
                .map(|id| manifest.get(id).unwrap().word.clone())
                .collect()
        };
        let (train, val, test) = (words(&word.train), words(&word.val), words(&word.test));
        assert_eq!((train.len(), val.len(), test.len()), (8, 2, 2));
        assert!(train.is_disjoint(&val) && train.is_disjoint(&test) && val.is_disjoint(&test));
    }

    #[test]
    fn check_catches_leaks_and_foreign_ids() {
        let manifest = corpus();
        let set = SplitSet::make(&manifest, SplitConfig::default()).unwrap();

        let mut leaked = set.clone();
        let id = leaked.splits[0].test[0].clone();
        leaked.splits[0].train.push(id);
        assert!(matches!(
            leaked.check(&manifest),
            Err(SplitError::Broken { .. })
        ));

        let mut speaker_leak = set.clone();
        let oaf_id = speaker_leak.splits[1].train[0].clone();
        speaker_leak.splits[1].train.remove(0);
        speaker_leak.splits[1].test.push(oaf_id);
        assert!(matches!(
            speaker_leak.check(&manifest),
            Err(SplitError::Broken { .. })
        ));

        let mut word_leak = set.clone();
        let moved = word_leak.splits[3].train.pop().unwrap();
        word_leak.splits[3].test.push(moved);
        assert!(matches!(
            word_leak.check(&manifest),
            Err(SplitError::Broken { .. })
        ));

        let smaller = CorpusManifest::new(manifest.entries()[1..].to_vec());
        assert!(matches!(
            set.check(&smaller),
            Err(SplitError::OtherManifest { .. })
        ));
    }

    #[test]
    fn json_round_trip_detects_edits_and_newer_formats() {
        let manifest = corpus();
        let set = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("splits.json");
        set.write_json(&path).unwrap();
        assert_eq!(SplitSet::read_json(&path).unwrap(), set);

        let text = std::fs::read_to_string(&path).unwrap();
        let first_test = &set.splits[0].test[0];
        let edited = text.replacen(&format!("\"{first_test}\""), "\"OAF_back_sad\"", 1);
        std::fs::write(&path, edited).unwrap();
        assert!(matches!(
            SplitSet::read_json(&path),
            Err(SplitError::Tampered { .. })
        ));

        std::fs::write(&path, text.replacen("\"format\": 1", "\"format\": 9", 1)).unwrap();
        assert!(matches!(
            SplitSet::read_json(&path),
            Err(SplitError::NewerFormat { .. })
        ));

        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(
            SplitSet::read_json(&path),
            Err(SplitError::Json { .. })
        ));
    }

    /// `speakers` speakers per corpus, each saying `words` words in every emotion.
    fn corpora(corpora: &[(&str, usize)], words: usize) -> CorpusManifest {
        let mut entries = Vec::new();
        for (corpus, speakers) in corpora {
            for s in 0..*speakers {
                let speaker = format!("{corpus}-{s:02}");
                for word in &WORDS[..words] {
                    for emotion in Emotion::ALL {
                        let id = format!("{corpus}_{s:02}_{word}_{}", emotion.code());
                        entries.push(CorpusEntry {
                            path: format!("/x/{id}.wav").into(),
                            id,
                            speaker: speaker.clone(),
                            word: word.to_string(),
                            emotion,
                            transcript: word.to_string(),
                            sample_rate: 16_000,
                            duration_s: 1.0,
                            corpus: corpus.to_string(),
                            label: emotion.code().into(),
                            intensity: String::new(),
                        });
                    }
                }
            }
        }
        CorpusManifest::new(entries)
    }

    fn speakers_of<'a>(manifest: &'a CorpusManifest, ids: &[String]) -> BTreeSet<&'a str> {
        ids.iter()
            .map(|id| manifest.get(id).unwrap().speaker.as_str())
            .collect()
    }

    #[test]
    fn many_speakers_are_split_in_folds_each_speaker_tested_once() {
        let manifest = corpora(&[("crema-d", 12)], 2);
        let set = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        set.check(&manifest).unwrap();
        assert_eq!(
            set.names(),
            [
                "random",
                "speaker-fold-1-of-5",
                "speaker-fold-2-of-5",
                "speaker-fold-3-of-5",
                "speaker-fold-4-of-5",
                "speaker-fold-5-of-5",
            ],
            "two sentences are too few for a word split"
        );
        let mut tested: Vec<&str> = Vec::new();
        for split in &set.splits[1..] {
            let test = speakers_of(&manifest, &split.test);
            let seen = speakers_of(
                &manifest,
                &[split.train.clone(), split.val.clone()].concat(),
            );
            assert!(test.is_disjoint(&seen), "{}", split.name);
            assert!((2..=3).contains(&test.len()), "{}: {test:?}", split.name);
            assert_eq!(test.len() + seen.len(), 12);
            tested.extend(test);
        }
        tested.sort();
        let all: Vec<&str> = speakers_of(&manifest, &set.splits[0].train)
            .into_iter()
            .collect();
        assert_eq!(tested, all, "every speaker in exactly one test fold");
        let again = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        assert_eq!(again, set);
    }

    #[test]
    fn two_corpora_get_within_and_cross_splits_and_folds_span_both() {
        let manifest = corpora(&[("ravdess", 6), ("tess", 2)], 3);
        let set = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        set.check(&manifest).unwrap();
        let names = set.names();
        for name in [
            "within-ravdess",
            "within-tess",
            "cross-ravdess-to-tess",
            "cross-tess-to-ravdess",
            "word",
            "speaker-fold-5-of-5",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        let corpus_of = |ids: &[String]| -> BTreeSet<String> {
            ids.iter()
                .map(|id| manifest.get(id).unwrap().corpus.clone())
                .collect()
        };
        let cross = set.get("cross-tess-to-ravdess").unwrap();
        assert_eq!(
            corpus_of(&cross.train),
            BTreeSet::from(["tess".to_string()])
        );
        assert_eq!(corpus_of(&cross.val), BTreeSet::from(["tess".to_string()]));
        assert_eq!(
            corpus_of(&cross.test),
            BTreeSet::from(["ravdess".to_string()])
        );
        assert_eq!(cross.test.len(), 6 * 3 * 7);
        let within = set.get("within-tess").unwrap();
        assert_eq!(
            corpus_of(&within.test),
            BTreeSet::from(["tess".to_string()])
        );
        assert_eq!(speakers_of(&manifest, &within.test).len(), 1);
        assert_eq!(speakers_of(&manifest, &within.train).len(), 1);
        // Random: every corpus × emotion cut 70/15/15 on its own.
        let random = set.get("random").unwrap();
        let tess_test = random
            .test
            .iter()
            .filter(|id| id.starts_with("tess_"))
            .count();
        assert_eq!(tess_test, 7, "6 tess utterances per emotion: 4/1/1");
        // The folds hold both corpora's speakers, 8 speakers in 5 folds.
        let first = set.get("speaker-fold-1-of-5").unwrap();
        assert_eq!(speakers_of(&manifest, &first.test).len(), 2);

        let mut leak = set.clone();
        let i = leak
            .splits
            .iter()
            .position(|s| s.name == "cross-tess-to-ravdess")
            .unwrap();
        let moved = leak.splits[i].test.pop().unwrap();
        leak.splits[i].train.push(moved);
        assert!(matches!(
            leak.check(&manifest),
            Err(SplitError::Broken { .. })
        ));
    }

    #[test]
    fn split_names_are_folder_names() {
        for manifest in [
            corpora(&[("savee", 4)], 1),
            corpora(&[("tess", 2), ("crema-d", 2)], 3),
            corpora(&[("ravdess", 9)], 2),
        ] {
            let set = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
            for name in set.names() {
                assert!(
                    name.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
                    "{name}"
                );
            }
        }
        let savee = SplitSet::make(&corpora(&[("savee", 4)], 1), SplitConfig::default()).unwrap();
        assert!(
            savee.get("speaker-others-to-savee-02").is_ok(),
            "{:?}",
            savee.names()
        );
    }

    #[test]
    fn rejects_bad_ratios() {
        let manifest = corpus();
        for ratios in [[0.0, 0.0, 0.0], [-1.0, 1.0, 1.0], [f64::NAN, 1.0, 1.0]] {
            let config = SplitConfig { seed: 1, ratios };
            assert!(matches!(
                SplitSet::make(&manifest, config),
                Err(SplitError::BadRatios(_))
            ));
        }
    }

    #[test]
    fn cut_rounds_at_cumulative_boundaries() {
        let [a, b, c] = cut((0..24).collect::<Vec<_>>(), [0.7, 0.15, 0.15]);
        assert_eq!((a.len(), b.len(), c.len()), (17, 3, 4));
        let [a, b, c] = cut((0..3).collect::<Vec<_>>(), [0.7, 0.15, 0.15]);
        assert_eq!(a.len() + b.len() + c.len(), 3);
    }

    #[test]
    fn shuffle_is_a_permutation_and_pinned() {
        let mut rng = rng_for(42, "random");
        let out = shuffled((0..10).collect::<Vec<u32>>(), &mut rng);
        let mut sorted = out.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_ne!(out, (0..10).collect::<Vec<_>>());
    }
}
