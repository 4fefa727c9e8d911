//! The single-input models (speech only, text only): one branch, dropout, a linear
//! layer to the seven emotion logits.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use super::branch::{Branch, BranchConfig};
use super::{CLASSES, DropoutRng, InputError, SequenceBatch, dropout};

/// Sizes of a [`BranchClassifier`].
#[derive(Config, Debug, PartialEq)]
pub struct BranchClassifierConfig {
    /// The branch over the input features.
    pub branch: BranchConfig,
    /// Output classes.
    #[config(default = "CLASSES")]
    pub classes: usize,
}

impl BranchClassifierConfig {
    /// A fresh model on `device`.
    pub fn init(&self, device: &Device) -> BranchClassifier {
        BranchClassifier {
            branch: self.branch.init(device),
            output: LinearConfig::new(self.branch.output_dim(), self.classes).init(device),
            dropout: self.branch.dropout,
        }
    }
}

/// Branch → dropout → Linear → logits.
#[derive(Module, Debug)]
pub struct BranchClassifier {
    /// Features to one vector.
    pub branch: Branch,
    /// Vector to logits (burn `Linear`: weight `[in, out]`).
    pub output: Linear,
    /// Dropout probability before the output layer (training only).
    pub dropout: f64,
}

impl BranchClassifier {
    /// Logits `[B, classes]`.
    pub fn forward(
        &self,
        batch: &SequenceBatch,
        mut rng: Option<&mut DropoutRng>,
    ) -> Result<Tensor<2>, InputError> {
        let out = self.branch.forward(batch, rng.as_deref_mut())?;
        Ok(self.output.forward(dropout(out.pooled, self.dropout, rng)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::heads::test_support::{max_abs_diff, random_features, tiny, values};
    use crate::train::heads::{EmotionHead, FeatureLayout, HeadInput, ModelKind};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    /// A sample's logits alone and as one row of a padded batch of longer and shorter
    /// samples.
    fn assert_padding_invariant(kind: ModelKind, layers: usize) {
        let dev = Device::flex();
        let layout = FeatureLayout { layers, dim: 5 };
        let head = tiny().model(kind, layout, layout).init_seeded(11, &dev);
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let samples: Vec<_> = [9, 23, 4, 1, 16]
            .iter()
            .map(|&t| random_features(&mut rng, layers, t, 5))
            .collect();
        let refs: Vec<_> = samples.iter().collect();
        let input = |items: &[&crate::features::cache::Features]| {
            let batch = SequenceBatch::from_features(items, &dev).unwrap();
            match kind {
                ModelKind::Speech => HeadInput {
                    speech: Some(batch),
                    text: None,
                },
                _ => HeadInput {
                    speech: None,
                    text: Some(batch),
                },
            }
        };
        let batched = values(head.forward(&input(&refs), None).unwrap());
        for (i, sample) in samples.iter().enumerate() {
            let alone = values(head.forward(&input(&[sample]), None).unwrap());
            let row = &batched[i * CLASSES..(i + 1) * CLASSES];
            let diff = max_abs_diff(row, &alone);
            assert!(diff < 1e-5, "{kind} sample {i}: {diff}");
        }
        assert!(matches!(
            head,
            EmotionHead::Speech(_) | EmotionHead::Text(_)
        ));
    }

    #[test]
    fn speech_model_is_padding_invariant() {
        assert_padding_invariant(ModelKind::Speech, 1);
    }

    #[test]
    fn text_model_is_padding_invariant() {
        assert_padding_invariant(ModelKind::Text, 1);
    }

    #[test]
    fn layer_mixing_model_is_padding_invariant() {
        assert_padding_invariant(ModelKind::Speech, 3);
    }

    #[test]
    fn dropout_only_when_training() {
        let dev = Device::flex().autodiff();
        let layout = FeatureLayout { layers: 1, dim: 5 };
        let head = tiny()
            .model(ModelKind::Speech, layout, layout)
            .init_seeded(1, &dev);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let f = random_features(&mut rng, 1, 12, 5);
        let input = HeadInput {
            speech: Some(SequenceBatch::from_features(&[&f], &dev).unwrap()),
            text: None,
        };
        let a = values(head.forward(&input, None).unwrap());
        let b = values(head.forward(&input, None).unwrap());
        assert_eq!(a, b);
        let mut drop = DropoutRng::seed_from_u64(3);
        let c = values(head.forward(&input, Some(&mut drop)).unwrap());
        assert_ne!(a, c);
    }
}
