//! `emotion-edge inspect`: put WAV files through the same front-end the host trained
//! with and say what came out, so a recording from the board's microphone can be
//! checked before any model sees it.

use std::fmt;
use std::path::Path;

use emotion_core::{AudioError, Frontend};
use serde_json::json;

/// What the front-end made of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// Channels before the mix-down.
    pub channels: u16,
    /// Bits per sample.
    pub bits: u16,
    /// Duration in seconds.
    pub seconds: f64,
    /// Samples after resampling to the target rate.
    pub output_samples: usize,
    /// The target rate in Hz.
    pub output_rate: u32,
    /// Peak absolute value before normalisation (1.0 = full scale).
    pub peak: f32,
    /// RMS level before normalisation, in dB full scale.
    pub rms_dbfs: f32,
}

/// Decodes and processes one file.
pub fn inspect_file(frontend: &Frontend, path: &Path) -> Result<Inspection, AudioError> {
    let audio = frontend.decode_file(path)?;
    let output = frontend.process_samples(
        &audio.samples,
        audio.sample_rate,
        &path.display().to_string(),
    )?;
    let peak = audio.samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let mean_square = audio
        .samples
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        / audio.samples.len().max(1) as f64;
    Ok(Inspection {
        sample_rate: audio.sample_rate,
        channels: audio.channels,
        bits: audio.bits,
        seconds: audio.duration_seconds(),
        output_samples: output.len(),
        output_rate: frontend.config().target_rate,
        peak,
        rms_dbfs: (10.0 * mean_square.max(1e-12).log10()) as f32,
    })
}

impl Inspection {
    /// One JSON object, for `--json`.
    pub fn to_json(&self, file: &Path) -> serde_json::Value {
        json!({
            "file": file.display().to_string(),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "bits": self.bits,
            "seconds": self.seconds,
            "output_samples": self.output_samples,
            "output_rate": self.output_rate,
            "peak": self.peak,
            "rms_dbfs": self.rms_dbfs,
        })
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Hz, {} ch, {}-bit, {:.2} s, peak {:.2}, RMS {:.1} dBFS -> {} samples at {} Hz",
            self.sample_rate,
            self.channels,
            self.bits,
            self.seconds,
            self.peak,
            self.rms_dbfs,
            self.output_samples,
            self.output_rate
        )
    }
}
