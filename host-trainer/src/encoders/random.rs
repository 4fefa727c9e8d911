//! Random-weight checkpoints in the real HF layout (`config.json` + `model.safetensors`
//! with the real tensor names and shapes, HF's defaults for the rest of the config), for
//! tests and benchmarks: this machine cannot download real weights, and the importer must
//! not care whether weights were trained.
//!
//! Presets: [`Preset::Tiny`] (hidden 32, 4 layers, 32-channel convs: fast enough for
//! unit tests), [`Preset::Base`] (HuBERT-base: 7×512-channel convs, hidden 768, 12
//! layers, 12 heads, ffn 3072, positional conv 128/16 groups; with [`EncoderKind::WavLm`]
//! the same sizes are WavLM-base-plus, plus its relative position bias: 320 buckets, max
//! distance 800; BERT-base: 768/12/12/3072, vocab 30522) and [`Preset::Distil`]
//! (DistilHuBERT, `ntu-spml/distilhubert`: HuBERT-base's sizes with 2 layers and no
//! LayerNorm before the feature projection). Every size can be changed after choosing a
//! preset. Options: the "large"-style stable layer norm (pre-LN, `feat_extract_norm =
//! "layer"`, conv biases) and the naming of the positional conv's weight norm.
//!
//! Values are seeded (ChaCha8): the same settings and seed give the same bytes. They are
//! uniform with the spread of HF's initialisation (std 0.02 for linear layers and
//! embeddings; 1/√fan_in for convolutions, so activations neither vanish nor explode
//! through the feature encoder), LayerNorm weights near 1, small non-zero biases.

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;

use super::EncoderKind;
use super::error::ImportError;

/// Size presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Tiny: hidden 32, 4 layers, 4 heads, ffn 64, 7×32-channel convs, positional conv
    /// 16/4 groups (the shape of the conformance fixtures).
    Tiny,
    /// The real base size (HuBERT-base / WavLM-base-plus / BERT-base).
    Base,
    /// DistilHuBERT (`ntu-spml/distilhubert`): the base sizes with 2 transformer layers
    /// and, for HuBERT, no LayerNorm before the feature projection
    /// (`feat_proj_layer_norm: false`). A speech layout.
    Distil,
}

/// How the positional conv's weight norm is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightNormNames {
    /// `weight_g` / `weight_v` (`torch.nn.utils.weight_norm`; most published checkpoints).
    Legacy,
    /// `parametrizations.weight.original0` / `original1` (newer PyTorch).
    Parametrizations,
}

/// Settings of a random checkpoint. Start from [`RandomCheckpoint::new`], change fields or
/// use the `with_*` methods, then [`RandomCheckpoint::write`].
#[derive(Debug, Clone, PartialEq)]
pub struct RandomCheckpoint {
    /// The architecture.
    pub kind: EncoderKind,
    /// Seed of the generator.
    pub seed: u64,
    /// Transformer width.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Speech: conv channels per layer.
    pub conv_dim: Vec<usize>,
    /// Speech: conv kernels.
    pub conv_kernel: Vec<usize>,
    /// Speech: conv strides.
    pub conv_stride: Vec<usize>,
    /// Speech: positional conv kernel.
    pub num_conv_pos_embeddings: usize,
    /// Speech: positional conv groups.
    pub num_conv_pos_embedding_groups: usize,
    /// Speech: "large" layout (pre-LN transformer, LayerNorm after every conv, conv biases).
    pub stable_layer_norm: bool,
    /// Speech: names of the weight-norm tensors.
    pub weight_norm_names: WeightNormNames,
    /// HuBERT: LayerNorm before the feature projection (`feat_proj_layer_norm`; wav2vec2
    /// and WavLM always have one).
    pub feat_proj_layer_norm: bool,
    /// WavLM: relative position buckets (`num_buckets`).
    pub num_buckets: usize,
    /// WavLM: where the logarithmic buckets end (`max_bucket_distance`).
    pub max_bucket_distance: usize,
    /// Text: vocabulary size.
    pub vocab_size: usize,
    /// Text: position table rows.
    pub max_position_embeddings: usize,
    /// Text: a `tokenizer.json` to copy next to the weights.
    pub tokenizer_json: Option<PathBuf>,
}

/// A tiny random HuBERT (12 layers) and BERT (6 layers, reading with `tokenizer`) in
/// `dir/hubert-tiny-random` and `dir/bert-tiny-random`: hidden size 32, but as deep as
/// the real encoders, so the default layer selections (HuBERT 5..9, BERT 1..6) apply
/// unchanged. The demo and the tests use them. Returns the two checkpoint folders.
pub fn write_tiny_pair(dir: &Path, tokenizer: &Path) -> Result<(PathBuf, PathBuf), ImportError> {
    let speech = dir.join("hubert-tiny-random");
    RandomCheckpoint::new(EncoderKind::Hubert, Preset::Tiny)
        .with_layers(12)
        .with_seed(1)
        .write(&speech)?;
    let text = dir.join("bert-tiny-random");
    RandomCheckpoint::new(EncoderKind::Bert, Preset::Tiny)
        .with_layers(6)
        .with_seed(2)
        .with_tokenizer(tokenizer)
        .write(&text)?;
    Ok((speech, text))
}

impl RandomCheckpoint {
    /// A preset of `kind`, seed 0.
    pub fn new(kind: EncoderKind, preset: Preset) -> Self {
        let (hidden, layers, heads, ffn, conv, pos, groups) = match preset {
            Preset::Tiny => (32, 4, 4, 64, 32, 16, 4),
            Preset::Base => (768, 12, 12, 3072, 512, 128, 16),
            Preset::Distil => (768, 2, 12, 3072, 512, 128, 16),
        };
        Self {
            kind,
            seed: 0,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ffn,
            conv_dim: vec![conv; 7],
            conv_kernel: vec![10, 3, 3, 3, 3, 2, 2],
            conv_stride: vec![5, 2, 2, 2, 2, 2, 2],
            num_conv_pos_embeddings: pos,
            num_conv_pos_embedding_groups: groups,
            stable_layer_norm: false,
            weight_norm_names: WeightNormNames::Legacy,
            feat_proj_layer_norm: preset != Preset::Distil,
            num_buckets: super::wavlm::DEFAULT_NUM_BUCKETS,
            max_bucket_distance: super::wavlm::DEFAULT_MAX_BUCKET_DISTANCE,
            vocab_size: 30522,
            max_position_embeddings: 512,
            tokenizer_json: None,
        }
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the number of transformer layers.
    pub fn with_layers(mut self, layers: usize) -> Self {
        self.num_hidden_layers = layers;
        self
    }

    /// Speech: the "large" layout (pre-LN, LayerNorm convs with biases) or not.
    pub fn with_stable_layer_norm(mut self, on: bool) -> Self {
        self.stable_layer_norm = on;
        self
    }

    /// Speech: how the weight norm is named.
    pub fn with_weight_norm_names(mut self, names: WeightNormNames) -> Self {
        self.weight_norm_names = names;
        self
    }

    /// Text: copy this `tokenizer.json` into the checkpoint.
    pub fn with_tokenizer(mut self, path: &Path) -> Self {
        self.tokenizer_json = Some(path.to_path_buf());
        self
    }

    /// The number of parameters written.
    pub fn parameter_count(&self) -> usize {
        self.tensor_specs()
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum()
    }

    /// The `config.json` contents.
    pub fn config_json(&self) -> serde_json::Value {
        match self.kind {
            EncoderKind::Bert => json!({
                "architectures": ["BertModel"],
                "attention_probs_dropout_prob": 0.1,
                "classifier_dropout": null,
                "hidden_act": "gelu",
                "hidden_dropout_prob": 0.1,
                "hidden_size": self.hidden_size,
                "initializer_range": 0.02,
                "intermediate_size": self.intermediate_size,
                "layer_norm_eps": 1e-12,
                "max_position_embeddings": self.max_position_embeddings,
                "model_type": "bert",
                "num_attention_heads": self.num_attention_heads,
                "num_hidden_layers": self.num_hidden_layers,
                "pad_token_id": 0,
                "position_embedding_type": "absolute",
                "type_vocab_size": 2,
                "use_cache": true,
                "vocab_size": self.vocab_size,
            }),
            EncoderKind::Hubert | EncoderKind::Wav2Vec2 | EncoderKind::WavLm => {
                let stable = self.stable_layer_norm;
                let mut config = json!({
                    "activation_dropout": 0.1,
                    "apply_spec_augment": true,
                    "attention_dropout": 0.1,
                    "bos_token_id": 1,
                    "conv_bias": stable,
                    "conv_dim": self.conv_dim,
                    "conv_kernel": self.conv_kernel,
                    "conv_stride": self.conv_stride,
                    "ctc_loss_reduction": "sum",
                    "ctc_zero_infinity": false,
                    "do_stable_layer_norm": stable,
                    "eos_token_id": 2,
                    "feat_extract_activation": "gelu",
                    "feat_extract_norm": if stable { "layer" } else { "group" },
                    "feat_proj_dropout": 0.0,
                    "final_dropout": 0.1,
                    "hidden_act": "gelu",
                    "hidden_dropout": 0.1,
                    "hidden_size": self.hidden_size,
                    "initializer_range": 0.02,
                    "intermediate_size": self.intermediate_size,
                    "layer_norm_eps": 1e-5,
                    "layerdrop": 0.1,
                    "mask_time_length": 10,
                    "mask_time_prob": 0.05,
                    "model_type": self.kind.as_str(),
                    "num_attention_heads": self.num_attention_heads,
                    "num_conv_pos_embedding_groups": self.num_conv_pos_embedding_groups,
                    "num_conv_pos_embeddings": self.num_conv_pos_embeddings,
                    "num_feat_extract_layers": self.conv_dim.len(),
                    "num_hidden_layers": self.num_hidden_layers,
                    "pad_token_id": 0,
                    "vocab_size": 32,
                });
                if let Some(map) = config.as_object_mut() {
                    let arch = match self.kind {
                        EncoderKind::Hubert => {
                            map.insert(
                                "feat_proj_layer_norm".into(),
                                json!(self.feat_proj_layer_norm),
                            );
                            map.insert("conv_pos_batch_norm".into(), json!(false));
                            "HubertModel"
                        }
                        EncoderKind::WavLm => {
                            map.insert("num_buckets".into(), json!(self.num_buckets));
                            map.insert(
                                "max_bucket_distance".into(),
                                json!(self.max_bucket_distance),
                            );
                            "WavLMModel"
                        }
                        _ => "Wav2Vec2Model",
                    };
                    map.insert("architectures".into(), json!([arch]));
                }
                config
            }
        }
    }

    /// Writes `config.json`, `model.safetensors` and, as `fetch` would, a speech
    /// model's `preprocessor_config.json` or a text model's `tokenizer.json` (if given)
    /// to `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ImportError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImportError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let config_path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&self.config_json()).map_err(|source| {
            ImportError::ConfigParse {
                path: config_path.clone(),
                source,
            }
        })?;
        std::fs::write(&config_path, text + "\n").map_err(io(&config_path))?;

        let weights_path = dir.join("model.safetensors");
        let tensors = self.generate();
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                TensorView::new(Dtype::F32, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|e| ImportError::Safetensors {
                        path: weights_path.clone(),
                        reason: format!("{name}: {e}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        safetensors::serialize_to_file(views, None, &weights_path).map_err(|e| {
            ImportError::Safetensors {
                path: weights_path.clone(),
                reason: e.to_string(),
            }
        })?;

        if let (EncoderKind::Bert, Some(tokenizer)) = (self.kind, &self.tokenizer_json) {
            let target = dir.join("tokenizer.json");
            std::fs::copy(tokenizer, &target).map_err(io(tokenizer))?;
        }
        if self.kind != EncoderKind::Bert {
            // What `fetch` brings beside a real speech checkpoint (HF's
            // Wav2Vec2FeatureExtractor settings), so `demo --encoders` takes this folder.
            let path = dir.join("preprocessor_config.json");
            let config = json!({
                "do_normalize": true,
                "feature_extractor_type": "Wav2Vec2FeatureExtractor",
                "feature_size": 1,
                "padding_side": "right",
                "padding_value": 0.0,
                "return_attention_mask": false,
                "sampling_rate": 16000
            });
            std::fs::write(&path, format!("{config:#}\n")).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Every tensor: name, shape and how its values are drawn, in a fixed order.
    fn tensor_specs(&self) -> Vec<Spec> {
        match self.kind {
            EncoderKind::Bert => self.bert_specs(),
            _ => self.speech_specs(),
        }
    }

    fn speech_specs(&self) -> Vec<Spec> {
        let (h, ffn) = (self.hidden_size, self.intermediate_size);
        let prefix = match self.kind {
            EncoderKind::Wav2Vec2 => "wav2vec2.",
            _ => "",
        };
        let mut s = Specs::new(prefix);
        let mut in_channels = 1;
        let layers = self.conv_dim.iter().zip(&self.conv_kernel).enumerate();
        for (i, (&c, &k)) in layers {
            let p = format!("feature_extractor.conv_layers.{i}");
            s.push(
                &format!("{p}.conv.weight"),
                &[c, in_channels, k],
                Init::Conv(in_channels * k),
            );
            if self.stable_layer_norm {
                s.push(&format!("{p}.conv.bias"), &[c], Init::Bias);
            }
            if self.stable_layer_norm || i == 0 {
                s.layer_norm(&format!("{p}.layer_norm"), c);
            }
            in_channels = c;
        }
        if self.kind != EncoderKind::Hubert || self.feat_proj_layer_norm {
            s.layer_norm("feature_projection.layer_norm", in_channels);
        }
        s.linear("feature_projection.projection", h, in_channels);
        let (k, groups) = (
            self.num_conv_pos_embeddings,
            self.num_conv_pos_embedding_groups.max(1),
        );
        let conv = "encoder.pos_conv_embed.conv";
        s.push(&format!("{conv}.bias"), &[h], Init::Bias);
        let (g_name, v_name) = match self.weight_norm_names {
            WeightNormNames::Legacy => ("weight_g", "weight_v"),
            WeightNormNames::Parametrizations => (
                "parametrizations.weight.original0",
                "parametrizations.weight.original1",
            ),
        };
        s.push(
            &format!("{conv}.{v_name}"),
            &[h, h / groups, k],
            Init::Conv(h / groups * k),
        );
        s.push(
            &format!("{conv}.{g_name}"),
            &[1, 1, k],
            Init::WeightNormGain,
        );
        s.layer_norm("encoder.layer_norm", h);
        for l in 0..self.num_hidden_layers {
            let p = format!("encoder.layers.{l}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                s.linear(&format!("{p}.attention.{proj}"), h, h);
            }
            if self.kind == EncoderKind::WavLm {
                let heads = self.num_attention_heads.max(1);
                // HF initialises the constant to ones: 1 ± 0.1 makes a dropped one show.
                s.push(
                    &format!("{p}.attention.gru_rel_pos_const"),
                    &[1, heads, 1, 1],
                    Init::LayerNormWeight,
                );
                s.linear(&format!("{p}.attention.gru_rel_pos_linear"), 8, h / heads);
                if l == 0 {
                    s.push(
                        &format!("{p}.attention.rel_attn_embed.weight"),
                        &[self.num_buckets, heads],
                        Init::Normal,
                    );
                }
            }
            s.layer_norm(&format!("{p}.layer_norm"), h);
            s.linear(&format!("{p}.feed_forward.intermediate_dense"), ffn, h);
            s.linear(&format!("{p}.feed_forward.output_dense"), h, ffn);
            s.layer_norm(&format!("{p}.final_layer_norm"), h);
        }
        s.push("masked_spec_embed", &[h], Init::Unit);
        s.specs
    }

    fn bert_specs(&self) -> Vec<Spec> {
        let (h, ffn) = (self.hidden_size, self.intermediate_size);
        let mut s = Specs::new("");
        s.push(
            "embeddings.word_embeddings.weight",
            &[self.vocab_size, h],
            Init::Normal,
        );
        s.push(
            "embeddings.position_embeddings.weight",
            &[self.max_position_embeddings, h],
            Init::Normal,
        );
        s.push(
            "embeddings.token_type_embeddings.weight",
            &[2, h],
            Init::Normal,
        );
        s.layer_norm("embeddings.LayerNorm", h);
        for l in 0..self.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            for proj in ["query", "key", "value"] {
                s.linear(&format!("{p}.attention.self.{proj}"), h, h);
            }
            s.linear(&format!("{p}.attention.output.dense"), h, h);
            s.layer_norm(&format!("{p}.attention.output.LayerNorm"), h);
            s.linear(&format!("{p}.intermediate.dense"), ffn, h);
            s.linear(&format!("{p}.output.dense"), h, ffn);
            s.layer_norm(&format!("{p}.output.LayerNorm"), h);
        }
        s.linear("pooler.dense", h, h);
        s.specs
    }

    /// Draws every tensor (little-endian f32 bytes), in [`Self::tensor_specs`] order.
    ///
    /// One pass per tensor, in place over the generator's bytes: a base-size checkpoint
    /// is 95 M values and tests run unoptimised code.
    fn generate(&self) -> Vec<DrawnTensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut out: Vec<DrawnTensor> = Vec::new();
        let mut norms: Vec<f32> = Vec::new();
        for spec in self.tensor_specs() {
            let n: usize = spec.shape.iter().product();
            let mut bytes = vec![0u8; n * 4];
            rng.fill_bytes(&mut bytes);
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                let u = (u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) >> 8) as f32
                    / 16_777_216.0;
                let value = spec.init.draw(u, i, &norms);
                chunk.copy_from_slice(&value.to_le_bytes());
            }
            if spec.name.ends_with("weight_v") || spec.name.ends_with("original1") {
                let k = spec.shape.last().copied().unwrap_or(1);
                norms = norms_along_last(&bytes, k);
            }
            out.push((spec.name, spec.shape, bytes));
        }
        out
    }
}

/// A drawn tensor: name, shape, little-endian f32 bytes.
type DrawnTensor = (String, Vec<usize>, Vec<u8>);

/// Norms of the slices of a row-major f32 tensor (little-endian bytes) along its last
/// axis of length `k`: what PyTorch's `weight_norm(dim=2)` divides by, for rank 3.
fn norms_along_last(bytes: &[u8], k: usize) -> Vec<f32> {
    let k = k.max(1);
    let mut sums = vec![0f64; k];
    for (i, c) in bytes.chunks_exact(4).enumerate() {
        let x = f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        sums[i % k] += x * x;
    }
    sums.into_iter().map(|s| s.sqrt() as f32).collect()
}

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy)]
enum Init {
    /// Linear weights and embeddings: std 0.02 (HF's `initializer_range`).
    Normal,
    /// Biases: std 0.02 (HF uses zeros; non-zero ones make a dropped bias show).
    Bias,
    /// Convolutions with this fan-in: std 1/√fan_in.
    Conv(usize),
    /// LayerNorm / GroupNorm scale: 1 ± 0.1.
    LayerNormWeight,
    /// LayerNorm / GroupNorm shift: std 0.05.
    LayerNormBias,
    /// [0, 1).
    Unit,
    /// Weight-norm gain `g_k = ‖v_k‖ · [0.5, 1.5)`: the folded weight keeps v's spread
    /// but differs from v, so a missing or wrong fold shows.
    WeightNormGain,
}

impl Init {
    /// The value for uniform `u` in [0, 1) at flat index `i` (`norms`: of the last `v`).
    fn draw(self, u: f32, i: usize, norms: &[f32]) -> f32 {
        // A zero-mean uniform with standard deviation `std`.
        let centred = |std: f32| (2.0 * u - 1.0) * std * 3f32.sqrt();
        match self {
            Init::Normal | Init::Bias => centred(0.02),
            Init::Conv(fan_in) => centred(1.0 / (fan_in.max(1) as f32).sqrt()),
            Init::LayerNormWeight => 1.0 + 0.2 * (u - 0.5),
            Init::LayerNormBias => centred(0.05),
            Init::Unit => u,
            Init::WeightNormGain => norms.get(i).copied().unwrap_or(1.0) * (0.5 + u),
        }
    }
}

#[derive(Debug, Clone)]
struct Spec {
    name: String,
    shape: Vec<usize>,
    init: Init,
}

struct Specs {
    prefix: &'static str,
    specs: Vec<Spec>,
}

impl Specs {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            specs: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, shape: &[usize], init: Init) {
        self.specs.push(Spec {
            name: format!("{}{name}", self.prefix),
            shape: shape.to_vec(),
            init,
        });
    }

    fn linear(&mut self, name: &str, out_features: usize, in_features: usize) {
        self.push(
            &format!("{name}.weight"),
            &[out_features, in_features],
            Init::Normal,
        );
        self.push(&format!("{name}.bias"), &[out_features], Init::Bias);
    }

    fn layer_norm(&mut self, name: &str, width: usize) {
        self.push(&format!("{name}.weight"), &[width], Init::LayerNormWeight);
        self.push(&format!("{name}.bias"), &[width], Init::LayerNormBias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(spec: &RandomCheckpoint) -> (Vec<u8>, String) {
        let tmp = tempfile::tempdir().expect("tempdir");
        spec.write(tmp.path()).expect("write");
        let weights = std::fs::read(tmp.path().join("model.safetensors")).expect("weights");
        let config = std::fs::read_to_string(tmp.path().join("config.json")).expect("config");
        (weights, config)
    }

    #[test]
    fn same_seed_same_bytes() {
        let spec = RandomCheckpoint::new(EncoderKind::Hubert, Preset::Tiny).with_seed(9);
        let (a, config_a) = written(&spec);
        let (b, config_b) = written(&spec);
        assert_eq!(a, b);
        assert_eq!(config_a, config_b);
        let (c, _) = written(&spec.clone().with_seed(10));
        assert_ne!(a, c);
    }

    #[test]
    fn base_sizes_are_the_real_ones() {
        let hubert = RandomCheckpoint::new(EncoderKind::Hubert, Preset::Base);
        let params = hubert.parameter_count();
        assert!((94_000_000..95_000_000).contains(&params), "{params}");
        // ntu-spml/distilhubert: 23.5 M.
        let distil = RandomCheckpoint::new(EncoderKind::Hubert, Preset::Distil);
        let params = distil.parameter_count();
        assert!((23_000_000..24_000_000).contains(&params), "{params}");
        assert_eq!(distil.config_json()["feat_proj_layer_norm"], false);
        assert_eq!(distil.config_json()["num_hidden_layers"], 2);
        // microsoft/wavlm-base-plus: 94.4 M, HuBERT-base's plus the relative position
        // bias (12 × (8 × 64 + 8 + 12) + 320 × 12).
        let wavlm = RandomCheckpoint::new(EncoderKind::WavLm, Preset::Base);
        assert_eq!(
            wavlm.parameter_count(),
            hubert.parameter_count() + 12 * (8 * 64 + 8 + 12) + 320 * 12
        );
        assert_eq!(wavlm.config_json()["model_type"], "wavlm");
        assert_eq!(wavlm.config_json()["num_buckets"], 320);
        let bert = RandomCheckpoint::new(EncoderKind::Bert, Preset::Base);
        let params = bert.parameter_count();
        // bert-base-uncased: 109.5 M with the pooler.
        assert!((109_000_000..110_000_000).contains(&params), "{params}");
    }

    #[test]
    fn weight_norm_names() {
        let spec = RandomCheckpoint::new(EncoderKind::Hubert, Preset::Tiny)
            .with_weight_norm_names(WeightNormNames::Parametrizations);
        let names: Vec<String> = spec.tensor_specs().into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"encoder.pos_conv_embed.conv.parametrizations.weight.original0".into())
        );
        assert!(!names.iter().any(|n| n.ends_with("weight_g")));
        let large =
            RandomCheckpoint::new(EncoderKind::Wav2Vec2, Preset::Tiny).with_stable_layer_norm(true);
        let names: Vec<String> = large.tensor_specs().into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"wav2vec2.feature_extractor.conv_layers.6.layer_norm.weight".into())
        );
        assert!(names.contains(&"wav2vec2.feature_extractor.conv_layers.6.conv.bias".into()));
    }
}
