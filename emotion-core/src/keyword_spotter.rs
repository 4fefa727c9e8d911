//! The keyword-spotting head: which vocabulary word was said, from the same speech
//! features the emotion heads read, or that none was. The board fills the transcript
//! template with the spotted word, so the fusion head gets text features from the
//! keyword table without a speech recogniser.
//!
//! Graph contract (as the emotion heads, see [`crate::head_graph`]): one input,
//! [`crate::head_graph::SPEECH_INPUT`]; one output, [`crate::head_graph::LOGITS_OUTPUT`],
//! f32 `[1, N]`; metadata [`KIND_METADATA`] = [`KEYWORD_KIND`] and [`WORDS_METADATA`] =
//! the names of the `N` outputs in order, joined by commas. Two kinds of spotter:
//!
//! - **closed set** (bundles before format 4, and spotters trained without negatives):
//!   the `N` names are `N` vocabulary words; the spotter always names one of them.
//! - **open set**: the last name is [`NONE_CLASS`] (`<none>`), "not a keyword", and the
//!   other `N − 1` are the vocabulary words. It was trained with negatives (speech that
//!   says no vocabulary word), and the bundle's manifest gives the threshold on the
//!   probability that a vocabulary word was said, `1 − p(<none>)`
//!   ([`SpotterThresholds::keyword_threshold`]). `<none>` anywhere else is refused.
//!
//! [`KeywordSpotter::spot`] gives the most probable word with its probability among the
//! vocabulary words (the softmax of the word logits alone, so a closed-set spotter's
//! figures are what they always were) and, for an open-set spotter, the probability
//! that a vocabulary word was said at all; [`SpotterThresholds::outcome`] turns that
//! into the board's [`SpotOutcome`]: the word, unsure, or no word heard.

use crate::features::Features;
use crate::head_graph::{ContractGraph, HeadError, KIND_METADATA};
use crate::scores::{argmax, softmax};

/// The `model_kind` metadata value of a keyword spotter.
pub const KEYWORD_KIND: &str = "keyword";
/// Metadata key holding the output names, in output order, comma-separated.
pub const WORDS_METADATA: &str = "words";
/// The name of the open-set spotter's last output: "not a keyword".
pub const NONE_CLASS: &str = "<none>";

/// A loaded keyword-spotting head.
#[derive(Debug, Clone)]
pub struct KeywordSpotter {
    graph: ContractGraph,
    /// The vocabulary words, in output order (without [`NONE_CLASS`]).
    words: Vec<String>,
    /// Whether the last output is [`NONE_CLASS`].
    open_set: bool,
}

/// What a spotter heard in one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Spotted {
    /// The most probable vocabulary word.
    pub word: String,
    /// Its probability among the vocabulary words.
    pub confidence: f32,
    /// The probabilities of the vocabulary words among themselves, in
    /// [`KeywordSpotter::words`] order.
    pub probabilities: Vec<f32>,
    /// For an open-set spotter, the probability that a vocabulary word was said at all,
    /// `1 − p(<none>)`; `None` for a closed-set spotter (which cannot tell).
    pub keyword_probability: Option<f32>,
}

/// What the board makes of a [`Spotted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpotOutcome {
    /// The spotted word is used.
    Word,
    /// A word of the vocabulary was said, but which is not sure enough: no keyword.
    Unsure,
    /// The open-set spotter says no vocabulary word was said: "no word heard".
    NotAKeyword,
}

/// The bundle's thresholds for its spotter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotterThresholds {
    /// The word is used when its probability among the words is at least this; 1 (or
    /// more) means never.
    pub min_confidence: f32,
    /// For an open-set spotter: below this probability that a vocabulary word was said,
    /// the answer is [`SpotOutcome::NotAKeyword`].
    pub keyword_threshold: Option<f32>,
}

impl SpotterThresholds {
    /// The outcome of `spotted` under these thresholds: not a keyword when the
    /// keyword probability is below the keyword threshold (or not a number), else the
    /// word when it is confident enough, else unsure.
    pub fn outcome(&self, spotted: &Spotted) -> SpotOutcome {
        if let (Some(threshold), Some(p)) = (self.keyword_threshold, spotted.keyword_probability)
            && !(p >= threshold)
        {
            return SpotOutcome::NotAKeyword;
        }
        // A threshold of 1 means the spotter was never precise enough on validation:
        // never trust it (a softmax can round to exactly 1.0 in f32).
        if self.min_confidence >= 1.0 || !(spotted.confidence >= self.min_confidence) {
            SpotOutcome::Unsure
        } else {
            SpotOutcome::Word
        }
    }
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
        let mut words: Vec<String> = graph
            .metadata(WORDS_METADATA)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let open_set = words.last().is_some_and(|w| w == NONE_CLASS);
        if open_set {
            words.pop();
        }
        if words.iter().any(|w| w == NONE_CLASS) {
            return Err(graph.load_error(format!(
                "`{NONE_CLASS}` must be the last name of the `{WORDS_METADATA}` metadata"
            )));
        }
        if words.len() < 2 {
            return Err(graph.load_error(format!(
                "the `{WORDS_METADATA}` metadata must list at least two words"
            )));
        }
        Ok(Self {
            graph,
            words,
            open_set,
        })
    }

    /// The vocabulary words, in output order (without [`NONE_CLASS`]).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Whether the spotter has the [`NONE_CLASS`] output.
    pub fn is_open_set(&self) -> bool {
        self.open_set
    }

    /// One logit per output: per word, then `<none>` for an open-set spotter.
    pub fn logits(&self, speech: &Features) -> Result<Vec<f32>, HeadError> {
        let logits = self.graph.run(Some(speech), None)?;
        let expected = self.words.len() + usize::from(self.open_set);
        if logits.len() != expected {
            return Err(self.run_error(format!(
                "{} logits for {expected} outputs in its metadata",
                logits.len()
            )));
        }
        if let Some(bad) = logits.iter().find(|l| !l.is_finite()) {
            return Err(self.run_error(format!("a logit is {bad}")));
        }
        Ok(logits)
    }

    /// The most probable word, the probabilities of all, and (open set) the
    /// probability that a vocabulary word was said.
    pub fn spot(&self, speech: &Features) -> Result<Spotted, HeadError> {
        Ok(self.spotted(&self.logits(speech)?))
    }

    /// [`spot`](Self::spot) from logits already computed (as [`logits`](Self::logits)
    /// gives them).
    pub fn spotted(&self, logits: &[f32]) -> Spotted {
        spotted_from_logits(&self.words, logits, self.open_set)
    }

    fn run_error(&self, detail: String) -> HeadError {
        HeadError::Run {
            name: self.graph.name.clone(),
            detail,
        }
    }
}

/// What a spotter with these `words` heard, from its logits (one per word, then the
/// `<none>` logit when `open_set`). The host measures exported spotters with this same
/// function.
pub fn spotted_from_logits(words: &[String], logits: &[f32], open_set: bool) -> Spotted {
    let word_logits = &logits[..words.len().min(logits.len())];
    let probabilities = softmax(word_logits);
    let (index, confidence) = argmax(&probabilities);
    let keyword_probability = open_set.then(|| {
        let all = softmax(logits);
        all[..word_logits.len()].iter().sum::<f32>().min(1.0)
    });
    Spotted {
        word: words.get(index).cloned().unwrap_or_default(),
        confidence,
        probabilities,
        keyword_probability,
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

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn open_set_probabilities_split_into_word_and_keyword() {
        let w = words(&["back", "dog"]);
        // Words 1 : 3 among themselves; <none> as likely as both together.
        let logits = [0.0, 3f32.ln(), 4f32.ln()];
        let s = spotted_from_logits(&w, &logits, true);
        assert_eq!(s.word, "dog");
        assert!((s.confidence - 0.75).abs() < 1e-6, "{s:?}");
        assert!((s.probabilities[0] - 0.25).abs() < 1e-6, "{s:?}");
        let kp = s.keyword_probability.unwrap();
        assert!((kp - 0.5).abs() < 1e-6, "{kp}");
        // The same word logits without <none>: the same word figures, no keyword
        // probability (a closed-set spotter cannot tell).
        let closed = spotted_from_logits(&w, &logits[..2], false);
        assert_eq!(closed.probabilities, s.probabilities);
        assert_eq!(closed.keyword_probability, None);
    }

    #[test]
    fn outcomes_follow_both_thresholds() {
        let spotted = |confidence: f32, kp: Option<f32>| Spotted {
            word: "back".into(),
            confidence,
            probabilities: vec![confidence, 1.0 - confidence],
            keyword_probability: kp,
        };
        let open = SpotterThresholds {
            min_confidence: 0.6,
            keyword_threshold: Some(0.7),
        };
        assert_eq!(open.outcome(&spotted(0.9, Some(0.8))), SpotOutcome::Word);
        assert_eq!(open.outcome(&spotted(0.9, Some(0.7))), SpotOutcome::Word);
        assert_eq!(open.outcome(&spotted(0.5, Some(0.8))), SpotOutcome::Unsure);
        assert_eq!(
            open.outcome(&spotted(0.99, Some(0.69))),
            SpotOutcome::NotAKeyword
        );
        // NaN is never a keyword, never a word.
        assert_eq!(
            open.outcome(&spotted(0.9, Some(f32::NAN))),
            SpotOutcome::NotAKeyword
        );
        assert_eq!(
            open.outcome(&spotted(f32::NAN, Some(0.9))),
            SpotOutcome::Unsure
        );
        // A closed-set spotter (old bundles) never says "not a keyword".
        let closed = SpotterThresholds {
            min_confidence: 0.6,
            keyword_threshold: None,
        };
        assert_eq!(closed.outcome(&spotted(0.9, None)), SpotOutcome::Word);
        assert_eq!(closed.outcome(&spotted(0.3, None)), SpotOutcome::Unsure);
        let never = SpotterThresholds {
            min_confidence: 1.0,
            ..closed
        };
        assert_eq!(never.outcome(&spotted(1.0, None)), SpotOutcome::Unsure);
    }
}
