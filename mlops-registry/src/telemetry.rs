//! What the registry reports as it works: `tracing` spans and events, and metrics through
//! the `metrics` facade, under the stable names below. Nothing is printed or exported unless
//! the application installs a subscriber or a recorder.
//!
//! | Span or event | Level | Fields |
//! |---|---|---|
//! | span `registry` around every backend call | debug | `backend` (`memory`, `object_store`, `mlflow`), `operation`, `model`, `version`, `alias`, then `duration_ms` and `outcome` |
//! | span `live_model` around a load or a refresh | debug | `uri` |
//! | event `model loaded` (a [`LiveModel`](crate::LiveModel) started) | info | `uri`, `model`, `version`, `duration_ms` |
//! | event `model swapped` (an alias moved) | info | `uri`, `model`, `from_version`, `to_version`, `duration_ms` |
//! | event `refresh failed` (the old version keeps serving) | warn | `uri`, `version`, `error` |
//! | event `webhook attempt` | debug (warn when it failed) | `receiver` (the URL's origin), `event`, `delivery_id`, `attempt`, `outcome` (`delivered`, `retry`, `failed`), `error` |
//!
//! `outcome` is `ok` or the error's kind ([`Error::kind`](crate::Error::kind)).

use std::future::Future;
use std::time::Instant;

use mlops_core::ModelName;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::Result;

/// Counter: registry operations, labelled `backend`, `operation` and `outcome`.
pub const REGISTRY_OPERATIONS: &str = "mlops_registry_operations_total";
/// Histogram: seconds a registry operation took, labelled `backend` and `operation`.
pub const REGISTRY_OPERATION_SECONDS: &str = "mlops_registry_operation_duration_seconds";
/// Counter: versions a [`LiveModel`](crate::LiveModel) swapped in, labelled `uri`.
pub const LIVE_MODEL_SWAPS: &str = "mlops_live_model_swaps_total";
/// Counter: refreshes of a [`LiveModel`](crate::LiveModel) that failed, labelled `uri`.
pub const LIVE_MODEL_REFRESH_FAILURES: &str = "mlops_live_model_refresh_failures_total";
/// Gauge: the version a [`LiveModel`](crate::LiveModel) serves, labelled `uri`.
pub const LIVE_MODEL_VERSION: &str = "mlops_live_model_version";
/// Gauge: the Unix time, in seconds, at which a [`LiveModel`](crate::LiveModel) last
/// confirmed what its URI designates, labelled `uri` (alert on `time() - this`).
pub const LIVE_MODEL_CONFIRMED_AT: &str = "mlops_live_model_confirmed_timestamp_seconds";
/// Counter: webhook delivery attempts, labelled `outcome` (`delivered`, `retry`, `failed`).
pub const WEBHOOK_ATTEMPTS: &str = "mlops_webhook_attempts_total";

/// One backend call being observed: its span, and the labels its metrics carry.
pub(crate) struct Traced {
    backend: &'static str,
    operation: &'static str,
    span: Span,
}

/// Starts observing `operation` on `backend`.
pub(crate) fn traced(backend: &'static str, operation: &'static str) -> Traced {
    let span = tracing::debug_span!(
        "registry",
        backend,
        operation,
        model = Empty,
        version = Empty,
        alias = Empty,
        duration_ms = Empty,
        outcome = Empty,
    );
    Traced { backend, operation, span }
}

impl Traced {
    pub(crate) fn model(self, name: &ModelName) -> Self {
        self.span.record("model", name.as_str());
        self
    }

    /// The model when there is one (a search may span every model).
    pub(crate) fn maybe_model(self, name: Option<&ModelName>) -> Self {
        match name {
            Some(name) => self.model(name),
            None => self,
        }
    }

    pub(crate) fn version(self, version: u64) -> Self {
        self.span.record("version", version);
        self
    }

    pub(crate) fn alias(self, alias: &str) -> Self {
        self.span.record("alias", alias);
        self
    }

    /// Runs `work` inside the span, then records its duration and outcome on the span, in
    /// an event and in the metrics.
    pub(crate) async fn run<T>(self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let outcome = work.instrument(self.span.clone()).await;
        let elapsed = started.elapsed();
        let kind = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        let duration_ms = millis(elapsed);
        self.span.record("duration_ms", duration_ms);
        self.span.record("outcome", kind);
        self.span.in_scope(|| match &outcome {
            Ok(_) => tracing::debug!(duration_ms, "registry operation done"),
            Err(error) => tracing::debug!(duration_ms, outcome = kind, %error, "registry operation failed"),
        });
        metrics::counter!(REGISTRY_OPERATIONS, "backend" => self.backend, "operation" => self.operation, "outcome" => kind)
            .increment(1);
        metrics::histogram!(REGISTRY_OPERATION_SECONDS, "backend" => self.backend, "operation" => self.operation)
            .record(elapsed.as_secs_f64());
        outcome
    }
}

/// `duration` in milliseconds, rounded to the microsecond: what every `duration_ms` field
/// of this workspace's spans and events holds.
pub fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// The Unix time now, in seconds, for timestamp gauges.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
