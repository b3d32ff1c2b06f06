//! A stream's progress on an object store: the offset of every micro-batch, written before
//! the batch is read, and a marker for every batch whose output is committed.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::source::DeadLetter;
use super::{list_sorted, read_object, read_object_at_most};
use crate::error::{Error, Result};

/// The largest offset file read: 64 MiB, far above the files of a batch of any source.
const MAX_OFFSET_BYTES: u64 = 64 << 20;

/// Where a stream keeps its progress:
///
/// ```text
/// offsets/<batch>.json         what batch N is made of (create-only: one writer per batch)
/// commits/<batch>              batch N's output is committed
/// dead_letters/<batch>.jsonl   what batch N could not score, and why
/// set_aside/offsets/<batch>-<millis>.json   an offset an operator set aside
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
            // A damaged file may be of any size: only one an offset could be is read.
            let bytes = read_object_at_most(self.store.as_ref(), &path, MAX_OFFSET_BYTES)
                .await
                .map_err(|e| Error::storage(format!("reading checkpoint offset `{path}`"), e))?
                .map_err(|size| Error::CorruptCheckpoint {
                    path: path.to_string(),
                    batch,
                    problem: format!("it holds {size} bytes, more than the {MAX_OFFSET_BYTES} an offset may"),
                })?;
            let offset = serde_json::from_slice(&bytes).map_err(|e| Error::CorruptCheckpoint {
                path: path.to_string(),
                batch,
                problem: e.to_string(),
            })?;
            offsets.push((batch, offset));
        }
        Ok(offsets)
    }

    fn offset_path(&self, batch: u64) -> Path {
        self.prefix.clone().join("offsets").join(format!("{}.json", Self::batch_name(batch)))
    }

    /// Moves the offset of batch `batch` out of the stream's way, to
    /// `set_aside/offsets/<batch>-<millis>.json` beside it, and returns where it went: the
    /// repair for an offset file that is damaged
    /// ([`Error::CorruptCheckpoint`] names the batch). Call it while no stream runs on the
    /// checkpoint.
    ///
    /// The next run plans the batch's records again as the source sees them: a
    /// [`FileSource`](super::FileSource) reads the batch's files again, since nothing marks
    /// them read any more; a [`DeltaSource`](super::DeltaSource) or
    /// [`ChannelSource`](super::ChannelSource) goes on after the offsets that remain, so
    /// it reads the batch again only when it was the last one planned. A batch the sink had
    /// committed is then written a second time under a new batch number, never under its
    /// old one.
    ///
    /// ```
    /// # async fn repair() -> mlops_infer::Result<()> {
    /// use mlops_infer::Error;
    /// use mlops_infer::stream::Checkpoint;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// # std::fs::create_dir_all(dir.path().join("offsets")).unwrap();
    /// # std::fs::write(dir.path().join("offsets/00000000000000000003.json"), b"{\"fil").unwrap();
    /// let checkpoint = Checkpoint::local(dir.path())?;
    /// let aside = checkpoint.set_offset_aside(3).await?;
    /// assert!(aside.as_ref().starts_with("set_aside/offsets/00000000000000000003-"));
    /// assert!(matches!(checkpoint.set_offset_aside(3).await, Err(Error::InvalidArgument(_))));
    /// # Ok(())
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(repair()).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the checkpoint has no offset for `batch`;
    /// [`Error::Storage`] when the store fails, in which case the offset is still in place
    /// or already copied aside, and calling again is safe.
    pub async fn set_offset_aside(&self, batch: u64) -> Result<Path> {
        let path = self.offset_path(batch);
        let millis =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis());
        let aside = self
            .prefix
            .clone()
            .join("set_aside")
            .join("offsets")
            .join(format!("{}-{millis}.json", Self::batch_name(batch)));
        // Copied by the store: a damaged file may be of any size.
        match self.store.copy(&path, &aside).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint `{}` has no offset for batch {batch} to set aside",
                    self.prefix
                )));
            }
            Err(e) => return Err(self.failed("copying", e)),
        }
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(aside),
            Err(e) => Err(self.failed("deleting", e)),
        }
    }

    /// Records what batch `batch` is made of, before it is read. Fails if the batch was
    /// planned already with another offset: two streams must not share a checkpoint.
    pub(crate) async fn plan(&self, batch: u64, offset: &impl Serialize) -> Result<()> {
        let path = self.offset_path(batch);
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
