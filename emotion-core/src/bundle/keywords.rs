//! The keyword table: the text features of every word the model was trained on,
//! computed on the host with the text encoder, so the board needs no BERT to classify a
//! known keyword. Stored with postcard.

use serde::{Deserialize, Serialize};

use crate::features::{Features, LayerCombination};

/// The text features of one keyword.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordEntry {
    /// The word, lowercase (`back`).
    pub word: String,
    /// The transcript it was encoded as (the template filled with the word).
    pub transcript: String,
    /// `[tokens, H]` or `[L, tokens, H]`.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Every keyword's text features, and how they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordTable {
    /// The transcript template the transcripts were filled from.
    pub template: String,
    /// HF layers of the text encoder the features come from.
    pub layers: Vec<usize>,
    /// How the layers were combined.
    pub combination: LayerCombination,
    /// Feature width H.
    pub dim: usize,
    /// One entry per keyword, sorted by word.
    pub entries: Vec<KeywordEntry>,
}

impl KeywordTable {
    /// The entry for a word (`Back`, ` back `) or for a whole transcript (`say the word
    /// back`), compared without case and with runs of spaces collapsed.
    pub fn lookup(&self, text: &str) -> Option<&KeywordEntry> {
        let wanted = normalise(text);
        self.entries.iter().find(|e| e.word == wanted).or_else(|| {
            self.entries
                .iter()
                .find(|e| normalise(&e.transcript) == wanted)
        })
    }

    /// The features of an entry.
    pub fn features(&self, entry: &KeywordEntry) -> Features {
        Features {
            layers: self.layers.clone(),
            shape: entry.shape.clone(),
            data: entry.data.clone(),
        }
    }

    /// The words, in order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.word.as_str())
    }

    /// Checks that every entry has the table's width and layer count and fills its
    /// shape; the message says which entry is wrong.
    pub fn check(&self) -> Result<(), String> {
        let layers = match self.combination {
            LayerCombination::Mean => None,
            LayerCombination::Separate => Some(self.layers.len()),
        };
        for e in &self.entries {
            let ok = match (layers, &e.shape[..]) {
                (None, [t, h]) => *t > 0 && *h == self.dim && t * h == e.data.len(),
                (Some(l), [l2, t, h]) => {
                    *l2 == l && *t > 0 && *h == self.dim && l * t * h == e.data.len()
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "keyword `{}` has features of shape {:?} with {} values, expected width {} ({:?} of layers {:?})",
                    e.word,
                    e.shape,
                    e.data.len(),
                    self.dim,
                    self.combination,
                    self.layers
                ));
            }
        }
        Ok(())
    }
}

/// Lowercase, trimmed, inner whitespace collapsed to one space.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> KeywordTable {
        KeywordTable {
            template: "say the word {word}".into(),
            layers: vec![1, 2],
            combination: LayerCombination::Mean,
            dim: 2,
            entries: vec![
                KeywordEntry {
                    word: "back".into(),
                    transcript: "say the word back".into(),
                    shape: vec![1, 2],
                    data: vec![1.0, 2.0],
                },
                KeywordEntry {
                    word: "dog".into(),
                    transcript: "say the word dog".into(),
                    shape: vec![2, 2],
                    data: vec![0.0; 4],
                },
            ],
        }
    }

    #[test]
    fn lookup_by_word_or_transcript() {
        let t = table();
        assert_eq!(t.lookup(" Back ").unwrap().word, "back");
        assert_eq!(t.lookup("say  the WORD dog").unwrap().word, "dog");
        assert!(t.lookup("cat").is_none());
        assert_eq!(t.features(t.lookup("back").unwrap()).dim(), 2);
        assert!(t.check().is_ok());
    }

    #[test]
    fn check_names_the_bad_entry() {
        let mut t = table();
        t.entries[1].data.pop();
        assert!(t.check().unwrap_err().contains("`dog`"));
    }
}
