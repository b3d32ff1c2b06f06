//! Talking to language models: the [`ChatModel`] trait, an OpenAI-compatible client
//! ([`OpenAiChat`]) with retries, an [`AdaptiveLimit`] on concurrency and usage accounting,
//! and a content-addressed disk cache ([`CachedChat`]) that records and replays calls.

mod cache;
mod chat;
mod error;
mod limit;
mod openai;
mod usage;

pub use cache::{CacheStats, CachedChat};
pub use chat::{ChatMessage, ChatModel, ChatParams, ChatReply, ChatRequest, ResponseSchema, Role, TokenUsage};
pub use error::{LlmError, RetryAfter};
pub use limit::{AdaptiveLimit, LimitPermit};
/// How the client retries: the shape the registry's MLflow client takes too.
pub use mlops_registry::Backoff;
pub use openai::{OpenAiChat, OpenAiChatBuilder, SharedChatModel};
pub use usage::{Pricing, UsageMeter, UsageTotals};
