//! The int8 writer (`onnx-build`) on a real encoder layout: a tiny random-weight HuBERT
//! imported the way the export imports it, quantised in both activation forms, and run by
//! tract next to its float graph.

use std::error::Error;

use emotion_core::encoder::{EncoderGraph, EncoderInput};
use host_trainer::encoders::EncoderKind;
use host_trainer::encoders::random::{Preset, RandomCheckpoint};
use host_trainer::export::variants::SPEECH_FLOAT_PREFIX;
use onnx_build::quantize::{
    ActivationQuantization, METADATA_KEY, METADATA_VALUE, QuantizeOptions, SkipReason,
    quantize_dynamic,
};
use prost::Message;
use tract_onnx::pb;

type TestResult = Result<(), Box<dyn Error>>;

/// xorshift64*: deterministic values in [-1, 1).
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn count_ops(model: &pb::ModelProto, op: &str) -> usize {
    let nodes = model
        .graph
        .as_ref()
        .map(|g| g.node.as_slice())
        .unwrap_or(&[]);
    nodes.iter().filter(|n| n.op_type == op).count()
}

/// Largest |value|; NaN anywhere makes it NaN, so every bound below fails on it.
fn max_abs(v: &[f32]) -> f64 {
    v.iter().map(|x| x.abs() as f64).fold(0.0, |m, x| {
        if x.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    })
}

/// Largest |a − b|; NaN anywhere makes it NaN.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diffs: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    max_abs(&diffs)
}

/// Default options with each activation form, keeping the conv feature encoder float as
/// the export does.
fn both_forms() -> [(ActivationQuantization, QuantizeOptions); 2] {
    [
        ActivationQuantization::SymmetricI8,
        ActivationQuantization::DynamicU8,
    ]
    .map(|form| {
        let options = QuantizeOptions {
            activations: form,
            keep_float: vec![SPEECH_FLOAT_PREFIX.to_string()],
            ..Default::default()
        };
        (form, options)
    })
}

#[test]
fn max_abs_fails_on_nan() {
    assert!(max_abs(&[1.0, f32::NAN, 2.0]).is_nan());
    assert!(!(max_abs_diff(&[f32::NAN], &[0.0]) < 1.0));
}

#[test]
fn tiny_hubert_quantised_matches_float() -> TestResult {
    let dir = tempfile::tempdir()?;
    let checkpoint = dir.path().join("hubert-tiny-random");
    RandomCheckpoint::new(EncoderKind::Hubert, Preset::Tiny)
        .with_layers(12)
        .with_seed(1)
        .write(&checkpoint)?;
    let encoder = host_trainer::encoders::import(&checkpoint, None)?;
    let float = EncoderGraph::from_bytes(&encoder.model_bytes, "float")?;

    // One second of a voiced, audio-like signal, normalised as the front-end does.
    let mut rng = Rng(3);
    let mut audio: Vec<f32> = (0..16_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let pitch = 2.0 * std::f32::consts::PI * (140.0 + 30.0 * t) * t;
            let envelope = (std::f32::consts::PI * t).sin();
            envelope * (0.6 * pitch.sin() + 0.3 * (2.0 * pitch).sin() + 0.1 * (7.0 * pitch).sin())
                + 0.02 * rng.uniform()
        })
        .collect();
    emotion_core::frontend::normalize(&mut audio);
    let reference = float.run(EncoderInput::Audio(&audio))?;

    for (form, options) in both_forms() {
        let (quantized, summary) = quantize_dynamic(&encoder.model_bytes, &options)?;
        // Per layer q, k, v, out, up, down; plus the feature projection. The 7
        // feature-encoder products are kept float, as the export keeps them.
        assert_eq!(
            summary.quantized,
            6 * encoder.layers_in_graph + 1,
            "{summary:?}"
        );
        assert_eq!(summary.skipped, 7, "{summary:?}");
        assert!(summary.skipped_nodes.iter().all(|(name, reason)| {
            name.starts_with("feature_extractor.") && *reason == SkipReason::KeptFloat
        }));
        let model = pb::ModelProto::decode(&quantized[..])?;
        assert_eq!(count_ops(&model, "MatMulInteger"), summary.quantized);
        assert_eq!(count_ops(&model, "Conv"), 1, "the positional conv");
        println!(
            "{form:?}: tiny HuBERT {} → {} bytes ({:.1} %), quantised weights {} → {} bytes",
            encoder.model_bytes.len(),
            quantized.len(),
            100.0 * quantized.len() as f64 / encoder.model_bytes.len() as f64,
            summary.weight_bytes_before,
            summary.weight_bytes_after
        );
        // The quantised weights shrink ~4× (int8 + one f32 scale per column); the file
        // less, as the float convs stay and the new nodes' names take room (≈ 1 KiB
        // per product here, nothing next to a real encoder's weights).
        assert!(summary.weight_bytes_after * 10 < summary.weight_bytes_before * 3);
        assert!(quantized.len() * 10 < encoder.model_bytes.len() * 8);

        let quant = EncoderGraph::from_bytes(&quantized, "quantised")?;
        assert_eq!(quant.metadata(METADATA_KEY), Some(METADATA_VALUE));
        assert_eq!(quant.metadata("emotion.encoder"), Some("hubert"));
        assert_eq!(quant.hidden_indices(), float.hidden_indices());
        let states = quant.run(EncoderInput::Audio(&audio))?;
        assert_eq!(states.len(), reference.len());
        for (f, q) in reference.iter().zip(&states) {
            assert_eq!((f.index, f.frames, f.dim), (q.index, q.frames, q.dim));
            let err = max_abs_diff(&f.data, &q.data);
            let relative = err / max_abs(&f.data);
            let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
            let rms_relative = norm(&mut f.data.iter().zip(&q.data).map(|(x, y)| (x - y) as f64))
                / norm(&mut f.data.iter().map(|x| *x as f64));
            println!(
                "{form:?} hidden_states.{}: {}×{}, max |error| {err:.3e}, relative to \
                 max |value| {relative:.3e}, relative RMS {rms_relative:.3e}",
                f.index, f.frames, f.dim
            );
            // Measured: max 1.3–1.8 %, RMS 0.74–0.85 %; bounds with ~3× margin.
            assert!(relative < 0.05, "hidden_states.{}: {relative}", f.index);
            assert!(
                rms_relative < 0.025,
                "hidden_states.{}: {rms_relative}",
                f.index
            );
        }
    }
    Ok(())
}
