//! Each variant measured through the staged bundle, as the board runs it: predictions on
//! the test part, latency, agreement with fp32 and with the burn models.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::bail;
use emotion_core::Pipeline;
use emotion_core::PipelineOptions;
use emotion_core::bundle::{Bundle, BundleManifest, ModelMetrics, VariantReport};
use emotion_core::pipeline::TextInput;

use super::request::ExportRequest;
use super::request::Precision;
use super::variants::variant_bytes;
use crate::data::manifest::CorpusManifest;
use crate::evaluate::through_bundle::{BundlePredictions, predict_through_bundle};
use crate::train::dataset::SplitData;
use crate::train::heads::ModelKind;
use crate::train::trainer::TrainedModel;
use emotion_core::scores::{argmax, max_abs_difference, nan_max};

/// How the fp32 bundle compares with the burn models on the test part.
#[derive(Debug, Clone, PartialEq)]
pub struct Parity {
    /// The model.
    pub model: ModelKind,
    /// Test utterances.
    pub utterances: usize,
    /// Utterances predicted the same.
    pub same_predictions: usize,
    /// Largest absolute logit difference.
    pub max_logit_difference: f32,
}

/// One variant over the test part, from the WAV files.
pub(super) struct VariantMeasurement {
    /// Each head's predictions, in the order of the models measured.
    pub predictions: Vec<BundlePredictions>,
    /// Median ms of the whole pipeline on 2 s of audio.
    pub latency_ms_2s: f64,
}

/// Every variant of the staged bundle over the test part (one thread, as on the board).
pub(super) fn measure_variants(
    request: &ExportRequest<'_>,
    staged: &Bundle,
    precisions: &[Precision],
    models: &[ModelKind],
) -> anyhow::Result<BTreeMap<Precision, VariantMeasurement>> {
    let ids = &request.split.test;
    let default_model = if models.contains(&ModelKind::Fusion) {
        ModelKind::Fusion
    } else {
        ModelKind::Speech
    };
    let mut measured = BTreeMap::new();
    for &precision in precisions {
        let options = PipelineOptions {
            variant: Some(precision.name().to_string()),
            threads: 1,
        };
        let pipeline = Pipeline::load(staged.dir(), &options)?;
        let predictions = predict_through_bundle(
            &pipeline,
            request.manifest,
            ids,
            &request.split.name,
            models,
            request.progress,
        )?;
        let latency_ms_2s = latency_ms_2s(&pipeline, request.manifest, ids, default_model)?;
        measured.insert(
            precision,
            VariantMeasurement {
                predictions,
                latency_ms_2s,
            },
        );
    }
    Ok(measured)
}

/// One quantisation-report row per variant and model: size, latency, agreement with
/// fp32, accuracy.
pub(super) fn variant_rows(
    manifest: &BundleManifest,
    staged: &Bundle,
    measured: &BTreeMap<Precision, VariantMeasurement>,
) -> anyhow::Result<Vec<VariantReport>> {
    let fp32 = &measured[&Precision::Fp32].predictions;
    let mut rows = Vec::new();
    for (&precision, measurement) in measured {
        let variant = manifest.variant(Some(precision.name()))?;
        let bytes = variant_bytes(staged, variant);
        for (p, reference) in measurement.predictions.iter().zip(fp32) {
            let report = p.evaluation.report();
            let same = p
                .evaluation
                .predictions
                .iter()
                .zip(&reference.evaluation.predictions)
                .filter(|(a, b)| a.predicted() == b.predicted())
                .count();
            rows.push(VariantReport {
                name: precision.name().into(),
                model: p.model,
                bytes,
                latency_ms_2s: measurement.latency_ms_2s,
                agreement_with_fp32: same as f64 / p.logits.len().max(1) as f64,
                accuracy: report.accuracy,
                macro_f1: report.macro_f1(),
            });
        }
    }
    Ok(rows)
}

/// The fp32 bundle's accuracy and macro-F1 per model, for the manifest's provenance.
pub(super) fn fp32_metrics(fp32: &[BundlePredictions]) -> Vec<ModelMetrics> {
    fp32.iter()
        .map(|p| {
            let report = p.evaluation.report();
            ModelMetrics {
                model: p.model,
                utterances: p.logits.len(),
                accuracy: report.accuracy,
                macro_f1: report.macro_f1(),
            }
        })
        .collect()
}

/// The fp32 bundle against the burn models on the test part.
pub(super) fn burn_parity(
    data: &SplitData,
    trained: &[TrainedModel],
    fp32: &[BundlePredictions],
) -> anyhow::Result<Vec<Parity>> {
    let mut out = Vec::new();
    for (model, bundle) in trained.iter().zip(fp32) {
        let burn = model.logits(&data.test)?;
        let (same_predictions, max_logit_difference) = agreement(&burn, &bundle.logits);
        let parity = Parity {
            model: model.kind(),
            utterances: burn.len(),
            same_predictions,
            max_logit_difference,
        };
        if burn.len() != bundle.logits.len() {
            bail!(
                "{} burn predictions but {} through the bundle",
                burn.len(),
                bundle.logits.len()
            );
        }
        out.push(parity);
    }
    Ok(out)
}

/// How many rows of two sets of logits predict the same class, and the largest absolute
/// difference between them.
pub(super) fn agreement<A: AsRef<[f32]>, B: AsRef<[f32]>>(a: &[A], b: &[B]) -> (usize, f32) {
    let mut same = 0;
    let mut largest = 0f32;
    for (a, b) in a.iter().zip(b) {
        let (a, b) = (a.as_ref(), b.as_ref());
        // A NaN output agrees with nothing, and its difference stays NaN (reported, and
        // failing every tolerance), never 0.
        let nan = a.iter().chain(b).any(|v| v.is_nan());
        same += usize::from(!nan && argmax(a).0 == argmax(b).0);
        largest = nan_max(largest, max_abs_difference(a, b));
    }
    (same, largest)
}

/// Median time (ms) of the whole pipeline on 2 s of audio: the first test utterance
/// repeated to 2 s, its keyword as text.
fn latency_ms_2s(
    pipeline: &Pipeline,
    manifest: &CorpusManifest,
    ids: &[String],
    model: ModelKind,
) -> anyhow::Result<f64> {
    let Some(entry) = ids.first().and_then(|id| manifest.get(id)) else {
        bail!("the split has no test utterances");
    };
    let clip = pipeline.frontend().process_file(&entry.path)?;
    let rate = pipeline.frontend().config().target_rate as usize;
    let samples: Vec<f32> = clip.iter().copied().cycle().take(2 * rate).collect();
    let text = TextInput::Keyword(&entry.word);
    pipeline.classify(&samples, text, Some(model))?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        pipeline.classify(&samples, text, Some(model))?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_logits_agree_with_nothing_and_their_difference_is_nan() {
        let good = vec![vec![0.1f32, 2.0, -1.0], vec![1.0, 0.0, 0.0]];
        assert_eq!(agreement(&good, &good), (2, 0.0));
        let broken = vec![vec![f32::NAN; 3], vec![f32::NAN; 3]];
        let (same, largest) = agreement(&good, &broken);
        assert_eq!(
            same, 0,
            "argmax of NaN is index 0: it must not count as agreeing"
        );
        assert!(largest.is_nan(), "{largest}");
        assert!(!(largest <= 1e-4), "a parity tolerance fails on it");
        let half = vec![vec![0.1f32, 2.0, -1.0], vec![f32::NAN, 0.0, 0.0]];
        let (same, largest) = agreement(&good, &half);
        assert_eq!(same, 1);
        assert!(largest.is_nan());
    }
}
