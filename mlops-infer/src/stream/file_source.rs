//! New record files under an object-store prefix.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use mlops_core::{ColSpec, Schema};
use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::records::{FileFormat, parse, parse_raw};
use super::source::{DeadLetter, Source, SourceBatch};
use super::{list_sorted, read_object};
use crate::batch::stack;
use crate::blocking::off_runtime;
use crate::error::{Error, Result};

/// The files one micro-batch of a [`FileSource`] holds, and the schema they are read with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesOffset {
    /// The files, by their path in the store.
    pub files: Vec<String>,
    /// The schema every file is read with.
    pub schema: Schema,
}

/// Record files appearing under a prefix of an object store (a directory, an S3 prefix):
/// each micro-batch takes the files not seen before, oldest name first, at most
/// `max_files_per_batch` of them.
///
/// Files are read with the schema given, or, without one, the schema inferred from the
/// first file that has records and then held for good (it travels in every offset, so a
/// restarted stream reads with the same schema). A value that does not parse as its column's
/// type becomes null and its raw text goes to the `_rescued_data` column; a file that cannot
/// be read at all becomes a dead letter, and the stream goes on.
///
/// Writers should make files appear whole: object stores do, and on a local directory write
/// to a name outside the prefix (or with another extension) and rename.
#[derive(Debug)]
pub struct FileSource {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    format: FileFormat,
    schema: Option<Schema>,
    max_files_per_batch: usize,
    seen: BTreeSet<Path>,
}

impl FileSource {
    /// Files of `format` under `prefix` on `store`; other files are ignored.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, format: FileFormat) -> Self {
        Self { store, prefix, format, schema: None, max_files_per_batch: 100, seen: BTreeSet::new() }
    }

    /// Reads files with `schema` instead of inferring one.
    #[must_use]
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// At most this many files per micro-batch (default 100): bounds the memory a batch
    /// takes, which is the stream's backpressure.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn max_files_per_batch(mut self, files: usize) -> Result<Self> {
        if files == 0 {
            return Err(Error::InvalidArgument("max_files_per_batch must be at least 1".to_owned()));
        }
        self.max_files_per_batch = files;
        Ok(self)
    }

    async fn bytes(&self, path: &Path) -> Result<bytes::Bytes> {
        read_object(self.store.as_ref(), path).await
    }

    /// The schema of the first of `files` that has records.
    async fn infer_schema(&self, files: &[Path]) -> Result<Option<Schema>> {
        for file in files {
            let Ok(bytes) = self.bytes(file).await else { continue };
            let format = self.format;
            let inferred = off_runtime(move || {
                Ok(parse_raw(&bytes, format).ok().filter(|f| f.height() > 0).map(|f| Schema::infer(&f)))
            })
            .await?;
            if let Some(Ok(schema)) = inferred {
                let columns = schema.columns().iter().map(|c| ColSpec::new(c.name.clone(), c.dtype).nullable());
                return Ok(Some(Schema::new(columns.collect())?));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Source for FileSource {
    type Offset = FilesOffset;

    async fn resume(&mut self, planned: &[FilesOffset]) -> Result<()> {
        for offset in planned {
            self.seen.extend(offset.files.iter().map(|f| Path::from(f.as_str())));
            self.schema.get_or_insert_with(|| offset.schema.clone());
        }
        Ok(())
    }

    async fn next_offset(&mut self) -> Result<Option<FilesOffset>> {
        let listed = list_sorted(self.store.as_ref(), &self.prefix).await?;
        let mut fresh: Vec<Path> = listed
            .into_iter()
            .filter(|p| !self.seen.contains(p) && p.filename().and_then(FileFormat::from_name) == Some(self.format))
            .collect();
        fresh.sort();
        fresh.truncate(self.max_files_per_batch);
        if fresh.is_empty() {
            return Ok(None);
        }
        let schema = match &self.schema {
            Some(schema) => schema.clone(),
            // Nothing but empty or unreadable files so far: they are handed on, with no
            // columns, to be accounted for.
            None => self.infer_schema(&fresh).await?.unwrap_or_default(),
        };
        if !schema.columns().is_empty() {
            self.schema = Some(schema.clone());
        }
        self.seen.extend(fresh.iter().cloned());
        Ok(Some(FilesOffset { files: fresh.iter().map(ToString::to_string).collect(), schema }))
    }

    async fn read(&mut self, offset: &FilesOffset) -> Result<SourceBatch> {
        let mut frames = Vec::new();
        let mut dead_letters = Vec::new();
        for file in &offset.files {
            let bytes = match self.bytes(&Path::from(file.as_str())).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    dead_letters.push(DeadLetter {
                        origin: file.clone(),
                        reason: format!("unreadable: {e}"),
                        record: None,
                    });
                    continue;
                }
            };
            let (format, schema) = (self.format, offset.schema.clone());
            let parsed = off_runtime(move || Ok(parse(&bytes, format, &schema))).await?;
            match parsed {
                Ok(frame) => frames.push(frame),
                Err(e) => dead_letters.push(DeadLetter {
                    origin: file.clone(),
                    reason: format!("not a valid {format:?} file: {e}"),
                    record: None,
                }),
            }
        }
        let records = off_runtime(move || Ok(stack(frames)?.unwrap_or_default())).await?;
        Ok(SourceBatch { records, dead_letters })
    }
}
