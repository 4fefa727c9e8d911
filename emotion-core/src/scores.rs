//! Softmax and argmax: one formula for the host's evaluation and the board's answer, so
//! the same logits give the same probabilities, bit for bit, on both sides.

/// Softmax, computed in f64 (max-subtracted) and returned in f32. NaN in gives NaN out.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let wide: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
    softmax_f64(&wide).into_iter().map(|p| p as f32).collect()
}

/// Softmax of f64 logits (max-subtracted): what [`softmax`] computes, for callers that
/// stay in f64 (the host's linear probe).
pub fn softmax_f64(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Index and value of the largest value (the first on ties; `(0, -inf)` when empty or
/// when nothing beats -inf, NaN included).
pub fn argmax(values: &[f32]) -> (usize, f32) {
    values
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, p)| {
            if p > best.1 { (i, p) } else { best }
        })
}

/// The largest |a − b| over two equally long slices, for every "how far apart are these
/// outputs" check (parity, conformance, quantisation): NaN when either holds a NaN, so
/// a broken output never reads as a perfect match (`fold(0.0, f32::max)` skips NaN and
/// said 0). Panics when the lengths differ.
pub fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "the outputs compared differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, nan_max)
}

/// `a.max(b)` that keeps a NaN instead of dropping it.
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_anywhere_makes_the_difference_nan_never_zero() {
        assert_eq!(max_abs_difference(&[1.0, -2.0], &[1.5, -2.0]), 0.5);
        assert_eq!(max_abs_difference(&[], &[]), 0.0);
        let nan = [f32::NAN; 3];
        assert!(max_abs_difference(&nan, &nan).is_nan());
        assert!(max_abs_difference(&[0.0, f32::NAN, 0.0], &[0.0, 0.0, 9.0]).is_nan());
        assert!(
            !(max_abs_difference(&nan, &[0.0; 3]) <= 1e-3),
            "a tolerance check fails"
        );
        // What the fold it replaces said:
        let old = nan.iter().map(|x| x.abs()).fold(0.0, f32::max);
        assert_eq!(old, 0.0);
        assert_eq!(max_abs_difference(&[f32::INFINITY], &[0.0]), f32::INFINITY);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let p = softmax(&[1.0, 2.0, 3.0, -1000.0, 0.0, 0.5, 2.0]);
        let sum: f32 = p.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        assert!(p[2] > p[1] && p[1] == p[6] && p[3] == 0.0);
    }

    #[test]
    fn f32_and_f64_forms_agree_bit_for_bit() {
        let logits = [0.3f32, -1.7, 4.25, 0.0, 2.5e-3, -30.0, 7.0];
        let wide: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
        let narrowed: Vec<f32> = softmax_f64(&wide).iter().map(|&p| p as f32).collect();
        assert_eq!(softmax(&logits), narrowed);
    }

    #[test]
    fn nan_is_not_hidden() {
        assert!(softmax(&[1.0, f32::NAN, 0.0]).iter().any(|p| p.is_nan()));
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), (1, 0.7));
        assert_eq!(argmax(&[]).0, 0);
    }
}
