//! `host-trainer data scan|split` as a user runs them: on a folder laid out with every
//! quirk of the TESS download, and on the embedded synthetic corpus.

mod common;

use std::path::{Path, PathBuf};

use emotion_core::Emotion;
use host_trainer::data::manifest::CorpusManifest;
use host_trainer::data::splits::SplitSet;

use common::{files_under, host_trainer, text};

/// A short 16-bit mono tone.
fn write_wav(path: &Path, sample_rate: u32, seconds: f64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let frames = (seconds * f64::from(sample_rate)) as usize;
    for i in 0..frames {
        let t = i as f64 / f64::from(sample_rate);
        writer
            .write_sample((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
            .unwrap();
    }
    writer.finalize().unwrap();
}

/// The download's layout: a duplicated top folder, TESS's folder spellings, `ps`,
/// one 96 kHz file, plus a badly named file and a stray text file.
fn quirky_tess(root: &Path) -> Vec<(&'static str, &'static str, Emotion, u32)> {
    let top = root.join("TESS Toronto emotional speech set data");
    let nested = root
        .join("tess toronto emotional speech set data")
        .join("TESS Toronto emotional speech set data");
    let files = vec![
        ("OAF_angry", "OAF_back_angry.wav", Emotion::Angry, 24_414),
        ("OAF_Fear", "OAF_food_fear.wav", Emotion::Fear, 96_000),
        (
            "OAF_Pleasant_surprise",
            "OAF_back_ps.wav",
            Emotion::PleasantSurprise,
            24_414,
        ),
        ("OAF_Sad", "OAF_back_sad.wav", Emotion::Sad, 24_414),
        (
            "YAF_pleasant_surprised",
            "YAF_back_ps.wav",
            Emotion::PleasantSurprise,
            24_414,
        ),
        (
            "YAF_disgust",
            "YAF_food_disgust.wav",
            Emotion::Disgust,
            24_414,
        ),
        (
            "YAF_neutral",
            "YAF_food_neutral.WAV",
            Emotion::Neutral,
            24_414,
        ),
    ];
    for (folder, name, _, rate) in &files {
        write_wav(&top.join(folder).join(name), *rate, 1.5);
        write_wav(&nested.join(folder).join(name), *rate, 1.5);
    }
    write_wav(
        &top.join("OAF_angry").join("OAF back angry.wav"),
        24_414,
        1.0,
    );
    std::fs::write(top.join("README.txt"), "not audio").unwrap();
    files
}

#[test]
fn scan_lists_every_tess_file_once_with_labels_from_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tess");
    let files = quirky_tess(&root);
    let manifest_path = dir.path().join("out/manifest.csv");

    let out = host_trainer(&[
        "data",
        "scan",
        root.to_str().unwrap(),
        "--out",
        manifest_path.to_str().unwrap(),
        "--transcript",
        "say the word {word}",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("OAF back angry.wav"),
        "the bad name is reported: {stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("7 duplicate files counted once"),
        "{stdout}"
    );
    assert!(stdout.contains("| fear | 1 | 0 | 1 |"), "{stdout}");

    let manifest = CorpusManifest::read_csv(&manifest_path).unwrap();
    assert_eq!(manifest.len(), files.len());
    for (_, name, emotion, rate) in files {
        let stem = name.split('.').next().unwrap();
        let mut parts = stem.split('_');
        let (speaker, word) = (parts.next().unwrap(), parts.next().unwrap());
        let id = format!("{speaker}_{word}_{}", emotion.code());
        let entry = manifest.get(&id).unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!(
            (entry.speaker.as_str(), entry.word.as_str()),
            (speaker, word)
        );
        assert_eq!(entry.emotion, emotion);
        assert_eq!(entry.sample_rate, rate);
        assert!(
            (entry.duration_s - 1.5).abs() < 1e-3,
            "{}",
            entry.duration_s
        );
        assert_eq!(entry.transcript, format!("say the word {word}"));
        assert!(entry.path.ends_with(name), "{}", entry.path.display());
    }
}

#[test]
fn scan_of_a_folder_without_tess_files_fails_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = host_trainer(&[
        "data",
        "scan",
        dir.path().to_str().unwrap(),
        "--out",
        "/dev/null",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot tell which corpus"),
        "{}",
        text(&out.stderr)
    );

    let missing = dir.path().join("nowhere");
    let out = host_trainer(&["data", "scan", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read corpus directory"));
}

#[test]
fn bad_template_and_ratios_are_refused_before_any_work() {
    let out = host_trainer(&["data", "scan", "--transcript", "say the word"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("{word}"),
        "{}",
        text(&out.stderr)
    );
    let out = host_trainer(&["data", "split", "--ratios", "70,30"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("three numbers"),
        "{}",
        text(&out.stderr)
    );
}

fn embedded_corpus() -> PathBuf {
    host_trainer::data::corpus::embedded_corpus_dir()
}

#[test]
fn embedded_corpus_scans_to_every_file_and_splits_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_path = dir.path().join("manifest.csv");
    let out = host_trainer(&[
        "data",
        "scan",
        embedded_corpus().to_str().unwrap(),
        "--out",
        manifest_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).is_empty(),
        "no warnings: {}",
        text(&out.stderr)
    );

    let wavs: Vec<PathBuf> = files_under(&embedded_corpus())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    let manifest = CorpusManifest::read_csv(&manifest_path).unwrap();
    assert_eq!(manifest.len(), wavs.len());
    assert!(manifest.len() >= 2 * 7 * 12);
    let counts = manifest.counts();
    assert_eq!(counts.speakers, ["OAF", "YAF"]);
    for entry in manifest.entries() {
        // The folder is an independent witness of the label (TESS spells it its own way).
        let folder = entry
            .path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let (speaker, emotion) = folder.split_once('_').unwrap();
        assert_eq!(speaker, entry.speaker);
        assert_eq!(Emotion::from_code(emotion), Some(entry.emotion), "{folder}");
        assert_eq!(entry.sample_rate, 24_414);
        assert!(
            (1.0..3.0).contains(&entry.duration_s),
            "{}",
            entry.duration_s
        );
    }
    for emotion in Emotion::ALL {
        assert_eq!(counts.get(emotion, "OAF"), counts.get(emotion, "YAF"));
        assert!(counts.get(emotion, "OAF") >= 12);
    }

    // Two runs, same seed: byte-identical splits files; the file checks out.
    let splits = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let out = host_trainer(&[
            "data",
            "split",
            "--manifest",
            manifest_path.to_str().unwrap(),
            "--out",
            path.to_str().unwrap(),
            "--seed",
            seed,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        path
    };
    let (a, b, c) = (
        splits("a.json", "42"),
        splits("b.json", "42"),
        splits("c.json", "43"),
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    let set = SplitSet::read_json(&a).unwrap();
    set.check(&manifest).unwrap();
}
