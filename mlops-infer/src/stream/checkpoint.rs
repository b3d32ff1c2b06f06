//! A stream's progress on an object store: the offset of every micro-batch, written before
//! the batch is read, and a marker for every batch whose output is committed.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::source::DeadLetter;
use super::{list_sorted, read_object};
use crate::error::{Error, Result};

/// Where a stream keeps its progress:
///
/// ```text
/// offsets/<batch>.json         what batch N is made of (create-only: one writer per batch)
/// commits/<batch>              batch N's output is committed
/// dead_letters/<batch>.jsonl   what batch N could not score, and why
/// ```
#[derive(Debug, Clone)]
pub struct Checkpoint {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Checkpoint {
    /// A checkpoint under `prefix` on `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self { store, prefix }
    }

    /// A checkpoint in a local directory (created if absent).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            operation: "creating checkpoint directory",
            path: dir.to_owned(),
            source,
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::InvalidArgument(format!("checkpoint directory `{}`: {e}", dir.display())))?;
        Ok(Self::new(Arc::new(store), Path::default()))
    }

    fn batch_name(batch: u64) -> String {
        format!("{batch:020}")
    }

    fn failed(&self, operation: &str, error: object_store::Error) -> Error {
        Error::storage(format!("{operation} checkpoint `{}`", self.prefix), error)
    }

    async fn numbered(&self, folder: &str) -> Result<Vec<Path>> {
        list_sorted(self.store.as_ref(), &self.prefix.clone().join(folder)).await
    }

    /// Every planned batch and its offset, in order.
    pub(crate) async fn offsets<O: DeserializeOwned>(&self) -> Result<Vec<(u64, O)>> {
        let mut offsets = Vec::new();
        for path in self.numbered("offsets").await? {
            let Some(batch) = path.filename().and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse().ok()) else {
                continue;
            };
            let bytes = read_object(self.store.as_ref(), &path).await?;
            let offset = serde_json::from_slice(&bytes).map_err(|e| {
                Error::InvalidArgument(format!(
                    "checkpoint offset `{path}` is not an offset of this stream's source: {e}"
                ))
            })?;
            offsets.push((batch, offset));
        }
        Ok(offsets)
    }

    /// Records what batch `batch` is made of, before it is read. Fails if the batch was
    /// planned already with another offset: two streams must not share a checkpoint.
    pub(crate) async fn plan(&self, batch: u64, offset: &impl Serialize) -> Result<()> {
        let path = self.prefix.clone().join("offsets").join(format!("{}.json", Self::batch_name(batch)));
        let bytes = serde_json::to_vec(offset).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from(bytes.clone()), create).await {
            Ok(_) => Ok(()),
            // A write whose reply was lost, planned again by the same stream.
            Err(object_store::Error::AlreadyExists { .. })
                if read_object(self.store.as_ref(), &path).await? == bytes =>
            {
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. }) => Err(Error::InvalidArgument(format!(
                "batch {batch} is already planned in checkpoint `{}` with another offset: is another stream running on it?",
                self.prefix
            ))),
            Err(e) => Err(self.failed("writing", e)),
        }
    }

    /// The last batch marked committed.
    pub(crate) async fn last_commit(&self) -> Result<Option<u64>> {
        Ok(self.numbered("commits").await?.iter().filter_map(|p| p.filename()?.parse().ok()).max())
    }

    /// Marks batch `batch` committed.
    pub(crate) async fn commit(&self, batch: u64) -> Result<()> {
        let path = self.prefix.clone().join("commits").join(Self::batch_name(batch));
        self.store.put(&path, PutPayload::from_static(b"")).await.map_err(|e| self.failed("writing", e))?;
        Ok(())
    }

    /// Writes batch `batch`'s dead letters, one JSON object per line (replacing what a
    /// replay of the same batch wrote).
    pub(crate) async fn write_dead_letters(&self, batch: u64, letters: &[DeadLetter]) -> Result<()> {
        let path = self.prefix.clone().join("dead_letters").join(format!("{}.jsonl", Self::batch_name(batch)));
        let mut lines = Vec::new();
        for letter in letters {
            serde_json::to_writer(&mut lines, letter).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            lines.push(b'\n');
        }
        self.store.put(&path, PutPayload::from(lines)).await.map_err(|e| self.failed("writing", e))?;
        Ok(())
    }

    /// Every dead letter the stream has written, in batch order.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the checkpoint cannot be read.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let mut letters = Vec::new();
        for path in self.numbered("dead_letters").await? {
            let bytes = read_object(self.store.as_ref(), &path).await?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                letters.push(
                    serde_json::from_slice(line)
                        .map_err(|e| Error::InvalidArgument(format!("dead letters `{path}`: {e}")))?,
                );
            }
        }
        Ok(letters)
    }
}
