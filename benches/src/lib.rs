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
