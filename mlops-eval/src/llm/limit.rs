//! A concurrency limit that grows while calls succeed and halves on rate limits.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Additive-increase, multiplicative-decrease limit on calls in flight.
///
/// Starts at `initial`; every `limit` successful calls raise it by one (up to `max`); a
/// rate-limited call halves it (down to `min`). Calls beyond the limit wait their turn, so a
/// judge that starts answering 429 is asked less often instead of being hammered.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    released: Notify,
    min: usize,
    max: usize,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
}

impl AdaptiveLimit {
    /// A limit between `min` and `max`, starting at `initial` (all clamped to at least 1).
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        let initial = initial.clamp(min, max);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State { limit: initial as f64, in_flight: 0 }),
                released: Notify::new(),
                min,
                max,
            }),
        }
    }

    /// A limit that never moves.
    pub fn fixed(limit: usize) -> Self {
        Self::new(limit, limit, limit)
    }

    /// The current limit.
    pub fn current(&self) -> usize {
        self.inner.state.lock().limit as usize
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.state.lock().in_flight
    }

    /// Waits for room under the limit.
    pub async fn acquire(&self) -> LimitPermit {
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut state = self.inner.state.lock();
                if state.in_flight < state.limit as usize {
                    state.in_flight += 1;
                    return LimitPermit { inner: Arc::clone(&self.inner), outcome: Outcome::Neutral };
                }
            }
            released.await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Neutral,
    Success,
    RateLimited,
}

/// A slot under an [`AdaptiveLimit`]; dropping it frees the slot and applies the outcome.
#[derive(Debug)]
pub struct LimitPermit {
    inner: Arc<Inner>,
    outcome: Outcome,
}

impl LimitPermit {
    /// The call succeeded: the limit may grow.
    pub fn success(&mut self) {
        self.outcome = Outcome::Success;
    }

    /// The server rate limited the call: the limit halves.
    pub fn rate_limited(&mut self) {
        self.outcome = Outcome::RateLimited;
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        {
            let mut state = self.inner.state.lock();
            state.in_flight -= 1;
            let (min, max) = (self.inner.min as f64, self.inner.max as f64);
            match self.outcome {
                Outcome::Neutral => {}
                Outcome::Success => state.limit = (state.limit + 1.0 / state.limit.floor()).min(max),
                Outcome::RateLimited => state.limit = (state.limit / 2.0).floor().max(min),
            }
        }
        self.inner.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_by_one_per_window_of_successes_and_halves_on_rate_limits() {
        let limit = AdaptiveLimit::new(4, 1, 10);
        for _ in 0..4 {
            limit.acquire().await.success();
        }
        assert_eq!(limit.current(), 5);
        limit.acquire().await.rate_limited();
        assert_eq!(limit.current(), 2);
        for _ in 0..5 {
            limit.acquire().await.rate_limited();
        }
        assert_eq!(limit.current(), 1, "never below the minimum");
        for _ in 0..200 {
            limit.acquire().await.success();
        }
        assert_eq!(limit.current(), 10, "never above the maximum");
    }

    #[tokio::test]
    async fn calls_beyond_the_limit_wait_for_a_release() {
        let limit = AdaptiveLimit::fixed(2);
        let first = limit.acquire().await;
        let _second = limit.acquire().await;
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move {
                let _third = limit.acquire().await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(limit.in_flight(), 2);
        drop(first);
        waiting.await.expect("the waiting call gets its slot");
    }
}
