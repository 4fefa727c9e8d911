//! The segmenters the benchmark compares, behind one small trait, and the list of them by
//! name ([`SEGMENTERS`]).
//!
//! A segmenter is fed the 16 kHz stream piece by piece, as `listen` feeds its segmenter,
//! and hands back the speech it found as [`Span`]s: the SPEECH part of each utterance,
//! not the pre- and post-roll a segmenter adds around it for the classifier (those are
//! each segmenter's own padding; comparing them with a clip's speech would only measure
//! the padding).

use std::time::Instant;

use crate::segmenter::{Segmenter, SegmenterConfig, Utterance};

/// The benchmark's stream rate (the bundles' front-end rate): every position is a
/// sample index at this rate.
pub const BENCH_RATE: u32 = 16_000;

/// The segmenter `listen` runs by default (`--segmenter auto` with a bundle that carries
/// the VAD, as exported bundles and the demo bundle do); the noise targets are asserted
/// for it.
pub const DEFAULT_SEGMENTER: &str = "silero";

/// A stretch of the stream, `[start, end)` in samples at [`BENCH_RATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First sample.
    pub start: u64,
    /// Just past the last sample.
    pub end: u64,
}

impl Span {
    /// `[start, end)`; a reversed pair is made empty at `start`.
    pub fn new(start: u64, end: u64) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// Length in samples.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples it shares with `other`.
    pub fn overlap(&self, other: &Span) -> u64 {
        self.end
            .min(other.end)
            .saturating_sub(self.start.max(other.start))
    }
}

/// A voice-activity segmenter as the benchmark drives it.
pub trait StreamSegmenter {
    /// Its name in the table.
    fn name(&self) -> &str;
    /// Takes the next piece of the 16 kHz stream; returns the utterances that ended in
    /// it (their speech parts, in stream order).
    fn push(&mut self, samples: &[f32]) -> anyhow::Result<Vec<Span>>;
    /// The stream has ended: returns what is still open.
    fn finish(&mut self) -> anyhow::Result<Vec<Span>>;
}

/// A segmenter the table can run, by name.
pub struct NamedSegmenter {
    /// The name `--segmenters` takes and the table shows.
    pub name: &'static str,
    /// One line on what it is, for the table's definitions.
    pub what: &'static str,
    /// Makes a fresh one (one per stream).
    pub make: fn() -> anyhow::Result<Box<dyn StreamSegmenter>>,
}

/// Every segmenter the benchmark knows. To add one, implement [`StreamSegmenter`] and
/// add its line here.
pub const SEGMENTERS: &[NamedSegmenter] = &[
    NamedSegmenter {
        name: "energy",
        what: "emotion-edge's segmenter (`segmenter::Segmenter`) with the energy detector, default settings",
        make: || Ok(Box::new(BoardSegmenter::new(SegmenterConfig::default())?)),
    },
    NamedSegmenter {
        name: "silero",
        what: "emotion-edge's segmenter with the neural detector (Silero VAD, data/vad; onset 0.5, offset 0.35), default settings",
        make: || {
            Ok(Box::new(
                BoardSegmenter::silero(SegmenterConfig::default())?,
            ))
        },
    },
];

/// The committed Silero VAD model.
pub const SILERO_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/vad/silero_vad_op18_ifless.onnx"
);

/// A fresh segmenter by name; an unknown name lists the known ones.
pub fn make_segmenter(name: &str) -> anyhow::Result<Box<dyn StreamSegmenter>> {
    match SEGMENTERS.iter().find(|s| s.name == name) {
        Some(s) => (s.make)(),
        None => anyhow::bail!(
            "unknown segmenter `{name}`; known: {}",
            SEGMENTERS
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The board's [`Segmenter`] (either detector) as a [`StreamSegmenter`].
///
/// Its span is `[start_sample + pre-roll, speech_end_sample)`: from the first voiced
/// frame (the utterance starts `pre_roll_ms` before it) to just past the last voiced
/// frame. The start is exact unless the segmenter had less than the pre-roll to give (an
/// utterance starting within `pre_roll_ms` of the stream's start, or right after a cut at
/// `max_utterance_ms`); it is then up to `pre_roll_ms` late.
#[derive(Debug)]
pub struct BoardSegmenter {
    name: &'static str,
    segmenter: Segmenter,
    pre_roll: u64,
    out: Vec<Utterance>,
}

impl BoardSegmenter {
    /// An energy segmenter at [`BENCH_RATE`] with `config`.
    pub fn new(config: SegmenterConfig) -> anyhow::Result<Self> {
        let pre_roll =
            (f64::from(config.pre_roll_ms) * f64::from(BENCH_RATE) / 1_000.0).round() as u64;
        let segmenter = Segmenter::new(config, BENCH_RATE)
            .map_err(|e| anyhow::anyhow!("energy segmenter: {e}"))?;
        Ok(BoardSegmenter {
            name: "energy",
            segmenter,
            pre_roll,
            out: Vec::new(),
        })
    }

    /// A segmenter at [`BENCH_RATE`] with `config` and the neural detector
    /// ([`SILERO_MODEL`]).
    pub fn silero(config: SegmenterConfig) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(SILERO_MODEL).map_err(|e| anyhow::anyhow!("{SILERO_MODEL}: {e}"))?;
        let vad = emotion_core::vad::VadModel::from_bytes(&bytes, SILERO_MODEL, BENCH_RATE)?;
        let mut board = Self::new(config.clone())?;
        board.segmenter = Segmenter::with_vad(config, BENCH_RATE, &vad)?;
        board.name = "silero";
        Ok(board)
    }

    /// The speech part of one of its utterances.
    pub fn speech_span(&self, u: &Utterance) -> Span {
        let end = u.speech_end_sample;
        Span::new((u.start_sample + self.pre_roll).min(end), end)
    }

    fn drain(&mut self) -> Vec<Span> {
        let out = std::mem::take(&mut self.out);
        out.iter().map(|u| self.speech_span(u)).collect()
    }
}

impl StreamSegmenter for BoardSegmenter {
    fn name(&self) -> &str {
        self.name
    }

    fn push(&mut self, samples: &[f32]) -> anyhow::Result<Vec<Span>> {
        self.segmenter
            .push(samples, Instant::now(), &mut self.out)?;
        Ok(self.drain())
    }

    fn finish(&mut self) -> anyhow::Result<Vec<Span>> {
        self.segmenter.finish(&mut self.out);
        Ok(self.drain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_segmenter_is_made_by_its_name() {
        for s in SEGMENTERS {
            let made = make_segmenter(s.name).expect("makes");
            assert_eq!(made.name(), s.name);
        }
        assert!(SEGMENTERS.iter().any(|s| s.name == DEFAULT_SEGMENTER));
        let err = make_segmenter("nope").err().expect("unknown").to_string();
        assert!(err.contains("energy"), "{err}");
    }

    #[test]
    fn the_energy_span_is_the_voiced_part_of_a_tone_burst() {
        // 1 s silence, 0.8 s tone, 1 s silence.
        let ms = |n: u64| n * u64::from(BENCH_RATE) / 1_000;
        let mut input = vec![0.0f32; ms(1_000) as usize];
        input.extend((0..ms(800)).map(|i| 0.3 * (i as f32 * 0.12).sin()));
        input.extend(vec![0.0f32; ms(1_000) as usize]);
        let mut s = make_segmenter("energy").expect("energy");
        let mut spans = Vec::new();
        for piece in input.chunks(ms(30) as usize) {
            spans.extend(s.push(piece).expect("push"));
        }
        spans.extend(s.finish().expect("finish"));
        assert_eq!(spans.len(), 1, "{spans:?}");
        let frame = ms(20);
        assert!(spans[0].start.abs_diff(ms(1_000)) <= frame, "{spans:?}");
        assert!(spans[0].end.abs_diff(ms(1_800)) <= frame, "{spans:?}");
    }

    #[test]
    fn span_arithmetic() {
        let a = Span::new(10, 20);
        assert_eq!(a.len(), 10);
        assert_eq!(a.overlap(&Span::new(15, 30)), 5);
        assert_eq!(a.overlap(&Span::new(20, 30)), 0);
        assert!(Span::new(5, 3).is_empty());
    }
}
