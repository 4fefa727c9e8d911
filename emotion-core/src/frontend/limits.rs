//! The one set of limits on audio the project reads: every WAV (a clip file on the host
//! or the board, a file or pipe the board listens to), microphone samples, and the
//! resampler's rates.
//!
//! Why these values:
//! - 8 kHz is the lowest rate that still carries speech (telephone band, content to
//!   4 kHz); nothing real records below it.
//! - 384 kHz is the highest rate ADCs and USB/ALSA devices deliver. The contract's sinc
//!   grows with the downsampling ratio: at 384 kHz → 16 kHz it has 6 144 taps (a 12.6 MB
//!   table, ≈ 0.4 GMAC per second of audio); at 768 kHz both double, too much for a Pi
//!   listening in real time.
//! - 64 channels (MADI's count, the most any capture interface has): the streaming reader
//!   sizes its buffer from the header before any data arrives, ≤ 1 MB per 10 ms with this.
//! - The `fmt ` chunk and the chunks before the data are bounded so that a header never
//!   makes us allocate or read without end.

/// The lowest sample rate accepted, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// The highest sample rate accepted, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// The most interleaved channels accepted.
pub const MAX_CHANNELS: u16 = 64;
/// The largest `fmt ` chunk accepted (the largest standard one is 40 bytes).
pub const MAX_FMT_LEN: u32 = 1024;
/// How many bytes of other chunks (headers included) may come before the data chunk.
pub const MAX_HEADER_BYTES: u64 = 16 << 20;
