//! `bundle add-vad` on the demo bundle as it was exported (format 3, no VAD): it gives
//! back exactly the committed `data/demo-bundle`, and a file that is no VAD leaves the
//! bundle as it was.

mod common;

use std::path::{Path, PathBuf};

use common::{host_trainer, host_trainer_ok, text};
use emotion_core::bundle::{Bundle, BundleManifest, MANIFEST_FILE, MANIFEST_JSON};
use emotion_core::signature::SIGNATURE_FILE;
use emotion_core::vad::SILERO_FILE;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo bundle before its VAD: its files but the VAD, and the format-3 manifest the
/// export wrote (`fixtures/bundle/format-3-manifest.bin`) with its JSON copy.
fn format_3_demo_bundle(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo().join("data/demo-bundle")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != SILERO_FILE && name != MANIFEST_FILE && name != MANIFEST_JSON {
            std::fs::copy(entry.path(), dir.join(&name)).unwrap();
        }
    }
    let fixture = repo().join("fixtures/bundle/format-3-manifest.bin");
    let bytes = std::fs::read(&fixture).unwrap();
    let manifest = BundleManifest::from_bytes(&bytes, &fixture).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), &bytes).unwrap();
    std::fs::write(
        dir.join(MANIFEST_JSON),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let opened = Bundle::open(dir).unwrap();
    opened.verify().unwrap();
    assert_eq!(opened.manifest().format, 3);
}

#[test]
fn add_vad_makes_the_committed_demo_bundle_from_its_format_3_export() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    format_3_demo_bundle(&dir);
    // A signature of the format-3 manifest cannot sign the rewritten one: left out.
    std::fs::write(dir.join(SIGNATURE_FILE), "a signature of the old manifest").unwrap();
    let dir_arg = dir.display().to_string();
    let stdout = host_trainer_ok(&["bundle", "add-vad", "--bundle", &dir_arg]);
    assert!(stdout.contains("format 3 -> 4"), "{stdout}");
    assert!(stdout.contains("sign the bundle again"), "{stdout}");
    assert!(!dir.join(SIGNATURE_FILE).exists());
    assert!(stdout.contains("the graph this project pins"), "{stdout}");

    let demo = repo().join("data/demo-bundle");
    for name in [MANIFEST_FILE, MANIFEST_JSON, SILERO_FILE] {
        assert!(
            std::fs::read(dir.join(name)).unwrap() == std::fs::read(demo.join(name)).unwrap(),
            "{name} differs from the committed demo bundle's"
        );
    }
    let bundle = Bundle::open(&dir).unwrap();
    bundle.verify().unwrap();
    assert!(bundle.vad_model(16_000).unwrap().is_some());

    // Again: nothing to do.
    let stdout = host_trainer_ok(&["bundle", "add-vad", "--bundle", &dir_arg]);
    assert!(stdout.contains("nothing to do"), "{stdout}");
}

#[test]
fn add_vad_with_a_file_that_is_no_vad_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    format_3_demo_bundle(&dir);
    let before = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
    let head = dir.join("head_speech.fp32.onnx");
    let out = host_trainer(&[
        "bundle",
        "add-vad",
        "--bundle",
        &dir.display().to_string(),
        "--vad",
        &head.display().to_string(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("head_speech.fp32.onnx"), "{stderr}");
    assert!(stderr.contains("silero_vad_op18_ifless.onnx"), "{stderr}");
    assert_eq!(std::fs::read(dir.join(MANIFEST_FILE)).unwrap(), before);
    assert!(!dir.join(SILERO_FILE).exists());
}
