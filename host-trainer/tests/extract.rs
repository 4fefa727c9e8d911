//! Feature extraction over the embedded corpus with tiny random encoders: the cache
//! makes a second run do no encoder work, a settings change recomputes only what depends
//! on it, and a killed run resumes where it stopped.

mod common;

use std::path::{Path, PathBuf};

use common::{files_under, host_trainer_ok};

use host_trainer::data::corpus::{embedded_corpus_dir, embedded_tokenizer};
use host_trainer::data::scan::{ScanOptions, scan};
use host_trainer::encoders::import;
use host_trainer::encoders::random::write_tiny_pair;
use host_trainer::features::cache::{FeatureCache, FeatureIndex};
use host_trainer::features::extract::{ExtractSettings, Extractor};

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: PathBuf,
    speech: PathBuf,
    text: PathBuf,
    tokenizer: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let manifest = root.join("manifest.csv");
    scan(&embedded_corpus_dir(), &ScanOptions::default())
        .unwrap()
        .manifest
        .write_csv(&manifest)
        .unwrap();
    let (hubert, bert) = write_tiny_pair(&root, &embedded_tokenizer()).unwrap();
    let speech = root.join("speech.onnx");
    import(&hubert, None).unwrap().write(&speech).unwrap();
    let text = root.join("text.onnx");
    import(&bert, None).unwrap().write(&text).unwrap();
    Setup {
        tokenizer: bert.join("tokenizer.json"),
        _dir: dir,
        root,
        manifest,
        speech,
        text,
    }
}

fn extract(setup: &Setup, extra: &[&str]) -> String {
    let mut args: Vec<std::ffi::OsString> = vec!["extract".into()];
    for (flag, value) in [
        ("--manifest", &setup.manifest),
        ("--speech-encoder", &setup.speech),
        ("--text-encoder", &setup.text),
        ("--tokenizer", &setup.tokenizer),
        ("--cache", &setup.root.join("features")),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    args.extend(extra.iter().map(Into::into));
    host_trainer_ok(&args)
}

fn feature_files(dir: &Path) -> usize {
    files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .count()
}

#[test]
fn second_run_does_no_encoder_work_and_changes_recompute_only_what_they_must() {
    let setup = setup();
    let first = extract(&setup, &[]);
    assert!(first.contains("features of 168 utterances"), "{first}");
    assert!(first.contains("speech 168 computed"), "{first}");
    assert!(
        first.contains("transcripts 12 computed, 0 cached"),
        "{first}"
    );

    let second = extract(&setup, &[]);
    assert!(second.contains("speech 0 computed"), "{second}");
    assert!(second.contains("168 cached"), "{second}");
    assert!(
        second.contains("transcripts 0 computed, 12 cached"),
        "{second}"
    );

    // The front-end changes: speech is recomputed, the transcripts are not.
    let changed = extract(&setup, &["--no-normalize"]);
    assert!(changed.contains("speech 168 computed"), "{changed}");
    assert!(
        changed.contains("transcripts 0 computed, 12 cached"),
        "{changed}"
    );
    assert_eq!(feature_files(&setup.root.join("features")), 2 * 168 + 12);

    // The index points at features equal to a direct computation.
    let cache_dir = setup.root.join("features");
    let index = FeatureIndex::read(&cache_dir).unwrap();
    assert_eq!(index.entries.len(), 168);
    assert_eq!(index.speech_layers, [5, 6, 7, 8, 9]);
    assert_eq!(index.text_layers, [1, 2, 3, 4, 5, 6]);
    assert_eq!((index.speech_dim, index.text_dim), (32, 32));
    let (id, entry) = index.entries.iter().next().unwrap();
    let manifest = host_trainer::data::manifest::CorpusManifest::read_csv(&setup.manifest).unwrap();
    let wav = std::fs::read(&manifest.get(id).unwrap().path).unwrap();
    let settings = ExtractSettings {
        frontend: emotion_core::FrontendConfig {
            normalize: false,
            ..ExtractSettings::default().frontend
        },
        ..Default::default()
    };
    // ~50 frames per second of the audio the encoder sees (trimmed to the speech).
    let seconds = emotion_core::Frontend::new(settings.frontend.clone())
        .process_bytes(&wav, id)
        .unwrap()
        .len() as f64
        / 16_000.0;
    let extractor = Extractor::new(
        &setup.speech,
        Some((&setup.text, &setup.tokenizer)),
        settings,
    )
    .unwrap();
    let direct = extractor.speech_features(&wav, id).unwrap();
    let cached = FeatureCache::new(&cache_dir).read(&entry.speech).unwrap();
    assert_eq!(direct, cached);
    assert_eq!(entry.frames, direct.frames());
    assert!(
        (entry.frames as f64 - 50.0 * seconds).abs() < 2.0,
        "{} frames for {seconds} s",
        entry.frames
    );
}

#[test]
fn a_killed_run_resumes_without_redoing_finished_files() {
    let setup = setup();
    extract(&setup, &[]);
    let cache_dir = setup.root.join("features");
    let index = FeatureIndex::read(&cache_dir).unwrap();
    // As if killed: five features never written, one left as a half-written temp file.
    let mut lost: Vec<&PathBuf> = index.entries.values().map(|e| &e.speech).take(5).collect();
    lost.dedup();
    for path in &lost {
        std::fs::remove_file(cache_dir.join(path)).unwrap();
    }
    let half = cache_dir
        .join(lost[0])
        .with_file_name(".partial.safetensors.tmp123");
    std::fs::write(&half, b"half").unwrap();
    std::fs::remove_file(FeatureIndex::path_in(&cache_dir)).unwrap();

    let resumed = extract(&setup, &[]);
    assert!(
        resumed.contains(&format!("speech {} computed", lost.len())),
        "{resumed}"
    );
    assert!(
        resumed.contains(&format!("{} cached", 168 - lost.len())),
        "{resumed}"
    );
    assert_eq!(FeatureIndex::read(&cache_dir).unwrap(), index);
}
