//! What a monitor run produces: the profile, distribution and drift tables and the alerts.

use std::borrow::Cow;
use std::path::Path;

use chrono::{DateTime, Utc};
use polars::prelude::{Column, DataFrame, DataType, TimeUnit};

use super::alert::{Alert, AlertRule, AlertSink, DriftMetric, Reference};
use super::plot;
use super::windows::{Group, Version, Windows};
use crate::error::{Error, Result};

/// The `column_name` of table-level rows: row count, labeled rows and quality metrics.
pub const TABLE: &str = ":table";

/// A row of the profile table before it becomes a frame.
pub(crate) struct ProfileRow {
    start_ms: i64,
    version: usize,
    column: String,
    metric: Cow<'static, str>,
    value: f64,
}

impl ProfileRow {
    pub(crate) fn new(group: &Group, column: &str, metric: impl Into<Cow<'static, str>>, value: f64) -> Self {
        Self {
            start_ms: group.start_ms,
            version: group.version,
            column: column.to_owned(),
            metric: metric.into(),
            value,
        }
    }

    pub(crate) fn table(group: &Group, metric: impl Into<Cow<'static, str>>, value: f64) -> Self {
        Self::new(group, TABLE, metric, value)
    }
}

/// A row of the distribution table: one bin (numeric columns) or category.
pub(crate) struct DistributionRow {
    start_ms: i64,
    version: usize,
    column: String,
    bin: String,
    count: u64,
    share: f64,
}

impl DistributionRow {
    pub(crate) fn new(group: &Group, column: &str, bin: &str, count: u64, total: f64) -> Self {
        Self {
            start_ms: group.start_ms,
            version: group.version,
            column: column.to_owned(),
            bin: bin.to_owned(),
            count,
            share: count as f64 / total,
        }
    }
}

/// A row of the drift table.
pub(crate) struct DriftRow {
    start_ms: i64,
    version: usize,
    column: String,
    metric: DriftMetric,
    reference: Reference,
    value: f64,
}

impl DriftRow {
    pub(crate) fn new(group: &Group, column: &str, metric: DriftMetric, reference: Reference, value: f64) -> Self {
        Self { start_ms: group.start_ms, version: group.version, column: column.to_owned(), metric, reference, value }
    }
}

/// The rows of a run, gathered column by column.
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) profile: Vec<ProfileRow>,
    pub(crate) distribution: Vec<DistributionRow>,
    pub(crate) drift: Vec<DriftRow>,
}

impl Tables {
    /// Orders rows by window then version (a stable sort: within a group, columns keep the
    /// order they were watched in), checks the rules and builds the frames.
    pub(crate) fn finish(mut self, windows: &Windows, rules: &[AlertRule]) -> Result<MonitorReport> {
        self.profile.sort_by_key(|r| (r.start_ms, r.version));
        self.distribution.sort_by_key(|r| (r.start_ms, r.version));
        self.drift.sort_by_key(|r| (r.start_ms, r.version));
        let width = windows.width_ms;
        let mut alerts = Vec::new();
        let mut check = |start_ms: i64, version: usize, column: &str, metric: &str, reference, value: f64| {
            for rule in
                rules.iter().filter(|rule| rule.matches(column, metric, reference) && rule.condition.holds(value))
            {
                let key = (start_ms, version);
                alerts.push((
                    key,
                    Alert {
                        window_start: instant(start_ms),
                        window_end: instant(start_ms + width),
                        model_version: windows.versions[version].to_string(),
                        column: column.to_owned(),
                        metric: metric.to_owned(),
                        reference,
                        value,
                        condition: rule.condition,
                    },
                ));
            }
        };
        for r in &self.profile {
            check(r.start_ms, r.version, &r.column, &r.metric, None, r.value);
        }
        for r in &self.drift {
            check(r.start_ms, r.version, &r.column, r.metric.name(), Some(r.reference), r.value);
        }
        // By window, then version; a stable sort keeps profile alerts before drift ones.
        alerts.sort_by_key(|(key, _)| *key);
        let alerts = alerts.into_iter().map(|(_, alert)| alert).collect();

        let keys = |rows: &mut dyn Iterator<Item = (i64, usize, &str)>| -> Result<Vec<Column>> {
            let (mut starts, mut versions, mut columns) = (Vec::new(), Vec::new(), Vec::new());
            for (start, version, column) in rows {
                starts.push(start);
                versions.push(version);
                columns.push(column.to_owned());
            }
            let ends: Vec<i64> = starts.iter().map(|s| s + width).collect();
            Ok(vec![
                datetime_column("window_start", starts)?,
                datetime_column("window_end", ends)?,
                version_column(&windows.versions, &versions),
                Column::new("column_name".into(), columns),
            ])
        };
        let mut profile = keys(&mut self.profile.iter().map(|r| (r.start_ms, r.version, r.column.as_str())))?;
        profile.push(Column::new("metric".into(), self.profile.iter().map(|r| r.metric.as_ref()).collect::<Vec<_>>()));
        profile.push(Column::new("value".into(), self.profile.iter().map(|r| r.value).collect::<Vec<_>>()));
        let mut drift = keys(&mut self.drift.iter().map(|r| (r.start_ms, r.version, r.column.as_str())))?;
        drift.push(Column::new("metric".into(), self.drift.iter().map(|r| r.metric.name()).collect::<Vec<_>>()));
        drift.push(Column::new("reference".into(), self.drift.iter().map(|r| r.reference.name()).collect::<Vec<_>>()));
        drift.push(Column::new("value".into(), self.drift.iter().map(|r| r.value).collect::<Vec<_>>()));
        let mut distribution = keys(&mut self.distribution.iter().map(|r| (r.start_ms, r.version, r.column.as_str())))?;
        distribution
            .push(Column::new("bin".into(), self.distribution.iter().map(|r| r.bin.as_str()).collect::<Vec<_>>()));
        distribution.push(Column::new("count".into(), self.distribution.iter().map(|r| r.count).collect::<Vec<_>>()));
        distribution.push(Column::new("share".into(), self.distribution.iter().map(|r| r.share).collect::<Vec<_>>()));
        Ok(MonitorReport {
            profile: DataFrame::new(self.profile.len(), profile)?,
            distribution: DataFrame::new(self.distribution.len(), distribution)?,
            drift: DataFrame::new(self.drift.len(), drift)?,
            alerts,
            rules: rules.to_vec(),
        })
    }
}

fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn datetime_column(name: &str, ms: Vec<i64>) -> Result<Column> {
    Ok(Column::new(name.into(), ms).cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?)
}

/// Integer versions stay integers (as in the inference table); anything else is text.
fn version_column(versions: &[Version], rows: &[usize]) -> Column {
    let numbers: Option<Vec<i64>> = versions
        .iter()
        .map(|v| match v {
            Version::Number(n) => Some(*n),
            Version::Text(_) => None,
        })
        .collect();
    match numbers {
        Some(numbers) => Column::new("model_version".into(), rows.iter().map(|v| numbers[*v]).collect::<Vec<_>>()),
        None => Column::new("model_version".into(), rows.iter().map(|v| versions[*v].to_string()).collect::<Vec<_>>()),
    }
}

/// The tables and alerts of a [`Monitor`](super::Monitor) run.
///
/// Every table has `window_start`, `window_end` (datetimes, milliseconds), `model_version`
/// and `column_name` (`:table` for table-level rows), ordered by window then version.
#[derive(Debug, Clone)]
pub struct MonitorReport {
    /// One row per window × version × column × metric: `metric`, `value` (see
    /// [`PROFILE_METRICS`](super::PROFILE_METRICS)).
    pub profile: DataFrame,
    /// One row per window × version × column × bin: `bin` (a numeric range such as
    /// `(1.5, 3.25]` over the baseline's deciles, or a category), `count`, `share` of the
    /// window's non-missing values. The predictions' distribution is here.
    pub distribution: DataFrame,
    /// One row per window × version × column × metric × reference: `metric` (see
    /// [`DriftMetric::name`]), `reference` (`baseline` or `previous_window`), `value`.
    pub drift: DataFrame,
    /// The alerts the rules raised, by window.
    pub alerts: Vec<Alert>,
    rules: Vec<AlertRule>,
}

impl MonitorReport {
    /// A profile metric of one window (by its start) and version (as text).
    pub fn profile_value(&self, window_start: DateTime<Utc>, version: &str, column: &str, metric: &str) -> Option<f64> {
        lookup(&self.profile, window_start, version, column, metric, None)
    }

    /// A drift metric of one window and version against `reference`.
    pub fn drift_value(
        &self,
        window_start: DateTime<Utc>,
        version: &str,
        column: &str,
        metric: DriftMetric,
        reference: Reference,
    ) -> Option<f64> {
        lookup(&self.drift, window_start, version, column, metric.name(), Some(reference))
    }

    /// Sends every alert to `sink`, all of them even when some fail; returns how many
    /// were delivered.
    ///
    /// # Errors
    /// [`Error::AlertDelivery`] with how many failed and the first failure's reason.
    pub async fn send_alerts(&self, sink: &dyn AlertSink) -> Result<usize> {
        let mut failures = Vec::new();
        for alert in &self.alerts {
            if let Err(e) = sink.send(alert).await {
                failures.push(format!("{alert}: {e}"));
            }
        }
        if let Some(first) = failures.first() {
            return Err(Error::AlertDelivery {
                failed: failures.len(),
                total: self.alerts.len(),
                first: first.clone(),
            });
        }
        Ok(self.alerts.len())
    }

    /// Draws `metric` of `column` over time as an SVG line per version (and per reference
    /// for drift metrics), with the thresholds of the rules on it as dashed lines. Returns
    /// `false`, drawing nothing, when the tables hold no such values.
    ///
    /// # Errors
    /// [`Error::Report`] when the file cannot be written.
    pub fn plot(&self, column: &str, metric: &str, path: &Path) -> Result<bool> {
        let is_drift = DriftMetric::ALL.iter().any(|m| m.name() == metric);
        let table = if is_drift { &self.drift } else { &self.profile };
        let series = plot::series(table, column, metric)?;
        let thresholds: Vec<f64> = self
            .rules
            .iter()
            .filter(|rule| {
                let reference = if is_drift { rule.reference.or(Some(Reference::Baseline)) } else { None };
                rule.matches(column, metric, reference)
            })
            .map(|rule| rule.condition.limit())
            .collect();
        plot::over_time(path, &format!("{metric} of {column}"), &series, &thresholds)
    }
}

/// The value of the row matching every key; versions compare as text.
fn lookup(
    table: &DataFrame,
    window_start: DateTime<Utc>,
    version: &str,
    column: &str,
    metric: &str,
    reference: Option<Reference>,
) -> Option<f64> {
    let start = window_start.timestamp_millis();
    let starts = table.column("window_start").ok()?.datetime().ok()?.physical().clone();
    let versions = table.column("model_version").ok()?.cast(&DataType::String).ok()?;
    let columns = table.column("column_name").ok()?.str().ok()?.clone();
    let metrics = table.column("metric").ok()?.str().ok()?.clone();
    let references = match table.column("reference") {
        Ok(c) => Some(c.str().ok()?.clone()),
        Err(_) => None,
    };
    let values = table.column("value").ok()?.f64().ok()?.clone();
    (0..table.height()).find_map(|row| {
        let matches = starts.get(row) == Some(start)
            && versions.str().ok()?.get(row) == Some(version)
            && columns.get(row) == Some(column)
            && metrics.get(row) == Some(metric)
            && references.as_ref().map(|r| r.get(row)) == reference.map(|r| Some(r.name()));
        if matches { values.get(row) } else { None }
    })
}
