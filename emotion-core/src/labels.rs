//! The seven emotions of TESS: their fixed order (the index every model and report
//! uses), their readable names and the codes TESS writes in its file names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One of the seven emotions. The declaration order is the class index used by every
/// head, bundle and report: the alphabetical order of TESS's codes, as a
/// scikit-learn `LabelEncoder` would give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Emotion {
    /// `angry`
    Angry,
    /// `disgust`
    Disgust,
    /// `fear`
    Fear,
    /// `happy`
    Happy,
    /// `neutral`
    Neutral,
    /// `ps` in TESS file names.
    PleasantSurprise,
    /// `sad`
    Sad,
}

/// A label that names none of the seven emotions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown emotion '{0}': expected one of angry, disgust, fear, happy, neutral, ps (pleasant surprise), sad"
)]
pub struct UnknownEmotion(pub String);

impl Emotion {
    /// All emotions in class-index order.
    pub const ALL: [Emotion; 7] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Neutral,
        Emotion::PleasantSurprise,
        Emotion::Sad,
    ];

    /// Number of classes.
    pub const COUNT: usize = Self::ALL.len();

    /// The class index (0..7) every model output uses.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The emotion at a class index, if the index is in range.
    pub fn from_index(index: usize) -> Option<Emotion> {
        Self::ALL.get(index).copied()
    }

    /// The code TESS writes at the end of a file name (`OAF_back_ps.wav`).
    pub fn code(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Neutral => "neutral",
            Emotion::PleasantSurprise => "ps",
            Emotion::Sad => "sad",
        }
    }

    /// The name shown to people (reports, displays).
    pub fn name(self) -> &'static str {
        match self {
            Emotion::PleasantSurprise => "pleasant surprise",
            other => other.code(),
        }
    }

    /// Parses a code or a name, case-insensitively. Besides the seven codes it accepts
    /// the spellings TESS uses in folder names (`Pleasant_surprise`,
    /// `pleasant_surprised`) and the readable name.
    pub fn from_code(text: &str) -> Option<Emotion> {
        let lower = text.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        match lower.as_str() {
            "pleasant_surprise" | "pleasant_surprised" | "surprise" | "surprised" => {
                Some(Emotion::PleasantSurprise)
            }
            code => Self::ALL.into_iter().find(|e| e.code() == code),
        }
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Emotion {
    type Err = UnknownEmotion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Emotion::from_code(text).ok_or_else(|| UnknownEmotion(text.to_string()))
    }
}

/// Serialised as its TESS code, so manifests and JSON read like the file names.
impl Serialize for Emotion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Emotion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trips_and_follows_code_order() {
        for (i, emotion) in Emotion::ALL.into_iter().enumerate() {
            assert_eq!(emotion.index(), i);
            assert_eq!(Emotion::from_index(i), Some(emotion));
        }
        assert_eq!(Emotion::from_index(7), None);
        let codes: Vec<_> = Emotion::ALL.iter().map(|e| e.code()).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(codes, sorted, "class order must be the sorted code order");
    }

    #[test]
    fn parses_codes_names_and_tess_folder_spellings() {
        assert_eq!("ps".parse::<Emotion>(), Ok(Emotion::PleasantSurprise));
        assert_eq!(
            "Pleasant_surprise".parse::<Emotion>(),
            Ok(Emotion::PleasantSurprise)
        );
        assert_eq!(
            "pleasant_surprised".parse::<Emotion>(),
            Ok(Emotion::PleasantSurprise)
        );
        assert_eq!(
            "pleasant surprise".parse::<Emotion>(),
            Ok(Emotion::PleasantSurprise)
        );
        assert_eq!("Fear".parse::<Emotion>(), Ok(Emotion::Fear));
        assert_eq!("SAD".parse::<Emotion>(), Ok(Emotion::Sad));
        assert!("calm".parse::<Emotion>().is_err());
        assert!("".parse::<Emotion>().is_err());
    }

    #[test]
    fn display_is_the_readable_name() {
        assert_eq!(Emotion::PleasantSurprise.to_string(), "pleasant surprise");
        assert_eq!(Emotion::Angry.to_string(), "angry");
    }
}
