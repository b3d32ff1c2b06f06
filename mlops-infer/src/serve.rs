//! Model serving (feature `serve`): an axum [`Router`] that speaks MLflow's scoring
//! protocol, for an app to mount in its own server.
//!
//! - `POST /invocations` (the default endpoint), `POST /invocations/{name}` and
//!   `POST /serving-endpoints/{name}/invocations` (the Databricks path) take every MLflow
//!   input: JSON with `dataframe_split`, `dataframe_records`, `instances` or `inputs` (and
//!   `params`), or CSV; the `Content-Type` decides. They answer `{"predictions": [..]}`, one
//!   record per input row, and say in the headers [`MODEL_NAME_HEADER`],
//!   [`MODEL_VERSION_HEADER`], [`ENDPOINT_HEADER`] and [`ROUTE_HEADER`] who answered.
//! - An [`Endpoint`] splits traffic between routes (percentages summing to 100), sticky by
//!   a header or an input column so a caller always meets the same version, and copies
//!   each request to shadow routes whose answers go to the [`ExchangeRecorder`] without
//!   delaying the caller.
//! - Errors are `{"error_code": .., "message": ..}`: 400 for malformed or schema-violating
//!   input (the message names the column), 413 for a body over the limit, 415 for another
//!   content type, 404 for an unknown endpoint or path, 503 while a model is not loaded.
//! - A request timeout (504) and a limit on requests scored at once (the others queue).
//! - Memory bounded by settings, not by callers: a body over the limit is refused (by its
//!   `Content-Length` before it is read), requests held at once share a memory budget
//!   that counts what parsing and scoring a body takes ([`ModelServer::body_memory_limit`]), shadow predictions run within their own limit
//!   ([`ModelServer::shadow_limit`]), the default recorder keeps a bounded number of bytes,
//!   and error messages are cut to [`MAX_MESSAGE_BYTES`]. A model that panics answers 500
//!   without the panic's message.
//! - [`serve`] runs the router on a TCP port with [`ServerSettings`]: a deadline for each
//!   request's headers that also closes idle keep-alive connections, a cap on open
//!   connections and on header size, and a graceful shutdown that lets requests in flight
//!   finish within a grace period. (`axum::serve` works too, without those limits.)
//! - `GET /ping` (the server is up; with [`ModelServer::ping_checks_readiness`], ready),
//!   `GET /health` (200 only when every endpoint has its model and no model source reports
//!   a problem, such as a [`LiveModel`] whose alias has not been confirmed for a while),
//!   `GET /version`.
//! - `GET /serving-endpoints` and `GET /serving-endpoints/{name}`: each endpoint's state
//!   (ready or not, and why), routes with their traffic share, the version each serves,
//!   shadow routes, and for a route that follows an alias its target, last swap and last
//!   refresh error. `GET /serving-endpoints/{name}/openapi`: an OpenAPI 3.1 document of
//!   the endpoint, generated from the signature it serves (every input format, the
//!   parameters, the answer, the error shape), with the model's input example as the
//!   example request.
//! - `GET /metrics` with [`ModelServer::prometheus`]: the Prometheus text format; every
//!   request also runs in a `request` span (see [`telemetry`]), with the
//!   id from [`REQUEST_ID_HEADER`] (or a new one, always answered) and the caller's
//!   `traceparent`.
//!
//! [`LiveModel`]: mlops_registry::LiveModel
//!
//! | Setting | Default | Where |
//! |---|---|---|
//! | request timeout | 60 s ([`DEFAULT_REQUEST_TIMEOUT`]) | [`ModelServer::request_timeout`] |
//! | requests scored at once | 64 ([`DEFAULT_CONCURRENCY_LIMIT`]) | [`ModelServer::concurrency_limit`] |
//! | body size | 16 MiB ([`DEFAULT_BODY_LIMIT`]) | [`ModelServer::body_limit`] |
//! | requests in memory (each [`BODY_MEMORY_FACTOR`] times its body) | 256 MiB ([`DEFAULT_BODY_MEMORY_LIMIT`]) | [`ModelServer::body_memory_limit`] |
//! | shadow predictions at once | 8 ([`DEFAULT_SHADOW_LIMIT`]) | [`ModelServer::shadow_limit`] |
//! | header read and idle timeout | 10 s ([`DEFAULT_HEADER_READ_TIMEOUT`]) | [`ServerSettings::header_read_timeout`] |
//! | open connections | 1024 ([`DEFAULT_MAX_CONNECTIONS`]) | [`ServerSettings::max_connections`] |
//! | request head size | 64 KiB ([`DEFAULT_MAX_HEADER_BYTES`]) | [`ServerSettings::max_header_bytes`] |
//! | shutdown grace | 30 s ([`DEFAULT_SHUTDOWN_GRACE`]) | [`ServerSettings::shutdown_grace`] |
//!
//! ```no_run
//! # async fn run(live: mlops_registry::LiveModel) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use mlops_infer::serve::{ModelServer, ServerSettings, serve};
//!
//! let app = ModelServer::new().endpoint("transactions", Arc::new(live))?.router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, app, ServerSettings::new(), std::future::pending()).await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "delta")]
mod capture;
mod endpoint;
mod error;
mod exporter;
mod listen;
mod meters;
mod openapi;
mod pace;
mod record;
mod request;
mod state;
mod trace_context;

/// The axum whose [`Router`] [`ModelServer::router`] returns: mount it, or
/// add routes and layers, through here to be on the same version.
pub use axum;
#[cfg(feature = "delta")]
pub use capture::{
    CaptureBuilder, CaptureStats, DEFAULT_CAPTURE_BATCH_ROWS, DEFAULT_CAPTURE_FLUSH, DEFAULT_CAPTURE_QUEUE,
    ENDPOINT_COLUMN, ERROR_COLUMN, EXECUTION_TIME_COLUMN, InferenceCapture, RECEIVED_AT_COLUMN, REQUEST_ID_COLUMN,
    ROUTE_COLUMN, ROWS_COLUMN, SHADOW_COLUMN, STATUS_CODE_COLUMN,
};
pub use endpoint::{Endpoint, EndpointBuilder, StickyKey};
pub use error::{MAX_MESSAGE_BYTES, ServeError};
pub use exporter::{BODY_BUCKETS, LATENCY_BUCKETS, prometheus_builder};
pub use listen::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_SHUTDOWN_GRACE,
    ServerSettings, serve,
};
/// The Prometheus exporter whose handle [`ModelServer::prometheus`] takes, re-exported to be
/// on the same version.
pub use metrics_exporter_prometheus;
/// Re-exported from `mlops_registry`, where streams take them too.
pub use mlops_registry::{ModelSlot, ModelSource};
pub use pace::DEFAULT_INLINE_SCORING_LIMIT;
pub use record::{Exchange, ExchangeRecorder, MemoryRecorder};
pub use request::INPUT_FORMATS;
pub use trace_context::{TRACEPARENT_HEADER, TraceParent};

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use mlops_core::features::{FeatureFunctions, FeatureTables};
use mlops_core::{write_columns_json, write_records_json};
use mlops_registry::LoadedModel;
use polars::prelude::DataFrame;
use tokio::sync::Semaphore;
use tracing::Instrument;
use tracing::field::Empty;

use crate::error::{Error, Result};
use crate::feature_store::FeatureStore;
use crate::telemetry;
use request::BodyFormat;

/// Header naming the model that answered.
pub const MODEL_NAME_HEADER: &str = "x-mlops-model-name";
/// Header giving the version that answered.
pub const MODEL_VERSION_HEADER: &str = "x-mlops-model-version";
/// Header naming the endpoint that answered.
pub const ENDPOINT_HEADER: &str = "x-mlops-endpoint";
/// Header naming the route of the endpoint that answered.
pub const ROUTE_HEADER: &str = "x-mlops-route";
/// Header carrying a request's id: the caller's, when it sends a usable one (visible
/// ASCII, at most [`MAX_REQUEST_ID_BYTES`]), or one the server makes; always answered.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The longest request id taken from a caller.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// Default time a request may take, queueing included (as MLflow's scoring server).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of requests scored at once; others wait their turn.
pub const DEFAULT_CONCURRENCY_LIMIT: usize = 64;
/// How many exchanges the default recorder keeps.
pub const DEFAULT_RECORDER_CAPACITY: usize = 10_000;
/// How many bytes of exchanges the default recorder keeps.
pub const DEFAULT_RECORDER_BYTES: usize = 64 * 1024 * 1024;
/// Default largest request body: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Default memory of requests held at once, queued and scoring together: 256 MiB, each
/// request counted as [`BODY_MEMORY_FACTOR`] times its body.
pub const DEFAULT_BODY_MEMORY_LIMIT: usize = 256 * 1024 * 1024;
/// What a request costs in memory while it is parsed and scored, as a multiple of its body:
/// the parsed JSON, the input frame, the predictions and their shadow copies. Measured: a
/// 13 MiB body of `dataframe_records` raised the server's peak memory by 170 MiB.
pub const BODY_MEMORY_FACTOR: usize = 12;
/// Default number of shadow predictions running at once; a copy for a shadow route finding
/// them all busy is skipped (and recorded as skipped).
pub const DEFAULT_SHADOW_LIMIT: usize = 8;

/// Body memory is counted in units of this many bytes, so a budget of any size fits the
/// semaphore's permit counts.
const BODY_MEMORY_UNIT: usize = 1024;

/// The endpoints of a scoring server and their settings; [`router`](Self::router) builds
/// the axum router.
#[derive(Clone)]
pub struct ModelServer {
    endpoints: BTreeMap<String, Arc<Endpoint>>,
    default_endpoint: Option<String>,
    body_limit: usize,
    body_memory: Arc<Semaphore>,
    body_memory_units: usize,
    recorder: Arc<dyn ExchangeRecorder>,
    request_timeout: Duration,
    scoring: Arc<Semaphore>,
    shadows: Arc<Semaphore>,
    capture_rate: f64,
    answered: Arc<std::sync::atomic::AtomicU64>,
    prometheus: Option<PrometheusHandle>,
    ping_checks_readiness: bool,
    join_trace: Option<Arc<JoinTrace>>,
    /// The metric handles of requests to no endpoint.
    unrouted: Arc<std::sync::OnceLock<meters::EndpointMeters>>,
    features: Option<(Arc<dyn FeatureStore>, FeatureFunctions)>,
    inline_limit: Duration,
}

/// The feature tables and functions a request's lookups use.
struct Lookups {
    tables: FeatureTables,
    functions: FeatureFunctions,
}

/// What [`ModelServer::join_trace`] calls to make a request's span a child of its caller's.
type JoinTrace = dyn Fn(&tracing::Span, &TraceParent) + Send + Sync;

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer")
            .field("endpoints", &self.endpoints.keys().collect::<Vec<_>>())
            .field("default_endpoint", &self.default_endpoint)
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl Default for ModelServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelServer {
    /// A server with no endpoint and a [`DEFAULT_BODY_LIMIT`].
    pub fn new() -> Self {
        Self {
            endpoints: BTreeMap::new(),
            default_endpoint: None,
            body_limit: DEFAULT_BODY_LIMIT,
            body_memory: Arc::new(Semaphore::new(DEFAULT_BODY_MEMORY_LIMIT / BODY_MEMORY_UNIT)),
            body_memory_units: DEFAULT_BODY_MEMORY_LIMIT / BODY_MEMORY_UNIT,
            recorder: Arc::new(MemoryRecorder::new(DEFAULT_RECORDER_CAPACITY).with_byte_limit(DEFAULT_RECORDER_BYTES)),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            scoring: Arc::new(Semaphore::new(DEFAULT_CONCURRENCY_LIMIT)),
            shadows: Arc::new(Semaphore::new(DEFAULT_SHADOW_LIMIT)),
            capture_rate: 0.0,
            answered: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            prometheus: None,
            ping_checks_readiness: false,
            join_trace: None,
            unrouted: Arc::new(std::sync::OnceLock::new()),
            features: None,
            inline_limit: pace::DEFAULT_INLINE_SCORING_LIMIT,
        }
    }

    /// Adds endpoint `name`: an [`Endpoint`] with routes, or a model source (which becomes
    /// its only route, `default`). The first endpoint added also answers
    /// `POST /invocations`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that is empty, has a `/`, or is taken.
    pub fn endpoint(mut self, name: impl Into<String>, endpoint: impl Into<Endpoint>) -> Result<Self> {
        let name = name.into();
        if name.is_empty() || name.contains('/') {
            return Err(Error::InvalidArgument(format!("endpoint name `{name}` must be one non-empty path part")));
        }
        if self.endpoints.contains_key(&name) {
            return Err(Error::InvalidArgument(format!("endpoint `{name}` is defined twice")));
        }
        self.default_endpoint.get_or_insert_with(|| name.clone());
        self.endpoints.insert(name, Arc::new(endpoint.into()));
        Ok(self)
    }

    /// Answers 504 to a request not answered within `timeout` (waiting for a scoring slot
    /// included). A prediction already running finishes in the background.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Scores at most `requests` requests at once; the others wait for a slot (within the
    /// request timeout), so a burst queues instead of exhausting threads and memory.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn concurrency_limit(mut self, requests: usize) -> Result<Self> {
        if requests == 0 {
            return Err(Error::InvalidArgument("the concurrency limit must be at least 1".into()));
        }
        self.scoring = Arc::new(Semaphore::new(requests));
        Ok(self)
    }

    /// Scores a request on the async worker, without handing it to the blocking pool, when
    /// its body is at most 16 KiB and every route of its endpoint is expected to score it
    /// within `limit` (reading it, predicting and writing the answer) with the model it
    /// holds now, judged by the last small request it scored (in proportion to the body's
    /// size when this one is larger); by default [`DEFAULT_INLINE_SCORING_LIMIT`]. Small requests to fast models
    /// then skip two thread wake-ups; a model that has not shown it is fast, a new version
    /// included, is scored in the pool. `Duration::ZERO` scores every request in the pool.
    #[must_use]
    pub fn inline_scoring_limit(mut self, limit: Duration) -> Self {
        self.inline_limit = limit;
        self
    }

    /// Runs at most `predictions` shadow predictions at once (they take CPU from the
    /// callers' requests); a shadow copy finding them all busy is not scored, and the
    /// recorder gets it as skipped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn shadow_limit(mut self, predictions: usize) -> Result<Self> {
        if predictions == 0 {
            return Err(Error::InvalidArgument("the shadow limit must be at least 1".into()));
        }
        self.shadows = Arc::new(Semaphore::new(predictions));
        Ok(self)
    }

    /// Holds at most `bytes` of requests in memory at once, counting requests waiting for a
    /// scoring slot and requests being scored, each as [`BODY_MEMORY_FACTOR`] times its body
    /// (what parsing and scoring it takes): a request that would go over waits (within the
    /// request timeout) before its body is read, and one larger than the whole budget waits
    /// for it all. A body without a `Content-Length` counts as the body limit.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a budget under 1 KiB.
    pub fn body_memory_limit(mut self, bytes: usize) -> Result<Self> {
        let units = bytes / BODY_MEMORY_UNIT;
        if units == 0 {
            return Err(Error::InvalidArgument(format!("a body memory limit of {bytes} bytes is under 1 KiB")));
        }
        let units = units.min(Semaphore::MAX_PERMITS);
        self.body_memory = Arc::new(Semaphore::new(units));
        self.body_memory_units = units;
        Ok(self)
    }

    /// Also sends a `rate` share (0 to 1) of the requests to the recorder, chosen evenly
    /// over requests, failed ones included (with their status and error message, and their
    /// rows when they were read); with an [`InferenceCapture`] recorder (feature `delta`)
    /// they land in an inference table. Shadow answers are always recorded.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a rate outside 0 to 1.
    pub fn capture(mut self, rate: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::InvalidArgument(format!("the capture rate must be between 0 and 1, not {rate}")));
        }
        self.capture_rate = rate;
        Ok(self)
    }

    /// Sends shadow answers to `recorder` (by default a [`MemoryRecorder`] keeping the
    /// latest [`DEFAULT_RECORDER_CAPACITY`] exchanges within [`DEFAULT_RECORDER_BYTES`]).
    #[must_use]
    pub fn recorder(mut self, recorder: Arc<dyn ExchangeRecorder>) -> Self {
        self.recorder = recorder;
        self
    }

    /// Looks up the features of models whose package records feature lookups in `store`
    /// (with `functions` for on-demand features), so a request carries only the keys and
    /// raw inputs, as a stream's records do: the same point-in-time rules, and a record
    /// whose keys find no features is refused with 400, naming the record. Give it a
    /// [`FeatureCache`](crate::FeatureCache) to keep the tables in memory: the store is
    /// asked on every request. Without a store, such requests must carry the features.
    #[must_use]
    pub fn features(mut self, store: Arc<dyn FeatureStore>, functions: FeatureFunctions) -> Self {
        self.features = Some((store, functions));
        self
    }

    /// Refuses bodies over `bytes` with 413.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Adds `GET /metrics`: what `handle`'s recorder holds, in Prometheus's text format,
    /// after setting the gauges of what every route serves (see [`telemetry`] for the
    /// names). Install the recorder once per process, with
    /// [`prometheus_builder`] for this crate's histogram buckets.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mlops_infer::serve::{ModelServer, ModelSlot, prometheus_builder};
    ///
    /// let recorder = prometheus_builder().build_recorder(); // or `.install_recorder()?`
    /// let app = ModelServer::new()
    ///     .endpoint("transactions", Arc::new(ModelSlot::empty()))?
    ///     .prometheus(recorder.handle())
    ///     .router();
    /// # drop(app);
    /// # Ok::<(), mlops_infer::Error>(())
    /// ```
    #[must_use]
    pub fn prometheus(mut self, handle: PrometheusHandle) -> Self {
        self.prometheus = Some(handle);
        self
    }

    /// Makes `GET /ping` a readiness check, as MLflow's and SageMaker's scoring servers
    /// use it: 200 only when every endpoint has its model (and nothing is wrong with its
    /// sources), as `/health`. By default `/ping` says only that the server is up.
    #[must_use]
    pub fn ping_checks_readiness(mut self) -> Self {
        self.ping_checks_readiness = true;
        self
    }

    /// Calls `join` with each request's span and the caller's valid `traceparent`, so an
    /// OpenTelemetry layer can make the span a child of the caller's (the span also
    /// records `trace_id` and `parent_span_id`). With `tracing-opentelemetry`:
    ///
    /// ```text
    /// server.join_trace(|span, parent| {
    ///     use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    ///     use tracing_opentelemetry::OpenTelemetrySpanExt;
    ///     let remote = SpanContext::new(
    ///         TraceId::from_bytes(parent.trace_id),
    ///         SpanId::from_bytes(parent.parent_id),
    ///         TraceFlags::new(parent.flags),
    ///         true,
    ///         TraceState::default(),
    ///     );
    ///     span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    /// })
    /// ```
    #[must_use]
    pub fn join_trace(mut self, join: impl Fn(&tracing::Span, &TraceParent) + Send + Sync + 'static) -> Self {
        self.join_trace = Some(Arc::new(join));
        self
    }

    /// The router: mount it in an app, or serve it as it is.
    pub fn router(self) -> Router {
        let mut router = Router::new()
            .route("/invocations", post(default_invocations))
            .route("/invocations/{name}", post(named_invocations))
            .route("/serving-endpoints/{name}/invocations", post(named_invocations))
            .route("/serving-endpoints", get(state::list_endpoints))
            .route("/serving-endpoints/{name}", get(state::endpoint_state))
            .route("/serving-endpoints/{name}/openapi", get(openapi::endpoint_openapi))
            .route("/ping", get(ping))
            .route("/health", get(health))
            .route("/version", get(version));
        if self.prometheus.is_some() {
            router = router.route("/metrics", get(metrics_text));
        }
        router.fallback(unknown_path).with_state(Arc::new(self))
    }

    /// Answers one scoring request inside its span, and records how it went.
    async fn invoke(&self, name: &str, headers: &HeaderMap, body: Body) -> Response {
        let started = Instant::now();
        // Labels only ever carry configured endpoint names, so a caller cannot grow them.
        let (endpoint, meters) = match self.endpoints.get(name) {
            Some(configured) => (name, configured.meters(name)),
            None => ("", self.unrouted.get_or_init(|| meters::EndpointMeters::new("", Vec::new()))),
        };
        let request_id = request_id(headers);
        // Debug, as tower-http's request spans: a subscriber at info pays nothing per request,
        // one at debug (or an OpenTelemetry layer enabled for this crate) traces each one.
        let span = tracing::debug_span!(
            "request",
            endpoint,
            request_id = %request_id.to_str().unwrap_or_default(),
            route = Empty,
            model = Empty,
            version = Empty,
            format = Empty,
            rows = Empty,
            status = Empty,
            duration_ms = Empty,
            trace_id = Empty,
            parent_span_id = Empty,
        );
        if let Some(parent) = TraceParent::from_headers(headers) {
            span.record("trace_id", parent.trace_id_hex());
            span.record("parent_span_id", parent.parent_id_hex());
            if let Some(join) = &self.join_trace {
                join(&span, &parent);
            }
        }
        let _in_flight = exporter::Raised::new(&meters.in_flight);
        let mut facts = Facts { request_id: request_id.to_str().unwrap_or_default().to_owned(), ..Facts::default() };
        let answer = tokio::time::timeout(self.request_timeout, self.answer(name, headers, body, &mut facts))
            .instrument(span.clone())
            .await;
        let failed = |error: ServeError, facts: &mut Facts| {
            facts.error = Some(error.message.clone());
            error.into_response()
        };
        let mut response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => failed(error, &mut facts),
            Err(_) => failed(
                ServeError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "DEADLINE_EXCEEDED",
                    format!("the request was not answered within {:?}", self.request_timeout),
                ),
                &mut facts,
            ),
        };
        response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        let duration_ms = mlops_registry::telemetry::millis(elapsed);
        span.record("status", status);
        span.record("duration_ms", duration_ms);
        span.record("format", facts.format);
        if let Some((model, version)) = &facts.model {
            span.record("model", model.as_str());
            span.record("version", *version);
        }
        if let Some(rows) = facts.rows {
            span.record("rows", rows);
        }
        if let Some(route) = &facts.route {
            span.record("route", route.as_str());
        }
        span.in_scope(|| match status {
            500.. => tracing::warn!(status, duration_ms, "request failed"),
            400.. => tracing::debug!(status, duration_ms, "request refused"),
            _ => tracing::debug!(status, duration_ms, "request answered"),
        });
        if !endpoint.is_empty() {
            self.record_exchange(endpoint, status, elapsed, &mut facts);
        }
        meters.record_outcome(facts.route_index, status_label(status), facts.format, elapsed.as_secs_f64());
        response
    }

    /// The feature tables the endpoint's model looks up, when the server has a feature
    /// store and the model records lookups.
    async fn lookups(&self, endpoint: &Endpoint) -> std::result::Result<Option<Lookups>, ServeError> {
        let Some((store, functions)) = &self.features else { return Ok(None) };
        let spec = endpoint.routes.iter().find_map(|r| r.source.current()).and_then(|l| l.model.features().cloned());
        let Some(spec) = spec else { return Ok(None) };
        let tables = store.tables(&spec.tables()).await.map_err(|e| {
            ServeError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                format!("the feature tables are not available: {e}"),
            )
        })?;
        Ok(Some(Lookups { tables, functions: functions.clone() }))
    }

    /// Sends the capture rate's share of the requests, failed ones too, to the recorder.
    fn record_exchange(&self, endpoint: &str, status: u16, elapsed: Duration, facts: &mut Facts) {
        if self.capture_rate <= 0.0 {
            return;
        }
        let request = self.answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if endpoint::draw(request) >= self.capture_rate {
            return;
        }
        let scored = facts.scored.take();
        let latency = scored.as_ref().map_or(Duration::ZERO, |s| s.latency);
        let (input, outcome) = match scored {
            Some(scored) if status == 200 => (scored.input, Ok(scored.output)),
            scored => (
                scored.map_or_else(DataFrame::empty, |s| s.input),
                Err(facts.error.take().unwrap_or_else(|| format!("answered HTTP {status}"))),
            ),
        };
        self.recorder.record(Exchange {
            request_id: std::mem::take(&mut facts.request_id),
            endpoint: endpoint.to_owned(),
            route: facts.route.clone().unwrap_or_default(),
            shadow: false,
            model: facts.model.clone(),
            input,
            outcome,
            status,
            latency,
            execution_time: elapsed,
        });
    }

    async fn answer(
        &self,
        name: &str,
        headers: &HeaderMap,
        body: Body,
        facts: &mut Facts,
    ) -> std::result::Result<Response, ServeError> {
        let endpoint = self.endpoints.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.endpoints.keys().map(String::as_str).collect();
            ServeError::not_found(format!("no endpoint `{name}` (endpoints: {})", known.join(", ")))
        })?;
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let format = BodyFormat::from_content_type(content_type)?;
        facts.format = format.label();
        let too_large = || {
            ServeError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_LIMIT_EXCEEDED",
                format!("the body is larger than the limit of {} bytes", self.body_limit),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.body_limit as u64) {
            return Err(too_large());
        }
        // The request's share of the memory budget is taken before its body is read and kept
        // until its prediction ends, so queued and scoring requests together stay within it.
        let expected = declared.map_or(self.body_limit, |length| length as usize);
        let units =
            expected.saturating_mul(BODY_MEMORY_FACTOR).div_ceil(BODY_MEMORY_UNIT).clamp(1, self.body_memory_units);
        let meters = endpoint.meters(name);
        let queued = exporter::Raised::new(&meters.queued);
        let memory =
            Arc::clone(&self.body_memory).acquire_many_owned(u32::try_from(units).unwrap_or(u32::MAX)).await.map_err(
                |e| ServeError::new(StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", e.to_string()),
            )?;
        let body = axum::body::to_bytes(body, self.body_limit).await.map_err(|_| too_large())?;
        meters.body_bytes.record(body.len() as f64);
        // The slot is held until the prediction ends, even if the caller has timed out.
        let slot = Arc::clone(&self.scoring)
            .acquire_owned()
            .await
            .map_err(|e| ServeError::new(StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", e.to_string()))?;
        drop(queued);
        let lookups = self.lookups(endpoint).await?;
        let (scoring, sticky_header, endpoint_name) =
            (Arc::clone(endpoint), endpoint.sticky_header(headers), name.to_owned());
        let span = tracing::Span::current();
        let inline = lookups.is_none()
            && body.len() <= pace::INLINE_BODY_BYTES
            && endpoint.scores_within(self.inline_limit, body.len());
        let work = move || {
            let _held = (slot, memory);
            span.in_scope(|| score(&endpoint_name, &scoring, sticky_header, format, &body, lookups.as_ref()))
        };
        let failed = || ServeError::internal("the model failed unexpectedly while scoring this request");
        let scored = if inline {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| failed())?
        } else {
            tokio::task::spawn_blocking(work).await.map_err(|_| failed())?
        }?;
        facts.format = scored.format;
        facts.route = Some(scored.route.clone());
        facts.route_index = Some(scored.route_index);
        facts.model = Some((scored.loaded.version.name.to_string(), scored.loaded.version.version));
        facts.rows = Some(scored.input.height());
        if let Some((inference, rows)) = meters.route(scored.route_index) {
            inference.record(scored.latency.as_secs_f64());
            rows.increment(scored.input.height() as u64);
        }
        if self.capture_rate > 0.0 {
            facts.scored =
                Some(Captured { input: scored.input.clone(), output: scored.output.clone(), latency: scored.latency });
        }
        for shadow in &endpoint.shadows {
            let request_id = facts.request_id.clone();
            let (recorder, input) = (Arc::clone(&self.recorder), scored.input.clone());
            let (endpoint, route, source) = (name.to_owned(), shadow.name.clone(), Arc::clone(&shadow.source));
            let Ok(slot) = Arc::clone(&self.shadows).try_acquire_owned() else {
                shadow_outcome(&endpoint, &route, "skipped");
                recorder.record(Exchange {
                    request_id,
                    endpoint,
                    route,
                    shadow: true,
                    model: None,
                    input,
                    outcome: Err("skipped: the shadow limit was reached".into()),
                    status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
                    latency: Duration::ZERO,
                    execution_time: Duration::ZERO,
                });
                continue;
            };
            // Detached: the caller's answer never waits for a shadow.
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let started = Instant::now();
                let loaded = source.current();
                let outcome = match &loaded {
                    Some(loaded) => {
                        mlops_core::catching_panics(&format!("shadow route `{route}`"), || loaded.model.predict(&input))
                            .map_err(|e| e.to_string())
                    }
                    None => Err(format!("route `{route}` has no model loaded")),
                };
                shadow_outcome(&endpoint, &route, if outcome.is_ok() { "ok" } else { "error" });
                let status = if outcome.is_ok() { StatusCode::OK } else { StatusCode::INTERNAL_SERVER_ERROR };
                let latency = started.elapsed();
                recorder.record(Exchange {
                    request_id,
                    endpoint,
                    route,
                    shadow: true,
                    model: loaded.map(|l| (l.version.name.to_string(), l.version.version)),
                    input,
                    outcome,
                    status: status.as_u16(),
                    latency,
                    execution_time: latency,
                });
            });
        }
        let mut response = ([(header::CONTENT_TYPE, "application/json")], scored.json).into_response();
        let headers = response.headers_mut();
        for (key, value) in [
            (MODEL_NAME_HEADER, scored.loaded.version.name.to_string()),
            (MODEL_VERSION_HEADER, scored.loaded.version.version.to_string()),
            (ENDPOINT_HEADER, name.to_owned()),
            (ROUTE_HEADER, scored.route),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(key, value);
            }
        }
        Ok(response)
    }
}

/// What a request's span, metrics and capture say about it, learnt as it is answered.
#[derive(Default)]
struct Facts {
    request_id: String,
    format: &'static str,
    route: Option<String>,
    route_index: Option<usize>,
    model: Option<(String, u64)>,
    rows: Option<usize>,
    /// The input and predictions, kept when requests are captured.
    scored: Option<Captured>,
    /// The message answered with an error status.
    error: Option<String>,
}

/// What a capture records of a scored request.
struct Captured {
    input: DataFrame,
    output: DataFrame,
    latency: Duration,
}

/// The caller's request id when usable, else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty() && bytes.len() <= MAX_REQUEST_ID_BYTES && bytes.iter().all(|b| b.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            // A v4 UUID's text is always a valid header value.
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or(HeaderValue::from_static("unknown"))
        })
}

/// A status as a label without allocating.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        404 => "404",
        413 => "413",
        415 => "415",
        500 => "500",
        503 => "503",
        504 => "504",
        _ if status < 300 => "2xx",
        _ if status < 500 => "4xx",
        _ => "5xx",
    }
}

fn shadow_outcome(endpoint: &str, route: &str, outcome: &'static str) {
    metrics::counter!(telemetry::SHADOW_PREDICTIONS, "endpoint" => endpoint.to_owned(), "route" => route.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// A request scored by one route.
struct Scored {
    format: &'static str,
    route: String,
    route_index: usize,
    loaded: Arc<LoadedModel>,
    input: DataFrame,
    output: DataFrame,
    latency: Duration,
    /// The answer's body.
    json: Vec<u8>,
}

/// Bytes reserved per predicted cell for an answer, so most answers are written without
/// growing their buffer.
const ANSWER_BYTES_PER_CELL: usize = 24;
/// The most reserved up front for an answer; a larger one grows as it is written.
const MAX_ANSWER_RESERVE: usize = 16 * 1024 * 1024;

fn not_loaded(what: String) -> ServeError {
    ServeError::new(StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", what)
}

/// What a request to `loaded` carries: without the looked-up features when a feature store
/// supplies them.
fn request_schema(loaded: &LoadedModel, lookups: Option<&Lookups>) -> mlops_core::Schema {
    let inputs = &loaded.model.signature().inputs;
    match (lookups, loaded.model.features()) {
        (Some(_), Some(spec)) => spec.raw_inputs(inputs),
        _ => inputs.clone(),
    }
}

/// The request's records joined with their features; a record whose keys find none is
/// refused, named as a stream names its dead letters.
fn with_features(
    records: DataFrame,
    spec: &mlops_core::features::FeatureSpec,
    lookups: &Lookups,
    inputs: &mlops_core::Schema,
) -> std::result::Result<DataFrame, ServeError> {
    // Only the rows the records' keys meet are joined, through each table's key index.
    let tables = spec.tables_for(&records, &lookups.tables)?;
    let augmented = spec.augment(&records, &tables, &lookups.functions)?;
    let (_, incomplete) =
        crate::stream::records::split_valid(&augmented, inputs).map_err(|e| ServeError::bad_request(e.to_string()))?;
    if let Some((row, reason)) = incomplete.first() {
        let record = crate::stream::records::record_json(&records, *row);
        return Err(ServeError::bad_request(format!(
            "record {row} {record} has no features for its keys ({} of {} records): {reason}",
            incomplete.len(),
            records.height()
        )));
    }
    Ok(augmented)
}

/// Parses a request body, picks its route, and scores it; the JSON answer.
fn score(
    name: &str,
    endpoint: &Endpoint,
    sticky_header: Option<String>,
    format: BodyFormat,
    body: &[u8],
    lookups: Option<&Lookups>,
) -> std::result::Result<Scored, ServeError> {
    let began = Instant::now();
    // The body is read with the schema of a loaded route (routes of one endpoint normally
    // share it), so a sticky column can be read before the route is chosen.
    let reader = endpoint
        .routes
        .iter()
        .find_map(|r| r.source.current())
        .ok_or_else(|| not_loaded(format!("the model of endpoint `{name}` is not loaded yet")))?;
    let reading = request_schema(&reader, lookups);
    let mut request = request::parse(format, body, &reading)?;
    let route = endpoint.pick(endpoint.sticky_value(sticky_header, &request.input).as_deref());
    let loaded = route
        .source
        .current()
        .ok_or_else(|| not_loaded(format!("route `{}` of endpoint `{name}` is not loaded yet", route.name)))?;
    let signature = loaded.model.signature();
    let schema = request_schema(&loaded, lookups);
    if schema != reading {
        request = request::parse(format, body, &schema)?;
    }
    signature.resolve_params(&request.params)?;
    if let (Some(lookups), Some(spec)) = (lookups, loaded.model.features()) {
        request.input = with_features(request.input, spec, lookups, &signature.inputs)?;
    }
    let started = Instant::now();
    let output = loaded.model.predict(&request.input)?;
    let latency = started.elapsed();
    if output.height() != request.input.height() {
        return Err(ServeError::internal(format!(
            "the model returned {} rows for {} input rows",
            output.height(),
            request.input.height()
        )));
    }
    // MLflow answers tensors (a dictionary of arrays from pyfunc) by output, frames by row.
    let cells = output.height().saturating_mul(output.width());
    let mut json = Vec::with_capacity(cells.saturating_mul(ANSWER_BYTES_PER_CELL).min(MAX_ANSWER_RESERVE) + 32);
    json.extend_from_slice(br#"{"predictions":"#);
    if signature.inputs.is_tensor_schema() {
        write_columns_json(&output, &mut json)?;
    } else {
        write_records_json(&output, &mut json)?;
    }
    json.push(b'}');
    if body.len() <= pace::INLINE_BODY_BYTES {
        route.pace.record(&loaded, began.elapsed(), body.len());
    }
    Ok(Scored {
        format: request.format,
        route_index: endpoint.routes.iter().position(|r| std::ptr::eq(r, route)).unwrap_or_default(),
        route: route.name.clone(),
        loaded,
        input: request.input,
        output,
        latency,
        json,
    })
}

async fn default_invocations(State(server): State<Arc<ModelServer>>, headers: HeaderMap, body: Body) -> Response {
    match server.default_endpoint.clone() {
        Some(name) => server.invoke(&name, &headers, body).await,
        None => ServeError::not_found("this server has no endpoint").into_response(),
    }
}

async fn named_invocations(
    State(server): State<Arc<ModelServer>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    server.invoke(&name, &headers, body).await
}

async fn ping(State(server): State<Arc<ModelServer>>) -> Response {
    if server.ping_checks_readiness {
        return health(State(server)).await;
    }
    ([(header::CONTENT_TYPE, "application/json")], "\n").into_response()
}

async fn metrics_text(State(server): State<Arc<ModelServer>>) -> Response {
    let Some(handle) = &server.prometheus else {
        return ServeError::not_found("this server exports no metrics").into_response();
    };
    for (name, endpoint) in &server.endpoints {
        exporter::record_routes(name, endpoint);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
}

async fn health(State(server): State<Arc<ModelServer>>) -> Response {
    let mut waiting = Vec::new();
    let mut problems = Vec::new();
    for (name, endpoint) in &server.endpoints {
        for route in &endpoint.routes {
            if route.source.current().is_none() {
                waiting.push(format!("{name}/{}", route.name));
            } else if let Some(problem) = route.source.problem() {
                problems.push(format!("{name}/{}: {problem}", route.name));
            }
        }
    }
    if waiting.is_empty() && problems.is_empty() {
        return ([(header::CONTENT_TYPE, "application/json")], "\n").into_response();
    }
    let mut why = Vec::new();
    if !waiting.is_empty() {
        why.push(format!("not loaded yet: {}", waiting.join(", ")));
    }
    why.extend(problems);
    ServeError::new(StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", why.join("; ")).into_response()
}

async fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

async fn unknown_path(uri: axum::http::Uri) -> Response {
    ServeError::not_found(format!("no route for `{}`", uri.path())).into_response()
}
