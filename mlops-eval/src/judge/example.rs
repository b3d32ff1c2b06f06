//! Graded examples shown to the judge in the prompt.

use serde::{Deserialize, Serialize};

/// A graded example shown to the judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradingExample {
    /// The input the model received (shown when the metric includes the input).
    pub input: Option<String>,
    /// The model's output.
    pub output: String,
    /// The score the example deserves.
    pub score: f64,
    /// Why.
    pub justification: String,
    /// Grading context, as `(column, value)` pairs.
    pub grading_context: Vec<(String, String)>,
}

impl GradingExample {
    /// An example of `output` for `input` deserving `score`.
    pub fn new(
        input: impl Into<String>,
        output: impl Into<String>,
        score: f64,
        justification: impl Into<String>,
    ) -> Self {
        Self {
            input: Some(input.into()),
            output: output.into(),
            score,
            justification: justification.into(),
            grading_context: Vec::new(),
        }
    }

    /// Adds a grading-context value.
    #[must_use]
    pub fn context(mut self, column: impl Into<String>, value: impl Into<String>) -> Self {
        self.grading_context.push((column.into(), value.into()));
        self
    }
}
