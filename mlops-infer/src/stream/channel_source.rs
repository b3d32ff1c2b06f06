//! Frames sent by code in the same process.

use std::collections::BTreeMap;

use async_trait::async_trait;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::source::{DeadLetter, Offset, Source, SourceBatch};
use crate::batch::stack;
use crate::delta::off_runtime;
use crate::error::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
struct ChannelOffset {
    channel_batch: u64,
    frames: usize,
}

/// Frames sent through a bounded channel by code in the same process; the channel's bound
/// is the backpressure (senders wait while the stream is behind).
///
/// A channel cannot replay: frames received by a process that then died are gone, and a
/// restarted stream records that batch as a dead letter instead of scoring it. Use a
/// replayable source (files, a Delta table) where records must survive a crash, or have the
/// producer send again what the sink does not hold.
///
/// ```
/// use mlops_infer::stream::ChannelSource;
/// use polars::prelude::*;
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let (sender, source) = ChannelSource::new(16);
/// sender.send(df!("id" => ["t1"], "Amount" => [3.0])?).await?;
/// # drop(source);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ChannelSource {
    receiver: mpsc::Receiver<DataFrame>,
    max_rows_per_batch: usize,
    received: BTreeMap<u64, Vec<DataFrame>>,
    next: u64,
}

impl ChannelSource {
    /// A source and the sender to feed it; at most `capacity` frames wait in the channel.
    ///
    /// # Panics
    /// When `capacity` is 0.
    pub fn new(capacity: usize) -> (mpsc::Sender<DataFrame>, Self) {
        let (sender, receiver) = mpsc::channel(capacity);
        (sender, Self { receiver, max_rows_per_batch: 100_000, received: BTreeMap::new(), next: 0 })
    }

    /// A micro-batch takes frames until it holds at least this many rows (default 100,000).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn max_rows_per_batch(mut self, rows: usize) -> Result<Self> {
        if rows == 0 {
            return Err(Error::InvalidArgument("max_rows_per_batch must be at least 1".to_owned()));
        }
        self.max_rows_per_batch = rows;
        Ok(self)
    }
}

#[async_trait]
impl Source for ChannelSource {
    async fn resume(&mut self, planned: &[Offset]) -> Result<()> {
        for offset in planned {
            if let Ok(offset) = serde_json::from_value::<ChannelOffset>(offset.clone()) {
                self.next = self.next.max(offset.channel_batch + 1);
            }
        }
        Ok(())
    }

    async fn next_offset(&mut self) -> Result<Option<Offset>> {
        let mut frames = Vec::new();
        let mut rows = 0;
        while rows < self.max_rows_per_batch {
            match self.receiver.try_recv() {
                Ok(frame) => {
                    rows += frame.height();
                    frames.push(frame);
                }
                Err(_) => break,
            }
        }
        if frames.is_empty() {
            return Ok(None);
        }
        let offset = ChannelOffset { channel_batch: self.next, frames: frames.len() };
        self.received.insert(self.next, frames);
        self.next += 1;
        serde_json::to_value(offset).map(Some).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    async fn read(&mut self, offset: &Offset) -> Result<SourceBatch> {
        let offset: ChannelOffset = serde_json::from_value(offset.clone())
            .map_err(|e| Error::InvalidArgument(format!("checkpoint offset is not a channel batch: {e}")))?;
        let Some(frames) = self.received.remove(&offset.channel_batch) else {
            return Ok(SourceBatch {
                records: DataFrame::empty(),
                dead_letters: vec![DeadLetter {
                    origin: format!("channel batch {}", offset.channel_batch),
                    reason: format!(
                        "{} frames were received by a process that stopped before committing them; a channel cannot replay",
                        offset.frames
                    ),
                    record: None,
                }],
            });
        };
        let records = off_runtime(move || Ok(stack(frames)?.unwrap_or_default())).await?;
        Ok(SourceBatch { records, dead_letters: Vec::new() })
    }
}
