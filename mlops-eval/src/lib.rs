//! # mlops-eval
//!
//! Deciding whether a model version is good enough:
//!
//! - [`classification_metrics`] (log loss, accuracy, precision, recall, F1, ROC AUC) and
//!   [`regression_metrics`] (RMSE, MAE, MAPE, R²); [`Evaluate`] computes them on a scored frame,
//!   overall and per slice.
//! - [`ValidationSuite`]: checks (a trait, [`Check`]) run on versions tagged
//!   `validation_status=needs_tested`, writing `passed_tests` or `failed_tests` back with the
//!   failed checks named.
//! - Text-generating models (feature `genai`): [`llm`] talks to judges (an OpenAI-compatible client with
//!   retries, adaptive concurrency, usage accounting and a record/replay cache), [`judge`]
//!   holds rubric metrics graded by them, [`text`] the metrics computed from text alone,
//!   [`genai`] runs evaluations over question tables, compares versions, writes reports
//!   and gates promotions, and [`stats`] gives the intervals and tests behind them.
//! - Models in production (feature `monitor`): [`monitor`] profiles an inference table per time window and
//!   model version, measures drift against a baseline and the previous window, and raises
//!   alerts.
//!
//! ```
//! use mlops_eval::{Evaluate, Task};
//! use polars::prelude::*;
//!
//! let scored = df!("Label" => [1, 0, 1, 0], "prediction" => [0.8, 0.3, 0.6, 0.1])?;
//! let evaluation = Evaluate::new("Label", "prediction", Task::classification()).run(&scored)?;
//! assert_eq!(evaluation.overall["roc_auc"], 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Errors
//!
//! [`Error`] names the missing or mistyped column ([`Error::Core`]), the version without a
//! `validation_status` tag ([`Error::MissingTag`]), or the registry failure.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "genai")]
pub mod genai;
#[cfg(feature = "genai")]
pub mod judge;
#[cfg(feature = "genai")]
pub mod llm;
mod metrics;
#[cfg(feature = "monitor")]
pub mod monitor;
#[cfg(any(feature = "genai", feature = "monitor"))]
mod plot;
pub mod stats;
#[cfg(feature = "genai")]
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "genai")]
pub mod text;
mod validation;

pub use error::{Error, Result};
pub use metrics::{Evaluate, Evaluation, Metrics, SliceMetrics, Task, classification_metrics, regression_metrics};
pub use validation::{
    BeatsAliasCheck, Check, DescriptionCheck, FAILED_CHECKS, FAILED_TESTS, NEEDS_TESTED, Outcome, PASSED_TESTS,
    ProjectTagCheck, VALIDATION_STATUS, ValidationSuite, Verdict,
};
