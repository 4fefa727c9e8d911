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

/// `run` with a deadline: a command that reads forever (or hangs creating threads) fails
/// the test instead of stalling it.
fn run_within(args: &[&str], bundle: &std::path::Path, seconds: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(args)
        .arg("--bundle")
        .arg(bundle)
        .env_remove("EMOTION_EDGE_BUNDLE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{args:?} still running after {seconds} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn demo_bundle() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle")
}

#[test]
fn thread_counts_past_the_cap_are_refused_by_the_parser() {
    let wav = corpus_file();
    for threads in ["1000000", "0", "65"] {
        let out = run_within(
            &["classify", "--threads", threads, wav.to_str().unwrap()],
            &demo_bundle(),
            60,
        );
        assert_eq!(out.status.code(), Some(2), "--threads {threads}");
        let err = stderr(&out);
        assert!(err.contains("1 to 64"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = run_within(&["bench", "--threads-list", "1,100000"], &demo_bundle(), 60);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1 to 64"), "{}", stderr(&out));
}

#[test]
fn endless_and_huge_files_are_refused_before_they_are_read() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    // A WAV header claiming 4 GiB of 16 kHz audio, on a sparse 8 GiB file (no disk used).
    let huge = dir.path().join("huge.wav");
    let mut file = std::fs::File::create(&huge).unwrap();
    let mut header = Vec::new();
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&u32::MAX.to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // PCM
    header.extend_from_slice(&1u16.to_le_bytes()); // mono
    header.extend_from_slice(&16_000u32.to_le_bytes());
    header.extend_from_slice(&32_000u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&(u32::MAX - 36).to_le_bytes());
    file.write_all(&header).unwrap();
    file.set_len(8 << 30).unwrap();
    drop(file);

    for (args, named) in [
        (vec!["classify", "/dev/zero"], "/dev/zero"),
        (vec!["classify", huge.to_str().unwrap()], "huge.wav"),
        (vec!["bench", "--file", "/dev/zero"], "/dev/zero"),
        (vec!["bench", "--file", huge.to_str().unwrap()], "huge.wav"),
    ] {
        let out = run_within(&args, &demo_bundle(), 60);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_manifest_that_never_ends_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    for entry in std::fs::read_dir(demo_bundle()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, bundle.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::remove_file(bundle.join("manifest.bin")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", bundle.join("manifest.bin")).unwrap();
    let wav = corpus_file();
    let out = run_within(&["classify", wav.to_str().unwrap()], &bundle, 60);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("manifest.bin") && err.contains("16 MiB"),
        "{err}"
    );
}
