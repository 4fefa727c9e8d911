//! From many high-dimensional vectors to a picture and a number: PCA and t-SNE maps to
//! two dimensions, and the silhouette score that says how well the emotions separate.
//!
//! PCA is nalgebra's SVD of the centred data; t-SNE is the `bhtsne` crate (Barnes-Hut,
//! started from the PCA map scaled down as scikit-learn does, so the same vectors give the
//! same picture instead of one seeded by a random generator). The silhouette is computed
//! here: it is a few lines, and no light, kept crate offers it.

use nalgebra::DMatrix;

/// The fewest vectors a map is drawn from (t-SNE's perplexity needs a few neighbours).
pub const MIN_POINTS: usize = 10;

/// The perplexity used where there are enough points (scikit-learn's default).
pub const PERPLEXITY: f32 = 30.0;

/// t-SNE iterations.
pub const TSNE_EPOCHS: usize = 1000;

/// A map that cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProjectionError {
    /// Too few vectors.
    #[error("{found} vectors are too few for a map (at least {MIN_POINTS})")]
    TooFew {
        /// How many there were.
        found: usize,
    },
    /// Rows of different lengths, or of length zero.
    #[error(
        "the vectors must share one non-zero length (row {row} has {found}, expected {expected})"
    )]
    Ragged {
        /// The first row at fault.
        row: usize,
        /// Its length.
        found: usize,
        /// The first row's length.
        expected: usize,
    },
    /// A value is NaN or infinite.
    #[error("vector {row} holds a value that is not finite")]
    NotFinite {
        /// The row at fault.
        row: usize,
    },
    /// The SVD did not converge or t-SNE diverged.
    #[error("{0}")]
    Failed(String),
}

/// Points in two dimensions, with what each axis holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Map2d {
    /// One `[x, y]` per input vector, in order.
    pub points: Vec<[f64; 2]>,
    /// Fraction of the variance along each axis (PCA only).
    pub explained: Option<[f64; 2]>,
}

/// Checks the rows and returns them as one `n × d` matrix (f64).
fn matrix(rows: &[Vec<f32>]) -> Result<DMatrix<f64>, ProjectionError> {
    if rows.len() < MIN_POINTS {
        return Err(ProjectionError::TooFew { found: rows.len() });
    }
    let dim = rows[0].len();
    for (row, values) in rows.iter().enumerate() {
        if values.len() != dim || dim == 0 {
            return Err(ProjectionError::Ragged {
                row,
                found: values.len(),
                expected: dim,
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ProjectionError::NotFinite { row });
        }
    }
    Ok(DMatrix::from_fn(rows.len(), dim, |i, j| {
        f64::from(rows[i][j])
    }))
}

/// The first two principal components of `rows` (centred, not scaled); a one-dimensional
/// input gets a zero second axis.
pub fn pca(rows: &[Vec<f32>]) -> Result<Map2d, ProjectionError> {
    let mut x = matrix(rows)?;
    let means: Vec<f64> = x.column_iter().map(|c| c.mean()).collect();
    for (mut column, mean) in x.column_iter_mut().zip(&means) {
        column.add_scalar_mut(-mean);
    }
    let svd = x
        .clone()
        .try_svd(false, true, f64::EPSILON, 0)
        .ok_or_else(|| ProjectionError::Failed("the SVD of the vectors did not converge".into()))?;
    let v_t = svd
        .v_t
        .ok_or_else(|| ProjectionError::Failed("the SVD gave no right singular vectors".into()))?;
    // nalgebra does not sort singular values: order the axes by them.
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let total: f64 = svd.singular_values.iter().map(|s| s * s).sum();
    let mut points = vec![[0.0; 2]; rows.len()];
    let mut explained = [0.0; 2];
    for (axis, &k) in order.iter().take(2).enumerate() {
        let projected = &x * v_t.row(k).transpose();
        // A fixed sign (largest loading positive), so the picture does not flip.
        let row = v_t.row(k);
        let flip = row.iter().copied().fold(
            0.0f64,
            |best, v| {
                if v.abs() > best.abs() { v } else { best }
            },
        ) < 0.0;
        for (point, value) in points.iter_mut().zip(projected.iter()) {
            point[axis] = if flip { -value } else { *value };
        }
        explained[axis] = if total > 0.0 {
            svd.singular_values[k].powi(2) / total
        } else {
            0.0
        };
    }
    Ok(Map2d {
        points,
        explained: Some(explained),
    })
}

/// The perplexity t-SNE can use with `n` points (bhtsne asks for `n - 1 ≥ 3 p`).
pub fn perplexity_for(n: usize) -> f32 {
    PERPLEXITY.min((n.saturating_sub(1) / 3) as f32).max(1.0)
}

/// A two-dimensional t-SNE map of `rows` (Euclidean distances, Barnes-Hut θ = 0.5,
/// perplexity [`perplexity_for`]), started from the PCA map scaled to a standard deviation
/// of 1e-4 on its first axis (scikit-learn's `init="pca"`).
pub fn tsne(rows: &[Vec<f32>]) -> Result<Map2d, ProjectionError> {
    let start = pca(rows)?;
    let spread = {
        let n = start.points.len() as f64;
        let mean = start.points.iter().map(|p| p[0]).sum::<f64>() / n;
        (start
            .points
            .iter()
            .map(|p| (p[0] - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
    };
    let scale = if spread > 0.0 { 1e-4 / spread } else { 1.0 };
    let initial: Vec<f32> = start
        .points
        .iter()
        .flat_map(|p| [(p[0] * scale) as f32, (p[1] * scale) as f32])
        .collect();
    let samples: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let mut fit: bhtsne::tSNE<f32, &[f32]> = bhtsne::tSNE::new(&samples);
    fit.perplexity(perplexity_for(rows.len()))
        .epochs(TSNE_EPOCHS)
        .initial_embedding(initial)
        .barnes_hut(0.5, |a, b| euclidean(a, b) as f32);
    let embedding = fit.embedding();
    if embedding.len() != rows.len() * 2 || embedding.iter().any(|v| !v.is_finite()) {
        return Err(ProjectionError::Failed(
            "t-SNE diverged (a coordinate is not finite)".into(),
        ));
    }
    Ok(Map2d {
        points: embedding
            .chunks_exact(2)
            .map(|p| [f64::from(p[0]), f64::from(p[1])])
            .collect(),
        explained: None,
    })
}

fn euclidean(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The mean silhouette coefficient of `rows` clustered by `labels` (Euclidean, as
/// scikit-learn's `silhouette_score`): for each point, `(b - a) / max(a, b)` with `a` its
/// mean distance to the rest of its class and `b` the smallest mean distance to another
/// class; a point alone in its class counts 0. In [-1, 1]; near 1, the classes are tight
/// and apart. `None` with fewer than two classes, or as many classes as points, or
/// mismatched lengths.
pub fn silhouette(rows: &[Vec<f32>], labels: &[usize]) -> Option<f64> {
    let n = rows.len();
    if n != labels.len() {
        return None;
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut sizes = vec![0usize; classes];
    for &l in labels {
        sizes[l] += 1;
    }
    let present = sizes.iter().filter(|&&s| s > 0).count();
    if present < 2 || present >= n {
        return None;
    }
    let mut total = 0.0;
    let mut sums = vec![0.0f64; classes];
    for i in 0..n {
        sums.iter_mut().for_each(|s| *s = 0.0);
        for j in 0..n {
            if i != j {
                sums[labels[j]] += euclidean(&rows[i], &rows[j]);
            }
        }
        let own = labels[i];
        if sizes[own] < 2 {
            continue;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..classes)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let scale = a.max(b);
        if scale > 0.0 {
            total += (b - a) / scale;
        }
    }
    Some(total / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `k` clusters of `per` points around well-apart centres in `dim` dimensions.
    fn clusters(k: usize, per: usize, dim: usize, spread: f32) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        let mut state = 12345u64;
        let mut noise = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for c in 0..k {
            for _ in 0..per {
                let row = (0..dim)
                    .map(|d| if d == c % dim { 10.0 } else { 0.0 } + spread * noise())
                    .collect();
                rows.push(row);
                labels.push(c);
            }
        }
        (rows, labels)
    }

    #[test]
    fn silhouette_matches_a_hand_computed_case() {
        // Two classes on a line: {0, 1} and {4}. Point 0: a = 1, b = 4 → 0.75; point 1:
        // a = 1, b = 3 → 2/3; point 4 is alone → 0. Mean (0.75 + 2/3) / 3.
        let rows = vec![vec![0.0], vec![1.0], vec![4.0]];
        let s = silhouette(&rows, &[0, 0, 1]).unwrap();
        assert!((s - (0.75 + 2.0 / 3.0) / 3.0).abs() < 1e-12, "{s}");
    }

    #[test]
    fn silhouette_is_high_for_apart_classes_and_low_for_mixed_ones() {
        let (rows, labels) = clusters(4, 8, 5, 1.0);
        let apart = silhouette(&rows, &labels).unwrap();
        assert!(apart > 0.8, "{apart}");
        let shuffled: Vec<usize> = (0..labels.len()).map(|i| i % 4).collect();
        let mixed = silhouette(&rows, &shuffled).unwrap();
        assert!(mixed < 0.1, "{mixed}");
        assert!((-1.0..=1.0).contains(&mixed));
        assert_eq!(silhouette(&rows, &vec![0; rows.len()]), None, "one class");
        assert_eq!(silhouette(&rows, &labels[1..]), None, "lengths differ");
    }

    #[test]
    fn pca_finds_the_axis_of_most_variance() {
        // Points spread along (1, 1, 0) with a little on (0, 0, 1).
        let rows: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                let t = i as f32 - 10.0;
                vec![t, t, 0.1 * (i % 3) as f32]
            })
            .collect();
        let map = pca(&rows).unwrap();
        let explained = map.explained.unwrap();
        assert!(explained[0] > 0.99 && explained[1] < 0.01, "{explained:?}");
        // The first axis is the position along the line, times √2.
        for (i, p) in map.points.iter().enumerate() {
            let t = i as f64 - 9.5; // centred: the mean of -10..=9 is -0.5
            assert!(
                (p[0].abs() - (t * 2f64.sqrt()).abs()).abs() < 1e-3,
                "{p:?} vs {t}"
            );
        }
    }

    #[test]
    fn tsne_keeps_clusters_apart() {
        let (rows, labels) = clusters(3, 15, 6, 1.0);
        let map = tsne(&rows).unwrap();
        assert_eq!(map.points.len(), rows.len());
        let flat: Vec<Vec<f32>> = map
            .points
            .iter()
            .map(|p| vec![p[0] as f32, p[1] as f32])
            .collect();
        let s = silhouette(&flat, &labels).unwrap();
        assert!(s > 0.5, "t-SNE mixed apart clusters: silhouette {s}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let (mut rows, _) = clusters(2, 6, 3, 1.0);
        assert!(matches!(
            tsne(&rows[..5]),
            Err(ProjectionError::TooFew { found: 5 })
        ));
        rows[3].push(1.0);
        assert!(matches!(
            pca(&rows),
            Err(ProjectionError::Ragged { row: 3, .. })
        ));
        rows[3].pop();
        rows[4][0] = f32::NAN;
        assert!(matches!(
            tsne(&rows),
            Err(ProjectionError::NotFinite { row: 4 })
        ));
    }

    #[test]
    fn identical_vectors_still_give_a_finite_map() {
        // The text model sees one transcript per word: many vectors are equal.
        let rows: Vec<Vec<f32>> = (0..30).map(|i| vec![(i % 3) as f32, 1.0]).collect();
        let map = tsne(&rows).unwrap();
        assert!(map.points.iter().flatten().all(|v| v.is_finite()));
        assert_eq!(perplexity_for(30), 9.0);
        assert_eq!(perplexity_for(1000), PERPLEXITY);
    }
}
