//! Zero-mean, unit-variance normalisation, as Hugging Face's `Wav2Vec2FeatureExtractor`
//! does with `do_normalize=True`: `(x - mean) / sqrt(var + 1e-7)` with the population
//! variance. The statistics are computed in `f64` in a fixed order, so the host and the
//! board get the same bits; the output is `f32`.

/// The constant added to the variance before the square root (HF's value).
pub const VARIANCE_EPSILON: f64 = 1e-7;

/// Normalises `samples` in place to zero mean and unit variance.
///
/// A constant signal becomes all zeros; an empty slice is left as it is.
pub fn normalize(samples: &mut [f32]) {
    if samples.is_empty() {
        return;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let variance = samples
        .iter()
        .map(|&x| {
            let d = f64::from(x) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    let scale = (variance + VARIANCE_EPSILON).sqrt();
    for x in samples.iter_mut() {
        *x = ((f64::from(*x) - mean) / scale) as f32;
    }
}
