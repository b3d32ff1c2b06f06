//! Streaming into Delta Lake: files of 10,000 transactions scored and committed to an
//! inference table one micro-batch each (throughput, and per-batch latency p50 / p99), and
//! the cost of a Delta append and of a label MERGE as the table grows.
//!
//! `cargo bench -p mlops-benches --features delta --bench streaming` streams 200,000 rows
//! and grows tables to 1,000,000 rows; `benches/compare-streaming.sh` runs it beside the
//! Python peer (MLflow pyfunc + the `deltalake` package) on the same files. In test mode
//! (`cargo test --benches`) everything runs once on small inputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::{FlavorRegistry, read_parquet, write_parquet};
use mlops_examples::transactions::{KEYS, LABEL};
use mlops_infer::stream::{Checkpoint, FileFormat, FileSource, StreamingScorer};
use mlops_infer::{BatchScorer, InferenceTable, InferenceTableConfig, TableLocation};
use mlops_registry::{LoadedModel, ModelSlot};
use object_store::local::LocalFileSystem;
use parking_lot::Mutex;
use polars::prelude::*;

const BATCH_ROWS: usize = 10_000;

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

/// Splits the prepared scoring rows into Parquet files of `BATCH_ROWS`, once.
fn input_files(score: &Path, dir: &Path) -> usize {
    let frame = read_parquet(score).expect("scoring rows");
    let files = frame.height() / BATCH_ROWS;
    if dir.join(format!("part-{:05}.parquet", files - 1)).exists() {
        return files;
    }
    std::fs::create_dir_all(dir).expect("input directory");
    for i in 0..files {
        let mut part = frame.slice((i * BATCH_ROWS) as i64, BATCH_ROWS);
        write_parquet(&mut part, &dir.join(format!("part-{i:05}.parquet"))).expect("input file");
    }
    files
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
}

fn table(dir: &Path) -> InferenceTable {
    let config = InferenceTableConfig::new(KEYS).label_type(DataType::Int64);
    InferenceTable::new(TableLocation::local(dir).expect("table location"), config).expect("inference table")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn streaming(c: &mut Criterion) {
    let rows = if mlops_benches::benchmarking() { 200_000 } else { 2 * BATCH_ROWS };
    let prepared = mlops_benches::prepare(&data_dir(), rows).expect("benchmark data");
    let model =
        FlavorRegistry::with_builtins().load(&mlops_benches::package(&prepared).expect("package")).expect("model");
    let model =
        Arc::new(ModelSlot::loaded(LoadedModel::unregistered("transactions".parse().expect("model name"), 1, model)));
    let input = prepared.score.parent().expect("data directory").join("stream-input");
    let files = input_files(&prepared.score, &input);
    println!("streaming {files} files of {BATCH_ROWS} rows from {}", input.display());
    let rt = runtime();

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut group = c.benchmark_group("streaming");
    group.throughput(Throughput::Elements((files * BATCH_ROWS) as u64));
    group.sample_size(10);
    group.bench_function("files_to_delta", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let work = tempfile::tempdir().expect("work directory");
                let source = FileSource::new(
                    Arc::new(LocalFileSystem::new_with_prefix(&input).expect("input store")),
                    Default::default(),
                    FileFormat::Parquet,
                )
                .max_files_per_batch(1)
                .expect("files per batch");
                let last = Arc::new(Mutex::new(Instant::now()));
                let (recorded, last_batch) = (Arc::clone(&latencies), Arc::clone(&last));
                let mut stream = StreamingScorer::new(
                    "bench",
                    source,
                    model.clone(),
                    Arc::new(table(&work.path().join("inference"))),
                    Checkpoint::local(work.path().join("checkpoint")).expect("checkpoint"),
                )
                .on_batch(move |_| {
                    let now = Instant::now();
                    let mut last = last_batch.lock();
                    recorded.lock().push(now - *last);
                    *last = now;
                });
                let started = Instant::now();
                *last.lock() = started;
                let report = rt.block_on(stream.run(std::future::pending())).expect("stream runs");
                total += started.elapsed();
                assert_eq!(report.scored, files * BATCH_ROWS);
            }
            total
        });
    });
    group.finish();

    let mut all = latencies.lock().clone();
    all.sort();
    let (p50, p99) = (percentile(&all, 0.5), percentile(&all, 0.99));
    println!("micro-batch latency over {} batches of {BATCH_ROWS} rows: p50 {p50:.2?}, p99 {p99:.2?}", all.len());
    let summary = serde_json::json!({
        "batches": all.len(),
        "batch_rows": BATCH_ROWS,
        "p50_seconds": p50.as_secs_f64(),
        "p99_seconds": p99.as_secs_f64(),
    });
    let out = PathBuf::from(std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into()))
        .join("criterion/streaming/latency.json");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).expect("criterion directory");
    }
    std::fs::write(&out, summary.to_string()).expect("latency summary");
}

/// Appends of 10,000 scored rows and MERGEs of 1,000 labels into tables of growing size.
fn table_growth(c: &mut Criterion) {
    let sizes: &[usize] = if mlops_benches::benchmarking() { &[0, 100_000, 1_000_000] } else { &[0, BATCH_ROWS] };
    let largest = sizes.iter().max().copied().unwrap_or(0);
    let prepared = mlops_benches::prepare(&data_dir(), largest + 20 * BATCH_ROWS).expect("benchmark data");
    let model =
        FlavorRegistry::with_builtins().load(&mlops_benches::package(&prepared).expect("package")).expect("model");
    let scorer = BatchScorer::new("transactions", 1, model);
    let rt = runtime();
    let all = read_parquet(&prepared.score).expect("scoring rows");
    let scored = rt
        .block_on(async {
            let all = all.clone();
            tokio::task::spawn_blocking(move || scorer.score(&all).expect("scores")).await
        })
        .expect("scoring task");

    let mut group = c.benchmark_group("delta");
    group.sample_size(10);
    for &size in sizes {
        let work = tempfile::tempdir().expect("work directory");
        let table = table(&work.path().join("inference"));
        // Grow the table in commits of 100,000 rows.
        rt.block_on(async {
            for start in (0..size).step_by(100_000) {
                table.append(&scored.slice(start as i64, 100_000.min(size - start))).await.expect("append");
            }
        });
        let mut next = size;
        group.throughput(Throughput::Elements(BATCH_ROWS as u64));
        group.bench_with_input(BenchmarkId::new("append_10k_rows", size), &size, |b, _| {
            b.iter(|| {
                let batch = scored.slice(next as i64, BATCH_ROWS);
                next += BATCH_ROWS;
                if next + BATCH_ROWS > scored.height() {
                    next = size;
                }
                rt.block_on(table.append(&batch)).expect("append");
            });
        });
        let labels =
            all.slice(0, 1_000.min(size.max(BATCH_ROWS))).select(KEYS.into_iter().chain([LABEL])).expect("labels");
        let labels = labels.lazy().with_column(col(LABEL).cast(DataType::Int64)).collect().expect("labels");
        let mut flip = 0i64;
        group.throughput(Throughput::Elements(labels.height() as u64));
        group.bench_with_input(BenchmarkId::new("merge_1k_labels", size), &size, |b, _| {
            b.iter(|| {
                // Alternate the values so every merge rewrites the labelled rows.
                flip = 1 - flip;
                let changed = labels.clone().lazy().with_column(lit(flip).alias(LABEL)).collect().expect("labels");
                rt.block_on(table.merge_labels(&changed, LABEL)).expect("merge");
            });
        });
    }
    group.finish();
}

criterion_group!(benches, streaming, table_growth);
criterion_main!(benches);
