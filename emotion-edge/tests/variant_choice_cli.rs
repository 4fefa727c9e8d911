//! The board picks its bundle variant from its own CPU (issue 20): `bench --choose`
//! records the fastest variant of the committed demo bundle for this CPU, `classify`
//! follows the record and says so, a record of another bundle or feature set is ignored
//! with a note, and `bench` rows and `--board` say which CPU and whether the memory fits.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{corpus_file, demo_bundle, output_text as text, quick_bench_args, workspace};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emotion-edge"));
    command
        .args(args)
        .current_dir(workspace())
        .env_remove("EMOTION_EDGE_BUNDLE")
        .env_remove("TRACT_CPU_ISA")
        .env_remove("TRACT_DOTPROD_DISABLE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// `bench --choose` on `bundle`, quick: 1 thread, 1 s clip, 2 runs per variant.
fn choose(bundle: &Path, choice_file: Option<&Path>) -> (String, String) {
    let mut args = vec![
        "bench",
        "--choose",
        "--bundle",
        bundle.to_str().unwrap(),
        "--threads",
        "1",
        "--seconds",
        "1",
        "--repeats",
        "2",
        "--warmup",
        "1",
    ];
    if let Some(file) = choice_file {
        args.extend(["--choice-file", file.to_str().unwrap()]);
    }
    let out = run(&args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    (stdout, stderr)
}

/// `classify --json` of one corpus file: its stderr and the variant it reports loading.
fn classify(bundle: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let file = corpus_file();
    let mut args = vec![
        "classify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--threads",
        "1",
        "--json",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args, env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    stderr
}

/// The stderr line that says which variant was loaded and why.
fn variant_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("variant "))
        .collect();
    assert_eq!(lines.len(), 1, "one line says which variant: {stderr}");
    lines[0]
}

#[test]
fn bench_choose_records_the_fastest_variant_and_classify_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("choice.json");
    let (stdout, _) = choose(&demo_bundle(), Some(&path));

    // The record.
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(record["format"], 1);
    assert!(
        record["created_by"]
            .as_str()
            .unwrap()
            .starts_with("emotion-edge ")
    );
    let date = record["date"].as_str().unwrap();
    assert!(
        date.len() == 20 && date.as_bytes()[10] == b'T' && date.ends_with('Z'),
        "{date}"
    );
    let cpu = &record["cpu"];
    assert_eq!(cpu["arch"], std::env::consts::ARCH);
    assert!(!cpu["model"].as_str().unwrap().is_empty(), "{cpu}");
    assert!(cpu["features"].is_array(), "{cpu}");
    assert!(cpu["class"].is_string(), "{cpu}");
    assert!(cpu.get("tract_cpu_isa").is_none(), "unset: {cpu}");
    let manifest = std::fs::read(demo_bundle().join("manifest.bin")).unwrap();
    assert_eq!(
        record["bundle"]["manifest_sha256"],
        emotion_core::bundle::sha256_hex(&manifest)
    );
    assert_eq!(record["bundle"]["default_variant"], "fp32");
    assert_eq!(record["threads"], 1);
    assert_eq!(record["repeats"], 2);
    let variants = record["variants"].as_array().unwrap();
    let names: Vec<&str> = variants
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["fp32", "int8"],
        "every variant, in the bundle's order"
    );
    for v in variants {
        assert!(v["median_ms"].as_f64().unwrap() > 0.0, "{v}");
        assert!(v["speech_encoder_ms"].as_f64().unwrap() > 0.0, "{v}");
    }
    let fastest = record["fastest"].as_str().unwrap();
    let best = variants
        .iter()
        .min_by(|a, b| {
            a["median_ms"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["median_ms"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(best["variant"], fastest);

    // What bench printed: the CPU above the table, a row per variant, the record.
    assert!(
        stdout.contains(&format!("cpu {}", cpu["model"].as_str().unwrap())),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("fp32 "))
            && stdout.lines().any(|l| l.starts_with("int8 ")),
        "{stdout}"
    );
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("fastest here: "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        verdict.starts_with(&format!("fastest here: {fastest} (fp32 ")),
        "{verdict}"
    );
    assert!(
        verdict.ends_with(&format!(
            "recorded in {} for this CPU and bundle",
            path.display()
        )),
        "{verdict}"
    );

    // classify follows the record, and says so in its one line.
    let stderr = classify(
        &demo_bundle(),
        &["--choice-file", path.to_str().unwrap()],
        &[],
    );
    let line = variant_line(&stderr);
    assert!(
        line.starts_with(&format!(
            "variant {fastest}: fastest on this CPU as measured by `emotion-edge bench --choose` ({}",
            path.display()
        )),
        "{line}"
    );
    assert!(line.contains(&date[..10]), "{line}");
    if fastest != "fp32" {
        assert!(line.contains("the bundle's default is fp32"), "{line}");
    }

    // --variant wins; when the record shows it slower, the line says so.
    let slower = if fastest == "fp32" { "int8" } else { "fp32" };
    let stderr = classify(
        &demo_bundle(),
        &["--choice-file", path.to_str().unwrap(), "--variant", slower],
        &[],
    );
    let line = variant_line(&stderr);
    assert!(
        line.starts_with(&format!("variant {slower}: --variant")),
        "{line}"
    );
    assert!(
        line.contains(&format!("measured here, {slower} is slower than {fastest}")),
        "{line}"
    );

    // A record of another bundle is ignored with a note; the CPU rule decides.
    let mut other = record.clone();
    other["bundle"]["manifest_sha256"] = Value::from("0".repeat(64));
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let stderr = classify(
        &demo_bundle(),
        &["--choice-file", other_path.to_str().unwrap()],
        &[],
    );
    let line = variant_line(&stderr);
    assert!(line.starts_with("variant int8: the rule for "), "{line}");
    assert!(
        line.contains("is ignored: it was made for another bundle"),
        "{line}"
    );

    // TRACT_CPU_ISA changes the kernels tract may use: the record no longer applies.
    let editable = cpu["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|f| *f != "neon");
    if let Some(feature) = editable {
        let spec = format!("-{feature}");
        let stderr = classify(
            &demo_bundle(),
            &["--choice-file", path.to_str().unwrap()],
            &[("TRACT_CPU_ISA", spec.as_str())],
        );
        let line = variant_line(&stderr);
        assert!(line.contains("is ignored: it was made with SIMD"), "{line}");
    }
}

#[test]
fn the_record_defaults_to_the_bundle_directory() {
    // A copy of the demo bundle, so the repository's stays untouched.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    for entry in std::fs::read_dir(demo_bundle()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "variant-choice.json" {
            std::fs::copy(entry.path(), bundle.join(entry.file_name())).unwrap();
        }
    }
    // Without a record: the CPU rule, which never takes the bundle's default.
    let line = classify(&bundle, &[], &[]);
    let line = variant_line(&line).to_string();
    assert!(line.starts_with("variant int8: the rule for "), "{line}");
    assert!(line.contains("no measurement recorded here"), "{line}");
    assert!(line.contains("the bundle's default is fp32"), "{line}");

    choose(&bundle, None);
    let path = bundle.join("variant-choice.json");
    assert!(path.is_file());
    let stderr = classify(&bundle, &[], &[]);
    let line = variant_line(&stderr);
    assert!(
        line.contains(&format!("bench --choose` ({}", path.display())),
        "{line}"
    );
}

#[test]
fn bench_rows_name_the_cpu_and_the_board_check_says_whether_memory_fits() {
    let bundle = demo_bundle();
    let common = quick_bench_args(&bundle);
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let mut args = common.clone();
    args.extend(["--json", "--board", "pi4"]);
    let out = run(&args, &[("TRACT_CPU_ISA", "")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let row: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert!(!row["cpu"]["model"].as_str().unwrap().is_empty(), "{row}");
    assert!(row["cpu"]["features"].is_array(), "{row}");
    assert_eq!(row["cpu"]["tract_cpu_isa"], "", "set (if empty): {row}");
    assert!(
        variant_line(&stderr).starts_with("variant int8: the rule for"),
        "{stderr}"
    );
    // With --json the memory line goes to stderr, so stdout stays JSON Lines.
    assert!(
        stderr.contains("the pi4 profile's MemoryMax of 608 MB"),
        "{stderr}"
    );
    assert!(stdout.lines().all(|l| l.starts_with('{')), "{stdout}");

    // The table: the CPU first, the memory verdict after it; the exit code is the same
    // whether it fits or not.
    let mut args = common.to_vec();
    args.extend(["--board", "zero2w"]);
    let out = run(&args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let cpu_line = stdout.lines().nth(1).unwrap();
    assert!(cpu_line.starts_with("cpu "), "{stdout}");
    assert!(cpu_line.contains("; SIMD "), "{cpu_line}");
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("memory: peak RSS ")
            && last.contains("the zero2w profile's MemoryMax of 272 MB"),
        "{stdout}"
    );
    assert!(
        variant_line(&stderr).starts_with("variant int8: the zero2w board profile pins it"),
        "{stderr}"
    );
}

#[test]
fn choose_refuses_what_it_cannot_do_and_says_why() {
    let bundle = demo_bundle();
    let out = run(
        &[
            "bench",
            "--choose",
            "--variant",
            "int8",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--variant"), "{stderr}");

    // An unknown variant names the ones the bundle has.
    let file = corpus_file();
    let out = run(
        &[
            "classify",
            "--bundle",
            bundle.to_str().unwrap(),
            "--variant",
            "int4",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("it has fp32, int8"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A choice file where none can be written: the error says what to do.
    let out = run(
        &[
            "bench",
            "--choose",
            "--bundle",
            bundle.to_str().unwrap(),
            "--threads",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--seconds",
            "0.5",
            "--choice-file",
            "/nonexistent/dir/choice.json",
        ],
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--choice-file"), "{stderr}");

    // A TRACT_CPU_ISA that would make tract panic is refused first.
    let foreign = if std::env::consts::ARCH == "x86_64" {
        "-dotprod"
    } else {
        "-avx2"
    };
    let out = run(
        &[
            "classify",
            "--bundle",
            bundle.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[("TRACT_CPU_ISA", foreign)],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("remove it from TRACT_CPU_ISA"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
