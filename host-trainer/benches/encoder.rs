//! Speech-encoder speed: a base-size HuBERT (random weights: speed does not depend on
//! the values) imported and pruned to 9 layers, run by tract on 2 s of audio with one
//! thread and with all of them. Prints seconds, real-time factor and GFLOP/s; asserts
//! nothing. Run with `cargo bench -p host-trainer --bench encoder`.
//!
//! For scale (measured on these 2-core machines): onnxruntime runs the same pruned graph
//! (fp32, 1 thread) in about 0.12 s per 2 s of audio, PyTorch eager in about 0.24 s.

use std::time::Instant;

use emotion_core::encoder::{EncoderGraph, EncoderInput};
use host_trainer::encoders::random::{Preset, RandomCheckpoint};
use host_trainer::encoders::{EncoderKind, import};

const AUDIO_SECONDS: f64 = 2.0;
const RUNS: usize = 7;

/// Multiply-accumulates of HuBERT on `samples` samples up to `layers` transformer layers,
/// counted from the architecture (convs, projections, attention, feed-forward).
fn macs(checkpoint: &RandomCheckpoint, samples: usize, layers: usize) -> f64 {
    let mut length = samples;
    let mut channels_in = 1;
    let mut total = 0.0;
    for ((&channels, &kernel), &stride) in checkpoint
        .conv_dim
        .iter()
        .zip(&checkpoint.conv_kernel)
        .zip(&checkpoint.conv_stride)
    {
        length = (length - kernel) / stride + 1;
        total += (length * channels * channels_in * kernel) as f64;
        channels_in = channels;
    }
    let (t, h, i) = (
        length as f64,
        checkpoint.hidden_size as f64,
        checkpoint.intermediate_size as f64,
    );
    total += t * channels_in as f64 * h; // feature projection
    total += t
        * h
        * (h / checkpoint.num_conv_pos_embedding_groups as f64)
        * checkpoint.num_conv_pos_embeddings as f64;
    total += layers as f64 * (4.0 * t * h * h + 2.0 * t * t * h + 2.0 * t * h * i);
    total
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoint = RandomCheckpoint::new(EncoderKind::Hubert, Preset::Base);
    let started = Instant::now();
    checkpoint.write(dir.path()).expect("random checkpoint");
    println!(
        "random HuBERT-base checkpoint: {:.1} M parameters, written in {:.1} s",
        checkpoint.parameter_count() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let imported = import(dir.path(), None).expect("import");
    println!(
        "imported, pruned to {} of {} layers, outputs {}: {:.1} MB of ONNX in {:.1} s",
        imported.layers_in_graph,
        imported.num_hidden_layers,
        imported.output_names().join(","),
        imported.model_bytes.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let samples = (AUDIO_SECONDS * 16_000.0) as usize;
    // A speech-like test signal: a few harmonics with a slow envelope, normalised.
    let audio: Vec<f32> = (0..samples)
        .map(|n| {
            let t = n as f32 / 16_000.0;
            let envelope = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
            envelope
                * (1..6)
                    .map(|k| (2.0 * std::f32::consts::PI * 180.0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>()
        })
        .collect();
    let flops = 2.0 * macs(&checkpoint, samples, imported.layers_in_graph);
    let full_flops = 2.0 * macs(&checkpoint, samples, checkpoint.num_hidden_layers);
    println!(
        "work: {:.2} GFLOP per {AUDIO_SECONDS} s of audio pruned to {} layers ({:.2} GFLOP with all {}; pruning saves {:.0} %)",
        flops / 1e9,
        imported.layers_in_graph,
        full_flops / 1e9,
        checkpoint.num_hidden_layers,
        100.0 * (1.0 - flops / full_flops)
    );

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    println!(
        "\n| threads | median s per {AUDIO_SECONDS} s | real-time factor | GFLOP/s | load s |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for threads in thread_counts {
        let started = Instant::now();
        let graph =
            EncoderGraph::from_bytes_with_threads(&imported.model_bytes, "hubert-base", threads)
                .expect("tract loads the graph");
        let load = started.elapsed().as_secs_f64();
        graph.run(EncoderInput::Audio(&audio)).expect("warm-up run");
        let times: Vec<f64> = (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                let states = graph.run(EncoderInput::Audio(&audio)).expect("run");
                std::hint::black_box(states);
                started.elapsed().as_secs_f64()
            })
            .collect();
        let seconds = median(times);
        println!(
            "| {threads} | {seconds:.3} | {:.3} | {:.1} | {load:.1} |",
            seconds / AUDIO_SECONDS,
            flops / seconds / 1e9
        );
    }
}
