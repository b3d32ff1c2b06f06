//! What scoring reports as it works: `tracing` spans and events, and metrics through the
//! `metrics` facade, under the stable names below. Nothing is printed or exported unless the
//! application installs a subscriber or a recorder; the server's `/metrics` route renders a
//! Prometheus recorder ([`ModelServer::prometheus`](crate::serve::ModelServer::prometheus),
//! feature `serve`). The registry's names are in `mlops_registry::telemetry`.
//!
//! | Span or event | Level | Fields |
//! |---|---|---|
//! | span `request` around each scoring request | debug (as tower-http's: enable `mlops_infer=debug` to trace requests) | `endpoint`, `request_id`, `route`, `model`, `version`, `format`, `rows`, `status`, `duration_ms`, `trace_id` and `parent_span_id` (from a valid `traceparent`) |
//! | event `request answered` / `request refused` / `request failed` | debug / debug / warn (5xx) | `status`, `duration_ms` |
//! | span `batch` around [`BatchScorer::score`](crate::BatchScorer::score) | debug | `model`, `version`, `rows`, `chunks`, `duration_ms` |
//! | span `stream_batch` around each micro-batch | info | `stream`, `batch`, `replayed`, `model`, `version`, `records`, `scored`, `dead_letters`, `poisoned`, `duration_ms` |
//! | event `batch set aside` (a poisoned batch) | warn | `stream`, `batch`, `error` |
//! | span `label_merge` around a merge of labels | info | `table`, `received`, `applied`, `pending`, `duration_ms` |
//! | event `capture write failed` | warn | `rows`, `error` |

/// Counter: rows scored by [`BatchScorer::score`](crate::BatchScorer::score), labelled
/// `model`.
pub const BATCH_ROWS: &str = "mlops_batch_rows_total";
/// Histogram: seconds a [`BatchScorer::score`](crate::BatchScorer::score) call took,
/// labelled `model`.
pub const BATCH_SECONDS: &str = "mlops_batch_duration_seconds";
/// Counter: micro-batches a stream committed, labelled `stream`.
pub const STREAM_BATCHES: &str = "mlops_stream_batches_total";
/// Counter: records a stream read, labelled `stream`.
pub const STREAM_RECORDS: &str = "mlops_stream_records_total";
/// Counter: records a stream scored and wrote, labelled `stream`.
pub const STREAM_SCORED: &str = "mlops_stream_scored_total";
/// Counter: records a stream set aside as dead letters, labelled `stream`.
pub const STREAM_DEAD_LETTERS: &str = "mlops_stream_dead_letters_total";
/// Histogram: seconds a micro-batch took from read to commit, labelled `stream`.
pub const STREAM_BATCH_SECONDS: &str = "mlops_stream_batch_duration_seconds";
/// Counter: labels received by label merges, labelled `table`.
pub const LABELS_RECEIVED: &str = "mlops_labels_received_total";
/// Counter: labels applied to predictions, labelled `table`.
pub const LABELS_APPLIED: &str = "mlops_labels_applied_total";
/// Gauge: labels waiting for their prediction after the last label merge or append,
/// labelled `table`.
pub const LABELS_PENDING: &str = "mlops_labels_pending";
/// Counter: pending labels removed by expiry, labelled `table`.
pub const LABELS_EXPIRED: &str = "mlops_labels_expired_total";
/// Histogram: seconds a label merge took, labelled `table`.
pub const LABEL_MERGE_SECONDS: &str = "mlops_label_merge_duration_seconds";
/// Counter: rows an inference capture appended to its table.
pub const CAPTURE_ROWS_WRITTEN: &str = "mlops_capture_rows_written_total";
/// Counter: exchanges an inference capture dropped because its queue was full.
pub const CAPTURE_DROPPED: &str = "mlops_capture_exchanges_dropped_total";
/// Counter: appends of an inference capture that failed.
pub const CAPTURE_WRITE_FAILURES: &str = "mlops_capture_write_failures_total";

/// Counter: requests answered, labelled `endpoint`, `route`, `status` and `format`
/// (`dataframe_split`, `dataframe_records`, `instances`, `inputs`, `csv`, or `json` and
/// the empty string for a body not read that far). `endpoint` is empty for an unknown
/// endpoint, `route` for a request no route scored.
pub const REQUESTS: &str = "mlops_serving_requests_total";
/// Histogram: seconds from a request's arrival to its answer (queueing included),
/// labelled `endpoint`, `route` and `status`.
pub const REQUEST_SECONDS: &str = "mlops_serving_request_duration_seconds";
/// Histogram: seconds the model took to predict a request, labelled `endpoint` and `route`.
pub const INFERENCE_SECONDS: &str = "mlops_serving_inference_duration_seconds";
/// Gauge: requests being answered now, labelled `endpoint`.
pub const IN_FLIGHT: &str = "mlops_serving_requests_in_flight";
/// Gauge: requests not scoring yet (waiting for body memory, being read, or waiting for a
/// scoring slot), labelled `endpoint`.
pub const QUEUED: &str = "mlops_serving_requests_queued";
/// Histogram: bytes of the request bodies read, labelled `endpoint`.
pub const BODY_BYTES: &str = "mlops_serving_request_body_bytes";
/// Counter: rows scored for callers, labelled `endpoint` and `route`.
pub const ROWS: &str = "mlops_serving_rows_total";
/// Counter: shadow predictions, labelled `endpoint`, `route` and `outcome` (`ok`,
/// `error`, `skipped` when the shadow limit was reached).
pub const SHADOW_PREDICTIONS: &str = "mlops_serving_shadow_predictions_total";
/// Gauge: the version a route serves (0 while none is loaded), labelled `endpoint`,
/// `route`, `model` and `shadow`. Set when `/metrics` is read.
pub const ROUTE_VERSION: &str = "mlops_serving_route_model_version";
/// Gauge: seconds since a route's model source last confirmed what its URI designates
/// (for sources that follow one, such as a `LiveModel`), labelled `endpoint` and `route`.
pub const ROUTE_SECONDS_SINCE_CONFIRMED: &str = "mlops_serving_route_seconds_since_confirmed";
/// Gauge: 1 while a route serves another version than its URI designates (the new one
/// failed to load), else 0; labelled `endpoint` and `route`.
pub const ROUTE_BEHIND: &str = "mlops_serving_route_behind_target";
/// Gauge: seconds since the version a route serves was swapped in, labelled `endpoint`
/// and `route`.
pub const ROUTE_SECONDS_SINCE_SWAP: &str = "mlops_serving_route_seconds_since_swap";
