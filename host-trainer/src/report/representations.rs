//! How separable the emotions are inside each trained model: its representations of every
//! utterance of a split, at each stage of the head (temporal block, contextual block,
//! fusion output), mapped to two dimensions (t-SNE and PCA) and scored with the
//! silhouette, beside the same for the encoder features the head reads.

use std::path::Path;

use emotion_core::Emotion;
use serde::{Deserialize, Serialize};

use crate::data::manifest::CorpusManifest;
use crate::data::splits::Split;
use crate::report::plots::{PlotFiles, ScatterPlot, ScatterPoint, scatter};
use crate::report::projection::{Map2d, pca, silhouette, tsne};
use crate::train::dataset::load_split;
use crate::train::heads::ModelKind;
use crate::train::runs::run_dir;
use crate::train::trainer::{Example, TrainedModel};

/// The name of the baseline "stage" of the speech and text models: the encoder features,
/// averaged over frames (and layers), before any head.
pub const INPUT_STAGE: &str = "input";

/// One model's representation at one stage, scored and drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    /// `speech`, `text` or `fusion`.
    pub model: String,
    /// The split whose model and utterances these are.
    pub split: String,
    /// [`INPUT_STAGE`], or a [`crate::train::heads::Stage`] name.
    pub stage: String,
    /// What the vector is.
    pub description: String,
    /// Its width.
    pub dim: usize,
    /// Utterances (all parts of the split).
    pub utterances: usize,
    /// Silhouette of the emotions over all utterances, in [-1, 1].
    pub silhouette: Option<f64>,
    /// Silhouette over the held-out (test) utterances only.
    pub silhouette_held_out: Option<f64>,
    /// The t-SNE figure (relative to the report folder), or why there is none.
    pub tsne: Result<String, String>,
    /// The PCA figure, or why there is none.
    pub pca: Result<String, String>,
}

/// The vectors of one stage, with what each row is.
struct StageRows {
    stage: String,
    description: String,
    rows: Vec<Vec<f32>>,
}

/// Scores and draws every stage of `model` trained on `split` (from `runs`), over all the
/// split's utterances; figures go to `figures` as `repr-{method}-{model}-{split}-{stage}`.
/// `report_dir` is what the summaries' paths are relative to.
pub fn model_representations(
    manifest: &CorpusManifest,
    split: &Split,
    features: &Path,
    runs: &Path,
    model: ModelKind,
    figures: &Path,
    report_dir: &Path,
) -> anyhow::Result<Vec<StageSummary>> {
    let dir = run_dir(runs, model, &split.name).join("model");
    let trained = TrainedModel::load(&dir).map_err(|e| {
        anyhow::anyhow!(
            "no trained {model} model for split {} in {} ({e})",
            split.name,
            dir.display()
        )
    })?;
    let data = load_split(manifest, split, features, model != ModelKind::Speech)?;
    let held_out = data.test.len();
    let examples: Vec<Example> = data
        .test
        .into_iter()
        .chain(data.train)
        .chain(data.val)
        .collect();
    let maps = Maps::new(
        manifest, split, model, &examples, held_out, figures, report_dir,
    );
    let stages = stage_rows(model, &trained, &examples)?;
    Ok(stages
        .into_iter()
        .map(|rows| maps.summarise(rows))
        .collect())
}

/// What every stage's figures of one model share: the utterances (held-out ones first),
/// their emotions and speakers, and where the figures go.
struct Maps<'a> {
    model: ModelKind,
    split: &'a Split,
    figures: &'a Path,
    report_dir: &'a Path,
    labels: Vec<usize>,
    held_out: usize,
    class_names: Vec<&'static str>,
    speakers: Vec<&'a str>,
    /// One point per utterance, at the origin: the maps give the positions.
    points: Vec<ScatterPoint>,
}

impl<'a> Maps<'a> {
    fn new(
        manifest: &'a CorpusManifest,
        split: &'a Split,
        model: ModelKind,
        examples: &[Example],
        held_out: usize,
        figures: &'a Path,
        report_dir: &'a Path,
    ) -> Self {
        let labels: Vec<usize> = examples.iter().map(|e| e.label.index()).collect();
        let mut speakers: Vec<&str> = examples
            .iter()
            .filter_map(|e| manifest.get(&e.id).map(|m| m.speaker.as_str()))
            .collect();
        speakers.sort_unstable();
        speakers.dedup();
        let points: Vec<ScatterPoint> = examples
            .iter()
            .enumerate()
            .map(|(i, e)| ScatterPoint {
                x: 0.0,
                y: 0.0,
                class: e.label.index(),
                group: manifest
                    .get(&e.id)
                    .and_then(|m| speakers.iter().position(|s| *s == m.speaker))
                    .unwrap_or(0),
                held_out: i < held_out,
            })
            .collect();
        Self {
            model,
            split,
            figures,
            report_dir,
            labels,
            held_out,
            class_names: Emotion::ALL.iter().map(|e| e.name()).collect(),
            speakers,
            points,
        }
    }

    /// The silhouettes of one stage and its t-SNE and PCA figures.
    fn summarise(&self, stage_rows: StageRows) -> StageSummary {
        let StageRows {
            stage,
            description,
            rows,
        } = stage_rows;
        let held_out = self.held_out;
        let score = silhouette(&rows, &self.labels);
        let score_held_out = silhouette(&rows[..held_out], &self.labels[..held_out]);
        let subtitle = format!(
            "{description} · {} dims · silhouette {} (held out {}) · {} utterances, {held_out} held out",
            rows.first().map_or(0, Vec::len),
            format_score(score),
            format_score(score_held_out),
            rows.len()
        );
        let tsne_figure = self.draw(
            &stage,
            &subtitle,
            "tsne",
            tsne(&rows).map_err(|e| e.to_string()),
        );
        let pca_figure = self.draw(
            &stage,
            &subtitle,
            "pca",
            pca(&rows).map_err(|e| e.to_string()),
        );
        StageSummary {
            model: self.model.to_string(),
            split: self.split.name.clone(),
            stage,
            description,
            dim: rows.first().map_or(0, Vec::len),
            utterances: rows.len(),
            silhouette: score,
            silhouette_held_out: score_held_out,
            tsne: tsne_figure,
            pca: pca_figure,
        }
    }

    /// Draws the map of `stage` by `method`: the figure's path relative to the report
    /// folder, or why there is none.
    fn draw(
        &self,
        stage: &str,
        subtitle: &str,
        method: &str,
        map: Result<Map2d, String>,
    ) -> Result<String, String> {
        let map = map?;
        let points: Vec<ScatterPoint> = self
            .points
            .iter()
            .zip(&map.points)
            .map(|(p, xy)| ScatterPoint {
                x: xy[0],
                y: xy[1],
                class: p.class,
                group: p.group,
                held_out: p.held_out,
            })
            .collect();
        let (x_label, y_label) = match map.explained {
            Some([a, b]) => (
                format!("PC1 ({:.0} % of variance)", 100.0 * a),
                format!("PC2 ({:.0} % of variance)", 100.0 * b),
            ),
            None => ("t-SNE 1".to_string(), "t-SNE 2".to_string()),
        };
        let (model, split) = (self.model, &self.split.name);
        let title = format!("{model} model, {stage} · {method} · split {split}");
        let stem = self
            .figures
            .join(format!("repr-{method}-{model}-{split}-{stage}"));
        let files = scatter(
            &ScatterPlot {
                title: &title,
                subtitle,
                x_label: &x_label,
                y_label: &y_label,
                class_names: &self.class_names,
                group_names: &self.speakers,
                points: &points,
            },
            &stem,
        )
        .map_err(|e| e.to_string())?;
        Ok(relative(&files, self.report_dir))
    }
}

/// The vectors of every stage of `trained` for `examples`: the encoder features a
/// single-modality head reads (as a baseline), then each stage of the head.
fn stage_rows(
    model: ModelKind,
    trained: &TrainedModel,
    examples: &[Example],
) -> anyhow::Result<Vec<StageRows>> {
    // The features a single-modality head reads, as a baseline; the fusion head reads
    // the speech model's input again, so it gets none.
    let mut stages = Vec::new();
    if model != ModelKind::Fusion {
        let text = model == ModelKind::Text;
        stages.push(StageRows {
            stage: INPUT_STAGE.into(),
            description: format!(
                "{} encoder features (mean over frames)",
                if text { "text" } else { "speech" }
            ),
            rows: examples
                .iter()
                .map(|e| match (&e.text, text) {
                    (Some(features), true) => mean_vector(features),
                    _ => mean_vector(&e.speech),
                })
                .collect(),
        });
    }
    let head_stages = trained.head().stages();
    for (stage, rows) in head_stages.iter().zip(trained.stage_vectors(examples)?) {
        stages.push(StageRows {
            stage: stage.name().into(),
            description: stage.describe().into(),
            rows,
        });
    }
    Ok(stages)
}

/// A figure's path without extension, relative to the report folder (`figures/x`).
pub fn relative(files: &PlotFiles, report_dir: &Path) -> String {
    let stem = files.svg.with_extension("");
    stem.strip_prefix(report_dir)
        .unwrap_or(&stem)
        .to_string_lossy()
        .into_owned()
}

/// `0.42`, or `n/a`.
pub fn format_score(score: Option<f64>) -> String {
    score.map_or_else(|| "n/a".into(), |s| format!("{s:.2}"))
}

/// The mean over frames (and layers) of `[T, H]` or `[L, T, H]` features.
fn mean_vector(features: &crate::features::cache::Features) -> Vec<f32> {
    let dim = features.dim();
    let rows = features.data.len().checked_div(dim).unwrap_or(0);
    let mut mean = vec![0.0f32; dim];
    for row in features.data.chunks_exact(dim.max(1)) {
        mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= rows.max(1) as f32);
    mean
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::cache::Features;

    #[test]
    fn the_input_vector_is_the_mean_over_layers_and_frames() {
        let features = Features {
            layers: vec![1, 2],
            shape: vec![2, 2, 2],
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        };
        assert_eq!(mean_vector(&features), vec![4.0, 5.0]);
    }

    #[test]
    fn scores_format_for_captions() {
        assert_eq!(format_score(Some(0.4249)), "0.42");
        assert_eq!(format_score(None), "n/a");
    }
}
