//! `emotion-edge` as a user meets it without a bundle, or with a broken one: every
//! mistake is a clear message and a failing exit status, never a panic.

use std::process::{Command, Output};

fn run(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(args)
        .current_dir(cwd)
        .env_remove("EMOTION_EDGE_BUNDLE")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn corpus_file() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/synthetic-tess/TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav")
}

#[test]
fn without_a_bundle_the_error_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let wav = corpus_file();
    for args in [
        vec!["classify", wav.to_str().unwrap()],
        vec!["listen", "--source", wav.to_str().unwrap()],
        vec!["bench"],
    ] {
        let out = run(&args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("host-trainer"), "{args:?}: {err}");
        assert!(err.contains("--bundle"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_directory_that_is_not_a_bundle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifest.bin"), b"PK\x03\x04").unwrap();
    let out = run(
        &["classify", corpus_file().to_str().unwrap(), "--bundle", "."],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("not an emotion-edge bundle"), "{err}");
    let out = run(&["classify", "missing.wav", "--bundle", "."], dir.path());
    assert!(
        stderr(&out).contains("missing.wav does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_microphone_without_support_or_device_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["devices"], dir.path());
    let err = stderr(&out);
    let text = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!text.contains("panicked"), "{text}");
    if cfg!(feature = "mic") {
        // This machine may or may not have a sound card; either way, no panic.
        assert!(out.status.code().is_some(), "{text}");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(err.contains("--features mic"), "{err}");
        assert!(err.contains("libasound2-dev"), "{err}");
    }
}

#[test]
fn conflicting_text_options_are_refused_by_the_parser() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &["classify", "a.wav", "--keyword", "back", "--no-text"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_file_classify_refuses_is_named_once_and_the_others_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-audio.wav");
    std::fs::write(&bad, b"RIFF, but no WAVE after it").unwrap();
    let bundle = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle");
    let (bad_name, good) = (bad.to_str().unwrap(), corpus_file());
    let out = run(
        &[
            "classify",
            bad_name,
            good.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains("not a readable WAV file"), "{line}");
    assert_eq!(
        line.matches(bad_name).count(),
        1,
        "the file named once: {line}"
    );
    assert!(
        err.contains("1 of 2 files could not be classified"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "the good file is classified: {stdout}"
    );
}
