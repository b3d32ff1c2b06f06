//! Where a stream's scored records go, each micro-batch atomically.

use std::sync::Arc;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use polars::prelude::*;

use super::list_sorted;
use crate::blocking::off_runtime;
#[cfg(feature = "delta")]
use crate::delta::InferenceTable;
use crate::error::{Error, Result};

/// A destination that writes a micro-batch and the fact that it wrote it in one atomic step,
/// which is what makes a stream exactly-once.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The last micro-batch of stream `stream` written here, if any.
    async fn last_batch(&self, stream: &str) -> Result<Option<u64>>;

    /// Writes micro-batch `batch` of stream `stream`, recording the batch number with it;
    /// writes nothing for a batch it holds already (another run of the same stream may have
    /// written it a moment before), and decides that in the same atomic step.
    async fn write(&self, stream: &str, batch: u64, scored: &DataFrame) -> Result<()>;
}

#[cfg(feature = "delta")]
fn app_id(stream: &str) -> String {
    format!("mlops.stream:{stream}")
}

/// A Delta inference table: each batch is one commit that also carries the stream's
/// transaction marker (`txn`, the stream's id and the batch number).
#[cfg(feature = "delta")]
#[async_trait]
impl Sink for InferenceTable {
    async fn last_batch(&self, stream: &str) -> Result<Option<u64>> {
        Ok(self.transaction_version(&app_id(stream)).await?.and_then(|v| u64::try_from(v).ok()))
    }

    async fn write(&self, stream: &str, batch: u64, scored: &DataFrame) -> Result<()> {
        let version = i64::try_from(batch).map_err(|_| Error::InvalidArgument(format!("batch number {batch}")))?;
        // `None`: a racing run of the same stream wrote this batch first.
        self.append_in_transaction(scored, &app_id(stream), version).await.map(|_| ())
    }
}

/// Parquet files under a prefix, one per batch, named by stream and batch and written with a
/// create-only put.
#[derive(Debug, Clone)]
pub struct ParquetSink {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl ParquetSink {
    /// Files under `prefix` on `store`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self { store, prefix }
    }

    fn file(&self, stream: &str, batch: u64) -> Path {
        self.prefix.clone().join(format!("{stream}-{batch:020}.parquet"))
    }
}

#[async_trait]
impl Sink for ParquetSink {
    async fn last_batch(&self, stream: &str) -> Result<Option<u64>> {
        let start = format!("{stream}-");
        let names = list_sorted(self.store.as_ref(), &self.prefix).await?;
        Ok(names
            .iter()
            .filter_map(|p| p.filename()?.strip_prefix(&start)?.strip_suffix(".parquet")?.parse().ok())
            .max())
    }

    async fn write(&self, stream: &str, batch: u64, scored: &DataFrame) -> Result<()> {
        let mut frame = scored.clone();
        let bytes = off_runtime(move || {
            let mut bytes = Vec::new();
            ParquetWriter::new(&mut bytes).finish(&mut frame)?;
            Ok(bytes)
        })
        .await?;
        let path = self.file(stream, batch);
        let create = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from(bytes), create).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(Error::storage(format!("writing `{path}`"), e)),
        }
    }
}
