//! What can go wrong turning an HF checkpoint into an encoder graph: every error names the
//! file, and the tensor or config field, that a user has to look at.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use onnx_build::graph::GraphError;

/// An encoder import (or random checkpoint write) failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON, or a field has the wrong JSON type.
    #[error("{path}: not a valid HF config: {source}")]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// What serde found.
        source: serde_json::Error,
    },
    /// A config field is missing or holds a value that cannot work.
    #[error("{path}: config field `{field}`: {reason}")]
    InvalidConfig {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `model_type` names an architecture this importer does not build.
    #[error(
        "{path}: model_type `{model_type}` is not supported (supported: hubert, wav2vec2, wavlm, bert)"
    )]
    UnsupportedModelType {
        /// The config file.
        path: PathBuf,
        /// The value found.
        model_type: String,
    },
    /// An activation function this importer does not build.
    #[error(
        "{path}: config field `{field}` = `{value}` is not a supported activation \
         (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish)"
    )]
    UnsupportedActivation {
        /// The config file.
        path: PathBuf,
        /// The field (`hidden_act`, `feat_extract_activation`).
        field: String,
        /// The value found.
        value: String,
    },
    /// A config option this importer does not build (a variant of the architecture).
    #[error("{path}: config field `{field}` = {value} is not supported: {reason}")]
    UnsupportedConfig {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: String,
        /// The value found.
        value: String,
        /// Why, and what would work.
        reason: String,
    },
    /// The folder has no `model.safetensors` and no `pytorch_model.bin` either.
    #[error(
        "{dir}: no weights file: put the model's model.safetensors or pytorch_model.bin there \
         (single-file checkpoints; `host-trainer fetch` downloads them)"
    )]
    MissingWeights {
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// `pytorch_model.bin` is not a readable PyTorch checkpoint, or asks for more than
    /// tensors (a foreign pickle global).
    #[error("{path}: {reason}")]
    Pytorch {
        /// The weights file.
        path: PathBuf,
        /// What is wrong, naming the tensor or the global where there is one.
        reason: String,
    },
    /// `model.safetensors` is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What the safetensors reader reported.
        reason: String,
    },
    /// A tensor the architecture needs is not in the weights file.
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor, by its normalised name (no `hubert.`/`bert.` prefix).
        name: String,
    },
    /// A tensor does not have the shape the config implies.
    #[error("{path}: tensor `{name}` has shape {found:?}, but the config implies {expected:?}")]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape stored.
        found: Vec<usize>,
    },
    /// A tensor is stored with an element type other than f32, f16, bf16 or f64.
    #[error("{path}: tensor `{name}` has dtype {dtype}; only F32, F16, BF16 and F64 are read")]
    UnsupportedDtype {
        /// The weights file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype stored.
        dtype: String,
    },
    /// The requested hidden states are not all in the model.
    #[error(
        "{path}: hidden states {}..={} were requested, but the model has {available} layers \
         (hidden states 0..={available})",
        requested.start(), requested.end()
    )]
    LayersOutOfRange {
        /// The config file.
        path: PathBuf,
        /// The range asked for.
        requested: RangeInclusive<usize>,
        /// `num_hidden_layers` of the checkpoint.
        available: usize,
    },
    /// The requested range of hidden states is empty (`start > end`).
    #[error("hidden states {}..={} is an empty range", .0.start(), .0.end())]
    EmptyLayerRange(RangeInclusive<usize>),
    /// The graph could not be built from the weights (a shape the checks above missed).
    #[error("building the ONNX graph: {0}")]
    Graph(#[from] GraphError),
}
