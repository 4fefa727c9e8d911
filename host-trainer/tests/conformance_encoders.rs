//! Conformance of the encoders chosen per board against HF transformers: DistilHuBERT (a
//! 2-layer HuBERT without the feature projection's LayerNorm) and WavLM (HuBERT's graph
//! with a gated relative position bias), each a tiny random model whose reference outputs
//! transformers wrote (`fixtures/conformance/{distilhubert,wavlm}-tiny/`:
//! `config.json`, `model.safetensors`, `expected.safetensors` with `input_values`,
//! `hidden_states.{i}` and `last_hidden_state`).
//!
//! Every hidden state within 1e-4 of transformers' in tract, the graph stopping after the
//! last selected layer, the metadata the board reads, and the layer defaults for models
//! shallower than the default selection.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::graphs::{count_ops, max_abs_error, metadata, model_proto, run, speech_input};
use host_trainer::encoders::random::{Preset, RandomCheckpoint};
use host_trainer::encoders::{EncoderKind, ImportError, ImportedEncoder, import};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use tract_onnx::pb;

const TOLERANCE: f32 = 1e-4;

/// `fixtures/conformance/{name}`, or `$CONFORMANCE_ENCODERS_FIXTURES/{name}` to run the
/// same checks on reference folders written elsewhere (same layout).
fn fixture(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("CONFORMANCE_ENCODERS_FIXTURES") {
        return PathBuf::from(dir).join(name);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/conformance")
        .join(name)
}

/// The f32 tensors of a safetensors file: shape and values.
fn read_f32_tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("valid safetensors");
    st.tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() == Dtype::F32)
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (name, (view.shape().to_vec(), values))
        })
        .collect()
}

/// `num_hidden_layers` of a fixture's config.
fn layers_of(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    let config: serde_json::Value = serde_json::from_str(&text).expect("json");
    config["num_hidden_layers"]
        .as_u64()
        .expect("num_hidden_layers") as usize
}

fn has_initializer(model: &pb::ModelProto, prefix: &str) -> bool {
    let graph = model.graph.as_ref().expect("graph");
    graph.initializer.iter().any(|t| t.name.starts_with(prefix))
}

/// Imports `dir` with `layers`, runs it on the input of `dir/{vectors}` and checks every
/// output against transformers' hidden states there, each within `tolerance(max |value|)`;
/// returns the largest error.
fn check_vectors(
    dir: &Path,
    vectors: &str,
    label: &str,
    layers: std::ops::RangeInclusive<usize>,
    tolerance: impl Fn(f32) -> f32,
) -> (ImportedEncoder, f32) {
    let expected = read_f32_tensors(&dir.join(vectors));
    let (_, input) = &expected["input_values"];
    let encoder = import(dir, Some(layers.clone())).expect("import");
    assert_eq!(
        encoder.hidden_indices,
        layers.clone().collect::<Vec<_>>(),
        "{label}"
    );
    let outputs = run(&encoder.model_bytes, speech_input(input));
    assert_eq!(outputs.len(), encoder.hidden_indices.len(), "{label}");
    let mut worst = 0f32;
    for (&i, (shape, values)) in encoder.hidden_indices.iter().zip(&outputs) {
        let (want_shape, want) = &expected[&format!("hidden_states.{i}")];
        assert_eq!(shape, want_shape, "{label}: hidden_states.{i} shape");
        let error = max_abs_error(values, want);
        let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        println!(
            "{label}: hidden_states.{i} {shape:?} max abs error {error:.3e} (max |value| {peak:.2})"
        );
        let tolerance = tolerance(peak);
        assert!(
            error <= tolerance,
            "{label}: hidden_states.{i} max abs error {error:e} > {tolerance:e}"
        );
        worst = worst.max(error);
    }
    if *layers.end() == encoder.num_hidden_layers {
        // The last hidden state is HF's last_hidden_state.
        let (_, last) = &expected["last_hidden_state"];
        let (_, ours) = outputs.last().expect("outputs");
        assert!(max_abs_error(ours, last) <= TOLERANCE, "{label}: last");
    }
    (encoder, worst)
}

/// [`check_vectors`] on the fixture's `expected.safetensors`.
fn check_against_transformers(
    dir: &Path,
    label: &str,
    layers: std::ops::RangeInclusive<usize>,
) -> (ImportedEncoder, f32) {
    check_vectors(dir, "expected.safetensors", label, layers, |_| TOLERANCE)
}

/// The graph holds no layer after `last` and the metadata the board reads.
fn check_structure(encoder: &ImportedEncoder, folder: &str, kind: &str, last: usize) {
    let model = model_proto(encoder);
    assert_eq!(
        count_ops(&model, "Softmax"),
        last,
        "one attention per layer"
    );
    assert!(has_initializer(
        &model,
        &format!("encoder.layers.{}.", last.max(1) - 1)
    ));
    assert!(
        !has_initializer(&model, &format!("encoder.layers.{last}.")),
        "layer {last} (hidden state {}) must not be in the graph",
        last + 1
    );
    let meta = metadata(&model);
    let list: Vec<String> = encoder
        .hidden_indices
        .iter()
        .map(usize::to_string)
        .collect();
    assert_eq!(meta["emotion.encoder"], kind);
    assert_eq!(meta["emotion.hidden_states"], list.join(","));
    assert_eq!(meta["emotion.layers_in_graph"], last.to_string());
    assert_eq!(meta["emotion.hidden_size"], encoder.hidden_size.to_string());
    let source = &meta["emotion.source"];
    assert!(source.starts_with(&format!("{folder}@sha256:")), "{source}");
    assert_eq!(source.len(), folder.len() + "@sha256:".len() + 64);
    let graph = model.graph.as_ref().expect("graph");
    assert_eq!(graph.input.len(), 1);
    assert_eq!(graph.input[0].name, "input_values");
}

// ----- WavLM ---------------------------------------------------------------------------

#[test]
fn wavlm_tiny_matches_transformers() {
    let dir = fixture("wavlm-tiny");
    let layers = layers_of(&dir);
    let (encoder, worst) = check_against_transformers(&dir, "wavlm-tiny", 0..=layers);
    assert_eq!(encoder.kind, EncoderKind::WavLm);
    println!("wavlm-tiny: all {layers} layers, max abs error {worst:.3e}");
    check_structure(&encoder, "wavlm-tiny", "wavlm", layers);
    // The relative position table is layer 0's; the gates are every layer's.
    let model = model_proto(&encoder);
    assert!(has_initializer(
        &model,
        "encoder.layers.0.attention.rel_attn_embed"
    ));
    assert_eq!(count_ops(&model, "Gather"), 1, "one bias table lookup");
    assert_eq!(
        count_ops(&model, "Sigmoid"),
        2 * layers,
        "two gates per layer"
    );
}

/// A longer clip (`expected-long.safetensors`, about 3.8 s, 191 frames): relative
/// distances up to 190 frames, well into the logarithmic buckets.
///
/// Within 1e-4 relative to each state's largest value (these reach 3.9): the feature
/// encoder's first GroupNorm averages over 12,293 positions here, and tract's f32 sums
/// leave a relative error of about 1.5e-5 there (measured against transformers in f64;
/// transformers in f32 is within 3e-6), which reaches 1.01e-4 absolute in hidden state 0.
/// The shared HuBERT front-end, not the position bias: the states after the WavLM layers
/// are closer (3e-5 to 8e-5).
#[test]
fn wavlm_tiny_long_input_matches_transformers() {
    let dir = fixture("wavlm-tiny");
    let layers = layers_of(&dir);
    let (_, worst) = check_vectors(
        &dir,
        "expected-long.safetensors",
        "wavlm-tiny (long)",
        0..=layers,
        |peak| TOLERANCE * peak.max(1.0),
    );
    println!("wavlm-tiny long: max abs error {worst:.3e}");
}

/// Pruned after an inner layer: the same states, no later layer in the graph (the bias
/// table still comes from layer 0).
#[test]
fn wavlm_tiny_pruned() {
    let dir = fixture("wavlm-tiny");
    let layers = layers_of(&dir);
    assert!(layers >= 2, "the fixture needs 2 layers or more");
    let last = layers - 1;
    let (encoder, worst) = check_against_transformers(&dir, "wavlm-tiny 1..", 1..=last);
    println!("wavlm-tiny 1..={last}: max abs error {worst:.3e}");
    check_structure(&encoder, "wavlm-tiny", "wavlm", last);
    assert_eq!(encoder.layers_in_graph, last);

    // Only hidden state 0: no transformer layer, no bias.
    let encoder = import(&dir, Some(0..=0)).expect("import");
    let model = model_proto(&encoder);
    assert_eq!(count_ops(&model, "Softmax"), 0);
    assert!(!has_initializer(&model, "encoder.layers."));
}

/// The board's runner takes a WavLM graph as it is: outputs, metadata, any length.
#[test]
fn wavlm_graph_runs_in_the_board_runner() {
    use emotion_core::encoder::{EncoderGraph, EncoderInput, Modality};
    let dir = fixture("wavlm-tiny");
    let layers = layers_of(&dir);
    let encoder = import(&dir, Some(1..=layers)).expect("import");
    let graph = EncoderGraph::from_bytes(&encoder.model_bytes, "wavlm-tiny").expect("loads");
    assert_eq!(graph.modality(), Modality::Speech);
    assert_eq!(graph.metadata("emotion.encoder"), Some("wavlm"));
    assert_eq!(
        graph.hidden_indices(),
        &(1..=layers).collect::<Vec<_>>()[..]
    );
    let expected = read_f32_tensors(&dir.join("expected.safetensors"));
    let (_, input) = &expected["input_values"];
    let states = graph.run(EncoderInput::Audio(input)).expect("runs");
    for state in &states {
        let (shape, want) = &expected[&format!("hidden_states.{}", state.index)];
        assert_eq!(&[1, state.frames, state.dim], &shape[..]);
        assert!(max_abs_error(&state.data, want) <= TOLERANCE);
    }
    // 20 s of audio: 999 frames, more than the bias table's distances.
    let long: Vec<f32> = (0..320_000)
        .map(|i| (i as f32 * 0.013).sin() * (1.0 + (i as f32 * 0.0007).sin()))
        .collect();
    let states = graph.run(EncoderInput::Audio(&long)).expect("runs on 20 s");
    assert_eq!(states[0].frames, 999);
    assert!(states.iter().all(|s| s.data.iter().all(|v| v.is_finite())));
}

/// Random WavLM checkpoints in both layouts (post-LN base, pre-LN large) import and run;
/// a WavLM checkpoint without its bias table, or with a wrong gate, is refused by name.
#[test]
fn wavlm_random_layouts_and_broken_checkpoints() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for stable in [false, true] {
        let dir = tmp.path().join(format!("wavlm-{stable}"));
        RandomCheckpoint::new(EncoderKind::WavLm, Preset::Tiny)
            .with_layers(3)
            .with_stable_layer_norm(stable)
            .with_seed(5)
            .write(&dir)
            .expect("write");
        let encoder = import(&dir, Some(0..=3)).expect("import");
        assert_eq!(encoder.kind, EncoderKind::WavLm);
        let samples: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.05).sin()).collect();
        let outputs = run(&encoder.model_bytes, speech_input(&samples));
        assert_eq!(outputs.len(), 4);
        for (shape, values) in &outputs {
            assert_eq!(shape, &[1, 24, 32]);
            assert!(values.iter().all(|v| v.is_finite()));
        }
    }

    let dir = tmp.path().join("wavlm-false");
    let weights = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights).expect("weights");
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let keep: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .filter(|(name, _)| !name.contains("rel_attn_embed"))
        .collect();
    let broken = tmp.path().join("wavlm-no-table");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::copy(dir.join("config.json"), broken.join("config.json")).expect("copy");
    safetensors::serialize_to_file(keep, None, &broken.join("model.safetensors")).expect("write");
    match import(&broken, Some(1..=2)).expect_err("no table") {
        ImportError::MissingTensor { name, .. } => {
            assert_eq!(name, "encoder.layers.0.attention.rel_attn_embed.weight")
        }
        other => panic!("wrong error: {other:?}"),
    }

    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("config"))
            .expect("json");
    config["num_buckets"] = 64.into();
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write");
    match import(&dir, Some(1..=2)).expect_err("table of 320 rows, config says 64") {
        ImportError::TensorShape { name, expected, .. } => {
            assert_eq!(name, "encoder.layers.0.attention.rel_attn_embed.weight");
            assert_eq!(expected, vec![64, 4]);
        }
        other => panic!("wrong error: {other:?}"),
    }
    config["num_buckets"] = 320.into();
    config["max_bucket_distance"] = 10.into();
    std::fs::write(dir.join("config.json"), config.to_string()).expect("write");
    match import(&dir, Some(1..=2)).expect_err("max distance inside the exact buckets") {
        ImportError::InvalidConfig { field, .. } => assert_eq!(field, "max_bucket_distance"),
        other => panic!("wrong error: {other:?}"),
    }
}

// ----- DistilHuBERT ----------------------------------------------------------------------

#[test]
fn distilhubert_tiny_matches_transformers() {
    let dir = fixture("distilhubert-tiny");
    let layers = layers_of(&dir);
    let (encoder, worst) = check_against_transformers(&dir, "distilhubert-tiny", 0..=layers);
    assert_eq!(encoder.kind, EncoderKind::Hubert);
    println!("distilhubert-tiny: all {layers} layers, max abs error {worst:.3e}");
    check_structure(&encoder, "distilhubert-tiny", "hubert", layers);
    // No LayerNorm before the feature projection: the encoder's own, then two per layer.
    let model = model_proto(&encoder);
    assert!(!has_initializer(&model, "feature_projection.layer_norm"));
    assert_eq!(count_ops(&model, "LayerNormalization"), 1 + 2 * layers);
}

/// Without `--layers` a model shallower than the default 5..=9 keeps all its layers and
/// says so; asked-for layers beyond it stay an error.
#[test]
fn distilhubert_default_and_explicit_layers() {
    let dir = fixture("distilhubert-tiny");
    let layers = layers_of(&dir);
    assert!(layers < 9, "the fixture is a shallow (distilled) model");
    let encoder = import(&dir, None).expect("default layers");
    assert_eq!(encoder.hidden_indices, (1..=layers).collect::<Vec<_>>());
    assert_eq!(encoder.layers_in_graph, layers);
    let note = encoder.layer_note.as_deref().expect("a note says why");
    println!("{note}");
    assert!(
        note.contains("5..=9") && note.contains(&format!("1..={layers}")),
        "{note}"
    );
    let expected = read_f32_tensors(&dir.join("expected.safetensors"));
    let outputs = run(
        &encoder.model_bytes,
        speech_input(&expected["input_values"].1),
    );
    for (&i, (_, values)) in encoder.hidden_indices.iter().zip(&outputs) {
        let error = max_abs_error(values, &expected[&format!("hidden_states.{i}")].1);
        assert!(error <= TOLERANCE, "hidden_states.{i}: {error:e}");
    }

    match import(&dir, Some(5..=9)).expect_err("explicit layers out of range") {
        ImportError::LayersOutOfRange {
            requested,
            available,
            ..
        } => {
            assert_eq!(requested, 5..=9);
            assert_eq!(available, layers);
        }
        other => panic!("wrong error: {other:?}"),
    }
    // A deep enough model gets the default with no note.
    let tmp = tempfile::tempdir().expect("tempdir");
    RandomCheckpoint::new(EncoderKind::Hubert, Preset::Tiny)
        .with_layers(9)
        .write(tmp.path())
        .expect("write");
    let encoder = import(tmp.path(), None).expect("import");
    assert_eq!(encoder.hidden_indices, vec![5, 6, 7, 8, 9]);
    assert!(encoder.layer_note.is_none());
}

/// The random DistilHuBERT layout (the `--size distil` checkpoints the cost script makes)
/// imports with its defaults: a HuBERT without the projection's LayerNorm.
#[test]
fn random_distilhubert_layout_imports() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut checkpoint = RandomCheckpoint::new(EncoderKind::Hubert, Preset::Distil);
    // Base widths are slow in a debug build; the layout is what matters here.
    checkpoint.hidden_size = 32;
    checkpoint.num_attention_heads = 4;
    checkpoint.intermediate_size = 64;
    checkpoint.conv_dim = vec![32; 7];
    checkpoint.num_conv_pos_embeddings = 16;
    checkpoint.num_conv_pos_embedding_groups = 4;
    checkpoint.write(tmp.path()).expect("write");
    let encoder = import(tmp.path(), None).expect("import");
    assert_eq!(encoder.hidden_indices, vec![1, 2]);
    assert!(encoder.layer_note.is_some());
    let model = model_proto(&encoder);
    assert!(!has_initializer(&model, "feature_projection.layer_norm"));
}
