//! What LLM calls report: `tracing` events and metrics through the `metrics` facade, under
//! the stable names below (nothing is printed or exported unless the application installs
//! a subscriber or a recorder).
//!
//! | Event | Level | Fields |
//! |---|---|---|
//! | `llm call` (one `OpenAiChat::chat`, retries included) | debug | `model`, `attempts`, `prompt_tokens`, `completion_tokens`, `cost`, `duration_ms` |
//! | `llm call failed` | warn | `model`, `attempts`, `duration_ms`, `error` |
//! | `rate limited` (a 429 answer) | debug | `model`, `status` |

use std::time::Duration;

use crate::llm::{ChatReply, LlmError};

/// Counter: chat calls, labelled `model` and `outcome` (`ok` or the error's kind).
pub const LLM_CALLS: &str = "mlops_llm_calls_total";
/// Counter: attempts after the first, labelled `model`.
pub const LLM_RETRIES: &str = "mlops_llm_retries_total";
/// Counter: 429 answers, labelled `model`.
pub const LLM_RATE_LIMITED: &str = "mlops_llm_rate_limited_total";
/// Counter: tokens, labelled `model` and `kind` (`prompt`, `completion`).
pub const LLM_TOKENS: &str = "mlops_llm_tokens_total";
/// Gauge: the running total cost of the calls, in the price list's currency, labelled
/// `model` (a gauge because the facade's counters count whole numbers).
pub const LLM_COST: &str = "mlops_llm_cost";
/// Histogram: seconds a call took, retries and waits included, labelled `model`.
pub const LLM_CALL_SECONDS: &str = "mlops_llm_call_duration_seconds";

/// Reports one finished call.
pub(crate) fn record_call(model: &str, attempts: u32, elapsed: Duration, outcome: &Result<ChatReply, LlmError>) {
    let duration_ms = mlops_registry::telemetry::millis(elapsed);
    let kind = match outcome {
        Ok(reply) => {
            tracing::debug!(
                model,
                attempts,
                prompt_tokens = reply.usage.prompt_tokens,
                completion_tokens = reply.usage.completion_tokens,
                cost = reply.cost,
                duration_ms,
                "llm call"
            );
            let tokens = |kind: &'static str, count: u64| {
                metrics::counter!(LLM_TOKENS, "model" => model.to_owned(), "kind" => kind).increment(count);
            };
            tokens("prompt", reply.usage.prompt_tokens);
            tokens("completion", reply.usage.completion_tokens);
            metrics::gauge!(LLM_COST, "model" => model.to_owned()).increment(reply.cost);
            "ok"
        }
        Err(error) => {
            tracing::warn!(model, attempts, duration_ms, %error, "llm call failed");
            error.kind()
        }
    };
    metrics::counter!(LLM_CALLS, "model" => model.to_owned(), "outcome" => kind).increment(1);
    metrics::counter!(LLM_RETRIES, "model" => model.to_owned()).increment(u64::from(attempts.saturating_sub(1)));
    metrics::histogram!(LLM_CALL_SECONDS, "model" => model.to_owned()).record(elapsed.as_secs_f64());
}
