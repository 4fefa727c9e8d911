//! Evaluation outputs: what each trained model (speech-only, text-only, fusion) predicted
//! on the test part of each split, turned into reports people read and files programs
//! read.
//!
//! [`write_evaluation`] writes, under one output folder:
//!
//! - `{model}/{split}/report.md`: title, provenance, the sklearn-style classification
//!   report and confusion matrix ([`ClassificationReport::to_markdown`]), then the error
//!   analysis: the [`CONFIDENT_MISTAKES`] most confident mistakes with all seven
//!   probabilities;
//! - `{model}/{split}/report.json`: the same, machine-readable, with every prediction
//!   ([`ReportFile`]);
//! - `comparison.md`: models as rows, splits as columns, accuracy / macro-F1 in %
//!   ([`comparison_markdown`]), then the provenance;
//! - `metrics.json`: every model on every split in one file ([`MetricsFile`], described by
//!   [`metrics_schema_markdown`]), written last.
//!
//! Every file says where its numbers came from ([`Provenance`]). The output is
//! deterministic: JSON maps are sorted, Markdown numbers have fixed precision and JSON
//! numbers are written shortest-round-trip, so the same predictions give byte-identical
//! files. Every write is atomic ([`write_atomically`]). The metrics themselves come from
//! [`ClassificationReport`]; nothing here recomputes them.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emotion_core::Emotion;
use serde::{Deserialize, Serialize};

use crate::evaluate::metrics::{ClassMetrics, ClassificationReport};
use emotion_core::fs::write_atomically;

/// Version of the `metrics.json` layout (its `format` key).
pub const METRICS_FORMAT: u32 = 1;

/// Version of the `report.json` layout (its `format` key).
pub const REPORT_FORMAT: u32 = 1;

/// How many of the most confident mistakes each `report.md` lists.
pub const CONFIDENT_MISTAKES: usize = 10;

/// One model's output on one utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Utterance id (`OAF_back_angry`), as the manifest and the splits name it.
    pub id: String,
    /// Where the WAV is.
    pub path: PathBuf,
    /// What the text model read.
    pub transcript: String,
    /// The label.
    pub truth: Emotion,
    /// Class probabilities (softmax output) in class-index order ([`Emotion::ALL`]).
    pub probabilities: [f32; 7],
}

impl Prediction {
    /// The predicted emotion: the class of the highest probability; on a tie, the lowest
    /// class index.
    pub fn predicted(&self) -> Emotion {
        let mut best = 0;
        for (i, &p) in self.probabilities.iter().enumerate().skip(1) {
            if p > self.probabilities[best] {
                best = i;
            }
        }
        Emotion::ALL[best]
    }

    /// The probability of the predicted class.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.predicted().index()]
    }

    /// Whether the prediction is right.
    pub fn is_correct(&self) -> bool {
        self.predicted() == self.truth
    }
}

/// All predictions of one model on the test part of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitEvaluation {
    /// The model: `speech`, `text` or `fusion`. Also a folder name, so letters, digits,
    /// `-`, `_` and `.` only, not starting with `.`.
    pub model: String,
    /// The split (`random`, `speaker-OAF-to-YAF`, `speaker-YAF-to-OAF`, `word`); the same
    /// rules as for `model`.
    pub split: String,
    /// One per test utterance.
    pub predictions: Vec<Prediction>,
}

impl SplitEvaluation {
    /// The classification report over the seven emotions.
    pub fn report(&self) -> ClassificationReport {
        let truth: Vec<usize> = self.predictions.iter().map(|p| p.truth.index()).collect();
        let predicted: Vec<usize> = self
            .predictions
            .iter()
            .map(|p| p.predicted().index())
            .collect();
        ClassificationReport::from_predictions(&truth, &predicted)
    }

    /// The wrong predictions, most confident first (by the probability of the predicted
    /// class, descending; equal confidences by id), at most `k`.
    pub fn confident_mistakes(&self, k: usize) -> Vec<&Prediction> {
        let mut wrong: Vec<&Prediction> = self
            .predictions
            .iter()
            .filter(|p| !p.is_correct())
            .collect();
        wrong.sort_by(|a, b| {
            b.confidence()
                .total_cmp(&a.confidence())
                .then_with(|| a.id.cmp(&b.id))
        });
        wrong.truncate(k);
        wrong
    }

    /// How many predictions are wrong.
    pub fn mistakes(&self) -> usize {
        self.predictions.iter().filter(|p| !p.is_correct()).count()
    }
}

/// Where results came from, written into every file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// The corpus (`TESS`, or the embedded synthetic corpus), with its location or
    /// version.
    pub corpus: String,
    /// The manifest file.
    pub manifest: String,
    /// The splits file.
    pub splits_file: String,
    /// The splits file's content id ([`crate::data::splits::SplitSet::id`]).
    pub splits_id: String,
    /// The training seed.
    pub seed: u64,
    /// The encoders (checkpoints and revisions) the features came from.
    pub encoders: String,
    /// Anything else worth recording (hyper-parameters, git revision), sorted by key.
    pub extra: BTreeMap<String, String>,
}

impl Provenance {
    /// The provenance as a two-column Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("| field | value |\n|---|---|\n");
        for (key, value) in self.rows() {
            let _ = writeln!(out, "| {} | {} |", cell(&key), cell(&value));
        }
        out
    }

    /// (field, value) pairs in the order the tables show them; `extra` last, by key.
    pub fn rows(&self) -> Vec<(String, String)> {
        let fixed = [
            ("corpus", self.corpus.clone()),
            ("manifest", self.manifest.clone()),
            ("splits file", self.splits_file.clone()),
            ("splits id", self.splits_id.clone()),
            ("seed", self.seed.to_string()),
            ("encoders", self.encoders.clone()),
        ];
        fixed
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.extra.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }
}

/// The files one model on one split got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The model.
    pub model: String,
    /// The split.
    pub split: String,
    /// `out/{model}/{split}/report.md`.
    pub markdown: PathBuf,
    /// `out/{model}/{split}/report.json`.
    pub json: PathBuf,
}

/// The paths [`write_evaluation`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationFiles {
    /// Per (model, split), in the order of the runs given.
    pub reports: Vec<RunFiles>,
    /// `out/comparison.md`.
    pub comparison: PathBuf,
    /// `out/metrics.json`.
    pub metrics: PathBuf,
}

impl EvaluationFiles {
    /// Every path, in the order written (`metrics.json` last).
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = Vec::with_capacity(2 * self.reports.len() + 2);
        for run in &self.reports {
            paths.push(&run.markdown);
            paths.push(&run.json);
        }
        paths.push(&self.comparison);
        paths.push(&self.metrics);
        paths
    }
}

/// Evaluation results that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// Nothing to write.
    #[error("no evaluation runs to write")]
    NoRuns,
    /// A run without predictions (its report would be meaningless).
    #[error(
        "model {model} on split {split} has no predictions: is the split's test part empty, or were the predictions lost?"
    )]
    Empty {
        /// The model.
        model: String,
        /// The split.
        split: String,
    },
    /// The same model and split twice (the second would overwrite the first).
    #[error("model {model} on split {split} is given twice")]
    Duplicate {
        /// The model.
        model: String,
        /// The split.
        split: String,
    },
    /// A model or split name that cannot be a folder name.
    #[error(
        "{kind} name '{name}' cannot be a folder name: use letters, digits, '-', '_' and '.', not starting with '.'"
    )]
    BadName {
        /// `model` or `split`.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Probabilities that are not finite or outside [0, 1] (logits passed by mistake?).
    #[error(
        "model {model} on split {split}, utterance {id}: {probabilities:?} are not probabilities (each must be finite and in [0, 1]; were logits passed instead of softmax outputs?)"
    )]
    NotProbabilities {
        /// The model.
        model: String,
        /// The split.
        split: String,
        /// The utterance.
        id: String,
        /// What was given.
        probabilities: [f32; 7],
    },
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file that could not be encoded.
    #[error("{path}: cannot encode JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// A confusion matrix with its orientation spelled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Class names, in class-index order (rows and columns).
    pub labels: Vec<String>,
    /// What the rows are: always `"true"`.
    pub rows: String,
    /// What the columns are: always `"predicted"`.
    pub columns: String,
    /// `matrix[true][predicted]`, counts.
    pub matrix: Vec<Vec<usize>>,
}

/// The metrics of one model on the test part of one split, as `metrics.json` and
/// `report.json` hold them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// Fraction of utterances predicted right.
    pub accuracy: f64,
    /// Unweighted mean of the seven per-class F1.
    pub macro_f1: f64,
    /// Support-weighted mean of the per-class F1.
    pub weighted_f1: f64,
    /// Test utterances.
    pub support: usize,
    /// sklearn's `macro avg` row.
    pub macro_avg: ClassMetrics,
    /// sklearn's `weighted avg` row.
    pub weighted_avg: ClassMetrics,
    /// Class name → its metrics.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Counts of true × predicted classes.
    pub confusion_matrix: ConfusionMatrix,
}

impl SplitMetrics {
    /// The metrics of a report.
    pub fn from_report(report: &ClassificationReport) -> Self {
        Self {
            accuracy: report.accuracy,
            macro_f1: report.macro_f1(),
            weighted_f1: report.weighted_f1(),
            support: report.macro_avg.support,
            macro_avg: report.macro_avg,
            weighted_avg: report.weighted_avg,
            per_class: report
                .labels
                .iter()
                .cloned()
                .zip(report.per_class.iter().copied())
                .collect(),
            confusion_matrix: ConfusionMatrix {
                labels: report.labels.clone(),
                rows: "true".into(),
                columns: "predicted".into(),
                matrix: report.confusion.clone(),
            },
        }
    }
}

/// `metrics.json`: every model on every split of one run (see
/// [`metrics_schema_markdown`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    /// [`METRICS_FORMAT`].
    pub format: u32,
    /// Where the results came from.
    pub provenance: Provenance,
    /// Readable class names in class-index order (`pleasant surprise`).
    pub labels: Vec<String>,
    /// TESS codes in class-index order (`ps`).
    pub codes: Vec<String>,
    /// Model → split → metrics.
    pub models: BTreeMap<String, BTreeMap<String, SplitMetrics>>,
}

/// One prediction as `report.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    /// Utterance id.
    pub id: String,
    /// Where the WAV is.
    pub path: String,
    /// What the text model read.
    pub transcript: String,
    /// The label's readable name.
    pub truth: String,
    /// The predicted class's readable name.
    pub predicted: String,
    /// Whether `truth == predicted`.
    pub correct: bool,
    /// The probability of the predicted class.
    pub confidence: f32,
    /// Class probabilities in `labels` order.
    pub probabilities: [f32; 7],
}

impl PredictionRecord {
    fn new(p: &Prediction) -> Self {
        Self {
            id: p.id.clone(),
            path: p.path.to_string_lossy().into_owned(),
            transcript: p.transcript.clone(),
            truth: p.truth.name().into(),
            predicted: p.predicted().name().into(),
            correct: p.is_correct(),
            confidence: p.confidence(),
            probabilities: p.probabilities,
        }
    }
}

/// `report.json`: one model on the test part of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFile {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// The model.
    pub model: String,
    /// The split.
    pub split: String,
    /// Where the results came from.
    pub provenance: Provenance,
    /// Readable class names in class-index order.
    pub labels: Vec<String>,
    /// TESS codes in class-index order.
    pub codes: Vec<String>,
    /// The metrics, as in `metrics.json`.
    pub metrics: SplitMetrics,
    /// Number of wrong predictions.
    pub mistakes: usize,
    /// Ids of the most confident mistakes (as `report.md` lists them), most confident
    /// first.
    pub confident_mistakes: Vec<String>,
    /// Every prediction, in the order given.
    pub predictions: Vec<PredictionRecord>,
}

fn label_names() -> Vec<String> {
    Emotion::ALL.iter().map(|e| e.name().to_string()).collect()
}

fn label_codes() -> Vec<String> {
    Emotion::ALL.iter().map(|e| e.code().to_string()).collect()
}

/// The `metrics.json` schema as Markdown; the same text documents [`write_evaluation`].
macro_rules! metrics_schema {
    () => {
        r##"`metrics.json` holds every model's results on every split of one evaluation run.
It is written last, so its presence means the run finished. Rates are fractions in
[0, 1], not percentages. Class order is the class-index order everywhere (`labels`,
`codes`, `probabilities`, confusion-matrix rows and columns). Maps (`models`, the splits
in each model, `per_class`, `provenance.extra`) are written sorted by key.

| key | type | meaning |
|---|---|---|
| `format` | integer | Layout version, `1`; raised on an incompatible change. |
| `provenance` | object | Where the results came from: `corpus`, `manifest` (path), `splits_file` (path), `splits_id` (content id of the splits file), `seed` (integer), `encoders`, `extra` (string → string). |
| `labels` | 7 strings | Readable class names: `angry`, `disgust`, `fear`, `happy`, `neutral`, `pleasant surprise`, `sad`. |
| `codes` | 7 strings | TESS codes of the same classes: `angry`, `disgust`, `fear`, `happy`, `neutral`, `ps`, `sad`. |
| `models` | object | Model (`fusion`, `speech`, `text`) → split (`random`, `speaker-OAF-to-YAF`, `speaker-YAF-to-OAF`, `word`) → the metrics of that model on that split's test part (below). Only pairs evaluated appear. |

The metrics of one model on one split, `models.<model>.<split>`:

| key | type | meaning |
|---|---|---|
| `accuracy` | number | Fraction of test utterances predicted right. |
| `macro_f1` | number | Unweighted mean of the seven per-class F1 (a class missing from the test part counts with F1 0, as sklearn with `labels=range(7), zero_division=0`). |
| `weighted_f1` | number | Mean of the per-class F1 weighted by support. |
| `support` | integer | Test utterances. |
| `macro_avg`, `weighted_avg` | object | sklearn's `macro avg` and `weighted avg` rows: `precision`, `recall`, `f1`, `support` (all utterances). |
| `per_class` | object | Class name (from `labels`) → `precision`, `recall`, `f1`, `support`. |
| `confusion_matrix` | object | `labels` (as above), `rows`: `"true"`, `columns`: `"predicted"`, `matrix`: 7 × 7 counts, `matrix[i][j]` = utterances of class `labels[i]` predicted as `labels[j]`. |

Example (abridged; the values are illustrative, not a measured result):

```json
{
  "format": 1,
  "provenance": {"corpus": "TESS", "manifest": "data/manifest.csv",
                 "splits_file": "data/splits.json", "splits_id": "3f2a9c1e7b40",
                 "seed": 42, "encoders": "hubert-base-ls960, bert-base-uncased", "extra": {}},
  "labels": ["angry", "disgust", "fear", "happy", "neutral", "pleasant surprise", "sad"],
  "codes": ["angry", "disgust", "fear", "happy", "neutral", "ps", "sad"],
  "models": {
    "speech": {
      "random": {
        "accuracy": 0.9857142857142858, "macro_f1": 0.9857, "weighted_f1": 0.9857, "support": 420,
        "macro_avg": {"precision": 0.986, "recall": 0.9857, "f1": 0.9857, "support": 420},
        "weighted_avg": {"precision": 0.986, "recall": 0.9857, "f1": 0.9857, "support": 420},
        "per_class": {"angry": {"precision": 1.0, "recall": 0.9833, "f1": 0.9916, "support": 60}},
        "confusion_matrix": {"labels": ["angry", "..."], "rows": "true", "columns": "predicted",
                             "matrix": [[59, 0, 0, 0, 0, 1, 0]]}
      }
    }
  }
}
```

Each `{model}/{split}/report.json` holds the same metrics under `metrics`, with `format`,
`model`, `split`, `provenance`, `labels`, `codes`, `mistakes` (count),
`confident_mistakes` (ids, most confident first) and `predictions`: every test utterance
with `id`, `path`, `transcript`, `truth`, `predicted` (class names), `correct`,
`confidence` (probability of the predicted class) and the 7 `probabilities`.
"##
    };
}

/// The `metrics.json` schema as Markdown (for docs/metrics-json.md). The same text documents
/// [`write_evaluation`].
pub fn metrics_schema_markdown() -> &'static str {
    metrics_schema!()
}

/// Writes the evaluation of every (model, split) run under `out`, creating folders:
/// `{model}/{split}/report.md` and `report.json` per run, then `comparison.md`, then
/// `metrics.json`. Every write is atomic; the inputs are checked before anything is
/// written (no runs, a run without predictions, a (model, split) given twice, a name
/// that cannot be a folder, probabilities not finite or outside [0, 1] are errors).
/// The same inputs give byte-identical files.
///
/// # `metrics.json`
///
#[doc = metrics_schema!()]
pub fn write_evaluation(
    out: &Path,
    runs: &[SplitEvaluation],
    provenance: &Provenance,
) -> Result<EvaluationFiles, EvaluationError> {
    check(runs)?;
    let mut files = EvaluationFiles {
        reports: Vec::with_capacity(runs.len()),
        comparison: out.join("comparison.md"),
        metrics: out.join("metrics.json"),
    };
    let mut models: BTreeMap<String, BTreeMap<String, SplitMetrics>> = BTreeMap::new();
    for run in runs {
        let report = run.report();
        let metrics = SplitMetrics::from_report(&report);
        let dir = out.join(&run.model).join(&run.split);
        let markdown = dir.join("report.md");
        write_text(&markdown, &run_markdown(run, &report, provenance))?;
        let json = dir.join("report.json");
        let report_file = ReportFile {
            format: REPORT_FORMAT,
            model: run.model.clone(),
            split: run.split.clone(),
            provenance: provenance.clone(),
            labels: label_names(),
            codes: label_codes(),
            metrics: metrics.clone(),
            mistakes: run.mistakes(),
            confident_mistakes: run
                .confident_mistakes(CONFIDENT_MISTAKES)
                .into_iter()
                .map(|p| p.id.clone())
                .collect(),
            predictions: run.predictions.iter().map(PredictionRecord::new).collect(),
        };
        write_json(&json, &report_file)?;
        models
            .entry(run.model.clone())
            .or_default()
            .insert(run.split.clone(), metrics);
        files.reports.push(RunFiles {
            model: run.model.clone(),
            split: run.split.clone(),
            markdown,
            json,
        });
    }
    let comparison = format!(
        "# Model comparison\n\n{}\n## Provenance\n\n{}",
        comparison_markdown(runs),
        provenance.to_markdown()
    );
    write_text(&files.comparison, &comparison)?;
    let metrics = MetricsFile {
        format: METRICS_FORMAT,
        provenance: provenance.clone(),
        labels: label_names(),
        codes: label_codes(),
        models,
    };
    write_json(&files.metrics, &metrics)?;
    Ok(files)
}

/// The comparison table: models as rows, splits as columns (both in the order the runs
/// first name them), each cell "accuracy / macro-F1" in % with one decimal
/// (`85.7 / 84.9`), `—` where a model was not evaluated on a split; under it the test
/// sizes and the chance level (1/7 = 14.3 %).
pub fn comparison_markdown(runs: &[SplitEvaluation]) -> String {
    let mut models: Vec<&str> = Vec::new();
    let mut splits: Vec<&str> = Vec::new();
    let mut cells: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for run in runs {
        if !models.contains(&run.model.as_str()) {
            models.push(&run.model);
        }
        if !splits.contains(&run.split.as_str()) {
            splits.push(&run.split);
        }
        let report = run.report();
        cells
            .entry((run.model.as_str(), run.split.as_str()))
            .or_insert_with(|| {
                format!(
                    "{} / {}",
                    percent(report.accuracy),
                    percent(report.macro_f1())
                )
            });
    }
    let mut out = String::from("| model |");
    for split in &splits {
        let _ = write!(out, " {} |", cell(split));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(splits.len()));
    out.push('\n');
    for model in &models {
        let _ = write!(out, "| {} |", cell(model));
        for split in &splits {
            let value = cells.get(&(*model, *split)).map_or("—", String::as_str);
            let _ = write!(out, " {value} |");
        }
        out.push('\n');
    }
    out.push_str(
        "\nEach cell: accuracy / macro-F1 in %, on the test part of the split; — where a model was not evaluated.\n",
    );
    if !splits.is_empty() {
        let sizes: Vec<String> = splits
            .iter()
            .map(|split| {
                let counts: Vec<(&str, usize)> = runs
                    .iter()
                    .filter(|r| r.split == *split)
                    .map(|r| (r.model.as_str(), r.predictions.len()))
                    .collect();
                let first = counts[0].1;
                if counts.iter().all(|&(_, n)| n == first) {
                    format!("{} {first}", cell(split))
                } else {
                    let each: Vec<String> =
                        counts.iter().map(|(m, n)| format!("{n} ({m})")).collect();
                    format!("{} {}", cell(split), each.join(", "))
                }
            })
            .collect();
        let _ = writeln!(out, "Test utterances: {}.", sizes.join("; "));
    }
    let n = Emotion::COUNT;
    let _ = writeln!(
        out,
        "Chance level: 1/{n} = {:.1} % (seven balanced classes, uniform guessing; accuracy and macro-F1 alike).",
        100.0 / n as f64
    );
    out
}

/// The checks made before anything is written.
fn check(runs: &[SplitEvaluation]) -> Result<(), EvaluationError> {
    if runs.is_empty() {
        return Err(EvaluationError::NoRuns);
    }
    let mut seen = HashSet::new();
    for run in runs {
        check_name("model", &run.model)?;
        check_name("split", &run.split)?;
        if !seen.insert((run.model.as_str(), run.split.as_str())) {
            return Err(EvaluationError::Duplicate {
                model: run.model.clone(),
                split: run.split.clone(),
            });
        }
        if run.predictions.is_empty() {
            return Err(EvaluationError::Empty {
                model: run.model.clone(),
                split: run.split.clone(),
            });
        }
        for p in &run.predictions {
            if !p
                .probabilities
                .iter()
                .all(|x| x.is_finite() && (0.0..=1.0).contains(x))
            {
                return Err(EvaluationError::NotProbabilities {
                    model: run.model.clone(),
                    split: run.split.clone(),
                    id: p.id.clone(),
                    probabilities: p.probabilities,
                });
            }
        }
    }
    Ok(())
}

fn check_name(kind: &'static str, name: &str) -> Result<(), EvaluationError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EvaluationError::BadName {
            kind,
            name: name.to_string(),
        })
    }
}

/// `report.md` of one run.
fn run_markdown(
    run: &SplitEvaluation,
    report: &ClassificationReport,
    provenance: &Provenance,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# `{}` on split `{}`\n", run.model, run.split);
    let _ = writeln!(
        out,
        "Test part of split `{}`: {} utterances; accuracy {} %, macro-F1 {} %, weighted-F1 {} %.\n",
        run.split,
        report.macro_avg.support,
        percent(report.accuracy),
        percent(report.macro_f1()),
        percent(report.weighted_f1()),
    );
    let _ = writeln!(out, "## Provenance\n\n{}", provenance.to_markdown());
    let _ = writeln!(out, "## Classification report\n\n{}", report.to_markdown());
    out.push_str("## Error analysis\n\n");
    let mistakes = run.confident_mistakes(CONFIDENT_MISTAKES);
    if mistakes.is_empty() {
        let _ = writeln!(
            out,
            "No mistakes: all {} predictions are right.",
            run.predictions.len()
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{} of {} predictions wrong. The most confident mistakes (at most {CONFIDENT_MISTAKES}), by the probability of the predicted class, with every class's probability:\n",
        run.mistakes(),
        run.predictions.len(),
    );
    out.push_str("| id | file | transcript | true | predicted | confidence |");
    for emotion in Emotion::ALL {
        let _ = write!(out, " {} |", emotion.name());
    }
    out.push_str("\n|---|---|---|---|---|---:|");
    out.push_str(&"---:|".repeat(Emotion::COUNT));
    out.push('\n');
    for p in mistakes {
        let file = p
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {:.3} |",
            cell(&p.id),
            cell(&file),
            cell(&p.transcript),
            p.truth.name(),
            p.predicted().name(),
            p.confidence(),
        );
        for x in p.probabilities {
            let _ = write!(out, " {x:.3} |");
        }
        out.push('\n');
    }
    out
}

/// A fraction as a percentage with one decimal.
fn percent(fraction: f64) -> String {
    format!("{:.1}", 100.0 * fraction)
}

/// Text made safe for one Markdown table cell.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\r', '\n'], " ")
}

fn write_text(path: &Path, text: &str) -> Result<(), EvaluationError> {
    write_atomically(path, text.as_bytes()).map_err(|source| EvaluationError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), EvaluationError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| EvaluationError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    write_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prediction with `probability` on `predicted` and the rest spread evenly.
    fn pred(id: &str, truth: Emotion, predicted: Emotion, probability: f32) -> Prediction {
        let rest = (1.0 - probability) / 6.0;
        let mut probabilities = [rest; 7];
        probabilities[predicted.index()] = probability;
        Prediction {
            id: id.into(),
            path: PathBuf::from(format!("/corpus/TESS/{id}.wav")),
            transcript: format!("Say the word {id}"),
            truth,
            probabilities,
        }
    }

    /// One utterance per class, every one right.
    fn perfect() -> Vec<Prediction> {
        Emotion::ALL
            .into_iter()
            .map(|e| pred(&format!("OAF_x_{}", e.code()), e, e, 0.8))
            .collect()
    }

    /// One utterance per class, angry taken for disgust: accuracy 6/7 = 85.7 %, macro-F1
    /// (0 + 2/3 + 5) / 7 = 81.0 %.
    fn one_wrong() -> Vec<Prediction> {
        let mut p = perfect();
        p[0] = pred("OAF_x_angry", Emotion::Angry, Emotion::Disgust, 0.7);
        p
    }

    /// One utterance per class, all taken for angry: accuracy 1/7 = 14.3 %, macro-F1
    /// 0.25 / 7 = 3.6 %.
    fn all_angry() -> Vec<Prediction> {
        Emotion::ALL
            .into_iter()
            .map(|e| pred(&format!("YAF_y_{}", e.code()), e, Emotion::Angry, 0.5))
            .collect()
    }

    fn run(model: &str, split: &str, predictions: Vec<Prediction>) -> SplitEvaluation {
        SplitEvaluation {
            model: model.into(),
            split: split.into(),
            predictions,
        }
    }

    fn runs() -> Vec<SplitEvaluation> {
        vec![
            run("speech", "random", perfect()),
            run("text", "random", all_angry()),
            run("speech", "word", one_wrong()),
            run("text", "word", one_wrong()),
        ]
    }

    fn provenance() -> Provenance {
        Provenance {
            corpus: "TESS (synthetic test corpus)".into(),
            manifest: "data/manifest.csv".into(),
            splits_file: "data/splits.json".into(),
            splits_id: "0123456789ab".into(),
            seed: 42,
            encoders: "hubert-base | bert-base".into(),
            extra: BTreeMap::from([("epochs".to_string(), "30".to_string())]),
        }
    }

    #[test]
    fn argmax_takes_the_lowest_index_on_ties_and_confidence_is_its_probability() {
        let mut p = pred("a", Emotion::Fear, Emotion::Fear, 0.4);
        assert_eq!(p.predicted(), Emotion::Fear);
        assert_eq!(p.confidence(), 0.4);
        assert!(p.is_correct());
        p.probabilities = [0.1, 0.3, 0.05, 0.3, 0.05, 0.1, 0.1];
        assert_eq!(p.predicted(), Emotion::Disgust);
        assert_eq!(p.confidence(), 0.3);
        assert!(!p.is_correct());
        p.probabilities = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(p.predicted(), Emotion::Sad);
        p.probabilities = [0.25, 0.0, 0.0, 0.0, 0.0, 0.5, 0.25];
        assert_eq!(p.predicted(), Emotion::PleasantSurprise);
        assert_eq!(p.confidence(), 0.5);
        p.probabilities = [1.0 / 7.0; 7];
        assert_eq!(p.predicted(), Emotion::Angry);
    }

    #[test]
    fn confident_mistakes_are_wrong_ones_most_confident_first() {
        let r = run(
            "speech",
            "random",
            vec![
                pred("low", Emotion::Sad, Emotion::Happy, 0.6),
                pred("high", Emotion::Sad, Emotion::Fear, 0.9),
                pred("right", Emotion::Angry, Emotion::Angry, 0.95),
                pred("mid", Emotion::Happy, Emotion::Sad, 0.7),
                pred("mid_tie_b", Emotion::Happy, Emotion::Neutral, 0.7),
            ],
        );
        let ids = |v: Vec<&Prediction>| v.iter().map(|p| p.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(r.confident_mistakes(2)), ["high", "mid"]);
        assert_eq!(
            ids(r.confident_mistakes(10)),
            ["high", "mid", "mid_tie_b", "low"]
        );
        assert!(r.confident_mistakes(0).is_empty());
        assert_eq!(r.mistakes(), 4);
        assert!(run("m", "s", perfect()).confident_mistakes(10).is_empty());
    }

    #[test]
    fn comparison_has_models_as_rows_and_splits_as_columns() {
        let md = comparison_markdown(&runs());
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| model | random | word |");
        assert_eq!(lines[1], "|---|---:|---:|");
        assert_eq!(lines[2], "| speech | 100.0 / 100.0 | 85.7 / 81.0 |");
        assert_eq!(lines[3], "| text | 14.3 / 3.6 | 85.7 / 81.0 |");
        assert_eq!(lines[4], "");
        assert!(md.contains("Test utterances: random 7; word 7.\n"), "{md}");
        assert!(md.contains("1/7 = 14.3 %"), "{md}");

        // A pair not evaluated shows a dash; order follows the runs.
        let md = comparison_markdown(&[
            run("fusion", "word", perfect()),
            run("speech", "random", one_wrong()),
        ]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "| model | word | random |");
        assert_eq!(lines[2], "| fusion | 100.0 / 100.0 | — |");
        assert_eq!(lines[3], "| speech | — | 85.7 / 81.0 |");
    }

    #[test]
    fn metrics_json_round_trips_with_the_documented_keys_and_the_report_values() {
        let dir = tempfile::tempdir().unwrap();
        let runs = runs();
        let files = write_evaluation(dir.path(), &runs, &provenance()).unwrap();
        let text = std::fs::read_to_string(&files.metrics).unwrap();

        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let top: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(top, ["codes", "format", "labels", "models", "provenance"]);
        assert_eq!(value["format"], 1);
        assert_eq!(value["provenance"]["splits_id"], "0123456789ab");
        assert_eq!(value["provenance"]["seed"], 42);
        assert_eq!(value["provenance"]["extra"]["epochs"], "30");
        assert_eq!(
            value["labels"],
            serde_json::json!([
                "angry",
                "disgust",
                "fear",
                "happy",
                "neutral",
                "pleasant surprise",
                "sad"
            ])
        );
        assert_eq!(
            value["codes"],
            serde_json::json!(["angry", "disgust", "fear", "happy", "neutral", "ps", "sad"])
        );
        for r in &runs {
            let report = r.report();
            let m = &value["models"][&r.model][&r.split];
            assert_eq!(m["accuracy"].as_f64().unwrap(), report.accuracy);
            assert_eq!(m["macro_f1"].as_f64().unwrap(), report.macro_f1());
            assert_eq!(m["weighted_f1"].as_f64().unwrap(), report.weighted_f1());
            assert_eq!(m["support"], 7);
            for (i, label) in report.labels.iter().enumerate() {
                let c = &m["per_class"][label];
                assert_eq!(
                    c["precision"].as_f64().unwrap(),
                    report.per_class[i].precision
                );
                assert_eq!(c["recall"].as_f64().unwrap(), report.per_class[i].recall);
                assert_eq!(c["f1"].as_f64().unwrap(), report.per_class[i].f1);
                assert_eq!(c["support"], report.per_class[i].support);
            }
            let cm = &m["confusion_matrix"];
            assert_eq!(cm["rows"], "true");
            assert_eq!(cm["columns"], "predicted");
            assert_eq!(cm["labels"], value["labels"]);
            assert_eq!(cm["matrix"], serde_json::json!(report.confusion));
        }
        // angry taken for disgust: row angry, column disgust.
        assert_eq!(
            value["models"]["speech"]["word"]["confusion_matrix"]["matrix"][0][1],
            1
        );

        let parsed: MetricsFile = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.provenance, provenance());
        assert_eq!(parsed.models.len(), 2);
        for r in &runs {
            assert_eq!(
                parsed.models[&r.model][&r.split],
                SplitMetrics::from_report(&r.report())
            );
        }
        let again = serde_json::to_string_pretty(&parsed).unwrap() + "\n";
        assert_eq!(again, text);
    }

    #[test]
    fn writes_every_file_with_reports_and_error_analysis() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_evaluation(dir.path(), &runs(), &provenance()).unwrap();
        assert_eq!(files.reports.len(), 4);
        assert_eq!(files.paths().len(), 10);
        for path in files.paths() {
            assert!(path.is_file(), "{}", path.display());
        }
        assert_eq!(
            files.reports[2].markdown,
            dir.path().join("speech/word/report.md")
        );

        let md = std::fs::read_to_string(&files.reports[2].markdown).unwrap();
        let r = runs();
        assert!(md.starts_with("# `speech` on split `word`\n"), "{md}");
        assert!(md.contains("| splits id | 0123456789ab |"), "{md}");
        assert!(
            md.contains("| encoders | hubert-base \\| bert-base |"),
            "{md}"
        );
        assert!(md.contains(&r[2].report().to_markdown()), "{md}");
        assert!(
            md.contains(
                "| OAF_x_angry | OAF_x_angry.wav | Say the word OAF_x_angry | angry | disgust | 0.700 | 0.050 | 0.700 | 0.050 | 0.050 | 0.050 | 0.050 | 0.050 |"
            ),
            "{md}"
        );
        let perfect_md = std::fs::read_to_string(&files.reports[0].markdown).unwrap();
        assert!(perfect_md.contains("No mistakes"), "{perfect_md}");

        // At most ten mistakes listed, the most confident first.
        let many: Vec<Prediction> = (0..12)
            .map(|i| {
                pred(
                    &format!("id{i:02}"),
                    Emotion::Sad,
                    Emotion::Fear,
                    0.3 + 0.05 * i as f32,
                )
            })
            .collect();
        let dir2 = tempfile::tempdir().unwrap();
        let files2 =
            write_evaluation(dir2.path(), &[run("fusion", "random", many)], &provenance()).unwrap();
        let md = std::fs::read_to_string(&files2.reports[0].markdown).unwrap();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| id")).collect();
        assert_eq!(rows.len(), 11, "{md}"); // header + 10
        assert!(rows[1].starts_with("| id11 |"), "{md}");
        assert!(!md.contains("| id01 |") && !md.contains("| id00 |"), "{md}");

        let json: ReportFile =
            serde_json::from_str(&std::fs::read_to_string(&files2.reports[0].json).unwrap())
                .unwrap();
        assert_eq!(json.predictions.len(), 12);
        assert_eq!(json.mistakes, 12);
        assert_eq!(json.confident_mistakes.len(), 10);
        assert_eq!(json.confident_mistakes[0], "id11");
        assert_eq!(json.predictions[0].truth, "sad");
        assert_eq!(json.predictions[0].predicted, "fear");
        assert!(!json.predictions[0].correct);

        let comparison = std::fs::read_to_string(&files.comparison).unwrap();
        assert!(comparison.starts_with("# Model comparison\n\n| model | random | word |\n"));
        assert!(comparison.contains("## Provenance\n\n| field | value |\n"));
    }

    #[test]
    fn same_predictions_give_byte_identical_files() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let fa = write_evaluation(a.path(), &runs(), &provenance()).unwrap();
        let fb = write_evaluation(b.path(), &runs(), &provenance()).unwrap();
        let pa = fa.paths();
        let pb = fb.paths();
        assert_eq!(pa.len(), pb.len());
        for (x, y) in pa.iter().zip(&pb) {
            assert_eq!(
                x.strip_prefix(a.path()).unwrap(),
                y.strip_prefix(b.path()).unwrap()
            );
            assert_eq!(
                std::fs::read(x).unwrap(),
                std::fs::read(y).unwrap(),
                "{}",
                x.display()
            );
        }
        // Rewriting in place changes nothing either.
        let before = std::fs::read(&fa.metrics).unwrap();
        write_evaluation(a.path(), &runs(), &provenance()).unwrap();
        assert_eq!(std::fs::read(&fa.metrics).unwrap(), before);
    }

    #[test]
    fn bad_inputs_are_errors_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("eval");
        let empty = vec![
            run("speech", "random", perfect()),
            run("text", "word", vec![]),
        ];
        let err = write_evaluation(&out, &empty, &provenance()).unwrap_err();
        assert!(
            matches!(&err, EvaluationError::Empty { model, split } if model == "text" && split == "word"),
            "{err}"
        );
        assert!(!out.exists());

        assert!(matches!(
            write_evaluation(&out, &[], &provenance()),
            Err(EvaluationError::NoRuns)
        ));
        let twice = vec![
            run("speech", "random", perfect()),
            run("speech", "random", perfect()),
        ];
        assert!(matches!(
            write_evaluation(&out, &twice, &provenance()),
            Err(EvaluationError::Duplicate { .. })
        ));
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(
                matches!(
                    write_evaluation(&out, &[run("speech", bad, perfect())], &provenance()),
                    Err(EvaluationError::BadName { kind: "split", .. })
                ),
                "{bad:?}"
            );
        }
        let mut logits = perfect();
        logits[3].probabilities = [2.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0];
        assert!(matches!(
            write_evaluation(&out, &[run("speech", "random", logits)], &provenance()),
            Err(EvaluationError::NotProbabilities { .. })
        ));
        let mut nan = perfect();
        nan[0].probabilities[2] = f32::NAN;
        assert!(matches!(
            write_evaluation(&out, &[run("speech", "random", nan)], &provenance()),
            Err(EvaluationError::NotProbabilities { .. })
        ));
        assert!(!out.exists());
    }

    #[test]
    fn io_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the model folder should be.
        std::fs::write(dir.path().join("speech"), b"not a folder").unwrap();
        let err = write_evaluation(dir.path(), &runs(), &provenance()).unwrap_err();
        let EvaluationError::Io { path, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(path, &dir.path().join("speech/random/report.md"));
        assert!(err.to_string().contains("report.md"), "{err}");
    }

    #[test]
    fn schema_text_names_every_key_written() {
        let schema = metrics_schema_markdown();
        for key in [
            "`format`",
            "`provenance`",
            "`labels`",
            "`codes`",
            "`models`",
            "`accuracy`",
            "`macro_f1`",
            "`weighted_f1`",
            "`support`",
            "`macro_avg`",
            "`weighted_avg`",
            "`per_class`",
            "`confusion_matrix`",
            "`matrix`",
            "`splits_id`",
            "`seed`",
        ] {
            assert!(schema.contains(key), "{key}");
        }
    }
}
