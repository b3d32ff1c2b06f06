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

/// A sample's finite values sorted ascending, with prefix sums: the empirical distribution
/// function `F` and its integral answer in `O(log n)`, so comparing a window of `m` rows
/// with a baseline of `n` can cost `O(m log n)` instead of the `O(n + m)` of walking both
/// samples together; [`SortedSample::distances`] takes whichever is cheaper.
#[derive(Debug, Clone, Default)]
pub(crate) struct SortedSample {
    values: Vec<f64>,
    /// `prefix[i]` = sum of the `i` smallest values minus `origin` each: sums of values
    /// near the smallest one stay small, so far-from-zero columns (epoch seconds) keep
    /// their precision.
    prefix: Vec<f64>,
    origin: f64,
}

impl SortedSample {
    /// Non-finite values are dropped.
    pub(crate) fn new(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        // In the order of `f64::total_cmp`, in a few passes over the values rather than a
        // comparison sort's log n.
        radsort::sort(&mut values);
        let origin = values.first().copied().unwrap_or_default();
        let mut prefix = Vec::with_capacity(values.len() + 1);
        let mut sum = 0.0;
        prefix.push(sum);
        for v in &values {
            sum += v - origin;
            prefix.push(sum);
        }
        Self { values, prefix, origin }
    }

    pub(crate) fn values(&self) -> &[f64] {
        &self.values
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    /// How many values are `<= x`.
    fn count_at(&self, x: f64) -> usize {
        self.values.partition_point(|v| *v <= x)
    }

    /// How many values are `< x`.
    fn count_below(&self, x: f64) -> usize {
        self.values.partition_point(|v| *v < x)
    }

    /// `∫ F(t) dt` over `(-∞, x]`: `Σ_{v < x} (x − v) / n`.
    fn integral_to(&self, x: f64) -> f64 {
        let below = self.count_below(x);
        (below as f64 * (x - self.origin) - self.prefix[below]) / self.len() as f64
    }

    /// The two-sample Kolmogorov-Smirnov statistic and the first Wasserstein distance, 0
    /// when a sample is empty: by walking both samples together, unless one is so much
    /// smaller that searching the other for each of its values touches fewer of them.
    pub(crate) fn distances(&self, other: &Self) -> (f64, f64) {
        let (large, small) = if self.len() >= other.len() { (self, other) } else { (other, self) };
        // Each of the small sample's values costs about four searches of the large one.
        let searched = small.len().saturating_mul(4 * (usize::BITS - large.len().leading_zeros()) as usize);
        if searched < large.len() + small.len() {
            (self.kolmogorov_smirnov(other), self.wasserstein(other))
        } else {
            merged_distances(&self.values, &other.values)
        }
    }

    /// The two-sample Kolmogorov-Smirnov statistic; 0 when a sample is empty.
    pub(crate) fn kolmogorov_smirnov(&self, other: &Self) -> f64 {
        let (large, small) = if self.len() >= other.len() { (self, other) } else { (other, self) };
        if small.len() == 0 {
            return 0.0;
        }
        let (n, m) = (large.len() as f64, small.len() as f64);
        // Between two consecutive points of the small sample its F is constant and the large
        // one's is monotone, so the largest gap is at a point or just before the next one.
        let mut largest = 0f64;
        for (first, after) in distinct_runs(&small.values) {
            let x = small.values[first];
            let at = (large.count_at(x) as f64 / n - after as f64 / m).abs();
            let before = (large.count_below(x) as f64 / n - first as f64 / m).abs();
            largest = largest.max(at).max(before);
        }
        largest
    }

    /// The first Wasserstein distance `∫ |F_a − F_b|`; 0 when a sample is empty.
    pub(crate) fn wasserstein(&self, other: &Self) -> f64 {
        let (large, small) = if self.len() >= other.len() { (self, other) } else { (other, self) };
        if small.len() == 0 {
            return 0.0;
        }
        let (n, m) = (large.len() as u128, small.len() as u128);
        let integral = |from: f64, to: f64| large.integral_to(to) - large.integral_to(from);
        let points: Vec<(f64, usize)> =
            distinct_runs(&small.values).map(|(first, after)| (small.values[first], after)).collect();
        // Left of the small sample's first point its F is 0.
        let mut area = large.integral_to(points[0].0);
        for pair in points.windows(2) {
            let ((from, count), (to, _)) = (pair[0], pair[1]);
            let level = count as f64 / m as f64;
            // F_large reaches `level` at its j-th smallest value, j = ceil(count · n / m):
            // below that point it is under the level, from there on at or above.
            let needed = (count as u128 * n).div_ceil(m) as usize;
            let crossing = if needed == 0 { from } else { large.values[needed - 1].clamp(from, to) };
            area += level * (crossing - from) - integral(from, crossing);
            area += integral(crossing, to) - level * (to - crossing);
        }
        // Right of its last point its F is 1.
        let (last, largest) = (points[points.len() - 1].0, large.values[large.len() - 1]);
        if largest > last {
            area += (largest - last) - integral(last, largest);
        }
        area
    }
}

/// The Kolmogorov-Smirnov statistic and the Wasserstein distance of two sorted samples of
/// finite values, in one walk over both: at each distinct value the two distribution
/// functions step, and their gap holds until the next value.
fn merged_distances(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (Some(&first_a), Some(&first_b)) = (a.first(), b.first()) else { return (0.0, 0.0) };
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let (mut largest, mut area) = (0f64, 0f64);
    let mut x = first_a.min(first_b);
    loop {
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        let gap = (i as f64 / n - j as f64 / m).abs();
        largest = largest.max(gap);
        let next = match (a.get(i), b.get(j)) {
            (Some(&u), Some(&v)) => u.min(v),
            (Some(&u), None) => u,
            (None, Some(&v)) => v,
            (None, None) => return (largest, area),
        };
        area += gap * (next - x);
        x = next;
    }
}

/// `(first index, index after the last)` of each run of equal values in sorted `values`.
fn distinct_runs(values: &[f64]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut first = 0;
    std::iter::from_fn(move || {
        if first >= values.len() {
            return None;
        }
        let after = first + values[first..].partition_point(|v| *v <= values[first]);
        let run = (first, after);
        first = after;
        Some(run)
    })
}

/// The two-sample Kolmogorov-Smirnov statistic: the largest distance between the two
/// empirical distribution functions (`scipy.stats.ks_2samp(...).statistic`). Non-finite
/// values are ignored; 0 when a sample is empty.
pub fn kolmogorov_smirnov(baseline: &[f64], current: &[f64]) -> f64 {
    SortedSample::new(baseline.to_vec()).kolmogorov_smirnov(&SortedSample::new(current.to_vec()))
}

/// The first Wasserstein (earth mover's) distance between two samples: the area between
/// their empirical distribution functions (`scipy.stats.wasserstein_distance`). Non-finite
/// values are ignored; 0 when a sample is empty.
pub fn wasserstein(baseline: &[f64], current: &[f64]) -> f64 {
    SortedSample::new(baseline.to_vec()).wasserstein(&SortedSample::new(current.to_vec()))
}

/// Bin edges splitting `baseline` into `bins` equally populated bins (deciles for 10),
/// without repeated edges; values are binned by [`bin_proportions`].
pub fn quantile_edges(baseline: &[f64], bins: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = baseline.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    quantile_edges_of_sorted(&sorted, bins)
}

pub(crate) fn quantile_edges_of_sorted(sorted: &[f64], bins: usize) -> Vec<f64> {
    if sorted.is_empty() || bins < 2 {
        return Vec::new();
    }
    let mut edges: Vec<f64> =
        (1..bins).filter_map(|k| crate::stats::quantile_of_sorted(sorted, k as f64 / bins as f64)).collect();
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
        let (ks, area) = merged_distances(&A, &B);
        assert!((ks - 1.0 / 3.0).abs() < 1e-12 && (area - 1.375).abs() < 1e-12);
        assert_eq!(merged_distances(&A, &[]), (0.0, 0.0));
        assert_eq!(kolmogorov_smirnov(&A, &A), 0.0);
        assert_eq!(wasserstein(&A, &A), 0.0);
        assert_eq!(kolmogorov_smirnov(&A, &[]), 0.0);
        // Shifting every value by 2 moves the distribution by exactly 2.
        let shifted: Vec<f64> = A.iter().map(|v| v + 2.0).collect();
        assert!((wasserstein(&A, &shifted) - 2.0).abs() < 1e-12);
    }

    /// Both statistics by walking the two sorted samples together: the definitions, slowly.
    fn by_merging(a: &[f64], b: &[f64]) -> (f64, f64) {
        let (a, b) = (SortedSample::new(a.to_vec()), SortedSample::new(b.to_vec()));
        let (a, b) = (a.values(), b.values());
        let mut points: Vec<f64> = a.iter().chain(b).copied().collect();
        points.sort_by(f64::total_cmp);
        points.dedup();
        let cdf = |s: &[f64], x: f64| s.partition_point(|v| *v <= x) as f64 / s.len() as f64;
        let (mut largest, mut area) = (0f64, 0f64);
        for (k, x) in points.iter().enumerate() {
            let gap = (cdf(a, *x) - cdf(b, *x)).abs();
            largest = largest.max(gap);
            if let Some(next) = points.get(k + 1) {
                area += gap * (next - x);
            }
        }
        (largest, area)
    }

    proptest::proptest! {
        #[test]
        fn searched_and_merged_statistics_equal_the_definitions(
            a in proptest::collection::vec(-50i32..50, 1..120),
            b in proptest::collection::vec(-50i32..50, 1..40),
            scale in 0.1f64..10.0,
        ) {
            // Small integer ranges make ties, the case that needs care.
            let a: Vec<f64> = a.iter().map(|v| f64::from(*v) * scale).collect();
            let b: Vec<f64> = b.iter().map(|v| f64::from(*v) * scale + 0.5).collect();
            let (ks, area) = by_merging(&a, &b);
            proptest::prop_assert!((kolmogorov_smirnov(&a, &b) - ks).abs() < 1e-12);
            proptest::prop_assert!((kolmogorov_smirnov(&b, &a) - ks).abs() < 1e-12);
            proptest::prop_assert!((wasserstein(&a, &b) - area).abs() < 1e-9 * (1.0 + area));
            proptest::prop_assert!((wasserstein(&b, &a) - area).abs() < 1e-9 * (1.0 + area));
            let (sa, sb) = (SortedSample::new(a), SortedSample::new(b));
            for (x, y) in [(&sa, &sb), (&sb, &sa)] {
                let (merged_ks, merged_area) = merged_distances(x.values(), y.values());
                proptest::prop_assert!((merged_ks - ks).abs() < 1e-12);
                proptest::prop_assert!((merged_area - area).abs() < 1e-9 * (1.0 + area));
                let (chosen_ks, chosen_area) = x.distances(y);
                proptest::prop_assert!((chosen_ks - ks).abs() < 1e-12);
                proptest::prop_assert!((chosen_area - area).abs() < 1e-9 * (1.0 + area));
            }
        }
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
