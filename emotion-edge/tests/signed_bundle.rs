//! Signed bundles on the board, with keys and signatures made by the real `minisign`
//! tool (Debian's `minisign`, which `.ci/run` installs): a board given trusted keys
//! runs a bundle signed by one of them and refuses one that is unsigned, signed by
//! another key, or whose manifest was rewritten with fresh checksums after signing
//! (the attack checksums alone cannot stop); each error names the bundle and the key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{corpus_file, demo_bundle_copy, output_text as text, workspace};
use emotion_core::bundle::{BundleManifest, MANIFEST_FILE, MANIFEST_JSON, sha256_hex};

/// The minisign tool, or `None` (with the reason printed) outside CI when it is
/// missing; under CI its absence fails the test.
fn minisign() -> Option<PathBuf> {
    let found = Command::new("minisign").arg("-v").output().is_ok();
    match found {
        true => Some(PathBuf::from("minisign")),
        false if std::env::var_os("CI").is_some() => {
            panic!("minisign is required under CI (.ci/run installs it)")
        }
        false => {
            eprintln!("skipped: minisign is not installed (apt-get install minisign)");
            None
        }
    }
}

/// A key pair made by `minisign -G` (no password): (secret key, public key).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (secret, public) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    let out = Command::new("minisign")
        .args(["-G", "-W", "-f", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    (secret, public)
}

/// The key id minisign prints for a public key (its file's comment line).
fn key_id(public: &Path) -> String {
    let text = std::fs::read_to_string(public).unwrap();
    let comment = text.lines().next().unwrap();
    comment.rsplit(' ').next().unwrap().to_owned()
}

/// `minisign -S` over the bundle's manifest: the signature file lands beside it.
fn sign(bundle: &Path, secret: &Path) {
    let out = Command::new("minisign")
        .args(["-S", "-s"])
        .arg(secret)
        .arg("-m")
        .arg(bundle.join(MANIFEST_FILE))
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(bundle.join("manifest.bin.minisig").is_file());
}

fn classify(bundle: &Path, keys: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emotion-edge"));
    command
        .args(["classify", "--json", "--bundle"])
        .arg(bundle)
        .arg(corpus_file())
        .current_dir(workspace())
        .env_remove("EMOTION_EDGE_BUNDLE");
    if let Some(keys) = keys {
        command.arg("--trusted-keys").arg(keys);
    }
    command.output().unwrap()
}

fn assert_refused(out: &Output, expected: &[&str]) {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "nothing classified: {stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in expected {
        assert!(stderr.contains(word), "{word:?} not in: {stderr}");
    }
}

/// Changes the head graph's bytes and rewrites the manifest with their new checksum:
/// a bundle every checksum agrees with, which nobody holding the key signed.
fn tamper_and_rehash(bundle: &Path) {
    let manifest_path = bundle.join(MANIFEST_FILE);
    let mut manifest =
        BundleManifest::from_bytes(&std::fs::read(&manifest_path).unwrap(), &manifest_path)
            .unwrap();
    let entry = manifest
        .files
        .iter_mut()
        .find(|f| f.path.starts_with("head_speech") && f.path.ends_with(".onnx"))
        .expect("a speech head in the demo bundle");
    let path = bundle.join(&entry.path);
    let mut bytes = std::fs::read(&path).unwrap();
    // Field 12 is unknown to ONNX's ModelProto: readers skip it, the graph still loads.
    bytes.extend_from_slice(&[0x62, 0x01, b'x']);
    std::fs::write(&path, &bytes).unwrap();
    entry.sha256 = sha256_hex(&bytes);
    entry.bytes = bytes.len() as u64;
    std::fs::write(&manifest_path, manifest.to_bytes().unwrap()).unwrap();
    std::fs::write(
        bundle.join(MANIFEST_JSON),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

#[test]
fn a_board_with_trusted_keys_runs_only_bundles_they_signed() {
    if minisign().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keypair(dir.path(), "trusted");
    let (other_secret, other_public) = keypair(dir.path(), "other");
    let (id, other_id) = (key_id(&public), key_id(&other_public));
    let keys = dir.path().join("trusted-keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(&public, keys.join("trusted.pub")).unwrap();
    let bundle = demo_bundle_copy(dir.path());

    // No keys: checksums only, as before.
    assert!(classify(&bundle, None).status.success());

    // Keys and an unsigned bundle.
    let out = classify(&bundle, Some(&keys));
    assert_refused(&out, &[&bundle.display().to_string(), "not signed", &id]);

    // Signed by the trusted key.
    sign(&bundle, &secret);
    let out = classify(&bundle, Some(&keys));
    assert!(out.status.success(), "{:?}", text(&out));

    // Tampered and re-hashed: every checksum agrees, so without keys it loads...
    tamper_and_rehash(&bundle);
    let out = classify(&bundle, None);
    assert!(out.status.success(), "{:?}", text(&out));
    // ...and with them the signature no longer matches the manifest.
    let out = classify(&bundle, Some(&keys));
    assert_refused(
        &out,
        &[
            &bundle.display().to_string(),
            &id,
            "does not match",
            "changed after signing",
        ],
    );

    // Signed (again) by a key the board does not trust.
    sign(&bundle, &other_secret);
    let out = classify(&bundle, Some(&keys));
    assert_refused(&out, &[&other_id, "does not trust", &id]);

    // A signature file that is not one.
    std::fs::write(
        bundle.join("manifest.bin.minisig"),
        "untrusted comment: x\nnot base64!\n",
    )
    .unwrap();
    let out = classify(&bundle, Some(&keys));
    assert_refused(&out, &["not a minisign signature"]);
}

#[test]
fn trusted_keys_that_cannot_be_read_are_an_error_not_an_open_door() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = demo_bundle_copy(dir.path());

    let missing = dir.path().join("no-such-folder");
    let out = classify(&bundle, Some(&missing));
    assert_refused(&out, &["no-such-folder"]);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = classify(&bundle, Some(&empty));
    assert_refused(&out, &["no trusted key", "empty"]);

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("broken.pub"), "untrusted comment: x\nRWQnotakey\n").unwrap();
    let out = classify(&bundle, Some(&bad));
    assert_refused(&out, &["broken.pub", "not a minisign public key"]);
}
