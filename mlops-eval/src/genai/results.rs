//! What an evaluation produced: a row per question and a summary per metric, saved as
//! Parquet and JSON so runs can be compared later.

use std::path::Path;

use chrono::{DateTime, Utc};
use mlops_core::{read_parquet, write_parquet};
use polars::prelude::{DataFrame, DataType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::llm::TokenUsage;
use crate::stats::Summary;

/// File name of the per-row results in a saved run.
pub const ROWS_FILE: &str = "rows.parquet";
/// File name of the summary in a saved run.
pub const SUMMARY_FILE: &str = "summary.json";

/// The results column of a judge metric's `part` (`score`, `justification`,
/// `unscored_reason`, `raw_reply`), named as MLflow names them: `<metric>/<version>/<part>`.
pub fn judge_column(metric: &str, version: &str, part: &str) -> String {
    format!("{metric}/{version}/{part}")
}

/// Whether a metric is graded by judges or computed from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A [`RubricMetric`](crate::judge::RubricMetric).
    Judge,
    /// A [`TextMetric`](crate::text::TextMetric).
    Text,
}

/// One metric over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// The metric's name.
    pub name: String,
    /// The column of its per-row scores.
    pub column: String,
    /// Judge or text metric.
    pub kind: MetricKind,
    /// Whether higher is better (`None` for descriptive metrics such as length).
    pub greater_is_better: Option<bool>,
    /// Rows with a score.
    pub scored: usize,
    /// Rows without one (unreadable judge replies, failed calls, failed model calls).
    pub unscored: usize,
    /// Mean, variance, p90 and the bootstrap interval of the mean, over scored rows.
    #[serde(flatten)]
    pub summary: Summary,
    /// Cohen's kappa between the judge's rounded scores and the human labels.
    pub kappa: Option<f64>,
    /// Rows with both a judge score and a human label.
    pub kappa_pairs: Option<usize>,
}

/// Calls, tokens and cost of the judges over a run. Replies served from a cache count as
/// calls with their recorded tokens and no cost; the client's
/// [`UsageMeter`](crate::llm::UsageMeter) counts only what reached the judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeUsage {
    /// Judge calls, repair requests included.
    pub calls: u64,
    /// Tokens.
    pub usage: TokenUsage,
    /// Cost.
    pub cost: f64,
}

/// The run as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The model under test.
    pub model: String,
    /// Questions evaluated.
    pub rows: usize,
    /// Questions whose model call failed.
    pub model_errors: usize,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_secs: f64,
    /// The model's answer latency in milliseconds.
    pub answer_latency_ms: Summary,
    /// Tokens the model reported.
    pub answer_usage: TokenUsage,
    /// What the judges consumed.
    pub judge_usage: JudgeUsage,
    /// Every metric, judge metrics first.
    pub metrics: Vec<MetricSummary>,
}

/// An evaluation's results.
#[derive(Debug, Clone)]
pub struct GenAiResults {
    /// One row per question: the table's columns, the answer, latency, tokens, and per
    /// metric its score (and for judge metrics the justification, the reason a row is
    /// unscored and the raw reply).
    pub rows: DataFrame,
    /// Aggregates.
    pub summary: RunSummary,
}

impl GenAiResults {
    /// The summary of metric `name`.
    pub fn metric(&self, name: &str) -> Option<&MetricSummary> {
        self.summary.metrics.iter().find(|m| m.name == name)
    }

    /// Per-row scores of metric `name`, with the question ids.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming an unknown metric.
    pub fn scores(&self, name: &str) -> Result<Vec<(String, Option<f64>)>> {
        let metric =
            self.metric(name).ok_or_else(|| Error::InvalidArgument(format!("the results have no metric `{name}`")))?;
        let ids = self.rows.column(super::table::ID)?.str()?;
        let scores = self.rows.column(&metric.column)?.cast(&DataType::Float64)?;
        Ok(ids.iter().zip(scores.f64()?.iter()).map(|(id, score)| (id.unwrap_or_default().to_owned(), score)).collect())
    }

    /// Saves the run under `dir` (created when missing): [`ROWS_FILE`] and
    /// [`SUMMARY_FILE`], each written aside and renamed into place.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |operation, path: &Path, source| {
            Error::Core(mlops_core::Error::Io { operation, path: path.into(), source })
        };
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        write_parquet(&mut self.rows.clone(), &dir.join(ROWS_FILE))?;
        let summary = dir.join(SUMMARY_FILE);
        let staging = dir.join(format!(".{SUMMARY_FILE}.partial"));
        let json = serde_json::to_vec_pretty(&self.summary)
            .map_err(|source| mlops_core::Error::Json { what: "the evaluation summary".into(), source })?;
        std::fs::write(&staging, json).map_err(|e| io("writing", &staging, e))?;
        std::fs::rename(&staging, &summary).map_err(|e| io("renaming into place", &summary, e))
    }

    /// Reads a run saved with [`GenAiResults::save`].
    ///
    /// # Errors
    /// When a file is missing or unreadable.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SUMMARY_FILE);
        let bytes = std::fs::read(&path).map_err(|source| {
            Error::Core(mlops_core::Error::Io { operation: "reading", path: path.clone(), source })
        })?;
        let summary = serde_json::from_slice(&bytes).map_err(|source| mlops_core::Error::Json {
            what: format!("evaluation summary `{}`", path.display()),
            source,
        })?;
        Ok(Self { rows: read_parquet(&dir.join(ROWS_FILE))?, summary })
    }
}
