//! The heads: small burn models trained over frozen encoder features.
//!
//! Three models share one building block, the [`branch::Branch`] (Conv1d → ReLU →
//! MaxPool1d → BiLSTM → mean over valid frames):
//!
//! - **speech** ([`ModelKind::Speech`]): a branch over the HuBERT features, then a
//!   linear layer to seven logits ([`classifier::BranchClassifier`]);
//! - **text** ([`ModelKind::Text`]): the same over BERT token features;
//! - **fusion** ([`ModelKind::Fusion`]): both branches, the speech frames querying the
//!   text tokens through cross-attention, the attended vector added to the speech
//!   vector through a gate that starts closed ([`fusion::FusionHead`]).
//!
//! Each model is a burn `Module` plus a burn `Config`; the training loop lives apart, in
//! [`crate::train::trainer`]. Padding never reaches a recurrence or a pooled vector: batches
//! carry each sample's length ([`SequenceBatch`]), the backward LSTM reads each sample's
//! own frames reversed ([`recurrent`]), and every pooling or attention is masked. So a
//! sample gives the same output alone and inside a padded batch.
//!
//! Only ops that can be written as ONNX by hand are used: Conv, Relu, MaxPool, LSTM,
//! MatMul, Softmax, Gemm/Add/Mul, ReduceMean, Tanh.

pub mod branch;
pub mod classifier;
pub mod fusion;
pub mod recurrent;

use std::fmt;
use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::features::cache::Features;
use branch::BranchConfig;
use classifier::{BranchClassifier, BranchClassifierConfig};
use fusion::{FusionHead, FusionHeadConfig};

/// Number of output classes: the seven TESS emotions, in [`emotion_core::Emotion`] order.
pub const CLASSES: usize = emotion_core::Emotion::COUNT;

/// The fewest frames a sample is given (see [`emotion_core::head_graph::MIN_FRAMES`]: the board
/// pads the same way).
pub const MIN_FRAMES: usize = emotion_core::head_graph::MIN_FRAMES;

pub use emotion_core::head_graph::ModelKind;

/// The sizes a user chooses for a head; the input sizes come from the features.
///
/// Defaults are small on purpose: training must be fast on two CPU cores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadConfig {
    /// Output channels of the Conv1d at the start of each branch.
    pub conv_channels: usize,
    /// Conv1d kernel width in frames (odd: 'same' padding keeps the length).
    pub conv_kernel: usize,
    /// LSTM hidden size per direction (the branch vector is twice this).
    pub lstm_hidden: usize,
    /// Dropout probability on the LSTM inputs and on the vector before the classifier.
    pub dropout: f64,
    /// Width of the cross-attention queries, keys and values (fusion only).
    pub attention_dim: usize,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            conv_channels: 128,
            conv_kernel: 5,
            lstm_hidden: 64,
            dropout: 0.2,
            attention_dim: 64,
        }
    }
}

impl HeadConfig {
    /// Checks the sizes; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.conv_channels == 0 || self.lstm_hidden == 0 || self.attention_dim == 0 {
            return Err(
                "conv_channels, lstm_hidden and attention_dim must all be at least 1".into(),
            );
        }
        if self.conv_kernel == 0 || self.conv_kernel.is_multiple_of(2) {
            return Err(format!(
                "conv_kernel must be odd (so that 'same' padding keeps the length), got {}",
                self.conv_kernel
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }

    /// The branch configuration for inputs of `layers` × `dim` features.
    pub fn branch(&self, layout: FeatureLayout) -> BranchConfig {
        BranchConfig::new(layout.dim)
            .with_layers(layout.layers)
            .with_conv_channels(self.conv_channels)
            .with_conv_kernel(self.conv_kernel)
            .with_lstm_hidden(self.lstm_hidden)
            .with_dropout(self.dropout)
    }

    /// The model configuration of `kind` for inputs with these layouts (`text` is
    /// ignored by the speech model, `speech` by the text model).
    pub fn model(
        &self,
        kind: ModelKind,
        speech: FeatureLayout,
        text: FeatureLayout,
    ) -> EmotionHeadConfig {
        match kind {
            ModelKind::Speech => {
                EmotionHeadConfig::Speech(BranchClassifierConfig::new(self.branch(speech)))
            }
            ModelKind::Text => {
                EmotionHeadConfig::Text(BranchClassifierConfig::new(self.branch(text)))
            }
            ModelKind::Fusion => EmotionHeadConfig::Fusion(
                FusionHeadConfig::new(self.branch(speech), self.branch(text))
                    .with_attention_dim(self.attention_dim),
            ),
        }
    }
}

/// How many layers and how wide one kind of feature is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureLayout {
    /// Layers stacked on the first axis: 1 for `[T, H]`, L for `[L, T, H]`.
    pub layers: usize,
    /// Hidden size H.
    pub dim: usize,
}

impl fmt::Display for FeatureLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.layers == 1 {
            write!(f, "[T, {}]", self.dim)
        } else {
            write!(f, "[{}, T, {}]", self.layers, self.dim)
        }
    }
}

/// Features that cannot enter a head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A batch with no samples.
    #[error("an empty batch")]
    EmptyBatch,
    /// Neither `[T, H]` nor `[L, T, H]`, or the values do not fill the shape.
    #[error(
        "features of shape {shape:?} with {values} values: expected [T, H] or [L, T, H] filled exactly"
    )]
    BadShape {
        /// The shape given.
        shape: Vec<usize>,
        /// How many values came with it.
        values: usize,
    },
    /// No frames (or no tokens) at all.
    #[error("features with no frames (shape {shape:?})")]
    NoFrames {
        /// The shape given.
        shape: Vec<usize>,
    },
    /// Samples of one batch, or a batch and its model, disagree on layers or width.
    #[error("features are {found}, expected {expected}")]
    LayoutMismatch {
        /// What the model (or the first sample) has.
        expected: FeatureLayout,
        /// What this sample has.
        found: FeatureLayout,
    },
    /// The speech and text batches of a fusion input hold different numbers of samples.
    #[error("{speech} speech samples but {text} text samples in one batch")]
    BatchMismatch {
        /// Samples in the speech batch.
        speech: usize,
        /// Samples in the text batch.
        text: usize,
    },
    /// The model needs an input the caller did not give.
    #[error("the {model} model needs {what} features")]
    Missing {
        /// The model.
        model: ModelKind,
        /// `speech` or `text`.
        what: &'static str,
    },
}

impl FeatureLayout {
    /// The layout of `features`, after checking that its shape is usable.
    pub fn of(features: &Features) -> Result<Self, InputError> {
        let bad = || InputError::BadShape {
            shape: features.shape.clone(),
            values: features.data.len(),
        };
        let (layers, frames, dim) = match features.shape.as_slice() {
            [t, h] => (1, *t, *h),
            [l, t, h] => (*l, *t, *h),
            _ => return Err(bad()),
        };
        let expected = layers
            .checked_mul(frames)
            .and_then(|n| n.checked_mul(dim))
            .ok_or_else(bad)?;
        if layers == 0 || dim == 0 || expected != features.data.len() {
            return Err(bad());
        }
        if frames == 0 {
            return Err(InputError::NoFrames {
                shape: features.shape.clone(),
            });
        }
        Ok(Self { layers, dim })
    }
}

/// A padded batch of feature sequences and each sample's length.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// `[B, L, T, H]`, zero beyond each sample's frames (L = 1 for `[T, H]` features).
    pub values: Tensor<4>,
    /// Frames of each sample, at least [`MIN_FRAMES`].
    pub lengths: Vec<usize>,
    /// Layers and width of every sample.
    pub layout: FeatureLayout,
}

impl SequenceBatch {
    /// Pads `items` to the longest (at least [`MIN_FRAMES`]) with zeros, on `device`.
    pub fn from_features(items: &[&Features], device: &Device) -> Result<Self, InputError> {
        let first = items.first().ok_or(InputError::EmptyBatch)?;
        let layout = FeatureLayout::of(first)?;
        let mut lengths = Vec::with_capacity(items.len());
        for item in items {
            let found = FeatureLayout::of(item)?;
            if found != layout {
                return Err(InputError::LayoutMismatch {
                    expected: layout,
                    found,
                });
            }
            lengths.push(item.frames().max(MIN_FRAMES));
        }
        let frames = lengths.iter().copied().max().unwrap_or(MIN_FRAMES);
        let FeatureLayout { layers, dim } = layout;
        let mut data = vec![0.0f32; items.len() * layers * frames * dim];
        for (b, item) in items.iter().enumerate() {
            let own = item.frames();
            for l in 0..layers {
                let src = &item.data[l * own * dim..(l + 1) * own * dim];
                let start = ((b * layers + l) * frames) * dim;
                data[start..start + own * dim].copy_from_slice(src);
            }
        }
        let values = Tensor::from_data(
            TensorData::new(data, [items.len(), layers, frames, dim]),
            device,
        );
        Ok(Self {
            values,
            lengths,
            layout,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// True when there are no samples (never, for a batch built by
    /// [`from_features`](Self::from_features)).
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// What a head is given: the batches it needs (speech, text or both).
#[derive(Debug, Clone, Default)]
pub struct HeadInput {
    /// Speech-encoder features.
    pub speech: Option<SequenceBatch>,
    /// Text-encoder features.
    pub text: Option<SequenceBatch>,
}

/// Dropout masks drawn from a seeded host generator.
///
/// burn's own `Dropout` draws from the backend's process-wide generator, which any other
/// thread may advance; masks drawn here depend only on this generator, so the same seed
/// gives the same training run even while other tests or runs share the process.
#[derive(Debug, Clone)]
pub struct DropoutRng {
    rng: ChaCha8Rng,
}

impl DropoutRng {
    /// A generator seeded with `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// How far the generator has run, in 32-bit words: a training checkpoint keeps it so
    /// that a resumed run draws the masks the uninterrupted run would have drawn.
    pub fn word_pos(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Continues from a position given by [`word_pos`](Self::word_pos).
    pub fn set_word_pos(&mut self, pos: u128) {
        self.rng.set_word_pos(pos);
    }

    /// Zeroes each value of `x` with probability `prob` and scales the others by
    /// `1 / (1 - prob)` (inverted dropout).
    pub fn apply<const D: usize>(&mut self, x: Tensor<D>, prob: f64) -> Tensor<D> {
        if prob <= 0.0 {
            return x;
        }
        let dims = x.dims();
        let count: usize = dims.iter().product();
        let keep = 1.0 - prob;
        let scale = (1.0 / keep) as f32;
        let threshold = (keep * (1u64 << 24) as f64) as u32;
        let mask: Vec<f32> = (0..count)
            .map(|_| {
                if (self.rng.next_u32() >> 8) < threshold {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

/// Applies dropout when a generator is given (training), passes `x` through otherwise.
pub(crate) fn dropout<const D: usize>(
    x: Tensor<D>,
    prob: f64,
    rng: Option<&mut DropoutRng>,
) -> Tensor<D> {
    match rng {
        Some(rng) => rng.apply(x, prob),
        None => x,
    }
}

/// The configuration of one of the three models, with its input sizes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "snake_case")]
pub enum EmotionHeadConfig {
    /// Speech-only classifier.
    Speech(BranchClassifierConfig),
    /// Text-only classifier.
    Text(BranchClassifierConfig),
    /// Speech queries text, gated residual.
    Fusion(FusionHeadConfig),
}

impl EmotionHeadConfig {
    /// Which model this configures.
    pub fn kind(&self) -> ModelKind {
        match self {
            EmotionHeadConfig::Speech(_) => ModelKind::Speech,
            EmotionHeadConfig::Text(_) => ModelKind::Text,
            EmotionHeadConfig::Fusion(_) => ModelKind::Fusion,
        }
    }

    /// How many outputs the model has.
    pub fn classes(&self) -> usize {
        match self {
            EmotionHeadConfig::Speech(c) | EmotionHeadConfig::Text(c) => c.classes,
            EmotionHeadConfig::Fusion(c) => c.classes,
        }
    }

    /// The same model with `classes` outputs (the seven emotions unless told otherwise:
    /// the keyword spotter has one output per word).
    pub fn with_classes(self, classes: usize) -> Self {
        match self {
            EmotionHeadConfig::Speech(c) => EmotionHeadConfig::Speech(c.with_classes(classes)),
            EmotionHeadConfig::Text(c) => EmotionHeadConfig::Text(c.with_classes(classes)),
            EmotionHeadConfig::Fusion(c) => EmotionHeadConfig::Fusion(c.with_classes(classes)),
        }
    }

    /// The layout of the speech features the model expects, if it reads speech.
    pub fn speech_layout(&self) -> Option<FeatureLayout> {
        match self {
            EmotionHeadConfig::Speech(c) => Some(c.branch.layout()),
            EmotionHeadConfig::Text(_) => None,
            EmotionHeadConfig::Fusion(c) => Some(c.speech.layout()),
        }
    }

    /// The layout of the text features the model expects, if it reads text.
    pub fn text_layout(&self) -> Option<FeatureLayout> {
        match self {
            EmotionHeadConfig::Speech(_) => None,
            EmotionHeadConfig::Text(c) => Some(c.branch.layout()),
            EmotionHeadConfig::Fusion(c) => Some(c.text.layout()),
        }
    }

    /// A model with fresh parameters on `device`.
    ///
    /// burn initialises parameters lazily, drawing from the backend's process-wide
    /// generator; prefer [`init_seeded`](Self::init_seeded), which draws them at once,
    /// seeded, and guarded against other threads.
    pub fn init(&self, device: &Device) -> EmotionHead {
        match self {
            EmotionHeadConfig::Speech(c) => EmotionHead::Speech(c.init(device)),
            EmotionHeadConfig::Text(c) => EmotionHead::Text(c.init(device)),
            EmotionHeadConfig::Fusion(c) => EmotionHead::Fusion(c.init(device)),
        }
    }

    /// A model whose parameters depend only on `seed` (and this configuration).
    ///
    /// burn 0.22 seeds a process-wide generator (`Device::seed`) and draws parameters
    /// lazily, on first use. Here the seed and every draw happen at once under one lock,
    /// so two initialisations in parallel threads cannot interleave their draws.
    pub fn init_seeded(&self, seed: u64, device: &Device) -> EmotionHead {
        let _guard = BURN_RNG
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(seed);
        let head = self.init(device);
        materialize(&head);
        head
    }

    /// A model to load weights into: initialised at once under the same lock as
    /// [`init_seeded`](Self::init_seeded) (its draws are thrown away, but they must not
    /// interleave with a seeded initialisation running in another thread).
    pub fn init_for_loading(&self, device: &Device) -> EmotionHead {
        let _guard = BURN_RNG
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let head = self.init(device);
        materialize(&head);
        head
    }
}

/// Serialises every use of burn's process-wide random generator made by this crate.
static BURN_RNG: Mutex<()> = Mutex::new(());

/// Initialises every lazy parameter of `module` now.
fn materialize<M: Module>(module: &M) {
    struct Materialize;
    impl ModuleVisitor for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Materialize);
}

/// One of the three models.
// A few kilobytes of module metadata, held once per trained model: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum EmotionHead {
    /// Speech-only classifier.
    Speech(BranchClassifier),
    /// Text-only classifier.
    Text(BranchClassifier),
    /// Speech queries text, gated residual.
    Fusion(FusionHead),
}

impl EmotionHead {
    /// Which model this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            EmotionHead::Speech(_) => ModelKind::Speech,
            EmotionHead::Text(_) => ModelKind::Text,
            EmotionHead::Fusion(_) => ModelKind::Fusion,
        }
    }

    /// Logits `[B, classes]` (the seven emotions unless configured otherwise). Dropout is
    /// applied only when `dropout` is given (training).
    pub fn forward(
        &self,
        input: &HeadInput,
        dropout: Option<&mut DropoutRng>,
    ) -> Result<Tensor<2>, InputError> {
        let kind = self.kind();
        let missing = |what| InputError::Missing { model: kind, what };
        match self {
            EmotionHead::Speech(model) => {
                let speech = input.speech.as_ref().ok_or_else(|| missing("speech"))?;
                model.forward(speech, dropout)
            }
            EmotionHead::Text(model) => {
                let text = input.text.as_ref().ok_or_else(|| missing("text"))?;
                model.forward(text, dropout)
            }
            EmotionHead::Fusion(model) => {
                let speech = input.speech.as_ref().ok_or_else(|| missing("speech"))?;
                let text = input.text.as_ref().ok_or_else(|| missing("text"))?;
                model.forward(speech, text, dropout)
            }
        }
    }
}

/// Where in a head a representation is read (the report plots each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// After the temporal block (Conv1d → ReLU → MaxPool1d), averaged over frames.
    Temporal,
    /// After the contextual block (the BiLSTM), averaged over frames: what the
    /// classifier of a single-modality head reads.
    Contextual,
    /// The fused vector (speech plus gated, attended text): what the fusion classifier
    /// reads.
    Fusion,
}

impl Stage {
    /// Lower-case name, used in file names.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Temporal => "temporal",
            Stage::Contextual => "contextual",
            Stage::Fusion => "fusion",
        }
    }

    /// What the vector is, for a caption.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Temporal => "after conv + max-pool (mean over frames)",
            Stage::Contextual => "after the BiLSTM (mean over frames)",
            Stage::Fusion => "fusion output (speech + gated cross-attention)",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EmotionHead {
    /// The stages [`stage_vectors`](Self::stage_vectors) returns, in order. The fusion
    /// head's temporal and contextual stages are its speech branch's (the queries).
    pub fn stages(&self) -> &'static [Stage] {
        match self {
            EmotionHead::Speech(_) | EmotionHead::Text(_) => &[Stage::Temporal, Stage::Contextual],
            EmotionHead::Fusion(_) => &[Stage::Temporal, Stage::Contextual, Stage::Fusion],
        }
    }

    /// One `[B, d]` tensor per stage of [`stages`](Self::stages) (inference: no dropout).
    pub fn stage_vectors(&self, input: &HeadInput) -> Result<Vec<Tensor<2>>, InputError> {
        let kind = self.kind();
        let missing = |what| InputError::Missing { model: kind, what };
        let branch_stages = |branch: &branch::Branch, batch: &SequenceBatch| {
            let (temporal, lengths) = branch.temporal(batch)?;
            let contextual = branch.forward(batch, None)?;
            Ok::<_, InputError>((recurrent::masked_mean(temporal, &lengths), contextual))
        };
        match self {
            EmotionHead::Speech(model) | EmotionHead::Text(model) => {
                let batch = if kind == ModelKind::Speech {
                    input.speech.as_ref().ok_or_else(|| missing("speech"))?
                } else {
                    input.text.as_ref().ok_or_else(|| missing("text"))?
                };
                let (temporal, contextual) = branch_stages(&model.branch, batch)?;
                Ok(vec![temporal, contextual.pooled])
            }
            EmotionHead::Fusion(model) => {
                let speech = input.speech.as_ref().ok_or_else(|| missing("speech"))?;
                let text = input.text.as_ref().ok_or_else(|| missing("text"))?;
                let (temporal, speech_out) = branch_stages(&model.speech, speech)?;
                let text_out = model.text.forward(text, None)?;
                let fused = model.fuse(&speech_out, &text_out);
                Ok(vec![temporal, speech_out.pooled, fused])
            }
        }
    }
}

/// Checks that a batch has the layout a branch was built for.
pub(crate) fn check_layout(
    batch: &SequenceBatch,
    expected: FeatureLayout,
) -> Result<(), InputError> {
    if batch.layout != expected {
        return Err(InputError::LayoutMismatch {
            expected,
            found: batch.layout,
        });
    }
    if batch.is_empty() {
        return Err(InputError::EmptyBatch);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Small random features and models for the head tests.

    use super::*;

    /// Random features `[T, H]` (or `[L, T, H]` with `layers > 1`), values in [-1, 1).
    pub fn random_features(
        rng: &mut ChaCha8Rng,
        layers: usize,
        frames: usize,
        dim: usize,
    ) -> Features {
        let n = layers * frames * dim;
        let data = (0..n)
            .map(|_| (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0)
            .collect();
        let shape = if layers == 1 {
            vec![frames, dim]
        } else {
            vec![layers, frames, dim]
        };
        Features {
            layers: (0..layers).collect(),
            shape,
            data,
        }
    }

    /// A tiny head configuration for fast tests.
    pub fn tiny() -> HeadConfig {
        HeadConfig {
            conv_channels: 8,
            conv_kernel: 3,
            lstm_hidden: 6,
            dropout: 0.2,
            attention_dim: 5,
        }
    }

    /// Largest absolute difference between two equally long slices (NaN when either
    /// holds one).
    pub use emotion_core::scores::max_abs_difference as max_abs_diff;

    /// The values of a tensor.
    pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .try_into_vec_as::<f32>()
            .expect("float tensor")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn model_kind_names_round_trip() {
        for kind in ModelKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            let back: ModelKind = serde_json::from_str(&json).unwrap();
            assert_eq!(back, kind);
            let parsed = <ModelKind as clap::ValueEnum>::from_str(kind.name(), false).unwrap();
            assert_eq!(parsed, kind);
        }
    }

    #[test]
    fn head_config_rejects_even_kernels_and_bad_dropout() {
        assert!(HeadConfig::default().validate().is_ok());
        let even = HeadConfig {
            conv_kernel: 4,
            ..HeadConfig::default()
        };
        assert!(even.validate().unwrap_err().contains("odd"));
        let dropout = HeadConfig {
            dropout: 1.0,
            ..HeadConfig::default()
        };
        assert!(dropout.validate().is_err());
    }

    #[test]
    fn batches_pad_with_zeros_and_keep_lengths() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = random_features(&mut rng, 2, 3, 4);
        let b = random_features(&mut rng, 2, 1, 4);
        let batch = SequenceBatch::from_features(&[&a, &b], &device()).unwrap();
        assert_eq!(batch.lengths, vec![3, MIN_FRAMES]);
        assert_eq!(batch.values.dims(), [2, 2, 3, 4]);
        let v = values(batch.values);
        // Sample 0, layer 1, frame 2 is a's last frame of layer 1.
        assert_eq!(
            &v[(3 + 2) * 4..(3 + 3) * 4],
            &a.data[(3 + 2) * 4..(3 + 3) * 4]
        );
        // Sample 1, layer 1: one real frame then zeros.
        let s1l1 = &v[(2 * 3 + 3) * 4..(2 * 3 + 3) * 4 + 3 * 4];
        assert_eq!(&s1l1[..4], &b.data[4..8]);
        assert!(s1l1[4..].iter().all(|x| *x == 0.0));
    }

    #[test]
    fn batches_reject_unusable_features() {
        let dev = device();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = random_features(&mut rng, 1, 3, 4);
        let wide = random_features(&mut rng, 1, 3, 5);
        assert!(matches!(
            SequenceBatch::from_features(&[&a, &wide], &dev),
            Err(InputError::LayoutMismatch { .. })
        ));
        let short = Features {
            layers: vec![0],
            shape: vec![3, 4],
            data: vec![0.0; 11],
        };
        assert!(matches!(
            SequenceBatch::from_features(&[&short], &dev),
            Err(InputError::BadShape { .. })
        ));
        let empty = Features {
            layers: vec![0],
            shape: vec![0, 4],
            data: vec![],
        };
        assert!(matches!(
            SequenceBatch::from_features(&[&empty], &dev),
            Err(InputError::NoFrames { .. })
        ));
        assert!(matches!(
            SequenceBatch::from_features(&[], &dev),
            Err(InputError::EmptyBatch)
        ));
    }

    #[test]
    fn seeded_initialisation_is_reproducible() {
        let layout = FeatureLayout { layers: 1, dim: 4 };
        let config = tiny().model(ModelKind::Fusion, layout, layout);
        let dev = device();
        let record = |seed| {
            let head = config.init_seeded(seed, &dev);
            let mut all = Vec::new();
            struct Collect<'a>(&'a mut Vec<f32>);
            impl ModuleVisitor for Collect<'_> {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                    self.0.extend(values(param.val()));
                }
            }
            head.visit(&mut Collect(&mut all));
            all
        };
        assert_eq!(record(7), record(7));
        assert_ne!(record(7), record(8));
    }

    #[test]
    fn dropout_masks_follow_the_seed_and_keep_the_scale() {
        let dev = device();
        let x = Tensor::<2>::ones([20, 50], &dev);
        let a = values(DropoutRng::seed_from_u64(3).apply(x.clone(), 0.25));
        let b = values(DropoutRng::seed_from_u64(3).apply(x.clone(), 0.25));
        let c = values(DropoutRng::seed_from_u64(4).apply(x, 0.25));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let kept = a.iter().filter(|v| **v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.75).abs() < 0.05, "kept {kept}");
        assert!(
            a.iter()
                .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6)
        );
    }
}
