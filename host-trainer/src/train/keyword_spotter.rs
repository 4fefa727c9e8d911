//! The keyword spotter: a head over the speech features that names the vocabulary word
//! an utterance says, so the board can fill the transcript template (and read the text
//! features from the bundle's keyword table) without a prompt and without an ASR.
//!
//! - **Model**: the speech model ([`BranchClassifier`], same [`HeadConfig`] sizes) with
//!   one output per word of the corpus vocabulary: every word of the manifest, sorted
//!   ([`vocabulary`]), the same words, in the same order, as the keyword table's entries.
//! - **Training**: the emotion models' loop ([`train_classes`]): AdamW, cross-entropy,
//!   shuffled batches, seeded dropout, the best epoch by validation macro-F1 kept.
//! - **Abstaining**: the board takes the spotted word only when its probability is at
//!   least `min_confidence`; below it the speech-only head answers. The threshold is
//!   chosen on the validation part ([`choose_min_confidence`]): the lowest one at which
//!   the accepted words are right at least [`TARGET_PRECISION`] of the time, but never
//!   below [`CONFIDENCE_FLOOR`] (so 0.5 when validation is perfect); when no threshold
//!   reaches that precision, [`NEVER_CONFIDENT`] (the board relies on the prompt).
//! - **Evaluation** on the test part ([`evaluate`]): accuracy, top-3 accuracy, macro-F1
//!   over the words present, per-word precision, recall and confusions, and what the
//!   threshold accepts.
//! - **Open set** ([`Negatives`]): with negatives, the model has one output more,
//!   [`NONE_CLASS`] ("not a keyword"), trained on (a) recorded speech of other speakers
//!   that says no vocabulary word ([`crate::data::negatives`]: its training part) and
//!   (b) the utterances of vocabulary words held out of the outputs
//!   ([`held_out_words`]). The board then says "no word heard" when the probability that
//!   a vocabulary word was said, `1 − p(<none>)`, is below the **keyword threshold**,
//!   chosen on a calibration part the spotter never trained on (the recorded
//!   negatives' calibration speakers, else the held-out words' validation utterances)
//!   as the lowest at which at most [`TARGET_FALSE_ACCEPT_RATE`] of it is accepted, and
//!   at least [`KEYWORD_THRESHOLD_FLOOR`] ([`choose_keyword_threshold`]). Measured: the
//!   false-accept rate on the recorded negatives' unseen test speakers and on the
//!   held-out words' test utterances, and the false-reject rate on the test part's
//!   utterances of the spotter's words. `min_confidence` then applies to the word's
//!   probability among the words, as before.
//!
//! A run is saved in `RUNS/keyword/{split}/` ([`keyword_run_dir`]): `model/` (the burn
//! head as [`TrainedModel::save`] writes it), `spotter.json` (words and threshold),
//! `train_config.json`, `curves.json`, `curves.csv` and `metrics.json`. A spotter can
//! only be trained on a split whose validation and test words are all heard in
//! training (not the word-disjoint split).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use emotion_core::bundle::MeasuredRate;
use emotion_core::keyword_spotter::{NONE_CLASS, spotted_from_logits};
use emotion_core::real_speech::RealSpeech;
use emotion_core::scores::{argmax, softmax};

use crate::data::manifest::CorpusManifest;
use crate::data::negatives::{
    Augment, NegativesError, RealNegatives, noise_examples, window_examples,
};
use crate::data::splits::Split;
use crate::evaluate::metrics::ClassificationReport;
use crate::features::cache::FeatureCache;
use crate::features::extract::Extractor;
use crate::train::dataset::{DatasetError, SplitData, load_split};
use crate::train::heads::classifier::BranchClassifier;
use crate::train::heads::{EmotionHead, HeadConfig, ModelKind};
use crate::train::runs::{epoch_printer, save_curves};
use crate::train::trainer::{
    Classes, EpochRecord, Example, TrainConfig, TrainError, TrainedModel, train_classes,
};
use emotion_core::fs::write_atomically;

/// Validation precision the accepted words must reach at the chosen threshold.
pub const TARGET_PRECISION: f64 = 0.9;
/// The lowest `min_confidence` chosen, whatever the validation part allows.
pub const CONFIDENCE_FLOOR: f32 = 0.5;
/// The threshold when no threshold reaches [`TARGET_PRECISION`] on validation: the
/// spotter answers only when certain, so in practice the board uses the prompt.
pub const NEVER_CONFIDENT: f32 = 1.0;
/// How many of the most probable words count for the top-k accuracy.
pub const TOP_K: usize = 3;
/// The false-accept rate the keyword threshold is chosen for, on the calibration part.
pub const TARGET_FALSE_ACCEPT_RATE: f64 = 0.01;
/// The lowest keyword threshold: the spotter names a word only when it finds a
/// vocabulary word at least as likely as none.
pub const KEYWORD_THRESHOLD_FLOOR: f32 = 0.5;

/// Folder of the runs, beside `speech`, `text`, `fusion`.
const RUNS_FOLDER: &str = "keyword";
/// The saved model's folder, inside the run folder.
const MODEL_FOLDER: &str = "model";
/// Words and threshold, inside the run folder.
const SPOTTER_FILE: &str = "spotter.json";
/// The evaluation, inside the run folder.
const METRICS_FILE: &str = "metrics.json";
/// Version of `spotter.json`.
const FORMAT_VERSION: u32 = 1;

/// The folder of the spotter trained on `split`: `RUNS/keyword/{split}/`.
pub fn keyword_run_dir(runs: &Path, split: &str) -> PathBuf {
    runs.join(RUNS_FOLDER).join(split)
}

/// The corpus vocabulary: every word of the manifest, once, sorted (the order of the
/// keyword table and of the spotter's outputs).
pub fn vocabulary(manifest: &CorpusManifest) -> Vec<String> {
    let words: BTreeSet<&str> = manifest.entries().iter().map(|e| e.word.as_str()).collect();
    words.into_iter().map(String::from).collect()
}

/// How the spotter trains unless told: the speech model's sizes and optimiser, with a
/// little more patience (a word has fewer utterances to learn from than an emotion).
pub fn default_config() -> TrainConfig {
    TrainConfig {
        model: ModelKind::Speech,
        patience: 10,
        head: HeadConfig::default(),
        ..TrainConfig::default()
    }
}

/// Why a spotter cannot be trained, saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeywordError {
    /// The split's examples cannot be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Training, prediction or the saved head failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A vocabulary of fewer than two words: nothing to tell apart.
    #[error("the manifest has {0} word(s): a keyword spotter needs at least two")]
    TooFewWords(usize),
    /// The spotter reads speech features only.
    #[error("the keyword spotter is a speech model; {0} was asked for")]
    NotSpeech(ModelKind),
    /// Words of the validation or test part never heard in training.
    #[error(
        "split {split}: words of its validation or test part are never heard in its training part ({}): a spotter cannot learn them; train it on the random or a speaker split",
        .words.join(", ")
    )]
    UnseenWords {
        /// The split.
        split: String,
        /// The words.
        words: Vec<String>,
    },
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The recorded negatives cannot be read.
    #[error(transparent)]
    Negatives(#[from] NegativesError),
    /// An open-set spotter with nothing to choose its keyword threshold on.
    #[error("{0}")]
    Calibration(String),
    /// `spotter.json` unreadable, from another version, or contradicting the model.
    #[error("{path}: not a saved keyword spotter ({detail})")]
    Saved {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A trained spotter: the burn model, its words and its thresholds.
#[derive(Debug, Clone)]
pub struct KeywordModel {
    model: TrainedModel,
    words: Vec<String>,
    min_confidence: f32,
    open_set: Option<OpenSetChoice>,
}

/// What makes a spotter open-set: its keyword threshold and what it learnt "not a
/// keyword" from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSetChoice {
    /// Below this probability that a vocabulary word was said, "no word heard".
    pub keyword_threshold: f32,
    /// Vocabulary words left out of the outputs, trained as "not a keyword".
    pub held_out_words: Vec<String>,
    /// The recorded speech it trained on, when it did.
    pub recorded: Option<RecordedParts>,
}

/// Where the recorded negatives came from, and the speaker groups of each part (the
/// export finds the same parts again and checks them against these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedParts {
    /// The real-speech cache.
    pub root: PathBuf,
    /// Speaker groups trained on.
    pub train: Vec<String>,
    /// Speaker groups the keyword threshold was chosen on.
    pub calibration: Vec<String>,
    /// Speaker groups never heard: the false-accept rate's.
    pub test: Vec<String>,
}

impl RecordedParts {
    /// The groups of `negatives`' parts.
    pub fn of(negatives: &RealNegatives) -> Self {
        Self {
            root: negatives.root.clone(),
            train: negatives.train.groups.clone(),
            calibration: negatives.calibration.groups.clone(),
            test: negatives.test.groups.clone(),
        }
    }
}

/// `spotter.json`.
#[derive(Debug, Serialize, Deserialize)]
struct SavedSpotter {
    format_version: u32,
    words: Vec<String>,
    min_confidence: f32,
    /// Absent for a closed-set spotter (and in files written before open-set spotters).
    #[serde(default)]
    open_set: Option<OpenSetChoice>,
}

impl KeywordModel {
    /// The words, in output order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Below this probability the spotter abstains.
    pub fn min_confidence(&self) -> f32 {
        self.min_confidence
    }

    /// The keyword threshold and negatives of an open-set spotter (its last output is
    /// [`NONE_CLASS`]); `None` for a closed-set one.
    pub fn open_set(&self) -> Option<&OpenSetChoice> {
        self.open_set.as_ref()
    }

    /// The names of the model's outputs: the words, then [`NONE_CLASS`] when open-set.
    pub fn output_names(&self) -> Vec<String> {
        let mut names = self.words.clone();
        if self.open_set.is_some() {
            names.push(NONE_CLASS.to_string());
        }
        names
    }

    /// The burn model (for export).
    pub fn classifier(&self) -> &BranchClassifier {
        match self.model.head() {
            EmotionHead::Speech(classifier) => classifier,
            // `new`, through which `load` goes too, accepts speech models only.
            other => unreachable!("a keyword spotter is a speech model, not {}", other.kind()),
        }
    }

    /// Logits, one row per example, in order: one value per word, then the
    /// [`NONE_CLASS`] one for an open-set spotter.
    pub fn logits(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, TrainError> {
        self.model.class_logits(examples)
    }

    /// The probabilities of the words among themselves (the `<none>` output left out),
    /// one row per example, in order.
    pub fn probabilities(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, TrainError> {
        let n = self.words.len();
        Ok(self
            .logits(examples)?
            .iter()
            .map(|row| softmax(&row[..n.min(row.len())]))
            .collect())
    }

    /// A spotter from a trained speech model with one output per word (and one more,
    /// [`NONE_CLASS`], when `open_set` is given).
    fn new(
        model: TrainedModel,
        words: Vec<String>,
        min_confidence: f32,
        open_set: Option<OpenSetChoice>,
    ) -> Result<Self, String> {
        if model.kind() != ModelKind::Speech {
            return Err(format!("a {} model, not a speech model", model.kind()));
        }
        let outputs = words.len() + usize::from(open_set.is_some());
        if model.classes() != outputs {
            return Err(format!(
                "the model has {} outputs for {} words{}",
                model.classes(),
                words.len(),
                if open_set.is_some() {
                    " and `<none>`"
                } else {
                    ""
                }
            ));
        }
        if let Some(t) = open_set.as_ref().map(|o| o.keyword_threshold)
            && !(0.0..=1.0).contains(&t)
        {
            return Err(format!("keyword threshold {t} is not a probability"));
        }
        Ok(Self {
            model,
            words,
            min_confidence,
            open_set,
        })
    }

    /// Writes `model/` and `spotter.json` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), KeywordError> {
        self.model.save(&dir.join(MODEL_FOLDER))?;
        let saved = SavedSpotter {
            format_version: FORMAT_VERSION,
            words: self.words.clone(),
            min_confidence: self.min_confidence,
            open_set: self.open_set.clone(),
        };
        let path = dir.join(SPOTTER_FILE);
        let json = serde_json::to_string_pretty(&saved).map_err(|e| KeywordError::Saved {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        write_atomically(&path, json.as_bytes()).map_err(|source| KeywordError::Io { path, source })
    }

    /// Reads a spotter written by [`save`](Self::save).
    pub fn load(dir: &Path) -> Result<Self, KeywordError> {
        let path = dir.join(SPOTTER_FILE);
        let json = std::fs::read_to_string(&path).map_err(|source| KeywordError::Io {
            path: path.clone(),
            source,
        })?;
        let saved = |detail: String| KeywordError::Saved {
            path: path.clone(),
            detail,
        };
        let spotter: SavedSpotter =
            serde_json::from_str(&json).map_err(|e| saved(e.to_string()))?;
        if spotter.format_version != FORMAT_VERSION {
            return Err(saved(format!(
                "format version {}, this program reads version {FORMAT_VERSION}: train the spotter again",
                spotter.format_version
            )));
        }
        let model = TrainedModel::load(&dir.join(MODEL_FOLDER))?;
        Self::new(
            model,
            spotter.words,
            spotter.min_confidence,
            spotter.open_set,
        )
        .map_err(saved)
    }

    /// True when `dir` holds a saved spotter (it may still fail to load).
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(SPOTTER_FILE).is_file()
    }
}

/// What the threshold accepts on a set of utterances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The threshold: a word is accepted when its probability is at least this.
    pub min_confidence: f32,
    /// Utterances whose word was accepted.
    pub accepted: usize,
    /// Utterances in all.
    pub utterances: usize,
    /// Accepted / utterances.
    pub coverage: f64,
    /// Of the accepted words, the fraction that were right (0 when none was accepted).
    pub precision: f64,
}

impl Acceptance {
    /// What `min_confidence` accepts among `(confidence, right)` pairs.
    pub fn of(outcomes: &[(f32, bool)], min_confidence: f32) -> Self {
        let accepted: Vec<bool> = outcomes
            .iter()
            .filter(|(confidence, _)| *confidence >= min_confidence)
            .map(|(_, right)| *right)
            .collect();
        let right = accepted.iter().filter(|r| **r).count();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Self {
            min_confidence,
            accepted: accepted.len(),
            utterances: outcomes.len(),
            coverage: ratio(accepted.len(), outcomes.len()),
            precision: ratio(right, accepted.len()),
        }
    }
}

/// The threshold for the board, from the validation part's `(confidence, right)` pairs:
/// the lowest threshold whose accepted words reach [`TARGET_PRECISION`], raised to
/// [`CONFIDENCE_FLOOR`]; [`NEVER_CONFIDENT`] when no threshold reaches it (or there is
/// nothing to judge by).
pub fn choose_min_confidence(outcomes: &[(f32, bool)]) -> f32 {
    let mut candidates: Vec<f32> = outcomes.iter().map(|(c, _)| *c).collect();
    candidates.push(0.0);
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    candidates
        .into_iter()
        .map(|t| Acceptance::of(outcomes, t))
        .find(|a| a.accepted > 0 && a.precision >= TARGET_PRECISION)
        .map_or(NEVER_CONFIDENT, |a| a.min_confidence.max(CONFIDENCE_FLOOR))
}

/// One word's scores on the test part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordScore {
    /// The word.
    pub word: String,
    /// Its utterances in the test part.
    pub support: usize,
    /// Of the utterances spotted as this word, the fraction that said it.
    pub precision: f64,
    /// Of its utterances, the fraction spotted.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// The words its utterances were taken for instead, most often first.
    pub confused_with: Vec<Confusion>,
}

/// How often a word was taken for another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// The word spotted instead.
    pub word: String,
    /// How many times.
    pub count: usize,
}

/// The spotter on one part of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordEvaluation {
    /// Utterances.
    pub utterances: usize,
    /// Fraction whose most probable word was right.
    pub accuracy: f64,
    /// Fraction whose word was among the [`TOP_K`] most probable.
    pub top3_accuracy: f64,
    /// Mean F1 over the words said or spotted in this part (scikit-learn's default
    /// label set: a word absent from a small test part does not count as a zero).
    pub macro_f1: f64,
    /// What the threshold accepts.
    pub accepted: Acceptance,
    /// Per word, in output order.
    pub words: Vec<WordScore>,
    /// `confusion[said][spotted]`, counts, in output order.
    pub confusion: Vec<Vec<usize>>,
}

/// Scores `probabilities` (one row per utterance) against the true word indices.
pub fn evaluate(
    words: &[String],
    probabilities: &[Vec<f32>],
    truth: &[usize],
    min_confidence: f32,
) -> KeywordEvaluation {
    let predicted: Vec<usize> = probabilities.iter().map(|p| argmax(p).0).collect();
    let report = ClassificationReport::with_labels(words.to_vec(), truth, &predicted);
    let in_top_k = probabilities
        .iter()
        .zip(truth)
        .filter(|(p, t)| p.get(**t).is_some_and(|own| rank_of(p, *own) < TOP_K))
        .count();
    let present: Vec<f64> = report
        .per_class
        .iter()
        .enumerate()
        .filter(|(c, m)| m.support > 0 || predicted.contains(c))
        .map(|(_, m)| m.f1)
        .collect();
    let outcomes = outcomes(probabilities, truth);
    let scores = words
        .iter()
        .zip(&report.per_class)
        .zip(&report.confusion)
        .enumerate()
        .map(|(said, ((word, m), row))| {
            let mut confused_with: Vec<Confusion> = row
                .iter()
                .enumerate()
                .filter(|(spotted, n)| *spotted != said && **n > 0)
                .map(|(spotted, n)| Confusion {
                    word: words[spotted].clone(),
                    count: *n,
                })
                .collect();
            confused_with.sort_by(|a, b| b.count.cmp(&a.count).then(a.word.cmp(&b.word)));
            WordScore {
                word: word.clone(),
                support: m.support,
                precision: m.precision,
                recall: m.recall,
                f1: m.f1,
                confused_with,
            }
        })
        .collect();
    let n = probabilities.len();
    KeywordEvaluation {
        utterances: n,
        accuracy: report.accuracy,
        top3_accuracy: if n == 0 {
            0.0
        } else {
            in_top_k as f64 / n as f64
        },
        macro_f1: if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        },
        accepted: Acceptance::of(&outcomes, min_confidence),
        words: scores,
        confusion: report.confusion,
    }
}

/// How many values of `row` are larger than `value` (0 for the largest).
fn rank_of(row: &[f32], value: f32) -> usize {
    row.iter().filter(|v| **v > value).count()
}

/// `(confidence of the spotted word, right)` per utterance.
fn outcomes(probabilities: &[Vec<f32>], truth: &[usize]) -> Vec<(f32, bool)> {
    probabilities
        .iter()
        .zip(truth)
        .map(|(p, t)| {
            let spotted = argmax(p).0;
            (p.get(spotted).copied().unwrap_or(0.0), spotted == *t)
        })
        .collect()
}

/// The vocabulary words held out of an open-set spotter's outputs (their utterances are
/// "not a keyword"): `count` of them, evenly spaced through the sorted vocabulary (the
/// `j`-th at index ⌊(j + ½)·V / count⌋), never so many that fewer than two words remain.
pub fn held_out_words(vocabulary: &[String], count: usize) -> Vec<String> {
    let v = vocabulary.len();
    let count = count.min(v.saturating_sub(2));
    (0..count)
        .map(|j| vocabulary[((2 * j + 1) * v) / (2 * count)].clone())
        .collect()
}

/// How many vocabulary words [`held_out_words`] holds out unless told: one in six (two
/// of the embedded corpus's 12, 33 of TESS's 200), at least one.
pub fn default_held_out_count(vocabulary: usize) -> usize {
    (vocabulary / 6).max(1)
}

/// The keyword threshold from the calibration part's keyword probabilities (one is
/// accepted when it is at least the threshold): at most `target` of them may be
/// accepted, so the highest one that must be refused sets it, halfway between that one
/// and the next higher probability of the part (1 when there is none). Halfway, not
/// just above: the board's arithmetic (tract, int8) moves a probability by a few 1e-7,
/// and a threshold a hair above one would let it through. Raised to
/// [`KEYWORD_THRESHOLD_FLOOR`], at most 1. An empty part, or a probability that is not
/// a number, is an error.
pub fn choose_keyword_threshold(scores: &[f32], target: f64) -> Result<f32, String> {
    if scores.is_empty() {
        return Err("no calibration utterances to choose the keyword threshold on".into());
    }
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(format!("a calibration keyword probability is {bad}"));
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    // The most that may be accepted; a hair of slack for products like 0.01 × 300.
    let allowed = (target * sorted.len() as f64 + 1e-9).floor() as usize;
    let threshold = match sorted.get(allowed) {
        Some(&refused) => {
            let above = sorted
                .iter()
                .rev()
                .find(|&&s| s > refused)
                .copied()
                .unwrap_or(1.0)
                .max(refused);
            let halfway = refused + (above - refused) / 2.0;
            if halfway > refused {
                halfway
            } else {
                refused.next_up()
            }
        }
        None => 0.0,
    };
    Ok(threshold.clamp(KEYWORD_THRESHOLD_FLOOR, 1.0))
}

/// The probability that a vocabulary word was said, `1 − p(<none>)`, from each row of
/// an open-set spotter's logits (one per word of `words`, then `<none>`); the same
/// formula the board uses.
pub fn keyword_probabilities(words: &[String], logits: &[Vec<f32>]) -> Vec<f32> {
    logits
        .iter()
        .map(|row| {
            spotted_from_logits(words, row, true)
                .keyword_probability
                .unwrap_or(1.0)
        })
        .collect()
}

/// Negatives at or above the threshold (false accepts), or positives below it (false
/// rejects), as a measured rate.
pub fn rate_at(
    part: &str,
    speakers: Vec<String>,
    scores: &[f32],
    threshold: f32,
    negatives: bool,
) -> MeasuredRate {
    let errors = scores
        .iter()
        .filter(|&&s| {
            if negatives {
                s >= threshold
            } else {
                !(s >= threshold)
            }
        })
        .count();
    MeasuredRate::new(part, speakers, errors, scores.len())
}

/// What a spotter learns "not a keyword" from; empty: a closed-set spotter.
#[derive(Debug, Clone, Default)]
pub struct Negatives {
    /// Vocabulary words left out of the outputs (see [`held_out_words`]).
    pub held_out_words: Vec<String>,
    /// Recorded speech without a vocabulary word, per part, with its features.
    pub recorded: Option<RecordedExamples>,
}

impl Negatives {
    /// True when there is nothing to learn "not a keyword" from.
    pub fn is_empty(&self) -> bool {
        self.held_out_words.is_empty() && self.recorded.is_none()
    }
}

/// The copies of each recorded training window the spotter also learns from.
pub const TRAINING_AUGMENTS: &[Augment] = &[
    Augment::Telephone,
    Augment::Faster,
    Augment::Slower,
    Augment::Short,
];

/// Synthetic noise clips of each colour trained as "not a keyword" with recorded speech.
pub const NOISE_PER_COLOUR: usize = 8;

/// The recorded negatives' parts as examples.
#[derive(Debug, Clone)]
pub struct RecordedExamples {
    /// Where they came from and the speaker groups of each part.
    pub parts: RecordedParts,
    /// Trained on: the training windows, their [`TRAINING_AUGMENTS`] copies, and
    /// [`NOISE_PER_COLOUR`] synthetic noise clips of each colour.
    pub train: Vec<Example>,
    /// The keyword threshold is chosen here.
    pub calibration: Vec<Example>,
    /// Never heard: the false-accept rate's.
    pub test: Vec<Example>,
}

impl RecordedExamples {
    /// The features of every window of `negatives`, computed with `extractor` (or read
    /// from `cache`); the training windows also through [`TRAINING_AUGMENTS`].
    pub fn extract(
        negatives: &RealNegatives,
        extractor: &Extractor,
        cache: &FeatureCache,
    ) -> Result<Self, NegativesError> {
        let jobs = std::thread::available_parallelism().map_or(1, usize::from);
        let mut train =
            window_examples(&negatives.train, extractor, cache, jobs, TRAINING_AUGMENTS)?;
        train.extend(noise_examples(NOISE_PER_COLOUR, extractor, cache)?);
        Ok(Self {
            parts: RecordedParts::of(negatives),
            train,
            calibration: window_examples(&negatives.calibration, extractor, cache, jobs, &[])?,
            test: window_examples(&negatives.test, extractor, cache, jobs, &[])?,
        })
    }
}

/// An open-set spotter's rates, at its keyword threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSetEvaluation {
    /// The threshold.
    pub keyword_threshold: f32,
    /// Vocabulary words held out of the outputs.
    pub held_out_words: Vec<String>,
    /// False accepts on the calibration part (where the threshold was chosen).
    pub calibration: MeasuredRate,
    /// False accepts on the recorded negatives' unseen speakers.
    pub false_accept: Option<MeasuredRate>,
    /// False accepts on the test part's utterances of the held-out words.
    pub held_out_false_accept: Option<MeasuredRate>,
    /// False rejects on the test part's utterances of the spotter's words.
    pub false_reject: MeasuredRate,
}

/// The parts an open-set spotter is scored on, with their speakers.
#[derive(Debug, Clone, Copy)]
pub struct OpenSetParts<'a> {
    /// The calibration part's keyword probabilities, what it is, its speakers.
    pub calibration: (&'a [f32], &'a str, &'a [String]),
    /// The recorded unseen test part's, when there is one.
    pub recorded_test: Option<(&'a [f32], &'a [String])>,
    /// The held-out words' test utterances', when there are held-out words.
    pub held_out_test: Option<(&'a [f32], &'a [String])>,
    /// The test part's utterances of the spotter's words.
    pub keyword_test: (&'a [f32], &'a [String]),
}

/// The rates of an open-set spotter at `choice`'s threshold on `parts`.
pub fn open_set_rates(choice: &OpenSetChoice, parts: OpenSetParts<'_>) -> OpenSetEvaluation {
    let t = choice.keyword_threshold;
    let (scores, what, speakers) = parts.calibration;
    OpenSetEvaluation {
        keyword_threshold: t,
        held_out_words: choice.held_out_words.clone(),
        calibration: rate_at(what, speakers.to_vec(), scores, t, true),
        false_accept: parts.recorded_test.map(|(scores, speakers)| {
            rate_at(
                "recorded speech of unseen speakers, no vocabulary word",
                speakers.to_vec(),
                scores,
                t,
                true,
            )
        }),
        held_out_false_accept: parts.held_out_test.map(|(scores, speakers)| {
            rate_at(
                &format!(
                    "test utterances of the held-out words ({})",
                    choice.held_out_words.join(", ")
                ),
                speakers.to_vec(),
                scores,
                t,
                true,
            )
        }),
        false_reject: rate_at(
            "test utterances of the spotter's words",
            parts.keyword_test.1.to_vec(),
            parts.keyword_test.0,
            t,
            false,
        ),
    }
}

/// A spotter trained on one split, with its scores.
#[derive(Debug, Clone)]
pub struct KeywordRun {
    /// The split.
    pub split: String,
    /// The model of the best epoch, with its thresholds.
    pub model: KeywordModel,
    /// How it was trained.
    pub config: TrainConfig,
    /// One record per epoch run.
    pub curves: Vec<EpochRecord>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// The validation part's utterances of the spotter's words (where `min_confidence`
    /// was chosen).
    pub validation: KeywordEvaluation,
    /// The test part's utterances of the spotter's words.
    pub test: KeywordEvaluation,
    /// An open-set spotter's rates (burn).
    pub open_set: Option<OpenSetEvaluation>,
}

/// `metrics.json` of a run.
#[derive(Debug, Serialize)]
struct RunMetrics<'a> {
    split: &'a str,
    words: &'a [String],
    best_epoch: usize,
    epochs: usize,
    min_confidence: f32,
    min_confidence_rule: String,
    validation: &'a KeywordEvaluation,
    test: &'a KeywordEvaluation,
    #[serde(skip_serializing_if = "Option::is_none")]
    open_set: Option<&'a OpenSetEvaluation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keyword_threshold_rule: Option<String>,
}

impl KeywordRun {
    /// Writes the model, `spotter.json`, the training settings, the curves and
    /// `metrics.json` into `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.model.save(dir)?;
        save_curves(dir, &self.config, &self.curves)?;
        let metrics = RunMetrics {
            split: &self.split,
            words: self.model.words(),
            best_epoch: self.best_epoch,
            epochs: self.curves.len(),
            min_confidence: self.model.min_confidence(),
            min_confidence_rule: format!(
                "the lowest threshold at which the validation words accepted are right at least {:.0}% of the time, at least {CONFIDENCE_FLOOR}; {NEVER_CONFIDENT} when none is",
                100.0 * TARGET_PRECISION
            ),
            validation: &self.validation,
            test: &self.test,
            open_set: self.open_set.as_ref(),
            keyword_threshold_rule: self.open_set.as_ref().map(|_| keyword_threshold_rule()),
        };
        write_atomically(
            &dir.join(METRICS_FILE),
            serde_json::to_string_pretty(&metrics)?.as_bytes(),
        )?;
        Ok(())
    }
}

/// The keyword threshold's rule, in words.
pub fn keyword_threshold_rule() -> String {
    format!(
        "the threshold on 1 − p(<none>) that accepts at most {:.0}% of the calibration part, halfway between the highest probability it must refuse and the next one up, at least {KEYWORD_THRESHOLD_FLOOR}",
        100.0 * TARGET_FALSE_ACCEPT_RATE
    )
}

/// The word index of every utterance of `manifest` whose word is in `words`, by id.
fn word_labels(manifest: &CorpusManifest, words: &[String]) -> HashMap<String, usize> {
    let index: HashMap<&str, usize> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    manifest
        .entries()
        .iter()
        .filter_map(|e| Some((e.id.clone(), *index.get(e.word.as_str())?)))
        .collect()
}

/// The corpus speakers of `examples`, sorted, once each.
fn speakers_of(manifest: &CorpusManifest, examples: &[&Example]) -> Vec<String> {
    let speakers: BTreeSet<&str> = examples
        .iter()
        .filter_map(|e| manifest.get(&e.id).map(|entry| entry.speaker.as_str()))
        .collect();
    speakers.into_iter().map(String::from).collect()
}

/// Trains a spotter on the examples of `split` (speech features, read by the caller
/// with [`load_split`]), with the open-set `negatives` when there are any, chooses its
/// thresholds and scores the test part.
pub fn train_keywords(
    manifest: &CorpusManifest,
    split: &str,
    data: &SplitData,
    negatives: &Negatives,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<KeywordRun, KeywordError> {
    if config.model != ModelKind::Speech {
        return Err(KeywordError::NotSpeech(config.model));
    }
    let all_words = vocabulary(manifest);
    let held_out: BTreeSet<&str> = negatives
        .held_out_words
        .iter()
        .map(String::as_str)
        .collect();
    let words: Vec<String> = all_words
        .iter()
        .filter(|w| !held_out.contains(w.as_str()))
        .cloned()
        .collect();
    if words.len() < 2 {
        return Err(KeywordError::TooFewWords(words.len()));
    }
    let open_set = !negatives.is_empty();
    let none = words.len();
    let labels = word_labels(manifest, &words);
    let held_out_ids: BTreeSet<&str> = manifest
        .entries()
        .iter()
        .filter(|e| held_out.contains(e.word.as_str()))
        .map(|e| e.id.as_str())
        .collect();
    // A keyword's index, `none` for a negative, usize::MAX for anything else (refused
    // by the trainer).
    let word_of = |e: &Example| match labels.get(&e.id) {
        Some(&w) => w,
        None if open_set
            && (held_out_ids.contains(e.id.as_str())
                || crate::data::negatives::is_negative_id(&e.id)) =>
        {
            none
        }
        None => usize::MAX,
    };
    let is_keyword = |e: &&Example| labels.contains_key(&e.id);
    let heard: BTreeSet<usize> = data.train.iter().map(word_of).collect();
    let unseen: BTreeSet<&str> = data
        .val
        .iter()
        .chain(&data.test)
        .filter(is_keyword)
        .map(word_of)
        .filter(|w| !heard.contains(w))
        .filter_map(|w| words.get(w).map(String::as_str))
        .collect();
    if !unseen.is_empty() {
        return Err(KeywordError::UnseenWords {
            split: split.to_string(),
            words: unseen.into_iter().map(String::from).collect(),
        });
    }
    let mut names = words.clone();
    if open_set {
        names.push(NONE_CLASS.to_string());
    }
    let classes = Classes {
        names,
        label: Box::new(word_of),
    };
    let recorded = negatives.recorded.as_ref();
    let mut train: Vec<Example> = data.train.clone();
    if !open_set {
        train.retain(|e| is_keyword(&e));
    }
    if let Some(r) = recorded {
        train.extend(r.train.iter().cloned());
    }
    // As many keyword utterances as negatives: the keyword utterances are repeated
    // (whole copies) until they are at least as many, so "not a keyword" does not win
    // by number alone.
    let keywords: Vec<Example> = train.iter().filter(|e| is_keyword(e)).cloned().collect();
    let negative_count = train.len() - keywords.len();
    if !keywords.is_empty() {
        let copies = negative_count.div_ceil(keywords.len()).saturating_sub(1);
        for _ in 0..copies {
            train.extend(keywords.iter().cloned());
        }
    }
    let val: Vec<Example> = data
        .val
        .iter()
        .filter(|e| open_set || is_keyword(e))
        .cloned()
        .collect();
    let outcome = train_classes(config, &classes, &train, &val, on_epoch)?;

    let keyword = |examples: &[Example]| -> Vec<Example> {
        examples.iter().filter(is_keyword).cloned().collect()
    };
    let (val_words, test_words) = (keyword(&data.val), keyword(&data.test));
    let truth = |examples: &[Example]| examples.iter().map(word_of).collect::<Vec<_>>();
    let word_probabilities = |examples: &[Example]| -> Result<Vec<Vec<f32>>, TrainError> {
        Ok(outcome
            .model
            .class_logits(examples)?
            .iter()
            .map(|row| softmax(&row[..none.min(row.len())]))
            .collect())
    };
    let val_probabilities = word_probabilities(&val_words)?;
    let val_truth = truth(&val_words);
    let min_confidence = choose_min_confidence(&outcomes(&val_probabilities, &val_truth));
    let validation = evaluate(&words, &val_probabilities, &val_truth, min_confidence);
    let test = evaluate(
        &words,
        &word_probabilities(&test_words)?,
        &truth(&test_words),
        min_confidence,
    );

    let (choice, open_set_evaluation) = if open_set {
        let scores = |examples: &[Example]| -> Result<Vec<f32>, TrainError> {
            Ok(keyword_probabilities(
                &words,
                &outcome.model.class_logits(examples)?,
            ))
        };
        let held_out_part = |examples: &[Example]| -> Vec<Example> {
            examples
                .iter()
                .filter(|e| held_out_ids.contains(e.id.as_str()))
                .cloned()
                .collect()
        };
        let (held_val, held_test) = (held_out_part(&data.val), held_out_part(&data.test));
        let speakers =
            |examples: &[Example]| speakers_of(manifest, &examples.iter().collect::<Vec<_>>());
        let (calibration_scores, calibration_what, calibration_speakers) = match recorded {
            Some(r) => (
                scores(&r.calibration)?,
                "recorded speech of calibration speakers, no vocabulary word",
                r.parts.calibration.clone(),
            ),
            None => (
                scores(&held_val)?,
                "validation utterances of the held-out words",
                speakers(&held_val),
            ),
        };
        // No calibration utterance (a small corpus whose validation part holds none of
        // the held-out words, and no recorded speech): the floor, and the calibration
        // rate reads 0 of 0.
        let keyword_threshold = if calibration_scores.is_empty() {
            KEYWORD_THRESHOLD_FLOOR
        } else {
            choose_keyword_threshold(&calibration_scores, TARGET_FALSE_ACCEPT_RATE)
                .map_err(|e| KeywordError::Calibration(format!("split {split}: {e}")))?
        };
        let choice = OpenSetChoice {
            keyword_threshold,
            held_out_words: negatives.held_out_words.clone(),
            recorded: recorded.map(|r| r.parts.clone()),
        };
        let recorded_test = match recorded {
            Some(r) => Some((scores(&r.test)?, r.parts.test.clone())),
            None => None,
        };
        let held_out_test = if held_test.is_empty() {
            None
        } else {
            Some((scores(&held_test)?, speakers(&held_test)))
        };
        let keyword_test = (scores(&test_words)?, speakers(&test_words));
        let evaluation = open_set_rates(
            &choice,
            OpenSetParts {
                calibration: (&calibration_scores, calibration_what, &calibration_speakers),
                recorded_test: recorded_test
                    .as_ref()
                    .map(|(s, g)| (s.as_slice(), g.as_slice())),
                held_out_test: held_out_test
                    .as_ref()
                    .map(|(s, g)| (s.as_slice(), g.as_slice())),
                keyword_test: (&keyword_test.0, &keyword_test.1),
            },
        );
        (Some(choice), Some(evaluation))
    } else {
        (None, None)
    };
    let model =
        KeywordModel::new(outcome.model, words, min_confidence, choice).map_err(|detail| {
            KeywordError::Saved {
                path: PathBuf::new(),
                detail,
            }
        })?;
    Ok(KeywordRun {
        split: split.to_string(),
        model,
        config: config.clone(),
        curves: outcome.curves,
        best_epoch: outcome.best_epoch,
        validation,
        test,
        open_set: open_set_evaluation,
    })
}

/// Where an open-set spotter's negatives come from.
#[derive(Debug, Clone)]
pub struct NegativeSources {
    /// How many vocabulary words to hold out of the outputs (0: none).
    pub held_out_words: usize,
    /// Recorded speech: the set, and the speech encoder graph the features came from
    /// (its windows are run through it); `None`: none.
    pub recorded: Option<(RealSpeech, PathBuf)>,
}

impl NegativeSources {
    /// No negatives: a closed-set spotter, as before open-set spotters.
    pub fn none() -> Self {
        Self {
            held_out_words: 0,
            recorded: None,
        }
    }
}

/// The negatives `sources` name, for `manifest`'s vocabulary, with the recorded
/// windows' features extracted into (or read from) `cache` with the settings of its
/// `features.json`.
pub fn gather_negatives(
    manifest: &CorpusManifest,
    sources: &NegativeSources,
    cache: &Path,
) -> anyhow::Result<Negatives> {
    let vocabulary = vocabulary(manifest);
    let held_out_words = held_out_words(&vocabulary, sources.held_out_words);
    let recorded = match &sources.recorded {
        Some((set, speech_encoder)) => {
            let negatives = RealNegatives::split(set, &vocabulary)?;
            println!("   {}", negatives.summary());
            let extractor = extractor_for(cache, speech_encoder)?;
            Some(RecordedExamples::extract(
                &negatives,
                &extractor,
                &FeatureCache::new(cache),
            )?)
        }
        None => None,
    };
    Ok(Negatives {
        held_out_words,
        recorded,
    })
}

/// An extractor with the settings of the feature cache in `cache`, over
/// `speech_encoder`, which must be the graph those features came from.
pub fn extractor_for(cache: &Path, speech_encoder: &Path) -> anyhow::Result<Extractor> {
    use anyhow::Context as _;
    let index = crate::features::cache::FeatureIndex::read(cache)?;
    let settings = crate::features::extract::ExtractSettings {
        frontend: index.frontend.clone(),
        combination: index.combination,
        dtype: index.dtype,
    };
    let extractor = Extractor::new(speech_encoder, None, settings).with_context(|| {
        format!(
            "cannot load the speech encoder {}",
            speech_encoder.display()
        )
    })?;
    if extractor.speech_digest() != index.speech_encoder {
        anyhow::bail!(
            "{} is not the speech encoder the features in {} came from: pass the graph given to `extract` (--speech-encoder)",
            speech_encoder.display(),
            cache.display()
        );
    }
    Ok(extractor)
}

/// Trains the spotter on `split` (features from `cache`; negatives from `sources`),
/// prints one line per epoch and a summary, and saves the run in `RUNS/keyword/{split}/`.
pub fn train_keyword_run(
    manifest: &CorpusManifest,
    split: &Split,
    cache: &Path,
    runs: &Path,
    config: &TrainConfig,
    sources: &NegativeSources,
) -> anyhow::Result<KeywordRun> {
    let data = load_split(manifest, split, cache, false)?;
    let negatives = gather_negatives(manifest, sources, cache)?;
    let words = vocabulary(manifest).len() - negatives.held_out_words.len();
    let open = if negatives.is_empty() {
        String::new()
    } else {
        format!(
            " + \"not a keyword\" ({}{})",
            if negatives.held_out_words.is_empty() {
                "no held-out words".to_string()
            } else {
                format!("held-out words {}", negatives.held_out_words.join(", "))
            },
            negatives
                .recorded
                .as_ref()
                .map_or(String::new(), |r| format!(
                    ", {} recorded training windows",
                    r.train.len()
                ))
        )
    };
    println!(
        "-- keyword spotter ({words} words{open}) on {}: {} train, {} val, {} test utterances",
        split.name,
        data.train.len(),
        data.val.len(),
        data.test.len()
    );
    let mut on_epoch = epoch_printer(config.max_epochs, None);
    let run = train_keywords(
        manifest,
        &split.name,
        &data,
        &negatives,
        config,
        &mut on_epoch,
    )?;
    let dir = keyword_run_dir(runs, &split.name);
    run.save(&dir)?;
    let v = &run.validation.accepted;
    let threshold = if v.accepted == 0 {
        format!(
            "no threshold keeps {:.0}% of the validation words right: the board will not use the spotted words",
            100.0 * TARGET_PRECISION
        )
    } else {
        format!(
            "validation: {:.0}% of the words accepted, {:.0}% of those right",
            100.0 * v.coverage,
            100.0 * v.precision
        )
    };
    println!(
        "   kept epoch {} (val accuracy {:.1}%); min confidence {:.2} ({threshold}) -> {}",
        run.best_epoch,
        100.0 * run.validation.accuracy,
        run.model.min_confidence(),
        dir.display()
    );
    if let Some(o) = &run.open_set {
        println!("   {}", open_set_line(o));
    }
    Ok(run)
}

/// One line for people: the keyword threshold and the rates at it.
pub fn open_set_line(o: &OpenSetEvaluation) -> String {
    let rate =
        |r: &MeasuredRate| format!("{:.1}% ({} of {})", 100.0 * r.rate, r.errors, r.utterances);
    let mut line = format!(
        "keyword threshold {:.3} (calibration FAR {}): FAR on unseen speakers {}",
        o.keyword_threshold,
        rate(&o.calibration),
        o.false_accept.as_ref().map_or(
            "not measured (no recorded speech)".to_string(),
            |r| format!("{} [{}]", rate(r), r.speakers.join(", "))
        ),
    );
    if let Some(r) = &o.held_out_false_accept {
        line.push_str(&format!(", FAR on held-out words {}", rate(r)));
    }
    line.push_str(&format!(", FRR {}", rate(&o.false_reject)));
    line
}

/// One line for people: words, test accuracy and utterances, top-3, macro-F1, what the
/// threshold lets through, and (open set) the false-accept and false-reject rates.
pub fn summary_line(run: &KeywordRun) -> String {
    let t = &run.test;
    let answers = if t.accepted.accepted == 0 {
        "it answers for none of them".to_string()
    } else {
        format!(
            "it answers for {:.0}% of them, {:.0}% right",
            100.0 * t.accepted.coverage,
            100.0 * t.accepted.precision
        )
    };
    let open = run
        .open_set
        .as_ref()
        .map_or(String::new(), |o| format!("; {}", open_set_line(o)));
    format!(
        "keyword spotter: {} words, test accuracy {:.1}% ({} utterances), top-3 {:.1}%, macro-F1 {:.1}%; at min confidence {:.2} {answers}{open}",
        run.model.words().len(),
        100.0 * t.accuracy,
        t.utterances,
        100.0 * t.top3_accuracy,
        100.0 * t.macro_f1,
        run.model.min_confidence(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::manifest::CorpusEntry;
    use crate::train::heads::test_support::random_features;
    use emotion_core::Emotion;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_threshold_is_the_lowest_precise_enough_but_at_least_the_floor() {
        // Sorted by confidence: the two wrong answers sit at 0.3 and 0.62.
        let outcomes = [
            (0.95, true),
            (0.9, true),
            (0.8, true),
            (0.7, true),
            (0.65, true),
            (0.62, false),
            (0.6, true),
            (0.55, true),
            (0.5, true),
            (0.45, true),
            (0.3, false),
        ];
        // From 0.45 up, 9 of 10 accepted are right (0.9; at 0.3, 9 of 11): 0.45, raised
        // to the floor.
        assert_eq!(choose_min_confidence(&outcomes), CONFIDENCE_FLOOR);
        let strict: Vec<_> = outcomes
            .iter()
            .map(|&(c, r)| (c, r || c < 0.4))
            .chain([(0.99, false), (0.98, false)])
            .collect();
        // Now the two most confident are wrong: no threshold reaches 0.9.
        assert_eq!(choose_min_confidence(&strict), NEVER_CONFIDENT);
        // Perfect validation: the floor.
        let perfect = [(0.9, true), (0.35, true), (0.2, true)];
        assert_eq!(choose_min_confidence(&perfect), CONFIDENCE_FLOOR);
        // Above the floor when the errors are confident.
        let confident_errors = [(0.99, true), (0.97, true), (0.8, false), (0.7, true)];
        assert_eq!(choose_min_confidence(&confident_errors), 0.97);
        assert_eq!(choose_min_confidence(&[]), NEVER_CONFIDENT);
    }

    #[test]
    fn evaluation_counts_top3_confusions_and_present_words_only() {
        let words = strings(&["back", "bar", "base", "bath", "bean"]);
        // Rows: said back → back; said bar → base (bar second); said base → base;
        // said bar → bath (bar fourth).
        let p = |v: [f32; 5]| v.to_vec();
        let probabilities = vec![
            p([0.6, 0.1, 0.1, 0.1, 0.1]),
            p([0.1, 0.3, 0.4, 0.1, 0.1]),
            p([0.05, 0.05, 0.8, 0.05, 0.05]),
            p([0.25, 0.1, 0.2, 0.35, 0.1]),
        ];
        let truth = [0, 1, 2, 1];
        let e = evaluate(&words, &probabilities, &truth, 0.5);
        assert_eq!(e.utterances, 4);
        assert_eq!(e.accuracy, 0.5);
        assert_eq!(e.top3_accuracy, 0.75);
        // Present: back (f1 1), bar (0), base (p 1/2, r 1: 2/3), bath (0, spotted);
        // bean is absent and not counted.
        assert!((e.macro_f1 - (1.0 + 0.0 + 2.0 / 3.0 + 0.0) / 4.0).abs() < 1e-12);
        let bar = &e.words[1];
        assert_eq!((bar.support, bar.recall), (2, 0.0));
        assert_eq!(
            bar.confused_with,
            vec![
                Confusion {
                    word: "base".into(),
                    count: 1
                },
                Confusion {
                    word: "bath".into(),
                    count: 1
                }
            ]
        );
        assert_eq!(e.confusion[1], vec![0, 0, 1, 1, 0]);
        // At 0.5: back (0.6) and base (0.8) accepted, both right.
        assert_eq!(
            e.accepted,
            Acceptance {
                min_confidence: 0.5,
                accepted: 2,
                utterances: 4,
                coverage: 0.5,
                precision: 1.0
            }
        );
    }

    /// Utterances of `words` × 2 speakers × 7 emotions, each word's features centred on
    /// its own random pattern.
    fn corpus(words: &[&str], dim: usize) -> (CorpusManifest, SplitData) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let centres: Vec<Vec<f32>> = words
            .iter()
            .map(|_| {
                (0..dim)
                    .map(|_| if rng.next_u32() % 2 == 0 { 1.0 } else { -1.0 })
                    .collect()
            })
            .collect();
        let mut entries = Vec::new();
        let mut data = SplitData {
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
        };
        for (w, word) in words.iter().enumerate() {
            for (s, speaker) in ["OAF", "YAF"].into_iter().enumerate() {
                for (e, emotion) in Emotion::ALL.into_iter().enumerate() {
                    let id = CorpusEntry::id_of(speaker, word, emotion);
                    entries.push(CorpusEntry {
                        id: id.clone(),
                        path: PathBuf::from(format!("{id}.wav")),
                        speaker: speaker.into(),
                        word: word.to_string(),
                        emotion,
                        transcript: word.to_string(),
                        sample_rate: 16_000,
                        duration_s: 1.0,
                        corpus: "tess".into(),
                        label: emotion.code().into(),
                        intensity: String::new(),
                    });
                    let frames = 8 + (rng.next_u32() % 12) as usize;
                    let mut speech = random_features(&mut rng, 1, frames, dim);
                    for (k, v) in speech.data.iter_mut().enumerate() {
                        *v = 0.7 * *v + 0.7 * centres[w][k % dim];
                    }
                    let example = Example {
                        id,
                        speech,
                        text: None,
                        label: emotion,
                    };
                    match (s * 7 + e) % 7 {
                        0 => data.val.push(example),
                        1 => data.test.push(example),
                        _ => data.train.push(example),
                    }
                }
            }
        }
        (CorpusManifest::new(entries), data)
    }

    fn quick() -> TrainConfig {
        TrainConfig {
            max_epochs: 8,
            patience: 4,
            learning_rate: 1e-2,
            seed: 3,
            head: HeadConfig {
                conv_channels: 16,
                conv_kernel: 3,
                lstm_hidden: 8,
                dropout: 0.1,
                attention_dim: 8,
            },
            ..default_config()
        }
    }

    #[test]
    fn learns_separable_words_saves_and_loads() {
        let (manifest, data) = corpus(&["dog", "back", "king", "youth", "bean"], 12);
        let mut epochs = 0;
        let run = train_keywords(
            &manifest,
            "random",
            &data,
            &Negatives::default(),
            &quick(),
            &mut |_| epochs += 1,
        )
        .unwrap();
        assert_eq!(epochs, run.curves.len());
        assert_eq!(
            run.model.words(),
            strings(&["back", "bean", "dog", "king", "youth"])
        );
        assert_eq!(run.test.utterances, data.test.len());
        assert!(run.test.accuracy >= 0.9, "{:?}", run.test);
        assert!(run.test.top3_accuracy >= run.test.accuracy);
        assert!((CONFIDENCE_FLOOR..=NEVER_CONFIDENT).contains(&run.model.min_confidence()));
        let line = summary_line(&run);
        assert!(
            line.starts_with("keyword spotter: 5 words, test accuracy"),
            "{line}"
        );

        let dir = tempfile::tempdir().unwrap();
        run.save(dir.path()).unwrap();
        let loaded = KeywordModel::load(dir.path()).unwrap();
        assert_eq!(loaded.words(), run.model.words());
        assert_eq!(loaded.min_confidence(), run.model.min_confidence());
        assert_eq!(
            loaded.probabilities(&data.test).unwrap(),
            run.model.probabilities(&data.test).unwrap()
        );
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(METRICS_FILE)).unwrap()).unwrap();
        assert_eq!(metrics["test"]["utterances"], data.test.len());
        assert_eq!(metrics["words"].as_array().unwrap().len(), 5);
        for file in ["curves.csv", "curves.json", "train_config.json"] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
    }

    #[test]
    fn words_never_heard_in_training_are_refused() {
        let (manifest, mut data) = corpus(&["dog", "back"], 4);
        data.test
            .extend(data.train.extract_if(.., |e| e.id.contains("_dog_")));
        data.val.retain(|e| !e.id.contains("_dog_"));
        let error = train_keywords(
            &manifest,
            "word",
            &data,
            &Negatives::default(),
            &quick(),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(&error, KeywordError::UnseenWords { words, .. } if words == &["dog"]),
            "{error}"
        );
        assert!(
            error.to_string().contains("random or a speaker split"),
            "{error}"
        );
        let text = TrainConfig {
            model: ModelKind::Text,
            ..quick()
        };
        assert!(matches!(
            train_keywords(
                &manifest,
                "random",
                &data,
                &Negatives::default(),
                &text,
                &mut |_| {}
            ),
            Err(KeywordError::NotSpeech(ModelKind::Text))
        ));
        let (one, data) = corpus(&["dog"], 4);
        assert!(matches!(
            train_keywords(
                &one,
                "random",
                &data,
                &Negatives::default(),
                &quick(),
                &mut |_| {}
            ),
            Err(KeywordError::TooFewWords(1))
        ));
    }

    #[test]
    fn the_keyword_threshold_lets_through_at_most_the_target_of_calibration() {
        // 200 scores 0.000, 0.005, …, 0.995: 1% may be accepted, so 2 of them; the
        // third highest, 0.985, is refused: halfway to 0.99.
        let scores: Vec<f32> = (0..200).map(|i| i as f32 / 200.0).collect();
        let t = choose_keyword_threshold(&scores, 0.01).unwrap();
        assert!((t - 0.9875).abs() < 1e-6, "{t}");
        assert_eq!(scores.iter().filter(|&&s| s >= t).count(), 2);
        // Ties with the refused one are refused too.
        let tied = [0.99, 0.95, 0.95, 0.2];
        let t = choose_keyword_threshold(&tied, 0.3).unwrap();
        assert!((t - 0.97).abs() < 1e-6, "{t}");
        // Few scores: none may be accepted (halfway to 1); the floor when all are low.
        assert!((choose_keyword_threshold(&[0.9, 0.2], 0.01).unwrap() - 0.95).abs() < 1e-6);
        assert!((choose_keyword_threshold(&[0.01, 0.2], 0.01).unwrap() - 0.6).abs() < 1e-6);
        let low: Vec<f32> = scores.iter().map(|s| s / 10.0).collect();
        assert_eq!(
            choose_keyword_threshold(&low, 0.01).unwrap(),
            KEYWORD_THRESHOLD_FLOOR
        );
        // A calibration utterance the spotter is certain of: the threshold stops at 1.
        assert_eq!(choose_keyword_threshold(&[1.0, 0.2], 0.01).unwrap(), 1.0);
        assert!(choose_keyword_threshold(&[], 0.01).is_err());
        let nan = choose_keyword_threshold(&[0.2, f32::NAN], 0.01).unwrap_err();
        assert!(nan.contains("NaN"), "{nan}");
        // Rates at the threshold: false accepts at or above, false rejects below.
        let far = rate_at("p", vec![], &[0.2, 0.7, 0.71], 0.7, true);
        assert_eq!((far.errors, far.utterances), (2, 3));
        let frr = rate_at("p", vec![], &[0.2, 0.7, f32::NAN], 0.7, false);
        assert_eq!(frr.errors, 2, "NaN is a reject, never an accept");
    }

    #[test]
    fn held_out_words_are_spread_through_the_vocabulary() {
        let v: Vec<String> = (0..12).map(|i| format!("w{i:02}")).collect();
        assert_eq!(held_out_words(&v, 2), ["w03", "w09"]);
        assert_eq!(held_out_words(&v, 0), Vec::<String>::new());
        assert_eq!(held_out_words(&v, 50).len(), 10, "two words stay");
        assert_eq!(default_held_out_count(12), 2);
        assert_eq!(default_held_out_count(200), 33);
        assert_eq!(default_held_out_count(3), 1);
    }

    /// Examples around `centre`, ids `real:{group}/{i}` as the recorded windows have.
    fn recorded(group: &str, n: usize, dim: usize, seed: u64) -> Vec<Example> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let frames = 8 + (rng.next_u32() % 12) as usize;
                let mut speech = random_features(&mut rng, 1, frames, dim);
                for v in speech.data.iter_mut() {
                    *v *= 0.5;
                }
                Example {
                    id: format!("{}{group}/{i}.wav#0/1", crate::data::negatives::ID_PREFIX),
                    speech,
                    text: None,
                    label: Emotion::Neutral,
                }
            })
            .collect()
    }

    /// With negatives the spotter has `<none>` last, learns it, chooses its keyword
    /// threshold on calibration, and measures the rates; saved and loaded, it is still
    /// an open-set spotter.
    #[test]
    fn an_open_set_spotter_learns_not_a_keyword() {
        let (manifest, data) = corpus(&["dog", "back", "king", "youth", "bean"], 12);
        let parts = RecordedParts {
            root: PathBuf::from("/cache"),
            train: vec!["a/x".into()],
            calibration: vec!["b/y".into()],
            test: vec!["c/z".into()],
        };
        let negatives = Negatives {
            held_out_words: vec!["king".into()],
            recorded: Some(RecordedExamples {
                parts: parts.clone(),
                train: recorded("a", 40, 12, 11),
                calibration: recorded("b", 30, 12, 12),
                test: recorded("c", 60, 12, 13),
            }),
        };
        let config = TrainConfig {
            max_epochs: 12,
            ..quick()
        };
        let run =
            train_keywords(&manifest, "random", &data, &negatives, &config, &mut |_| {}).unwrap();
        assert_eq!(
            run.model.words(),
            strings(&["back", "bean", "dog", "youth"])
        );
        assert_eq!(
            run.model.output_names().last().map(String::as_str),
            Some(NONE_CLASS)
        );
        let choice = run.model.open_set().unwrap();
        assert_eq!(choice.held_out_words, ["king"]);
        assert_eq!(choice.recorded.as_ref(), Some(&parts));
        assert!((KEYWORD_THRESHOLD_FLOOR..=1.0).contains(&choice.keyword_threshold));
        let o = run.open_set.as_ref().unwrap();
        assert_eq!(o.calibration.utterances, 30);
        assert!(o.calibration.rate <= TARGET_FALSE_ACCEPT_RATE, "{o:?}");
        let far = o.false_accept.as_ref().unwrap();
        assert_eq!(
            (far.utterances, far.speakers.as_slice()),
            (60, &["c/z".to_string()][..])
        );
        assert!(far.rate <= 0.05, "{o:?}");
        // King's test utterances (2 speakers × 1 of 7 emotions) and the 4 words' ones.
        let held = o.held_out_false_accept.as_ref().unwrap();
        assert_eq!(held.utterances, 2);
        assert_eq!(o.false_reject.utterances, run.test.utterances);
        assert_eq!(run.test.utterances, 8);
        assert!(o.false_reject.rate <= 0.25, "{o:?}");
        let line = summary_line(&run);
        assert!(
            line.contains("FAR on unseen speakers") && line.contains("FRR"),
            "{line}"
        );

        let dir = tempfile::tempdir().unwrap();
        run.save(dir.path()).unwrap();
        let loaded = KeywordModel::load(dir.path()).unwrap();
        assert_eq!(loaded.open_set(), run.model.open_set());
        assert_eq!(loaded.output_names().len(), 5);
        let metrics: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(METRICS_FILE)).unwrap()).unwrap();
        assert_eq!(metrics["open_set"]["false_accept"]["utterances"], 60);
        assert!(
            metrics["keyword_threshold_rule"]
                .as_str()
                .unwrap()
                .contains("1%")
        );

        // Held-out words only: calibrated on their validation utterances.
        let held_only = Negatives {
            held_out_words: vec!["king".into()],
            recorded: None,
        };
        let run =
            train_keywords(&manifest, "random", &data, &held_only, &config, &mut |_| {}).unwrap();
        let o = run.open_set.unwrap();
        assert!(o.false_accept.is_none());
        assert_eq!(o.calibration.utterances, 2);
        assert!(
            o.calibration.part.contains("held-out"),
            "{}",
            o.calibration.part
        );
    }

    #[test]
    fn a_missing_or_mismatched_spotter_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!KeywordModel::exists_in(dir.path()));
        assert!(matches!(
            KeywordModel::load(dir.path()),
            Err(KeywordError::Io { .. })
        ));
        let (manifest, data) = corpus(&["dog", "back", "king"], 4);
        let config = TrainConfig {
            max_epochs: 1,
            ..quick()
        };
        let run = train_keywords(
            &manifest,
            "random",
            &data,
            &Negatives::default(),
            &config,
            &mut |_| {},
        )
        .unwrap();
        run.save(dir.path()).unwrap();
        assert!(KeywordModel::exists_in(dir.path()));
        let path = dir.path().join(SPOTTER_FILE);
        let json = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, json.replace("\"king\"", "\"king\", \"queen\"")).unwrap();
        let error = KeywordModel::load(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("3 outputs for 4 words"),
            "{error}"
        );
    }
}
