//! What routes answered, kept for comparison and monitoring (shadow answers go here).

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use polars::prelude::DataFrame;

/// One request as one route answered it (or as the server refused it).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request's id ([`REQUEST_ID_HEADER`](super::REQUEST_ID_HEADER)); a shadow's copy
    /// carries the id of the request it copies.
    pub request_id: String,
    /// The endpoint called.
    pub endpoint: String,
    /// The route that answered; empty for a request refused before a route was chosen.
    pub route: String,
    /// Whether it was a shadow route (its answer was not returned to the caller).
    pub shadow: bool,
    /// The model, and its version, that answered; `None` when the route had no model loaded.
    pub model: Option<(String, u64)>,
    /// The input rows; empty for a request refused before its body was read into rows.
    pub input: DataFrame,
    /// The predictions, or why there are none (the error message answered).
    pub outcome: Result<DataFrame, String>,
    /// The HTTP status answered: the caller's, or for a shadow what its route would have
    /// answered (200, or 500 when it failed).
    pub status: u16,
    /// How long the prediction took.
    pub latency: Duration,
    /// How long the whole request took, from its arrival to its answer (for a shadow, its
    /// prediction).
    pub execution_time: Duration,
}

/// Where exchanges are sent. Called off the request path, so it may take its time.
pub trait ExchangeRecorder: Send + Sync + 'static {
    /// Keeps `exchange`.
    fn record(&self, exchange: Exchange);
}

/// Keeps the latest exchanges in memory, up to a number of exchanges and, optionally, of
/// bytes (the oldest are dropped first, and counted).
#[derive(Debug)]
pub struct MemoryRecorder {
    capacity: usize,
    byte_limit: usize,
    state: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Each exchange with the bytes it was counted for.
    exchanges: VecDeque<(Exchange, usize)>,
    bytes: usize,
    dropped: u64,
}

impl MemoryRecorder {
    /// Keeps at most `capacity` exchanges.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, byte_limit: usize::MAX, state: Mutex::new(Kept::default()) }
    }

    /// Also keeps at most `bytes` of frames (inputs and predictions, as Polars estimates
    /// them); an exchange larger than that on its own is dropped at once.
    #[must_use]
    pub fn with_byte_limit(mut self, bytes: usize) -> Self {
        self.byte_limit = bytes;
        self
    }

    /// The exchanges kept, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.state.lock().exchanges.iter().map(|(e, _)| e.clone()).collect()
    }

    /// The bytes of the exchanges kept.
    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// How many exchanges were dropped to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }
}

impl ExchangeRecorder for MemoryRecorder {
    fn record(&self, exchange: Exchange) {
        let size = exchange.request_id.len()
            + exchange.input.estimated_size()
            + exchange.outcome.as_ref().map_or_else(String::len, DataFrame::estimated_size);
        let mut state = self.state.lock();
        if self.capacity == 0 || size > self.byte_limit {
            state.dropped += 1;
            return;
        }
        while state.exchanges.len() >= self.capacity || state.bytes + size > self.byte_limit {
            let Some((_, freed)) = state.exchanges.pop_front() else { break };
            state.bytes -= freed;
            state.dropped += 1;
        }
        state.bytes += size;
        state.exchanges.push_back((exchange, size));
    }
}
