//! The whole host pipeline on a small slice of the embedded corpus: scan → split →
//! tiny random encoders → extract → train speech, text and fusion → evaluate, twice
//! with the same seed: the metrics must be identical. Then the export: the bundle
//! classifies like the burn models, the board's `classify` and `listen` agree with the
//! host, and every way of breaking the bundle is refused.

#[path = "pipeline/edge.rs"]
mod edge;

use std::path::{Path, PathBuf};

use emotion_core::bundle::{Bundle, BundleError, BundleManifest, MANIFEST_FILE, MANIFEST_JSON};
use emotion_core::pipeline::{PipelineError, TextInput, TextSource};
use emotion_core::{Pipeline, PipelineOptions};
use host_trainer::data::corpus::{embedded_corpus_dir, embedded_tokenizer};
use host_trainer::data::manifest::CorpusManifest;
use host_trainer::data::scan::{ScanOptions, scan};
use host_trainer::data::splits::{SplitConfig, SplitSet};
use host_trainer::encoders::import;
use host_trainer::encoders::random::write_tiny_pair;
use host_trainer::evaluate::probe::{ProbeConfig, ProbeRequest, run_probe};
use host_trainer::evaluate::summary::{Provenance, write_evaluation};
use host_trainer::evaluate::through_bundle::predict_through_bundle;
use host_trainer::export::bundle::{ExportOutcome, ExportRequest, export_bundle};
use host_trainer::export::request::Precision;
use host_trainer::features::cache::FeatureCache;
use host_trainer::features::extract::{ExtractSettings, Extractor, extract};
use host_trainer::report::page::{ReportInputs, write_report};
use host_trainer::train::heads::ModelKind;
use host_trainer::train::keyword_spotter;
use host_trainer::train::runs::{evaluate_run, train_run};
use host_trainer::train::trainer::TrainConfig;

/// Words kept in the slice: 4 words × 2 speakers × 7 emotions = 56 utterances.
const WORDS: [&str; 4] = ["back", "dog", "king", "youth"];

struct Prepared {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: CorpusManifest,
    splits: SplitSet,
}

fn prepare() -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let full = scan(&embedded_corpus_dir(), &ScanOptions::default())
        .unwrap()
        .manifest;
    let manifest = CorpusManifest::new(
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

    check_report(&prepared, &prepared.root.join("runs-a"));

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

/// The layer probe and the report over the runs in `runs`: every figure a valid PNG and
/// SVG, the HTML self-contained, the numbers in range.
fn check_report(prepared: &Prepared, runs: &Path) {
    let splits_path = prepared.root.join("splits.json");
    prepared.splits.write_json(&splits_path).unwrap();
    let manifest_path = prepared.root.join("manifest.csv");
    prepared.manifest.write_csv(&manifest_path).unwrap();

    let probe = run_probe(&ProbeRequest {
        manifest: &prepared.manifest,
        splits: vec![prepared.splits.get("random").unwrap()],
        speech_checkpoint: &prepared.root.join("hubert-tiny-random"),
        text_checkpoint: Some((
            &prepared.root.join("bert-tiny-random"),
            &prepared.root.join("bert-tiny-random/tokenizer.json"),
        )),
        work_dir: &prepared.root.join("probe"),
        config: ProbeConfig {
            steps: 100,
            ..ProbeConfig::default()
        },
        progress: false,
    })
    .unwrap();
    let layers = |modality: &str| -> Vec<usize> {
        probe
            .probes
            .iter()
            .find(|p| p.modality == modality)
            .unwrap()
            .layers
            .iter()
            .map(|l| l.layer)
            .collect()
    };
    assert_eq!(
        layers("speech"),
        (1..=12).collect::<Vec<_>>(),
        "every HuBERT layer"
    );
    assert_eq!(
        layers("text"),
        (1..=6).collect::<Vec<_>>(),
        "every BERT layer"
    );
    let test_size = prepared.splits.get("random").unwrap().test.len();
    for p in &probe.probes {
        assert_eq!(p.test, test_size);
        for l in &p.layers {
            assert!(
                (0.0..=1.0).contains(&l.accuracy),
                "{} layer {}: {}",
                p.modality,
                l.layer,
                l.accuracy
            );
            assert!((0.0..=1.0).contains(&l.macro_f1));
        }
    }
    let probe_path = prepared.root.join("probe/probe.json");
    probe.write(&probe_path).unwrap();

    let out = prepared.root.join("report");
    let outcome = write_report(
        &ReportInputs {
            manifest: &manifest_path,
            splits: &splits_path,
            features: &prepared.root.join("features"),
            runs,
            evaluation: &runs.join("evaluation"),
            probe: Some(&probe_path),
            representation_splits: &["random".to_string()],
            out: &out,
        },
        false,
    )
    .unwrap();
    let summary = &outcome.summary;
    assert_eq!(summary.probe.as_ref(), Some(&probe));

    // Every stage of every model, scored in range over all 56 utterances.
    let stages = |model: &str| -> Vec<&str> {
        summary
            .representations
            .iter()
            .filter(|s| s.model == model)
            .map(|s| s.stage.as_str())
            .collect()
    };
    assert_eq!(stages("speech"), ["input", "temporal", "contextual"]);
    assert_eq!(stages("text"), ["input", "temporal", "contextual"]);
    assert_eq!(stages("fusion"), ["temporal", "contextual", "fusion"]);
    for s in &summary.representations {
        assert_eq!(s.utterances, 56);
        let score = s
            .silhouette
            .unwrap_or_else(|| panic!("{} {}: no silhouette", s.model, s.stage));
        assert!(
            (-1.0..=1.0).contains(&score),
            "{} {}: {score}",
            s.model,
            s.stage
        );
        assert!(s.tsne.is_ok() && s.pca.is_ok(), "{s:?}");
    }

    // Figures: the comparison's bars, 3 confusion matrices, 2 curves per model, 2 maps
    // per stage, the probe; each a real PNG and SVG.
    assert_eq!(
        summary.figures.len(),
        1 + 3 + 6 + 2 * 9 + 1,
        "{:?}",
        summary.figures
    );
    for stem in &summary.figures {
        let png = std::fs::read(out.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert!(width >= 600, "{stem}.png is {width} px wide");
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{stem}.svg"
        );
    }

    let html = std::fs::read_to_string(&outcome.html).unwrap();
    assert_eq!(html.matches("<figure>").count(), summary.figures.len());
    assert!(
        !html.contains("<?xml"),
        "inline SVG keeps no XML declaration"
    );
    for external in ["src=\"", "href=\"http", "url(http", "@import"] {
        assert!(
            !html.contains(external),
            "the page must open offline: {external}"
        );
    }
    for section in [
        "Models compared",
        "Error analysis",
        "Representations",
        "Layer probe",
        "Provenance",
    ] {
        assert!(html.contains(section), "no {section} section");
    }
    let markdown = std::fs::read_to_string(&outcome.markdown).unwrap();
    for stem in &summary.figures {
        assert!(
            markdown.contains(&format!("]({stem}.png)")),
            "{stem} not linked"
        );
    }
    let json: host_trainer::report::page::ReportSummary =
        serde_json::from_slice(&std::fs::read(&outcome.json).unwrap()).unwrap();
    assert_eq!(&json, summary);
}

/// Trains the three models briefly and exports them (fp32 and int8, with the text
/// encoder); returns the bundle directory and the outcome.
fn train_and_export(prepared: &Prepared) -> (PathBuf, ExportOutcome) {
    let split = prepared.splits.get("random").unwrap();
    let features = prepared.root.join("features");
    let runs = prepared.root.join("runs-export");
    for model in ModelKind::ALL {
        let config = TrainConfig {
            model,
            max_epochs: 4,
            patience: 2,
            seed: 3,
            ..TrainConfig::default()
        };
        train_run(&prepared.manifest, split, &features, &runs, &config).unwrap();
    }
    let spotter = TrainConfig {
        max_epochs: 8,
        patience: 3,
        seed: 3,
        ..keyword_spotter::default_config()
    };
    // A closed-set spotter (no negatives): the board's chain as it was before open-set
    // spotters (host-trainer's keyword_cli tests the open-set one).
    keyword_spotter::train_keyword_run(
        &prepared.manifest,
        split,
        &features,
        &runs,
        &spotter,
        &keyword_spotter::NegativeSources::none(),
    )
    .unwrap();
    let out = prepared.root.join("bundle");
    let request = ExportRequest {
        manifest: &prepared.manifest,
        split,
        splits_id: &prepared.splits.id,
        seed: 3,
        data: "embedded slice".into(),
        features: &features,
        runs: &runs,
        speech_encoder: &prepared.root.join("speech.onnx"),
        text_encoder: &prepared.root.join("text.onnx"),
        tokenizer: &prepared
            .root
            .join("bert-tiny-random")
            .join("tokenizer.json"),
        include_text_encoder: true,
        precisions: vec![Precision::Int8],
        out: &out,
        progress: false,
    };
    let outcome = export_bundle(&request).unwrap();
    (out, outcome)
}

#[test]
fn the_exported_bundle_classifies_like_the_burn_models() {
    let prepared = prepare();
    let (bundle, outcome) = train_and_export(&prepared);
    let split = prepared.splits.get("random").unwrap();

    // fp32 through tract, from the WAV files, against burn on the cached features.
    assert_eq!(outcome.parity.len(), 3);
    for parity in &outcome.parity {
        assert_eq!(parity.utterances, split.test.len());
        assert_eq!(parity.same_predictions, parity.utterances, "{:?}", parity);
        assert!(
            parity.max_logit_difference <= 1e-4,
            "{}: {}",
            parity.model,
            parity.max_logit_difference
        );
    }
    // The same through the evaluation path: identical predicted classes, per utterance.
    let runs = prepared.root.join("runs-export");
    let features = prepared.root.join("features");
    let options = PipelineOptions {
        variant: Some("fp32".into()),
        threads: 1,
    };
    let pipeline = Pipeline::load(&bundle, &options).unwrap();
    let through_bundle = predict_through_bundle(
        &pipeline,
        &prepared.manifest,
        &split.test,
        "random",
        &ModelKind::ALL,
        false,
    )
    .unwrap();
    for bundled in &through_bundle {
        let burn =
            evaluate_run(&prepared.manifest, split, &features, &runs, bundled.model).unwrap();
        let a: Vec<_> = burn
            .predictions
            .iter()
            .map(|p| (p.id.clone(), p.predicted()))
            .collect();
        let b: Vec<_> = bundled
            .evaluation
            .predictions
            .iter()
            .map(|p| (p.id.clone(), p.predicted()))
            .collect();
        assert_eq!(a, b, "{}", bundled.model);
    }

    // The quantisation report: a row per variant and model, and a default chosen by rule.
    let manifest = &outcome.manifest;
    assert_eq!(manifest.provenance.variants.len(), 6);
    for row in &manifest.provenance.variants {
        for v in [row.agreement_with_fp32, row.accuracy, row.macro_f1] {
            assert!((0.0..=1.0).contains(&v), "{row:?}");
        }
        assert!(row.bytes > 0 && row.latency_ms_2s > 0.0, "{row:?}");
        if row.name == "fp32" {
            assert_eq!(row.agreement_with_fp32, 1.0);
        }
    }
    let int8_agrees = manifest
        .provenance
        .variants
        .iter()
        .filter(|r| r.name == "int8")
        .all(|r| r.agreement_with_fp32 >= 0.99);
    println!(
        "default {}: {}\n{}",
        manifest.default_variant, manifest.default_reason, outcome.report
    );
    if !int8_agrees {
        assert_eq!(manifest.default_variant, "fp32");
        assert!(manifest.default_reason.contains("agrees with fp32 on"));
    }
    assert!(bundle.join("quantization.md").is_file());
    let int8 = manifest.variant(Some("int8")).unwrap();
    let fp32 = manifest.variant(Some("fp32")).unwrap();
    let size = |f: &str| manifest.file(f).unwrap().bytes;
    assert!(size(&int8.speech_encoder) < size(&fp32.speech_encoder));

    // Where the text comes from: the keyword table, the text encoder, or nowhere.
    let entry = prepared.manifest.get(&split.test[0]).unwrap();
    let wav = std::fs::read(&entry.path).unwrap();
    let by_keyword = pipeline
        .classify_wav(&wav, "clip", TextInput::Keyword(&entry.word), None)
        .unwrap();
    assert_eq!(by_keyword.model, ModelKind::Fusion);
    assert_eq!(by_keyword.text_source, TextSource::KeywordTable);
    assert_eq!(
        by_keyword.transcript.as_deref(),
        Some(entry.transcript.as_str())
    );
    let open = format!("{} please", entry.transcript);
    let by_encoder = pipeline
        .classify_wav(&wav, "clip", TextInput::Transcript(&open), None)
        .unwrap();
    assert_eq!(by_encoder.text_source, TextSource::TextEncoder);
    let speech_only = pipeline
        .classify_wav(&wav, "clip", TextInput::None, None)
        .unwrap();
    assert_eq!(speech_only.model, ModelKind::Speech);
    assert_eq!(speech_only.text_source, TextSource::None);
    assert!(matches!(
        pipeline.classify_wav(&wav, "clip", TextInput::None, Some(ModelKind::Text)),
        Err(PipelineError::NeedsText(ModelKind::Text))
    ));
    // 16 kHz samples in: the same answer as the WAV (the corpus is resampled first).
    let samples = pipeline.frontend().process_bytes(&wav, "clip").unwrap();
    let from_samples = pipeline
        .classify(&samples, TextInput::Keyword(&entry.word), None)
        .unwrap();
    // The same answer up to the front-end running again on samples it already made
    // (≈ 0.002 here): compared as probabilities, since a near-tie (a head trained for 4
    // epochs is close to uniform) may flip the top emotion.
    let moved = emotion_core::scores::max_abs_difference(
        &from_samples.probabilities,
        &by_keyword.probabilities,
    );
    assert!(
        moved < 0.01,
        "{:?} vs {:?}",
        from_samples.probabilities,
        by_keyword.probabilities
    );
    let sum: f32 = from_samples.probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5);
    assert!(pipeline.classify(&[], TextInput::None, None).is_err());

    edge::classify_matches_the_host(&prepared.manifest, split, &features, &runs, &bundle);
    edge::the_keyword_comes_from_prompt_then_spotter_then_nowhere(
        &prepared.manifest,
        split,
        &bundle,
        |to, edit| rewritten(&bundle, &prepared.root.join(to), |_, m| edit(m)),
    );
    edge::listen_finds_and_classifies_each_utterance(
        &prepared.manifest,
        split,
        &bundle,
        &prepared.root,
    );

    broken_bundles_are_refused(&prepared, &bundle);
}

/// A copy of `bundle` whose manifest was edited by `edit` and written back consistently
/// (checksums refreshed), so that only the graph-level checks can catch it.
fn rewritten(bundle: &Path, to: &Path, edit: impl FnOnce(&Path, &mut BundleManifest)) -> PathBuf {
    copy_dir(bundle, to);
    let mut manifest = Bundle::open(to).unwrap().manifest().clone();
    edit(to, &mut manifest);
    for file in &mut manifest.files {
        let bytes = std::fs::read(to.join(&file.path)).unwrap();
        file.bytes = bytes.len() as u64;
        file.sha256 = emotion_core::bundle::sha256_hex(&bytes);
    }
    std::fs::write(to.join(MANIFEST_FILE), manifest.to_bytes().unwrap()).unwrap();
    std::fs::write(
        to.join(MANIFEST_JSON),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    to.to_path_buf()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn broken_bundles_are_refused(prepared: &Prepared, bundle: &Path) {
    let load = |dir: &Path, variant: &str| {
        let options = PipelineOptions {
            variant: Some(variant.into()),
            threads: 1,
        };
        Pipeline::load(dir, &options).map(drop).unwrap_err()
    };
    let root = prepared.root.join("broken");
    let fp32 = |m: &BundleManifest| m.variant(Some("fp32")).unwrap().clone();

    // A head file swapped for another model's head.
    let dir = rewritten(bundle, &root.join("head"), |dir, m| {
        let v = fp32(m);
        let speech = &v
            .heads
            .iter()
            .find(|h| h.model == ModelKind::Speech)
            .unwrap()
            .file;
        let fusion = &v
            .heads
            .iter()
            .find(|h| h.model == ModelKind::Fusion)
            .unwrap()
            .file;
        std::fs::copy(dir.join(fusion), dir.join(speech)).unwrap();
    });
    let err = load(&dir, "fp32");
    assert!(matches!(err, BundleError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("head_speech.fp32.onnx"), "{err}");

    // The text encoder where the speech encoder belongs.
    let dir = rewritten(bundle, &root.join("modality"), |dir, m| {
        std::fs::copy(
            dir.join("text_encoder.onnx"),
            dir.join(&fp32(m).speech_encoder),
        )
        .unwrap();
    });
    let err = load(&dir, "fp32");
    assert!(matches!(err, BundleError::Mismatch { .. }), "{err}");

    // Heads trained on other layers than the encoder gives.
    let dir = rewritten(bundle, &root.join("layers"), |_, m| {
        m.speech.layers.push(99)
    });
    let err = load(&dir, "fp32");
    assert!(matches!(err, BundleError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("layers"), "{err}");

    // A truncated graph (with a checksum to match): it does not load.
    let dir = rewritten(bundle, &root.join("truncated"), |dir, m| {
        let path = dir.join(&m.variant(Some("int8")).unwrap().speech_encoder);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    });
    let err = load(&dir, "int8");
    assert!(matches!(err, BundleError::Corrupt { .. }), "{err}");
    // ... while the fp32 variant of the same bundle still loads.
    Pipeline::load(
        &dir,
        &PipelineOptions {
            variant: Some("fp32".into()),
            threads: 1,
        },
    )
    .unwrap();

    // A byte flipped in a graph, checksums untouched: the hash catches it.
    let dir = root.join("flipped");
    copy_dir(bundle, &dir);
    let head = fp32(Bundle::open(&dir).unwrap().manifest()).heads[0]
        .file
        .clone();
    let mut bytes = std::fs::read(dir.join(&head)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(dir.join(&head), &bytes).unwrap();
    let err = load(&dir, "fp32");
    assert!(matches!(err, BundleError::Tampered { .. }), "{err}");
    assert!(err.to_string().contains(&head), "{err}");

    // An unknown variant names the ones there are.
    let err = load(bundle, "fp16");
    assert!(
        err.to_string().contains("fp32") && err.to_string().contains("int8"),
        "{err}"
    );

    // Without a text encoder, an unknown transcript is an error that says what to do.
    let dir = rewritten(bundle, &root.join("no-text"), |_, m| m.text_encoder = None);
    let pipeline = Pipeline::load(&dir, &PipelineOptions::default()).unwrap();
    let entry = &prepared.manifest.entries()[0];
    let wav = std::fs::read(&entry.path).unwrap();
    let err = pipeline
        .classify_wav(
            &wav,
            "clip",
            TextInput::Transcript("an unknown sentence"),
            None,
        )
        .unwrap_err();
    assert!(matches!(err, PipelineError::UnknownText { .. }), "{err}");
    assert!(err.to_string().contains("known keyword"), "{err}");
}
