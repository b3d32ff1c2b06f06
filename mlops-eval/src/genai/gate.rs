//! The promotion gate: thresholds on an evaluation, and the alias move when they pass.

use mlops_core::ModelName;
use mlops_registry::{AliasMode, Registry, RegistryExt, SetAlias};
use serde::{Deserialize, Serialize};

use super::results::GenAiResults;
use crate::error::Result;

/// One condition on a metric's mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Threshold {
    /// The mean is at least `value`.
    AtLeast {
        /// Metric name.
        metric: String,
        /// Lowest acceptable mean.
        value: f64,
    },
    /// The mean is at most `value`.
    AtMost {
        /// Metric name.
        metric: String,
        /// Highest acceptable mean.
        value: f64,
    },
    /// The mean is no worse than the champion's by more than `tolerance`, in the metric's
    /// better direction.
    NoWorseThanChampion {
        /// Metric name.
        metric: String,
        /// Allowed loss.
        tolerance: f64,
    },
}

impl Threshold {
    /// The metric the threshold reads.
    pub fn metric(&self) -> &str {
        match self {
            Self::AtLeast { metric, .. } | Self::AtMost { metric, .. } | Self::NoWorseThanChampion { metric, .. } => {
                metric
            }
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AtLeast { metric, value } => write!(f, "mean {metric} >= {value}"),
            Self::AtMost { metric, value } => write!(f, "mean {metric} <= {value}"),
            Self::NoWorseThanChampion { metric, tolerance } => {
                write!(f, "mean {metric} no worse than the champion's (tolerance {tolerance})")
            }
        }
    }
}

/// The gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Every threshold passed.
    Passed,
    /// A threshold failed.
    Failed,
    /// The evaluation cannot decide: a metric is missing, has too many unscored rows, or
    /// the champion's results are needed and absent.
    Incomplete,
}

/// One threshold checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateCheck {
    /// The threshold.
    pub threshold: Threshold,
    /// The candidate's mean.
    pub observed: Option<f64>,
    /// The bound it was held to.
    pub required: Option<f64>,
    /// Whether it passed (`None` when it could not be checked).
    pub passed: Option<bool>,
    /// Why it failed or could not be checked.
    pub reason: Option<String>,
}

/// What the gate decided and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The verdict.
    pub status: GateStatus,
    /// Every threshold.
    pub checks: Vec<GateCheck>,
    /// The alias move, when the gate passed and moved it: `(alias, version)`.
    pub moved: Option<(String, u64)>,
}

/// Thresholds a candidate's evaluation must meet before an alias moves to it.
///
/// ```
/// # use async_trait::async_trait;
/// # use mlops_eval::genai::{Answer, AnswerModel, BoxError, EvaluationTable, GenAiEvaluation, Question};
/// # use mlops_eval::text::TextMetric;
/// # use polars::prelude::*;
/// #
/// # /// The model under test: here, one that answers from a fixed list.
/// # struct Canned;
/// #
/// # #[async_trait]
/// # impl AnswerModel for Canned {
/// #     fn name(&self) -> &str {
/// #         "canned"
/// #     }
/// #     async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
/// #         Ok(Answer::text(if question.id == "q1" { "An ML platform." } else { "A pointer." }))
/// #     }
/// # }
/// #
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let table = EvaluationTable::new(df!(
/// #     "id" => ["q1", "q2"],
/// #     "question" => ["What is MLflow?", "What is an alias?"],
/// #     "reference" => ["An ML platform.", "A named pointer to a version."],
/// # )?)?;
/// # let results = GenAiEvaluation::new().text(TextMetric::ExactMatch).text(TextMetric::Rouge1).run(&table, &Canned).await?;
/// use mlops_eval::genai::{GateStatus, PromotionGate, Threshold};
///
/// // `results`: a candidate's run of `GenAiEvaluation` (exact match 0.5, as in its example).
/// let strict = PromotionGate::new().threshold(Threshold::AtLeast { metric: "exact_match".into(), value: 0.9 });
/// let report = strict.check(&results, None);
/// assert_eq!(report.status, GateStatus::Failed);
/// assert_eq!(report.checks[0].observed, Some(0.5));
///
/// let lenient = PromotionGate::new().threshold(Threshold::AtLeast { metric: "exact_match".into(), value: 0.5 });
/// assert_eq!(lenient.check(&results, None).status, GateStatus::Passed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionGate {
    thresholds: Vec<Threshold>,
    max_unscored_share: f64,
}

impl Default for PromotionGate {
    fn default() -> Self {
        Self::new()
    }
}

impl PromotionGate {
    /// A gate with no thresholds yet that tolerates 5% unscored rows per metric.
    pub fn new() -> Self {
        Self { thresholds: Vec::new(), max_unscored_share: 0.05 }
    }

    /// Adds a threshold.
    #[must_use]
    pub fn threshold(mut self, threshold: Threshold) -> Self {
        self.thresholds.push(threshold);
        self
    }

    /// Largest share of unscored rows a metric may have before the gate is incomplete.
    #[must_use]
    pub fn max_unscored_share(mut self, share: f64) -> Self {
        self.max_unscored_share = share;
        self
    }

    /// Checks `candidate` (and `champion`, for relative thresholds) without touching any
    /// registry.
    pub fn check(&self, candidate: &GenAiResults, champion: Option<&GenAiResults>) -> GateReport {
        let checks: Vec<GateCheck> = self.thresholds.iter().map(|t| self.check_one(t, candidate, champion)).collect();
        let status = if self.thresholds.is_empty() || checks.iter().any(|c| c.passed.is_none()) {
            GateStatus::Incomplete
        } else if checks.iter().all(|c| c.passed == Some(true)) {
            GateStatus::Passed
        } else {
            GateStatus::Failed
        };
        GateReport { status, checks, moved: None }
    }

    fn check_one(&self, threshold: &Threshold, candidate: &GenAiResults, champion: Option<&GenAiResults>) -> GateCheck {
        let undecided = |reason: String| GateCheck {
            threshold: threshold.clone(),
            observed: None,
            required: None,
            passed: None,
            reason: Some(reason),
        };
        let name = threshold.metric();
        let Some(metric) = candidate.metric(name) else {
            return undecided(format!("the evaluation has no metric `{name}`"));
        };
        let rows = metric.scored.saturating_add(metric.unscored);
        let share = if rows == 0 { 1.0 } else { metric.unscored as f64 / rows as f64 };
        if share > self.max_unscored_share {
            return undecided(format!(
                "`{name}` has {} of {rows} rows unscored ({:.1}%, at most {:.1}% allowed)",
                metric.unscored,
                share * 100.0,
                self.max_unscored_share * 100.0
            ));
        }
        let Some(observed) = metric.summary.mean else {
            return undecided(format!("`{name}` has no scored row"));
        };
        let (required, passed) = match threshold {
            Threshold::AtLeast { value, .. } => (*value, observed >= *value),
            Threshold::AtMost { value, .. } => (*value, observed <= *value),
            Threshold::NoWorseThanChampion { tolerance, .. } => {
                let Some(champion) = champion else {
                    return undecided(format!("`{name}` is compared with the champion, whose results are missing"));
                };
                let Some(theirs) = champion.metric(name).and_then(|m| m.summary.mean) else {
                    return undecided(format!("the champion's results have no scored `{name}`"));
                };
                if metric.greater_is_better == Some(false) {
                    (theirs + tolerance, observed <= theirs + tolerance)
                } else {
                    (theirs - tolerance, observed >= theirs - tolerance)
                }
            }
        };
        let reason = (!passed).then(|| format!("`{name}` mean {observed:.4} against a bound of {required:.4}"));
        GateCheck {
            threshold: threshold.clone(),
            observed: Some(observed),
            required: Some(required),
            passed: Some(passed),
            reason,
        }
    }

    /// Checks `candidate`, the evaluation of `version`, and when every threshold passes
    /// records the evaluation as tags on the version (`eval.gate`, `eval.model`,
    /// `eval.rows`, and per metric `eval.<metric>.mean`, `.ci_low`, `.ci_high`,
    /// `.unscored`) and moves `alias` to it with compare-and-swap: from `champion`'s
    /// version when given (failing with the registry's precondition error if another
    /// process moved the alias meanwhile), or creating the alias. A failed or incomplete
    /// gate writes nothing.
    ///
    /// # Errors
    /// Registry failures, including a lost compare-and-swap.
    pub async fn promote(
        &self,
        registry: &dyn Registry,
        model: &ModelName,
        alias: &str,
        version: u64,
        candidate: &GenAiResults,
        champion: Option<(u64, &GenAiResults)>,
    ) -> Result<GateReport> {
        let mut report = self.check(candidate, champion.map(|c| c.1));
        if report.status != GateStatus::Passed {
            return Ok(report);
        }
        let mut tags = vec![
            ("eval.gate".to_owned(), "passed".to_owned()),
            ("eval.model".to_owned(), candidate.summary.model.clone()),
            ("eval.rows".to_owned(), candidate.summary.rows.to_string()),
        ];
        for metric in &candidate.summary.metrics {
            let summary = &metric.summary;
            for (part, value) in [("mean", summary.mean), ("ci_low", summary.ci_low), ("ci_high", summary.ci_high)] {
                if let Some(value) = value {
                    tags.push((format!("eval.{}.{part}", metric.name), format!("{value:.6}")));
                }
            }
            tags.push((format!("eval.{}.unscored", metric.name), metric.unscored.to_string()));
        }
        for (key, value) in &tags {
            registry.set_version_tag(model, version, key, value).await?;
        }
        let mode = match champion {
            Some((current, _)) => AliasMode::Update(current),
            None => AliasMode::Create,
        };
        registry.set_alias(SetAlias::new(model.clone(), alias, version).mode(mode)).await?;
        report.moved = Some((alias.to_owned(), version));
        Ok(report)
    }
}
