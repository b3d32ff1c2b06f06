//! Where a stream's records come from, in micro-batches it can replay.

use async_trait::async_trait;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What a micro-batch is made of, as a source describes it (for example the files it
/// holds). A stream writes the offset to its checkpoint before reading the batch, so after
/// a crash it reads exactly the same records again.
pub type Offset = serde_json::Value;

/// A record that was not scored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Where it came from: a file, and a row number where there is one.
    pub origin: String,
    /// Why it was set aside.
    pub reason: String,
    /// The record as JSON, when it could be read at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// The records of one micro-batch, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    /// The records read.
    pub records: DataFrame,
    /// Files or records that could not be read.
    pub dead_letters: Vec<DeadLetter>,
}

/// A source of micro-batches.
///
/// Contract: [`next_offset`](Source::next_offset) never plans a record twice, also across a
/// restart that [`resume`](Source::resume)s from the planned offsets; and
/// [`read`](Source::read) returns the same records for the same offset every time.
#[async_trait]
pub trait Source: Send {
    /// Continues after the offsets a stream planned before, oldest first.
    async fn resume(&mut self, planned: &[Offset]) -> Result<()>;

    /// The next micro-batch, or `None` when nothing new is available now.
    async fn next_offset(&mut self) -> Result<Option<Offset>>;

    /// The records of the micro-batch `offset` describes.
    async fn read(&mut self, offset: &Offset) -> Result<SourceBatch>;
}
