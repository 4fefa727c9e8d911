//! The fusion model: speech queries text, through a gate that starts closed.
//!
//! ```text
//! speech [B, Ts, H] ─ branch ─► states S [B, Ts', 2h], vector s [B, 2h]
//! text   [B, Tt, H] ─ branch ─► states K [B, Tt', 2h]
//! attention: queries from S, keys and values from K, padded tokens masked out
//!            ─► per speech frame [B, Ts', 2h] ─ masked mean over speech frames ─► a [B, 2h]
//! fused = s + tanh(g) · a          (g a learned scalar, 0 at initialisation)
//! logits = Linear(dropout(fused))
//! ```
//!
//! **Which side queries which, and why.** The SPEECH frames are the queries and the TEXT
//! tokens the keys and values. In TESS the emotion is in the voice: every word is spoken
//! in all seven emotions, so the text alone is at chance and can at best add context to
//! what the speech says. Letting speech ask the text (rather than text ask the speech)
//! keeps the speech representation in charge and makes the text an optional addition.
//!
//! **Why the gate.** The attended vector enters through a residual scaled by
//! `tanh(g)`, with `g` initialised at 0: at initialisation the fusion model computes
//! exactly the speech-only path (its speech branch and classifier), and training opens
//! the gate only as far as the text helps. The gate's gradient at 0 is the attended
//! vector itself, so it can open from the first step.
//!
//! **Why it starts from the speech model.** Trained from scratch, fusion was a second,
//! differently seeded speech model and lost to speech-only on the demo (89.3 vs 100 %
//! on one machine). So the trainer builds it on the trained speech model
//! ([`FusionHead::starting_from`]: speech branch and classifier copied and frozen, gate
//! closed) and keeps the text only when it beats that model on validation
//! (`train::trainer::train_fusion_from_speech`); otherwise the fusion model is the
//! speech model, bit for bit.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor, TensorData};

use super::branch::{Branch, BranchConfig, BranchOutput};
use super::classifier::BranchClassifier;
use super::recurrent::masked_mean;
use super::{CLASSES, DropoutRng, InputError, SequenceBatch, dropout};

/// Added to the attention scores of padded text tokens: their weight is exactly zero
/// after the softmax (a finite value keeps the ONNX graph free of infinities).
const MASKED_SCORE: f32 = -1.0e9;

/// Sizes of a [`FusionHead`].
#[derive(Config, Debug, PartialEq)]
pub struct FusionHeadConfig {
    /// The branch over the speech features (HuBERT).
    pub speech: BranchConfig,
    /// The branch over the text token features (BERT).
    pub text: BranchConfig,
    /// Width of queries, keys and values.
    #[config(default = 64)]
    pub attention_dim: usize,
    /// Output classes.
    #[config(default = "CLASSES")]
    pub classes: usize,
}

impl FusionHeadConfig {
    /// A fresh model on `device`, gate closed.
    pub fn init(&self, device: &Device) -> FusionHead {
        let speech_dim = self.speech.output_dim();
        let text_dim = self.text.output_dim();
        FusionHead {
            speech: self.speech.init(device),
            text: self.text.init(device),
            attention: CrossAttentionConfig::new(speech_dim, text_dim, self.attention_dim)
                .init(device),
            gate: Initializer::Zeros.init([1], device),
            classifier: LinearConfig::new(speech_dim, self.classes).init(device),
            dropout: self.speech.dropout,
        }
    }
}

/// Sizes of a [`CrossAttention`].
#[derive(Config, Debug, PartialEq)]
pub struct CrossAttentionConfig {
    /// Width of the query sequence (and of the output).
    pub query_dim: usize,
    /// Width of the key/value sequence.
    pub key_dim: usize,
    /// Width of queries, keys and values inside.
    pub attention_dim: usize,
}

impl CrossAttentionConfig {
    /// A fresh attention on `device`.
    pub fn init(&self, device: &Device) -> CrossAttention {
        CrossAttention {
            query: LinearConfig::new(self.query_dim, self.attention_dim).init(device),
            key: LinearConfig::new(self.key_dim, self.attention_dim).init(device),
            value: LinearConfig::new(self.key_dim, self.attention_dim).init(device),
            output: LinearConfig::new(self.attention_dim, self.query_dim).init(device),
            attention_dim: self.attention_dim,
        }
    }
}

/// Single-head scaled dot-product attention with a key padding mask
/// (MatMul → Softmax → MatMul in ONNX).
#[derive(Module, Debug)]
pub struct CrossAttention {
    /// Queries from the query sequence.
    pub query: Linear,
    /// Keys from the key sequence.
    pub key: Linear,
    /// Values from the key sequence.
    pub value: Linear,
    /// Back to the query width.
    pub output: Linear,
    /// Width of queries and keys (the scores are divided by its square root).
    pub attention_dim: usize,
}

impl CrossAttention {
    /// `queries [B, Tq, Dq]` attend over `keys [B, Tk, Dk]`, of which only the first
    /// `key_lengths[b]` tokens of sample `b` are real; → `[B, Tq, Dq]`.
    pub fn forward(&self, queries: Tensor<3>, keys: Tensor<3>, key_lengths: &[usize]) -> Tensor<3> {
        let [batch, query_frames, _] = queries.dims();
        let [_, key_frames, _] = keys.dims();
        let q = self.query.forward(queries);
        let k = self.key.forward(keys.clone());
        let v = self.value.forward(keys);
        let scale = 1.0 / (self.attention_dim as f64).sqrt();
        let scores = q.matmul(k.swap_dims(1, 2)).mul_scalar(scale);
        let mask = key_padding_mask(
            key_lengths,
            batch,
            query_frames,
            key_frames,
            &scores.device(),
        );
        let weights = softmax(scores.mask_fill(mask, MASKED_SCORE), 2);
        self.output.forward(weights.matmul(v))
    }
}

/// `[B, Tq, Tk]` booleans, true where key `k >= key_lengths[b]` (padding).
fn key_padding_mask(
    key_lengths: &[usize],
    batch: usize,
    query_frames: usize,
    key_frames: usize,
    device: &Device,
) -> Tensor<3, Bool> {
    let mut mask = Vec::with_capacity(batch * query_frames * key_frames);
    for b in 0..batch {
        let len = key_lengths.get(b).copied().unwrap_or(key_frames);
        for _ in 0..query_frames {
            mask.extend((0..key_frames).map(|k| k >= len));
        }
    }
    Tensor::from_data(
        TensorData::new(mask, [batch, query_frames, key_frames]),
        device,
    )
}

/// Speech branch + text branch; speech frames query text tokens; gated residual.
#[derive(Module, Debug)]
pub struct FusionHead {
    /// Branch over the speech features.
    pub speech: Branch,
    /// Branch over the text token features.
    pub text: Branch,
    /// Speech states (queries) over text states (keys, values).
    pub attention: CrossAttention,
    /// Gate logit `g`, `[1]`: the attended vector is scaled by `tanh(g)`; starts at 0.
    pub gate: Param<Tensor<1>>,
    /// Fused vector to logits.
    pub classifier: Linear,
    /// Dropout probability before the classifier (training only).
    pub dropout: f64,
}

impl FusionHead {
    /// Logits `[B, classes]`. Both batches must hold the same samples in the same order.
    pub fn forward(
        &self,
        speech: &SequenceBatch,
        text: &SequenceBatch,
        mut rng: Option<&mut DropoutRng>,
    ) -> Result<Tensor<2>, InputError> {
        if speech.len() != text.len() {
            return Err(InputError::BatchMismatch {
                speech: speech.len(),
                text: text.len(),
            });
        }
        let s = self.speech.forward(speech, rng.as_deref_mut())?;
        let t = self.text.forward(text, rng.as_deref_mut())?;
        let fused = self.fuse(&s, &t);
        Ok(self.classifier.forward(dropout(fused, self.dropout, rng)))
    }

    /// The speech vector plus the gated, attended text: `[B, 2h]`.
    pub fn fuse(&self, speech: &BranchOutput, text: &BranchOutput) -> Tensor<2> {
        let attended = self.attention.forward(
            speech.sequence.clone(),
            text.sequence.clone(),
            &text.lengths,
        );
        let attended = masked_mean(attended, &speech.lengths);
        let gate = self.gate.val().tanh().reshape([1, 1]);
        speech.pooled.clone() + attended * gate
    }

    /// This head started from a trained speech-only head: its speech branch and classifier
    /// are `speech`'s (moved to `device`) and frozen, the gate closed. So at the start it
    /// computes exactly `speech`'s logits (the attended text is multiplied by
    /// `tanh(0) = 0`), and whatever training changes is the text's doing.
    pub fn starting_from(self, speech: &BranchClassifier, device: &Device) -> Self {
        FusionHead {
            speech: speech.branch.clone().fork(device),
            classifier: speech.output.clone().fork(device),
            gate: Initializer::Zeros.init([1], device),
            ..self
        }
        .with_speech_frozen()
    }

    /// The speech branch and the classifier no longer learn (after a checkpoint is
    /// loaded, the freeze must be applied again: the weights file does not keep it).
    pub fn with_speech_frozen(self) -> Self {
        FusionHead {
            speech: self.speech.no_grad(),
            classifier: self.classifier.no_grad(),
            ..self
        }
    }

    /// `tanh(g)`: how much of the attended text currently enters (0 at initialisation).
    pub fn gate_value(&self) -> f32 {
        self.gate
            .val()
            .tanh()
            .into_data()
            .try_into_vec_as::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::cache::Features;
    use crate::train::heads::test_support::{max_abs_diff, random_features, tiny, values};
    use crate::train::heads::{EmotionHead, FeatureLayout, HeadInput, ModelKind};
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;

    const SPEECH: FeatureLayout = FeatureLayout { layers: 1, dim: 6 };
    const TEXT: FeatureLayout = FeatureLayout { layers: 1, dim: 4 };

    fn fusion(seed: u64) -> FusionHead {
        match tiny()
            .model(ModelKind::Fusion, SPEECH, TEXT)
            .init_seeded(seed, &Device::flex())
        {
            EmotionHead::Fusion(head) => head,
            other => panic!("expected fusion, got {:?}", other.kind()),
        }
    }

    fn batch(items: &[&Features]) -> SequenceBatch {
        SequenceBatch::from_features(items, &Device::flex()).unwrap()
    }

    /// A fusion head whose gate is open (so the text matters) for the invariance test.
    fn open_gate(head: FusionHead) -> FusionHead {
        let dev = Device::flex();
        FusionHead {
            gate: Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.8f32], [1]), &dev)),
            ..head
        }
    }

    #[test]
    fn fusion_is_padding_invariant() {
        let head = open_gate(fusion(21));
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let speech: Vec<_> = [17, 6, 30, 2]
            .iter()
            .map(|&t| random_features(&mut rng, 1, t, SPEECH.dim))
            .collect();
        let text: Vec<_> = [6, 9, 3, 12]
            .iter()
            .map(|&t| random_features(&mut rng, 1, t, TEXT.dim))
            .collect();
        let s_refs: Vec<_> = speech.iter().collect();
        let t_refs: Vec<_> = text.iter().collect();
        let batched = values(
            head.forward(&batch(&s_refs), &batch(&t_refs), None)
                .unwrap(),
        );
        for i in 0..speech.len() {
            let alone = values(
                head.forward(&batch(&[&speech[i]]), &batch(&[&text[i]]), None)
                    .unwrap(),
            );
            let diff = max_abs_diff(&batched[i * CLASSES..(i + 1) * CLASSES], &alone);
            assert!(diff < 1e-5, "sample {i}: {diff}");
        }
        // And the text does matter once the gate is open.
        let mut other_text = text.clone();
        other_text[0] = random_features(&mut rng, 1, 6, TEXT.dim);
        let o_refs: Vec<_> = other_text.iter().collect();
        let changed = values(
            head.forward(&batch(&s_refs), &batch(&o_refs), None)
                .unwrap(),
        );
        assert!(max_abs_diff(&changed[..CLASSES], &batched[..CLASSES]) > 1e-6);
    }

    #[test]
    fn closed_gate_makes_fusion_the_speech_path() {
        let head = fusion(31);
        assert_eq!(head.gate_value(), 0.0);
        let mut rng = ChaCha8Rng::seed_from_u64(32);
        let speech: Vec<_> = [12, 7]
            .iter()
            .map(|&t| random_features(&mut rng, 1, t, SPEECH.dim))
            .collect();
        let text: Vec<_> = [5, 8]
            .iter()
            .map(|&t| random_features(&mut rng, 1, t, TEXT.dim))
            .collect();
        let zeros: Vec<Features> = text
            .iter()
            .map(|f| Features {
                data: vec![0.0; f.data.len()],
                ..f.clone()
            })
            .collect();
        let s = batch(&speech.iter().collect::<Vec<_>>());
        let with_text = values(
            head.forward(&s, &batch(&text.iter().collect::<Vec<_>>()), None)
                .unwrap(),
        );
        let zero_text = values(
            head.forward(&s, &batch(&zeros.iter().collect::<Vec<_>>()), None)
                .unwrap(),
        );
        assert_eq!(with_text, zero_text);
        // Exactly the speech-only computation: speech branch then classifier.
        let speech_only = values(
            head.classifier
                .forward(head.speech.forward(&s, None).unwrap().pooled),
        );
        assert!(max_abs_diff(&with_text, &speech_only) < 1e-7);
    }

    #[test]
    fn fusion_needs_both_inputs() {
        let dev = Device::flex();
        let head = tiny()
            .model(ModelKind::Fusion, SPEECH, TEXT)
            .init_seeded(1, &dev);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let s = random_features(&mut rng, 1, 8, SPEECH.dim);
        let input = HeadInput {
            speech: Some(batch(&[&s])),
            text: None,
        };
        assert!(matches!(
            head.forward(&input, None),
            Err(InputError::Missing { what: "text", .. })
        ));
    }
}
