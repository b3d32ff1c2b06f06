//! The rows that new versions of a Delta table add.

use std::collections::BTreeSet;

use async_trait::async_trait;
use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::path::Path;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use super::read_object;
use super::source::{Offset, Source, SourceBatch};
use crate::delta::{TableLocation, batches_to_frame, off_runtime};
use crate::error::{Error, Result};

/// Table versions `first..=last`: the rows of the data files they add.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct VersionsOffset {
    first: u64,
    last: u64,
}

/// The rows each new version of an append-only Delta table adds (another stream's
/// inference table, a landing table other jobs append to), a range of versions per
/// micro-batch.
///
/// Rows are read from the data files the versions add, so a version that rewrites files
/// (MERGE, UPDATE, OPTIMIZE) hands on the rewritten rows again: point it at tables that are
/// only appended to. Files must not be vacuumed before the stream has read them.
#[derive(Debug, Clone)]
pub struct DeltaSource {
    location: TableLocation,
    max_versions_per_batch: u64,
    next: u64,
}

impl DeltaSource {
    /// The table at `location`, from its first version.
    pub fn new(location: TableLocation) -> Self {
        Self { location, max_versions_per_batch: 10, next: 0 }
    }

    /// At most this many table versions per micro-batch (default 10).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn max_versions_per_batch(mut self, versions: u64) -> Result<Self> {
        if versions == 0 {
            return Err(Error::InvalidArgument("max_versions_per_batch must be at least 1".to_owned()));
        }
        self.max_versions_per_batch = versions;
        Ok(self)
    }

    async fn files_at(&self, version: u64) -> Result<BTreeSet<Path>> {
        let mut table = DeltaTable::new(self.location.log_store()?);
        table
            .load_version(version)
            .await
            .map_err(|e| Error::delta(format!("loading version {version} of `{}`", self.location.url()), e))?;
        let state = table.snapshot().map_err(|e| Error::delta(format!("reading `{}`", self.location.url()), e))?;
        Ok(state.log_data().into_iter().map(|file| file.object_store_path()).collect())
    }
}

#[async_trait]
impl Source for DeltaSource {
    async fn resume(&mut self, planned: &[Offset]) -> Result<()> {
        for offset in planned {
            let offset: VersionsOffset = serde_json::from_value(offset.clone())
                .map_err(|e| Error::InvalidArgument(format!("checkpoint offset is not a version range: {e}")))?;
            self.next = self.next.max(offset.last + 1);
        }
        Ok(())
    }

    async fn next_offset(&mut self) -> Result<Option<Offset>> {
        let Some(latest) = self.location.load().await?.and_then(|t| t.version()) else { return Ok(None) };
        if latest < self.next {
            return Ok(None);
        }
        let offset = VersionsOffset { first: self.next, last: latest.min(self.next + self.max_versions_per_batch - 1) };
        self.next = offset.last + 1;
        serde_json::to_value(offset).map(Some).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    async fn read(&mut self, offset: &Offset) -> Result<SourceBatch> {
        let offset: VersionsOffset = serde_json::from_value(offset.clone())
            .map_err(|e| Error::InvalidArgument(format!("checkpoint offset is not a version range: {e}")))?;
        let mut added = self.files_at(offset.last).await?;
        if offset.first > 0 {
            for file in self.files_at(offset.first - 1).await? {
                added.remove(&file);
            }
        }
        let store = self.location.log_store()?.object_store(None);
        let mut batches: Vec<RecordBatch> = Vec::new();
        for file in added {
            let bytes = read_object(store.as_ref(), &file).await?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .and_then(|builder| builder.build())
                .map_err(|e| Error::InvalidArgument(format!("data file `{file}`: {e}")))?;
            for batch in reader {
                batches.push(batch.map_err(|e| Error::InvalidArgument(format!("data file `{file}`: {e}")))?);
            }
        }
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            return Ok(SourceBatch { records: DataFrame::empty(), dead_letters: Vec::new() });
        };
        let records = off_runtime(move || batches_to_frame(&schema, &batches)).await?;
        Ok(SourceBatch { records, dead_letters: Vec::new() })
    }
}
