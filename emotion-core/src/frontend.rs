//! The audio front-end: from a WAV file, WAV bytes or microphone samples to the
//! model's input, 16 kHz mono `f32`, normalised to zero mean and unit variance.
//!
//! The host (training) and the board (inference) both call [`Frontend`], so a clip gives
//! the same samples on both. The stages, one module each:
//!
//! 1. [`header`]: read and check the WAV header, within [`limits`] (also [`probe_wav`],
//!    header only; the board's streaming reader uses the same [`read_header`]);
//! 2. [`decode`]: decode the samples with hound and average the channels;
//! 3. [`resample`]: convert to the target rate with a windowed-sinc resampler (rubato),
//!    a whole clip at once or a stream piece by piece, to the same samples;
//! 4. [`normalise`]: `(x - mean) / sqrt(var + 1e-7)`, as HF's `Wav2Vec2FeatureExtractor`.
//!
//! Errors are [`AudioError`]s that name the file and say what to do about it.

pub mod decode;
pub mod error;
pub mod header;
pub mod limits;
pub mod normalise;
pub mod resample;

#[cfg(test)]
mod test_wav;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use decode::{DecodedAudio, decode_bytes, decode_file};
pub use error::{AudioError, AudioErrorKind};
pub use header::{
    SampleFormat, WavFormat, WavHeader, WavInfo, is_supported, probe_wav, read_header,
};
pub use limits::{MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
pub use normalise::normalize;
pub use resample::{ClipResampler, ResampleError, StreamResampler, resample_to, resampled_len};

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
    /// Cut each clip to its speech plus a fixed margin (after resampling, before
    /// normalising). Off by default (HF's feature extractor does not trim); training
    /// turns it on so that a file and the same utterance cut from a live stream reach
    /// the encoder with the same framing.
    #[serde(default)]
    pub trim: Option<TrimConfig>,
}

/// Where a clip's speech starts and ends, and how much silence to keep around it.
///
/// Why: the board cuts utterances out of a stream, and the segmenter's edges fall tens
/// of milliseconds away from where a file's edges fall. Encoders frame audio every
/// 20 ms, so a shift of even 10 ms changes every frame; measured on the demo's models,
/// 10 ms of extra leading silence changed most predictions. Trimming both to "first
/// speech sample minus the margin" gives them the same framing to the sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrimConfig {
    /// A sample is speech when its magnitude is within this many dB of the clip's peak
    /// (negative).
    pub threshold_db: f32,
    /// Kept before the first and after the last speech sample (zeros are added where the
    /// clip has less), milliseconds.
    pub margin_ms: f32,
}

impl Default for TrimConfig {
    /// Speech within 40 dB of the peak, 100 ms kept on each side.
    fn default() -> Self {
        TrimConfig {
            threshold_db: -40.0,
            margin_ms: 100.0,
        }
    }
}

/// `samples` (at `rate` Hz) cut to their speech plus the margin, padded with zeros where
/// the margin reaches past the clip. A silent clip is returned as it is.
pub fn trim_to_speech(samples: &[f32], rate: u32, trim: &TrimConfig) -> Vec<f32> {
    let peak = samples.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if peak <= 0.0 {
        return samples.to_vec();
    }
    let threshold = peak * 10f32.powf(trim.threshold_db.min(0.0) / 20.0);
    let is_speech = |x: &f32| x.abs() >= threshold;
    let (Some(first), Some(last)) = (
        samples.iter().position(is_speech),
        samples.iter().rposition(is_speech),
    ) else {
        return samples.to_vec();
    };
    let margin = (trim.margin_ms.max(0.0) * rate as f32 / 1000.0).round() as usize;
    let lead = margin.saturating_sub(first);
    let start = first.saturating_sub(margin);
    let end = (last + 1 + margin).min(samples.len());
    let tail = (last + 1 + margin).saturating_sub(samples.len());
    let mut out = Vec::with_capacity(lead + (end - start) + tail);
    out.resize(lead, 0.0);
    out.extend_from_slice(&samples[start..end]);
    out.resize(out.len() + tail, 0.0);
    out
}

impl Default for FrontendConfig {
    /// 16 kHz, normalised, at most 60 s.
    fn default() -> Self {
        FrontendConfig {
            target_rate: 16_000,
            normalize: true,
            max_seconds: 60.0,
            trim: None,
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
        if let Some((index, &value)) = samples.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(AudioError::NonFinite {
                name: name.to_owned(),
                index,
                value,
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
        if let Some(trim) = &self.config.trim {
            out = trim_to_speech(&out, self.config.target_rate, trim);
        }
        if self.config.normalize {
            normalize(&mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_gives_the_same_clip_whatever_the_silence_around_it() {
        let trim = TrimConfig {
            threshold_db: -20.0,
            margin_ms: 2.0,
        };
        // 1 kHz: a margin of 2 samples.
        let speech = [0.0, 0.05, 0.5, -1.0, 0.02, 0.3, 0.0];
        let mut padded = vec![0.0; 9];
        padded.extend_from_slice(&speech);
        padded.extend_from_slice(&[0.0; 3]);
        let expected = vec![0.0, 0.05, 0.5, -1.0, 0.02, 0.3, 0.0, 0.0];
        assert_eq!(trim_to_speech(&padded, 1000, &trim), expected);
        // Less silence than the margin: zeros are added.
        assert_eq!(
            trim_to_speech(&speech[2..6], 1000, &trim),
            [0.0, 0.0, 0.5, -1.0, 0.02, 0.3, 0.0, 0.0]
        );
        assert_eq!(trim_to_speech(&[0.0; 4], 1000, &trim), [0.0; 4]);
        assert!(
            FrontendConfig::default().trim.is_none(),
            "HF-compatible by default"
        );
    }
    use test_wav::{sine, write_tone_wav};

    fn raw(config: FrontendConfig) -> Frontend {
        Frontend::new(FrontendConfig {
            normalize: false,
            ..config
        })
    }

    #[test]
    fn default_config_is_16_khz_normalised_60_s() {
        let config = FrontendConfig::default();
        assert_eq!(
            (config.target_rate, config.normalize, config.max_seconds),
            (16_000, true, 60.0)
        );
        assert_eq!(Frontend::default().config(), &config);
    }

    #[test]
    fn config_round_trips_through_json_with_stable_field_names() {
        let config = FrontendConfig {
            target_rate: 16_000,
            normalize: false,
            max_seconds: 12.5,
            trim: Some(TrimConfig::default()),
        };
        let json = serde_json::to_string(&config).expect("serialises");
        assert_eq!(
            json,
            r#"{"target_rate":16000,"normalize":false,"max_seconds":12.5,"trim":{"threshold_db":-40.0,"margin_ms":100.0}}"#
        );
        let back: FrontendConfig = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, config);
        // Written before trimming existed: no trimming.
        let old = r#"{"target_rate":16000,"normalize":true,"max_seconds":60.0}"#;
        let old: FrontendConfig = serde_json::from_str(old).expect("deserialises");
        assert_eq!(old, FrontendConfig::default());
    }

    #[test]
    fn a_tess_like_file_becomes_normalised_16_khz() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_tone_wav(dir.path(), "OAF_back_angry.wav", 24_414, 2.0);
        let input = Frontend::default().process_file(&path).expect("processes");
        assert_eq!(input.len(), 32_000);
        let n = input.len() as f64;
        let mean = input.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = input
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5,
            "mean {mean}, var {var}"
        );

        let bytes = std::fs::read(&path).expect("read");
        let from_bytes = Frontend::default()
            .process_bytes(&bytes, "mem.wav")
            .expect("processes");
        assert_eq!(from_bytes, input, "bytes and file give the same samples");
    }

    #[test]
    fn sixteen_khz_without_normalisation_is_untouched() {
        let samples = sine(440.0, 16_000, 0.3, 0.7);
        let out = raw(FrontendConfig::default())
            .process_samples(&samples, 16_000, "mic")
            .expect("processes");
        assert_eq!(
            out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            samples.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        let normalised = Frontend::default()
            .process_samples(&samples, 16_000, "mic")
            .expect("ok");
        assert_ne!(normalised, samples);
    }

    #[test]
    fn process_samples_resamples_microphone_audio() {
        let samples = sine(440.0, 48_000, 0.5, 0.5);
        let out = raw(FrontendConfig::default())
            .process_samples(&samples, 48_000, "mic")
            .expect("processes");
        assert_eq!(out.len(), 8_000);
    }

    #[test]
    fn process_samples_refuses_bad_input() {
        let frontend = Frontend::default();
        let kind = |samples: &[f32], rate| {
            let error = frontend
                .process_samples(samples, rate, "mic")
                .expect_err("must fail");
            assert_eq!(error.name(), "mic");
            error.kind()
        };
        assert_eq!(kind(&[], 16_000), AudioErrorKind::Empty);
        assert_eq!(kind(&[0.0; 10], 0), AudioErrorKind::UnsupportedSampleRate);
        assert_eq!(kind(&[0.0, f32::NAN], 16_000), AudioErrorKind::NonFinite);
        assert_eq!(
            kind(&vec![0.0; 16_000 * 61], 16_000),
            AudioErrorKind::TooLong
        );

        let bad_target = Frontend::new(FrontendConfig {
            target_rate: 0,
            ..FrontendConfig::default()
        });
        let error = bad_target
            .process_samples(&[0.0; 10], 16_000, "mic")
            .expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::Resample);
    }

    #[test]
    fn files_longer_than_max_seconds_are_too_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_tone_wav(dir.path(), "two.wav", 24_414, 2.0);
        let short_limit = Frontend::new(FrontendConfig {
            max_seconds: 1.0,
            ..FrontendConfig::default()
        });
        let error = short_limit.process_file(&path).expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::TooLong);
        eprintln!("{error}");
    }

    #[test]
    fn errors_name_the_file_and_say_what_to_do() {
        let error = Frontend::default()
            .process_file("/no/such/dir/OAF_food_fear.wav")
            .expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::Io);
        let message = error.to_string();
        eprintln!("{message}");
        assert!(
            message.starts_with("/no/such/dir/OAF_food_fear.wav: "),
            "{message}"
        );
    }
}
