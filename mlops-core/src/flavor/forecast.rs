//! Daily time-series forecasting: lagged and calendar features built from each series'
//! history, a linear or elastic-net model over them, and recursive multi-step forecasts.
//!
//! The fitted model keeps the last days of every series it was trained on, so a request
//! needs only keys and future dates: the forecast for day `d` reads its lags from the kept
//! history and, past the history's end, from the model's own forecasts for the days before.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use ndarray::Array1;
use polars::prelude::{Column, DataFrame, DataType, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flavor::tabular::fit_regression;
use crate::flavor::{Flavor, LinearWeights, RegressionAlgorithm};
use crate::model::{Model, ModelWrapper};
use crate::package::Package;
use crate::preprocess::ColumnTransformer;
use crate::signature::{ColSpec, ColumnType, Schema, Signature};

/// Flavor name of packaged [`ForecastModel`]s.
pub const FORECASTER: &str = "forecaster";

const HISTORY_FILE: &str = "history.json";
const PREPROCESSOR_FILE: &str = "preprocessor.json";
const WEIGHTS_FILE: &str = "model.json";
const PREDICTION: &str = "prediction";
const MS_PER_DAY: i64 = 86_400_000;
/// Monday is the reference day: Tuesday to Sunday get an indicator each, so the indicators
/// and the intercept are never collinear.
const WEEKDAY_FEATURES: [&str; 6] =
    ["is_tuesday", "is_wednesday", "is_thursday", "is_friday", "is_saturday", "is_sunday"];
const YEARLY_FEATURES: [&str; 2] = ["year_sin", "year_cos"];

/// What a forecaster reads and builds: its columns, lags and horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastSpec {
    /// The forecast quantity (sales).
    pub target: String,
    /// The day column (a date, or a datetime truncated to its UTC day).
    pub date: String,
    /// The columns that name a series (store, item), text or integers.
    pub series: Vec<String>,
    /// Lags in days, each feature `lag_<k>` the target `k` days earlier in the same series.
    pub lags: Vec<u32>,
    /// How many days past the end of its history a series may be forecast.
    pub max_horizon: u32,
    /// Whether the features include a yearly cycle (sine and cosine of the day of the
    /// year); worth it with two or more years of history.
    pub yearly: bool,
}

impl ForecastSpec {
    /// Lags, horizon and series columns in range; a loaded package is held to the same.
    fn check(&self) -> Result<()> {
        if self.lags.is_empty() || self.lags.contains(&0) {
            return Err(Error::InvalidArgument(format!("lags must be one or more days, got {:?}", self.lags)));
        }
        if self.longest_lag() > 366 {
            return Err(Error::InvalidArgument(format!("lags reach at most 366 days, got {}", self.longest_lag())));
        }
        if self.max_horizon == 0 || self.max_horizon > 3660 {
            return Err(Error::InvalidArgument(format!(
                "max_horizon must be 1 to 3660 days, got {}",
                self.max_horizon
            )));
        }
        if self.series.is_empty() {
            return Err(Error::InvalidArgument("a forecaster needs at least one series column".into()));
        }
        Ok(())
    }

    fn longest_lag(&self) -> usize {
        self.lags.iter().copied().max().unwrap_or(0) as usize
    }

    /// `lag_<k>` per lag, the weekday indicators, `trend_years`, then `year_sin` and
    /// `year_cos` when yearly.
    fn feature_columns(&self) -> Vec<String> {
        let lags = self.lags.iter().map(|k| format!("lag_{k}"));
        let yearly: &[&str] = if self.yearly { &YEARLY_FEATURES } else { &[] };
        let calendar = WEEKDAY_FEATURES.iter().chain(&["trend_years"]).chain(yearly).map(|s| (*s).to_owned());
        lags.chain(calendar).collect()
    }
}

/// The last days of one series, enough for every lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeriesHistory {
    /// The key values as text, in [`ForecastSpec::series`] order.
    key: Vec<String>,
    /// The last day with a value, in days since 1970-01-01.
    end_day: i32,
    /// The target on the `longest_lag` days up to `end_day`, oldest first; `None` for a
    /// missing day.
    last: Vec<Option<f64>>,
}

/// The fitted preprocessing: spec, trend origin and each series' recent history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct History {
    spec: ForecastSpec,
    /// Day zero of the trend feature: the first training day.
    origin_day: i32,
    series: Vec<SeriesHistory>,
}

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

/// The engineered feature columns, filled row by row (one row per series and day).
struct FeatureRows<'a> {
    spec: &'a ForecastSpec,
    origin_day: i32,
    columns: Vec<Vec<f64>>,
}

impl<'a> FeatureRows<'a> {
    fn new(spec: &'a ForecastSpec, origin_day: i32) -> Self {
        Self { spec, origin_day, columns: vec![Vec::new(); spec.feature_columns().len()] }
    }

    fn push(&mut self, day: i32, lagged: &[f64]) {
        let lags = self.spec.lags.len();
        for (column, value) in self.columns.iter_mut().zip(lagged) {
            column.push(*value);
        }
        // Monday = 0; 1970-01-01 was a Thursday.
        let weekday = (day + 3).rem_euclid(7) as usize;
        for (i, column) in self.columns[lags..lags + 6].iter_mut().enumerate() {
            column.push(if weekday == i + 1 { 1.0 } else { 0.0 });
        }
        self.columns[lags + 6].push(f64::from(day - self.origin_day) / 365.25);
        if self.spec.yearly {
            let angle = 2.0 * std::f64::consts::PI * f64::from(day_of_year(day)) / 365.25;
            self.columns[lags + 7].push(angle.sin());
            self.columns[lags + 8].push(angle.cos());
        }
    }

    fn finish(self) -> Result<DataFrame> {
        let height = self.columns.first().map_or(0, Vec::len);
        let columns = self
            .spec
            .feature_columns()
            .into_iter()
            .zip(self.columns)
            .map(|(name, values)| Column::new(name.into(), values))
            .collect();
        Ok(DataFrame::new(height, columns)?)
    }
}

fn day_of_year(day: i32) -> u32 {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).map_or(1, |d| d.ordinal())
}

fn format_day(day: i32) -> String {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).map_or_else(|| format!("day {day}"), |d| d.to_string())
}

fn describe(columns: &[String], key: &[String]) -> String {
    columns.iter().zip(key).map(|(c, k)| format!("{c}={k}")).collect::<Vec<_>>().join(", ")
}

/// Each row's series key, its columns' values as text.
fn series_keys(frame: &DataFrame, columns: &[String]) -> Result<Vec<Vec<String>>> {
    let mut keys = vec![Vec::with_capacity(columns.len()); frame.height()];
    for name in columns {
        let column = frame.column(name).map_err(|_| Error::MissingColumns { columns: vec![name.clone()] })?;
        if !matches!(column.dtype(), DataType::String | DataType::Int32 | DataType::Int64 | DataType::UInt32) {
            return Err(Error::Schema {
                column: name.clone(),
                expected: "text, i32, i64 or u32 keys".into(),
                found: column.dtype().to_string(),
            });
        }
        let text = column.cast(&DataType::String)?;
        for (row, value) in text.str()?.iter().enumerate() {
            let value = value.ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "a key in every row".into(),
                found: format!("null in row {row}"),
            })?;
            keys[row].push(value.to_owned());
        }
    }
    Ok(keys)
}

/// Days since 1970-01-01 of a date or datetime column (datetimes by their UTC day).
fn day_numbers(column: &Column) -> Result<Vec<i32>> {
    let name = column.name().to_string();
    let days: Vec<Option<i64>> = match column.dtype() {
        DataType::Date => column.date()?.physical().iter().map(|d| d.map(i64::from)).collect(),
        DataType::Datetime(..) => {
            let ms = column.cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
            ms.datetime()?.physical().iter().map(|v| v.map(|ms| ms.div_euclid(MS_PER_DAY))).collect()
        }
        other => {
            return Err(Error::Schema { column: name, expected: "dates".into(), found: other.to_string() });
        }
    };
    days.into_iter()
        .enumerate()
        .map(|(row, day)| {
            let day = day.ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "a date in every row".into(),
                found: format!("null in row {row}"),
            })?;
            calendar_day(day).ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "a date from year 1 to 9999".into(),
                found: format!("day {day} after 1970-01-01 in row {row}"),
            })
        })
        .collect()
}

/// Day numbers (days after 1970-01-01) from 0001-01-01 to 9999-12-31: every date in and
/// between a history and its forecasts stays in this range, so their arithmetic cannot
/// overflow.
const CALENDAR_DAYS: std::ops::RangeInclusive<i32> = -719_162..=2_932_896;

/// `day` as a day number, when it is inside [`CALENDAR_DAYS`].
fn calendar_day(day: i64) -> Option<i32> {
    i32::try_from(day).ok().filter(|day| CALENDAR_DAYS.contains(day))
}

/// The most days one series' history may span: a year, and 64 days per row it has, so
/// that the days held for a series (gaps included) stay in proportion to its rows.
fn max_span_days(rows: usize) -> usize {
    rows.saturating_mul(64).saturating_add(366)
}

/// A fitted forecaster: signature, history, standardization and linear weights.
///
/// [`Model::predict`] takes series keys and dates after each series' history and returns a
/// `prediction` per row, in the input's order.
#[derive(Debug, Clone)]
pub struct ForecastModel {
    signature: Signature,
    history: History,
    index: HashMap<Vec<String>, usize>,
    transformer: ColumnTransformer,
    weights: LinearWeights,
}

impl ForecastModel {
    fn new(
        signature: Signature,
        history: History,
        transformer: ColumnTransformer,
        weights: LinearWeights,
    ) -> Result<Self> {
        history.spec.check()?;
        let width = history.spec.feature_columns().len();
        if weights.coefficients.len() != width || transformer.width() != width {
            return Err(Error::InvalidArgument(format!(
                "{} coefficients and {} transformed features for {width} features",
                weights.coefficients.len(),
                transformer.width()
            )));
        }
        let longest = history.spec.longest_lag();
        if let Some(s) =
            history.series.iter().find(|s| s.last.len() != longest || s.key.len() != history.spec.series.len())
        {
            return Err(Error::InvalidArgument(format!("the history of {:?} does not fit the spec", s.key)));
        }
        // A forecast adds at most `max_horizon` days to a series' end: with both in the
        // calendar, every day computed from them is too.
        let last_end = *CALENDAR_DAYS.end() - history.spec.max_horizon as i32;
        if !CALENDAR_DAYS.contains(&history.origin_day) {
            return Err(Error::InvalidArgument(format!(
                "the history's first day {} is not a date",
                history.origin_day
            )));
        }
        if let Some(s) = history.series.iter().find(|s| !(*CALENDAR_DAYS.start()..=last_end).contains(&s.end_day)) {
            return Err(Error::InvalidArgument(format!(
                "the history of {:?} ends on day {}, outside the dates a forecast can reach",
                s.key, s.end_day
            )));
        }
        let index = history.series.iter().enumerate().map(|(i, s)| (s.key.clone(), i)).collect();
        Ok(Self { signature, history, index, transformer, weights })
    }

    /// The columns, lags and horizon.
    pub fn spec(&self) -> &ForecastSpec {
        &self.history.spec
    }

    /// The fitted weights.
    pub fn weights(&self) -> &LinearWeights {
        &self.weights
    }

    /// The last day of history of the series with these key values (as text), if known.
    pub fn history_end(&self, key: &[&str]) -> Option<NaiveDate> {
        let key: Vec<String> = key.iter().map(|k| (*k).to_owned()).collect();
        let series = &self.history.series[*self.index.get(&key)?];
        NaiveDate::from_num_days_from_ce_opt(series.end_day + 719_163)
    }

    /// Packages the model, storing the first rows of `input_example` when given.
    ///
    /// # Errors
    /// Schema errors when `input_example` breaks the signature.
    pub fn package(&self, input_example: Option<&DataFrame>) -> Result<Package> {
        let mut builder = Package::builder(FORECASTER, self.signature.clone())
            .json_file(HISTORY_FILE, &self.history)?
            .json_file(PREPROCESSOR_FILE, &self.transformer)?
            .json_file(WEIGHTS_FILE, &self.weights)?
            .metadata("algorithm", self.weights.algorithm.as_str())
            .metadata("series", self.history.series.len())
            .metadata("lags", self.history.spec.lags.clone());
        if let Some(example) = input_example {
            builder = builder.input_example(example)?;
        }
        builder.build()
    }
}

/// Requested forecasts: the series and day of each input row.
#[derive(Debug)]
pub struct ForecastRequests {
    rows: Vec<(usize, i32)>,
}

impl ModelWrapper for ForecastModel {
    type Features = ForecastRequests;

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn preprocess(&self, input: &DataFrame) -> Result<ForecastRequests> {
        let spec = &self.history.spec;
        let keys = series_keys(input, &spec.series)?;
        let days = day_numbers(input.column(&spec.date)?)?;
        let rows = keys
            .into_iter()
            .zip(days)
            .enumerate()
            .map(|(row, (key, day))| {
                let Some(&s) = self.index.get(&key) else {
                    return Err(Error::Schema {
                        column: spec.series.join(", "),
                        expected: "a series the model was trained on".into(),
                        found: format!("{} in row {row}", describe(&spec.series, &key)),
                    });
                };
                let end = self.history.series[s].end_day;
                if day <= end || day - end > spec.max_horizon as i32 {
                    return Err(Error::Schema {
                        column: spec.date.clone(),
                        expected: format!(
                            "a day from {} to {} for {}",
                            format_day(end + 1),
                            format_day(end + spec.max_horizon as i32),
                            describe(&spec.series, &key)
                        ),
                        found: format!("{} in row {row}", format_day(day)),
                    });
                }
                Ok((s, day))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ForecastRequests { rows })
    }

    /// Forecasts day by day: each step predicts the next day of every series that still
    /// needs one, all in one feature matrix, and feeds the results to later lags.
    fn predict_features(&self, requests: &ForecastRequests) -> Result<DataFrame> {
        let spec = &self.history.spec;
        let mut horizon = vec![0usize; self.history.series.len()];
        for (s, day) in &requests.rows {
            horizon[*s] = horizon[*s].max((day - self.history.series[*s].end_day) as usize);
        }
        // Per series: the kept history followed by the forecasts so far.
        let mut paths: Vec<Vec<Option<f64>>> = self
            .history
            .series
            .iter()
            .zip(&horizon)
            .map(|(s, h)| if *h > 0 { s.last.clone() } else { Vec::new() })
            .collect();
        let longest = spec.longest_lag();
        for step in 1..=horizon.iter().copied().max().unwrap_or(0) {
            let active: Vec<usize> = (0..paths.len()).filter(|s| horizon[*s] >= step).collect();
            let mut features = FeatureRows::new(spec, self.history.origin_day);
            for s in &active {
                let series = &self.history.series[*s];
                let day = series.end_day + step as i32;
                let path = &paths[*s];
                let lagged = spec
                    .lags
                    .iter()
                    .map(|k| {
                        // `path[i]` is the day `end - longest + 1 + i`.
                        path[longest + step - 1 - *k as usize].ok_or_else(|| {
                            Error::InvalidArgument(format!(
                                "no {} for {} on {}, which lag {k} of {} needs",
                                spec.target,
                                describe(&spec.series, &series.key),
                                format_day(day - *k as i32),
                                format_day(day)
                            ))
                        })
                    })
                    .collect::<Result<Vec<f64>>>()?;
                features.push(day, &lagged);
            }
            let encoded = self.transformer.encode(&features.finish()?)?;
            let forecasts = encoded.linear_scores(&self.weights.coefficients, self.weights.intercept);
            for (s, forecast) in active.iter().zip(forecasts) {
                paths[*s].push(Some(forecast));
            }
        }
        let predictions: Vec<f64> = requests
            .rows
            .iter()
            .map(|(s, day)| {
                let step = (day - self.history.series[*s].end_day) as usize;
                paths[*s][longest + step - 1].unwrap_or(f64::NAN)
            })
            .collect();
        Ok(DataFrame::new(predictions.len(), vec![Column::new(PREDICTION.into(), predictions)])?)
    }
}

/// Loads [`ForecastModel`] packages.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForecastFlavor;

impl Flavor for ForecastFlavor {
    fn name(&self) -> &str {
        FORECASTER
    }

    fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        let history: History = package.json_file(HISTORY_FILE)?;
        let transformer: ColumnTransformer = package.json_file(PREPROCESSOR_FILE)?;
        let weights: LinearWeights = package.json_file(WEIGHTS_FILE)?;
        let model = ForecastModel::new(package.manifest().signature.clone(), history, transformer, weights)
            .map_err(|e| Error::InvalidPackage(e.to_string()))?;
        Ok(Arc::new(model))
    }
}
