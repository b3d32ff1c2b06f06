//! Evaluating text-generating models: an [`EvaluationTable`] of questions, an
//! [`AnswerModel`] under test, judge and text metrics run by [`GenAiEvaluation`], and
//! [`GenAiResults`] with a row per question and summaries with confidence intervals.

mod compare;
mod gate;
mod model;
mod plots;
mod report;
mod results;
mod run;
mod table;

pub use compare::{PairedComparison, PairwiseJudge, PairwiseResults, PairwiseRow, Preference, compare_runs};
pub use gate::{GateCheck, GateReport, GateStatus, PromotionGate, Threshold};
pub use model::{Answer, AnswerModel, BoxError, ChatAnswerModel, Question};
pub use report::{Report, ReportFiles};
pub use results::{
    GenAiResults, JudgeUsage, MetricKind, MetricSummary, ROWS_FILE, RunSummary, SUMMARY_FILE, judge_column,
};
pub use run::{GenAiEvaluation, Progress};
pub use table::{CONTEXT, EvaluationTable, ID, QUESTION, REFERENCE};
