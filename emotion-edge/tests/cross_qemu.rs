//! The board's binary, cross-compiled for aarch64 (and armv7) and run under qemu,
//! classifies like the host's: same emotions, probabilities within 1e-4, on the embedded
//! demo bundle.
//!
//! Each test first brings the cross build up to date (`cargo build -p emotion-edge
//! --target …` into the same target directory, Debian's cross gcc as linker; quick when
//! nothing changed), so it never compares a stale binary. The aarch64 build has the
//! microphone (`--features mic`, as `.ci/run` and the boards build it). Where the cross
//! toolchain or qemu is missing, the aarch64 test fails under CI (`.ci/run` installs
//! both) and is skipped with a message elsewhere; the armv7 test (32-bit Pi OS, built
//! without the microphone) runs only where its toolchain is installed, which CI's is
//! not.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const TOLERANCE: f64 = 1e-4;

/// A board architecture and how to run its binaries here.
struct Cross {
    target: &'static str,
    qemu: &'static str,
    /// The sysroot qemu loads the dynamic linker and libc from (Debian's cross toolchain).
    sysroot: &'static str,
    /// The cross gcc `.cargo/config.toml` links with.
    linker: &'static str,
    /// ELF `e_machine`.
    machine: u16,
    /// Whether CI must have it.
    required_in_ci: bool,
    /// Cargo features of the build: the microphone where CI has the target's ALSA
    /// (`libasound2-dev:arm64`), so the binary checked is the one `.ci/run` builds and
    /// boards run.
    features: &'static str,
}

const AARCH64: Cross = Cross {
    target: "aarch64-unknown-linux-gnu",
    qemu: "qemu-aarch64-static",
    sysroot: "/usr/aarch64-linux-gnu",
    linker: "aarch64-linux-gnu-gcc",
    machine: 183,
    required_in_ci: true,
    features: "mic",
};

const ARMV7: Cross = Cross {
    target: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm-static",
    sysroot: "/usr/arm-linux-gnueabihf",
    linker: "arm-linux-gnueabihf-gcc",
    machine: 40,
    required_in_ci: false,
    features: "",
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the board's binary for `cross` beside the host's (same target directory and
/// profile) and returns its path, or why it could not be built.
fn build(cross: &Cross) -> Result<PathBuf, String> {
    let host = Path::new(env!("CARGO_BIN_EXE_emotion-edge"));
    let profile_dir = host.parent().expect("the binary is in a profile folder");
    let target_dir = profile_dir
        .parent()
        .expect("the profile folder is in the target dir");
    let profile = profile_dir.file_name().expect("a profile name");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace())
        .args([
            "build",
            "--quiet",
            "-p",
            "emotion-edge",
            "--target",
            cross.target,
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if !cross.features.is_empty() {
        command.args(["--features", cross.features]);
    }
    if profile == "release" {
        command.arg("--release");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        return Err(format!("the {} build failed:\n{tail}", cross.target));
    }
    Ok(target_dir
        .join(cross.target)
        .join(profile)
        .join("emotion-edge"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Fails under CI (where `.ci/run` provides what is required), skips elsewhere.
/// The board's binary for `cross`, built; `None` (after [`missing`]) when the cross
/// tools are not here or the build fails.
fn emulated_binary(cross: &Cross) -> Option<PathBuf> {
    // Checked first: without them the build would compile for minutes, then fail to link.
    for program in [cross.linker, cross.qemu] {
        if !on_path(program) {
            missing(cross, &format!("{program} is not installed"));
            return None;
        }
    }
    build(cross).map_err(|why| missing(cross, &why)).ok()
}

fn missing(cross: &Cross, what: &str) {
    let message = format!(
        "{what}; see docs/board-guide.md, \"Building for a Raspberry Pi\": the cross gcc, qemu-user-static and `cargo build -p emotion-edge --target {}`",
        cross.target
    );
    if cross.required_in_ci && std::env::var_os("CI").is_some() {
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
    classify_with_env(runner, binary, extra, files, &[])
}

/// As [`classify`], with environment variables set for the child (`QEMU_CPU` picks the
/// emulated core, `TRACT_CPU_ISA` edits the features tract picks its kernels from).
fn classify_with_env(
    runner: &[&str],
    binary: &Path,
    extra: &[&str],
    files: &[PathBuf],
    env: &[(&str, &str)],
) -> Vec<Value> {
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
        .envs(env.iter().copied())
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
    compare(&AARCH64);
}

#[test]
fn the_armv7_build_under_qemu_classifies_like_the_host() {
    compare(&ARMV7);
}

/// Each CPU class the board supports runs its own int8 kernels (tract picks them from
/// the features the CPU reports): the same emotions and probabilities within the
/// tolerance on every one. aarch64 under qemu as a Cortex-A53 (Zero 2 W) and a Cortex-A72
/// (Pi 4): ARMv8.0 NEON, int8 products widened to 16 bits; as a Cortex-A76 (Pi 5):
/// ARMv8.2 dot product (SDOT). x86: this machine's own kernels and, through tract's
/// `TRACT_CPU_ISA`, those of an AVX2 + FMA CPU without AVX-512 or VNNI. The int8 runs
/// force integer kernels (`EMOTION_EDGE_INT8=integer`): the demo bundle's products are
/// small enough to compute in float everywhere otherwise.
#[test]
fn every_cpu_class_computes_the_same_int8_and_fp32_answers() {
    let cross = &AARCH64;
    let Some(binary) = emulated_binary(cross) else {
        return;
    };
    let host = Path::new(env!("CARGO_BIN_EXE_emotion-edge"));
    let files: Vec<PathBuf> = corpus_files().into_iter().step_by(2).collect();
    let qemu = [cross.qemu, "-L", cross.sysroot];
    for variant in ["int8", "fp32"] {
        let extra = ["--keyword-from-name", "--variant", variant];
        let compute: &[(&str, &str)] = match variant {
            "int8" => &[(emotion_core::int8::INT8_COMPUTE_ENV, "integer")],
            _ => &[],
        };
        let expected = classify_with_env(&[], host, &extra, &files, compute);
        let classes: [CpuClass; 4] = [
            (
                "x86-64 AVX2 + FMA (TRACT_CPU_ISA)",
                &[],
                host,
                &[(
                    "TRACT_CPU_ISA",
                    "-avx512f,-avx512vnni,-avxvnni,-avx512fp16,-amx-int8,-amx-bf16",
                )],
            ),
            (
                "aarch64 Cortex-A53 (Zero 2 W)",
                &qemu,
                &binary,
                &[("QEMU_CPU", "cortex-a53")],
            ),
            (
                "aarch64 Cortex-A72 (Pi 4)",
                &qemu,
                &binary,
                &[("QEMU_CPU", "cortex-a72")],
            ),
            (
                "aarch64 Cortex-A76 (Pi 5)",
                &qemu,
                &binary,
                &[("QEMU_CPU", "cortex-a76")],
            ),
        ];
        for (class, runner, program, env) in classes {
            let env: Vec<(&str, &str)> = env.iter().chain(compute).copied().collect();
            let got = classify_with_env(runner, program, &extra, &files, &env);
            let worst = worst_difference(&expected, &got, &format!("{class} {variant}"));
            eprintln!(
                "{variant} on {class}: {} files, same emotions as native {}, max |Δp| {worst:.2e}",
                files.len(),
                std::env::consts::ARCH
            );
        }
    }
}

/// A CPU class to compare: its name, the runner (e.g. qemu) and program, and the
/// environment that selects it.
type CpuClass<'a> = (&'a str, &'a [&'a str], &'a Path, &'a [(&'a str, &'a str)]);

/// The largest probability difference between two runs over the same files; panics
/// when an emotion, a head or a probability (beyond [`TOLERANCE`]) differs.
fn worst_difference(expected: &[Value], got: &[Value], what: &str) -> f64 {
    assert_eq!(got.len(), expected.len(), "{what}");
    let mut worst = 0.0f64;
    for (native, other) in expected.iter().zip(got) {
        let file = &native["file"];
        assert_eq!(other["file"], *file);
        assert_eq!(other["model"], native["model"], "{file} {what}");
        assert_eq!(other["emotion"], native["emotion"], "{file} {what}");
        let native_p = native["probabilities"].as_object().unwrap();
        assert_eq!(native_p.len(), 7);
        for (emotion, p) in native_p {
            let q = other["probabilities"][emotion].as_f64().unwrap_or(f64::NAN);
            let difference = (p.as_f64().unwrap_or(f64::NAN) - q).abs();
            assert!(
                difference <= TOLERANCE,
                "{file} {what}: p({emotion}) differs by {difference:.2e}"
            );
            worst = worst.max(difference);
        }
    }
    worst
}

fn compare(cross: &Cross) {
    let Some(binary) = emulated_binary(cross) else {
        return;
    };
    assert_eq!(
        elf_machine(&binary),
        cross.machine,
        "{} is not a {} binary",
        binary.display(),
        cross.target
    );
    let host = Path::new(env!("CARGO_BIN_EXE_emotion-edge"));
    let files = corpus_files();
    let qemu = [cross.qemu, "-L", cross.sysroot];

    // Both heads (fusion with the keyword table, speech alone) and both variants.
    for extra in [
        &["--keyword-from-name"][..],
        &["--no-text"][..],
        &["--keyword-from-name", "--variant", "int8"][..],
        &["--no-text", "--variant", "int8"][..],
    ] {
        let expected = classify(&[], host, extra, &files);
        let got = classify(&qemu, &binary, extra, &files);
        let worst = worst_difference(&expected, &got, &format!("{extra:?} on {}", cross.target));
        eprintln!(
            "{extra:?}: {} files, same emotions on {} (qemu) and {}, max |Δp| {worst:.2e}",
            files.len(),
            cross.target,
            std::env::consts::ARCH
        );
    }
}
