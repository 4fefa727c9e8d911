//! A stream (the board's capture) through the contract's resampler, piece by piece.
//!
//! [`StreamResampler`] feeds rubato the same windowed-sinc resampler, with the same
//! parameters and in the same input chunks, as [`ClipResampler`](super::ClipResampler),
//! so a stream cut into any pieces
//! gives, sample for sample, what the clip resampler gives for the whole recording. It
//! trims the filter delay the way the clip resampler does, so output sample `k` stands
//! for input time `k / to_rate` (leading by under one output sample, as documented in
//! [`super`]), which keeps the segmenter's boundaries on the input's
//! timeline. The price is latency: output comes in steps of [`CHUNK_FRAMES`] input
//! frames, plus half the filter length.

use audioadapter_buffers::direct::SequentialSlice;
use rubato::{Async, Indexing, Resampler};

use super::{
    BASE_SINC_LEN, CHUNK_FRAMES, ResampleError, contract_resampler, resampled_len, sinc_len_for,
};

/// Resamples one mono stream from `from_rate` to `to_rate`, piece by piece.
#[derive(Debug)]
pub struct StreamResampler {
    from_rate: u32,
    to_rate: u32,
    /// `None` when the rates are equal: samples pass through.
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    resampler: Async<f64>,
    /// Input not yet given to rubato (less than one chunk between calls).
    pending: Vec<f64>,
    /// rubato's output for one call.
    scratch: Vec<f64>,
    /// Output frames still to drop: the filter's delay.
    to_trim: usize,
    /// Input samples taken since the start (or the last flush).
    input_total: u64,
    /// Output samples emitted since the start (or the last flush).
    output_total: u64,
}

impl StreamResampler {
    /// A resampler from `from_rate` to `to_rate` (Hz, within the front-end's range).
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self, ResampleError> {
        let inner = match contract_resampler(from_rate, to_rate)? {
            None => None,
            Some(resampler) => {
                let to_trim = resampler.output_delay();
                let scratch = vec![0.0; resampler.output_frames_max()];
                Some(Inner {
                    resampler,
                    pending: Vec::with_capacity(2 * CHUNK_FRAMES),
                    scratch,
                    to_trim,
                    input_total: 0,
                    output_total: 0,
                })
            }
        };
        Ok(StreamResampler {
            from_rate,
            to_rate,
            inner,
        })
    }

    /// The input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    /// The output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// Whether samples pass through unchanged (equal rates).
    pub fn is_passthrough(&self) -> bool {
        self.inner.is_none()
    }

    /// The sinc length in input taps (for logs; [`BASE_SINC_LEN`] when passing through).
    pub fn sinc_len(&self) -> usize {
        if self.inner.is_some() {
            sinc_len_for(self.from_rate, self.to_rate)
        } else {
            BASE_SINC_LEN
        }
    }

    /// Resamples `input` and appends what is ready to `out`; returns how many samples
    /// were appended. Input shorter than a chunk waits for the next call.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<usize, ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            out.extend_from_slice(input);
            return Ok(input.len());
        };
        inner.input_total += input.len() as u64;
        inner.pending.extend(input.iter().map(|&x| f64::from(x)));
        let before = out.len();
        let mut consumed = 0;
        while inner.pending.len() - consumed >= inner.resampler.input_frames_next() {
            let take = inner.resampler.input_frames_next();
            let (used, produced) = inner.run(consumed, take, None)?;
            inner.emit(produced, u64::MAX, out);
            if used == 0 {
                break;
            }
            consumed += used.min(take);
        }
        inner.pending.drain(..consumed);
        Ok(out.len() - before)
    }

    /// Ends the stream: resamples what is left and appends the tail, so that the whole
    /// stream gave exactly [`resampled_len`] samples. The resampler is then ready for a
    /// new stream.
    pub fn flush(&mut self, out: &mut Vec<f32>) -> Result<usize, ResampleError> {
        let (from_rate, to_rate) = (self.from_rate, self.to_rate);
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let before = out.len();
        let total = resampled_len(
            usize::try_from(inner.input_total).unwrap_or(usize::MAX),
            from_rate,
            to_rate,
        ) as u64;
        if !inner.pending.is_empty() {
            let left = inner.pending.len();
            let (_, produced) = inner.run(0, left, Some(left))?;
            inner.emit(produced, total, out);
        }
        // Pump silence through until the tail (and the trimmed delay) has come out.
        let mut guard = 0;
        while inner.output_total < total {
            let (_, produced) = inner.run(0, 0, Some(0))?;
            inner.emit(produced, total, out);
            guard += 1;
            if produced == 0 || guard > 1_000 {
                break;
            }
        }
        self.reset();
        Ok(out.len() - before)
    }

    /// Forgets the stream so far (for a new stream, e.g. after a device was reopened).
    pub fn reset(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            inner.resampler.reset();
            inner.pending.clear();
            inner.to_trim = inner.resampler.output_delay();
            inner.input_total = 0;
            inner.output_total = 0;
        }
    }
}

impl Inner {
    /// One rubato call on `pending[offset..offset + len]` (`partial`: fewer than a chunk,
    /// the rest zeros). Returns (input used, output produced into `scratch`).
    fn run(
        &mut self,
        offset: usize,
        len: usize,
        partial: Option<usize>,
    ) -> Result<(usize, usize), ResampleError> {
        let needed = self.resampler.output_frames_max();
        if self.scratch.len() < needed {
            self.scratch.resize(needed, 0.0);
        }
        let input = &self.pending[offset..offset + len];
        let input = SequentialSlice::new(input, 1, len)?;
        let frames = self.scratch.len();
        let mut output = SequentialSlice::new_mut(&mut self.scratch, 1, frames)?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        Ok(self
            .resampler
            .process_into_buffer(&input, &mut output, indexing.as_ref())?)
    }

    /// Appends `scratch[..produced]` to `out`, after dropping what is left of the delay,
    /// and without passing `limit` output samples in all.
    fn emit(&mut self, produced: usize, limit: u64, out: &mut Vec<f32>) {
        let skip = self.to_trim.min(produced);
        self.to_trim -= skip;
        let room = usize::try_from(limit.saturating_sub(self.output_total)).unwrap_or(usize::MAX);
        let end = produced.min(skip.saturating_add(room));
        if end > skip {
            out.extend(self.scratch[skip..end].iter().map(|&x| x as f32));
            self.output_total += (end - skip) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::resample_to;

    /// A deterministic pseudo-random generator (xorshift), so the tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn test_signal(rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.4 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                    + 0.2 * (2.0 * std::f64::consts::PI * 3_100.0 * t).sin()) as f32
            })
            .collect()
    }

    fn stream(
        resampler: &mut StreamResampler,
        input: &[f32],
        rng: &mut Rng,
        max: usize,
    ) -> Vec<f32> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let n = (1 + rng.below(max)).min(input.len() - at);
            resampler
                .process(&input[at..at + n], &mut out)
                .expect("process");
            at += n;
        }
        resampler.flush(&mut out).expect("flush");
        out
    }

    #[test]
    fn a_stream_in_random_pieces_equals_the_clip_resampler() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for from_rate in [24_414u32, 44_100, 48_000, 8_000, 96_000] {
            let input = test_signal(from_rate, 3.3);
            let clip = resample_to(&input, from_rate, 16_000).expect("clip");
            let mut resampler = StreamResampler::new(from_rate, 16_000).expect("builds");
            for max in [1usize, 37, 700, 5_000] {
                let streamed = stream(&mut resampler, &input, &mut rng, max);
                assert_eq!(
                    streamed.len(),
                    resampled_len(input.len(), from_rate, 16_000),
                    "{from_rate} Hz, pieces up to {max}"
                );
                let worst = crate::scores::max_abs_difference(&streamed, &clip);
                assert!(worst <= 1e-6, "{from_rate} Hz, pieces up to {max}: {worst}");
            }
        }
    }

    #[test]
    fn equal_rates_pass_through() {
        let mut resampler = StreamResampler::new(16_000, 16_000).expect("builds");
        assert!(resampler.is_passthrough());
        let mut out = Vec::new();
        resampler.process(&[0.1, -0.2], &mut out).expect("process");
        assert_eq!(resampler.flush(&mut out).expect("flush"), 0);
        assert_eq!(out, vec![0.1, -0.2]);
    }

    #[test]
    fn an_impulse_stays_on_the_input_timeline() {
        // A click at 1.0 s must come out at 1.0 s (within one output sample).
        for from_rate in [24_414u32, 48_000, 8_000] {
            let mut input = vec![0.0f32; from_rate as usize * 2];
            input[from_rate as usize] = 1.0;
            let mut resampler = StreamResampler::new(from_rate, 16_000).expect("builds");
            let mut out = Vec::new();
            for piece in input.chunks(333) {
                resampler.process(piece, &mut out).expect("process");
            }
            resampler.flush(&mut out).expect("flush");
            let peak = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map(|(i, _)| i)
                .expect("output");
            assert!(peak.abs_diff(16_000) <= 1, "{from_rate} Hz: peak at {peak}");
        }
    }

    #[test]
    fn short_streams_and_reuse_after_flush() {
        let mut resampler = StreamResampler::new(48_000, 16_000).expect("builds");
        let mut out = Vec::new();
        resampler.process(&[0.5; 10], &mut out).expect("process");
        resampler.flush(&mut out).expect("flush");
        assert_eq!(out.len(), 4);
        out.clear();
        resampler.flush(&mut out).expect("empty flush");
        assert!(out.is_empty());
        let input = test_signal(48_000, 0.5);
        let mut rng = Rng(7);
        let again = stream(&mut resampler, &input, &mut rng, 999);
        assert_eq!(again, resample_to(&input, 48_000, 16_000).expect("clip"));
    }

    #[test]
    fn rates_outside_the_range_are_refused() {
        assert!(StreamResampler::new(0, 16_000).is_err());
        assert!(StreamResampler::new(16_000, 384_001).is_err());
    }
}
