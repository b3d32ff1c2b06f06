//! Summary statistics with uncertainty: means with bootstrap confidence intervals, the
//! 90th percentile, agreement (Cohen's kappa) and paired tests between two versions.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// How bootstrap intervals are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Resamples drawn.
    pub resamples: usize,
    /// Coverage of the interval (0.95 for a 95% interval).
    pub confidence: f64,
    /// Seed, so a saved result can be reproduced.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self { resamples: 2000, confidence: 0.95, seed: 20261125 }
    }
}

/// Mean, spread and interval of one metric's scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scores that went into the summary.
    pub count: usize,
    /// Their mean (`None` without scores).
    pub mean: Option<f64>,
    /// Sample variance (n − 1; `None` below two scores).
    pub variance: Option<f64>,
    /// 90th percentile, linearly interpolated as NumPy's default.
    pub p90: Option<f64>,
    /// Lower end of the bootstrap percentile interval of the mean.
    pub ci_low: Option<f64>,
    /// Upper end of that interval.
    pub ci_high: Option<f64>,
}

/// Summarizes `scores`.
pub fn summarize(scores: &[f64], bootstrap: Bootstrap) -> Summary {
    let count = scores.len();
    let mean = mean(scores);
    let variance = (count > 1).then(|| {
        let m = mean.unwrap_or_default();
        scores.iter().map(|s| (s - m).powi(2)).sum::<f64>() / (count - 1) as f64
    });
    let (ci_low, ci_high) = match bootstrap_mean_interval(scores, bootstrap) {
        Some((low, high)) => (Some(low), Some(high)),
        None => (None, None),
    };
    Summary { count, mean, variance, p90: quantile(scores, 0.9), ci_low, ci_high }
}

/// The mean, `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The `q` quantile with linear interpolation between order statistics.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_of_sorted(&sorted, q)
}

/// [`quantile`] of values already sorted ascending, without copying them.
pub(crate) fn quantile_of_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    Some(sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64))
}

/// Percentile bootstrap interval of the mean; `None` for fewer than two values.
pub fn bootstrap_mean_interval(values: &[f64], bootstrap: Bootstrap) -> Option<(f64, f64)> {
    if values.len() < 2 || bootstrap.resamples == 0 {
        return None;
    }
    let mut rng = StdRng::seed_from_u64(bootstrap.seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..bootstrap.resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - bootstrap.confidence) / 2.0;
    Some((quantile(&means, tail)?, quantile(&means, 1.0 - tail)?))
}

/// Cohen's kappa between two raters' categorical labels (scores rounded to integers);
/// `None` for no pairs, 1 when both raters used one identical label throughout.
pub fn cohen_kappa(a: &[i64], b: &[i64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let observed = a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64;
    let mut labels: Vec<i64> = a[..n].iter().chain(&b[..n]).copied().collect();
    labels.sort_unstable();
    labels.dedup();
    let expected: f64 = labels
        .iter()
        .map(|label| {
            let pa = a[..n].iter().filter(|x| *x == label).count() as f64 / n as f64;
            let pb = b[..n].iter().filter(|x| *x == label).count() as f64 / n as f64;
            pa * pb
        })
        .sum();
    if (1.0 - expected).abs() < f64::EPSILON {
        return Some(1.0);
    }
    Some((observed - expected) / (1.0 - expected))
}

/// The Wilcoxon signed-rank test of paired differences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignedRank {
    /// Non-zero differences tested (zeros are dropped, SciPy's `zero_method="wilcox"`).
    pub n: usize,
    /// Sum of the ranks of positive differences.
    pub rank_sum_positive: f64,
    /// Sum of the ranks of negative differences.
    pub rank_sum_negative: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Matched-pairs rank-biserial correlation, `(R+ − R−) / (R+ + R−)`: from −1 (every
    /// difference negative) to 1 (every difference positive).
    pub rank_biserial: f64,
    /// Whether the p-value is exact (50 differences or fewer) or from the normal
    /// approximation with the tie correction.
    pub exact: bool,
}

/// Wilcoxon signed-rank test of `differences` against zero, as SciPy's
/// `scipy.stats.wilcoxon(d)` computes it: zeros dropped, tied magnitudes given their mean
/// rank, the exact distribution of the (tied) ranks under random signs for up to 50
/// differences, the normal approximation (tie-corrected, without continuity correction)
/// beyond. `None` when every difference is zero.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> Option<SignedRank> {
    let mut nonzero: Vec<f64> = differences.iter().copied().filter(|d| *d != 0.0 && d.is_finite()).collect();
    let n = nonzero.len();
    if n == 0 {
        return None;
    }
    nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Mean ranks of tied magnitudes, doubled so they stay integers.
    let mut doubled_ranks = vec![0u64; n];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let run = nonzero[i..].iter().take_while(|d| d.abs() == nonzero[i].abs()).count();
        let doubled = (2 * i + run + 1) as u64; // (first + last rank), 1-based
        doubled_ranks[i..i + run].fill(doubled);
        tie_term += (run as f64).powi(3) - run as f64;
        i += run;
    }
    let positive: u64 = nonzero.iter().zip(&doubled_ranks).filter(|(d, _)| **d > 0.0).map(|(_, r)| r).sum();
    let total: u64 = doubled_ranks.iter().sum();
    let (r_plus, r_minus) = (positive as f64 / 2.0, (total - positive) as f64 / 2.0);
    let exact = n <= 50;
    let p_value = if exact {
        // Distribution of the doubled positive rank sum over all 2^n sign patterns.
        let mut counts = vec![0f64; total as usize + 1];
        counts[0] = 1.0;
        let mut reach = 0usize;
        for &rank in &doubled_ranks {
            let rank = rank as usize;
            for sum in (0..=reach).rev() {
                if counts[sum] > 0.0 {
                    counts[sum + rank] += counts[sum];
                }
            }
            reach += rank;
        }
        let all: f64 = counts.iter().sum();
        let at_most: f64 = counts[..=positive as usize].iter().sum::<f64>() / all;
        let at_least: f64 = counts[positive as usize..].iter().sum::<f64>() / all;
        (2.0 * at_most.min(at_least)).min(1.0)
    } else {
        let nf = n as f64;
        let mean = nf * (nf + 1.0) / 4.0;
        let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
        let z = (r_plus - mean) / variance.sqrt();
        libm::erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
    };
    Some(SignedRank {
        n,
        rank_sum_positive: r_plus,
        rank_sum_negative: r_minus,
        p_value,
        rank_biserial: (r_plus - r_minus) / (r_plus + r_minus),
        exact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], 90) == 7.6
        assert!((quantile(&[4.0, 1.0, 10.0, 3.0, 2.0], 0.9).unwrap() - 7.6).abs() < 1e-12);
        assert_eq!(quantile(&[5.0], 0.9), Some(5.0));
        assert_eq!(quantile(&[], 0.9), None);
    }

    #[test]
    fn summaries_hold_mean_variance_and_an_interval_around_the_mean() {
        let scores = [1.0, 2.0, 3.0, 4.0, 5.0, 3.0, 4.0, 2.0];
        let s = summarize(&scores, Bootstrap::default());
        assert_eq!(s.count, 8);
        assert_eq!(s.mean, Some(3.0));
        // Sum of squared deviations 12 over 7.
        assert!((s.variance.unwrap() - 12.0 / 7.0).abs() < 1e-12);
        let (low, high) = (s.ci_low.unwrap(), s.ci_high.unwrap());
        assert!(low < 3.0 && 3.0 < high && high - low < 2.0, "{low}..{high}");
        assert_eq!(summarize(&scores, Bootstrap::default()), s, "seeded, so reproducible");
        let single = summarize(&[4.0], Bootstrap::default());
        assert_eq!((single.mean, single.variance, single.ci_low), (Some(4.0), None, None));
    }

    #[test]
    fn signed_rank_p_values_match_scipy() {
        // scipy.stats.wilcoxon 1.17 on the same differences.
        let ties_and_zeros = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, -1.0, 1.0, 2.0, 1.0, 1.0, 0.0];
        let test = wilcoxon_signed_rank(&ties_and_zeros).unwrap();
        assert_eq!((test.n, test.rank_sum_negative), (9, 4.5));
        assert!((test.p_value - 0.03515625).abs() < 1e-12, "{test:?}");
        let distinct = [0.5, -1.2, 2.3, 0.8, 1.9, -0.4, 1.1, 2.7, 0.2, 1.5];
        let test = wilcoxon_signed_rank(&distinct).unwrap();
        assert_eq!(test.rank_sum_negative, 8.0);
        assert!((test.p_value - 0.048828125).abs() < 1e-12, "{test:?}");
        assert!((test.rank_biserial - (47.0 - 8.0) / 55.0).abs() < 1e-12);
        assert_eq!(wilcoxon_signed_rank(&[0.0, 0.0]), None);
        // 80 differences: the normal approximation.
        #[rustfmt::skip]
        let many = [0.646, 1.122, 0.63, -1.003, 1.205, 0.746, -0.237, 0.881, 0.665, 0.594, 0.328, 0.847, -0.436, 0.137, -0.182, 0.899, 0.34, 0.008, -0.482, 0.043, 0.308, 0.024, 1.594, 1.307, -2.411, -1.589, 0.125, -0.122, 0.514, 0.517, 2.418, -0.812, -0.078, 2.343, 0.947, 0.963, -0.214, -1.348, 0.467, 0.409, -0.927, -0.383, 0.228, -0.645, 0.202, 0.395, 0.336, -0.206, 0.894, 1.191, 0.621, -0.518, 1.032, -0.201, 1.179, -0.772, 1.214, 0.28, -0.949, -0.014, 0.354, 0.573, -0.682, -0.807, 0.5, -0.167, 0.536, 1.06, -1.349, 0.554, 1.525, 0.002, -0.511, 1.052, 0.553, 1.196, -0.045, -1.182, 0.19, -0.146];
        let test = wilcoxon_signed_rank(&many).unwrap();
        assert!(!test.exact);
        assert_eq!(test.rank_sum_negative, 1082.0);
        assert!((test.p_value - 0.009868521610841969).abs() < 1e-12, "{test:?}");
    }

    #[test]
    fn kappa_matches_the_textbook_example() {
        // 50 items: both yes 20, a yes b no 5, a no b yes 10, both no 15.
        // p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4.
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, n) in [(1, 1, 20), (1, 0, 5), (0, 1, 10), (0, 0, 15)] {
            a.extend(std::iter::repeat_n(x, n));
            b.extend(std::iter::repeat_n(y, n));
        }
        assert!((cohen_kappa(&a, &b).unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(cohen_kappa(&[3, 3], &[3, 3]), Some(1.0));
        assert_eq!(cohen_kappa(&[], &[]), None);
    }
}
