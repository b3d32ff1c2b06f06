//! Watching models in production: an inference table profiled per time window and model
//! version, its distributions compared with a baseline and with the previous window, and
//! alerts where thresholds are crossed.
//!
//! [`Monitor::run`] turns an inference-table frame into a [`MonitorReport`]: a profile
//! table (counts, null rates, summary statistics, quality once labels exist), a
//! distribution table (bins and categories, the predictions' included) and a drift table
//! (PSI, Jensen-Shannon, Kolmogorov-Smirnov, Wasserstein), all Polars frames, plus the
//! [`Alert`]s its [`AlertRule`]s raised, which [`MonitorReport::send_alerts`] hands to an
//! [`AlertSink`] the app implements, and [`MonitorReport::plot`] draws a metric over time.

mod alert;
mod columns;
mod drift;
mod plot;
mod report;
mod run;
mod windows;

pub use alert::{Alert, AlertRule, AlertSink, Condition, DriftMetric, Reference};
pub use drift::{
    EMPTY_BIN_FLOOR, bin_proportions, jensen_shannon_distance, kolmogorov_smirnov, population_stability_index,
    quantile_edges, wasserstein,
};
pub use report::{MonitorReport, TABLE};
pub use run::{BOOKKEEPING_COLUMNS, Monitor, PROFILE_METRICS};
pub use windows::WINDOW_RANGE;
