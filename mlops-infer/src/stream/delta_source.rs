//! The rows that new versions of a Delta table append.

use async_trait::async_trait;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Action;
use deltalake::logstore::{LogStore, get_actions};
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::path::Path;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use super::read_object;
use super::source::{Source, SourceBatch};
use crate::blocking::off_runtime;
use crate::delta::{TableLocation, batches_to_frame};
use crate::error::{Error, Result};

/// The table versions `first..=last` one micro-batch of a [`DeltaSource`] reads: the rows
/// of the data files they append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionsOffset {
    /// The first version.
    pub first: u64,
    /// The last version, included.
    pub last: u64,
}

/// What one commit of the table did to its rows.
struct Commit {
    /// The data files it adds with new rows.
    added: Vec<Path>,
    /// Why it changes rows written before, when it does: its operation, with the file that
    /// shows it (one it removes, or one it marks rows deleted in).
    change: Option<String>,
}

/// The rows each new version of a Delta table appends (another stream's inference table, a
/// landing table other jobs append to), a range of versions per micro-batch.
///
/// Only the files a version adds as new data are read, as Spark's Delta source does:
/// versions that only reorganise files (OPTIMIZE, which marks its files as no data change)
/// add nothing. A version that changes rows written before (MERGE, UPDATE, DELETE: it removes
/// files, or marks rows deleted with a deletion vector) stops the stream with an error
/// naming it, before it is planned, because its rewritten files would hand on rows already
/// handed on; [`skip_change_commits`](Self::skip_change_commits) passes over such versions
/// instead, as Spark's `skipChangeCommits` does. Versions are read from the table's log, so
/// a stream must read them before the log's retention cleans them up, and their files
/// before they are vacuumed.
#[derive(Debug, Clone)]
pub struct DeltaSource {
    location: TableLocation,
    max_versions_per_batch: u64,
    skip_change_commits: bool,
    next: u64,
}

impl DeltaSource {
    /// The table at `location`, from its first version.
    pub fn new(location: TableLocation) -> Self {
        Self { location, max_versions_per_batch: 10, skip_change_commits: false, next: 0 }
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

    /// Passes over versions that change rows written before (their new rows included)
    /// instead of stopping at them.
    #[must_use]
    pub fn skip_change_commits(mut self) -> Self {
        self.skip_change_commits = true;
        self
    }

    async fn commit(&self, log_store: &dyn LogStore, version: u64) -> Result<Commit> {
        let url = self.location.url();
        let bytes = log_store
            .read_commit_entry(version)
            .await
            .map_err(|e| Error::delta(format!("reading version {version} of `{url}`"), e))?
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "version {version} of `{url}` is no longer in the table's log (its retention cleaned it up before the stream read it)"
                ))
            })?;
        let actions = get_actions(version, &bytes)
            .map_err(|e| Error::delta(format!("reading version {version} of `{url}`"), e))?;
        let mut operation = None;
        let (mut added, mut changed) = (Vec::new(), None);
        for action in actions {
            match action {
                Action::Add(add) if add.data_change => {
                    let path = Path::from_url_path(&add.path).map_err(|e| {
                        Error::InvalidArgument(format!("version {version} of `{url}`: file `{}`: {e}", add.path))
                    })?;
                    if add.deletion_vector.is_some() {
                        changed.get_or_insert(format!("marks rows of `{path}` deleted"));
                    }
                    added.push(path);
                }
                Action::Remove(remove) if remove.data_change => {
                    changed.get_or_insert(format!("removes `{}`", remove.path));
                }
                Action::CommitInfo(info) => operation = info.operation,
                _ => {}
            }
        }
        let change = changed.map(|what| format!("{} {what}", operation.as_deref().unwrap_or("a commit")));
        Ok(Commit { added, change })
    }
}

#[async_trait]
impl Source for DeltaSource {
    type Offset = VersionsOffset;

    async fn resume(&mut self, planned: &[VersionsOffset]) -> Result<()> {
        for offset in planned {
            self.next = self.next.max(offset.last.saturating_add(1));
        }
        Ok(())
    }

    async fn next_offset(&mut self) -> Result<Option<VersionsOffset>> {
        let Some(latest) = self.location.load().await?.and_then(|t| t.version()) else { return Ok(None) };
        if latest < self.next {
            return Ok(None);
        }
        let end = latest.min(self.next.saturating_add(self.max_versions_per_batch - 1));
        let log_store = self.location.log_store()?;
        let mut last = self.next;
        for version in self.next..=end {
            if !self.skip_change_commits
                && let Some(change) = self.commit(log_store.as_ref(), version).await?.change
            {
                if version == self.next {
                    return Err(Error::InvalidArgument(format!(
                        "version {version} of `{}` changes rows written before ({change}); a stream reads appended rows only: skip such versions with `DeltaSource::skip_change_commits`",
                        self.location.url()
                    )));
                }
                break;
            }
            last = version;
        }
        let offset = VersionsOffset { first: self.next, last };
        self.next = last + 1;
        Ok(Some(offset))
    }

    async fn read(&mut self, offset: &VersionsOffset) -> Result<SourceBatch> {
        let log_store = self.location.log_store()?;
        let store = log_store.object_store(None);
        let mut batches: Vec<RecordBatch> = Vec::new();
        for version in offset.first..=offset.last {
            // Only a source told to skip them plans change commits.
            let commit = self.commit(log_store.as_ref(), version).await?;
            if commit.change.is_some() {
                continue;
            }
            for file in commit.added {
                let bytes = read_object(store.as_ref(), &file).await?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .and_then(|builder| builder.build())
                    .map_err(|e| Error::InvalidArgument(format!("data file `{file}`: {e}")))?;
                for batch in reader {
                    batches.push(batch.map_err(|e| Error::InvalidArgument(format!("data file `{file}`: {e}")))?);
                }
            }
        }
        let Some(schema) = batches.first().map(RecordBatch::schema) else {
            return Ok(SourceBatch { records: DataFrame::empty(), dead_letters: Vec::new() });
        };
        let records = off_runtime(move || batches_to_frame(&schema, &batches)).await?;
        Ok(SourceBatch { records, dead_letters: Vec::new() })
    }
}
