//! The keyword-spotting head: which vocabulary word was said, from the same speech
//! features the emotion heads read. The board fills the transcript template with the
//! spotted word, so the fusion head gets text features from the keyword table without
//! a speech recogniser.
//!
//! Graph contract (as the emotion heads, see [`crate::head_graph`]): one input,
//! [`crate::head_graph::SPEECH_INPUT`]; one output, [`crate::head_graph::LOGITS_OUTPUT`], f32
//! `[1, V]`; metadata [`KIND_METADATA`] = [`KEYWORD_KIND`] and [`WORDS_METADATA`] = the `V` words in output
//! order, joined by commas.

use crate::features::Features;
use crate::head_graph::{ContractGraph, HeadError, KIND_METADATA};
use crate::scores::{argmax, softmax};

/// The `model_kind` metadata value of a keyword spotter.
pub const KEYWORD_KIND: &str = "keyword";
/// Metadata key holding the words, in output order, comma-separated.
pub const WORDS_METADATA: &str = "words";

/// A loaded keyword-spotting head.
#[derive(Debug, Clone)]
pub struct KeywordSpotter {
    graph: ContractGraph,
    words: Vec<String>,
}

/// The word a spotter heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Spotted {
    /// The most probable word.
    pub word: String,
    /// Its probability.
    pub confidence: f32,
    /// All probabilities, in [`KeywordSpotter::words`] order.
    pub probabilities: Vec<f32>,
}

impl KeywordSpotter {
    /// Loads and optimises a spotter graph held in memory; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str, threads: usize) -> Result<Self, HeadError> {
        let graph = ContractGraph::load(bytes, name, threads)?;
        if graph.metadata(KIND_METADATA) != Some(KEYWORD_KIND) {
            return Err(graph.load_error(format!(
                "not a keyword spotter (`{KIND_METADATA}` is {:?}, expected `{KEYWORD_KIND}`)",
                graph.metadata(KIND_METADATA).unwrap_or("absent")
            )));
        }
        graph.expect_inputs(true, false, "a keyword spotter")?;
        let words: Vec<String> = graph
            .metadata(WORDS_METADATA)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        if words.len() < 2 {
            return Err(graph.load_error(format!(
                "the `{WORDS_METADATA}` metadata must list at least two words"
            )));
        }
        Ok(Self { graph, words })
    }

    /// The words, in output order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// One logit per word.
    pub fn logits(&self, speech: &Features) -> Result<Vec<f32>, HeadError> {
        let logits = self.graph.run(Some(speech), None)?;
        if logits.len() != self.words.len() {
            return Err(HeadError::Run {
                name: self.graph.name.clone(),
                detail: format!(
                    "{} logits for {} words in its metadata",
                    logits.len(),
                    self.words.len()
                ),
            });
        }
        Ok(logits)
    }

    /// The most probable word and the probabilities of all.
    pub fn spot(&self, speech: &Features) -> Result<Spotted, HeadError> {
        let probabilities = softmax(&self.logits(speech)?);
        let (index, confidence) = argmax(&probabilities);
        Ok(Spotted {
            word: self.words[index].clone(),
            confidence,
            probabilities,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_a_graph_are_a_load_error() {
        let err = KeywordSpotter::from_bytes(b"not onnx", "kws.onnx", 1).unwrap_err();
        assert!(matches!(err, HeadError::Load { .. }), "{err}");
        assert!(err.to_string().contains("kws.onnx"));
    }
}
