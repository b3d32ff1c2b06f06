//! The monitor: which columns of an inference table to watch, how, and the computation.

mod bins;
mod profile;
mod quality;

use std::time::Duration;

use polars::prelude::DataFrame;
use rayon::prelude::*;

use self::profile::{categorical_rows, category_counts, numeric_rows};
use self::quality::quality;
use super::alert::{AlertRule, Target};
use super::columns::{self, Categories, Kind, Labels, Values};
use super::drift::SortedSample;
use super::report::{MonitorReport, ProfileRow, Tables};
use super::windows::Windows;
use crate::error::{Error, Result};
use crate::metrics::{Task, column};

/// Columns of an inference table that are bookkeeping rather than features, left out
/// unless named in [`Monitor::features`].
pub const BOOKKEEPING_COLUMNS: [&str; 3] = ["model_name", "row_id", "_rescued_data"];

/// Every metric of the profile table. Per column: `null_count` and `null_rate` (null, and
/// for numbers NaN or infinite: values with no place in a distribution),
/// `distinct_count`; numeric columns add `mean`, `stddev` (sample), `min`, `p25`, `median`,
/// `p75`, `max`; a classifier's prediction adds `positive_rate`. Per table (`:table`):
/// `count`, and with labels `labeled_count` and the quality metrics (classification:
/// `accuracy`, `precision`, `recall`, `f1`, `log_loss`, `roc_auc`; regression: `rmse`,
/// `mae`, `mape`, `r2`).
pub const PROFILE_METRICS: [&str; 23] = [
    "count",
    "null_count",
    "null_rate",
    "distinct_count",
    "mean",
    "stddev",
    "min",
    "p25",
    "median",
    "p75",
    "max",
    "positive_rate",
    "labeled_count",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "log_loss",
    "roc_auc",
    "rmse",
    "mae",
    "mape",
    "r2",
];

/// Profiles an inference table per time window and model version, compares each window's
/// distributions with a baseline and with the version's previous window, and raises alerts.
///
/// Column roles default to an inference table's names: `scored_at`, `model_version`,
/// `prediction`. Windows are aligned to the Unix epoch (an hour runs from :00 to :00).
///
/// ```
/// use std::time::Duration;
/// use mlops_eval::Task;
/// use mlops_eval::monitor::{AlertRule, DriftMetric, Monitor, Reference};
/// use polars::prelude::*;
///
/// let minutes = |m: &[i64]| m.iter().map(|m| m * 60_000).collect::<Vec<_>>();
/// let table = df!(
///     "scored_at" => minutes(&[0, 10, 20, 70, 80, 90]),
///     "model_version" => [3i64, 3, 3, 3, 3, 3],
///     "amount" => [10.0, 12.0, 11.0, 40.0, 42.0, 41.0],
///     "prediction" => [0.2, 0.7, 0.4, 0.9, 0.8, 0.6],
///     "label" => [Some(0), Some(1), Some(0), Some(1), None, None],
/// )?
/// .lazy()
/// .with_column(col("scored_at").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
/// .collect()?;
/// let baseline = df!("amount" => [9.0, 10.0, 11.0, 12.0], "prediction" => [0.1, 0.4, 0.6, 0.9])?;
///
/// let report = Monitor::new()
///     .window(Duration::from_secs(3600))
///     .quality("label", Task::classification())
///     .baseline(baseline)
///     .alert_when(
///         AlertRule::drift_above(DriftMetric::KolmogorovSmirnov, 0.5).on_column("amount").against(Reference::Baseline),
///     )
///     .run(&table)?;
/// assert_eq!(report.alerts.len(), 1); // the second hour's amounts moved
/// assert_eq!(report.alerts[0].window_start.to_rfc3339(), "1970-01-01T01:00:00+00:00");
/// let first_hour = chrono::DateTime::UNIX_EPOCH;
/// assert_eq!(report.profile_value(first_hour, "3", ":table", "accuracy"), Some(1.0));
/// assert_eq!(report.profile_value(first_hour, "3", "amount", "median"), Some(11.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Monitor {
    timestamp: String,
    version: String,
    prediction: String,
    quality: Option<(String, Task)>,
    features: Option<Vec<String>>,
    window: Duration,
    bins: usize,
    baseline: Option<DataFrame>,
    rules: Vec<AlertRule>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            timestamp: "scored_at".into(),
            version: "model_version".into(),
            prediction: "prediction".into(),
            quality: None,
            features: None,
            window: Duration::from_secs(3600),
            bins: 10,
            baseline: None,
            rules: Vec::new(),
        }
    }
}

impl Monitor {
    /// Hourly windows over `scored_at`, `model_version` and `prediction`, no labels, no
    /// baseline, every other column profiled.
    pub fn new() -> Self {
        Self::default()
    }

    /// The timestamp column (datetime).
    pub fn timestamp(mut self, column: impl Into<String>) -> Self {
        self.timestamp = column.into();
        self
    }

    /// The model-version column (integers or text).
    pub fn version(mut self, column: impl Into<String>) -> Self {
        self.version = column.into();
        self
    }

    /// The prediction column; profiled and compared like a feature.
    pub fn prediction(mut self, column: impl Into<String>) -> Self {
        self.prediction = column.into();
        self
    }

    /// Quality metrics of the predictions against `label` for `task`, on the rows that
    /// have a label (null labels are rows not labeled yet).
    pub fn quality(mut self, label: impl Into<String>, task: Task) -> Self {
        self.quality = Some((label.into(), task));
        self
    }

    /// The feature columns to watch; by default every numeric, text or boolean column
    /// that has no role and is not in [`BOOKKEEPING_COLUMNS`].
    pub fn features<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.features = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// The window width, whole seconds from 5 minutes to 1 day.
    pub fn window(mut self, width: Duration) -> Self {
        self.window = width;
        self
    }

    /// How many equally populated bins numeric columns are cut into for PSI, Jensen-Shannon
    /// and the distribution table (10 by default: deciles of the reference).
    pub fn bins(mut self, bins: usize) -> Self {
        self.bins = bins;
        self
    }

    /// The frame windows are compared with (training or validation data): every watched
    /// column, with the same kinds of values.
    pub fn baseline(mut self, baseline: DataFrame) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// Raises an alert for every window and version where `rule` holds.
    pub fn alert_when(mut self, rule: AlertRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Profiles `table`, compares its windows and checks the rules.
    ///
    /// # Errors
    /// [`Error::Core`] naming a missing column, a column of the wrong type (a label that
    /// is not 0/1, text where the baseline has numbers), or a null timestamp or version
    /// with its row; [`Error::InvalidArgument`] for a window out of range, fewer than two
    /// bins, or a rule naming an unknown metric.
    pub fn run(&self, table: &DataFrame) -> Result<MonitorReport> {
        self.check_settings()?;
        let windows = Windows::split(column(table, &self.timestamp)?, column(table, &self.version)?, self.window)?;
        // Labels and predictions are checked before any column is profiled.
        let quality = match &self.quality {
            Some((label, task)) => {
                let label_column = column(table, label)?;
                let labels = match task {
                    Task::Classification { .. } => Labels::read_binary(label_column)?,
                    Task::Regression => Labels::read_numeric(label_column)?,
                };
                let prediction = column(table, &self.prediction)?;
                if !prediction.dtype().is_primitive_numeric() {
                    return Err(columns::schema_error(
                        &self.prediction,
                        "numeric predictions (probabilities or estimates) for quality metrics",
                        prediction.dtype().to_string(),
                    ));
                }
                Some((labels, columns::numbers(prediction)?, *task))
            }
            None => None,
        };
        let mut tables = Tables::default();
        for group in &windows.groups {
            tables.profile.push(ProfileRow::table(group, "count", group.rows.len() as f64));
        }
        for name in self.watched(table)? {
            self.watch_column(table, &name, &windows, &mut tables)?;
        }
        if let Some((labels, predictions, task)) = &quality {
            let rows: Vec<Vec<ProfileRow>> =
                windows.groups.par_iter().map(|group| self::quality(group, labels, predictions, *task)).collect();
            tables.profile.extend(rows.into_iter().flatten());
        }
        tables.finish(&windows, &self.rules)
    }

    fn check_settings(&self) -> Result<()> {
        Windows::width_ms(self.window)?;
        if self.bins < 2 {
            return Err(Error::InvalidArgument(format!("numeric columns need at least 2 bins, got {}", self.bins)));
        }
        if let Some((_, Task::Classification { threshold })) = self.quality
            && !(threshold > 0.0 && threshold < 1.0)
        {
            return Err(Error::InvalidArgument(format!("threshold must be in (0, 1), got {threshold}")));
        }
        for rule in &self.rules {
            if let Target::Profile(metric) = &rule.target {
                if !PROFILE_METRICS.contains(&metric.as_str()) {
                    return Err(Error::InvalidArgument(format!(
                        "alert rule `{rule}`: no profile metric `{metric}`; known: {}",
                        PROFILE_METRICS.join(", ")
                    )));
                }
                if rule.reference.is_some() {
                    return Err(Error::InvalidArgument(format!(
                        "alert rule `{rule}`: profile metrics have no reference; `against` is for drift rules"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The prediction first, then the features.
    fn watched(&self, table: &DataFrame) -> Result<Vec<String>> {
        let roles =
            [Some(&self.timestamp), Some(&self.version), Some(&self.prediction), self.quality.as_ref().map(|q| &q.0)];
        let mut watched = vec![self.prediction.clone()];
        match &self.features {
            Some(features) => {
                let missing: Vec<String> = features.iter().filter(|f| table.column(f).is_err()).cloned().collect();
                if !missing.is_empty() {
                    return Err(Error::Core(mlops_core::Error::MissingColumns { columns: missing }));
                }
                for feature in features {
                    if !watched.contains(feature) {
                        watched.push(feature.clone());
                    }
                }
            }
            None => watched.extend(
                table
                    .columns()
                    .iter()
                    .filter(|c| Kind::of(c.dtype()).is_some())
                    .map(|c| c.name().to_string())
                    .filter(|name| !roles.contains(&Some(name)) && !BOOKKEEPING_COLUMNS.contains(&name.as_str())),
            ),
        }
        Ok(watched)
    }

    fn watch_column(&self, table: &DataFrame, name: &str, windows: &Windows, tables: &mut Tables) -> Result<()> {
        let watched = column(table, name)?;
        let Some(kind) = Kind::of(watched.dtype()) else {
            return Err(columns::schema_error(name, "numeric, text or boolean values", watched.dtype().to_string()));
        };
        let mut categories = Categories::default();
        let baseline = match &self.baseline {
            Some(frame) => Some(columns::read(column(frame, name)?, kind, &mut categories)?),
            None => None,
        };
        let values = columns::read(watched, kind, &mut categories)?;
        let positive_threshold = match (name == self.prediction, &self.quality) {
            (true, Some((_, Task::Classification { threshold }))) => Some(*threshold),
            _ => None,
        };
        let rows = match (values, baseline) {
            (Values::Numeric(values), baseline) => {
                let baseline = baseline.map(|b| match b {
                    Values::Numeric(b) => SortedSample::new(b),
                    Values::Categorical(_) => SortedSample::default(),
                });
                numeric_rows(name, &values, baseline.as_ref(), windows, self.bins, positive_threshold)
            }
            (Values::Categorical(codes), baseline) => {
                let baseline = baseline.map(|b| match b {
                    Values::Categorical(b) => category_counts(&b, None, categories.names().len()),
                    Values::Numeric(_) => Vec::new(),
                });
                categorical_rows(name, &codes, baseline.as_deref(), categories.names(), windows)
            }
        };
        for (profile, distribution, drift) in rows {
            tables.profile.extend(profile);
            tables.distribution.extend(distribution);
            tables.drift.extend(drift);
        }
        Ok(())
    }
}
