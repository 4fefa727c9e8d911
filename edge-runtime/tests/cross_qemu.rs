//! The board's binary, cross-compiled for aarch64 and run under qemu, classifies like the
//! host's: same emotions, probabilities within 1e-4, on the embedded demo bundle.
//!
//! `.ci/run` builds the aarch64 binary first (`cargo build -p edge-runtime --target
//! aarch64-unknown-linux-gnu`, Debian's cross gcc as linker). Without it, or without
//! `qemu-aarch64-static`, the test fails under CI and is skipped (with a message)
//! elsewhere. `EMOTION_EDGE_CROSS_BIN` names another binary to check.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TARGET: &str = "aarch64-unknown-linux-gnu";
const QEMU: &str = "qemu-aarch64-static";
/// The sysroot qemu loads the dynamic linker and libc from (Debian's cross toolchain).
const SYSROOT: &str = "/usr/aarch64-linux-gnu";
/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;
const TOLERANCE: f64 = 1e-4;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The aarch64 binary: `EMOTION_EDGE_CROSS_BIN`, else the one cargo builds beside the
/// host's (`TARGET_DIR/aarch64-unknown-linux-gnu/debug/emotion-edge`).
fn cross_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("EMOTION_EDGE_CROSS_BIN") {
        return PathBuf::from(path);
    }
    let host = Path::new(env!("CARGO_BIN_EXE_emotion-edge"));
    let profile_dir = host.parent().expect("the binary is in a profile folder");
    let target_dir = profile_dir
        .parent()
        .expect("the profile folder is in the target dir");
    target_dir
        .join(TARGET)
        .join(profile_dir.file_name().expect("a profile name"))
        .join("emotion-edge")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Fails under CI (where `.ci/run` provides everything), skips elsewhere.
fn missing(what: &str) {
    let message = format!(
        "{what}; `bash .ci/run` installs gcc-aarch64-linux-gnu and qemu-user-static and builds it with `cargo build -p edge-runtime --target {TARGET}`"
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
}

fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).expect("the binary reads");
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF binary",
        path.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// 16 files spread over the corpus's speakers, emotions and words.
fn corpus_files() -> Vec<PathBuf> {
    let root = workspace().join("data/synthetic-tess/TESS Toronto emotional speech set data");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("the embedded corpus is there")
        .flat_map(|folder| std::fs::read_dir(folder.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 168);
    files.into_iter().step_by(11).collect()
}

/// `emotion-edge classify --json` through `runner` (empty: run directly), one object per
/// file.
fn classify(runner: &[&str], binary: &Path, extra: &[&str], files: &[PathBuf]) -> Vec<Value> {
    let (program, prefix) = match runner {
        [] => (binary.as_os_str().to_owned(), Vec::new()),
        [program, args @ ..] => {
            let mut prefix: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            prefix.push(binary.into());
            ((*program).into(), prefix)
        }
    };
    let output = Command::new(program)
        .args(prefix)
        .arg("classify")
        .arg("--json")
        .arg("--bundle")
        .arg(workspace().join("data/demo-bundle"))
        // One thread: under qemu's user-mode emulation tract's rayon pool is some 25×
        // slower than one thread (emulated atomics and spinning), which says nothing
        // about a board; the kernels compared are the same either way.
        .args(["--threads", "1"])
        .args(extra)
        .args(files)
        .output()
        .expect("emotion-edge runs");
    assert!(
        output.status.success(),
        "{runner:?} {}: {}",
        binary.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[test]
fn the_aarch64_build_under_qemu_classifies_like_the_host() {
    let cross = cross_binary();
    if !cross.is_file() {
        return missing(&format!("no aarch64 build at {}", cross.display()));
    }
    if !on_path(QEMU) {
        return missing(&format!("{QEMU} is not installed"));
    }
    assert_eq!(
        elf_machine(&cross),
        EM_AARCH64,
        "{} is not an aarch64 binary",
        cross.display()
    );
    let host = Path::new(env!("CARGO_BIN_EXE_emotion-edge"));
    let files = corpus_files();
    let qemu = [QEMU, "-L", SYSROOT];

    // Both heads (fusion with the keyword table, speech alone) and both variants.
    for extra in [
        &["--keyword-from-name"][..],
        &["--no-text"][..],
        &["--keyword-from-name", "--variant", "int8"][..],
        &["--no-text", "--variant", "int8"][..],
    ] {
        let expected = classify(&[], host, extra, &files);
        let got = classify(&qemu, &cross, extra, &files);
        assert_eq!(got.len(), files.len(), "{extra:?}");
        let mut worst = 0.0f64;
        for (x86, arm) in expected.iter().zip(&got) {
            let file = &x86["file"];
            assert_eq!(arm["file"], *file);
            assert_eq!(arm["model"], x86["model"], "{file} {extra:?}");
            assert_eq!(arm["emotion"], x86["emotion"], "{file} {extra:?}");
            let (x86_p, arm_p) = (
                x86["probabilities"].as_object().unwrap(),
                &arm["probabilities"],
            );
            assert_eq!(x86_p.len(), 7);
            for (emotion, p) in x86_p {
                let difference = (p.as_f64().unwrap() - arm_p[emotion].as_f64().unwrap()).abs();
                assert!(
                    difference <= TOLERANCE,
                    "{file} {extra:?}: p({emotion}) differs by {difference:.2e} on aarch64"
                );
                worst = worst.max(difference);
            }
        }
        eprintln!(
            "{extra:?}: {} files, same emotions on aarch64 (qemu) and {}, max |Δp| {worst:.2e}",
            files.len(),
            std::env::consts::ARCH
        );
    }
}
