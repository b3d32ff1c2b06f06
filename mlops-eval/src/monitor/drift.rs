//! Distribution drift between a baseline and a current sample.

/// Proportions below this count as this, so the logarithms of PSI stay finite when a bin
/// is empty on one side.
pub const EMPTY_BIN_FLOOR: f64 = 1e-4;

/// Population stability index of `current` against `baseline` proportions (the same bins,
/// in the same order): `Σ (c − b) · ln(c / b)`, empty bins floored at [`EMPTY_BIN_FLOOR`].
/// Common reading: under 0.1 stable, 0.1 to 0.25 moderate shift, above 0.25 major shift.
pub fn population_stability_index(baseline: &[f64], current: &[f64]) -> f64 {
    baseline
        .iter()
        .zip(current)
        .map(|(b, c)| {
            let (b, c) = (b.max(EMPTY_BIN_FLOOR), c.max(EMPTY_BIN_FLOOR));
            (c - b) * (c / b).ln()
        })
        .sum()
}

/// Jensen-Shannon distance (base 2, so between 0 and 1) between two distributions over the
/// same bins, as `scipy.spatial.distance.jensenshannon(p, q, base=2)`; each is normalized to
/// sum to one first.
pub fn jensen_shannon_distance(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return 0.0;
    }
    let relative = |a: f64, m: f64| if a > 0.0 { a * (a / m).log2() } else { 0.0 };
    let divergence: f64 = p
        .iter()
        .zip(q)
        .map(|(a, b)| {
            let (a, b) = (a / sp, b / sq);
            let m = (a + b) / 2.0;
            (relative(a, m) + relative(b, m)) / 2.0
        })
        .sum();
    divergence.max(0.0).sqrt()
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The two-sample Kolmogorov-Smirnov statistic: the largest distance between the two
/// empirical distribution functions (`scipy.stats.ks_2samp(...).statistic`). Non-finite
/// values are ignored; 0 when a sample is empty.
pub fn kolmogorov_smirnov(baseline: &[f64], current: &[f64]) -> f64 {
    let (a, b) = (sorted(baseline), sorted(current));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut largest) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        largest = largest.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    largest
}

/// The first Wasserstein (earth mover's) distance between two samples: the area between
/// their empirical distribution functions (`scipy.stats.wasserstein_distance`). Non-finite
/// values are ignored; 0 when a sample is empty.
pub fn wasserstein(baseline: &[f64], current: &[f64]) -> f64 {
    let (a, b) = (sorted(baseline), sorted(current));
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut points: Vec<f64> = a.iter().chain(&b).copied().collect();
    points.sort_by(f64::total_cmp);
    points.dedup();
    let (mut i, mut j, mut area) = (0usize, 0usize, 0f64);
    for window in points.windows(2) {
        while i < a.len() && a[i] <= window[0] {
            i += 1;
        }
        while j < b.len() && b[j] <= window[0] {
            j += 1;
        }
        let gap = (i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs();
        area += gap * (window[1] - window[0]);
    }
    area
}

/// Bin edges splitting `baseline` into `bins` equally populated bins (deciles for 10),
/// without repeated edges; values are binned by [`bin_proportions`].
pub fn quantile_edges(baseline: &[f64], bins: usize) -> Vec<f64> {
    let values = sorted(baseline);
    if values.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> =
        (1..bins).filter_map(|k| crate::stats::quantile(&values, k as f64 / bins as f64)).collect();
    edges.dedup();
    edges
}

/// The share of `values` in each bin defined by `edges` (bin `k` holds values in
/// `(edges[k-1], edges[k]]`; the first and last bins are open-ended), `edges.len() + 1`
/// shares. Non-finite values are ignored.
pub fn bin_proportions(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut counts = vec![0usize; edges.len() + 1];
    let mut total = 0usize;
    for v in values.iter().filter(|v| v.is_finite()) {
        counts[edges.partition_point(|edge| edge < v)] += 1;
        total += 1;
    }
    counts.iter().map(|c| if total == 0 { 0.0 } else { *c as f64 / total as f64 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from scipy 1.17 / numpy on the same inputs.
    const A: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    const B: [f64; 6] = [2.5, 3.5, 4.5, 5.5, 9.0, 10.0];

    #[test]
    fn kolmogorov_smirnov_and_wasserstein_match_scipy() {
        assert!((kolmogorov_smirnov(&A, &B) - 1.0 / 3.0).abs() < 1e-12);
        assert!((wasserstein(&A, &B) - 1.375).abs() < 1e-12);
        assert_eq!(kolmogorov_smirnov(&A, &A), 0.0);
        assert_eq!(wasserstein(&A, &A), 0.0);
        assert_eq!(kolmogorov_smirnov(&A, &[]), 0.0);
        // Shifting every value by 2 moves the distribution by exactly 2.
        let shifted: Vec<f64> = A.iter().map(|v| v + 2.0).collect();
        assert!((wasserstein(&A, &shifted) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn psi_and_jensen_shannon_match_the_formulas() {
        let (p, q) = ([0.1, 0.4, 0.5], [0.3, 0.3, 0.4]);
        assert!((population_stability_index(&p, &q) - 0.270805020110221).abs() < 1e-12);
        assert!((jensen_shannon_distance(&p, &q) - 0.21663402449519667).abs() < 1e-12);
        assert_eq!(population_stability_index(&p, &p), 0.0);
        assert!(jensen_shannon_distance(&[1.0, 0.0], &[0.0, 1.0]) > 0.999_999);
        // Counts normalize like proportions.
        assert!((jensen_shannon_distance(&[1.0, 4.0, 5.0], &[3.0, 3.0, 4.0]) - 0.21663402449519667).abs() < 1e-12);
    }

    #[test]
    fn deciles_split_the_baseline_evenly() {
        let baseline: Vec<f64> = (1..=100).map(f64::from).collect();
        let edges = quantile_edges(&baseline, 10);
        assert_eq!(edges.len(), 9);
        assert!(bin_proportions(&baseline, &edges).iter().all(|p| (p - 0.1).abs() < 1e-12));
        assert_eq!(bin_proportions(&[1000.0, -5.0], &edges), [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]);
    }
}
