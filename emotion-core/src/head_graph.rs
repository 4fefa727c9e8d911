//! The head graphs: which models exist, the ONNX contract `host-trainer export` writes
//! them to, and [`HeadGraph`], which runs one with tract.
//!
//! Contract of a head graph (batch 1, one unpadded sequence):
//! - inputs, only those the model reads: [`SPEECH_INPUT`] f32 `[1, frames, H]` (or
//!   `[1, L, frames, H]` when the head mixes layers) and [`TEXT_INPUT`] f32
//!   `[1, tokens, H]` (or `[1, L, tokens, H]`);
//! - one output, [`LOGITS_OUTPUT`], f32 `[1, 7]` in [`crate::Emotion`] order;
//! - metadata `model_kind` = `speech`, `text` or `fusion`.
//!
//! A sequence shorter than [`MIN_FRAMES`] is padded with zero frames first, exactly as
//! the training batches pad it.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::Emotion;
use crate::features::Features;

/// Name of the speech-feature input of a head graph.
pub const SPEECH_INPUT: &str = "speech_features";
/// Name of the text-feature input of a head graph.
pub const TEXT_INPUT: &str = "text_features";
/// Name of the logits output of a head graph.
pub const LOGITS_OUTPUT: &str = "logits";
/// Metadata key holding the model kind.
pub const KIND_METADATA: &str = "model_kind";

/// The fewest frames a head reads. Max-pooling by two halves the frames (rounding
/// down); a one-frame input gets one zero frame appended so that one pooled frame is
/// left. Training batches pad the same way.
pub const MIN_FRAMES: usize = 2;

/// Which of the three models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Speech only: a branch over the speech-encoder (HuBERT) features.
    Speech,
    /// Text only: a branch over the text-encoder (BERT) token features.
    Text,
    /// Speech and text: speech frames query the text tokens, added through a learned gate.
    Fusion,
}

impl ModelKind {
    /// All kinds, in a fixed order.
    pub const ALL: [ModelKind; 3] = [ModelKind::Speech, ModelKind::Text, ModelKind::Fusion];

    /// The lowercase name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Speech => "speech",
            ModelKind::Text => "text",
            ModelKind::Fusion => "fusion",
        }
    }

    /// The kind called `name` (as [`ModelKind::name`] writes it).
    pub fn from_name(name: &str) -> Option<ModelKind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// True when the model reads speech features.
    pub fn uses_speech(self) -> bool {
        matches!(self, ModelKind::Speech | ModelKind::Fusion)
    }

    /// True when the model reads text features.
    pub fn uses_text(self) -> bool {
        matches!(self, ModelKind::Text | ModelKind::Fusion)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A head graph that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Not an ONNX model tract can load, or not one of our head graphs.
    #[error("head graph {name} does not load: {detail}")]
    Load {
        /// The graph file.
        name: String,
        /// What went wrong.
        detail: String,
    },
    /// The features given do not fit the head.
    #[error("head {name}: {problem}")]
    Input {
        /// The graph file.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// tract failed while running.
    #[error("head {name} failed: {detail}")]
    Run {
        /// The graph file.
        name: String,
        /// tract's explanation.
        detail: String,
    },
}

/// One loaded head graph.
#[derive(Debug, Clone)]
pub struct HeadGraph {
    kind: ModelKind,
    graph: ContractGraph,
}

impl HeadGraph {
    /// Loads and optimises a head graph held in memory; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str, threads: usize) -> Result<Self, HeadError> {
        let graph = ContractGraph::load(bytes, name, threads)?;
        let kind = graph
            .metadata(KIND_METADATA)
            .and_then(ModelKind::from_name)
            .ok_or_else(|| {
                graph.load_error(format!("no `{KIND_METADATA}` metadata naming the model"))
            })?;
        graph.expect_inputs(
            kind.uses_speech(),
            kind.uses_text(),
            &format!("a {kind} head"),
        )?;
        Ok(Self { kind, graph })
    }

    /// Which model this is.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The seven logits for one utterance. `speech` and `text` are the features the
    /// model reads (the other may be `None`).
    pub fn logits(
        &self,
        speech: Option<&Features>,
        text: Option<&Features>,
    ) -> Result<[f32; Emotion::COUNT], HeadError> {
        let logits = self.graph.run(speech, text)?;
        logits.try_into().map_err(|found: Vec<f32>| HeadError::Run {
            name: self.graph.name.clone(),
            detail: format!("{} logits instead of {}", found.len(), Emotion::COUNT),
        })
    }
}

/// A graph that follows the head contract (inputs by name, one `logits` output),
/// whatever its logits stand for: the emotion heads and the keyword spotter.
#[derive(Debug, Clone)]
pub(crate) struct ContractGraph {
    pub(crate) name: String,
    metadata: Vec<(String, String)>,
    /// Graph input order: true for speech, false for text.
    inputs: Vec<bool>,
    plan: Arc<TypedSimplePlan>,
}

impl ContractGraph {
    pub(crate) fn load(bytes: &[u8], name: &str, threads: usize) -> Result<Self, HeadError> {
        let load = |detail: String| HeadError::Load {
            name: name.to_string(),
            detail,
        };
        let model = crate::onnx_model::decode_model_bytes(bytes).map_err(load)?;
        let graph = model
            .proto
            .graph
            .as_ref()
            .ok_or_else(|| load("no graph".into()))?;
        let mut inputs = Vec::new();
        for input in graph.input.iter().filter(|i| !model.is_weight(&i.name)) {
            match input.name.as_str() {
                SPEECH_INPUT => inputs.push(true),
                TEXT_INPUT => inputs.push(false),
                other => return Err(load(format!("unexpected input `{other}`"))),
            }
        }
        match &graph.output[..] {
            [output] if output.name == LOGITS_OUTPUT => {}
            _ => return Err(load(format!("the only output must be `{LOGITS_OUTPUT}`"))),
        }
        let metadata = model
            .proto
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        let plan = crate::graph_load::runnable_plan(model, threads, None).map_err(load)?;
        Ok(Self {
            name: name.to_string(),
            metadata,
            inputs,
            plan,
        })
    }

    pub(crate) fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn load_error(&self, detail: String) -> HeadError {
        HeadError::Load {
            name: self.name.clone(),
            detail,
        }
    }

    /// Checks that the graph reads exactly the speech and/or text input; `what` names
    /// the graph in the message.
    pub(crate) fn expect_inputs(
        &self,
        speech: bool,
        text: bool,
        what: &str,
    ) -> Result<(), HeadError> {
        let found = [self.inputs.contains(&true), self.inputs.contains(&false)];
        let count = usize::from(speech) + usize::from(text);
        if [speech, text] == found && self.inputs.len() == count {
            return Ok(());
        }
        let wanted = match (speech, text) {
            (true, true) => format!("{SPEECH_INPUT} and {TEXT_INPUT}"),
            (true, false) => SPEECH_INPUT.to_string(),
            _ => TEXT_INPUT.to_string(),
        };
        Err(self.load_error(format!("{what} must read exactly {wanted}")))
    }

    /// The logits for one utterance.
    pub(crate) fn run(
        &self,
        speech: Option<&Features>,
        text: Option<&Features>,
    ) -> Result<Vec<f32>, HeadError> {
        let input = |problem: String| HeadError::Input {
            name: self.name.clone(),
            problem,
        };
        let mut values = TVec::new();
        for &is_speech in &self.inputs {
            let (what, features) = if is_speech {
                ("speech", speech)
            } else {
                ("text", text)
            };
            let features =
                features.ok_or_else(|| input(format!("the graph needs {what} features")))?;
            values.push(batch_of_one(features).map_err(&input)?.into_tvalue());
        }
        let outputs = self.plan.run(values).map_err(|e| HeadError::Run {
            name: self.name.clone(),
            detail: format!("{e:#}"),
        })?;
        Ok(outputs
            .first()
            .and_then(|v| v.to_plain_array_view::<f32>().ok())
            .map(|v| v.iter().copied().collect::<Vec<f32>>())
            .unwrap_or_default())
    }
}

/// `[T, H]` → `[1, T', H]` or `[L, T, H]` → `[1, L, T', H]`, with `T' = max(T, MIN_FRAMES)`
/// (zero frames appended).
fn batch_of_one(features: &Features) -> Result<Tensor, String> {
    let (layers, frames, dim) = match features.shape[..] {
        [t, h] => (1, t, h),
        [l, t, h] => (l, t, h),
        _ => return Err(format!("features of shape {:?}", features.shape)),
    };
    if frames == 0 || dim == 0 || layers * frames * dim != features.data.len() {
        return Err(format!(
            "features of shape {:?} with {} values",
            features.shape,
            features.data.len()
        ));
    }
    let padded = frames.max(MIN_FRAMES);
    let mut data = vec![0f32; layers * padded * dim];
    for l in 0..layers {
        data[l * padded * dim..][..frames * dim]
            .copy_from_slice(&features.data[l * frames * dim..][..frames * dim]);
    }
    let shape: Vec<usize> = if features.shape.len() == 2 {
        vec![1, padded, dim]
    } else {
        vec![1, layers, padded, dim]
    };
    Tensor::from_shape(&shape, &data).map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in ModelKind::ALL {
            assert_eq!(ModelKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(ModelKind::from_name("keyword"), None);
    }

    #[test]
    fn short_sequences_are_padded_with_zero_frames() {
        let one = Features {
            layers: vec![0, 1],
            shape: vec![2, 1, 3],
            data: vec![1., 2., 3., 4., 5., 6.],
        };
        let t = batch_of_one(&one).unwrap();
        assert_eq!(t.shape(), &[1, 2, 2, 3]);
        let v: Vec<f32> = t
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        assert_eq!(v, [1., 2., 3., 0., 0., 0., 4., 5., 6., 0., 0., 0.]);
        let bad = Features {
            layers: vec![0],
            shape: vec![2, 3],
            data: vec![0.0; 5],
        };
        assert!(batch_of_one(&bad).is_err());
    }
}
