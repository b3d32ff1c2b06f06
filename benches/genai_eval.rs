//! Evaluation throughput against a judge with a fixed latency, and the pipeline's own cost
//! per row.
//!
//! - `genai_eval/judge_<L>ms/concurrency_<C>`: one judge metric (`answer_correctness`) over
//!   `MLOPS_BENCH_ROWS` rows (default 200) against the OpenAI-compatible judge at
//!   `MLOPS_JUDGE_URL`, or a scripted judge started here answering in 50 ms. Throughput
//!   should approach C / L.
//! - `genai_pipeline/instant_judge`: the same run over 2,000 rows with a judge that answers
//!   in-process at once and every text metric: what the pipeline itself costs per row.
//!
//! `benches/compare-genai.sh` runs this beside `benches/peer/genai_eval.py`
//! (`mlflow.evaluate` with MLflow's `answer_correctness`, 10 workers) against one judge.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_benches::genai_rows;
use mlops_eval::genai::{Answer, AnswerModel, BoxError, EvaluationTable, GenAiEvaluation, Question};
use mlops_eval::judge::builtin;
use mlops_eval::llm::{AdaptiveLimit, Backoff, ChatModel, ChatReply, ChatRequest, LlmError, OpenAiChat, TokenUsage};
use mlops_eval::testing::{JudgeServer, JudgeServerConfig};
use mlops_eval::text::TextMetric;
use polars::prelude::*;

/// Answers with the answer column of the benchmark rows.
struct Fixed(std::collections::HashMap<String, String>);

#[async_trait]
impl AnswerModel for Fixed {
    fn name(&self) -> &str {
        "fixed"
    }

    async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
        Ok(Answer::text(self.0.get(question.id).cloned().unwrap_or_default()))
    }
}

/// A judge that answers at once, without HTTP.
#[derive(Debug)]
struct InstantJudge;

#[async_trait]
impl ChatModel for InstantJudge {
    fn model_name(&self) -> &str {
        "instant"
    }

    async fn chat(&self, _: &ChatRequest) -> Result<ChatReply, LlmError> {
        Ok(ChatReply {
            content: "score: 4\njustification: Mostly right.".into(),
            finish_reason: Some("stop".into()),
            usage: TokenUsage { prompt_tokens: 400, completion_tokens: 6 },
            cost: 0.0,
            attempts: 1,
            latency: Duration::ZERO,
            cached: false,
        })
    }
}

fn table_and_model(rows: usize) -> (EvaluationTable, Fixed) {
    let r = genai_rows(rows);
    let frame = df!("id" => &r.ids, "question" => &r.questions, "reference" => &r.references).expect("frame");
    let answers = r.ids.iter().cloned().zip(r.answers.iter().cloned()).collect();
    (EvaluationTable::new(frame).expect("table"), Fixed(answers))
}

fn rows() -> usize {
    std::env::var("MLOPS_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(200)
}

fn judge_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (url, _server) = match std::env::var("MLOPS_JUDGE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let config = JudgeServerConfig { latency: Duration::from_millis(50), max_in_flight: None };
            let server = runtime.block_on(JudgeServer::start(config)).expect("judge server");
            (server.base_url(), Some(server))
        }
    };
    let latency = std::env::var("MLOPS_JUDGE_LATENCY_MS").unwrap_or_else(|_| "50".into());
    let rows = rows();
    let (table, model) = table_and_model(rows);
    let mut group = c.benchmark_group("genai_eval");
    group.sample_size(10).throughput(Throughput::Elements(rows as u64));
    for concurrency in [10, 64] {
        let judge = OpenAiChat::builder(&url, "judge")
            .concurrency(AdaptiveLimit::fixed(concurrency))
            .retry(Backoff { max_retries: 0, ..Backoff::default() })
            .build()
            .expect("judge client");
        let evaluation = GenAiEvaluation::new()
            .judge(builtin::answer_correctness(Arc::new(judge)).build().expect("metric"))
            .concurrency(concurrency);
        group.bench_function(format!("judge_{latency}ms/concurrency_{concurrency}"), |b| {
            b.iter(|| {
                let results = runtime.block_on(evaluation.run(&table, &model)).expect("evaluation");
                assert_eq!(results.metric("answer_correctness").expect("metric").unscored, 0);
            });
        });
    }
    group.finish();
}

fn pipeline_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let rows = 2_000;
    let (table, model) = table_and_model(rows);
    let mut evaluation = GenAiEvaluation::new()
        .judge(builtin::answer_correctness(Arc::new(InstantJudge)).build().expect("metric"))
        .concurrency(64);
    for metric in TextMetric::ALL {
        evaluation = evaluation.text(metric);
    }
    let mut group = c.benchmark_group("genai_pipeline");
    group.sample_size(10).throughput(Throughput::Elements(rows as u64));
    group.bench_function("instant_judge", |b| {
        b.iter(|| runtime.block_on(evaluation.run(&table, &model)).expect("evaluation"));
    });
    group.finish();
}

criterion_group!(benches, judge_throughput, pipeline_overhead);
criterion_main!(benches);
