//! What an encoder graph costs per second of audio: `host-trainer encoders cost` times
//! imported speech graphs with tract, the way the board runs them
//! ([`emotion_core::encoder::EncoderGraph`], one input at a time, a chosen number of threads),
//! on a synthetic voiced clip of each length asked for, and reports the median.
//!
//! The int8 variant is the one a bundle ships ([`crate::export::bundle`]): the transformer's
//! weight products int8 with activation scales calibrated on (here: synthetic) speech,
//! the conv feature encoder ([`crate::export::variants::SPEECH_FLOAT_PREFIX`]) and the positional
//! conv float. Weights do not change the speed, so random-weight checkpoints
//! ([`super::random`]) measure real architectures.

use std::time::Instant;

use emotion_core::encoder::{EncoderError, EncoderGraph, EncoderInput};
use prost::Message;
use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::prelude::{Tensor, tract_ndarray};

use onnx_build::calibration::{CalibrationError, calibrate};
use onnx_build::quantize::{QuantizeError, QuantizeOptions, quantize_dynamic};

/// Sample rate of the encoders' input.
const RATE: f64 = 16_000.0;

/// Why a graph could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The graph does not load or run.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// The int8 variant could not be made.
    #[error("int8 variant: {0}")]
    Quantize(#[from] QuantizeError),
    /// The int8 variant could not be calibrated.
    #[error("int8 variant: {0}")]
    Calibrate(#[from] CalibrationError),
    /// The bytes are not an ONNX model.
    #[error("not an ONNX model: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The options cannot give a figure.
    #[error("{0}")]
    Options(String),
}

/// How to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct CostOptions {
    /// Clip lengths, seconds (each ≥ 0.025).
    pub seconds: Vec<f64>,
    /// tract threads.
    pub threads: usize,
    /// Untimed runs before the timed ones, per length.
    pub warmup: usize,
    /// Timed runs per length; the median is reported.
    pub repeats: usize,
}

impl Default for CostOptions {
    fn default() -> Self {
        Self {
            seconds: vec![2.0, 4.0],
            threads: 1,
            warmup: 2,
            repeats: 7,
        }
    }
}

/// What a graph holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphFacts {
    /// `emotion.encoder` (`hubert`, `wavlm`, …).
    pub encoder: String,
    /// `emotion.hidden_states`.
    pub hidden_states: String,
    /// `emotion.layers_in_graph`.
    pub layers_in_graph: String,
    /// Values in the graph's float and int8 initializers (weights; i64 shape constants
    /// not counted).
    pub parameters: usize,
    /// Size of the ONNX file, bytes.
    pub onnx_bytes: usize,
}

/// One measured length of one variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostRow {
    /// `fp32` or `int8`.
    pub variant: String,
    /// tract threads.
    pub threads: usize,
    /// Clip length, seconds.
    pub audio_seconds: f64,
    /// Median of the timed runs, ms.
    pub median_ms: f64,
    /// `median_ms / audio_seconds`.
    pub ms_per_audio_second: f64,
    /// Every timed run, ms.
    pub runs_ms: Vec<f64>,
    /// Multiply-accumulates of one run counted from the optimised graph, per second
    /// of audio, in G (tract's own cost of each node).
    pub gmac_per_audio_second: Option<f64>,
}

/// The facts of a graph: its metadata, weights and size.
pub fn graph_facts(onnx: &[u8]) -> Result<GraphFacts, CostError> {
    let model = pb::ModelProto::decode(onnx)?;
    let meta = |key: &str| {
        model
            .metadata_props
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.clone())
            .unwrap_or_default()
    };
    let parameters = model
        .graph
        .as_ref()
        .map(|g| {
            g.initializer
                .iter()
                .filter(|t| t.data_type != DataType::Int64 as i32)
                .map(|t| t.dims.iter().product::<i64>().max(0) as usize)
                .sum()
        })
        .unwrap_or(0);
    Ok(GraphFacts {
        encoder: meta("emotion.encoder"),
        hidden_states: meta("emotion.hidden_states"),
        layers_in_graph: meta("emotion.layers_in_graph"),
        parameters,
        onnx_bytes: onnx.len(),
    })
}

/// A voiced, speech-like clip of `seconds` (a pitch glide with harmonics under a
/// syllable-rate envelope, a little noise), normalised as the front-end normalises.
pub fn synthetic_speech(seconds: f64, pitch: f32) -> Vec<f32> {
    let n = (seconds * RATE).round() as usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut samples: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let phase = 2.0 * std::f32::consts::PI * (pitch + 20.0 * (1.3 * t).sin()) * t;
            let envelope = 0.55 + 0.45 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            envelope
                * (1..6)
                    .map(|k| (k as f32 * phase).sin() / k as f32)
                    .sum::<f32>()
                + 0.02 * noise
        })
        .collect();
    emotion_core::frontend::normalize(&mut samples);
    samples
}

/// The int8 variant of a speech encoder graph as a bundle ships it: transformer products
/// int8, activation scales calibrated on three synthetic clips, the conv feature encoder
/// float.
pub fn int8_variant(onnx: &[u8]) -> Result<Vec<u8>, CostError> {
    let options = QuantizeOptions {
        keep_float: vec![crate::export::variants::SPEECH_FLOAT_PREFIX.to_string()],
        ..QuantizeOptions::default()
    };
    let inputs: Vec<Tensor> = [(2.0, 120.0), (1.5, 190.0), (2.5, 240.0)]
        .into_iter()
        .map(|(seconds, pitch)| {
            let clip = synthetic_speech(seconds, pitch);
            tract_ndarray::Array2::from_shape_vec((1, clip.len()), clip)
                .map(Tensor::from)
                .map_err(|e| CostError::Options(format!("calibration clip: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let ranges = calibrate(onnx, &options, &inputs)?;
    let options = QuantizeOptions { ranges, ..options };
    Ok(quantize_dynamic(onnx, &options)?.0)
}

/// Times the speech graph `onnx` (named `name` in errors) on a clip of each length in
/// `options`, as `variant`.
pub fn measure(
    onnx: &[u8],
    name: &str,
    variant: &str,
    options: &CostOptions,
) -> Result<Vec<CostRow>, CostError> {
    if options.repeats == 0 {
        return Err(CostError::Options("repeats must be at least 1".into()));
    }
    if options.threads == 0 {
        return Err(CostError::Options("threads must be at least 1".into()));
    }
    let graph = EncoderGraph::from_bytes_with_threads(onnx, name, options.threads)?;
    let mut rows = Vec::new();
    for &seconds in &options.seconds {
        if !(seconds.is_finite() && seconds >= 0.025) {
            return Err(CostError::Options(format!(
                "{seconds} s: clips must be at least 0.025 s long"
            )));
        }
        let clip = synthetic_speech(seconds, 150.0);
        for _ in 0..options.warmup {
            std::hint::black_box(graph.run(EncoderInput::Audio(&clip))?);
        }
        let mut runs_ms = Vec::with_capacity(options.repeats);
        for _ in 0..options.repeats {
            let started = Instant::now();
            let states = graph.run(EncoderInput::Audio(&clip))?;
            runs_ms.push(started.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(states);
        }
        let mut sorted = runs_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let median_ms = sorted[sorted.len() / 2];
        let audio_seconds = clip.len() as f64 / RATE;
        rows.push(CostRow {
            variant: variant.to_string(),
            threads: options.threads,
            audio_seconds,
            median_ms,
            ms_per_audio_second: median_ms / audio_seconds,
            runs_ms,
            gmac_per_audio_second: graph
                .multiply_accumulates(clip.len())
                .map(|macs| macs / 1e9 / audio_seconds),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::random::{Preset, RandomCheckpoint};
    use crate::encoders::{EncoderKind, import};

    #[test]
    fn a_tiny_wavlm_is_measured_in_both_variants() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        RandomCheckpoint::new(EncoderKind::WavLm, Preset::Tiny)
            .with_layers(3)
            .write(dir.path())?;
        let encoder = import(dir.path(), Some(1..=2))?;
        let facts = graph_facts(&encoder.model_bytes)?;
        assert_eq!(facts.encoder, "wavlm");
        assert_eq!(facts.hidden_states, "1,2");
        assert!(facts.parameters > 0);
        let options = CostOptions {
            seconds: vec![0.5],
            threads: 1,
            warmup: 0,
            repeats: 3,
        };
        let rows = measure(&encoder.model_bytes, "tiny", "fp32", &options)?;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].runs_ms.len(), 3);
        assert!(rows[0].median_ms > 0.0);
        assert!((rows[0].audio_seconds - 0.5).abs() < 1e-9);
        let int8 = int8_variant(&encoder.model_bytes)?;
        let rows = measure(&int8, "tiny int8", "int8", &options)?;
        assert_eq!(rows[0].variant, "int8");
        assert!(
            measure(
                &int8,
                "x",
                "int8",
                &CostOptions {
                    repeats: 0,
                    ..options
                }
            )
            .is_err()
        );
        Ok(())
    }
}
