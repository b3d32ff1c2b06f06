//! Several worker processes score disjoint shards of the same input files and append to one
//! Delta table: every record lands exactly once, and re-running a worker adds nothing.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use futures::TryStreamExt;
use mlops_infer::{InferenceTable, InferenceTableConfig, TableLocation, shard_of};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use polars::prelude::*;

use crate::inference_table::{records, scorer};
use crate::servers::{options, s3_bucket_url, unique_prefix};

const TABLE_URL: &str = "MLOPS_TEST_SHARD_TABLE";
const INPUT_URL: &str = "MLOPS_TEST_SHARD_INPUT";
const WORKER: &str = "MLOPS_TEST_SHARD_WORKER";
const WORKERS: usize = 4;
const FILES: usize = 12;
const ROWS_PER_FILE: usize = 250;

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

/// Runs inside the child processes of [`score_shards_in_processes`]; does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of the scale-out tests"]
fn shard_worker_process() {
    let (Ok(table_url), Ok(input_url), Ok(worker)) =
        (std::env::var(TABLE_URL), std::env::var(INPUT_URL), std::env::var(WORKER))
    else {
        return;
    };
    // `every`: a worker that takes every file, as overlapping workers of a misconfigured
    // job would.
    let worker: Option<usize> = (worker != "every").then(|| worker.parse().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (store, files) = input_files(&input_url).await;
        let mine: Vec<Path> =
            files.into_iter().filter(|f| worker.is_none_or(|worker| shard_of(f.as_ref(), WORKERS) == worker)).collect();
        let report = table_at(&table_url).score_files(&scorer(), store.as_ref(), &mine).await.unwrap();
        assert_eq!(report.scored.len() + report.already_scored.len(), mine.len());
        for file in &report.scored {
            println!("{SCORED}{file}");
        }
    });
}

/// How a worker names, on its standard output, a file it appended.
const SCORED: &str = "appended file: ";

/// Runs the workers at once and returns the files each appended, in worker order.
fn run_workers(table_url: &str, input_url: &str, workers: impl IntoIterator<Item = String>) -> Vec<Vec<String>> {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = workers
        .into_iter()
        .map(|worker| {
            Command::new(&exe)
                .args(["--ignored", "--exact", "scale_out::shard_worker_process", "--test-threads", "1", "--nocapture"])
                .env(TABLE_URL, table_url)
                .env(INPUT_URL, input_url)
                .env(WORKER, worker)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
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

async fn write_input(input_url: &str) {
    let (store, prefix) = store_at(input_url);
    for file in 0..FILES {
        let mut frame = records(file * ROWS_PER_FILE..(file + 1) * ROWS_PER_FILE);
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut frame).unwrap();
        store.put(&prefix.clone().join(format!("part-{file:03}.parquet")), PutPayload::from(bytes)).await.unwrap();
    }
}

/// Writes the input files, runs [`WORKERS`] processes at once, and checks the table.
async fn score_shards_in_processes(table_url: &str, input_url: &str) {
    write_input(input_url).await;
    let owners: Vec<usize> = input_files(input_url).await.1.iter().map(|f| shard_of(f.as_ref(), WORKERS)).collect();
    assert!(owners.iter().collect::<std::collections::BTreeSet<_>>().len() > 1, "the files spread over workers");

    run_workers(table_url, input_url, (0..WORKERS).map(|w| w.to_string()));
    let table = table_at(table_url);
    let seen = id_counts(&table).await;
    assert_eq!(seen.len(), FILES * ROWS_PER_FILE);
    assert!(seen.values().all(|&n| n == 1), "every record exactly once");

    // Workers that run again (a retried job) add nothing.
    let version = table.version().await.unwrap();
    run_workers(table_url, input_url, ["0".into(), "1".into()]);
    assert_eq!(table.version().await.unwrap(), version);
}

#[tokio::test]
async fn workers_that_overlap_on_every_file_append_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    let (table_url, input_url) = (base.join("inference").unwrap(), base.join("input/").unwrap());
    write_input(input_url.as_str()).await;
    // Three workers given the same files in the same order: each looks a file up, finds
    // it unscored and scores it while the others do the same.
    let appended = run_workers(table_url.as_str(), input_url.as_str(), vec!["every".to_owned(); 3]);
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
async fn worker_processes_share_a_table_in_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let base = url::Url::from_directory_path(dir.path()).unwrap();
    score_shards_in_processes(base.join("inference").unwrap().as_str(), base.join("input/").unwrap().as_str()).await;
}

#[tokio::test]
async fn worker_processes_share_a_table_on_s3() {
    let Some(bucket) = s3_bucket_url() else { return };
    let prefix = unique_prefix("scale-out");
    score_shards_in_processes(&format!("{bucket}/{prefix}/inference"), &format!("{bucket}/{prefix}/input/")).await;
}
