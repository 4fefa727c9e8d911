//! Scoring detected spans against the truth.
//!
//! - A detection HITS a truth when their IoU (overlap / union, in samples) is at least
//!   [`HIT_IOU`]. Matching is one-to-one: pairs are taken in order of falling IoU (ties:
//!   earlier truth first), each truth and each detection at most once.
//! - precision = hits / detections, recall = hits / truths, F1 = 2PR / (P + R).
//!   Never NaN: with no detections precision is 1 when there are no truths either (nothing
//!   to find, nothing wrongly found) and 0 otherwise; with no truths recall is 1 (nothing
//!   missed); F1 is 0 when P + R = 0. So no truths and no detections score 1, 1, 1; truths
//!   and no detections 0, 0, 0; detections and no truths P 0, R 1, F1 0.
//! - A SPLIT is a truth with two or more detections that lie mostly inside it (each
//!   detection has at least half of its length within the truth); a MERGE is a detection
//!   with two or more truths mostly inside it (each truth has at least half of its length
//!   within the detection).
//! - Boundary errors are for hit pairs only: detected minus true, in ms (negative: the
//!   detection starts or ends early).

use super::segmenters::Span;

/// IoU at or above which a detection hits a truth.
pub const HIT_IOU: f64 = 0.5;

/// Overlap over union of two spans (0 when both are empty).
pub fn iou(a: &Span, b: &Span) -> f64 {
    let overlap = a.overlap(b);
    let union = a.len() + b.len() - overlap;
    if union == 0 {
        0.0
    } else {
        overlap as f64 / union as f64
    }
}

/// How one set of detections did against one set of truths (sums over streams add up:
/// see [`Score::add`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// True utterances.
    pub truths: usize,
    /// Detected utterances.
    pub detections: usize,
    /// One-to-one hits.
    pub hits: usize,
    /// Truths split into several detections.
    pub splits: usize,
    /// Detections that merged several truths.
    pub merges: usize,
    /// Detected minus true start of each hit, ms.
    pub start_errors_ms: Vec<f64>,
    /// Detected minus true end of each hit, ms.
    pub end_errors_ms: Vec<f64>,
}

impl Score {
    /// Adds another stream's score to this one.
    pub fn add(&mut self, other: &Score) {
        self.truths += other.truths;
        self.detections += other.detections;
        self.hits += other.hits;
        self.splits += other.splits;
        self.merges += other.merges;
        self.start_errors_ms
            .extend_from_slice(&other.start_errors_ms);
        self.end_errors_ms.extend_from_slice(&other.end_errors_ms);
    }

    /// hits / detections (see the module documentation for the empty cases).
    pub fn precision(&self) -> f64 {
        match (self.detections, self.truths) {
            (0, 0) => 1.0,
            (0, _) => 0.0,
            (d, _) => self.hits as f64 / d as f64,
        }
    }

    /// hits / truths (1 when there are no truths).
    pub fn recall(&self) -> f64 {
        if self.truths == 0 {
            1.0
        } else {
            self.hits as f64 / self.truths as f64
        }
    }

    /// The harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r <= 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Median start error, ms (`None` without hits).
    pub fn median_start_ms(&self) -> Option<f64> {
        median(&self.start_errors_ms)
    }

    /// Median end error, ms (`None` without hits).
    pub fn median_end_ms(&self) -> Option<f64> {
        median(&self.end_errors_ms)
    }

    /// Median absolute start error, ms.
    pub fn median_abs_start_ms(&self) -> Option<f64> {
        median(
            &self
                .start_errors_ms
                .iter()
                .map(|e| e.abs())
                .collect::<Vec<_>>(),
        )
    }

    /// Median absolute end error, ms.
    pub fn median_abs_end_ms(&self) -> Option<f64> {
        median(
            &self
                .end_errors_ms
                .iter()
                .map(|e| e.abs())
                .collect::<Vec<_>>(),
        )
    }
}

/// The median of finite values (mean of the middle two for an even count); `None` when
/// there are none. Non-finite values are left out.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Scores `detected` against `truth` (spans at `rate_hz`; any order).
pub fn score(truth: &[Span], detected: &[Span], rate_hz: u32) -> Score {
    let ms = |samples: f64| samples * 1_000.0 / f64::from(rate_hz.max(1));
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (t, ts) in truth.iter().enumerate() {
        for (d, ds) in detected.iter().enumerate() {
            let v = iou(ts, ds);
            if v >= HIT_IOU {
                pairs.push((v, t, d));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut truth_used = vec![false; truth.len()];
    let mut detection_used = vec![false; detected.len()];
    let mut result = Score {
        truths: truth.len(),
        detections: detected.len(),
        ..Score::default()
    };
    let mut hits: Vec<(usize, usize)> = Vec::new();
    for (_, t, d) in pairs {
        if !truth_used[t] && !detection_used[d] {
            truth_used[t] = true;
            detection_used[d] = true;
            hits.push((t, d));
        }
    }
    hits.sort_unstable();
    for (t, d) in hits {
        let (ts, ds) = (truth[t], detected[d]);
        result.hits += 1;
        result
            .start_errors_ms
            .push(ms(ds.start as f64 - ts.start as f64));
        result.end_errors_ms.push(ms(ds.end as f64 - ts.end as f64));
    }
    // "Mostly inside": at least half of the inner span's length overlaps the outer one.
    let mostly_inside =
        |inner: &Span, outer: &Span| !inner.is_empty() && 2 * inner.overlap(outer) >= inner.len();
    result.splits = truth
        .iter()
        .filter(|t| detected.iter().filter(|d| mostly_inside(d, t)).count() >= 2)
        .count();
    result.merges = detected
        .iter()
        .filter(|d| truth.iter().filter(|t| mostly_inside(t, d)).count() >= 2)
        .count();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;

    fn s(start: u64, end: u64) -> Span {
        Span::new(start, end)
    }

    #[test]
    fn exact_hits_score_one_with_zero_boundary_error() {
        let truth = [s(1_000, 5_000), s(20_000, 30_000)];
        let r = score(&truth, &truth, RATE);
        assert_eq!((r.hits, r.splits, r.merges), (2, 0, 0));
        assert_eq!((r.precision(), r.recall(), r.f1()), (1.0, 1.0, 1.0));
        assert_eq!(r.median_start_ms(), Some(0.0));
        assert_eq!(r.median_end_ms(), Some(0.0));
    }

    #[test]
    fn iou_just_under_a_half_misses_and_just_over_hits() {
        let truth = [s(0, 1_000)];
        // Inside the truth: IoU = len / 1000.
        let under = score(&truth, &[s(0, 499)], RATE);
        assert_eq!(under.hits, 0);
        assert_eq!(
            (under.precision(), under.recall(), under.f1()),
            (0.0, 0.0, 0.0)
        );
        let at = score(&truth, &[s(0, 500)], RATE);
        assert_eq!(at.hits, 1, "IoU exactly 0.5 hits");
        let over = score(&truth, &[s(0, 501)], RATE);
        assert_eq!(over.hits, 1);
        // Overhanging: [0, 2001) over [0, 1000) is 1000/2001 < 0.5.
        assert_eq!(score(&truth, &[s(0, 2_001)], RATE).hits, 0);
        assert_eq!(score(&truth, &[s(0, 1_999)], RATE).hits, 1);
        assert!((iou(&s(0, 1_000), &s(0, 1_999)) - 1_000.0 / 1_999.0).abs() < 1e-12);
        // Boundary errors in ms: end 1999 vs 1000 samples = +62.4 ms.
        let r = score(&truth, &[s(160, 1_000)], RATE);
        assert_eq!(r.median_start_ms(), Some(10.0));
        assert_eq!(r.median_end_ms(), Some(0.0));
    }

    #[test]
    fn a_truth_in_two_detections_is_a_split_and_the_bigger_part_hits() {
        let truth = [s(0, 10_000)];
        let r = score(&truth, &[s(0, 6_000), s(6_500, 10_000)], RATE);
        assert_eq!((r.splits, r.merges, r.hits, r.detections), (1, 0, 1, 2));
        assert_eq!(r.precision(), 0.5);
        assert_eq!(r.recall(), 1.0);
        assert!((r.f1() - 2.0 / 3.0).abs() < 1e-12);
        // Halves of 0.45 each: a split, and no hit.
        let r = score(&truth, &[s(0, 4_500), s(5_500, 10_000)], RATE);
        assert_eq!((r.splits, r.hits), (1, 0));
    }

    #[test]
    fn a_detection_over_two_truths_is_a_merge() {
        let truth = [s(0, 4_000), s(5_000, 9_000)];
        let r = score(&truth, &[s(0, 9_000)], RATE);
        assert_eq!((r.merges, r.splits), (1, 0));
        // IoU 4000/9000 with each: no hit.
        assert_eq!(r.hits, 0);
        // A short truth merged into a long one's detection: the long one still hits.
        let truth = [s(0, 10_000), s(10_500, 11_000)];
        let r = score(&truth, &[s(0, 11_000)], RATE);
        assert_eq!((r.merges, r.hits), (1, 1));
        assert_eq!(r.recall(), 0.5);
    }

    #[test]
    fn one_detection_never_hits_two_truths() {
        // Both truths have IoU >= 0.5 with the one detection only if they nearly coincide.
        let truth = [s(0, 1_000), s(0, 1_000)];
        let r = score(&truth, &[s(0, 1_000)], RATE);
        assert_eq!(r.hits, 1);
        let r = score(&[s(0, 1_000)], &[s(0, 1_000), s(0, 900)], RATE);
        assert_eq!(r.hits, 1);
        assert_eq!(r.median_end_ms(), Some(0.0), "the better pair is taken");
    }

    #[test]
    fn empty_sides_are_defined_and_never_nan() {
        let none = score(&[], &[], RATE);
        assert_eq!(
            (none.precision(), none.recall(), none.f1()),
            (1.0, 1.0, 1.0)
        );
        let missed = score(&[s(0, 100)], &[], RATE);
        assert_eq!(
            (missed.precision(), missed.recall(), missed.f1()),
            (0.0, 0.0, 0.0)
        );
        let false_alarm = score(&[], &[s(0, 100)], RATE);
        assert_eq!(
            (
                false_alarm.precision(),
                false_alarm.recall(),
                false_alarm.f1()
            ),
            (0.0, 1.0, 0.0)
        );
        assert_eq!(missed.median_start_ms(), None);
        // Empty spans hit nothing.
        let r = score(&[s(5, 5)], &[s(5, 5)], RATE);
        assert_eq!(r.hits, 0);
        for r in [none, missed, false_alarm, r] {
            assert!(!r.f1().is_nan() && !r.precision().is_nan() && !r.recall().is_nan());
        }
    }

    #[test]
    fn scores_of_streams_add_up() {
        let mut total = score(&[s(0, 100)], &[s(0, 100)], RATE);
        total.add(&score(&[s(0, 100)], &[], RATE));
        assert_eq!((total.truths, total.detections, total.hits), (2, 1, 1));
        assert_eq!(total.recall(), 0.5);
        assert_eq!(total.precision(), 1.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }
}
