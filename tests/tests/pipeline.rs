//! The whole host pipeline on a small slice of the embedded corpus: scan → split →
//! tiny random encoders → extract → train speech, text and fusion → evaluate, twice
//! with the same seed: the metrics must be identical.

use std::path::{Path, PathBuf};

use host_trainer::corpus::{embedded_corpus_dir, embedded_tokenizer};
use host_trainer::encoders::import;
use host_trainer::encoders::random::write_tiny_pair;
use host_trainer::evaluation::{Provenance, write_evaluation};
use host_trainer::extract::{ExtractSettings, Extractor, extract};
use host_trainer::feature_cache::FeatureCache;
use host_trainer::heads::ModelKind;
use host_trainer::manifest::Manifest;
use host_trainer::runs::{evaluate_run, train_run};
use host_trainer::splits::{SplitConfig, SplitSet};
use host_trainer::tess::{ScanOptions, scan};
use host_trainer::training::TrainConfig;

/// Words kept in the slice: 4 words × 2 speakers × 7 emotions = 56 utterances.
const WORDS: [&str; 4] = ["back", "dog", "king", "youth"];

struct Prepared {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: Manifest,
    splits: SplitSet,
}

fn prepare() -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let full = scan(&embedded_corpus_dir(), &ScanOptions::default())
        .unwrap()
        .manifest;
    let manifest = Manifest::new(
        full.entries()
            .iter()
            .filter(|e| WORDS.contains(&e.word.as_str()))
            .cloned()
            .collect(),
    );
    assert_eq!(manifest.len(), 56);
    let splits = SplitSet::make(&manifest, SplitConfig::default()).unwrap();

    let (hubert, bert) = write_tiny_pair(&root, &embedded_tokenizer()).unwrap();
    import(&hubert, None)
        .unwrap()
        .write(&root.join("speech.onnx"))
        .unwrap();
    import(&bert, None)
        .unwrap()
        .write(&root.join("text.onnx"))
        .unwrap();
    let extractor = Extractor::new(
        &root.join("speech.onnx"),
        Some((&root.join("text.onnx"), &bert.join("tokenizer.json"))),
        ExtractSettings::default(),
    )
    .unwrap();
    let (index, report) = extract(
        &extractor,
        &manifest,
        &[],
        &FeatureCache::new(root.join("features")),
        2,
        false,
    )
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(index.entries.len(), 56);
    Prepared {
        _dir: dir,
        root,
        manifest,
        splits,
    }
}

/// Trains the three models on the random split with `seed`, evaluates them and returns
/// the bytes of metrics.json.
fn train_and_evaluate(prepared: &Prepared, seed: u64, runs: &Path) -> Vec<u8> {
    let split = prepared.splits.get("random").unwrap();
    let features = prepared.root.join("features");
    let mut evaluations = Vec::new();
    for model in [ModelKind::Speech, ModelKind::Text, ModelKind::Fusion] {
        let config = TrainConfig {
            model,
            max_epochs: 6,
            patience: 3,
            seed,
            ..TrainConfig::default()
        };
        train_run(&prepared.manifest, split, &features, runs, &config).unwrap();
        evaluations.push(evaluate_run(&prepared.manifest, split, &features, runs, model).unwrap());
    }
    for evaluation in &evaluations {
        assert_eq!(evaluation.predictions.len(), split.test.len());
        for p in &evaluation.predictions {
            let sum: f32 = p.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
        }
    }
    let provenance = Provenance {
        corpus: "embedded slice".into(),
        manifest: "in memory".into(),
        splits_file: "in memory".into(),
        splits_id: prepared.splits.id.clone(),
        seed,
        encoders: "tiny random".into(),
        extra: Default::default(),
    };
    let out = runs.join("evaluation");
    write_evaluation(&out, &evaluations, &provenance).unwrap();
    std::fs::read(out.join("metrics.json")).unwrap()
}

#[test]
fn pipeline_runs_end_to_end_and_the_same_seed_gives_the_same_metrics() {
    let prepared = prepare();
    let first = train_and_evaluate(&prepared, 7, &prepared.root.join("runs-a"));
    let again = train_and_evaluate(&prepared, 7, &prepared.root.join("runs-b"));
    assert_eq!(first, again, "same seed, same metrics.json");

    let metrics: serde_json::Value = serde_json::from_slice(&first).unwrap();
    for model in ["speech", "text", "fusion"] {
        let random = &metrics["models"][model]["random"];
        for key in ["accuracy", "macro_f1", "weighted_f1"] {
            let value = random[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&value), "{model} {key} = {value}");
        }
        let matrix = random["confusion_matrix"]["matrix"].as_array().unwrap();
        assert_eq!(matrix.len(), 7);
        let total: u64 = matrix
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            total as usize,
            prepared.splits.get("random").unwrap().test.len()
        );
    }
}
