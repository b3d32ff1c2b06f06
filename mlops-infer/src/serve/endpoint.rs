//! An endpoint: routes with traffic shares, sticky by a request key, and shadow routes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName};
use polars::prelude::{AnyValue, DataFrame};

use super::meters::EndpointMeters;
use super::pace::Pace;
use crate::error::{Error, Result};
use crate::shard::shard_of;
use mlops_registry::ModelSource;

/// Traffic shares are counted in basis points of this total.
const BUCKETS: usize = 10_000;
const BUCKET_COUNT: std::num::NonZeroUsize = std::num::NonZeroUsize::new(BUCKETS).expect("BUCKETS is not zero");

/// One route of an endpoint: a name, the model it serves, and its share of traffic.
#[derive(Clone)]
pub struct Route {
    pub(crate) name: String,
    pub(crate) source: Arc<dyn ModelSource>,
    pub(crate) percent: u32,
    pub(crate) pace: Arc<Pace>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route").field("name", &self.name).field("percent", &self.percent).finish_non_exhaustive()
    }
}

impl Route {
    fn new(name: String, source: Arc<dyn ModelSource>, percent: u32) -> Self {
        Self { name, source, percent, pace: Arc::default() }
    }
}

/// What keeps a caller on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The value of this request header.
    Header(HeaderName),
    /// The value of this input column in the request's first row.
    Column(String),
}

/// An endpoint: routes that share its traffic (percentages summing to 100), optionally
/// sticky by a request key so the same caller always meets the same route, and shadow
/// routes that get a copy of each request.
///
/// ```
/// use std::sync::Arc;
/// use mlops_infer::serve::{Endpoint, ModelSlot};
///
/// let endpoint = Endpoint::builder()
///     .route("champion", Arc::new(ModelSlot::empty()), 90)
///     .route("challenger", Arc::new(ModelSlot::empty()), 10)
///     .shadow("candidate", Arc::new(ModelSlot::empty()))
///     .sticky_column("CustomerID")
///     .build()?;
/// assert_eq!(endpoint.route_names().collect::<Vec<_>>(), ["champion", "challenger"]);
/// # Ok::<(), mlops_infer::Error>(())
/// ```
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) routes: Vec<Route>,
    pub(crate) shadows: Vec<Route>,
    pub(crate) sticky: Option<StickyKey>,
    requests: AtomicU64,
    meters: OnceLock<EndpointMeters>,
}

impl Endpoint {
    /// Starts an endpoint with several routes.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder::default()
    }

    /// An endpoint with one route, `default`, taking all traffic.
    pub fn single(source: Arc<dyn ModelSource>) -> Self {
        Self {
            routes: vec![Route::new("default".into(), source, 100)],
            shadows: Vec::new(),
            sticky: None,
            requests: AtomicU64::new(0),
            meters: OnceLock::new(),
        }
    }

    /// The endpoint's metric handles, made at its first request (under the endpoint name
    /// `name`, which the server gives it).
    pub(crate) fn meters(&self, name: &str) -> &EndpointMeters {
        self.meters.get_or_init(|| EndpointMeters::new(name, self.routes.iter().map(|r| r.name.clone()).collect()))
    }

    /// The names of the serving routes, in order.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| r.name.as_str())
    }

    /// The sticky header's value, for an endpoint sticky by a header (read before the body
    /// is parsed, so the request's headers need not travel further).
    pub(crate) fn sticky_header(&self, headers: &HeaderMap) -> Option<String> {
        match self.sticky.as_ref()? {
            StickyKey::Header(name) => headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned),
            StickyKey::Column(_) => None,
        }
    }

    /// The sticky key's value for a request: its sticky header, or the sticky column's
    /// value in the first row.
    pub(crate) fn sticky_value(&self, header: Option<String>, input: &DataFrame) -> Option<String> {
        match self.sticky.as_ref()? {
            StickyKey::Header(_) => header,
            StickyKey::Column(column) => match input.column(column).ok()?.get(0).ok()? {
                AnyValue::Null => None,
                AnyValue::String(s) => Some(s.to_owned()),
                AnyValue::StringOwned(s) => Some(s.to_string()),
                other => Some(other.to_string()),
            },
        }
    }

    /// The route for a request: by a stable hash of its sticky value, otherwise by a
    /// pseudo-random draw.
    pub(crate) fn pick(&self, sticky: Option<&str>) -> &Route {
        let bucket = match sticky {
            Some(key) => shard_of(key, BUCKET_COUNT),
            None => (splitmix64(self.requests.fetch_add(1, Ordering::Relaxed)) % BUCKETS as u64) as usize,
        };
        let mut upper = 0;
        for route in &self.routes {
            upper += route.percent as usize * (BUCKETS / 100);
            if bucket < upper {
                return route;
            }
        }
        // Shares sum to 100, so the loop has returned; the last route covers rounding.
        &self.routes[self.routes.len() - 1]
    }

    /// Whether every route would score a body of `bytes` within `limit` with the model it
    /// holds now, judged by its last small request, so that whichever is picked may score
    /// on the async worker.
    pub(crate) fn scores_within(&self, limit: Duration, bytes: usize) -> bool {
        self.routes
            .iter()
            .all(|route| route.source.current().is_some_and(|loaded| route.pace.within(&loaded, limit, bytes)))
    }
}

impl<T: ModelSource> From<Arc<T>> for Endpoint {
    fn from(source: Arc<T>) -> Self {
        Self::single(source)
    }
}

impl From<Arc<dyn ModelSource>> for Endpoint {
    fn from(source: Arc<dyn ModelSource>) -> Self {
        Self::single(source)
    }
}

/// A draw in [0, 1) for request number `n`, spread evenly over requests (salted, so it
/// is independent of the route draw for the same number).
pub(crate) fn draw(n: u64) -> f64 {
    (splitmix64(n ^ 0xD1B5_4A32_D192_ED03) >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64: spreads consecutive request numbers over the whole range, so a counter
/// gives draws that are uniform without a random-number generator's state or lock.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Collects the routes of an [`Endpoint`].
#[derive(Debug, Default)]
pub struct EndpointBuilder {
    routes: Vec<Route>,
    shadows: Vec<Route>,
    sticky: Option<StickyKey>,
    invalid_header: Option<String>,
}

impl EndpointBuilder {
    /// Adds a serving route taking `percent` of the traffic.
    #[must_use]
    pub fn route(mut self, name: impl Into<String>, source: Arc<dyn ModelSource>, percent: u32) -> Self {
        self.routes.push(Route::new(name.into(), source, percent));
        self
    }

    /// Adds a shadow route: it gets a copy of every request; its answer is recorded, never
    /// returned, and the caller does not wait for it.
    #[must_use]
    pub fn shadow(mut self, name: impl Into<String>, source: Arc<dyn ModelSource>) -> Self {
        self.shadows.push(Route::new(name.into(), source, 0));
        self
    }

    /// Keeps callers with the same value of header `name` on the same route (an invalid
    /// header name is reported by [`build`](Self::build)).
    #[must_use]
    pub fn sticky_header(mut self, name: &str) -> Self {
        match HeaderName::try_from(name) {
            Ok(header) => self.sticky = Some(StickyKey::Header(header)),
            Err(_) => self.invalid_header = Some(name.to_owned()),
        }
        self
    }

    /// Keeps requests whose first row has the same value in input column `name` on the
    /// same route.
    #[must_use]
    pub fn sticky_column(mut self, name: impl Into<String>) -> Self {
        self.sticky = Some(StickyKey::Column(name.into()));
        self
    }

    /// The endpoint.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no route, shares that do not sum to 100, a repeated
    /// route name, or an invalid sticky header name.
    pub fn build(self) -> Result<Endpoint> {
        if self.routes.is_empty() {
            return Err(Error::InvalidArgument("an endpoint needs at least one serving route".into()));
        }
        let total: u64 = self.routes.iter().map(|r| u64::from(r.percent)).sum();
        if total != 100 {
            let shares: Vec<String> = self.routes.iter().map(|r| format!("{} {}%", r.name, r.percent)).collect();
            return Err(Error::InvalidArgument(format!(
                "route shares must sum to 100, not {total} ({})",
                shares.join(", ")
            )));
        }
        let all: Vec<&str> = self.routes.iter().chain(&self.shadows).map(|r| r.name.as_str()).collect();
        if let Some(name) = all.iter().enumerate().find_map(|(i, n)| all[..i].contains(n).then_some(n)) {
            return Err(Error::InvalidArgument(format!("route `{name}` is defined twice")));
        }
        if let Some(name) = self.invalid_header {
            return Err(Error::InvalidArgument(format!("`{name}` is not a valid header name")));
        }
        Ok(Endpoint {
            routes: self.routes,
            shadows: self.shadows,
            sticky: self.sticky,
            requests: AtomicU64::new(0),
            meters: OnceLock::new(),
        })
    }
}
