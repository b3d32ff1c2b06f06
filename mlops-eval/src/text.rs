//! Metrics computed from the text alone, with no model or network: token count, readability
//! grades, exact match, ROUGE and length.

mod readability;
mod rouge;
mod syllables;
mod tokens;

use serde::{Deserialize, Serialize};

pub use readability::{automated_readability_index, flesch_kincaid_grade};
pub use rouge::{rouge_l, rouge1};
pub use syllables::syllables;
pub use tokens::{MAX_WHITESPACE_RUN, token_count};

/// A heuristic metric of an answer, some against the reference answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextMetric {
    /// `cl100k_base` tokens of the answer.
    TokenCount,
    /// Automated readability index of the answer.
    AriGradeLevel,
    /// Flesch-Kincaid grade level of the answer.
    FleschKincaidGradeLevel,
    /// 1 when the answer equals the reference exactly, else 0.
    ExactMatch,
    /// ROUGE-1 F-measure against the reference.
    Rouge1,
    /// ROUGE-L F-measure against the reference.
    RougeL,
    /// Characters of the answer.
    AnswerLength,
}

impl TextMetric {
    /// Every metric.
    pub const ALL: [TextMetric; 7] = [
        Self::TokenCount,
        Self::AriGradeLevel,
        Self::FleschKincaidGradeLevel,
        Self::ExactMatch,
        Self::Rouge1,
        Self::RougeL,
        Self::AnswerLength,
    ];

    /// The metric's name, MLflow's where it has one.
    pub fn name(self) -> &'static str {
        match self {
            Self::TokenCount => "token_count",
            Self::AriGradeLevel => "ari_grade_level",
            Self::FleschKincaidGradeLevel => "flesch_kincaid_grade_level",
            Self::ExactMatch => "exact_match",
            Self::Rouge1 => "rouge1",
            Self::RougeL => "rougeL",
            Self::AnswerLength => "answer_length",
        }
    }

    /// Whether it compares with a reference answer.
    pub fn needs_reference(self) -> bool {
        matches!(self, Self::ExactMatch | Self::Rouge1 | Self::RougeL)
    }

    /// Whether a higher value is better (`None` when neither is: length, token count).
    pub fn greater_is_better(self) -> Option<bool> {
        match self {
            Self::ExactMatch | Self::Rouge1 | Self::RougeL => Some(true),
            Self::AriGradeLevel | Self::FleschKincaidGradeLevel => Some(false),
            Self::TokenCount | Self::AnswerLength => None,
        }
    }

    /// The metric of `answer`; `None` when it needs a reference and there is none.
    pub fn score(self, answer: &str, reference: Option<&str>) -> Option<f64> {
        Some(match self {
            Self::TokenCount => token_count(answer) as f64,
            Self::AriGradeLevel => automated_readability_index(answer),
            Self::FleschKincaidGradeLevel => flesch_kincaid_grade(answer),
            Self::AnswerLength => answer.chars().count() as f64,
            Self::ExactMatch => f64::from(u8::from(answer == reference?)),
            Self::Rouge1 => rouge1(answer, reference?),
            Self::RougeL => rouge_l(answer, reference?),
        })
    }
}
