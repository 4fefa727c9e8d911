//! The transcript template: how a spoken word becomes the text the text encoder reads.
//!
//! TESS speakers say "Say the word ___"; the reference study feeds the word alone
//! (`[CLS] word [SEP]` once tokenised). The host writes the template into the bundle
//! so the board fills it the same way with a keyword it heard or prompted for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The placeholder a template must contain.
pub const WORD_PLACEHOLDER: &str = "{word}";

/// A template such as `{word}` or `say the word {word}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TranscriptTemplate(String);

/// A template that cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template has no `{word}` placeholder, so every transcript would be the same.
    #[error(
        "transcript template '{0}' has no {{word}} placeholder (try \"{{word}}\" or \"say the word {{word}}\")"
    )]
    NoPlaceholder(String),
    /// The template has a placeholder other than `{word}`.
    #[error(
        "transcript template '{template}' has an unknown placeholder '{placeholder}'; only {{word}} is filled"
    )]
    UnknownPlaceholder {
        /// The template as given.
        template: String,
        /// The first unknown `{...}` found.
        placeholder: String,
    },
}

impl TranscriptTemplate {
    /// The reference study's template: the word alone.
    pub const WORD_ONLY: &'static str = "{word}";
    /// TESS's carrier phrase.
    pub const CARRIER_PHRASE: &'static str = "say the word {word}";

    /// Checks and wraps a template.
    pub fn new(template: &str) -> Result<Self, TemplateError> {
        if !template.contains(WORD_PLACEHOLDER) {
            return Err(TemplateError::NoPlaceholder(template.to_string()));
        }
        let without_word = template.replace(WORD_PLACEHOLDER, "");
        if let Some(start) = without_word.find('{') {
            let rest = &without_word[start..];
            let end = rest.find('}').map_or(rest.len(), |i| i + 1);
            return Err(TemplateError::UnknownPlaceholder {
                template: template.to_string(),
                placeholder: rest[..end].to_string(),
            });
        }
        Ok(Self(template.to_string()))
    }

    /// The transcript for one spoken word.
    pub fn fill(&self, word: &str) -> String {
        self.0.replace(WORD_PLACEHOLDER, word)
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TranscriptTemplate {
    fn default() -> Self {
        Self(Self::WORD_ONLY.to_string())
    }
}

impl fmt::Display for TranscriptTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TranscriptTemplate {
    type Err = TemplateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl TryFrom<String> for TranscriptTemplate {
    type Error = TemplateError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(&text)
    }
}

impl From<TranscriptTemplate> for String {
    fn from(template: TranscriptTemplate) -> String {
        template.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_word_alone() {
        assert_eq!(TranscriptTemplate::default().fill("back"), "back");
    }

    #[test]
    fn carrier_phrase_fills_the_word() {
        let template = TranscriptTemplate::new(TranscriptTemplate::CARRIER_PHRASE).unwrap();
        assert_eq!(template.fill("chair"), "say the word chair");
    }

    #[test]
    fn rejects_templates_without_the_placeholder() {
        assert!(matches!(
            TranscriptTemplate::new("say the word"),
            Err(TemplateError::NoPlaceholder(_))
        ));
    }

    #[test]
    fn rejects_unknown_placeholders() {
        let err = TranscriptTemplate::new("{speaker} says {word}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownPlaceholder {
                template: "{speaker} says {word}".into(),
                placeholder: "{speaker}".into()
            }
        );
    }
}
