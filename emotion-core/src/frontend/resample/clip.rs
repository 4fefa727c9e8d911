//! Whole clips (a file, a recorded segment) through the contract's resampler.

use audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Async, Resampler};

use super::{ResampleError, contract_resampler, resampled_len};

/// Resamples whole mono clips from one fixed rate to another.
///
/// Building one computes the sinc table (a few ms); reuse it for many clips at the same rate.
#[derive(Debug)]
pub struct ClipResampler {
    from_rate: u32,
    to_rate: u32,
    /// `None` when the rates are equal: samples pass through.
    inner: Option<Async<f64>>,
}

impl ClipResampler {
    /// A resampler from `from_rate` to `to_rate` (both in Hz, within the supported range).
    pub fn new(from_rate: u32, to_rate: u32) -> Result<Self, ResampleError> {
        let inner = contract_resampler(from_rate, to_rate)?;
        Ok(ClipResampler {
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

    /// The cutoff of the anti-aliasing filter in Hz, or `None` when passing through.
    pub fn cutoff_hz(&self) -> Option<f64> {
        let cutoff = self.inner.as_ref()?.cutoff()?;
        Some(f64::from(cutoff) * f64::from(self.from_rate) / 2.0)
    }

    /// Resamples one whole clip; the output has [`resampled_len`] samples.
    /// At equal rates the samples are returned unchanged (bit for bit).
    pub fn process(&mut self, samples: &[f32]) -> Result<Vec<f32>, ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(samples.to_vec());
        };
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let input = [samples.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>()];
        let adapter = SequentialSliceOfVecs::new(&input, 1, samples.len())?;
        let mut output = inner
            .process_all(&adapter, samples.len(), None)?
            .take_data();
        // rubato computes the length as ceil(ratio * n) in floating point, which can come
        // out one too long when the exact value is a whole number; use the exact rule.
        output.truncate(resampled_len(samples.len(), self.from_rate, self.to_rate));
        Ok(output.into_iter().map(|x| x as f32).collect())
    }
}

/// Resamples a mono clip from `from_rate` to `to_rate` (a one-off [`ClipResampler`]).
pub fn resample_to(
    samples: &[f32],
    from_rate: u32,
    to_rate: u32,
) -> Result<Vec<f32>, ResampleError> {
    ClipResampler::new(from_rate, to_rate)?.process(samples)
}
