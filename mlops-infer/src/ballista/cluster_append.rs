//! A query's rows into an inference table, written by the processes that run its partitions
//! and committed once, by the caller, in one Delta transaction.

use std::sync::Arc;

use deltalake::DeltaTableError;
use deltalake::arrow::array::{Array, RecordBatch, StringArray, UInt64Array};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::functions::expr_fn::uuid;
use deltalake::datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, cast, lit};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitConflictError, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use polars::prelude::{Column as PolarsColumn, DataFrame as PolarsFrame};

use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::write_parts::{BYTES, FILE, INPUT, PartTarget, ROWS, WriteParts};
use crate::delta::arrow::frame_to_arrow;
use crate::delta::inference_table::{creation_safe, lost_creation_race};
use crate::delta::{ACTUAL_LABEL, Appended, InferenceTable, ROW_ID};
use crate::error::{Error, Result};
use crate::{MODEL_NAME, MODEL_VERSION, PREDICTION, SCORED_AT};

/// How often a commit is tried again after losing a race with another writer.
const COMMIT_ATTEMPTS: usize = 5;

impl InferenceTable {
    /// Runs `query` on the cluster its session belongs to (a session from
    /// [`remote_context`](super::remote_context) or [`standalone_context`](super::standalone_context)),
    /// each partition writing its rows as a Parquet file in the table's directory where it
    /// runs, then commits exactly the files the finished query reports in one Delta commit
    /// that records `transaction` (`app_id`, `version`; Delta's `txn` action), with
    /// [`ROW_ID`] and a null [`ACTUAL_LABEL`] added as [`append`](Self::append) adds them.
    ///
    /// A task run again after a failure writes a file of its own; only the files the
    /// finished query reports are committed, each checked on the table's store first. An
    /// executor lost while its tasks run costs their time only, and every row lands once.
    /// Ballista may also run again a task that had finished on an executor it then takes
    /// for lost, and report both runs: each report names what its partition read (its
    /// files, or its shuffle partition), and of two files from the same input only one is
    /// committed (the other is deleted). A partition whose input cannot be named (one
    /// below an aggregate or a join, say) reports none, and there a task reported twice
    /// would be committed twice. A job re-run after its commit finds the
    /// transaction recorded and does nothing (`None`); re-run after a failure, it runs again
    /// (files of the failed run are never committed: Delta's `VACUUM` removes them). A query
    /// without rows appends and records nothing, so a re-run runs it again. Each partition
    /// must compute the same rows on every attempt: volatile functions (`random()`) in the
    /// input would break that.
    ///
    /// The table is created from the query's columns when it does not exist; an existing
    /// table's columns are taken as they are (each query column cast to the table's type;
    /// a nullable table column the query lacks is null). Files are added as they are, so a
    /// table that asks writers for more is refused: column mapping, CHECK constraints,
    /// invariants, generated or identity columns, row tracking, partition columns.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a missing key or output column, a column the table
    /// lacks (or a non-null one the query lacks), the table feature refused, or a file not
    /// on the table's store as reported; [`Error::Query`] when the query fails (an error of
    /// this crate raised inside it, such as a schema violation, as it was); [`Error::Delta`]
    /// when the table cannot be read, created or committed to; [`Error::Storage`] when a
    /// reported file cannot be checked. Nothing is committed on any error.
    pub async fn append_cluster_query(&self, query: DataFrame, app_id: &str, version: i64) -> Result<Option<Appended>> {
        if self.transaction_version(app_id).await?.is_some_and(|recorded| recorded >= version) {
            return Ok(None);
        }
        let query_schema: SchemaRef = Arc::new(query.schema().as_arrow().clone());
        for column in
            self.config().keys.iter().map(String::as_str).chain([PREDICTION, MODEL_NAME, MODEL_VERSION, SCORED_AT])
        {
            if query_schema.field_with_name(column).is_err() {
                return Err(Error::InvalidArgument(format!("query has no column `{column}`")));
            }
        }
        for column in [ROW_ID, ACTUAL_LABEL] {
            if query_schema.field_with_name(column).is_ok() {
                return Err(Error::InvalidArgument(format!("query already has column `{column}`")));
            }
        }
        let table_schema = self.schema_for(&query_schema).await?;
        for field in query_schema.fields() {
            if table_schema.field_with_name(field.name()).is_err() {
                return Err(Error::InvalidArgument(format!(
                    "inference table `{}` has no column `{}` for the query's column of that name",
                    self.location().url_without_secrets(),
                    field.name()
                )));
            }
        }

        let (state, plan) = query.into_parts();
        let columns: Vec<Expr> = table_schema
            .fields()
            .iter()
            .map(|field| {
                let value = match field.name().as_str() {
                    ROW_ID => uuid(),
                    ACTUAL_LABEL => lit(ScalarValue::Null),
                    name if query_schema.field_with_name(name).is_ok() => Expr::Column(Column::new_unqualified(name)),
                    name if !field.is_nullable() => {
                        return Err(Error::InvalidArgument(format!(
                            "inference table `{}` needs column `{name}` (it holds no nulls), which the query lacks",
                            self.location().url_without_secrets()
                        )));
                    }
                    _ => lit(ScalarValue::Null),
                };
                Ok(cast(value, field.data_type().clone()).alias(field.name()))
            })
            .collect::<Result<_>>()?;
        let planned = |e| Error::query("planning the write of a query", e);
        let projected = LogicalPlanBuilder::from(plan).project(columns).map_err(planned)?.build().map_err(planned)?;
        let target = PartTarget {
            table_url: self.location().url().to_string(),
            prefix: format!("part-{}", uuid::Uuid::new_v4().simple()),
        };
        let write = WriteParts::new(projected, target).map_err(planned)?;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(write) });
        let reports = DataFrame::new(state, plan).collect().await.map_err(|e| Error::query("running a query", e))?;

        let (adds, rows) = self.reported_files(&reports).await?;
        if adds.is_empty() {
            return Ok(Some(Appended::default()));
        }
        let Some(committed) = self.commit_once(adds, app_id, version).await? else { return Ok(None) };
        // The rows are committed: a failure from here on is reported with them, never as the
        // append's failure (a caller retrying it would append them twice).
        let labels_error = self.apply_pending_labels().await.err().map(|e| e.to_string());
        Ok(Some(Appended { rows, version: Some(committed), labels_error }))
    }

    /// The table's columns, creating it from `query`'s (with a row id and a label) when it
    /// does not exist.
    async fn schema_for(&self, query: &SchemaRef) -> Result<SchemaRef> {
        let table_name = self.location().url_without_secrets();
        if self.location().load().await?.is_none() {
            let mut fields: Vec<Field> = query.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(ROW_ID, DataType::Utf8, true));
            fields.push(Field::new(ACTUAL_LABEL, self.label_arrow_type()?, true));
            let schema: StructType = (&Schema::new(fields))
                .try_into_kernel()
                .map_err(|e| Error::delta(format!("creating inference table `{table_name}`"), e.into()))?;
            // Without retries: a creation that lost the race would otherwise commit its
            // metadata over the winner's. A table another writer created is as good as ours.
            let created = CreateBuilder::new()
                .with_log_store(self.location().log_store()?)
                .with_columns(schema.fields().cloned())
                .with_save_mode(SaveMode::Ignore)
                .with_commit_properties(creation_safe(CommitProperties::default(), true))
                .await;
            match created {
                Ok(_) => {}
                Err(e) if lost_creation_race(&e, true) => {}
                Err(e) => return Err(Error::delta(format!("creating inference table `{table_name}`"), e)),
            }
        }
        let Some(table) = self.location().load().await? else {
            return Err(Error::InvalidArgument(format!(
                "inference table `{table_name}` vanished while it was created"
            )));
        };
        let snapshot = table.snapshot().map_err(|e| self.failed("reading", e))?;
        let refuse = |what: String| {
            Err(Error::InvalidArgument(format!(
                "inference table `{table_name}` has {what}, which files added as a cluster writes them do not honour; \
                 append with `append_query` instead"
            )))
        };
        let metadata = snapshot.metadata();
        let partitions = metadata.partition_columns();
        if !partitions.is_empty() {
            return refuse(format!("partition columns ({})", partitions.join(", ")));
        }
        for (key, value) in metadata.configuration() {
            let asks_writers = key.starts_with("delta.constraints.")
                || (key == "delta.columnMapping.mode" && !value.eq_ignore_ascii_case("none"))
                || (key == "delta.enableRowTracking" && value.eq_ignore_ascii_case("true"));
            if asks_writers {
                return refuse(format!("the table property `{key}` = `{value}`"));
            }
        }
        let schema = snapshot.snapshot().arrow_schema();
        for field in schema.fields() {
            for key in field.metadata().keys() {
                let asks_writers = key == "delta.invariants"
                    || key == "delta.generationExpression"
                    || key.starts_with("delta.identity.");
                if asks_writers {
                    return refuse(format!("`{key}` on column `{}`", field.name()));
                }
            }
        }
        Ok(schema)
    }

    /// The files the reports name, checked on the table's store, as actions to commit, with
    /// the rows they hold. Of several files written from one input (a task Ballista ran
    /// again after taking its executor for lost, when both runs reported), one is kept and
    /// the others are deleted.
    async fn reported_files(&self, reports: &[RecordBatch]) -> Result<(Vec<Action>, usize)> {
        let mut written = Vec::new();
        for report in reports {
            let column = |name: &str| report.column_by_name(name).map(|c| c.as_any());
            let (Some(files), Some(rows), Some(sizes)) = (
                column(FILE).and_then(|c| c.downcast_ref::<StringArray>()),
                column(ROWS).and_then(|c| c.downcast_ref::<UInt64Array>()),
                column(BYTES).and_then(|c| c.downcast_ref::<UInt64Array>()),
            ) else {
                return Err(Error::InvalidArgument(format!("the write reported columns {:?}", report.schema())));
            };
            // Writers that cannot tell their input report none.
            let inputs = column(INPUT).and_then(|c| c.downcast_ref::<StringArray>());
            let input = |i: usize| inputs.filter(|c| c.is_valid(i)).map(|c| c.value(i).to_owned());
            // A partition without rows reports no file.
            written.extend(
                (0..report.num_rows())
                    .filter(|&i| files.is_valid(i))
                    .map(|i| (files.value(i).to_owned(), rows.value(i), sizes.value(i), input(i))),
            );
        }
        // The first file by name of each input, so that every reading of the same reports
        // keeps the same one.
        written.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut inputs = std::collections::HashSet::new();
        let (written, again): (Vec<_>, Vec<_>) =
            written.into_iter().partition(|(_, _, _, input)| input.as_ref().is_none_or(|i| inputs.insert(i.clone())));
        let directory = Path::from_url_path(self.location().url().path())
            .map_err(|e| Error::InvalidArgument(format!("table location `{}`: {e}", self.location().url())))?;
        for (file, _, _, input) in again {
            let path = directory.clone().join(file.as_str());
            // Never committed, so nothing reads it; a file left behind is only space.
            if let Err(error) = self.location().store().delete(&path).await {
                tracing::warn!(file = %path, input = input.as_deref().unwrap_or_default(), %error, "could not delete a second file written from one input");
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let (mut adds, mut total) = (Vec::new(), 0usize);
        for (file, count, size, _) in written {
            let path = directory.clone().join(file.as_str());
            let found = self.location().store().head(&path).await.map_err(|source| Error::Storage {
                context: format!("checking written file `{path}` before committing it"),
                source,
            })?;
            if found.size != size {
                return Err(Error::InvalidArgument(format!(
                    "written file `{path}` holds {} bytes on the table's store, not the {size} its writer reported: \
                     nothing was committed",
                    found.size
                )));
            }
            total = total.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
            adds.push(Action::Add(Add {
                path: file,
                size: i64::try_from(size).unwrap_or(i64::MAX),
                modification_time: now,
                data_change: true,
                stats: Some(format!(r#"{{"numRecords":{count}}}"#)),
                ..Add::default()
            }));
        }
        Ok((adds, total))
    }

    /// The Arrow type of the table's label column, as [`append`](Self::append) writes it.
    fn label_arrow_type(&self) -> Result<DataType> {
        let frame =
            PolarsFrame::new(0, vec![PolarsColumn::full_null(ACTUAL_LABEL.into(), 0, &self.config().label_type)])?;
        let (schema, _) = frame_to_arrow(&frame)?;
        Ok(schema.field(0).data_type().clone())
    }

    /// Commits `adds` with the transaction, unless the table records it already (`None`);
    /// the version committed otherwise.
    async fn commit_once(&self, adds: Vec<Action>, app_id: &str, version: i64) -> Result<Option<u64>> {
        let mut attempt = 1;
        loop {
            let Some(table) = self.location().load().await? else {
                return Err(Error::InvalidArgument(format!(
                    "inference table `{}` vanished before its files were committed",
                    self.location().url_without_secrets()
                )));
            };
            let snapshot = table.snapshot().map_err(|e| self.failed("reading", e))?;
            let recorded = snapshot
                .transaction_version(table.log_store().as_ref(), app_id)
                .await
                .map_err(|e| self.failed("reading", e))?;
            if recorded.is_some_and(|recorded| recorded >= version) {
                return Ok(None);
            }
            let properties =
                CommitProperties::default().with_application_transaction(Transaction::new(app_id, version));
            let committed = CommitBuilder::from(properties)
                .with_actions(adds.clone())
                .build(
                    Some(snapshot),
                    table.log_store(),
                    DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None },
                )
                .await;
            match committed {
                Ok(commit) => return Ok(Some(commit.version())),
                // Another commit of this application: checked again on a fresh snapshot. Any
                // other conflict (a changed schema or protocol) is not retried blindly.
                Err(DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
                }) if attempt < COMMIT_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(self.failed("committing to", e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::delta::{InferenceTableConfig, TableLocation};

    fn table(dir: &std::path::Path) -> InferenceTable {
        InferenceTable::new(TableLocation::local(dir.join("inference")).unwrap(), InferenceTableConfig::new(["id"]))
            .unwrap()
    }

    /// Reports as a writer that cannot tell its input gives them: (file, rows, bytes).
    fn reports(rows: &[(Option<&str>, u64, u64)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (FILE, Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as Arc<dyn Array>),
            (ROWS, Arc::new(UInt64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as Arc<dyn Array>),
            (BYTES, Arc::new(UInt64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as Arc<dyn Array>),
        ])
        .unwrap()
    }

    /// Reports naming their inputs: (file, rows, bytes, input).
    fn reports_with_inputs(rows: &[(Option<&str>, u64, u64, Option<&str>)]) -> RecordBatch {
        let without: Vec<(Option<&str>, u64, u64)> = rows.iter().map(|r| (r.0, r.1, r.2)).collect();
        let inputs = StringArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>());
        let batch = reports(&without);
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(inputs));
        let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(INPUT, DataType::Utf8, true));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn written(dir: &std::path::Path, name: &str, bytes: usize) {
        std::fs::create_dir_all(dir.join("inference")).unwrap();
        std::fs::write(dir.join("inference").join(name), vec![7u8; bytes]).unwrap();
    }

    #[tokio::test]
    async fn the_reported_files_are_committed_and_partitions_without_rows_add_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        written(dir.path(), "p-0.parquet", 10);
        written(dir.path(), "p-2.parquet", 5);
        let batch = reports(&[(Some("p-0.parquet"), 4, 10), (None, 0, 0), (Some("p-2.parquet"), 2, 5)]);
        let (adds, rows) = table.reported_files(&[batch]).await.unwrap();
        let paths: Vec<(&str, i64)> = adds
            .iter()
            .map(|a| match a {
                Action::Add(add) => (add.path.as_str(), add.size),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(paths, [("p-0.parquet", 10), ("p-2.parquet", 5)]);
        assert_eq!(rows, 6);
    }

    #[tokio::test]
    async fn two_files_written_from_one_input_are_committed_once() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        for (name, bytes) in [("p-0-b.parquet", 10), ("p-0-a.parquet", 10), ("p-1.parquet", 7), ("q.parquet", 3)] {
            written(dir.path(), name, bytes);
        }
        // Partition 0 reported by two runs (in two batches, the later run first), partition 1
        // once, and a file whose writer could not tell its input.
        let first = reports_with_inputs(&[
            (Some("p-0-b.parquet"), 4, 10, Some("files:t/a.parquet")),
            (Some("p-1.parquet"), 2, 7, Some("files:t/b.parquet")),
            (Some("q.parquet"), 1, 3, None),
        ]);
        let second = reports_with_inputs(&[(Some("p-0-a.parquet"), 4, 10, Some("files:t/a.parquet"))]);
        let (adds, rows) = table.reported_files(&[first, second]).await.unwrap();
        let paths: Vec<&str> = adds
            .iter()
            .map(|a| match a {
                Action::Add(add) => add.path.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(paths, ["p-0-a.parquet", "p-1.parquet", "q.parquet"]);
        assert_eq!(rows, 7);
        assert!(!dir.path().join("inference").join("p-0-b.parquet").exists(), "the second file is deleted");
    }

    #[tokio::test]
    async fn a_file_unlike_its_report_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        written(dir.path(), "p-0.parquet", 10);
        let short = table.reported_files(&[reports(&[(Some("p-0.parquet"), 1, 11)])]).await.unwrap_err();
        assert!(short.to_string().contains("holds 10 bytes"), "{short}");
        let absent = table.reported_files(&[reports(&[(Some("gone.parquet"), 1, 10)])]).await.unwrap_err();
        assert!(matches!(absent, Error::Storage { .. }), "{absent}");
    }

    #[tokio::test]
    async fn a_reported_name_cannot_reach_outside_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        std::fs::write(dir.path().join("elsewhere.parquet"), vec![7u8; 10]).unwrap();
        let escaping = reports(&[(Some("../elsewhere.parquet"), 1, 10)]);
        let error = table.reported_files(&[escaping]).await.unwrap_err();
        assert!(matches!(error, Error::Storage { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_table_that_asks_writers_for_more_than_files_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let table = table(dir.path());
        let schema: StructType =
            (&Schema::new(vec![Field::new("id", DataType::Utf8, true)])).try_into_kernel().unwrap();
        CreateBuilder::new()
            .with_log_store(table.location().log_store().unwrap())
            .with_columns(schema.fields().cloned())
            .with_configuration([("delta.constraints.id_set", Some("id IS NOT NULL".to_owned()))])
            .with_raise_if_key_not_exists(false)
            .await
            .unwrap();
        let query: SchemaRef = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
        let error = table.schema_for(&query).await.unwrap_err().to_string();
        assert!(error.contains("delta.constraints.id_set"), "{error}");
    }
}
