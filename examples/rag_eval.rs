//! Evaluates a small retrieval-augmented assistant with LLM judges and promotes the better
//! version: two versions are registered (their packages hold only configuration), both
//! answer the shipped questions, judges grade every answer, the versions are compared, a
//! report with plots is written, and `champion` moves when the gate passes.
//!
//! ```text
//! cargo run --release --features judge-server --example judge_server -- --port 8765 &
//! cargo run --release --features genai --example rag_eval -- --judge-url http://127.0.0.1:8765/v1
//! ```
//!
//! Any OpenAI-compatible server can judge (`--judge-url`, or `MLOPS_JUDGE_URL`; the bearer
//! token, if any, from `MLOPS_JUDGE_API_KEY`). Judge calls are cached under `--dir`, so a
//! second run, or a run resumed after Ctrl-C, makes no call it already made.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use mlops_core::{ColSpec, ColumnType, ModelName, Package, Schema, Signature};
use mlops_eval::genai::{
    EvaluationTable, GateStatus, GenAiEvaluation, GenAiResults, PairwiseJudge, PromotionGate, Report, Threshold,
    compare_runs,
};
use mlops_eval::judge::builtin;
use mlops_eval::llm::{CachedChat, ChatModel, OpenAiChat};
use mlops_eval::stats::Bootstrap;
use mlops_eval::text::TextMetric;
use mlops_examples::rag::{self, AnswerStrategy, CONFIG_FILE, RagAssistant, RagConfig};
use mlops_registry::{
    CreateModel, CreateVersion, Error as RegistryError, ObjectStoreRegistry, Registry, RegistryExt, SetAlias,
};

const MODEL: &str = "rag_assistant";

#[derive(Parser, Debug)]
#[command(about = "Evaluate a retrieval-augmented assistant with LLM judges and promote the better version")]
struct Args {
    /// Directory holding the registry, the judge cache, results and the report.
    #[arg(long, default_value = "./mlops-rag-eval")]
    dir: PathBuf,
    /// Base URL of the OpenAI-compatible judge (`/chat/completions` is appended).
    #[arg(long, env = "MLOPS_JUDGE_URL")]
    judge_url: String,
    /// Model name sent to the judge.
    #[arg(long, default_value = "judge")]
    judge_model: String,
    /// Questions answered and graded at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds a judge call may take before it is retried.
    #[arg(long, default_value_t = 60)]
    judge_timeout_secs: u64,
}

fn package(config: &RagConfig) -> Result<Package, Box<dyn std::error::Error>> {
    let signature = Signature::new(Schema::new(vec![ColSpec::new("question", ColumnType::String)])?);
    Ok(Package::builder("rag_config", signature).json_file(CONFIG_FILE, config)?.build()?)
}

/// Registers v1 (champion) and v2 on a fresh registry; returns (champion, candidate).
async fn versions(registry: &dyn Registry, name: &ModelName) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    match registry
        .create_model(CreateModel::new(name.clone()).description("Answers questions about Northwind Bikes"))
        .await
    {
        Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let latest = registry.latest_version(name).await.map(|v| v.version).ok();
    if latest.is_none() {
        let v1 = RagConfig { top_k: 1, strategy: AnswerStrategy::LeadSentence };
        let v2 = RagConfig { top_k: 2, strategy: AnswerStrategy::BestSentences { count: 1 } };
        let descriptions = ["Top document, lead sentence", "Two documents, best-matching sentence"];
        for (config, description) in [v1, v2].iter().zip(descriptions) {
            registry
                .create_version(CreateVersion::new(name.clone(), package(config)?).description(description))
                .await?;
        }
        registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await?;
    }
    let champion = registry.version_by_alias(name, "champion").await?.version;
    let candidate = registry.latest_version(name).await?.version;
    Ok((champion, candidate))
}

async fn assistant(
    registry: &dyn Registry,
    name: &ModelName,
    version: u64,
) -> Result<RagAssistant, Box<dyn std::error::Error>> {
    let config: RagConfig = registry.download_package(name, version).await?.json_file(CONFIG_FILE)?;
    println!("    v{version}: {config:?}");
    Ok(RagAssistant::new(format!("v{version}"), config, Arc::new(rag::parse_documents(rag::DOCUMENTS))))
}

async fn evaluate(
    evaluation: &GenAiEvaluation,
    table: &EvaluationTable,
    model: &RagAssistant,
) -> Result<GenAiResults, Box<dyn std::error::Error>> {
    let bar = ProgressBar::new(table.len() as u64)
        .with_style(ProgressStyle::with_template("    {prefix} {bar:30} {pos}/{len} questions {msg}")?)
        .with_prefix(mlops_eval::genai::AnswerModel::name(model).to_owned());
    let progress = bar.clone();
    let evaluation = evaluation.clone().on_progress(move |p| {
        progress.set_position(p.done as u64);
        progress.set_message(format!("({} unscored)", p.unscored));
    });
    let results = evaluation.run(table, model).await?;
    bar.finish();
    Ok(results)
}

fn print_summary(champion: &GenAiResults, candidate: &GenAiResults) {
    println!("    {:<28} {:>28} {:>28}", "metric", champion.summary.model, candidate.summary.model);
    for metric in &candidate.summary.metrics {
        let show = |run: &GenAiResults| match run.metric(&metric.name) {
            Some(m) => match (m.summary.mean, m.summary.ci_low, m.summary.ci_high) {
                (Some(mean), Some(low), Some(high)) => format!("{mean:.3} [{low:.3}, {high:.3}] ({})", m.unscored),
                (Some(mean), _, _) => format!("{mean:.3} ({})", m.unscored),
                _ => format!("– ({})", m.unscored),
            },
            None => "–".into(),
        };
        println!("    {:<28} {:>28} {:>28}", metric.name, show(champion), show(candidate));
    }
    println!("    (mean [95% bootstrap interval] (unscored rows))");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let registry = ObjectStoreRegistry::local(args.dir.join("registry"))?;
    let name: ModelName = MODEL.parse()?;

    println!("== registering the assistant's versions");
    let (champion_version, candidate_version) = versions(&registry, &name).await?;
    let champion = assistant(&registry, &name, champion_version).await?;
    let candidate = assistant(&registry, &name, candidate_version).await?;
    println!("    champion is v{champion_version}, candidate v{candidate_version}");

    let mut judge =
        OpenAiChat::builder(&args.judge_url, &args.judge_model).timeout(Duration::from_secs(args.judge_timeout_secs));
    if std::env::var("MLOPS_JUDGE_API_KEY").is_ok_and(|k| !k.is_empty()) {
        judge = judge.bearer_token_from_env("MLOPS_JUDGE_API_KEY")?;
    }
    let judge = Arc::new(judge.build()?);
    let cache = CachedChat::new(judge.clone(), args.dir.join("judge-cache"));
    let cached: Arc<dyn ChatModel> = Arc::new(cache.clone());
    let evaluation = GenAiEvaluation::new()
        .judge(builtin::answer_correctness(cached.clone()).build()?)
        .judge(builtin::faithfulness(cached.clone()).build()?)
        .judge(builtin::relevance(cached.clone()).build()?)
        .text(TextMetric::Rouge1)
        .text(TextMetric::RougeL)
        .text(TextMetric::ExactMatch)
        .text(TextMetric::TokenCount)
        .text(TextMetric::FleschKincaidGradeLevel)
        .concurrency(args.concurrency);

    let table = rag::questions()?;
    println!("== evaluating on {} questions with judge `{}` at {}", table.len(), args.judge_model, judge.url());
    let before = evaluate(&evaluation, &table, &champion).await?;
    let after = evaluate(&evaluation, &table, &candidate).await?;
    before.save(&args.dir.join("runs").join(&before.summary.model))?;
    after.save(&args.dir.join("runs").join(&after.summary.model))?;
    print_summary(&before, &after);
    let usage = judge.meter().totals();
    println!(
        "    judge: {} calls ({} retries, {} failed), {} answered from the cache, {} tokens, cost {:.4}",
        usage.calls,
        usage.retries,
        usage.failures,
        cache.stats().hits,
        usage.usage.total(),
        usage.cost
    );

    println!("== comparing v{candidate_version} with v{champion_version}");
    let mut comparisons = Vec::new();
    for metric in ["answer_correctness", "faithfulness", "rouge1"] {
        let c = compare_runs(&before, &after, metric, Bootstrap::default())?;
        println!(
            "    {metric:<20} difference {:+.3} [{:+.3}, {:+.3}], Wilcoxon p = {}",
            c.mean_difference.unwrap_or(f64::NAN),
            c.ci_low.unwrap_or(f64::NAN),
            c.ci_high.unwrap_or(f64::NAN),
            c.test.map(|t| format!("{:.4}", t.p_value)).unwrap_or_else(|| "–".into())
        );
        comparisons.push(c);
    }
    let pairwise = PairwiseJudge::new(cached.clone(), "Which output answers the input more correctly and completely?")
        .compare(&before, &after)
        .await?;
    println!(
        "    pairwise (both orders): v{candidate_version} wins {}, v{champion_version} wins {}, ties {}",
        pairwise.candidate_wins, pairwise.baseline_wins, pairwise.ties
    );

    println!("== promotion gate");
    let gate = PromotionGate::new()
        .threshold(Threshold::AtLeast { metric: "answer_correctness".into(), value: 3.0 })
        .threshold(Threshold::NoWorseThanChampion { metric: "answer_correctness".into(), tolerance: 0.0 })
        .threshold(Threshold::NoWorseThanChampion { metric: "faithfulness".into(), tolerance: 0.25 })
        .max_unscored_share(0.05);
    let decision = if candidate_version == champion_version {
        println!("    v{candidate_version} is already champion");
        gate.check(&after, Some(&before))
    } else {
        gate.promote(&registry, &name, "champion", candidate_version, &after, Some((champion_version, &before))).await?
    };
    for check in &decision.checks {
        let verdict = match check.passed {
            Some(true) => "pass".to_owned(),
            Some(false) => "FAIL".to_owned(),
            None => format!("cannot decide: {}", check.reason.clone().unwrap_or_default()),
        };
        println!("    {:<72} {verdict}", check.threshold.to_string());
    }
    match (&decision.status, &decision.moved) {
        (GateStatus::Passed, Some((alias, version))) => println!("    gate passed: `{alias}` -> v{version}"),
        (status, _) => println!("    gate {status:?}: champion stays v{champion_version}"),
    }

    let mut report = Report::new(format!("{MODEL}: v{candidate_version} against v{champion_version}"))
        .run(&before)
        .run(&after)
        .pairwise(&pairwise)
        .gate(&decision);
    for comparison in comparisons {
        report = report.comparison(comparison);
    }
    let files = report.write(&args.dir.join("report"))?;
    println!("== report: {} ({} plots)", files.html.display(), files.plots.len());
    Ok(())
}
