//! Batch scoring throughput of a scikit-learn pipeline exported to ONNX and saved by MLflow
//! (one-hot Product and CustomerID, scaled numbers, logistic regression; made by
//! `benches/peer/onnx_batch.py prepare` from the same training rows as the other
//! benchmarks), through `BatchScorer` on the same Parquet file the peers score.
//!
//! `cargo bench -p mlops-benches --bench onnx_scoring` scores 1,000,000 rows, and 1 and 100
//! rows (`onnx_request`, what a request costs the model);
//! `benches/compare-onnx.sh` runs it beside `mlflow.pyfunc` and a bare onnxruntime
//! session. In test mode it scores 20,000 rows once. It needs Python with the test
//! packages (`MLOPS_PYTHON`, as `scripts/test.sh` sets) to export the model, and says so
//! when it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::{FlavorRegistry, MLMODEL_FILE, Package, read_parquet};
use mlops_infer::BatchScorer;

fn rows() -> usize {
    mlops_benches::bench_rows(1_000_000, 20_000)
}

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

fn onnx_scoring(c: &mut Criterion) {
    let prepared = mlops_benches::prepare(&data_dir(), rows()).expect("benchmark data");
    let data = prepared.score.parent().expect("data directory").to_path_buf();
    let model_dir = data.join("onnx-model");
    if !model_dir.join(MLMODEL_FILE).exists() {
        let Some(python) = std::env::var_os("MLOPS_PYTHON") else {
            println!("skipped: exporting the model needs Python with skl2onnx and mlflow (MLOPS_PYTHON is not set)");
            return;
        };
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peer").join("onnx_batch.py");
        let status =
            Command::new(python).arg(script).arg("prepare").arg(&data).arg(&model_dir).status().expect("python runs");
        assert!(status.success(), "onnx_batch.py prepare failed");
    }
    println!("benchmark data: {}, model: {}", prepared.score.display(), model_dir.display());
    let package = Package::read_dir(&model_dir).expect("MLflow model directory");
    let model = FlavorRegistry::with_builtins().load(&package).expect("model loads");
    let frame = read_parquet(&prepared.score).expect("scoring frame");

    let mut group = c.benchmark_group("onnx_scoring");
    group.throughput(Throughput::Elements(frame.height() as u64));
    group.sample_size(10);
    let scorer = BatchScorer::new("transactions_onnx", 1, Arc::clone(&model));
    group.bench_function("sklearn_pipeline_parallel_chunks", |b| b.iter(|| scorer.score(&frame).expect("scores")));
    group.finish();

    // What a request of 1 or 100 records costs the model: the signature's checks, the
    // graph's run and the output columns.
    let mut group = c.benchmark_group("onnx_request");
    for rows in [1, 100] {
        let head = frame.head(Some(rows));
        group.bench_function(format!("sklearn_pipeline_predict_{rows}"), |b| {
            b.iter(|| model.predict(&head).expect("predicts"))
        });
    }
    group.finish();
}

criterion_group!(benches, onnx_scoring);
criterion_main!(benches);
