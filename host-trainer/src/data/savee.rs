//! SAVEE (Surrey Audio-Visual Expressed Emotion) as the University of Surrey serves it:
//! `AudioData/DC/a01.wav`, the speaker in the folder (DC, JE, JK, KL) and the emotion
//! in the file name's prefix (a anger, d disgust, f fear, h happiness, n neutral,
//! sa sadness, su surprise) before the sentence number (01–15, neutral 01–30). The flat
//! copies some mirrors make (`DC_a01.wav`) read the same. The file names do not say
//! which sentence was spoken, so SAVEE's transcripts are empty.

use std::path::Path;

use crate::data::labelled::{Labelled, Skip, wav_stem};

const NAMING: &str = "SPEAKER/PREFIXnn.wav like AudioData/DC/a01.wav (speakers DC JE JK KL; prefixes a d f h n sa su)";

/// The four speakers.
pub const SPEAKERS: [&str; 4] = ["DC", "JE", "JK", "KL"];

/// Prefix → label; the longer prefixes first so `sa` is not read as `s`.
const PREFIXES: [(&str, &str); 7] = [
    ("sa", "sad"),
    ("su", "surprise"),
    ("a", "angry"),
    ("d", "disgust"),
    ("f", "fear"),
    ("h", "happy"),
    ("n", "neutral"),
];

/// The labels of one SAVEE file, from its path below the corpus root.
pub(crate) fn labelled(relative: &Path) -> Result<Labelled, Skip> {
    let bad = |what: String| Skip::BadName(format!("{what} (expected {NAMING})"));
    let file_name = relative
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let stem = wav_stem(file_name, NAMING)?;
    let (speaker, code) = match stem.split_once('_') {
        Some((speaker, code)) => (speaker, code),
        None => {
            let folder = relative
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            (folder, stem)
        }
    };
    if !SPEAKERS.contains(&speaker) {
        return Err(bad(format!("'{speaker}' is not a SAVEE speaker")));
    }
    let (prefix, label) = PREFIXES
        .iter()
        .find(|(prefix, _)| code.starts_with(prefix))
        .ok_or_else(|| bad(format!("'{code}' has no emotion prefix")))?;
    let number = &code[prefix.len()..];
    let max = if *prefix == "n" { 30 } else { 15 };
    let in_range = number.len() == 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && number.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n));
    if !in_range {
        return Err(bad(format!(
            "'{number}' in '{code}' is not a sentence number 01..{max}"
        )));
    }
    Ok(Labelled {
        id: format!("savee_{speaker}_{code}"),
        speaker: format!("savee-{speaker}"),
        label: label.to_string(),
        text: String::new(),
        intensity: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str) -> Result<Labelled, Skip> {
        labelled(Path::new(path))
    }

    #[test]
    fn speaker_from_the_folder_emotion_from_the_prefix() {
        let l = read("AudioData/JK/sa03.wav").unwrap();
        assert_eq!(
            (l.id.as_str(), l.speaker.as_str(), l.label.as_str()),
            ("savee_JK_sa03", "savee-JK", "sad")
        );
        assert_eq!(read("AudioData/KL/su15.wav").unwrap().label, "surprise");
        assert_eq!(read("AudioData/DC/n30.wav").unwrap().label, "neutral");
        assert_eq!(read("AudioData/DC/a01.wav").unwrap().label, "angry");
        // The flat layout of some mirrors.
        assert_eq!(read("ALL/JE_h07.wav").unwrap().id, "savee_JE_h07");
    }

    #[test]
    fn other_speakers_prefixes_and_numbers_are_bad_names() {
        for bad in [
            "AudioData/XY/a01.wav",
            "AudioData/DC/x01.wav",
            "AudioData/DC/a16.wav",
            "AudioData/DC/n31.wav",
            "AudioData/DC/a1.wav",
            "AudioData/DC/s01.wav",
            "a01.wav",
            "AudioData/DC/a01.avi",
        ] {
            assert!(matches!(read(bad), Err(Skip::BadName(_))), "{bad}");
        }
    }
}
