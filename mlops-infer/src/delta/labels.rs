//! Ground truth that arrives late (or early): labels merged into the inference table, and
//! kept in a pending-labels table until their prediction lands.

use chrono::{DateTime, Utc};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use polars::prelude::*;
use tracing::Instrument;
use tracing::field::Empty;

use super::arrow::frame_to_batches;
use super::inference_table::{ACTUAL_LABEL, InferenceTable, scan_frame, write_retrying_creation_races};
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::telemetry;

/// Column of the pending-labels table holding when a label was received.
pub const RECEIVED_AT: &str = "received_at";

/// A label a merge set aside instead of applying, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLabel {
    /// The row of the labels frame.
    pub row: usize,
    /// Why it was set aside (a null key, a null label, a value that does not convert).
    pub reason: String,
}

/// What a label merge did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelMerge {
    /// Labels in the call.
    pub received: usize,
    /// Labels of the call superseded by a later label for the same key in the same call.
    pub superseded: usize,
    /// Labels (from this call or waiting from earlier ones) whose prediction is in the table:
    /// applied now, or found already applied.
    pub matched: usize,
    /// Inference-table rows whose `actual_label` changed.
    pub rows_updated: usize,
    /// Labels still waiting for their prediction.
    pub pending: usize,
    /// Labels of the call set aside, each with its reason; the others are merged.
    pub rejected: Vec<RejectedLabel>,
}

impl InferenceTable {
    /// Merges ground truth into `actual_label`: `labels` holds the key columns and
    /// `label_column`. Labels whose prediction is not in the table yet wait in the
    /// pending-labels table and are applied by the append that brings it.
    ///
    /// A label is never lost: it is written to the pending table before anything else, and
    /// leaves it only after the MERGE that applied it committed. It is never applied twice:
    /// a row whose label already has that value is not rewritten. Within one call, the last
    /// label of a key wins; across calls, the latest received wins.
    ///
    /// A label with a null key, a null label or a value that does not convert to the table's
    /// label type is set aside in [`LabelMerge::rejected`] with its row and reason; the
    /// others are merged.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a missing column or a label column whose type can
    /// never convert to the table's label type; [`Error::Delta`] when a table cannot be
    /// written.
    pub async fn merge_labels(&self, labels: &DataFrame, label_column: &str) -> Result<LabelMerge> {
        let started = std::time::Instant::now();
        let table = self.location().url_without_secrets();
        let span = tracing::info_span!(
            "label_merge",
            table = %table,
            received = labels.height(),
            applied = Empty,
            pending = Empty,
            duration_ms = Empty,
        );
        let merged = self.merge(labels, label_column).instrument(span.clone()).await?;
        let elapsed = started.elapsed();
        span.record("applied", merged.matched);
        span.record("pending", merged.pending);
        span.record("duration_ms", mlops_registry::telemetry::millis(elapsed));
        metrics::counter!(telemetry::LABELS_RECEIVED, "table" => table.clone()).increment(merged.received as u64);
        metrics::counter!(telemetry::LABELS_APPLIED, "table" => table.clone()).increment(merged.matched as u64);
        metrics::histogram!(telemetry::LABEL_MERGE_SECONDS, "table" => table).record(elapsed.as_secs_f64());
        Ok(merged)
    }

    async fn merge(&self, labels: &DataFrame, label_column: &str) -> Result<LabelMerge> {
        let keys = &self.config().keys;
        for column in keys.iter().map(String::as_str).chain([label_column]) {
            if labels.column(column).is_err() {
                return Err(Error::InvalidArgument(format!("labels have no column `{column}`")));
            }
        }
        let label = labels.column(label_column)?;
        let label_type = &self.config().label_type;
        let converted = label.cast(label_type).map_err(|e| {
            Error::InvalidArgument(format!(
                "label column `{label_column}` ({}) does not convert to {label_type}: {e}",
                label.dtype()
            ))
        })?;
        let (usable, rejected) = set_aside(labels, keys, label, &converted, label_type)?;
        let converted = converted.filter(&usable)?;
        let (labels, keys_owned) = (labels.select(keys.iter().cloned())?.filter(&usable)?, keys.clone());
        let (received, latest, batches) = off_runtime(move || {
            let mut normalized = labels;
            normalized.with_column(converted.with_name(ACTUAL_LABEL.into()))?;
            let mut latest = normalized.unique_stable(Some(&keys_owned), UniqueKeepStrategy::Last, None)?;
            let now = chrono::Utc::now().timestamp_micros();
            latest.with_column(
                Series::new(RECEIVED_AT.into(), vec![now; latest.height()])
                    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?
                    .into_column(),
            )?;
            Ok((normalized.height(), latest.height(), frame_to_batches(&latest)?))
        })
        .await?;
        if latest > 0 {
            write_retrying_creation_races(
                self.pending_location(),
                batches,
                SaveMode::Append,
                CommitProperties::default(),
                &[],
            )
            .await?;
        }
        let applied = self.apply_pending_labels().await?;
        Ok(LabelMerge { received: received + rejected.len(), superseded: received - latest, rejected, ..applied })
    }

    /// Applies waiting labels whose prediction is now in the table (appends call it), and
    /// returns what it did (`received` and `superseded` are 0). Sets the
    /// [`LABELS_PENDING`](telemetry::LABELS_PENDING) gauge.
    ///
    /// # Errors
    /// [`Error::Delta`] when a table cannot be read or written; nothing is lost then, the
    /// labels stay pending.
    pub async fn apply_pending_labels(&self) -> Result<LabelMerge> {
        let applied = self.apply_pending().await?;
        metrics::gauge!(telemetry::LABELS_PENDING, "table" => self.location().url_without_secrets())
            .set(applied.pending as f64);
        Ok(applied)
    }

    /// The labels waiting for their prediction: the latest of each key, with the key
    /// columns, `actual_label` and [`RECEIVED_AT`], oldest first (a frame without columns
    /// when no label ever waited). Labels whose key is never scored wait here for good, and
    /// every append looks them up again: watch the
    /// [`LABELS_PENDING`](telemetry::LABELS_PENDING) gauge, and remove the stale ones with
    /// [`expire_pending_labels`](Self::expire_pending_labels).
    ///
    /// # Errors
    /// [`Error::Delta`] when the pending-labels table cannot be read.
    pub async fn pending_labels(&self) -> Result<DataFrame> {
        let Some(pending_table) = self.pending_location().load().await? else { return Ok(DataFrame::empty()) };
        let (waiting, keys) = (scan_frame(&pending_table, None).await?, self.config().keys.clone());
        off_runtime(move || {
            let latest = latest_per_key(waiting, &keys)?;
            Ok(latest.lazy().sort([RECEIVED_AT], SortMultipleOptions::default().with_maintain_order(true)).collect()?)
        })
        .await
    }

    /// Removes the pending labels received before `received_before` whose prediction is
    /// still not in the table, and returns them (as [`pending_labels`](Self::pending_labels)
    /// lists them) so that they can be kept elsewhere or reported. Labels whose prediction
    /// has landed are applied first, never expired. Counts them in
    /// [`LABELS_EXPIRED`](telemetry::LABELS_EXPIRED).
    ///
    /// A label for the same key received on or after `received_before` stays, and so does
    /// the key's pending entry: only labels as old as the cut leave.
    ///
    /// # Errors
    /// [`Error::Delta`] when a table cannot be read or written; the labels stay pending
    /// then (a failure after the removal committed reports nothing removed, and the next
    /// call finds nothing more to remove).
    pub async fn expire_pending_labels(&self, received_before: DateTime<Utc>) -> Result<DataFrame> {
        self.apply_pending_labels().await?;
        let Some(pending_table) = self.pending_location().load().await? else { return Ok(DataFrame::empty()) };
        let cut = received_before.timestamp_micros();
        let (waiting, keys) = (scan_frame(&pending_table, None).await?, self.config().keys.clone());
        let keys_owned = keys.clone();
        let (expired, latest_expired) = off_runtime(move || {
            let expired = waiting
                .lazy()
                .filter(col(RECEIVED_AT).cast(DataType::Int64).lt(lit(cut)))
                .sort([RECEIVED_AT], SortMultipleOptions::default().with_maintain_order(true))
                .collect()?;
            let latest_expired = latest_per_key(expired.clone(), &keys_owned)?;
            Ok((expired, latest_expired))
        })
        .await?;
        if expired.height() == 0 {
            return Ok(latest_expired);
        }
        self.remove_pending(pending_table, &expired, "=", "expiring labels of").await?;
        let table = self.location().url_without_secrets();
        metrics::counter!(telemetry::LABELS_EXPIRED, "table" => table).increment(latest_expired.height() as u64);
        Ok(latest_expired)
    }

    async fn apply_pending(&self) -> Result<LabelMerge> {
        let keys = self.config().keys.clone();
        let Some(pending_table) = self.pending_location().load().await? else {
            return Ok(LabelMerge::default());
        };
        let waiting = scan_frame(&pending_table, None).await?;
        if waiting.height() == 0 {
            return Ok(LabelMerge::default());
        }
        let Some(table) = self.location().load().await? else {
            let latest = off_runtime(move || latest_per_key(waiting, &keys)).await?;
            return Ok(LabelMerge { pending: latest.height(), ..LabelMerge::default() });
        };
        let known = scan_frame(&table, Some(&keys)).await?;
        let keys_owned = keys.clone();
        let (latest, matched) = off_runtime(move || {
            let latest = latest_per_key(waiting, &keys_owned)?;
            let on: Vec<Expr> = keys_owned.iter().map(|k| col(k.as_str())).collect();
            let matched = latest
                .clone()
                .lazy()
                .join(
                    known.lazy().unique(None, UniqueKeepStrategy::First),
                    on.clone(),
                    on,
                    JoinArgs::new(JoinType::Semi),
                )
                .collect()?;
            Ok((latest, matched))
        })
        .await?;
        let pending = latest.height() - matched.height();
        if matched.height() == 0 {
            return Ok(LabelMerge { pending, ..LabelMerge::default() });
        }

        let same_keys =
            keys.iter().map(|k| format!("target.{q} = source.{q}", q = quoted(k))).collect::<Vec<_>>().join(" AND ");
        let label = quoted(ACTUAL_LABEL);
        let context = SessionContext::new();
        let labels = context
            .read_batches(frame_to_batches(&matched.select(keys.iter().map(String::as_str).chain([ACTUAL_LABEL]))?)?)
            .map_err(|e| self.failed("preparing labels for", e.into()))?;
        let (_, metrics) = table
            .merge(labels, same_keys.as_str())
            .with_source_alias("source")
            .with_target_alias("target")
            .when_matched_update(|update| {
                update
                    .predicate(format!("target.{label} IS NULL OR target.{label} <> source.{label}"))
                    .update(ACTUAL_LABEL, format!("source.{label}"))
            })
            .map_err(|e| self.failed("merging labels into", e))?
            .await
            .map_err(|e| self.failed("merging labels into", e))?;

        // Only now may the applied labels leave the pending table; labels received after the
        // ones applied stay.
        self.remove_pending(pending_table, &matched, "<=", "removing applied labels from").await?;
        Ok(LabelMerge {
            matched: matched.height(),
            rows_updated: metrics.num_target_rows_updated,
            pending,
            ..LabelMerge::default()
        })
    }

    /// Deletes from the pending table the labels of `labels`' keys received `received`
    /// (`<=` or `=`) their `received_at`, in one MERGE.
    async fn remove_pending(
        &self,
        pending_table: deltalake::DeltaTable,
        labels: &DataFrame,
        received: &str,
        operation: &str,
    ) -> Result<()> {
        let keys = &self.config().keys;
        let at = quoted(RECEIVED_AT);
        let on = keys
            .iter()
            .map(|k| format!("target.{q} = source.{q}", q = quoted(k)))
            .chain([format!("target.{at} {received} source.{at}")])
            .collect::<Vec<_>>()
            .join(" AND ");
        let source = SessionContext::new()
            .read_batches(frame_to_batches(&labels.select(keys.iter().map(String::as_str).chain([RECEIVED_AT]))?)?)
            .map_err(|e| self.failed_pending("preparing labels for", e.into()))?;
        pending_table
            .merge(source, on)
            .with_source_alias("source")
            .with_target_alias("target")
            .when_matched_delete(|delete| delete)
            .map_err(|e| self.failed_pending(operation, e))?
            .await
            .map_err(|e| self.failed_pending(operation, e))?;
        Ok(())
    }

    fn failed_pending(&self, operation: &str, error: deltalake::DeltaTableError) -> Error {
        Error::delta(format!("{operation} pending-labels table `{}`", self.pending_location().url()), error)
    }
}

/// The latest label of each key.
fn latest_per_key(labels: DataFrame, keys: &[String]) -> Result<DataFrame> {
    Ok(labels.lazy().sort([RECEIVED_AT], SortMultipleOptions::default()).collect()?.unique_stable(
        Some(keys),
        UniqueKeepStrategy::Last,
        None,
    )?)
}

/// A column name as a SQL identifier, case and all.
fn quoted(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// The rows of `labels` that can be merged, and the others with their reasons: a null key,
/// a null label, a label that `converted` (cast to `label_type`) lost.
fn set_aside(
    labels: &DataFrame,
    keys: &[String],
    label: &Column,
    converted: &Column,
    label_type: &DataType,
) -> Result<(BooleanChunked, Vec<RejectedLabel>)> {
    let null_key: Vec<BooleanChunked> =
        keys.iter().map(|key| Ok(labels.column(key)?.is_null())).collect::<Result<_>>()?;
    let (label_null, converted_null) = (label.is_null(), converted.is_null());
    let mut rejected = Vec::new();
    let usable: BooleanChunked = (0..labels.height())
        .map(|row| {
            let reason = if let Some(key) = keys.iter().zip(&null_key).find(|(_, nulls)| nulls.get(row) == Some(true)) {
                format!("key `{}` is null", key.0)
            } else if label_null.get(row) == Some(true) {
                "the label is null".to_owned()
            } else if converted_null.get(row) == Some(true) {
                let value = label.get(row).map(|v| v.to_string()).unwrap_or_default();
                format!("label {} does not convert to {label_type}", value.chars().take(64).collect::<String>())
            } else {
                return true;
            };
            rejected.push(RejectedLabel { row, reason });
            false
        })
        .collect();
    Ok((usable, rejected))
}
