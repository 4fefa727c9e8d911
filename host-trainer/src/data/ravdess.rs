//! RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song) as Zenodo serves
//! it (`Actor_01/03-01-05-01-02-01-01.wav`): seven two-digit fields in every file name,
//! modality-vocal channel-emotion-intensity-statement-repetition-actor. Only audio-only
//! (modality 03) speech (vocal channel 01) is read: the audio-video and video-only
//! recordings (01, 02) and the song files (channel 02) are named in warnings.
//! 24 actors, 8 emotions (calm among them), 2 intensities, 2 statements.

use crate::data::labelled::{Labelled, Skip, wav_stem};

const NAMING: &str = "seven two-digit fields like 03-01-05-01-02-01-12.wav (modality-channel-emotion-intensity-statement-repetition-actor)";

/// The two statements every actor says.
pub const STATEMENTS: [&str; 2] = [
    "kids are talking by the door",
    "dogs are sitting by the door",
];

/// Emotion codes 01..08 in the common label spelling (RAVDESS says fearful, surprised).
const LABELS: [&str; 8] = [
    "neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise",
];

/// The labels of one RAVDESS file.
pub(crate) fn labelled(file_name: &str) -> Result<Labelled, Skip> {
    let stem = wav_stem(file_name, NAMING)?;
    let fields: Vec<u8> = stem
        .split('-')
        .map(|f| {
            if f.len() == 2 && f.bytes().all(|b| b.is_ascii_digit()) {
                f.parse::<u8>().ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(|| Skip::BadName(format!("expected {NAMING}")))?;
    let [
        modality,
        channel,
        emotion,
        intensity,
        statement,
        repetition,
        actor,
    ] = fields[..]
    else {
        return Err(Skip::BadName(format!("expected {NAMING}")));
    };
    let field = |name: &str, value: u8, max: u8| {
        if (1..=max).contains(&value) {
            Ok(usize::from(value - 1))
        } else {
            Err(Skip::BadName(format!(
                "{name} {value:02} is not 01..{max:02} ({NAMING})"
            )))
        }
    };
    let emotion = field("emotion", emotion, 8)?;
    let intensity = field("intensity", intensity, 2)?;
    let statement = field("statement", statement, 2)?;
    field("repetition", repetition, 2)?;
    field("actor", actor, 24)?;
    match modality {
        3 => {}
        1 | 2 => {
            let what = if modality == 1 {
                "audio-video"
            } else {
                "video-only"
            };
            return Err(Skip::VideoOnly(format!("modality {modality:02} ({what})")));
        }
        other => {
            return Err(Skip::BadName(format!(
                "modality {other:02} is not 01, 02 or 03 ({NAMING})"
            )));
        }
    }
    match channel {
        1 => {}
        2 => {
            return Err(Skip::NotSpeech(
                "vocal channel 02 is song, not speech".into(),
            ));
        }
        other => {
            return Err(Skip::BadName(format!(
                "vocal channel {other:02} is not 01 (speech) or 02 (song)"
            )));
        }
    }
    Ok(Labelled {
        id: format!("ravdess_{stem}"),
        speaker: format!("ravdess-{actor:02}"),
        label: LABELS[emotion].to_string(),
        text: STATEMENTS[statement].to_string(),
        intensity: ["normal", "strong"][intensity].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_field_of_a_speech_file() {
        let l = labelled("03-01-02-02-02-01-12.wav").unwrap();
        assert_eq!(l.id, "ravdess_03-01-02-02-02-01-12");
        assert_eq!(l.speaker, "ravdess-12");
        assert_eq!(l.label, "calm");
        assert_eq!(l.intensity, "strong");
        assert_eq!(l.text, "dogs are sitting by the door");
        for (code, label) in LABELS.iter().enumerate() {
            let name = format!("03-01-{:02}-01-01-01-01.WAV", code + 1);
            assert_eq!(labelled(&name).unwrap().label, *label);
        }
    }

    #[test]
    fn video_song_and_malformed_names_are_told_apart() {
        assert!(matches!(
            labelled("01-01-05-01-02-01-12.wav"),
            Err(Skip::VideoOnly(_))
        ));
        assert!(matches!(
            labelled("02-01-05-01-02-01-12.wav"),
            Err(Skip::VideoOnly(_))
        ));
        assert!(matches!(
            labelled("03-02-05-01-02-01-12.wav"),
            Err(Skip::NotSpeech(_))
        ));
        for bad in [
            "03-01-09-01-02-01-12.wav",
            "03-01-05-01-02-01-25.wav",
            "04-01-05-01-02-01-12.wav",
            "03-01-05-01-02-01.wav",
            "03-01-05-01-02-01-1.wav",
            "3-01-05-01-02-01-12.wav",
            "03-01-05-01-02-01-12.mp4",
            "03-01-05-01-02-01-+1.wav",
        ] {
            assert!(matches!(labelled(bad), Err(Skip::BadName(_))), "{bad}");
        }
    }
}
