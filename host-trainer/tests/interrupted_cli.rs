//! Host resilience, through the CLI as a user meets it: `extract` and `train` killed
//! with SIGKILL midway (the process gets no chance to tidy up), then run again.
//!
//! - extraction: every feature file under its final name decodes, the rerun removes the
//!   temporary files the kill left, reads the finished files instead of computing them
//!   (a damaged one is computed again), and ends with the index (and files) of an
//!   uninterrupted extraction;
//! - training: the rerun resumes after the last checkpoint and ends with the curves and
//!   the model of an uninterrupted run; a checkpoint of other settings or a damaged one
//!   is refused with what to do, and `--fresh` starts over.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{corpus_and_tiny_encoders, files_under, host_trainer, host_trainer_ok, text};

use host_trainer::data::manifest::CorpusManifest;
use host_trainer::data::splits::SplitSet;
use host_trainer::features::cache::{FeatureCache, FeatureIndex};
use host_trainer::train::dataset::load_split;
use host_trainer::train::trainer::TrainedModel;

/// Utterances and distinct transcripts of the embedded corpus.
const UTTERANCES: usize = 168;
const TRANSCRIPTS: usize = 12;

/// The embedded corpus's manifest and splits, and the tiny encoders, in `root`; returns
/// the `extract` arguments for a cache folder.
fn prepare(root: &Path) -> impl Fn(&Path) -> Vec<String> {
    let path = |name: &str| root.join(name).display().to_string();
    let bert = corpus_and_tiny_encoders(root);
    let base = vec![
        "extract".to_string(),
        "--manifest".into(),
        path("manifest.csv"),
        "--speech-encoder".into(),
        path("speech.onnx"),
        "--text-encoder".into(),
        path("text.onnx"),
        "--tokenizer".into(),
        bert.join("tokenizer.json").display().to_string(),
        // One worker: slow enough to be caught midway.
        "--jobs".into(),
        "1".into(),
    ];
    move |cache: &Path| {
        let mut args = base.clone();
        args.extend(["--cache".into(), cache.display().to_string()]);
        args
    }
}

/// Starts `host-trainer` with `args`, its output discarded.
fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_host-trainer"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("host-trainer starts")
}

/// Waits for `ready` (polled every 2 ms), then SIGKILLs `child`; fails if the child
/// ends first or nothing happens within two minutes.
fn kill_when(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}: it could not be killed midway");
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("no {what} after two minutes");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }
    assert!(!status.success());
}

/// Feature files under their final names, relative to the cache, in `kind` (`speech`
/// or `text`).
fn feature_files(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let dir = cache.join(kind);
    if !dir.is_dir() {
        return Vec::new();
    }
    files_under(&dir)
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .map(|p| p.strip_prefix(cache).unwrap().to_path_buf())
        .collect()
}

/// Temporary files (`.NAME.tmp…`) anywhere in the cache.
fn temp_files(cache: &Path) -> Vec<PathBuf> {
    files_under(cache)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with('.') && name.contains(".tmp")
        })
        .collect()
}

#[test]
fn extraction_killed_midway_resumes_without_redoing_finished_files() {
    let tmp = tempfile::tempdir().unwrap();
    let extract_args = prepare(tmp.path());
    let cache = tmp.path().join("features");

    let mut child = spawn(&extract_args(&cache));
    let pid = child.id();
    kill_when(&mut child, "40 speech feature files", || {
        feature_files(&cache, "speech").len() >= 40
    });

    let (speech_done, text_done) = finished_files_decode(&cache);
    let leftovers = leave_a_temp_file_and_a_damaged_one(&cache, &speech_done, pid);
    rerun_computes_only_the_rest(&extract_args, &cache, &speech_done, &text_done, leftovers);
    same_as_an_uninterrupted_extraction(&extract_args, &cache, &tmp.path().join("features-clean"));
}

/// Nothing half-written under a final name: every file there decodes. Returns the
/// speech and text files the killed run finished.
fn finished_files_decode(cache: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let speech_done = feature_files(cache, "speech");
    let text_done = feature_files(cache, "text");
    let reader = FeatureCache::new(cache);
    for file in speech_done.iter().chain(&text_done) {
        reader
            .read(file)
            .unwrap_or_else(|e| panic!("a killed run left a damaged file: {e}"));
    }
    assert!(
        speech_done.len() < UTTERANCES,
        "the kill came after the last file"
    );
    assert!(
        !FeatureIndex::path_in(cache).exists(),
        "the index is written last"
    );
    (speech_done, text_done)
}

/// What a kill in the middle of a write leaves (the kill of process `pid` may have come
/// between two writes): its temporary file; and, unrelated to the kill, one finished
/// file damaged on disk. Returns the number of temporary files.
fn leave_a_temp_file_and_a_damaged_one(cache: &Path, speech_done: &[PathBuf], pid: u32) -> usize {
    let leftover = cache
        .join(&speech_done[0])
        .with_file_name(format!(".{}.safetensors.tmp{pid}-0", "0".repeat(64)));
    std::fs::write(&leftover, b"half a feature").unwrap();
    let leftovers = temp_files(cache).len();
    // The damaged file is computed again.
    let damaged = cache.join(&speech_done[1]);
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    leftovers
}

/// The rerun removes the `leftovers` temporary files, computes the damaged file again
/// and what the killed run had not finished, and reads the rest from the cache.
fn rerun_computes_only_the_rest(
    extract_args: &dyn Fn(&Path) -> Vec<String>,
    cache: &Path,
    speech_done: &[PathBuf],
    text_done: &[PathBuf],
    leftovers: usize,
) {
    let out = host_trainer(&extract_args(cache));
    let (rerun, warnings) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{rerun}\n{warnings}");
    eprintln!(
        "killed after {} of {UTTERANCES} speech and {} of {TRANSCRIPTS} text files, {leftovers} temporary file(s) left, 1 file damaged; rerun: {rerun}{warnings}",
        speech_done.len(),
        text_done.len()
    );
    assert!(
        warnings.contains("1 cached feature file(s) did not decode and were computed again"),
        "{warnings}"
    );
    assert!(
        rerun.contains(&format!("removed {leftovers} unfinished temporary file(s)")),
        "{rerun}"
    );
    assert!(temp_files(cache).is_empty(), "{:?}", temp_files(cache));
    assert!(
        rerun.contains(&format!(
            "speech {} computed",
            UTTERANCES - speech_done.len() + 1
        )),
        "{rerun}"
    );
    assert!(
        rerun.contains(&format!(
            "), {} cached; transcripts {} computed, {} cached",
            speech_done.len() - 1,
            TRANSCRIPTS - text_done.len(),
            text_done.len()
        )),
        "{rerun}"
    );
}

/// The result is an uninterrupted extraction's (into `clean`), file for file.
fn same_as_an_uninterrupted_extraction(
    extract_args: &dyn Fn(&Path) -> Vec<String>,
    cache: &Path,
    clean: &Path,
) {
    let index = FeatureIndex::read(cache).unwrap();
    assert_eq!(index.entries.len(), UTTERANCES);
    host_trainer_ok(&extract_args(clean));
    assert_eq!(index, FeatureIndex::read(clean).unwrap());
    for entry in index.entries.values() {
        for file in std::iter::once(&entry.speech).chain(&entry.text) {
            assert_eq!(
                std::fs::read(cache.join(file)).unwrap(),
                std::fs::read(clean.join(file)).unwrap(),
                "{}",
                file.display()
            );
        }
    }
}

/// `curves.json` of a run without the seconds, which no two runs share.
fn curves(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("curves.json")).unwrap();
    let mut curves: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for epoch in &mut curves {
        epoch.as_object_mut().unwrap().remove("seconds");
    }
    curves
}

/// Epochs of the training runs, and the checkpoint after which one is killed.
const EPOCHS: usize = 8;
const KILL_AFTER: usize = 3;

#[test]
fn training_killed_after_a_checkpoint_resumes_and_ends_as_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let extract_args = prepare(root);
    host_trainer_ok(&extract_args(&root.join("features")));
    let training = Training { root };

    training.uninterrupted();
    let (checkpoint, done) = training.killed_after_a_checkpoint();
    training.other_settings_are_refused(&checkpoint);
    training.resumes_as_the_uninterrupted_run(&checkpoint, done);
    training.predicts_as_the_uninterrupted_run();
    training.damaged_checkpoint_is_refused_and_fresh_starts_over();
}

/// Training the speech model on the random split of the corpus prepared in `root`, into
/// a `runs` folder there.
struct Training<'a> {
    root: &'a Path,
}

impl Training<'_> {
    /// The `train` arguments for `runs`, `epochs` epochs and `extra` flags.
    fn args(&self, runs: &str, epochs: usize, extra: &[&str]) -> Vec<String> {
        let path = |name: &str| self.root.join(name).display().to_string();
        let mut args: Vec<String> = [
            "train",
            "--model",
            "speech",
            "--split",
            "random",
            "--manifest",
            &path("manifest.csv"),
            "--splits",
            &path("splits.json"),
            "--features",
            &path("features"),
            "--runs",
            &path(runs),
            "--epochs",
            &epochs.to_string(),
            // No early stop: every epoch runs, so the kill lands mid-run.
            "--patience",
            &epochs.to_string(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// The run folder of the speech model on the random split in `runs`.
    fn run_dir(&self, runs: &str) -> PathBuf {
        self.root.join(runs).join("speech").join("random")
    }

    /// Uninterrupted.
    fn uninterrupted(&self) {
        host_trainer_ok(&self.args("runs-whole", EPOCHS, &[]));
        assert!(
            !self.run_dir("runs-whole").join("checkpoint").exists(),
            "the checkpoint goes once the model is saved"
        );
    }

    /// Killed as soon as the checkpoint of epoch 3 is complete; returns the checkpoint
    /// folder and the epochs it holds.
    fn killed_after_a_checkpoint(&self) -> (PathBuf, usize) {
        let checkpoint = self.run_dir("runs-killed").join("checkpoint");
        let epochs_done = || -> usize {
            std::fs::read(checkpoint.join("checkpoint.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .and_then(|saved| saved["epoch"].as_u64())
                .map_or(0, |epoch| epoch as usize)
        };
        let mut child = spawn(&self.args("runs-killed", EPOCHS, &[]));
        kill_when(&mut child, "the checkpoint of epoch 3", || {
            epochs_done() >= KILL_AFTER
        });
        let done = epochs_done();
        assert!(
            (KILL_AFTER..EPOCHS).contains(&done),
            "killed after epoch {done} of {EPOCHS}"
        );
        assert!(!self.run_dir("runs-killed").join("model").exists());
        (checkpoint, done)
    }

    /// Other settings: refused, and the checkpoint is kept.
    fn other_settings_are_refused(&self, checkpoint: &Path) {
        let other = host_trainer(&self.args("runs-killed", EPOCHS, &["--learning-rate", "0.01"]));
        let refusal = text(&other.stderr);
        assert!(!other.status.success());
        assert!(
            refusal.contains("belongs to another training")
                && refusal.contains("learning_rate: checkpoint 0.001, now 0.01")
                && refusal.contains("--fresh"),
            "{refusal}"
        );
        assert!(checkpoint.join("checkpoint.json").is_file());
    }

    /// The rerun resumes after the `done` epochs of `checkpoint`, removes it and ends
    /// with the uninterrupted run's curves.
    fn resumes_as_the_uninterrupted_run(&self, checkpoint: &Path, done: usize) {
        let resumed = host_trainer_ok(&self.args("runs-killed", EPOCHS, &[]));
        eprintln!("killed after epoch {done} of {EPOCHS}; rerun:\n{resumed}");
        assert!(
            resumed.contains(&format!("resuming from epoch {}", done + 1)),
            "{resumed}"
        );
        assert!(
            !checkpoint.exists(),
            "the checkpoint goes once the model is saved"
        );
        assert_eq!(
            curves(&self.run_dir("runs-killed")),
            curves(&self.run_dir("runs-whole"))
        );
        assert_eq!(curves(&self.run_dir("runs-whole")).len(), EPOCHS);
    }

    /// The same model: the same probabilities on the test part, to the bit.
    fn predicts_as_the_uninterrupted_run(&self) {
        let root = self.root;
        let manifest = CorpusManifest::read_csv(&root.join("manifest.csv")).unwrap();
        let splits = SplitSet::read_json(&root.join("splits.json")).unwrap();
        let data = load_split(
            &manifest,
            splits.get("random").unwrap(),
            &root.join("features"),
            false,
        )
        .unwrap();
        let predict = |runs: &str| {
            TrainedModel::load(&self.run_dir(runs).join("model"))
                .unwrap()
                .predict(&data.test)
                .unwrap()
        };
        assert_eq!(predict("runs-killed"), predict("runs-whole"));
    }

    /// A damaged checkpoint is named, with what to do; --fresh starts over.
    fn damaged_checkpoint_is_refused_and_fresh_starts_over(&self) {
        let damaged = self.run_dir("runs-damaged").join("checkpoint");
        std::fs::create_dir_all(&damaged).unwrap();
        std::fs::write(damaged.join("checkpoint.json"), "{\"format_ver").unwrap();
        let refused = host_trainer(&self.args("runs-damaged", 1, &[]));
        let refusal = text(&refused.stderr);
        assert!(!refused.status.success());
        assert!(
            refusal.contains(&damaged.join("checkpoint.json").display().to_string())
                && refusal.contains("--fresh"),
            "{refusal}"
        );
        let fresh = host_trainer_ok(&self.args("runs-damaged", 1, &["--fresh"]));
        assert!(fresh.contains("--fresh: removed the checkpoint"), "{fresh}");
        assert!(!fresh.contains("resuming"), "{fresh}");
        assert!(
            self.run_dir("runs-damaged")
                .join("model")
                .join("head.bpk")
                .is_file()
        );
    }
}
