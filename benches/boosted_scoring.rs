//! Batch scoring throughput and one-row latency of gradient-boosted trees trained in
//! Python: an XGBoost and a LightGBM model of 500 trees of depth 8 over 30 features,
//! saved by MLflow (made by `benches/peer/boosted_batch.py prepare`), scored through
//! `BatchScorer` on the same Parquet file the peers score.
//!
//! `cargo bench -p mlops-benches --bench boosted_scoring` scores 1,000,000 rows;
//! `benches/compare-boosted.sh` runs it beside each library's own predictor and
//! `mlflow.pyfunc`. In test mode it scores 2,000 rows of smaller models once. It needs
//! Python with xgboost, lightgbm and mlflow (`MLOPS_PYTHON`, as `scripts/test.sh` sets)
//! to train the models, and says so when it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::{FlavorRegistry, Package, read_parquet};
use mlops_infer::BatchScorer;

fn rows() -> usize {
    mlops_benches::bench_rows(1_000_000, 2_000)
}

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

fn boosted_scoring(c: &mut Criterion) {
    let rows = rows();
    let data = data_dir().join(format!("boosted-{rows}"));
    if !data.join("score.parquet").exists() {
        let Some(python) = std::env::var_os("MLOPS_PYTHON") else {
            println!(
                "skipped: training the models needs Python with xgboost, lightgbm and mlflow (MLOPS_PYTHON is not set)"
            );
            return;
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer").join("boosted_batch.py");
        let mut command = Command::new(python);
        command.arg(script).arg("prepare").arg(&data).arg(rows.to_string());
        if !mlops_benches::benchmarking() {
            // Small models in test mode: the point is that the path runs.
            command.env("MLOPS_BENCH_TREES", "20");
        }
        assert!(command.status().expect("python runs").success(), "boosted_batch.py prepare failed");
    }
    println!("benchmark data: {}", data.display());
    let frame = read_parquet(&data.join("score.parquet")).expect("scoring frame");
    let one = frame.head(Some(1));
    let mut group = c.benchmark_group("boosted_scoring");
    group.sample_size(10);
    for library in ["xgboost", "lightgbm"] {
        let package = Package::read_dir(&data.join(format!("{library}-model"))).expect("MLflow model directory");
        let model = FlavorRegistry::with_builtins().load(&package).expect("model loads");
        group.throughput(Throughput::Elements(frame.height() as u64));
        let scorer = BatchScorer::new(library, 1, Arc::clone(&model));
        group
            .bench_function(format!("{library}_parallel_chunks"), |b| b.iter(|| scorer.score(&frame).expect("scores")));
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{library}_one_row"), |b| b.iter(|| model.predict(&one).expect("scores")));
    }
    group.finish();
}

criterion_group!(benches, boosted_scoring);
criterion_main!(benches);
