//! The keyword spotter on the embedded corpus, through the CLI: `keywords` trains it on
//! the random split (and refuses the word-disjoint split), `export` puts it into both
//! variants with its manifest fields or leaves it out when told, the exported graph
//! gives the burn spotter's logits in tract, and the board's pipeline runs it when no
//! prompt is given.
//!
//! With the tiny random-weight encoders the features carry little of the word (the
//! accuracy is printed, not held to a figure); that the spotter learns words from
//! features that carry them is the unit test in `keyword_spotting`.

mod common;

use std::path::{Path, PathBuf};

use common::{corpus_and_tiny_encoders, host_trainer, host_trainer_ok, text};

use emotion_core::keyword_spotter::KeywordSpotter;
use emotion_core::pipeline::{KeywordSource, TextInput};
use emotion_core::{Pipeline, PipelineOptions};
use host_trainer::data::manifest::CorpusManifest;
use host_trainer::data::splits::{Split, SplitSet};
use host_trainer::train::dataset::load_split;
use host_trainer::train::keyword_spotter::{KeywordModel, keyword_run_dir, vocabulary};

const TOLERANCE: f32 = 1e-4;

/// The manifest, splits, tiny encoders and their features, and a briefly trained speech
/// model (the export needs one) in `root`.
fn prepare(root: &Path) -> Vec<String> {
    let path = |name: &str| root.join(name).display().to_string();
    let bert = corpus_and_tiny_encoders(root);
    let tokenizer = bert.join("tokenizer.json").display().to_string();
    host_trainer_ok(&[
        "extract",
        "--manifest",
        &path("manifest.csv"),
        "--speech-encoder",
        &path("speech.onnx"),
        "--text-encoder",
        &path("text.onnx"),
        "--tokenizer",
        &tokenizer,
        "--cache",
        &path("features"),
        "--jobs",
        "2",
    ]);
    let inputs = vec![
        "--manifest".into(),
        path("manifest.csv"),
        "--splits".into(),
        path("splits.json"),
        "--features".into(),
        path("features"),
        "--runs".into(),
        path("runs"),
    ];
    let mut train = vec!["train".to_string(), "--model".into(), "speech".into()];
    train.extend(inputs.iter().cloned());
    train.extend(["--epochs".into(), "2".into()]);
    host_trainer_ok(&train);
    let mut encoders = inputs;
    encoders.extend([
        "--speech-encoder".into(),
        path("speech.onnx"),
        "--text-encoder".into(),
        path("text.onnx"),
        "--tokenizer".into(),
        tokenizer,
    ]);
    encoders
}

fn with(base: &[String], command: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![command.to_string()];
    args.extend(base.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The first number after `label` in `text`.
fn number_after(text: &str, label: &str) -> f64 {
    let rest = &text[text
        .find(label)
        .unwrap_or_else(|| panic!("no `{label}` in {text}"))
        + label.len()..];
    let number: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || ".e-+".contains(*c))
        .collect();
    number
        .trim_end_matches('.')
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{label}`: {rest}"))
}

#[test]
fn keyword_spotter_trains_exports_and_runs_like_burn() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let base = prepare(root);
    // Only the training inputs (no encoder flags) for `keywords`.
    let inputs = &base[..8];

    let trained = keywords_on_the_random_split(root, inputs);
    let (bundle, fp32) = export_with_the_spotter(root, &base, &trained);
    tract_matches_burn(root, &trained, &bundle, &fp32);
    board_runs_the_spotter(&trained, &bundle);
    left_out_when_told(root, &base);
}

/// The keyword spotter trained on the random split, with what the later checks compare
/// against.
struct Trained {
    manifest: CorpusManifest,
    split: Split,
    words: Vec<String>,
    run: PathBuf,
    accuracy: f64,
    min_confidence: f64,
}

/// `keywords` refuses the word-disjoint split and trains on the random one; its
/// metrics agree with the manifest and with what it printed.
fn keywords_on_the_random_split(root: &Path, inputs: &[String]) -> Trained {
    let out = host_trainer(&with(inputs, "keywords", &["--split", "word"]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("random or a speaker split"), "{stderr}");

    let stdout = host_trainer_ok(&with(inputs, "keywords", &["--split", "random"]));
    assert!(
        stdout.contains("-- keyword spotter (12 words) on random"),
        "{stdout}"
    );
    assert!(stdout.contains("epoch   1/40"), "{stdout}");
    let printed = number_after(&stdout, "keyword spotter: 12 words, test accuracy");
    check_metrics(root, printed)
}

/// metrics.json: the labels are the manifest's words (per-word support = the test
/// part's count of each word), and the figures fit together and with the `printed`
/// accuracy (in %).
fn check_metrics(root: &Path, printed: f64) -> Trained {
    let manifest = CorpusManifest::read_csv(&root.join("manifest.csv")).unwrap();
    let splits = SplitSet::read_json(&root.join("splits.json")).unwrap();
    let split = splits.get("random").unwrap().clone();
    let words = vocabulary(&manifest);
    assert_eq!(words.len(), 12);
    let run = keyword_run_dir(&root.join("runs"), "random");
    let metrics = json(&run.join("metrics.json"));
    let test = &metrics["test"];
    assert_eq!(test["utterances"], split.test.len());
    for (word, score) in words.iter().zip(test["words"].as_array().unwrap()) {
        let support = split
            .test
            .iter()
            .filter(|id| manifest.get(id).unwrap().word == *word)
            .count();
        assert_eq!(score["word"], word.as_str());
        assert_eq!(score["support"], support, "{word}");
    }
    let accuracy = test["accuracy"].as_f64().unwrap();
    let top3 = test["top3_accuracy"].as_f64().unwrap();
    assert!(
        (100.0 * accuracy - printed).abs() < 0.051,
        "{accuracy} vs {printed}"
    );
    assert!(
        (accuracy..=1.0).contains(&top3),
        "top-3 {top3} < top-1 {accuracy}"
    );
    let min_confidence = metrics["min_confidence"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&min_confidence), "{min_confidence}");
    let curves = json(&run.join("curves.json"));
    let last = curves.as_array().unwrap().last().unwrap();
    eprintln!(
        "embedded corpus, random split, seed 42: test accuracy {:.1}% of {} (chance {:.1}%), top-3 {:.1}%, min confidence {min_confidence}; last epoch train accuracy {:.1}%",
        100.0 * accuracy,
        split.test.len(),
        100.0 / 12.0,
        100.0 * top3,
        100.0 * last["train_accuracy"].as_f64().unwrap()
    );
    // The head learns the words it hears (chance is 8.3%), but the tiny random encoders
    // do not carry the word, so on unheard utterances it is near chance: 25.0% with
    // untrimmed clips, 0-25% since clips are trimmed, depending on the seed (a linear
    // probe on pooled features reaches about 20%). So only learning is asserted here;
    // `learns_separable_words_saves_and_loads` asserts generalisation on features that
    // carry the word, and the figure above is reported, not asserted.
    assert!(last["train_accuracy"].as_f64().unwrap() > 0.3, "{last}");
    Trained {
        manifest,
        split,
        words,
        run,
        accuracy,
        min_confidence,
    }
}

/// Export: the spotter in both variants, its words, threshold and test accuracy in
/// the manifest (tract's accuracy, which equals burn's: the same words are spotted).
/// Returns the bundle and its fp32 spotter's file.
fn export_with_the_spotter(root: &Path, base: &[String], trained: &Trained) -> (PathBuf, String) {
    let bundle = root.join("bundle");
    let stdout = host_trainer_ok(&with(
        base,
        "export",
        &["--split", "random", "--out", &bundle.display().to_string()],
    ));
    assert!(stdout.contains("keyword spotter included"), "{stdout}");
    let manifest_json = json(&bundle.join("manifest.json"));
    let spec = &manifest_json["keyword_spotter"];
    assert_eq!(spec["words"], serde_json::json!(trained.words));
    assert_eq!(
        spec["min_confidence"].as_f64().unwrap(),
        trained.min_confidence
    );
    assert_eq!(spec["test_utterances"], trained.split.test.len());
    assert!((spec["test_accuracy"].as_f64().unwrap() - trained.accuracy).abs() < 1e-12);
    let variants = manifest_json["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2);
    for variant in variants {
        let file = variant["keyword_spotter"].as_str().unwrap();
        assert!(file.contains(variant["name"].as_str().unwrap()), "{file}");
        assert!(bundle.join(file).is_file(), "{file}");
    }
    let report = std::fs::read_to_string(bundle.join("quantization.md")).unwrap();
    let difference = number_after(&report, "utterances, max abs logit difference");
    assert!(difference <= f64::from(TOLERANCE), "{report}");
    let fp32 = variants[0]["keyword_spotter"].as_str().unwrap().to_string();
    (bundle, fp32)
}

/// tract (the bundle's fp32 graph `fp32`) against burn (the saved run) on the test part.
fn tract_matches_burn(root: &Path, trained: &Trained, bundle: &Path, fp32: &str) {
    let burn = KeywordModel::load(&trained.run).unwrap();
    let data = load_split(
        &trained.manifest,
        &trained.split,
        &root.join("features"),
        false,
    )
    .unwrap();
    let graph =
        KeywordSpotter::from_bytes(&std::fs::read(bundle.join(fp32)).unwrap(), fp32, 1).unwrap();
    assert_eq!(graph.words(), trained.words.as_slice());
    let expected = burn.logits(&data.test).unwrap();
    let mut worst = 0f32;
    for (example, row) in data.test.iter().zip(&expected) {
        let found = graph.logits(&example.speech).unwrap();
        for (a, b) in row.iter().zip(&found) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!(
        "keyword spotter, fp32 graph vs burn on {} test utterances: max |Δlogit| = {worst:.2e}",
        expected.len()
    );
    assert!(worst <= TOLERANCE, "{worst}");
}

/// The board without a prompt runs the spotter, and uses its word only when sure.
fn board_runs_the_spotter(trained: &Trained, bundle: &Path) {
    let pipeline = Pipeline::load(bundle, &PipelineOptions::default()).unwrap();
    assert_eq!(pipeline.spotter_words(), Some(trained.words.as_slice()));
    let entry = trained.manifest.get(&trained.split.test[0]).unwrap();
    let bytes = std::fs::read(&entry.path).unwrap();
    let name = entry.path.display().to_string();
    let result = pipeline
        .classify_wav(&bytes, &name, TextInput::Auto { prompt: None }, None)
        .unwrap();
    let spotted = result.spotted.expect("the spotter ran");
    assert_eq!(spotted.probabilities.len(), 12);
    let sure = f64::from(spotted.confidence) >= trained.min_confidence;
    assert_eq!(result.keyword_source == KeywordSource::Spotter, sure);
}

/// `export --no-keyword-spotter` leaves the spotter out of the bundle.
fn left_out_when_told(root: &Path, base: &[String]) {
    let without = root.join("bundle-without");
    let stdout = host_trainer_ok(&with(
        base,
        "export",
        &[
            "--split",
            "random",
            "--no-keyword-spotter",
            "--variants",
            "fp32",
            "--out",
            &without.display().to_string(),
        ],
    ));
    assert!(stdout.contains("kiosk prompt only"), "{stdout}");
    let manifest_json = json(&without.join("manifest.json"));
    assert!(manifest_json["keyword_spotter"].is_null());
    assert!(manifest_json["variants"][0]["keyword_spotter"].is_null());
    let spotters: Vec<PathBuf> = common::files_under(&without)
        .into_iter()
        .filter(|p| p.display().to_string().contains("keyword_spotter"))
        .collect();
    assert!(spotters.is_empty(), "{spotters:?}");
}
