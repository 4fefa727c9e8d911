//! The segmentation benchmark: how well a voice-activity segmenter finds real utterances
//! in a stream, clean and in noise, measured rather than eyeballed.
//!
//! ```text
//! real word/phrase clips ─ streams (seeded gaps, truth spans) ─┐
//! noises (white, pink, babble, alsa) ─ mix at an SNR ──────────┴─ segmenter ─ score
//! ```
//!
//! - [`streams`]: the test streams and the truth-extent rule;
//! - [`noise`]: the noises and the SNR mixer (the SNR definition);
//! - [`segmenters`]: the [`StreamSegmenter`] trait, the energy adapter and
//!   [`SEGMENTERS`], the list the table runs;
//! - [`score`]: one-to-one IoU matching, precision/recall/F1, splits, merges, boundary
//!   errors;
//! - [`rng`]: the seeded generator behind every random choice.
//!
//! `emotion-edge/examples/segmentation_table.rs` (run by `scripts/segmentation-table.sh`)
//! prints the table; `emotion-edge/tests/segmentation.rs` holds the floors.

pub mod noise;
pub mod rng;
pub mod score;
pub mod segmenters;
pub mod streams;

pub use noise::{NoiseBank, NoiseKind};
pub use score::Score;
pub use segmenters::{
    BENCH_RATE, BoardSegmenter, DEFAULT_SEGMENTER, NamedSegmenter, SEGMENTERS, Span,
    StreamSegmenter, make_segmenter,
};
pub use streams::{Stream, StreamOptions};

use rng::Rng;

/// The SNRs of the table, dB (infinity: no noise).
pub const SNRS_DB: [f64; 5] = [f64::INFINITY, 20.0, 10.0, 5.0, 0.0];

/// Shortest and longest piece the stream is pushed in, ms (`listen` pushes what one
/// 20 ms read of its ring gave, resampled).
pub const CHUNK_MS: (u32, u32) = (20, 100);

/// What one segmenter did on one stream.
#[derive(Debug, Clone)]
pub struct Run {
    /// The spans it found, in order.
    pub spans: Vec<Span>,
    /// CPU seconds its `push` and `finish` calls took (this thread's CPU clock).
    pub cpu_seconds: f64,
}

/// Feeds `samples` to `segmenter` in seeded pieces of [`CHUNK_MS`], then finishes it.
pub fn run_segmenter(
    segmenter: &mut dyn StreamSegmenter,
    samples: &[f32],
    seed: u64,
) -> anyhow::Result<Run> {
    let mut rng = Rng::derived(seed, "chunks", 0);
    let per_ms = BENCH_RATE as usize / 1_000;
    let (lo, hi) = (CHUNK_MS.0 as usize * per_ms, CHUNK_MS.1 as usize * per_ms);
    let mut spans = Vec::new();
    let mut cpu = 0.0;
    let mut rest = samples;
    while !rest.is_empty() {
        let take = (lo + rng.below(hi - lo + 1)).min(rest.len());
        let t0 = thread_cpu_seconds();
        let found = segmenter.push(&rest[..take])?;
        cpu += thread_cpu_seconds() - t0;
        spans.extend(found);
        rest = &rest[take..];
    }
    let t0 = thread_cpu_seconds();
    let found = segmenter.finish()?;
    cpu += thread_cpu_seconds() - t0;
    spans.extend(found);
    Ok(Run {
        spans,
        cpu_seconds: cpu.max(0.0),
    })
}

/// One cell of the table: a segmenter over every stream at one condition.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// The scores of all streams, added.
    pub score: Score,
    /// CPU seconds of the segmenter.
    pub cpu_seconds: f64,
    /// Seconds of audio it was given.
    pub audio_seconds: f64,
}

impl Cell {
    /// Segmenter CPU seconds per second of audio.
    pub fn cost(&self) -> f64 {
        if self.audio_seconds > 0.0 {
            self.cpu_seconds / self.audio_seconds
        } else {
            0.0
        }
    }
}

/// Runs `named` over `streams` mixed with `noises[i]` (one per stream; unused at SNR
/// infinity) at `snr_db`, and scores it.
pub fn evaluate(
    named: &NamedSegmenter,
    streams: &[Stream],
    noises: &[Vec<f32>],
    snr_db: f64,
    seed: u64,
) -> anyhow::Result<Cell> {
    let mut cell = Cell::default();
    for (i, stream) in streams.iter().enumerate() {
        let noise = noises.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let mixed = noise::mix(&stream.samples, &stream.truth, noise, snr_db)
            .map_err(|e| anyhow::anyhow!("{}: {e}", stream.name))?;
        let mut segmenter = (named.make)()?;
        let run = run_segmenter(segmenter.as_mut(), &mixed, seed ^ i as u64)?;
        cell.score
            .add(&score::score(&stream.truth, &run.spans, BENCH_RATE));
        cell.cpu_seconds += run.cpu_seconds;
        cell.audio_seconds += stream.seconds();
    }
    Ok(cell)
}

/// This thread's CPU time, seconds (0 where the clock cannot be read).
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_the_stream_is_pushed_does_not_change_the_energy_spans() {
        let mut rng = Rng::new(5);
        let ms = |n: usize| n * BENCH_RATE as usize / 1_000;
        let mut x: Vec<f32> = (0..ms(6_000))
            .map(|_| 0.002 * rng.normal() as f32)
            .collect();
        for (a, b) in [(1_000, 1_700), (3_000, 4_200)] {
            for v in &mut x[ms(a)..ms(b)] {
                *v += 0.2 * rng.normal() as f32;
            }
        }
        let runs: Vec<Vec<Span>> = [1, 2, 3]
            .iter()
            .map(|&seed| {
                let mut s = make_segmenter("energy").expect("energy");
                run_segmenter(s.as_mut(), &x, seed).expect("runs").spans
            })
            .collect();
        assert_eq!(runs[0].len(), 2, "{:?}", runs[0]);
        assert!(runs.iter().all(|r| *r == runs[0]));
        let truth = [
            Span::new(ms(1_000) as u64, ms(1_700) as u64),
            Span::new(ms(3_000) as u64, ms(4_200) as u64),
        ];
        let cell = evaluate(&SEGMENTERS[0], &[], &[], f64::INFINITY, 1).expect("empty");
        assert_eq!(cell.cost(), 0.0);
        let r = score::score(&truth, &runs[0], BENCH_RATE);
        assert_eq!(r.f1(), 1.0, "{r:?}");
        assert!(thread_cpu_seconds() > 0.0);
    }
}
