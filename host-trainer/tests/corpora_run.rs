//! A run over two corpora, end to end on the host: the embedded synthetic TESS and the
//! same clips laid out again under CREMA-D's names (`AudioWAV/1001_DFA_ANG_XX.wav`),
//! scanned together, split (within- and cross-corpus splits), features extracted with
//! tiny random encoders, the speech model trained briefly on each split, evaluated: the
//! corpus × corpus table and the per-corpus confusion matrices come out.

mod common;

use std::path::{Path, PathBuf};

use host_trainer::data::corpus::embedded_corpus_dir;
use host_trainer::data::splits::SplitSet;
use host_trainer::evaluate::corpora::CorporaFile;

use common::{extract_features, files_under, host_trainer_ok, run_inputs, tiny_encoders};

/// CREMA-D's sentence codes, one per TESS word (sorted words), and its emotion codes.
const SENTENCES: [&str; 12] = [
    "IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI",
];

fn crema_code(tess_emotion: &str) -> Option<&'static str> {
    Some(match tess_emotion {
        "angry" => "ANG",
        "disgust" => "DIS",
        "fear" => "FEA",
        "happy" => "HAP",
        "neutral" => "NEU",
        "sad" => "SAD",
        _ => return None, // CREMA-D has no surprise
    })
}

/// The embedded TESS clips under CREMA-D names (OAF → actor 1001, YAF → 1002); returns
/// how many were laid out.
fn tess_as_crema_d(root: &Path) -> usize {
    let wavs: Vec<PathBuf> = files_under(&embedded_corpus_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    let mut words: Vec<String> = wavs
        .iter()
        .map(|p| {
            p.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .split('_')
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    words.sort();
    words.dedup();
    assert_eq!(words.len(), SENTENCES.len());
    let folder = root.join("AudioWAV");
    std::fs::create_dir_all(&folder).unwrap();
    let mut laid = 0;
    for wav in &wavs {
        let stem = wav.file_stem().unwrap().to_str().unwrap();
        let [speaker, word, emotion] = stem.split('_').collect::<Vec<_>>()[..] else {
            panic!("{stem}")
        };
        let Some(emotion) = crema_code(emotion) else {
            continue;
        };
        let actor = if speaker == "OAF" { "1001" } else { "1002" };
        let sentence = SENTENCES[words.iter().position(|w| w == word).unwrap()];
        let target = folder.join(format!("{actor}_{sentence}_{emotion}_XX.wav"));
        std::fs::copy(wav, target).unwrap();
        laid += 1;
    }
    laid
}

#[test]
fn two_corpora_give_the_cross_corpus_table_and_per_corpus_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = |name: &str| root.join(name).display().to_string();
    let crema = root.join("CREMA-D");
    let crema_files = tess_as_crema_d(&crema);
    assert_eq!(crema_files, 2 * 12 * 6);

    let scanned = host_trainer_ok(&[
        "data",
        "scan",
        embedded_corpus_dir().to_str().unwrap(),
        crema.to_str().unwrap(),
        "--out",
        &path("manifest.csv"),
    ]);
    assert!(scanned.contains("(tess): 168 utterances"), "{scanned}");
    assert!(scanned.contains("(crema-d): 144 utterances"), "{scanned}");
    host_trainer_ok(&["data", "split", "--manifest", &path("manifest.csv")]);
    let splits = SplitSet::read_json(&root.join("splits.json")).unwrap();
    let trained = [
        "random",
        "within-tess",
        "within-crema-d",
        "cross-tess-to-crema-d",
        "cross-crema-d-to-tess",
    ];
    for name in trained {
        splits.get(name).unwrap();
    }

    let bert = tiny_encoders(root);
    extract_features(root, &bert);
    let inputs = run_inputs(root);
    for split in trained {
        let mut args: Vec<String> = [
            "train", "--model", "speech", "--split", split, "--epochs", "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(inputs.iter().cloned());
        host_trainer_ok(&args);
    }
    let mut args: Vec<String> = vec![
        "evaluate".into(),
        "--models".into(),
        "speech".into(),
        "--split".into(),
        trained.join(","),
        "--out".into(),
        path("evaluation"),
    ];
    args.extend(inputs.iter().cloned());
    let evaluated = host_trainer_ok(&args);
    assert!(
        evaluated.contains("| trained on ↓ / tested on → | crema-d | tess |"),
        "{evaluated}"
    );

    let json = std::fs::read_to_string(root.join("evaluation/corpora.json")).unwrap();
    let view: CorporaFile = serde_json::from_str(&json).unwrap();
    assert_eq!(view.corpora, ["crema-d", "tess"]);
    let table = &view.table["speech"];
    for (train, test, split) in [
        ("tess", "tess", "within-tess"),
        ("crema-d", "crema-d", "within-crema-d"),
        ("tess", "crema-d", "cross-tess-to-crema-d"),
        ("crema-d", "tess", "cross-crema-d-to-tess"),
    ] {
        let cell = &table[train][test];
        assert_eq!(
            cell.support,
            splits.get(split).unwrap().test.len(),
            "{split}"
        );
        assert!((0.0..=1.0).contains(&cell.accuracy));
    }
    let random = &view.per_corpus["speech"]["random"];
    let test = &splits.get("random").unwrap().test;
    assert_eq!(
        random["tess"].support + random["crema-d"].support,
        test.len()
    );
    assert_eq!(
        random["crema-d"].support,
        test.iter().filter(|id| id.starts_with("crema-d_")).count()
    );
    let markdown = std::fs::read_to_string(root.join("evaluation/corpora.md")).unwrap();
    assert!(
        markdown.contains("## speech on random: crema-d alone"),
        "{markdown}"
    );
    assert!(markdown.contains("| true ↓ / predicted → |"), "{markdown}");

    // The report shows the same: the tables and each corpus's confusion matrices.
    let mut args: Vec<String> = vec![
        "report".into(),
        "--evaluation".into(),
        path("evaluation"),
        "--out".into(),
        path("report"),
    ];
    args.extend(inputs.iter().cloned());
    host_trainer_ok(&args);
    let page = std::fs::read_to_string(root.join("report/report.md")).unwrap();
    assert!(page.contains("## Corpora"), "{page}");
    assert!(page.contains("### Corpus × corpus, speech"), "{page}");
    assert!(page.contains("### Split random, tess alone"), "{page}");
    assert!(
        root.join("report/figures/confusion-speech-random-crema-d.png")
            .is_file()
    );
}
