//! Memory of loading a bundle, stage by stage: peak and resident memory (VmHWM, VmRSS
//! from /proc/self/status; Linux only) around each step. Run by hand on a base-size
//! bundle, one test per process (the peak is per process), in release:
//!
//! ```text
//! EMOTION_BUNDLE=/var/cache/emotion-edge/base/demo/bundle EMOTION_VARIANT=int8 \
//!   cargo test --release -p emotion-core --test load_memory -- --ignored --nocapture --exact NAME
//! ```
//!
//! `pipeline_stages`: `Pipeline::load` (text encoder left for later), one keyword
//! classification, the text encoder's load, one open transcript.
//! `speech_encoder_plain` / `speech_encoder_streamed` (and `text_encoder_…`): the
//! variant's graph loaded the way `Pipeline::load` did before (bytes read whole, tract's
//! `proto_model_for_read` and `model_for_proto_model`, then optimised) and the way it does
//! now (decoded as read, weights moved into tract one at a time). `EMOTION_MALLOC=fixed`
//! calls `emotion_core::memory::release_large_blocks` first. Prints figures, asserts only that
//! the loads succeed.

use std::path::PathBuf;
use std::time::Instant;

use emotion_core::bundle::Bundle;
use emotion_core::encoder::{EncoderGraph, EncoderInput};
use emotion_core::{Pipeline, PipelineOptions, TextInput};
use tract_onnx::prelude::*;

fn status_mb(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key}"));
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

/// Resets the peak to the current resident size.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
}

fn report(stage: &str, start: Instant) {
    println!(
        "{stage:<40} peak {:>7.1} MB  resident after {:>7.1} MB  {:>7.0} ms",
        status_mb("VmHWM:"),
        status_mb("VmRSS:"),
        start.elapsed().as_secs_f64() * 1e3
    );
    reset_peak();
}

fn bundle() -> (PathBuf, String) {
    let dir = std::env::var_os("EMOTION_BUNDLE")
        .map(PathBuf::from)
        .expect("set EMOTION_BUNDLE to a bundle directory");
    let variant = std::env::var("EMOTION_VARIANT").unwrap_or_else(|_| "int8".into());
    if std::env::var("EMOTION_MALLOC").is_ok_and(|v| v == "fixed") {
        assert!(emotion_core::memory::release_large_blocks());
    }
    (dir, variant)
}

fn samples(seconds: f32) -> Vec<f32> {
    (0..(seconds * 16_000.0) as usize)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.3 * (t * 220.0 * std::f32::consts::TAU).sin() * (t * 4.0 * std::f32::consts::PI).sin()
        })
        .collect()
}

#[test]
#[ignore = "measurement: needs EMOTION_BUNDLE, prints figures"]
fn pipeline_stages() {
    let (dir, variant) = bundle();
    reset_peak();
    report("start", Instant::now());
    let start = Instant::now();
    let pipeline = Pipeline::load(
        &dir,
        &PipelineOptions {
            variant: Some(variant.clone()),
            threads: 1,
        },
    )
    .unwrap();
    report(&format!("Pipeline::load ({variant})"), start);
    let clip = samples(2.0);
    let word = pipeline.keywords().words().next().unwrap().to_string();
    let start = Instant::now();
    pipeline
        .classify(&clip, TextInput::Keyword(&word), None)
        .unwrap();
    report("classify 2 s, keyword", start);
    let start = Instant::now();
    pipeline.load_text_encoder().unwrap();
    report("load_text_encoder", start);
    let start = Instant::now();
    let result = pipeline
        .classify(
            &clip,
            TextInput::Transcript("she said the word back again"),
            None,
        )
        .unwrap();
    report(
        &format!("classify 2 s, transcript ({})", result.text_source),
        start,
    );
}

/// The speech encoder (or text encoder) file of the variant.
fn graph_file(text: bool) -> (PathBuf, String) {
    let (dir, variant) = bundle();
    let bundle = Bundle::open(&dir).unwrap();
    let manifest = bundle.manifest();
    let v = manifest.variant(Some(&variant)).unwrap();
    let file = if text {
        v.text_encoder(manifest)
            .expect("the bundle has no text encoder")
            .to_string()
    } else {
        v.speech_encoder.clone()
    };
    (dir, file)
}

/// As `Pipeline::load` loaded a graph before: bytes whole, tract's copy, proto, model.
fn plain(text: bool) {
    let (dir, file) = graph_file(text);
    reset_peak();
    report("start", Instant::now());
    let start = Instant::now();
    let bundle = Bundle::open(&dir).unwrap();
    let bytes = bundle.read(&file).unwrap();
    let onnx = tract_onnx::onnx();
    let proto = onnx.proto_model_for_read(&mut &bytes[..]).unwrap();
    let model = onnx.model_for_proto_model(&proto).unwrap();
    if !text {
        model.symbols.add_assertion("samples>=400").unwrap();
    }
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    drop((proto, bytes));
    report(&format!("{file}: plain load"), start);
    let input = if text {
        Tensor::from_shape(&[1, 6], &[101i64, 2016, 2056, 1996, 2773, 102]).unwrap()
    } else {
        let clip = samples(2.0);
        Tensor::from_shape(&[1, clip.len()], &clip).unwrap()
    };
    let start = Instant::now();
    plan.run(tvec!(input.into())).unwrap();
    report("one run", start);
}

/// As `Pipeline::load` loads a graph now (without the SHA-256 check).
fn streamed(text: bool) {
    let (dir, file) = graph_file(text);
    reset_peak();
    report("start", Instant::now());
    let start = Instant::now();
    let graph = EncoderGraph::load(&dir.join(&file)).unwrap();
    report(&format!("{file}: streamed load"), start);
    let start = Instant::now();
    let clip = samples(2.0);
    let ids = [101i64, 2016, 2056, 1996, 2773, 102];
    graph
        .run(if text {
            EncoderInput::TokenIds(&ids)
        } else {
            EncoderInput::Audio(&clip)
        })
        .unwrap();
    report("one run", start);
}

#[test]
#[ignore = "measurement: needs EMOTION_BUNDLE, prints figures"]
fn speech_encoder_plain() {
    plain(false);
}

#[test]
#[ignore = "measurement: needs EMOTION_BUNDLE, prints figures"]
fn speech_encoder_streamed() {
    streamed(false);
}

#[test]
#[ignore = "measurement: needs EMOTION_BUNDLE, prints figures"]
fn text_encoder_plain() {
    plain(true);
}

#[test]
#[ignore = "measurement: needs EMOTION_BUNDLE, prints figures"]
fn text_encoder_streamed() {
    streamed(true);
}

/// Writes `EMOTION_COPY`: `EMOTION_BUNDLE` with hard links to its files and a manifest
/// a program of bundle format 2 reads (no per-variant text encoders), to measure the
/// program before this change on the same graphs. `EMOTION_TEXT=none` also drops the
/// text encoder. Prints the directory.
#[test]
#[ignore = "helper for measurements: needs EMOTION_BUNDLE and EMOTION_COPY"]
fn write_format_2_copy() {
    use emotion_core::bundle::{MANIFEST_FILE, MANIFEST_JSON, OLDEST_FORMAT};
    let (dir, _) = bundle();
    let to = std::env::var_os("EMOTION_COPY")
        .map(PathBuf::from)
        .expect("set EMOTION_COPY to the directory to write");
    let no_text = std::env::var("EMOTION_TEXT").is_ok_and(|v| v == "none");
    let mut manifest = Bundle::open(&dir).unwrap().manifest().clone();
    manifest.format = OLDEST_FORMAT;
    manifest.vad = None;
    for v in &mut manifest.variants {
        v.text_encoder = None;
    }
    if no_text {
        manifest.text_encoder = None;
    }
    let needed: Vec<String> = manifest
        .referenced_files()
        .iter()
        .map(|(f, _)| f.to_string())
        .collect();
    manifest
        .files
        .retain(|f| needed.contains(&f.path) || !f.path.ends_with(".onnx"));
    std::fs::create_dir_all(&to).unwrap();
    for f in &manifest.files {
        let target = to.join(&f.path);
        let _ = std::fs::remove_file(&target);
        std::fs::hard_link(dir.join(&f.path), &target).unwrap();
    }
    std::fs::write(to.join(MANIFEST_FILE), manifest.to_bytes().unwrap()).unwrap();
    std::fs::write(
        to.join(MANIFEST_JSON),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    Bundle::open(&to).unwrap().verify().unwrap();
    println!("{}", to.display());
}
