//! Helpers shared by the CLI tests: run the binary, list files, prepare the corpus.

#![allow(dead_code)]

pub mod graphs;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `host-trainer` with `args`.
pub fn host_trainer<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-trainer"))
        .args(args)
        .output()
        .expect("host-trainer runs")
}

/// Runs `host-trainer` with `args`, asserts it succeeded, returns its stdout.
pub fn host_trainer_ok<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let out = host_trainer(args);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}\n{stdout}\n{}",
        text(&out.stderr)
    );
    stdout
}

/// Lossy UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file below `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable folder") {
        let path = entry.expect("readable entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The embedded corpus scanned and split, and the tiny random encoders imported, in
/// `root` (`manifest.csv`, `splits.json`, `speech.onnx`, `text.onnx`); returns the BERT
/// checkpoint folder (its `tokenizer.json` is what `extract` needs).
pub fn corpus_and_tiny_encoders(root: &Path) -> PathBuf {
    let path = |name: &str| root.join(name).display().to_string();
    host_trainer_ok(&["data", "scan", "--out", &path("manifest.csv")]);
    host_trainer_ok(&["data", "split", "--manifest", &path("manifest.csv")]);
    tiny_encoders(root)
}

/// Random-weight tiny encoders imported as `speech.onnx` and `text.onnx` in `root`;
/// returns the BERT checkpoint's folder (its `tokenizer.json`).
pub fn tiny_encoders(root: &Path) -> PathBuf {
    use host_trainer::data::corpus::embedded_tokenizer;
    use host_trainer::encoders::import;
    use host_trainer::encoders::random::write_tiny_pair;

    let (hubert, bert) = write_tiny_pair(root, &embedded_tokenizer()).unwrap();
    import(&hubert, None)
        .unwrap()
        .write(&root.join("speech.onnx"))
        .unwrap();
    import(&bert, None)
        .unwrap()
        .write(&root.join("text.onnx"))
        .unwrap();
    bert
}

/// `extract` of `root`'s `manifest.csv` with [`tiny_encoders`] into `root/features`.
pub fn extract_features(root: &Path, bert: &Path) {
    let path = |name: &str| root.join(name).display().to_string();
    let tokenizer = bert.join("tokenizer.json").display().to_string();
    host_trainer_ok(&[
        "extract",
        "--manifest",
        &path("manifest.csv"),
        "--speech-encoder",
        &path("speech.onnx"),
        "--text-encoder",
        &path("text.onnx"),
        "--tokenizer",
        &tokenizer,
        "--cache",
        &path("features"),
        "--jobs",
        "2",
    ]);
}

/// The arguments that name a run's inputs in `root`: `--manifest … --splits …
/// --features … --runs …`.
pub fn run_inputs(root: &Path) -> Vec<String> {
    let path = |name: &str| root.join(name).display().to_string();
    vec![
        "--manifest".to_string(),
        path("manifest.csv"),
        "--splits".into(),
        path("splits.json"),
        "--features".into(),
        path("features"),
        "--runs".into(),
        path("runs"),
    ]
}

/// The run inputs and encoder arguments an `export` or `keywords` takes: the embedded
/// corpus with the tiny encoders ([`corpus_and_tiny_encoders`]), their features
/// extracted, and a speech model trained for `epochs` on every split, all in `root`.
/// Returns (`--manifest … --runs …`, `--speech-encoder … --tokenizer …`).
pub fn features_and_speech_model(root: &Path, epochs: usize) -> (Vec<String>, Vec<String>) {
    let path = |name: &str| root.join(name).display().to_string();
    let bert = corpus_and_tiny_encoders(root);
    let tokenizer = bert.join("tokenizer.json").display().to_string();
    extract_features(root, &bert);
    let inputs = run_inputs(root);
    let mut train = vec!["train".to_string(), "--model".into(), "speech".into()];
    train.extend(inputs.iter().cloned());
    train.extend(["--epochs".into(), epochs.to_string()]);
    host_trainer_ok(&train);
    let encoders = vec![
        "--speech-encoder".to_string(),
        path("speech.onnx"),
        "--text-encoder".into(),
        path("text.onnx"),
        "--tokenizer".into(),
        tokenizer,
    ];
    (inputs, encoders)
}
