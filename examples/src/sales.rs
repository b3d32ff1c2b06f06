//! A seeded daily sales set: stores × items × days, each series with its own level, a
//! shared upward trend, weekly seasonality (busy weekends) and noise.

use polars::prelude::{Column, DataFrame, DataType, PolarsResult};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Series key columns.
pub const SERIES: [&str; 2] = ["store", "item"];
/// Day column (a date).
pub const DATE: &str = "date";
/// Units sold.
pub const TARGET: &str = "sales";
/// 2024-01-01, the first day, in days since 1970-01-01.
pub const FIRST_DAY: i32 = 19_723;
/// Sales relative to the weekly mean, Monday first.
const WEEKLY: [f64; 7] = [0.85, 0.85, 0.9, 0.95, 1.1, 1.25, 1.1];

/// How much data to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Number of stores.
    pub stores: usize,
    /// Number of items per store.
    pub items: usize,
    /// Days from 2024-01-01.
    pub days: usize,
    /// Random seed: the same seed gives the same data.
    pub seed: u64,
}

/// Generates the sales, ordered by store, item and day.
///
/// Columns: `store` (`s01`, ...), `item` (i64 from 1), `date` (date), `sales` (f64, whole
/// units, never negative).
///
/// # Errors
/// Only if Polars fails to assemble the frame.
pub fn generate(config: &Config) -> PolarsResult<DataFrame> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let noise = Normal::new(0.0, 1.0).map_err(|e| polars::prelude::polars_err!(ComputeError: "{e}"))?;
    let rows = config.stores * config.items * config.days;
    let (mut stores, mut items, mut days, mut sales) =
        (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows));
    for store in 1..=config.stores {
        let store_scale = rng.random_range(0.6..1.6);
        for item in 1..=config.items {
            let level = 20.0 + 80.0 * rng.random::<f64>() * store_scale;
            let growth = rng.random_range(0.05..0.30); // per year
            for t in 0..config.days {
                let day = FIRST_DAY + t as i32;
                let weekday = (day + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
                let mean = level * (1.0 + growth * t as f64 / 365.0) * WEEKLY[weekday];
                let value = (mean + noise.sample(&mut rng) * mean.sqrt()).round().max(0.0);
                stores.push(format!("s{store:02}"));
                items.push(item as i64);
                days.push(day);
                sales.push(value);
            }
        }
    }
    DataFrame::new(
        rows,
        vec![
            Column::new(SERIES[0].into(), stores),
            Column::new(SERIES[1].into(), items),
            Column::new(DATE.into(), days).cast(&DataType::Date)?,
            Column::new(TARGET.into(), sales),
        ],
    )
}
