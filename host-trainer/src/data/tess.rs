//! The TESS corpus as the Kaggle download lays it out: speaker, word and emotion from
//! each FILE name (never the folder, whose spelling varies); the walk, duplicates and
//! warnings are [`scan`](super::scan)'s.
//!
//! The download's quirks: a duplicated top folder (every file seen twice: the scan
//! counts it once), folder names in mixed case (`OAF_Fear`, `YAF_pleasant_surprised`:
//! ignored), the code `ps` for pleasant surprise, one file at 96 kHz among 24 414 Hz
//! ones (the front-end resamples every file).

use emotion_core::Emotion;

use crate::data::labelled::{Labelled, Skip};
use crate::data::manifest::CorpusEntry;

/// Speaker, word and emotion as a TESS file name gives them (`OAF_back_angry.wav`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TessName {
    /// Speaker code, upper case (`OAF`, `YAF`).
    pub speaker: String,
    /// The target word, lower case.
    pub word: String,
    /// The emotion the word was spoken in.
    pub emotion: Emotion,
}

/// Why a file name is not a TESS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not `SPEAKER_word_emotion.wav`.
    #[error("expected SPEAKER_word_emotion.wav (like OAF_back_angry.wav)")]
    Shape,
    /// The last part is not one of the seven emotion codes.
    #[error("'{0}' is not an emotion code (angry, disgust, fear, happy, neutral, ps, sad)")]
    Emotion(String),
}

/// Parses `OAF_back_angry.wav`, `YAF_chair_ps.WAV`, also `…_pleasant_surprise(d).wav`.
pub fn parse_file_name(file_name: &str) -> Result<TessName, NameError> {
    let stem = file_name
        .strip_suffix(".wav")
        .or_else(|| file_name.strip_suffix(".WAV"))
        .or_else(|| file_name.strip_suffix(".Wav"))
        .ok_or(NameError::Shape)?;
    let mut parts: Vec<&str> = stem.split('_').collect();
    // The folder spelling of pleasant surprise, should it ever reach a file name.
    if parts.len() == 4 && parts[2].eq_ignore_ascii_case("pleasant") {
        let last = parts.pop().unwrap_or_default();
        let joined = format!("pleasant_{last}");
        if Emotion::from_code(&joined) != Some(Emotion::PleasantSurprise) {
            return Err(NameError::Emotion(joined));
        }
        parts[2] = "ps";
    }
    let [speaker, word, code] = parts[..] else {
        return Err(NameError::Shape);
    };
    let is_token = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric());
    if !is_token(speaker) || !word.chars().all(|c| c.is_ascii_alphabetic()) || word.is_empty() {
        return Err(NameError::Shape);
    }
    let emotion = Emotion::from_code(code).ok_or_else(|| NameError::Emotion(code.to_string()))?;
    Ok(TessName {
        speaker: speaker.to_ascii_uppercase(),
        word: word.to_ascii_lowercase(),
        emotion,
    })
}

/// The labels of one TESS file for the scan: speaker, word and emotion from the name.
pub(crate) fn labelled(file_name: &str) -> Result<Labelled, Skip> {
    let name = parse_file_name(file_name).map_err(|e| Skip::BadName(e.to_string()))?;
    Ok(Labelled {
        id: CorpusEntry::id_of(&name.speaker, &name.word, name.emotion),
        speaker: name.speaker,
        label: name.emotion.code().to_string(),
        text: name.word,
        intensity: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(speaker: &str, word: &str, emotion: Emotion) -> TessName {
        TessName {
            speaker: speaker.into(),
            word: word.into(),
            emotion,
        }
    }

    #[test]
    fn parses_tess_file_names() {
        assert_eq!(
            parse_file_name("OAF_back_angry.wav"),
            Ok(name("OAF", "back", Emotion::Angry))
        );
        assert_eq!(
            parse_file_name("YAF_chair_ps.wav"),
            Ok(name("YAF", "chair", Emotion::PleasantSurprise))
        );
        assert_eq!(
            parse_file_name("OAF_Food_Fear.WAV"),
            Ok(name("OAF", "food", Emotion::Fear))
        );
        assert_eq!(
            parse_file_name("yaf_dog_pleasant_surprised.wav"),
            Ok(name("YAF", "dog", Emotion::PleasantSurprise))
        );
    }

    #[test]
    fn rejects_names_that_are_not_tess() {
        assert_eq!(parse_file_name("OAF_back.wav"), Err(NameError::Shape));
        assert_eq!(
            parse_file_name("OAF_back_angry_2.wav"),
            Err(NameError::Shape)
        );
        assert_eq!(parse_file_name("OAF_back_angry.mp3"), Err(NameError::Shape));
        assert_eq!(
            parse_file_name("._OAF_back_angry.wav"),
            Err(NameError::Shape)
        );
        assert_eq!(
            parse_file_name("OAF_back_calm.wav"),
            Err(NameError::Emotion("calm".into()))
        );
        assert_eq!(
            parse_file_name("OAF_back_pleasant_mood.wav"),
            Err(NameError::Emotion("pleasant_mood".into()))
        );
    }
}
