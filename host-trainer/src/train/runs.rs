//! Runs: one model trained on one split, saved with its curves under
//! `RUNS/{model}/{split}/`, and the evaluation of saved runs on their test parts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::data::manifest::CorpusManifest;
use crate::data::splits::Split;
use crate::evaluate::summary::{Prediction, SplitEvaluation};
use crate::train::dataset::load_split;
use crate::train::heads::{EmotionHead, ModelKind};
use crate::train::trainer::{EpochRecord, TrainConfig, TrainedModel, train};
use emotion_core::fs::write_atomically;

/// The folder of one run.
pub fn run_dir(runs: &Path, model: ModelKind, split: &str) -> PathBuf {
    runs.join(model.to_string()).join(split)
}

/// What a finished training reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Its validation macro-F1.
    pub best_val_macro_f1: f64,
    /// Epochs run.
    pub epochs: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Trains `config.model` on `split` (features from `cache`), prints one line per epoch
/// (readable in a terminal and in a log file alike) and saves the model, its config and
/// its curves (JSON and CSV) in the run folder.
pub fn train_run(
    manifest: &CorpusManifest,
    split: &Split,
    cache: &Path,
    runs: &Path,
    config: &TrainConfig,
) -> anyhow::Result<TrainSummary> {
    let model = config.model;
    let data = load_split(manifest, split, cache, model != ModelKind::Speech)?;
    println!(
        "-- {model} on {}: {} train, {} val, {} test utterances",
        split.name,
        data.train.len(),
        data.val.len(),
        data.test.len()
    );
    let mut on_epoch = epoch_printer(config.max_epochs);
    let outcome = train(config, &data.train, &data.val, &mut on_epoch)?;
    let dir = run_dir(runs, model, &split.name);
    outcome.model.save(&dir.join("model"))?;
    save_curves(&dir, config, &outcome.curves)?;
    let best_record = outcome
        .curves
        .iter()
        .find(|r| r.epoch == outcome.best_epoch);
    // How much text the fusion let in: tanh(g), 0 = speech-only.
    let gate = match outcome.model.head() {
        EmotionHead::Fusion(fusion) => {
            format!(", text gate tanh(g) = {:+.3}", fusion.gate_value())
        }
        _ => String::new(),
    };
    println!(
        "   kept epoch {} (val macro-F1 {:.1}%{gate}) -> {}",
        outcome.best_epoch,
        100.0 * best_record.map_or(0.0, |r| r.val_macro_f1),
        dir.display()
    );
    Ok(TrainSummary {
        best_epoch: outcome.best_epoch,
        best_val_macro_f1: best_record.map_or(0.0, |r| r.val_macro_f1),
        epochs: outcome.curves.len(),
        seconds: outcome.curves.iter().map(|r| r.seconds).sum(),
    })
}

/// Prints one line per epoch, readable in a terminal and in a log file alike, with the
/// best epoch by validation macro-F1 so far.
pub fn epoch_printer(max_epochs: usize) -> impl FnMut(&EpochRecord) {
    let mut best = (0usize, f64::NEG_INFINITY);
    move |r: &EpochRecord| {
        if r.val_macro_f1 > best.1 {
            best = (r.epoch, r.val_macro_f1);
        }
        println!(
            "   epoch {:>3}/{max_epochs}  train loss {:.3} acc {:5.1}%  val loss {:.3} acc {:5.1}% macro-F1 {:5.1}%  (best {}) {:.1}s",
            r.epoch,
            r.train_loss,
            100.0 * r.train_accuracy,
            r.val_loss,
            100.0 * r.val_accuracy,
            100.0 * r.val_macro_f1,
            best.0,
            r.seconds
        );
    }
}

/// Writes how a run was trained and its curves into its folder: `train_config.json`,
/// `curves.json` and `curves.csv`.
pub fn save_curves(dir: &Path, config: &TrainConfig, curves: &[EpochRecord]) -> anyhow::Result<()> {
    write_atomically(
        &dir.join("train_config.json"),
        serde_json::to_string_pretty(config)?.as_bytes(),
    )?;
    write_atomically(
        &dir.join("curves.json"),
        serde_json::to_string_pretty(curves)?.as_bytes(),
    )?;
    write_atomically(&dir.join("curves.csv"), curves_csv(curves).as_bytes())?;
    Ok(())
}

fn curves_csv(curves: &[EpochRecord]) -> String {
    let mut out = String::from(
        "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_macro_f1,seconds\n",
    );
    for r in curves {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            r.val_loss,
            r.val_accuracy,
            r.val_macro_f1,
            r.seconds
        );
    }
    out
}

/// Loads the saved run of `model` on `split` and predicts its test part.
pub fn evaluate_run(
    manifest: &CorpusManifest,
    split: &Split,
    cache: &Path,
    runs: &Path,
    model: ModelKind,
) -> anyhow::Result<SplitEvaluation> {
    let dir = run_dir(runs, model, &split.name).join("model");
    let trained = TrainedModel::load(&dir).map_err(|e| {
        anyhow::anyhow!(
            "no trained {model} model for split {} in {} ({e}): run `host-trainer train --model {model} --split {}` first",
            split.name,
            dir.display(),
            split.name
        )
    })?;
    let data = load_split(manifest, split, cache, model != ModelKind::Speech)?;
    let probabilities = trained.predict(&data.test)?;
    let predictions = data
        .test
        .iter()
        .zip(probabilities)
        .filter_map(|(example, probabilities)| {
            let entry = manifest.get(&example.id)?;
            Some(Prediction {
                id: example.id.clone(),
                path: entry.path.clone(),
                transcript: entry.transcript.clone(),
                truth: example.label,
                probabilities,
            })
        })
        .collect();
    Ok(SplitEvaluation {
        model: model.to_string(),
        split: split.name.clone(),
        predictions,
    })
}
