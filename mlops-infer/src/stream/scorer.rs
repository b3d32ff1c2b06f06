//! The streaming scorer: micro-batches from a source, scored, into a sink, exactly once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use polars::prelude::DataFrame;

use super::checkpoint::Checkpoint;
use super::records::{record_json, split_valid};
use super::sink::Sink;
use super::source::{DeadLetter, Offset, Source};
use crate::batch::BatchScorer;
use crate::delta::FeatureStore;
use crate::delta::off_runtime;
use crate::error::{Error, Result};
use mlops_core::features::{FeatureFunctions, FeatureSpec, FeatureTables};

/// When a stream looks for new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Process everything available now, then stop.
    AvailableNow,
    /// Look for new records every interval until shut down.
    Every(Duration),
}

/// What one micro-batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
    /// The batch number.
    pub batch: u64,
    /// Whether it was planned by an earlier run that stopped before committing it.
    pub replayed: bool,
    /// Records read.
    pub records: usize,
    /// Records scored and written.
    pub scored: usize,
    /// Files and records set aside as dead letters.
    pub dead_letters: usize,
    /// Whether the whole batch was set aside as one dead letter, because it could not be
    /// read, joined with its features or scored.
    pub poisoned: bool,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamReport {
    /// Micro-batches processed.
    pub batches: u64,
    /// Of which replayed after an interrupted run.
    pub replayed: u64,
    /// Records read.
    pub records: usize,
    /// Records scored and written.
    pub scored: usize,
    /// Dead letters written.
    pub dead_letters: usize,
    /// Batches set aside whole (see [`BatchReport::poisoned`]).
    pub poisoned: u64,
}

type Progress = Box<dyn Fn(&BatchReport) + Send + Sync>;

/// Scores a [`Source`] into a [`Sink`] in micro-batches, exactly once.
///
/// Each batch is planned (its offset written to the [`Checkpoint`]) before it is read, and
/// its output is written by a sink that records the batch number in the same atomic write.
/// A run that is killed at any instant and started again replays the planned batch the sink
/// does not hold yet, reading exactly the same records, and skips one it holds: every record
/// lands once.
///
/// Records the model's signature rejects (a null, or a value that did not parse, in a
/// column that may not be null) and files that cannot be read go to the checkpoint's dead
/// letters with the reason; the stream goes on, and the counts are reported. A batch that
/// fails as a whole (records whose types clash with the model's, features that cannot be
/// joined, a source or a model that panics) is set aside as one dead letter that holds its
/// offset, and committed, so a restart does not run into it again. Failures that may pass
/// ([`Error::is_transient`]: a store, the sink or the checkpoint out of reach) stop the run
/// instead, and the next run tries the batch again.
pub struct StreamingScorer {
    stream: String,
    source: Box<dyn Source>,
    scorer: BatchScorer,
    sink: Arc<dyn Sink>,
    checkpoint: Checkpoint,
    trigger: Trigger,
    progress: Option<Progress>,
    features: Option<(Arc<dyn FeatureStore>, FeatureFunctions)>,
}

impl std::fmt::Debug for StreamingScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingScorer")
            .field("stream", &self.stream)
            .field("scorer", &self.scorer)
            .field("checkpoint", &self.checkpoint)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

impl StreamingScorer {
    /// A stream named `stream` (its id in the sink's transaction markers) from `source`
    /// through `scorer` into `sink`, keeping its progress in `checkpoint`. Triggered
    /// [`Trigger::AvailableNow`] until told otherwise.
    pub fn new(
        stream: impl Into<String>,
        source: impl Source + 'static,
        scorer: BatchScorer,
        sink: Arc<dyn Sink>,
        checkpoint: Checkpoint,
    ) -> Self {
        Self {
            stream: stream.into(),
            source: Box::new(source),
            scorer,
            sink,
            checkpoint,
            trigger: Trigger::AvailableNow,
            progress: None,
            features: None,
        }
    }

    /// Sets the trigger.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for [`Trigger::Every`] a zero interval, which would list
    /// the source without pause.
    pub fn trigger(mut self, trigger: Trigger) -> Result<Self> {
        if trigger == Trigger::Every(Duration::ZERO) {
            return Err(Error::InvalidArgument(format!(
                "stream `{}`: a trigger interval must be longer than zero",
                self.stream
            )));
        }
        self.trigger = trigger;
        Ok(self)
    }

    /// Looks up the model's features (the [`FeatureSpec`] its package records) in `store`
    /// and computes its on-demand features with `functions` before scoring each batch.
    /// Records whose features cannot be found go to the dead letters with the reason.
    #[must_use]
    pub fn features(mut self, store: Arc<dyn FeatureStore>, functions: FeatureFunctions) -> Self {
        self.features = Some((store, functions));
        self
    }

    /// Calls `progress` after every micro-batch.
    #[must_use]
    pub fn on_batch(mut self, progress: impl Fn(&BatchReport) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// Runs until the trigger says stop or `shutdown` completes; a batch in progress is
    /// finished first.
    ///
    /// # Errors
    /// Source, scoring, sink and checkpoint errors. Whatever was committed stays committed;
    /// running again continues from there.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<StreamReport> {
        let mut report = StreamReport::default();
        let planned = self.checkpoint.offsets().await?;
        let offsets: Vec<Offset> = planned.iter().map(|(_, o)| o.clone()).collect();
        self.source.resume(&offsets).await?;
        let committed = match (self.checkpoint.last_commit().await?, self.sink.last_batch(&self.stream).await?) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mut next = planned.last().map_or(0, |(batch, _)| batch + 1);
        for (batch, offset) in planned {
            if committed.is_none_or(|done| batch > done) {
                self.process(batch, &offset, true, &mut report).await?;
            }
        }

        tokio::pin!(shutdown);
        loop {
            let stop = futures::FutureExt::now_or_never(&mut shutdown).is_some();
            if stop {
                return Ok(report);
            }
            match self.source.next_offset().await? {
                Some(offset) => {
                    self.checkpoint.plan(next, &offset).await?;
                    self.process(next, &offset, false, &mut report).await?;
                    next += 1;
                }
                None => match self.trigger {
                    Trigger::AvailableNow => return Ok(report),
                    Trigger::Every(interval) => {
                        tokio::select! {
                            () = tokio::time::sleep(interval) => {}
                            () = &mut shutdown => return Ok(report),
                        }
                    }
                },
            }
        }
    }

    /// The feature spec of the model, the tables it reads and the functions it computes
    /// with; `None` for a model without features.
    fn feature_tables(
        &self,
    ) -> impl Future<Output = Result<Option<(FeatureSpec, FeatureTables, FeatureFunctions)>>> + Send + use<> {
        // Owned values only: the future must not borrow the scorer (whose source is not `Sync`).
        let spec = self.scorer.features().cloned();
        let features = self.features.clone();
        let (name, version) = (self.scorer.model_name().to_owned(), self.scorer.version());
        async move {
            let Some(spec) = spec else { return Ok(None) };
            let Some((store, functions)) = features else {
                return Err(Error::InvalidArgument(format!(
                    "model `{name}` version {version} looks up features in {}; give the streaming scorer a feature store",
                    spec.tables().join(", ")
                )));
            };
            let tables = store.tables(&spec.tables()).await?;
            Ok(Some((spec, tables, functions)))
        }
    }

    async fn process(&mut self, batch: u64, offset: &Offset, replayed: bool, report: &mut StreamReport) -> Result<()> {
        // Outside the batch: a missing or unreachable feature store fails every batch alike.
        let lookups = self.feature_tables().await?;
        let (scored, dead_letters, total, poisoned) = match self.score_batch(batch, offset, lookups).await {
            Ok((scored, dead_letters, total)) => (scored, dead_letters, total, false),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                let letter = DeadLetter {
                    origin: format!("batch {batch}"),
                    reason: format!("the batch was set aside whole: {e}"),
                    record: Some(offset.to_string()),
                };
                (DataFrame::empty(), vec![letter], 0, true)
            }
        };
        if !dead_letters.is_empty() {
            self.checkpoint.write_dead_letters(batch, &dead_letters).await?;
        }
        // `run` only processes batches past the last one the sink holds, and the checkpoint's
        // create-only offsets keep a second stream out, so the sink never holds this batch.
        if scored.height() > 0 {
            self.sink.write(&self.stream, batch, &scored).await?;
        }
        self.checkpoint.commit(batch).await?;

        let done = BatchReport {
            batch,
            replayed,
            records: total,
            scored: scored.height(),
            dead_letters: dead_letters.len(),
            poisoned,
        };
        report.batches += 1;
        report.replayed += u64::from(replayed);
        report.records += done.records;
        report.scored += done.scored;
        report.dead_letters += done.dead_letters;
        report.poisoned += u64::from(poisoned);
        if let Some(progress) = &self.progress {
            progress(&done);
        }
        Ok(())
    }

    /// Reads, checks, joins with the features and scores the batch: the scored rows, the
    /// records set aside and the records read.
    async fn score_batch(
        &mut self,
        batch: u64,
        offset: &Offset,
        lookups: Option<(FeatureSpec, FeatureTables, FeatureFunctions)>,
    ) -> Result<(DataFrame, Vec<DeadLetter>, usize)> {
        let read = match AssertUnwindSafe(self.source.read(offset)).catch_unwind().await {
            Ok(read) => read?,
            Err(payload) => {
                return Err(mlops_core::Error::Panicked {
                    what: format!("reading batch {batch}"),
                    message: mlops_core::panic_message(&*payload),
                }
                .into());
            }
        };
        let (scorer, records) = (self.scorer.clone(), read.records);
        let (scored, rejected, total) = off_runtime(move || {
            if records.width() == 0 {
                return Ok((DataFrame::empty(), Vec::new(), 0));
            }
            let inputs = &scorer.signature().inputs;
            let letter = |frame: &DataFrame, (row, reason): (usize, String), stage: &str| DeadLetter {
                origin: format!("batch {batch} record {row}{stage}"),
                reason,
                record: Some(record_json(frame, row)),
            };
            let Some((spec, tables, functions)) = lookups else {
                let (valid, rejected) = split_valid(&records, inputs)?;
                let letters = rejected.into_iter().map(|r| letter(&records, r, "")).collect();
                return Ok((scorer.score(&valid)?, letters, records.height()));
            };
            // Records are checked for the columns they carry themselves, then again once the
            // features are joined: a record whose features are missing is set aside too.
            let (valid, rejected) = split_valid(&records, &spec.raw_inputs(inputs))?;
            let mut letters: Vec<DeadLetter> = rejected.into_iter().map(|r| letter(&records, r, "")).collect();
            let augmented = spec.augment(&valid, &tables, &functions)?;
            let (complete, incomplete) = split_valid(&augmented, inputs)?;
            letters.extend(incomplete.into_iter().map(|r| letter(&augmented, r, " of those with features looked up")));
            Ok((scorer.score(&complete)?, letters, records.height()))
        })
        .await?;
        let mut dead_letters = read.dead_letters;
        dead_letters.extend(rejected);
        Ok((scored, dead_letters, total))
    }
}
