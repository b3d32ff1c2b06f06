//! Inference tables on Delta Lake: appends, labels that arrive late or early, incremental
//! scoring, and an independent reader.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use mlops_core::{TabularClassifierParams, TabularModel};
use mlops_infer::{
    ACTUAL_LABEL, BatchScorer, Error, InferenceTable, InferenceTableConfig, ROW_ID, TableLocation, TimeWindow,
};
use mlops_registry::{LoadedModel, ModelSlot};
use polars::prelude::*;

use crate::servers::{PYTHON, server};

/// Transactions `t0..` with a record time one minute apart from 12:00.
pub fn records(ids: std::ops::Range<usize>) -> DataFrame {
    let names: Vec<String> = ids.clone().map(|i| format!("t{i}")).collect();
    let amounts: Vec<f64> = ids.clone().map(|i| (i % 13) as f64 * 3.0).collect();
    let times: Vec<i64> = ids.map(|i| 1_700_000_000_000 + i as i64 * 60_000).collect();
    let mut frame = df!("id" => names, "Amount" => amounts, "time" => times).unwrap();
    frame.apply("time", |c| c.cast(&DataType::Datetime(TimeUnit::Milliseconds, None)).unwrap()).unwrap();
    frame
}

/// A classifier of `Amount`, fitted so that a larger `shift` moves its threshold up.
pub fn classifier(shift: f64) -> TabularModel {
    let amounts = [1.0, 30.0, 2.0, 28.0, 3.0, 33.0].map(|a| a + shift);
    let train = df!("Amount" => amounts, "Label" => [0, 1, 0, 1, 0, 1]).unwrap();
    TabularClassifierParams::new("Label").numeric(["Amount"]).check().unwrap().fit(&train).unwrap()
}

pub fn scorer() -> BatchScorer {
    BatchScorer::new("transactions", 3, Arc::new(classifier(0.0)))
}

/// [`scorer`]'s model, as a stream or a server takes it.
pub fn model_slot() -> Arc<ModelSlot> {
    let name = "transactions".parse().unwrap();
    Arc::new(ModelSlot::loaded(LoadedModel::unregistered(name, 3, Arc::new(classifier(0.0)))))
}

fn table(dir: &Path) -> InferenceTable {
    InferenceTable::new(TableLocation::local(dir.join("inference")).unwrap(), InferenceTableConfig::new(["id"]))
        .unwrap()
}

fn labels(pairs: &[(&str, f64)]) -> DataFrame {
    let ids: Vec<&str> = pairs.iter().map(|(id, _)| *id).collect();
    let values: Vec<f64> = pairs.iter().map(|(_, v)| *v).collect();
    df!("id" => ids, "is_fraud" => values).unwrap()
}

/// id -> actual_label (None while unknown), for every row of the table.
async fn label_map(table: &InferenceTable) -> Vec<(String, Option<f64>)> {
    let frame = table.read().await.unwrap().sort(["id"], SortMultipleOptions::default()).unwrap();
    let ids = frame.column("id").unwrap().str().unwrap().clone();
    let labels = frame.column(ACTUAL_LABEL).unwrap().f64().unwrap().clone();
    ids.iter().zip(labels.iter()).map(|(id, label)| (id.unwrap().to_owned(), label)).collect()
}

#[tokio::test]
async fn appended_rows_carry_their_model_a_unique_row_id_and_no_label_yet() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    assert_eq!(table.version().await.unwrap(), None);
    assert_eq!(table.read().await.unwrap().height(), 0);
    let first = table.append(&scorer().score(&records(0..50)).unwrap()).await.unwrap();
    let second = table.append(&scorer().score(&records(50..80)).unwrap()).await.unwrap();
    assert_eq!((first.rows, second.rows), (50, 30));
    assert_eq!((first.version, second.version), (Some(0), Some(1)));

    let read = table.read().await.unwrap();
    assert_eq!(read.height(), 80);
    for column in
        ["id", "Amount", "time", "prediction", "model_name", "model_version", "scored_at", ROW_ID, ACTUAL_LABEL]
    {
        assert!(read.column(column).is_ok(), "missing column {column}: {:?}", read.get_column_names());
    }
    let ids: BTreeSet<&str> = read.column(ROW_ID).unwrap().str().unwrap().no_null_iter().collect();
    assert_eq!(ids.len(), 80, "row ids are unique");
    assert_eq!(read.column(ACTUAL_LABEL).unwrap().null_count(), 80);
    assert_eq!(read.column("model_version").unwrap().i64().unwrap().get(0), Some(3));
    // Record times keep their instant through Delta's UTC microseconds.
    let sorted = read.sort(["id"], SortMultipleOptions::default()).unwrap();
    let time = sorted.column("time").unwrap().cast(&DataType::Int64).unwrap();
    let micros = match sorted.column("time").unwrap().dtype() {
        DataType::Datetime(TimeUnit::Microseconds, _) => 1_000,
        DataType::Datetime(TimeUnit::Milliseconds, _) => 1,
        other => panic!("time came back as {other}"),
    };
    assert_eq!(time.i64().unwrap().get(0), Some(1_700_000_000_000 * micros));

    let bad = table.append(&records(0..3)).await;
    assert!(matches!(bad, Err(Error::InvalidArgument(m)) if m.contains("prediction")));
}

#[tokio::test]
async fn labels_late_early_duplicated_or_corrected_are_applied_once_and_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    // Labels before any prediction exists: all pending.
    let early = table.merge_labels(&labels(&[("t1", 1.0), ("t5", 0.0)]), "is_fraud").await.unwrap();
    assert_eq!((early.received, early.matched, early.pending), (2, 0, 2));

    // Predictions for t0..t3 land: t1's label is applied by the append, t5 waits.
    table.append(&scorer().score(&records(0..4)).unwrap()).await.unwrap();
    let map = label_map(&table).await;
    assert_eq!(map[1], ("t1".to_owned(), Some(1.0)));
    assert_eq!(map.iter().filter(|(_, l)| l.is_some()).count(), 1);

    // Late labels, with a duplicate inside the call (the last one wins).
    let late = table.merge_labels(&labels(&[("t2", 0.0), ("t3", 0.0), ("t3", 1.0)]), "is_fraud").await.unwrap();
    assert_eq!((late.received, late.superseded, late.matched, late.rows_updated, late.pending), (3, 1, 2, 2, 1));
    // The same labels again change nothing.
    let again = table.merge_labels(&labels(&[("t2", 0.0), ("t3", 1.0)]), "is_fraud").await.unwrap();
    assert_eq!((again.matched, again.rows_updated, again.pending), (2, 0, 1));
    // A correction is applied.
    let corrected = table.merge_labels(&labels(&[("t2", 1.0)]), "is_fraud").await.unwrap();
    assert_eq!(corrected.rows_updated, 1);
    assert_eq!(
        label_map(&table).await,
        [("t0".into(), None), ("t1".into(), Some(1.0)), ("t2".into(), Some(1.0)), ("t3".into(), Some(1.0))]
    );

    // t5's prediction finally lands; its label, received first of all, is applied.
    table.append(&scorer().score(&records(4..6)).unwrap()).await.unwrap();
    let map = label_map(&table).await;
    assert_eq!(map[5], ("t5".to_owned(), Some(0.0)));
    assert_eq!(table.apply_pending_labels().await.unwrap().pending, 0);

    // A missing column is refused with the culprit named, before anything is written.
    let missing = table.merge_labels(&labels(&[("t1", 1.0)]), "label").await;
    assert!(matches!(missing, Err(Error::InvalidArgument(m)) if m.contains("`label`")));
    // Labels that cannot be used are set aside with their reasons; the others are merged.
    let mixed = df!(
        "id" => [Some("t0"), None, Some("t1"), Some("t2")],
        "is_fraud" => [Some("1"), Some("0"), None, Some("yes")],
    )
    .unwrap();
    let merged = table.merge_labels(&mixed, "is_fraud").await.unwrap();
    let reasons: Vec<(usize, &str)> = merged.rejected.iter().map(|r| (r.row, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [(1, "key `id` is null"), (2, "the label is null"), (3, "label \"yes\" does not convert to f64")]
    );
    assert_eq!((merged.received, merged.rows_updated), (4, 1));
    assert_eq!(label_map(&table).await[0], ("t0".to_owned(), Some(1.0)), "the usable label was applied");
    assert_eq!(label_map(&table).await[1], ("t1".to_owned(), Some(1.0)), "the null label changed nothing");
}

fn ids_of(frame: &DataFrame) -> Vec<String> {
    frame.column("id").unwrap().str().unwrap().no_null_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn pending_labels_are_listed_and_the_stale_ones_expire_unless_their_prediction_landed() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    assert_eq!(table.pending_labels().await.unwrap().height(), 0);
    table.merge_labels(&labels(&[("t8", 1.0), ("t1", 0.0)]), "is_fraud").await.unwrap();
    let cut = Utc::now();
    table.merge_labels(&labels(&[("t9", 1.0)]), "is_fraud").await.unwrap();
    let pending = table.pending_labels().await.unwrap();
    assert_eq!(ids_of(&pending), ["t8", "t1", "t9"], "oldest first");
    assert!(pending.column("received_at").is_ok());

    // t1's prediction lands while the pending-labels table is out of reach, so its label
    // stays pending: expiry applies it rather than expire it.
    let log = table.pending_location().url().to_file_path().unwrap().join("_delta_log");
    let away = log.with_file_name("_delta_log.away");
    std::fs::rename(&log, &away).unwrap();
    table.append(&scorer().score(&records(0..3)).unwrap()).await.unwrap();
    std::fs::rename(&away, &log).unwrap();
    assert_eq!(label_map(&table).await[1], ("t1".to_owned(), None));
    let expired = table.expire_pending_labels(cut).await.unwrap();
    assert_eq!(ids_of(&expired), ["t8"], "only the label older than the cut whose key was never scored");
    assert_eq!(label_map(&table).await[1], ("t1".to_owned(), Some(0.0)));
    assert_eq!(ids_of(&table.pending_labels().await.unwrap()), ["t9"]);
    assert_eq!(table.expire_pending_labels(cut).await.unwrap().height(), 0, "nothing more to expire");
}

#[tokio::test]
async fn an_append_that_committed_reports_success_even_when_its_labels_cannot_be_applied() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    table.merge_labels(&labels(&[("t1", 1.0)]), "is_fraud").await.unwrap();
    // The pending-labels table becomes unreadable.
    let log = table.pending_location().url().to_file_path().unwrap().join("_delta_log");
    for entry in std::fs::read_dir(&log).unwrap() {
        std::fs::write(entry.unwrap().path(), b"not a commit").unwrap();
    }
    let appended = table.append(&scorer().score(&records(0..3)).unwrap()).await.unwrap();
    assert_eq!(appended.rows, 3);
    assert!(appended.labels_error.is_some(), "the label failure is reported with the rows");
    assert_eq!(table.read().await.unwrap().height(), 3, "the rows are in the table");
}

#[tokio::test]
async fn incremental_scoring_takes_the_window_and_never_scores_a_record_twice() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let input = records(0..100);
    let minute = |m: i64| Utc.timestamp_millis_opt(1_700_000_000_000 + m * 60_000).unwrap();
    let window = TimeWindow { column: "time".into(), start: minute(10), end: minute(59) };

    let first = table.score_incremental(&scorer(), &input, Some(&window)).await.unwrap();
    assert_eq!((first.input_rows, first.outside_window, first.already_scored, first.appended.rows), (100, 50, 0, 50));
    let rerun = table.score_incremental(&scorer(), &input, Some(&window)).await.unwrap();
    assert_eq!((rerun.already_scored, rerun.appended.rows, rerun.appended.version), (50, 0, None));
    // A wider window scores only what is new.
    let wider = TimeWindow { end: minute(79), ..window.clone() };
    let more = table.score_incremental(&scorer(), &input, Some(&wider)).await.unwrap();
    assert_eq!((more.already_scored, more.appended.rows), (50, 20));
    let all = table.score_incremental(&scorer(), &input, None).await.unwrap();
    assert_eq!((all.already_scored, all.appended.rows), (70, 30));
    assert_eq!(table.read().await.unwrap().height(), 100);

    let wrong = TimeWindow { column: "Amount".into(), ..window };
    assert!(matches!(
        table.score_incremental(&scorer(), &input, Some(&wrong)).await,
        Err(Error::InvalidArgument(m)) if m.contains("`Amount`")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_incremental_runs_append_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    // Four runs race to create the table, then four more race on the table that exists,
    // each with its own handle as separate processes would have, on overlapping input.
    for (round, ranges) in
        [[0..150, 50..200, 0..200, 100..200], [150..300, 0..400, 250..400, 100..350]].into_iter().enumerate()
    {
        let runs: Vec<_> = ranges
            .into_iter()
            .map(|ids| {
                let table = table(dir.path());
                tokio::spawn(async move { table.score_incremental(&scorer(), &records(ids), None).await })
            })
            .collect();
        let mut appended = 0;
        for run in runs {
            appended += run.await.unwrap().unwrap().appended.rows;
        }
        let expected = [200, 400][round];
        let frame = table(dir.path()).read().await.unwrap();
        let ids: BTreeSet<String> =
            frame.column("id").unwrap().str().unwrap().iter().flatten().map(str::to_owned).collect();
        assert_eq!((frame.height(), ids.len()), (expected, expected), "round {round}: every record once");
        assert_eq!(appended, [200, 200][round], "round {round}: the runs report what they appended");
    }
}

#[tokio::test]
async fn an_independent_reader_sees_the_same_rows() {
    let Some(python) = server(PYTHON, "Python with the deltalake package") else { return };
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    table.append(&scorer().score(&records(0..20)).unwrap()).await.unwrap();
    table.merge_labels(&labels(&[("t3", 1.0), ("t4", 0.0)]), "is_fraud").await.unwrap();

    let script = crate::servers::test_file("tests/it/read_delta.py");
    let output = Command::new(python).arg(script).arg(table.location().url().as_str()).output().unwrap();
    assert!(output.status.success(), "read_delta.py: {}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let ours = table.read().await.unwrap().sort([ROW_ID], SortMultipleOptions::default()).unwrap();
    let columns: Vec<String> = ours.get_column_names().iter().map(|c| c.to_string()).collect();
    assert_eq!(seen["columns"], serde_json::json!(columns));
    assert_eq!(seen["types"]["time"], "timestamp[us, tz=UTC]");
    let rows = seen["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[ROW_ID], ours.column(ROW_ID).unwrap().str().unwrap().get(i).unwrap());
        assert_eq!(row["id"], ours.column("id").unwrap().str().unwrap().get(i).unwrap());
        assert_eq!(row["prediction"].as_f64(), ours.column("prediction").unwrap().f64().unwrap().get(i));
        assert_eq!(row[ACTUAL_LABEL].as_f64(), ours.column(ACTUAL_LABEL).unwrap().f64().unwrap().get(i));
        assert_eq!(row["model_version"], 3);
    }
    assert_eq!(rows.iter().filter(|r| !r[ACTUAL_LABEL].is_null()).count(), 2);
}
