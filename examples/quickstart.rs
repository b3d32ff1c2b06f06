//! The whole lifecycle on a local directory, no server: generate data, train two versions,
//! package, register, validate, alias, score by alias, compare, promote.
//!
//! ```text
//! cargo run --release --example quickstart -- --dir ./mlops-quickstart
//! ```
//!
//! State lives under `--dir`; running again registers two more versions.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use mlops_core::{
    FlavorRegistry, ModelName, ModelUri, Package, TabularClassifierParams, TabularModel, sha256_hex, write_parquet,
};
use mlops_eval::{Evaluate, Evaluation, Outcome, Task, ValidationSuite};
use mlops_examples::transactions::{self, CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES};
use mlops_infer::BatchScorer;
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, DatasetRef, Error as RegistryError, Lineage, ObjectStoreRegistry, Registry,
    SetAlias,
};
use polars::prelude::DataFrame;

const MODEL: &str = "transactions";
const PROJECT: &str = "synthetic_transactions";

#[derive(Parser, Debug)]
#[command(about = "Train, register, validate, score and promote the transactions model on a local directory")]
struct Args {
    /// Directory holding the registry, packages, data and scored output.
    #[arg(long, default_value = "./mlops-quickstart")]
    dir: PathBuf,
    /// Transactions to generate (80% train, the latest 20% held out).
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// One candidate: hyperparameters and the words that describe them.
struct Candidate {
    description: &'static str,
    l2_penalty: f64,
    max_iterations: u64,
}

const CANDIDATES: [Candidate; 2] = [
    Candidate {
        description: "Logistic regression, strong L2 penalty (alpha 50), 5 iterations",
        l2_penalty: 50.0,
        max_iterations: 5,
    },
    Candidate {
        description: "Logistic regression, light L2 penalty (alpha 0.01), 100 iterations",
        l2_penalty: 0.01,
        max_iterations: 100,
    },
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let registry = ObjectStoreRegistry::local(args.dir.join("registry"))?;
    let flavors = FlavorRegistry::with_builtins();
    let name: ModelName = MODEL.parse()?;

    step(&format!("generating {} transactions (seed {})", args.rows, args.seed));
    let data = transactions::generate(&transactions::Config::new(args.rows, args.seed))?;
    let split = data.height() * 4 / 5;
    let (train, holdout) = (data.slice(0, split), data.slice(split as i64, data.height() - split));
    let train_path = args.dir.join("data").join("train.parquet");
    let train_digest = save(&train, &train_path)?;
    println!("    train {} rows -> {}", train.height(), train_path.display());
    println!("    holdout {} rows (the latest in time)", holdout.height());

    match registry
        .create_model(CreateModel::new(name.clone()).description("Fraud probability of a card transaction"))
        .await
    {
        Ok(_) | Err(RegistryError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }

    let mut versions = Vec::new();
    for (index, candidate) in CANDIDATES.iter().enumerate() {
        step(&format!("training candidate {}: {}", index + 1, candidate.description));
        let started = Instant::now();
        let model = TabularClassifierParams::new(LABEL)
            .categorical(CATEGORICAL_FEATURES)
            .numeric(NUMERIC_FEATURES)
            .l2_penalty(candidate.l2_penalty)
            .max_iterations(candidate.max_iterations)
            .check()?
            .fit(&train)?;
        let train_metrics = evaluate(&model, &train)?;
        println!("    fitted in {:.2?}: train log loss {:.4}", started.elapsed(), train_metrics.overall["log_loss"]);

        let package_dir = package_dir(&args.dir, index)?;
        model.package(Some(&train))?.save(&package_dir)?;
        let package = Package::read_dir(&package_dir)?;
        println!("    packaged {} files -> {}", package.manifest().files.len(), package_dir.display());

        let lineage = Lineage {
            training_data: Some(DatasetRef { name: train_path.display().to_string(), digest: train_digest.clone() }),
            params: [
                ("l2_penalty".to_owned(), candidate.l2_penalty.to_string()),
                ("max_iterations".to_owned(), candidate.max_iterations.to_string()),
            ]
            .into(),
            metrics: [("train_log_loss".to_owned(), train_metrics.overall["log_loss"])].into(),
        };
        let version = registry
            .create_version(
                CreateVersion::new(name.clone(), package)
                    .description(candidate.description)
                    .tag("validation_status", "needs_tested")
                    .tag("project", PROJECT)
                    .lineage(lineage),
            )
            .await?;
        println!("    registered {MODEL} version {}", version.version);
        versions.push(version.version);
    }

    step("validating");
    let suite = ValidationSuite::reference([PROJECT]);
    for &version in &versions {
        let outcome = suite.validate(&registry, &name, version).await?;
        println!("    version {version}: {}", describe(&outcome));
        if let Outcome::Failed(_) = outcome {
            return Err(format!("version {version} failed validation").into());
        }
    }

    step("pointing aliases");
    let (first, second) = (versions[0], versions[1]);
    match registry.set_alias(SetAlias::new(name.clone(), "champion", first).mode(AliasMode::Create)).await {
        Ok(_) => println!("    champion -> {first}"),
        Err(RegistryError::Precondition { found: Some(current), .. }) => {
            println!("    champion stays at {current} (set by an earlier run)")
        }
        Err(e) => return Err(e.into()),
    }
    registry.set_alias(SetAlias::new(name.clone(), "challenger", second)).await?;
    println!("    challenger -> {second}");

    step("scoring the holdout through both aliases");
    let champion = score(&registry, &flavors, "champion", &holdout, &args.dir).await?;
    let challenger = score(&registry, &flavors, "challenger", &holdout, &args.dir).await?;

    step("comparing on the holdout");
    println!(
        "    {:<12} {:>7} {:>9} {:>9} {:>9} {:>12}",
        "alias", "version", "log_loss", "accuracy", "roc_auc", "rows/s"
    );
    for s in [&champion, &challenger] {
        let m = &s.evaluation.overall;
        println!(
            "    {:<12} {:>7} {:>9.4} {:>9.4} {:>9.4} {:>12.0}",
            s.alias, s.version, m["log_loss"], m["accuracy"], m["roc_auc"], s.rows_per_second
        );
    }
    for slice in &challenger.evaluation.slices {
        println!("    challenger on {}={}: accuracy {:.4}", slice.column, slice.value, slice.metrics["accuracy"]);
    }

    step("promoting");
    let better = challenger.evaluation.overall["log_loss"] < champion.evaluation.overall["log_loss"];
    if better && challenger.version != champion.version {
        let request =
            SetAlias::new(name.clone(), "champion", challenger.version).mode(AliasMode::Update(champion.version));
        match registry.set_alias(request).await {
            Ok(_) => println!("    champion {} -> {} (compare-and-swap)", champion.version, challenger.version),
            Err(RegistryError::Precondition { found, .. }) => {
                println!("    champion moved meanwhile (now {found:?}); not promoting over someone else's decision")
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        println!("    challenger is not better; champion stays at {}", champion.version);
    }

    step("summary");
    let model = registry.get_model(&name).await?;
    let all = registry.search_versions(mlops_registry::SearchVersions::model(name.clone())).await?;
    println!("    {MODEL}: {} versions, aliases {:?}", all.len(), model.aliases);
    for v in all.iter().rev().take(4) {
        println!(
            "      v{} {} [{}]",
            v.version,
            v.description,
            v.tags.get("validation_status").map_or("-", String::as_str)
        );
    }
    println!("    registry: {}", args.dir.join("registry").display());
    Ok(())
}

struct Scored {
    alias: &'static str,
    version: u64,
    evaluation: Evaluation,
    rows_per_second: f64,
}

async fn score(
    registry: &dyn Registry,
    flavors: &FlavorRegistry,
    alias: &'static str,
    holdout: &DataFrame,
    dir: &Path,
) -> Result<Scored, Box<dyn std::error::Error>> {
    let uri: ModelUri = format!("models:/{MODEL}@{alias}").parse()?;
    let scorer = BatchScorer::load(registry, &uri, flavors).await?;
    let started = Instant::now();
    let mut scored = scorer.score(holdout)?;
    let rows_per_second = holdout.height() as f64 / started.elapsed().as_secs_f64();
    let evaluation = Evaluate::new(LABEL, "prediction", Task::classification()).slice_by(["Product"]).run(&scored)?;
    let path = dir.join("scored").join(format!("{alias}.parquet"));
    save_scored(&mut scored, &path)?;
    println!("    {uri} = version {} -> {}", scorer.version(), path.display());
    Ok(Scored { alias, version: scorer.version(), evaluation, rows_per_second })
}

fn evaluate(model: &TabularModel, frame: &DataFrame) -> Result<Evaluation, Box<dyn std::error::Error>> {
    let mut predicted = mlops_core::Model::predict(model, frame)?;
    predicted.with_column(frame.column(LABEL)?.clone())?;
    Ok(Evaluate::new(LABEL, "prediction", Task::classification()).run(&predicted)?)
}

/// Writes a frame to Parquet and returns the file's sha256, the training data's digest.
fn save(frame: &DataFrame, path: &Path) -> Result<String, Box<dyn std::error::Error>> {
    save_scored(&mut frame.clone(), path)?;
    Ok(sha256_hex(&std::fs::read(path)?))
}

fn save_scored(frame: &mut DataFrame, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(write_parquet(frame, path)?)
}

/// A fresh package directory per run and candidate.
fn package_dir(root: &Path, index: usize) -> std::io::Result<PathBuf> {
    let stamp = millis_since_epoch();
    let dir = root.join("packages").join(format!("{stamp}-{}-candidate-{}", std::process::id(), index + 1));
    std::fs::create_dir_all(dir.parent().unwrap_or(root))?;
    Ok(dir)
}

fn millis_since_epoch() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::AlreadyPassed => "already passed".into(),
        Outcome::AlreadyFailed => "already failed".into(),
        Outcome::Passed => "passed_tests".into(),
        Outcome::Failed(failed) => {
            let reasons: Vec<String> = failed.iter().map(|(check, why)| format!("{check}: {why}")).collect();
            format!("failed_tests ({})", reasons.join("; "))
        }
    }
}

fn step(what: &str) {
    println!("==> {what}");
}
