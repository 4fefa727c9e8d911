//! Classification metrics as scikit-learn's `classification_report` and
//! `confusion_matrix` compute them: per-class precision, recall, F1 and support,
//! accuracy, macro and support-weighted averages. A class never predicted (or never
//! present) gets 0 where sklearn's `zero_division=0` would. The label set is fixed (all
//! seven emotions, as sklearn with `labels=range(7)`), so averages do not change meaning
//! when a small test set lacks a class.

use std::fmt::Write as _;

use emotion_core::Emotion;
use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class (or an average).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Of the predictions of this class, the fraction that were right.
    pub precision: f64,
    /// Of the samples of this class, the fraction found.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Samples of this class (for averages: all samples).
    pub support: usize,
}

/// The report of one model on one set of samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Class names, in class-index order.
    pub labels: Vec<String>,
    /// Per class, in label order.
    pub per_class: Vec<ClassMetrics>,
    /// Fraction of samples predicted right.
    pub accuracy: f64,
    /// Unweighted mean over classes.
    pub macro_avg: ClassMetrics,
    /// Mean over classes weighted by support.
    pub weighted_avg: ClassMetrics,
    /// `confusion[true][predicted]`, counts.
    pub confusion: Vec<Vec<usize>>,
}

impl ClassificationReport {
    /// The report for the seven emotions from class indices. Indices outside 0..7 are
    /// ignored (they cannot come from a model with seven outputs).
    pub fn from_predictions(truth: &[usize], predicted: &[usize]) -> Self {
        let labels = Emotion::ALL.iter().map(|e| e.name().to_string()).collect();
        Self::with_labels(labels, truth, predicted)
    }

    /// The report for any label set; `truth` and `predicted` index into `labels`.
    pub fn with_labels(labels: Vec<String>, truth: &[usize], predicted: &[usize]) -> Self {
        let n = labels.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < n && p < n {
                confusion[t][p] += 1;
            }
        }
        let total: usize = confusion.iter().flatten().sum();
        let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = (0..n)
            .map(|c| {
                let support: usize = confusion[c].iter().sum();
                let predicted_as: usize = confusion.iter().map(|row| row[c]).sum();
                let precision = ratio(confusion[c][c], predicted_as);
                let recall = ratio(confusion[c][c], support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let average = |weight: &dyn Fn(&ClassMetrics) -> f64| {
            let weights: f64 = per_class.iter().map(weight).sum();
            let mean = |value: &dyn Fn(&ClassMetrics) -> f64| {
                if weights == 0.0 {
                    0.0
                } else {
                    per_class.iter().map(|m| weight(m) * value(m)).sum::<f64>() / weights
                }
            };
            ClassMetrics {
                precision: mean(&|m| m.precision),
                recall: mean(&|m| m.recall),
                f1: mean(&|m| m.f1),
                support: total,
            }
        };
        Self {
            macro_avg: average(&|_| 1.0),
            weighted_avg: average(&|m| m.support as f64),
            accuracy: ratio(correct, total),
            labels,
            per_class,
            confusion,
        }
    }

    /// Macro-averaged F1 (early stopping and model selection use it).
    pub fn macro_f1(&self) -> f64 {
        self.macro_avg.f1
    }

    /// Support-weighted F1.
    pub fn weighted_f1(&self) -> f64 {
        self.weighted_avg.f1
    }

    /// The report as sklearn prints it, as a Markdown table, then the confusion matrix.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| | precision | recall | f1-score | support |\n|---|---:|---:|---:|---:|\n",
        );
        for (label, m) in self.labels.iter().zip(&self.per_class) {
            let _ = writeln!(
                out,
                "| {label} | {:.2} | {:.2} | {:.2} | {} |",
                m.precision, m.recall, m.f1, m.support
            );
        }
        let total = self.macro_avg.support;
        let _ = writeln!(out, "| **accuracy** | | | {:.2} | {total} |", self.accuracy);
        for (name, m) in [
            ("macro avg", &self.macro_avg),
            ("weighted avg", &self.weighted_avg),
        ] {
            let _ = writeln!(
                out,
                "| **{name}** | {:.2} | {:.2} | {:.2} | {} |",
                m.precision, m.recall, m.f1, m.support
            );
        }
        out.push_str(
            "\nConfusion matrix (rows: true, columns: predicted):\n\n| true \\ predicted |",
        );
        for label in &self.labels {
            let _ = write!(out, " {label} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(self.labels.len()));
        out.push('\n');
        for (label, row) in self.labels.iter().zip(&self.confusion) {
            let _ = write!(out, "| {label} |");
            for n in row {
                let _ = write!(out, " {n} |");
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand; sklearn's `classification_report(t, p, output_dict=True,
    /// zero_division=0)` gives the same numbers for these lists.
    #[test]
    fn matches_sklearn_on_a_worked_example() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let truth = [0, 0, 0, 1, 1, 2];
        let predicted = [0, 0, 1, 1, 2, 2];
        let r = ClassificationReport::with_labels(labels, &truth, &predicted);
        assert_eq!(
            r.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // a: p 2/2, r 2/3; b: p 1/2, r 1/2; c: p 1/2, r 1/1.
        assert!(close(r.per_class[0].precision, 1.0) && close(r.per_class[0].recall, 2.0 / 3.0));
        assert!(close(r.per_class[0].f1, 0.8));
        assert!(close(r.per_class[1].f1, 0.5));
        assert!(close(r.per_class[2].f1, 2.0 / 3.0));
        assert!(close(r.accuracy, 4.0 / 6.0));
        assert!(close(r.macro_f1(), (0.8 + 0.5 + 2.0 / 3.0) / 3.0));
        assert!(close(
            r.weighted_f1(),
            (3.0 * 0.8 + 2.0 * 0.5 + 2.0 / 3.0) / 6.0
        ));
        assert_eq!(r.macro_avg.support, 6);
    }

    #[test]
    fn a_class_never_predicted_scores_zero_not_nan() {
        let r = ClassificationReport::from_predictions(&[0, 1, 2], &[0, 0, 0]);
        assert_eq!(r.labels.len(), 7);
        assert_eq!(r.per_class[1].precision, 0.0);
        assert_eq!(r.per_class[1].f1, 0.0);
        assert_eq!(r.per_class[6].support, 0);
        assert!(r.macro_f1().is_finite());
        let md = r.to_markdown();
        assert!(md.contains("| **accuracy** | | | 0.33 | 3 |"), "{md}");
        assert!(md.contains("| pleasant surprise |"), "{md}");
    }

    #[test]
    fn perfect_predictions_score_one() {
        let all: Vec<usize> = (0..7).collect();
        let r = ClassificationReport::from_predictions(&all, &all);
        assert_eq!(r.accuracy, 1.0);
        assert!((r.macro_f1() - 1.0).abs() < 1e-12);
    }
}
