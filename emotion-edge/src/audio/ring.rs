//! The capture ring: a lock-free single-producer single-consumer queue of mono `f32`
//! samples between the capture side (cpal's data callback, or a file/stdin thread) and
//! the listen loop.
//!
//! The writer runs inside the audio callback, so it never allocates, locks or blocks:
//! it mixes each interleaved frame to mono on the stack, pushes what fits and counts
//! what does not as overruns. End of stream and failures travel beside the samples in
//! a shared [`CaptureState`] (atomics, plus an error message written only outside the
//! data callback).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Mono samples mixed on the stack before one `push_slice` (fewer atomic syncs).
const BLOCK: usize = 256;
/// How long [`CaptureReader::read`] sleeps between looks at an empty ring.
const POLL: Duration = Duration::from_millis(3);

/// A sample type the capture side accepts, as a value in `[-1, 1]`.
///
/// Integers are scaled by `2^(bits-1)` (unsigned ones centred first), exactly as the
/// front-end decodes WAV files, so a file streamed through the ring gives the same
/// samples as `emotion_core::frontend::decode_file`.
pub trait CaptureSample: Copy {
    /// The sample as `f64` in `[-1, 1]` (integers never reach +1).
    fn to_f64(self) -> f64;
}

impl CaptureSample for f32 {
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}
impl CaptureSample for f64 {
    fn to_f64(self) -> f64 {
        self
    }
}
impl CaptureSample for i8 {
    fn to_f64(self) -> f64 {
        f64::from(self) / 128.0
    }
}
impl CaptureSample for i16 {
    fn to_f64(self) -> f64 {
        f64::from(self) / 32_768.0
    }
}
impl CaptureSample for i32 {
    fn to_f64(self) -> f64 {
        f64::from(self) / 2_147_483_648.0
    }
}
impl CaptureSample for u8 {
    fn to_f64(self) -> f64 {
        (f64::from(self) - 128.0) / 128.0
    }
}
impl CaptureSample for u16 {
    fn to_f64(self) -> f64 {
        (f64::from(self) - 32_768.0) / 32_768.0
    }
}
impl CaptureSample for u32 {
    fn to_f64(self) -> f64 {
        (f64::from(self) - 2_147_483_648.0) / 2_147_483_648.0
    }
}

/// What the capture side tells the reader besides samples.
#[derive(Debug, Default)]
pub struct CaptureState {
    /// The source has no more samples (end of file, or the writer was dropped).
    ended: AtomicBool,
    /// Set once the source failed; the message is in `error`.
    failed: AtomicBool,
    /// Mono samples that did not fit in the ring and were dropped.
    overruns: AtomicU64,
    /// Mono samples pushed into the ring so far.
    written: AtomicU64,
    /// Why the source failed. Written only outside the data callback (cpal's error
    /// callback, a file thread), so the callback itself never locks.
    error: Mutex<Option<String>>,
}

impl CaptureState {
    /// Marks the end of the stream (after the last sample was pushed).
    pub fn mark_ended(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Whether the end of the stream was marked.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Records a failure. May allocate and lock: never call it from the data callback.
    /// The first message is kept.
    pub fn fail(&self, message: String) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(message);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// Whether [`fail`](Self::fail) was called.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The failure message, if any.
    pub fn failure(&self) -> Option<String> {
        if !self.has_failed() {
            return None;
        }
        let message = match self.error.lock() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Some(message.unwrap_or_else(|| "the audio source failed".to_owned()))
    }

    /// Mono samples dropped because the ring was full.
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }

    /// Mono samples pushed into the ring so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// A ring of `capacity` mono samples for a source with `channels` interleaved channels.
/// Both halves share one [`CaptureState`]. `capacity` and `channels` are raised to 1.
pub fn capture_ring(capacity: usize, channels: u16) -> (CaptureWriter, CaptureReader) {
    let (producer, consumer) = HeapRb::<f32>::new(capacity.max(1)).split();
    let state = Arc::new(CaptureState::default());
    (
        CaptureWriter {
            producer,
            channels: usize::from(channels.max(1)),
            state: Arc::clone(&state),
            block: [0.0; BLOCK],
        },
        CaptureReader { consumer, state },
    )
}

/// The producer half: mixes interleaved frames to mono and pushes them.
///
/// Safe to use in a real-time callback: no allocation, no lock, no blocking.
/// Dropping it marks the end of the stream.
pub struct CaptureWriter {
    producer: HeapProd<f32>,
    channels: usize,
    state: Arc<CaptureState>,
    block: [f32; BLOCK],
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("channels", &self.channels)
            .field("vacant", &self.producer.vacant_len())
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Pushes interleaved frames of any [`CaptureSample`] type; returns the mono samples
    /// pushed. A trailing partial frame is ignored.
    pub fn write<S: CaptureSample>(&mut self, interleaved: &[S]) -> usize {
        self.write_with(interleaved, S::to_f64)
    }

    /// Like [`write`](Self::write) with an explicit conversion to `[-1, 1]` (for sample
    /// types this crate does not know, such as cpal's 24-bit ones).
    ///
    /// Channels are averaged in `f64` and rounded once to `f32`; a non-finite result is
    /// written as 0 so one bad sample cannot poison the resampler and the segmenter.
    pub fn write_with<S: Copy>(&mut self, interleaved: &[S], convert: impl Fn(S) -> f64) -> usize {
        let channels = self.channels;
        let scale = 1.0 / channels as f64;
        let mut filled = 0;
        let mut pushed = 0;
        for frame in interleaved.chunks_exact(channels) {
            let sum: f64 = frame.iter().map(|&s| convert(s)).sum();
            let mono = if channels == 1 {
                sum as f32
            } else {
                (sum * scale) as f32
            };
            self.block[filled] = if mono.is_finite() { mono } else { 0.0 };
            filled += 1;
            if filled == BLOCK {
                pushed += self.push_block(filled);
                filled = 0;
            }
        }
        if filled > 0 {
            pushed += self.push_block(filled);
        }
        pushed
    }

    fn push_block(&mut self, len: usize) -> usize {
        let pushed = self.producer.push_slice(&self.block[..len]);
        if pushed < len {
            self.state
                .overruns
                .fetch_add((len - pushed) as u64, Ordering::Relaxed);
        }
        self.state
            .written
            .fetch_add(pushed as u64, Ordering::Relaxed);
        pushed
    }

    /// Mono samples that fit in the ring right now (frames, since one frame is one
    /// mono sample). Only grows until the next write, as the writer is the only producer.
    pub fn vacant(&self) -> usize {
        self.producer.vacant_len()
    }

    /// The ring's capacity in mono samples.
    pub fn capacity(&self) -> usize {
        self.producer.capacity().get()
    }

    /// Interleaved channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The state shared with the reader.
    pub fn state(&self) -> &Arc<CaptureState> {
        &self.state
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        self.state.mark_ended();
    }
}

/// The consumer half: takes what the writer pushed.
pub struct CaptureReader {
    consumer: HeapCons<f32>,
    state: Arc<CaptureState>,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("occupied", &self.consumer.occupied_len())
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Appends the samples waiting in the ring to `out` and returns how many.
    ///
    /// When the ring is empty it polls (sleeping a few ms) until samples arrive, the
    /// stream ends or fails, or `timeout` passes; then it returns 0.
    pub fn read(&mut self, out: &mut Vec<f32>, timeout: Duration) -> usize {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            // Look at the flags before draining: the writer sets them after its last
            // push, so an empty drain after seeing them means there is nothing more.
            let done = self.state.is_ended() || self.state.has_failed();
            let taken = self.drain(out);
            if taken > 0 || done {
                return taken;
            }
            let now = Instant::now();
            let Some(left) = deadline.and_then(|d| d.checked_duration_since(now)) else {
                return 0;
            };
            if left.is_zero() {
                return 0;
            }
            std::thread::sleep(left.min(POLL));
        }
    }

    fn drain(&mut self, out: &mut Vec<f32>) -> usize {
        let (first, second) = self.consumer.as_slices();
        let taken = first.len() + second.len();
        if taken == 0 {
            return 0;
        }
        out.extend_from_slice(first);
        out.extend_from_slice(second);
        self.consumer.skip(taken);
        taken
    }

    /// Whether the stream ended and every sample has been read.
    pub fn is_finished(&self) -> bool {
        self.state.is_ended() && self.consumer.is_empty()
    }

    /// Samples waiting in the ring.
    pub fn available(&self) -> usize {
        self.consumer.occupied_len()
    }

    /// The state shared with the writer.
    pub fn state(&self) -> &Arc<CaptureState> {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_frames_are_averaged_to_mono() {
        let (mut writer, mut reader) = capture_ring(16, 2);
        assert_eq!(writer.write(&[16_384i16, 0, -32_768, -32_768, 1, 2]), 3);
        let mut out = Vec::new();
        assert_eq!(reader.read(&mut out, Duration::ZERO), 3);
        assert_eq!(out, vec![0.25, -1.0, 3.0 / 65_536.0]);
    }

    #[test]
    fn a_trailing_partial_frame_is_ignored_and_unsigned_samples_are_centred() {
        let (mut writer, mut reader) = capture_ring(16, 3);
        assert_eq!(writer.write(&[128u8, 128, 128, 255, 1]), 1);
        let mut out = Vec::new();
        reader.read(&mut out, Duration::ZERO);
        assert_eq!(out, vec![0.0]);
    }

    #[test]
    fn samples_that_do_not_fit_are_counted_as_overruns() {
        let (mut writer, mut reader) = capture_ring(100, 1);
        let input = vec![0.5f32; 700];
        assert_eq!(writer.write(&input), 100);
        assert_eq!(writer.state().overruns(), 600);
        assert_eq!(writer.vacant(), 0);
        let mut out = Vec::new();
        assert_eq!(reader.read(&mut out, Duration::ZERO), 100);
        assert_eq!(writer.vacant(), 100);
        assert_eq!(reader.state().written(), 100);
    }

    #[test]
    fn non_finite_samples_become_zero() {
        let (mut writer, mut reader) = capture_ring(8, 1);
        writer.write(&[f32::NAN, f32::INFINITY, 0.5]);
        let mut out = Vec::new();
        reader.read(&mut out, Duration::ZERO);
        assert_eq!(out, vec![0.0, 0.0, 0.5]);
    }

    #[test]
    fn read_waits_for_samples_from_another_thread_and_sees_the_end() {
        let (mut writer, mut reader) = capture_ring(1024, 1);
        let handle = std::thread::spawn(move || {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(2));
                writer.write(&[0.1f32; 50]);
            }
            // Dropping the writer marks the end.
        });
        let mut out = Vec::new();
        let start = Instant::now();
        while !reader.is_finished() {
            reader.read(&mut out, Duration::from_millis(50));
            assert!(start.elapsed() < Duration::from_secs(10), "never ended");
        }
        handle.join().expect("writer thread");
        assert_eq!(out.len(), 500);
    }

    #[test]
    fn read_times_out_on_an_idle_ring() {
        let (_writer, mut reader) = capture_ring(8, 1);
        let mut out = Vec::new();
        let start = Instant::now();
        assert_eq!(reader.read(&mut out, Duration::from_millis(20)), 0);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_failure_keeps_its_first_message() {
        let (writer, reader) = capture_ring(8, 1);
        assert_eq!(reader.state().failure(), None);
        writer.state().fail("unplugged".to_owned());
        writer.state().fail("second".to_owned());
        assert_eq!(reader.state().failure().as_deref(), Some("unplugged"));
    }
}
