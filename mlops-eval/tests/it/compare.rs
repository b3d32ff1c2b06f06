//! Comparing two versions (paired test, pairwise judging in both orders) and the promotion
//! gate moving an alias through the registry.

use std::sync::Arc;

use async_trait::async_trait;
use mlops_core::{ColSpec, ColumnType, ModelName, Package, Schema, Signature};
use mlops_eval::genai::{
    Answer, AnswerModel, BoxError, EvaluationTable, GateStatus, GenAiEvaluation, GenAiResults, PairwiseJudge,
    Preference, PromotionGate, Question, Report, Threshold, compare_runs,
};
use mlops_eval::judge::builtin;
use mlops_eval::llm::OpenAiChat;
use mlops_eval::stats::Bootstrap;
use mlops_eval::testing::{JudgeServer, JudgeServerConfig};
use mlops_eval::text::TextMetric;
use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, SetAlias};
use polars::prelude::*;

/// Answers with the reference (`good`) or with the first `words` words of it.
struct Truncating {
    name: &'static str,
    words: usize,
    suffix: &'static str,
}

#[async_trait]
impl AnswerModel for Truncating {
    fn name(&self) -> &str {
        self.name
    }

    async fn answer(&self, question: Question<'_>) -> Result<Answer, BoxError> {
        let reference = reference_of(question.id);
        let text: Vec<&str> = reference.split_whitespace().take(self.words).collect();
        Ok(Answer::text(format!("{}{}", text.join(" "), self.suffix)))
    }
}

fn reference_of(id: &str) -> String {
    format!("Answer {id} names the capital, the river and the population of the country.")
}

fn table() -> EvaluationTable {
    let ids: Vec<String> = (0..30).map(|i| format!("q{i:02}")).collect();
    EvaluationTable::new(
        df!(
            "id" => ids.clone(),
            "question" => ids.iter().map(|i| format!("Tell me about country {i}.")).collect::<Vec<_>>(),
            "reference" => ids.iter().map(|i| reference_of(i)).collect::<Vec<_>>(),
        )
        .unwrap(),
    )
    .unwrap()
}

async fn evaluate(server: &JudgeServer, model: &Truncating) -> GenAiResults {
    let judge = Arc::new(OpenAiChat::builder(server.base_url(), "judge").build().unwrap());
    GenAiEvaluation::new()
        .judge(builtin::answer_correctness(judge).build().unwrap())
        .text(TextMetric::Rouge1)
        .bootstrap(Bootstrap { resamples: 500, ..Bootstrap::default() })
        .run(&table(), model)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_better_version_wins_the_paired_test_and_pairwise_judging() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let baseline = evaluate(&server, &Truncating { name: "v1", words: 4, suffix: "" }).await;
    let candidate = evaluate(&server, &Truncating { name: "v2", words: 100, suffix: "" }).await;

    let paired = compare_runs(&baseline, &candidate, "rouge1", Bootstrap::default()).unwrap();
    assert_eq!((paired.pairs, paired.candidate_higher, paired.baseline_higher), (30, 30, 0));
    assert!(paired.mean_difference.unwrap() > 0.5);
    assert!(paired.ci_low.unwrap() > 0.0, "the interval excludes no difference");
    let test = paired.test.unwrap();
    assert_eq!(test.rank_biserial, 1.0);
    assert!(test.p_value < 1e-6, "{test:?}");
    let judged = compare_runs(&baseline, &candidate, "answer_correctness", Bootstrap::default()).unwrap();
    assert!(judged.mean_difference.unwrap() > 0.0);
    assert!(compare_runs(&baseline, &candidate, "nope", Bootstrap::default()).is_err());

    let judge = Arc::new(OpenAiChat::builder(server.base_url(), "judge").build().unwrap());
    let pairwise = PairwiseJudge::new(judge.clone(), "Which answer is more complete and correct?");
    let results = pairwise.compare(&baseline, &candidate).await.unwrap();
    assert_eq!((results.candidate_wins, results.baseline_wins, results.ties, results.unscored), (30, 0, 0, 0));
    assert_eq!(results.candidate_win_rate, Some(1.0));
    assert!(results.rows.iter().all(|r| r.baseline_first == Some(Preference::Candidate)));

    // A judge that always prefers whatever it reads first: both orders cancel into ties.
    let biased = evaluate(&server, &Truncating { name: "v3", words: 100, suffix: " [[judge:always-a]]" }).await;
    let results = pairwise.compare(&baseline, &biased).await.unwrap();
    assert_eq!((results.ties, results.inconsistent, results.candidate_wins), (30, 30, 0));
    assert_eq!(results.candidate_win_rate, Some(0.5));
}

fn package() -> Package {
    Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)]).unwrap()))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_promotes_only_a_complete_passing_evaluation() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let champion = evaluate(&server, &Truncating { name: "v1", words: 4, suffix: "" }).await;
    let candidate = evaluate(&server, &Truncating { name: "v2", words: 100, suffix: "" }).await;
    let unreadable = evaluate(&server, &Truncating { name: "v3", words: 100, suffix: " [[judge:garbage]]" }).await;

    let registry = MemoryRegistry::new();
    let name: ModelName = "assistant".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    for _ in 0..3 {
        registry.create_version(CreateVersion::new(name.clone(), package())).await.unwrap();
    }
    registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await.unwrap();

    let gate = PromotionGate::new()
        .threshold(Threshold::AtLeast { metric: "answer_correctness".into(), value: 4.0 })
        .threshold(Threshold::NoWorseThanChampion { metric: "rouge1".into(), tolerance: 0.01 });

    // Relative thresholds need the champion's results.
    let report = gate.check(&candidate, None);
    assert_eq!(report.status, GateStatus::Incomplete);
    assert!(report.checks[1].reason.as_ref().unwrap().contains("champion, whose results are missing"));

    // Too many unscored rows: incomplete, nothing written.
    let report = gate.promote(&registry, &name, "champion", 3, &unreadable, Some((1, &champion))).await.unwrap();
    assert_eq!(report.status, GateStatus::Incomplete);
    assert!(report.checks[0].reason.as_ref().unwrap().contains("30 of 30 rows unscored"), "{report:?}");
    assert!(registry.get_version(&name, 3).await.unwrap().tags.is_empty());

    // The champion itself fails the absolute bar.
    let report = gate.promote(&registry, &name, "champion", 1, &champion, Some((1, &champion))).await.unwrap();
    assert_eq!(report.status, GateStatus::Failed);
    assert_eq!(report.checks[0].passed, Some(false));
    assert!(registry.get_version(&name, 1).await.unwrap().tags.is_empty());

    // A metric the evaluation lacks: incomplete.
    let missing = PromotionGate::new().threshold(Threshold::AtMost { metric: "toxicity".into(), value: 0.1 });
    assert_eq!(missing.check(&candidate, None).status, GateStatus::Incomplete);

    // The candidate passes: tags recorded, alias moved from the champion it was compared with.
    let report = gate.promote(&registry, &name, "champion", 2, &candidate, Some((1, &champion))).await.unwrap();
    assert_eq!(report.status, GateStatus::Passed);
    assert_eq!(report.moved, Some(("champion".to_owned(), 2)));
    assert_eq!(registry.version_by_alias(&name, "champion").await.unwrap().version, 2);
    let tags = registry.get_version(&name, 2).await.unwrap().tags;
    assert_eq!(tags["eval.gate"], "passed");
    assert_eq!(tags["eval.rows"], "30");
    assert_eq!(tags["eval.answer_correctness.unscored"], "0");
    let mean: f64 = tags["eval.answer_correctness.mean"].parse().unwrap();
    assert!((mean - candidate.metric("answer_correctness").unwrap().summary.mean.unwrap()).abs() < 1e-6);

    // Someone else moved the alias since v1 was read: the compare-and-swap refuses.
    let error = gate.promote(&registry, &name, "champion", 2, &candidate, Some((1, &champion))).await.unwrap_err();
    assert!(matches!(error, mlops_eval::Error::Registry(mlops_registry::Error::Precondition { .. })), "{error:?}");
    assert_eq!(registry.version_by_alias(&name, "champion").await.unwrap().version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_both_versions_with_plots() {
    let server = JudgeServer::start(JudgeServerConfig::default()).await.unwrap();
    let baseline = evaluate(&server, &Truncating { name: "v1", words: 4, suffix: "" }).await;
    let candidate = evaluate(&server, &Truncating { name: "v2", words: 100, suffix: "" }).await;
    let comparison = compare_runs(&baseline, &candidate, "answer_correctness", Bootstrap::default()).unwrap();
    let judge = Arc::new(OpenAiChat::builder(server.base_url(), "judge").build().unwrap());
    let pairwise = PairwiseJudge::new(judge, "Which answer is better?").compare(&baseline, &candidate).await.unwrap();
    let gate = PromotionGate::new()
        .threshold(Threshold::AtLeast { metric: "answer_correctness".into(), value: 4.0 })
        .check(&candidate, Some(&baseline));

    let dir = tempfile::tempdir().unwrap();
    let files = Report::new("Assistant v2 against v1")
        .run(&baseline)
        .run(&candidate)
        .comparison(comparison)
        .pairwise(&pairwise)
        .gate(&gate)
        .write(dir.path())
        .unwrap();
    let names: Vec<String> =
        files.plots.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["scores-answer_correctness.svg", "scores-rouge1.svg", "token-count.svg", "judge-means.svg"]);
    for plot in &files.plots {
        let svg = std::fs::read_to_string(plot).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{}", plot.display());
        assert!(svg.contains("v1") && svg.contains("v2"), "both versions in the legend of {}", plot.display());
        assert!(svg.matches("<rect").count() > 4, "bars in {}", plot.display());
    }

    let markdown = std::fs::read_to_string(&files.markdown).unwrap();
    let mean = |run: &GenAiResults| format!("{:.3}", run.metric("answer_correctness").unwrap().summary.mean.unwrap());
    for expected in [
        "# Assistant v2 against v1".to_owned(),
        "## v1".to_owned(),
        "## v2".to_owned(),
        format!("| answer_correctness | {} |", mean(&baseline)),
        format!("| answer_correctness | {} |", mean(&candidate)),
        "| answer_correctness | v1 | v2 | 30 |".to_owned(),
        "Candidate wins 30, baseline wins 0, ties 0".to_owned(),
        "## Promotion gate: passed".to_owned(),
        "![judge-means.svg](judge-means.svg)".to_owned(),
    ] {
        assert!(markdown.contains(&expected), "missing {expected:?} in\n{markdown}");
    }
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("<table>") && html.contains("<img src=\"scores-answer_correctness.svg\""), "{html}");
}
