//! Batch scoring throughput of the packaged transactions model: signature enforcement,
//! preprocessing and prediction over a frame read from Parquet, through the public API.
//!
//! `cargo bench -p mlops-benches --bench batch_scoring` scores 1,000,000 rows;
//! `benches/compare.sh` runs it beside the MLflow pyfunc peer on the same Parquet file.
//! In test mode (`cargo test --benches`) it scores 20,000 rows once.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::{FlavorRegistry, read_parquet};
use mlops_infer::BatchScorer;

fn rows() -> usize {
    mlops_benches::bench_rows(1_000_000, 20_000)
}

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

fn batch_scoring(c: &mut Criterion) {
    let prepared = mlops_benches::prepare(&data_dir(), rows()).expect("benchmark data");
    println!("benchmark data: {}", prepared.score.display());
    let package = mlops_benches::package(&prepared).expect("packaged model");
    let model = FlavorRegistry::with_builtins().load(&package).expect("model loads");
    let frame = read_parquet(&prepared.score).expect("scoring frame");

    let mut group = c.benchmark_group("batch_scoring");
    group.throughput(Throughput::Elements(frame.height() as u64));
    group.sample_size(10);
    let parallel = BatchScorer::new("transactions", 1, Arc::clone(&model));
    group.bench_function("transactions_parallel_chunks", |b| b.iter(|| parallel.score(&frame).expect("scores")));
    let single = BatchScorer::new("transactions", 1, model).chunk_rows(usize::MAX).expect("valid chunk size");
    group.bench_function("transactions_one_chunk", |b| b.iter(|| single.score(&frame).expect("scores")));
    group.finish();
}

criterion_group!(benches, batch_scoring);
criterion_main!(benches);
