//! Streaming scoring: files to a Delta inference table exactly once, bad input set aside,
//! and a stream killed at random instants that still writes every record once.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mlops_core::{ColSpec, ColumnType, FlavorRegistry, Schema};
use mlops_infer::stream::{
    ChannelSource, Checkpoint, DeltaSource, FileFormat, FileSource, Sink, Source, SourceBatch, StreamingScorer, Trigger,
};
use mlops_infer::{InferenceTable, InferenceTableConfig, TableLocation};
use mlops_registry::{
    CreateModel, CreateVersion, LiveModel, LoadedModel, MemoryRegistry, ModelSlot, ModelSource, Registry, SetAlias,
};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use polars::prelude::*;
use rand::{RngExt, SeedableRng};

use crate::inference_table::{classifier, model_slot};

const DIR: &str = "MLOPS_TEST_STREAM_DIR";

struct Layout {
    input: PathBuf,
    table: PathBuf,
    checkpoint: PathBuf,
}

impl Layout {
    fn new(root: &FsPath) -> Self {
        let layout =
            Self { input: root.join("input"), table: root.join("inference"), checkpoint: root.join("checkpoint") };
        std::fs::create_dir_all(&layout.input).unwrap();
        layout
    }

    fn table(&self) -> InferenceTable {
        InferenceTable::new(TableLocation::local(&self.table).unwrap(), InferenceTableConfig::new(["id"])).unwrap()
    }

    fn stream(&self, format: FileFormat, files_per_batch: usize) -> StreamingScorer<FileSource> {
        self.stream_from("transactions", self.source(format, files_per_batch))
    }

    fn csv_source(&self, files_per_batch: usize) -> FileSource {
        self.source(FileFormat::Csv, files_per_batch)
    }

    fn source(&self, format: FileFormat, files_per_batch: usize) -> FileSource {
        let store = Arc::new(LocalFileSystem::new_with_prefix(&self.input).unwrap());
        FileSource::new(store, Path::default(), format)
            .schema(
                Schema::new(vec![
                    ColSpec::new("id", ColumnType::String),
                    ColSpec::new("Amount", ColumnType::Double).nullable(),
                ])
                .unwrap(),
            )
            .max_files_per_batch(files_per_batch)
            .unwrap()
    }

    /// A stream named `name` from `source` into the inference table.
    fn stream_from<S: Source + 'static>(&self, name: &str, source: S) -> StreamingScorer<S> {
        self.stream_with(name, source, model_slot())
    }

    /// A stream named `name` from `source`, scored by what `model` holds.
    fn stream_with<S: Source + 'static>(
        &self,
        name: &str,
        source: S,
        model: Arc<dyn ModelSource>,
    ) -> StreamingScorer<S> {
        StreamingScorer::new(name, source, model, Arc::new(self.table()), Checkpoint::local(&self.checkpoint).unwrap())
    }

    /// Writes a file so that it appears whole: written beside, then renamed in.
    fn drop_file(&self, name: &str, contents: &[u8]) {
        let staging = self.input.parent().unwrap().join(format!(".{name}.partial"));
        std::fs::write(&staging, contents).unwrap();
        std::fs::rename(&staging, self.input.join(name)).unwrap();
    }

    fn drop_csv(&self, name: &str, ids: std::ops::Range<usize>) {
        let mut text = String::from("id,Amount\n");
        for i in ids {
            text.push_str(&format!("r{i},{}\n", (i % 13) as f64 * 3.0));
        }
        self.drop_file(name, text.as_bytes());
    }
}

/// id -> how many rows of the table have it.
async fn id_counts(table: &InferenceTable) -> BTreeMap<String, usize> {
    let rows = table.read().await.unwrap();
    let mut counts = BTreeMap::new();
    if rows.height() > 0 {
        for id in rows.column("id").unwrap().str().unwrap().no_null_iter() {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn a_stream_scores_each_file_once_and_sets_bad_input_aside() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    layout.drop_csv("a.csv", 0..40);
    layout.drop_file("b.csv", b"id,Amount\nr40,3.0\nr41,not-a-number\nr42,\nr43,6.0\nr44,NaN\nr45,-inf\n");
    layout.drop_file("c.csv", b"");
    layout.drop_file("notes.txt", b"not a record file");

    let first = layout.stream(FileFormat::Csv, 2).run(std::future::pending()).await.unwrap();
    assert_eq!((first.batches, first.replayed), (2, 0));
    assert_eq!((first.records, first.scored, first.dead_letters), (46, 42, 4));
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), 42);
    assert!(counts.values().all(|&n| n == 1));
    assert!(["r41", "r42", "r44", "r45"].iter().all(|id| !counts.contains_key(*id)));

    // The unparsable value went to the rescued-data column, and every reject to the dead
    // letters with the reason and the record: NaN and infinity too, which the model's
    // signature does not allow.
    let letters = Checkpoint::local(&layout.checkpoint).unwrap().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 4);
    assert!(letters.iter().all(|l| l.reason.contains("`Amount`")), "{letters:?}");
    let r41 = letters.iter().find(|l| l.record.as_deref().unwrap_or("").contains("r41")).unwrap();
    assert!(r41.record.as_deref().unwrap().contains("not-a-number"), "{r41:?}");
    let non_finite = letters.iter().filter(|l| l.reason.contains("NaN or an infinity")).count();
    assert_eq!(non_finite, 2, "{letters:?}");

    // A second run adds only what is new.
    layout.drop_csv("d.csv", 100..110);
    let second = layout.stream(FileFormat::Csv, 2).run(std::future::pending()).await.unwrap();
    assert_eq!((second.batches, second.records, second.scored), (1, 10, 10));
    assert_eq!(id_counts(&layout.table()).await.len(), 52);
    let nothing = layout.stream(FileFormat::Csv, 2).run(std::future::pending()).await.unwrap();
    assert_eq!(nothing.batches, 0);
}

#[tokio::test]
async fn corrupt_files_become_dead_letters_and_json_values_are_rescued() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    layout.drop_file("1.jsonl", b"{\"id\": \"j1\", \"Amount\": 3.5}\n{\"id\": \"j2\", \"Amount\": \"lots\"}\n\n");
    layout.drop_file("2.jsonl", b"{\"id\": \"j3\", \"Amount\": 12}\n{not json at all\n");
    let report = layout.stream(FileFormat::JsonLines, 10).run(std::future::pending()).await.unwrap();
    assert_eq!(report.scored, 1, "{report:?}");
    let letters = Checkpoint::local(&layout.checkpoint).unwrap().dead_letters().await.unwrap();
    assert!(letters.iter().any(|l| l.origin.ends_with("2.jsonl") && l.record.is_none()), "{letters:?}");
    assert!(letters.iter().any(|l| l.record.as_deref().is_some_and(|r| r.contains("lots"))), "{letters:?}");
    let rows = layout.table().read().await.unwrap();
    assert_eq!(rows.column("id").unwrap().str().unwrap().get(0), Some("j1"));
}

#[tokio::test]
async fn a_file_that_appears_while_a_batch_runs_is_taken_by_a_later_batch() {
    let root = tempfile::tempdir().unwrap();
    let layout = Arc::new(Layout::new(root.path()));
    layout.drop_csv("0.csv", 0..10);
    let late = Arc::clone(&layout);
    let report = layout
        .stream(FileFormat::Csv, 1)
        .on_batch(move |batch| {
            if batch.batch == 0 {
                late.drop_csv("1.csv", 10..20);
            }
        })
        .run(std::future::pending())
        .await
        .unwrap();
    assert_eq!((report.batches, report.scored), (2, 20));
    assert_eq!(id_counts(&layout.table()).await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_an_interval_picks_up_new_files_until_shut_down() {
    let root = tempfile::tempdir().unwrap();
    let layout = Arc::new(Layout::new(root.path()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let layout = Arc::clone(&layout);
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            layout
                .stream(FileFormat::Csv, 5)
                .trigger(Trigger::Every(Duration::from_millis(50)))
                .unwrap()
                .run(shutdown)
                .await
        })
    };
    for file in 0..3 {
        layout.drop_csv(&format!("{file}.csv"), file * 10..(file + 1) * 10);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while id_counts(&layout.table()).await.len() < 30 {
        assert!(std::time::Instant::now() < deadline, "the stream did not pick up the files");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.scored, 30);
}

/// id -> the `model_version` that scored it.
async fn versions_by_id(table: &InferenceTable) -> BTreeMap<String, i64> {
    let rows = table.read().await.unwrap();
    let ids = rows.column("id").unwrap().str().unwrap().clone();
    let versions = rows.column("model_version").unwrap().i64().unwrap().clone();
    ids.iter().zip(versions.iter()).map(|(id, v)| (id.unwrap().to_owned(), v.unwrap())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_given_a_live_model_follows_its_alias_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let registry = Arc::new(MemoryRegistry::new());
    let name: mlops_core::ModelName = "transactions".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    for shift in [0.0, 100.0] {
        let package = classifier(shift).package(None).unwrap();
        registry.create_version(CreateVersion::new(name.clone(), package)).await.unwrap();
    }
    registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await.unwrap();
    let champion = Arc::new(
        LiveModel::start(
            registry.clone(),
            "models:/transactions@champion".parse().unwrap(),
            FlavorRegistry::with_builtins(),
            Duration::from_secs(3600),
        )
        .await
        .unwrap(),
    );
    let versions = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = Arc::clone(&versions);
    let mut stream = layout
        .stream_with("live", layout.csv_source(1), champion.clone())
        .on_batch(move |batch| seen.lock().push(batch.model_version));

    layout.drop_csv("a.csv", 0..10);
    assert_eq!(stream.run(std::future::pending()).await.unwrap().scored, 10);
    registry.set_alias(SetAlias::new(name, "champion", 2)).await.unwrap();
    assert_eq!(champion.refresh().await.unwrap(), Some(2));
    layout.drop_csv("b.csv", 10..20);
    layout.drop_csv("c.csv", 20..30);
    // The same stream, run again: it goes on after the first run's batch.
    let second = stream.run(std::future::pending()).await.unwrap();
    assert_eq!((second.batches, second.replayed, second.scored), (2, 0, 20));

    assert_eq!(*versions.lock(), [1, 2, 2]);
    let scored_by = versions_by_id(&layout.table()).await;
    assert_eq!(scored_by.len(), 30);
    for (id, version) in &scored_by {
        let n: usize = id[1..].parse().unwrap();
        assert_eq!(*version, if n < 10 { 1 } else { 2 }, "{id}");
    }
    // Version 2 is the model that scored: its predictions, not version 1's.
    let rows = layout.table().read().await.unwrap();
    let late = rows.filter(&rows.column("model_version").unwrap().i64().unwrap().equal(2)).unwrap();
    let expected = mlops_infer::BatchScorer::new("transactions", 2, Arc::new(classifier(100.0)))
        .score(&late.select(["id", "Amount"]).unwrap())
        .unwrap();
    assert_eq!(late.column("prediction").unwrap(), expected.column("prediction").unwrap());
    let first = mlops_infer::BatchScorer::new("transactions", 1, Arc::new(classifier(0.0)))
        .score(&late.select(["id", "Amount"]).unwrap())
        .unwrap();
    assert_ne!(first.column("prediction").unwrap(), expected.column("prediction").unwrap(), "the versions must differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_waits_for_a_model_and_plans_nothing_before_it_is_there() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    layout.drop_csv("a.csv", 0..10);
    let slot = Arc::new(ModelSlot::empty());

    // Run once, nothing to wait for: an error saying so, and no batch planned.
    let error = layout.stream_with("waiting", layout.csv_source(1), slot.clone()).run(std::future::pending()).await;
    let error = error.unwrap_err();
    assert!(matches!(error, mlops_infer::Error::ModelNotLoaded(_)), "{error}");
    assert!(error.to_string().contains("stream `waiting`"), "{error}");
    assert!(!layout.checkpoint.join("offsets").exists());

    // On an interval, the stream waits until the model is there.
    let mut stream = layout
        .stream_with("waiting", layout.csv_source(1), slot.clone())
        .trigger(Trigger::Every(Duration::from_millis(20)))
        .unwrap();
    let table = layout.table();
    let fill_then_stop = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let name = "transactions".parse().unwrap();
        slot.set(LoadedModel::unregistered(name, 7, Arc::new(classifier(0.0))));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while id_counts(&table).await.len() < 10 {
            assert!(std::time::Instant::now() < deadline, "the stream did not score once the model was there");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let report = stream.run(fill_then_stop).await.unwrap();
    assert_eq!((report.batches, report.scored), (1, 10));
    assert!(versions_by_id(&layout.table()).await.values().all(|&v| v == 7));
}

#[tokio::test]
async fn frames_sent_through_a_channel_are_scored_in_batches() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let (sender, source) = ChannelSource::new(8);
    let source = source.max_rows_per_batch(25).unwrap();
    for chunk in 0..4 {
        let ids: Vec<String> = (chunk * 10..(chunk + 1) * 10).map(|i| format!("c{i}")).collect();
        let amounts: Vec<f64> = (0..10).map(|i| f64::from(i) * 3.0).collect();
        sender.send(df!("id" => ids, "Amount" => amounts).unwrap()).await.unwrap();
    }
    let mut stream = layout.stream_from("channel", source);
    let report = stream.run(std::future::pending()).await.unwrap();
    assert_eq!((report.batches, report.scored), (2, 40));
    assert_eq!(id_counts(&layout.table()).await.len(), 40);
}

/// The inference table, out of reach for its first `failures` writes.
struct FlakySink {
    table: InferenceTable,
    failures: parking_lot::Mutex<usize>,
}

#[async_trait::async_trait]
impl Sink for FlakySink {
    async fn last_batch(&self, stream: &str) -> mlops_infer::Result<Option<u64>> {
        self.table.last_batch(stream).await
    }

    async fn write(&self, stream: &str, batch: u64, scored: &DataFrame) -> mlops_infer::Result<()> {
        let fail = {
            let mut failures = self.failures.lock();
            let fail = *failures > 0;
            *failures = failures.saturating_sub(1);
            fail
        };
        if fail {
            let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "the table's store timed out");
            return Err(mlops_infer::Error::Io { operation: "writing", path: "inference".into(), source });
        }
        self.table.write(stream, batch, scored).await
    }
}

#[tokio::test]
async fn a_stream_run_again_after_a_failed_write_scores_what_the_channel_sent() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let (sender, source) = ChannelSource::new(8);
    let source = source.max_rows_per_batch(10).unwrap();
    for chunk in 0..2 {
        let ids: Vec<String> = (chunk * 10..(chunk + 1) * 10).map(|i| format!("c{i}")).collect();
        sender.send(df!("id" => ids, "Amount" => [3.0; 10]).unwrap()).await.unwrap();
    }
    let sink = Arc::new(FlakySink { table: layout.table(), failures: parking_lot::Mutex::new(1) });
    let checkpoint = Checkpoint::local(&layout.checkpoint).unwrap();
    let mut stream = StreamingScorer::new("flaky", source, model_slot(), sink, checkpoint);

    let error = stream.run(std::future::pending()).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    // The same stream, run again in the same process: the batch whose write failed is
    // replayed from the frames it still holds, not set aside as lost.
    let again = stream.run(std::future::pending()).await.unwrap();
    assert_eq!((again.replayed, again.scored, again.dead_letters), (1, 20, 0));
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|&n| n == 1));
}

/// A source whose second batch panics when read.
struct PanickingSource {
    planned: u64,
}

#[async_trait::async_trait]
impl Source for PanickingSource {
    type Offset = u64;

    async fn resume(&mut self, planned: &[u64]) -> mlops_infer::Result<()> {
        self.planned = planned.len() as u64;
        Ok(())
    }

    async fn next_offset(&mut self) -> mlops_infer::Result<Option<u64>> {
        self.planned += 1;
        Ok((self.planned <= 3).then_some(self.planned))
    }

    async fn read(&mut self, offset: &u64) -> mlops_infer::Result<SourceBatch> {
        assert_ne!(*offset, 2, "a reader bug");
        let ids: Vec<String> = (0..5).map(|i| format!("p{offset}-{i}")).collect();
        Ok(SourceBatch { records: df!("id" => ids, "Amount" => [1.0; 5]).unwrap(), dead_letters: Vec::new() })
    }
}

#[tokio::test]
async fn a_batch_that_cannot_be_scored_is_set_aside_whole_and_the_stream_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let (sender, source) = ChannelSource::new(8);
    let source = source.max_rows_per_batch(10).unwrap();
    let ids = |from: usize| -> Vec<String> { (from..from + 10).map(|i| format!("c{i}")).collect() };
    sender.send(df!("id" => ids(0), "Amount" => [2.0; 10]).unwrap()).await.unwrap();
    // Amounts as text: the model takes doubles, so nothing of this batch can be scored.
    sender.send(df!("id" => ids(10), "Amount" => ["2.0"; 10]).unwrap()).await.unwrap();
    sender.send(df!("id" => ids(20), "Amount" => [30.0; 10]).unwrap()).await.unwrap();
    let report = layout.stream_from("channel", source).run(std::future::pending()).await.unwrap();
    assert_eq!((report.batches, report.scored, report.poisoned, report.dead_letters), (3, 20, 1, 1));
    let letters = Checkpoint::local(&layout.checkpoint).unwrap().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].origin, "batch 1");
    assert!(letters[0].reason.contains("Amount"), "{}", letters[0].reason);
    assert_eq!(letters[0].record.as_deref(), Some(r#"{"channel_batch":1,"frames":1}"#));

    // Nothing is replayed: the set-aside batch was committed.
    let (_sender, source) = ChannelSource::new(1);
    let again = layout.stream_from("channel", source).run(std::future::pending()).await.unwrap();
    assert_eq!(again.batches, 0);
    assert_eq!(id_counts(&layout.table()).await.len(), 20);

    // Another kind of source cannot take over the checkpoint: its offsets are not file lists.
    let error = layout.stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap_err().to_string();
    assert!(
        error.contains("00000000000000000000.json") && error.contains("not an offset of this stream's source"),
        "{error}"
    );
}

#[tokio::test]
async fn a_damaged_offset_stops_the_stream_until_it_is_set_aside_and_then_its_files_are_read_again() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    layout.drop_csv("a.csv", 0..10);
    layout.drop_csv("b.csv", 10..20);
    let first = layout.stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap();
    assert_eq!(first.batches, 2);

    let offsets = layout.checkpoint.join("offsets");
    let damaged = offsets.join("00000000000000000001.json");
    std::fs::write(&damaged, br#"{"files":["b.c"#).unwrap();
    layout.drop_csv("c.csv", 20..30);
    let error = layout.stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap_err();
    assert!(matches!(error, mlops_infer::Error::CorruptCheckpoint { batch: 1, .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("00000000000000000001.json") && message.contains("Checkpoint::set_offset_aside(1)"),
        "{message}"
    );
    assert_eq!(id_counts(&layout.table()).await.len(), 20, "nothing is written past a damaged offset");
    // A damaged file larger than any offset is refused by its size, not read into memory.
    std::fs::write(&damaged, vec![b' '; (64 << 20) + 1]).unwrap();
    let error = layout.stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap_err();
    assert!(error.to_string().contains("67108865 bytes"), "{error}");
    std::fs::write(&damaged, br#"{"files":["b.c"#).unwrap();

    let aside = Checkpoint::local(&layout.checkpoint).unwrap().set_offset_aside(1).await.unwrap();
    assert_eq!(std::fs::read(layout.checkpoint.join(aside.as_ref())).unwrap(), br#"{"files":["b.c"#);
    assert!(!damaged.exists());

    // b.csv is no longer marked read: it is planned again with c.csv, under numbers past the
    // sink's last batch, so neither is taken for a batch already written.
    let repaired = layout.stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap();
    assert_eq!((repaired.batches, repaired.replayed, repaired.scored), (2, 0, 20));
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), 30);
    assert!(
        counts.iter().all(|(id, &n)| n == if (10..20).any(|i| *id == format!("r{i}")) { 2 } else { 1 }),
        "{counts:?}"
    );
    let mut planned: Vec<String> =
        std::fs::read_dir(&offsets).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    planned.sort();
    assert_eq!(planned, ["00000000000000000000.json", "00000000000000000002.json", "00000000000000000003.json"]);
}

#[tokio::test]
async fn a_source_that_panics_on_a_batch_costs_that_batch_only() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let mut stream = layout.stream_from("panicking", PanickingSource { planned: 0 });
    let report = stream.run(std::future::pending()).await.unwrap();
    assert_eq!((report.batches, report.scored, report.poisoned), (3, 10, 1));
    let letters = Checkpoint::local(&layout.checkpoint).unwrap().dead_letters().await.unwrap();
    assert!(letters[0].reason.contains("a reader bug"), "{}", letters[0].reason);
}

/// Appends records `ids` to a plain Delta table at `dir` (a landing table other jobs write).
async fn land(dir: &FsPath, ids: std::ops::Range<usize>) {
    use deltalake::arrow::array::{Float64Array, RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema as ArrowSchema};
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("id", ArrowType::Utf8, false),
        Field::new("Amount", ArrowType::Float64, false),
    ]));
    let names: Vec<String> = ids.clone().map(|i| format!("d{i}")).collect();
    let amounts: Vec<f64> = ids.map(|i| (i % 7) as f64 * 4.0).collect();
    let batch =
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(names)), Arc::new(Float64Array::from(amounts))])
            .unwrap();
    let url = url::Url::from_directory_path(dir.canonicalize().unwrap()).unwrap();
    let table = deltalake::DeltaTable::try_from_url(url).await.unwrap();
    table.write(vec![batch]).await.unwrap();
}

#[tokio::test]
async fn new_versions_of_a_delta_table_are_scored_once() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let landing = root.path().join("landing");
    for version in 0..3 {
        land(&landing, version * 10..(version + 1) * 10).await;
    }
    let stream = |layout: &Layout| {
        let source = DeltaSource::new(TableLocation::local(&landing).unwrap()).max_versions_per_batch(2).unwrap();
        layout.stream_from("landing", source)
    };
    let first = stream(&layout).run(std::future::pending()).await.unwrap();
    assert_eq!((first.batches, first.scored), (2, 30));
    land(&landing, 30..35).await;
    let second = stream(&layout).run(std::future::pending()).await.unwrap();
    assert_eq!((second.batches, second.scored), (1, 5));
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), 35);
    assert!(counts.values().all(|&n| n == 1));
}

/// Sets `Amount` to 99 for the record `id` of the Delta table at `dir`: an UPDATE, which
/// rewrites the file holding it.
async fn update(dir: &FsPath, id: &str) {
    let url = url::Url::from_directory_path(dir.canonicalize().unwrap()).unwrap();
    let table = deltalake::DeltaTable::try_from_url(url).await.unwrap();
    table.update().with_predicate(format!("id = '{id}'")).with_update("Amount", "99.0").await.unwrap();
}

/// Compacts the Delta table at `dir` (files rewritten, no data changed).
async fn compact(dir: &FsPath) {
    let url = url::Url::from_directory_path(dir.canonicalize().unwrap()).unwrap();
    let table = deltalake::DeltaTable::try_from_url(url).await.unwrap();
    table.optimize().await.unwrap();
}

#[tokio::test]
async fn a_delta_source_stops_at_a_version_that_changes_rows_unless_told_to_skip_it() {
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    let landing = root.path().join("landing");
    land(&landing, 0..10).await; // version 0
    land(&landing, 10..20).await; // 1
    compact(&landing).await; // 2: the same rows in one file
    update(&landing, "d3").await; // 3: the file rewritten with one row changed
    land(&landing, 20..25).await; // 4
    let source = || DeltaSource::new(TableLocation::local(&landing).unwrap());
    let err = layout.stream_from("landing", source()).run(std::future::pending()).await.unwrap_err().to_string();
    assert!(err.contains("version 3") && err.contains("UPDATE") && err.contains("skip_change_commits"), "{err}");
    // Everything before the change was scored once; the compaction added no rows.
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), 20);
    assert!(counts.values().all(|&n| n == 1));

    let report =
        layout.stream_from("landing", source().skip_change_commits()).run(std::future::pending()).await.unwrap();
    assert_eq!(report.scored, 5, "only the rows version 4 appends");
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), 25);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

/// Runs inside the child processes of the kill test; does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of the kill test"]
fn stream_process() {
    let Ok(dir) = std::env::var(DIR) else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        Layout::new(FsPath::new(&dir)).stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap();
    });
}

/// A child process running [`stream_process`] on the layout at `root`, its output kept
/// when `output` says so (else discarded).
fn spawn_stream_process(root: &FsPath, output: bool) -> std::process::Child {
    let stdio = || if output { Stdio::piped() } else { Stdio::null() };
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "streaming::stream_process", "--test-threads", "1"])
        .env(DIR, root)
        .stdout(stdio())
        .stderr(stdio())
        .spawn()
        .unwrap()
}

/// Drops `files` CSV files of `rows` records each, with ids counting up from `r0`.
fn drop_numbered_csvs(layout: &Layout, files: usize, rows: usize) {
    for file in 0..files {
        layout.drop_csv(&format!("{file:03}.csv"), file * rows..(file + 1) * rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_one_stream_overlapping_in_three_processes_write_every_batch_once() {
    const FILES: usize = 24;
    const ROWS: usize = 20;
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    drop_numbered_csvs(&layout, FILES, ROWS);
    // The same files planned in the same order under the same numbers: every batch is
    // scored by each process that gets to it, and the sink must keep only the first.
    let children: Vec<_> = (0..3).map(|_| spawn_stream_process(root.path(), true)).collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "a stream process failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), FILES * ROWS, "every record is in the table");
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "records written more than once: {doubled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_killed_at_random_instants_writes_every_record_exactly_once() {
    // Enough files that the work outlasts the kill instants even on a fast, idle machine:
    // a first child that finished everything would leave nothing to interrupt.
    const FILES: usize = 60;
    const ROWS: usize = 50;
    let root = tempfile::tempdir().unwrap();
    let layout = Layout::new(root.path());
    drop_numbered_csvs(&layout, FILES, ROWS);
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261124);
    let mut kills = 0;
    for _ in 0..12 {
        let mut child = spawn_stream_process(root.path(), false);
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..600))).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills > 0, "the stream was never killed mid-run; lengthen the input");

    // A last run, left to finish, completes the work.
    layout.stream(FileFormat::Csv, 1).run(std::future::pending()).await.unwrap();
    let counts = id_counts(&layout.table()).await;
    assert_eq!(counts.len(), FILES * ROWS, "every record is in the table");
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "records written more than once: {doubled:?}");
}
