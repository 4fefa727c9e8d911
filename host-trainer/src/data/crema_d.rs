//! CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset) as its repository lays it
//! out: `AudioWAV/1001_DFA_ANG_XX.wav` (actor, sentence, emotion, intensity), beside
//! `AudioMP3/` and `VideoFlash/` copies (named in warnings, not read) and
//! `VideoDemographics.csv` (each actor's age, sex, race, ethnicity), which the scan
//! checks the actors against where it is present. 91 actors (1001–1091), 12 sentences,
//! 6 emotions, intensity LO/MD/HI or XX (unspecified).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::data::labelled::{Labelled, Skip, wav_stem};
use crate::data::manifest::CorpusEntry;

const NAMING: &str = "ACTOR_SENTENCE_EMOTION_INTENSITY.wav like 1001_DFA_ANG_XX.wav";

/// The demographics file CREMA-D ships.
pub const DEMOGRAPHICS: &str = "VideoDemographics.csv";

/// The twelve sentence codes and what is said.
pub const SENTENCES: [(&str, &str); 12] = [
    ("IEO", "it's eleven o'clock"),
    ("TIE", "that is exactly what happened"),
    ("IOM", "i'm on my way to the meeting"),
    ("IWW", "i wonder what this is about"),
    ("TAI", "the airplane is almost full"),
    ("MTI", "maybe tomorrow it will be cold"),
    ("IWL", "i would like a new alarm clock"),
    ("ITH", "i think i have a doctor's appointment"),
    ("DFA", "don't forget a jacket"),
    ("ITS", "i think i've seen this before"),
    ("TSI", "the surface is slick"),
    ("WSI", "we'll stop in a couple of minutes"),
];

const EMOTIONS: [(&str, &str); 6] = [
    ("ANG", "angry"),
    ("DIS", "disgust"),
    ("FEA", "fear"),
    ("HAP", "happy"),
    ("NEU", "neutral"),
    ("SAD", "sad"),
];

const INTENSITIES: [(&str, &str); 4] = [
    ("LO", "low"),
    ("MD", "medium"),
    ("HI", "high"),
    ("XX", "unspecified"),
];

fn lookup<'a>(table: &[(&str, &'a str)], code: &str) -> Option<&'a str> {
    table.iter().find(|(c, _)| *c == code).map(|(_, v)| *v)
}

/// The labels of one CREMA-D file.
pub(crate) fn labelled(file_name: &str) -> Result<Labelled, Skip> {
    let stem = wav_stem(file_name, NAMING)?;
    let bad = |what: String| Skip::BadName(format!("{what} (expected {NAMING})"));
    let [actor, sentence, emotion, intensity] = stem.split('_').collect::<Vec<_>>()[..] else {
        return Err(bad("not four parts".into()));
    };
    if actor.len() != 4 || !actor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("actor '{actor}' is not a four-digit number")));
    }
    let text = lookup(&SENTENCES, sentence)
        .ok_or_else(|| bad(format!("'{sentence}' is not one of the 12 sentence codes")))?;
    let label = lookup(&EMOTIONS, emotion).ok_or_else(|| {
        bad(format!(
            "'{emotion}' is not an emotion code (ANG DIS FEA HAP NEU SAD)"
        ))
    })?;
    let intensity = lookup(&INTENSITIES, intensity)
        .ok_or_else(|| bad(format!("'{intensity}' is not an intensity (LO MD HI XX)")))?;
    Ok(Labelled {
        id: format!("crema-d_{stem}"),
        speaker: format!("crema-d-{actor}"),
        label: label.to_string(),
        text: text.to_string(),
        intensity: intensity.to_string(),
    })
}

/// What the demographics file says about the kept utterances' actors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemographicsCheck {
    /// The file, when the corpus has one.
    pub path: Option<PathBuf>,
    /// Disagreements with the recordings, each a warning.
    pub problems: Vec<String>,
    /// Who the speakers are, or that the file is missing.
    pub note: String,
}

/// Checks the kept utterances' actors against `VideoDemographics.csv` when the corpus
/// has it: actors missing from it and rows that do not parse are problems; the note
/// sums up who the speakers are.
pub(crate) fn check_demographics(root: &Path, entries: &[CorpusEntry]) -> DemographicsCheck {
    let Some(path) = find_demographics(root) else {
        return DemographicsCheck {
            path: None,
            problems: Vec::new(),
            note: format!("{DEMOGRAPHICS} not found: the actors were not checked against it"),
        };
    };
    let actors = match read_demographics(&path) {
        Ok(actors) => actors,
        Err(problem) => {
            return DemographicsCheck {
                note: format!("{}: not read", path.display()),
                path: Some(path),
                problems: vec![problem],
            };
        }
    };
    let used: BTreeSet<&str> = entries
        .iter()
        .filter_map(|e| e.speaker.strip_prefix("crema-d-"))
        .collect();
    let mut problems: Vec<String> = used
        .iter()
        .filter(|actor| !actors.contains_key(**actor))
        .map(|actor| format!("actor {actor} has recordings but no row"))
        .collect();
    let mut by_sex: BTreeMap<&str, usize> = BTreeMap::new();
    for actor in &used {
        if let Some(sex) = actors.get(*actor) {
            *by_sex.entry(sex.as_str()).or_default() += 1;
        }
    }
    let unrecorded = actors.len() - used.iter().filter(|a| actors.contains_key(**a)).count();
    if unrecorded > 0 && used.len() > 1 {
        problems.push(format!(
            "{unrecorded} actor(s) listed have no recording kept"
        ));
    }
    let sexes: Vec<String> = by_sex.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let note = format!(
        "{}: {} actors listed; the {} speakers kept: {}",
        path.display(),
        actors.len(),
        used.len(),
        sexes.join(", ")
    );
    DemographicsCheck {
        path: Some(path),
        problems,
        note,
    }
}

/// `VideoDemographics.csv` at the root or anywhere below it (first in path order).
fn find_demographics(root: &Path) -> Option<PathBuf> {
    WalkDir::new(root)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file() && e.file_name() == DEMOGRAPHICS)
        .map(|e| e.into_path())
}

/// Actor id → sex, from the `ActorID` and `Sex` columns.
fn read_demographics(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read: {e}"))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("cannot read the header: {e}"))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "no {name} column (has: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                )
            })
    };
    let (id_col, sex_col) = (column("ActorID")?, column("Sex")?);
    let mut actors = BTreeMap::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("row {}: {e}", i + 2))?;
        let id = row.get(id_col).unwrap_or_default().trim().to_string();
        let sex = row
            .get(sex_col)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        actors.insert(id, sex);
    }
    Ok(actors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_actor_sentence_emotion_and_intensity() {
        let l = labelled("1091_WSI_SAD_HI.wav").unwrap();
        assert_eq!(l.id, "crema-d_1091_WSI_SAD_HI");
        assert_eq!(l.speaker, "crema-d-1091");
        assert_eq!(l.label, "sad");
        assert_eq!(l.text, "we'll stop in a couple of minutes");
        assert_eq!(l.intensity, "high");
        assert_eq!(
            labelled("1001_DFA_NEU_XX.wav").unwrap().intensity,
            "unspecified"
        );
    }

    #[test]
    fn names_what_does_not_parse() {
        for (bad, needle) in [
            ("1001_DFA_CAL_XX.wav", "CAL"),
            ("1001_ABC_ANG_XX.wav", "ABC"),
            ("1001_DFA_ANG_ZZ.wav", "ZZ"),
            ("101_DFA_ANG_XX.wav", "101"),
            ("1001_DFA_ANG.wav", "four parts"),
            ("1001_DFA_ANG_XX.mp3", "expected"),
        ] {
            match labelled(bad) {
                Err(Skip::BadName(reason)) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
