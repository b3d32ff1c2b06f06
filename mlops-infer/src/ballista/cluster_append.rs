//! A query's rows into an inference table, written by the processes that run its partitions
//! and committed once, by the caller, in one Delta transaction.

use std::sync::Arc;

use deltalake::DeltaTableError;
use deltalake::arrow::array::{Array, StringArray, UInt64Array};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::functions::expr_fn::uuid;
use deltalake::datafusion::logical_expr::{Expr, Extension, LogicalPlan, LogicalPlanBuilder, cast, lit};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use polars::prelude::{Column as PolarsColumn, DataFrame as PolarsFrame};

use super::write_parts::{BYTES, FILE, PartTarget, ROWS, WriteParts};
use crate::delta::arrow::frame_to_arrow;
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
    /// A task run again after a failure writes a file of its own; only the finished query's
    /// files are committed, so every row lands once however many executors are lost. A job
    /// re-run after its commit finds the transaction recorded and does nothing (`None`);
    /// re-run after a failure, it runs again (files of the failed run are never committed:
    /// Delta's `VACUUM` removes them). Each partition must compute the same rows on every
    /// attempt: volatile functions (`random()`) in the input would break that.
    ///
    /// The table is created from the query's columns when it does not exist; an existing
    /// table's columns are taken as they are (each query column cast to the table's type),
    /// and a query column the table lacks is refused, naming it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a missing key or output column, a column the table
    /// lacks, or a partitioned table; [`Error::Query`] when the query fails (an error of this
    /// crate raised inside it, such as a schema violation, as it was); [`Error::Delta`] when
    /// the table cannot be read, created or committed to (nothing is committed then).
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
                    _ => lit(ScalarValue::Null),
                };
                cast(value, field.data_type().clone()).alias(field.name())
            })
            .collect();
        let planned = |e| Error::query("planning the write of a query", e);
        let projected = LogicalPlanBuilder::from(plan).project(columns).map_err(planned)?.build().map_err(planned)?;
        let target = PartTarget {
            table_url: self.location().url().to_string(),
            prefix: format!("part-{}", uuid::Uuid::new_v4().simple()),
        };
        let write = WriteParts::new(projected, target).map_err(planned)?;
        let plan = LogicalPlan::Extension(Extension { node: Arc::new(write) });
        let reports = DataFrame::new(state, plan).collect().await.map_err(|e| Error::query("running a query", e))?;

        let now = chrono::Utc::now().timestamp_millis();
        let mut adds = Vec::new();
        let mut rows = 0usize;
        for report in &reports {
            let (Some(files), Some(counts), Some(sizes)) = (
                report.column_by_name(FILE).and_then(|c| c.as_any().downcast_ref::<StringArray>()),
                report.column_by_name(ROWS).and_then(|c| c.as_any().downcast_ref::<UInt64Array>()),
                report.column_by_name(BYTES).and_then(|c| c.as_any().downcast_ref::<UInt64Array>()),
            ) else {
                return Err(Error::InvalidArgument(format!("the write reported columns {:?}", report.schema())));
            };
            for index in 0..report.num_rows() {
                let (count, size) = (counts.value(index), sizes.value(index));
                rows += usize::try_from(count).unwrap_or(usize::MAX);
                adds.push(Action::Add(Add {
                    path: files.value(index).to_owned(),
                    size: i64::try_from(size).unwrap_or(i64::MAX),
                    modification_time: now,
                    data_change: true,
                    stats: Some(format!(r#"{{"numRecords":{count}}}"#)),
                    ..Add::default()
                }));
            }
        }
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
            let created = CreateBuilder::new()
                .with_log_store(self.location().log_store()?)
                .with_columns(schema.fields().cloned())
                .with_save_mode(SaveMode::Ignore)
                .await;
            match created {
                // A table another writer created meanwhile is as good as ours.
                Ok(_) | Err(DeltaTableError::VersionAlreadyExists(_)) => {}
                Err(e) => return Err(Error::delta(format!("creating inference table `{table_name}`"), e)),
            }
        }
        let Some(table) = self.location().load().await? else {
            return Err(Error::InvalidArgument(format!(
                "inference table `{table_name}` vanished while it was created"
            )));
        };
        let snapshot = table.snapshot().map_err(|e| self.failed("reading", e))?;
        let partitions = snapshot.metadata().partition_columns();
        if !partitions.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "inference table `{table_name}` is partitioned ({}), which a cluster's writers do not write",
                partitions.join(", ")
            )));
        }
        Ok(snapshot.snapshot().arrow_schema())
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
                Err(DeltaTableError::Transaction { source: TransactionError::CommitConflict(_) })
                    if attempt < COMMIT_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(self.failed("committing to", e)),
            }
        }
    }
}
