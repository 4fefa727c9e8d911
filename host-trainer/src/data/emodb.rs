//! Berlin EmoDB (Emotional Database, German) as its site serves it: `wav/03a01Fa.wav` is
//! speaker 03, text a01, emotion F (Freude), version a. 10 speakers, 10 texts, 7
//! emotions by their German initials: W Wut (anger), L Langeweile (boredom), E Ekel
//! (disgust), A Angst (fear), F Freude (happiness), T Trauer (sadness), N neutral.

use crate::data::labelled::{Labelled, Skip, wav_stem};

const NAMING: &str = "SStttEv.wav like 03a01Fa.wav (speaker 03, text a01, emotion F, version a)";

/// The ten speakers.
pub const SPEAKERS: [&str; 10] = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"];

/// The ten texts.
pub const TEXTS: [(&str, &str); 10] = [
    ("a01", "der lappen liegt auf dem eisschrank"),
    ("a02", "das will sie am mittwoch abgeben"),
    ("a04", "heute abend könnte ich es ihm sagen"),
    (
        "a05",
        "das schwarze stück papier befindet sich da oben neben dem holzstück",
    ),
    ("a07", "in sieben stunden wird es soweit sein"),
    (
        "b01",
        "was sind denn das für tüten, die da unter dem tisch stehen",
    ),
    (
        "b02",
        "sie haben es gerade hochgetragen und jetzt gehen sie wieder runter",
    ),
    (
        "b03",
        "an den wochenenden bin ich jetzt immer nach hause gefahren und habe agnes besucht",
    ),
    (
        "b09",
        "ich will das eben wegbringen und dann mit karl was trinken gehen",
    ),
    (
        "b10",
        "die wird auf dem platz sein, wo wir sie immer hinlegen",
    ),
];

const EMOTIONS: [(char, &str); 7] = [
    ('W', "angry"),
    ('L', "boredom"),
    ('E', "disgust"),
    ('A', "fear"),
    ('F', "happy"),
    ('T', "sad"),
    ('N', "neutral"),
];

/// The labels of one EmoDB file.
pub(crate) fn labelled(file_name: &str) -> Result<Labelled, Skip> {
    let stem = wav_stem(file_name, NAMING)?;
    let bad = |what: String| Skip::BadName(format!("{what} (expected {NAMING})"));
    if stem.len() != 7 || !stem.is_ascii() {
        return Err(bad(format!("'{stem}' is not 7 characters")));
    }
    let (speaker, text, emotion, version) = (&stem[0..2], &stem[2..5], &stem[5..6], &stem[6..7]);
    if !SPEAKERS.contains(&speaker) {
        return Err(bad(format!("'{speaker}' is not an EmoDB speaker")));
    }
    let sentence = TEXTS
        .iter()
        .find(|(code, _)| *code == text)
        .map(|(_, sentence)| *sentence)
        .ok_or_else(|| bad(format!("'{text}' is not one of the 10 text codes")))?;
    let label = EMOTIONS
        .iter()
        .find(|(code, _)| emotion.starts_with(*code))
        .map(|(_, label)| *label)
        .ok_or_else(|| {
            bad(format!(
                "'{emotion}' is not an emotion letter (W L E A F T N)"
            ))
        })?;
    if !version.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(bad(format!("'{version}' is not a version letter")));
    }
    Ok(Labelled {
        id: format!("emodb_{stem}"),
        speaker: format!("emodb-{speaker}"),
        label: label.to_string(),
        text: sentence.to_string(),
        intensity: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_speaker_text_emotion() {
        let l = labelled("03a01Fa.wav").unwrap();
        assert_eq!(l.id, "emodb_03a01Fa");
        assert_eq!(l.speaker, "emodb-03");
        assert_eq!(l.label, "happy");
        assert_eq!(l.text, "der lappen liegt auf dem eisschrank");
        assert_eq!(labelled("16b10Lb.wav").unwrap().label, "boredom");
        assert_eq!(labelled("08b02Wc.wav").unwrap().label, "angry");
    }

    #[test]
    fn names_what_does_not_parse() {
        for bad in [
            "04a01Fa.wav",
            "03a03Fa.wav",
            "03a01Xa.wav",
            "03a01FA.wav",
            "03a01F.wav",
            "03a01Faa.wav",
            "03ä01Fa.wav",
        ] {
            assert!(matches!(labelled(bad), Err(Skip::BadName(_))), "{bad}");
        }
    }
}
