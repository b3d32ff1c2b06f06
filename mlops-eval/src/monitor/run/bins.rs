//! Numeric bins: counts of sorted values per bin, their shares, and the bins' labels.

/// Counts of sorted values per bin: `(edges[k-1], edges[k]]`, open-ended at both ends.
pub(super) fn bin_counts(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut before = 0;
    for edge in edges {
        let upto = sorted.partition_point(|v| v <= edge);
        counts.push((upto - before) as u64);
        before = upto;
    }
    counts.push((sorted.len() - before) as u64);
    counts
}

pub(super) fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts.iter().map(|c| if total == 0 { 0.0 } else { *c as f64 / total as f64 }).collect()
}

/// `value` with six significant digits, trailing zeros dropped: bin labels stay short and
/// still tell apart edges of small-valued columns.
fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return value.to_string();
    }
    let decimals = (5 - value.abs().log10().floor() as i32).clamp(0, 20) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

pub(super) fn bin_labels(edges: &[f64]) -> Vec<String> {
    let bounds: Vec<String> = std::iter::once("-inf".to_owned())
        .chain(edges.iter().map(|e| significant(*e)))
        .chain(std::iter::once("inf".to_owned()))
        .collect();
    bounds
        .windows(2)
        .map(|w| if w[1] == "inf" { format!("({}, inf)", w[0]) } else { format!("({}, {}]", w[0], w[1]) })
        .collect()
}
