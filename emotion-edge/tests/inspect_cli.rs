//! `emotion-edge inspect` as a user runs it: good files described, bad ones named,
//! the rest still processed.

use std::path::PathBuf;
use std::process::Command;

fn corpus_file(folder: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/synthetic-tess/TESS Toronto emotional speech set data")
        .join(folder)
        .join(name)
}

#[test]
fn inspect_reports_each_file_and_names_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let good = corpus_file("OAF_angry", "OAF_back_angry.wav");

    let out = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .arg("inspect")
        .arg(&empty)
        .arg(&good)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a bad file makes the run fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("empty.wav"), "{stderr}");
    assert!(stderr.contains("1 of 2 files"), "{stderr}");

    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let info = &lines[0];
    assert_eq!(info["sample_rate"], 24_414);
    assert_eq!(info["output_rate"], 16_000);
    let seconds = info["seconds"].as_f64().unwrap();
    let samples = info["output_samples"].as_u64().unwrap() as f64;
    assert!((samples / 16_000.0 - seconds).abs() < 1e-3, "{info}");
}

#[test]
fn inspect_without_files_shows_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .arg("inspect")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage"));
}
