//! `export` and `evaluate --bundle` on inputs that are not there: errors that say what
//! to run, and nothing written.

mod common;

use std::path::Path;

use common::{host_trainer, text};

/// A manifest and splits of the embedded corpus in `dir`, nothing else.
fn scan_and_split(dir: &Path) {
    let manifest = dir.join("manifest.csv").display().to_string();
    common::host_trainer_ok(&["data", "scan", "--out", &manifest]);
    common::host_trainer_ok(&["data", "split", "--manifest", &manifest]);
}

#[test]
fn export_without_features_says_to_extract_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    scan_and_split(dir);
    let out = host_trainer(&[
        "export",
        "--manifest",
        &dir.join("manifest.csv").display().to_string(),
        "--splits",
        &dir.join("splits.json").display().to_string(),
        "--features",
        &dir.join("features").display().to_string(),
        "--runs",
        &dir.join("runs").display().to_string(),
        "--speech-encoder",
        "speech.onnx",
        "--text-encoder",
        "text.onnx",
        "--tokenizer",
        "tokenizer.json",
        "--out",
        &dir.join("bundle").display().to_string(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("host-trainer extract"), "{stderr}");
    assert!(!dir.join("bundle").exists());
}

#[test]
fn evaluate_with_a_missing_bundle_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    scan_and_split(dir);
    let bundle = dir.join("no-bundle");
    let out = host_trainer(&[
        "evaluate",
        "--manifest",
        &dir.join("manifest.csv").display().to_string(),
        "--splits",
        &dir.join("splits.json").display().to_string(),
        "--bundle",
        &bundle.display().to_string(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no-bundle") && stderr.contains("host-trainer export"),
        "{stderr}"
    );
}
