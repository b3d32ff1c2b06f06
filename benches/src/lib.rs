//! Data and model shared by the benchmarks and the peer scripts beside them: the
//! transactions set written to Parquet and the transactions model packaged, so Rust and
//! Python score the very same rows with a model trained on the very same rows; and the
//! question rows the evaluation benchmark and its peer both grade.

use std::path::{Path, PathBuf};

use mlops_core::{Package, TabularClassifierParams};
use mlops_examples::transactions::{self, CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES};
use polars::prelude::{DataFrame, ParquetWriter};

/// Rows the model is trained on (the first rows of the generated set).
pub const TRAIN_ROWS: usize = 100_000;
/// Seed of the generated set.
pub const SEED: u64 = 7;
/// L2 penalty of the benchmarked model (scikit-learn's `C` is its inverse).
pub const L2_PENALTY: f64 = 1.0;
/// Optimizer iterations of the benchmarked model.
pub const MAX_ITERATIONS: u64 = 50;

/// A registry under `root` on the S3-compatible server `MLOPS_S3_ENDPOINT` names (bucket
/// `MLOPS_S3_BUCKET`, `mlops-test` by default), `None` when there is none.
///
/// # Panics
/// When the store cannot be set up from those variables.
pub fn s3_registry_at(root: &str) -> Option<mlops_registry::ObjectStoreRegistry> {
    let endpoint = std::env::var("MLOPS_S3_ENDPOINT").ok()?;
    let bucket = std::env::var("MLOPS_S3_BUCKET").unwrap_or_else(|_| "mlops-test".into());
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
    ];
    Some(mlops_registry::ObjectStoreRegistry::open(&format!("s3://{bucket}/{root}"), options).expect("s3 registry"))
}

/// The rows a benchmark works on: `MLOPS_BENCH_ROWS` when set, else `benchmarking` under
/// `cargo bench` (which passes `--bench`) and `testing` in test mode.
///
/// # Panics
/// When `MLOPS_BENCH_ROWS` is not a number: the benchmark cannot run as asked.
pub fn bench_rows(benchmarking: usize, testing: usize) -> usize {
    if let Ok(rows) = std::env::var("MLOPS_BENCH_ROWS") {
        return rows.parse().expect("MLOPS_BENCH_ROWS is a row count");
    }
    if crate::benchmarking() { benchmarking } else { testing }
}

/// Whether criterion measures (`cargo bench`, `--bench`) rather than runs each benchmark
/// once as a test (`cargo test --benches`, an unoptimized build).
pub fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Where benchmark data lives: `MLOPS_BENCH_DIR` when set, else `default` (a benchmark
/// passes its `CARGO_TARGET_TMPDIR`).
pub fn bench_dir(default: &str) -> PathBuf {
    std::env::var_os("MLOPS_BENCH_DIR").map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Where the prepared files live.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Training rows, Parquet.
    pub train: PathBuf,
    /// Rows to score, Parquet.
    pub score: PathBuf,
    /// The packaged model.
    pub package: PathBuf,
    /// Number of rows to score.
    pub rows: usize,
}

/// Generates `rows` transactions to score (plus the training rows), trains and packages the
/// model, and writes everything under `dir`. Reuses what a previous call with the same
/// `rows` left there.
///
/// # Errors
/// Any I/O, Polars or training error, boxed.
pub fn prepare(dir: &Path, rows: usize) -> Result<Prepared, Box<dyn std::error::Error>> {
    let dir = dir.join(format!("transactions-{rows}"));
    let prepared = Prepared {
        train: dir.join("train.parquet"),
        score: dir.join("score.parquet"),
        package: dir.join("package"),
        rows,
    };
    if prepared.package.join(mlops_core::MANIFEST_FILE).exists() && prepared.score.exists() {
        return Ok(prepared);
    }
    std::fs::create_dir_all(&dir)?;
    let data = transactions::generate(&transactions::Config::new(TRAIN_ROWS + rows, SEED))?;
    let mut train = data.slice(0, TRAIN_ROWS);
    let mut score = data.slice(TRAIN_ROWS as i64, rows);
    write(&mut train, &prepared.train)?;
    write(&mut score, &prepared.score)?;
    let model = TabularClassifierParams::new(LABEL)
        .categorical(CATEGORICAL_FEATURES)
        .numeric(NUMERIC_FEATURES)
        .l2_penalty(L2_PENALTY)
        .max_iterations(MAX_ITERATIONS)
        .check()?
        .fit(&train)?;
    if prepared.package.exists() {
        std::fs::remove_dir_all(&prepared.package)?;
    }
    model.package(Some(&train))?.save(&prepared.package)?;
    Ok(prepared)
}

fn write(frame: &mut DataFrame, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    ParquetWriter::new(std::fs::File::create(path)?).finish(frame)?;
    Ok(())
}

/// Reads the packaged model back (verifying checksums).
///
/// # Errors
/// As [`Package::read_dir`].
pub fn package(prepared: &Prepared) -> mlops_core::Result<Package> {
    Package::read_dir(&prepared.package)
}

/// Registers the prepared model in `registry` as `transactions` version 1, with `champion`
/// on it.
///
/// # Errors
/// The package's or the registry's.
pub async fn register_champion(
    registry: &dyn mlops_registry::Registry,
    prepared: &Prepared,
) -> Result<(), Box<dyn std::error::Error>> {
    use mlops_registry::{CreateModel, CreateVersion, SetAlias};
    let name: mlops_core::ModelName = "transactions".parse()?;
    registry.create_model(CreateModel::new(name.clone())).await?;
    registry.create_version(CreateVersion::new(name.clone(), package(prepared)?)).await?;
    registry.set_alias(SetAlias::new(name, "champion", 1)).await?;
    Ok(())
}

/// Questions, references and answers of the evaluation benchmark, generated the same way
/// by `benches/peer/genai_eval.py`.
#[derive(Debug, Clone)]
pub struct GenAiRows {
    /// Question ids.
    pub ids: Vec<String>,
    /// Questions.
    pub questions: Vec<String>,
    /// Reference answers.
    pub references: Vec<String>,
    /// The answers graded: the first 4 to 12 words of the reference.
    pub answers: Vec<String>,
}

/// `rows` evaluation rows.
pub fn genai_rows(rows: usize) -> GenAiRows {
    let ids: Vec<String> = (0..rows).map(|i| format!("q{i:05}")).collect();
    let references: Vec<String> = ids
        .iter()
        .map(|i| format!("Answer {i} names the capital, the river and the population of the country."))
        .collect();
    let answers = references
        .iter()
        .enumerate()
        .map(|(n, r)| r.split_whitespace().take(4 + n % 9).collect::<Vec<_>>().join(" "))
        .collect();
    let questions = ids.iter().map(|i| format!("Tell me about country {i}.")).collect();
    GenAiRows { ids, questions, references, answers }
}

/// Where the monitoring benchmark's inference table and baseline live.
#[derive(Debug, Clone)]
pub struct InferenceTableFiles {
    /// The inference table, Parquet.
    pub table: PathBuf,
    /// The baseline, Parquet.
    pub baseline: PathBuf,
}

/// Rows of the monitoring benchmark's baseline.
pub const BASELINE_ROWS: usize = 100_000;

/// Writes a seeded inference table of `rows` rows under `dir` (reusing one a previous call
/// left): a week of `scored_at` times, version 1 throughout and version 2 on a third of the
/// rows from day 3, features `amount` (drifting upward from day 5), `items` (integers),
/// `ratio` (1% nulls) and `product` (its mix shifting from day 4), a `prediction`
/// probability, and `actual_label` for the first five days only (labels arrive late).
/// The baseline has the same columns, drawn as the first days.
///
/// # Errors
/// Any I/O or Polars error, boxed.
pub fn prepare_inference_table(dir: &Path, rows: usize) -> Result<InferenceTableFiles, Box<dyn std::error::Error>> {
    let dir = dir.join(format!("monitoring-{rows}"));
    let files = InferenceTableFiles { table: dir.join("table.parquet"), baseline: dir.join("baseline.parquet") };
    if files.table.exists() && files.baseline.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir)?;
    write(&mut inference_rows(rows, SEED, false)?, &files.table)?;
    write(&mut inference_rows(BASELINE_ROWS, SEED + 1, true)?, &files.baseline)?;
    Ok(files)
}

fn inference_rows(rows: usize, seed: u64, baseline: bool) -> Result<DataFrame, Box<dyn std::error::Error>> {
    use polars::prelude::{Column, DataType, TimeUnit};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_distr::{Distribution, LogNormal};

    const WEEK_MS: i64 = 7 * 24 * 3_600_000;
    const DAY_MS: i64 = 24 * 3_600_000;
    const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut rng = StdRng::seed_from_u64(seed);
    let amounts = LogNormal::new(3.0, 0.6)?;
    let products = ["A", "B", "C"];
    let (mut times, mut versions, mut amount, mut items, mut ratio, mut product, mut prediction, mut label) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for i in 0..rows {
        // The baseline looks like the first two days.
        let offset = if baseline { (i as i64 * 2 * DAY_MS) / rows as i64 } else { (i as i64 * WEEK_MS) / rows as i64 };
        let day = offset / DAY_MS;
        let second_version = !baseline && day >= 3 && rng.random_bool(1.0 / 3.0);
        let drift = if day >= 5 { 1.0 + 0.1 * (day - 4) as f64 } else { 1.0 };
        let a = amounts.sample(&mut rng) * drift;
        let p = (1.0 / (1.0 + (-(a - 25.0) / 10.0).exp())).clamp(0.001, 0.999);
        times.push(START_MS + offset);
        versions.push(if second_version { 2i64 } else { 1 });
        amount.push(a);
        items.push(rng.random_range(1..=20i64));
        ratio.push(if rng.random_bool(0.01) { None } else { Some(rng.random::<f64>()) });
        let shifted = day >= 4 && rng.random_bool(0.3);
        product.push(if shifted { products[2] } else { products[rng.random_range(0..3)] });
        prediction.push(p);
        label.push((day < 5).then(|| i32::from(rng.random_bool(p))));
    }
    let times = Column::new("scored_at".into(), times).cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?;
    Ok(DataFrame::new(
        rows,
        vec![
            times,
            Column::new("model_version".into(), versions),
            Column::new("amount".into(), amount),
            Column::new("items".into(), items),
            Column::new("ratio".into(), ratio),
            Column::new("product".into(), product),
            Column::new("prediction".into(), prediction),
            Column::new("actual_label".into(), label),
        ],
    )?)
}
