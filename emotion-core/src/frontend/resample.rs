//! Sample-rate conversion with rubato: the contract's resampler, and the two ways it is
//! fed: [`ClipResampler`] for whole clips, [`StreamResampler`] for a stream in pieces
//! (the board's microphone), which gives the same samples.
//!
//! A windowed-sinc resampler (rubato's `Async`, in `f64`) with its parameters fixed here,
//! because they are part of the contract between host and board: change them and the
//! features change. A clip at the target rate is passed through untouched.
//!
//! When downsampling, the sinc filter is made longer in proportion to the rate ratio, so
//! that its transition band stays the same width at the *output* rate; with a fixed
//! length, 96 kHz → 16 kHz would let tones just above 8 kHz alias back.
//!
//! Output length is exactly `ceil(n * to_rate / from_rate)` (see [`resampled_len`]). rubato
//! trims the filter delay, but (in 5.1) one output sample short of exact: output sample `k`
//! stands for time `(k + δ) / to_rate` with `δ = floor(D) + 1 - D` in `(0, 1]`, where
//! `D = sinc_len * to_rate / from_rate / 2`. That is at most 62.5 µs at 16 kHz, the same on
//! host and board, and is pinned down by a test.

mod clip;
mod stream;

use rubato::{
    Async, FixedAsync, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use super::limits::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};

pub use clip::{ClipResampler, resample_to};
pub use stream::StreamResampler;

/// Sinc length (taps at the input rate) when upsampling or at equal rates; when
/// downsampling it is scaled by `from_rate / to_rate` (see [`sinc_len_for`]).
pub const BASE_SINC_LEN: usize = 256;
/// Upper bound on the scaled sinc length (reached only beyond 64:1 downsampling).
pub const MAX_SINC_LEN: usize = 16_384;
/// Sinc table points per input sample; between them the resampler interpolates.
pub const OVERSAMPLING_FACTOR: usize = 256;
/// The window applied to the sinc.
pub const WINDOW: WindowFunction = WindowFunction::BlackmanHarris2;
/// How the resampler interpolates between precomputed sinc points.
pub const INTERPOLATION: SincInterpolationType = SincInterpolationType::Cubic;
/// Input frames per internal processing chunk (does not change the result; the board's
/// streaming resampler uses the same, so its output equals this one's).
pub const CHUNK_FRAMES: usize = 1024;

/// Why a clip could not be resampled.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// A rate outside the supported range.
    #[error(
        "cannot resample from {from_rate} Hz to {to_rate} Hz: both rates must be within \
         {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
    )]
    InvalidRate {
        /// The input rate.
        from_rate: u32,
        /// The output rate.
        to_rate: u32,
    },
    /// rubato refused the parameters.
    #[error("cannot build the resampler: {0}")]
    Construction(#[from] rubato::ResamplerConstructionError),
    /// rubato failed while processing.
    #[error("the resampler failed: {0}")]
    Process(#[from] rubato::ResampleError),
    /// A buffer did not match the clip (a bug, reported rather than panicking).
    #[error("resampler buffer: {0}")]
    Buffer(#[from] audioadapter_buffers::SizeError),
}

/// The resampler the contract fixes, from `from_rate` to `to_rate` (both within the
/// supported range), taking [`CHUNK_FRAMES`] input frames per call; `None` when the
/// rates are equal. The board's streaming resampler builds the same one.
pub fn contract_resampler(
    from_rate: u32,
    to_rate: u32,
) -> Result<Option<Async<f64>>, ResampleError> {
    let range = MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE;
    if !range.contains(&from_rate) || !range.contains(&to_rate) {
        return Err(ResampleError::InvalidRate { from_rate, to_rate });
    }
    if from_rate == to_rate {
        return Ok(None);
    }
    let parameters = SincInterpolationParameters::new(sinc_len_for(from_rate, to_rate), WINDOW)
        .oversampling_factor(OVERSAMPLING_FACTOR)
        .interpolation(INTERPOLATION);
    let ratio = f64::from(to_rate) / f64::from(from_rate);
    Ok(Some(Async::<f64>::new_sinc(
        ratio,
        1.0,
        &parameters,
        CHUNK_FRAMES,
        1,
        FixedAsync::Input,
    )?))
}

/// The number of samples resampling `n` samples from `from_rate` to `to_rate` gives:
/// `ceil(n * to_rate / from_rate)`, computed exactly (0 if `from_rate` is 0).
pub fn resampled_len(n: usize, from_rate: u32, to_rate: u32) -> usize {
    if from_rate == 0 {
        return 0;
    }
    let exact = (n as u128 * u128::from(to_rate)).div_ceil(u128::from(from_rate));
    usize::try_from(exact).unwrap_or(usize::MAX)
}

/// The sinc length used from `from_rate` to `to_rate`: [`BASE_SINC_LEN`], scaled up by
/// `from_rate / to_rate` when downsampling, rounded up to a multiple of 8, at most
/// [`MAX_SINC_LEN`].
pub fn sinc_len_for(from_rate: u32, to_rate: u32) -> usize {
    if to_rate == 0 || from_rate <= to_rate {
        return BASE_SINC_LEN;
    }
    let scaled = (BASE_SINC_LEN as u64 * u64::from(from_rate)).div_ceil(u64::from(to_rate));
    let scaled = usize::try_from(scaled.next_multiple_of(8)).unwrap_or(MAX_SINC_LEN);
    scaled.min(MAX_SINC_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::test_wav::sine;

    /// Input rates the front-end must handle (TESS is 24 414 Hz, one file 96 kHz).
    const RATES: [u32; 7] = [8_000, 22_050, 24_414, 44_100, 48_000, 96_000, 16_000];

    /// Frequency from upward zero crossings, interpolated linearly between samples, over
    /// the signal minus `skip` seconds at each end (where the filter sees the edges).
    fn estimate_frequency(signal: &[f32], rate: u32, skip: f64) -> f64 {
        let skip = (skip * f64::from(rate)) as usize;
        let body = &signal[skip..signal.len() - skip];
        let crossings: Vec<f64> = body
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
            .map(|(i, w)| i as f64 + f64::from(-w[0]) / f64::from(w[1] - w[0]))
            .collect();
        assert!(crossings.len() > 2, "too few zero crossings");
        let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
        assert!(
            (last - first) / f64::from(rate) >= 1.0,
            "measure over at least 1 s"
        );
        (crossings.len() - 1) as f64 * f64::from(rate) / (last - first)
    }

    fn rms(signal: &[f32]) -> f64 {
        (signal
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            / signal.len() as f64)
            .sqrt()
    }

    /// Gain in dB of a `freq` tone through `from_rate` → 16 kHz: RMS of the middle of the
    /// output (0.2 s trimmed at each end) against the RMS of the input.
    fn gain_db(freq: f64, from_rate: u32) -> f64 {
        let input = sine(freq, from_rate, 2.0, 0.5);
        let output = resample_to(&input, from_rate, 16_000).expect("resamples");
        let trim = 16_000 / 5;
        let middle = &output[trim..output.len() - trim];
        20.0 * (rms(middle) / rms(&input)).log10()
    }

    #[test]
    fn sine_keeps_its_frequency() {
        for from_rate in RATES {
            for freq in [220.0, 440.0, 1_000.0, 3_000.0] {
                let input = sine(freq, from_rate, 2.0, 0.5);
                let output = resample_to(&input, from_rate, 16_000).expect("resamples");
                let measured = estimate_frequency(&output, 16_000, 0.25);
                eprintln!(
                    "{from_rate:>6} Hz -> 16 kHz, {freq:>6} Hz tone: measured {measured:.4} Hz, error {:+.4} Hz",
                    measured - freq
                );
                assert!(
                    (measured - freq).abs() < 1.0,
                    "{from_rate} Hz, {freq} Hz: {measured}"
                );
            }
        }
    }

    #[test]
    fn tones_above_8_khz_are_attenuated_by_at_least_40_db() {
        for (from_rate, freqs) in [
            (22_050, &[8_500.0, 9_000.0, 10_000.0][..]),
            (24_414, &[8_200.0, 8_500.0, 9_000.0, 10_000.0, 11_000.0][..]),
            (
                44_100,
                &[
                    8_200.0, 8_500.0, 9_000.0, 10_000.0, 11_000.0, 15_000.0, 20_000.0,
                ][..],
            ),
            (
                48_000,
                &[
                    8_200.0, 8_500.0, 9_000.0, 10_000.0, 11_000.0, 15_000.0, 23_000.0,
                ][..],
            ),
            (
                96_000,
                &[
                    8_200.0, 8_500.0, 9_000.0, 10_000.0, 11_000.0, 24_000.0, 40_000.0,
                ][..],
            ),
        ] {
            for &freq in freqs {
                let gain = gain_db(freq, from_rate);
                eprintln!("{from_rate:>6} Hz -> 16 kHz, {freq:>7} Hz tone: {gain:8.1} dB");
                assert!(
                    gain <= -40.0,
                    "{from_rate} Hz, {freq} Hz: only {gain:.1} dB"
                );
            }
        }
    }

    #[test]
    fn passband_is_flat_up_to_6_khz() {
        for from_rate in [22_050, 24_414, 44_100, 48_000, 96_000] {
            let resampler = ClipResampler::new(from_rate, 16_000).expect("builds");
            eprintln!(
                "{from_rate:>6} Hz -> 16 kHz: sinc_len {}, cutoff {:.0} Hz",
                sinc_len_for(from_rate, 16_000),
                resampler.cutoff_hz().unwrap_or(f64::NAN)
            );
            for freq in [100.0, 1_000.0, 4_000.0, 6_000.0, 7_000.0, 7_500.0] {
                let gain = gain_db(freq, from_rate);
                eprintln!("{from_rate:>6} Hz -> 16 kHz, {freq:>7} Hz tone: {gain:8.3} dB");
                if freq <= 6_000.0 {
                    assert!(gain.abs() < 0.1, "{from_rate} Hz, {freq} Hz: {gain:.3} dB");
                }
            }
        }
    }

    #[test]
    fn output_length_is_ceil_of_n_times_ratio() {
        for from_rate in RATES {
            for n in [
                1usize, 2, 3, 7, 100, 1023, 1024, 1025, 24_414, 48_828, 44_100, 96_001,
            ] {
                let output = resample_to(&vec![0.1; n], from_rate, 16_000).expect("resamples");
                let expected = (n as u64 * 16_000).div_ceil(u64::from(from_rate)) as usize;
                assert_eq!(output.len(), expected, "{n} samples at {from_rate} Hz");
                assert_eq!(resampled_len(n, from_rate, 16_000), expected);
            }
        }
        assert_eq!(resampled_len(48_828, 24_414, 16_000), 32_000);
        assert_eq!(resampled_len(44_100, 44_100, 16_000), 16_000);
        assert_eq!(resampled_len(3, 8_000, 16_000), 6);
        assert_eq!(resampled_len(1, 96_000, 16_000), 1);
        assert!(resample_to(&[], 44_100, 16_000).expect("empty").is_empty());
    }

    /// Delay of a 200 Hz tone through the resampler, in output samples (negative: the
    /// output leads), from the phase of a least-squares fit over the middle 0.8 s.
    fn measured_delay(from_rate: u32) -> f64 {
        let input = sine(200.0, from_rate, 1.0, 0.5);
        let output = resample_to(&input, from_rate, 16_000).expect("resamples");
        let w = 2.0 * std::f64::consts::PI * 200.0 / 16_000.0;
        let (mut in_phase, mut quadrature) = (0.0, 0.0);
        for (k, &y) in output.iter().enumerate().take(14_400).skip(1_600) {
            in_phase += f64::from(y) * (w * k as f64).sin();
            quadrature += f64::from(y) * (w * k as f64).cos();
        }
        -quadrature.atan2(in_phase) / w
    }

    #[test]
    fn output_leads_by_the_documented_fraction_of_a_sample() {
        for from_rate in [8_000u32, 11_025, 22_050, 24_414, 44_100, 48_000, 96_000] {
            let delay = measured_delay(from_rate);
            // rubato trims floor(D) samples but the filter delays by D - 1, where
            // D = sinc_len * ratio / 2: the output leads by 1 - frac(D), in (0, 1].
            let d = sinc_len_for(from_rate, 16_000) as f64 * 16_000.0 / f64::from(from_rate) / 2.0;
            let expected = -(d.floor() + 1.0 - d);
            eprintln!(
                "{from_rate:>6} Hz -> 16 kHz: delay {delay:+.4} output samples (rule: {expected:+.4})"
            );
            assert!(
                (delay - expected).abs() < 0.02,
                "{from_rate} Hz: {delay} vs {expected}"
            );
            assert!((-1.0..0.0).contains(&expected));
        }
        assert!(measured_delay(16_000).abs() < 1e-6);
    }

    #[test]
    fn sixteen_khz_passes_through_bit_identical() {
        let input: Vec<f32> = sine(440.0, 16_000, 0.5, 0.9)
            .into_iter()
            .chain([f32::MIN_POSITIVE, -0.0, 1e-30])
            .collect();
        let output = resample_to(&input, 16_000, 16_000).expect("passes");
        assert_eq!(
            output.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            input.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_resampler_gives_the_same_output_every_time() {
        let input = sine(440.0, 24_414, 0.7, 0.5);
        let mut resampler = ClipResampler::new(24_414, 16_000).expect("builds");
        let first = resampler.process(&input).expect("first");
        let second = resampler.process(&input).expect("second");
        assert_eq!(first, second);
        assert_eq!(first, resample_to(&input, 24_414, 16_000).expect("fresh"));
    }

    #[test]
    fn rates_outside_the_range_are_refused() {
        for (from, to) in [(0, 16_000), (16_000, 0), (7_999, 16_000), (44_100, 384_001)] {
            assert!(matches!(
                ClipResampler::new(from, to),
                Err(ResampleError::InvalidRate { .. })
            ));
        }
    }

    #[test]
    fn sinc_length_grows_with_the_downsampling_ratio() {
        assert_eq!(sinc_len_for(8_000, 16_000), 256);
        assert_eq!(sinc_len_for(16_000, 16_000), 256);
        assert_eq!(sinc_len_for(24_414, 16_000), 392);
        assert_eq!(sinc_len_for(48_000, 16_000), 768);
        assert_eq!(sinc_len_for(96_000, 16_000), 1_536);
        assert_eq!(sinc_len_for(768_000, 1_000), MAX_SINC_LEN);
    }
}
