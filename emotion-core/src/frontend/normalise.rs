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

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_variance(x: &[f32]) -> (f64, f64) {
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var)
    }

    #[test]
    fn gives_zero_mean_and_unit_variance() {
        let mut x: Vec<f32> = (0..16_000)
            .map(|i| 0.3 + 0.2 * (i as f32 * 0.05).sin() + 0.05 * (i as f32 * 0.37).cos())
            .collect();
        normalize(&mut x);
        let (mean, var) = mean_and_variance(&x);
        eprintln!("normalised: mean {mean:.3e}, variance {var:.9}");
        assert!(mean.abs() < 1e-6, "{mean}");
        // Not exactly 1: the epsilon shrinks it by var / (var + 1e-7).
        assert!((var - 1.0).abs() < 1e-5, "{var}");
    }

    #[test]
    fn matches_the_hugging_face_formula_on_a_known_signal() {
        // x = [1, 2, 3, 4]: mean 2.5, population variance 1.25.
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        normalize(&mut x);
        let scale = (1.25f64 + 1e-7).sqrt();
        let expected = [-1.5, -0.5, 0.5, 1.5].map(|d: f64| (d / scale) as f32);
        assert_eq!(x, expected);
    }

    #[test]
    fn a_constant_signal_becomes_zeros_not_nan() {
        for value in [0.0f32, 0.5, -1.0] {
            let mut x = vec![value; 1000];
            normalize(&mut x);
            assert!(x.iter().all(|&v| v == 0.0), "{value}");
        }
        let mut empty: [f32; 0] = [];
        normalize(&mut empty);
    }
}
