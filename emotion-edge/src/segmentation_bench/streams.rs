//! Test streams: real single-word and short-phrase clips, one after another with seeded
//! random silences between them, and where each clip's speech is.
//!
//! - Targets are the set's English `word` and `phrase` clips (the foreign-language
//!   voices are there for the keyword spotter's false accepts), in three groups of voices:
//!   asterisk's words and asterisk's phrases (one professional voice, 8 kHz), and every
//!   other source's (alsa 48 kHz, codec2 8/16 kHz, pocketsphinx 16 kHz: several
//!   speakers and microphones). Stream `i` takes group `i mod 3` in a seeded order.
//! - Each clip is decoded and resampled to 16 kHz with emotion-core's front-end (not
//!   normalised).
//! - TRUTH EXTENT, found on the clean clip: 10 ms frames; a frame is speech when its RMS
//!   is within [`EXTENT_BELOW_PEAK_DB`] dB of the clip's loudest frame AND at least
//!   [`EXTENT_ABOVE_FLOOR_DB`] dB above the clip's floor (its 10th-percentile frame);
//!   the extent runs from the first speech frame's start to the last one's end. A clip
//!   is ONE truth utterance, pauses inside it included (a segmenter that splits a
//!   phrase at a pause scores a split).
//! - Each clip is cut to its extent plus [`MARGIN_MS`] each side (what the recording
//!   holds there: soft onsets and its own background), faded in and out over 5 ms, and
//!   scaled so that its speech part has an RMS of [`SPEECH_LEVEL_DBFS`] dBFS; clips then
//!   differ in voice, not in level.
//! - Layout: [`StreamOptions::lead_s`] of silence, then the clips with a seeded uniform
//!   gap of `gap_s` between one clip's speech end and the next one's speech start
//!   (digital silence outside the cut clips), then `tail_s` after the last one. Clips are
//!   added while the stream is shorter than `seconds` and the group has clips left.

use std::path::Path;

use emotion_core::frontend::Frontend;
use emotion_core::real_speech::{Clip, ClipKind, RealSpeech};

use super::noise::bench_frontend;
use super::rng::Rng;
use super::segmenters::{BENCH_RATE, Span};

/// Frame of the truth-extent rule, ms.
pub const EXTENT_FRAME_MS: u32 = 10;
/// A speech frame is within this many dB of the clip's loudest frame.
pub const EXTENT_BELOW_PEAK_DB: f64 = 40.0;
/// ... and this many dB above the clip's 10th-percentile frame.
pub const EXTENT_ABOVE_FLOOR_DB: f64 = 10.0;
/// Recording kept around each clip's extent, ms.
pub const MARGIN_MS: u32 = 100;
/// Fade at each end of a cut clip, ms.
pub const FADE_MS: u32 = 5;
/// RMS of every clip's speech part in the streams, dBFS.
pub const SPEECH_LEVEL_DBFS: f64 = -26.0;

/// How streams are laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOptions {
    /// Clips are added while the stream is shorter than this, seconds.
    pub seconds: f64,
    /// Speech end to next speech start, seconds, uniform in `[lo, hi)`.
    pub gap_s: (f64, f64),
    /// Silence before the first clip's speech, seconds.
    pub lead_s: f64,
    /// Silence after the last clip's speech, seconds.
    pub tail_s: f64,
}

impl Default for StreamOptions {
    /// 90 s streams, gaps 0.8 to 2.5 s, 1 s lead, 1.5 s tail.
    fn default() -> Self {
        StreamOptions {
            seconds: 90.0,
            gap_s: (0.8, 2.5),
            lead_s: 1.0,
            tail_s: 1.5,
        }
    }
}

/// A group of target clips: one kind of voice.
#[derive(Debug, Clone)]
pub struct VoiceGroup {
    /// Its name in the table.
    pub name: &'static str,
    /// Its clips, in the index's order.
    pub clips: Vec<Clip>,
}

/// The target clips in their three groups (see the module documentation).
pub fn voice_groups(set: &RealSpeech) -> Vec<VoiceGroup> {
    let targets = || {
        set.clips
            .iter()
            .filter(|c| matches!(c.kind, ClipKind::Word | ClipKind::Phrase))
            .filter(|c| c.is_english())
    };
    let groups = [
        VoiceGroup {
            name: "asterisk-words",
            clips: targets()
                .filter(|c| c.source == "asterisk" && c.kind == ClipKind::Word)
                .cloned()
                .collect(),
        },
        VoiceGroup {
            name: "asterisk-phrases",
            clips: targets()
                .filter(|c| c.source == "asterisk" && c.kind == ClipKind::Phrase)
                .cloned()
                .collect(),
        },
        VoiceGroup {
            name: "other-voices",
            clips: targets()
                .filter(|c| c.source != "asterisk")
                .cloned()
                .collect(),
        },
    ];
    groups.into_iter().filter(|g| !g.clips.is_empty()).collect()
}

/// Every speaker id among the target clips (babble must not use them).
pub fn target_speakers(set: &RealSpeech) -> Vec<String> {
    let mut speakers: Vec<String> = voice_groups(set)
        .iter()
        .flat_map(|g| g.clips.iter().map(|c| c.speaker.clone()))
        .collect();
    speakers.sort();
    speakers.dedup();
    speakers
}

/// Where a clip's speech is, by the truth-extent rule (module documentation); `None`
/// for a clip with no frame that passes (silent, or too short for a frame).
pub fn speech_extent(samples: &[f32], rate_hz: u32) -> Option<Span> {
    let frame = (u64::from(rate_hz) * u64::from(EXTENT_FRAME_MS) / 1_000).max(1) as usize;
    let levels: Vec<f64> = samples
        .chunks_exact(frame)
        .map(|f| {
            let p = super::noise::power(f);
            if p > 0.0 { 10.0 * p.log10() } else { -200.0 }
        })
        .collect();
    if levels.is_empty() {
        return None;
    }
    let peak = levels.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sorted = levels.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = sorted[(sorted.len() - 1) / 10];
    let threshold = (peak - EXTENT_BELOW_PEAK_DB).max(floor + EXTENT_ABOVE_FLOOR_DB);
    if peak <= -200.0 || peak < threshold {
        return None;
    }
    let first = levels.iter().position(|&l| l >= threshold)?;
    let last = levels.iter().rposition(|&l| l >= threshold)?;
    Some(Span::new(
        (first * frame) as u64,
        ((last + 1) * frame) as u64,
    ))
}

/// One clip ready to be placed: cut, faded, levelled, with its speech within it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The clip's path, relative to the set.
    pub name: String,
    /// Its speaker.
    pub speaker: String,
    /// 16 kHz samples: the extent plus the margins.
    pub samples: Vec<f32>,
    /// The speech part within `samples`.
    pub speech: Span,
}

/// Decodes one clip and prepares it; `Ok(None)` for a clip with no speech.
pub fn load_target(
    frontend: &Frontend,
    set_root: &Path,
    clip: &Clip,
) -> anyhow::Result<Option<Target>> {
    let decoded = frontend
        .process_file(&clip.path)
        .map_err(|e| anyhow::anyhow!("target clip: {e}"))?;
    let Some(extent) = speech_extent(&decoded, BENCH_RATE) else {
        return Ok(None);
    };
    let ms = |m: u32| (u64::from(BENCH_RATE) * u64::from(m) / 1_000) as usize;
    let start = (extent.start as usize).saturating_sub(ms(MARGIN_MS));
    let end = (extent.end as usize + ms(MARGIN_MS)).min(decoded.len());
    let mut samples = decoded[start..end].to_vec();
    let speech = Span::new(extent.start - start as u64, extent.end - start as u64);
    let level = super::noise::speech_power(&samples, &[speech]);
    if !(level > 0.0 && level.is_finite()) {
        return Ok(None);
    }
    let gain = (10f64.powf(SPEECH_LEVEL_DBFS / 10.0) / level).sqrt();
    let fade = ms(FADE_MS).min(samples.len() / 2);
    let n = samples.len();
    for (i, v) in samples.iter_mut().enumerate() {
        let edge = i.min(n - 1 - i);
        let w = if edge < fade {
            (edge as f64 + 0.5) / fade as f64
        } else {
            1.0
        };
        *v = (f64::from(*v) * gain * w) as f32;
    }
    Ok(Some(Target {
        name: clip
            .path
            .strip_prefix(set_root)
            .unwrap_or(&clip.path)
            .display()
            .to_string(),
        speaker: clip.speaker.clone(),
        samples,
        speech,
    }))
}

/// A test stream: clean samples and where the speech is.
#[derive(Debug, Clone)]
pub struct Stream {
    /// `group#index`.
    pub name: String,
    /// The voice group it was drawn from.
    pub group: &'static str,
    /// 16 kHz samples, no noise.
    pub samples: Vec<f32>,
    /// Each clip's speech part, in order.
    pub truth: Vec<Span>,
    /// The clips, in order (relative paths).
    pub clips: Vec<String>,
    /// The clips' distinct speakers.
    pub speakers: Vec<String>,
}

impl Stream {
    /// Length in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(BENCH_RATE)
    }
}

/// Builds stream `index` from `group` (clips in a seeded order; see the module
/// documentation).
pub fn build_stream(
    set_root: &Path,
    group: &VoiceGroup,
    index: u64,
    seed: u64,
    options: &StreamOptions,
) -> anyhow::Result<Stream> {
    let frontend = bench_frontend();
    let mut order: Vec<&Clip> = group.clips.iter().collect();
    let mut rng = Rng::derived(seed, group.name, index);
    rng.shuffle(&mut order);
    let rate = f64::from(BENCH_RATE);
    let to_samples = |s: f64| (s.max(0.0) * rate).round() as u64;
    let limit = to_samples(options.seconds);
    let (gap_lo, gap_hi) = options.gap_s;
    let mut samples: Vec<f32> = Vec::new();
    let mut truth = Vec::new();
    let mut clips = Vec::new();
    let mut speakers: Vec<String> = Vec::new();
    // Where the next clip's speech starts.
    let mut next_speech = to_samples(options.lead_s);
    for clip in order {
        if samples.len() as u64 >= limit {
            break;
        }
        let Some(target) = load_target(&frontend, set_root, clip)? else {
            continue;
        };
        let offset = next_speech.saturating_sub(target.speech.start);
        let end = offset as usize + target.samples.len();
        if samples.len() < end {
            samples.resize(end, 0.0);
        }
        for (o, &v) in samples[offset as usize..end]
            .iter_mut()
            .zip(&target.samples)
        {
            *o += v;
        }
        let speech = Span::new(offset + target.speech.start, offset + target.speech.end);
        truth.push(speech);
        clips.push(target.name);
        if !speakers.contains(&target.speaker) {
            speakers.push(target.speaker);
        }
        next_speech = speech.end + to_samples(rng.range(gap_lo, gap_hi.max(gap_lo)));
    }
    let Some(last) = truth.last() else {
        anyhow::bail!("group {} has no clip with speech", group.name);
    };
    let total = (last.end + to_samples(options.tail_s)).max(samples.len() as u64) as usize;
    samples.resize(total, 0.0);
    Ok(Stream {
        name: format!("{}#{index}", group.name),
        group: group.name,
        samples,
        truth,
        clips,
        speakers,
    })
}

/// `count` streams: stream `i` from group `i mod groups` (see [`build_stream`]).
pub fn build_streams(
    set: &RealSpeech,
    count: usize,
    seed: u64,
    options: &StreamOptions,
) -> anyhow::Result<Vec<Stream>> {
    let groups = voice_groups(set);
    if groups.is_empty() {
        anyhow::bail!("the set has no word or phrase clips");
    }
    (0..count)
        .map(|i| {
            build_stream(
                &set.root,
                &groups[i % groups.len()],
                i as u64,
                seed,
                options,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extent_is_the_loud_part_above_the_floor() {
        let rate = BENCH_RATE;
        let frame = 160;
        // 30 frames of quiet noise, 50 of "speech", 20 of quiet noise.
        let mut rng = Rng::new(1);
        let mut x: Vec<f32> = (0..100 * frame)
            .map(|_| 0.001 * rng.normal() as f32)
            .collect();
        for v in &mut x[30 * frame..80 * frame] {
            *v += 0.3 * rng.normal() as f32;
        }
        let span = speech_extent(&x, rate).expect("speech");
        assert_eq!(span, Span::new(30 * frame as u64, 80 * frame as u64));
        // A noisy background 30 dB below the speech: the floor rule keeps it out.
        let mut y: Vec<f32> = (0..100 * frame)
            .map(|_| 0.01 * rng.normal() as f32)
            .collect();
        for v in &mut y[40 * frame..60 * frame] {
            *v = 0.3 * rng.normal() as f32;
        }
        assert_eq!(
            speech_extent(&y, rate),
            Some(Span::new(40 * frame as u64, 60 * frame as u64))
        );
        assert_eq!(speech_extent(&[0.0; 16_000], rate), None);
        assert_eq!(
            speech_extent(&[0.5; 10], rate),
            None,
            "shorter than a frame"
        );
        assert_eq!(speech_extent(&[], rate), None);
    }
}
