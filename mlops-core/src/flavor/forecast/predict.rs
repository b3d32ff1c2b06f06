//! Forecasting: the series and day each input row asks for, then day-by-day steps from
//! every series' kept history.

use polars::prelude::{Column, DataFrame};

use super::days::{day_numbers, format_day};
use super::features::FeatureRows;
use super::keys::{describe, series_keys};
use super::{ForecastModel, PREDICTION};
use crate::error::{Error, Result};
use crate::model::ModelWrapper;
use crate::signature::Signature;

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
