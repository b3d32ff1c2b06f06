//! The engineered features of a series on a day: its lags, weekday indicators, the trend
//! and the yearly cycle.

use polars::prelude::{Column, DataFrame};

use super::ForecastSpec;
use super::days::day_of_year;
use crate::error::Result;

/// Monday is the reference day: Tuesday to Sunday get an indicator each, so the indicators
/// and the intercept are never collinear.
pub(super) const WEEKDAY_FEATURES: [&str; 6] =
    ["is_tuesday", "is_wednesday", "is_thursday", "is_friday", "is_saturday", "is_sunday"];
pub(super) const YEARLY_FEATURES: [&str; 2] = ["year_sin", "year_cos"];

/// The engineered feature columns, filled row by row (one row per series and day).
pub(super) struct FeatureRows<'a> {
    spec: &'a ForecastSpec,
    origin_day: i32,
    columns: Vec<Vec<f64>>,
}

impl<'a> FeatureRows<'a> {
    pub(super) fn new(spec: &'a ForecastSpec, origin_day: i32) -> Self {
        Self { spec, origin_day, columns: vec![Vec::new(); spec.feature_columns().len()] }
    }

    pub(super) fn push(&mut self, day: i32, lagged: &[f64]) {
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

    pub(super) fn finish(self) -> Result<DataFrame> {
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
