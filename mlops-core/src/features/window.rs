//! Sliding-window aggregates of events: the usual way to turn a stream of transactions
//! into a time-series feature table.

use std::time::Duration;

use polars::prelude::{
    DataFrame, DataType, DynamicGroupOptions, Expr, IntoLazy, SortMultipleOptions, TimeUnit, col, len, lit,
};

use polars_time::Duration as PolarsDuration;

use super::table::FeatureTable;
use crate::error::{Error, Result};

/// The longest window period: 100 years, in milliseconds.
const MAX_WINDOW_MILLIS: u128 = 100 * 366 * 86_400_000;

/// One aggregate a [`SlidingWindow`] computes per key and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowAggregation {
    /// Largest value of `column`, written to `output`.
    Max {
        /// The event column.
        column: String,
        /// The feature name.
        output: String,
    },
    /// Sum of `column`, written to `output`.
    Sum {
        /// The event column.
        column: String,
        /// The feature name.
        output: String,
    },
    /// Mean of `column`, written to `output`.
    Mean {
        /// The event column.
        column: String,
        /// The feature name.
        output: String,
    },
    /// Number of events, written to `output`.
    Count {
        /// The feature name.
        output: String,
    },
}

impl WindowAggregation {
    fn expr(&self) -> Expr {
        match self {
            Self::Max { column, output } => col(column.as_str()).max().alias(output.as_str()),
            Self::Sum { column, output } => col(column.as_str()).sum().alias(output.as_str()),
            Self::Mean { column, output } => col(column.as_str()).mean().alias(output.as_str()),
            Self::Count { output } => len().cast(DataType::Int64).alias(output.as_str()),
        }
    }

    fn input(&self) -> Option<&str> {
        match self {
            Self::Max { column, .. } | Self::Sum { column, .. } | Self::Mean { column, .. } => Some(column),
            Self::Count { .. } => None,
        }
    }
}

/// Windows of `period` starting every `every`, per key, over a datetime column.
///
/// Each window `[start, end)` becomes one feature row stamped with `end`, the first instant
/// its value is complete: a point-in-time lookup at time `t` sees only windows that closed
/// at or before `t`, so no record ever sees itself or a later event. Windows that began
/// before the first event are included, so the earliest events are counted by every window
/// that covers them.
///
/// ```
/// use std::time::Duration;
/// use mlops_core::features::{SlidingWindow, WindowAggregation};
/// use polars::prelude::*;
///
/// let minute = 60_000i64;
/// let events = df!(
///     "Product" => ["A", "A", "A"],
///     "ts" => [0, minute / 2, 2 * minute],
///     "Amount" => [5.0, 9.0, 1.0],
/// )?
/// .lazy()
/// .with_column(col("ts").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
/// .collect()?;
///
/// let table = SlidingWindow::new(["Product"], "ts", Duration::from_secs(180), Duration::from_secs(60))
///     .aggregate(WindowAggregation::Max { column: "Amount".into(), output: "MaxProductAmount".into() })
///     .build("product_features", &events)?;
/// let max = table.frame().column("MaxProductAmount")?.f64()?;
/// // Windows closing at 1, 2, 3, 4 and 5 minutes: the 9.0 counts until the one closing at 3.
/// assert_eq!(max.into_no_null_iter().collect::<Vec<_>>(), [9.0, 9.0, 9.0, 1.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    keys: Vec<String>,
    time: String,
    period: Duration,
    every: Duration,
    aggregations: Vec<WindowAggregation>,
    timestamp: String,
}

impl SlidingWindow {
    /// Windows of `period` every `every` over the event column `time`, per `keys`.
    pub fn new<S: Into<String>>(
        keys: impl IntoIterator<Item = S>,
        time: impl Into<String>,
        period: Duration,
        every: Duration,
    ) -> Self {
        Self {
            keys: keys.into_iter().map(Into::into).collect(),
            time: time.into(),
            period,
            every,
            aggregations: Vec::new(),
            timestamp: "window_end".into(),
        }
    }

    /// Adds an aggregate.
    #[must_use]
    pub fn aggregate(mut self, aggregation: WindowAggregation) -> Self {
        self.aggregations.push(aggregation);
        self
    }

    /// Names the table's timestamp column (`window_end` by default).
    #[must_use]
    pub fn timestamp_column(mut self, name: impl Into<String>) -> Self {
        self.timestamp = name.into();
        self
    }

    /// Aggregates `events` into the feature table `name`: the keys, the timestamp column
    /// (window end) and one column per aggregate.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no aggregate, a period or step under a millisecond,
    /// or a step longer than the period; [`Error::MissingColumns`] naming absent event
    /// columns; [`Error::Schema`] when the time column is not a datetime.
    pub fn build(&self, name: &str, events: &DataFrame) -> Result<FeatureTable> {
        if self.aggregations.is_empty() {
            return Err(Error::InvalidArgument(format!("the sliding window for `{name}` computes no aggregate")));
        }
        let (period, every) = (self.period.as_millis(), self.every.as_millis());
        // A period of up to 100 years keeps nanosecond arithmetic and Polars' durations in range.
        if every == 0 || period == 0 || every > period || period > MAX_WINDOW_MILLIS {
            return Err(Error::InvalidArgument(format!(
                "the sliding window for `{name}` needs 1 ms <= every ({every} ms) <= period ({period} ms) <= 100 years"
            )));
        }
        let schema = events.schema();
        let missing: Vec<String> = self
            .keys
            .iter()
            .map(String::as_str)
            .chain([self.time.as_str()])
            .chain(self.aggregations.iter().filter_map(WindowAggregation::input))
            .filter(|c| !schema.contains(c))
            .map(str::to_owned)
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let time_type = schema.get(&self.time).cloned().unwrap_or(DataType::Null);
        let DataType::Datetime(unit, _) = time_type else {
            return Err(Error::Schema {
                column: self.time.clone(),
                expected: "a datetime column to window over".into(),
                found: time_type.to_string(),
            });
        };
        // Windows are labelled by their start, closed on the left ([start, end)) and aligned
        // on multiples of `every`; the end is the start plus the period, in the column's unit.
        let period_in_unit = match unit {
            TimeUnit::Milliseconds => period as i64,
            TimeUnit::Microseconds => period as i64 * 1_000,
            TimeUnit::Nanoseconds => period as i64 * 1_000_000,
        };
        let options = DynamicGroupOptions {
            every: PolarsDuration::parse(&format!("{every}ms")),
            period: PolarsDuration::parse(&format!("{period}ms")),
            // Start the first windows early enough that they cover the first event.
            offset: PolarsDuration::parse(&format!("-{}ms", period - every)),
            include_boundaries: false,
            ..Default::default()
        };
        let window_end = (col(self.time.as_str()).cast(DataType::Int64) + lit(period_in_unit))
            .cast(time_type)
            .alias(self.timestamp.as_str());
        let keys: Vec<Expr> = self.keys.iter().map(|k| col(k.as_str())).collect();
        let aggregates: Vec<Expr> = self.aggregations.iter().map(WindowAggregation::expr).collect();
        let frame = events
            .clone()
            .lazy()
            .filter(col(self.time.as_str()).is_not_null())
            .sort([self.time.as_str()], SortMultipleOptions::default())
            .group_by_dynamic(col(self.time.as_str()), keys, options)
            .agg(aggregates)
            .with_column(window_end)
            .drop(polars::prelude::cols([self.time.as_str()]))
            .sort([self.timestamp.as_str()], SortMultipleOptions::default().with_maintain_order(true))
            .collect()?;
        FeatureTable::new(name, self.keys.iter().map(String::as_str), Some(&self.timestamp), frame)
    }
}
