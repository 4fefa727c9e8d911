//! The inspection CLI reproduces the conformance vectors from the command line:
//! `encoders import` then `encoders run`, compared tensor by tensor with the reference
//! (HF transformers) outputs in `fixtures/conformance`.

mod common;

use std::path::{Path, PathBuf};

use common::{host_trainer, host_trainer_ok, text};

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/conformance")
}

fn f32s(tensors: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = tensors
        .tensor(name)
        .unwrap_or_else(|_| panic!("{name} present"));
    assert_eq!(view.dtype(), Dtype::F32, "{name}");
    let data = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (view.shape().to_vec(), data)
}

fn i64s(tensors: &SafeTensors, name: &str) -> Vec<i64> {
    let view = tensors.tensor(name).unwrap();
    assert_eq!(view.dtype(), Dtype::I64);
    view.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn assert_close(
    got: &SafeTensors,
    got_name: &str,
    want: &SafeTensors,
    want_name: &str,
    tolerance: f32,
) {
    let (got_shape, got_data) = f32s(got, got_name);
    let (want_shape, want_data) = f32s(want, want_name);
    assert_eq!(got_shape, want_shape, "{got_name}");
    let worst = emotion_core::scores::max_abs_difference(&got_data, &want_data);
    eprintln!("{got_name}: max abs error {worst:.2e}");
    assert!(worst <= tolerance, "{got_name}: {worst} > {tolerance}");
}

#[test]
fn hubert_vectors_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("hubert.onnx");
    let hidden = dir.path().join("hidden.safetensors");
    let checkpoint = fixtures().join("hubert-tiny");
    host_trainer_ok(&[
        "encoders",
        "import",
        checkpoint.to_str().unwrap(),
        "--out",
        graph.to_str().unwrap(),
        "--layers",
        "0..4",
    ]);
    let wav = fixtures().join("say-the-word-back-16k.wav");
    let printed = host_trainer_ok(&[
        "encoders",
        "run",
        graph.to_str().unwrap(),
        "--wav",
        wav.to_str().unwrap(),
        "--out",
        hidden.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("hidden_states.4: [1, 63, 32]"),
        "{printed}"
    );

    let got_bytes = std::fs::read(&hidden).unwrap();
    let got = SafeTensors::deserialize(&got_bytes).unwrap();
    let want_bytes = std::fs::read(checkpoint.join("expected.safetensors")).unwrap();
    let want = SafeTensors::deserialize(&want_bytes).unwrap();
    // The shared front-end normalises exactly as HF's feature extractor.
    assert_close(&got, "input_values", &want, "input_values", 1e-5);
    for i in 0..=4 {
        let name = format!("hidden_states.{i}");
        assert_close(&got, &name, &want, &name, 1e-4);
    }
}

#[test]
fn bert_vectors_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("bert.onnx");
    let checkpoint = fixtures().join("bert-tiny");
    host_trainer_ok(&[
        "encoders",
        "import",
        checkpoint.to_str().unwrap(),
        "--out",
        graph.to_str().unwrap(),
        "--layers",
        "0..3",
    ]);
    let want_bytes = std::fs::read(checkpoint.join("expected.safetensors")).unwrap();
    let want = SafeTensors::deserialize(&want_bytes).unwrap();
    let texts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.join("texts.json")).unwrap()).unwrap();
    let tokenizer = checkpoint.join("tokenizer.json");
    for (k, case) in texts.as_array().unwrap().iter().enumerate() {
        let hidden = dir.path().join(format!("text{k}.safetensors"));
        host_trainer_ok(&[
            "encoders",
            "run",
            graph.to_str().unwrap(),
            "--text",
            case["text"].as_str().unwrap(),
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--out",
            hidden.to_str().unwrap(),
        ]);
        let got_bytes = std::fs::read(&hidden).unwrap();
        let got = SafeTensors::deserialize(&got_bytes).unwrap();
        assert_eq!(
            i64s(&got, "input_ids"),
            i64s(&want, &format!("text{k}.input_ids"))
        );
        for i in 0..=3 {
            assert_close(
                &got,
                &format!("hidden_states.{i}"),
                &want,
                &format!("text{k}.hidden_states.{i}"),
                1e-4,
            );
        }
    }
}

#[test]
fn importing_a_damaged_pytorch_checkpoint_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("bert-tiny/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not really").unwrap();
    let out = host_trainer(&[
        "encoders",
        "import",
        dir.path().to_str().unwrap(),
        "--out",
        "/dev/null",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("pytorch_model.bin"), "{stderr}");
    assert!(stderr.contains("not a PyTorch checkpoint"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn fetch_offline_prints_the_by_hand_instructions() {
    let dir = tempfile::tempdir().unwrap();
    let out = host_trainer(&[
        "fetch",
        "--cache",
        dir.path().to_str().unwrap(),
        "--endpoint",
        "http://127.0.0.1:9",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let expected = dir
        .path()
        .join("facebook--hubert-base-ls960")
        .join("model.safetensors");
    assert!(stderr.contains(&expected.display().to_string()), "{stderr}");
    assert!(stderr.contains("put them by hand"), "{stderr}");
}
