//! What routes answered, kept for comparison and monitoring (shadow answers go here).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use polars::prelude::DataFrame;

/// One request as one route answered it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The endpoint called.
    pub endpoint: String,
    /// The route that answered.
    pub route: String,
    /// Whether it was a shadow route (its answer was not returned to the caller).
    pub shadow: bool,
    /// The model, and its version, that answered; `None` when the route had no model loaded.
    pub model: Option<(String, u64)>,
    /// The input rows.
    pub input: DataFrame,
    /// The predictions, or why there are none.
    pub outcome: Result<DataFrame, String>,
    /// How long the prediction took.
    pub latency: Duration,
}

/// Where exchanges are sent. Called off the request path, so it may take its time.
pub trait ExchangeRecorder: Send + Sync + 'static {
    /// Keeps `exchange`.
    fn record(&self, exchange: Exchange);
}

/// Keeps the latest exchanges in memory, up to a capacity (the oldest are dropped first,
/// and counted).
#[derive(Debug)]
pub struct MemoryRecorder {
    capacity: usize,
    state: Mutex<(VecDeque<Exchange>, u64)>,
}

impl MemoryRecorder {
    /// Keeps at most `capacity` exchanges.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, state: Mutex::new((VecDeque::with_capacity(capacity.min(1024)), 0)) }
    }

    /// The exchanges kept, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().0.iter().cloned().collect()
    }

    /// How many exchanges were dropped to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.state.lock().1
    }
}

impl ExchangeRecorder for MemoryRecorder {
    fn record(&self, exchange: Exchange) {
        let mut state = self.state.lock();
        if state.0.len() == self.capacity {
            state.0.pop_front();
            state.1 += 1;
        }
        if self.capacity > 0 {
            state.0.push_back(exchange);
        } else {
            state.1 += 1;
        }
    }
}
