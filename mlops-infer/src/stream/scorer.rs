//! The streaming scorer: micro-batches from a source, scored, into a sink, exactly once.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use mlops_registry::{LoadedModel, ModelSource};
use polars::prelude::DataFrame;
use tracing::Instrument;
use tracing::field::Empty;

use super::checkpoint::Checkpoint;
use super::records::{record_json, split_valid};
use super::sink::Sink;
use super::source::{DeadLetter, Source};
use crate::batch::{BatchScorer, DEFAULT_CHUNK_ROWS};
use crate::blocking::off_runtime;
use crate::error::{Error, Result};
use crate::feature_store::FeatureStore;
use crate::telemetry;
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
    /// The model version the batch was scored with (also in every row's `model_version`).
    pub model_version: u64,
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

/// Scores a [`Source`] into a [`Sink`] in micro-batches, exactly once, with the model a
/// [`ModelSource`] holds.
///
/// The model is taken from the source at the start of each micro-batch and kept for the
/// whole batch, so a stream given a [`LiveModel`](mlops_registry::LiveModel) follows its
/// alias without a restart: batches planned after the alias moved are scored by the new
/// version, and each row's `model_version` says which version scored it. A
/// [`ModelSlot`](mlops_registry::ModelSlot) holds one version until the application swaps
/// it. While the source holds no model yet, a stream triggered [`Trigger::Every`] waits;
/// one triggered [`Trigger::AvailableNow`] stops with [`Error::ModelNotLoaded`].
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
///
/// ```
/// use std::sync::Arc;
/// use mlops_core::TabularClassifierParams;
/// use mlops_infer::stream::{ChannelSource, Checkpoint, ParquetSink, StreamingScorer};
/// use mlops_registry::{LoadedModel, ModelSlot};
/// use object_store::local::LocalFileSystem;
/// use polars::prelude::*;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
/// let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
/// // Or a `LiveModel` following `models:/transactions@champion`.
/// let model = Arc::new(ModelSlot::loaded(LoadedModel::unregistered("transactions".parse()?, 1, Arc::new(model))));
///
/// let dir = tempfile::tempdir()?;
/// let files = Arc::new(LocalFileSystem::new_with_prefix(dir.path())?);
/// let (sender, source) = ChannelSource::new(16);
/// let sink = Arc::new(ParquetSink::new(files, "scored".into()));
/// let checkpoint = Checkpoint::local(dir.path().join("checkpoint"))?;
/// let mut stream = StreamingScorer::new("transactions", source, model, sink, checkpoint);
///
/// sender.send(df!("id" => ["t1", "t2"], "Amount" => [1.5, 8.5])?).await?;
/// let report = stream.run(std::future::pending()).await?;
/// assert_eq!((report.batches, report.scored), (1, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StreamingScorer<S: Source> {
    stream: String,
    source: S,
    model: Arc<dyn ModelSource>,
    chunk_rows: usize,
    sink: Arc<dyn Sink>,
    checkpoint: Checkpoint,
    trigger: Trigger,
    progress: Option<Progress>,
    features: Option<(Arc<dyn FeatureStore>, FeatureFunctions)>,
    /// The next batch number, once a run has recovered from the checkpoint and ended well.
    next_batch: Option<u64>,
    /// A batch the source handed on that could not be planned.
    unplanned: Option<S::Offset>,
    /// Whether the source was resumed from the checkpoint.
    resumed: bool,
}

/// The batch number after `batch`; the last number there is ends a stream.
fn next_after(batch: u64) -> Result<u64> {
    batch
        .checked_add(1)
        .ok_or_else(|| Error::InvalidArgument(format!("batch {batch} is the last batch number a checkpoint can hold")))
}

impl<S: Source> std::fmt::Debug for StreamingScorer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingScorer")
            .field("stream", &self.stream)
            .field("model_version", &self.model.current().map(|m| m.version.version))
            .field("checkpoint", &self.checkpoint)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

impl<S: Source> StreamingScorer<S> {
    /// A stream named `stream` (its id in the sink's transaction markers) from `source`,
    /// scored by the model `model` holds at each micro-batch, into `sink`, keeping its
    /// progress in `checkpoint`. Triggered [`Trigger::AvailableNow`] until told otherwise.
    pub fn new(
        stream: impl Into<String>,
        source: S,
        model: Arc<dyn ModelSource>,
        sink: Arc<dyn Sink>,
        checkpoint: Checkpoint,
    ) -> Self {
        Self {
            stream: stream.into(),
            source,
            model,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            sink,
            checkpoint,
            trigger: Trigger::AvailableNow,
            progress: None,
            features: None,
            next_batch: None,
            unplanned: None,
            resumed: false,
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

    /// Scores each batch in chunks of this many rows (default
    /// [`DEFAULT_CHUNK_ROWS`](crate::DEFAULT_CHUNK_ROWS)), as [`BatchScorer::chunk_rows`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn chunk_rows(mut self, rows: usize) -> Result<Self> {
        if rows == 0 {
            return Err(Error::InvalidArgument(format!("stream `{}`: chunk_rows must be at least 1", self.stream)));
        }
        self.chunk_rows = rows;
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
    /// A stream can run again and again (a [`Trigger::AvailableNow`] stream run on a
    /// schedule takes what arrived since): the first run recovers from the checkpoint, and
    /// the next ones go on where the last one ended.
    ///
    /// # Errors
    /// Source, scoring, sink and checkpoint errors, and [`Error::ModelNotLoaded`]. Whatever
    /// was committed stays committed; running again (this stream, or a new one on the same
    /// checkpoint) recovers from there.
    pub async fn run(&mut self, shutdown: impl Future<Output = ()>) -> Result<StreamReport> {
        tokio::pin!(shutdown);
        let mut report = StreamReport::default();
        // A run that ended well left every planned batch committed: the next one goes on
        // from there without reading the checkpoint again.
        let mut next = match self.next_batch.take() {
            Some(next) => next,
            None => match self.recover(&mut shutdown, &mut report).await? {
                Some(next) => next,
                None => return Ok(report),
            },
        };
        self.pump(&mut shutdown, &mut next, &mut report).await?;
        self.next_batch = Some(next);
        Ok(report)
    }

    /// Plans, scores and commits batch after batch from `next` on, until the trigger says
    /// stop or `shutdown` completes.
    async fn pump(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        next: &mut u64,
        report: &mut StreamReport,
    ) -> Result<()> {
        loop {
            if futures::FutureExt::now_or_never(shutdown.as_mut()).is_some() {
                return Ok(());
            }
            // Taken before planning, so no batch is planned that cannot be scored now.
            let Some(model) = self.model_when_loaded(shutdown).await? else { return Ok(()) };
            let offset = match self.unplanned.take() {
                Some(offset) => Some(offset),
                None => self.source.next_offset().await?,
            };
            match offset {
                Some(offset) => {
                    if let Err(e) = self.checkpoint.plan(*next, &offset).await {
                        // The source has handed this batch on: the next run plans it again
                        // under the same number (planning the same offset twice is fine).
                        self.unplanned = Some(offset);
                        self.next_batch = Some(*next);
                        return Err(e);
                    }
                    self.process(&model, *next, &offset, false, report).await?;
                    *next = next_after(*next)?;
                }
                None => match self.trigger {
                    Trigger::AvailableNow => return Ok(()),
                    Trigger::Every(interval) => {
                        tokio::select! {
                            () = tokio::time::sleep(interval) => {}
                            () = shutdown.as_mut() => return Ok(()),
                        }
                    }
                },
            }
        }
    }

    /// Resumes the source after the batches the checkpoint holds and replays those the sink
    /// does not hold: the number of the next batch, or `None` when `shutdown` came first.
    async fn recover(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
        report: &mut StreamReport,
    ) -> Result<Option<u64>> {
        // Committed batches are read before planned ones: a batch is planned before it is
        // committed, so every committed batch's offset is in what is read next (unless an
        // operator set it aside), even while another run of the stream goes on.
        let committed = match (self.checkpoint.last_commit().await?, self.sink.last_batch(&self.stream).await?) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let planned = self.checkpoint.offsets::<S::Offset>().await?;
        // A source is resumed once: after a failed run of this stream it already stands past
        // every batch it handed on, and only the batches the sink lacks are replayed.
        if !self.resumed {
            let offsets: Vec<S::Offset> = planned.iter().map(|(_, o)| o.clone()).collect();
            self.source.resume(&offsets).await?;
            self.resumed = true;
        }
        // Past the sink's last batch too: a batch whose offset was set aside is planned
        // again, and must not take a number the sink has committed and would skip.
        let next = planned.last().map(|(batch, _)| *batch).max(committed).map_or(Ok(0), next_after)?;
        for (batch, offset) in planned {
            if committed.is_none_or(|done| batch > done) {
                let Some(model) = self.model_when_loaded(shutdown).await? else { return Ok(None) };
                self.process(&model, batch, &offset, true, report).await?;
            }
        }
        Ok(Some(next))
    }

    /// The model the source holds, waiting for one while the trigger allows it; `None` when
    /// `shutdown` completes first.
    async fn model_when_loaded(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Option<BatchScorer>> {
        loop {
            if let Some(loaded) = self.model.current() {
                return self.scorer_for(&loaded).map(Some);
            }
            let Trigger::Every(interval) = self.trigger else {
                return Err(Error::ModelNotLoaded(format!("stream `{}`", self.stream)));
            };
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.as_mut() => return Ok(None),
            }
        }
    }

    fn scorer_for(&self, loaded: &LoadedModel) -> Result<BatchScorer> {
        BatchScorer::new(loaded.version.name.as_str(), loaded.version.version, Arc::clone(&loaded.model))
            .chunk_rows(self.chunk_rows)
    }

    /// The feature spec of the model, the tables it reads and the functions it computes
    /// with; `None` for a model without features.
    fn feature_tables(
        &self,
        scorer: &BatchScorer,
    ) -> impl Future<Output = Result<Option<(FeatureSpec, FeatureTables, FeatureFunctions)>>> + Send + use<S> {
        // Owned values only: the future must not borrow the stream (whose source is not `Sync`).
        let spec = scorer.features().cloned();
        let features = self.features.clone();
        let (name, version) = (scorer.model_name().to_owned(), scorer.version());
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

    /// Scores and commits one batch inside its span, and counts it.
    async fn process(
        &mut self,
        scorer: &BatchScorer,
        batch: u64,
        offset: &S::Offset,
        replayed: bool,
        report: &mut StreamReport,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "stream_batch",
            stream = %self.stream,
            batch,
            replayed,
            model = %scorer.model_name(),
            version = scorer.version(),
            records = Empty,
            scored = Empty,
            dead_letters = Empty,
            poisoned = Empty,
            duration_ms = Empty,
        );
        let done = self.process_batch(scorer, batch, offset, replayed).instrument(span.clone()).await?;
        let elapsed = started.elapsed();
        span.record("records", done.records);
        span.record("scored", done.scored);
        span.record("dead_letters", done.dead_letters);
        span.record("poisoned", done.poisoned);
        span.record("duration_ms", mlops_registry::telemetry::millis(elapsed));
        let stream = self.stream.clone();
        metrics::counter!(telemetry::STREAM_BATCHES, "stream" => stream.clone()).increment(1);
        metrics::counter!(telemetry::STREAM_RECORDS, "stream" => stream.clone()).increment(done.records as u64);
        metrics::counter!(telemetry::STREAM_SCORED, "stream" => stream.clone()).increment(done.scored as u64);
        metrics::counter!(telemetry::STREAM_DEAD_LETTERS, "stream" => stream.clone())
            .increment(done.dead_letters as u64);
        metrics::histogram!(telemetry::STREAM_BATCH_SECONDS, "stream" => stream).record(elapsed.as_secs_f64());
        report.batches += 1;
        report.replayed += u64::from(replayed);
        report.records += done.records;
        report.scored += done.scored;
        report.dead_letters += done.dead_letters;
        report.poisoned += u64::from(done.poisoned);
        if let Some(progress) = &self.progress {
            progress(&done);
        }
        Ok(())
    }

    async fn process_batch(
        &mut self,
        scorer: &BatchScorer,
        batch: u64,
        offset: &S::Offset,
        replayed: bool,
    ) -> Result<BatchReport> {
        // Outside the batch: a missing or unreachable feature store fails every batch alike.
        let lookups = self.feature_tables(scorer).await?;
        let (scored, dead_letters, total, poisoned) = match self.score_batch(scorer, batch, offset, lookups).await {
            Ok((scored, dead_letters, total)) => (scored, dead_letters, total, false),
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => {
                tracing::warn!(stream = %self.stream, batch, error = %e, "batch set aside");
                let letter = DeadLetter {
                    origin: format!("batch {batch}"),
                    reason: format!("the batch was set aside whole: {e}"),
                    record: serde_json::to_string(offset).ok(),
                };
                (DataFrame::empty(), vec![letter], 0, true)
            }
        };
        if !dead_letters.is_empty() {
            self.checkpoint.write_dead_letters(batch, &dead_letters).await?;
        }
        // `run` only processes batches past the last one the sink held when it looked; a run
        // of the same stream racing this one may have written the batch since, and the
        // sink then keeps that run's rows.
        if scored.height() > 0 {
            self.sink.write(&self.stream, batch, &scored).await?;
        }
        self.checkpoint.commit(batch).await?;

        Ok(BatchReport {
            batch,
            replayed,
            records: total,
            scored: scored.height(),
            dead_letters: dead_letters.len(),
            poisoned,
            model_version: scorer.version(),
        })
    }

    /// Reads, checks, joins with the features and scores the batch: the scored rows, the
    /// records set aside and the records read.
    async fn score_batch(
        &mut self,
        scorer: &BatchScorer,
        batch: u64,
        offset: &S::Offset,
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
        let (scorer, records) = (scorer.clone(), read.records);
        // The scoring thread works inside the batch's span.
        let span = tracing::Span::current();
        let (scored, rejected, total) = off_runtime(move || {
            let _in_batch = span.enter();
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
