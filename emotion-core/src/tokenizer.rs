//! Tokenising one transcript for the text encoder, with the HF `tokenizer.json`.
//!
//! One transcript is encoded at a time, so padding and truncation are switched off: the
//! `tokenizer.json` shipped with sentence-transformers models pads every input to 128
//! tokens, which would feed the encoder 120 `[PAD]`s with no attention mask.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

/// A tokenizer that cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The file cannot be read.
    #[error("cannot read tokenizer {path}: {source}")]
    Io {
        /// The tokenizer file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a `tokenizer.json` the tokenizers library understands.
    #[error("{name} is not a usable tokenizer.json: {detail}")]
    Parse {
        /// File or name.
        name: String,
        /// The library's explanation.
        detail: String,
    },
    /// Encoding failed or gave no token.
    #[error("cannot tokenise {text:?}: {detail}")]
    Encode {
        /// The transcript.
        text: String,
        /// What went wrong.
        detail: String,
    },
}

/// Turns a transcript into the ids the text encoder reads (`[CLS] … [SEP]`).
#[derive(Debug, Clone)]
pub struct TranscriptTokenizer {
    inner: Tokenizer,
}

impl TranscriptTokenizer {
    /// Loads `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Loads a `tokenizer.json` held in memory; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self, TokenizerError> {
        let parse_error = |detail: String| TokenizerError::Parse {
            name: name.to_string(),
            detail,
        };
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| parse_error(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| parse_error(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Token ids of `text`, special tokens included.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, TokenizerError> {
        Ok(self.encode_with_tokens(text)?.0)
    }

    /// Token ids and token strings of `text`, special tokens included.
    pub fn encode_with_tokens(
        &self,
        text: &str,
    ) -> Result<(Vec<i64>, Vec<String>), TokenizerError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| TokenizerError::Encode {
                text: text.to_string(),
                detail: e.to_string(),
            })?;
        let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| i64::from(id)).collect();
        if ids.is_empty() {
            return Err(TokenizerError::Encode {
                text: text.to_string(),
                detail: "no tokens".into(),
            });
        }
        Ok((ids, encoding.get_tokens().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/conformance/bert-tiny")
            .join(name)
    }

    #[test]
    fn ids_match_the_reference_tokenizer() {
        let tokenizer = TranscriptTokenizer::from_file(&fixture("tokenizer.json")).unwrap();
        let texts: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("texts.json")).unwrap()).unwrap();
        let texts = texts.as_array().unwrap();
        assert_eq!(texts.len(), 3);
        for case in texts {
            let (ids, tokens) = tokenizer
                .encode_with_tokens(case["text"].as_str().unwrap())
                .unwrap();
            let expected: Vec<i64> = case["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            assert_eq!(ids, expected, "{}", case["text"]);
            assert_eq!(
                tokens,
                case["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn padding_and_truncation_from_the_file_are_switched_off() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture("tokenizer.json")).unwrap()).unwrap();
        // What sentence-transformers ships: pad to 128, truncate at 128.
        json["padding"] = serde_json::json!({
            "strategy": {"Fixed": 128}, "direction": "Right", "pad_to_multiple_of": null,
            "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"
        });
        json["truncation"] = serde_json::json!({
            "direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0
        });
        let bytes = serde_json::to_vec(&json).unwrap();
        let raw = Tokenizer::from_bytes(&bytes).unwrap();
        assert_eq!(
            raw.encode("say the word back", true)
                .unwrap()
                .get_ids()
                .len(),
            128,
            "sanity"
        );
        let tokenizer = TranscriptTokenizer::from_bytes(&bytes, "padded").unwrap();
        assert_eq!(
            tokenizer.encode("say the word back").unwrap(),
            [101, 2360, 1996, 2773, 2067, 102]
        );
    }

    #[test]
    fn a_broken_tokenizer_file_is_a_parse_error() {
        assert!(matches!(
            TranscriptTokenizer::from_bytes(b"{\"model\": 3}", "broken"),
            Err(TokenizerError::Parse { .. })
        ));
        assert!(matches!(
            TranscriptTokenizer::from_file(Path::new("/nonexistent/tokenizer.json")),
            Err(TokenizerError::Io { .. })
        ));
    }
}
