//! The fitted history: the spec, the trend's first day and the last days of every series
//! the forecaster was trained on.

use serde::{Deserialize, Serialize};

use super::ForecastSpec;

/// The last days of one series, enough for every lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SeriesHistory {
    /// The key values as text, in [`ForecastSpec::series`] order.
    pub(super) key: Vec<String>,
    /// The last day with a value, in days since 1970-01-01.
    pub(super) end_day: i32,
    /// The target on the `longest_lag` days up to `end_day`, oldest first; `None` for a
    /// missing day.
    pub(super) last: Vec<Option<f64>>,
}

/// The fitted preprocessing: spec, trend origin and each series' recent history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct History {
    pub(super) spec: ForecastSpec,
    /// Day zero of the trend feature: the first training day.
    pub(super) origin_day: i32,
    pub(super) series: Vec<SeriesHistory>,
}
