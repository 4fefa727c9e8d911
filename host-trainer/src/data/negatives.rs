//! Recorded speech that says no word of the keyword spotter's vocabulary: what it learns
//! "not a keyword" from, what its threshold is chosen on, and what its false-accept
//! rate is measured on.
//!
//! - **Which clips**: from the real-speech set ([`emotion_core::real_speech`]), every
//!   clip whose transcript is known and says no vocabulary word ([`says_a_word`]: the
//!   word itself or with `s`, `es`, `ed`, `ing`, `'s`), and the noise clips. A clip with
//!   no transcript could say one, so it is left out (counted in [`LeftOut`]).
//! - **Windows**: the board classifies utterances of a few seconds, so a clip longer
//!   than [`WINDOW_SECONDS`] is cut into the fewest equal pieces no longer than that.
//!   A window's samples ([`ClipWindows::samples`]) are the clip decoded, mixed to mono
//!   and resampled whole to 16 kHz, then cut: neither trimmed nor normalised, exactly
//!   what the board's pipeline gets when its segmenter hands it an utterance (the
//!   pipeline's front-end trims and normalises each one).
//! - **Parts, by speaker** ([`RealNegatives::split`]): a speaker group is
//!   `source/speaker` (a source's unknown speakers are one group), and no group is in
//!   two parts. The **calibration** part, where the threshold is chosen for a
//!   false-accept rate of 1 %, is the English group with the most windows (the
//!   vocabulary's language; the largest group when none is English): choosing at 1 % needs
//!   hundreds of windows (at 19 windows, 1 % allows none, and the threshold is just the
//!   loudest one's score), and the spotter never trains on it. The other groups, from the
//!   most windows down (ties by name), go in turn to **test** (speakers the spotter and
//!   its threshold never met: the false-accept rate's) and **training** (at most
//!   [`TRAINING_WINDOWS_PER_GROUP`] windows of each group).
//! - **Augmented training** ([`Augment`], [`noise_examples`]): the training windows also
//!   through a telephone band, 10 % faster and slower, and cut into short pieces; and
//!   synthetic noise. Measured on the demo corpus with the tiny random encoders: without
//!   them the 8 kHz calibration voice passed for keywords (23 % of its windows at the
//!   threshold the small part gave), and near-silent stretches of a recording (which the
//!   front-end normalises into loud noise) scored 0.97.
//!
//! With the cache `scripts/fetch-real-speech.sh` makes (600 clips): calibration = the
//! asterisk prompts' one voice (`asterisk/allison_smith`, 8 kHz, 790 windows); training
//! = alsa, CMU ARCTIC slt, pocketsphinx's LibriVox and TIDIGITS speakers (23 windows);
//! test = pocketsphinx's other speakers, the pyannote conversation and CMU ARCTIC awb
//! (19 windows); codec2's clips have no transcripts and are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use emotion_core::Emotion;
use emotion_core::frontend::{decode_file, resample_to};
use emotion_core::real_speech::{Clip, ClipKind, RealSpeech};
use indicatif::{ProgressBar, ProgressStyle};

use crate::features::cache::{FeatureCache, Features};
use crate::features::extract::Extractor;
use crate::train::trainer::Example;

/// The longest window cut from a clip, seconds.
pub const WINDOW_SECONDS: f64 = 3.0;
/// The longest clip read (a longer one is left out with a reason).
const LONGEST_CLIP_SECONDS: f32 = 600.0;
/// The prefix of a window's example id (corpus ids never contain `:`).
pub const ID_PREFIX: &str = "real:";
/// The prefix of a synthetic noise example's id ([`noise_examples`]).
pub const NOISE_PREFIX: &str = "noise:";

/// True for the id of a negative example made here (a recorded window or noise).
pub fn is_negative_id(id: &str) -> bool {
    id.starts_with(ID_PREFIX) || id.starts_with(NOISE_PREFIX)
}

/// One window of a clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegativeWindow {
    /// `real:{path in the cache}#{piece}/{pieces}`.
    pub id: String,
    /// The piece, from 0.
    pub piece: usize,
    /// The clip's pieces.
    pub pieces: usize,
}

/// A clip and its windows.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipWindows {
    /// The clip.
    pub clip: Clip,
    /// Its speaker group, `source/speaker`.
    pub group: String,
    /// Its windows, in order.
    pub windows: Vec<NegativeWindow>,
}

/// One part of the recorded negatives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NegativePart {
    /// Its speaker groups, sorted.
    pub groups: Vec<String>,
    /// Its clips.
    pub clips: Vec<ClipWindows>,
}

impl NegativePart {
    /// Its windows, in clip order.
    pub fn windows(&self) -> impl Iterator<Item = &NegativeWindow> {
        self.clips.iter().flat_map(|c| &c.windows)
    }

    /// How many windows.
    pub fn len(&self) -> usize {
        self.clips.iter().map(|c| c.windows.len()).sum()
    }

    /// True without windows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seconds of audio.
    pub fn seconds(&self) -> f64 {
        self.clips.iter().map(|c| c.clip.duration_s).sum()
    }

    /// `N windows (M s) of g1, g2, …`.
    pub fn describe(&self) -> String {
        format!(
            "{} windows ({:.0} s) of {}",
            self.len(),
            self.seconds(),
            self.groups.join(", ")
        )
    }
}

/// Clips the rule leaves out, by reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeftOut {
    /// Their transcript says a vocabulary word.
    pub vocabulary_word: usize,
    /// Speech with no transcript (it could say one).
    pub no_transcript: usize,
    /// Longer than the longest clip read.
    pub too_long: usize,
}

/// The recorded negatives, split by speaker.
#[derive(Debug, Clone)]
pub struct RealNegatives {
    /// The cache they come from.
    pub root: PathBuf,
    /// What the spotter trains on.
    pub train: NegativePart,
    /// Where its threshold is chosen.
    pub calibration: NegativePart,
    /// Speakers it never hears: where its false-accept rate is measured.
    pub test: NegativePart,
    /// Clips left out.
    pub left_out: LeftOut,
}

/// Why the recorded negatives cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum NegativesError {
    /// Fewer than three speaker groups: no unseen test part beside training and
    /// calibration.
    #[error(
        "{root}: {groups} speaker group(s) of recorded speech without a vocabulary word; three are needed (training, calibration, and unseen speakers to test on)"
    )]
    TooFewSpeakers {
        /// The cache.
        root: PathBuf,
        /// How many groups.
        groups: usize,
    },
    /// A clip cannot be read or resampled.
    #[error("{path}: {detail}")]
    Audio {
        /// The clip.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The feature cache failed.
    #[error(transparent)]
    Cache(#[from] crate::features::cache::CacheError),
}

/// True when `transcript` says one of `words` (each lower case): the word itself, or
/// the word with `s`, `es`, `ed`, `ing` or `'s`.
pub fn says_a_word(transcript: &str, words: &BTreeSet<&str>) -> bool {
    transcript
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|t| !t.is_empty())
        .any(|token| {
            let token = token.trim_matches('\'');
            words.contains(token)
                || ["'s", "s", "es", "ed", "ing"].iter().any(|ending| {
                    token
                        .strip_suffix(ending)
                        .is_some_and(|stem| words.contains(stem))
                })
        })
}

/// The most windows one speaker group gives the training part: a big group would
/// otherwise outnumber the keyword utterances many times over (and slow training with
/// it) while adding one voice; its clips are kept evenly spread ([`spread`]).
pub const TRAINING_WINDOWS_PER_GROUP: usize = 24;

/// Every k-th of `clips` (in their order), k chosen so that the kept windows reach
/// `most` and no more than one clip's past it; all of them when they have fewer.
fn spread(clips: Vec<ClipWindows>, most: usize) -> Vec<ClipWindows> {
    let total: usize = clips.iter().map(|c| c.windows.len()).sum();
    if total <= most {
        return clips;
    }
    let stride = (total / most).max(1);
    let mut kept = Vec::new();
    let mut windows = 0;
    for clip in clips.into_iter().step_by(stride) {
        if windows >= most {
            break;
        }
        windows += clip.windows.len();
        kept.push(clip);
    }
    kept
}

/// The windows of a clip `duration_s` long: the fewest equal pieces of at most
/// [`WINDOW_SECONDS`].
fn pieces(duration_s: f64) -> usize {
    ((duration_s / WINDOW_SECONDS).ceil() as usize).max(1)
}

impl RealNegatives {
    /// The clips of `set` that say none of `vocabulary`, cut into windows and split by
    /// speaker (see the module documentation).
    pub fn split(set: &RealSpeech, vocabulary: &[String]) -> Result<Self, NegativesError> {
        let words: BTreeSet<&str> = vocabulary.iter().map(String::as_str).collect();
        let mut left_out = LeftOut::default();
        let mut groups: BTreeMap<String, Vec<ClipWindows>> = BTreeMap::new();
        for clip in &set.clips {
            if clip.kind != ClipKind::Noise && clip.transcript.trim().is_empty() {
                left_out.no_transcript += 1;
                continue;
            }
            if says_a_word(&clip.transcript, &words) {
                left_out.vocabulary_word += 1;
                continue;
            }
            if clip.duration_s > f64::from(LONGEST_CLIP_SECONDS) {
                left_out.too_long += 1;
                continue;
            }
            let relative = clip
                .path
                .strip_prefix(&set.root)
                .unwrap_or(&clip.path)
                .display()
                .to_string();
            let n = pieces(clip.duration_s);
            let group = format!("{}/{}", clip.source, clip.speaker);
            let windows = (0..n)
                .map(|piece| NegativeWindow {
                    id: format!("{ID_PREFIX}{relative}#{piece}/{n}"),
                    piece,
                    pieces: n,
                })
                .collect();
            groups.entry(group.clone()).or_default().push(ClipWindows {
                clip: clip.clone(),
                group,
                windows,
            });
        }
        if groups.len() < 3 {
            return Err(NegativesError::TooFewSpeakers {
                root: set.root.clone(),
                groups: groups.len(),
            });
        }
        let mut order: Vec<(String, Vec<ClipWindows>)> = groups.into_iter().collect();
        let windows = |clips: &[ClipWindows]| clips.iter().map(|c| c.windows.len()).sum::<usize>();
        let english = |clips: &[ClipWindows]| clips.iter().all(|c| c.clip.is_english());
        // Most windows first; the map's order (by name) breaks ties. The calibration
        // part is the biggest English group: the board's visitors speak the
        // vocabulary's language, so its threshold is set on that language.
        order.sort_by_key(|(_, clips)| std::cmp::Reverse(windows(clips)));
        if let Some(first_english) = order.iter().position(|(_, clips)| english(clips)) {
            let calibration = order.remove(first_english);
            order.insert(0, calibration);
        }
        let mut parts = [
            NegativePart::default(),
            NegativePart::default(),
            NegativePart::default(),
        ];
        for (i, (group, clips)) in order.into_iter().enumerate() {
            // parts: 0 training, 1 calibration, 2 test.
            let part = match i {
                0 => 1,
                i if i % 2 == 1 => 2,
                _ => 0,
            };
            let clips = if part == 0 {
                spread(clips, TRAINING_WINDOWS_PER_GROUP)
            } else {
                clips
            };
            parts[part].groups.push(group);
            parts[part].clips.extend(clips);
        }
        for part in &mut parts {
            part.groups.sort();
        }
        let [train, calibration, test] = parts;
        Ok(Self {
            root: set.root.clone(),
            train,
            calibration,
            test,
            left_out,
        })
    }

    /// One line per part, and what was left out.
    pub fn summary(&self) -> String {
        format!(
            "recorded speech without a vocabulary word from {}: training {}; calibration {}; unseen test {}; left out {} clip(s) saying a vocabulary word, {} without a transcript",
            self.root.display(),
            self.train.describe(),
            self.calibration.describe(),
            self.test.describe(),
            self.left_out.vocabulary_word,
            self.left_out.no_transcript + self.left_out.too_long,
        )
    }
}

impl ClipWindows {
    /// Each window's samples at `rate` Hz: the clip decoded, mixed to mono, resampled
    /// whole and cut into its pieces (neither trimmed nor normalised).
    pub fn samples(&self, rate: u32) -> Result<Vec<Vec<f32>>, NegativesError> {
        let error = |detail: String| NegativesError::Audio {
            path: self.clip.path.clone(),
            detail,
        };
        let audio =
            decode_file(&self.clip.path, LONGEST_CLIP_SECONDS).map_err(|e| error(e.to_string()))?;
        let samples = resample_to(&audio.samples, audio.sample_rate, rate)
            .map_err(|e| error(e.to_string()))?;
        let n = self.windows.len().max(1);
        Ok((0..n)
            .map(|k| samples[k * samples.len() / n..(k + 1) * samples.len() / n].to_vec())
            .filter(|w| !w.is_empty())
            .collect())
    }
}

/// A copy of a training window the spotter learns from besides the window itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Augment {
    /// Through a telephone band: resampled to 8 kHz and back. The corpus low-passes its
    /// sad and disgust utterances, so without it a band-limited voice passes for a
    /// keyword (measured: most of the 8 kHz unseen voice's windows did).
    Telephone,
    /// Played 10 % faster (and higher).
    Faster,
    /// Played 10 % slower (and lower).
    Slower,
    /// Cut into the fewest equal pieces of at most [`SHORT_SECONDS`]: single words and
    /// short phrases, as long as the corpus's trimmed utterances or shorter (measured:
    /// the unseen voice's one-word clips were its most accepted windows).
    Short,
}

/// The longest piece of [`Augment::Short`], seconds.
pub const SHORT_SECONDS: f64 = 1.2;

impl Augment {
    /// The suffix of the copy's example id.
    pub fn name(self) -> &'static str {
        match self {
            Augment::Telephone => "telephone",
            Augment::Faster => "faster",
            Augment::Slower => "slower",
            Augment::Short => "short",
        }
    }

    /// The copies of `samples` (at `rate` Hz): one, or the pieces of [`Augment::Short`]
    /// (none when the window is no longer than a piece).
    pub fn apply(self, samples: &[f32], rate: u32) -> Result<Vec<Vec<f32>>, String> {
        let played_at = |factor: f64| (f64::from(rate) * factor).round() as u32;
        let one = match self {
            Augment::Telephone => resample_to(samples, rate, 8_000)
                .and_then(|narrow| resample_to(&narrow, 8_000, rate)),
            Augment::Faster => resample_to(samples, played_at(1.1), rate),
            Augment::Slower => resample_to(samples, played_at(0.9), rate),
            Augment::Short => {
                let seconds = samples.len() as f64 / f64::from(rate);
                let n = (seconds / SHORT_SECONDS).ceil() as usize;
                if n <= 1 {
                    return Ok(Vec::new());
                }
                return Ok((0..n)
                    .map(|k| samples[k * samples.len() / n..(k + 1) * samples.len() / n].to_vec())
                    .collect());
            }
        };
        one.map(|copy| vec![copy]).map_err(|e| e.to_string())
    }
}

/// The speech features of every window of `part` and of its `augments` copies (cached
/// in `cache` under the extractor's key for the samples), as examples labelled with a
/// placeholder emotion; `jobs` clips at a time.
pub fn window_examples(
    part: &NegativePart,
    extractor: &Extractor,
    cache: &FeatureCache,
    jobs: usize,
    augments: &[Augment],
) -> Result<Vec<Example>, NegativesError> {
    let rate = extractor.settings().frontend.target_rate;
    let dtype = extractor.settings().dtype;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<Vec<Example>, NegativesError>)>> = Mutex::default();
    // Thousands of windows take minutes; indicatif draws only on a terminal.
    let bar = ProgressBar::new(part.clips.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "recorded speech {bar:30} {pos}/{len} clips {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(clip) = part.clips.get(i) else { break };
                    let result = clip_examples(clip, extractor, cache, rate, dtype, augments);
                    if let Ok(mut all) = results.lock() {
                        all.push((i, result));
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut examples = Vec::with_capacity(part.len());
    for (_, result) in results {
        examples.extend(result?);
    }
    Ok(examples)
}

fn clip_examples(
    clip: &ClipWindows,
    extractor: &Extractor,
    cache: &FeatureCache,
    rate: u32,
    dtype: crate::features::cache::FeatureDtype,
    augments: &[Augment],
) -> Result<Vec<Example>, NegativesError> {
    let samples = clip.samples(rate)?;
    if samples.len() != clip.windows.len() {
        return Err(NegativesError::Audio {
            path: clip.clip.path.clone(),
            detail: format!(
                "{} window(s) of audio where the index's duration ({:.3} s) makes {}",
                samples.len(),
                clip.clip.duration_s,
                clip.windows.len()
            ),
        });
    }
    let error = |detail: String| NegativesError::Audio {
        path: clip.clip.path.clone(),
        detail,
    };
    let example = |id: String, samples: &[f32]| -> Result<Example, NegativesError> {
        let path = extractor.samples_path(samples);
        let speech: Features = match cache.read(&path) {
            Ok(features) => features,
            Err(_) => {
                let features = extractor
                    .speech_features_of_samples(samples, &id)
                    .map_err(error)?;
                cache.write(&path, &features, dtype)?;
                features
            }
        };
        Ok(Example {
            id,
            speech,
            text: None,
            label: Emotion::Neutral,
        })
    };
    let mut examples = Vec::with_capacity(clip.windows.len() * (1 + augments.len()));
    for (window, samples) in clip.windows.iter().zip(samples) {
        examples.push(example(window.id.clone(), &samples)?);
        for augment in augments {
            for (k, copy) in augment
                .apply(&samples, rate)
                .map_err(error)?
                .iter()
                .enumerate()
            {
                let id = format!("{}~{}{k}", window.id, augment.name());
                examples.push(example(id, copy)?);
            }
        }
    }
    Ok(examples)
}

/// The colours of [`noise_examples`].
const NOISE_COLOURS: [&str; 3] = ["white", "pink", "brown"];

/// Synthetic noise the spotter learns is "not a keyword" besides recorded speech:
/// `per_colour` clips of white, pink and brown noise each, 1 to 3 s, at levels from
/// −50 to −10 dBFS (the front-end normalises each, so a near-silent stretch of a
/// recording reaches the head as loud noise: measured, such stretches passed for
/// keywords). Seeded: the same clips every time; features cached as windows' are.
pub fn noise_examples(
    per_colour: usize,
    extractor: &Extractor,
    cache: &FeatureCache,
) -> Result<Vec<Example>, NegativesError> {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let rate = extractor.settings().frontend.target_rate;
    let dtype = extractor.settings().dtype;
    let mut rng = ChaCha8Rng::seed_from_u64(0x6e6f697365);
    let mut uniform = move || (rng.next_u32() as f64 / f64::from(u32::MAX)) * 2.0 - 1.0;
    let mut examples = Vec::new();
    for (c, colour) in NOISE_COLOURS.iter().enumerate() {
        for k in 0..per_colour {
            let fraction = if per_colour > 1 {
                k as f64 / (per_colour - 1) as f64
            } else {
                0.5
            };
            let seconds = 1.0 + 2.0 * fraction;
            let level = 10f64.powf(
                (-50.0
                    + 40.0 * ((k * 7 + c * 3) % per_colour.max(1)) as f64
                        / per_colour.max(1) as f64)
                    / 20.0,
            );
            let n = (seconds * f64::from(rate)) as usize;
            // Pink: Paul Kellet's economy filter; brown: leaky integral of white.
            let (mut b0, mut b1, mut b2, mut brown) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            let samples: Vec<f32> = (0..n)
                .map(|_| {
                    let white = uniform();
                    let v = match c {
                        0 => white,
                        1 => {
                            b0 = 0.99765 * b0 + white * 0.0990460;
                            b1 = 0.96300 * b1 + white * 0.2965164;
                            b2 = 0.57000 * b2 + white * 1.0526913;
                            (b0 + b1 + b2 + white * 0.1848) * 0.25
                        }
                        _ => {
                            brown = 0.98 * brown + white * 0.1;
                            brown * 2.0
                        }
                    };
                    (v * level) as f32
                })
                .collect();
            let id = format!("{NOISE_PREFIX}{colour}#{k}");
            let path = extractor.samples_path(&samples);
            let speech = match cache.read(&path) {
                Ok(features) => features,
                Err(_) => {
                    let features = extractor
                        .speech_features_of_samples(&samples, &id)
                        .map_err(|detail| NegativesError::Audio {
                            path: PathBuf::from(&id),
                            detail,
                        })?;
                    cache.write(&path, &features, dtype)?;
                    features
                }
            };
            examples.push(Example {
                id,
                speech,
                text: None,
                label: Emotion::Neutral,
            });
        }
    }
    Ok(examples)
}

/// The real-speech set for the spotter: `Ok(None)` when `root` holds none (the caller
/// says so and goes on without), an error when it holds a damaged one.
pub fn open_set(
    root: &Path,
) -> Result<Option<RealSpeech>, emotion_core::real_speech::RealSpeechError> {
    match RealSpeech::open(root) {
        Ok(set) => Ok(Some(set)),
        Err(emotion_core::real_speech::RealSpeechError::Missing(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(
        root: &Path,
        name: &str,
        source: &str,
        speaker: &str,
        kind: ClipKind,
        seconds: f64,
        transcript: &str,
    ) -> Clip {
        Clip {
            path: root.join(name),
            source: source.into(),
            licence: "x".into(),
            rate_hz: 8000,
            channels: 1,
            duration_s: seconds,
            speaker: speaker.into(),
            kind,
            transcript: transcript.into(),
            language: "en".into(),
        }
    }

    #[test]
    fn a_word_is_said_with_its_endings_not_inside_other_words() {
        let words: BTreeSet<&str> = ["dog", "back", "rose"].into_iter().collect();
        for said in [
            "the dog",
            "Dogs!",
            "backed up",
            "backing",
            "the dog's bone",
            "rose",
            "roses are red",
        ] {
            assert!(says_a_word(said, &words), "{said}");
        }
        for not in ["hotdogs", "background", "doge", "", "prose"] {
            assert!(!says_a_word(not, &words), "{not}");
        }
    }

    #[test]
    fn parts_are_split_by_speaker_with_the_largest_group_unseen() {
        let root = Path::new("/cache");
        let set = RealSpeech {
            root: root.to_path_buf(),
            clips: vec![
                clip(
                    root,
                    "a1.wav",
                    "a",
                    "big",
                    ClipKind::Sentence,
                    7.0,
                    "hello there",
                ),
                clip(root, "a2.wav", "a", "big", ClipKind::Word, 0.8, "yes"),
                clip(root, "a3.wav", "a", "big", ClipKind::Word, 0.8, "dog"),
                clip(root, "b1.wav", "b", "x", ClipKind::Phrase, 2.0, "one two"),
                clip(root, "b2.wav", "b", "x", ClipKind::Phrase, 2.0, "three"),
                clip(root, "c1.wav", "c", "y", ClipKind::Phrase, 2.4, "four"),
                clip(root, "c2.wav", "c", "unknown", ClipKind::Noise, 1.0, ""),
                clip(root, "d1.wav", "d", "z", ClipKind::Sentence, 9.0, ""),
            ],
        };
        let n = RealNegatives::split(&set, &["dog".to_string()]).unwrap();
        // a/big: 3 + 1 windows (a3 says "dog"); b/x 2; c/unknown 1 (noise); c/y 1:
        // calibration, test, training, test.
        assert_eq!(n.calibration.groups, ["a/big"]);
        assert_eq!(n.calibration.len(), 4);
        assert_eq!(n.calibration.clips[0].windows[2].id, "real:a1.wav#2/3");
        assert_eq!(n.train.groups, ["c/unknown"]);
        assert_eq!(n.test.groups, ["b/x", "c/y"]);
        assert_eq!(n.left_out.vocabulary_word, 1);
        assert_eq!(n.left_out.no_transcript, 1);
        let all: BTreeSet<&String> = n
            .train
            .groups
            .iter()
            .chain(&n.calibration.groups)
            .chain(&n.test.groups)
            .collect();
        assert_eq!(all.len(), 4, "no group in two parts");
        let summary = n.summary();
        assert!(
            summary.contains("calibration 4 windows (8 s) of a/big"),
            "{summary}"
        );
        assert!(
            summary.contains("unseen test 3 windows (6 s) of b/x, c/y"),
            "{summary}"
        );

        let two = RealSpeech {
            root: root.to_path_buf(),
            clips: set.clips[..5].to_vec(),
        };
        let err = RealNegatives::split(&two, &[]).unwrap_err();
        assert!(err.to_string().contains("2 speaker group(s)"), "{err}");
    }

    #[test]
    fn a_big_group_gives_training_evenly_spread_clips_up_to_the_cap() {
        let root = Path::new("/cache");
        let clips: Vec<Clip> = (0..20)
            .map(|i| {
                let name = format!("a{i:02}.wav");
                clip(root, &name, "a", "big", ClipKind::Phrase, 2.0, "hello")
            })
            .chain((0..300).map(|i| {
                let name = format!("t{i:03}.wav");
                clip(root, &name, "t", "huge", ClipKind::Phrase, 2.0, "hello")
            }))
            .chain((0..200).map(|i| {
                let name = format!("u{i:03}.wav");
                clip(root, &name, "u", "large", ClipKind::Phrase, 2.0, "hello")
            }))
            .collect();
        let set = RealSpeech {
            root: root.to_path_buf(),
            clips,
        };
        let n = RealNegatives::split(&set, &[]).unwrap();
        assert_eq!(n.calibration.groups, ["t/huge"]);

        let mut foreign = set.clone();
        for c in foreign.clips.iter_mut().filter(|c| c.source == "t") {
            c.language = "fr".into();
        }
        let f = RealNegatives::split(&foreign, &[]).unwrap();
        assert_eq!(
            f.calibration.groups,
            ["u/large"],
            "the biggest English group"
        );
        assert_eq!(f.test.groups, ["t/huge"]);
        assert_eq!(f.train.groups, ["a/big"]);
        assert_eq!(n.calibration.len(), 300, "calibration is never capped");
        assert_eq!(n.test.groups, ["u/large"]);
        assert_eq!(n.test.len(), 200, "the unseen test is never capped");
        assert_eq!(n.train.groups, ["a/big"]);
        assert_eq!(n.train.len(), 20, "a group under the cap is kept whole");

        let big: Vec<ClipWindows> = n.test.clips.clone();
        let kept = spread(big, TRAINING_WINDOWS_PER_GROUP);
        assert_eq!(kept.len(), TRAINING_WINDOWS_PER_GROUP);
        assert!(kept[0].clip.path.ends_with("u000.wav"));
        assert!(kept[1].clip.path.ends_with("u008.wav"), "every 8th of 200");
        assert!(kept.last().unwrap().clip.path.ends_with("u184.wav"));
    }

    #[test]
    fn augments_keep_the_rate_and_cut_short_pieces() {
        let rate = 16_000;
        let tone: Vec<f32> = (0..rate * 2)
            .map(|i| (i as f32 * 0.3).sin() * 0.5)
            .collect();
        let telephone = Augment::Telephone.apply(&tone, rate as u32).unwrap();
        assert_eq!(telephone.len(), 1);
        assert!(telephone[0].len().abs_diff(tone.len()) <= 2);
        // 0.3 rad per sample at 16 kHz is 764 Hz: inside the telephone band, kept.
        let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        assert!((rms(&telephone[0][1000..30_000]) - rms(&tone)).abs() < 0.02);
        // 3 rad per sample is 7.6 kHz: above the band, gone.
        let high: Vec<f32> = (0..rate * 2)
            .map(|i| (i as f32 * 3.0).sin() * 0.5)
            .collect();
        let cut = Augment::Telephone.apply(&high, rate as u32).unwrap();
        assert!(rms(&cut[0][1000..30_000]) < 0.01, "{}", rms(&cut[0]));
        let faster = Augment::Faster.apply(&tone, rate as u32).unwrap();
        assert!(faster[0].len().abs_diff(tone.len() * 10 / 11) <= 2);
        let slower = Augment::Slower.apply(&tone, rate as u32).unwrap();
        assert!(slower[0].len().abs_diff(tone.len() * 10 / 9) <= 2);
        let pieces = Augment::Short.apply(&tone, rate as u32).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces.concat(), tone);
        assert!(
            Augment::Short
                .apply(&tone[..rate], rate as u32)
                .unwrap()
                .is_empty()
        );
        assert!(is_negative_id("real:x.wav#0/1") && is_negative_id("noise:white#0"));
        assert!(!is_negative_id("OAF_back_angry"));
    }

    #[test]
    fn windows_are_equal_pieces_of_at_most_three_seconds() {
        assert_eq!(pieces(0.5), 1);
        assert_eq!(pieces(3.0), 1);
        assert_eq!(pieces(3.01), 2);
        assert_eq!(pieces(30.0), 10);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..(8000 * 7) {
            w.write_sample(((i as f32 * 0.05).sin() * 8000.0) as i16)
                .unwrap();
        }
        w.finalize().unwrap();
        let c = ClipWindows {
            clip: clip(
                dir.path(),
                "tone.wav",
                "t",
                "s",
                ClipKind::Sentence,
                7.0,
                "la",
            ),
            group: "t/s".into(),
            windows: (0..3)
                .map(|piece| NegativeWindow {
                    id: format!("real:tone.wav#{piece}/3"),
                    piece,
                    pieces: 3,
                })
                .collect(),
        };
        let samples = c.samples(16_000).unwrap();
        assert_eq!(samples.len(), 3);
        let total: usize = samples.iter().map(Vec::len).sum();
        assert_eq!(total, 16_000 * 7);
        assert!(samples.iter().all(|w| w.len().abs_diff(total / 3) <= 1));
    }
}
