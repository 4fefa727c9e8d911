//! Training a head: a plain loop (no burn-train `Learner`), reproducible from one seed.
//!
//! - AdamW on the cross-entropy of the classes (the seven emotions, or any other set of
//!   classes with [`train_classes`]: the keyword spotter's words), shuffled mini-batches
//!   each epoch (ChaCha8 from the seed), each batch padded to its longest sample with the
//!   lengths passed to the model.
//! - After every epoch the model is scored on the validation set; the best epoch by
//!   validation macro-F1 (ties: the lower validation loss) is kept, and training stops
//!   after `patience` epochs without a better one.
//! - The fusion model starts from the split's trained speech model
//!   ([`train_fusion_from_speech`]): that model is epoch 0, and only an epoch with a
//!   higher validation macro-F1 replaces it, so fusion never loses to speech on
//!   validation and, when the text does not help, is the speech model bit for bit.
//! - The same seed gives the same weights, the same curves and the same predictions:
//!   parameters are drawn from burn's generator seeded and under a lock
//!   ([`EmotionHeadConfig::init_seeded`]); shuffling and dropout masks come from our own
//!   ChaCha8 generators, so nothing else in the process can disturb them.
//!
//! A [`TrainedModel`] predicts probabilities and is saved as `head.json` (the model
//! configuration, input sizes included) beside `head.bpk` (the weights, burnpack via
//! burn-store).
//!
//! # Resuming
//!
//! With [`TrainConfig::checkpoint`] set, the state after every epoch is saved to that
//! folder and a run that finds it there resumes after its epoch, ending exactly as an
//! uninterrupted run would: see [`resume`] (the per-epoch training checkpoint,
//! not an encoder checkpoint). The caller removes the folder ([`remove_checkpoint`]) once
//! the model is saved.

pub mod resume;

use emotion_core::scores::{argmax, softmax};

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::{Device, Int, Tensor, TensorData};
use emotion_core::Emotion;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::evaluate::metrics::ClassificationReport;
use crate::features::cache::Features;
use crate::train::heads::{
    CLASSES, DropoutRng, EmotionHead, EmotionHeadConfig, FeatureLayout, HeadConfig, HeadInput,
    InputError, ModelKind, SequenceBatch,
};
use crate::train::trainer::resume::EpochCheckpoint;
pub use crate::train::trainer::resume::remove_checkpoint;
use emotion_core::fs::write_atomically;

/// Samples per forward pass when predicting or validating (no gradients kept).
const INFERENCE_BATCH: usize = 32;

/// File names inside a saved model folder.
const CONFIG_FILE: &str = "head.json";
const WEIGHTS_FILE: &str = "head.bpk";

/// Version of the saved-model layout; bumped when `head.json` or the module tree changes.
const FORMAT_VERSION: u32 = 1;

/// One utterance with its features and its label.
#[derive(Debug, Clone)]
pub struct Example {
    /// The utterance id (as in the manifest).
    pub id: String,
    /// Speech-encoder features, `[T, H]` or `[L, T, H]`.
    pub speech: Features,
    /// Text-encoder token features, needed by the text and fusion models.
    pub text: Option<Features>,
    /// The true emotion.
    pub label: Emotion,
}

/// The classes a head learns: their names in output order, and each example's class.
pub struct Classes<'a> {
    /// Class names, in the order of the model's outputs.
    pub names: Vec<String>,
    /// The class of an example, an index into `names`.
    pub label: Box<dyn Fn(&Example) -> usize + 'a>,
}

impl Classes<'static> {
    /// The seven emotions, in [`Emotion`] order; an example's class is its emotion.
    pub fn emotions() -> Self {
        Self {
            names: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
            label: Box::new(|e: &Example| e.label.index()),
        }
    }
}

impl Classes<'_> {
    /// The class of every example, checked to be one of the classes.
    fn labels_of(&self, examples: &[Example]) -> Result<Vec<usize>, TrainError> {
        examples
            .iter()
            .map(|e| {
                let label = (self.label)(e);
                if label < self.names.len() {
                    Ok(label)
                } else {
                    Err(TrainError::Label {
                        id: e.id.clone(),
                        label,
                        classes: self.names.len(),
                    })
                }
            })
            .collect()
    }
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Which model.
    pub model: ModelKind,
    /// Most epochs to run.
    pub max_epochs: usize,
    /// Epochs without a better validation macro-F1 before stopping.
    pub patience: usize,
    /// Samples per training step.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Seed of everything random: initial weights, shuffling, dropout.
    pub seed: u64,
    /// Sizes of the model.
    pub head: HeadConfig,
    /// Folder for a checkpoint after every epoch, resumed from when it is there (see
    /// [`super::resume`]); `None`: no checkpoint. Where to write, not how
    /// to train: never saved with the settings.
    #[serde(skip)]
    pub checkpoint: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: ModelKind::Speech,
            max_epochs: 40,
            patience: 8,
            batch_size: 8,
            learning_rate: 1e-3,
            weight_decay: 1e-2,
            seed: 42,
            head: HeadConfig::default(),
            checkpoint: None,
        }
    }
}

impl TrainConfig {
    /// Checks the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |detail: String| Err(TrainError::InvalidConfig(detail));
        if self.max_epochs == 0 {
            return bad("max_epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate must be a positive number, got {}",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay must be zero or positive, got {}",
                self.weight_decay
            ));
        }
        self.head.validate().map_err(TrainError::InvalidConfig)
    }
}

/// The scores of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean cross-entropy over the training samples (with dropout, as trained).
    pub train_loss: f64,
    /// Fraction of training samples predicted right during the epoch.
    pub train_accuracy: f64,
    /// Mean cross-entropy over the validation samples (no dropout).
    pub val_loss: f64,
    /// Fraction of validation samples predicted right.
    pub val_accuracy: f64,
    /// Validation macro-F1 (the early-stopping criterion).
    pub val_macro_f1: f64,
    /// Wall-clock seconds of the epoch (training and validation).
    pub seconds: f64,
}

/// What [`train`] gives back.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The weights of the best epoch.
    pub model: TrainedModel,
    /// One record per epoch run.
    pub curves: Vec<EpochRecord>,
    /// The epoch whose weights were kept; 0 when a run that started from a trained model
    /// ([`train_fusion_from_speech`]) never beat it: the start is kept unchanged.
    pub best_epoch: usize,
    /// Validation scores of the trained model the run started from, if it started from
    /// one.
    pub start: Option<ValidationScores>,
}

/// A model's scores on a validation set (for a run's start: its epoch 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationScores {
    /// Validation macro-F1.
    pub val_macro_f1: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Mean validation cross-entropy.
    pub val_loss: f64,
}

/// Why training, prediction, saving or loading failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting out of range.
    #[error("invalid training configuration: {0}")]
    InvalidConfig(String),
    /// Nothing to train on.
    #[error("the training set is empty: check the split and the feature index")]
    EmptyTrainSet,
    /// Nothing to pick the best epoch with.
    #[error("the validation set is empty: early stopping needs validation examples")]
    EmptyValidationSet,
    /// The text or fusion model without text features.
    #[error(
        "{id} has no text features, which the {model} model needs: extract text features (a transcript for every utterance) first"
    )]
    MissingText {
        /// The utterance.
        id: String,
        /// The model.
        model: ModelKind,
    },
    /// Features that cannot be used, or that differ from the others' (or the model's)
    /// layers or width.
    #[error("{id}: {which} features: {source} (all examples must come from the same extraction)")]
    Features {
        /// The utterance.
        id: String,
        /// `speech` or `text`.
        which: &'static str,
        /// What is wrong.
        source: InputError,
    },
    /// An example whose class is not one of the classes being learnt.
    #[error("{id} has class {label}, but the model learns {classes} classes")]
    Label {
        /// The utterance.
        id: String,
        /// Its class index.
        label: usize,
        /// How many classes there are.
        classes: usize,
    },
    /// A model with another number of outputs than the caller reads (an emotion model
    /// has seven).
    #[error("the model has {found} outputs, expected {expected}")]
    Outputs {
        /// The model's outputs.
        found: usize,
        /// What the caller expects.
        expected: usize,
    },
    /// The model refused a batch (a bug if the examples passed the checks above).
    #[error("the model refused a batch: {0}")]
    Model(#[from] InputError),
    /// File-system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `head.json` unreadable or from another version.
    #[error("{path}: not a saved head ({detail})")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The weights file cannot be written, read or applied to the model.
    #[error("{path}: weights not usable ({detail})")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint file that cannot be read, is damaged, or does not fit the model.
    #[error(
        "{path}: training checkpoint not usable ({detail}); delete the folder {dir} (or pass --fresh to `host-trainer train`) to train this run from the start"
    )]
    EpochCheckpoint {
        /// The file at fault.
        path: PathBuf,
        /// The checkpoint folder.
        dir: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint written by another training (other settings or other data).
    #[error(
        "{dir}: this checkpoint belongs to another training ({detail}); delete the folder (or pass --fresh to `host-trainer train`) to start over, or train into another --runs folder"
    )]
    CheckpointMismatch {
        /// The checkpoint folder.
        dir: PathBuf,
        /// What differs.
        detail: String,
    },
}

/// Trains `config.model` on `train` to tell the seven emotions apart, choosing the
/// epoch by `val`; calls `on_epoch` after each epoch.
pub fn train(
    config: &TrainConfig,
    train: &[Example],
    val: &[Example],
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainOutcome, TrainError> {
    train_classes(config, &Classes::emotions(), train, val, on_epoch)
}

/// Trains the fusion model (`config.model` must be fusion) from the trained speech-only
/// model `speech`: its speech branch and classifier are `speech`'s, frozen, and the text
/// gate starts closed, so epoch 0 is `speech` exactly. Only the text branch, the
/// attention and the gate learn, and an epoch replaces the start only with a strictly
/// higher validation macro-F1. When none does, the outcome's `best_epoch` is 0 and its
/// model gives `speech`'s logits bit for bit (the attended text enters times
/// `tanh(0) = 0`): fusion is never worse than speech on validation, and what it gains
/// there is the text's doing, not more training of the speech path.
pub fn train_fusion_from_speech(
    config: &TrainConfig,
    speech: &TrainedModel,
    train: &[Example],
    val: &[Example],
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainOutcome, TrainError> {
    if config.model != ModelKind::Fusion || speech.kind() != ModelKind::Speech {
        return Err(TrainError::InvalidConfig(format!(
            "only the fusion model starts from a trained speech model (asked: {} from {})",
            config.model,
            speech.kind()
        )));
    }
    train_with(
        config,
        &Classes::emotions(),
        Some(speech),
        train,
        val,
        on_epoch,
    )
}

/// Trains `config.model` with one output per class of `classes` (the last layer sized
/// to them), choosing the epoch by `val` (macro-F1 over the classes); calls `on_epoch`
/// after each epoch. With `config.checkpoint` set, resumes from the checkpoint there (its
/// epochs are passed to `on_epoch` first, so callers see the whole run) and checkpoints
/// every epoch; see [`resume`].
pub fn train_classes(
    config: &TrainConfig,
    classes: &Classes<'_>,
    train: &[Example],
    val: &[Example],
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainOutcome, TrainError> {
    train_with(config, classes, None, train, val, on_epoch)
}

/// [`train_classes`], from scratch or (`start`) from a trained speech model.
fn train_with(
    config: &TrainConfig,
    classes: &Classes<'_>,
    start: Option<&TrainedModel>,
    train: &[Example],
    val: &[Example],
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainOutcome, TrainError> {
    let (run, optimizer) = Run::prepare(config, classes, start, train, val)?;
    let checkpoint = config.checkpoint.as_ref().map(|dir| {
        EpochCheckpoint::new(
            dir.clone(),
            config,
            classes,
            (train, &run.train_labels),
            (val, &run.val_labels),
            run.start.as_ref().map(|(head, _)| head),
        )
    });
    let mut state = run.start_or_resume(checkpoint.as_ref(), optimizer)?;
    // Restored epochs are reported too, so that callers see the whole run.
    for record in &state.curves {
        on_epoch(record);
    }

    while state.epoch < config.max_epochs && !state.stopped(config) {
        let record;
        (state, record) = run.epoch(state)?;
        if let Some(checkpoint) = &checkpoint {
            checkpoint.save(&state)?;
        }
        on_epoch(&record);
    }
    // At least one epoch ran (max_epochs ≥ 1, and a checkpoint holds at least one), and
    // the first one always sets `best`.
    let best = state
        .best
        .ok_or_else(|| TrainError::InvalidConfig("no epoch ran".into()))?;
    Ok(TrainOutcome {
        model: TrainedModel {
            config: run.head_config,
            head: best.head,
            device: run.inference_device,
        },
        curves: state.curves,
        best_epoch: best.epoch,
        start: run.start.map(|(_, scores)| scores),
    })
}

/// What one training reads and does not change: the settings, the examples and their
/// classes, the head to build, the devices and the loss.
struct Run<'a, 'c> {
    config: &'a TrainConfig,
    kind: ModelKind,
    classes: &'a Classes<'c>,
    train: &'a [Example],
    train_labels: Vec<usize>,
    val: &'a [Example],
    val_labels: Vec<usize>,
    head_config: EmotionHeadConfig,
    device: Device,
    inference_device: Device,
    loss_fn: CrossEntropyLoss,
    /// The model the run starts from (a fusion head built on a trained speech head, on
    /// the training device) and its validation scores: epoch 0.
    start: Option<(EmotionHead, ValidationScores)>,
}

impl<'a, 'c> Run<'a, 'c> {
    /// Checks the settings and the data (classes, examples, feature layouts, labels),
    /// then sets up the devices, the loss and a fresh optimizer.
    fn prepare(
        config: &'a TrainConfig,
        classes: &'a Classes<'c>,
        start: Option<&TrainedModel>,
        train: &'a [Example],
        val: &'a [Example],
    ) -> Result<(Self, ModuleOptimizer), TrainError> {
        config.validate()?;
        if classes.names.is_empty() {
            return Err(TrainError::InvalidConfig("no classes to learn".into()));
        }
        if train.is_empty() {
            return Err(TrainError::EmptyTrainSet);
        }
        if val.is_empty() {
            return Err(TrainError::EmptyValidationSet);
        }
        let kind = config.model;
        let layouts = Layouts::of(kind, train.iter().chain(val))?;
        let train_labels = classes.labels_of(train)?;
        let val_labels = classes.labels_of(val)?;
        let head_config = config
            .head
            .model(kind, layouts.speech_or_unused(), layouts.text_or_unused())
            .with_classes(classes.names.len());

        let device = Device::flex().autodiff();
        let inference_device = device.clone().without_autodiff();
        let optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let start = match start {
            None => None,
            Some(speech) => {
                let head = fusion_from_speech(
                    head_config.init_seeded(config.seed, &device),
                    &head_config,
                    speech,
                    &device,
                )?;
                let scores = score(
                    &head.valid(),
                    kind,
                    classes,
                    val,
                    &val_labels,
                    &inference_device,
                )?;
                Some((head, scores.into()))
            }
        };
        let run = Self {
            config,
            kind,
            classes,
            train,
            train_labels,
            val,
            val_labels,
            head_config,
            device,
            inference_device,
            loss_fn,
            start,
        };
        Ok((run, optimizer))
    }

    /// The state saved in `checkpoint` (saying where the run resumes), or a fresh start:
    /// the head initialised from the seed, `optimizer`, the generators at their start.
    fn start_or_resume(
        &self,
        checkpoint: Option<&EpochCheckpoint>,
        optimizer: ModuleOptimizer,
    ) -> Result<LoopState, TrainError> {
        let config = self.config;
        let restored = match checkpoint {
            Some(checkpoint) => checkpoint.load(
                &self.head_config,
                &self.device,
                &self.inference_device,
                optimizer.clone(),
                config.seed,
                self.train.len(),
            )?,
            None => None,
        };
        let Some(mut state) = restored else {
            // Separate streams for the order of samples and for dropout.
            let (shuffle_rng, dropout_rng) = generators(config.seed);
            // A run from a trained model has it as epoch 0, the one to beat.
            let (model, best) = match &self.start {
                Some((head, scores)) => (
                    head.clone(),
                    Some(Best {
                        epoch: 0,
                        macro_f1: scores.val_macro_f1,
                        loss: scores.val_loss,
                        head: head.valid(),
                    }),
                ),
                None => (
                    self.head_config.init_seeded(config.seed, &self.device),
                    None,
                ),
            };
            return Ok(LoopState {
                epoch: 0,
                model,
                optimizer,
                shuffle_rng,
                dropout_rng,
                order: (0..self.train.len()).collect(),
                curves: Vec::new(),
                best,
                since_best: 0,
            });
        };
        // The weights file does not keep which parameters were frozen.
        if self.start.is_some() {
            state.model = match state.model {
                EmotionHead::Fusion(head) => EmotionHead::Fusion(head.with_speech_frozen()),
                other => other,
            };
        }
        let dir = config.checkpoint.as_deref().unwrap_or(Path::new("?"));
        if state.stopped(config) || state.epoch >= config.max_epochs {
            println!(
                "   checkpoint {}: this training had already finished (epoch {}); its outcome is restored",
                dir.display(),
                state.epoch
            );
        } else {
            let restored = match state.epoch {
                1 => "epoch 1".to_string(),
                n => format!("epochs 1-{n}"),
            };
            println!(
                "   resuming from epoch {} ({restored} restored from the checkpoint {})",
                state.epoch + 1,
                dir.display(),
            );
        }
        Ok(state)
    }

    /// One epoch: the shuffled mini-batches, each an AdamW step, then the scores on the
    /// validation set, the best epoch kept. Returns the state after it and its record.
    fn epoch(&self, mut state: LoopState) -> Result<(LoopState, EpochRecord), TrainError> {
        let epoch = state.epoch + 1;
        let start = Instant::now();
        shuffle(&mut state.order, &mut state.shuffle_rng);
        let mut loss_sum = 0.0f64;
        let mut correct = 0usize;
        for chunk in state.order.chunks(self.config.batch_size) {
            let examples: Vec<&Example> = chunk.iter().map(|&i| &self.train[i]).collect();
            let labels: Vec<usize> = chunk.iter().map(|&i| self.train_labels[i]).collect();
            let input = head_input(self.kind, &examples, &self.device)?;
            let targets = Tensor::<1, Int>::from_data(
                TensorData::new(
                    labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
                    [examples.len()],
                ),
                &self.device,
            );
            let logits = state.model.forward(&input, Some(&mut state.dropout_rng))?;
            correct += count_correct(&logits_rows(&logits), &labels);
            let loss = self.loss_fn.forward(logits, targets);
            loss_sum += f64::from(loss.clone().into_scalar::<f32>()) * examples.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &state.model);
            state.model = state
                .optimizer
                .step(self.config.learning_rate, state.model, grads);
        }

        let snapshot = state.model.valid();
        let scores = score(
            &snapshot,
            self.kind,
            self.classes,
            self.val,
            &self.val_labels,
            &self.inference_device,
        )?;
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / self.train.len() as f64,
            train_accuracy: correct as f64 / self.train.len() as f64,
            val_loss: scores.loss,
            val_accuracy: scores.accuracy,
            val_macro_f1: scores.macro_f1,
            seconds: start.elapsed().as_secs_f64(),
        };
        state.keep_if_best(epoch, &scores, snapshot);
        state.epoch = epoch;
        state.curves.push(record.clone());
        Ok((state, record))
    }
}

/// `fresh` (a fusion head just initialised from `config`) on top of the trained speech
/// model `speech`: see [`FusionHead::starting_from`]. `speech` must have been built as
/// the fusion's speech branch and classifier are.
fn fusion_from_speech(
    fresh: EmotionHead,
    config: &EmotionHeadConfig,
    speech: &TrainedModel,
    device: &Device,
) -> Result<EmotionHead, TrainError> {
    match (fresh, config, speech.head(), speech.config()) {
        (
            EmotionHead::Fusion(fusion),
            EmotionHeadConfig::Fusion(wanted),
            EmotionHead::Speech(trained),
            EmotionHeadConfig::Speech(found),
        ) => {
            if found.branch != wanted.speech || found.classes != wanted.classes {
                return Err(TrainError::InvalidConfig(format!(
                    "the speech model to start from was built otherwise ({:?}, {} classes) than this fusion model's speech path ({:?}, {} classes): train both with the same head sizes and features",
                    found.branch, found.classes, wanted.speech, wanted.classes
                )));
            }
            Ok(EmotionHead::Fusion(fusion.starting_from(trained, device)))
        }
        (fresh, ..) => Err(TrainError::InvalidConfig(format!(
            "a {} model cannot start from a {} model",
            fresh.kind(),
            speech.kind()
        ))),
    }
}

/// The shuffling and dropout generators of `seed`, at their start: separate streams,
/// so that the order of samples and the dropout masks do not disturb each other.
pub(super) fn generators(seed: u64) -> (ChaCha8Rng, DropoutRng) {
    (
        ChaCha8Rng::seed_from_u64(seed),
        DropoutRng::seed_from_u64(seed ^ DROPOUT_SEED),
    )
}

/// Mixed into the seed for the dropout generator, so it is not the shuffling one.
const DROPOUT_SEED: u64 = 0x5DEE_CE66_D1CE_4E5B;

/// Everything the epoch loop carries from one epoch to the next: what a checkpoint saves.
pub(super) struct LoopState {
    /// Epochs done.
    pub(super) epoch: usize,
    pub(super) model: EmotionHead,
    pub(super) optimizer: ModuleOptimizer,
    pub(super) shuffle_rng: ChaCha8Rng,
    pub(super) dropout_rng: DropoutRng,
    /// The batch order, shuffled again (in place) every epoch.
    pub(super) order: Vec<usize>,
    pub(super) curves: Vec<EpochRecord>,
    pub(super) best: Option<Best>,
    /// Epochs since the best one.
    pub(super) since_best: usize,
}

impl LoopState {
    /// True when early stopping has ended the run: the last epoch was not the best and
    /// `patience` epochs have passed without a better one.
    fn stopped(&self, config: &TrainConfig) -> bool {
        self.since_best > 0 && self.since_best >= config.patience
    }

    /// Keeps `head`, of `epoch`, as the best when its `scores` beat the best so far (a
    /// higher validation macro-F1, or the same and a lower loss; the model a run started
    /// from, epoch 0, only by a higher macro-F1); otherwise counts one more epoch since
    /// the best.
    fn keep_if_best(&mut self, epoch: usize, scores: &Scores, head: EmotionHead) {
        let better = match &self.best {
            None => true,
            Some(b) if b.epoch == 0 => scores.macro_f1 > b.macro_f1,
            Some(b) => {
                scores.macro_f1 > b.macro_f1
                    || (scores.macro_f1 == b.macro_f1 && scores.loss < b.loss)
            }
        };
        if better {
            self.best = Some(Best {
                epoch,
                macro_f1: scores.macro_f1,
                loss: scores.loss,
                head,
            });
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
    }
}

/// The best epoch so far.
pub(super) struct Best {
    pub(super) epoch: usize,
    pub(super) macro_f1: f64,
    pub(super) loss: f64,
    pub(super) head: EmotionHead,
}

/// Validation scores.
struct Scores {
    loss: f64,
    accuracy: f64,
    macro_f1: f64,
}

impl From<Scores> for ValidationScores {
    fn from(s: Scores) -> Self {
        Self {
            val_macro_f1: s.macro_f1,
            val_accuracy: s.accuracy,
            val_loss: s.loss,
        }
    }
}

/// The scores of the trained emotion model `model` on `val`, as training scores an
/// epoch (the same inference, loss and macro-F1).
pub fn validation_scores(
    model: &TrainedModel,
    val: &[Example],
) -> Result<ValidationScores, TrainError> {
    let classes = Classes::emotions();
    let labels = classes.labels_of(val)?;
    Layouts::check(model.kind(), &model.config, val)?;
    Ok(score(
        &model.head,
        model.kind(),
        &classes,
        val,
        &labels,
        &model.device,
    )?
    .into())
}

fn score(
    head: &EmotionHead,
    kind: ModelKind,
    classes: &Classes<'_>,
    examples: &[Example],
    labels: &[usize],
    device: &Device,
) -> Result<Scores, TrainError> {
    let rows = infer_logits(head, kind, examples, device)?;
    let mut loss = 0.0;
    let mut predicted = Vec::with_capacity(examples.len());
    for (row, &label) in rows.iter().zip(labels) {
        loss -= log_softmax(row)[label];
        predicted.push(argmax(row).0);
    }
    let report = ClassificationReport::with_labels(classes.names.clone(), labels, &predicted);
    Ok(Scores {
        loss: loss / examples.len().max(1) as f64,
        accuracy: report.accuracy,
        macro_f1: report.macro_f1(),
    })
}

/// Logits of every example, in order, in batches of similar lengths (no dropout).
fn infer_logits(
    head: &EmotionHead,
    kind: ModelKind,
    examples: &[Example],
    device: &Device,
) -> Result<Vec<Vec<f32>>, TrainError> {
    let mut rows = infer_rows(kind, examples, device, 1, |input| {
        Ok(vec![head.forward(input, None)?])
    })?;
    Ok(rows.pop().unwrap_or_default())
}

/// Runs `outputs` over every example in batches of similar lengths: for each of the
/// `count` `[B, d]` tensors it returns, one row per example, in the examples' order.
fn infer_rows(
    kind: ModelKind,
    examples: &[Example],
    device: &Device,
    count: usize,
    outputs: impl Fn(&HeadInput) -> Result<Vec<Tensor<2>>, InputError>,
) -> Result<Vec<Vec<Vec<f32>>>, TrainError> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| {
        let e = &examples[i];
        (
            e.speech.frames(),
            e.text.as_ref().map_or(0, Features::frames),
        )
    });
    let mut rows = vec![vec![Vec::new(); examples.len()]; count];
    for chunk in order.chunks(INFERENCE_BATCH) {
        let batch: Vec<&Example> = chunk.iter().map(|&i| &examples[i]).collect();
        let input = head_input(kind, &batch, device)?;
        for (tensor, rows) in outputs(&input)?.iter().zip(rows.iter_mut()) {
            for (&i, row) in chunk.iter().zip(logits_rows(tensor)) {
                rows[i] = row;
            }
        }
    }
    Ok(rows)
}

/// The padded batches `kind` reads, with errors naming the utterance at fault.
fn head_input(
    kind: ModelKind,
    examples: &[&Example],
    device: &Device,
) -> Result<HeadInput, TrainError> {
    let mut input = HeadInput::default();
    if kind.uses_speech() {
        let items: Vec<&Features> = examples.iter().map(|e| &e.speech).collect();
        input.speech = Some(
            SequenceBatch::from_features(&items, device)
                .map_err(|source| blame(examples, "speech", |e| Some(&e.speech), source))?,
        );
    }
    if kind.uses_text() {
        let items = examples
            .iter()
            .map(|e| {
                e.text.as_ref().ok_or_else(|| TrainError::MissingText {
                    id: e.id.clone(),
                    model: kind,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        input.text = Some(
            SequenceBatch::from_features(&items, device)
                .map_err(|source| blame(examples, "text", |e| e.text.as_ref(), source))?,
        );
    }
    Ok(input)
}

/// Attaches the id of the first example whose features are at fault to `source`.
fn blame(
    examples: &[&Example],
    which: &'static str,
    features: impl Fn(&Example) -> Option<&Features>,
    source: InputError,
) -> TrainError {
    let first = examples
        .iter()
        .find_map(|e| features(e).and_then(|f| FeatureLayout::of(f).ok()));
    let culprit = examples.iter().find(|e| match features(e) {
        Some(f) => FeatureLayout::of(f)
            .map(|layout| Some(layout) != first)
            .unwrap_or(true),
        None => true,
    });
    let id = culprit
        .or(examples.first())
        .map_or_else(String::new, |e| e.id.clone());
    TrainError::Features { id, which, source }
}

/// The feature layouts every example shares, checked up front.
struct Layouts {
    speech: Option<FeatureLayout>,
    text: Option<FeatureLayout>,
}

impl Layouts {
    fn of<'a>(
        kind: ModelKind,
        examples: impl Iterator<Item = &'a Example>,
    ) -> Result<Self, TrainError> {
        let mut layouts = Layouts {
            speech: None,
            text: None,
        };
        layouts.check_all(kind, examples)?;
        Ok(layouts)
    }

    /// Checks that `examples` fit a model built for these layouts.
    fn check(
        kind: ModelKind,
        config: &EmotionHeadConfig,
        examples: &[Example],
    ) -> Result<(), TrainError> {
        let mut layouts = Layouts {
            speech: config.speech_layout(),
            text: config.text_layout(),
        };
        layouts.check_all(kind, examples.iter())
    }

    /// Checks every example against the layouts, filling in the ones still unknown.
    fn check_all<'a>(
        &mut self,
        kind: ModelKind,
        examples: impl Iterator<Item = &'a Example>,
    ) -> Result<(), TrainError> {
        for example in examples {
            if kind.uses_speech() {
                check_one(&example.id, "speech", &example.speech, &mut self.speech)?;
            }
            if kind.uses_text() {
                let text = example
                    .text
                    .as_ref()
                    .ok_or_else(|| TrainError::MissingText {
                        id: example.id.clone(),
                        model: kind,
                    })?;
                check_one(&example.id, "text", text, &mut self.text)?;
            }
        }
        Ok(())
    }

    /// A stand-in layout for an input the model does not read.
    const UNUSED: FeatureLayout = FeatureLayout { layers: 1, dim: 1 };

    fn speech_or_unused(&self) -> FeatureLayout {
        self.speech.unwrap_or(Self::UNUSED)
    }

    fn text_or_unused(&self) -> FeatureLayout {
        self.text.unwrap_or(Self::UNUSED)
    }
}

/// Checks one example's features, and that they match `expected` (set from the first).
fn check_one(
    id: &str,
    which: &'static str,
    features: &Features,
    expected: &mut Option<FeatureLayout>,
) -> Result<(), TrainError> {
    let error = |source| TrainError::Features {
        id: id.to_string(),
        which,
        source,
    };
    let found = FeatureLayout::of(features).map_err(error)?;
    match *expected {
        None => *expected = Some(found),
        Some(layout) if layout != found => {
            return Err(error(InputError::LayoutMismatch {
                expected: layout,
                found,
            }));
        }
        Some(_) => {}
    }
    Ok(())
}

/// A trained head, ready to predict (inference mode, CPU).
#[derive(Debug, Clone)]
pub struct TrainedModel {
    config: EmotionHeadConfig,
    head: EmotionHead,
    device: Device,
}

/// `head.json`: what is needed to rebuild the module before loading its weights.
#[derive(Debug, Serialize, Deserialize)]
struct SavedHead {
    format_version: u32,
    model: EmotionHeadConfig,
}

impl TrainedModel {
    /// Which model this is.
    pub fn kind(&self) -> ModelKind {
        self.config.kind()
    }

    /// The model configuration, input sizes included.
    pub fn config(&self) -> &EmotionHeadConfig {
        &self.config
    }

    /// The burn module (for export).
    pub fn head(&self) -> &EmotionHead {
        &self.head
    }

    /// How many outputs the model has (seven for an emotion model).
    pub fn classes(&self) -> usize {
        self.config.classes()
    }

    /// Raw logits over the seven emotions, one row per example, in order (inference
    /// mode, batched by length).
    pub fn logits(&self, examples: &[Example]) -> Result<Vec<[f32; CLASSES]>, TrainError> {
        self.emotion_rows(self.class_logits(examples)?)
    }

    /// Softmax probabilities over the seven emotions, one row per example, in order
    /// (inference mode: no dropout; examples are batched by length).
    pub fn predict(&self, examples: &[Example]) -> Result<Vec<[f32; CLASSES]>, TrainError> {
        self.emotion_rows(self.class_probabilities(examples)?)
    }

    /// Raw logits, one row of [`classes`](Self::classes) values per example, in order
    /// (inference mode, batched by length).
    pub fn class_logits(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, TrainError> {
        let kind = self.kind();
        Layouts::check(kind, &self.config, examples)?;
        infer_logits(&self.head, kind, examples, &self.device)
    }

    /// The head's representations of every example: for each of
    /// [`EmotionHead::stages`], one vector per example, in order (inference mode).
    pub fn stage_vectors(&self, examples: &[Example]) -> Result<Vec<Vec<Vec<f32>>>, TrainError> {
        let kind = self.kind();
        Layouts::check(kind, &self.config, examples)?;
        let count = self.head.stages().len();
        infer_rows(kind, examples, &self.device, count, |input| {
            self.head.stage_vectors(input)
        })
    }

    /// Softmax probabilities, one row of [`classes`](Self::classes) values per example,
    /// in order (inference mode: no dropout).
    pub fn class_probabilities(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, TrainError> {
        Ok(self
            .class_logits(examples)?
            .iter()
            .map(|row| softmax(row))
            .collect())
    }

    /// Rows of seven, or an error naming this model's output count.
    fn emotion_rows(&self, rows: Vec<Vec<f32>>) -> Result<Vec<[f32; CLASSES]>, TrainError> {
        let outputs = || TrainError::Outputs {
            found: self.classes(),
            expected: CLASSES,
        };
        if self.classes() != CLASSES {
            return Err(outputs());
        }
        rows.into_iter()
            .map(|row| <[f32; CLASSES]>::try_from(row).map_err(|_| outputs()))
            .collect()
    }

    /// Writes `head.json` and `head.bpk` into `dir` (created if needed; files replaced,
    /// each through a temporary name, so a kill never leaves half a file).
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let config_path = dir.join(CONFIG_FILE);
        let saved = SavedHead {
            format_version: FORMAT_VERSION,
            model: self.config.clone(),
        };
        let json = serde_json::to_string_pretty(&saved).map_err(|e| TrainError::Config {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        write_atomically(&config_path, json.as_bytes()).map_err(|source| TrainError::Io {
            path: config_path,
            source,
        })?;
        save_weights(&self.head, &dir.join(WEIGHTS_FILE))
    }

    /// Reads a model written by [`save`](Self::save).
    pub fn load(dir: &Path) -> Result<Self, TrainError> {
        let config_path = dir.join(CONFIG_FILE);
        let json = std::fs::read_to_string(&config_path).map_err(|source| TrainError::Io {
            path: config_path.clone(),
            source,
        })?;
        let saved: SavedHead = serde_json::from_str(&json).map_err(|e| TrainError::Config {
            path: config_path.clone(),
            detail: e.to_string(),
        })?;
        if saved.format_version != FORMAT_VERSION {
            return Err(TrainError::Config {
                path: config_path,
                detail: format!(
                    "format version {}, this program reads version {FORMAT_VERSION}: train the model again",
                    saved.format_version
                ),
            });
        }
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            return Err(TrainError::Io {
                path: weights_path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no weights file"),
            });
        }
        let device = Device::flex();
        let head = load_weights(saved.model.init_for_loading(&device), &weights_path)?;
        Ok(Self {
            config: saved.model,
            head: head.valid(),
            device,
        })
    }
}

/// Writes `head`'s weights (with their parameter ids) to `path` through a temporary
/// file in the same folder, synced, then renamed.
pub(super) fn save_weights(head: &EmotionHead, path: &Path) -> Result<(), TrainError> {
    let tmp = emotion_core::fs::temporary_path(path);
    let mut store = BurnpackStore::from_file(&tmp)
        .auto_extension(false)
        .overwrite(true);
    head.save_into(&mut store)
        .map_err(|e| TrainError::Weights {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let io = |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Loads the weights at `path` into `head` (built for them), every parameter required.
pub(super) fn load_weights(mut head: EmotionHead, path: &Path) -> Result<EmotionHead, TrainError> {
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let applied = head
        .load_from(&mut store)
        .map_err(|e| TrainError::Weights {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if !applied.is_success() || !applied.missing.is_empty() {
        return Err(TrainError::Weights {
            path: path.to_path_buf(),
            detail: applied.to_string(),
        });
    }
    Ok(head)
}

/// Fisher–Yates shuffle driven by `rng`.
fn shuffle(items: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// The rows of a `[B, classes]` logits tensor.
fn logits_rows(logits: &Tensor<2>) -> Vec<Vec<f32>> {
    let [_, classes] = logits.dims();
    let values = logits
        .to_data()
        .try_into_vec_as::<f32>()
        .unwrap_or_default();
    values
        .chunks_exact(classes.max(1))
        .map(<[f32]>::to_vec)
        .collect()
}

fn count_correct(rows: &[Vec<f32>], labels: &[usize]) -> usize {
    rows.iter()
        .zip(labels)
        .filter(|(row, label)| argmax(row).0 == **label)
        .count()
}

/// Numerically stable log-softmax, in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|v| (*v as f64 - max).exp()).sum();
    let log_sum = max + sum.ln();
    row.iter().map(|v| *v as f64 - log_sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::heads::test_support::random_features;
    use crate::train::trainer::resume::{BEST_WEIGHTS, CHECKPOINT_FILE, OPTIMIZER_STATE};

    /// Seven classes told apart by the mean of their features plus noise; lengths 5–30.
    fn synthetic(seed: u64, per_class: usize, dim: usize, with_text: bool) -> Vec<Example> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut centre_rng = ChaCha8Rng::seed_from_u64(1000);
        let centres: Vec<Vec<f32>> = (0..CLASSES)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        if centre_rng.next_u32() % 2 == 0 {
                            1.0
                        } else {
                            -1.0
                        }
                    })
                    .collect()
            })
            .collect();
        let mut examples = Vec::new();
        for i in 0..per_class {
            for (class, emotion) in Emotion::ALL.into_iter().enumerate() {
                let frames = 5 + (rng.next_u32() % 26) as usize;
                let mut speech = random_features(&mut rng, 1, frames, dim);
                for (k, v) in speech.data.iter_mut().enumerate() {
                    *v = 0.8 * *v + 0.6 * centres[class][k % dim];
                }
                let text = with_text.then(|| random_features(&mut rng, 1, 4, 8));
                examples.push(Example {
                    id: format!("{}_{i}", emotion.code()),
                    speech,
                    text,
                    label: emotion,
                });
            }
        }
        examples
    }

    fn quick(model: ModelKind, seed: u64) -> TrainConfig {
        TrainConfig {
            model,
            max_epochs: 6,
            patience: 3,
            batch_size: 8,
            learning_rate: 1e-2,
            weight_decay: 1e-2,
            seed,
            head: HeadConfig {
                conv_channels: 16,
                conv_kernel: 3,
                lstm_hidden: 8,
                dropout: 0.1,
                attention_dim: 8,
            },
            checkpoint: None,
        }
    }

    fn run(config: &TrainConfig, train_set: &[Example], val: &[Example]) -> TrainOutcome {
        let mut seen = Vec::new();
        let outcome = train(config, train_set, val, &mut |r| seen.push(r.clone())).unwrap();
        assert_eq!(seen, outcome.curves);
        outcome
    }

    #[test]
    fn learns_a_separable_synthetic_task() {
        let train_set = synthetic(1, 10, 16, false);
        let val = synthetic(2, 4, 16, false);
        let outcome = run(&quick(ModelKind::Speech, 42), &train_set, &val);
        let best = &outcome.curves[outcome.best_epoch - 1];
        let accuracies: Vec<String> = outcome
            .curves
            .iter()
            .map(|r| format!("{:.2}", r.val_accuracy))
            .collect();
        eprintln!(
            "synthetic task: val accuracy by epoch [{}]; kept epoch {} (macro-F1 {:.3})",
            accuracies.join(", "),
            outcome.best_epoch,
            best.val_macro_f1
        );
        assert!(best.val_accuracy >= 0.9, "{:?}", outcome.curves);
        // The kept weights are the best epoch's: predicting again gives its accuracy.
        let probs = outcome.model.predict(&val).unwrap();
        let right = probs
            .iter()
            .zip(&val)
            .filter(|(p, e)| argmax(&p[..]).0 == e.label.index())
            .count();
        assert!((right as f64 / val.len() as f64 - best.val_accuracy).abs() < 1e-9);
        for p in &probs {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn same_seed_same_run_other_seed_other_run() {
        let train_set = synthetic(3, 3, 6, true);
        let val = synthetic(4, 2, 6, true);
        let mut config = quick(ModelKind::Fusion, 7);
        config.max_epochs = 3;
        let a = run(&config, &train_set, &val);
        let b = run(&config, &train_set, &val);
        assert_eq!(without_seconds(&a.curves), without_seconds(&b.curves));
        assert_eq!(
            a.model.predict(&val).unwrap(),
            b.model.predict(&val).unwrap()
        );
        // The gate opened from 0: text gradients reach it.
        match a.model.head() {
            EmotionHead::Fusion(head) => assert_ne!(head.gate_value(), 0.0),
            other => panic!("expected fusion, got {:?}", other.kind()),
        }
        config.seed = 8;
        let c = run(&config, &train_set, &val);
        assert_ne!(without_seconds(&a.curves), without_seconds(&c.curves));
        assert_ne!(
            a.model.predict(&val).unwrap(),
            c.model.predict(&val).unwrap()
        );
    }

    /// `examples` whose class is told by the text (four tokens near a class centre) and,
    /// when `speech_tells` is false, no longer by the speech (pure noise).
    fn text_tells(examples: Vec<Example>, seed: u64, speech_tells: bool) -> Vec<Example> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        examples
            .into_iter()
            .map(|mut e| {
                let mut text = random_features(&mut rng, 1, 4, 8);
                for (k, v) in text.data.iter_mut().enumerate() {
                    *v = 0.3 * *v + if k % 8 == e.label.index() { 1.5 } else { 0.0 };
                }
                e.text = Some(text);
                if !speech_tells {
                    let frames = e.speech.frames();
                    let dim = e.speech.shape[e.speech.shape.len() - 1];
                    e.speech = random_features(&mut rng, 1, frames, dim);
                }
                e
            })
            .collect()
    }

    /// Every parameter value of `module`, in order.
    fn parameters<M: Module>(module: &M) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let values = param.val().into_data().try_into_vec_as::<f32>().unwrap();
                self.0.extend(values);
            }
        }
        let mut collect = Collect(Vec::new());
        module.visit(&mut collect);
        collect.0
    }

    /// A speech model trained on `train_set`, then the fusion model from it.
    fn speech_then_fusion(
        train_set: &[Example],
        val: &[Example],
        fusion: &TrainConfig,
    ) -> (TrainOutcome, TrainOutcome) {
        let speech = run(&quick(ModelKind::Speech, fusion.seed), train_set, val);
        let mut seen = Vec::new();
        let outcome = train_fusion_from_speech(fusion, &speech.model, train_set, val, &mut |r| {
            seen.push(r.clone())
        })
        .unwrap();
        assert_eq!(seen, outcome.curves);
        (speech, outcome)
    }

    /// The fusion's speech branch and classifier are the speech model's, value for value.
    fn assert_speech_path_unchanged(speech: &TrainedModel, fusion: &TrainedModel) {
        let (EmotionHead::Speech(s), EmotionHead::Fusion(f)) = (speech.head(), fusion.head())
        else {
            panic!("expected a speech and a fusion model");
        };
        assert_eq!(parameters(&s.branch), parameters(&f.speech));
        assert_eq!(parameters(&s.output), parameters(&f.classifier));
    }

    #[test]
    fn fusion_from_speech_is_the_speech_model_bit_for_bit_when_the_text_does_not_help() {
        // The speech tells the classes apart, the text is noise.
        let train_set = synthetic(31, 4, 6, true);
        let val = synthetic(32, 2, 6, true);
        let test = synthetic(33, 2, 6, true);
        let mut config = quick(ModelKind::Fusion, 11);
        config.max_epochs = 4;
        let (speech, fusion) = speech_then_fusion(&train_set, &val, &config);
        let start = fusion.start.expect("the run started from the speech model");
        let speech_best = &speech.curves[speech.best_epoch - 1];
        assert_eq!(start.val_macro_f1, speech_best.val_macro_f1);
        eprintln!(
            "speech val macro-F1 {:.3}; fusion epochs {:?}",
            start.val_macro_f1,
            fusion
                .curves
                .iter()
                .map(|r| r.val_macro_f1)
                .collect::<Vec<_>>()
        );
        assert!(
            fusion
                .curves
                .iter()
                .all(|r| r.val_macro_f1 <= start.val_macro_f1),
            "this task leaves the text nothing to add: {:?}",
            fusion.curves
        );
        assert_eq!(fusion.best_epoch, 0, "the start is kept");
        assert_speech_path_unchanged(&speech.model, &fusion.model);
        match fusion.model.head() {
            EmotionHead::Fusion(head) => assert_eq!(head.gate_value(), 0.0),
            other => panic!("expected fusion, got {:?}", other.kind()),
        }
        // Bit for bit: the same logits as the speech model on data it never saw.
        assert_eq!(
            fusion.model.logits(&test).unwrap(),
            speech.model.logits(&test).unwrap()
        );
    }

    #[test]
    fn fusion_from_speech_keeps_the_text_only_when_it_beats_the_speech_model() {
        // The speech is noise, the text tells the classes apart.
        let train_set = text_tells(synthetic(41, 4, 6, true), 1, false);
        let val = text_tells(synthetic(42, 2, 6, true), 2, false);
        let mut config = quick(ModelKind::Fusion, 12);
        config.max_epochs = 12;
        config.patience = 12;
        let (speech, fusion) = speech_then_fusion(&train_set, &val, &config);
        let start = fusion.start.unwrap();
        let best = &fusion.curves[fusion.best_epoch.max(1) - 1];
        eprintln!(
            "speech val macro-F1 {:.3}; fusion epochs {:?}",
            start.val_macro_f1,
            fusion
                .curves
                .iter()
                .map(|r| r.val_macro_f1)
                .collect::<Vec<_>>()
        );
        assert!(fusion.best_epoch > 0, "the text should have been kept");
        assert!(best.val_macro_f1 > start.val_macro_f1);
        // The gain is the text's: the speech path did not move.
        assert_speech_path_unchanged(&speech.model, &fusion.model);
        match fusion.model.head() {
            EmotionHead::Fusion(head) => assert_ne!(head.gate_value(), 0.0),
            other => panic!("expected fusion, got {:?}", other.kind()),
        }
        assert_ne!(
            fusion.model.logits(&val).unwrap(),
            speech.model.logits(&val).unwrap()
        );
    }

    #[test]
    fn fusion_refuses_a_start_it_cannot_build_on() {
        let train_set = synthetic(51, 2, 6, true);
        let val = synthetic(52, 1, 6, true);
        let mut speech_config = quick(ModelKind::Speech, 3);
        speech_config.max_epochs = 1;
        let speech = run(&speech_config, &train_set, &val).model;
        let mut never = |_: &EpochRecord| {};
        // Other head sizes than the speech model's.
        let mut other_sizes = quick(ModelKind::Fusion, 3);
        other_sizes.head.lstm_hidden = 4;
        let err = train_fusion_from_speech(&other_sizes, &speech, &train_set, &val, &mut never)
            .unwrap_err();
        assert!(
            matches!(&err, TrainError::InvalidConfig(m) if m.contains("same head sizes")),
            "{err}"
        );
        // Not a speech model to start from, or not a fusion model to train.
        let text = run(&quick(ModelKind::Text, 3), &train_set, &val).model;
        let err = train_fusion_from_speech(
            &quick(ModelKind::Fusion, 3),
            &text,
            &train_set,
            &val,
            &mut never,
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::InvalidConfig(_)), "{err}");
        let err = train_fusion_from_speech(
            &quick(ModelKind::Speech, 3),
            &speech,
            &train_set,
            &val,
            &mut never,
        )
        .unwrap_err();
        assert!(matches!(err, TrainError::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn a_fusion_run_from_speech_resumes_as_an_uninterrupted_one() {
        let train_set = text_tells(synthetic(61, 3, 6, true), 3, false);
        let val = text_tells(synthetic(62, 2, 6, true), 4, false);
        let speech = run(&quick(ModelKind::Speech, 5), &train_set, &val).model;
        let config = TrainConfig {
            max_epochs: 5,
            patience: 5,
            ..quick(ModelKind::Fusion, 5)
        };
        let mut never = |_: &EpochRecord| {};
        let whole =
            train_fusion_from_speech(&config, &speech, &train_set, &val, &mut never).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("checkpoint");
        let first = TrainConfig {
            max_epochs: 2,
            checkpoint: Some(checkpoint.clone()),
            ..config.clone()
        };
        train_fusion_from_speech(&first, &speech, &train_set, &val, &mut never).unwrap();
        let resumed = train_fusion_from_speech(
            &TrainConfig {
                checkpoint: Some(checkpoint.clone()),
                ..config.clone()
            },
            &speech,
            &train_set,
            &val,
            &mut never,
        )
        .unwrap();
        assert_eq!(
            without_seconds(&resumed.curves),
            without_seconds(&whole.curves)
        );
        assert_eq!(resumed.best_epoch, whole.best_epoch);
        assert_eq!(resumed.start, whole.start);
        assert_eq!(
            resumed.model.logits(&val).unwrap(),
            whole.model.logits(&val).unwrap()
        );
        // The speech path stayed frozen after the resume too.
        assert_speech_path_unchanged(&speech, &resumed.model);

        // A checkpoint of a run from another speech model is refused.
        let other = run(&quick(ModelKind::Speech, 6), &train_set, &val).model;
        let err = train_fusion_from_speech(
            &TrainConfig {
                checkpoint: Some(checkpoint.clone()),
                ..config.clone()
            },
            &other,
            &train_set,
            &val,
            &mut never,
        )
        .unwrap_err();
        assert!(
            matches!(&err, TrainError::CheckpointMismatch { detail, .. } if detail.contains("start_sha256")),
            "{err}"
        );
    }

    #[test]
    fn save_then_load_predicts_the_same() {
        let train_set = synthetic(5, 2, 6, true);
        let val = synthetic(6, 1, 6, true);
        for kind in ModelKind::ALL {
            let mut config = quick(kind, 9);
            config.max_epochs = 1;
            let outcome = run(&config, &train_set, &val);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("model");
            outcome.model.save(&path).unwrap();
            // Saving twice replaces the files.
            outcome.model.save(&path).unwrap();
            let loaded = TrainedModel::load(&path).unwrap();
            assert_eq!(loaded.kind(), kind);
            assert_eq!(
                outcome.model.predict(&val).unwrap(),
                loaded.predict(&val).unwrap()
            );
        }
    }

    #[test]
    fn loading_reports_missing_or_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            TrainedModel::load(dir.path()),
            Err(TrainError::Io { .. })
        ));
        std::fs::write(dir.path().join(CONFIG_FILE), "{not json").unwrap();
        assert!(matches!(
            TrainedModel::load(dir.path()),
            Err(TrainError::Config { .. })
        ));
    }

    #[test]
    fn user_data_errors_are_errors() {
        let train_set = synthetic(7, 1, 6, false);
        let val = synthetic(8, 1, 6, false);
        let config = quick(ModelKind::Speech, 1);
        let mut ignore = |_: &EpochRecord| {};
        assert!(matches!(
            train(&config, &[], &val, &mut ignore),
            Err(TrainError::EmptyTrainSet)
        ));
        assert!(matches!(
            train(&config, &train_set, &[], &mut ignore),
            Err(TrainError::EmptyValidationSet)
        ));
        let text_config = quick(ModelKind::Text, 1);
        match train(&text_config, &train_set, &val, &mut ignore) {
            Err(TrainError::MissingText { model, .. }) => assert_eq!(model, ModelKind::Text),
            other => panic!("expected MissingText, got {other:?}"),
        }
        let mut odd = val.clone();
        odd[3].speech = random_features(&mut ChaCha8Rng::seed_from_u64(9), 1, 7, 5);
        match train(&config, &train_set, &odd, &mut ignore) {
            Err(TrainError::Features { id, which, .. }) => {
                assert_eq!(id, odd[3].id);
                assert_eq!(which, "speech");
            }
            other => panic!("expected Features, got {other:?}"),
        }
        let zero_batch = TrainConfig {
            batch_size: 0,
            ..config.clone()
        };
        assert!(matches!(
            train(&zero_batch, &train_set, &val, &mut ignore),
            Err(TrainError::InvalidConfig(_))
        ));
    }

    #[test]
    fn prediction_checks_the_features_against_the_model() {
        let train_set = synthetic(10, 1, 6, false);
        let val = synthetic(11, 1, 6, false);
        let mut config = quick(ModelKind::Speech, 1);
        config.max_epochs = 1;
        let outcome = run(&config, &train_set, &val);
        let wide = synthetic(12, 1, 7, false);
        assert!(matches!(
            outcome.model.predict(&wide),
            Err(TrainError::Features { .. })
        ));
        assert!(outcome.model.predict(&[]).unwrap().is_empty());
    }

    /// Curves without the wall-clock seconds, which no two runs share.
    fn without_seconds(curves: &[EpochRecord]) -> Vec<EpochRecord> {
        curves
            .iter()
            .map(|r| EpochRecord {
                seconds: 0.0,
                ..r.clone()
            })
            .collect()
    }

    #[test]
    fn a_run_stopped_after_epoch_k_and_resumed_ends_as_an_uninterrupted_run() {
        let train_set = synthetic(21, 3, 6, true);
        let val = synthetic(22, 2, 6, true);
        // Fusion has every kind of state (dropout, text, the gate); speech is the default.
        for kind in [ModelKind::Fusion, ModelKind::Speech] {
            let config = quick(kind, 5);
            let whole = run(&config, &train_set, &val);

            let dir = tempfile::tempdir().unwrap();
            let checkpoint = dir.path().join("checkpoint");
            // "Killed" after epoch 2: the same run told to stop there.
            let first = TrainConfig {
                max_epochs: 2,
                checkpoint: Some(checkpoint.clone()),
                ..config.clone()
            };
            let stopped = run(&first, &train_set, &val);
            assert_eq!(stopped.curves.len(), 2);
            assert!(checkpoint.join(CHECKPOINT_FILE).is_file());
            assert!(
                checkpoint
                    .join("epoch-0002")
                    .join(OPTIMIZER_STATE)
                    .is_file()
            );
            assert!(!checkpoint.join("epoch-0001").exists(), "older epochs go");
            // Debris of a kill during the next write, and a file that is not ours.
            std::fs::create_dir_all(checkpoint.join(".epoch-0003.tmp4242")).unwrap();
            std::fs::create_dir_all(checkpoint.join("epoch-0003")).unwrap();
            std::fs::write(checkpoint.join("notes.txt"), "mine").unwrap();

            let checkpointed = TrainConfig {
                checkpoint: Some(checkpoint.clone()),
                ..config.clone()
            };
            let resumed = run(&checkpointed, &train_set, &val);
            assert_eq!(
                without_seconds(&resumed.curves),
                without_seconds(&whole.curves),
                "{kind}"
            );
            // The restored epochs are the checkpoint's, seconds included.
            assert_eq!(resumed.curves[..2], stopped.curves[..]);
            assert_eq!(resumed.best_epoch, whole.best_epoch);
            assert_eq!(
                resumed.model.predict(&val).unwrap(),
                whole.model.predict(&val).unwrap(),
                "{kind}: the resumed model differs"
            );
            let last = format!("epoch-{:04}", whole.curves.len());
            assert!(checkpoint.join(&last).is_dir());
            assert!(!checkpoint.join(".epoch-0003.tmp4242").exists());
            assert!(checkpoint.join("notes.txt").is_file());

            // Run again: the checkpoint is of a finished run; nothing more is trained.
            let again = run(&checkpointed, &train_set, &val);
            assert_eq!(again.curves, resumed.curves);
            assert_eq!(
                again.model.predict(&val).unwrap(),
                whole.model.predict(&val).unwrap()
            );
            assert!(remove_checkpoint(&checkpoint).unwrap());
            assert!(!remove_checkpoint(&checkpoint).unwrap());
        }
    }

    #[test]
    fn a_checkpoint_of_another_training_or_damaged_is_refused_with_what_to_do() {
        let train_set = synthetic(23, 2, 6, false);
        let val = synthetic(24, 1, 6, false);
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = dir.path().join("checkpoint");
        let config = TrainConfig {
            max_epochs: 1,
            checkpoint: Some(checkpoint.clone()),
            ..quick(ModelKind::Speech, 3)
        };
        let mut ignore = |_: &EpochRecord| {};
        train(&config, &train_set, &val, &mut ignore).unwrap();

        let other_rate = TrainConfig {
            learning_rate: 5e-3,
            ..config.clone()
        };
        match train(&other_rate, &train_set, &val, &mut ignore) {
            Err(e @ TrainError::CheckpointMismatch { .. }) => {
                let message = e.to_string();
                assert!(message.contains("learning_rate: checkpoint 0.01, now 0.005"));
                assert!(message.contains("--fresh"), "{message}");
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let mut other_val = val.clone();
        other_val[0].speech.data[0] += 1.0;
        match train(&config, &train_set, &other_val, &mut ignore) {
            Err(TrainError::CheckpointMismatch { detail, .. }) => {
                assert!(detail.contains("features or labels differ"), "{detail}");
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }

        // A damaged weights file is named; nothing is trained from it.
        let best = checkpoint.join("epoch-0001").join(BEST_WEIGHTS);
        let mut bytes = std::fs::read(&best).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xFF;
        std::fs::write(&best, &bytes).unwrap();
        match train(&config, &train_set, &val, &mut ignore) {
            Err(e @ TrainError::EpochCheckpoint { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&best.display().to_string()), "{message}");
                assert!(message.contains("delete the folder"), "{message}");
            }
            other => panic!("expected a damaged checkpoint, got {other:?}"),
        }
        // So is a `checkpoint.json` that is not one.
        let json = checkpoint.join(CHECKPOINT_FILE);
        std::fs::write(&json, "{\"format_version\": 1, \"epo").unwrap();
        match train(&config, &train_set, &val, &mut ignore) {
            Err(TrainError::EpochCheckpoint { path, .. }) => assert_eq!(path, json),
            other => panic!("expected a damaged checkpoint, got {other:?}"),
        }
        // Removed, the run starts over.
        assert!(remove_checkpoint(&checkpoint).unwrap());
        let fresh = train(&config, &train_set, &val, &mut ignore).unwrap();
        assert_eq!(fresh.curves.len(), 1);
    }

    #[test]
    fn config_round_trips_through_json_with_defaults() {
        let config: TrainConfig = serde_json::from_str(r#"{"model": "fusion"}"#).unwrap();
        assert_eq!(config.model, ModelKind::Fusion);
        assert_eq!(config.max_epochs, 40);
        assert_eq!(config.head, HeadConfig::default());
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), config);
    }

    /// One training step at the sizes of the real task: batch 8, 50 frames, H 768,
    /// default head. Run with `--nocapture` to see the time.
    #[test]
    fn one_step_at_real_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let examples: Vec<Example> = (0..8)
            .map(|i| Example {
                id: format!("u{i}"),
                speech: random_features(&mut rng, 1, 50, 768),
                text: None,
                label: Emotion::ALL[i % CLASSES],
            })
            .collect();
        let device = Device::flex().autodiff();
        let layout = FeatureLayout {
            layers: 1,
            dim: 768,
        };
        let mut model = HeadConfig::default()
            .model(ModelKind::Speech, layout, layout)
            .init_seeded(1, &device);
        let mut optimizer = AdamWConfig::new().with_weight_decay(0.01).init();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let mut dropout = DropoutRng::seed_from_u64(2);
        let refs: Vec<&Example> = examples.iter().collect();
        let mut times = Vec::new();
        for _ in 0..4 {
            let start = Instant::now();
            let input = head_input(ModelKind::Speech, &refs, &device).unwrap();
            let labels: Vec<i64> = refs.iter().map(|e| e.label.index() as i64).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [8]), &device);
            let logits = model.forward(&input, Some(&mut dropout)).unwrap();
            let loss = loss_fn.forward(logits, targets);
            let value = loss.clone().into_scalar::<f32>();
            assert!(value.is_finite());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3, model, grads);
            times.push(start.elapsed().as_secs_f64());
        }
        eprintln!(
            "one training step, batch 8 x 50 frames x 768, default head: {:.3} s (first {:.3} s)",
            times[1..].iter().sum::<f64>() / (times.len() - 1) as f64,
            times[0]
        );
    }
}
