//! `listen --segmenter` as a user meets it: the demo bundle's neural VAD by default, the
//! energy detector on request, and a bundle whose VAD is damaged or gone refused with
//! an error that names the file, never a panic and never a silent fallback.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{corpus_file, demo_bundle, demo_bundle_copy, output_text as text, workspace};

/// The VAD file inside a bundle (emotion_core::vad::SILERO_FILE).
const VAD_FILE: &str = "vad.silero.onnx";

fn listen(bundle: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(["listen", "--fast", "--json", "--no-text", "--bundle"])
        .arg(bundle)
        .arg("--source")
        .arg(corpus_file())
        .args(extra)
        .current_dir(workspace())
        .env_remove("EMOTION_EDGE_BUNDLE")
        .output()
        .unwrap()
}

fn assert_refused(out: &Output, expected: &[&str]) {
    let (stdout, stderr) = text(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.is_empty(), "nothing is classified: {stdout}");
    for e in expected {
        assert!(stderr.contains(e), "`{e}` not in: {stderr}");
    }
}

#[test]
fn the_demo_bundle_segments_with_its_vad_by_default_and_energy_on_request() {
    for (extra, name) in [
        (&[][..], "silero"),
        (&["--segmenter", "energy"][..], "energy"),
    ] {
        let out = listen(&demo_bundle(), extra);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{name} segmenter")),
            "{extra:?}: {stderr}"
        );
        let utterances = stdout
            .lines()
            .filter(|l| l.contains("\"utterance\""))
            .count();
        assert_eq!(
            utterances, 1,
            "one corpus word, one utterance ({name}): {stdout}"
        );
    }
}

#[test]
fn a_tampered_vad_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = demo_bundle_copy(dir.path());
    let path = bundle.join(VAD_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    // The damage is found whichever detector was asked for, as long as the VAD is read:
    assert_refused(&listen(&bundle, &[]), &[VAD_FILE]);
    assert_refused(&listen(&bundle, &["--segmenter", "silero"]), &[VAD_FILE]);
}

#[test]
fn a_bundle_naming_a_vad_it_lacks_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = demo_bundle_copy(dir.path());
    std::fs::remove_file(bundle.join(VAD_FILE)).unwrap();
    assert_refused(
        &listen(&bundle, &["--segmenter", "energy"]),
        &[VAD_FILE, "add-vad"],
    );
}
