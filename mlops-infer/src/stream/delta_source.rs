//! The rows that new versions of a Delta table append.

use async_trait::async_trait;
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Action;
use deltalake::logstore::{LogStore, get_actions};
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use object_store::path::Path;
use polars::prelude::{Column, DataFrame, DataType, PlSmallStr};
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
        // Each file keeps the schema it was written with (a table's schema evolves), so
        // each becomes a frame of its own, and the frames are matched by column name.
        let mut files: Vec<(Path, Vec<RecordBatch>)> = Vec::new();
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
                let batches = reader
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::InvalidArgument(format!("data file `{file}`: {e}")))?;
                files.push((file, batches));
            }
        }
        let records = off_runtime(move || {
            let frames = files
                .into_iter()
                .filter_map(|(file, batches)| Some((file, batches.first()?.schema(), batches)))
                .map(|(file, schema, batches)| Ok((file, batches_to_frame(&schema, &batches)?)))
                .collect::<Result<Vec<_>>>()?;
            by_column_name(frames)
        })
        .await?;
        Ok(SourceBatch { records, dead_letters: Vec::new() })
    }
}

/// The frames of several data files stacked by column name: columns in the order they first
/// appear, null in the files written before a column was added. A column whose type differs
/// between files is an error naming the file.
fn by_column_name(frames: Vec<(Path, DataFrame)>) -> Result<DataFrame> {
    let mut columns: Vec<(PlSmallStr, DataType)> = Vec::new();
    for (_, frame) in &frames {
        for column in frame.columns() {
            if !columns.iter().any(|(name, _)| name == column.name()) {
                columns.push((column.name().clone(), column.dtype().clone()));
            }
        }
    }
    let mut stacked: Option<DataFrame> = None;
    for (file, frame) in frames {
        let height = frame.height();
        let mut aligned = Vec::with_capacity(columns.len());
        for (name, dtype) in &columns {
            match frame.column(name) {
                Ok(column) if column.dtype() == dtype => aligned.push(column.clone()),
                Ok(column) => {
                    return Err(Error::InvalidArgument(format!(
                        "data file `{file}` holds column `{name}` as {}, where earlier files hold {dtype}",
                        column.dtype()
                    )));
                }
                Err(_) => aligned.push(Column::full_null(name.clone(), height, dtype)),
            }
        }
        let frame = DataFrame::new(height, aligned)?;
        match &mut stacked {
            Some(all) => {
                all.vstack_mut(&frame)?;
            }
            None => stacked = Some(frame),
        }
    }
    let mut all = stacked.unwrap_or_default();
    all.rechunk_mut();
    Ok(all)
}

#[cfg(test)]
mod tests {
    use object_store::path::Path;
    use polars::prelude::*;

    use super::by_column_name;

    #[test]
    fn files_of_an_evolving_schema_are_matched_by_column_name() {
        let old = df!("id" => ["a"], "Amount" => [1.0]).unwrap();
        let newer = df!("note" => ["late"], "Amount" => [2.0], "id" => ["b"]).unwrap();
        let stacked = by_column_name(vec![(Path::from("0.parquet"), old), (Path::from("1.parquet"), newer)]).unwrap();
        assert_eq!(stacked.get_column_names(), ["id", "Amount", "note"]);
        let ids: Vec<_> = stacked.column("id").unwrap().str().unwrap().iter().collect();
        assert_eq!(ids, [Some("a"), Some("b")]);
        let amounts: Vec<_> = stacked.column("Amount").unwrap().f64().unwrap().iter().collect();
        assert_eq!(amounts, [Some(1.0), Some(2.0)]);
        let notes: Vec<_> = stacked.column("note").unwrap().str().unwrap().iter().collect();
        assert_eq!(notes, [None, Some("late")]);

        let retyped = df!("id" => [7i64]).unwrap();
        let error = by_column_name(vec![
            (Path::from("0.parquet"), df!("id" => ["a"]).unwrap()),
            (Path::from("2.parquet"), retyped),
        ])
        .unwrap_err()
        .to_string();
        assert!(error.contains("`2.parquet`") && error.contains("`id`"), "{error}");
    }
}
