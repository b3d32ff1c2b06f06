//! The Prometheus exporter's settings for this crate's metrics, and the gauges of what each
//! route serves, set when `/metrics` is read.

use std::time::{Duration, SystemTime};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use super::endpoint::Endpoint;
use crate::telemetry::{ROUTE_BEHIND, ROUTE_SECONDS_SINCE_CONFIRMED, ROUTE_SECONDS_SINCE_SWAP, ROUTE_VERSION};

/// Histogram buckets for the server's latencies, in seconds: 100 µs to 60 s.
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];
/// Histogram buckets for body sizes, in bytes: 256 B to 16 MiB.
pub const BODY_BUCKETS: [f64; 8] = [256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 16_777_216.0];

/// A Prometheus exporter with histogram buckets for every latency (`*_seconds`) and body
/// size (`*_bytes`) this crate and the registry record; without buckets the exporter
/// renders histograms as summaries. Install it once per process and give its handle to
/// [`ModelServer::prometheus`](super::ModelServer::prometheus).
///
/// ```
/// let builder = mlops_infer::serve::prometheus_builder();
/// // In an application: let handle = builder.install_recorder()?;
/// let recorder = builder.build_recorder();
/// assert!(recorder.handle().render().is_empty());
/// ```
pub fn prometheus_builder() -> PrometheusBuilder {
    let with_latencies = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &BODY_BUCKETS));
    // Setting buckets fails only for an empty list, and these are constants.
    with_latencies.unwrap_or_else(|_| PrometheusBuilder::new())
}

/// Sets the gauges of what each route of `endpoint` serves, as of now.
pub(crate) fn record_routes(name: &str, endpoint: &Endpoint) {
    let now = SystemTime::now();
    let routes = endpoint.routes.iter().map(|r| (r, false)).chain(endpoint.shadows.iter().map(|r| (r, true)));
    for (route, shadow) in routes {
        let labels = [("endpoint", name.to_owned()), ("route", route.name.clone())];
        let loaded = route.source.current();
        let model = loaded.as_ref().map(|l| l.version.name.to_string()).unwrap_or_default();
        let version = loaded.as_ref().map_or(0, |l| l.version.version);
        metrics::gauge!(ROUTE_VERSION, "endpoint" => name.to_owned(), "route" => route.name.clone(), "model" => model, "shadow" => if shadow { "true" } else { "false" })
            .set(version as f64);
        if let Some(status) = route.source.following() {
            metrics::gauge!(ROUTE_SECONDS_SINCE_CONFIRMED, &labels).set(status.since_confirmed.as_secs_f64());
            metrics::gauge!(ROUTE_BEHIND, &labels).set(f64::from(u8::from(status.target_version != status.version)));
            let since_swap = now.duration_since(status.serving_since).unwrap_or(Duration::ZERO);
            metrics::gauge!(ROUTE_SECONDS_SINCE_SWAP, &labels).set(since_swap.as_secs_f64());
        }
    }
}

/// A gauge raised while this guard lives.
pub(crate) struct Raised<'a>(&'a metrics::Gauge);

impl<'a> Raised<'a> {
    pub(crate) fn new(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
