//! Running an evaluation: the model answers every question, then every metric grades it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use polars::prelude::{Column, DataFrame, DataType, NamedFrom, Series};

use super::model::{Answer, AnswerModel, Question};
use super::results::{GenAiResults, JudgeUsage, MetricKind, MetricSummary, RunSummary, judge_column};
use super::table::{CONTEXT, EvaluationTable, ID, QUESTION, REFERENCE};
use crate::error::{Error, Result};
use crate::judge::{Grade, GradingInput, RubricMetric};
use crate::llm::TokenUsage;
use crate::stats::{Bootstrap, cohen_kappa, summarize};
use crate::text::TextMetric;

/// Where a running evaluation stands, passed to the progress callback after each row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Rows finished.
    pub done: usize,
    /// Rows in the table.
    pub total: usize,
    /// Grades left unscored so far (over all judge metrics).
    pub unscored: usize,
    /// Rows whose model call failed so far.
    pub model_errors: usize,
    /// Time since the run started.
    pub elapsed: Duration,
}

type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// An evaluation of text-generating models: judge metrics and text metrics over an
/// [`EvaluationTable`].
///
/// Rows run concurrently (`concurrency` at a time; each judge client has its own limit as
/// well). Dropping the future of [`GenAiEvaluation::run`] cancels the run; with the judges
/// (and the model, when it is a chat model) behind a [`CachedChat`](crate::llm::CachedChat),
/// running it again replays every call that had finished, so the run resumes where it
/// stopped.
///
/// Metrics computed from text alone need no judge:
///
/// ```
/// use async_trait::async_trait;
/// use mlops_eval::genai::{Answer, AnswerModel, BoxError, EvaluationTable, GenAiEvaluation, Question};
/// use mlops_eval::text::TextMetric;
/// use polars::prelude::*;
///
/// /// The model under test: here, one that answers from a fixed list.
/// struct Canned;
///
/// #[async_trait]
/// impl AnswerModel for Canned {
///     fn name(&self) -> &str {
///         "canned"
///     }
///     async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
///         Ok(Answer::text(if question.id == "q1" { "An ML platform." } else { "A pointer." }))
///     }
/// }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let table = EvaluationTable::new(df!(
///     "id" => ["q1", "q2"],
///     "question" => ["What is MLflow?", "What is an alias?"],
///     "reference" => ["An ML platform.", "A named pointer to a version."],
/// )?)?;
/// let results = GenAiEvaluation::new().text(TextMetric::ExactMatch).text(TextMetric::Rouge1).run(&table, &Canned).await?;
/// assert_eq!(results.metric("exact_match").and_then(|m| m.summary.mean), Some(0.5));
/// assert_eq!(results.rows.height(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct GenAiEvaluation {
    judge_metrics: Vec<RubricMetric>,
    text_metrics: Vec<TextMetric>,
    concurrency: usize,
    bootstrap: Bootstrap,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for GenAiEvaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenAiEvaluation")
            .field("judge_metrics", &self.judge_metrics.iter().map(RubricMetric::name).collect::<Vec<_>>())
            .field("text_metrics", &self.text_metrics)
            .field("concurrency", &self.concurrency)
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl Default for GenAiEvaluation {
    fn default() -> Self {
        Self::new()
    }
}

struct RowOutcome {
    answer: std::result::Result<Answer, String>,
    latency: Duration,
    grades: Vec<Grade>,
    text_scores: Vec<Option<f64>>,
}

impl GenAiEvaluation {
    /// An evaluation with no metrics yet, 16 rows at a time.
    pub fn new() -> Self {
        Self {
            judge_metrics: Vec::new(),
            text_metrics: Vec::new(),
            concurrency: 16,
            bootstrap: Bootstrap::default(),
            progress: None,
        }
    }

    /// Adds a judge metric.
    #[must_use]
    pub fn judge(mut self, metric: RubricMetric) -> Self {
        self.judge_metrics.push(metric);
        self
    }

    /// Adds a text metric.
    #[must_use]
    pub fn text(mut self, metric: TextMetric) -> Self {
        self.text_metrics.push(metric);
        self
    }

    /// Rows in flight at once (at least 1).
    #[must_use]
    pub fn concurrency(mut self, rows: usize) -> Self {
        self.concurrency = rows.max(1);
        self
    }

    /// How confidence intervals are drawn.
    #[must_use]
    pub fn bootstrap(mut self, bootstrap: Bootstrap) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Calls `progress` after every finished row.
    #[must_use]
    pub fn on_progress(mut self, progress: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }

    fn check(&self, table: &EvaluationTable) -> Result<()> {
        let frame = table.frame();
        if self.judge_metrics.is_empty() && self.text_metrics.is_empty() {
            return Err(Error::InvalidArgument("the evaluation has no metric".into()));
        }
        let mut names: Vec<&str> = self.judge_metrics.iter().map(RubricMetric::name).collect();
        names.extend(self.text_metrics.iter().map(|m| m.name()));
        let mut sorted = names.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::InvalidArgument(format!("metric `{}` is added twice", pair[0])));
        }
        if let Some(metric) = self.text_metrics.iter().find(|m| m.needs_reference())
            && frame.column(REFERENCE).is_err()
        {
            return Err(Error::InvalidArgument(format!(
                "metric `{}` compares with the reference answer, and the table has no `{REFERENCE}` column",
                metric.name()
            )));
        }
        for metric in &self.judge_metrics {
            // `context` may come from the model's retrieval instead of the table.
            for column in metric.grading_context().iter().filter(|c| c.as_str() != CONTEXT) {
                if frame.column(column).is_err() {
                    return Err(Error::InvalidArgument(format!(
                        "metric `{}` grades with column `{column}`, which the table lacks",
                        metric.name()
                    )));
                }
            }
            if let Some(label) = metric.human_label() {
                let column = frame.column(label).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "metric `{}`: human label column `{label}` is missing",
                        metric.name()
                    ))
                })?;
                if !column.dtype().is_primitive_numeric() {
                    return Err(mlops_core::Error::Schema {
                        column: label.to_owned(),
                        expected: "numeric human scores".into(),
                        found: column.dtype().to_string(),
                    }
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Answers and grades every question of `table` with `model`.
    ///
    /// Nothing is dropped: a question whose model call failed keeps its row, with the error
    /// and unscored metrics.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] before any call when a metric needs a column the table
    /// lacks, when two metrics share a name, or when there is no metric.
    pub async fn run(&self, table: &EvaluationTable, model: &dyn AnswerModel) -> Result<GenAiResults> {
        self.check(table)?;
        let started_at = Utc::now();
        let started = Instant::now();
        let frame = table.frame();
        let text = |name: &str| -> Result<Option<Vec<Option<String>>>> {
            match frame.column(name) {
                Ok(column) => {
                    let column = column.cast(&DataType::String)?;
                    Ok(Some(column.str()?.iter().map(|v| v.map(str::to_owned)).collect()))
                }
                Err(_) => Ok(None),
            }
        };
        let ids = text(ID)?.unwrap_or_default();
        let questions = text(QUESTION)?.unwrap_or_default();
        let references = text(REFERENCE)?;
        let contexts = text(CONTEXT)?;
        let mut extra_columns: Vec<String> = self
            .judge_metrics
            .iter()
            .flat_map(|m| m.grading_context().iter().cloned())
            // `reference` and `context` are read above.
            .filter(|c| c != CONTEXT && c != REFERENCE)
            .collect();
        extra_columns.sort();
        extra_columns.dedup();
        let extras: Vec<(String, Vec<Option<String>>)> =
            extra_columns.into_iter().map(|c| Ok((c.clone(), text(&c)?.unwrap_or_default()))).collect::<Result<_>>()?;

        let total = frame.height();
        let mut outcomes: Vec<Option<RowOutcome>> = (0..total).map(|_| None).collect();
        let (mut done, mut unscored, mut model_errors) = (0, 0, 0);
        let mut rows = futures::stream::iter(0..total)
            .map(|i| {
                let id = ids[i].as_deref().unwrap_or_default();
                let question = questions[i].as_deref().unwrap_or_default();
                let context_of = |name: &str| -> Option<&str> {
                    if name == REFERENCE {
                        return references.as_ref().and_then(|r| r[i].as_deref());
                    }
                    if name == CONTEXT {
                        return contexts.as_ref().and_then(|c| c[i].as_deref());
                    }
                    extras.iter().find(|(c, _)| c == name).and_then(|(_, values)| values[i].as_deref())
                };
                let reference = references.as_ref().and_then(|r| r[i].as_deref());
                let table_context: Vec<(String, Option<String>)> = self
                    .judge_metrics
                    .iter()
                    .flat_map(|m| m.grading_context().iter())
                    .map(|c| (c.clone(), context_of(c).map(str::to_owned)))
                    .collect();
                async move {
                    let outcome = self.row(model, Question { id, text: question }, reference, &table_context).await;
                    (i, outcome)
                }
            })
            .buffer_unordered(self.concurrency);
        while let Some((i, outcome)) = rows.next().await {
            done += 1;
            unscored += outcome.grades.iter().filter(|g| g.score.is_none()).count();
            model_errors += usize::from(outcome.answer.is_err());
            outcomes[i] = Some(outcome);
            if let Some(progress) = &self.progress {
                progress(&Progress { done, total, unscored, model_errors, elapsed: started.elapsed() });
            }
        }
        drop(rows);
        let outcomes: Vec<RowOutcome> = outcomes.into_iter().map(|o| o.expect("every row finished")).collect();
        self.assemble(table, model.name(), outcomes, started_at, started.elapsed())
    }

    async fn row(
        &self,
        model: &dyn AnswerModel,
        question: Question<'_>,
        reference: Option<&str>,
        table_context: &[(String, Option<String>)],
    ) -> RowOutcome {
        let started = Instant::now();
        let answer = model.answer(question).await.map_err(|e| e.to_string());
        let latency = started.elapsed();
        let Ok(answered) = &answer else {
            let reason = format!("the model failed: {}", answer.as_ref().err().map(String::as_str).unwrap_or_default());
            let grades = self.judge_metrics.iter().map(|_| Grade::unscored(reason.clone(), None)).collect();
            return RowOutcome { answer, latency, grades, text_scores: vec![None; self.text_metrics.len()] };
        };
        let grades = futures::future::join_all(self.judge_metrics.iter().map(|metric| {
            let mut context = Vec::with_capacity(metric.grading_context().len());
            let mut missing = None;
            for column in metric.grading_context() {
                let value = if column == CONTEXT {
                    answered
                        .retrieved_context
                        .clone()
                        .or_else(|| table_context.iter().find(|(c, _)| c == column).and_then(|(_, v)| v.clone()))
                } else {
                    table_context.iter().find(|(c, _)| c == column).and_then(|(_, v)| v.clone())
                };
                match value {
                    Some(value) => context.push((column.clone(), value)),
                    None => missing = Some(column.clone()),
                }
            }
            async move {
                if let Some(column) = missing {
                    return Grade::unscored(format!("no `{column}` for this row"), None);
                }
                metric.grade(GradingInput { input: question.text, output: &answered.text, context: &context }).await
            }
        }))
        .await;
        let text_scores = self.text_metrics.iter().map(|m| m.score(&answered.text, reference)).collect();
        RowOutcome { answer, latency, grades, text_scores }
    }

    fn assemble(
        &self,
        table: &EvaluationTable,
        model: &str,
        outcomes: Vec<RowOutcome>,
        started_at: chrono::DateTime<Utc>,
        duration: Duration,
    ) -> Result<GenAiResults> {
        let frame = table.frame();
        let mut columns: Vec<Column> = Vec::new();
        for name in [ID, QUESTION, REFERENCE, CONTEXT] {
            if let Ok(column) = frame.column(name) {
                columns.push(column.clone());
            }
        }
        let answers: Vec<Option<&str>> =
            outcomes.iter().map(|o| o.answer.as_ref().ok().map(|a| a.text.as_str())).collect();
        columns.push(Series::new("answer".into(), answers).into());
        let retrieved: Vec<Option<&str>> =
            outcomes.iter().map(|o| o.answer.as_ref().ok().and_then(|a| a.retrieved_context.as_deref())).collect();
        if retrieved.iter().any(Option::is_some) {
            columns.push(Series::new("retrieved_context".into(), retrieved).into());
        }
        let errors: Vec<Option<&str>> = outcomes.iter().map(|o| o.answer.as_ref().err().map(String::as_str)).collect();
        columns.push(Series::new("model_error".into(), errors).into());
        let latencies: Vec<f64> = outcomes.iter().map(|o| o.latency.as_secs_f64() * 1000.0).collect();
        columns.push(Series::new("latency_ms".into(), latencies.clone()).into());
        let usage = |f: fn(&TokenUsage) -> u64| -> Vec<Option<u64>> {
            outcomes.iter().map(|o| o.answer.as_ref().ok().map(|a| f(&a.usage))).collect()
        };
        columns.push(Series::new("answer_prompt_tokens".into(), usage(|u| u.prompt_tokens)).into());
        columns.push(Series::new("answer_completion_tokens".into(), usage(|u| u.completion_tokens)).into());

        let mut metrics = Vec::new();
        let mut judge_usage = JudgeUsage::default();
        for (m, metric) in self.judge_metrics.iter().enumerate() {
            let grades: Vec<&Grade> = outcomes.iter().map(|o| &o.grades[m]).collect();
            let scores: Vec<Option<f64>> = grades.iter().map(|g| g.score).collect();
            let column = |part: &str| judge_column(metric.name(), &metric.version, part);
            columns.push(Series::new(column("score").into(), scores.clone()).into());
            let texts = |f: fn(&Grade) -> Option<&str>| -> Vec<Option<&str>> { grades.iter().map(|g| f(g)).collect() };
            columns.push(Series::new(column("justification").into(), texts(|g| Some(g.justification.as_str()))).into());
            columns.push(Series::new(column("unscored_reason").into(), texts(|g| g.unscored_reason.as_deref())).into());
            columns.push(Series::new(column("raw_reply").into(), texts(|g| g.raw_reply.as_deref())).into());
            for grade in &grades {
                judge_usage.calls += u64::from(grade.calls);
                judge_usage.usage += grade.usage;
                judge_usage.cost += grade.cost;
            }
            let scored: Vec<f64> = scores.iter().flatten().copied().collect();
            let kappa = metric.human_label().map(|label| -> Result<(Option<f64>, usize)> {
                let human = frame.column(label)?.cast(&DataType::Float64)?;
                let (judge, human): (Vec<i64>, Vec<i64>) = scores
                    .iter()
                    .zip(human.f64()?.iter())
                    .filter_map(|(j, h)| Some((j.as_ref()?.round() as i64, h?.round() as i64)))
                    .unzip();
                Ok((cohen_kappa(&judge, &human), judge.len()))
            });
            let (kappa, kappa_pairs) = match kappa.transpose()? {
                Some((kappa, pairs)) => (kappa, Some(pairs)),
                None => (None, None),
            };
            metrics.push(MetricSummary {
                name: metric.name().to_owned(),
                column: column("score"),
                kind: MetricKind::Judge,
                greater_is_better: Some(metric.greater_is_better()),
                scored: scored.len(),
                unscored: scores.len() - scored.len(),
                summary: summarize(&scored, self.bootstrap),
                kappa,
                kappa_pairs,
            });
        }
        for (m, metric) in self.text_metrics.iter().enumerate() {
            let scores: Vec<Option<f64>> = outcomes.iter().map(|o| o.text_scores[m]).collect();
            columns.push(Series::new(metric.name().into(), scores.clone()).into());
            let scored: Vec<f64> = scores.iter().flatten().copied().collect();
            metrics.push(MetricSummary {
                name: metric.name().to_owned(),
                column: metric.name().to_owned(),
                kind: MetricKind::Text,
                greater_is_better: metric.greater_is_better(),
                scored: scored.len(),
                unscored: scores.len() - scored.len(),
                summary: summarize(&scored, self.bootstrap),
                kappa: None,
                kappa_pairs: None,
            });
        }
        let rows = DataFrame::new(outcomes.len(), columns)?;
        let mut answer_usage = TokenUsage::default();
        for outcome in &outcomes {
            if let Ok(answer) = &outcome.answer {
                answer_usage += answer.usage;
            }
        }
        let summary = RunSummary {
            model: model.to_owned(),
            rows: outcomes.len(),
            model_errors: outcomes.iter().filter(|o| o.answer.is_err()).count(),
            started_at,
            duration_secs: duration.as_secs_f64(),
            answer_latency_ms: summarize(&latencies, self.bootstrap),
            answer_usage,
            judge_usage,
            metrics,
        };
        Ok(GenAiResults { rows, summary })
    }
}
