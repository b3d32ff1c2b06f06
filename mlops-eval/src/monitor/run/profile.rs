//! One watched column, window by window: its rows of the profile, distribution and drift
//! tables, against the baseline and the version's previous window.

use rayon::prelude::*;

use super::bins::{bin_counts, bin_labels, shares};
use crate::monitor::alert::{DriftMetric, Reference};
use crate::monitor::columns::MISSING;
use crate::monitor::drift::{
    SortedSample, jensen_shannon_distance, population_stability_index, quantile_edges_of_sorted,
};
use crate::monitor::report::{DistributionRow, DriftRow, ProfileRow};
use crate::monitor::windows::{Group, Windows};

type GroupRows = (Vec<ProfileRow>, Vec<DistributionRow>, Vec<DriftRow>);

/// One group's values of a numeric column, and how many were missing.
struct NumericWindow {
    sample: SortedSample,
    missing: usize,
}

pub(super) fn numeric_rows(
    name: &str,
    values: &[f64],
    baseline: Option<&SortedSample>,
    windows: &Windows,
    bins: usize,
    positive_threshold: Option<f64>,
) -> Vec<GroupRows> {
    let samples: Vec<NumericWindow> = windows
        .groups
        .par_iter()
        .map(|group| {
            let gathered: Vec<f64> = group.rows.iter().map(|r| values[*r as usize]).collect();
            let sample = SortedSample::new(gathered);
            NumericWindow { missing: group.rows.len() - sample.values().len(), sample }
        })
        .collect();
    // Without a baseline (or with an empty one) the distribution table bins by the deciles
    // of the whole table, so every window is binned alike.
    let whole;
    let binning = match baseline.filter(|b| !b.values().is_empty()) {
        Some(baseline) => baseline,
        None => {
            whole = SortedSample::new(values.to_vec());
            &whole
        }
    };
    let edges = quantile_edges_of_sorted(binning.values(), bins);
    let labels = bin_labels(&edges);
    let baseline_shares = baseline.map(|b| shares(&bin_counts(b.values(), &edges)));
    (0..windows.groups.len())
        .into_par_iter()
        .map(|g| {
            let group = &windows.groups[g];
            let NumericWindow { sample, missing } = &samples[g];
            let mut profile = missing_rows(group, name, *missing);
            let values = sample.values();
            let mut drift = Vec::new();
            let mut distribution = Vec::new();
            if !values.is_empty() {
                profile.extend(
                    summary(values).into_iter().map(|(metric, value)| ProfileRow::new(group, name, metric, value)),
                );
                if let Some(threshold) = positive_threshold {
                    let positive = values.len() - values.partition_point(|v| *v < threshold);
                    profile.push(ProfileRow::new(group, name, "positive_rate", positive as f64 / values.len() as f64));
                }
                let counts = bin_counts(values, &edges);
                let total = values.len() as f64;
                distribution.extend(
                    labels
                        .iter()
                        .zip(&counts)
                        .map(|(bin, count)| DistributionRow::new(group, name, bin, *count, total)),
                );
                if let (Some(baseline), Some(baseline_shares)) = (baseline, &baseline_shares)
                    && !baseline.values().is_empty()
                {
                    let current = shares(&counts);
                    drift.extend(numeric_drift(
                        group,
                        name,
                        Reference::Baseline,
                        baseline,
                        baseline_shares,
                        sample,
                        &current,
                    ));
                }
                if let Some(previous) = windows.previous(g).map(|p| &samples[p].sample)
                    && !previous.values().is_empty()
                {
                    let edges = quantile_edges_of_sorted(previous.values(), bins);
                    let (before, now) =
                        (shares(&bin_counts(previous.values(), &edges)), shares(&bin_counts(values, &edges)));
                    drift.extend(numeric_drift(
                        group,
                        name,
                        Reference::PreviousWindow,
                        previous,
                        &before,
                        sample,
                        &now,
                    ));
                }
            }
            (profile, distribution, drift)
        })
        .collect()
}

fn numeric_drift(
    group: &Group,
    name: &str,
    reference: Reference,
    reference_sample: &SortedSample,
    reference_shares: &[f64],
    sample: &SortedSample,
    shares: &[f64],
) -> [DriftRow; 4] {
    let row = |metric, value| DriftRow::new(group, name, metric, reference, value);
    let (kolmogorov_smirnov, wasserstein) = reference_sample.distances(sample);
    [
        row(DriftMetric::Psi, population_stability_index(reference_shares, shares)),
        row(DriftMetric::JensenShannon, jensen_shannon_distance(reference_shares, shares)),
        row(DriftMetric::KolmogorovSmirnov, kolmogorov_smirnov),
        row(DriftMetric::Wasserstein, wasserstein),
    ]
}

pub(super) fn categorical_rows(
    name: &str,
    codes: &[u32],
    baseline: Option<&[u64]>,
    categories: &[String],
    windows: &Windows,
) -> Vec<GroupRows> {
    let counts: Vec<Vec<u64>> =
        windows.groups.par_iter().map(|group| category_counts(codes, Some(&group.rows), categories.len())).collect();
    (0..windows.groups.len())
        .into_par_iter()
        .map(|g| {
            let group = &windows.groups[g];
            let present: u64 = counts[g].iter().sum();
            let mut profile = missing_rows(group, name, group.rows.len() - present as usize);
            let (mut distribution, mut drift) = (Vec::new(), Vec::new());
            if present > 0 {
                let distinct = counts[g].iter().filter(|c| **c > 0).count();
                profile.push(ProfileRow::new(group, name, "distinct_count", distinct as f64));
                distribution.extend(
                    categories
                        .iter()
                        .zip(&counts[g])
                        .filter(|(_, count)| **count > 0)
                        .map(|(category, count)| DistributionRow::new(group, name, category, *count, present as f64)),
                );
                let now = shares(&counts[g]);
                let references = [
                    (Reference::Baseline, baseline),
                    (Reference::PreviousWindow, windows.previous(g).map(|p| &counts[p][..])),
                ];
                for (reference, before) in references {
                    if let Some(before) = before.filter(|b| b.iter().any(|c| *c > 0)) {
                        let before = shares(before);
                        drift.push(DriftRow::new(
                            group,
                            name,
                            DriftMetric::Psi,
                            reference,
                            population_stability_index(&before, &now),
                        ));
                        drift.push(DriftRow::new(
                            group,
                            name,
                            DriftMetric::JensenShannon,
                            reference,
                            jensen_shannon_distance(&before, &now),
                        ));
                    }
                }
            }
            (profile, distribution, drift)
        })
        .collect()
}

/// Counts per category code of `codes` (all of them, or the given rows).
pub(super) fn category_counts(codes: &[u32], rows: Option<&[u32]>, categories: usize) -> Vec<u64> {
    let mut counts = vec![0u64; categories];
    let mut count = |code: u32| {
        if code != MISSING {
            counts[code as usize] += 1;
        }
    };
    match rows {
        Some(rows) => rows.iter().for_each(|r| count(codes[*r as usize])),
        None => codes.iter().for_each(|c| count(*c)),
    }
    counts
}

fn missing_rows(group: &Group, name: &str, missing: usize) -> Vec<ProfileRow> {
    vec![
        ProfileRow::new(group, name, "null_count", missing as f64),
        ProfileRow::new(group, name, "null_rate", missing as f64 / group.rows.len() as f64),
    ]
}

/// Summary statistics of sorted, non-empty values.
fn summary(values: &[f64]) -> [(&'static str, f64); 8] {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance =
        if values.len() > 1 { values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    let quantile = |q| crate::stats::quantile_of_sorted(values, q).unwrap_or(f64::NAN);
    let distinct = 1 + values.windows(2).filter(|w| w[0] != w[1]).count();
    [
        ("distinct_count", distinct as f64),
        ("mean", mean),
        ("stddev", variance.sqrt()),
        ("min", values[0]),
        ("p25", quantile(0.25)),
        ("median", quantile(0.5)),
        ("p75", quantile(0.75)),
        ("max", values[values.len() - 1]),
    ]
}
