//! The synthetic "streaming transactions" data set, generated with a seed.
//!
//! Facts from the reference workflow's generator: customers 1234..=1260; products A, B, C
//! drawn uniformly; labels 0/1 half and half; the amount drawn from a Beta distribution whose
//! range and shape depend on (label, product). Features computed from the stream:
//! `MaxProductAmount` (the largest amount of the same product over the 3 minutes up to and
//! including the transaction), `MaxDifferenceRatio` = round((max - amount) / max, 2), and
//! `transactionCount` (the customer's transactions over the last 2 minutes, this one
//! included).

use std::collections::VecDeque;
use std::time::Duration;

use mlops_core::features::{
    FeatureLookup, FeatureSpec, FeatureTable, OnDemandFeature, SlidingWindow, WindowAggregation,
};
use polars::prelude::{Column, DataFrame, DataType, PolarsResult, TimeUnit};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Beta, Distribution};

/// First customer id.
pub const FIRST_CUSTOMER: i64 = 1234;
/// Last customer id.
pub const LAST_CUSTOMER: i64 = 1260;
/// Product names.
pub const PRODUCTS: [&str; 3] = ["Product A", "Product B", "Product C"];
/// Categorical feature columns of the transactions model.
pub const CATEGORICAL_FEATURES: [&str; 2] = ["Product", "CustomerID"];
/// Numeric feature columns of the transactions model.
pub const NUMERIC_FEATURES: [&str; 4] = ["Amount", "MaxProductAmount", "MaxDifferenceRatio", "transactionCount"];
/// Label column.
pub const LABEL: &str = "Label";
/// Event-time column.
pub const TIMESTAMP: &str = "TransactionTimestamp";
/// The columns a transaction record carries when it arrives, before any feature.
pub const RECORD_COLUMNS: [&str; 4] = ["CustomerID", TIMESTAMP, "Product", "Amount"];
/// Columns that identify a transaction (labels arrive keyed by them).
pub const KEYS: [&str; 2] = ["CustomerID", TIMESTAMP];
/// Feature table of a product's largest amount per window.
pub const PRODUCT_FEATURES: &str = "product_features";
/// Feature table of a customer's transaction count per window.
pub const CUSTOMER_FEATURES: &str = "customer_features";

const PRODUCT_WINDOW_MS: i64 = 3 * 60 * 1000;
const CUSTOMER_WINDOW_MS: i64 = 2 * 60 * 1000;
/// 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

/// (min, max, alpha, beta) of the amount in cents, by label then product.
const AMOUNT_SHAPES: [[(f64, f64, f64, f64); 3]; 2] = [
    [(1000.0, 25001.0, 1.0, 100.0), (1000.0, 5501.0, 10.0, 4.0), (10000.0, 40001.0, 3.0, 10.0)],
    [(1000.0, 25037.0, 10.0, 25.0), (1000.0, 5141.0, 8.0, 2.0), (10000.0, 41473.0, 2.0, 4.0)],
];

/// How much data to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// Number of transactions.
    pub rows: usize,
    /// Random seed: the same seed gives the same data.
    pub seed: u64,
    /// Mean milliseconds between consecutive transactions.
    pub mean_gap_ms: f64,
}

impl Config {
    /// `rows` transactions with `seed`, about ten per second.
    pub fn new(rows: usize, seed: u64) -> Self {
        Self { rows, seed, mean_gap_ms: 100.0 }
    }
}

/// Generates transactions ordered by time, with their features and labels.
///
/// Columns: `CustomerID` (i64), `TransactionTimestamp` (datetime, ms), `Product` (string),
/// `Amount`, `MaxProductAmount`, `MaxDifferenceRatio` (f64), `transactionCount` (i64),
/// `Label` (i32).
///
/// # Errors
/// Only if Polars fails to assemble the frame.
pub fn generate(config: &Config) -> PolarsResult<DataFrame> {
    let n = config.rows;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let shapes = AMOUNT_SHAPES.map(|row| {
        row.map(|(min, max, a, b)| (min, max, Beta::new(a, b).expect("reference Beta parameters are positive")))
    });

    let mut customers = Vec::with_capacity(n);
    let mut timestamps = Vec::with_capacity(n);
    let mut products = Vec::with_capacity(n);
    let mut product_index = Vec::with_capacity(n);
    let mut amounts = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    let mut now = START_MS;
    for _ in 0..n {
        // Exponential gaps of at least 1 ms keep timestamps unique and increasing.
        let gap = (-config.mean_gap_ms * (1.0 - rng.random::<f64>()).ln()).round() as i64;
        now += gap.max(1);
        let label = usize::from(rng.random_bool(0.5));
        let product = rng.random_range(0..PRODUCTS.len());
        let (min, max, beta) = &shapes[label][product];
        let cents = min + (beta.sample(&mut rng) * (max - min)).round();
        customers.push(rng.random_range(FIRST_CUSTOMER..=LAST_CUSTOMER));
        timestamps.push(now);
        products.push(PRODUCTS[product]);
        product_index.push(product);
        amounts.push(cents / 100.0);
        labels.push(label as i32);
    }

    let max_product_amount = windowed_product_max(&timestamps, &product_index, &amounts);
    let difference_ratio: Vec<f64> = amounts
        .iter()
        .zip(&max_product_amount)
        .map(|(amount, max)| ((max - amount) / max * 100.0).round() / 100.0)
        .collect();
    let transaction_count = customer_counts(&timestamps, &customers);

    let timestamps = Column::new("TransactionTimestamp".into(), timestamps)
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
    DataFrame::new(
        n,
        vec![
            Column::new("CustomerID".into(), customers),
            timestamps,
            Column::new("Product".into(), products),
            Column::new("Amount".into(), amounts),
            Column::new("MaxProductAmount".into(), max_product_amount),
            Column::new("MaxDifferenceRatio".into(), difference_ratio),
            Column::new("transactionCount".into(), transaction_count),
            Column::new(LABEL.into(), labels),
        ],
    )
}

/// The features of the transactions model as lookups: `MaxProductAmount` from 3-minute
/// windows sliding by 1 minute, `transactionCount` from 2-minute windows sliding by 1 minute
/// (0 for a customer with none), both as of each transaction's time, and the on-demand
/// `MaxDifferenceRatio`.
pub fn feature_spec() -> FeatureSpec {
    FeatureSpec::new()
        .lookup(
            FeatureLookup::new(PRODUCT_FEATURES, ["Product"])
                .timestamp_lookup_key(TIMESTAMP)
                .features(["MaxProductAmount"]),
        )
        .lookup(
            FeatureLookup::new(CUSTOMER_FEATURES, ["CustomerID"])
                .timestamp_lookup_key(TIMESTAMP)
                .features(["transactionCount"])
                .default_value("transactionCount", 0),
        )
        .on_demand(
            OnDemandFeature::new("max_difference_ratio", "MaxDifferenceRatio")
                .bind("max", "MaxProductAmount")
                .bind("value", "Amount"),
        )
}

/// The two feature tables [`feature_spec`] reads, computed from transaction records.
///
/// # Errors
/// [`mlops_core::Error`] naming a missing column or a timestamp that is not a datetime.
pub fn feature_tables(records: &DataFrame) -> mlops_core::Result<[FeatureTable; 2]> {
    let minute = Duration::from_secs(60);
    let products = SlidingWindow::new(["Product"], TIMESTAMP, 3 * minute, minute)
        .aggregate(WindowAggregation::Max { column: "Amount".into(), output: "MaxProductAmount".into() })
        .build(PRODUCT_FEATURES, records)?;
    let customers = SlidingWindow::new(["CustomerID"], TIMESTAMP, 2 * minute, minute)
        .aggregate(WindowAggregation::Count { output: "transactionCount".into() })
        .build(CUSTOMER_FEATURES, records)?;
    Ok([products, customers])
}

/// Per row, the largest amount of the same product within the window ending at the row.
/// A monotonic deque per product keeps this linear in the number of rows.
fn windowed_product_max(timestamps: &[i64], products: &[usize], amounts: &[f64]) -> Vec<f64> {
    let mut windows: Vec<VecDeque<(i64, f64)>> = vec![VecDeque::new(); PRODUCTS.len()];
    let mut out = Vec::with_capacity(timestamps.len());
    for ((&t, &p), &amount) in timestamps.iter().zip(products).zip(amounts) {
        let window = &mut windows[p];
        while window.front().is_some_and(|&(start, _)| start <= t - PRODUCT_WINDOW_MS) {
            window.pop_front();
        }
        while window.back().is_some_and(|&(_, a)| a <= amount) {
            window.pop_back();
        }
        window.push_back((t, amount));
        out.push(window.front().map_or(amount, |&(_, a)| a));
    }
    out
}

/// Per row, how many transactions the same customer made within the window ending at it.
fn customer_counts(timestamps: &[i64], customers: &[i64]) -> Vec<i64> {
    let span = (LAST_CUSTOMER - FIRST_CUSTOMER + 1) as usize;
    let mut recent: Vec<VecDeque<i64>> = vec![VecDeque::new(); span];
    timestamps
        .iter()
        .zip(customers)
        .map(|(&t, &c)| {
            let window = &mut recent[(c - FIRST_CUSTOMER) as usize];
            while window.front().is_some_and(|&start| start <= t - CUSTOMER_WINDOW_MS) {
                window.pop_front();
            }
            window.push_back(t);
            window.len() as i64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_features_hold_their_definitions() {
        let a = generate(&Config::new(5_000, 7)).unwrap();
        let b = generate(&Config::new(5_000, 7)).unwrap();
        assert!(a.equals(&b));
        let c = generate(&Config::new(5_000, 8)).unwrap();
        assert!(!a.equals(&c));

        let customers = a.column("CustomerID").unwrap().i64().unwrap();
        assert!(customers.no_null_iter().all(|c| (FIRST_CUSTOMER..=LAST_CUSTOMER).contains(&c)));
        let amount = a.column("Amount").unwrap().f64().unwrap();
        let max = a.column("MaxProductAmount").unwrap().f64().unwrap();
        let ratio = a.column("MaxDifferenceRatio").unwrap().f64().unwrap();
        for ((amount, max), ratio) in amount.no_null_iter().zip(max.no_null_iter()).zip(ratio.no_null_iter()) {
            assert!(max >= amount);
            assert!((0.0..=1.0).contains(&ratio));
        }
        let labels = a.column(LABEL).unwrap().i32().unwrap();
        let positives = labels.no_null_iter().filter(|&l| l == 1).count();
        assert!((2_300..2_700).contains(&positives), "labels are 50/50, got {positives} of 5000");
        let counts = a.column("transactionCount").unwrap().i64().unwrap();
        assert!(counts.no_null_iter().all(|c| c >= 1));
    }

    #[test]
    fn windows_expire() {
        // Product 0 at t=0 amount 50, then t=3min amount 10: the first has left the window.
        let max = windowed_product_max(&[0, PRODUCT_WINDOW_MS], &[0, 0], &[50.0, 10.0]);
        assert_eq!(max, [50.0, 10.0]);
        let counts = customer_counts(&[0, 1, CUSTOMER_WINDOW_MS + 1], &[FIRST_CUSTOMER; 3]);
        assert_eq!(counts, [1, 2, 1]);
    }
}
