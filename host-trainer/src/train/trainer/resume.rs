//! Resuming a training: the per-epoch training checkpoint (not to be confused with an
//! encoder checkpoint, [`crate::encoders::EncoderCheckpoint`], the pretrained weights a
//! feature extractor reads).
//!
//! With [`TrainConfig::checkpoint`](super::trainer::TrainConfig::checkpoint) set, the
//! state after every epoch is written to that folder (`EpochCheckpoint`): `epoch-NNNN/`
//! holds the current weights (`model.bpk`), AdamW's moments (`optimizer.bpk`, burn's
//! `OptimizerRecord`) and the best epoch's weights (`best.bpk`); `checkpoint.json` names
//! that folder with each file's SHA-256 and holds the curves, the best epoch and its
//! scores, the patience counter, the batch order and both generators' positions. The
//! files are written under a temporary name and `checkpoint.json` is replaced last (temp
//! file + rename), so a kill at any moment leaves the previous checkpoint whole. A run
//! that finds one resumes after its epoch and ends with exactly the weights and curves
//! of an uninterrupted run (the `seconds` aside). The checkpoint records what it belongs
//! to (model, batch size, learning rate, weight decay, seed, head sizes, classes, and a
//! digest of the features and labels, and of the weights of the model a fusion run
//! started from): another training is refused rather than continued. `max_epochs` and `patience` may change between runs (to train on for
//! longer). The caller removes the folder ([`remove_checkpoint`]) once the model is
//! saved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::cache::Features;
use crate::train::heads::{EmotionHead, EmotionHeadConfig};
use crate::train::trainer::{
    Best, Classes, EpochRecord, Example, LoopState, TrainConfig, TrainError, generators,
    load_weights, save_weights,
};
use emotion_core::fs::write_atomically;

/// Version of the checkpoint layout; bumped when `checkpoint.json` or its files change.
const CHECKPOINT_VERSION: u32 = 1;
/// The file that commits a checkpoint: written last, atomically.
pub(super) const CHECKPOINT_FILE: &str = "checkpoint.json";
/// Files of one epoch's folder.
pub(super) const CURRENT_WEIGHTS: &str = "model.bpk";
pub(super) const OPTIMIZER_STATE: &str = "optimizer.bpk";
pub(super) const BEST_WEIGHTS: &str = "best.bpk";
/// Prefix of the per-epoch folders.
const EPOCH_FOLDER: &str = "epoch-";

/// Deletes the checkpoint folder `dir` (nothing to do when it is not there): once the
/// final model is saved, or to start a run over. Returns whether there was one.
pub fn remove_checkpoint(dir: &Path) -> Result<bool, TrainError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(TrainError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// The per-epoch checkpoint folder of one training, with what the training is.
pub(super) struct EpochCheckpoint {
    dir: PathBuf,
    /// What a resumed run must share with the run that wrote the checkpoint.
    fingerprint: BTreeMap<String, serde_json::Value>,
    /// The run started from a trained model, which stays the best (epoch 0) until an
    /// epoch beats it.
    from_a_start: bool,
}

/// `checkpoint.json`. Floats are kept as their bits: exact, and NaN survives.
#[derive(Serialize, Deserialize)]
struct CheckpointJson {
    format_version: u32,
    fingerprint: BTreeMap<String, serde_json::Value>,
    /// Epochs done.
    epoch: usize,
    /// The folder holding this epoch's files, and each file's SHA-256.
    folder: String,
    files: BTreeMap<String, String>,
    curves: Vec<SavedEpoch>,
    best_epoch: usize,
    best_macro_f1: u64,
    best_loss: u64,
    since_best: usize,
    order: Vec<usize>,
    /// Generator positions in 32-bit words (u128, as decimal text).
    shuffle_rng: String,
    dropout_rng: String,
}

/// An [`EpochRecord`] with its floats as bits.
#[derive(Serialize, Deserialize)]
struct SavedEpoch {
    epoch: usize,
    values: [u64; 6],
}

impl From<&EpochRecord> for SavedEpoch {
    fn from(r: &EpochRecord) -> Self {
        Self {
            epoch: r.epoch,
            values: [
                r.train_loss,
                r.train_accuracy,
                r.val_loss,
                r.val_accuracy,
                r.val_macro_f1,
                r.seconds,
            ]
            .map(f64::to_bits),
        }
    }
}

impl From<&SavedEpoch> for EpochRecord {
    fn from(s: &SavedEpoch) -> Self {
        let [
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            val_macro_f1,
            seconds,
        ] = s.values.map(f64::from_bits);
        Self {
            epoch: s.epoch,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            val_macro_f1,
            seconds,
        }
    }
}

/// What a checkpoint must match: the settings that shape the run (not `max_epochs` or
/// `patience`, which may change to train on for longer), the classes, and a digest of
/// the features and labels the model reads.
fn fingerprint(
    config: &TrainConfig,
    classes: &Classes<'_>,
    (train, train_labels): (&[Example], &[usize]),
    (val, val_labels): (&[Example], &[usize]),
    start: Option<&EmotionHead>,
) -> BTreeMap<String, serde_json::Value> {
    let value = |v: serde_json::Result<serde_json::Value>| v.unwrap_or(serde_json::Value::Null);
    let mut hasher = Sha256::new();
    for (part, examples, labels) in [("train", train, train_labels), ("val", val, val_labels)] {
        hasher.update(part.as_bytes());
        hasher.update((examples.len() as u64).to_le_bytes());
        for (example, &label) in examples.iter().zip(labels) {
            hasher.update((example.id.len() as u64).to_le_bytes());
            hasher.update(example.id.as_bytes());
            hasher.update((label as u64).to_le_bytes());
            if config.model.uses_speech() {
                hash_features(&mut hasher, Some(&example.speech));
            }
            if config.model.uses_text() {
                hash_features(&mut hasher, example.text.as_ref());
            }
        }
    }
    let mut fingerprint = BTreeMap::from([
        ("model".into(), value(serde_json::to_value(config.model))),
        ("batch_size".into(), config.batch_size.into()),
        ("learning_rate".into(), config.learning_rate.into()),
        ("weight_decay".into(), config.weight_decay.into()),
        ("seed".into(), config.seed.into()),
        ("head".into(), value(serde_json::to_value(&config.head))),
        ("classes".into(), classes.names.clone().into()),
        ("train_examples".into(), train.len().into()),
        ("val_examples".into(), val.len().into()),
        ("data_sha256".into(), hex(&hasher.finalize()).into()),
    ]);
    if let Some(start) = start {
        fingerprint.insert("start_sha256".into(), weights_digest(start).into());
    }
    fingerprint
}

/// SHA-256 of every parameter value of `head`, in the module's order.
fn weights_digest(head: &EmotionHead) -> String {
    struct Digest(Sha256);
    impl ModuleVisitor for Digest {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param
                .val()
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap_or_default();
            self.0.update((values.len() as u64).to_le_bytes());
            for v in values {
                self.0.update(v.to_le_bytes());
            }
        }
    }
    let mut digest = Digest(Sha256::new());
    head.visit(&mut digest);
    hex(&digest.0.finalize())
}

fn hash_features(hasher: &mut Sha256, features: Option<&Features>) {
    let Some(features) = features else {
        hasher.update([0u8]);
        return;
    };
    hasher.update([1u8]);
    for list in [&features.layers, &features.shape] {
        hasher.update((list.len() as u64).to_le_bytes());
        for &n in list.iter() {
            hasher.update((n as u64).to_le_bytes());
        }
    }
    let bytes: Vec<u8> = features.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    hasher.update(&bytes);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entries of two fingerprints that differ, as `key: checkpoint A, now B`.
fn differences(
    saved: &BTreeMap<String, serde_json::Value>,
    now: &BTreeMap<String, serde_json::Value>,
) -> Vec<String> {
    let missing = serde_json::Value::Null;
    let mut keys: Vec<&String> = saved.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (a, b) = (
                saved.get(key).unwrap_or(&missing),
                now.get(key).unwrap_or(&missing),
            );
            (a != b).then(|| {
                if key == "data_sha256" {
                    "the features or labels differ (extracted again, or another split?)".into()
                } else {
                    format!("{key}: checkpoint {a}, now {b}")
                }
            })
        })
        .collect()
}

impl EpochCheckpoint {
    /// The checkpoint folder `dir` of the training of `config` on these examples and
    /// labels.
    pub(super) fn new(
        dir: PathBuf,
        config: &TrainConfig,
        classes: &Classes<'_>,
        train: (&[Example], &[usize]),
        val: (&[Example], &[usize]),
        start: Option<&EmotionHead>,
    ) -> Self {
        Self {
            dir,
            fingerprint: fingerprint(config, classes, train, val, start),
            from_a_start: start.is_some(),
        }
    }

    /// An error about `path` inside this checkpoint.
    fn unusable(&self, path: &Path, detail: impl Into<String>) -> TrainError {
        TrainError::EpochCheckpoint {
            path: path.to_path_buf(),
            dir: self.dir.clone(),
            detail: detail.into(),
        }
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
        let path = path.to_path_buf();
        move |source| TrainError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Writes the state after `state.epoch`: its files into a temporary folder, renamed
    /// into place, then `checkpoint.json` (temp file + rename), then older folders go.
    /// A kill at any point leaves either the previous checkpoint or this one, whole.
    pub(super) fn save(&self, state: &LoopState) -> Result<(), TrainError> {
        let best = state
            .best
            .as_ref()
            .ok_or_else(|| TrainError::InvalidConfig("checkpoint before any epoch".into()))?;
        let folder = format!("{EPOCH_FOLDER}{:04}", state.epoch);
        let files = self.write_epoch_folder(state, best, &folder)?;
        let saved = CheckpointJson {
            format_version: CHECKPOINT_VERSION,
            fingerprint: self.fingerprint.clone(),
            epoch: state.epoch,
            folder: folder.clone(),
            files,
            curves: state.curves.iter().map(SavedEpoch::from).collect(),
            best_epoch: best.epoch,
            best_macro_f1: best.macro_f1.to_bits(),
            best_loss: best.loss.to_bits(),
            since_best: state.since_best,
            order: state.order.clone(),
            shuffle_rng: state.shuffle_rng.get_word_pos().to_string(),
            dropout_rng: state.dropout_rng.word_pos().to_string(),
        };
        let path = self.dir.join(CHECKPOINT_FILE);
        let json =
            serde_json::to_string(&saved).map_err(|e| self.unusable(&path, e.to_string()))?;
        write_atomically(&path, json.as_bytes()).map_err(self.io(&path))?;
        self.remove_leftovers(Some(&folder))
    }

    /// Writes the files of the epoch folder `folder` (the current and best weights, the
    /// optimizer state) into a temporary folder, synced, then renamed into place.
    /// Returns each file's SHA-256.
    fn write_epoch_folder(
        &self,
        state: &LoopState,
        best: &Best,
        folder: &str,
    ) -> Result<BTreeMap<String, String>, TrainError> {
        let tmp = self
            .dir
            .join(format!(".{folder}.tmp{}", std::process::id()));
        remove_dir_if_there(&tmp).map_err(self.io(&tmp))?;
        std::fs::create_dir_all(&tmp).map_err(self.io(&tmp))?;
        save_weights(&state.model, &tmp.join(CURRENT_WEIGHTS))?;
        save_weights(&best.head, &tmp.join(BEST_WEIGHTS))?;
        let optimizer_path = tmp.join(OPTIMIZER_STATE);
        state
            .optimizer
            .to_record()
            .save(&optimizer_path)
            .map_err(|e| TrainError::Weights {
                path: optimizer_path.clone(),
                detail: e.to_string(),
            })?;
        let mut files = BTreeMap::new();
        for name in [CURRENT_WEIGHTS, OPTIMIZER_STATE, BEST_WEIGHTS] {
            let path = tmp.join(name);
            let bytes = std::fs::read(&path).map_err(self.io(&path))?;
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(self.io(&path))?;
            files.insert(name.to_string(), hex(&Sha256::digest(&bytes)));
        }
        let final_dir = self.dir.join(folder);
        remove_dir_if_there(&final_dir).map_err(self.io(&final_dir))?;
        std::fs::rename(&tmp, &final_dir).map_err(self.io(&final_dir))?;
        Ok(files)
    }

    /// Removes the epoch folders other than `keep`, and temporary ones left by a kill.
    /// Only names this code writes are touched.
    fn remove_leftovers(&self, keep: Option<&str>) -> Result<(), TrainError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(self.io(&self.dir)(source)),
        };
        for entry in entries {
            let entry = entry.map_err(self.io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let ours = name.starts_with(EPOCH_FOLDER)
                || name.starts_with(&format!(".{EPOCH_FOLDER}"))
                || name.starts_with(&format!(".{CHECKPOINT_FILE}.tmp"));
            if !ours || Some(name.as_str()) == keep {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(self.io(&path))?;
        }
        Ok(())
    }

    /// The state saved in this folder, or `None` when there is no checkpoint. Anything
    /// damaged, missing or of another training is an error that says so.
    pub(super) fn load(
        &self,
        head_config: &EmotionHeadConfig,
        device: &Device,
        inference_device: &Device,
        optimizer: ModuleOptimizer,
        seed: u64,
        train_len: usize,
    ) -> Result<Option<LoopState>, TrainError> {
        let Some((path, saved)) = self.read_json(train_len)? else {
            return Ok(None);
        };
        let shuffle_pos = saved.shuffle_rng.parse::<u128>();
        let dropout_pos = saved.dropout_rng.parse::<u128>();
        let (Ok(shuffle_pos), Ok(dropout_pos)) = (shuffle_pos, dropout_pos) else {
            return Err(self.unusable(&path, "generator positions are not numbers"));
        };

        let model_path = self.verified(&path, &saved, CURRENT_WEIGHTS)?;
        let best_path = self.verified(&path, &saved, BEST_WEIGHTS)?;
        let optimizer_path = self.verified(&path, &saved, OPTIMIZER_STATE)?;
        let as_unusable = |e: TrainError| match e {
            TrainError::Weights { path, detail } => self.unusable(&path, detail),
            other => other,
        };
        // The weights file carries the parameter ids, which the optimizer state is keyed by.
        let model =
            load_weights(head_config.init_for_loading(device), &model_path).map_err(as_unusable)?;
        let best_head = load_weights(head_config.init_for_loading(inference_device), &best_path)
            .map_err(as_unusable)?;
        let optimizer = self.load_optimizer(optimizer, &optimizer_path)?;

        // The generators of this run's seed, where the saved run had left them.
        let (mut shuffle_rng, mut dropout_rng) = generators(seed);
        shuffle_rng.set_word_pos(shuffle_pos);
        dropout_rng.set_word_pos(dropout_pos);
        Ok(Some(LoopState {
            epoch: saved.epoch,
            model,
            optimizer,
            shuffle_rng,
            dropout_rng,
            order: saved.order,
            curves: saved.curves.iter().map(EpochRecord::from).collect(),
            best: Some(Best {
                epoch: saved.best_epoch,
                macro_f1: f64::from_bits(saved.best_macro_f1),
                loss: f64::from_bits(saved.best_loss),
                head: best_head,
            }),
            since_best: saved.since_best,
        }))
    }

    /// `checkpoint.json` (with its path), read and checked: of this layout version, of
    /// this training, its numbers consistent. `None` when there is none (a kill before
    /// the first checkpoint was complete; its leftovers are removed).
    fn read_json(&self, train_len: usize) -> Result<Option<(PathBuf, CheckpointJson)>, TrainError> {
        let path = self.dir.join(CHECKPOINT_FILE);
        let json = match std::fs::read_to_string(&path) {
            Ok(json) => json,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Killed before the first checkpoint was complete: nothing to resume.
                self.remove_leftovers(None)?;
                return Ok(None);
            }
            Err(e) => return Err(self.unusable(&path, e.to_string())),
        };
        let saved: CheckpointJson =
            serde_json::from_str(&json).map_err(|e| self.unusable(&path, e.to_string()))?;
        if saved.format_version != CHECKPOINT_VERSION {
            return Err(self.unusable(
                &path,
                format!(
                    "format version {}, this program reads version {CHECKPOINT_VERSION}",
                    saved.format_version
                ),
            ));
        }
        let differences = differences(&saved.fingerprint, &self.fingerprint);
        if !differences.is_empty() {
            return Err(TrainError::CheckpointMismatch {
                dir: self.dir.clone(),
                detail: differences.join("; "),
            });
        }
        self.check(&path, &saved, train_len)?;
        Ok(Some((path, saved)))
    }

    /// The file `name` of the saved epoch folder, once its SHA-256 matches the one
    /// `saved` (read from `path`) records.
    fn verified(
        &self,
        path: &Path,
        saved: &CheckpointJson,
        name: &str,
    ) -> Result<PathBuf, TrainError> {
        let file = self.dir.join(&saved.folder).join(name);
        let expected = saved
            .files
            .get(name)
            .ok_or_else(|| self.unusable(path, format!("no checksum for {name}")))?;
        let bytes = std::fs::read(&file).map_err(|e| self.unusable(&file, e.to_string()))?;
        if &hex(&Sha256::digest(&bytes)) != expected {
            return Err(self.unusable(&file, "its contents changed since it was written"));
        }
        Ok(file)
    }

    /// `optimizer` with the state saved at `path`, which must fit the model's parameters.
    fn load_optimizer(
        &self,
        optimizer: ModuleOptimizer,
        path: &Path,
    ) -> Result<ModuleOptimizer, TrainError> {
        let record = OptimizerRecord::load(path).map_err(|e| self.unusable(path, e.to_string()))?;
        let states = record.len();
        let optimizer = optimizer.load_record(record);
        if optimizer.to_record().len() != states {
            return Err(self.unusable(
                path,
                "the optimizer state does not fit the model's parameters",
            ));
        }
        Ok(optimizer)
    }

    /// Checks that the saved numbers hang together, so that a hand-edited or damaged
    /// file is an error here and not a panic later.
    fn check(
        &self,
        path: &Path,
        saved: &CheckpointJson,
        train_len: usize,
    ) -> Result<(), TrainError> {
        let bad = |detail: String| Err(self.unusable(path, detail));
        if saved.epoch == 0 || saved.curves.len() != saved.epoch {
            return bad(format!(
                "{} epochs done but {} epoch records",
                saved.epoch,
                saved.curves.len()
            ));
        }
        if saved
            .curves
            .iter()
            .enumerate()
            .any(|(i, r)| r.epoch != i + 1)
        {
            return bad("the epoch records are not numbered 1, 2, …".into());
        }
        let first = if self.from_a_start { 0 } else { 1 };
        if !(first..=saved.epoch).contains(&saved.best_epoch)
            || saved.since_best != saved.epoch - saved.best_epoch
        {
            return bad(format!(
                "best epoch {} and {} epochs since it, after {} epochs",
                saved.best_epoch, saved.since_best, saved.epoch
            ));
        }
        let mut seen = vec![false; train_len];
        let permutation = saved.order.len() == train_len
            && saved
                .order
                .iter()
                .all(|&i| i < train_len && !std::mem::replace(&mut seen[i], true));
        if !permutation {
            return bad(format!(
                "the batch order is not an order of the {train_len} training examples"
            ));
        }
        let plain = !saved.folder.is_empty()
            && saved.folder.starts_with(EPOCH_FOLDER)
            && Path::new(&saved.folder).file_name() == Some(std::ffi::OsStr::new(&saved.folder));
        if !plain {
            return bad(format!("{:?} is not an epoch folder name", saved.folder));
        }
        Ok(())
    }
}

/// Removes a folder and what it holds; nothing to do when it is not there.
fn remove_dir_if_there(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
