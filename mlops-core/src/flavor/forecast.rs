//! Daily time-series forecasting: lagged and calendar features built from each series'
//! history, a linear or elastic-net model over them, and recursive multi-step forecasts.
//!
//! The fitted model keeps the last days of every series it was trained on, so a request
//! needs only keys and future dates: the forecast for day `d` reads its lags from the kept
//! history and, past the history's end, from the model's own forecasts for the days before.

mod days;
mod features;
mod history;
mod keys;
mod predict;
mod train;

pub use predict::ForecastRequests;
pub use train::{ForecastParams, ValidForecastParams};

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use self::days::CALENDAR_DAYS;
use self::features::{WEEKDAY_FEATURES, YEARLY_FEATURES};
use self::history::History;
use crate::error::{Error, Result};
use crate::flavor::{Flavor, LinearWeights};
use crate::model::Model;
use crate::package::Package;
use crate::preprocess::ColumnTransformer;
use crate::signature::Signature;

/// Flavor name of packaged [`ForecastModel`]s.
pub const FORECASTER: &str = "forecaster";

const HISTORY_FILE: &str = "history.json";
const PREPROCESSOR_FILE: &str = "preprocessor.json";
const WEIGHTS_FILE: &str = "model.json";
const PREDICTION: &str = "prediction";

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
