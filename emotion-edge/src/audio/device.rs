//! What the sources share with the microphone: a capture device as listed, why a source
//! fails (each message says what to do next), and how big its capture ring is.

use std::io;
use std::path::PathBuf;

use emotion_core::frontend::AudioError;

/// Shortest ring accepted, in seconds.
pub const MIN_RING_SECONDS: f32 = 0.05;
/// Longest ring accepted, in seconds (a ring is memory held for the whole run).
pub const MAX_RING_SECONDS: f32 = 60.0;
/// File and stdin threads decode this much audio at a time (10 ms).
pub(crate) const CHUNKS_PER_SECOND: u32 = 100;

/// One input device, as [`super::list_devices`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's name (what `--device` matches against, with `id`).
    pub name: String,
    /// The backend's id for it (an ALSA PCM name on Linux).
    pub id: String,
    /// Its default input configuration, e.g. "48000 Hz, 2 ch, i16", or why there is none.
    pub default_config: String,
    /// Whether it is the system's default input.
    pub is_default: bool,
}

/// Why a source could not be opened or read. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Built without the `mic` feature.
    #[error(
        "this emotion-edge was built without microphone support; rebuild with \
         `cargo build --release -p emotion-edge --features mic` (needs libasound2-dev and \
         pkg-config on Debian/Raspberry Pi OS), or use `--source FILE` / `--source -` \
         to read a WAV file or stdin"
    )]
    NoMicSupport,
    /// The audio system itself (ALSA) cannot start, e.g. its configuration is broken.
    #[error("cannot start the audio system: {0}")]
    AudioSystem(String),
    /// No input device matched, or there is none.
    #[error("{0}")]
    NoDevice(String),
    /// The device refused to open or start.
    #[error("cannot open the input device {device}: {message}")]
    Device {
        /// Which device.
        device: String,
        /// What went wrong, and what to try.
        message: String,
    },
    /// The device was lost while capturing; reopen it (with a backoff) to go on.
    #[error("lost the input device {device}: {message}; retrying may help once it is back")]
    Lost {
        /// Which device.
        device: String,
        /// What happened.
        message: String,
    },
    /// A file could not be opened.
    #[error("cannot open {}: {source}; check the path", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The WAV header is bad or describes something we cannot decode (the same verdict
    /// `classify` gives the same file).
    #[error("{0}")]
    Wav(AudioError),
    /// Reading failed part way through.
    #[error("reading {name} failed part way: {message}")]
    Read {
        /// The file name, or "stdin".
        name: String,
        /// What happened.
        message: String,
    },
    /// The ring length is out of range.
    #[error(
        "a capture ring of {seconds} s is out of range; use {MIN_RING_SECONDS} to \
         {MAX_RING_SECONDS} s (1 to 5 s is plenty)"
    )]
    InvalidRing {
        /// What was asked for.
        seconds: f32,
    },
    /// The reading thread could not be started.
    #[error("cannot start the audio thread: {0}")]
    Thread(io::Error),
}

/// The ring capacity for `seconds` at `rate` Hz, in mono samples; at least four
/// decoding chunks so the file thread always finds room for one.
pub(crate) fn ring_capacity(seconds: f32, rate: u32) -> usize {
    let samples = (f64::from(seconds) * f64::from(rate)).ceil();
    let chunk = chunk_frames(rate);
    (samples as usize).max(4 * chunk)
}

pub(crate) fn chunk_frames(rate: u32) -> usize {
    (rate / CHUNKS_PER_SECOND).max(1) as usize
}
