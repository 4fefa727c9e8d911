//! What can go wrong between a file (or a microphone buffer) and the model input.
//!
//! Every error names the file or source it came from and says what was found,
//! so a user scanning a corpus can tell which file to fix and how.
//! [`AudioError::kind`] gives a small `Copy` tag for cheap matching.

use std::io;

use super::limits::{MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use super::resample::ResampleError;

/// An audio file or buffer the front-end cannot turn into model input.
///
/// The `name` field of every variant is the file path (as displayed) or the
/// source name the caller gave for in-memory data.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read (missing, unreadable, a directory, ...).
    #[error("{name}: cannot read the file: {source}")]
    Io {
        /// The file or source name.
        name: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// The file or buffer holds no audio at all.
    #[error("{name}: no audio: {reason}")]
    Empty {
        /// The file or source name.
        name: String,
        /// What was empty: the file itself, or its data chunk.
        reason: &'static str,
    },

    /// The RIFF/WAVE header is missing, corrupt or cut short.
    #[error("{name}: not a readable WAV file: {reason}; re-export it as a PCM WAV file")]
    CorruptHeader {
        /// The file or source name.
        name: String,
        /// What was wrong with the header.
        reason: String,
    },

    /// A well-formed WAV file in an encoding the front-end does not decode.
    #[error(
        "{name}: unsupported WAV encoding: {found}; supported are 8-, 16-, 24- and 32-bit \
         integer PCM and 32-bit float (convert with e.g. \
         `sox in.wav -e signed-integer -b 16 out.wav`)"
    )]
    UnsupportedEncoding {
        /// The file or source name.
        name: String,
        /// The encoding that was found, in words.
        found: String,
    },

    /// A sample rate outside the supported range.
    #[error(
        "{name}: unsupported sample rate {rate} Hz; supported are {MIN_SAMPLE_RATE} to \
         {MAX_SAMPLE_RATE} Hz"
    )]
    UnsupportedSampleRate {
        /// The file or source name.
        name: String,
        /// The rate that was found.
        rate: u32,
    },

    /// More interleaved channels than any reader here takes.
    #[error(
        "{name}: {channels} channels; at most {MAX_CHANNELS} are supported (mix down with e.g. \
         `sox in.wav -c 1 out.wav`)"
    )]
    TooManyChannels {
        /// The file or source name.
        name: String,
        /// The channel count that was found.
        channels: u16,
    },

    /// The header promises more sample data than the file holds.
    #[error(
        "{name}: truncated: the header promises {claimed_bytes} bytes of audio data but only \
         {available_bytes} are there; the file was cut short, copy or export it again"
    )]
    TruncatedData {
        /// The file or source name.
        name: String,
        /// Size of the data chunk according to the header.
        claimed_bytes: u64,
        /// Bytes of audio data actually present.
        available_bytes: u64,
    },

    /// A float sample that is NaN or infinite.
    #[error("{name}: sample {index} is {value}; audio samples must be finite numbers")]
    NonFinite {
        /// The file or source name.
        name: String,
        /// Index of the first non-finite sample, counted in frames (per channel) from the start.
        index: usize,
        /// The offending value (NaN, inf or -inf).
        value: f32,
    },

    /// The audio is longer than the configured limit.
    #[error(
        "{name}: {seconds:.2} s of audio is longer than the limit of {limit} s; cut the file or \
         raise `max_seconds`"
    )]
    TooLong {
        /// The file or source name.
        name: String,
        /// Duration of the audio (from the header, for files).
        seconds: f64,
        /// The configured limit (`FrontendConfig::max_seconds`).
        limit: f32,
    },

    /// The resampler could not be built or failed (for example an invalid target rate).
    #[error("{name}: resampling failed: {source}")]
    Resample {
        /// The file or source name.
        name: String,
        /// What the resampler reported.
        #[source]
        source: ResampleError,
    },
}

/// The kind of an [`AudioError`], without its details; cheap to copy and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioErrorKind {
    /// See [`AudioError::Io`].
    Io,
    /// See [`AudioError::Empty`].
    Empty,
    /// See [`AudioError::CorruptHeader`].
    CorruptHeader,
    /// See [`AudioError::UnsupportedEncoding`].
    UnsupportedEncoding,
    /// See [`AudioError::UnsupportedSampleRate`].
    UnsupportedSampleRate,
    /// See [`AudioError::TooManyChannels`].
    TooManyChannels,
    /// See [`AudioError::TruncatedData`].
    TruncatedData,
    /// See [`AudioError::NonFinite`].
    NonFinite,
    /// See [`AudioError::TooLong`].
    TooLong,
    /// See [`AudioError::Resample`].
    Resample,
}

impl AudioError {
    /// The kind of this error, for matching without the details.
    pub fn kind(&self) -> AudioErrorKind {
        match self {
            AudioError::Io { .. } => AudioErrorKind::Io,
            AudioError::Empty { .. } => AudioErrorKind::Empty,
            AudioError::CorruptHeader { .. } => AudioErrorKind::CorruptHeader,
            AudioError::UnsupportedEncoding { .. } => AudioErrorKind::UnsupportedEncoding,
            AudioError::UnsupportedSampleRate { .. } => AudioErrorKind::UnsupportedSampleRate,
            AudioError::TooManyChannels { .. } => AudioErrorKind::TooManyChannels,
            AudioError::TruncatedData { .. } => AudioErrorKind::TruncatedData,
            AudioError::NonFinite { .. } => AudioErrorKind::NonFinite,
            AudioError::TooLong { .. } => AudioErrorKind::TooLong,
            AudioError::Resample { .. } => AudioErrorKind::Resample,
        }
    }

    /// The file or source name the error is about.
    pub fn name(&self) -> &str {
        match self {
            AudioError::Io { name, .. }
            | AudioError::Empty { name, .. }
            | AudioError::CorruptHeader { name, .. }
            | AudioError::UnsupportedEncoding { name, .. }
            | AudioError::UnsupportedSampleRate { name, .. }
            | AudioError::TooManyChannels { name, .. }
            | AudioError::TruncatedData { name, .. }
            | AudioError::NonFinite { name, .. }
            | AudioError::TooLong { name, .. }
            | AudioError::Resample { name, .. } => name,
        }
    }
}
