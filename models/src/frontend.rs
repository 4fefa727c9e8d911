//! The audio front-end: from a WAV file, WAV bytes or microphone samples to the
//! model's input, 16 kHz mono `f32`, normalised to zero mean and unit variance.
//!
//! The host (training) and the board (inference) both call [`Frontend`], so a clip gives
//! the same samples on both. The stages, one module each:
//!
//! 1. [`header`]: read and check the WAV header (also [`probe_wav`], header only);
//! 2. [`decode`]: decode the samples with hound and average the channels;
//! 3. [`resample`]: convert to the target rate with a windowed-sinc resampler (rubato);
//! 4. [`normalise`]: `(x - mean) / sqrt(var + 1e-7)`, as HF's `Wav2Vec2FeatureExtractor`.
//!
//! Errors are [`AudioError`]s that name the file and say what to do about it.

pub mod decode;
pub mod error;
pub mod header;
pub mod normalise;
pub mod resample;

#[cfg(test)]
mod test_wav;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use decode::{DecodedAudio, decode_bytes, decode_file};
pub use error::{AudioError, AudioErrorKind};
pub use header::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SampleFormat, WavInfo, probe_wav};
pub use normalise::normalize;
pub use resample::{ClipResampler, ResampleError, resample_to, resampled_len};

/// How the front-end prepares audio. It is part of a model bundle's manifest: a model
/// must be fed audio prepared the way it was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendConfig {
    /// The sample rate the model expects, in Hz (16 000 for HuBERT and wav2vec2).
    pub target_rate: u32,
    /// Whether to normalise each clip to zero mean and unit variance.
    pub normalize: bool,
    /// Longest clip accepted, in seconds; longer ones fail with [`AudioError::TooLong`].
    pub max_seconds: f32,
}

impl Default for FrontendConfig {
    /// 16 kHz, normalised, at most 60 s.
    fn default() -> Self {
        FrontendConfig {
            target_rate: 16_000,
            normalize: true,
            max_seconds: 60.0,
        }
    }
}

/// The audio front-end: decode, mix to mono, resample, normalise.
#[derive(Debug, Clone, Default)]
pub struct Frontend {
    config: FrontendConfig,
}

impl Frontend {
    /// A front-end with the given configuration. Rates are checked when audio is
    /// processed: a target rate outside the supported range fails every call with
    /// [`AudioError::Resample`].
    pub fn new(config: FrontendConfig) -> Self {
        Frontend { config }
    }

    /// The configuration.
    pub fn config(&self) -> &FrontendConfig {
        &self.config
    }

    /// Decodes the WAV file at `path` to mono at its own rate (with the duration limit).
    pub fn decode_file(&self, path: impl AsRef<Path>) -> Result<DecodedAudio, AudioError> {
        decode_file(path, self.config.max_seconds)
    }

    /// Decodes in-memory WAV data to mono at its own rate; `name` is used in errors.
    pub fn decode_bytes(&self, bytes: &[u8], name: &str) -> Result<DecodedAudio, AudioError> {
        decode_bytes(bytes, name, self.config.max_seconds)
    }

    /// The model input for the WAV file at `path`.
    pub fn process_file(&self, path: impl AsRef<Path>) -> Result<Vec<f32>, AudioError> {
        let path = path.as_ref();
        let audio = self.decode_file(path)?;
        self.process_samples(
            &audio.samples,
            audio.sample_rate,
            &path.display().to_string(),
        )
    }

    /// The model input for in-memory WAV data; `name` is used in errors.
    pub fn process_bytes(&self, bytes: &[u8], name: &str) -> Result<Vec<f32>, AudioError> {
        let audio = self.decode_bytes(bytes, name)?;
        self.process_samples(&audio.samples, audio.sample_rate, name)
    }

    /// The model input for mono samples at `sample_rate` (e.g. from the microphone);
    /// `name` is used in errors.
    pub fn process_samples(
        &self,
        samples: &[f32],
        sample_rate: u32,
        name: &str,
    ) -> Result<Vec<f32>, AudioError> {
        if samples.is_empty() {
            return Err(AudioError::Empty {
                name: name.to_owned(),
                reason: "there are no samples",
            });
        }
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
            return Err(AudioError::UnsupportedSampleRate {
                name: name.to_owned(),
                rate: sample_rate,
            });
        }
        if let Some(index) = samples.iter().position(|x| !x.is_finite()) {
            return Err(AudioError::NonFinite {
                name: name.to_owned(),
                index,
                value: samples[index],
            });
        }
        let seconds = samples.len() as f64 / f64::from(sample_rate);
        decode::check_duration(name, seconds, self.config.max_seconds)?;

        let resample_error = |source| AudioError::Resample {
            name: name.to_owned(),
            source,
        };
        let mut out = ClipResampler::new(sample_rate, self.config.target_rate)
            .and_then(|mut resampler| resampler.process(samples))
            .map_err(resample_error)?;
        if self.config.normalize {
            normalize(&mut out);
        }
        Ok(out)
    }
}
