//! Metrics graded by LLM judges: [`RubricMetric`] (MLflow's `make_genai_metric`, with the
//! same v1 prompt), the built-ins in [`builtin`], and the reply parser.

pub mod builtin;
mod parse;
mod prompt;
mod rubric;

pub use parse::{Verdict, parse_verdict};
pub use prompt::{fence, fenced_blocks};
pub use rubric::{
    Grade, GradingExample, GradingInput, RubricMetric, RubricMetricBuilder, SampleAggregation, ScoreScale,
};
