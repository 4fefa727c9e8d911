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

#[cfg(test)]
mod tests {
    use super::*;

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
