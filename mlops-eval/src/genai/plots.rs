//! SVG plots of evaluation results.

use std::path::Path;

use plotters::prelude::*;

use crate::error::Result;
use crate::plot::{COLORS, canvas, finish, layout, plot_error};

/// Bins for `values` of every series: one per integer when all values are integers within
/// a short range (judge scores), ten equal bins otherwise.
fn bins(series: &[(String, Vec<f64>)]) -> Option<Vec<(f64, f64)>> {
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).filter(|v| v.is_finite()).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if all.is_empty() {
        return None;
    }
    if all.iter().all(|v| v.fract() == 0.0) && hi - lo <= 20.0 {
        return Some(((lo as i64)..=(hi as i64)).map(|i| (i as f64 - 0.5, i as f64 + 0.5)).collect());
    }
    let width = if hi > lo { (hi - lo) / 10.0 } else { 1.0 };
    Some((0..10).map(|i| (lo + width * i as f64, lo + width * (i + 1) as f64)).collect())
}

/// A histogram with the series' bars side by side in each bin. Nothing is drawn (and
/// `false` returned) when no series has a value.
pub(crate) fn histogram(path: &Path, title: &str, x_label: &str, series: &[(String, Vec<f64>)]) -> Result<bool> {
    let Some(bins) = bins(series) else { return Ok(false) };
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|(_, values)| {
            let last = bins.len() - 1;
            let mut counts = vec![0; bins.len()];
            for v in values.iter().filter(|v| v.is_finite()) {
                let bin = bins.iter().position(|(lo, hi)| *v >= *lo && *v < *hi).unwrap_or(last);
                counts[bin] += 1;
            }
            counts
        })
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(1).max(1);
    let (x0, x1) = (bins[0].0, bins[bins.len() - 1].1);
    let root = canvas(path)?;
    let mut chart =
        layout(&root, title).build_cartesian_2d(x0..x1, 0usize..top + top / 10 + 1).map_err(|e| plot_error(path, e))?;
    chart.configure_mesh().x_desc(x_label).y_desc("rows").disable_x_mesh().draw().map_err(|e| plot_error(path, e))?;
    let groups = series.len().max(1) as f64;
    for (s, ((name, _), counts)) in series.iter().zip(&counts).enumerate() {
        let color = COLORS[s % COLORS.len()];
        let bars = bins.iter().zip(counts).map(|((lo, hi), count)| {
            let width = (hi - lo) * 0.8 / groups;
            let left = lo + (hi - lo) * 0.1 + width * s as f64;
            Rectangle::new([(left, 0), (left + width, *count)], color.filled())
        });
        chart
            .draw_series(bars)
            .map_err(|e| plot_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    finish(&mut chart, &root, path)?;
    Ok(true)
}

/// A metric's mean with the low and high ends of its interval.
pub(crate) struct MeanWithInterval {
    pub(crate) mean: f64,
    pub(crate) low: f64,
    pub(crate) high: f64,
}

/// One bar per metric and series at the mean, with the confidence interval as an error bar.
pub(crate) fn means(
    path: &Path,
    title: &str,
    metrics: &[String],
    series: &[(String, Vec<MeanWithInterval>)],
    y_range: (f64, f64),
) -> Result<()> {
    let root = canvas(path)?;
    let mut chart = layout(&root, title)
        .build_cartesian_2d(0.0..metrics.len() as f64, y_range.0..y_range.1)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(metrics.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 1e-9 { metrics.get(i).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_desc("mean (95% interval)")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    let groups = series.len().max(1) as f64;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let width = 0.8 / groups;
        let left = |m: usize| m as f64 + 0.1 + width * s as f64;
        chart
            .draw_series(
                values.iter().enumerate().map(|(m, v)| {
                    Rectangle::new([(left(m), y_range.0), (left(m) + width * 0.9, v.mean)], color.filled())
                }),
            )
            .map_err(|e| plot_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart
            .draw_series(
                values.iter().enumerate().map(|(m, v)| {
                    ErrorBar::new_vertical(left(m) + width * 0.45, v.low, v.mean, v.high, BLACK.filled(), 8)
                }),
            )
            .map_err(|e| plot_error(path, e))?;
    }
    finish(&mut chart, &root, path)?;
    Ok(())
}
