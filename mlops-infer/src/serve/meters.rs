//! The metric handles of an endpoint, registered once and reused by every request: no
//! label is allocated and no key is hashed on the request path (the recorder's own lookup
//! costs about as much as a small prediction).

use std::collections::HashMap;

use metrics::{Counter, Gauge, Histogram};
use parking_lot::RwLock;

use crate::telemetry::{BODY_BYTES, IN_FLIGHT, INFERENCE_SECONDS, QUEUED, REQUEST_SECONDS, REQUESTS, ROWS};

/// The handles of one endpoint (or of requests to no endpoint, with no routes). They bind
/// to the recorder installed when they are made, at the endpoint's first request.
pub(crate) struct EndpointMeters {
    endpoint: String,
    route_names: Vec<String>,
    pub(crate) in_flight: Gauge,
    pub(crate) queued: Gauge,
    pub(crate) body_bytes: Histogram,
    /// By route index: inference seconds and rows.
    routes: Vec<(Histogram, Counter)>,
    outcomes: RwLock<HashMap<OutcomeKey, Outcome>>,
}

/// An answer's route index (`None`: no route took the request), status and format.
type OutcomeKey = (Option<usize>, &'static str, &'static str);

impl std::fmt::Debug for EndpointMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointMeters").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// The handles of one kind of answer.
#[derive(Clone)]
pub(crate) struct Outcome {
    pub(crate) requests: Counter,
    pub(crate) seconds: Histogram,
}

impl EndpointMeters {
    pub(crate) fn new(endpoint: &str, route_names: Vec<String>) -> Self {
        let labels = [("endpoint", endpoint.to_owned())];
        let routes = route_names
            .iter()
            .map(|route| {
                let labels = [("endpoint", endpoint.to_owned()), ("route", route.clone())];
                (metrics::histogram!(INFERENCE_SECONDS, &labels), metrics::counter!(ROWS, &labels))
            })
            .collect();
        Self {
            endpoint: endpoint.to_owned(),
            in_flight: metrics::gauge!(IN_FLIGHT, &labels),
            queued: metrics::gauge!(QUEUED, &labels),
            body_bytes: metrics::histogram!(BODY_BYTES, &labels),
            route_names,
            routes,
            outcomes: RwLock::new(HashMap::new()),
        }
    }

    /// The inference histogram and rows counter of route `index`.
    pub(crate) fn route(&self, index: usize) -> Option<&(Histogram, Counter)> {
        self.routes.get(index)
    }

    /// Counts an answer with this route, status and format, and its duration; the kinds are
    /// bounded (routes of the endpoint, a fixed set of status labels and formats). The
    /// handles are used where they are kept, never cloned: a clone is a shared atomic
    /// count every request would touch.
    pub(crate) fn record_outcome(
        &self,
        route: Option<usize>,
        status: &'static str,
        format: &'static str,
        seconds: f64,
    ) {
        let key = (route, status, format);
        if let Some(outcome) = self.outcomes.read().get(&key) {
            outcome.requests.increment(1);
            outcome.seconds.record(seconds);
            return;
        }
        let route_name = route.and_then(|i| self.route_names.get(i)).cloned().unwrap_or_default();
        let outcome = Outcome {
            requests: metrics::counter!(REQUESTS, "endpoint" => self.endpoint.clone(), "route" => route_name.clone(), "status" => status, "format" => format),
            seconds: metrics::histogram!(REQUEST_SECONDS, "endpoint" => self.endpoint.clone(), "route" => route_name, "status" => status),
        };
        let mut outcomes = self.outcomes.write();
        let outcome = outcomes.entry(key).or_insert(outcome);
        outcome.requests.increment(1);
        outcome.seconds.record(seconds);
    }
}
