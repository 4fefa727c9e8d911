//! Voice-activity segmentation: cuts the resampled stream into utterances for the
//! pipeline.
//!
//! A detector says whether each fixed frame is voiced: the energy detector
//! ([`energy`], 20 ms frames by default, against an adaptive noise floor) or the neural
//! one ([`neural`], Silero VAD's probability per 32 ms chunk, with hysteresis), chosen
//! by [`Segmenter::new`] or [`Segmenter::with_vad`]. The rest is one state machine for
//! both. With the energy detector a frame is voiced when its level is `threshold_db`
//! above the floor and above `min_level_dbfs`. `attack` voiced frames in a row start an utterance (with
//! `pre_roll_ms` of what came before, so soft onsets are kept); `hangover_ms` without a
//! voiced frame ends it (keeping `post_roll_ms` after the last voiced frame). The floor
//! follows the level only outside utterances: quickly down, slowly up, so it settles on
//! the background and not on speech. An utterance that reaches `max_utterance_ms` is
//! cut and emitted; the floor is then raised to the quietest frame it held, so a
//! background that got louder all at once is learnt instead of being taken for endless
//! speech.
//!
//! `listen` runs the neural detector when the bundle carries the VAD (`--segmenter
//! auto`): on recorded speech in white and pink noise it keeps F1 above 0.97 down to
//! 0 dB SNR, where the energy detector finds nothing below 5 dB
//! (docs/results/segmentation-*.md, `scripts/segmentation-table.sh`).
//!
//! The defaults suit the project's corpus ("Say the word X", one utterance per file).
//! Its longest pause inside an utterance (20 ms frames, all 168 files) is 80 ms below
//! -50 dBFS, 180 ms below -45, 220 ms below -40 and 240 ms below -35 dBFS: the louder
//! the room, the higher the threshold and the longer the pauses look. Streamed with
//! background noise, a 300 ms hangover split utterances once the floor reached -42 dBFS
//! and 200 ms at -48, while 400 ms kept all 168 whole; so 400 ms, and one second of
//! silence still separates two utterances. The pre-roll (200 ms) is about the silence the
//! corpus files carry before the speech. The post-roll is 100 ms, the bundles' front-end
//! trim margin: the front-end cuts every clip to its speech plus 100 ms (padding with
//! zeros where the clip is shorter), so a longer post-roll would change nothing the
//! encoder sees and only hold the answer back (`listen` shows an utterance once its
//! post-roll is complete: 200 ms of post-roll made 200 of the 371 ms from end of speech
//! to shown with a base-size bundle).
//!
//! Frames sit at fixed stream positions, so how the stream is cut into `push` calls
//! does not change the utterances. Memory is bounded: the pre-roll is a ring, and an
//! utterance never grows past `max_utterance_ms`.

use std::collections::VecDeque;
use std::time::Instant;

mod energy;
mod neural;

use emotion_core::frontend::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
pub use emotion_core::vad::VadError;
use emotion_core::vad::VadModel;
use serde::{Deserialize, Serialize};

use energy::{EnergyDetector, level_db};
use neural::NeuralDetector;

/// Which detector `listen` segments with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SegmenterKind {
    /// The neural detector when the bundle carries one, else the energy detector.
    #[default]
    Auto,
    /// The energy detector (no model; the cheapest).
    Energy,
    /// Silero VAD, from the bundle (an error when the bundle has none).
    Silero,
}

/// How the segmenter decides where utterances are. All times in ms, levels in dB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmenterConfig {
    /// Analysis frame length.
    pub frame_ms: f32,
    /// How far above the noise floor a frame must be to count as voiced.
    pub threshold_db: f32,
    /// A frame quieter than this (dB full scale) is never voiced, however quiet the room.
    pub min_level_dbfs: f32,
    /// Voiced frames in a row that start an utterance (one loud frame is a click).
    pub attack_frames: u32,
    /// Silence after the last voiced frame that ends an utterance. Longer than the
    /// pauses between words, shorter than the pauses between utterances.
    pub hangover_ms: f32,
    /// Audio kept before the first voiced frame.
    pub pre_roll_ms: f32,
    /// Audio kept after the last voiced frame (at most `hangover_ms`).
    pub post_roll_ms: f32,
    /// Utterances whose voiced part (first to last voiced frame) is shorter are dropped.
    pub min_utterance_ms: f32,
    /// Utterances are cut and emitted at this length (pre-roll included).
    pub max_utterance_ms: f32,
    /// Time constant of the noise floor moving down (fast: the room got quieter).
    pub floor_fall_ms: f32,
    /// Time constant of the noise floor moving up (slow: do not learn speech as noise).
    pub floor_rise_ms: f32,
    /// Neural detector: the speech probability from which a chunk outside an utterance
    /// is voiced.
    pub vad_onset: f32,
    /// Neural detector: the probability below which a chunk inside an utterance is
    /// silence (at most `vad_onset`).
    pub vad_offset: f32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            frame_ms: 20.0,
            threshold_db: 12.0,
            min_level_dbfs: -55.0,
            attack_frames: 2,
            hangover_ms: 400.0,
            pre_roll_ms: 200.0,
            post_roll_ms: 100.0,
            min_utterance_ms: 250.0,
            max_utterance_ms: 8_000.0,
            floor_fall_ms: 100.0,
            floor_rise_ms: 2_000.0,
            vad_onset: 0.5,
            vad_offset: 0.35,
        }
    }
}

/// A [`SegmenterConfig`] that cannot work, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("segmenter setting {field} = {value}: {reason}")]
pub struct ConfigError {
    /// The setting.
    pub field: &'static str,
    /// Its value.
    pub value: f64,
    /// What it must be.
    pub reason: String,
}

impl SegmenterConfig {
    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, value: f32, reason: String| {
            Err(ConfigError {
                field,
                value: f64::from(value),
                reason,
            })
        };
        let finite = [
            ("frame_ms", self.frame_ms),
            ("threshold_db", self.threshold_db),
            ("min_level_dbfs", self.min_level_dbfs),
            ("hangover_ms", self.hangover_ms),
            ("pre_roll_ms", self.pre_roll_ms),
            ("post_roll_ms", self.post_roll_ms),
            ("min_utterance_ms", self.min_utterance_ms),
            ("max_utterance_ms", self.max_utterance_ms),
            ("floor_fall_ms", self.floor_fall_ms),
            ("floor_rise_ms", self.floor_rise_ms),
            ("vad_onset", self.vad_onset),
            ("vad_offset", self.vad_offset),
        ];
        for (field, value) in finite {
            if !value.is_finite() {
                return err(field, value, "must be a finite number".to_owned());
            }
        }
        if !(5.0..=100.0).contains(&self.frame_ms) {
            return err(
                "frame_ms",
                self.frame_ms,
                "must be 5 to 100 ms (10 to 30 is usual)".to_owned(),
            );
        }
        if !(0.0..=60.0).contains(&self.threshold_db) {
            return err(
                "threshold_db",
                self.threshold_db,
                "must be 0 to 60 dB above the noise floor (about 10 to 12 is usual)".to_owned(),
            );
        }
        if !(-120.0..=0.0).contains(&self.min_level_dbfs) {
            return err(
                "min_level_dbfs",
                self.min_level_dbfs,
                "must be -120 to 0 dBFS (about -55 is usual)".to_owned(),
            );
        }
        if !(0.0 < self.vad_onset && self.vad_onset < 1.0) {
            return err(
                "vad_onset",
                self.vad_onset,
                "must be a probability above 0 and below 1 (0.5 is usual)".to_owned(),
            );
        }
        if !(0.0 < self.vad_offset && self.vad_offset <= self.vad_onset) {
            return err(
                "vad_offset",
                self.vad_offset,
                format!("must be above 0 and at most vad_onset ({})", self.vad_onset),
            );
        }
        if !(1..=50).contains(&self.attack_frames) {
            return err(
                "attack_frames",
                self.attack_frames as f32,
                "must be 1 to 50 frames".to_owned(),
            );
        }
        for (field, value) in [
            ("hangover_ms", self.hangover_ms),
            ("pre_roll_ms", self.pre_roll_ms),
            ("post_roll_ms", self.post_roll_ms),
            ("min_utterance_ms", self.min_utterance_ms),
        ] {
            if !(0.0..=10_000.0).contains(&value) {
                return err(field, value, "must be 0 to 10000 ms".to_owned());
            }
        }
        if self.hangover_ms < self.frame_ms {
            return err(
                "hangover_ms",
                self.hangover_ms,
                format!("must be at least one frame ({} ms)", self.frame_ms),
            );
        }
        if self.post_roll_ms > self.hangover_ms {
            return err(
                "post_roll_ms",
                self.post_roll_ms,
                format!(
                    "must not exceed hangover_ms ({} ms): the audio after the hangover is \
                     not waited for",
                    self.hangover_ms
                ),
            );
        }
        let shortest_max = self.pre_roll_ms
            + self.frame_ms * self.attack_frames as f32
            + self.min_utterance_ms.max(self.frame_ms);
        if !(shortest_max..=60_000.0).contains(&self.max_utterance_ms) {
            return err(
                "max_utterance_ms",
                self.max_utterance_ms,
                format!(
                    "must be {shortest_max} ms (pre-roll + attack + min_utterance_ms) to \
                     60000 ms"
                ),
            );
        }
        for (field, value) in [
            ("floor_fall_ms", self.floor_fall_ms),
            ("floor_rise_ms", self.floor_rise_ms),
        ] {
            if !(1.0..=600_000.0).contains(&value) {
                return err(field, value, "must be 1 to 600000 ms".to_owned());
            }
        }
        Ok(())
    }
}

/// One stretch of speech, at the segmenter's rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// The samples: pre-roll, speech, post-roll.
    pub samples: Vec<f32>,
    /// Stream index of `samples[0]` (samples pushed since the segmenter was made).
    pub start_sample: u64,
    /// Stream index just past the last voiced frame.
    pub speech_end_sample: u64,
    /// When the chunk holding the end of the last voiced frame was pushed (for latency).
    pub end_of_speech: Instant,
    /// Whether it was cut at `max_utterance_ms` (the speech may go on in the next one).
    pub cut: bool,
}

impl Utterance {
    /// Stream index just past the last sample.
    pub fn end_sample(&self) -> u64 {
        self.start_sample + self.samples.len() as u64
    }
}

/// What the segmenter has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SegmenterStats {
    /// Utterances emitted (cut ones included).
    pub emitted: u64,
    /// Utterances dropped as shorter than `min_utterance_ms`.
    pub dropped_short: u64,
    /// Utterances cut at `max_utterance_ms`.
    pub cut: u64,
}

/// An utterance being collected.
#[derive(Debug)]
struct Active {
    samples: Vec<f32>,
    start: u64,
    first_voiced: u64,
    last_voiced_end: u64,
    end_of_speech: Instant,
    /// Samples of silence since the last voiced frame.
    silence: usize,
    /// The quietest frame level in it, in dB.
    quietest_db: f64,
    /// Whether [`Segmenter::take_preview`] gave this pause's preview already.
    previewed: bool,
}

/// A neural segmenter that cannot be made, or a chunk its graph could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmenterError {
    /// The settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The VAD graph.
    #[error(transparent)]
    Vad(#[from] VadError),
}

/// What decides whether a frame is voiced.
#[derive(Debug)]
enum Detector {
    Energy(EnergyDetector),
    Neural(NeuralDetector),
}

/// Cuts a mono stream into utterances. See the module documentation.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    detector: Detector,
    rate_hz: u32,
    frame_len: usize,
    hangover_len: usize,
    pre_roll_len: usize,
    post_roll_len: usize,
    min_len: u64,
    max_len: usize,
    attack: u32,
    /// The frame being filled.
    frame: Vec<f32>,
    /// Stream index of `frame[0]`.
    frame_start: u64,
    /// Recent samples outside any utterance: the pre-roll plus the attack frames.
    history: VecDeque<f32>,
    history_cap: usize,
    /// Voiced frames in a row while idle, and where the run began.
    run: u32,
    run_start: u64,
    active: Option<Active>,
    stats: SegmenterStats,
}

impl Segmenter {
    /// An energy segmenter for a stream at `rate_hz`; the configuration is validated.
    pub fn new(config: SegmenterConfig, rate_hz: u32) -> Result<Self, ConfigError> {
        Self::build(config, rate_hz, None)
    }

    /// A segmenter whose frames are `vad`'s chunks, voiced by its probability; the
    /// stream's rate must be the one `vad` was loaded for.
    pub fn with_vad(
        config: SegmenterConfig,
        rate_hz: u32,
        vad: &VadModel,
    ) -> Result<Self, SegmenterError> {
        if vad.rate_hz() != rate_hz {
            return Err(ConfigError {
                field: "rate_hz",
                value: f64::from(rate_hz),
                reason: format!("the VAD was loaded for {} Hz", vad.rate_hz()),
            }
            .into());
        }
        config.validate()?;
        let detector = NeuralDetector::new(vad, &config)?;
        Ok(Self::build(config, rate_hz, Some(detector))?)
    }

    fn build(
        config: SegmenterConfig,
        rate_hz: u32,
        neural: Option<NeuralDetector>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate_hz) {
            return Err(ConfigError {
                field: "rate_hz",
                value: f64::from(rate_hz),
                reason: format!("must be {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"),
            });
        }
        let samples = |ms: f32| ((f64::from(ms) * f64::from(rate_hz) / 1_000.0).round()) as usize;
        let frame_len = match &neural {
            Some(n) => n.frame_len(),
            None => samples(config.frame_ms).max(1),
        };
        let frame_s = frame_len as f64 / f64::from(rate_hz);
        let detector = match neural {
            Some(n) => Detector::Neural(n),
            None => Detector::Energy(EnergyDetector::new(&config, frame_s)),
        };
        let pre_roll_len = samples(config.pre_roll_ms);
        let history_cap = pre_roll_len + frame_len * config.attack_frames as usize;
        Ok(Segmenter {
            frame_len,
            hangover_len: samples(config.hangover_ms).max(frame_len),
            pre_roll_len,
            post_roll_len: samples(config.post_roll_ms),
            min_len: samples(config.min_utterance_ms) as u64,
            max_len: samples(config.max_utterance_ms),
            attack: config.attack_frames,
            detector,
            frame: Vec::with_capacity(frame_len),
            frame_start: 0,
            history: VecDeque::with_capacity(history_cap),
            history_cap,
            run: 0,
            run_start: 0,
            active: None,
            stats: SegmenterStats::default(),
            config,
            rate_hz,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// The stream rate in Hz.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Counters so far.
    pub fn stats(&self) -> SegmenterStats {
        self.stats
    }

    /// The energy detector's noise floor in dBFS (`None` before the first frame, and
    /// with the neural detector).
    pub fn noise_floor_db(&self) -> Option<f64> {
        match &self.detector {
            Detector::Energy(e) => e.floor_db(),
            Detector::Neural(_) => None,
        }
    }

    /// The level a frame must exceed to be voiced, in dBFS (energy detector only).
    pub fn threshold_dbfs(&self) -> Option<f64> {
        match &self.detector {
            Detector::Energy(e) => Some(e.threshold_dbfs()),
            Detector::Neural(_) => None,
        }
    }

    /// The neural detector's last speech probability (`None` before the first chunk,
    /// and with the energy detector).
    pub fn speech_probability(&self) -> Option<f32> {
        match &self.detector {
            Detector::Energy(_) => None,
            Detector::Neural(n) => n.last_probability(),
        }
    }

    /// Which detector: `energy` or `silero`.
    pub fn detector_name(&self) -> &'static str {
        match &self.detector {
            Detector::Energy(_) => "energy",
            Detector::Neural(_) => "silero",
        }
    }

    /// Whether an utterance is being collected.
    pub fn in_speech(&self) -> bool {
        self.active.is_some()
    }

    /// Stream samples pushed so far.
    pub fn position(&self) -> u64 {
        self.frame_start + self.frame.len() as u64
    }

    /// Takes the next piece of the stream; `arrived` is when it came in. Finished
    /// utterances are appended to `out`. Only the neural detector can fail (its graph
    /// did not run); the frame is then dropped and the stream goes on.
    pub fn push(
        &mut self,
        samples: &[f32],
        arrived: Instant,
        out: &mut Vec<Utterance>,
    ) -> Result<(), VadError> {
        let mut rest = samples;
        let mut failed = None;
        while !rest.is_empty() {
            let take = (self.frame_len - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame.len() == self.frame_len {
                if let Err(e) = self.process_frame(arrived, out) {
                    failed.get_or_insert(e);
                }
                self.frame_start += self.frame_len as u64;
                self.frame.clear();
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// The utterance in progress exactly as it will be emitted if no speech follows:
    /// once its post-roll of silence is complete, before the hangover confirms the end
    /// (at most once per pause). `listen` classifies and shows it early, which takes the
    /// hangover's wait out of the latency; if speech resumes, a later preview or the
    /// emitted utterance supersedes it.
    pub fn take_preview(&mut self) -> Option<Utterance> {
        let post_roll = self.post_roll_len.max(1);
        let min_len = self.min_len;
        let active = self.active.as_mut()?;
        let voiced_len = active.last_voiced_end.saturating_sub(active.first_voiced);
        if active.previewed || active.silence < post_roll || voiced_len < min_len {
            return None;
        }
        active.previewed = true;
        let end = active.last_voiced_end + self.post_roll_len as u64;
        let keep = (end.saturating_sub(active.start) as usize).min(active.samples.len());
        Some(Utterance {
            samples: active.samples[..keep].to_vec(),
            start_sample: active.start,
            speech_end_sample: active.last_voiced_end,
            end_of_speech: active.end_of_speech,
            cut: false,
        })
    }

    /// Ends the stream: an utterance in progress is emitted if it is long enough (with
    /// whatever post-roll there is). The next `push` starts afresh, at a later index.
    pub fn finish(&mut self, out: &mut Vec<Utterance>) {
        if let Some(mut active) = self.active.take() {
            let room = self.max_len.saturating_sub(active.samples.len());
            let tail = self.frame.len().min(room);
            active.samples.extend_from_slice(&self.frame[..tail]);
            self.close(active, false, out);
        }
        self.frame_start += self.frame.len() as u64;
        self.frame.clear();
        self.history.clear();
        self.run = 0;
        if let Detector::Neural(n) = &mut self.detector {
            n.reset();
        }
    }

    fn process_frame(
        &mut self,
        arrived: Instant,
        out: &mut Vec<Utterance>,
    ) -> Result<(), VadError> {
        let level = level_db(&self.frame);
        let mut voiced = match &mut self.detector {
            Detector::Energy(e) => e.voiced(level),
            Detector::Neural(n) => n.voiced(&self.frame, self.active.is_some())?,
        };
        let frame_end = self.frame_start + self.frame_len as u64;

        if let Some(mut active) = self.active.take() {
            if active.samples.len() + self.frame_len > self.max_len {
                // Full: emit it, learn its quietest frame as the floor (a steady sound
                // this long is background), and treat this frame as idle.
                let quietest = active.quietest_db;
                self.close(active, true, out);
                if let Detector::Energy(e) = &mut self.detector {
                    voiced = e.raise_after_cut(quietest, level);
                }
            } else {
                // Grow by doubling, but never past max_len (the check above keeps
                // len + frame within it).
                let needed = active.samples.len() + self.frame_len;
                if active.samples.capacity() < needed {
                    let target = (active.samples.capacity() * 2)
                        .min(self.max_len)
                        .max(needed);
                    active.samples.reserve_exact(target - active.samples.len());
                }
                active.samples.extend_from_slice(&self.frame);
                active.quietest_db = active.quietest_db.min(level);
                if voiced {
                    active.last_voiced_end = frame_end;
                    active.end_of_speech = arrived;
                    active.silence = 0;
                    active.previewed = false;
                } else {
                    active.silence += self.frame_len;
                }
                if active.silence >= self.hangover_len {
                    self.close(active, false, out);
                } else {
                    self.active = Some(active);
                }
                return Ok(());
            }
        }

        // Idle: remember the frame for the pre-roll, learn the floor, watch for onsets.
        self.remember_frame();
        if let Detector::Energy(e) = &mut self.detector {
            e.learn_background(level);
        }
        if !voiced {
            self.run = 0;
            return Ok(());
        }
        if self.run == 0 {
            self.run_start = self.frame_start;
        }
        self.run += 1;
        if self.run < self.attack {
            return Ok(());
        }
        self.run = 0;
        let history_start = frame_end.saturating_sub(self.history.len() as u64);
        let start = self
            .run_start
            .saturating_sub(self.pre_roll_len as u64)
            .max(history_start);
        let skip = usize::try_from(start - history_start).unwrap_or(usize::MAX);
        let mut samples = Vec::with_capacity(self.max_len.min(self.history_cap * 4));
        samples.extend(self.history.iter().skip(skip));
        self.history.clear();
        self.active = Some(Active {
            samples,
            start,
            first_voiced: self.run_start,
            last_voiced_end: frame_end,
            end_of_speech: arrived,
            silence: 0,
            quietest_db: level,
            previewed: false,
        });
        Ok(())
    }

    /// Appends the current frame to the bounded pre-roll history.
    fn remember_frame(&mut self) {
        for &x in &self.frame {
            if self.history.len() == self.history_cap {
                self.history.pop_front();
            }
            if self.history_cap > 0 {
                self.history.push_back(x);
            }
        }
    }

    /// Emits (or drops) a finished utterance; what followed its post-roll goes back to
    /// the pre-roll history.
    fn close(&mut self, mut active: Active, cut: bool, out: &mut Vec<Utterance>) {
        let keep_to = if cut {
            active.samples.len()
        } else {
            let end = active.last_voiced_end + self.post_roll_len as u64;
            (end.saturating_sub(active.start) as usize).min(active.samples.len())
        };
        self.history.clear();
        let leftover = active.samples.len() - keep_to;
        let from = keep_to + leftover.saturating_sub(self.history_cap);
        self.history.extend(active.samples[from..].iter().copied());
        active.samples.truncate(keep_to);
        self.run = 0;

        let voiced_len = active.last_voiced_end.saturating_sub(active.first_voiced);
        if !cut && voiced_len < self.min_len {
            self.stats.dropped_short += 1;
            return;
        }
        self.stats.emitted += 1;
        if cut {
            self.stats.cut += 1;
        }
        out.push(Utterance {
            samples: active.samples,
            start_sample: active.start,
            speech_end_sample: active.last_voiced_end,
            end_of_speech: active.end_of_speech,
            cut,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn ms(n: f64) -> usize {
        (n * f64::from(RATE) / 1_000.0).round() as usize
    }

    /// Builds a signal from (duration ms, amplitude of a 300 Hz tone) pieces, over
    /// deterministic background noise of `noise` amplitude.
    fn signal(pieces: &[(f64, f32)], noise: f32) -> Vec<f32> {
        let mut seed: u32 = 12_345;
        let mut out = Vec::new();
        for &(duration, amplitude) in pieces {
            for _ in 0..ms(duration) {
                let t = out.len() as f32 / RATE as f32;
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let n = (seed >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
                out.push(amplitude * (2.0 * std::f32::consts::PI * 300.0 * t).sin() + noise * n);
            }
        }
        out
    }

    fn run(
        config: SegmenterConfig,
        input: &[f32],
        chunk: usize,
    ) -> (Vec<Utterance>, SegmenterStats) {
        let mut segmenter = Segmenter::new(config, RATE).expect("valid");
        let mut out = Vec::new();
        let now = Instant::now();
        for piece in input.chunks(chunk.max(1)) {
            segmenter.push(piece, now, &mut out).unwrap();
        }
        segmenter.finish(&mut out);
        (out, segmenter.stats())
    }

    fn close_to(actual: u64, expected: usize, frames: usize, what: &str) {
        let tolerance = (ms(20.0) * frames) as u64;
        assert!(
            actual.abs_diff(expected as u64) <= tolerance,
            "{what}: {actual} vs {expected} (±{tolerance})"
        );
    }

    /// Utterances with the stream position at which each came out.
    type Timed = Vec<(u64, Utterance)>;

    /// Pushes `input` 10 ms at a time; returns each preview and each emitted utterance.
    fn previews_and_utterances(input: &[f32]) -> (Timed, Timed) {
        let mut segmenter = Segmenter::new(SegmenterConfig::default(), RATE).expect("valid");
        let (mut previews, mut emitted, mut out) = (Vec::new(), Vec::new(), Vec::new());
        for piece in input.chunks(ms(10.0)) {
            segmenter.push(piece, Instant::now(), &mut out).unwrap();
            let at = segmenter.position();
            emitted.extend(out.drain(..).map(|u| (at, u)));
            previews.extend(segmenter.take_preview().map(|u| (at, u)));
        }
        (previews, emitted)
    }

    #[test]
    fn a_preview_after_the_post_roll_is_the_utterance_the_hangover_then_emits() {
        let input = signal(&[(500.0, 0.0), (800.0, 0.3), (1_000.0, 0.0)], 0.001);
        let (previews, emitted) = previews_and_utterances(&input);
        assert_eq!((previews.len(), emitted.len()), (1, 1));
        let (preview_at, preview) = &previews[0];
        let (emitted_at, utterance) = &emitted[0];
        assert_eq!(
            preview.samples, utterance.samples,
            "same audio, so the same answer"
        );
        assert_eq!(preview.start_sample, utterance.start_sample);
        // Out once the post-roll is complete, before the hangover ends.
        let config = SegmenterConfig::default();
        let speech_end = utterance.speech_end_sample;
        close_to(
            preview_at - speech_end,
            ms(f64::from(config.post_roll_ms)),
            1,
            "preview after the end of speech",
        );
        close_to(
            emitted_at - preview_at,
            ms(f64::from(config.hangover_ms - config.post_roll_ms)),
            1,
            "emitted after the preview",
        );
    }

    #[test]
    fn speech_resuming_after_a_preview_gives_a_new_preview_and_the_whole_utterance() {
        // A 300 ms pause: past the post-roll (100), within the hangover (400).
        let input = signal(
            &[
                (500.0, 0.0),
                (600.0, 0.3),
                (300.0, 0.0),
                (600.0, 0.3),
                (1_000.0, 0.0),
            ],
            0.001,
        );
        let (previews, emitted) = previews_and_utterances(&input);
        assert_eq!(emitted.len(), 1, "one utterance across the pause");
        assert_eq!(previews.len(), 2, "one preview per pause");
        let whole = &emitted[0].1;
        assert!(
            previews[0].1.samples.len() < whole.samples.len(),
            "the first was partial"
        );
        assert_eq!(previews[1].1.samples, whole.samples);
    }

    #[test]
    fn tone_bursts_in_silence_are_found_with_their_boundaries() {
        let config = SegmenterConfig::default();
        let input = signal(
            &[
                (1_000.0, 0.0),
                (800.0, 0.3),
                (1_000.0, 0.0),
                (1_500.0, 0.05),
                (1_200.0, 0.0),
            ],
            0.0,
        );
        let (utterances, stats) = run(config.clone(), &input, 4_096);
        assert_eq!(utterances.len(), 2, "{stats:?}");
        for (u, (onset, end)) in utterances
            .iter()
            .zip([(1_000.0, 1_800.0), (2_800.0, 4_300.0)])
        {
            close_to(
                u.start_sample,
                ms(onset - f64::from(config.pre_roll_ms)),
                1,
                "start",
            );
            close_to(u.speech_end_sample, ms(end), 1, "speech end");
            close_to(
                u.end_sample(),
                ms(end + f64::from(config.post_roll_ms)),
                1,
                "end",
            );
            assert_eq!(u.samples.len() as u64, u.end_sample() - u.start_sample);
            assert_eq!(
                u.samples[..],
                input[u.start_sample as usize..u.end_sample() as usize]
            );
            assert!(!u.cut);
        }
        assert_eq!(
            stats,
            SegmenterStats {
                emitted: 2,
                dropped_short: 0,
                cut: 0
            }
        );
    }

    #[test]
    fn short_clicks_are_dropped_and_counted() {
        let input = signal(
            &[
                (500.0, 0.0),
                (60.0, 0.5),
                (600.0, 0.0),
                (100.0, 0.5),
                (600.0, 0.0),
                (600.0, 0.3),
                (700.0, 0.0),
            ],
            0.0,
        );
        let (utterances, stats) = run(SegmenterConfig::default(), &input, 160);
        assert_eq!(utterances.len(), 1);
        close_to(
            utterances[0].speech_end_sample,
            ms(2_460.0),
            1,
            "speech end",
        );
        assert_eq!(stats.dropped_short, 2);
    }

    #[test]
    fn a_single_frame_click_does_not_start_an_utterance() {
        let mut input = vec![0.0f32; ms(1_000.0)];
        input[ms(500.0)] = 1.0;
        let (utterances, stats) = run(SegmenterConfig::default(), &input, 1_000);
        assert!(utterances.is_empty());
        assert_eq!(stats, SegmenterStats::default());
    }

    #[test]
    fn the_floor_adapts_to_a_loud_steady_background() {
        // Noise at about -25 dBFS, far above min_level_dbfs; bursts 15 dB above it.
        let noise = 0.1;
        let input = signal(
            &[
                (3_000.0, 0.0),
                (700.0, 0.5),
                (1_000.0, 0.0),
                (900.0, 0.5),
                (1_500.0, 0.0),
            ],
            noise,
        );
        let mut segmenter = Segmenter::new(SegmenterConfig::default(), RATE).expect("valid");
        let mut out = Vec::new();
        segmenter
            .push(&input[..ms(2_900.0)], Instant::now(), &mut out)
            .unwrap();
        let floor = segmenter.noise_floor_db().expect("floor");
        assert!((-27.0..=-22.0).contains(&floor), "floor {floor}");
        segmenter
            .push(&input[ms(2_900.0)..], Instant::now(), &mut out)
            .unwrap();
        segmenter.finish(&mut out);
        assert_eq!(out.len(), 2, "{:?}", segmenter.stats());
        close_to(out[0].speech_end_sample, ms(3_700.0), 2, "first end");
        close_to(out[1].speech_end_sample, ms(5_600.0), 2, "second end");
    }

    #[test]
    fn a_background_that_jumps_up_is_learnt_after_one_cut() {
        let config = SegmenterConfig {
            max_utterance_ms: 3_000.0,
            ..SegmenterConfig::default()
        };
        let mut input = signal(&[(1_000.0, 0.0)], 0.0);
        input.extend(signal(&[(6_000.0, 0.0), (700.0, 0.6), (1_500.0, 0.0)], 0.1));
        let (utterances, stats) = run(config, &input, 512);
        assert_eq!(stats.cut, 1, "{stats:?}");
        let last = utterances.last().expect("the burst");
        assert!(!last.cut);
        close_to(last.speech_end_sample, ms(7_700.0), 2, "burst end");
        assert_eq!(utterances.len(), 2, "{stats:?}");
    }

    #[test]
    fn a_burst_longer_than_the_maximum_is_cut() {
        let config = SegmenterConfig {
            max_utterance_ms: 2_000.0,
            ..SegmenterConfig::default()
        };
        let input = signal(
            &[
                (500.0, 0.0),
                (4_500.0, 0.3),
                (1_000.0, 0.0),
                (600.0, 0.3),
                (1_000.0, 0.0),
            ],
            0.0,
        );
        let (utterances, stats) = run(config, &input, 999);
        // The first 2 s are cut and emitted; a steady tone that long is then taken for
        // background until the room is quiet again; the next burst is found as usual.
        assert_eq!(utterances.len(), 2, "{stats:?}");
        assert!(utterances[0].cut);
        assert_eq!(utterances[0].samples.len(), ms(2_000.0));
        assert!(
            utterances[0].samples.capacity() <= ms(2_000.0),
            "buffer grew past the cap"
        );
        close_to(utterances[0].start_sample, ms(300.0), 1, "start");
        assert_eq!(stats.cut, 1);
        assert!(!utterances[1].cut);
        close_to(utterances[1].speech_end_sample, ms(6_600.0), 1, "end");
    }

    #[test]
    fn chunk_size_does_not_change_the_result() {
        let input = signal(
            &[
                (700.0, 0.0),
                (900.0, 0.2),
                (150.0, 0.0),
                (500.0, 0.1),
                (900.0, 0.0),
                (40.0, 0.7),
                (800.0, 0.0),
                (2_000.0, 0.3),
            ],
            0.002,
        );
        let (whole, stats) = run(SegmenterConfig::default(), &input, input.len());
        assert_eq!(whole.len(), 2, "{stats:?}");
        let key = |u: &Utterance| (u.start_sample, u.speech_end_sample, u.end_sample(), u.cut);
        for chunk in [1, 37, 160, 1_001] {
            let (pieces, pieces_stats) = run(SegmenterConfig::default(), &input, chunk);
            assert_eq!(
                pieces.iter().map(key).collect::<Vec<_>>(),
                whole.iter().map(key).collect::<Vec<_>>(),
                "chunk {chunk}"
            );
            for (a, b) in pieces.iter().zip(&whole) {
                assert!(a.samples == b.samples, "chunk {chunk}: samples differ");
            }
            assert_eq!(pieces_stats, stats);
        }
    }

    #[test]
    fn finish_emits_an_utterance_in_progress() {
        let input = signal(&[(500.0, 0.0), (700.0, 0.3)], 0.0);
        let (utterances, _) = run(SegmenterConfig::default(), &input, 333);
        assert_eq!(utterances.len(), 1);
        assert_eq!(utterances[0].end_sample(), input.len() as u64);
    }

    #[test]
    fn end_of_speech_is_when_the_last_voiced_frame_arrived() {
        let input = signal(&[(300.0, 0.0), (600.0, 0.3), (1_000.0, 0.0)], 0.0);
        let mut segmenter = Segmenter::new(SegmenterConfig::default(), RATE).expect("valid");
        let mut out = Vec::new();
        let t0 = Instant::now();
        let times: Vec<Instant> = (0..input.len().div_ceil(1_600))
            .map(|i| t0 + std::time::Duration::from_millis(100 * i as u64))
            .collect();
        for (piece, &t) in input.chunks(1_600).zip(&times) {
            segmenter.push(piece, t, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        // The burst ends at 900 ms, inside the chunk pushed at 800 ms.
        assert_eq!(out[0].end_of_speech, times[8]);
    }

    #[test]
    fn bad_settings_are_explained() {
        let bad = [
            SegmenterConfig {
                frame_ms: 0.0,
                ..Default::default()
            },
            SegmenterConfig {
                threshold_db: f32::NAN,
                ..Default::default()
            },
            SegmenterConfig {
                post_roll_ms: 500.0,
                hangover_ms: 300.0,
                ..Default::default()
            },
            SegmenterConfig {
                max_utterance_ms: 100.0,
                ..Default::default()
            },
            SegmenterConfig {
                attack_frames: 0,
                ..Default::default()
            },
            SegmenterConfig {
                floor_rise_ms: 0.0,
                ..Default::default()
            },
        ];
        for config in bad {
            let error = config.validate().expect_err("invalid");
            assert!(!error.reason.is_empty());
            assert!(Segmenter::new(config, RATE).is_err());
        }
        assert!(SegmenterConfig::default().validate().is_ok());
        assert!(Segmenter::new(SegmenterConfig::default(), 0).is_err());
        let message = SegmenterConfig {
            post_roll_ms: 500.0,
            ..Default::default()
        }
        .validate()
        .expect_err("post roll")
        .to_string();
        assert!(message.contains("post_roll_ms = 500"), "{message}");
    }

    #[test]
    fn config_round_trips_through_json_with_defaults_filled_in() {
        let config: SegmenterConfig =
            serde_json::from_str(r#"{"hangover_ms": 350}"#).expect("parses");
        assert_eq!(config.hangover_ms, 350.0);
        assert_eq!(config.frame_ms, SegmenterConfig::default().frame_ms);
        assert!(serde_json::from_str::<SegmenterConfig>(r#"{"hangover": 1}"#).is_err());
    }

    #[test]
    fn odd_input_does_not_panic() {
        let mut segmenter = Segmenter::new(SegmenterConfig::default(), RATE).expect("valid");
        let mut out = Vec::new();
        let now = Instant::now();
        segmenter.push(&[], now, &mut out).unwrap();
        segmenter.push(&[f32::NAN; 1_000], now, &mut out).unwrap();
        segmenter
            .push(&[f32::INFINITY; 1_000], now, &mut out)
            .unwrap();
        segmenter.push(&[1.0; 100_000], now, &mut out).unwrap();
        segmenter.finish(&mut out);
        segmenter.finish(&mut out);
        assert_eq!(segmenter.position(), 102_000);
    }

    /// Neural-detector tests: the shipped Silero model and the committed espeak corpus.
    mod neural {
        use super::*;
        use emotion_core::frontend::{decode_file, resample_to};

        fn vad() -> VadModel {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../data/vad/silero_vad_op18_ifless.onnx"
            );
            let bytes = std::fs::read(path).expect("the committed VAD model");
            VadModel::from_bytes(&bytes, "silero", RATE).expect("loads")
        }

        /// `words` corpus utterances at 16 kHz, each after `gap_ms` of `noise`-amplitude
        /// white noise; with the truth spans (whole clips).
        fn stream(words: &[&str], gap_ms: f64, noise: f32) -> (Vec<f32>, Vec<(usize, usize)>) {
            let dir = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../data/synthetic-tess/TESS Toronto emotional speech set data/OAF_Fear"
            );
            let mut out = signal(&[(gap_ms, 0.0)], noise);
            let mut truth = Vec::new();
            for word in words {
                let clip =
                    decode_file(format!("{dir}/OAF_{word}_fear.wav"), 30.0).expect("corpus clip");
                let clip = resample_to(&clip.samples, clip.sample_rate, RATE).expect("resampled");
                truth.push((out.len(), out.len() + clip.len()));
                let bed = signal(
                    &[(clip.len() as f64 * 1_000.0 / f64::from(RATE), 0.0)],
                    noise,
                );
                out.extend(
                    clip.iter()
                        .zip(bed.iter().chain(std::iter::repeat(&0.0)))
                        .map(|(s, n)| s + n),
                );
                out.extend(signal(&[(gap_ms, 0.0)], noise));
            }
            (out, truth)
        }

        fn segment(input: &[f32], chunk: usize) -> Vec<Utterance> {
            let mut segmenter =
                Segmenter::with_vad(SegmenterConfig::default(), RATE, &vad()).expect("valid");
            assert_eq!(segmenter.detector_name(), "silero");
            let mut out = Vec::new();
            for piece in input.chunks(chunk) {
                segmenter
                    .push(piece, Instant::now(), &mut out)
                    .expect("the VAD runs");
            }
            segmenter.finish(&mut out);
            out
        }

        #[test]
        fn spoken_words_in_noise_are_found_one_utterance_each() {
            let words = ["back", "bean", "chair", "dog"];
            let (input, truth) = stream(&words, 1_500.0, 0.02);
            let found = segment(&input, 320);
            assert_eq!(
                found.len(),
                truth.len(),
                "{:?}",
                found
                    .iter()
                    .map(|u| (u.start_sample, u.end_sample()))
                    .collect::<Vec<_>>()
            );
            for (u, &(start, end)) in found.iter().zip(&truth) {
                let (s, e) = (u.start_sample as usize, u.end_sample() as usize);
                assert!(
                    s < end && e > start,
                    "utterance {s}..{e} misses the word at {start}..{end}"
                );
            }
        }

        #[test]
        fn noise_and_silence_alone_give_no_utterance() {
            assert!(segment(&signal(&[(6_000.0, 0.0)], 0.0), 512).is_empty());
            assert!(segment(&signal(&[(6_000.0, 0.0)], 0.05), 512).is_empty());
        }

        #[test]
        fn chunk_size_does_not_change_the_result() {
            let (input, _) = stream(&["back", "bean"], 800.0, 0.01);
            let spans = |chunk| {
                segment(&input, chunk)
                    .iter()
                    .map(|u| (u.start_sample, u.end_sample()))
                    .collect::<Vec<_>>()
            };
            let reference = spans(512);
            assert!(!reference.is_empty());
            for chunk in [1, 100, 333, 4_096] {
                assert_eq!(spans(chunk), reference, "chunks of {chunk}");
            }
        }

        #[test]
        fn odd_input_does_not_panic_and_rates_must_match() {
            let mut out = Vec::new();
            let mut segmenter =
                Segmenter::with_vad(SegmenterConfig::default(), RATE, &vad()).unwrap();
            segmenter
                .push(&[f32::NAN; 1_000], Instant::now(), &mut out)
                .unwrap();
            segmenter
                .push(&[f32::INFINITY; 1_000], Instant::now(), &mut out)
                .unwrap();
            segmenter
                .push(&[1.0; 40_000], Instant::now(), &mut out)
                .unwrap();
            assert!(
                segmenter
                    .speech_probability()
                    .is_some_and(|p| (0.0..=1.0).contains(&p))
            );
            segmenter.finish(&mut out);
            assert_eq!(
                segmenter.speech_probability(),
                None,
                "a new stream starts afresh"
            );
            let err = Segmenter::with_vad(SegmenterConfig::default(), 8_000, &vad()).unwrap_err();
            assert!(err.to_string().contains("16000 Hz"), "{err}");
            let bad = SegmenterConfig {
                vad_offset: 0.7,
                ..SegmenterConfig::default()
            };
            assert!(
                Segmenter::with_vad(bad, RATE, &vad())
                    .unwrap_err()
                    .to_string()
                    .contains("vad_offset")
            );
        }
    }
}
