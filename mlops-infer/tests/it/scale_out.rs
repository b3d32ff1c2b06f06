//! Several worker processes score the same input files and append to one Delta table:
//! the shards of a job (as a Kubernetes Indexed Job runs them, each finding its index in
//! `JOB_COMPLETION_INDEX`), and workers given every file; every record lands exactly once,
//! and re-running a worker adds nothing.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use futures::TryStreamExt;
use mlops_infer::{InferenceTable, InferenceTableConfig, JOB_COMPLETION_INDEX, Shard, ShardedJob, TableLocation};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use polars::prelude::*;

use crate::inference_table::{records, scorer};
use crate::servers::{options, s3_bucket_url, unique_prefix};

const TABLE_URL: &str = "MLOPS_TEST_SHARD_TABLE";
const INPUT_URL: &str = "MLOPS_TEST_SHARD_INPUT";
const WORKER: &str = "MLOPS_TEST_SHARD_WORKER";
const COMMIT_BYTES: &str = "MLOPS_TEST_SHARD_COMMIT_BYTES";
const WORKERS: usize = 4;
const FILES: usize = 12;
const ROWS_PER_FILE: usize = 250;
const JOB: &str = "score-landing";

fn store_at(url: &str) -> (Box<dyn ObjectStore>, Path) {
    object_store::parse_url_opts(&url::Url::parse(url).unwrap(), options(url)).unwrap()
}

fn table_at(url: &str) -> InferenceTable {
    InferenceTable::new(TableLocation::open(url, options(url)).unwrap(), InferenceTableConfig::new(["id"])).unwrap()
}

/// The input files under `input_url`, in name order.
async fn input_files(input_url: &str) -> (Box<dyn ObjectStore>, Vec<Path>) {
    let (store, prefix) = store_at(input_url);
    let mut files: Vec<Path> = store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await.unwrap();
    files.sort();
    (store, files)
}

/// Runs inside the child processes of the scale-out tests; does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of the scale-out tests"]
fn shard_worker_process() {
    let (Ok(table_url), Ok(input_url), Ok(worker)) =
        (std::env::var(TABLE_URL), std::env::var(INPUT_URL), std::env::var(WORKER))
    else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let table = table_at(&table_url);
        if worker == "every" {
            // A worker that takes every file, one commit each, as overlapping workers of a
            // misconfigured job would.
            let (store, mut files) = input_files(&input_url).await;
            files.retain(|f| f.as_ref().ends_with(".parquet"));
            let report = table.score_files(&scorer(), store.as_ref(), &files).await.unwrap();
            assert_eq!(report.scored.len() + report.already_scored.len(), files.len());
            for file in &report.scored {
                println!("{SCORED}{file}");
            }
            return;
        }
        // A shard of the job, its index where Kubernetes puts it.
        let shard = Shard::from_env(WORKERS).unwrap();
        let bytes: u64 = std::env::var(COMMIT_BYTES).unwrap().parse().unwrap();
        let job = ShardedJob::new(JOB, WORKERS).unwrap().commit_bytes(bytes).unwrap();
        let (store, prefix) = store_at(&input_url);
        let run = table.score_shard(&scorer(), store.as_ref(), &prefix, &job, shard).await.unwrap();
        assert_eq!(run.committed + run.already_committed, run.planned_commits, "{run:?}");
        println!("{SCORED}shard {} commits {} files {}", shard.index(), run.committed, run.files);
    });
}

/// How a worker names, on its standard output, a file it appended.
const SCORED: &str = "appended file: ";

/// Runs the workers at once (`every`, or a shard index) and returns what each printed it
/// appended, in worker order.
fn run_workers(
    table_url: &str,
    input_url: &str,
    commit_bytes: u64,
    workers: impl IntoIterator<Item = String>,
) -> Vec<Vec<String>> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            let mut command = Command::new(&exe);
            command
                .args(["--ignored", "--exact", "scale_out::shard_worker_process", "--test-threads", "1", "--nocapture"])
                .env(TABLE_URL, table_url)
                .env(INPUT_URL, input_url)
                .env(COMMIT_BYTES, commit_bytes.to_string())
                .env_remove(JOB_COMPLETION_INDEX);
            if worker == "every" {
                command.env(WORKER, "every");
            } else {
                command.env(WORKER, "shard").env(JOB_COMPLETION_INDEX, &worker);
            }
            command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "a shard worker failed:\n{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            // The test harness may print the test's name on the same line as its first.
            stdout.lines().filter_map(|line| Some(line.split_once(SCORED)?.1.to_owned())).collect()
        })
        .collect()
}

/// Every id of the table and how many rows hold it.
async fn id_counts(table: &InferenceTable) -> BTreeMap<String, usize> {
    let rows = table.read().await.unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for id in rows.column("id").unwrap().str().unwrap().no_null_iter() {
        *seen.entry(id.to_owned()).or_default() += 1;
    }
    seen
}

async fn write_input(input_url: &str, files: std::ops::Range<usize>) -> u64 {
    let (store, prefix) = store_at(input_url);
    let mut largest = 0;
    for file in files {
        let mut frame = records(file * ROWS_PER_FILE..(file + 1) * ROWS_PER_FILE);
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut frame).unwrap();
        largest = largest.max(bytes.len() as u64);
        store.put(&prefix.clone().join(format!("part-{file:03}.parquet")), PutPayload::from(bytes)).await.unwrap();
    }
    // A marker that is not Parquet, as Spark leaves them: the job must not read it.
    store.put(&prefix.clone().join("_SUCCESS"), PutPayload::from_static(b"")).await.unwrap();
    largest
}

/// Writes the input files, runs the job's shards at once (two of them twice over, as an
/// overlapping retry would), and checks the table.
async fn score_shards_in_processes(table_url: &str, input_url: &str) {
    let largest = write_input(input_url, 0..FILES).await;
    // Two files to a commit: each shard's three files make two commits.
    let commit_bytes = 2 * largest + 1;
    let workers = ["0", "1", "2", "3", "0", "2"].map(String::from);
    let printed = run_workers(table_url, input_url, commit_bytes, workers);
    let table = table_at(table_url);
    let seen = id_counts(&table).await;
    assert_eq!(seen.len(), FILES * ROWS_PER_FILE, "{printed:?}");
    assert!(seen.values().all(|&n| n == 1), "every record exactly once: {printed:?}");
    let version = table.version().await.unwrap().unwrap();
    assert_eq!(version + 1, (WORKERS * 2) as u64, "one commit per two files, not one per file: {printed:?}");

    // Files that land after the job started belong to another job; a retried job adds nothing.
    write_input(input_url, FILES..FILES + 2).await;
    run_workers(table_url, input_url, commit_bytes, (0..WORKERS).map(|w| w.to_string()));
    assert_eq!(table.version().await.unwrap(), Some(version));
    assert_eq!(id_counts(&table).await.len(), FILES * ROWS_PER_FILE);
    for shard in 0..WORKERS {
        let app = format!("mlops.job:{JOB}:shard:{shard}");
        assert_eq!(table.transaction_version(&app).await.unwrap(), Some(1), "{app}");
    }
}

#[tokio::test]
async fn workers_that_overlap_on_every_file_append_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    let (table_url, input_url) = (base.join("inference").unwrap(), base.join("input/").unwrap());
    write_input(input_url.as_str(), 0..FILES).await;
    // Three workers given the same files in the same order: each looks a file up, finds
    // it unscored and scores it while the others do the same.
    let appended = run_workers(table_url.as_str(), input_url.as_str(), 1, vec!["every".to_owned(); 3]);
    let mut by_file: BTreeMap<&str, usize> = BTreeMap::new();
    for file in appended.iter().flatten() {
        *by_file.entry(file.as_str()).or_default() += 1;
    }
    assert_eq!(by_file.len(), FILES, "{appended:?}");
    assert!(by_file.values().all(|&n| n == 1), "files appended by more than one worker: {appended:?}");
    let seen = id_counts(&table_at(table_url.as_str())).await;
    assert_eq!(seen.len(), FILES * ROWS_PER_FILE);
    assert!(seen.values().all(|&n| n == 1), "every record exactly once");
}

#[tokio::test]
async fn job_shards_share_a_table_in_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    score_shards_in_processes(base.join("inference").unwrap().as_str(), base.join("input/").unwrap().as_str()).await;
}

#[tokio::test]
async fn job_shards_share_a_table_on_s3() {
    let Some(bucket) = s3_bucket_url() else { return };
    let prefix = unique_prefix("scale-out");
    score_shards_in_processes(&format!("{bucket}/{prefix}/inference"), &format!("{bucket}/{prefix}/input/")).await;
}

#[tokio::test]
async fn a_worker_of_another_job_size_or_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    let (table_url, input_url) = (base.join("inference").unwrap(), base.join("input/").unwrap());
    write_input(input_url.as_str(), 0..3).await;
    let (store, prefix) = store_at(input_url.as_str());
    let table = table_at(table_url.as_str());
    let job = ShardedJob::new(JOB, 2).unwrap();
    let run = table.score_shard(&scorer(), store.as_ref(), &prefix, &job, Shard::new(1, 2).unwrap()).await.unwrap();
    assert!(run.created_plan);
    assert_eq!((run.planned_commits, run.committed), (1, 1), "small files make one commit: {run:?}");

    let wider = ShardedJob::new(JOB, 3).unwrap();
    let error =
        table.score_shard(&scorer(), store.as_ref(), &prefix, &wider, Shard::new(0, 3).unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("was planned with 2 shards, not 3"), "{error}");
    let elsewhere = prefix.clone().join("elsewhere");
    let error =
        table.score_shard(&scorer(), store.as_ref(), &elsewhere, &job, Shard::new(0, 2).unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("was planned with input `"), "{error}");
    let error =
        table.score_shard(&scorer(), store.as_ref(), &prefix, &job, Shard::new(0, 3).unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("does not belong to job"), "{error}");

    // A damaged plan stops the job, naming the plan, rather than being planned over.
    let (plans, at) = store_at(table_url.as_str());
    let plan = at.join("_mlops_jobs").join(format!("{JOB}.json"));
    plans.put(&plan, PutPayload::from_static(b"{\"job\": 7")).await.unwrap();
    let shard = Shard::new(0, 2).unwrap();
    let error = table.score_shard(&scorer(), store.as_ref(), &prefix, &job, shard).await.unwrap_err();
    assert!(error.to_string().contains("is damaged") && error.to_string().contains("_mlops_jobs"), "{error}");
}

#[tokio::test]
async fn an_empty_input_is_not_planned_and_files_without_rows_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    let (table_url, input_url) = (base.join("inference").unwrap(), base.join("input/").unwrap());
    let (store, prefix) = store_at(input_url.as_str());
    let table = table_at(table_url.as_str());
    let job = ShardedJob::new(JOB, 3).unwrap();
    // Only files a job must not read: a marker, a writer's temporary folder, a hidden file.
    for hidden in ["_SUCCESS", "_temporary/part-0.parquet", ".part-1.parquet"] {
        store.put(&prefix.clone().join(hidden), PutPayload::from_static(b"not parquet")).await.unwrap();
    }
    let error =
        table.score_shard(&scorer(), store.as_ref(), &prefix, &job, Shard::new(0, 3).unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("no Parquet files under"), "{error}");

    // One file of rows and one without: three shards, one left without files.
    write_input(input_url.as_str(), 0..1).await;
    let mut empty = records(0..0);
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut empty).unwrap();
    store.put(&prefix.clone().join("part-empty.parquet"), PutPayload::from(bytes)).await.unwrap();
    let mut runs = Vec::new();
    for index in 0..3 {
        let shard = Shard::new(index, 3).unwrap();
        runs.push(table.score_shard(&scorer(), store.as_ref(), &prefix, &job, shard).await.unwrap());
    }
    assert_eq!(runs.iter().map(|r| r.rows).sum::<usize>(), ROWS_PER_FILE, "{runs:?}");
    assert_eq!(runs.iter().map(|r| r.empty_commits).sum::<usize>(), 1, "{runs:?}");
    assert_eq!(runs.iter().filter(|r| r.planned_commits == 0).count(), 1, "{runs:?}");
    assert_eq!(id_counts(&table).await.len(), ROWS_PER_FILE);
}

#[tokio::test]
async fn a_damaged_or_oversized_plan_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    let (table_url, input_url) = (base.join("inference").unwrap(), base.join("input/").unwrap());
    let (store, prefix) = store_at(input_url.as_str());
    let table = table_at(table_url.as_str());
    write_input(input_url.as_str(), 0..1).await;
    let job = ShardedJob::new(JOB, 1).unwrap();
    let plans = dir.path().join("inference").join("_mlops_jobs");
    std::fs::create_dir_all(&plans).unwrap();
    let plan = plans.join(format!("{JOB}.json"));
    let scorer = scorer();
    let run = || table.score_shard(&scorer, store.as_ref(), &prefix, &job, Shard::new(0, 1).unwrap());

    std::fs::write(&plan, b"{\"shards\": [").unwrap();
    let error = run().await.unwrap_err().to_string();
    assert!(error.contains("is damaged") && error.contains(JOB), "{error}");
    // Larger than any plan (a sparse file): refused by its size, never read.
    std::fs::File::create(&plan).unwrap().set_len((256 << 20) + 1).unwrap();
    let error = run().await.unwrap_err().to_string();
    assert!(error.contains("268435457 bytes") && error.contains("a plan may"), "{error}");
}
