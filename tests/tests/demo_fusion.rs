//! The demo's own training on the whole embedded corpus: on every split it trains (the
//! random split and both speaker splits, seed 42, the default settings), the fusion model
//! scores at least the speech model's test accuracy and macro-F1 less one point. Fusion
//! starts from the speech model with the text gated off and keeps the text only when it
//! beats the speech model on validation; where it does not, fusion must be the speech
//! model exactly (same probabilities, bit for bit).
//!
//! Slow (the demo's stages 1–6 without the text model: a few minutes on two cores).

use host_trainer::data::corpus::{embedded_corpus_dir, embedded_tokenizer};
use host_trainer::data::scan::{ScanOptions, scan};
use host_trainer::data::splits::{SplitConfig, SplitSet};
use host_trainer::encoders::import;
use host_trainer::encoders::random::write_tiny_pair;
use host_trainer::evaluate::summary::SplitEvaluation;
use host_trainer::features::cache::FeatureCache;
use host_trainer::features::extract::{ExtractSettings, Extractor, extract};
use host_trainer::train::heads::ModelKind;
use host_trainer::train::runs::{FusionText, evaluate_run, train_run};
use host_trainer::train::trainer::TrainConfig;

/// How far below the speech model the fusion model may score on a test part.
const MARGIN: f64 = 0.01;

/// The splits the demo trains on.
const SPLITS: [&str; 3] = ["random", "speaker-OAF-to-YAF", "speaker-YAF-to-OAF"];

fn accuracy_and_macro_f1(evaluation: &SplitEvaluation) -> (f64, f64) {
    let report = evaluation.report();
    (report.accuracy, report.macro_f1())
}

#[test]
fn on_every_demo_split_fusion_scores_at_least_speech_less_one_point() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let manifest = scan(&embedded_corpus_dir(), &ScanOptions::default())
        .unwrap()
        .manifest;
    let splits = SplitSet::make(&manifest, SplitConfig::default()).unwrap();
    let (hubert, bert) = write_tiny_pair(root, &embedded_tokenizer()).unwrap();
    let speech_graph = root.join("speech.onnx");
    let text_graph = root.join("text.onnx");
    import(&hubert, None).unwrap().write(&speech_graph).unwrap();
    import(&bert, None).unwrap().write(&text_graph).unwrap();
    let extractor = Extractor::new(
        &speech_graph,
        Some((&text_graph, &bert.join("tokenizer.json"))),
        ExtractSettings::default(),
    )
    .unwrap();
    let features = root.join("features");
    let (_, report) = extract(
        &extractor,
        &manifest,
        &[],
        &FeatureCache::new(&features),
        2,
        false,
    )
    .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    let runs = root.join("runs");
    let mut table = Vec::new();
    for name in SPLITS {
        let split = splits.get(name).unwrap();
        let mut scores = Vec::new();
        let mut evaluations = Vec::new();
        for model in [ModelKind::Speech, ModelKind::Fusion] {
            let config = TrainConfig {
                model,
                ..TrainConfig::default()
            };
            train_run(&manifest, split, &features, &runs, &config).unwrap();
            let evaluation = evaluate_run(&manifest, split, &features, &runs, model).unwrap();
            scores.push(accuracy_and_macro_f1(&evaluation));
            evaluations.push(evaluation);
        }
        let text = FusionText::read(&runs, name).unwrap().expect("fusion.json");
        let (speech, fusion) = (scores[0], scores[1]);
        table.push(format!(
            "{name}: speech {:.1} / {:.1}, fusion {:.1} / {:.1}; {}",
            100.0 * speech.0,
            100.0 * speech.1,
            100.0 * fusion.0,
            100.0 * fusion.1,
            text.sentence()
        ));
        eprintln!("{}", table.last().unwrap());
        assert!(text.val_macro_f1 >= text.speech_val_macro_f1, "{text:?}");
        if !text.text_kept {
            let probabilities = |e: &SplitEvaluation| -> Vec<[f32; 7]> {
                e.predictions.iter().map(|p| p.probabilities).collect()
            };
            assert_eq!(
                probabilities(&evaluations[1]),
                probabilities(&evaluations[0]),
                "{name}: the text was not kept, so fusion must be the speech model"
            );
        }
        assert!(
            fusion.0 >= speech.0 - MARGIN && fusion.1 >= speech.1 - MARGIN,
            "{name}: fusion below speech by more than a point\n{}",
            table.join("\n")
        );
    }
}
