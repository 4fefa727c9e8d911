//! `export` and the voice-activity detector, through the CLI: by default the committed
//! Silero graph goes in (format 4, listed and checksummed, loadable by the board);
//! another Silero goes in with a note; `--no-vad` leaves it out; a file that is no VAD
//! is refused before anything is written. `--sign KEY` signs the bundle; a key that
//! does not open is refused before anything is written.

mod common;

use std::path::Path;

use common::{features_and_speech_model, host_trainer, text};
use emotion_core::bundle::{Bundle, FORMAT_VERSION};
use emotion_core::signature::TrustedKeys;
use emotion_core::vad::{SILERO_FILE, SILERO_KIND, SILERO_SHA256};
use prost::Message as _;

/// The export's arguments over a corpus, tiny encoders, their features and a briefly
/// trained speech model in `root`.
fn prepare(root: &Path) -> Vec<String> {
    let (inputs, encoders) = features_and_speech_model(root, 1);
    let mut export = vec!["export".to_string()];
    export.extend(inputs);
    export.extend(encoders);
    export.extend(["--variants".into(), "fp32".into()]);
    export
}

fn export(base: &[String], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = base.to_vec();
    args.extend(["--out".to_string(), out.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    host_trainer(&args)
}

fn ok(out: std::process::Output) -> String {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    stdout
}

#[test]
fn export_puts_the_vad_in_by_default_and_leaves_it_out_when_told() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let base = prepare(root);

    // Default: the committed graph.
    let with = root.join("bundle");
    let stdout = ok(export(&base, &with, &[]));
    assert!(
        stdout.contains("voice-activity detector vad.silero.onnx"),
        "{stdout}"
    );
    assert!(stdout.contains("the graph this project pins"), "{stdout}");
    let bundle = Bundle::open(&with).unwrap();
    bundle.verify().unwrap();
    let manifest = bundle.manifest();
    assert_eq!(manifest.format, FORMAT_VERSION);
    let spec = manifest.vad.as_ref().expect("a VAD");
    assert_eq!(
        (spec.kind.as_str(), spec.file.as_str(), spec.rate_hz),
        (SILERO_KIND, SILERO_FILE, 16_000)
    );
    assert_eq!(manifest.file(SILERO_FILE).unwrap().sha256, SILERO_SHA256);
    let model = bundle.vad_model(16_000).unwrap().expect("it loads");
    assert_eq!(model.chunk_len(), 512);

    // Another Silero (the same network, another digest): in, with a note.
    let committed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/vad/silero_vad_op18_ifless.onnx");
    let mut graph =
        tract_onnx::pb::ModelProto::decode(std::fs::read(&committed).unwrap().as_slice()).unwrap();
    graph.doc_string = "a Silero from elsewhere".into();
    let newer = root.join("newer-silero.onnx");
    std::fs::write(&newer, graph.encode_to_vec()).unwrap();
    let other = root.join("bundle-other");
    let stdout = ok(export(
        &base,
        &other,
        &["--vad", &newer.display().to_string()],
    ));
    assert!(
        stdout.contains("NOT the graph this project pins"),
        "{stdout}"
    );
    assert!(stdout.contains("newer-silero.onnx"), "{stdout}");
    let bundle = Bundle::open(&other).unwrap();
    assert_ne!(
        bundle.manifest().file(SILERO_FILE).unwrap().sha256,
        SILERO_SHA256
    );
    assert!(bundle.vad_model(16_000).unwrap().is_some());

    // --no-vad: none (and --sign: signed with a keygen key).
    let keys = root.join("keys");
    ok(host_trainer(&[
        "keygen",
        "--out",
        &keys.display().to_string(),
        "--unencrypted",
    ]));
    let key = keys.join("emotion-edge.key").display().to_string();
    let without = root.join("bundle-without");
    let stdout = ok(export(&base, &without, &["--no-vad", "--sign", &key]));
    assert!(stdout.contains("left out (--no-vad)"), "{stdout}");
    assert!(stdout.contains("signed with key"), "{stdout}");
    let trusted = TrustedKeys::read_dir(&keys).unwrap();
    assert!(trusted.check_bundle(&without).unwrap().is_some());
    let bundle = Bundle::open(&without).unwrap();
    assert!(bundle.manifest().vad.is_none());
    assert!(bundle.manifest().file(SILERO_FILE).is_none());
    assert!(!without.join(SILERO_FILE).exists());
    assert!(bundle.vad_model(16_000).unwrap().is_none());

    // A file that is no VAD: refused, nothing written.
    let refused = root.join("bundle-refused");
    let head = with.join("head_speech.fp32.onnx");
    let out = export(&base, &refused, &["--vad", &head.display().to_string()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("head_speech.fp32.onnx"), "{stderr}");
    assert!(stderr.contains("--no-vad"), "{stderr}");
    assert!(!refused.exists());

    // A signing key that cannot be opened: refused before anything is exported.
    let password = root.join("password");
    std::fs::write(&password, "right\n").unwrap();
    ok(host_trainer(&[
        "keygen",
        "--out",
        &keys.display().to_string(),
        "--name",
        "locked",
        "--password-file",
        &password.display().to_string(),
    ]));
    std::fs::write(&password, "wrong\n").unwrap();
    let locked = keys.join("locked.key").display().to_string();
    let out = export(
        &base,
        &refused,
        &[
            "--sign",
            &locked,
            "--sign-password-file",
            &password.display().to_string(),
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("locked.key") && stderr.contains("password"),
        "{stderr}"
    );
    assert!(!refused.exists());
}
