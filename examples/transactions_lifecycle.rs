//! The transactions model in production for a bounded time: records and, later, their
//! labels land as files; one streaming scorer, running for the whole time, looks up
//! features as of each transaction's time, scores with whatever version `champion`
//! designates (a `LiveModel` follows the alias) and writes a Delta inference table; labels
//! are merged as they arrive; once enough new labels exist a new version is trained with the
//! same feature lookups, registered, validated, and promoted if it beats the champion, and
//! the stream scores with it from its next batch on.
//!
//! ```text
//! cargo run --release --features delta --example transactions_lifecycle -- --duration-secs 60
//! ```
//!
//! Everything lives under `--dir`, which the run starts afresh.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use mlops_core::features::{FeatureFunctions, FeatureTables};
use mlops_core::{FlavorRegistry, ModelName, ModelUri, TabularClassifierParams, TabularModel, write_parquet};
use mlops_eval::{Evaluate, Outcome, Task, ValidationSuite};
use mlops_examples::transactions::{
    self, CATEGORICAL_FEATURES, KEYS, LABEL, NUMERIC_FEATURES, RECORD_COLUMNS, TIMESTAMP,
};
use mlops_infer::stream::{Checkpoint, FileFormat, FileSource, Source, StreamingScorer};
use mlops_infer::{ACTUAL_LABEL, BatchScorer, DeltaFeatureStore, InferenceTable, InferenceTableConfig, TableLocation};
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, Lineage, LiveModel, ObjectStoreRegistry, ObservedRegistry, Registry,
    SetAlias,
};
use object_store::local::LocalFileSystem;
use polars::prelude::*;

const MODEL: &str = "transactions";
const PROJECT: &str = "synthetic_transactions";

#[derive(Parser, Debug)]
#[command(about = "Stream, score, label, retrain and promote the transactions model for a bounded time")]
struct Args {
    /// Working directory (landing files, registry, Delta tables, checkpoints); emptied first.
    #[arg(long, default_value = "./mlops-lifecycle")]
    dir: PathBuf,
    /// How long to run, in seconds of wall-clock time.
    #[arg(long, default_value_t = 60)]
    duration_secs: u64,
    /// Transactions landing per tick (about ten per second of event time).
    #[arg(long, default_value_t = 3_000)]
    records_per_tick: usize,
    /// Wall-clock time between ticks, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    tick_ms: u64,
    /// Ticks between a transaction's record and its label.
    #[arg(long, default_value_t = 2)]
    label_delay_ticks: usize,
    /// Newly labelled transactions that trigger training a new version.
    #[arg(long, default_value_t = 9_000)]
    retrain_every: usize,
    /// Transactions before the stream starts, used to train the first champion.
    #[arg(long, default_value_t = 20_000)]
    history: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Paths of the run.
struct Layout {
    records: PathBuf,
    labels: PathBuf,
    root: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> std::io::Result<Self> {
        if root.exists() {
            std::fs::remove_dir_all(root)?;
        }
        let layout =
            Self { records: root.join("landing/records"), labels: root.join("landing/labels"), root: root.into() };
        std::fs::create_dir_all(&layout.records)?;
        std::fs::create_dir_all(&layout.labels)?;
        Ok(layout)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

/// What happened, for the summary.
#[derive(Default)]
struct Tally {
    ticks: usize,
    records_landed: usize,
    scored: usize,
    dead_letters: usize,
    labels_landed: usize,
    promotions: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let layout = Layout::new(&args.dir)?;
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let tick = Duration::from_millis(args.tick_ms);
    let max_ticks = (args.duration_secs * 1_000 / args.tick_ms.max(1)) as usize + 1;

    step(&format!("generating {} transactions of history and up to {max_ticks} ticks of traffic", args.history));
    let rows = args.history + max_ticks * args.records_per_tick;
    let all = transactions::generate(&transactions::Config::new(rows, args.seed))?;
    let records = all.select(RECORD_COLUMNS)?;
    let labels = all.select(KEYS.into_iter().chain([LABEL]))?;

    // Observed, so that the scoring stream's model hears of a promotion at once.
    let registry = Arc::new(ObservedRegistry::new(Arc::new(ObjectStoreRegistry::local(layout.path("registry"))?), 64));
    let functions = FeatureFunctions::with_builtins();
    let feature_store = Arc::new(DeltaFeatureStore::new(TableLocation::local(layout.path("tables/features"))?));
    let table = Arc::new(InferenceTable::new(
        TableLocation::local(layout.path("tables/inference"))?,
        InferenceTableConfig::new(KEYS).label_type(DataType::Int64),
    )?);
    let name: ModelName = MODEL.parse()?;
    let spec = transactions::feature_spec();

    step("training the first champion on the history, with the same lookups scoring uses");
    let mut events = records.slice(0, args.history);
    let tables = write_features(&feature_store, &events).await?;
    // The first minute of history precedes every window: those transactions have no
    // features to learn from.
    let history = spec
        .augment(&events, &tables, &functions)?
        .hstack(&[labels.column(LABEL)?.slice(0, args.history)])?
        .drop_nulls::<String>(None)?;
    registry
        .create_model(CreateModel::new(name.clone()).description("Fraud probability of a card transaction"))
        .await?;
    let candidate = train(&history, 50.0, 5)?;
    let first =
        register(&*registry, &name, &candidate, &history, "first champion: strong L2 penalty, 5 iterations").await?;
    registry.set_alias(SetAlias::new(name.clone(), "champion", first).mode(AliasMode::Create)).await?;
    println!("    version {first} trained on {} transactions; champion -> {first}", history.height());

    step(&format!("streaming for {} s", args.duration_secs));
    let records_store = Arc::new(LocalFileSystem::new_with_prefix(&layout.records)?);
    let mut feature_job = FileSource::new(records_store.clone(), Default::default(), FileFormat::Parquet);
    feature_job.resume(&[]).await?;
    let mut label_source = FileSource::new(
        Arc::new(LocalFileSystem::new_with_prefix(&layout.labels)?),
        Default::default(),
        FileFormat::Parquet,
    );
    label_source.resume(&[]).await?;
    // One stream for the whole run, scoring with whatever version `champion` designates.
    let champion = LiveModel::start(
        registry.clone(),
        format!("models:/{MODEL}@champion").parse::<ModelUri>()?,
        FlavorRegistry::with_builtins(),
        Duration::from_secs(5),
    )
    .await?
    .with_events(registry.subscribe());
    let scored_by = Arc::new(AtomicU64::new(first));
    let last_version = scored_by.clone();
    let mut scoring = StreamingScorer::new(
        "transactions",
        FileSource::new(records_store.clone(), Default::default(), FileFormat::Parquet),
        Arc::new(champion),
        table.clone(),
        Checkpoint::local(layout.path("checkpoints/scoring"))?,
    )
    .features(feature_store.clone(), functions.clone())
    .on_batch(move |batch| last_version.store(batch.model_version, Ordering::Relaxed));
    let mut tally = Tally::default();
    let mut labelled_since_training = 0;

    while Instant::now() < deadline && tally.ticks < max_ticks {
        let started = Instant::now();
        let n = tally.ticks;
        // The generator: this tick's records, the labels of older ones, and a few labels
        // that arrive before their transaction does.
        let offset = args.history + n * args.records_per_tick;
        let landed = records.slice(offset as i64, args.records_per_tick);
        land(&layout.records, n, &landed)?;
        tally.records_landed += landed.height();
        let mut due = match n.checked_sub(args.label_delay_ticks) {
            Some(old) => labels.slice((args.history + old * args.records_per_tick) as i64, args.records_per_tick),
            None => labels.clear(),
        };
        let early = labels.slice((offset + args.records_per_tick) as i64, args.records_per_tick / 50);
        due.vstack_mut(&early)?;
        land(&layout.labels, n, &due)?;
        tally.labels_landed += due.height();

        // Feature job: fold newly landed records into the events and rewrite the tables.
        while let Some(next) = feature_job.next_offset().await? {
            events.vstack_mut(&feature_job.read(&next).await?.records.select(RECORD_COLUMNS)?)?;
        }
        let tables = write_features(&feature_store, &events).await?;

        // Scoring: whatever landed, exactly once, with the current champion.
        let report = scoring.run(std::future::pending()).await?;
        let version = scored_by.load(Ordering::Relaxed);
        tally.scored += report.scored;
        tally.dead_letters += report.dead_letters;

        // Labels: merged as they arrive; early ones wait for their prediction.
        // Labels that cannot be used (a null label, a null key) are set aside with the reason.
        let mut merged = (0, 0, 0);
        while let Some(next) = label_source.next_offset().await? {
            let arrived = label_source.read(&next).await?.records;
            let merge = table.merge_labels(&arrived, LABEL).await?;
            merged = (merged.0 + merge.rows_updated, merge.pending, merged.2 + merge.rejected.len());
        }
        labelled_since_training += merged.0;
        println!(
            "    tick {n:>3}: {} records scored by v{version} ({} dead letters), {} labels applied, {} pending, \
             {} set aside, {:.0?}",
            report.scored,
            report.dead_letters,
            merged.0,
            merged.1,
            merged.2,
            started.elapsed()
        );

        if labelled_since_training >= args.retrain_every {
            labelled_since_training = 0;
            if let Some(outcome) = retrain(&*registry, &name, &table, &spec, &tables, &functions).await? {
                tally.promotions.push(outcome);
            }
        }
        tally.ticks += 1;
        tokio::time::sleep(tick.saturating_sub(started.elapsed())).await;
    }

    step("summary");
    let rows = table.read().await?;
    let labelled = rows.column(ACTUAL_LABEL)?.len() - rows.column(ACTUAL_LABEL)?.null_count();
    println!("    ticks: {}", tally.ticks);
    println!(
        "    records landed {}, scored {}, dead letters {}",
        tally.records_landed, tally.scored, tally.dead_letters
    );
    println!(
        "    labels landed {}; inference table: {} rows, {labelled} labelled, Delta version {}",
        tally.labels_landed,
        rows.height(),
        table.version().await?.unwrap_or_default()
    );
    for line in &tally.promotions {
        println!("    {line}");
    }
    let model = registry.get_model(&name).await?;
    println!("    aliases: {:?}", model.aliases);
    println!("    inference table: {}", layout.path("tables/inference").display());
    if tally.scored != tally.records_landed - tally.dead_letters {
        return Err(format!("{} records landed but {} were scored", tally.records_landed, tally.scored).into());
    }
    Ok(())
}

/// Writes `frame` as the next Parquet file in `dir` (written beside, then renamed in).
fn land(dir: &Path, tick: usize, frame: &DataFrame) -> Result<(), Box<dyn std::error::Error>> {
    Ok(write_parquet(&mut frame.clone(), &dir.join(format!("part-{tick:05}.parquet")))?)
}

/// Recomputes both feature tables from every event seen and stores them.
async fn write_features(
    store: &DeltaFeatureStore,
    events: &DataFrame,
) -> Result<FeatureTables, Box<dyn std::error::Error>> {
    let tables = transactions::feature_tables(events)?;
    for table in &tables {
        store.write(table).await?;
    }
    Ok(tables.into_iter().collect())
}

fn train(frame: &DataFrame, l2_penalty: f64, max_iterations: u64) -> mlops_core::Result<TabularModel> {
    TabularClassifierParams::new(LABEL)
        .categorical(CATEGORICAL_FEATURES)
        .numeric(NUMERIC_FEATURES)
        .l2_penalty(l2_penalty)
        .max_iterations(max_iterations)
        .check()?
        .fit(frame)
}

/// Registers `model` (with the feature lookups in its package) and validates it.
async fn register(
    registry: &dyn Registry,
    name: &ModelName,
    model: &TabularModel,
    train: &DataFrame,
    description: &str,
) -> Result<u64, Box<dyn std::error::Error>> {
    let package = model.package(Some(train))?.with_features(transactions::feature_spec());
    let lineage = Lineage { metrics: [("train_rows".to_owned(), train.height() as f64)].into(), ..Lineage::default() };
    let version = registry
        .create_version(
            CreateVersion::new(name.clone(), package)
                .description(description)
                .tag("validation_status", "needs_tested")
                .tag("project", PROJECT)
                .lineage(lineage),
        )
        .await?
        .version;
    match ValidationSuite::reference([PROJECT]).validate(registry, name, version).await? {
        Outcome::Failed(failed) => Err(format!("version {version} failed validation: {failed:?}").into()),
        _ => Ok(version),
    }
}

/// Trains a candidate on the labelled rows of the inference table (features looked up again
/// as of each transaction's time), and promotes it if its log loss on the latest fifth of
/// them beats the champion's.
async fn retrain(
    registry: &dyn Registry,
    name: &ModelName,
    table: &InferenceTable,
    spec: &mlops_core::features::FeatureSpec,
    tables: &FeatureTables,
    functions: &FeatureFunctions,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let labelled = table
        .read()
        .await?
        .lazy()
        .filter(col(ACTUAL_LABEL).is_not_null())
        .sort([TIMESTAMP], SortMultipleOptions::default())
        .select(RECORD_COLUMNS.iter().map(|c| col(*c)).chain([col(ACTUAL_LABEL).alias(LABEL)]).collect::<Vec<_>>())
        .collect()?;
    let labelled = spec.augment(&labelled, tables, functions)?.drop_nulls::<String>(None)?;
    let split = labelled.height() * 4 / 5;
    let (train_rows, holdout) = (labelled.slice(0, split), labelled.slice(split as i64, labelled.height() - split));
    let candidate = train(&train_rows, 0.01, 100)?;

    let uri: ModelUri = format!("models:/{MODEL}@champion").parse()?;
    let champion = BatchScorer::load(registry, &uri, &FlavorRegistry::with_builtins()).await?;
    let log_loss = |frame: &DataFrame| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(Evaluate::new(LABEL, "prediction", Task::classification()).run(frame)?.overall["log_loss"])
    };
    let champion_loss = log_loss(&champion.score(&holdout)?)?;
    let mut predicted = mlops_core::Model::predict(&candidate, &holdout)?;
    predicted.with_column(holdout.column(LABEL)?.clone())?;
    let candidate_loss = log_loss(&predicted)?;

    let description = format!("retrained on {split} labelled transactions: light L2 penalty, 100 iterations");
    let version = register(registry, name, &candidate, &train_rows, &description).await?;
    let verdict = if candidate_loss < champion_loss {
        let request = SetAlias::new(name.clone(), "champion", version).mode(AliasMode::Update(champion.version()));
        registry.set_alias(request).await?;
        format!("champion v{} -> v{version}", champion.version())
    } else {
        format!("champion stays v{}", champion.version())
    };
    let line = format!(
        "v{version} trained on {split} labelled rows: holdout log loss {candidate_loss:.4} vs champion v{} {champion_loss:.4}: {verdict}",
        champion.version()
    );
    println!("    {line}");
    Ok(Some(line))
}

fn step(what: &str) {
    println!("==> {what}");
}
