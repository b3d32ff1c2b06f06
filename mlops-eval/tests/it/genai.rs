//! Whole evaluations against the scripted judge over HTTP: per-row results, aggregates,
//! unscored rows, model failures, human agreement, saving, appending, cancelling and
//! resuming from the cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mlops_eval::genai::{
    Answer, AnswerModel, BoxError, EvaluationTable, GenAiEvaluation, GenAiResults, MetricKind, Question, judge_column,
};
use mlops_eval::judge::builtin;
use mlops_eval::llm::{CachedChat, ChatModel, OpenAiChat, Pricing, TokenUsage};
use mlops_eval::stats::Bootstrap;
use mlops_eval::testing::{JudgeServer, JudgeServerConfig};
use mlops_eval::text::TextMetric;
use polars::prelude::*;

/// Answers from a script; `None` fails the call.
struct Scripted {
    answers: HashMap<&'static str, Option<&'static str>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(answers: &[(&'static str, Option<&'static str>)]) -> Self {
        Self { answers: answers.iter().copied().collect(), calls: AtomicUsize::new(0) }
    }
}

#[async_trait]
impl AnswerModel for Scripted {
    fn name(&self) -> &str {
        "scripted-v1"
    }

    async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match self.answers.get(question.id).copied().flatten() {
            Some(text) => Ok(Answer {
                text: text.to_owned(),
                retrieved_context: Some(format!("Retrieved for {}: {text}", question.id)),
                usage: TokenUsage { prompt_tokens: 10, completion_tokens: 5 },
            }),
            None => Err(format!("no answer scripted for `{}`", question.id).into()),
        }
    }
}

fn table() -> EvaluationTable {
    EvaluationTable::new(
        df!(
            "id" => ["q1", "q2", "q3", "q4", "q5"],
            "question" => ["Capital of France?", "Capital of Italy?", "Capital of Spain?", "Largest ocean?", "Boiling point?"],
            "reference" => [
                "Paris is the capital of France.",
                "Rome is the capital of Italy.",
                "Madrid is the capital of Spain.",
                "The Pacific is the largest ocean.",
                "Water boils at 100 degrees Celsius.",
            ],
            "human_correctness" => [5i64, 1, 3, 4, 5],
        )
        .unwrap(),
    )
    .unwrap()
}

fn script() -> Scripted {
    Scripted::new(&[
        ("q1", Some("Paris is the capital of France.")),
        ("q2", Some("Milan, probably.")),
        ("q3", Some("Madrid is the capital. [[judge:garbage]]")),
        ("q4", Some("The Pacific is the largest ocean.")),
        ("q5", None),
    ])
}

fn judge(server: &JudgeServer) -> Arc<OpenAiChat> {
    Arc::new(OpenAiChat::builder(server.base_url(), "judge").pricing(Pricing::per_million(3.0, 15.0)).build().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluates_every_row_and_keeps_what_could_not_be_scored() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let judge = judge(&server);
    let evaluation = GenAiEvaluation::new()
        .judge(builtin::answer_correctness(judge.clone()).human_label("human_correctness").build().unwrap())
        .judge(builtin::faithfulness(judge.clone()).build().unwrap())
        .text(TextMetric::ExactMatch)
        .text(TextMetric::Rouge1)
        .text(TextMetric::TokenCount)
        .bootstrap(Bootstrap { resamples: 500, ..Bootstrap::default() });
    let model = script();
    let results = evaluation.run(&table(), &model).await.unwrap();
    let rows = &results.rows;
    assert_eq!(rows.height(), 5, "no row is dropped");

    let correctness = results.scores("answer_correctness").unwrap();
    // Word overlap with the reference: q1 and q4 repeat it, q2 shares nothing, q3's judge
    // replies garbage twice, q5's model failed.
    assert_eq!(
        correctness,
        vec![
            ("q1".into(), Some(5.0)),
            ("q2".into(), Some(1.0)),
            ("q3".into(), None),
            ("q4".into(), Some(5.0)),
            ("q5".into(), None),
        ]
    );
    let reasons =
        rows.column(&judge_column("answer_correctness", "v1", "unscored_reason")).unwrap().str().unwrap().clone();
    assert_eq!(reasons.get(2), Some("unreadable judge reply: no score found"));
    assert_eq!(reasons.get(4), Some("the model failed: no answer scripted for `q5`"));
    let raw = rows.column(&judge_column("answer_correctness", "v1", "raw_reply")).unwrap().str().unwrap().clone();
    assert!(raw.get(2).unwrap().starts_with("I am not able to grade this output."));
    let errors = rows.column("model_error").unwrap().str().unwrap().clone();
    assert_eq!(errors.get(4), Some("no answer scripted for `q5`"));
    assert_eq!(errors.null_count(), 4);

    let summary = results.metric("answer_correctness").unwrap();
    assert_eq!((summary.scored, summary.unscored, summary.kind), (3, 2, MetricKind::Judge));
    assert!((summary.summary.mean.unwrap() - 11.0 / 3.0).abs() < 1e-12);
    assert!((summary.summary.variance.unwrap() - 16.0 / 3.0).abs() < 1e-12);
    let (low, high) = (summary.summary.ci_low.unwrap(), summary.summary.ci_high.unwrap());
    assert!(low <= 11.0 / 3.0 && 11.0 / 3.0 <= high);
    // Judge 5, 1, 5 against humans 5, 1, 4: agreement on two of three.
    assert_eq!(summary.kappa_pairs, Some(3));
    let (observed, expected) = (2.0 / 3.0, 1.0 / 3.0 * (1.0 / 3.0) + 2.0 / 3.0 * (1.0 / 3.0));
    assert!((summary.kappa.unwrap() - (observed - expected) / (1.0 - expected)).abs() < 1e-12);

    // Faithfulness is graded against what the model retrieved, which contains the answer.
    let faithfulness = results.metric("faithfulness").unwrap();
    assert_eq!((faithfulness.scored, faithfulness.unscored), (3, 2));
    assert_eq!(faithfulness.summary.mean, Some(5.0));

    let exact = results.scores("exact_match").unwrap();
    let exact: Vec<_> = exact.into_iter().map(|(_, s)| s).collect();
    assert_eq!(exact, [Some(1.0), Some(0.0), Some(0.0), Some(1.0), None]);
    assert_eq!(results.metric("rouge1").unwrap().kind, MetricKind::Text);

    let summary = &results.summary;
    assert_eq!((summary.model.as_str(), summary.rows, summary.model_errors), ("scripted-v1", 5, 1));
    assert_eq!(summary.answer_usage, TokenUsage { prompt_tokens: 40, completion_tokens: 20 });
    // Two metrics on three answered rows, plus a repair request on q3 for each.
    assert_eq!(summary.judge_usage.calls, 2 * 4 + 2);
    assert_eq!(summary.judge_usage.calls, server.requests());
    let totals = judge.meter().totals();
    assert_eq!(totals.usage, summary.judge_usage.usage);
    let expected_cost = (summary.judge_usage.usage.prompt_tokens as f64 * 3.0
        + summary.judge_usage.usage.completion_tokens as f64 * 15.0)
        / 1e6;
    assert!(expected_cost > 0.0);
    assert!(
        (summary.judge_usage.cost - expected_cost).abs() < 1e-12,
        "{} against {expected_cost}",
        summary.judge_usage.cost
    );
    assert!((totals.cost - expected_cost).abs() < 1e-12);

    let dir = tempfile::tempdir().unwrap();
    results.save(dir.path()).unwrap();
    let back = GenAiResults::load(dir.path()).unwrap();
    assert_eq!(back.summary, results.summary);
    assert!(back.rows.equals_missing(&results.rows));
}

#[tokio::test]
async fn refuses_an_evaluation_that_cannot_run_before_any_call() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let no_reference = EvaluationTable::new(df!("id" => ["q1"], "question" => ["?"]).unwrap()).unwrap();
    let model = script();
    let error = GenAiEvaluation::new()
        .judge(builtin::answer_correctness(judge(&server)).build().unwrap())
        .run(&no_reference, &model)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("`answer_correctness` grades with column `reference`, which the table lacks"),
        "{error}"
    );
    let error = GenAiEvaluation::new().text(TextMetric::Rouge1).run(&no_reference, &model).await.unwrap_err();
    assert!(error.to_string().contains("`rouge1` compares with the reference answer"), "{error}");
    let error = GenAiEvaluation::new()
        .judge(builtin::answer_relevance(judge(&server)).human_label("missing").build().unwrap())
        .run(&no_reference, &model)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("human label column `missing`"), "{error}");
    let error = GenAiEvaluation::new().run(&no_reference, &model).await.unwrap_err();
    assert!(error.to_string().contains("no metric"), "{error}");
    assert_eq!(server.requests(), 0);
    assert_eq!(model.calls.load(Ordering::Relaxed), 0);
}

#[test]
fn the_table_grows_without_losing_or_repeating_questions() {
    let mut table = table();
    let error = table
        .append(
            df!(
                "id" => ["q6", "q1", "q2"], "question" => ["a", "b", "c"], "reference" => ["a", "b", "c"],
                "human_correctness" => [1i64, 2, 3],
            )
            .unwrap(),
        )
        .unwrap_err();
    assert!(error.to_string().contains("question ids already present: `q1`, `q2`"), "{error}");
    assert_eq!(table.len(), 5, "a refused batch adds nothing");
    let error = table.append(df!("id" => ["q6"], "question" => ["a"]).unwrap()).unwrap_err();
    assert!(error.to_string().contains("differ in column"), "{error}");
    table
        .append(df!("id" => ["q6"], "question" => ["a"], "reference" => ["b"], "human_correctness" => [2i64]).unwrap())
        .unwrap();
    assert_eq!(table.len(), 6);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("questions.parquet");
    table.save(&path).unwrap();
    assert!(EvaluationTable::load(&path).unwrap().frame().equals_missing(table.frame()));

    let error = EvaluationTable::new(df!("id" => ["a", "a"], "question" => ["x", "y"]).unwrap()).unwrap_err();
    assert!(error.to_string().contains("`a`"), "{error}");
    let error = EvaluationTable::new(df!("question" => ["x"]).unwrap()).unwrap_err();
    assert!(error.to_string().contains("missing required columns: id"), "{error}");
    let error = EvaluationTable::new(df!("id" => [1i64], "question" => ["x"]).unwrap()).unwrap_err();
    assert!(error.to_string().contains("column `id`: expected text"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_resumes_from_the_cache() {
    let server = JudgeServer::start(JudgeServerConfig { latency: Duration::from_millis(150), max_in_flight: None })
        .await
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("q{i}")).collect();
    let table = EvaluationTable::new(
        df!(
            "id" => ids.clone(),
            "question" => ids.iter().map(|i| format!("Question {i}?")).collect::<Vec<_>>(),
            "reference" => ids.iter().map(|i| format!("Answer {i}.")).collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap();
    struct Echo;
    #[async_trait]
    impl AnswerModel for Echo {
        fn name(&self) -> &str {
            "echo"
        }
        async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
            Ok(Answer::text(format!("Answer {}.", question.id)))
        }
    }
    let cached: Arc<dyn ChatModel> = Arc::new(CachedChat::new(judge(&server), cache.path()));
    let evaluation = GenAiEvaluation::new().judge(builtin::answer_correctness(cached).build().unwrap()).concurrency(4);
    // Four rows at a time at 150 ms each: about half the rows finish in 0.8 s.
    let cancelled = tokio::time::timeout(Duration::from_millis(800), evaluation.run(&table, &Echo)).await;
    assert!(cancelled.is_err(), "the run should still have been going");
    let first_calls = server.requests();
    assert!(first_calls > 0 && first_calls < 40, "{first_calls}");

    let results = evaluation.run(&table, &Echo).await.unwrap();
    let summary = results.metric("answer_correctness").unwrap();
    assert_eq!((summary.scored, summary.unscored), (40, 0));
    // Calls in flight at the cancellation are made again; finished ones are not.
    let second_calls = server.requests() - first_calls;
    assert!(second_calls <= 40 - first_calls + 4, "first {first_calls}, second {second_calls}");
    assert!(server.peak_in_flight() <= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_reported_after_every_row() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let evaluation =
        GenAiEvaluation::new().judge(builtin::answer_correctness(judge(&server)).build().unwrap()).on_progress({
            let seen = Arc::clone(&seen);
            move |p| seen.lock().push((p.done, p.total, p.unscored, p.model_errors))
        });
    evaluation.run(&table(), &script()).await.unwrap();
    let seen = seen.lock().clone();
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(seen.last().copied(), Some((5, 5, 2, 1)));
}
