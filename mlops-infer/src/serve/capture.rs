//! Online traffic captured into a Delta inference table, so it can be monitored and
//! labelled like batch traffic (features `serve` and `delta`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use polars::prelude::{Column, DataFrame, IntoColumn, NamedFrom, Scalar, Series};
use tokio::sync::{mpsc, oneshot};

use super::record::{Exchange, ExchangeRecorder};
use crate::batch::{stack, with_scoring_columns};
use crate::delta::InferenceTable;
use crate::error::{Error, Result};
use crate::telemetry;

/// Column naming the endpoint of a captured request.
pub const ENDPOINT_COLUMN: &str = "endpoint";
/// Column naming the route that answered a captured request.
pub const ROUTE_COLUMN: &str = "route";
/// Column telling whether the answer came from a shadow route.
pub const SHADOW_COLUMN: &str = "shadow";

enum Command {
    Record(Box<Exchange>),
    Flush(oneshot::Sender<()>),
}

/// What a capture has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Rows appended to the table.
    pub rows_written: u64,
    /// Exchanges dropped because the queue was full (the server never waits for capture).
    pub dropped: u64,
    /// Exchanges without predictions (the route failed), not written.
    pub failed_exchanges: u64,
    /// The last write error, if the latest write failed.
    pub last_error: Option<String>,
}

/// An [`ExchangeRecorder`] that appends exchanges to an [`InferenceTable`] in batches: the
/// input columns, the predictions, `model_name`, `model_version`, `scored_at`, and
/// [`ENDPOINT_COLUMN`], [`ROUTE_COLUMN`], [`SHADOW_COLUMN`]. Recording is a non-blocking
/// queue push; a background task on the tokio runtime writes when `batch_rows` rows are
/// waiting, every `flush_every`, and on [`flush`](Self::flush). The table's keys must be
/// columns of the requests (a request or customer id, for instance).
pub struct InferenceCapture {
    sender: mpsc::Sender<Command>,
    dropped: AtomicU64,
    stats: Arc<Mutex<CaptureStats>>,
}

impl std::fmt::Debug for InferenceCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceCapture").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl InferenceCapture {
    /// Starts capturing into `table` on the current tokio runtime, holding at most
    /// `queue` exchanges in memory.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero `flush_every`, `batch_rows` or `queue`.
    pub fn start(
        table: Arc<InferenceTable>,
        batch_rows: usize,
        flush_every: Duration,
        queue: usize,
    ) -> Result<Arc<Self>> {
        if flush_every.is_zero() || batch_rows == 0 || queue == 0 {
            return Err(Error::InvalidArgument(format!(
                "a capture needs a flush interval, batch size and queue above zero, not {flush_every:?}, {batch_rows} \
                 and {queue}"
            )));
        }
        let (sender, receiver) = mpsc::channel(queue);
        let stats = Arc::new(Mutex::new(CaptureStats::default()));
        tokio::spawn(write_loop(table, receiver, batch_rows, flush_every, Arc::clone(&stats)));
        Ok(Arc::new(Self { sender, dropped: AtomicU64::new(0), stats }))
    }

    /// Writes what is queued now and waits until it is in the table.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Command::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// What the capture has done so far.
    pub fn stats(&self) -> CaptureStats {
        CaptureStats { dropped: self.dropped.load(Ordering::Relaxed), ..self.stats.lock().clone() }
    }
}

impl ExchangeRecorder for InferenceCapture {
    fn record(&self, exchange: Exchange) {
        if self.sender.try_send(Command::Record(Box::new(exchange))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(telemetry::CAPTURE_DROPPED).increment(1);
        }
    }
}

async fn write_loop(
    table: Arc<InferenceTable>,
    mut receiver: mpsc::Receiver<Command>,
    batch_rows: usize,
    flush_every: Duration,
    stats: Arc<Mutex<CaptureStats>>,
) {
    let mut pending: Vec<Exchange> = Vec::new();
    let mut rows = 0;
    let mut ticker = tokio::time::interval(flush_every);
    loop {
        let mut acknowledge = None;
        tokio::select! {
            command = receiver.recv() => match command {
                Some(Command::Record(exchange)) => {
                    rows += exchange.input.height();
                    pending.push(*exchange);
                    if rows < batch_rows {
                        continue;
                    }
                }
                Some(Command::Flush(done)) => acknowledge = Some(done),
                None => {
                    write(&table, std::mem::take(&mut pending), &stats).await;
                    return;
                }
            },
            _ = ticker.tick() => {}
        }
        rows = 0;
        write(&table, std::mem::take(&mut pending), &stats).await;
        if let Some(done) = acknowledge {
            let _ = done.send(());
        }
    }
}

async fn write(table: &InferenceTable, exchanges: Vec<Exchange>, stats: &Mutex<CaptureStats>) {
    if exchanges.is_empty() {
        return;
    }
    let mut frames = Vec::with_capacity(exchanges.len());
    let mut failed = 0;
    for exchange in exchanges {
        match captured_rows(exchange) {
            Some(Ok(frame)) => frames.push(frame),
            Some(Err(e)) => stats.lock().last_error = Some(e.to_string()),
            None => failed += 1,
        }
    }
    stats.lock().failed_exchanges += failed;
    // Requests with the same columns go in one append; others (extra or missing optional
    // columns) in their own.
    let mut groups: Vec<Vec<DataFrame>> = Vec::new();
    for frame in frames {
        match groups.iter_mut().find(|g| g[0].schema() == frame.schema()) {
            Some(group) => group.push(frame),
            None => groups.push(vec![frame]),
        }
    }
    for group in groups {
        let rows: usize = group.iter().map(DataFrame::height).sum();
        let appended = match stack(group) {
            Ok(Some(frame)) => table.append(&frame).await.map(|a| a.rows as u64),
            Ok(None) => Ok(0),
            Err(e) => Err(e.into()),
        };
        let mut stats = stats.lock();
        match appended {
            Ok(written) => {
                metrics::counter!(telemetry::CAPTURE_ROWS_WRITTEN).increment(written);
                stats.rows_written += written;
                stats.last_error = None;
            }
            Err(e) => {
                tracing::warn!(rows, error = %e, "capture write failed");
                metrics::counter!(telemetry::CAPTURE_WRITE_FAILURES).increment(1);
                stats.last_error = Some(e.to_string());
            }
        }
    }
}

/// The table rows of one exchange; `None` when it has no predictions.
fn captured_rows(exchange: Exchange) -> Option<Result<DataFrame>> {
    let outputs = exchange.outcome.ok()?;
    let (name, version) = exchange.model?;
    Some((|| {
        let mut frame = with_scoring_columns(&exchange.input, &outputs, &name, version)?;
        let height = frame.height();
        for column in [
            Column::new_scalar(
                ENDPOINT_COLUMN.into(),
                Scalar::from(polars::prelude::PlSmallStr::from(exchange.endpoint.as_str())),
                height,
            ),
            Column::new_scalar(
                ROUTE_COLUMN.into(),
                Scalar::from(polars::prelude::PlSmallStr::from(exchange.route.as_str())),
                height,
            ),
            Series::new(SHADOW_COLUMN.into(), vec![exchange.shadow; height]).into_column(),
        ] {
            frame.with_column(column)?;
        }
        Ok(frame)
    })())
}
