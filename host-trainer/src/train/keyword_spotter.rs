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
//!
//! A run is saved in `RUNS/keyword/{split}/` ([`keyword_run_dir`]): `model/` (the burn
//! head as [`TrainedModel::save`] writes it), `spotter.json` (words and threshold),
//! `train_config.json`, `curves.json`, `curves.csv` and `metrics.json`. A spotter can
//! only be trained on a split whose validation and test words are all heard in
//! training (not the word-disjoint split).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use emotion_core::scores::argmax;

use crate::data::manifest::CorpusManifest;
use crate::data::splits::Split;
use crate::evaluate::metrics::ClassificationReport;
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
    /// `spotter.json` unreadable, from another version, or contradicting the model.
    #[error("{path}: not a saved keyword spotter ({detail})")]
    Saved {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A trained spotter: the burn model, its words and its threshold.
#[derive(Debug, Clone)]
pub struct KeywordModel {
    model: TrainedModel,
    words: Vec<String>,
    min_confidence: f32,
}

/// `spotter.json`.
#[derive(Debug, Serialize, Deserialize)]
struct SavedSpotter {
    format_version: u32,
    words: Vec<String>,
    min_confidence: f32,
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

    /// The burn model (for export).
    pub fn classifier(&self) -> &BranchClassifier {
        match self.model.head() {
            EmotionHead::Speech(classifier) => classifier,
            // `new`, through which `load` goes too, accepts speech models only.
            other => unreachable!("a keyword spotter is a speech model, not {}", other.kind()),
        }
    }

    /// Logits, one row of one value per word for each example, in order.
    pub fn logits(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, TrainError> {
        self.model.class_logits(examples)
    }

    /// Word probabilities, one row per example, in order.
    pub fn probabilities(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, TrainError> {
        self.model.class_probabilities(examples)
    }

    /// A spotter from a trained speech model with one output per word.
    fn new(model: TrainedModel, words: Vec<String>, min_confidence: f32) -> Result<Self, String> {
        if model.kind() != ModelKind::Speech {
            return Err(format!("a {} model, not a speech model", model.kind()));
        }
        if model.classes() != words.len() {
            return Err(format!(
                "the model has {} outputs for {} words",
                model.classes(),
                words.len()
            ));
        }
        Ok(Self {
            model,
            words,
            min_confidence,
        })
    }

    /// Writes `model/` and `spotter.json` into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<(), KeywordError> {
        self.model.save(&dir.join(MODEL_FOLDER))?;
        let saved = SavedSpotter {
            format_version: FORMAT_VERSION,
            words: self.words.clone(),
            min_confidence: self.min_confidence,
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
        Self::new(model, spotter.words, spotter.min_confidence).map_err(saved)
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

/// A spotter trained on one split, with its scores.
#[derive(Debug, Clone)]
pub struct KeywordRun {
    /// The split.
    pub split: String,
    /// The model of the best epoch, with its threshold.
    pub model: KeywordModel,
    /// How it was trained.
    pub config: TrainConfig,
    /// One record per epoch run.
    pub curves: Vec<EpochRecord>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// The validation part (where the threshold was chosen).
    pub validation: KeywordEvaluation,
    /// The test part.
    pub test: KeywordEvaluation,
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
        };
        write_atomically(
            &dir.join(METRICS_FILE),
            serde_json::to_string_pretty(&metrics)?.as_bytes(),
        )?;
        Ok(())
    }
}

/// The word index of every utterance of `manifest`, by id.
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

/// Trains a spotter on the examples of `split` (speech features, read by the caller
/// with [`load_split`]), chooses its threshold on validation and scores the test part.
pub fn train_keywords(
    manifest: &CorpusManifest,
    split: &str,
    data: &SplitData,
    config: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<KeywordRun, KeywordError> {
    if config.model != ModelKind::Speech {
        return Err(KeywordError::NotSpeech(config.model));
    }
    let words = vocabulary(manifest);
    if words.len() < 2 {
        return Err(KeywordError::TooFewWords(words.len()));
    }
    let labels = word_labels(manifest, &words);
    let word_of = |e: &Example| labels.get(&e.id).copied().unwrap_or(usize::MAX);
    let heard: BTreeSet<usize> = data.train.iter().map(word_of).collect();
    let unseen: BTreeSet<&str> = data
        .val
        .iter()
        .chain(&data.test)
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
    let classes = Classes {
        names: words.clone(),
        label: Box::new(word_of),
    };
    let outcome = train_classes(config, &classes, &data.train, &data.val, on_epoch)?;
    let truth = |examples: &[Example]| examples.iter().map(word_of).collect::<Vec<_>>();
    let val_probabilities = outcome.model.class_probabilities(&data.val)?;
    let val_truth = truth(&data.val);
    let min_confidence = choose_min_confidence(&outcomes(&val_probabilities, &val_truth));
    let test_probabilities = outcome.model.class_probabilities(&data.test)?;
    let validation = evaluate(&words, &val_probabilities, &val_truth, min_confidence);
    let test = evaluate(
        &words,
        &test_probabilities,
        &truth(&data.test),
        min_confidence,
    );
    let model = KeywordModel::new(outcome.model, words, min_confidence).map_err(|detail| {
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
    })
}

/// Trains the spotter on `split` (features from `cache`), prints one line per epoch and
/// a summary, and saves the run in `RUNS/keyword/{split}/`.
pub fn train_keyword_run(
    manifest: &CorpusManifest,
    split: &Split,
    cache: &Path,
    runs: &Path,
    config: &TrainConfig,
) -> anyhow::Result<KeywordRun> {
    let data = load_split(manifest, split, cache, false)?;
    let words = vocabulary(manifest).len();
    println!(
        "-- keyword spotter ({words} words) on {}: {} train, {} val, {} test utterances",
        split.name,
        data.train.len(),
        data.val.len(),
        data.test.len()
    );
    let mut on_epoch = epoch_printer(config.max_epochs);
    let run = train_keywords(manifest, &split.name, &data, config, &mut on_epoch)?;
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
    Ok(run)
}

/// One line for people: words, test accuracy and utterances, top-3, macro-F1, and what
/// the threshold lets through.
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
    format!(
        "keyword spotter: {} words, test accuracy {:.1}% ({} utterances), top-3 {:.1}%, macro-F1 {:.1}%; at min confidence {:.2} {answers}",
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
        let run =
            train_keywords(&manifest, "random", &data, &quick(), &mut |_| epochs += 1).unwrap();
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
        let error = train_keywords(&manifest, "word", &data, &quick(), &mut |_| {}).unwrap_err();
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
            train_keywords(&manifest, "random", &data, &text, &mut |_| {}),
            Err(KeywordError::NotSpeech(ModelKind::Text))
        ));
        let (one, data) = corpus(&["dog"], 4);
        assert!(matches!(
            train_keywords(&one, "random", &data, &quick(), &mut |_| {}),
            Err(KeywordError::TooFewWords(1))
        ));
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
        let run = train_keywords(&manifest, "random", &data, &config, &mut |_| {}).unwrap();
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
