//! Frozen encoders: an HF checkpoint folder becomes a pruned ONNX graph that tract runs on
//! the host and on the board alike.
//!
//! - [`checkpoint`]: reading `config.json` + `model.safetensors` or `pytorch_model.bin`
//!   (names normalised, f16/bf16 converted, weight norm folded).
//! - [`pytorch`] and [`pickle`]: `pytorch_model.bin` read natively (zip or legacy
//!   container, a pickle machine that runs no Python and refuses foreign globals).
//! - [`hubert`]: the HuBERT / wav2vec2 family (conv feature encoder, positional conv,
//!   post-LN "base" or pre-LN "large" transformer); DistilHuBERT is a 2-layer HuBERT.
//! - [`wavlm`]: WavLM, the same family with a gated relative position bias in attention.
//! - [`bert`]: BERT (embeddings, post-LN transformer).
//! - [`random`]: random-weight checkpoints in the real HF layout, for tests and benchmarks.
//! - [`cost`]: what a speech graph costs per second of audio in tract (fp32 and int8).
//! - [`fetch`]: the reference checkpoints from the Hugging Face Hub, resumable, checksummed.
//! - [`hidden_dump`]: every hidden state of one input, for checking an import by hand.
//! - [`error`]: what can go wrong, as one [`ImportError`].
//!
//! # The graph contract
//!
//! The runner (`emotion_core::encoder`) relies on exactly this:
//! - one input: `input_values`, f32 `[1, samples]` (speech: the normalised 16 kHz wave), or
//!   `input_ids`, i64 `[1, tokens]` (text: ids from the model's tokenizer);
//! - outputs `hidden_states.{i}`, f32 `[1, frames, hidden]` (`[1, tokens, hidden]` for
//!   text), one per selected layer `i`, sorted by `i`; `hidden_states.0` is the
//!   transformer's input and `hidden_states.i` the output of layer `i`, numbered as HF's
//!   `output_hidden_states=True` numbers them;
//! - the time/token axes are symbolic (`samples`, `frames`, `tokens`);
//! - the graph stops after the last selected layer: later layers are not in it;
//! - `metadata_props`: `emotion.encoder` (`hubert`|`wav2vec2`|`wavlm`|`bert`),
//!   `emotion.hidden_states` (`"5,6,7,8,9"`), `emotion.layers_in_graph`,
//!   `emotion.hidden_size`, `emotion.source` (`<folder name>@sha256:<weights file>`).

pub mod bert;
pub mod checkpoint;
pub mod cost;
pub mod error;
pub mod fetch;
pub mod hidden_dump;
pub mod hubert;
pub mod pickle;
pub mod pytorch;
pub mod random;
pub mod wavlm;

use std::ops::RangeInclusive;
use std::path::Path;

pub use checkpoint::{EncoderCheckpoint, HfConfig};
pub use error::ImportError;

use onnx_build::graph::{Activation, GraphBuilder};

/// The architecture families the importer builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncoderKind {
    /// HuBERT (`model_type: "hubert"`): speech.
    Hubert,
    /// wav2vec 2.0 (`model_type: "wav2vec2"`): speech, same graph family as HuBERT.
    Wav2Vec2,
    /// WavLM (`model_type: "wavlm"`): speech, HuBERT's graph family with a gated relative
    /// position bias in every attention block.
    WavLm,
    /// BERT (`model_type: "bert"`): text.
    Bert,
}

impl EncoderKind {
    /// The HF `model_type` (also the value of `emotion.encoder`).
    pub fn as_str(self) -> &'static str {
        match self {
            EncoderKind::Hubert => "hubert",
            EncoderKind::Wav2Vec2 => "wav2vec2",
            EncoderKind::WavLm => "wavlm",
            EncoderKind::Bert => "bert",
        }
    }

    /// The kind for an HF `model_type`, if supported.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "hubert" => Some(EncoderKind::Hubert),
            "wav2vec2" => Some(EncoderKind::Wav2Vec2),
            "wavlm" => Some(EncoderKind::WavLm),
            "bert" => Some(EncoderKind::Bert),
            _ => None,
        }
    }

    /// Whether the encoder takes audio (`input_values`) rather than token ids.
    pub fn is_speech(self) -> bool {
        !matches!(self, EncoderKind::Bert)
    }

    /// The name of the graph's one input.
    pub fn input_name(self) -> &'static str {
        if self.is_speech() {
            "input_values"
        } else {
            "input_ids"
        }
    }

    /// The hidden states kept when none are asked for, for a model deep enough:
    /// HuBERT/wav2vec2/WavLM 5..=9 (the layers of a 12-layer base model that carry the
    /// most paralinguistic information), BERT 1..=6. See
    /// [`EncoderKind::default_layers_for`] for shallower models.
    pub fn default_layers(self) -> RangeInclusive<usize> {
        if self.is_speech() { 5..=9 } else { 1..=6 }
    }

    /// The hidden states kept when none are asked for, for a model with
    /// `num_hidden_layers` layers: [`EncoderKind::default_layers`] when the model has
    /// them all, else every layer's output, `1..=num_hidden_layers` (a distilled model
    /// such as DistilHuBERT has 2; its layers are all "upper" layers), or `0..=0` for a
    /// model without layers.
    pub fn default_layers_for(self, num_hidden_layers: usize) -> RangeInclusive<usize> {
        let default = self.default_layers();
        if *default.end() <= num_hidden_layers {
            default
        } else if num_hidden_layers == 0 {
            0..=0
        } else {
            1..=num_hidden_layers
        }
    }
}

/// An imported encoder: the ONNX bytes and what they contain.
#[derive(Debug, Clone)]
pub struct ImportedEncoder {
    /// The architecture.
    pub kind: EncoderKind,
    /// The ONNX model (see the graph contract in the module docs).
    pub model_bytes: Vec<u8>,
    /// The hidden-state indices output, ascending (`hidden_states.{i}`).
    pub hidden_indices: Vec<usize>,
    /// Transformer layers in the graph (the last selected index).
    pub layers_in_graph: usize,
    /// Transformer layers in the checkpoint.
    pub num_hidden_layers: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// `<folder name>@sha256:<hex of the weights file>`.
    pub source: String,
    /// Set when no layers were asked for and the model is too shallow for
    /// [`EncoderKind::default_layers`]: which layers were kept instead, and why (for
    /// the user to read).
    pub layer_note: Option<String>,
}

impl ImportedEncoder {
    /// The graph's input name (`input_values` or `input_ids`).
    pub fn input_name(&self) -> &'static str {
        self.kind.input_name()
    }

    /// The graph's output names, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.hidden_indices
            .iter()
            .map(|i| hidden_state_name(*i))
            .collect()
    }

    /// Writes the ONNX model to `path` (creating its folder).
    pub fn write(&self, path: &Path) -> Result<(), ImportError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| ImportError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(path, &self.model_bytes).map_err(|source| ImportError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The name of graph output `i`: `hidden_states.{i}`.
pub fn hidden_state_name(i: usize) -> String {
    format!("hidden_states.{i}")
}

/// Imports the checkpoint in `checkpoint_dir` (an HF folder with `config.json` and
/// `model.safetensors` or `pytorch_model.bin`) as an ONNX graph that outputs hidden
/// states `layers` (default:
/// [`EncoderKind::default_layers_for`] the checkpoint's depth, noted in
/// [`ImportedEncoder::layer_note`] when it is not [`EncoderKind::default_layers`]) and
/// holds no layer after the last of them. Asked-for layers beyond the model's are an
/// error.
pub fn import(
    checkpoint_dir: &Path,
    layers: Option<RangeInclusive<usize>>,
) -> Result<ImportedEncoder, ImportError> {
    let checkpoint = EncoderCheckpoint::open(checkpoint_dir)?;
    let config_path = checkpoint.config_path().to_path_buf();
    let model_type =
        checkpoint
            .config()
            .model_type
            .clone()
            .ok_or_else(|| ImportError::InvalidConfig {
                path: config_path.clone(),
                field: "model_type".into(),
                reason: "missing".into(),
            })?;
    let kind = EncoderKind::from_model_type(&model_type).ok_or_else(|| {
        ImportError::UnsupportedModelType {
            path: config_path.clone(),
            model_type: model_type.clone(),
        }
    })?;

    let folder = checkpoint_dir
        .canonicalize()
        .unwrap_or_else(|_| checkpoint_dir.to_path_buf());
    let folder = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let source = format!("{folder}@sha256:{}", checkpoint.sha256());
    let mut layer_note = None;
    let mut choose = |available: usize| match &layers {
        Some(requested) => requested.clone(),
        None => {
            let chosen = kind.default_layers_for(available);
            let default = kind.default_layers();
            if chosen != default {
                layer_note = Some(format!(
                    "no layers asked for: the default hidden states {}..={} need {} layers, \
                     but this {} checkpoint has {available}; keeping hidden states {}..={} \
                     (choose others with --layers)",
                    default.start(),
                    default.end(),
                    default.end(),
                    kind.as_str(),
                    chosen.start(),
                    chosen.end()
                ));
            }
            chosen
        }
    };

    let (mut graph, num_hidden_layers, hidden_size, hidden_indices) = match kind {
        EncoderKind::Hubert | EncoderKind::Wav2Vec2 | EncoderKind::WavLm => {
            let config = hubert::SpeechConfig::from_checkpoint(&checkpoint, kind)?;
            let requested = choose(config.num_hidden_layers);
            let indices = select_layers(&requested, config.num_hidden_layers, &config_path)?;
            let graph = if kind == EncoderKind::WavLm {
                wavlm::build_graph(&checkpoint, &config, &indices)?
            } else {
                hubert::build_graph(&checkpoint, &config, &indices)?
            };
            (graph, config.num_hidden_layers, config.hidden_size, indices)
        }
        EncoderKind::Bert => {
            let config = bert::TextConfig::from_checkpoint(&checkpoint)?;
            let requested = choose(config.num_hidden_layers);
            let indices = select_layers(&requested, config.num_hidden_layers, &config_path)?;
            let graph = bert::build_graph(&checkpoint, &config, &indices)?;
            (graph, config.num_hidden_layers, config.hidden_size, indices)
        }
    };
    let layers_in_graph = hidden_indices.last().copied().unwrap_or(0);
    let list = hidden_indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    graph.metadata("emotion.encoder", kind.as_str());
    graph.metadata("emotion.hidden_states", &list);
    graph.metadata("emotion.layers_in_graph", &layers_in_graph.to_string());
    graph.metadata("emotion.hidden_size", &hidden_size.to_string());
    graph.metadata("emotion.source", &source);
    graph.set_doc(&format!(
        "{} encoder imported from {source}: hidden states {list} of {num_hidden_layers} layers",
        kind.as_str()
    ));
    Ok(ImportedEncoder {
        kind,
        model_bytes: graph.into_bytes(),
        hidden_indices,
        layers_in_graph,
        num_hidden_layers,
        hidden_size,
        source,
        layer_note,
    })
}

/// The indices of `requested`, checked against a model with `available` layers (hidden
/// states `0..=available`).
fn select_layers(
    requested: &RangeInclusive<usize>,
    available: usize,
    config_path: &Path,
) -> Result<Vec<usize>, ImportError> {
    if requested.is_empty() {
        return Err(ImportError::EmptyLayerRange(requested.clone()));
    }
    if *requested.end() > available {
        return Err(ImportError::LayersOutOfRange {
            path: config_path.to_path_buf(),
            requested: requested.clone(),
            available,
        });
    }
    Ok(requested.clone().collect())
}

/// The activation an HF `ACT2FN` name stands for.
pub fn parse_activation(
    value: &str,
    field: &str,
    config_path: &Path,
) -> Result<Activation, ImportError> {
    match value {
        "gelu" => Ok(Activation::GeluErf),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
        "relu" => Ok(Activation::Relu),
        "silu" | "swish" => Ok(Activation::Silu),
        other => Err(ImportError::UnsupportedActivation {
            path: config_path.to_path_buf(),
            field: field.to_string(),
            value: other.to_string(),
        }),
    }
}

/// A required, positive size field of the config, or HF's default when absent.
pub(crate) fn size_field(
    value: Option<usize>,
    default: usize,
    field: &str,
    config_path: &Path,
) -> Result<usize, ImportError> {
    let v = value.unwrap_or(default);
    if v == 0 {
        return Err(ImportError::InvalidConfig {
            path: config_path.to_path_buf(),
            field: field.to_string(),
            reason: "must be positive".into(),
        });
    }
    Ok(v)
}

/// Checks that `hidden_size` splits into `heads` heads.
pub(crate) fn check_heads(
    hidden_size: usize,
    heads: usize,
    config_path: &Path,
) -> Result<(), ImportError> {
    if !hidden_size.is_multiple_of(heads) {
        return Err(ImportError::InvalidConfig {
            path: config_path.to_path_buf(),
            field: "num_attention_heads".into(),
            reason: format!("{heads} heads do not divide hidden_size {hidden_size}"),
        });
    }
    Ok(())
}

/// Adds graph output `hidden_states.{i}` (f32 `[1, axis, hidden]`) for tensor `h`.
pub(crate) fn emit_hidden_state(
    graph: &mut GraphBuilder,
    i: usize,
    h: &str,
    axis: &str,
    hidden_size: usize,
) -> Result<(), ImportError> {
    use onnx_build::graph::{Dim, ElemType};
    graph.output(
        &hidden_state_name(i),
        h,
        ElemType::F32,
        &[
            Dim::Fixed(1),
            Dim::sym(axis),
            Dim::Fixed(hidden_size as i64),
        ],
    )?;
    Ok(())
}

/// LayerNorm `{name}.weight`/`{name}.bias` (width `width`) over the last axis of `x`.
pub(crate) fn layer_norm(
    checkpoint: &EncoderCheckpoint,
    graph: &mut GraphBuilder,
    name: &str,
    x: &str,
    width: usize,
    eps: f32,
) -> Result<String, ImportError> {
    let gamma = checkpoint.tensor(&format!("{name}.weight"), &[width])?;
    let beta = checkpoint.tensor(&format!("{name}.bias"), &[width])?;
    Ok(graph.layer_norm(name, x, gamma, beta, eps)?)
}
