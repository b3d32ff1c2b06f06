//! Token and cost accounting across calls.

use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::chat::{ChatReply, TokenUsage};

/// Prices per million tokens, in whatever currency the caller bills in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    /// Price of a million prompt tokens.
    pub prompt_per_million: f64,
    /// Price of a million completion tokens.
    pub completion_per_million: f64,
}

impl Pricing {
    /// A price list.
    pub fn per_million(prompt: f64, completion: f64) -> Self {
        Self { prompt_per_million: prompt, completion_per_million: completion }
    }

    /// What `usage` costs.
    pub fn cost(&self, usage: TokenUsage) -> f64 {
        (usage.prompt_tokens as f64 * self.prompt_per_million
            + usage.completion_tokens as f64 * self.completion_per_million)
            / 1e6
    }
}

/// Totals over many calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    /// Calls that reached the model (cache hits excluded).
    pub calls: u64,
    /// Calls answered from a cache.
    pub cache_hits: u64,
    /// Attempts beyond the first, over all calls.
    pub retries: u64,
    /// Calls that failed after their last attempt.
    pub failures: u64,
    /// Tokens consumed by calls that reached the model.
    pub usage: TokenUsage,
    /// Their cost.
    pub cost: f64,
}

impl UsageTotals {
    /// Adds one reply.
    pub fn record(&mut self, reply: &ChatReply) {
        if reply.cached {
            self.cache_hits += 1;
            return;
        }
        self.calls += 1;
        self.retries += u64::from(reply.attempts.saturating_sub(1));
        self.usage += reply.usage;
        self.cost += reply.cost;
    }

    /// Adds a failed call and the attempts it made.
    pub fn record_failure(&mut self, attempts: u32) {
        self.failures += 1;
        self.retries += u64::from(attempts.saturating_sub(1));
    }
}

impl std::ops::AddAssign for UsageTotals {
    fn add_assign(&mut self, other: Self) {
        self.calls += other.calls;
        self.cache_hits += other.cache_hits;
        self.retries += other.retries;
        self.failures += other.failures;
        self.usage += other.usage;
        self.cost += other.cost;
    }
}

/// A shared running total; clones add to the same totals.
#[derive(Debug, Clone, Default)]
pub struct UsageMeter {
    totals: Arc<Mutex<UsageTotals>>,
}

impl UsageMeter {
    /// A meter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one reply.
    pub fn record(&self, reply: &ChatReply) {
        self.totals.lock().record(reply);
    }

    /// Adds a failed call.
    pub fn record_failure(&self, attempts: u32) {
        self.totals.lock().record_failure(attempts);
    }

    /// The totals so far.
    pub fn totals(&self) -> UsageTotals {
        *self.totals.lock()
    }
}
