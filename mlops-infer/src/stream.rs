//! Streaming scoring (feature `stream`): micro-batches from a [`Source`] (new files under an
//! object-store prefix, frames from a channel, new versions of a Delta table with feature
//! `delta`, or your own), scored and written to a [`Sink`] (Parquet files, or with feature
//! `delta` an `InferenceTable`) exactly once, with progress in a [`Checkpoint`] on an
//! object store.

mod channel_source;
mod checkpoint;
#[cfg(feature = "delta")]
mod delta_source;
mod file_source;
pub(crate) mod records;
mod scorer;
mod sink;
mod source;

pub use channel_source::{ChannelOffset, ChannelSource};
pub use checkpoint::Checkpoint;
#[cfg(feature = "delta")]
pub use delta_source::{DeltaSource, VersionsOffset};
pub use file_source::{FileSource, FilesOffset};
pub use records::{FileFormat, RESCUED_DATA};
pub use scorer::{BatchReport, StreamReport, StreamingScorer, Trigger};
pub use sink::{ParquetSink, Sink};
pub use source::{DeadLetter, Source, SourceBatch};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

/// The objects under `prefix`, in name order.
pub(crate) async fn list_sorted(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<Path>> {
    let mut paths: Vec<Path> = store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| Error::storage(format!("listing `{prefix}`"), e))?;
    paths.sort();
    Ok(paths)
}

/// The whole content of the object at `path`.
pub(crate) async fn read_object(store: &dyn ObjectStore, path: &Path) -> Result<bytes::Bytes> {
    let reading = |e| Error::storage(format!("reading `{path}`"), e);
    store.get(path).await.map_err(reading)?.bytes().await.map_err(reading)
}

/// The bytes at `path`, or, when the object holds more than `limit` bytes, its size, the
/// body left unread: one request either way, for files whose size a damaged or hostile
/// writer controls.
pub(crate) async fn read_object_at_most(
    store: &dyn ObjectStore,
    path: &Path,
    limit: u64,
) -> object_store::Result<std::result::Result<bytes::Bytes, u64>> {
    let got = store.get(path).await?;
    if got.meta.size > limit {
        return Ok(Err(got.meta.size));
    }
    got.bytes().await.map(Ok)
}
