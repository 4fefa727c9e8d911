//! Reading a Hugging Face checkpoint folder: `config.json` and its weights, either
//! `model.safetensors` or PyTorch's `pytorch_model.bin` (read natively by [`super::pytorch`];
//! safetensors is preferred when both are there). Every reader of a checkpoint (import,
//! probe, demo) comes through [`EncoderCheckpoint::open`].
//!
//! Tensor names are normalised so one importer reads every export of an architecture:
//! a leading `hubert.`, `wav2vec2.`, `wavlm.`, `bert.` or `model.` is dropped (task-head checkpoints
//! nest the encoder under one), and old BERT names `LayerNorm.gamma`/`LayerNorm.beta`
//! become `LayerNorm.weight`/`LayerNorm.bias`. Weights are read as f32 (f16, bf16 and f64
//! are converted), each checked against the shape the config implies.
//!
//! The positional convolution of HuBERT/wav2vec2 is stored weight-normed, either as
//! `weight_g`/`weight_v` (older exports) or `parametrizations.weight.original0/1`;
//! [`EncoderCheckpoint::weight_normed`] folds either into the effective weight.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::ImportError;
use super::pickle::StorageDtype;
use super::pytorch::{self, StoredTensor, contiguous_strides};
use onnx_build::graph::{FloatArray, LinearWeights};

/// The fields of an HF `config.json` that the importers read (all optional here: each
/// architecture fills in HF's own defaults).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HfConfig {
    /// `hubert`, `wav2vec2`, `bert`, …
    pub model_type: Option<String>,
    /// Width of the transformer.
    pub hidden_size: Option<usize>,
    /// Number of transformer layers.
    pub num_hidden_layers: Option<usize>,
    /// Attention heads per layer.
    pub num_attention_heads: Option<usize>,
    /// Width of the feed-forward block.
    pub intermediate_size: Option<usize>,
    /// Epsilon of the transformer's layer norms.
    pub layer_norm_eps: Option<f64>,
    /// Activation of the feed-forward block.
    pub hidden_act: Option<String>,
    /// Speech: output channels of each feature-encoder convolution.
    pub conv_dim: Option<Vec<usize>>,
    /// Speech: kernel of each feature-encoder convolution.
    pub conv_kernel: Option<Vec<usize>>,
    /// Speech: stride of each feature-encoder convolution.
    pub conv_stride: Option<Vec<usize>>,
    /// Speech: whether the feature-encoder convolutions have a bias.
    pub conv_bias: Option<bool>,
    /// Speech: `group` (one GroupNorm after the first conv) or `layer` (LayerNorm after each).
    pub feat_extract_norm: Option<String>,
    /// Speech: activation of the feature encoder and the positional convolution.
    pub feat_extract_activation: Option<String>,
    /// HuBERT: layer norm before the feature projection (wav2vec2 always has one).
    pub feat_proj_layer_norm: Option<bool>,
    /// Speech: pre-LN ("large", stable layer norm) instead of post-LN transformer.
    pub do_stable_layer_norm: Option<bool>,
    /// Speech: kernel of the positional convolution.
    pub num_conv_pos_embeddings: Option<usize>,
    /// Speech: groups of the positional convolution.
    pub num_conv_pos_embedding_groups: Option<usize>,
    /// Speech: batch norm instead of weight norm in the positional convolution.
    pub conv_pos_batch_norm: Option<bool>,
    /// Text: vocabulary size.
    pub vocab_size: Option<usize>,
    /// Text: rows of the position table.
    pub max_position_embeddings: Option<usize>,
    /// Text: rows of the token-type table.
    pub type_vocab_size: Option<usize>,
    /// Text: `absolute` is the only kind built.
    pub position_embedding_type: Option<String>,
}

/// A tensor's place in the weights file, under its normalised name.
#[derive(Debug, Clone)]
struct TensorEntry {
    /// Where its elements are.
    stored: StoredTensor,
    /// Its element type, when it is one the loader knows.
    dtype: Option<StorageDtype>,
    /// The element type's name, for messages.
    dtype_name: String,
}

/// The weights files a checkpoint folder may hold, in order of preference.
pub const WEIGHTS_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The weights file of `dir`: `model.safetensors` if present, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Option<PathBuf> {
    WEIGHTS_FILES
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// An opened checkpoint: its parsed config and its (not yet converted) weights.
#[derive(Debug)]
pub struct EncoderCheckpoint {
    dir: PathBuf,
    config_path: PathBuf,
    weights_path: PathBuf,
    config: HfConfig,
    /// Buffer 0 is the weights file; a `.bin` may add storages it had to decompress.
    buffers: Vec<Vec<u8>>,
    index: BTreeMap<String, TensorEntry>,
    sha256: String,
}

/// The normalised form of a stored tensor name (see the module docs).
pub fn normalise_name(raw: &str) -> String {
    let mut name = raw;
    for prefix in ["hubert.", "wav2vec2.", "wavlm.", "bert.", "model."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest;
            break;
        }
    }
    if let Some(stem) = name.strip_suffix("LayerNorm.gamma") {
        return format!("{stem}LayerNorm.weight");
    }
    if let Some(stem) = name.strip_suffix("LayerNorm.beta") {
        return format!("{stem}LayerNorm.bias");
    }
    name.to_string()
}

impl HfConfig {
    /// Reads and parses `dir/config.json` (without touching the weights).
    pub fn read(dir: &Path) -> Result<Self, ImportError> {
        let config_path = dir.join("config.json");
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|source| ImportError::Io {
                path: config_path.clone(),
                source,
            })?;
        serde_json::from_str(&config_text).map_err(|source| ImportError::ConfigParse {
            path: config_path,
            source,
        })
    }
}

impl EncoderCheckpoint {
    /// Opens `dir`: parses `config.json`, reads the weights (`model.safetensors`, else
    /// `pytorch_model.bin`) and indexes their tensors.
    pub fn open(dir: &Path) -> Result<Self, ImportError> {
        if !dir.is_dir() {
            return Err(ImportError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "checkpoint folder not found",
                ),
            });
        }
        let config = HfConfig::read(dir)?;
        let weights_path = weights_file(dir).ok_or_else(|| ImportError::MissingWeights {
            dir: dir.to_path_buf(),
        })?;
        let bytes = std::fs::read(&weights_path).map_err(|source| ImportError::Io {
            path: weights_path.clone(),
            source,
        })?;
        let sha256 = hex_sha256(&bytes);
        let (buffers, tensors) = if weights_path.extension().is_some_and(|e| e == "bin") {
            let weights = pytorch::read(bytes).map_err(|e| ImportError::Pytorch {
                path: weights_path.clone(),
                reason: e.to_string(),
            })?;
            let tensors = weights
                .tensors
                .into_iter()
                .map(|stored| TensorEntry {
                    dtype: Some(stored.dtype),
                    dtype_name: stored.dtype.name().to_string(),
                    stored,
                })
                .collect();
            (weights.buffers, tensors)
        } else {
            let tensors =
                safetensors_entries(&bytes).map_err(|reason| ImportError::Safetensors {
                    path: weights_path.clone(),
                    reason,
                })?;
            (vec![bytes], tensors)
        };
        let mut index: BTreeMap<String, TensorEntry> = BTreeMap::new();
        for entry in tensors {
            // An unprefixed name wins over a prefixed duplicate; otherwise first come.
            let key = normalise_name(&entry.stored.name);
            let replace = match index.get(&key) {
                None => true,
                Some(existing) => existing.stored.name != key && entry.stored.name == key,
            };
            if replace {
                index.insert(key, entry);
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config_path: dir.join("config.json"),
            weights_path,
            config,
            buffers,
            index,
            sha256,
        })
    }

    /// The checkpoint folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `config.json`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Its weights file (`model.safetensors` or `pytorch_model.bin`).
    pub fn weights_path(&self) -> &Path {
        &self.weights_path
    }

    /// The parsed config.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// Lower-case hex SHA-256 of the weights file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The normalised tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Whether a tensor (normalised name) is stored.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The stored shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.index.get(name).map(|e| e.stored.shape.as_slice())
    }

    /// A tensor as f32, checked to have shape `expected`.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<FloatArray, ImportError> {
        let entry = self
            .index
            .get(name)
            .ok_or_else(|| ImportError::MissingTensor {
                path: self.weights_path.clone(),
                name: name.to_string(),
            })?;
        if entry.stored.shape != expected {
            return Err(ImportError::TensorShape {
                path: self.weights_path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: entry.stored.shape.clone(),
            });
        }
        let unsupported = || ImportError::UnsupportedDtype {
            path: self.weights_path.clone(),
            name: name.to_string(),
            dtype: entry.dtype_name.clone(),
        };
        let dtype = entry.dtype.ok_or_else(unsupported)?;
        let convert: fn(&[u8]) -> f32 = match dtype {
            StorageDtype::F32 => |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            StorageDtype::F16 => |c| half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
            StorageDtype::BF16 => |c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
            StorageDtype::F64 => |c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            },
            _ => return Err(unsupported()),
        };
        let outside = || ImportError::Safetensors {
            path: self.weights_path.clone(),
            reason: format!("tensor `{}` lies outside the file", entry.stored.name),
        };
        let buffer = self.buffers.get(entry.stored.buffer).ok_or_else(outside)?;
        let values = entry
            .stored
            .element_bytes(buffer)
            .ok_or_else(outside)?
            .into_iter()
            .map(convert)
            .collect();
        FloatArray::new(expected.to_vec(), values).map_err(|e| ImportError::Safetensors {
            path: self.weights_path.clone(),
            reason: format!("tensor `{}`: {e}", entry.stored.name),
        })
    }

    /// A tensor if it is stored (checked against `expected`), `None` if it is not.
    pub fn optional_tensor(
        &self,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<FloatArray>, ImportError> {
        if self.contains(name) {
            self.tensor(name, expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The weights of a `Linear` layer: `{prefix}.weight [out, in]`, `{prefix}.bias [out]`.
    pub fn linear_weights(
        &self,
        prefix: &str,
        out_features: usize,
        in_features: usize,
    ) -> Result<LinearWeights, ImportError> {
        Ok(LinearWeights {
            weight: self.tensor(&format!("{prefix}.weight"), &[out_features, in_features])?,
            bias: Some(self.tensor(&format!("{prefix}.bias"), &[out_features])?),
        })
    }

    /// The effective weight of a weight-normed layer `module` (e.g.
    /// `encoder.pos_conv_embed.conv`) with weight shape `expected`, normed along `dim`
    /// (PyTorch `weight_norm(dim=…)`): `g · v / ‖v‖`, the norm taken over every axis but
    /// `dim`. Reads `weight_g`/`weight_v`, else `parametrizations.weight.original0/1`,
    /// else a plain (already folded) `weight`.
    pub fn weight_normed(
        &self,
        module: &str,
        expected: &[usize],
        dim: usize,
    ) -> Result<FloatArray, ImportError> {
        let legacy = (format!("{module}.weight_g"), format!("{module}.weight_v"));
        let parametrized = (
            format!("{module}.parametrizations.weight.original0"),
            format!("{module}.parametrizations.weight.original1"),
        );
        let plain = format!("{module}.weight");
        let (g_name, v_name) = if self.contains(&legacy.0) || self.contains(&legacy.1) {
            legacy
        } else if self.contains(&parametrized.0) || self.contains(&parametrized.1) {
            parametrized
        } else if self.contains(&plain) {
            return self.tensor(&plain, expected);
        } else {
            return Err(ImportError::MissingTensor {
                path: self.weights_path.clone(),
                name: legacy.0,
            });
        };
        let g_shape: Vec<usize> = expected
            .iter()
            .enumerate()
            .map(|(i, &d)| if i == dim { d } else { 1 })
            .collect();
        let g = self.tensor(&g_name, &g_shape)?;
        let v = self.tensor(&v_name, expected)?;
        fold_weight_norm(&g, &v, dim).ok_or_else(|| ImportError::TensorShape {
            path: self.weights_path.clone(),
            name: v_name,
            expected: expected.to_vec(),
            found: v.shape().to_vec(),
        })
    }
}

/// Lower-case hex SHA-256 of `bytes`.
fn hex_sha256(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for b in Sha256::digest(bytes).iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The tensors of a safetensors file, as contiguous views of its bytes.
fn safetensors_entries(bytes: &[u8]) -> Result<Vec<TensorEntry>, String> {
    let (header_len, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    // read_metadata checked that every tensor lies inside the buffer.
    let data_start = header_len + 8;
    let mut raw: Vec<_> = metadata.tensors().into_iter().collect();
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(raw
        .into_iter()
        .map(|(name, info)| {
            let dtype = match info.dtype {
                Dtype::F32 => Some(StorageDtype::F32),
                Dtype::F16 => Some(StorageDtype::F16),
                Dtype::BF16 => Some(StorageDtype::BF16),
                Dtype::F64 => Some(StorageDtype::F64),
                _ => None,
            };
            TensorEntry {
                stored: StoredTensor {
                    name,
                    dtype: dtype.unwrap_or(StorageDtype::U8),
                    strides: contiguous_strides(&info.shape),
                    shape: info.shape.clone(),
                    buffer: 0,
                    byte_offset: data_start + info.data_offsets.0,
                },
                dtype,
                dtype_name: info.dtype.to_string(),
            }
        })
        .collect())
}

/// `g · v / ‖v‖` with the norm over every axis of `v` except `dim` (in f64); `None` if the
/// shapes do not fit. A zero slice of `v` gives a zero weight, not NaN.
pub fn fold_weight_norm(g: &FloatArray, v: &FloatArray, dim: usize) -> Option<FloatArray> {
    let shape = v.shape();
    let along = *shape.get(dim)?;
    if g.data().len() != along {
        return None;
    }
    let inner: usize = shape.get(dim + 1..)?.iter().product();
    let mut sums = vec![0f64; along];
    for (i, x) in v.data().iter().enumerate() {
        let k = (i / inner.max(1)) % along.max(1);
        sums[k] += f64::from(*x) * f64::from(*x);
    }
    let scales: Vec<f64> = sums
        .iter()
        .zip(g.data())
        .map(|(s, g)| {
            let norm = s.sqrt();
            if norm > 0.0 {
                f64::from(*g) / norm
            } else {
                0.0
            }
        })
        .collect();
    let data = v
        .data()
        .iter()
        .enumerate()
        .map(|(i, x)| (f64::from(*x) * scales[(i / inner.max(1)) % along.max(1)]) as f32)
        .collect();
    FloatArray::new(shape.to_vec(), data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalise_name("hubert.encoder.x"), "encoder.x");
        assert_eq!(normalise_name("wav2vec2.encoder.x"), "encoder.x");
        assert_eq!(
            normalise_name("bert.embeddings.LayerNorm.gamma"),
            "embeddings.LayerNorm.weight"
        );
        assert_eq!(
            normalise_name("encoder.layer.0.output.LayerNorm.beta"),
            "encoder.layer.0.output.LayerNorm.bias"
        );
        assert_eq!(normalise_name("feature_extractor.x"), "feature_extractor.x");
        // Only one prefix is dropped.
        assert_eq!(normalise_name("model.bert.x"), "bert.x");
    }

    #[test]
    fn weight_norm_over_all_axes_but_two() {
        // v: [2, 1, 2]; norms along k: k=0 → sqrt(3²+4²)=5, k=1 → sqrt(0+2²)=2
        let v = FloatArray::new(vec![2, 1, 2], vec![3.0, 0.0, 4.0, 2.0]).expect("shape");
        let g = FloatArray::new(vec![1, 1, 2], vec![10.0, 1.0]).expect("shape");
        let w = fold_weight_norm(&g, &v, 2).expect("fits");
        assert_eq!(w.data(), &[6.0, 0.0, 8.0, 1.0]);
    }

    #[test]
    fn half_precision_weights_are_converted() {
        use safetensors::tensor::TensorView;
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("config.json"), r#"{"model_type": "bert"}"#)
            .expect("config");
        let values = [1.5f32, -0.25, 3.0];
        let f16: Vec<u8> = values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let bf16: Vec<u8> = values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        let ids: Vec<u8> = [1i64, 2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![
            (
                "bert.a".to_string(),
                TensorView::new(Dtype::F16, vec![3], &f16).expect("view"),
            ),
            (
                "b".to_string(),
                TensorView::new(Dtype::BF16, vec![1, 3], &bf16).expect("view"),
            ),
            (
                "ids".to_string(),
                TensorView::new(Dtype::I64, vec![3], &ids).expect("view"),
            ),
        ];
        safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors"))
            .expect("write");
        let checkpoint = EncoderCheckpoint::open(tmp.path()).expect("open");
        assert_eq!(checkpoint.sha256().len(), 64);
        assert_eq!(checkpoint.tensor("a", &[3]).expect("a").data(), &values);
        assert_eq!(checkpoint.tensor("b", &[1, 3]).expect("b").data(), &values);
        assert!(matches!(
            checkpoint.tensor("b", &[3]),
            Err(ImportError::TensorShape { .. })
        ));
        assert!(matches!(
            checkpoint.tensor("ids", &[3]),
            Err(ImportError::UnsupportedDtype { .. })
        ));
        assert!(matches!(
            checkpoint.tensor("c", &[3]),
            Err(ImportError::MissingTensor { .. })
        ));
    }
}
