//! Closed-set spotters, from before open-set ones (the committed demo bundle's: exported
//! in format 3, raised to format 4 only to carry the VAD), load as they always did: no
//! `<none>` output, no keyword threshold, always a word, never "no word heard".

use std::path::{Path, PathBuf};

use emotion_core::keyword_spotter::SpotOutcome;
use emotion_core::pipeline::KeywordSource;
use emotion_core::{Pipeline, PipelineOptions, TextInput};

fn demo_bundle() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo-bundle")
}

#[test]
fn a_closed_set_spotter_stays_closed_set() {
    let pipeline = Pipeline::load(&demo_bundle(), &PipelineOptions::default()).unwrap();
    let spec = pipeline
        .bundle()
        .manifest()
        .keyword_spotter
        .clone()
        .unwrap();
    assert!(spec.open_set.is_none());
    let thresholds = pipeline.spotter_thresholds().unwrap();
    assert_eq!(thresholds.keyword_threshold, None);
    assert_eq!(thresholds.min_confidence, spec.min_confidence);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/synthetic-tess/TESS Toronto emotional speech set data/OAF_angry");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in files.iter().take(4) {
        let bytes = std::fs::read(path).unwrap();
        let result = pipeline
            .classify_wav(
                &bytes,
                &path.display().to_string(),
                TextInput::Auto { prompt: None },
                None,
            )
            .unwrap();
        let spotted = result.spotted.clone().expect("the spotter ran");
        assert_eq!(spotted.keyword_probability, None, "{path:?}");
        assert_eq!(spotted.probabilities.len(), spec.words.len());
        assert_ne!(thresholds.outcome(&spotted), SpotOutcome::NotAKeyword);
        assert_ne!(
            result.keyword_source,
            KeywordSource::NoWordHeard,
            "{path:?}"
        );
        // As before: the word is used only when sure enough (the demo's threshold is 1,
        // never).
        let used = result.keyword_source == KeywordSource::Spotter;
        assert_eq!(
            used,
            spec.min_confidence < 1.0 && spotted.confidence >= spec.min_confidence
        );
    }
}
