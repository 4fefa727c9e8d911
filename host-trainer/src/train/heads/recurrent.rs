//! A bidirectional LSTM that respects each sample's length, and the masked pooling
//! that goes with it.
//!
//! burn's `BiLstm` takes no lengths: in a padded batch its backward half would read the
//! padding first and carry it into every real frame. Here the BiLSTM is two forward
//! `Lstm`s. The second one reads each sample's own frames reversed — the first `len_i`
//! frames of sample `i` are reversed in place, the padding stays after them — and its
//! outputs are put back in time order the same way. The forward half reads padding only
//! after the real frames, so outputs at real frames never depend on padding; outputs at
//! padded frames are garbage and every consumer masks them ([`masked_mean`], the
//! attention's key mask).
//!
//! On the board there is no padding (one utterance at a time), and the pair exports as
//! one ONNX `LSTM` with `direction="bidirectional"`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Lstm, LstmConfig};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

/// Sizes of a [`MaskedBiLstm`].
#[derive(Config, Debug)]
pub struct MaskedBiLstmConfig {
    /// Input width.
    pub d_input: usize,
    /// Hidden size per direction (the output is twice this).
    pub d_hidden: usize,
}

impl MaskedBiLstmConfig {
    /// A fresh BiLSTM on `device`.
    pub fn init(&self, device: &Device) -> MaskedBiLstm {
        let lstm = LstmConfig::new(self.d_input, self.d_hidden, true);
        MaskedBiLstm {
            forward: lstm.init(device),
            backward: lstm.init(device),
            d_hidden: self.d_hidden,
        }
    }
}

/// Two LSTMs, one over each sample's frames in time order, one over them reversed.
#[derive(Module, Debug)]
pub struct MaskedBiLstm {
    /// Reads frames 0, 1, …, len−1 (then the padding, whose outputs are never used).
    pub forward: Lstm,
    /// Reads frames len−1, …, 0 of each sample (then the padding).
    pub backward: Lstm,
    /// Hidden size per direction.
    pub d_hidden: usize,
}

impl MaskedBiLstm {
    /// `[B, T, C]` → `[B, T, 2·hidden]` (forward half first). Values at frames
    /// `t >= lengths[b]` are not meaningful.
    pub fn forward(&self, x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let (forward, _) = self.forward.forward(x.clone(), None);
        let reversed = reverse_valid(x, lengths);
        let (backward, _) = self.backward.forward(reversed, None);
        let backward = reverse_valid(backward, lengths);
        Tensor::cat(vec![forward, backward], 2)
    }
}

/// For each sample `b` of `[B, T, C]`, reverses frames `0..lengths[b]` and leaves the
/// rest where it is. Its own inverse.
pub fn reverse_valid(x: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
    let [batch, frames, channels] = x.dims();
    let mut index = Vec::with_capacity(batch * frames * channels);
    for b in 0..batch {
        let len = lengths.get(b).copied().unwrap_or(frames).min(frames);
        for t in 0..frames {
            let source = if t < len { len - 1 - t } else { t };
            index.extend(std::iter::repeat_n(source as i64, channels));
        }
    }
    let index = Tensor::<3, Int>::from_data(
        TensorData::new(index, [batch, frames, channels]),
        &x.device(),
    );
    x.gather(1, index)
}

/// `[B, T, C]` → `[B, C]`: the mean over each sample's first `lengths[b]` frames.
/// Other frames are masked out (not multiplied by zero, so even a non-finite value in
/// the padding cannot leak in).
pub fn masked_mean(x: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
    let [batch, frames, channels] = x.dims();
    let device = x.device();
    let padding = padding_mask(lengths, batch, frames, channels, &device);
    let sums = x
        .mask_fill(padding, 0.0)
        .sum_dim(1)
        .reshape([batch, channels]);
    let counts: Vec<f32> = (0..batch)
        .map(|b| lengths.get(b).copied().unwrap_or(frames).clamp(1, frames) as f32)
        .collect();
    let counts = Tensor::<2>::from_data(TensorData::new(counts, [batch, 1]), &device);
    sums / counts
}

/// `[B, T, C]` booleans, true at frames `t >= lengths[b]` (the padding).
pub fn padding_mask(
    lengths: &[usize],
    batch: usize,
    frames: usize,
    channels: usize,
    device: &Device,
) -> Tensor<3, Bool> {
    let mut mask = Vec::with_capacity(batch * frames * channels);
    for b in 0..batch {
        let len = lengths.get(b).copied().unwrap_or(frames);
        for t in 0..frames {
            mask.extend(std::iter::repeat_n(t >= len, channels));
        }
    }
    Tensor::from_data(TensorData::new(mask, [batch, frames, channels]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::heads::test_support::{max_abs_diff, values};

    fn device() -> Device {
        Device::flex()
    }

    fn ramp(batch: usize, frames: usize, channels: usize) -> Tensor<3> {
        let data: Vec<f32> = (0..batch * frames * channels).map(|i| i as f32).collect();
        Tensor::from_data(TensorData::new(data, [batch, frames, channels]), &device())
    }

    #[test]
    fn reversal_touches_only_valid_frames() {
        let x = ramp(2, 4, 2);
        let r = values(reverse_valid(x.clone(), &[4, 2]));
        // Sample 0: frames 3,2,1,0. Sample 1: frames 1,0 then 2,3 untouched.
        let expected = vec![
            6.0, 7.0, 4.0, 5.0, 2.0, 3.0, 0.0, 1.0, //
            10.0, 11.0, 8.0, 9.0, 12.0, 13.0, 14.0, 15.0,
        ];
        assert_eq!(r, expected);
        let back = values(reverse_valid(reverse_valid(x.clone(), &[4, 2]), &[4, 2]));
        assert_eq!(back, values(x));
    }

    #[test]
    fn masked_mean_ignores_padding() {
        let x = ramp(2, 3, 1);
        let m = values(masked_mean(x, &[3, 1]));
        assert_eq!(m, vec![1.0, 3.0]);
    }

    #[test]
    fn bilstm_outputs_do_not_see_padding() {
        let dev = device();
        let lstm = MaskedBiLstmConfig::new(3, 4).init(&dev);
        let long: Vec<f32> = (0..5 * 3).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let short: Vec<f32> = long[..2 * 3].to_vec();
        // Sample 1 is sample "short" padded with large values: they must not matter.
        let mut batch = long.clone();
        batch.extend(&short);
        batch.extend(std::iter::repeat_n(100.0, 3 * 3));
        let batch = Tensor::<3>::from_data(TensorData::new(batch, [2, 5, 3]), &dev);
        let out = values(lstm.forward(batch, &[5, 2]));
        let alone = Tensor::<3>::from_data(TensorData::new(short, [1, 2, 3]), &dev);
        let alone = values(lstm.forward(alone, &[2]));
        let padded_valid = &out[5 * 8..5 * 8 + 2 * 8];
        assert!(max_abs_diff(padded_valid, &alone) < 1e-6);
    }
}
