//! The multi-corpus view of an evaluation (`corpora.md`, `corpora.json`): per model, the
//! corpus × corpus table (row: the corpus trained on; column: the corpus tested; the
//! diagonal from the `within-A` splits, the rest from `cross-A-to-B`), and, for every
//! run whose test part holds several corpora (random, speaker folds), its metrics and
//! confusion matrix on each corpus alone. Written only when a run spans two corpora.
//!
//! Macro-F1 here averages the emotions the tested corpus has (CREMA-D has no surprise:
//! six), so cells of corpora with different emotion sets compare; accuracy is plain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::splits::{SplitKind, SplitSet};
use crate::evaluate::metrics::ClassificationReport;
use crate::evaluate::summary::{SplitEvaluation, SplitMetrics, cell};
use emotion_core::fs::write_atomically;

/// One model's result on one corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusScore {
    /// Fraction of the corpus's test utterances predicted right.
    pub accuracy: f64,
    /// Mean F1 over the emotions present in the corpus's test utterances.
    pub macro_f1_present: f64,
    /// Test utterances of the corpus.
    pub support: usize,
}

/// `corpora.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorporaFile {
    /// The corpora, sorted.
    pub corpora: Vec<String>,
    /// Model → corpus trained on → corpus tested → score (cells not evaluated absent).
    pub table: BTreeMap<String, BTreeMap<String, BTreeMap<String, CorpusScore>>>,
    /// Model → split → corpus → the metrics on that corpus's test utterances alone.
    pub per_corpus: BTreeMap<String, BTreeMap<String, BTreeMap<String, SplitMetrics>>>,
}

/// The predictions of `run` on one corpus's utterances, as a report.
fn report_on(run: &SplitEvaluation, keep: impl Fn(&str) -> bool) -> ClassificationReport {
    let (truth, predicted): (Vec<usize>, Vec<usize>) = run
        .predictions
        .iter()
        .filter(|p| keep(&p.id))
        .map(|p| (p.truth.index(), p.predicted().index()))
        .unzip();
    ClassificationReport::from_predictions(&truth, &predicted)
}

fn score(report: &ClassificationReport) -> CorpusScore {
    let present: Vec<f64> = report
        .per_class
        .iter()
        .filter(|m| m.support > 0)
        .map(|m| m.f1)
        .collect();
    CorpusScore {
        accuracy: report.accuracy,
        macro_f1_present: present.iter().sum::<f64>() / present.len().max(1) as f64,
        support: report.macro_avg.support,
    }
}

/// The multi-corpus view of `runs`, or `None` when no run involves two corpora.
/// `corpus_of` names an utterance's corpus.
pub fn corpora_view(
    runs: &[SplitEvaluation],
    splits: &SplitSet,
    corpus_of: impl Fn(&str) -> Option<String>,
) -> Option<CorporaFile> {
    let mut file = CorporaFile {
        corpora: Vec::new(),
        table: BTreeMap::new(),
        per_corpus: BTreeMap::new(),
    };
    let mut corpora: BTreeSet<String> = BTreeSet::new();
    for run in runs {
        let Ok(split) = splits.get(&run.split) else {
            continue;
        };
        let cell_of = match &split.kind {
            SplitKind::Within { corpus, .. } => Some((corpus.clone(), corpus.clone())),
            SplitKind::Cross {
                train_corpus,
                test_corpus,
            } => Some((train_corpus.clone(), test_corpus.clone())),
            _ => None,
        };
        if let Some((train, test)) = cell_of {
            corpora.insert(train.clone());
            corpora.insert(test.clone());
            file.table
                .entry(run.model.clone())
                .or_default()
                .entry(train)
                .or_default()
                .insert(test, score(&run.report()));
            continue;
        }
        let tested: BTreeSet<String> = run
            .predictions
            .iter()
            .filter_map(|p| corpus_of(&p.id))
            .collect();
        if tested.len() < 2 {
            continue;
        }
        for corpus in tested {
            let report = report_on(run, |id| corpus_of(id).as_deref() == Some(&corpus));
            file.per_corpus
                .entry(run.model.clone())
                .or_default()
                .entry(run.split.clone())
                .or_default()
                .insert(corpus.clone(), SplitMetrics::from_report(&report));
            corpora.insert(corpus);
        }
    }
    if corpora.len() < 2 {
        return None;
    }
    file.corpora = corpora.into_iter().collect();
    Some(file)
}

fn percent(fraction: f64) -> String {
    format!("{:.1}", 100.0 * fraction)
}

impl CorporaFile {
    /// The corpus × corpus tables, one per model.
    pub fn table_markdown(&self) -> String {
        let mut out = String::new();
        // Speech, text, fusion, as the comparison orders them; others after, by name.
        let rank = |m: &str| ["speech", "text", "fusion"].iter().position(|k| *k == m);
        let mut models: Vec<(&String, _)> = self.table.iter().collect();
        models.sort_by_key(|(m, _)| (rank(m).unwrap_or(usize::MAX), m.to_string()));
        for (model, rows) in models {
            let _ = writeln!(out, "### {}\n", cell(model));
            out.push_str("| trained on ↓ / tested on → |");
            for corpus in &self.corpora {
                let _ = write!(out, " {} |", cell(corpus));
            }
            out.push_str("\n|---|");
            out.push_str(&"---:|".repeat(self.corpora.len()));
            out.push('\n');
            for train in &self.corpora {
                let _ = write!(out, "| {} |", cell(train));
                for test in &self.corpora {
                    let value = rows.get(train).and_then(|r| r.get(test)).map_or_else(
                        || "—".to_string(),
                        |s| format!("{} / {}", percent(s.accuracy), percent(s.macro_f1_present)),
                    );
                    let _ = write!(out, " {value} |");
                }
                out.push('\n');
            }
            out.push('\n');
        }
        if !out.is_empty() {
            out.push_str(
                "Each cell: accuracy / macro-F1 (over the emotions the tested corpus has) in %. Diagonal: `within-A` (A alone, unseen speakers of A tested); elsewhere `cross-A-to-B` (all of A trained on, all of B tested); — where not evaluated.\n",
            );
        }
        out
    }

    /// The whole `corpora.md`.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# Corpora\n\n## Corpus × corpus\n\n");
        let table = self.table_markdown();
        if table.is_empty() {
            out.push_str(
                "No within- or cross-corpus split was evaluated (splits `within-A`, `cross-A-to-B`).\n",
            );
        } else {
            out.push_str(&table);
        }
        for (model, splits) in &self.per_corpus {
            for (split, corpora) in splits {
                for (corpus, metrics) in corpora {
                    let _ = writeln!(
                        out,
                        "\n## {} on {}: {} alone\n\nAccuracy {} %, macro-F1 {} % over {} test utterances.\n",
                        cell(model),
                        cell(split),
                        cell(corpus),
                        percent(metrics.accuracy),
                        percent(metrics.macro_f1),
                        metrics.support
                    );
                    out.push_str(&confusion_markdown(metrics));
                }
            }
        }
        out
    }

    /// Writes `corpora.md` and `corpora.json` into `out`; returns their paths.
    pub fn write(&self, out: &Path) -> std::io::Result<[PathBuf; 2]> {
        let markdown = out.join("corpora.md");
        let json = out.join("corpora.json");
        write_atomically(&markdown, self.to_markdown().as_bytes())?;
        let mut text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        text.push('\n');
        write_atomically(&json, text.as_bytes())?;
        Ok([markdown, json])
    }
}

/// A confusion matrix, rows true, columns predicted.
fn confusion_markdown(metrics: &SplitMetrics) -> String {
    let m = &metrics.confusion_matrix;
    let mut out = String::from("| true ↓ / predicted → |");
    for label in &m.labels {
        let _ = write!(out, " {} |", cell(label));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(m.labels.len()));
    out.push('\n');
    for (label, row) in m.labels.iter().zip(&m.matrix) {
        let _ = write!(out, "| {} |", cell(label));
        for n in row {
            let _ = write!(out, " {n} |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::manifest::{CorpusEntry, CorpusManifest};
    use crate::data::splits::SplitConfig;
    use crate::evaluate::summary::Prediction;
    use emotion_core::Emotion;

    fn manifest() -> CorpusManifest {
        let mut entries = Vec::new();
        for (corpus, speakers) in [("a", ["a-1", "a-2"]), ("b", ["b-1", "b-2"])] {
            for speaker in speakers {
                for emotion in Emotion::ALL {
                    for n in 0..4 {
                        let id = format!("{speaker}_{n}_{}", emotion.code());
                        entries.push(CorpusEntry {
                            path: format!("/{id}.wav").into(),
                            id,
                            speaker: speaker.into(),
                            word: format!("w{n}"),
                            emotion,
                            transcript: String::new(),
                            sample_rate: 16_000,
                            duration_s: 1.0,
                            corpus: corpus.into(),
                            label: emotion.code().into(),
                            intensity: String::new(),
                        });
                    }
                }
            }
        }
        CorpusManifest::new(entries)
    }

    /// A model that is right on corpus `a` and always says angry on `b`.
    fn run(manifest: &CorpusManifest, split: &str, ids: &[String]) -> SplitEvaluation {
        let predictions = ids
            .iter()
            .map(|id| {
                let entry = manifest.get(id).unwrap();
                let said = if entry.corpus == "a" {
                    entry.emotion
                } else {
                    Emotion::Angry
                };
                let mut probabilities = [0.0; 7];
                probabilities[said.index()] = 1.0;
                Prediction {
                    id: id.clone(),
                    path: entry.path.clone(),
                    transcript: String::new(),
                    truth: entry.emotion,
                    probabilities,
                }
            })
            .collect();
        SplitEvaluation {
            model: "speech".into(),
            split: split.into(),
            predictions,
        }
    }

    #[test]
    fn the_table_and_per_corpus_matrices_come_from_the_right_runs() {
        let manifest = manifest();
        let splits = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
        let runs: Vec<SplitEvaluation> = ["random", "within-a", "cross-b-to-a", "cross-a-to-b"]
            .iter()
            .map(|name| run(&manifest, name, &splits.get(name).unwrap().test))
            .collect();
        let corpus_of = |id: &str| manifest.get(id).map(|e| e.corpus.clone());
        let view = corpora_view(&runs, &splits, corpus_of).unwrap();
        assert_eq!(view.corpora, ["a", "b"]);
        let table = &view.table["speech"];
        assert_eq!(table["a"]["a"].accuracy, 1.0);
        assert_eq!(table["b"]["a"].accuracy, 1.0);
        let a_to_b = &table["a"]["b"];
        assert!((a_to_b.accuracy - 1.0 / 7.0).abs() < 1e-9, "{a_to_b:?}");
        assert_eq!(a_to_b.support, 2 * 7 * 4);
        assert!(!table.contains_key("b") || !table["b"].contains_key("b"));

        let random = &view.per_corpus["speech"]["random"];
        assert_eq!(random["a"].accuracy, 1.0);
        assert!((random["b"].accuracy - 1.0 / 7.0).abs() < 1e-9);
        assert_eq!(
            random["b"].confusion_matrix.matrix[3][0],
            random["b"].per_class["happy"].support
        );

        let md = view.to_markdown();
        assert!(md.contains("| a | 100.0 / 100.0 | 14.3 / 3.6 |"), "{md}");
        assert!(md.contains("| b | 100.0 / 100.0 | — |"), "{md}");
        assert!(md.contains("## speech on random: b alone"), "{md}");

        // One corpus: nothing to show.
        let one: Vec<SplitEvaluation> = runs[..1]
            .iter()
            .map(|r| SplitEvaluation {
                predictions: r
                    .predictions
                    .iter()
                    .filter(|p| corpus_of(&p.id).as_deref() == Some("a"))
                    .cloned()
                    .collect(),
                ..r.clone()
            })
            .collect();
        assert!(corpora_view(&one, &splits, corpus_of).is_none());
    }
}
