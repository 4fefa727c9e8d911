//! Encoder hidden states to the feature sequence a head reads: the mean of the
//! selected layers (`[T, H]`, the reference study) or every layer kept (`[L, T, H]`).
//!
//! The host (feature extraction for training) and the board (the pipeline) both call
//! [`combine_layers`], so a head sees the same numbers on both sides.

use serde::{Deserialize, Serialize};

use crate::encoder::HiddenState;

/// How the selected hidden states become one feature sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum LayerCombination {
    /// The mean of the selected layers, `[T, H]` (the reference study).
    Mean,
    /// Every selected layer kept, `[L, T, H]`, for a learned weighted sum (SUPERB-style).
    Separate,
}

/// One feature tensor: the encoder layers it comes from, its shape and its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// HF layer numbers the features come from.
    pub layers: Vec<usize>,
    /// `[T, H]` (mean) or `[L, T, H]` (separate).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl Features {
    /// Frames (speech) or tokens (text): the second-to-last axis.
    pub fn frames(&self) -> usize {
        self.shape
            .get(self.shape.len().wrapping_sub(2))
            .copied()
            .unwrap_or(0)
    }

    /// Hidden size: the last axis.
    pub fn dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(0)
    }
}

/// Mean of the layers (`[T, H]`) or all of them (`[L, T, H]`).
pub fn combine_layers(states: &[HiddenState], combination: LayerCombination) -> Features {
    let layers: Vec<usize> = states.iter().map(|s| s.index).collect();
    let (frames, dim) = states.first().map_or((0, 0), |s| (s.frames, s.dim));
    match combination {
        LayerCombination::Mean => {
            let mut data = vec![0.0f32; frames * dim];
            for state in states {
                for (sum, x) in data.iter_mut().zip(&state.data) {
                    *sum += x;
                }
            }
            let n = states.len().max(1) as f32;
            data.iter_mut().for_each(|x| *x /= n);
            Features {
                layers,
                shape: vec![frames, dim],
                data,
            }
        }
        LayerCombination::Separate => Features {
            shape: vec![states.len(), frames, dim],
            data: states.iter().flat_map(|s| s.data.iter().copied()).collect(),
            layers,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(index: usize, value: f32) -> HiddenState {
        HiddenState {
            index,
            frames: 2,
            dim: 3,
            data: vec![value; 6],
        }
    }

    #[test]
    fn mean_averages_layers_and_separate_stacks_them() {
        let states = [state(5, 1.0), state(6, 2.0), state(7, 6.0)];
        let mean = combine_layers(&states, LayerCombination::Mean);
        assert_eq!(mean.shape, [2, 3]);
        assert_eq!(mean.layers, [5, 6, 7]);
        assert!(mean.data.iter().all(|x| (*x - 3.0).abs() < 1e-6));
        let separate = combine_layers(&states, LayerCombination::Separate);
        assert_eq!(separate.shape, [3, 2, 3]);
        assert_eq!(separate.data[6], 2.0);
        assert_eq!(separate.frames(), 2);
        assert_eq!(separate.dim(), 3);
    }
}
