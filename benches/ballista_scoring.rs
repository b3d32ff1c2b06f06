//! Scoring on Ballista against one process, on the same Parquet file: the packaged
//! transactions model, pinned by alias, summed over every row with
//! `SELECT sum(predict(...)) FROM transactions`, on a DataFusion session in this process and
//! on a Ballista cluster on this machine (a scheduler and two executors of one task slot each,
//! talking gRPC and Arrow Flight over loopback, as separate machines would).
//!
//! Two executors on one machine share its cores, so the figure is the cost of distribution
//! (planning on the scheduler, task dispatch, shuffle and result transfer), not a speed-up;
//! the rate per executor is what each added machine contributes.
//!
//! `cargo bench -p mlops-benches --features ballista --bench ballista_scoring` scores
//! 1,000,000 rows; in test mode (`cargo test --benches`) it scores 20,000 rows once.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mlops_core::FlavorRegistry;
use mlops_infer::ballista::executor::executor_process::ExecutorProcessConfig;
use mlops_infer::ballista::scheduler::config::SchedulerConfig;
use mlops_infer::ballista::{ClusterModels, remote_context};
use mlops_infer::sql::ModelCatalog;
use mlops_infer::sql::datafusion::arrow::array::{Array, Float64Array, RecordBatch};
use mlops_infer::sql::datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use mlops_registry::{MemoryRegistry, Registry};

const CHAMPION: &str = "models:/transactions@champion";
const EXECUTORS: usize = 2;

fn rows() -> usize {
    mlops_benches::bench_rows(1_000_000, 20_000)
}

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The one value of a `sum(...)` query.
fn total(batches: &[RecordBatch]) -> f64 {
    let column = batches.first().expect("a batch").column(0);
    column.as_any().downcast_ref::<Float64Array>().expect("a sum").value(0)
}

fn ballista_scoring(c: &mut Criterion) {
    let prepared = mlops_benches::prepare(&data_dir(), rows()).expect("benchmark data");
    println!("benchmark data: {}", prepared.score.display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let flavors = FlavorRegistry::with_builtins();
    let registry = Arc::new(MemoryRegistry::new());
    let path = prepared.score.to_str().expect("utf-8 path").to_owned();
    let inputs = ["Product", "CustomerID", "Amount", "MaxProductAmount", "MaxDifferenceRatio", "transactionCount"]
        .map(|c| format!("'{c}', \"{c}\""))
        .join(", ");
    let sql = format!("SELECT sum(predict('{CHAMPION}', named_struct({inputs}))) AS total FROM transactions");
    let (local, cluster) = runtime.block_on(async {
        mlops_benches::register_champion(registry.as_ref(), &prepared).await.expect("registered");
        let mut catalog = ModelCatalog::new();
        catalog.pin(registry.as_ref(), &CHAMPION.parse().expect("uri"), &flavors).await.expect("pinned");

        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let config =
            || SessionConfig::new().with_target_partitions(threads).with_batch_size(mlops_infer::DEFAULT_CHUNK_ROWS);
        let local = SessionContext::new_with_config(config());
        catalog.register(&local);
        local.register_parquet("transactions", &path, ParquetReadOptions::default()).await.expect("table");

        let models = ClusterModels::new(Arc::clone(&registry) as Arc<dyn Registry>, flavors.clone()).expect("models");
        let scheduler_port = free_port();
        let scheduler = SchedulerConfig {
            bind_host: "127.0.0.1".into(),
            external_host: "127.0.0.1".into(),
            bind_port: scheduler_port,
            ..SchedulerConfig::default()
        };
        let serving = models.clone();
        tokio::spawn(async move { serving.run_scheduler(scheduler).await.expect("scheduler") });
        while tokio::net::TcpStream::connect(("127.0.0.1", scheduler_port)).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let work = tempfile::tempdir().expect("work directory").keep();
        for index in 0..EXECUTORS {
            let executor = ExecutorProcessConfig {
                bind_host: "127.0.0.1".into(),
                external_host: Some("127.0.0.1".into()),
                port: free_port(),
                grpc_port: free_port(),
                scheduler_host: "127.0.0.1".into(),
                scheduler_port,
                vcores: 1,
                work_dir: Some(work.join(format!("executor-{index}")).display().to_string()),
                ..ExecutorProcessConfig::default()
            };
            let serving = models.clone();
            tokio::spawn(async move { serving.run_executor(executor).await.expect("executor") });
        }
        let (cluster, _) = remote_context(&format!("df://127.0.0.1:{scheduler_port}"), &catalog).await.expect("client");
        cluster.register_parquet("transactions", &path, ParquetReadOptions::default()).await.expect("table");
        (local, cluster)
    });
    let run = |ctx: &SessionContext| {
        runtime.block_on(async { ctx.sql(&sql).await.expect("plans").collect().await.expect("runs") })
    };
    // The executors register shortly after starting; the first query waits for them.
    let expected = total(&run(&local));
    assert!((total(&run(&cluster)) - expected).abs() <= expected.abs() * 1e-9, "the cluster scores the same rows");

    let mut group = c.benchmark_group("ballista_scoring");
    group.throughput(Throughput::Elements(rows() as u64));
    group.sample_size(10);
    group.bench_function("datafusion_one_process", |b| b.iter(|| run(&local)));
    group.bench_function("ballista_two_executors", |b| b.iter(|| run(&cluster)));
    group.finish();
}

criterion_group!(benches, ballista_scoring);
criterion_main!(benches);
