//! The inference table: scored records with their model version, a row id, and the ground
//! truth once it is known.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::physical_plan::common::collect;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::transaction::{CommitConflictError, TransactionError};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStore;
use object_store::path::Path;
use polars::prelude::*;

use super::arrow::{batches_to_frame, frame_to_batches};
use super::location::TableLocation;
use crate::batch::{BatchScorer, MODEL_NAME, MODEL_VERSION, PREDICTION, SCORED_AT};
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::stream::read_object;

/// Column holding each scored row's id.
pub const ROW_ID: &str = "row_id";
/// Column holding the ground truth, null until a label is merged.
pub const ACTUAL_LABEL: &str = "actual_label";

/// Options of an [`InferenceTable`].
#[derive(Debug, Clone, PartialEq)]
pub struct InferenceTableConfig {
    /// Columns that identify a record (e.g. a transaction id); labels are matched on them and
    /// incremental scoring skips records whose keys are already in the table.
    pub keys: Vec<String>,
    /// Type of `actual_label`: `Int64`, `Float64` or `String`. Default: `Float64`.
    pub label_type: DataType,
}

impl InferenceTableConfig {
    /// Records identified by `keys`.
    pub fn new<S: Into<String>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self { keys: keys.into_iter().map(Into::into).collect(), label_type: DataType::Float64 }
    }

    /// Sets the type of `actual_label`.
    #[must_use]
    pub fn label_type(mut self, label_type: DataType) -> Self {
        self.label_type = label_type;
        self
    }

    fn check(&self) -> Result<()> {
        if self.keys.is_empty() {
            return Err(Error::InvalidArgument("an inference table needs at least one key column".to_owned()));
        }
        if !matches!(self.label_type, DataType::Int64 | DataType::Float64 | DataType::String) {
            return Err(Error::InvalidArgument(format!(
                "label type {} is not supported (Int64, Float64 or String)",
                self.label_type
            )));
        }
        Ok(())
    }
}

/// What an append wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Rows written.
    pub rows: usize,
    /// The table version that holds them (`None` when there was nothing to write).
    pub version: Option<u64>,
    /// Why applying pending labels after the rows were committed failed, if it did: the
    /// rows are in the table all the same, and the labels stay pending for the next append
    /// or [`apply_pending_labels`](InferenceTable::apply_pending_labels).
    pub labels_error: Option<String>,
}

/// What incremental scoring did with its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalRun {
    /// Input rows.
    pub input_rows: usize,
    /// Rows outside the time window, left for a later run.
    pub outside_window: usize,
    /// Rows whose keys were already in the table.
    pub already_scored: usize,
    /// Rows scored and appended.
    pub appended: Appended,
}

/// What [`InferenceTable::score_files`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilesScored {
    /// Files scored and appended by this call.
    pub scored: Vec<String>,
    /// Files whose rows were already in the table (scored by an earlier run).
    pub already_scored: Vec<String>,
    /// Rows appended.
    pub rows: usize,
    /// The last failure to apply pending labels after an append committed (the rows are
    /// in the table; the labels stay pending).
    pub labels_error: Option<String>,
}

/// A time window `[start, end]` on a datetime column: records outside it are not scored
/// (their features may not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// The record-time column.
    pub column: String,
    /// Earliest record time scored, inclusive.
    pub start: DateTime<Utc>,
    /// Latest record time scored, inclusive.
    pub end: DateTime<Utc>,
}

/// A Delta Lake table of predictions, readable by Spark, Databricks, Polars, DuckDB and the
/// Python `deltalake` package.
///
/// Columns: the scored input columns, `prediction`, `model_name`, `model_version`,
/// `scored_at` (as [`BatchScorer`] writes them), [`ROW_ID`] (unique per scored row) and
/// [`ACTUAL_LABEL`] (null until [`merge_labels`](Self::merge_labels) fills it).
///
/// ```
/// use mlops_core::TabularClassifierParams;
/// use mlops_infer::{BatchScorer, InferenceTable, InferenceTableConfig, TableLocation};
/// use polars::prelude::*;
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let train = df!("id" => ["t1", "t2", "t3", "t4"], "Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
/// let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
/// let scorer = BatchScorer::new("transactions", 1, std::sync::Arc::new(model));
///
/// let dir = tempfile::tempdir()?;
/// let table = InferenceTable::new(TableLocation::local(dir.path().join("inference"))?, InferenceTableConfig::new(["id"]))?;
/// table.append(&scorer.score(&train.drop("Label")?)?).await?;
/// // Labels arrive later, some before their prediction exists.
/// let labels = df!("id" => ["t2", "t9"], "label" => [1.0, 0.0])?;
/// let merged = table.merge_labels(&labels, "label").await?;
/// assert_eq!((merged.matched, merged.pending), (1, 1));
/// assert_eq!(table.read().await?.column("actual_label")?.null_count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct InferenceTable {
    location: TableLocation,
    pending: TableLocation,
    config: InferenceTableConfig,
}

impl InferenceTable {
    /// The inference table at `location` (created by the first append); pending labels live in
    /// the sibling table `<location>_pending_labels`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a config without keys or with an unsupported label type.
    pub fn new(location: TableLocation, config: InferenceTableConfig) -> Result<Self> {
        config.check()?;
        Ok(Self { pending: location.sibling("pending_labels")?, location, config })
    }

    /// Where the table lives.
    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// Where labels wait for their predictions.
    pub fn pending_location(&self) -> &TableLocation {
        &self.pending
    }

    /// The options.
    pub fn config(&self) -> &InferenceTableConfig {
        &self.config
    }

    /// Appends scored rows (a [`BatchScorer`] output), adding [`ROW_ID`] and a null
    /// [`ACTUAL_LABEL`], then applies pending labels that now find their prediction.
    /// Concurrent appends from other processes are fine: Delta's optimistic concurrency
    /// retries the commit.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a missing key or output column; [`Error::Delta`]
    /// when the table cannot be written (the commit did not happen).
    pub async fn append(&self, scored: &DataFrame) -> Result<Appended> {
        Ok(self.append_with(scored, None, false).await?.unwrap_or_default())
    }

    /// [`append`](Self::append), adding to the table's schema the columns of `scored` that
    /// it lacks (earlier rows read them as null) instead of refusing them: for rows whose
    /// columns vary, such as captured requests carrying optional inputs.
    ///
    /// # Errors
    /// As [`append`](Self::append), and [`Error::Delta`] for a column whose type differs
    /// from the table's.
    pub async fn append_merging_schema(&self, scored: &DataFrame) -> Result<Appended> {
        Ok(self.append_with(scored, None, true).await?.unwrap_or_default())
    }

    /// [`append`](Self::append), committing `transaction` (an application id and a version,
    /// Delta's `txn` action) atomically with the rows, unless the table already records
    /// `version` or a later one for `app_id`: then nothing is written and the answer is
    /// `None`. A writer that records its progress this way finds it again with
    /// [`transaction_version`](Self::transaction_version) and never writes a batch twice, even
    /// when two writers race: the check is made on the snapshot the commit is built on, and
    /// a writer that commits the same application in between makes Delta refuse the commit,
    /// which is then checked again.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub async fn append_in_transaction(
        &self,
        scored: &DataFrame,
        app_id: &str,
        version: i64,
    ) -> Result<Option<Appended>> {
        self.append_with(scored, Some(Transaction::new(app_id, version)), false).await
    }

    /// The last version committed by application `app_id`, if any.
    ///
    /// # Errors
    /// [`Error::Delta`] when the table cannot be read.
    pub async fn transaction_version(&self, app_id: &str) -> Result<Option<i64>> {
        let Some(table) = self.location.load().await? else { return Ok(None) };
        let state = table.snapshot().map_err(|e| self.failed("reading", e))?;
        state.transaction_version(table.log_store().as_ref(), app_id).await.map_err(|e| self.failed("reading", e))
    }

    /// `None` when `once` is recorded already.
    async fn append_with(
        &self,
        scored: &DataFrame,
        once: Option<Transaction>,
        merge_schema: bool,
    ) -> Result<Option<Appended>> {
        for column in
            self.config.keys.iter().map(String::as_str).chain([PREDICTION, MODEL_NAME, MODEL_VERSION, SCORED_AT])
        {
            if scored.column(column).is_err() {
                return Err(Error::InvalidArgument(format!("scored frame has no column `{column}`")));
            }
        }
        for column in [ROW_ID, ACTUAL_LABEL] {
            if scored.column(column).is_ok() {
                return Err(Error::InvalidArgument(format!("scored frame already has column `{column}`")));
            }
        }
        if scored.height() == 0 {
            return Ok(Some(Appended::default()));
        }
        let (mut rows, label_type) = (scored.clone(), self.config.label_type.clone());
        let (height, batches) = off_runtime(move || {
            rows.with_column(row_ids(rows.height()))?;
            rows.with_column(Column::full_null(ACTUAL_LABEL.into(), rows.height(), &label_type))?;
            Ok((rows.height(), frame_to_batches(&rows)?))
        })
        .await?;
        let Some(table) = append_once(&self.location, batches, once, merge_schema).await? else {
            return Ok(None);
        };
        // The rows are committed: a failure from here on is reported with them, never as the
        // append's failure (a caller retrying it would append them twice).
        let labels_error = self.apply_pending_labels().await.err().map(|e| e.to_string());
        Ok(Some(Appended { rows: height, version: table.version(), labels_error }))
    }

    /// Scores the records of `input` that are inside `window` (if given) and whose keys are
    /// not in the table yet, and appends them. Running it again on the same input adds
    /// nothing, and runs at once (in any processes) on overlapping input append each record
    /// once: each commit records the count of incremental runs (a Delta `txn` action of
    /// [`INCREMENTAL_APP_ID`]) read before the keys, so a run that another one overtook
    /// between reading the keys and committing is refused, and starts again from the keys.
    /// Rows that [`append`](Self::append) or a stream adds while a run scores are not
    /// guarded this way.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a missing key or window column; scoring and
    /// [`append`](Self::append) errors; [`Error::Delta`] when other runs committed first
    /// [`INCREMENTAL_ATTEMPTS`] times in a row (the table is unchanged by this run).
    pub async fn score_incremental(
        &self,
        scorer: &BatchScorer,
        input: &DataFrame,
        window: Option<&TimeWindow>,
    ) -> Result<IncrementalRun> {
        for key in &self.config.keys {
            if input.column(key).is_err() {
                return Err(Error::InvalidArgument(format!("input has no key column `{key}`")));
            }
        }
        let bounds = match window {
            Some(window) => {
                let column = input
                    .column(&window.column)
                    .map_err(|_| Error::InvalidArgument(format!("input has no time column `{}`", window.column)))?;
                let DataType::Datetime(unit, _) = column.dtype() else {
                    return Err(Error::InvalidArgument(format!(
                        "time column `{}` is {}, expected a datetime",
                        window.column,
                        column.dtype()
                    )));
                };
                let bound = |t: &DateTime<Utc>| match unit {
                    TimeUnit::Milliseconds => t.timestamp_millis(),
                    TimeUnit::Microseconds => t.timestamp_micros(),
                    // Outside 1677 to 2262, nanoseconds saturate on the side the instant is.
                    TimeUnit::Nanoseconds => {
                        t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
                    }
                };
                Some((window.column.clone(), bound(&window.start), bound(&window.end)))
            }
            None => None,
        };
        let input_rows = input.height();
        for _ in 0..INCREMENTAL_ATTEMPTS {
            // The run count is read before the keys: a run committing after this read either
            // is in the keys read next, or makes this commit's count a stale one.
            let runs = self.transaction_version(INCREMENTAL_APP_ID).await?;
            let this_run = match runs {
                None => 0,
                Some(runs) => runs.checked_add(1).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "inference table `{}` records {runs} incremental runs, the most there can be",
                        self.location.url()
                    ))
                })?,
            };
            let (scored, in_window, fresh) = self.score_unseen(scorer, input, bounds.clone()).await?;
            if let Some(appended) = self.append_in_transaction(&scored, INCREMENTAL_APP_ID, this_run).await? {
                return Ok(IncrementalRun {
                    input_rows,
                    outside_window: input_rows - in_window,
                    already_scored: in_window - fresh,
                    appended,
                });
            }
            tracing::debug!(table = %self.location.url(), run = this_run, "another incremental run committed first; scoring again");
        }
        Err(Error::delta(
            format!(
                "scoring into inference table `{}`: other incremental runs committed first {INCREMENTAL_ATTEMPTS} times",
                self.location.url()
            ),
            DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
            },
        ))
    }

    /// The records of `input` inside `bounds` (the time column and its range in the
    /// column's unit) whose keys the table does not hold, scored, with the counts of
    /// records inside the window and of those left to score.
    async fn score_unseen(
        &self,
        scorer: &BatchScorer,
        input: &DataFrame,
        bounds: Option<(String, i64, i64)>,
    ) -> Result<(DataFrame, usize, usize)> {
        let known = self.keys().await?;
        let (input, keys, scorer) = (input.clone(), self.config.keys.clone(), scorer.clone());
        off_runtime(move || {
            let mut candidates = input.lazy();
            if let Some((column, start, end)) = bounds {
                let time = col(column.as_str()).cast(DataType::Int64);
                candidates = candidates.filter(time.clone().gt_eq(lit(start)).and(time.lt_eq(lit(end))));
            }
            let in_window = candidates.collect()?;
            let on: Vec<Expr> = keys.iter().map(|k| col(k.as_str())).collect();
            let fresh = match known {
                Some(known) => in_window
                    .clone()
                    .lazy()
                    .join(known.lazy(), on.clone(), on, JoinArgs::new(JoinType::Anti))
                    .collect()?,
                None => in_window.clone(),
            };
            Ok((scorer.score(&fresh)?, in_window.height(), fresh.height()))
        })
        .await
    }

    /// Scores Parquet files from `store` and appends each file's rows in one commit that also
    /// records the file (a Delta `txn` action), so a file is appended once however often the
    /// job runs, and several workers can share a table: give each the files
    /// [`shard_of`](crate::shard_of) assigns it.
    ///
    /// # Errors
    /// [`Error::Storage`] naming a file that cannot be fetched, [`Error::InvalidArgument`]
    /// naming one that is not Parquet; scoring and
    /// [`append`](Self::append) errors. Files appended before the error stay appended.
    pub async fn score_files(
        &self,
        scorer: &BatchScorer,
        store: &dyn ObjectStore,
        files: &[Path],
    ) -> Result<FilesScored> {
        let mut report = FilesScored::default();
        for file in files {
            let app_id = format!("mlops.file:{file}");
            // A cheap look first, so a file scored before is not read again; the append
            // checks again on the snapshot it commits to, for a worker racing this one.
            if self.transaction_version(&app_id).await?.is_some() {
                report.already_scored.push(file.to_string());
                continue;
            }
            let bytes = read_object(store, file).await?;
            let (scorer, name) = (scorer.clone(), file.to_string());
            let scored = off_runtime(move || {
                let input = ParquetReader::new(std::io::Cursor::new(bytes))
                    .finish()
                    .map_err(|e| Error::InvalidArgument(format!("input file `{name}`: {e}")))?;
                scorer.score(&input)
            })
            .await?;
            match self.append_in_transaction(&scored, &app_id, 0).await? {
                Some(appended) => {
                    report.rows += appended.rows;
                    report.labels_error = appended.labels_error.or(report.labels_error);
                    report.scored.push(file.to_string());
                }
                None => report.already_scored.push(file.to_string()),
            }
        }
        Ok(report)
    }

    /// The whole table as a frame (empty when the table does not exist yet).
    ///
    /// # Errors
    /// [`Error::Delta`] when the table cannot be read.
    pub async fn read(&self) -> Result<DataFrame> {
        Ok(read_table(&self.location, None).await?.unwrap_or_default())
    }

    /// The key columns of every row, or `None` when the table does not exist yet.
    async fn keys(&self) -> Result<Option<DataFrame>> {
        read_table(&self.location, Some(&self.config.keys)).await
    }

    /// The table's current version, or `None` when it does not exist yet.
    ///
    /// # Errors
    /// [`Error::Delta`] when the table cannot be read.
    pub async fn version(&self) -> Result<Option<u64>> {
        Ok(self.location.load().await?.and_then(|t| t.version()))
    }

    pub(crate) fn failed(&self, operation: &str, error: deltalake::DeltaTableError) -> Error {
        Error::delta(format!("{operation} inference table `{}`", self.location.url()), error)
    }
}

/// The application id of the Delta `txn` action that counts
/// [`InferenceTable::score_incremental`] runs.
pub const INCREMENTAL_APP_ID: &str = "mlops.score_incremental";

/// How often [`InferenceTable::score_incremental`] starts again after another run committed
/// first, before it gives up.
pub const INCREMENTAL_ATTEMPTS: usize = 8;

/// How often a write is retried after losing the race to create the table.
pub(crate) const CREATION_RACE_ATTEMPTS: usize = 5;

/// Writes `batches`; when several writers create the same table at once, all but one lose
/// the race for version 0, and the losers write again to the table the winner created.
/// Delta retries every other kind of concurrent blind append itself. `configuration` is
/// recorded in the table's metadata when the write creates it.
pub(crate) async fn write_retrying_creation_races(
    location: &TableLocation,
    batches: Vec<RecordBatch>,
    mode: SaveMode,
    properties: CommitProperties,
    configuration: &[(&str, String)],
) -> Result<DeltaTable> {
    let mut attempt = 1;
    loop {
        let table = location.load_or_new().await?;
        let creating = table.state.is_none();
        let written = table
            .write(batches.clone())
            .with_save_mode(mode)
            .with_commit_properties(creation_safe(properties.clone(), creating))
            .with_configuration(configuration.iter().map(|(k, v)| (*k, Some(v.clone()))))
            .await;
        match written {
            Err(e) if lost_creation_race(&e, creating) && attempt < CREATION_RACE_ATTEMPTS => attempt += 1,
            other => return other.map_err(|e| Error::delta(format!("writing table `{}`", location.url()), e)),
        }
    }
}

/// Appends `batches`, retrying creation races as [`write_retrying_creation_races`] does and
/// merging new columns into the table's schema when `merge_schema` is set. With `once`, the
/// commit also records that transaction, and is written only while the snapshot it is built
/// on records a lower version for the application: `None` when it records as much already.
/// A writer that commits the same application after that snapshot makes Delta's conflict
/// check refuse this commit, which is then checked again on a fresh snapshot.
async fn append_once(
    location: &TableLocation,
    batches: Vec<RecordBatch>,
    once: Option<Transaction>,
    merge_schema: bool,
) -> Result<Option<DeltaTable>> {
    let failed = |e| Error::delta(format!("writing table `{}`", location.url()), e);
    let mut attempt = 1;
    loop {
        let table = location.load_or_new().await?;
        let creating = table.state.is_none();
        let mut properties = creation_safe(CommitProperties::default(), creating);
        if let Some(once) = &once {
            if let Some(snapshot) = table.state.as_ref() {
                let recorded = snapshot
                    .transaction_version(table.log_store().as_ref(), &once.app_id)
                    .await
                    .map_err(|e| Error::delta(format!("reading table `{}`", location.url()), e))?;
                if recorded.is_some_and(|recorded| recorded >= once.version) {
                    return Ok(None);
                }
            }
            properties = properties.with_application_transaction(once.clone());
        }
        let mut write =
            table.write(batches.clone()).with_save_mode(SaveMode::Append).with_commit_properties(properties);
        if merge_schema {
            write = write.with_schema_mode(deltalake::operations::write::SchemaMode::Merge);
        }
        match write.await {
            Err(e) if lost_creation_race(&e, creating) && attempt < CREATION_RACE_ATTEMPTS => attempt += 1,
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
            }) if attempt < CREATION_RACE_ATTEMPTS => attempt += 1,
            other => return other.map(Some).map_err(failed),
        }
    }
}

/// `properties` for a write that may create the table. A creating commit that finds
/// version 0 taken is retried by Delta at the next version without a conflict check, as a
/// second creation carrying its rows and any `txn` past the winner's: no retries, so that
/// the loser fails instead and is written again to the table the winner created.
pub(crate) fn creation_safe(properties: CommitProperties, creating: bool) -> CommitProperties {
    if creating { properties.with_max_retries(0) } else { properties }
}

/// Whether a write lost the race to create the table: another writer's commit set the
/// protocol and metadata first, or (for a commit made [`creation_safe`]) took version 0.
pub(crate) fn lost_creation_race(error: &DeltaTableError, creating: bool) -> bool {
    match error {
        DeltaTableError::Transaction {
            source:
                TransactionError::CommitConflict(
                    CommitConflictError::MetadataChanged | CommitConflictError::ProtocolChanged(_),
                ),
        }
        | DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(_) } => creating,
        _ => false,
    }
}

/// Reads a table (only `columns`, if given) into a frame; `None` when there is no table.
async fn read_table(location: &TableLocation, columns: Option<&[String]>) -> Result<Option<DataFrame>> {
    match location.load().await? {
        Some(table) => scan_frame(&table, columns).await.map(Some),
        None => Ok(None),
    }
}

/// The rows of a loaded table (only `columns`, if given) as a frame.
pub(crate) async fn scan_frame(table: &DeltaTable, columns: Option<&[String]>) -> Result<DataFrame> {
    let failed = |e| Error::delta(format!("reading table `{}`", table.table_url()), e);
    let mut scan = table.scan_table();
    if let Some(columns) = columns {
        scan = scan.with_columns(columns.iter().cloned());
    }
    let (_, stream) = scan.await.map_err(failed)?;
    let schema: SchemaRef = stream.schema();
    let batches = collect(stream).await.map_err(|e| failed(e.into()))?;
    off_runtime(move || batches_to_frame(&schema, &batches)).await
}

/// Ids unique across writers and runs: a random (v4 UUID) id of the write and the row's index.
fn row_ids(rows: usize) -> Column {
    let writer = uuid::Uuid::new_v4().simple();
    let mut id = String::with_capacity(48);
    let mut builder = StringChunkedBuilder::new(ROW_ID.into(), rows);
    for index in 0..rows {
        id.clear();
        let _ = write!(id, "{writer}-{index}");
        builder.append_value(&id);
    }
    builder.finish().into_series().into_column()
}
