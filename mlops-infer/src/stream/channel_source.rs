//! Frames sent by code in the same process.

use std::collections::BTreeMap;

use async_trait::async_trait;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::source::{DeadLetter, Source, SourceBatch};
use crate::batch::stack;
use crate::blocking::off_runtime;
use crate::error::{Error, Result};

/// The frames one micro-batch of a [`ChannelSource`] took from the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOffset {
    /// The source's own count of batches, from 0.
    pub channel_batch: u64,
    /// How many frames it took.
    pub frames: usize,
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
    type Offset = ChannelOffset;

    async fn resume(&mut self, planned: &[ChannelOffset]) -> Result<()> {
        for offset in planned {
            let after = offset.channel_batch.checked_add(1).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "the checkpoint plans channel batch {}, after which no batch can be numbered",
                    offset.channel_batch
                ))
            })?;
            self.next = self.next.max(after);
        }
        Ok(())
    }

    async fn next_offset(&mut self) -> Result<Option<ChannelOffset>> {
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
        self.next =
            self.next.checked_add(1).ok_or_else(|| Error::InvalidArgument("channel batch numbers ran out".into()))?;
        Ok(Some(offset))
    }

    async fn read(&mut self, offset: &ChannelOffset) -> Result<SourceBatch> {
        // Batches are read in order, and a batch is read again only until it is committed:
        // the ones before this one are done with.
        self.received = self.received.split_off(&offset.channel_batch);
        let Some(frames) = self.received.get(&offset.channel_batch).cloned() else {
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

#[cfg(test)]
mod tests {
    use super::{ChannelOffset, ChannelSource};
    use crate::stream::Source;

    #[tokio::test]
    async fn a_checkpoint_at_the_last_batch_number_is_refused_not_wrapped() {
        let (_sender, mut source) = ChannelSource::new(1);
        let last = ChannelOffset { channel_batch: u64::MAX, frames: 1 };
        let error = source.resume(&[last]).await.unwrap_err().to_string();
        assert!(error.contains("18446744073709551615"), "{error}");
        let (_sender, mut source) = ChannelSource::new(1);
        source.resume(&[ChannelOffset { channel_batch: 7, frames: 1 }]).await.unwrap();
        assert_eq!(source.next, 8);
    }
}
