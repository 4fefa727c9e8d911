//! A split's test part classified through an exported bundle (`emotion_core::Pipeline`, tract),
//! from the WAV files, as the board would: the front-end and the encoder run again, the
//! transcript's text features come from the bundle's keyword table.

use std::time::Instant;

use anyhow::Context as _;
use emotion_core::Pipeline;
use emotion_core::pipeline::TextInput;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::manifest::CorpusManifest;
use crate::evaluate::summary::{Prediction, SplitEvaluation};
use crate::train::heads::{CLASSES, ModelKind};

/// One head's outputs on the utterances of a split part, in order.
#[derive(Debug, Clone)]
pub struct BundlePredictions {
    /// The head.
    pub model: ModelKind,
    /// Logits per utterance.
    pub logits: Vec<[f32; CLASSES]>,
    /// The predictions, as the host's evaluation writes them.
    pub evaluation: SplitEvaluation,
}

/// Classifies `ids` (utterances of `manifest`) with every head in `models`, the
/// encoder run once per utterance. `split` names the evaluation; a progress bar is
/// drawn when `progress`.
pub fn predict_through_bundle(
    pipeline: &Pipeline,
    manifest: &CorpusManifest,
    ids: &[String],
    split: &str,
    models: &[ModelKind],
    progress: bool,
) -> anyhow::Result<Vec<BundlePredictions>> {
    let mut out: Vec<BundlePredictions> = models
        .iter()
        .map(|&model| BundlePredictions {
            model,
            logits: Vec::with_capacity(ids.len()),
            evaluation: SplitEvaluation {
                model: model.to_string(),
                split: split.to_string(),
                predictions: Vec::with_capacity(ids.len()),
            },
        })
        .collect();
    let bar = if progress {
        let bar = ProgressBar::new(ids.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} {bar:30} {pos}/{len} utterances {elapsed_precise} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(format!("{} {split}", pipeline.variant()));
        bar
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    for id in ids {
        let entry = manifest
            .get(id)
            .with_context(|| format!("{id} is in the split but not in the manifest"))?;
        let bytes = std::fs::read(&entry.path)
            .with_context(|| format!("cannot read {}", entry.path.display()))?;
        let name = entry.path.display().to_string();
        let text = TextInput::Transcript(&entry.transcript);
        let results = pipeline
            .classify_wav_each(&bytes, &name, text, models)
            .with_context(|| format!("cannot classify {id} through the bundle"))?;
        for (slot, result) in out.iter_mut().zip(results) {
            slot.logits.push(result.logits);
            slot.evaluation.predictions.push(Prediction {
                id: id.clone(),
                path: entry.path.clone(),
                transcript: entry.transcript.clone(),
                truth: entry.emotion,
                probabilities: result.probabilities,
            });
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if progress {
        eprintln!(
            "{} {split}: {} utterances in {:.1} s",
            pipeline.variant(),
            ids.len(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(out)
}
