//! The int8 variant is never slower than fp32 on the CPU the tests run on, nor on the
//! other x86 class tract can be restricted to here (AVX2 + FMA, no VNNI, through its
//! `TRACT_CPU_ISA` knob): on a CPU without fast int8 kernels the board computes the
//! quantised products in float (`emotion_core::int8`), where tract's int8 kernel ran
//! HuBERT-base's products at half the speed of its f32 one.
//!
//! A guard against a cliff (the one found was 2–22 ×), not a benchmark: the speech
//! encoder's median over many interleaved runs of the committed demo bundle, with a
//! generous margin so a busy machine does not fail it. `scripts/bench.sh` measures the
//! base-size figures.

use std::process::Command;

use serde_json::Value;

mod common;
use common::demo_bundle as bundle;

/// int8 may take at most this much longer than fp32 (noise on a shared machine); the
/// cliff it guards against was twice as slow and worse.
const MARGIN: f64 = 1.3;
/// Plus this much, for the tiny encoder's sub-millisecond stages.
const SLACK_MS: f64 = 0.5;

/// The speech encoder's median time (ms) for `variant`, from `emotion-edge bench --json`.
fn encoder_ms(variant: &str, env: &[(&str, &str)]) -> f64 {
    let output = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args(["bench", "--json", "--threads-list", "1", "--seconds", "3"])
        .args(["--warmup", "3", "--repeats", "15", "--variant", variant])
        .arg("--bundle")
        .arg(bundle())
        .envs(env.iter().copied())
        .output()
        .expect("emotion-edge runs");
    assert!(
        output.status.success(),
        "bench {variant}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).unwrap();
    let row: Value =
        serde_json::from_str(line.lines().last().expect("a JSON line")).expect("a JSON row");
    let ms = row["speech_encoder_ms"].as_f64().unwrap_or(f64::NAN);
    assert!(ms.is_finite() && ms > 0.0, "bench {variant}: {row}");
    ms
}

/// Measures both variants three times, interleaved, and compares the best of each (the
/// run least disturbed by whatever else the machine does).
fn int8_is_not_slower(class: &str, env: &[(&str, &str)]) {
    let (mut fp32, mut int8) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..3 {
        fp32 = fp32.min(encoder_ms("fp32", env));
        int8 = int8.min(encoder_ms("int8", env));
    }
    eprintln!("{class}: speech encoder, 3 s: fp32 {fp32:.2} ms, int8 {int8:.2} ms");
    assert!(
        int8 <= fp32 * MARGIN + SLACK_MS,
        "{class}: the int8 variant takes {int8:.2} ms against fp32's {fp32:.2} ms"
    );
}

#[test]
fn int8_is_not_slower_than_fp32_on_this_cpu() {
    int8_is_not_slower(&format!("this CPU ({})", std::env::consts::ARCH), &[]);
}

#[test]
fn int8_is_not_slower_than_fp32_with_avx2_kernels_only() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipped: TRACT_CPU_ISA restricts x86 kernels only");
        return;
    }
    int8_is_not_slower(
        "x86-64 AVX2 + FMA (TRACT_CPU_ISA)",
        &[(
            "TRACT_CPU_ISA",
            "-avx512f,-avx512vnni,-avxvnni,-avx512fp16,-amx-int8,-amx-bf16",
        )],
    );
}
