//! Runs: one model trained on one split, saved with its curves under
//! `RUNS/{model}/{split}/`, and the evaluation of saved runs on their test parts.
//!
//! The fusion run starts from the split's speech run (`RUNS/speech/{split}/model`) and
//! records in `fusion.json` whether the text path earned its place
//! ([`FusionText`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::data::manifest::CorpusManifest;
use crate::data::splits::Split;
use crate::evaluate::summary::{Prediction, SplitEvaluation};
use crate::train::dataset::load_split;
use crate::train::heads::{EmotionHead, ModelKind};
use crate::train::trainer::{
    EpochRecord, TrainConfig, TrainOutcome, TrainedModel, train, train_fusion_from_speech,
    validation_scores,
};
use emotion_core::fs::write_atomically;
use serde::{Deserialize, Serialize};

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
    let dir = run_dir(runs, model, &split.name);
    let speech_model = run_dir(runs, ModelKind::Speech, &split.name).join("model");
    let outcome = if model == ModelKind::Fusion {
        let speech = TrainedModel::load(&speech_model).map_err(|e| {
            anyhow::anyhow!(
                "the fusion model starts from the speech model of split {0}, which cannot be read from {1} ({e}): train it first (`host-trainer train --model speech --split {0}`)",
                split.name,
                speech_model.display()
            )
        })?;
        let start = validation_scores(&speech, &data.val)?;
        println!(
            "   epoch   0/{}  the speech model {} (frozen; text gate closed): val loss {:.3} acc {:5.1}% macro-F1 {:5.1}%",
            config.max_epochs,
            speech_model.display(),
            start.val_loss,
            100.0 * start.val_accuracy,
            100.0 * start.val_macro_f1
        );
        let mut on_epoch = epoch_printer(config.max_epochs, Some(start.val_macro_f1));
        train_fusion_from_speech(config, &speech, &data.train, &data.val, &mut on_epoch)?
    } else {
        let mut on_epoch = epoch_printer(config.max_epochs, None);
        train(config, &data.train, &data.val, &mut on_epoch)?
    };
    outcome.model.save(&dir.join("model"))?;
    save_curves(&dir, config, &outcome.curves)?;
    let best_val_macro_f1 = outcome
        .curves
        .iter()
        .find(|r| r.epoch == outcome.best_epoch)
        .map(|r| r.val_macro_f1)
        .or(outcome.start.map(|s| s.val_macro_f1))
        .unwrap_or(0.0);
    let text = FusionText::of(&outcome, &speech_model, best_val_macro_f1);
    if let Some(text) = &text {
        text.write(&dir)?;
    }
    println!(
        "   kept epoch {} (val macro-F1 {:.1}%) -> {}",
        outcome.best_epoch,
        100.0 * best_val_macro_f1,
        dir.display()
    );
    if let Some(text) = &text {
        println!("   {}", text.sentence());
    }
    Ok(TrainSummary {
        best_epoch: outcome.best_epoch,
        best_val_macro_f1,
        epochs: outcome.curves.len(),
        seconds: outcome.curves.iter().map(|r| r.seconds).sum(),
    })
}

/// `fusion.json` in a fusion run's folder: whether the text earned its place. The
/// fusion starts as the speech model with the text gated off; the text is kept only if
/// some epoch beat the speech model's validation macro-F1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionText {
    /// The speech model the fusion started from (its model folder).
    pub speech_model: PathBuf,
    /// The speech model's validation macro-F1: the score the text had to beat.
    pub speech_val_macro_f1: f64,
    /// The kept fusion model's validation macro-F1.
    pub val_macro_f1: f64,
    /// True when an epoch beat the speech model; false: the fusion model is the speech
    /// model (its logits bit for bit; the text enters times `tanh(g) = 0`).
    pub text_kept: bool,
    /// `tanh(g)` of the kept model: how much of the attended text enters.
    pub text_gate: f32,
}

impl FusionText {
    /// The file name inside the run folder.
    pub const FILE: &'static str = "fusion.json";

    /// The record of a fusion run's `outcome` (`None` for a run that did not start from
    /// a speech model).
    fn of(outcome: &TrainOutcome, speech_model: &Path, val_macro_f1: f64) -> Option<Self> {
        let (EmotionHead::Fusion(head), Some(start)) = (outcome.model.head(), outcome.start) else {
            return None;
        };
        Some(Self {
            speech_model: speech_model.to_path_buf(),
            speech_val_macro_f1: start.val_macro_f1,
            val_macro_f1,
            text_kept: outcome.best_epoch > 0,
            text_gate: head.gate_value(),
        })
    }

    fn write(&self, run_dir: &Path) -> anyhow::Result<()> {
        write_atomically(
            &run_dir.join(Self::FILE),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?;
        Ok(())
    }

    /// The record of the fusion run on `split` under `runs`, if there is one.
    pub fn read(runs: &Path, split: &str) -> anyhow::Result<Option<Self>> {
        let path = run_dir(runs, ModelKind::Fusion, split).join(Self::FILE);
        match std::fs::read_to_string(&path) {
            Ok(json) => Ok(Some(serde_json::from_str(&json).map_err(|e| {
                anyhow::anyhow!("{}: not a fusion record ({e})", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    /// One sentence for a log, a report or `metrics.json`.
    pub fn sentence(&self) -> String {
        if self.text_kept {
            format!(
                "text kept: validation macro-F1 {:.1}% against the speech model's {:.1}% (text gate tanh(g) = {:+.3})",
                100.0 * self.val_macro_f1,
                100.0 * self.speech_val_macro_f1,
                self.text_gate
            )
        } else {
            format!(
                "the text did not help: no epoch beat the speech model's validation macro-F1 ({:.1}%), so the fusion model is the speech model (text gate tanh(g) = {:+.3})",
                100.0 * self.speech_val_macro_f1,
                self.text_gate
            )
        }
    }
}

/// Prints one line per epoch, readable in a terminal and in a log file alike, with the
/// best epoch by validation macro-F1 so far (epoch 0: the model the run started from,
/// whose validation macro-F1 is `start`).
pub fn epoch_printer(max_epochs: usize, start: Option<f64>) -> impl FnMut(&EpochRecord) {
    let mut best = (0usize, start.unwrap_or(f64::NEG_INFINITY));
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
