//! Runs an exported encoder graph (pruned HuBERT for speech, BERT for text) with tract,
//! on the host for feature extraction and on the board for inference: the same graph
//! and the same code on both sides.
//!
//! The graph contract (written by `host-trainer encoders import`): exactly one input,
//! `input_values` (f32 `[1, samples]`, speech) or `input_ids` (i64 `[1, tokens]`, text),
//! and outputs `hidden_states.{i}` (f32 `[1, frames, hidden]`), `i` in HF numbering
//! (0 = embeddings / projected conv features).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::onnx_model::OnnxModel;

/// Which kind of input an encoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    /// 16 kHz normalised samples, input `input_values`.
    Speech,
    /// Token ids, input `input_ids`.
    Text,
}

/// The input of one run.
#[derive(Debug, Clone, Copy)]
pub enum EncoderInput<'a> {
    /// Front-end output: mono, 16 kHz, normalised.
    Audio(&'a [f32]),
    /// Token ids from [`crate::tokenizer::TranscriptTokenizer`].
    TokenIds(&'a [i64]),
}

/// One hidden state of one input: `frames × dim`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenState {
    /// HF layer number (0 = embeddings).
    pub index: usize,
    /// Frames (speech, 50 per second) or tokens (text).
    pub frames: usize,
    /// Hidden size.
    pub dim: usize,
    /// `frames * dim` values.
    pub data: Vec<f32>,
}

/// An encoder graph that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// The file cannot be read.
    #[error("cannot read encoder graph {path}: {source}")]
    Io {
        /// The graph file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not an ONNX model tract can load.
    #[error("encoder graph {name} does not load: {detail}")]
    Load {
        /// The graph file or name.
        name: String,
        /// tract's explanation.
        detail: String,
    },
    /// An ONNX model, but not an encoder graph of ours.
    #[error("encoder graph {name}: {problem} (make graphs with `host-trainer encoders import`)")]
    Contract {
        /// The graph file or name.
        name: String,
        /// What does not match.
        problem: String,
    },
    /// The input does not fit this encoder.
    #[error("encoder {name}: {problem}")]
    Input {
        /// The graph file or name.
        name: String,
        /// What is wrong with the input.
        problem: String,
    },
    /// tract failed while running.
    #[error("encoder {name} failed: {detail}")]
    Run {
        /// The graph file or name.
        name: String,
        /// tract's explanation.
        detail: String,
    },
}

/// A loaded, optimised encoder graph, ready to run (cheap to clone and share between
/// threads).
#[derive(Debug, Clone)]
pub struct EncoderGraph {
    name: String,
    modality: Modality,
    hidden_indices: Vec<usize>,
    metadata: Vec<(String, String)>,
    plan: Arc<TypedSimplePlan>,
}

impl EncoderGraph {
    /// Loads and optimises the graph in `path`, to run on one thread. The file is
    /// decoded as it is read (its bytes are never held whole).
    pub fn load(path: &Path) -> Result<Self, EncoderError> {
        Self::load_with_threads(path, 1)
    }

    /// As [`EncoderGraph::load`], with tract's matrix products spread over `threads`
    /// threads (1 = the calling thread only).
    pub fn load_with_threads(path: &Path, threads: usize) -> Result<Self, EncoderError> {
        use crate::onnx_model::{DecodeFailure, decode_model};
        let io = |source: std::io::Error| EncoderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let name = path.display().to_string();
        let proto = decode_model(file, len).map_err(|failure| match failure {
            DecodeFailure::Io(source) => io(source),
            DecodeFailure::Decode(detail) => EncoderError::Load {
                name: name.clone(),
                detail,
            },
        })?;
        Self::from_proto(proto, &name, threads)
    }

    /// Loads and optimises a graph held in memory, to run on one thread; `name` is
    /// used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, EncoderError> {
        Self::from_bytes_with_threads(bytes, name, 1)
    }

    /// As [`EncoderGraph::from_bytes`], with tract's matrix products spread over
    /// `threads` threads (1 = the calling thread only).
    pub fn from_bytes_with_threads(
        bytes: &[u8],
        name: &str,
        threads: usize,
    ) -> Result<Self, EncoderError> {
        let proto =
            crate::onnx_model::decode_model_bytes(bytes).map_err(|detail| EncoderError::Load {
                name: name.to_string(),
                detail,
            })?;
        Self::from_proto(proto, name, threads)
    }

    /// As [`EncoderGraph::from_bytes_with_threads`], from a decoded graph, which is
    /// consumed (its weights are freed as tract's tensors are made).
    pub(crate) fn from_proto(
        model: OnnxModel,
        name: &str,
        threads: usize,
    ) -> Result<Self, EncoderError> {
        let load_error = |detail: String| EncoderError::Load {
            name: name.to_string(),
            detail,
        };
        let contract = |problem: String| EncoderError::Contract {
            name: name.to_string(),
            problem,
        };
        let graph = model
            .proto
            .graph
            .as_ref()
            .ok_or_else(|| contract("the model has no graph".into()))?;
        let inputs: Vec<&str> = graph
            .input
            .iter()
            .map(|i| i.name.as_str())
            .filter(|n| !model.is_weight(n))
            .collect();
        let modality = match inputs[..] {
            ["input_values"] => Modality::Speech,
            ["input_ids"] => Modality::Text,
            _ => {
                return Err(contract(format!(
                    "expected one input named input_values or input_ids, found {inputs:?}"
                )));
            }
        };
        let mut hidden_indices = Vec::new();
        for output in &graph.output {
            let index = output
                .name
                .strip_prefix("hidden_states.")
                .and_then(|i| i.parse::<usize>().ok())
                .ok_or_else(|| {
                    contract(format!(
                        "output '{}' is not named hidden_states.<layer>",
                        output.name
                    ))
                })?;
            hidden_indices.push(index);
        }
        if hidden_indices.is_empty() || !hidden_indices.is_sorted() {
            return Err(contract(format!(
                "outputs must be hidden states in increasing layer order, found {hidden_indices:?}"
            )));
        }
        let metadata = model
            .proto
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        let assertion = (modality == Modality::Speech).then_some(SPEECH_MIN_SAMPLES_ASSERTION);
        let plan =
            crate::graph_load::runnable_plan(model, threads, assertion).map_err(load_error)?;
        Ok(Self {
            name: name.to_string(),
            modality,
            hidden_indices,
            metadata,
            plan,
        })
    }

    /// Speech or text.
    pub fn modality(&self) -> Modality {
        self.modality
    }

    /// HF layer numbers of the outputs, increasing.
    pub fn hidden_indices(&self) -> &[usize] {
        &self.hidden_indices
    }

    /// A `metadata_props` value of the graph (e.g. `emotion.encoder`).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Multiply-accumulates of one run on an input of `length` (samples or tokens),
    /// counted from the optimised graph (tract's own cost of every node: matrix
    /// products and convolutions, int8 or float); `None` when a node's cost cannot be
    /// evaluated at that length.
    pub fn multiply_accumulates(&self, length: usize) -> Option<f64> {
        use tract_onnx::tract_core::ops::Cost;
        let model = self.plan.model();
        let symbol = match self.modality {
            Modality::Speech => "samples",
            Modality::Text => "tokens",
        };
        let mut values = SymbolValues::default();
        if let Some(s) = model.symbols.get(symbol) {
            values = values.with(&s, length as i64);
        }
        let mut total = 0f64;
        for node in model.nodes() {
            let facts = model.node_input_facts(node.id).ok()?;
            for (cost, count) in node.op.cost(&facts).ok()? {
                if matches!(cost, Cost::FMA(_)) {
                    total += count.eval_to_i64(&values).ok()? as f64;
                }
            }
        }
        Some(total)
    }

    /// Runs the encoder on one input and returns every hidden state it exposes.
    pub fn run(&self, input: EncoderInput<'_>) -> Result<Vec<HiddenState>, EncoderError> {
        let input_error = |problem: String| EncoderError::Input {
            name: self.name.clone(),
            problem,
        };
        let tensor = match (self.modality, input) {
            (Modality::Speech, EncoderInput::Audio(samples)) => {
                if samples.len() < SPEECH_MIN_SAMPLES {
                    return Err(input_error(format!(
                        "{} audio samples: at least {SPEECH_MIN_SAMPLES} (25 ms at 16 kHz) are needed for a single frame",
                        samples.len()
                    )));
                }
                Tensor::from_shape(&[1, samples.len()], samples)
            }
            (Modality::Text, EncoderInput::TokenIds(ids)) => {
                if ids.is_empty() {
                    return Err(input_error("no token ids".into()));
                }
                Tensor::from_shape(&[1, ids.len()], ids)
            }
            (modality, _) => {
                return Err(input_error(format!(
                    "a {modality:?} encoder cannot read this input"
                )));
            }
        }
        .map_err(|e| input_error(format!("{e:#}")))?;
        let run_error = |e: TractError| EncoderError::Run {
            name: self.name.clone(),
            detail: format!("{e:#}"),
        };
        let outputs = self
            .plan
            .run(tvec!(tensor.into_tvalue()))
            .map_err(run_error)?;
        outputs
            .iter()
            .zip(&self.hidden_indices)
            .map(|(value, &index)| {
                let view = value.to_plain_array_view::<f32>().map_err(run_error)?;
                let shape = view.shape().to_vec();
                let [1, frames, dim] = shape[..] else {
                    return Err(EncoderError::Contract {
                        name: self.name.clone(),
                        problem: format!(
                            "hidden_states.{index} has shape {shape:?}, not [1, T, H]"
                        ),
                    });
                };
                if frames == 0 {
                    return Err(input_error(
                        "the input is too short to give a single frame".into(),
                    ));
                }
                Ok(HiddenState {
                    index,
                    frames,
                    dim,
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }
}

/// The fewest samples a speech encoder accepts: one frame of HuBERT's feature encoder
/// (its receptive field is 400 samples, 25 ms).
pub const SPEECH_MIN_SAMPLES: usize = 400;

/// What the optimiser is told about a speech graph's length. Without it tract cannot
/// prove a `samples`-long tensor holds more than a few values, and keeps its slow
/// generic path for every element-wise op on one (≈ 4 ns per value instead of a
/// vectorised loop); [`EncoderGraph::run`] refuses shorter input before it gets there.
const SPEECH_MIN_SAMPLES_ASSERTION: &str = "samples>=400";
