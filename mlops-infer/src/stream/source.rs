//! Where a stream's records come from, in micro-batches it can replay.

use async_trait::async_trait;
use polars::prelude::DataFrame;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;

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
///
/// ```
/// use async_trait::async_trait;
/// use mlops_infer::stream::{Source, SourceBatch};
/// use polars::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// /// Numbers `first..first + count`, a hundred per batch.
/// struct Counter { next: u64 }
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Range { first: u64, count: u64 }
///
/// #[async_trait]
/// impl Source for Counter {
///     type Offset = Range;
///
///     async fn resume(&mut self, planned: &[Range]) -> mlops_infer::Result<()> {
///         self.next = planned.last().map_or(0, |r| r.first + r.count);
///         Ok(())
///     }
///
///     async fn next_offset(&mut self) -> mlops_infer::Result<Option<Range>> {
///         let range = Range { first: self.next, count: 100 };
///         self.next += range.count;
///         Ok(Some(range))
///     }
///
///     async fn read(&mut self, range: &Range) -> mlops_infer::Result<SourceBatch> {
///         let numbers: Vec<u64> = (range.first..range.first + range.count).collect();
///         let records = df!("n" => numbers)?;
///         Ok(SourceBatch { records, dead_letters: Vec::new() })
///     }
/// }
/// ```
#[async_trait]
pub trait Source: Send {
    /// What a micro-batch is made of, as the source describes it (for example the files it
    /// holds). A stream writes the offset to its checkpoint as JSON before reading the batch,
    /// so after a crash it reads exactly the same records again.
    type Offset: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;

    /// Continues after the offsets a stream planned before, oldest first.
    async fn resume(&mut self, planned: &[Self::Offset]) -> Result<()>;

    /// The next micro-batch, or `None` when nothing new is available now.
    async fn next_offset(&mut self) -> Result<Option<Self::Offset>>;

    /// The records of the micro-batch `offset` describes.
    async fn read(&mut self, offset: &Self::Offset) -> Result<SourceBatch>;
}
