//! The noises the streams are mixed with, and the mixer that sets the SNR.
//!
//! - `white`: Gaussian white noise.
//! - `pink`: Voss-McCartney pink noise (16 rows of held random values, row `k` redrawn
//!   every `2^k` samples, plus a fresh white value per sample): about -3 dB per octave
//!   from ~1 Hz up (at 16 kHz).
//! - `babble`: 4 to 6 other real talkers at once (English sentence and conversation clips whose
//!   speakers are never targets), each at the same RMS, each looped from its own seeded
//!   offset.
//! - `alsa-noise`: alsa-utils' `Noise.wav` (1.4 s), resampled and looped with a 50 ms
//!   crossfade so the loop point does not click.
//!
//! SNR: speech power over noise power, in dB. Speech power is the mean square of the
//! clean stream over its truth spans (the clips' speech parts, not the silences between
//! them); noise power is the mean square of the noise over the whole stream (the noises
//! are stationary or looped). The noise is scaled to the target and added; SNR infinity
//! is the clean stream.

use std::path::Path;

use emotion_core::frontend::{Frontend, FrontendConfig};
use emotion_core::real_speech::{ClipKind, RealSpeech};

use super::rng::Rng;
use super::segmenters::{BENCH_RATE, Span};

/// The noises of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoiseKind {
    /// Gaussian white noise.
    White,
    /// Voss-McCartney pink noise.
    Pink,
    /// Several real talkers at once.
    Babble,
    /// alsa-utils' `Noise.wav`, looped.
    AlsaNoise,
}

impl NoiseKind {
    /// Every noise, in the table's order.
    pub const ALL: [NoiseKind; 4] = [
        NoiseKind::White,
        NoiseKind::Pink,
        NoiseKind::Babble,
        NoiseKind::AlsaNoise,
    ];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            NoiseKind::White => "white",
            NoiseKind::Pink => "pink",
            NoiseKind::Babble => "babble",
            NoiseKind::AlsaNoise => "alsa-noise",
        }
    }

    /// The kind with this name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Why a mix cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MixError {
    /// The noise is shorter than the stream.
    #[error("the noise has {noise} samples, the stream {stream}")]
    Length {
        /// Noise samples.
        noise: usize,
        /// Stream samples.
        stream: usize,
    },
    /// No speech power to set the SNR against.
    #[error("the stream has no speech power in its truth spans")]
    NoSpeech,
    /// The noise is silent (or not finite).
    #[error("the noise has no usable power")]
    NoNoise,
    /// The SNR is NaN.
    #[error("SNR {0} dB is not a number")]
    BadSnr(f64),
}

/// Mean square of `x` (0 for none); non-finite samples count as 0.
pub fn power(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter()
        .map(|&v| {
            if v.is_finite() {
                f64::from(v).powi(2)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / x.len() as f64
}

/// Mean square of `clean` over the `truth` spans (clipped to the stream).
pub fn speech_power(clean: &[f32], truth: &[Span]) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0u64);
    for span in truth {
        let end = (span.end as usize).min(clean.len());
        let start = (span.start as usize).min(end);
        for &v in &clean[start..end] {
            if v.is_finite() {
                sum += f64::from(v).powi(2);
            }
        }
        n += (end - start) as u64;
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// `clean + g * noise` with `g` such that the SNR (module documentation) is `snr_db`;
/// `snr_db = +inf` gives the clean stream. Uses the first `clean.len()` noise samples.
pub fn mix(
    clean: &[f32],
    truth: &[Span],
    noise: &[f32],
    snr_db: f64,
) -> Result<Vec<f32>, MixError> {
    if snr_db.is_nan() {
        return Err(MixError::BadSnr(snr_db));
    }
    if snr_db == f64::INFINITY {
        return Ok(clean.to_vec());
    }
    if noise.len() < clean.len() {
        return Err(MixError::Length {
            noise: noise.len(),
            stream: clean.len(),
        });
    }
    let noise = &noise[..clean.len()];
    let speech = speech_power(clean, truth);
    if !(speech > 0.0 && speech.is_finite()) {
        return Err(MixError::NoSpeech);
    }
    let noise_power = power(noise);
    if !(noise_power > 0.0 && noise_power.is_finite()) {
        return Err(MixError::NoNoise);
    }
    let gain = (speech / noise_power / 10f64.powf(snr_db / 10.0)).sqrt();
    Ok(clean
        .iter()
        .zip(noise)
        .map(|(&s, &n)| (f64::from(s) + gain * f64::from(n)) as f32)
        .collect())
}

/// The SNR of `mixed` made from `clean` (the noise is their difference), in dB.
pub fn measured_snr_db(clean: &[f32], truth: &[Span], mixed: &[f32]) -> f64 {
    let n = clean.len().min(mixed.len());
    let noise: Vec<f32> = mixed[..n]
        .iter()
        .zip(&clean[..n])
        .map(|(&m, &c)| (f64::from(m) - f64::from(c)) as f32)
        .collect();
    10.0 * (speech_power(clean, truth) / power(&noise)).log10()
}

/// `len` samples of unit-variance Gaussian white noise.
pub fn white(len: usize, rng: &mut Rng) -> Vec<f32> {
    (0..len).map(|_| rng.normal() as f32).collect()
}

/// Rows of the pink generator: octaves below the top it stays pink for.
const PINK_ROWS: usize = 16;

/// `len` samples of Voss-McCartney pink noise (about unit variance).
pub fn pink(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut rows = [0.0f64; PINK_ROWS];
    for r in rows.iter_mut() {
        *r = rng.normal();
    }
    let mut sum: f64 = rows.iter().sum();
    let scale = 1.0 / ((PINK_ROWS + 1) as f64).sqrt();
    let mut out = Vec::with_capacity(len);
    for n in 1..=len as u64 {
        // Row k changes every 2^k samples: the row of n's lowest set bit.
        let k = n.trailing_zeros() as usize;
        if k < PINK_ROWS {
            let new = rng.normal();
            sum += new - rows[k];
            rows[k] = new;
        }
        out.push(((sum + rng.normal()) * scale) as f32);
    }
    out
}

/// `clip` repeated to `len` samples from `offset`, each repeat crossfaded into the next
/// over `crossfade` samples (at most half the clip). An empty clip gives silence.
pub fn looped(clip: &[f32], len: usize, offset: usize, crossfade: usize) -> Vec<f32> {
    if clip.is_empty() {
        return vec![0.0; len];
    }
    let fade = crossfade.min(clip.len() / 2);
    // One period is clip.len() - fade: its first `fade` samples blend the clip's tail
    // (fading out) into its head (fading in), so period boundaries are continuous.
    let period = clip.len() - fade;
    let at = |j: usize| -> f32 {
        if j < fade {
            let w = (j as f32 + 0.5) / fade as f32;
            clip[j] * w + clip[period + j] * (1.0 - w)
        } else {
            clip[j]
        }
    };
    (0..len).map(|i| at((offset + i) % period)).collect()
}

/// Removes the mean and scales to unit RMS (a silent clip stays silent).
pub fn unit_rms(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
    for v in x.iter_mut() {
        *v = (f64::from(*v) - mean) as f32;
    }
    let p = power(x);
    if p > 0.0 {
        let g = 1.0 / p.sqrt();
        for v in x.iter_mut() {
            *v = (f64::from(*v) * g) as f32;
        }
    }
}

/// The sum of `talkers` (each at unit RMS), each looped from a seeded offset, `len`
/// samples.
pub fn babble(talkers: &[Vec<f32>], len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    for talker in talkers {
        let mut t = talker.clone();
        unit_rms(&mut t);
        let offset = rng.below(t.len());
        for (o, v) in out.iter_mut().zip(looped(&t, len, offset, crossfade_len())) {
            *o += v;
        }
    }
    out
}

/// The loops' crossfade: 50 ms.
fn crossfade_len() -> usize {
    (BENCH_RATE / 20) as usize
}

/// How many babble talkers to take, at most.
pub const BABBLE_TALKERS: usize = 6;

/// The recorded noises: babble talkers and alsa's `Noise.wav`, at 16 kHz.
#[derive(Debug, Clone)]
pub struct NoiseBank {
    /// The babble talkers: clip path (relative to the set) and samples.
    pub talkers: Vec<(String, Vec<f32>)>,
    /// alsa's `Noise.wav`, path and samples.
    pub alsa_noise: (String, Vec<f32>),
}

/// The front-end the benchmark decodes clips with: 16 kHz, not normalised, no trim.
pub fn bench_frontend() -> Frontend {
    Frontend::new(FrontendConfig {
        target_rate: BENCH_RATE,
        normalize: false,
        max_seconds: 600.0,
        trim: None,
    })
}

fn relative(set: &RealSpeech, path: &Path) -> String {
    path.strip_prefix(&set.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

impl NoiseBank {
    /// Loads the noises from the set. Babble takes the longest sentence or conversation
    /// clip of each known speaker that is not in `target_speakers`, longest first, at
    /// most [`BABBLE_TALKERS`].
    pub fn load(set: &RealSpeech, target_speakers: &[String]) -> anyhow::Result<Self> {
        let frontend = bench_frontend();
        let mut candidates: Vec<_> = set
            .clips
            .iter()
            .filter(|c| matches!(c.kind, ClipKind::Sentence | ClipKind::Conversation))
            .filter(|c| c.is_english())
            .filter(|c| c.speaker != "unknown" && !target_speakers.contains(&c.speaker))
            .collect();
        candidates.sort_by(|a, b| b.duration_s.total_cmp(&a.duration_s));
        let mut speakers: Vec<&str> = Vec::new();
        let mut talkers = Vec::new();
        for clip in candidates {
            if talkers.len() == BABBLE_TALKERS || speakers.contains(&clip.speaker.as_str()) {
                continue;
            }
            let samples = frontend
                .process_file(&clip.path)
                .map_err(|e| anyhow::anyhow!("babble talker: {e}"))?;
            speakers.push(&clip.speaker);
            talkers.push((relative(set, &clip.path), samples));
        }
        if talkers.len() < 4 {
            anyhow::bail!(
                "babble needs at least 4 talkers who are not targets; the set has {}",
                talkers.len()
            );
        }
        let noise_clip = set
            .of_kind(ClipKind::Noise)
            .find(|c| c.source == "alsa")
            .ok_or_else(|| anyhow::anyhow!("the set has no alsa Noise.wav"))?;
        let mut noise = frontend
            .process_file(&noise_clip.path)
            .map_err(|e| anyhow::anyhow!("alsa noise: {e}"))?;
        unit_rms(&mut noise);
        Ok(NoiseBank {
            talkers,
            alsa_noise: (relative(set, &noise_clip.path), noise),
        })
    }

    /// `len` samples of `kind` for stream `stream` (seeded by `seed`).
    pub fn noise(&self, kind: NoiseKind, len: usize, seed: u64, stream: u64) -> Vec<f32> {
        let mut rng = Rng::derived(seed, kind.name(), stream);
        match kind {
            NoiseKind::White => white(len, &mut rng),
            NoiseKind::Pink => pink(len, &mut rng),
            NoiseKind::Babble => {
                let talkers: Vec<Vec<f32>> = self.talkers.iter().map(|(_, s)| s.clone()).collect();
                babble(&talkers, len, &mut rng)
            }
            NoiseKind::AlsaNoise => {
                let clip = &self.alsa_noise.1;
                let offset = rng.below(clip.len());
                looped(clip, len, offset, crossfade_len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Power spectral density of `x` near `f` Hz: Hann-windowed DFT bins within ±10 % of
    /// `f`, averaged over 4096-sample segments.
    fn psd_near(x: &[f32], f: f64) -> f64 {
        let n = 4_096usize;
        let rate = f64::from(BENCH_RATE);
        let window: Vec<f64> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let lo = ((f * 0.9) * n as f64 / rate).ceil() as usize;
        let hi = ((f * 1.1) * n as f64 / rate).floor() as usize;
        // At most 8 bins per band: enough to average, cheap in a debug build.
        let stride = ((hi - lo) / 8).max(1);
        let (mut total, mut count) = (0.0, 0usize);
        for segment in x.chunks_exact(n).take(24) {
            for bin in (lo.max(1)..=hi).step_by(stride) {
                let w = 2.0 * std::f64::consts::PI * bin as f64 / n as f64;
                let (mut re, mut im) = (0.0, 0.0);
                for (i, (&v, &h)) in segment.iter().zip(&window).enumerate() {
                    let a = w * i as f64;
                    re += f64::from(v) * h * a.cos();
                    im -= f64::from(v) * h * a.sin();
                }
                total += re * re + im * im;
                count += 1;
            }
        }
        total / count.max(1) as f64
    }

    /// Least-squares slope of dB against octaves.
    fn slope_db_per_octave(x: &[f32]) -> f64 {
        let freqs = [62.5, 125.0, 250.0, 500.0, 1_000.0, 2_000.0, 4_000.0];
        let pts: Vec<(f64, f64)> = freqs
            .iter()
            .map(|&f| (f64::log2(f), 10.0 * psd_near(x, f).log10()))
            .collect();
        let n = pts.len() as f64;
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>()
            / pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>()
    }

    #[test]
    fn pink_noise_falls_about_3_db_per_octave_and_white_is_flat() {
        let len = 4_096 * 24;
        let p = pink(len, &mut Rng::new(3));
        let slope = slope_db_per_octave(&p);
        eprintln!("pink: {slope:.2} dB/octave");
        assert!(
            (-3.6..=-2.4).contains(&slope),
            "pink slope {slope} dB/octave"
        );
        let w = white(len, &mut Rng::new(3));
        let slope = slope_db_per_octave(&w);
        eprintln!("white: {slope:.2} dB/octave");
        assert!(slope.abs() < 0.5, "white slope {slope} dB/octave");
        assert!(p.iter().chain(&w).all(|v| v.is_finite()));
        assert_eq!(pink(100, &mut Rng::new(9)), pink(100, &mut Rng::new(9)));
    }

    fn speechy(len: usize, truth: &[Span]) -> Vec<f32> {
        let mut rng = Rng::new(11);
        let mut x = vec![0.0f32; len];
        for s in truth {
            for (i, v) in x[s.start as usize..s.end as usize].iter_mut().enumerate() {
                *v = 0.2 * (i as f32 * 0.05).sin() + 0.05 * rng.normal() as f32;
            }
        }
        x
    }

    #[test]
    fn the_mix_has_the_target_snr_within_a_tenth_of_a_db() {
        let truth = [Span::new(16_000, 30_000), Span::new(50_000, 70_000)];
        let clean = speechy(90_000, &truth);
        for (kind, noise) in [
            ("white", white(100_000, &mut Rng::new(1))),
            ("pink", pink(100_000, &mut Rng::new(2))),
            (
                "loop",
                looped(&pink(5_000, &mut Rng::new(4)), 100_000, 123, 800),
            ),
        ] {
            for snr in [20.0, 10.0, 5.0, 0.0, -5.0] {
                let mixed = mix(&clean, &truth, &noise, snr).expect("mixes");
                assert_eq!(mixed.len(), clean.len());
                let measured = measured_snr_db(&clean, &truth, &mixed);
                assert!(
                    (measured - snr).abs() < 0.1,
                    "{kind} at {snr} dB measured {measured}"
                );
            }
        }
        let clean_again = mix(&clean, &truth, &[], f64::INFINITY).expect("clean");
        assert_eq!(clean_again, clean);
    }

    #[test]
    fn impossible_mixes_are_errors_not_panics() {
        let truth = [Span::new(0, 10)];
        let clean = vec![0.5f32; 20];
        assert!(matches!(
            mix(&clean, &truth, &[1.0; 5], 10.0),
            Err(MixError::Length { .. })
        ));
        assert_eq!(
            mix(&[0.0; 20], &truth, &[1.0; 20], 10.0),
            Err(MixError::NoSpeech)
        );
        assert_eq!(mix(&clean, &[], &[1.0; 20], 10.0), Err(MixError::NoSpeech));
        assert_eq!(
            mix(&clean, &truth, &[0.0; 20], 10.0),
            Err(MixError::NoNoise)
        );
        assert_eq!(
            mix(&clean, &truth, &[f32::NAN; 20], 10.0),
            Err(MixError::NoNoise)
        );
        assert!(matches!(
            mix(&clean, &truth, &[1.0; 20], f64::NAN),
            Err(MixError::BadSnr(_))
        ));
        // Spans past the end are clipped.
        assert!(speech_power(&clean, &[Span::new(15, 99)]) > 0.0);
    }

    #[test]
    fn a_loop_is_continuous_and_the_right_length() {
        let clip: Vec<f32> = (0..1_000).map(|i| i as f32).collect();
        let out = looped(&clip, 5_000, 0, 100);
        assert_eq!(out.len(), 5_000);
        // Period 900: sample 899 is clip[899], 900 starts the blend near clip[900].
        let jumps = out
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f32, emotion_core::scores::nan_max);
        assert!(jumps < 20.0, "largest step {jumps}");
        assert!(looped(&[], 10, 3, 5).iter().all(|&v| v == 0.0));
        assert_eq!(looped(&[1.0], 3, 7, 5), vec![1.0; 3]);
    }

    #[test]
    fn babble_sums_talkers_at_equal_level() {
        let a: Vec<f32> = (0..3_000).map(|i| (i as f32 * 0.01).sin()).collect();
        let b: Vec<f32> = (0..5_000).map(|i| 10.0 * (i as f32 * 0.03).sin()).collect();
        let out = babble(&[a, b], 20_000, &mut Rng::new(5));
        assert_eq!(out.len(), 20_000);
        let p = power(&out);
        // Two unit-RMS talkers, uncorrelated: about 2.
        assert!((1.5..2.5).contains(&p), "{p}");
    }

    #[test]
    fn noise_names_round_trip() {
        for k in NoiseKind::ALL {
            assert_eq!(NoiseKind::parse(k.name()), Some(k));
        }
        assert_eq!(NoiseKind::parse("brown"), None);
    }
}
