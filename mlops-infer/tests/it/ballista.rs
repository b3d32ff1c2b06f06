//! Scoring on Ballista: Delta tables read as the Parquet files of one snapshot, `predict`
//! and `score` on an in-process cluster against the batch scorer, and a cluster of separate
//! processes (a scheduler and two executors) on the S3-compatible server that loses an
//! executor to SIGKILL in the middle of a query and still returns every row once.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::compute::concat_batches;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::logstore::{StorageConfig, default_logstore};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, ObjectStore};
use mlops_core::{Flavor, FlavorRegistry, Model, Package, Signature};
use mlops_infer::ballista::ClusterModels;
use mlops_infer::ballista::executor::executor_process::ExecutorProcessConfig;
use mlops_infer::ballista::scheduler::config::SchedulerConfig;
use mlops_infer::sql::ModelCatalog;
use mlops_infer::{
    ACTUAL_LABEL, BatchScorer, InferenceTable, InferenceTableConfig, MODEL_VERSION, PREDICTION, ROW_ID, TableLocation,
};
use mlops_registry::{ObjectStoreRegistry, Registry, SetAlias};
use object_store::prefix::PrefixStore;
use polars::prelude::DataFrame;

use crate::inference_table::{classifier, records};
use crate::servers::{options, s3_bucket_url, unique_prefix};
use crate::sql::fill_registry;

const CHAMPION: &str = "models:/fraud@champion";

/// The records `start..start + rows` as an Arrow batch of `id` and `Amount`.
fn batch_of(start: usize, rows: usize) -> RecordBatch {
    let frame = records(start..start + rows);
    let ids: Vec<String> = frame.column("id").unwrap().str().unwrap().iter().map(|v| v.unwrap().to_owned()).collect();
    let amounts: Vec<f64> = frame.column("Amount").unwrap().f64().unwrap().into_no_null_iter().collect();
    RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(ids)) as Arc<dyn Array>),
        ("Amount", Arc::new(Float64Array::from(amounts)) as Arc<dyn Array>),
    ])
    .unwrap()
}

/// The Delta table at `location`, opened on its own store.
fn delta_table(location: &TableLocation) -> DeltaTable {
    let prefix = object_store::path::Path::from_url_path(location.url().path()).unwrap();
    let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(Arc::clone(location.store()), prefix));
    DeltaTable::new(default_logstore(prefixed, Arc::clone(location.store()), location.url(), &StorageConfig::default()))
}

/// Writes `files` commits of `rows` records each (one Parquet file per commit) as a Delta
/// table at `location`; returns the records.
async fn write_transactions(location: &TableLocation, files: usize, rows: usize) -> DataFrame {
    for file in 0..files {
        let mut table = delta_table(location);
        if file > 0 {
            table.load().await.unwrap();
        }
        table.write(vec![batch_of(file * rows, rows)]).with_save_mode(SaveMode::Append).await.unwrap();
    }
    records(0..files * rows).select(["id", "Amount"]).unwrap()
}

/// Checks rows (`id`, prediction, version) against the batch scorer on `expected_input`:
/// each row once, scored by version 1.
fn assert_scored_once(rows: Vec<(String, f64, i64)>, expected_input: &DataFrame) {
    let mut scored: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    for (id, prediction, version) in rows {
        let previous = scored.insert(id.clone(), (prediction, version));
        assert!(previous.is_none(), "row `{id}` came back twice");
    }
    let expected = BatchScorer::new("fraud", 1, Arc::new(classifier(0.0))).score(expected_input).unwrap();
    assert_eq!(scored.len(), expected.height(), "every row comes back once");
    let expected_ids = expected.column("id").unwrap().str().unwrap();
    let expected_predictions = expected.column(PREDICTION).unwrap().f64().unwrap();
    for (id, prediction) in expected_ids.no_null_iter().zip(expected_predictions.into_no_null_iter()) {
        let Some(&(got, version)) = scored.get(id) else { panic!("row `{id}` is missing") };
        assert_eq!(got, prediction, "row `{id}`");
        assert_eq!(version, 1, "row `{id}` is scored by the pinned version");
    }
}

/// The rows of a query's result.
fn batch_rows(batch: &RecordBatch) -> Vec<(String, f64, i64)> {
    let ids = batch.column_by_name("id").unwrap();
    let predictions = batch.column_by_name(PREDICTION).unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
    let versions = batch.column_by_name(MODEL_VERSION).unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    (0..batch.num_rows())
        .map(|i| {
            let id = deltalake::arrow::util::display::array_value_to_string(ids, i).unwrap();
            (id, predictions.value(i), versions.value(i))
        })
        .collect()
}

/// The rows of an inference table.
async fn table_rows(table: &InferenceTable) -> Vec<(String, f64, i64)> {
    let frame = table.read().await.unwrap();
    let ids = frame.column("id").unwrap().str().unwrap();
    let predictions = frame.column(PREDICTION).unwrap().f64().unwrap();
    let versions = frame.column(MODEL_VERSION).unwrap().i64().unwrap();
    assert_eq!(frame.column(ROW_ID).unwrap().null_count(), 0, "every row has an id");
    assert_eq!(frame.column(ACTUAL_LABEL).unwrap().null_count(), frame.height(), "labels start empty");
    ids.no_null_iter()
        .zip(predictions.into_no_null_iter())
        .zip(versions.into_no_null_iter())
        .map(|((id, p), v)| (id.to_owned(), p, v))
        .collect()
}

async fn collect(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let frame = ctx.sql(sql).await.unwrap();
    let schema = Arc::new(frame.schema().as_arrow().clone());
    concat_batches(&schema, &frame.collect().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_reads_as_its_parquet_files_and_later_commits_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let location = TableLocation::local(dir.path().join("transactions")).unwrap();
    let input = write_transactions(&location, 3, 400).await;
    let snapshot = location.snapshot_files().await.unwrap();
    assert_eq!(snapshot.version(), 2);
    assert_eq!(snapshot.files().len(), 3);
    for file in snapshot.files() {
        let path = url::Url::parse(&file.url).unwrap().to_file_path().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), file.size, "{}", file.url);
    }
    // A commit after the snapshot is not part of it.
    let mut table = delta_table(&location);
    table.load().await.unwrap();
    table.write(vec![batch_of(10_000, 50)]).with_save_mode(SaveMode::Append).await.unwrap();

    let ctx = SessionContext::new();
    snapshot.register_in(&ctx, "transactions").unwrap();
    let counted =
        collect(&ctx, r#"SELECT count(*) AS n, count(DISTINCT id) AS ids, sum("Amount") AS total FROM transactions"#)
            .await;
    let column =
        |name: &str| counted.column_by_name(name).unwrap().as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    assert_eq!(column("n"), input.height() as i64);
    assert_eq!(column("ids"), input.height() as i64);
    let total = counted.column_by_name("total").unwrap().as_any().downcast_ref::<Float64Array>().unwrap().value(0);
    assert_eq!(total, input.column("Amount").unwrap().f64().unwrap().into_no_null_iter().sum::<f64>());
    assert_eq!(location.snapshot_files().await.unwrap().files().len(), 4);
}

/// Rewrites the actions of commit 0 of the table in `table_dir` with `change`, removing
/// whatever else the log holds (checksums), so the table reads as the changed log says.
fn rewrite_first_commit(table_dir: &FsPath, mut change: impl FnMut(&mut serde_json::Value)) {
    let log = table_dir.join("_delta_log");
    let commit = log.join(format!("{:020}.json", 0));
    let mut lines = Vec::new();
    for line in std::fs::read_to_string(&commit).unwrap().lines() {
        let mut action: serde_json::Value = serde_json::from_str(line).unwrap();
        change(&mut action);
        lines.push(action.to_string());
    }
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            std::fs::remove_file(path).unwrap();
        }
    }
    std::fs::write(&commit, lines.join("\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_whose_files_do_not_hold_exactly_their_rows_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TableLocation::local(dir.path().join("missing")).unwrap();
    let error = missing.snapshot_files().await.unwrap_err().to_string();
    assert!(error.contains("no Delta table"), "{error}");

    // Partition values live in the log, not in the files.
    let partitioned = TableLocation::local(dir.path().join("partitioned")).unwrap();
    let batch = batch_of(0, 10);
    delta_table(&partitioned)
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .with_partition_columns(["Amount"])
        .await
        .unwrap();
    let error = partitioned.snapshot_files().await.unwrap_err().to_string();
    assert!(error.contains("partition columns (Amount)"), "{error}");

    // A deletion vector on a file hides rows the file still holds.
    let deleted = TableLocation::local(dir.path().join("deleted")).unwrap();
    write_transactions(&deleted, 1, 10).await;
    rewrite_first_commit(&dir.path().join("deleted"), |action| {
        if let Some(protocol) = action.get_mut("protocol") {
            *protocol = serde_json::json!({
                "minReaderVersion": 3, "minWriterVersion": 7,
                "readerFeatures": ["deletionVectors"], "writerFeatures": ["deletionVectors"]
            });
        }
        if let Some(add) = action.get_mut("add") {
            add["deletionVector"] = serde_json::json!({
                "storageType": "i", "pathOrInlineDv": "wi5b=000010000siXQKl0rr91000f55c8Xg0@@D72lkbi5=-{L",
                "sizeInBytes": 40, "cardinality": 6
            });
        }
    });
    let error = deleted.snapshot_files().await.unwrap_err().to_string();
    assert!(error.contains("a deletion vector on file"), "{error}");
    assert!(error.contains("register_in"), "the error names the way out: {error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn files_whose_names_need_encoding_are_read_by_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let location = TableLocation::local(dir.path().join("odd")).unwrap();
    write_transactions(&location, 1, 10).await;
    let table_dir = dir.path().join("odd");
    rewrite_first_commit(&table_dir, |action| {
        if let Some(add) = action.get_mut("add") {
            let written = add["path"].as_str().unwrap().to_owned();
            std::fs::rename(table_dir.join(&written), table_dir.join("a #1?.parquet")).unwrap();
            // Delta records paths URL-encoded.
            add["path"] = serde_json::json!("a%20%231%3F.parquet");
        }
    });
    let snapshot = location.snapshot_files().await.unwrap();
    let ctx = SessionContext::new();
    snapshot.register_in(&ctx, "odd").unwrap();
    let counted = collect(&ctx, "SELECT count(*) AS n FROM odd").await;
    assert_eq!(counted.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 10, "{:?}", snapshot.files());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loading_catalog_loads_the_versions_plans_name_and_refuses_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(ObjectStoreRegistry::local(dir.path()).unwrap());
    fill_registry(registry.as_ref()).await;
    let catalog = ModelCatalog::loading(registry, FlavorRegistry::with_builtins()).unwrap();
    let second = catalog.get("models:/fraud/2").unwrap();
    assert_eq!((second.name(), second.version()), ("fraud", 2));
    assert!(Arc::ptr_eq(&second, &catalog.get("models:/fraud/2").unwrap()), "a version loads once");
    let error = catalog.get(CHAMPION).unwrap_err().to_string();
    assert!(error.contains("loads only version URIs"), "{error}");
    let error = catalog.get("models:/fraud/9").unwrap_err().to_string();
    assert!(error.contains('9'), "{error}");
    // Dropped inside a runtime, as a session drops it.
    drop(catalog);
}

#[tokio::test(flavor = "multi_thread")]
async fn predict_and_score_on_an_in_process_ballista_cluster_equal_the_batch_scorer() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ObjectStoreRegistry::local(dir.path().join("registry")).unwrap();
    fill_registry(&registry).await;
    let location = TableLocation::local(dir.path().join("transactions")).unwrap();
    let input = write_transactions(&location, 4, 500).await;

    let mut catalog = ModelCatalog::new();
    catalog.pin(&registry, &CHAMPION.parse().unwrap(), &FlavorRegistry::with_builtins()).await.unwrap();
    let (ctx, _) = mlops_infer::ballista::standalone_context(&catalog, &[]).await.unwrap();
    location.snapshot_files().await.unwrap().register_in(&ctx, "transactions").unwrap();

    let scored = collect(&ctx, &format!("SELECT * FROM score('{CHAMPION}', 'transactions')")).await;
    assert_scored_once(batch_rows(&scored), &input);
    let called = collect(
        &ctx,
        &format!(
            "SELECT id, predict('{CHAMPION}', \"Amount\") AS {PREDICTION}, model_version('{CHAMPION}') AS {MODEL_VERSION} FROM transactions"
        ),
    )
    .await;
    assert_scored_once(batch_rows(&called), &input);

    // Written by the executor, committed here once: a second run of the job adds nothing.
    let inference = InferenceTable::new(
        TableLocation::local(dir.path().join("inference")).unwrap(),
        InferenceTableConfig::new(["id"]),
    )
    .unwrap();
    for run in 0..2 {
        let query = ctx.sql(&format!("SELECT * FROM score('{CHAMPION}', 'transactions')")).await.unwrap();
        let appended = inference.append_cluster_query(query, "nightly-scoring", 1).await.unwrap();
        match run {
            0 => assert_eq!(appended.unwrap().rows, input.height()),
            _ => assert!(appended.is_none(), "the job is recorded"),
        }
    }
    assert_scored_once(table_rows(&inference).await, &input);
}

// A cluster of processes: each is this test binary, run with the role in the environment.

const MEMBER: &str = "MLOPS_TEST_BALLISTA_MEMBER";
const REGISTRY: &str = "MLOPS_TEST_BALLISTA_REGISTRY";
const BUCKET: &str = "MLOPS_TEST_BALLISTA_BUCKET";
const GATE: &str = "MLOPS_TEST_BALLISTA_GATE";
const SCHEDULER_PORT: &str = "MLOPS_TEST_BALLISTA_SCHEDULER_PORT";
const PORTS: &str = "MLOPS_TEST_BALLISTA_PORTS";

/// A classifier whose predictions on rows wait until the file `open` appears in the gate
/// directory, after marking that this process has started one: the test then knows that
/// both executors hold tasks when it kills one.
struct GatedModel {
    inner: Arc<dyn Model>,
    gate: PathBuf,
}

impl Model for GatedModel {
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        if input.height() > 0 {
            std::fs::write(self.gate.join(format!("started-{}", std::process::id())), b"").unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !self.gate.join("open").exists() {
                assert!(Instant::now() < deadline, "the gate never opened");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.inner.predict(input)
    }
}

struct GatedFlavor {
    builtins: FlavorRegistry,
    gate: PathBuf,
}

impl Flavor for GatedFlavor {
    fn name(&self) -> &str {
        "tabular_classifier"
    }

    fn load(&self, package: &Package) -> mlops_core::Result<Arc<dyn Model>> {
        Ok(Arc::new(GatedModel { inner: self.builtins.load(package)?, gate: self.gate.clone() }))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs inside the child processes of the cluster test; does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of the Ballista cluster test"]
fn cluster_member() {
    let Ok(role) = std::env::var(MEMBER) else { return };
    let var = |name: &str| std::env::var(name).unwrap();
    // Threads to spare: two tasks block in the gate while heartbeats must go on.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(6).enable_all().build().unwrap();
    runtime.block_on(async {
        let registry_url = var(REGISTRY);
        let registry = Arc::new(ObjectStoreRegistry::open(&registry_url, options(&registry_url)).unwrap());
        let mut flavors = FlavorRegistry::with_builtins();
        flavors.register(Arc::new(GatedFlavor { builtins: FlavorRegistry::with_builtins(), gate: var(GATE).into() }));
        let bucket = var(BUCKET);
        let models = ClusterModels::new(registry, flavors).unwrap().with_store_url(&bucket, options(&bucket)).unwrap();
        let scheduler_port: u16 = var(SCHEDULER_PORT).parse().unwrap();
        if role == "scheduler" {
            let config = SchedulerConfig {
                bind_host: "127.0.0.1".into(),
                external_host: "127.0.0.1".into(),
                bind_port: scheduler_port,
                executor_timeout_seconds: 3,
                expire_dead_executor_interval_seconds: 1,
                ..SchedulerConfig::default()
            };
            models.run_scheduler(config).await.unwrap();
        } else {
            let ports: Vec<u16> = var(PORTS).split(',').map(|p| p.parse().unwrap()).collect();
            let work_dir = tempfile::tempdir().unwrap();
            let config = ExecutorProcessConfig {
                bind_host: "127.0.0.1".into(),
                external_host: Some("127.0.0.1".into()),
                port: ports[0],
                grpc_port: ports[1],
                scheduler_host: "127.0.0.1".into(),
                scheduler_port,
                vcores: 2,
                work_dir: Some(work_dir.path().display().to_string()),
                executor_heartbeat_interval_seconds: 1,
                ..ExecutorProcessConfig::default()
            };
            models.run_executor(config).await.unwrap();
        }
    });
}

/// A member process, killed when the test ends however it ends.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_member(role: &str, env: &[(&str, String)], log: &FsPath) -> Member {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--ignored", "--exact", "ballista::cluster_member", "--test-threads", "1", "--nocapture"])
        .env(MEMBER, role)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(log.with_extension("err")).unwrap()));
    for (name, value) in env {
        command.env(name, value);
    }
    Member(command.spawn().unwrap())
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The logs of the member processes, for a failure report.
fn member_logs(dir: &FsPath) -> String {
    let mut logs = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log" || e == "err") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: String =
                text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            logs.push_str(&format!("--- {}\n{tail}\n", path.display()));
        }
    }
    logs
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ballista_cluster_scores_a_delta_table_on_s3_by_alias_and_survives_losing_an_executor() {
    let Some(bucket) = s3_bucket_url() else { return };
    let prefix = unique_prefix("ballista");
    let registry_url = format!("{bucket}/{prefix}/registry");
    let registry = ObjectStoreRegistry::open(&registry_url, options(&registry_url)).unwrap();
    fill_registry(&registry).await;
    let table_url = format!("{bucket}/{prefix}/transactions");
    let location = TableLocation::open(&table_url, options(&table_url)).unwrap();
    let input = write_transactions(&location, 8, 500).await;

    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    let scheduler_port = free_port();
    let env = vec![
        (REGISTRY, registry_url.clone()),
        (BUCKET, bucket.clone()),
        (GATE, gate.display().to_string()),
        (SCHEDULER_PORT, scheduler_port.to_string()),
    ];
    let _scheduler = spawn_member("scheduler", &env, &dir.path().join("scheduler.log"));
    wait_for("the scheduler", Duration::from_secs(60), || listening(scheduler_port));
    let mut executors = Vec::new();
    for index in 0..2 {
        let ports = [free_port(), free_port()];
        let mut env = env.clone();
        env.push((PORTS, format!("{},{}", ports[0], ports[1])));
        executors.push(spawn_member("executor", &env, &dir.path().join(format!("executor-{index}.log"))));
        wait_for("an executor", Duration::from_secs(60), || listening(ports[0]) && listening(ports[1]));
    }

    let mut catalog = ModelCatalog::new();
    catalog.pin(&registry, &CHAMPION.parse().unwrap(), &FlavorRegistry::with_builtins()).await.unwrap();
    let (ctx, _) =
        mlops_infer::ballista::remote_context(&format!("df://127.0.0.1:{scheduler_port}"), &catalog).await.unwrap();
    // A partition per file: more tasks than the executors' four slots, so both get some.
    ctx.sql("SET datafusion.execution.target_partitions = 8").await.unwrap().collect().await.unwrap();
    location.snapshot_files().await.unwrap().register_in(&ctx, "transactions").unwrap();
    // The alias moves once the query is planned: the cluster still scores with version 1.
    let query = ctx.sql(&format!("SELECT * FROM score('{CHAMPION}', 'transactions')")).await.unwrap();
    registry.set_alias(SetAlias::new("fraud".parse().unwrap(), "champion", 2)).await.unwrap();
    let inference =
        InferenceTable::new(location.sibling("inference").unwrap(), InferenceTableConfig::new(["id"])).unwrap();
    let writer = inference.clone();
    let running = tokio::spawn(async move { writer.append_cluster_query(query, "nightly-scoring", 1).await });

    let pids: Vec<u32> = executors.iter().map(|m| m.0.id()).collect();
    let started = |pid: &u32| gate.join(format!("started-{pid}")).exists();
    let logs = dir.path().to_owned();
    wait_for("both executors to score", Duration::from_secs(90), || {
        assert!(!running.is_finished(), "the query ended early:\n{}", member_logs(&logs));
        pids.iter().all(started)
    });
    let mut killed = executors.remove(0);
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    std::fs::write(gate.join("open"), b"").unwrap();

    match tokio::time::timeout(Duration::from_secs(180), running).await {
        Ok(Ok(Ok(Some(appended)))) => assert_eq!(appended.rows, input.height()),
        outcome => panic!("the query did not complete: {outcome:?}\n{}", member_logs(dir.path())),
    }
    assert_scored_once(table_rows(&inference).await, &input);
}
