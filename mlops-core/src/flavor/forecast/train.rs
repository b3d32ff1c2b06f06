//! Training a forecaster: its parameters, their check, and the fit on a history frame.

use std::collections::HashMap;

use ndarray::Array1;
use polars::prelude::{DataFrame, DataType};

use super::days::{day_numbers, format_day};
use super::features::{FeatureRows, WEEKDAY_FEATURES};
use super::history::{History, SeriesHistory};
use super::keys::{describe, series_keys};
use super::{ForecastModel, ForecastSpec, PREDICTION};
use crate::error::{Error, Result};
use crate::flavor::RegressionAlgorithm;
use crate::flavor::tabular::fit_regression;
use crate::preprocess::ColumnTransformer;
use crate::signature::{ColSpec, ColumnType, Schema, Signature};

/// Hyperparameters of a forecaster; [`check`](Self::check) validates them.
///
/// ```
/// use mlops_core::{ForecastParams, Model, RegressionAlgorithm};
/// use polars::prelude::*;
///
/// // Ten weeks of one store's sales: a rising level, busy Saturdays, some noise.
/// let saturday = |day: i32| (day + 3).rem_euclid(7) == 5; // 1970-01-01 was a Thursday
/// let truth = |day: i32| 100.0 + 0.5 * day as f64 + if saturday(day) { 20.0 } else { 0.0 };
/// let noise = |day: i32| ((day * 7919) % 13) as f64 / 13.0 - 0.5;
/// let days: Vec<i32> = (0..70).collect();
/// let sales: Vec<f64> = days.iter().map(|d| truth(*d) + noise(*d)).collect();
/// let as_dates = |frame: DataFrame| frame.lazy().with_column(col("day").cast(DataType::Date)).collect();
/// let history = as_dates(df!("store" => ["s1"; 70], "day" => days, "sales" => sales)?)?;
///
/// let model = ForecastParams::new("sales", "day", ["store"], RegressionAlgorithm::Linear)
///     .lags([7])
///     .check()?
///     .fit(&history)?;
/// // Days 72 (a Saturday) and 75, forecast through the days between.
/// let forecast = model.predict(&as_dates(df!("store" => ["s1", "s1"], "day" => [72, 75])?)?)?;
/// let values = forecast.column("prediction")?.f64()?;
/// assert!((values.get(0).unwrap() - truth(72)).abs() < 2.0);
/// assert!((values.get(1).unwrap() - truth(75)).abs() < 2.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastParams {
    spec: ForecastSpec,
    algorithm: RegressionAlgorithm,
}

/// [`ForecastParams`] that passed [`check`](ForecastParams::check).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidForecastParams(ForecastParams);

impl ForecastParams {
    /// Forecasts `target` per series (the `series` columns) by day (`date`) with
    /// `algorithm`; lags 7 and 14 and a horizon of 366 days unless changed.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        target: impl Into<String>,
        date: impl Into<String>,
        series: I,
        algorithm: RegressionAlgorithm,
    ) -> Self {
        let spec = ForecastSpec {
            target: target.into(),
            date: date.into(),
            series: series.into_iter().map(Into::into).collect(),
            lags: vec![7, 14],
            max_horizon: 366,
            yearly: false,
        };
        Self { spec, algorithm }
    }

    /// The lags, in days.
    pub fn lags<I: IntoIterator<Item = u32>>(mut self, lags: I) -> Self {
        self.spec.lags = lags.into_iter().collect();
        self
    }

    /// How many days past its history a series may be forecast.
    pub fn max_horizon(mut self, days: u32) -> Self {
        self.spec.max_horizon = days;
        self
    }

    /// Adds a yearly cycle to the calendar features.
    pub fn yearly(mut self, yearly: bool) -> Self {
        self.spec.yearly = yearly;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter out of range or the column misused.
    pub fn check(mut self) -> Result<ValidForecastParams> {
        let spec = &mut self.spec;
        spec.lags.sort_unstable();
        spec.lags.dedup();
        spec.check()?;
        let roles: Vec<&String> = std::iter::once(&spec.target).chain(&spec.series).chain([&spec.date]).collect();
        if let Some(repeated) = roles.iter().enumerate().find(|(i, c)| roles[..*i].contains(c)).map(|(_, c)| c) {
            return Err(Error::InvalidArgument(format!("column `{repeated}` has two roles")));
        }
        if let RegressionAlgorithm::ElasticNet { penalty, l1_ratio } = self.algorithm
            && !(penalty.is_finite() && penalty >= 0.0 && (0.0..=1.0).contains(&l1_ratio))
        {
            return Err(Error::InvalidArgument(format!(
                "elastic net needs a finite penalty >= 0 and l1_ratio in [0, 1], got {penalty} and {l1_ratio}"
            )));
        }
        Ok(ValidForecastParams(self))
    }
}

impl ValidForecastParams {
    /// Builds the features of every day whose lags the history holds and fits the model.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] / [`Error::Schema`] for absent columns, nulls, a
    /// non-numeric target, a day that appears twice in a series (named), a date outside
    /// years 1 to 9999, a series whose days span more than a year plus 64 days per row it
    /// has (the forecaster holds every day between, so sparse data such as quarterly
    /// figures is refused);
    /// [`Error::InvalidArgument`] when too few days have all their lags; [`Error::Fit`]
    /// when the solver fails.
    pub fn fit(&self, history: &DataFrame) -> Result<ForecastModel> {
        let ForecastParams { spec, algorithm } = &self.0;
        let missing: Vec<String> = std::iter::once(&spec.target)
            .chain(&spec.series)
            .chain([&spec.date])
            .filter(|c| history.column(c).is_err())
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let keys = series_keys(history, &spec.series)?;
        let days = day_numbers(history.column(&spec.date)?)?;
        let target = history.column(&spec.target)?;
        if !target.dtype().is_primitive_numeric() || target.null_count() > 0 {
            return Err(Error::Schema {
                column: spec.target.clone(),
                expected: "numbers without nulls".into(),
                found: format!("{} with {} nulls", target.dtype(), target.null_count()),
            });
        }
        let values: Vec<f64> = target.cast(&DataType::Float64)?.f64()?.into_no_null_iter().collect();
        if let Some(row) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::Schema {
                column: spec.target.clone(),
                expected: "finite numbers".into(),
                found: format!("{} in row {row}", values[row]),
            });
        }

        // Each series as a dense run of days from its first to its last.
        let mut index: HashMap<&[String], usize> = HashMap::new();
        let mut series: Vec<(Vec<String>, i32, Vec<Option<f64>>)> = Vec::new();
        let mut rows_of: Vec<Vec<usize>> = Vec::new();
        for (row, key) in keys.iter().enumerate() {
            let s = *index.entry(key.as_slice()).or_insert_with(|| {
                series.push((key.clone(), 0, Vec::new()));
                rows_of.push(Vec::new());
                series.len() - 1
            });
            rows_of[s].push(row);
        }
        for (s, rows) in rows_of.iter().enumerate() {
            let first = rows.iter().map(|r| days[*r]).min().unwrap_or_default();
            let last = rows.iter().map(|r| days[*r]).max().unwrap_or_default();
            // Both are calendar days, so the span fits.
            let span = (last - first) as usize + 1;
            if span > max_span_days(rows.len()) {
                return Err(Error::Schema {
                    column: spec.date.clone(),
                    expected: format!("at most {} days of history for {} rows", max_span_days(rows.len()), rows.len()),
                    found: format!(
                        "{span} days from {} to {} for {}",
                        format_day(first),
                        format_day(last),
                        describe(&spec.series, &series[s].0)
                    ),
                });
            }
            let mut dense = vec![None; span];
            for r in rows {
                let slot = &mut dense[(days[*r] - first) as usize];
                if slot.is_some() {
                    return Err(Error::Schema {
                        column: spec.date.clone(),
                        expected: "one row per series and day".into(),
                        found: format!("{} twice for {}", format_day(days[*r]), describe(&spec.series, &series[s].0)),
                    });
                }
                *slot = Some(values[*r]);
            }
            series[s].1 = first;
            series[s].2 = dense;
        }
        let origin_day = days.iter().copied().min().unwrap_or_default();

        // Training rows: every day whose lags all have values.
        let mut builder = FeatureRows::new(spec, origin_day);
        let mut targets = Vec::new();
        for (_, first, dense) in &series {
            for (offset, value) in dense.iter().enumerate() {
                let Some(value) = value else { continue };
                let lagged: Option<Vec<f64>> =
                    spec.lags.iter().map(|k| offset.checked_sub(*k as usize).and_then(|i| dense[i])).collect();
                if let Some(lagged) = lagged {
                    builder.push(first + offset as i32, &lagged);
                    targets.push(*value);
                }
            }
        }
        let width = spec.feature_columns().len();
        if targets.len() <= width {
            return Err(Error::InvalidArgument(format!(
                "{} days have all their lags (longest {} days); fitting {width} features needs more",
                targets.len(),
                spec.longest_lag()
            )));
        }
        let frame = builder.finish()?;
        if *algorithm == RegressionAlgorithm::Linear
            && let Some(weekday) = WEEKDAY_FEATURES.iter().find(|w| {
                frame
                    .column(w)
                    .ok()
                    .and_then(|c| c.f64().ok().map(|v| v.iter().all(|x| x == Some(0.0))))
                    .unwrap_or(false)
            })
        {
            return Err(Error::InvalidArgument(format!(
                "no training day with all its lags falls on {} (`{weekday}` is always 0), which least squares \
                 cannot fit; use the elastic net",
                &weekday[3..]
            )));
        }
        let transformer = ColumnTransformer::builder().standardize(spec.feature_columns()).fit(&frame)?;
        let weights = fit_regression(
            *algorithm,
            transformer.transform(&frame)?,
            Array1::from(targets),
            transformer.feature_names(),
            "forecaster",
        )?;

        let longest = spec.longest_lag();
        let kept = series
            .into_iter()
            .map(|(key, first, dense)| {
                let end_day = first + dense.len() as i32 - 1;
                let mut last = vec![None; longest.saturating_sub(dense.len())];
                last.extend_from_slice(&dense[dense.len().saturating_sub(longest)..]);
                SeriesHistory { key, end_day, last }
            })
            .collect();
        let mut inputs: Vec<ColSpec> = Vec::new();
        for name in &spec.series {
            let dtype = history.column(name)?.dtype();
            let column_type = ColumnType::from_polars(dtype).ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "text or integer keys".into(),
                found: dtype.to_string(),
            })?;
            inputs.push(ColSpec::new(name.as_str(), column_type));
        }
        inputs.push(ColSpec::new(spec.date.as_str(), ColumnType::Datetime));
        let signature = Signature::new(Schema::new(inputs)?)
            .with_outputs(Schema::new(vec![ColSpec::new(PREDICTION, ColumnType::Double)])?);
        ForecastModel::new(signature, History { spec: spec.clone(), origin_day, series: kept }, transformer, weights)
    }
}

/// The most days one series' history may span: a year, and 64 days per row it has, so
/// that the days held for a series (gaps included) stay in proportion to its rows.
fn max_span_days(rows: usize) -> usize {
    rows.saturating_mul(64).saturating_add(366)
}
