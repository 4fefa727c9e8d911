//! The layer probe: how much emotion each encoder layer holds on its own.
//!
//! Every layer of the speech encoder (HuBERT 1–12) and of the text encoder (BERT) is
//! averaged over time, and a linear classifier (multinomial logistic regression on
//! standardised features) is trained on that one layer's vectors from a split's training
//! and validation parts, then scored on its test part. The study picked HuBERT layers
//! 5–9 by preference; this measures where emotion is. The text encoder is expected at
//! chance on TESS: every word is spoken in all seven emotions.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use emotion_core::Emotion;
use emotion_core::features::LayerCombination;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::manifest::{CorpusEntry, CorpusManifest};
use crate::data::splits::Split;
use crate::encoders::{HfConfig, ImportError, import};
use crate::evaluate::metrics::ClassificationReport;
use crate::features::extract::{ExtractError, ExtractSettings, Extractor};
use emotion_core::fs::write_atomically;

/// Version of `probe.json`.
pub const PROBE_FORMAT: u32 = 1;

/// How each layer's classifier is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Full-batch Adam steps.
    pub steps: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// L2 penalty on the weights.
    pub l2: f64,
    /// Worker threads for the encoders and the probes.
    pub threads: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            learning_rate: 0.05,
            l2: 1e-3,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// One layer's probe result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerScore {
    /// HF layer number (1 = first transformer layer).
    pub layer: usize,
    /// Test accuracy in [0, 1].
    pub accuracy: f64,
    /// Test macro-F1 in [0, 1].
    pub macro_f1: f64,
}

/// Every layer of one encoder, probed on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderProbe {
    /// `speech` or `text`.
    pub modality: String,
    /// The checkpoint (`folder@sha256:…`).
    pub source: String,
    /// The split.
    pub split: String,
    /// Utterances the probes were trained on (training and validation parts).
    pub train: usize,
    /// Utterances they were scored on.
    pub test: usize,
    /// One per layer, in layer order.
    pub layers: Vec<LayerScore>,
}

impl EncoderProbe {
    /// The layer with the best test accuracy (the lowest on a tie).
    pub fn best(&self) -> Option<&LayerScore> {
        self.layers
            .iter()
            .fold(None, |best: Option<&LayerScore>, l| match best {
                Some(b) if b.accuracy >= l.accuracy => Some(b),
                _ => Some(l),
            })
    }
}

/// `probe.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeFile {
    /// [`PROBE_FORMAT`].
    pub format: u32,
    /// How the probes were trained.
    pub config: ProbeConfig,
    /// Accuracy of guessing: 1/7.
    pub chance: f64,
    /// One per (encoder, split).
    pub probes: Vec<EncoderProbe>,
}

impl ProbeFile {
    /// Reads `probe.json`.
    pub fn read(path: &Path) -> Result<Self, ProbeError> {
        let bytes = std::fs::read(path).map_err(|source| ProbeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ProbeError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Writes it atomically.
    pub fn write(&self, path: &Path) -> Result<(), ProbeError> {
        let json = serde_json::to_string_pretty(self).map_err(|e| ProbeError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| ProbeError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        write_atomically(path, json.as_bytes()).map_err(|source| ProbeError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A probe that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A checkpoint does not import.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The all-layer graphs do not load.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `probe.json` does not parse.
    #[error("{path} is not a probe file: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint's config does not say how many layers it has.
    #[error("{0}: config.json has no num_hidden_layers")]
    NoLayerCount(PathBuf),
    /// An utterance fails in the front-end or the encoder.
    #[error("{id}: {detail}")]
    Utterance {
        /// The utterance.
        id: String,
        /// What failed.
        detail: String,
    },
    /// An id of the split is not in the manifest.
    #[error("{0} is in the split but not in the manifest")]
    NotInManifest(String),
    /// A split part is empty.
    #[error("split {split} has no {part} utterances to probe with")]
    EmptyPart {
        /// The split.
        split: String,
        /// `train` or `test`.
        part: &'static str,
    },
}

/// What to probe.
pub struct ProbeRequest<'a> {
    /// The corpus.
    pub manifest: &'a CorpusManifest,
    /// The splits to probe on.
    pub splits: Vec<&'a Split>,
    /// The speech checkpoint folder (HF layout).
    pub speech_checkpoint: &'a Path,
    /// The text checkpoint folder and its `tokenizer.json`, if the text encoder is probed.
    pub text_checkpoint: Option<(&'a Path, &'a Path)>,
    /// Where the all-layer graphs are written.
    pub work_dir: &'a Path,
    /// Training settings.
    pub config: ProbeConfig,
    /// Show progress bars.
    pub progress: bool,
}

/// Imports every layer of the encoders, averages each utterance's layers over time and
/// probes each layer on each split.
pub fn run_probe(request: &ProbeRequest) -> Result<ProbeFile, ProbeError> {
    let speech_graph = request.work_dir.join("speech-all-layers.onnx");
    let speech_source = import_all_layers(request.speech_checkpoint, &speech_graph)?;
    let text = match request.text_checkpoint {
        Some((checkpoint, tokenizer)) => {
            let graph = request.work_dir.join("text-all-layers.onnx");
            let source = import_all_layers(checkpoint, &graph)?;
            Some((graph, tokenizer, source))
        }
        None => None,
    };
    let settings = ExtractSettings {
        combination: LayerCombination::Separate,
        ..ExtractSettings::default()
    };
    let extractor = Extractor::new(
        &speech_graph,
        text.as_ref().map(|(g, t, _)| (g.as_path(), *t)),
        settings,
    )?;

    // Every utterance any split names, once.
    let mut ids: Vec<&str> = request
        .splits
        .iter()
        .flat_map(|s| s.parts().into_iter().flat_map(|(_, ids)| ids.iter()))
        .map(String::as_str)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let entries: Vec<&CorpusEntry> = ids
        .iter()
        .map(|id| {
            request
                .manifest
                .get(id)
                .ok_or_else(|| ProbeError::NotInManifest(id.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let vectors = layer_means(&extractor, &entries, request)?;

    let mut probes = Vec::new();
    for split in &request.splits {
        let mut modalities = vec![("speech", speech_source.clone(), 0)];
        if let Some((_, _, source)) = &text {
            modalities.push(("text", source.clone(), 1));
        }
        for (modality, source, which) in modalities {
            let pick = |part: &[String]| -> Vec<(&[Vec<f32>], usize)> {
                part.iter()
                    .filter_map(|id| {
                        let i = ids.binary_search(&id.as_str()).ok()?;
                        let layers = vectors[i][which].as_slice();
                        Some((layers, entries[i].emotion.index()))
                    })
                    .collect()
            };
            let mut train = pick(&split.train);
            train.extend(pick(&split.val));
            let test = pick(&split.test);
            for (part, rows) in [("train", &train), ("test", &test)] {
                if rows.is_empty() {
                    return Err(ProbeError::EmptyPart {
                        split: split.name.clone(),
                        part,
                    });
                }
            }
            let layer_count = train[0].0.len();
            let layers = probe_layers(&train, &test, layer_count, &request.config);
            probes.push(EncoderProbe {
                modality: modality.into(),
                source,
                split: split.name.clone(),
                train: train.len(),
                test: test.len(),
                layers,
            });
        }
    }
    Ok(ProbeFile {
        format: PROBE_FORMAT,
        config: request.config.clone(),
        chance: 1.0 / Emotion::COUNT as f64,
        probes,
    })
}

/// Imports hidden states 1..=N of a checkpoint into `graph`; returns its source name.
fn import_all_layers(checkpoint: &Path, graph: &Path) -> Result<String, ProbeError> {
    let layers = HfConfig::read(checkpoint)?
        .num_hidden_layers
        .ok_or_else(|| ProbeError::NoLayerCount(checkpoint.to_path_buf()))?;
    let imported = import(checkpoint, Some(1..=layers))?;
    imported.write(graph)?;
    Ok(imported.source)
}

/// One utterance's layers: `[modality][layer][H]`.
type UtteranceLayers = Vec<Vec<Vec<f32>>>;

/// For each entry: `[speech layers][H]` and, with a text encoder, `[text layers][H]`, each
/// layer averaged over frames (tokens). Runs on `config.threads` workers.
fn layer_means(
    extractor: &Extractor,
    entries: &[&CorpusEntry],
    request: &ProbeRequest,
) -> Result<Vec<UtteranceLayers>, ProbeError> {
    let bar = if request.progress {
        let bar = ProgressBar::new(entries.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "probe: every layer {bar:30} {pos}/{len} utterances {elapsed} (eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<UtteranceLayers, ProbeError>>>> =
        Mutex::new((0..entries.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..request.config.threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let result = utterance_layers(extractor, entry);
                    let failed = result.is_err();
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                    bar.inc(1);
                    if failed {
                        // Stop the others early: one failure fails the probe.
                        next.store(entries.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    bar.finish_and_clear();
    let slots = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::with_capacity(entries.len());
    for (slot, entry) in slots.into_iter().zip(entries) {
        match slot {
            Some(result) => out.push(result?),
            None => {
                return Err(ProbeError::Utterance {
                    id: entry.id.clone(),
                    detail: "not reached: another utterance failed first".into(),
                });
            }
        }
    }
    Ok(out)
}

fn utterance_layers(
    extractor: &Extractor,
    entry: &CorpusEntry,
) -> Result<UtteranceLayers, ProbeError> {
    let fail = |detail: String| ProbeError::Utterance {
        id: entry.id.clone(),
        detail,
    };
    let bytes = std::fs::read(&entry.path)
        .map_err(|e| fail(format!("cannot read {}: {e}", entry.path.display())))?;
    let speech = extractor
        .speech_features(&bytes, &entry.path.display().to_string())
        .map_err(fail)?;
    let mut out = vec![mean_over_frames(&speech.shape, &speech.data)];
    if let Some(text) = extractor.text_features(&entry.transcript) {
        let text = text.map_err(fail)?;
        out.push(mean_over_frames(&text.shape, &text.data));
    }
    Ok(out)
}

/// `[L, T, H]` values → `[L][H]`, each the mean over `T`.
fn mean_over_frames(shape: &[usize], data: &[f32]) -> Vec<Vec<f32>> {
    let [layers, frames, dim] = match *shape {
        [l, t, h] => [l, t, h],
        [t, h] => [1, t, h],
        _ => return Vec::new(),
    };
    (0..layers)
        .map(|l| {
            let mut mean = vec![0.0f32; dim];
            for t in 0..frames {
                let row = &data[(l * frames + t) * dim..(l * frames + t + 1) * dim];
                mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
            }
            mean.iter_mut().for_each(|m| *m /= frames.max(1) as f32);
            mean
        })
        .collect()
}

/// Trains and scores one probe per layer, on `config.threads` workers.
fn probe_layers(
    train: &[(&[Vec<f32>], usize)],
    test: &[(&[Vec<f32>], usize)],
    layer_count: usize,
    config: &ProbeConfig,
) -> Vec<LayerScore> {
    let next = AtomicUsize::new(0);
    let scores = Mutex::new(Vec::with_capacity(layer_count));
    std::thread::scope(|scope| {
        for _ in 0..config.threads.clamp(1, layer_count.max(1)) {
            scope.spawn(|| {
                loop {
                    let layer = next.fetch_add(1, Ordering::Relaxed);
                    if layer >= layer_count {
                        break;
                    }
                    let (train_x, train_y) = layer_rows(train, layer);
                    let (test_x, test_y) = layer_rows(test, layer);
                    let probe = LinearProbe::fit(&train_x, &train_y, Emotion::COUNT, config);
                    let predicted: Vec<usize> = test_x.iter().map(|x| probe.predict(x)).collect();
                    let report = ClassificationReport::from_predictions(&test_y, &predicted);
                    let score = LayerScore {
                        layer: layer + 1,
                        accuracy: report.accuracy,
                        macro_f1: report.macro_f1(),
                    };
                    if let Ok(mut scores) = scores.lock() {
                        scores.push(score);
                    }
                }
            });
        }
    });
    let mut scores = scores.into_inner().unwrap_or_else(|e| e.into_inner());
    scores.sort_by_key(|s| s.layer);
    scores
}

/// One layer's vectors and the labels of `part`.
fn layer_rows<'a>(part: &[(&'a [Vec<f32>], usize)], layer: usize) -> (Vec<&'a [f32]>, Vec<usize>) {
    part.iter()
        .map(|(layers, label)| (layers[layer].as_slice(), *label))
        .unzip()
}

/// Multinomial logistic regression on standardised inputs, trained full-batch with Adam.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// `[classes][dim]`.
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
}

impl LinearProbe {
    /// Fits `classes` outputs to `(x, y)`; deterministic (weights start at zero).
    pub fn fit(x: &[&[f32]], y: &[usize], classes: usize, config: &ProbeConfig) -> Self {
        let dim = x.first().map_or(0, |r| r.len());
        let n = x.len().max(1) as f32;
        let mean: Vec<f32> = (0..dim)
            .map(|d| x.iter().map(|r| r[d]).sum::<f32>() / n)
            .collect();
        let scale: Vec<f32> = (0..dim)
            .map(|d| {
                let var = x.iter().map(|r| (r[d] - mean[d]).powi(2)).sum::<f32>() / n;
                if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 }
            })
            .collect();
        let mut probe = Self {
            mean,
            scale,
            weights: vec![vec![0.0; dim]; classes],
            bias: vec![0.0; classes],
        };
        let inputs: Vec<Vec<f64>> = x.iter().map(|r| probe.standardise(r)).collect();
        // Adam over (weights, bias) as one flat vector: classes × (dim + 1).
        let width = dim + 1;
        let mut m = vec![0.0f64; classes * width];
        let mut v = vec![0.0f64; classes * width];
        let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8);
        for step in 1..=config.steps {
            let mut grad = vec![0.0f64; classes * width];
            for (input, &label) in inputs.iter().zip(y) {
                let p = probe.probabilities(input);
                for c in 0..classes {
                    let delta = (p[c] - f64::from(u8::from(c == label))) / inputs.len() as f64;
                    let row = &mut grad[c * width..(c + 1) * width];
                    row.iter_mut().zip(input).for_each(|(g, x)| *g += delta * x);
                    row[dim] += delta;
                }
            }
            for c in 0..classes {
                for d in 0..dim {
                    grad[c * width + d] += config.l2 * probe.weights[c][d];
                }
            }
            let lr = config.learning_rate * (1.0 - beta2.powi(step as i32)).sqrt()
                / (1.0 - beta1.powi(step as i32));
            for (k, g) in grad.iter().enumerate() {
                m[k] = beta1 * m[k] + (1.0 - beta1) * g;
                v[k] = beta2 * v[k] + (1.0 - beta2) * g * g;
                let update = lr * m[k] / (v[k].sqrt() + eps);
                let (c, d) = (k / width, k % width);
                if d == dim {
                    probe.bias[c] -= update;
                } else {
                    probe.weights[c][d] -= update;
                }
            }
        }
        probe
    }

    fn standardise(&self, x: &[f32]) -> Vec<f64> {
        x.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .map(|((x, m), s)| f64::from((x - m) * s))
            .collect()
    }

    fn probabilities(&self, input: &[f64]) -> Vec<f64> {
        let logits: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| b + w.iter().zip(input).map(|(w, x)| w * x).sum::<f64>())
            .collect();
        emotion_core::scores::softmax_f64(&logits)
    }

    /// The most probable class of `x` (the lowest index on a tie).
    pub fn predict(&self, x: &[f32]) -> usize {
        let p = self.probabilities(&self.standardise(x));
        let mut best = 0;
        for (c, &value) in p.iter().enumerate() {
            if value > p[best] {
                best = c;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProbeConfig {
        ProbeConfig {
            threads: 2,
            ..ProbeConfig::default()
        }
    }

    #[test]
    fn a_linear_probe_learns_a_linearly_separable_problem() {
        // Class = which of three coordinates is largest, plus a useless constant column.
        let rows: Vec<Vec<f32>> = (0..60)
            .map(|i| {
                let c = i % 3;
                let mut r = vec![
                    0.1 * (i % 7) as f32,
                    0.05 * (i % 5) as f32,
                    0.02 * (i % 11) as f32,
                    3.0,
                ];
                r[c] += 2.0;
                r
            })
            .collect();
        let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let x: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let probe = LinearProbe::fit(&x, &labels, 3, &config());
        let right = x
            .iter()
            .zip(&labels)
            .filter(|(x, y)| probe.predict(x) == **y)
            .count();
        assert_eq!(right, 60);
    }

    #[test]
    fn layers_are_probed_in_order_and_scored_in_range() {
        // Layer 1 carries the label, layer 2 is noise.
        let make = |i: usize| -> Vec<Vec<f32>> {
            let label = i % 7;
            let mut informative = vec![0.0f32; 7];
            informative[label] = 1.0;
            let noise = vec![((i * 37) % 11) as f32, ((i * 13) % 5) as f32];
            vec![informative, noise]
        };
        let all: Vec<(Vec<Vec<f32>>, usize)> = (0..70).map(|i| (make(i), i % 7)).collect();
        let as_refs = |range: std::ops::Range<usize>| -> Vec<(&[Vec<f32>], usize)> {
            all[range].iter().map(|(l, y)| (l.as_slice(), *y)).collect()
        };
        let scores = probe_layers(&as_refs(0..49), &as_refs(49..70), 2, &config());
        assert_eq!(scores.iter().map(|s| s.layer).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(scores[0].accuracy, 1.0);
        assert!(scores[1].accuracy < 0.6, "{:?}", scores[1]);
        for s in &scores {
            assert!((0.0..=1.0).contains(&s.accuracy) && (0.0..=1.0).contains(&s.macro_f1));
        }
    }

    #[test]
    fn means_over_frames_per_layer() {
        // 2 layers, 2 frames, 3 dims.
        let data = [1.0, 2.0, 3.0, 3.0, 4.0, 5.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0];
        assert_eq!(
            mean_over_frames(&[2, 2, 3], &data),
            vec![vec![2.0, 3.0, 4.0], vec![1.0, 1.0, 1.0]]
        );
    }

    #[test]
    fn the_best_layer_is_the_most_accurate_and_the_lowest_on_a_tie() {
        let probe = EncoderProbe {
            modality: "speech".into(),
            source: "x".into(),
            split: "random".into(),
            train: 1,
            test: 1,
            layers: [0.2, 0.6, 0.6, 0.4]
                .iter()
                .enumerate()
                .map(|(i, &accuracy)| LayerScore {
                    layer: i + 1,
                    accuracy,
                    macro_f1: accuracy,
                })
                .collect(),
        };
        assert_eq!(probe.best().map(|l| l.layer), Some(2));
    }
}
