//! Rubric metrics graded by LLM judges, built like MLflow's `make_genai_metric`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::example::GradingExample;
use super::parse::{Verdict, parse_verdict};
use super::prompt::{Rubric, grading_prompt, repair_prompt};
use super::scale::ScoreScale;
use crate::error::{Error, Result};
use crate::llm::{ChatMessage, ChatModel, ChatParams, ChatRequest, ResponseSchema, TokenUsage};

/// How the scores of repeated samples from one judge become one score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SampleAggregation {
    /// Their mean.
    #[default]
    Mean,
    /// The most frequent score; ties go to the lowest, the cautious reading.
    Majority,
}

/// A metric graded by one or more judges against a rubric.
///
/// Built like MLflow's `make_genai_metric`, and prompting with the same v1 template, so
/// scores are comparable with MLflow's; the graded text is fenced as data (see
/// [`fenced_blocks`](super::fenced_blocks)). Every row gets a [`Grade`]; a reply that cannot
/// be read is retried once with a repair instruction and otherwise left unscored with the
/// raw reply kept.
#[derive(Debug, Clone)]
pub struct RubricMetric {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) definition: String,
    pub(crate) grading_prompt: String,
    pub(crate) examples: Vec<GradingExample>,
    pub(crate) scale: ScoreScale,
    pub(crate) grading_context: Vec<String>,
    pub(crate) include_input: bool,
    pub(crate) greater_is_better: bool,
    pub(crate) params: ChatParams,
    pub(crate) judges: Vec<Arc<dyn ChatModel>>,
    pub(crate) samples: u32,
    pub(crate) sample_aggregation: SampleAggregation,
    pub(crate) human_label: Option<String>,
}

/// Configures a [`RubricMetric`].
#[derive(Debug, Clone)]
pub struct RubricMetricBuilder {
    metric: RubricMetric,
}

/// One row's grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    /// The score, or `None` when the row is unscored.
    pub score: Option<f64>,
    /// The judges' reasoning (one line per judge for an ensemble).
    pub justification: String,
    /// Why the row is unscored.
    pub unscored_reason: Option<String>,
    /// The replies that could not be read, kept for review.
    pub raw_reply: Option<String>,
    /// Judge calls made (cache hits included).
    pub calls: u32,
    /// Tokens the judges consumed.
    pub usage: TokenUsage,
    /// What the calls cost.
    pub cost: f64,
}

impl Grade {
    pub(crate) fn unscored(reason: String, raw_reply: Option<String>) -> Self {
        Self {
            score: None,
            justification: String::new(),
            unscored_reason: Some(reason),
            raw_reply,
            calls: 0,
            usage: TokenUsage::default(),
            cost: 0.0,
        }
    }
}

/// What a row offers the judge: the input, the output, and the grading-context values.
#[derive(Debug, Clone, Copy)]
pub struct GradingInput<'a> {
    /// The question or request sent to the model.
    pub input: &'a str,
    /// The model's answer.
    pub output: &'a str,
    /// `(column, value)` of each grading-context column.
    pub context: &'a [(String, String)],
}

impl RubricMetric {
    /// Starts a metric called `name` (a column prefix in results: letters, digits, `_`).
    pub fn builder(name: impl Into<String>) -> RubricMetricBuilder {
        RubricMetricBuilder {
            metric: RubricMetric {
                name: name.into(),
                version: "v1".into(),
                definition: String::new(),
                grading_prompt: String::new(),
                examples: Vec::new(),
                scale: ScoreScale::default(),
                grading_context: Vec::new(),
                include_input: true,
                greater_is_better: true,
                params: ChatParams::judge_defaults(),
                judges: Vec::new(),
                samples: 1,
                sample_aggregation: SampleAggregation::Mean,
                human_label: None,
            },
        }
    }

    /// The metric's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The grading-context columns the judge sees.
    pub fn grading_context(&self) -> &[String] {
        &self.grading_context
    }

    /// Whether a higher score is better.
    pub fn greater_is_better(&self) -> bool {
        self.greater_is_better
    }

    /// The score scale.
    pub fn scale(&self) -> ScoreScale {
        self.scale
    }

    /// The column of human scores the judge is compared with, if any.
    pub fn human_label(&self) -> Option<&str> {
        self.human_label.as_deref()
    }

    /// The prompt the judge receives for one row.
    pub fn prompt(&self, row: GradingInput<'_>) -> String {
        let rubric = Rubric {
            name: &self.name,
            definition: &self.definition,
            grading_prompt: &self.grading_prompt,
            examples: &self.examples,
            include_input: self.include_input,
        };
        grading_prompt(&rubric, row.input, row.output, row.context)
    }

    fn request(&self, messages: Vec<ChatMessage>, sample: u32) -> ChatRequest {
        let mut params = self.params.clone();
        if self.samples > 1 {
            // Distinct samples need distinct requests: a seed per sample keeps them apart in
            // the cache and, on servers that honour seeds, reproducible.
            params.seed = Some(params.seed.unwrap_or(0).wrapping_add(u64::from(sample)));
        }
        ChatRequest::new(messages).params(params).response_schema(ResponseSchema {
            name: "grade".into(),
            schema: json!({
                "type": "object",
                "properties": { "score": { "type": "number" }, "justification": { "type": "string" } },
                "required": ["score", "justification"],
                "additionalProperties": false,
            }),
        })
    }

    /// Grades one row with every judge and sample, all at once.
    ///
    /// An ensemble refuses to report a score when any judge failed on the row: the grade
    /// is unscored and names the judge. Repeated samples of one judge are combined when
    /// more than half of them were read; otherwise the row is unscored.
    pub async fn grade(&self, row: GradingInput<'_>) -> Grade {
        let prompt = self.prompt(row);
        let samples = futures::future::join_all(self.judges.iter().map(|judge| {
            futures::future::join_all((0..self.samples).map(|i| self.sample(judge.as_ref(), &prompt, i)))
        }))
        .await;
        let mut usage = TokenUsage::default();
        let (mut calls, mut cost) = (0u32, 0.0);
        for sample in samples.iter().flatten() {
            calls += sample.calls;
            usage += sample.usage;
            cost += sample.cost;
        }
        let mut per_judge = Vec::with_capacity(self.judges.len());
        for (judge, samples) in self.judges.iter().zip(samples) {
            let (read, failed): (Vec<_>, Vec<_>) = samples.into_iter().map(|s| s.outcome).partition(Result::is_ok);
            let read: Vec<Verdict> = read.into_iter().flatten().collect();
            if read.len() * 2 <= self.samples as usize {
                let (reason, raw) = failed.into_iter().find_map(Result::err).unwrap_or_default();
                let who =
                    if self.judges.len() > 1 { format!("judge `{}`: ", judge.model_name()) } else { String::new() };
                return Grade { calls, usage, cost, ..Grade::unscored(format!("{who}{reason}"), raw) };
            }
            let scores: Vec<f64> = read.iter().map(|v| v.score).collect();
            let justification = read.into_iter().next().map(|v| v.justification).unwrap_or_default();
            per_judge.push((judge.model_name(), combine(&scores, self.sample_aggregation), justification));
        }
        let score = per_judge.iter().map(|(_, score, _)| score).sum::<f64>() / per_judge.len() as f64;
        let justification = match per_judge.as_slice() {
            [(_, _, only)] => only.clone(),
            many => many.iter().map(|(name, _, text)| format!("{name}: {text}")).collect::<Vec<_>>().join("\n"),
        };
        Grade { score: Some(score), justification, unscored_reason: None, raw_reply: None, calls, usage, cost }
    }

    async fn sample(&self, judge: &dyn ChatModel, prompt: &str, index: u32) -> Sample {
        let mut sample =
            Sample { outcome: Err((String::new(), None)), calls: 0, usage: TokenUsage::default(), cost: 0.0 };
        let mut messages = vec![ChatMessage::user(prompt)];
        let first = match judge.chat(&self.request(messages.clone(), index)).await {
            Ok(reply) => reply,
            Err(e) => {
                sample.outcome = Err((format!("the judge call failed: {e}"), None));
                return sample;
            }
        };
        sample.add(&first);
        let reason = match parse_verdict(&first.content, self.scale) {
            Ok(verdict) => {
                sample.outcome = Ok(verdict);
                return sample;
            }
            Err(reason) => reason,
        };
        messages.push(ChatMessage::assistant(first.content.clone()));
        messages.push(ChatMessage::user(repair_prompt(&self.name, self.scale, &reason)));
        let raw = match judge.chat(&self.request(messages, index)).await {
            Ok(second) => {
                sample.add(&second);
                match parse_verdict(&second.content, self.scale) {
                    Ok(verdict) => {
                        sample.outcome = Ok(verdict);
                        return sample;
                    }
                    Err(_) => format!("{}\n--- after the repair request ---\n{}", first.content, second.content),
                }
            }
            Err(e) => format!("{}\n--- the repair request failed: {e}", first.content),
        };
        let truncated = if first.truncated() { " (the reply was cut at max_tokens)" } else { "" };
        sample.outcome = Err((format!("unreadable judge reply: {reason}{truncated}"), Some(raw)));
        sample
    }
}

struct Sample {
    outcome: std::result::Result<Verdict, (String, Option<String>)>,
    calls: u32,
    usage: TokenUsage,
    cost: f64,
}

impl Sample {
    fn add(&mut self, reply: &crate::llm::ChatReply) {
        self.calls += 1;
        self.usage += reply.usage;
        self.cost += reply.cost;
    }
}

fn combine(scores: &[f64], aggregation: SampleAggregation) -> f64 {
    match aggregation {
        SampleAggregation::Mean => scores.iter().sum::<f64>() / scores.len() as f64,
        SampleAggregation::Majority => {
            let mut sorted = scores.to_vec();
            sorted.sort_by(f64::total_cmp);
            let (mut best, mut best_count) = (sorted[0], 0);
            let mut i = 0;
            while i < sorted.len() {
                let run = sorted[i..].iter().take_while(|s| **s == sorted[i]).count();
                if run > best_count {
                    (best, best_count) = (sorted[i], run);
                }
                i += run;
            }
            best
        }
    }
}

impl RubricMetricBuilder {
    /// What the metric measures.
    #[must_use]
    pub fn definition(mut self, definition: impl Into<String>) -> Self {
        self.metric.definition = definition.into();
        self
    }

    /// The rubric: what each score means.
    #[must_use]
    pub fn grading_prompt(mut self, grading_prompt: impl Into<String>) -> Self {
        self.metric.grading_prompt = grading_prompt.into();
        self
    }

    /// Adds a graded example.
    #[must_use]
    pub fn example(mut self, example: GradingExample) -> Self {
        self.metric.examples.push(example);
        self
    }

    /// The score scale (default 1-5).
    #[must_use]
    pub fn scale(mut self, min: f64, max: f64) -> Self {
        self.metric.scale = ScoreScale { min, max };
        self
    }

    /// Adds a column the judge sees as additional information (`targets`, `context`, ...).
    #[must_use]
    pub fn grading_context(mut self, column: impl Into<String>) -> Self {
        self.metric.grading_context.push(column.into());
        self
    }

    /// Whether the judge sees the input (default: yes).
    #[must_use]
    pub fn include_input(mut self, include: bool) -> Self {
        self.metric.include_input = include;
        self
    }

    /// Whether a higher score is better (default: yes).
    #[must_use]
    pub fn greater_is_better(mut self, greater_is_better: bool) -> Self {
        self.metric.greater_is_better = greater_is_better;
        self
    }

    /// The judge's sampling parameters (default: temperature 0, 200 tokens, top_p 1).
    #[must_use]
    pub fn params(mut self, params: ChatParams) -> Self {
        self.metric.params = params;
        self
    }

    /// The metric's version label (default `v1`).
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.metric.version = version.into();
        self
    }

    /// Adds a judge; with several, the metric is an ensemble scoring their mean.
    #[must_use]
    pub fn judge(mut self, judge: Arc<dyn ChatModel>) -> Self {
        self.metric.judges.push(judge);
        self
    }

    /// Asks each judge `n` times per row and combines the scores.
    #[must_use]
    pub fn samples(mut self, n: u32, aggregation: SampleAggregation) -> Self {
        self.metric.samples = n;
        self.metric.sample_aggregation = aggregation;
        self
    }

    /// Compares the judge with human scores in `column` (Cohen's kappa in the results).
    #[must_use]
    pub fn human_label(mut self, column: impl Into<String>) -> Self {
        self.metric.human_label = Some(column.into());
        self
    }

    /// The metric.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming what is wrong: a name that is not a column-safe
    /// identifier, an empty definition or rubric, no judge, an empty scale, no samples, or
    /// an example scored outside the scale.
    pub fn build(self) -> Result<RubricMetric> {
        let m = self.metric;
        let invalid = |what: String| Err(Error::InvalidArgument(format!("metric `{}`: {what}", m.name)));
        if m.name.is_empty() || !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return invalid("the name must be letters, digits and `_`".into());
        }
        if m.definition.trim().is_empty() || m.grading_prompt.trim().is_empty() {
            return invalid("a definition and a grading prompt are required".into());
        }
        if m.judges.is_empty() {
            return invalid("no judge model".into());
        }
        if m.scale.min.partial_cmp(&m.scale.max) != Some(std::cmp::Ordering::Less) {
            return invalid(format!("the scale {}-{} is empty", m.scale.min, m.scale.max));
        }
        if m.samples == 0 {
            return invalid("at least one sample per row is needed".into());
        }
        if let Some(e) = m.examples.iter().find(|e| e.score < m.scale.min || e.score > m.scale.max) {
            return invalid(format!("an example is scored {} outside the scale", e.score));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_takes_the_most_frequent_score_and_the_lowest_on_ties() {
        assert_eq!(combine(&[4.0, 2.0, 4.0], SampleAggregation::Majority), 4.0);
        assert_eq!(combine(&[5.0, 3.0], SampleAggregation::Majority), 3.0);
        assert_eq!(combine(&[5.0, 3.0], SampleAggregation::Mean), 4.0);
    }
}
