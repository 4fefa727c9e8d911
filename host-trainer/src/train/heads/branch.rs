//! The branch: one feature sequence in, a sequence of BiLSTM states and one pooled
//! vector out. Used for speech (HuBERT frames) and for text (BERT tokens).
//!
//! ```text
//! [B, L, T, H] ─ layer mix (L > 1 only) ─► [B, T, H] ─ Conv1d (same) ─ ReLU ─ MaxPool1d(2, 2)
//!     ─► [B, T/2, C] ─ dropout ─ BiLSTM (per-sample lengths) ─► [B, T/2, 2h] ─ masked mean ─► [B, 2h]
//! ```
//!
//! Lengths follow exactly: the odd-kernel convolution with 'same' zero padding keeps
//! them, pooling with kernel 2 and stride 2 halves them rounding down. Padding frames are
//! zero, which is also what the convolution's own padding reads at a sample's edge, so a
//! convolution output at a real frame is the same alone and in a padded batch; pooling
//! windows of real frames hold only real frames.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{Initializer, PaddingConfig1d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};

use super::recurrent::{MaskedBiLstm, MaskedBiLstmConfig, masked_mean};
use super::{DropoutRng, FeatureLayout, InputError, SequenceBatch, check_layout, dropout};

/// Pooling factor of the branch (kernel and stride of its MaxPool1d).
pub const POOL: usize = 2;

/// Sizes of a [`Branch`].
#[derive(Config, Debug, PartialEq)]
pub struct BranchConfig {
    /// Feature width H.
    pub input_dim: usize,
    /// Encoder layers stacked in the features (1: `[T, H]`, no mixing).
    #[config(default = 1)]
    pub layers: usize,
    /// Conv1d output channels.
    #[config(default = 128)]
    pub conv_channels: usize,
    /// Conv1d kernel width (odd).
    #[config(default = 5)]
    pub conv_kernel: usize,
    /// LSTM hidden size per direction.
    #[config(default = 64)]
    pub lstm_hidden: usize,
    /// Dropout on the LSTM inputs during training.
    #[config(default = 0.2)]
    pub dropout: f64,
}

impl BranchConfig {
    /// The features this branch reads.
    pub fn layout(&self) -> FeatureLayout {
        FeatureLayout {
            layers: self.layers,
            dim: self.input_dim,
        }
    }

    /// Width of the branch's output vector (both LSTM directions).
    pub fn output_dim(&self) -> usize {
        2 * self.lstm_hidden
    }

    /// A fresh branch on `device`.
    pub fn init(&self, device: &Device) -> Branch {
        let mix = (self.layers > 1).then(|| LayerMix {
            logits: Initializer::Zeros.init([self.layers], device),
        });
        let pad = self.conv_kernel / 2;
        Branch {
            mix,
            conv: Conv1dConfig::new(self.input_dim, self.conv_channels, self.conv_kernel)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .init(device),
            pool: MaxPool1dConfig::new(POOL).with_stride(POOL).init(),
            lstm: MaskedBiLstmConfig::new(self.conv_channels, self.lstm_hidden).init(device),
            input_dim: self.input_dim,
            layers: self.layers,
            dropout: self.dropout,
        }
    }
}

/// A learned softmax-weighted sum over encoder layers (SUPERB-style). The weights
/// start equal (the plain mean of the layers).
#[derive(Module, Debug)]
pub struct LayerMix {
    /// One logit per layer, `[L]`; the weights are their softmax.
    pub logits: Param<Tensor<1>>,
}

impl LayerMix {
    /// `[B, L, T, H]` → `[B, T, H]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<3> {
        let [batch, layers, frames, dim] = x.dims();
        let weights = softmax(self.logits.val(), 0).reshape([1, layers, 1]);
        let flat = x.reshape([batch, layers, frames * dim]);
        (flat * weights).sum_dim(1).reshape([batch, frames, dim])
    }

    /// The current layer weights (they sum to one).
    pub fn weights(&self) -> Vec<f32> {
        softmax(self.logits.val(), 0)
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap_or_default()
    }
}

/// What a branch gives: the BiLSTM states, their lengths, and their masked mean.
#[derive(Debug, Clone)]
pub struct BranchOutput {
    /// `[B, T', 2h]` BiLSTM states; only the first `lengths[b]` frames of sample `b`
    /// are meaningful.
    pub sequence: Tensor<3>,
    /// Valid frames of each sample after pooling.
    pub lengths: Vec<usize>,
    /// `[B, 2h]`: the mean of the valid states.
    pub pooled: Tensor<2>,
}

/// Conv1d → ReLU → MaxPool1d → BiLSTM → masked mean, with an optional layer mix first.
#[derive(Module, Debug)]
pub struct Branch {
    /// Layer weights, present when the features stack several layers.
    pub mix: Option<LayerMix>,
    /// Convolution over time, channels-first, 'same' zero padding.
    pub conv: Conv1d,
    /// Max over pairs of frames (kernel 2, stride 2).
    pub pool: MaxPool1d,
    /// The length-aware bidirectional LSTM.
    pub lstm: MaskedBiLstm,
    /// Feature width H.
    pub input_dim: usize,
    /// Encoder layers in the features.
    pub layers: usize,
    /// Dropout probability on the LSTM inputs (training only).
    pub dropout: f64,
}

impl Branch {
    /// The features this branch reads.
    pub fn layout(&self) -> FeatureLayout {
        FeatureLayout {
            layers: self.layers,
            dim: self.input_dim,
        }
    }

    /// The temporal block alone (layer mix → Conv1d → ReLU → MaxPool1d): `[B, T', C]`
    /// with each sample's valid frames after pooling. Reports read it as one of the
    /// head's representations.
    pub fn temporal(&self, batch: &SequenceBatch) -> Result<(Tensor<3>, Vec<usize>), InputError> {
        check_layout(batch, self.layout())?;
        let x = batch.values.clone();
        let [b, _, frames, dim] = x.dims();
        let x = match &self.mix {
            Some(mix) => mix.forward(x),
            None => x.reshape([b, frames, dim]),
        };
        // Channels-first for the convolution and the pooling.
        let x = relu(self.conv.forward(x.swap_dims(1, 2)));
        let x = self.pool.forward(x).swap_dims(1, 2);
        let lengths: Vec<usize> = batch.lengths.iter().map(|len| len / POOL).collect();
        Ok((x, lengths))
    }

    /// Runs the branch over a padded batch.
    pub fn forward(
        &self,
        batch: &SequenceBatch,
        rng: Option<&mut DropoutRng>,
    ) -> Result<BranchOutput, InputError> {
        let (x, lengths) = self.temporal(batch)?;
        let x = dropout(x, self.dropout, rng);
        let sequence = self.lstm.forward(x, &lengths);
        let pooled = masked_mean(sequence.clone(), &lengths);
        Ok(BranchOutput {
            sequence,
            lengths,
            pooled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::heads::test_support::{max_abs_diff, random_features, values};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn layer_mix_starts_as_the_mean_of_layers() {
        let dev = Device::flex();
        let branch = BranchConfig::new(4).with_layers(3).init(&dev);
        let mix = branch.mix.as_ref().expect("three layers: a mix");
        for w in mix.weights() {
            assert!((w - 1.0 / 3.0).abs() < 1e-6);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let f = random_features(&mut rng, 3, 2, 4);
        let batch = SequenceBatch::from_features(&[&f], &dev).unwrap();
        let mixed = values(mix.forward(batch.values));
        let mean: Vec<f32> = (0..8)
            .map(|i| (f.data[i] + f.data[8 + i] + f.data[16 + i]) / 3.0)
            .collect();
        assert!(max_abs_diff(&mixed, &mean) < 1e-6);
    }

    #[test]
    fn pooled_lengths_halve_rounding_down() {
        let dev = Device::flex();
        let branch = BranchConfig::new(4)
            .with_conv_channels(3)
            .with_lstm_hidden(2)
            .init(&dev);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let a = random_features(&mut rng, 1, 7, 4);
        let b = random_features(&mut rng, 1, 4, 4);
        let batch = SequenceBatch::from_features(&[&a, &b], &dev).unwrap();
        let out = branch.forward(&batch, None).unwrap();
        assert_eq!(out.lengths, vec![3, 2]);
        assert_eq!(out.sequence.dims(), [2, 3, 4]);
        assert_eq!(out.pooled.dims(), [2, 4]);
    }

    #[test]
    fn wrong_width_is_an_error_not_a_panic() {
        let dev = Device::flex();
        let branch = BranchConfig::new(4).init(&dev);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let f = random_features(&mut rng, 1, 5, 6);
        let batch = SequenceBatch::from_features(&[&f], &dev).unwrap();
        assert!(matches!(
            branch.forward(&batch, None),
            Err(InputError::LayoutMismatch { .. })
        ));
    }
}
