//! `host-trainer report`: one self-contained HTML page (and the same as Markdown) that
//! compares the three models across the splits: the comparison table, per-class F1,
//! confusion matrices, training curves, the error analysis, with several corpora the
//! corpus × corpus tables and per-corpus confusion matrices, the representation maps
//! with their silhouettes, the layer probe and the provenance.
//!
//! The report is built once as a list of [`Block`]s and rendered twice: Markdown links
//! the PNG figures, HTML inlines the SVG ones (so the page opens offline, alone).
//! `report.json` holds the numbers (comparison, silhouettes, probe) for programs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use emotion_core::Emotion;
use serde::{Deserialize, Serialize};

use crate::data::manifest::CorpusManifest;
use crate::data::splits::SplitSet;
use crate::evaluate::corpora::CorporaFile;
use crate::evaluate::probe::ProbeFile;
use crate::evaluate::summary::{MetricsFile, Provenance, ReportFile, SplitMetrics, cell};
use crate::report::plots::{
    BarChart, Heatmap, LinePlot, PlotFiles, Series, confusion_heatmap, grouped_bars, line_plot,
};
use crate::report::representations::{StageSummary, format_score, model_representations, relative};
use crate::train::heads::ModelKind;
use crate::train::runs::{FusionText, run_dir};
use crate::train::trainer::EpochRecord;
use emotion_core::fs::write_atomically;

/// Version of `report.json`.
pub const REPORT_SUMMARY_FORMAT: u32 = 1;

/// How many confident mistakes the error analysis lists per model and split.
const MISTAKES_LISTED: usize = 5;

/// Where a report's inputs are and where it goes.
pub struct ReportInputs<'a> {
    /// `manifest.csv`.
    pub manifest: &'a Path,
    /// `splits.json`.
    pub splits: &'a Path,
    /// The feature cache.
    pub features: &'a Path,
    /// The runs folder (`{model}/{split}/model`, `curves.json`).
    pub runs: &'a Path,
    /// The evaluation folder (`metrics.json`, `{model}/{split}/report.json`).
    pub evaluation: &'a Path,
    /// `probe.json`, when a probe was run.
    pub probe: Option<&'a Path>,
    /// The splits whose models' representations are mapped (t-SNE takes a while).
    pub representation_splits: &'a [String],
    /// The report folder (created).
    pub out: &'a Path,
}

/// What `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// [`REPORT_SUMMARY_FORMAT`].
    pub format: u32,
    /// Where the results came from.
    pub provenance: Provenance,
    /// Model → split → (accuracy, macro-F1).
    pub comparison: BTreeMap<String, BTreeMap<String, (f64, f64)>>,
    /// Every representation scored.
    pub representations: Vec<StageSummary>,
    /// The layer probe, if one was run.
    pub probe: Option<ProbeFile>,
    /// Every figure, relative to the report folder, without extension (a `.png` and an
    /// `.svg` each).
    pub figures: Vec<String>,
}

/// The files written.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// `report.html`.
    pub html: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.json`.
    pub json: PathBuf,
    /// The numbers.
    pub summary: ReportSummary,
}

/// A piece of the report, rendered to Markdown and to HTML alike.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1–3.
    Heading(u8, String),
    /// Plain text.
    Paragraph(String),
    /// A table with a header row.
    Table(Vec<String>, Vec<Vec<String>>),
    /// Figures side by side: (path relative to the report folder without extension,
    /// caption).
    Figures(Vec<(String, String)>),
}

/// Reads the evaluation, runs, features and probe, draws the figures and writes
/// `report.html`, `report.md` and `report.json` into `inputs.out`.
pub fn write_report(inputs: &ReportInputs, progress: bool) -> anyhow::Result<ReportOutcome> {
    let metrics_path = inputs.evaluation.join("metrics.json");
    let metrics: MetricsFile = read_json(&metrics_path).with_context(
        || "run `host-trainer evaluate` first: the report starts from its metrics.json",
    )?;
    let manifest = CorpusManifest::read_csv(inputs.manifest)?;
    let splits = SplitSet::read_json(inputs.splits)?;
    let probe = inputs.probe.map(ProbeFile::read).transpose()?;
    let figures_dir = inputs.out.join("figures");
    let mut report = Report {
        out: inputs.out.to_path_buf(),
        figures_dir,
        figures: Vec::new(),
        blocks: Vec::new(),
    };

    let models: Vec<&String> = ordered_models(&metrics);
    let mut split_names: Vec<&String> = Vec::new();
    for by_split in metrics.models.values() {
        for split in by_split.keys() {
            if !split_names.contains(&split) {
                split_names.push(split);
            }
        }
    }
    split_names.sort_by_key(|s| (s.as_str() != "random", s.to_string()));

    report.push(Block::Heading(
        1,
        "Speech and text emotion recognition: report".into(),
    ));
    report.push(Block::Paragraph(format!(
        "Three heads over frozen encoder features (speech only, text only, and speech fused with text by cross-attention), each trained and tested on the splits below. Corpus: {}. Written by host-trainer {}. Every figure is also in figures/ as PNG and SVG.",
        metrics.provenance.corpus,
        env!("CARGO_PKG_VERSION")
    )));
    let comparison = comparison(&metrics, &models, &split_names, &mut report);
    fusion_text(inputs.runs, &split_names, &mut report)?;

    for split in &split_names {
        report.push(Block::Heading(2, format!("Split {split}")));
        split_section(&metrics, &models, split, inputs, &manifest, &mut report)?;
    }

    let corpora_path = inputs.evaluation.join("corpora.json");
    if corpora_path.is_file() {
        let view: CorporaFile = read_json(&corpora_path)?;
        corpora_section(&view, &models, &mut report)?;
    }

    let representations =
        representations_section(inputs, &manifest, &splits, &models, &mut report, progress)?;
    if let Some(probe) = &probe {
        probe_section(probe, &mut report)?;
    }
    report.push(Block::Heading(2, "Provenance".into()));
    report.push(Block::Table(
        vec!["field".into(), "value".into()],
        metrics
            .provenance
            .rows()
            .into_iter()
            .map(|(k, v)| vec![k, v])
            .collect(),
    ));

    let summary = ReportSummary {
        format: REPORT_SUMMARY_FORMAT,
        provenance: metrics.provenance.clone(),
        comparison,
        representations,
        probe,
        figures: report.figures.clone(),
    };
    report.write(summary)
}

/// The report being built.
struct Report {
    out: PathBuf,
    figures_dir: PathBuf,
    figures: Vec<String>,
    blocks: Vec<Block>,
}

impl Report {
    fn push(&mut self, block: Block) {
        self.blocks.push(block);
    }

    /// Where a figure named `name` goes.
    fn stem(&self, name: &str) -> PathBuf {
        self.figures_dir.join(name)
    }

    /// Records a drawn figure; returns its relative stem.
    fn figure(&mut self, files: &PlotFiles) -> String {
        let stem = relative(files, &self.out);
        self.figures.push(stem.clone());
        stem
    }

    fn write(self, summary: ReportSummary) -> anyhow::Result<ReportOutcome> {
        let html = self.out.join("report.html");
        let markdown = self.out.join("report.md");
        let json = self.out.join("report.json");
        write_atomically(&markdown, to_markdown(&self.blocks).as_bytes())
            .with_context(|| format!("cannot write {}", markdown.display()))?;
        let page = to_html(&self.blocks, &self.out)?;
        write_atomically(&html, page.as_bytes())
            .with_context(|| format!("cannot write {}", html.display()))?;
        write_atomically(&json, serde_json::to_string_pretty(&summary)?.as_bytes())
            .with_context(|| format!("cannot write {}", json.display()))?;
        Ok(ReportOutcome {
            html,
            markdown,
            json,
            summary,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} does not parse", path.display()))
}

/// Speech, text, fusion first (in that order), then anything else by name.
fn ordered_models(metrics: &MetricsFile) -> Vec<&String> {
    let rank = |m: &str| match m {
        "speech" => 0,
        "text" => 1,
        "fusion" => 2,
        _ => 3,
    };
    let mut models: Vec<&String> = metrics.models.keys().collect();
    models.sort_by_key(|m| (rank(m), m.to_string()));
    models
}

fn percent(fraction: f64) -> String {
    format!("{:.1}", 100.0 * fraction)
}

/// The comparison table (models × splits); returns its numbers.
fn comparison(
    metrics: &MetricsFile,
    models: &[&String],
    splits: &[&String],
    report: &mut Report,
) -> BTreeMap<String, BTreeMap<String, (f64, f64)>> {
    report.push(Block::Heading(2, "Models compared".into()));
    report.push(Block::Paragraph(format!(
        "Test accuracy / macro-F1 in %, per split (chance: {:.1} %). \"random\" mixes speakers between training and test (the study's split); \"speaker-A-to-B\" trains on speaker A and tests on speaker B, which is what a board meeting a new voice faces.",
        100.0 / Emotion::COUNT as f64
    )));
    let mut numbers: BTreeMap<String, BTreeMap<String, (f64, f64)>> = BTreeMap::new();
    let mut header = vec!["model".to_string()];
    header.extend(splits.iter().map(|s| s.to_string()));
    let rows = models
        .iter()
        .map(|model| {
            let mut row = vec![model.to_string()];
            for split in splits {
                match metrics.models[*model].get(*split) {
                    Some(m) => {
                        numbers
                            .entry(model.to_string())
                            .or_default()
                            .insert(split.to_string(), (m.accuracy, m.macro_f1));
                        row.push(format!("{} / {}", percent(m.accuracy), percent(m.macro_f1)));
                    }
                    None => row.push("—".into()),
                }
            }
            row
        })
        .collect();
    report.push(Block::Table(header, rows));
    numbers
}

/// What each fusion run did with the text (`fusion.json`), under the comparison: the
/// fusion row equal to the speech row is then explained, not a coincidence.
fn fusion_text(runs: &Path, splits: &[&String], report: &mut Report) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    for split in splits {
        if let Some(text) = FusionText::read(runs, split)? {
            lines.push(format!("{split}: {}.", text.sentence()));
        }
    }
    if !lines.is_empty() {
        report.push(Block::Paragraph(format!(
            "The fusion model starts as the speech model with the text gated off (tanh(g) = 0) and keeps its text path only if that beats the speech model's validation macro-F1. {}",
            lines.join(" ")
        )));
    }
    Ok(())
}

/// With several corpora (`evaluate`'s `corpora.json`): the corpus × corpus table of each
/// model, then each mixed split's confusion matrices per corpus.
fn corpora_section(
    view: &CorporaFile,
    models: &[&String],
    report: &mut Report,
) -> anyhow::Result<()> {
    report.push(Block::Heading(2, "Corpora".into()));
    report.push(Block::Paragraph(
        "Row: the corpus trained on; column: the corpus tested. The diagonal comes from the within-A splits (A alone, unseen speakers of A tested), the rest from cross-A-to-B (all of A trained on, all of B tested). Each cell: accuracy / macro-F1 over the emotions the tested corpus has, in %; — where not evaluated.".into(),
    ));
    for model in models {
        let Some(rows) = view.table.get(*model) else {
            continue;
        };
        report.push(Block::Heading(3, format!("Corpus × corpus, {model}")));
        let mut header = vec!["trained on ↓ / tested on →".to_string()];
        header.extend(view.corpora.iter().cloned());
        let table = view
            .corpora
            .iter()
            .map(|train| {
                let mut row = vec![train.clone()];
                row.extend(view.corpora.iter().map(|test| {
                    rows.get(train).and_then(|r| r.get(test)).map_or_else(
                        || "—".to_string(),
                        |s| format!("{} / {}", percent(s.accuracy), percent(s.macro_f1_present)),
                    )
                }));
                row
            })
            .collect();
        report.push(Block::Table(header, table));
    }
    let mut mixed: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    for by_split in view.per_corpus.values() {
        for (split, corpora) in by_split {
            mixed.entry(split).or_default().extend(corpora.keys());
        }
    }
    for (split, corpora) in mixed {
        for corpus in corpora {
            let evaluated: Vec<(&String, &SplitMetrics)> = models
                .iter()
                .filter_map(|m| {
                    let metrics = view.per_corpus.get(*m)?.get(split)?.get(corpus)?;
                    Some((*m, metrics))
                })
                .collect();
            report.push(Block::Heading(3, format!("Split {split}, {corpus} alone")));
            confusion_matrices(&evaluated, &format!("{split}-{corpus}"), report)?;
        }
    }
    Ok(())
}

/// Per-class F1, confusion matrices, training curves and the error analysis of one split.
fn split_section(
    metrics: &MetricsFile,
    models: &[&String],
    split: &str,
    inputs: &ReportInputs,
    manifest: &CorpusManifest,
    report: &mut Report,
) -> anyhow::Result<()> {
    let evaluated: Vec<(&String, &SplitMetrics)> = models
        .iter()
        .filter_map(|m| metrics.models[*m].get(split).map(|s| (*m, s)))
        .collect();
    per_class_f1(&evaluated, split, report)?;
    confusion_matrices(&evaluated, split, report)?;
    let mut curves = Vec::new();
    for (model, _) in &evaluated {
        curves.extend(training_curves(model, split, inputs, report)?);
    }
    if !curves.is_empty() {
        report.push(Block::Heading(3, format!("Training curves, {split}")));
        report.push(Block::Figures(curves));
    }

    report.push(Block::Heading(3, format!("Error analysis, {split}")));
    error_analysis(inputs, manifest, &evaluated, split, report)
}

/// The emotions' names, in [`Emotion`] order.
fn emotion_names() -> Vec<&'static str> {
    Emotion::ALL.iter().map(|e| e.name()).collect()
}

/// The figure of every model's F1 per emotion on `split`.
fn per_class_f1(
    evaluated: &[(&String, &SplitMetrics)],
    split: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let names = emotion_names();
    let series: Vec<(String, Vec<f64>)> = evaluated
        .iter()
        .map(|(model, m)| {
            let f1 = names
                .iter()
                .map(|n| m.per_class.get(*n).map_or(0.0, |c| c.f1))
                .collect();
            (model.to_string(), f1)
        })
        .collect();
    let title = format!("Per-class F1 on the test part of {split}");
    let files = grouped_bars(
        &BarChart {
            title: &title,
            y_label: "F1",
            categories: &names,
            series: &series,
            y_range: 0.0..1.0,
        },
        &report.stem(&format!("f1-{split}")),
    )?;
    let stem = report.figure(&files);
    report.push(Block::Figures(vec![(stem, title)]));
    Ok(())
}

/// The confusion matrix of every model on `split`, side by side.
fn confusion_matrices(
    evaluated: &[(&String, &SplitMetrics)],
    split: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let names = emotion_names();
    let mut heatmaps = Vec::new();
    for (model, m) in evaluated {
        let title = format!("{model} on {split}: accuracy {} %", percent(m.accuracy));
        let files = confusion_heatmap(
            &Heatmap {
                title: &title,
                labels: &names,
                counts: &m.confusion_matrix.matrix,
            },
            &report.stem(&format!("confusion-{model}-{split}")),
        )?;
        heatmaps.push((
            report.figure(&files),
            format!("Confusion matrix, {model} model (rows: true, columns: predicted)"),
        ));
    }
    report.push(Block::Figures(heatmaps));
    Ok(())
}

/// The loss and accuracy curves of `model`'s training on `split` (figure and title
/// each); none, with a paragraph saying why, when its `curves.json` is missing.
fn training_curves(
    model: &str,
    split: &str,
    inputs: &ReportInputs,
    report: &mut Report,
) -> anyhow::Result<Vec<(String, String)>> {
    let Some(kind) = model_kind(model) else {
        return Ok(Vec::new());
    };
    let path = run_dir(inputs.runs, kind, split).join("curves.json");
    let Ok(records) = read_json::<Vec<EpochRecord>>(&path) else {
        report.push(Block::Paragraph(format!(
            "No training curves for {model} on {split}: {} is missing.",
            path.display()
        )));
        return Ok(Vec::new());
    };
    let line = |name: &str, value: fn(&EpochRecord) -> f64| Series {
        name: name.into(),
        points: records.iter().map(|r| (r.epoch as f64, value(r))).collect(),
    };
    let chance = ("chance", 1.0 / Emotion::COUNT as f64);
    let plots = [
        (
            "loss",
            "cross-entropy",
            vec![
                line("training", |r| r.train_loss),
                line("validation", |r| r.val_loss),
            ],
            None,
            None,
        ),
        (
            "accuracy",
            "fraction",
            vec![
                line("training accuracy", |r| r.train_accuracy),
                line("validation accuracy", |r| r.val_accuracy),
                line("validation macro-F1", |r| r.val_macro_f1),
            ],
            Some(0.0..1.0),
            Some(chance),
        ),
    ];
    let mut curves = Vec::new();
    for (what, y_label, series, y_range, reference) in plots {
        let title = format!("{model} on {split}: {what}");
        let files = line_plot(
            &LinePlot {
                title: &title,
                x_label: "epoch",
                y_label,
                series: &series,
                y_range,
                reference,
            },
            &report.stem(&format!("curves-{what}-{model}-{split}")),
        )?;
        curves.push((report.figure(&files), title));
    }
    Ok(curves)
}

fn model_kind(name: &str) -> Option<ModelKind> {
    [ModelKind::Speech, ModelKind::Text, ModelKind::Fusion]
        .into_iter()
        .find(|k| k.to_string() == name)
}

/// Per model: mistakes, the most confused pairs, accuracy per speaker and the most
/// confident mistakes.
fn error_analysis(
    inputs: &ReportInputs,
    manifest: &CorpusManifest,
    evaluated: &[(&String, &SplitMetrics)],
    split: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let names: Vec<&str> = Emotion::ALL.iter().map(|e| e.name()).collect();
    let mut summary_rows = Vec::new();
    let mut mistakes_rows = Vec::new();
    for (model, m) in evaluated {
        let confused = most_confused(&m.confusion_matrix.matrix, &names);
        let path = inputs
            .evaluation
            .join(model)
            .join(split)
            .join("report.json");
        let run: ReportFile = read_json(&path)?;
        let speakers = accuracy_per_speaker(&run, manifest);
        summary_rows.push(vec![
            model.to_string(),
            format!("{} of {}", run.mistakes, run.predictions.len()),
            if confused.is_empty() {
                "none".into()
            } else {
                confused
            },
            speakers,
        ]);
        for id in run.confident_mistakes.iter().take(MISTAKES_LISTED) {
            if let Some(p) = run.predictions.iter().find(|p| &p.id == id) {
                mistakes_rows.push(vec![
                    model.to_string(),
                    p.id.clone(),
                    p.transcript.clone(),
                    p.truth.clone(),
                    p.predicted.clone(),
                    format!("{:.2}", p.confidence),
                ]);
            }
        }
    }
    push_error_tables(report, summary_rows, mistakes_rows);
    Ok(())
}

/// The three most confused pairs of `matrix` (rows: true class), as `true → predicted
/// (count)`; empty when there are no mistakes.
fn most_confused(matrix: &[Vec<usize>], names: &[&str]) -> String {
    let mut pairs: Vec<(usize, usize, usize)> = Vec::new();
    for (t, row) in matrix.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            if t != p && count > 0 {
                pairs.push((count, t, p));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    pairs
        .iter()
        .take(3)
        .map(|(n, t, p)| format!("{} → {} ({n})", names[*t], names[*p]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The accuracy of `run`'s predictions per speaker, as `speaker NN %`.
fn accuracy_per_speaker(run: &ReportFile, manifest: &CorpusManifest) -> String {
    let mut by_speaker: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in &run.predictions {
        let speaker = manifest.get(&p.id).map_or("?", |e| e.speaker.as_str());
        let entry = by_speaker.entry(speaker).or_default();
        entry.0 += usize::from(p.correct);
        entry.1 += 1;
    }
    by_speaker
        .iter()
        .map(|(s, (right, all))| format!("{s} {} %", percent(*right as f64 / (*all).max(1) as f64)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error analysis tables: one row per model, then the most confident mistakes (or
/// a line saying there are none).
fn push_error_tables(
    report: &mut Report,
    summary_rows: Vec<Vec<String>>,
    mistakes_rows: Vec<Vec<String>>,
) {
    report.push(Block::Table(
        [
            "model",
            "mistakes",
            "most confused (true → predicted)",
            "accuracy per speaker",
        ]
        .map(String::from)
        .to_vec(),
        summary_rows,
    ));
    if mistakes_rows.is_empty() {
        report.push(Block::Paragraph("No mistakes on this split.".into()));
    } else {
        report.push(Block::Paragraph(format!(
            "The most confident mistakes (at most {MISTAKES_LISTED} per model): a confident mistake is more worrying than an unsure one."
        )));
        report.push(Block::Table(
            [
                "model",
                "utterance",
                "transcript",
                "true",
                "predicted",
                "confidence",
            ]
            .map(String::from)
            .to_vec(),
            mistakes_rows,
        ));
    }
}

/// The representation maps of every model on each of `inputs.representation_splits`.
fn representations_section(
    inputs: &ReportInputs,
    manifest: &CorpusManifest,
    splits: &SplitSet,
    models: &[&String],
    report: &mut Report,
    progress: bool,
) -> anyhow::Result<Vec<StageSummary>> {
    report.push(Block::Heading(2, "Representations".into()));
    report.push(Block::Paragraph(
        "How far apart the emotions lie inside each model, at each stage of its head, over every utterance of the split (filled markers: held-out test utterances; hollow: training and validation). Colour is the emotion, the marker the speaker. The silhouette (Euclidean, in the representation's own space, not the 2-D map) is in [-1, 1]: near 1 the emotions form tight, separate clusters; near 0 they overlap. \"input\" is the encoder features the head reads, averaged over frames: the head should separate better than its input.".into(),
    ));
    let mut all = Vec::new();
    for split_name in inputs.representation_splits {
        let split = splits.get(split_name)?;
        for model in models {
            let Some(kind) = model_kind(model) else {
                continue;
            };
            if progress {
                eprintln!("representations: {model} on {split_name} (t-SNE and PCA of each stage)");
            }
            let summaries = model_representations(
                manifest,
                split,
                inputs.features,
                inputs.runs,
                kind,
                &report.figures_dir,
                &report.out,
            )?;
            all.extend(summaries);
        }
    }
    push_representation_table(report, &all);
    push_representation_maps(report, &all);
    Ok(all)
}

/// The silhouettes of every model's stages, one row each.
fn push_representation_table(report: &mut Report, all: &[StageSummary]) {
    let rows = all
        .iter()
        .map(|s| {
            vec![
                s.model.clone(),
                s.split.clone(),
                s.stage.clone(),
                s.dim.to_string(),
                format_score(s.silhouette),
                format_score(s.silhouette_held_out),
            ]
        })
        .collect();
    report.push(Block::Table(
        [
            "model",
            "split",
            "stage",
            "dims",
            "silhouette (all)",
            "silhouette (held out)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));
}

/// The t-SNE maps, then the PCA maps, of every model's stages (or why one is missing).
fn push_representation_maps(report: &mut Report, all: &[StageSummary]) {
    for method in ["tsne", "pca"] {
        report.push(Block::Heading(
            3,
            if method == "tsne" {
                "t-SNE maps"
            } else {
                "PCA maps"
            }
            .into(),
        ));
        let mut figures = Vec::new();
        for s in all {
            let figure = if method == "tsne" { &s.tsne } else { &s.pca };
            match figure {
                Ok(stem) => {
                    report.figures.push(stem.clone());
                    figures.push((
                        stem.clone(),
                        format!(
                            "{} model, {} ({}), {}",
                            s.model, s.stage, s.description, s.split
                        ),
                    ));
                }
                Err(why) => report.push(Block::Paragraph(format!(
                    "No {method} map for {} / {}: {why}",
                    s.model, s.stage
                ))),
            }
        }
        report.push(Block::Figures(figures));
    }
}

/// The probe figure and table.
fn probe_section(probe: &ProbeFile, report: &mut Report) -> anyhow::Result<()> {
    report.push(Block::Heading(2, "Layer probe".into()));
    report.push(Block::Paragraph(format!(
        "A linear classifier (logistic regression on standardised features, {} full-batch Adam steps, L2 {}) trained on one encoder layer at a time, averaged over frames, on each split's training and validation parts, and scored on its test part. It shows where emotion lives in the frozen encoders; the study feeds HuBERT layers 5–9 to the speech head.",
        probe.config.steps, probe.config.l2
    )));
    let series: Vec<Series> = probe
        .probes
        .iter()
        .map(|p| Series {
            name: format!("{} · {}", p.modality, p.split),
            points: p
                .layers
                .iter()
                .map(|l| (l.layer as f64, l.accuracy))
                .collect(),
        })
        .collect();
    let title = "Linear probe accuracy per encoder layer";
    let files = line_plot(
        &LinePlot {
            title,
            x_label: "layer",
            y_label: "test accuracy",
            series: &series,
            y_range: Some(0.0..1.0),
            reference: Some(("chance", probe.chance)),
        },
        &report.stem("probe"),
    )?;
    let stem = report.figure(&files);
    report.push(Block::Figures(vec![(stem, title.into())]));
    let rows = probe
        .probes
        .iter()
        .map(|p| {
            let best = p.best();
            let study: Vec<f64> = p
                .layers
                .iter()
                .filter(|l| (5..=9).contains(&l.layer))
                .map(|l| l.accuracy)
                .collect();
            vec![
                p.modality.clone(),
                p.split.clone(),
                format!("{} / {}", p.train, p.test),
                best.map_or("—".into(), |b| {
                    format!("{} ({} %)", b.layer, percent(b.accuracy))
                }),
                if study.is_empty() {
                    "—".into()
                } else {
                    format!(
                        "{} %",
                        percent(study.iter().sum::<f64>() / study.len() as f64)
                    )
                },
                p.layers
                    .iter()
                    .map(|l| format!("{}: {}", l.layer, percent(l.accuracy)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    report.push(Block::Table(
        [
            "encoder",
            "split",
            "train / test",
            "best layer",
            "mean of layers 5–9",
            "accuracy % per layer",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    ));
    Ok(())
}

/// The blocks as Markdown; figures are PNG links.
pub fn to_markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::Table(header, rows) => {
                let line = |cells: &[String]| {
                    format!(
                        "| {} |\n",
                        cells
                            .iter()
                            .map(|c| cell(c))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    )
                };
                out.push_str(&line(header));
                let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
                for row in rows {
                    out.push_str(&line(row));
                }
                out.push('\n');
            }
            Block::Figures(figures) => {
                for (stem, caption) in figures {
                    let _ = writeln!(out, "![{}]({stem}.png)\n", caption.replace(['[', ']'], ""));
                }
            }
        }
    }
    out
}

/// The blocks as one HTML page; each figure's SVG is read from `dir` and inlined.
pub fn to_html(blocks: &[Block], dir: &Path) -> anyhow::Result<String> {
    let mut body = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(body, "<h{level}>{}</h{level}>", escape(text));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(body, "<p>{}</p>", escape(text));
            }
            Block::Table(header, rows) => {
                body.push_str("<table>\n<thead><tr>");
                for h in header {
                    let _ = write!(body, "<th>{}</th>", escape(h));
                }
                body.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    body.push_str("<tr>");
                    for c in row {
                        let _ = write!(body, "<td>{}</td>", escape(c));
                    }
                    body.push_str("</tr>\n");
                }
                body.push_str("</tbody></table>\n");
            }
            Block::Figures(figures) => {
                body.push_str("<div class=\"figures\">\n");
                for (stem, caption) in figures {
                    let path = dir.join(format!("{stem}.svg"));
                    let svg = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read figure {}", path.display()))?;
                    let svg = svg
                        .trim_start_matches(|c: char| c != '<')
                        .strip_prefix("<?xml")
                        .map_or(svg.as_str(), |rest| {
                            rest.split_once("?>").map_or(rest, |(_, after)| after)
                        });
                    let _ = writeln!(
                        body,
                        "<figure>{}<figcaption>{}</figcaption></figure>",
                        svg.trim(),
                        escape(caption)
                    );
                }
                body.push_str("</div>\n");
            }
        }
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Emotion recognition report</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    ))
}

const STYLE: &str = "body { font-family: system-ui, sans-serif; max-width: 1280px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; flex: 1 1 420px; max-width: 640px; }
figure svg { width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
";

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_render_to_markdown_and_html_alike() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("figures")).unwrap();
        std::fs::write(
            dir.path().join("figures/a.svg"),
            "<?xml version=\"1.0\"?>\n<svg width=\"10\" height=\"10\"><text>A</text></svg>",
        )
        .unwrap();
        let blocks = vec![
            Block::Heading(2, "Title <x>".into()),
            Block::Paragraph("a & b".into()),
            Block::Table(
                vec!["k".into(), "v".into()],
                vec![vec!["a|b".into(), "1".into()]],
            ),
            Block::Figures(vec![("figures/a".into(), "caption".into())]),
        ];
        let markdown = to_markdown(&blocks);
        assert!(markdown.contains("## Title <x>"));
        assert!(markdown.contains("| a\\|b | 1 |"), "{markdown}");
        assert!(markdown.contains("![caption](figures/a.png)"));
        let html = to_html(&blocks, dir.path()).unwrap();
        assert!(html.contains("<h2>Title &lt;x&gt;</h2>"));
        assert!(html.contains("<p>a &amp; b</p>"));
        assert!(html.contains("<td>a|b</td>"));
        assert!(html.contains("<figure><svg width=\"10\" height=\"10\"><text>A</text></svg>"));
        assert!(
            !html.contains("<?xml"),
            "the declaration would break inline SVG"
        );
        assert!(!html.contains("src=\"http"), "nothing is fetched");
    }

    #[test]
    fn a_missing_figure_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = vec![Block::Figures(vec![("figures/gone".into(), "x".into())])];
        let error = to_html(&blocks, dir.path()).unwrap_err();
        assert!(format!("{error:#}").contains("gone.svg"), "{error:#}");
    }
}
