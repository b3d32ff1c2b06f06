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
