//! A monitoring metric over time, one line per version.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use plotters::prelude::*;
use polars::prelude::{DataFrame, DataType};

use crate::error::Result;
use crate::plot::{COLORS, canvas, finish, layout, plot_error};

/// A line's name and its points (window start, value).
pub(crate) type Series = (String, Vec<(DateTime<Utc>, f64)>);

/// The points of `metric` of `column` in a profile or drift table, one series per version
/// (and reference, in a drift table).
pub(crate) fn series(table: &DataFrame, column: &str, metric: &str) -> Result<Vec<Series>> {
    let starts = table.column("window_start")?.datetime()?.physical().clone();
    let versions = table.column("model_version")?.cast(&DataType::String)?;
    let versions = versions.str()?;
    let columns = table.column("column_name")?.str()?;
    let metrics = table.column("metric")?.str()?;
    let references = table.column("reference").ok().map(|c| c.str()).transpose()?;
    let values = table.column("value")?.f64()?;
    let mut lines: BTreeMap<String, Vec<(DateTime<Utc>, f64)>> = BTreeMap::new();
    for row in 0..table.height() {
        if columns.get(row) != Some(column) || metrics.get(row) != Some(metric) {
            continue;
        }
        let (Some(start), Some(version), Some(value)) = (starts.get(row), versions.get(row), values.get(row)) else {
            continue;
        };
        let Some(instant) = DateTime::from_timestamp_millis(start) else { continue };
        let name = match references.and_then(|r| r.get(row)) {
            Some(reference) => format!("version {version} vs {}", reference.replace('_', " ")),
            None => format!("version {version}"),
        };
        lines.entry(name).or_default().push((instant, value));
    }
    Ok(lines.into_iter().collect())
}

/// Draws the series with their points, and each threshold as a dashed red line. `false`
/// when there is nothing to draw.
pub(crate) fn over_time(path: &Path, title: &str, series: &[Series], thresholds: &[f64]) -> Result<bool> {
    let points = series.iter().flat_map(|(_, points)| points.iter()).filter(|(_, v)| v.is_finite());
    let (mut first, mut last) = (DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC);
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for (t, v) in points {
        first = first.min(*t);
        last = last.max(*t);
        low = low.min(*v);
        high = high.max(*v);
    }
    if first > last {
        return Ok(false);
    }
    for t in thresholds {
        low = low.min(*t);
        high = high.max(*t);
    }
    if last == first {
        let five_minutes = chrono::Duration::minutes(5);
        match first.checked_add_signed(five_minutes) {
            Some(later) => last = later,
            None => first = last - five_minutes,
        }
    }
    let pad = if high > low { (high - low) * 0.08 } else { high.abs().max(1.0) * 0.1 };
    let root = canvas(path)?;
    let mut chart = layout(&root, title)
        .build_cartesian_2d(first..last, (low - pad)..(high + pad))
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("window start (UTC)")
        .x_label_formatter(&|t| t.format("%m-%d %H:%M").to_string())
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (s, (name, points)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let points: Vec<(DateTime<Utc>, f64)> = points.iter().copied().filter(|(_, v)| v.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| plot_error(path, e))?;
    }
    for t in thresholds {
        chart
            .draw_series(DashedLineSeries::new([(first, *t), (last, *t)], 8, 5, RED.stroke_width(1)))
            .map_err(|e| plot_error(path, e))?
            .label(format!("alert at {t}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    }
    finish(&mut chart, &root, path)?;
    Ok(true)
}
