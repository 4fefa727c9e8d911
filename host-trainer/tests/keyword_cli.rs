//! The keyword spotter on the embedded corpus, through the CLI: `keywords` trains it on
//! the random split (and refuses the word-disjoint split), `export` puts it into both
//! variants with its manifest fields or leaves it out when told, the exported graph
//! gives the burn spotter's logits in tract, and the board's pipeline runs it when no
//! prompt is given.
//!
//! It is an open-set spotter: two of the 12 words are held out and trained as "not a
//! keyword", with the real-speech set's clips without a vocabulary word when the set
//! is there (`RealSpeech::for_tests`: skipped here without it, required under CI).
//! Then the false-accept rate the export recorded for speakers the spotter never heard
//! must be at most 1 %, and the test computes it again from the bundle: every window of
//! the unseen part through the board's pipeline (fp32), counting the ones that are not
//! "no word heard".
//!
//! With the tiny random-weight encoders the features carry little of the word (the
//! accuracy is printed, not held to a figure); that the spotter learns words from
//! features that carry them is the unit test in `keyword_spotting`.

mod common;

use std::path::{Path, PathBuf};

use common::{features_and_speech_model, host_trainer, host_trainer_ok, text};

use emotion_core::keyword_spotter::{KeywordSpotter, SpotOutcome};
use emotion_core::pipeline::{KeywordSource, TextInput};
use emotion_core::real_speech::RealSpeech;
use emotion_core::{Pipeline, PipelineOptions};
use host_trainer::data::manifest::CorpusManifest;
use host_trainer::data::negatives::RealNegatives;
use host_trainer::data::splits::{Split, SplitSet};
use host_trainer::train::dataset::load_split;
use host_trainer::train::keyword_spotter::{KeywordModel, keyword_run_dir, vocabulary};

const TOLERANCE: f32 = 1e-4;
/// The words held out of the spotter's 12 by default (one in six, evenly spaced).
const HELD_OUT: [&str; 2] = ["dog", "pain"];

/// The manifest, splits, tiny encoders and their features, and a briefly trained speech
/// model (the export needs one) in `root`.
fn prepare(root: &Path) -> Vec<String> {
    let (mut inputs, encoders) = features_and_speech_model(root, 2);
    inputs.extend(encoders);
    inputs
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
    let real = RealSpeech::for_tests("the keyword spotter's false-accept rate on recorded speech");
    // The training inputs, the speech encoder, and where the recorded speech is.
    let mut inputs = base[..8].to_vec();
    inputs.extend([
        "--speech-encoder".into(),
        root.join("speech.onnx").display().to_string(),
    ]);
    match &real {
        Some(set) => inputs.extend(["--real-speech".into(), set.root.display().to_string()]),
        None => inputs.push("--no-real-speech".into()),
    }

    let trained = keywords_on_the_random_split(root, &inputs, real.is_some());
    let (bundle, fp32) = export_with_the_spotter(root, &base, &trained, real.is_some());
    tract_matches_burn(root, &trained, &bundle, &fp32);
    board_runs_the_spotter(&trained, &bundle);
    if let Some(set) = &real {
        recorded_false_accepts_are_rare_and_recomputed(&trained, &bundle, set);
    }
    left_out_when_told(root, &base);
    without_the_real_speech_set(root, &base);
}

/// Without the real-speech set in its default place, `keywords` says so and trains on
/// the held-out words alone; a set named with --real-speech that is not there is an
/// error that says how to fetch it.
fn without_the_real_speech_set(root: &Path, base: &[String]) {
    let empty = tempfile::tempdir().unwrap();
    let mut args = with(&base[..6], "keywords", &["--epochs", "1"]);
    args.extend([
        "--runs".to_string(),
        root.join("runs-without").display().to_string(),
        "--speech-encoder".into(),
        root.join("speech.onnx").display().to_string(),
    ]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_host-trainer"))
        .args(&args)
        .env("EMOTION_REAL_SPEECH", empty.path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("no real-speech set at")
            && stdout.contains("scripts/fetch-real-speech.sh")
            && stdout.contains("held-out words only"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAR on unseen speakers not measured"),
        "{stdout}"
    );
    let mut named = args.clone();
    named.extend(["--real-speech".into(), empty.path().display().to_string()]);
    let out = host_trainer(&named);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no real-speech set in") && stderr.contains("--no-real-speech"),
        "{stderr}"
    );
}

/// The keyword spotter trained on the random split, with what the later checks compare
/// against.
struct Trained {
    manifest: CorpusManifest,
    split: Split,
    /// The spotter's words: the vocabulary without the held-out ones.
    words: Vec<String>,
    /// The test part's utterances of those words.
    keyword_test: Vec<String>,
    run: PathBuf,
    accuracy: f64,
    min_confidence: f64,
}

/// `keywords` refuses the word-disjoint split and trains on the random one; its
/// metrics agree with the manifest and with what it printed.
fn keywords_on_the_random_split(root: &Path, inputs: &[String], recorded: bool) -> Trained {
    let out = host_trainer(&with(inputs, "keywords", &["--split", "word"]));
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("random or a speaker split"), "{stderr}");

    let stdout = host_trainer_ok(&with(inputs, "keywords", &["--split", "random"]));
    assert!(
        stdout
            .contains("-- keyword spotter (10 words + \"not a keyword\" (held-out words dog, pain"),
        "{stdout}"
    );
    assert_eq!(
        stdout.contains("recorded training windows))"),
        recorded,
        "{stdout}"
    );
    assert!(stdout.contains("epoch   1/40"), "{stdout}");
    assert!(stdout.contains("keyword threshold"), "{stdout}");
    let printed = number_after(&stdout, "keyword spotter: 10 words, test accuracy");
    check_metrics(root, printed)
}

/// metrics.json: the labels are the manifest's words (per-word support = the test
/// part's count of each word), and the figures fit together and with the `printed`
/// accuracy (in %).
fn check_metrics(root: &Path, printed: f64) -> Trained {
    let manifest = CorpusManifest::read_csv(&root.join("manifest.csv")).unwrap();
    let splits = SplitSet::read_json(&root.join("splits.json")).unwrap();
    let split = splits.get("random").unwrap().clone();
    let all = vocabulary(&manifest);
    assert_eq!(all.len(), 12);
    let words: Vec<String> = all
        .into_iter()
        .filter(|w| !HELD_OUT.contains(&w.as_str()))
        .collect();
    let keyword_test: Vec<String> = split
        .test
        .iter()
        .filter(|id| words.contains(&manifest.get(id).unwrap().word))
        .cloned()
        .collect();
    let run = keyword_run_dir(&root.join("runs"), "random");
    let metrics = json(&run.join("metrics.json"));
    let test = &metrics["test"];
    assert_eq!(test["utterances"], keyword_test.len());
    assert_eq!(
        metrics["open_set"]["false_reject"]["utterances"],
        keyword_test.len()
    );
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
        keyword_test,
        run,
        accuracy,
        min_confidence,
    }
}

/// Export: the spotter in both variants, its words, threshold and test accuracy in
/// the manifest (tract's accuracy, which equals burn's: the same words are spotted).
/// Returns the bundle and its fp32 spotter's file.
fn export_with_the_spotter(
    root: &Path,
    base: &[String],
    trained: &Trained,
    recorded: bool,
) -> (PathBuf, String) {
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
    assert_eq!(spec["test_utterances"], trained.keyword_test.len());
    assert!((spec["test_accuracy"].as_f64().unwrap() - trained.accuracy).abs() < 1e-12);
    assert_eq!(manifest_json["format"], 4);
    let open = &spec["open_set"];
    assert_eq!(open["held_out_words"], serde_json::json!(HELD_OUT));
    assert_eq!(open["measured_variant"], "fp32");
    let threshold = open["keyword_threshold"].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&threshold), "{open}");
    assert_eq!(
        open["false_reject"]["utterances"],
        trained.keyword_test.len()
    );
    assert!(
        open["held_out_false_accept"]["utterances"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(open["false_accept"].is_null(), !recorded, "{open}");
    // The training run's figures (burn) and the export's (tract) agree.
    let metrics = json(&trained.run.join("metrics.json"));
    for key in [
        "calibration",
        "false_reject",
        "held_out_false_accept",
        "false_accept",
    ] {
        assert_eq!(
            open[key]["errors"], metrics["open_set"][key]["errors"],
            "{key}: {open} vs {}",
            metrics["open_set"]
        );
    }
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
    assert!(report.contains("### Not a keyword (open set)"), "{report}");
    assert!(
        report.contains("| variant | FAR calibration | FAR unseen speakers"),
        "{report}"
    );
    let fp32 = variants[0]["keyword_spotter"].as_str().unwrap().to_string();
    (bundle, fp32)
}

/// tract (the bundle's fp32 graph `fp32`) against burn (the saved run) on the test part.
fn tract_matches_burn(root: &Path, trained: &Trained, bundle: &Path, fp32: &str) {
    // Every test utterance, held-out words' too: the graph has the `<none>` output.
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
        worst = emotion_core::scores::nan_max(
            worst,
            emotion_core::scores::max_abs_difference(row, &found),
        );
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
    let spotted = result.spotted.clone().expect("the spotter ran");
    assert_eq!(spotted.probabilities.len(), 10);
    let thresholds = pipeline.spotter_thresholds().unwrap();
    assert!(thresholds.keyword_threshold.is_some());
    let expected = match thresholds.outcome(&spotted) {
        SpotOutcome::Word => KeywordSource::Spotter,
        SpotOutcome::Unsure => KeywordSource::None,
        SpotOutcome::NotAKeyword => KeywordSource::NoWordHeard,
    };
    assert_eq!(result.keyword_source, expected, "{spotted:?}");
    if result.keyword_source == KeywordSource::Spotter {
        assert!(f64::from(spotted.confidence) >= trained.min_confidence);
    }
}

/// The false-accept rates the export recorded on the calibration speakers (where the
/// threshold was chosen) and on the speakers neither the spotter nor its threshold met
/// are at most 1 %, and the board's pipeline (fp32) finds the same false accepts on the
/// same windows.
fn recorded_false_accepts_are_rare_and_recomputed(
    trained: &Trained,
    bundle: &Path,
    set: &RealSpeech,
) {
    let manifest_json = json(&bundle.join("manifest.json"));
    let open = &manifest_json["keyword_spotter"]["open_set"];
    let negatives = RealNegatives::split(set, &vocabulary(&trained.manifest)).unwrap();
    let pipeline = Pipeline::load(
        bundle,
        &PipelineOptions {
            variant: Some("fp32".into()),
            threads: 1,
        },
    )
    .unwrap();
    let rate = pipeline.frontend().config().target_rate;
    for (key, part) in [
        ("calibration", &negatives.calibration),
        ("false_accept", &negatives.test),
    ] {
        let recorded = &open[key];
        let recorded_rate = recorded["rate"].as_f64().unwrap();
        let recorded_errors = recorded["errors"].as_u64().unwrap() as usize;
        assert_eq!(
            recorded["speakers"],
            serde_json::json!(part.groups),
            "{key}"
        );
        assert_eq!(recorded["utterances"], part.len(), "{key}");
        assert!(!part.is_empty(), "{key}");
        // Two workers, each with its own clone of the pipeline; clips in order.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let found = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let pipeline = pipeline.clone();
                let (next, found) = (&next, &found);
                scope.spawn(move || {
                    while let Some(clip) = part
                        .clips
                        .get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        let samples = clip.samples(rate).unwrap();
                        assert_eq!(samples.len(), clip.windows.len());
                        for (window, samples) in clip.windows.iter().zip(samples) {
                            let result = pipeline
                                .classify(&samples, TextInput::Auto { prompt: None }, None)
                                .unwrap();
                            if result.keyword_source != KeywordSource::NoWordHeard {
                                found.lock().unwrap().push(format!(
                                    "{} ({:?})",
                                    window.id,
                                    result.spotted.and_then(|s| s.keyword_probability)
                                ));
                            }
                        }
                    }
                });
            }
        });
        let mut accepted = found.into_inner().unwrap();
        accepted.sort();
        eprintln!(
            "{key}: recorded speech of {}: {} of {} windows accepted through the bundle (recorded {recorded_errors}, {:.2}%)",
            part.groups.join(", "),
            accepted.len(),
            part.len(),
            100.0 * recorded_rate
        );
        assert_eq!(accepted.len(), recorded_errors, "{key}: {accepted:?}");
        assert!(
            (recorded_rate - recorded_errors as f64 / part.len() as f64).abs() < 1e-12,
            "{recorded}"
        );
        assert!(
            recorded_rate <= 0.01,
            "{key}: FAR {recorded_rate} > 1%: {accepted:?}"
        );
    }
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
