//! Ready-made judge metrics. Each returns a builder, so examples, samples or more judges
//! can be added before `build`.
//!
//! The grading-context columns are those of an
//! [`EvaluationTable`](crate::genai::EvaluationTable): `reference` (the expected answer) and
//! `context` (what retrieval gave the model).

use std::sync::Arc;

use super::rubric::{RubricMetric, RubricMetricBuilder};
use crate::llm::ChatModel;

/// How correct the answer is, judged against the reference answer.
pub fn answer_correctness(judge: Arc<dyn ChatModel>) -> RubricMetricBuilder {
    RubricMetric::builder("answer_correctness")
        .definition(
            "Answer correctness is how factually accurate the output is when compared with the reference \
             answer given as additional information. It weighs whether the claims in the output agree with \
             the reference and whether the output answers what the input asked.",
        )
        .grading_prompt(
            "Answer correctness: Below are the details for the different scores:\n\
             - Score 1: the output is wrong or contradicts the reference.\n\
             - Score 2: the output shares a few facts with the reference but its main claim is wrong.\n\
             - Score 3: the output is partly correct; important facts of the reference are missing or wrong.\n\
             - Score 4: the output is correct with minor omissions or imprecisions.\n\
             - Score 5: the output is fully correct and agrees with the reference in every claim.",
        )
        .grading_context("reference")
        .judge(judge)
}

/// How close the answer's meaning is to the reference answer.
pub fn answer_similarity(judge: Arc<dyn ChatModel>) -> RubricMetricBuilder {
    RubricMetric::builder("answer_similarity")
        .definition(
            "Answer similarity is the degree of semantic similarity between the output and the reference \
             answer given as additional information; wording may differ, meaning should not.",
        )
        .grading_prompt(
            "Answer similarity: Below are the details for the different scores:\n\
             - Score 1: the output has little or no meaning in common with the reference.\n\
             - Score 2: the output shares some meaning with the reference but diverges on the main point.\n\
             - Score 3: the output covers the main point of the reference and differs on others.\n\
             - Score 4: the output means almost the same as the reference.\n\
             - Score 5: the output means the same as the reference.",
        )
        .include_input(false)
        .grading_context("reference")
        .judge(judge)
}

/// Whether every claim of the answer is supported by the retrieved context.
pub fn faithfulness(judge: Arc<dyn ChatModel>) -> RubricMetricBuilder {
    RubricMetric::builder("faithfulness")
        .definition(
            "Faithfulness is how far the claims in the output are supported by the retrieved context given \
             as additional information. Claims that the context does not support lower the score even when \
             they happen to be true.",
        )
        .grading_prompt(
            "Faithfulness: Below are the details for the different scores:\n\
             - Score 1: none of the output's claims can be found in the context.\n\
             - Score 2: some claims are supported; most are not.\n\
             - Score 3: about half of the claims are supported by the context.\n\
             - Score 4: nearly all claims are supported; one is not.\n\
             - Score 5: every claim in the output is supported by the context.",
        )
        .include_input(false)
        .grading_context("context")
        .judge(judge)
}

/// Whether the answer is relevant to the question and grounded in the retrieved context.
pub fn relevance(judge: Arc<dyn ChatModel>) -> RubricMetricBuilder {
    RubricMetric::builder("relevance")
        .definition(
            "Relevance is how appropriate and applicable the output is to the input, given the retrieved \
             context as additional information: an answer that addresses the question with what the context \
             says is relevant.",
        )
        .grading_prompt(
            "Relevance: Below are the details for the different scores:\n\
             - Score 1: the output does not mention anything about the question or the context.\n\
             - Score 2: the output touches the question or the context but is mostly beside the point.\n\
             - Score 3: the output partly addresses the question using the context.\n\
             - Score 4: the output addresses the question with the context, with some digressions.\n\
             - Score 5: the output answers exactly the question, using what the context provides.",
        )
        .grading_context("context")
        .judge(judge)
}

/// Whether the answer addresses the question, without reference or context.
pub fn answer_relevance(judge: Arc<dyn ChatModel>) -> RubricMetricBuilder {
    RubricMetric::builder("answer_relevance")
        .definition(
            "Answer relevance is how directly the output addresses the input. Completeness and focus count; \
             correctness does not.",
        )
        .grading_prompt(
            "Answer relevance: Below are the details for the different scores:\n\
             - Score 1: the output does not address the input.\n\
             - Score 2: the output addresses a side aspect of the input.\n\
             - Score 3: the output addresses the input partly or with much unrelated text.\n\
             - Score 4: the output addresses the input with a little unrelated text.\n\
             - Score 5: the output addresses the input completely and nothing else.",
        )
        .judge(judge)
}
