//! Online traffic captured into a Delta inference table, so it can be monitored and
//! labelled like batch traffic, and every request, failed ones too, into a requests table
//! (features `serve` and `delta`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use polars::prelude::{Column, DataFrame, IntoColumn, NamedFrom, Scalar, Series};
use tokio::sync::{mpsc, oneshot};

use super::record::{Exchange, ExchangeRecorder};
use crate::batch::{MODEL_NAME, MODEL_VERSION, stack, with_scoring_columns};
use crate::delta::arrow::frame_to_batches;
use crate::delta::inference_table::write_retrying_creation_races;
use crate::delta::{InferenceTable, TableLocation};
use crate::error::{Error, Result};
use crate::telemetry;

/// Column naming the endpoint of a captured request.
pub const ENDPOINT_COLUMN: &str = "endpoint";
/// Column naming the route that answered a captured request.
pub const ROUTE_COLUMN: &str = "route";
/// Column telling whether the answer came from a shadow route.
pub const SHADOW_COLUMN: &str = "shadow";
/// Column holding a captured request's id (its `x-request-id`).
pub const REQUEST_ID_COLUMN: &str = "request_id";
/// Column holding the HTTP status answered.
pub const STATUS_CODE_COLUMN: &str = "status_code";
/// Column holding how long the request took, in milliseconds, from arrival to answer.
pub const EXECUTION_TIME_COLUMN: &str = "execution_time_ms";
/// Column of the requests table holding the error message answered.
pub const ERROR_COLUMN: &str = "error";
/// Column of the requests table holding how many input rows the request had.
pub const ROWS_COLUMN: &str = "rows";
/// Column of the requests table holding when the request was captured.
pub const RECEIVED_AT_COLUMN: &str = "received_at";
/// Rows a capture writes at once by default.
pub const DEFAULT_CAPTURE_BATCH_ROWS: usize = 1_000;
/// How often a capture writes by default.
pub const DEFAULT_CAPTURE_FLUSH: Duration = Duration::from_secs(1);
/// How many exchanges a capture holds in memory by default.
pub const DEFAULT_CAPTURE_QUEUE: usize = 10_000;

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
    /// Exchanges without predictions (the request failed, or a shadow route did), kept out
    /// of the inference table (they are rows of the requests table, when there is one).
    pub failed_exchanges: u64,
    /// Rows appended to the requests table.
    pub requests_written: u64,
    /// The last write error, if the latest write failed.
    pub last_error: Option<String>,
}

/// An [`ExchangeRecorder`] that appends exchanges to an [`InferenceTable`] in batches: the
/// input columns, the predictions, `model_name`, `model_version`, `scored_at`, and
/// [`ENDPOINT_COLUMN`], [`ROUTE_COLUMN`], [`SHADOW_COLUMN`], [`REQUEST_ID_COLUMN`],
/// [`STATUS_CODE_COLUMN`] and [`EXECUTION_TIME_COLUMN`]. A request whose input columns
/// differ from earlier ones (an optional column given or left out) adds its columns to the
/// table's schema. With [`CaptureBuilder::requests_table`], every exchange, failed ones
/// too, is also one row of a requests table: request id, endpoint, route, shadow, model
/// name and version (null when none answered), status, execution time, the error
/// message, the number of input rows and when it was captured, as Databricks' inference
/// tables record each request.
///
/// Recording is a non-blocking queue push; a background task on the tokio runtime writes
/// when `batch_rows` rows are waiting, every `flush_every`, and on [`flush`](Self::flush).
/// The inference table's keys must be columns of the requests (a request or customer id,
/// for instance).
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

/// The settings of an [`InferenceCapture`]; [`start`](Self::start) starts it.
#[derive(Debug)]
pub struct CaptureBuilder {
    table: Arc<InferenceTable>,
    requests: Option<TableLocation>,
    batch_rows: usize,
    flush_every: Duration,
    queue: usize,
}

impl CaptureBuilder {
    /// Writes once this many rows wait ([`DEFAULT_CAPTURE_BATCH_ROWS`] by default).
    #[must_use]
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows;
        self
    }

    /// Writes what waits this often ([`DEFAULT_CAPTURE_FLUSH`] by default).
    #[must_use]
    pub fn flush_every(mut self, every: Duration) -> Self {
        self.flush_every = every;
        self
    }

    /// Holds at most this many exchanges in memory; more are dropped and counted
    /// ([`DEFAULT_CAPTURE_QUEUE`] by default).
    #[must_use]
    pub fn queue(mut self, exchanges: usize) -> Self {
        self.queue = exchanges;
        self
    }

    /// Also appends one row per exchange, failed ones included, to the Delta table at
    /// `location`.
    #[must_use]
    pub fn requests_table(mut self, location: TableLocation) -> Self {
        self.requests = Some(location);
        self
    }

    /// Starts capturing on the current tokio runtime.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero flush interval, batch size or queue.
    pub fn start(self) -> Result<Arc<InferenceCapture>> {
        let Self { table, requests, batch_rows, flush_every, queue } = self;
        if flush_every.is_zero() || batch_rows == 0 || queue == 0 {
            return Err(Error::InvalidArgument(format!(
                "a capture needs a flush interval, batch size and queue above zero, not {flush_every:?}, {batch_rows} \
                 and {queue}"
            )));
        }
        let (sender, receiver) = mpsc::channel(queue);
        let stats = Arc::new(Mutex::new(CaptureStats::default()));
        let tables = Tables { inference: table, requests };
        tokio::spawn(write_loop(tables, receiver, batch_rows, flush_every, Arc::clone(&stats)));
        Ok(Arc::new(InferenceCapture { sender, dropped: AtomicU64::new(0), stats }))
    }
}

/// Where a capture writes.
struct Tables {
    inference: Arc<InferenceTable>,
    requests: Option<TableLocation>,
}

impl InferenceCapture {
    /// Settings for capturing into `table`, with the defaults.
    pub fn builder(table: Arc<InferenceTable>) -> CaptureBuilder {
        CaptureBuilder {
            table,
            requests: None,
            batch_rows: DEFAULT_CAPTURE_BATCH_ROWS,
            flush_every: DEFAULT_CAPTURE_FLUSH,
            queue: DEFAULT_CAPTURE_QUEUE,
        }
    }

    /// Starts capturing into `table` on the current tokio runtime, holding at most
    /// `queue` exchanges in memory (the [`builder`](Self::builder) with these settings).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero `flush_every`, `batch_rows` or `queue`.
    pub fn start(
        table: Arc<InferenceTable>,
        batch_rows: usize,
        flush_every: Duration,
        queue: usize,
    ) -> Result<Arc<Self>> {
        Self::builder(table).batch_rows(batch_rows).flush_every(flush_every).queue(queue).start()
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
    table: Tables,
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
                    rows += exchange.input.height().max(1);
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

async fn write(tables: &Tables, exchanges: Vec<Exchange>, stats: &Mutex<CaptureStats>) {
    if exchanges.is_empty() {
        return;
    }
    if let Some(requests) = &tables.requests {
        write_requests(requests, &exchanges, stats).await;
    }
    let table = tables.inference.as_ref();
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
            Ok(Some(frame)) => table.append_merging_schema(&frame).await.map(|a| a.rows as u64),
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

/// Appends one row per exchange to the requests table.
async fn write_requests(location: &TableLocation, exchanges: &[Exchange], stats: &Mutex<CaptureStats>) {
    let written = match requests_frame(exchanges).and_then(|f| frame_to_batches(&f)) {
        Ok(batches) => write_retrying_creation_races(
            location,
            batches,
            deltalake::protocol::SaveMode::Append,
            deltalake::kernel::transaction::CommitProperties::default(),
            &[],
        )
        .await
        .map(|_| exchanges.len() as u64),
        Err(e) => Err(e),
    };
    let mut stats = stats.lock();
    match written {
        Ok(rows) => stats.requests_written += rows,
        Err(e) => {
            tracing::warn!(rows = exchanges.len(), error = %e, "capture write failed");
            metrics::counter!(telemetry::CAPTURE_WRITE_FAILURES).increment(1);
            stats.last_error = Some(e.to_string());
        }
    }
}

/// The requests table's rows of `exchanges`.
fn requests_frame(exchanges: &[Exchange]) -> Result<DataFrame> {
    let text = |f: fn(&Exchange) -> &str| exchanges.iter().map(f).collect::<Vec<&str>>();
    let now = chrono::Utc::now().timestamp_millis();
    let received = Series::new(RECEIVED_AT_COLUMN.into(), vec![now; exchanges.len()])
        .cast(&polars::prelude::DataType::Datetime(polars::prelude::TimeUnit::Milliseconds, None))?;
    let frame = DataFrame::new(
        exchanges.len(),
        vec![
            Series::new(REQUEST_ID_COLUMN.into(), text(|e| e.request_id.as_str())).into_column(),
            Series::new(ENDPOINT_COLUMN.into(), text(|e| e.endpoint.as_str())).into_column(),
            Series::new(ROUTE_COLUMN.into(), text(|e| e.route.as_str())).into_column(),
            Series::new(SHADOW_COLUMN.into(), exchanges.iter().map(|e| e.shadow).collect::<Vec<_>>()).into_column(),
            Series::new(
                MODEL_NAME.into(),
                exchanges.iter().map(|e| e.model.as_ref().map(|(n, _)| n.as_str())).collect::<Vec<_>>(),
            )
            .into_column(),
            Series::new(
                MODEL_VERSION.into(),
                exchanges.iter().map(|e| e.model.as_ref().map(|(_, v)| *v as i64)).collect::<Vec<_>>(),
            )
            .into_column(),
            Series::new(STATUS_CODE_COLUMN.into(), exchanges.iter().map(|e| i32::from(e.status)).collect::<Vec<_>>())
                .into_column(),
            Series::new(
                EXECUTION_TIME_COLUMN.into(),
                exchanges.iter().map(|e| mlops_registry::telemetry::millis(e.execution_time)).collect::<Vec<_>>(),
            )
            .into_column(),
            Series::new(
                ERROR_COLUMN.into(),
                exchanges.iter().map(|e| e.outcome.as_ref().err().map(String::as_str)).collect::<Vec<_>>(),
            )
            .into_column(),
            Series::new(ROWS_COLUMN.into(), exchanges.iter().map(|e| e.input.height() as i64).collect::<Vec<_>>())
                .into_column(),
            received.into_column(),
        ],
    )?;
    Ok(frame)
}

/// The table rows of one exchange; `None` when it has no predictions.
fn captured_rows(exchange: Exchange) -> Option<Result<DataFrame>> {
    let outputs = exchange.outcome.ok()?;
    let (name, version) = exchange.model?;
    Some((|| {
        let mut frame = with_scoring_columns(&exchange.input, &outputs, &name, version)?;
        let height = frame.height();
        let execution_ms = mlops_registry::telemetry::millis(exchange.execution_time);
        for column in [
            Column::new_scalar(
                REQUEST_ID_COLUMN.into(),
                Scalar::from(polars::prelude::PlSmallStr::from(exchange.request_id.as_str())),
                height,
            ),
            Column::new_scalar(STATUS_CODE_COLUMN.into(), Scalar::from(i32::from(exchange.status)), height),
            Column::new_scalar(EXECUTION_TIME_COLUMN.into(), Scalar::from(execution_ms), height),
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
