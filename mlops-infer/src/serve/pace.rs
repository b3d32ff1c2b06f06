//! Scoring small requests on the async worker. Handing a request to the blocking pool and
//! back wakes two threads, which costs more than a fast model takes to answer a few records;
//! a slow model must still never hold a worker. So a request is scored in place only when
//! its body is small and every route of its endpoint, with the very model it holds now,
//! scored its last small request fast enough that this one, in proportion to its size,
//! fits within the server's limit.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mlops_registry::LoadedModel;
use parking_lot::Mutex;

/// Bodies up to this size may be scored on the async worker.
pub(crate) const INLINE_BODY_BYTES: usize = 16 * 1024;

/// How long a route may have taken to read, score and answer a small request for the next
/// ones to be scored on the async worker (see [`ModelServer::inline_scoring_limit`]).
///
/// [`ModelServer::inline_scoring_limit`]: super::ModelServer::inline_scoring_limit
pub const DEFAULT_INLINE_SCORING_LIMIT: Duration = Duration::from_micros(200);

/// The time a route last took to score a small request, the body's size, and the model
/// that took it.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// A weak reference keeps the model's allocation, so another model loaded later cannot
    /// take its address and inherit its time.
    last: Mutex<Option<(Weak<LoadedModel>, Duration, usize)>>,
}

impl Pace {
    /// Notes that `model` took `took` to score a request of a small body of `bytes`.
    pub(crate) fn record(&self, model: &Arc<LoadedModel>, took: Duration, bytes: usize) {
        *self.last.lock() = Some((Arc::downgrade(model), took, bytes));
    }

    /// Whether `model` would score a body of `bytes` within `limit` (never for a zero
    /// limit), judged by its last small request: a larger body is expected to take time in
    /// proportion, so a caller cannot follow a timed one-record request with a body of
    /// thousands and hold the worker with it.
    pub(crate) fn within(&self, model: &Arc<LoadedModel>, limit: Duration, bytes: usize) -> bool {
        if limit.is_zero() {
            return false;
        }
        let last = self.last.lock();
        let Some((timed, took, timed_bytes)) = last.as_ref() else { return false };
        if Weak::as_ptr(timed) != Arc::as_ptr(model) {
            return false;
        }
        // In seconds as floats, which cannot overflow as a scaled `Duration` could.
        let scale = if bytes <= *timed_bytes { 1.0 } else { bytes as f64 / (*timed_bytes).max(1) as f64 };
        took.as_secs_f64() * scale <= limit.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_core::{Model, Signature};
    use polars::prelude::DataFrame;

    struct Echo(Signature);

    impl Model for Echo {
        fn signature(&self) -> &Signature {
            &self.0
        }
        fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
            Ok(input.clone())
        }
    }

    fn loaded(version: u64) -> Arc<LoadedModel> {
        let signature = Signature::new(mlops_core::Schema::new(Vec::new()).unwrap());
        Arc::new(LoadedModel::unregistered("m".parse().unwrap(), version, Arc::new(Echo(signature))))
    }

    #[test]
    fn only_the_model_that_was_timed_and_was_quick_is_trusted() {
        let pace = Pace::default();
        let (first, second) = (loaded(1), loaded(1));
        let limit = Duration::from_micros(200);
        assert!(!pace.within(&first, limit, 200), "an unmeasured model is not trusted");
        pace.record(&first, Duration::from_micros(50), 200);
        assert!(pace.within(&first, limit, 200));
        assert!(!pace.within(&first, Duration::ZERO, 200), "a zero limit trusts nothing");
        assert!(pace.within(&first, limit, 800), "four times the body, four times the time: 200 us");
        assert!(!pace.within(&first, limit, 16 * 1024), "a body 80 times larger is expected to take 4 ms");
        assert!(!pace.within(&second, limit, 200), "another model with the same version number is not trusted");
        pace.record(&first, Duration::from_millis(3), 200);
        assert!(!pace.within(&first, limit, 200), "a slow answer withdraws the trust");
    }
}
