//! SQL scoring against the batch scorer, on the same rows: the packaged transactions model
//! over the rows of one Parquet file held in memory, as `BatchScorer::score` on a Polars
//! frame and as `SELECT * FROM score('models:/transactions@champion', 'transactions')` (and
//! `predict(...)` alone) on a DataFusion table, with the model pinned from a registry.
//!
//! `cargo bench -p mlops-benches --features sql --bench sql_scoring` scores 1,000,000 rows;
//! `benches/compare-sql.sh` runs it beside `mlflow.pyfunc.spark_udf` on local Spark over the
//! same file. In test mode (`cargo test --benches`) it scores 20,000 rows once.

use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::{FlavorRegistry, read_parquet};
use mlops_infer::BatchScorer;
use mlops_infer::sql::ModelCatalog;
use mlops_infer::sql::datafusion::arrow::array::RecordBatch;
use mlops_infer::sql::datafusion::datasource::MemTable;
use mlops_infer::sql::datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use mlops_registry::{MemoryRegistry, RegistryExt};

const CHAMPION: &str = "models:/transactions@champion";

fn rows() -> usize {
    mlops_benches::bench_rows(1_000_000, 20_000)
}

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

/// Rows of the result, which every path must produce in full.
fn rows_of(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn sql_scoring(c: &mut Criterion) {
    let prepared = mlops_benches::prepare(&data_dir(), rows()).expect("benchmark data");
    println!("benchmark data: {}", prepared.score.display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let flavors = FlavorRegistry::with_builtins();
    let registry = MemoryRegistry::new();
    let ctx = runtime.block_on(async {
        mlops_benches::register_champion(&registry, &prepared).await.expect("registered");
        let mut catalog = ModelCatalog::new();
        catalog.pin(&registry, &CHAMPION.parse().expect("uri"), &flavors).await.expect("pinned");
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_target_partitions(threads).with_batch_size(mlops_infer::DEFAULT_CHUNK_ROWS),
        );
        catalog.register(&ctx);
        // The file's rows in memory, its batches dealt round the cores, as the scorer's
        // chunks are.
        let path = prepared.score.to_str().expect("utf-8 path");
        let read = ctx.read_parquet(path, ParquetReadOptions::default()).await.expect("parquet");
        let schema = std::sync::Arc::new(read.schema().as_arrow().clone());
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); threads];
        for (i, batch) in read.collect().await.expect("read").into_iter().enumerate() {
            partitions[i % threads].push(batch);
        }
        let cached = MemTable::try_new(schema, partitions).expect("table");
        ctx.register_table("transactions", std::sync::Arc::new(cached)).expect("table");
        ctx
    });
    let model = runtime.block_on(registry.load_model(&CHAMPION.parse().expect("uri"), &flavors)).expect("model");
    let scorer = BatchScorer::from(model);
    let frame = read_parquet(&prepared.score).expect("scoring frame");
    let score_sql = format!("SELECT * FROM score('{CHAMPION}', 'transactions')");
    let inputs = ["Product", "CustomerID", "Amount", "MaxProductAmount", "MaxDifferenceRatio", "transactionCount"]
        .map(|c| format!("'{c}', \"{c}\""))
        .join(", ");
    let predict_sql = format!("SELECT predict('{CHAMPION}', named_struct({inputs})) AS prediction FROM transactions");
    let run = |sql: &str| runtime.block_on(async { ctx.sql(sql).await.expect("plans").collect().await.expect("runs") });
    assert_eq!(rows_of(&run(&score_sql)), frame.height());
    assert_eq!(rows_of(&run(&predict_sql)), frame.height());

    let mut group = c.benchmark_group("sql_scoring");
    group.throughput(Throughput::Elements(frame.height() as u64));
    group.sample_size(10);
    group.bench_function("batch_scorer", |b| b.iter(|| scorer.score(&frame).expect("scores")));
    group.bench_function("sql_score_table", |b| b.iter(|| run(&score_sql)));
    group.bench_function("sql_predict", |b| b.iter(|| run(&predict_sql)));
    group.finish();

    // What every query pays before it reads a row: parsing, planning and optimizing.
    let mut planning = c.benchmark_group("sql_planning");
    planning.sample_size(10);
    planning.bench_function("sql_predict_plan", |b| {
        b.iter(|| {
            runtime.block_on(async {
                ctx.sql(&predict_sql).await.expect("plans").create_physical_plan().await.expect("physical plan")
            })
        })
    });
    planning.finish();
}

criterion_group!(benches, sql_scoring);
criterion_main!(benches);
