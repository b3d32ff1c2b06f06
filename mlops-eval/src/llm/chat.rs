//! The chat-completion vocabulary every judge and model speaks.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The caller's turn.
    User,
    /// The model's turn.
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// Sampling parameters; `None` leaves the server's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatParams {
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Longest reply, in tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Nucleus sampling mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Seed for servers that sample reproducibly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl ChatParams {
    /// The parameters MLflow's judge metrics use: temperature 0, at most 200 tokens, top_p 1.
    pub fn judge_defaults() -> Self {
        Self { temperature: Some(0.0), max_tokens: Some(200), top_p: Some(1.0), seed: None }
    }
}

/// A JSON schema the reply must follow, for servers with structured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSchema {
    /// Name of the schema (OpenAI requires one).
    pub name: String,
    /// The JSON schema itself.
    pub schema: Value,
}

/// A request for one completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters.
    pub params: ChatParams,
    /// Structured output wanted, if any. Clients whose server lacks structured output send
    /// the request without it; the reply is parsed either way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<ResponseSchema>,
}

impl ChatRequest {
    /// A request with default parameters.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self { messages, params: ChatParams::default(), response_schema: None }
    }

    /// Sets the sampling parameters.
    #[must_use]
    pub fn params(mut self, params: ChatParams) -> Self {
        self.params = params;
        self
    }

    /// Asks for a reply following `schema`.
    #[must_use]
    pub fn response_schema(mut self, schema: ResponseSchema) -> Self {
        self.response_schema = Some(schema);
        self
    }
}

/// Tokens a call consumed, as the server reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Tokens of the request.
    pub prompt_tokens: u64,
    /// Tokens of the reply.
    pub completion_tokens: u64,
}

impl TokenUsage {
    /// Prompt and completion tokens together.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

// Counts come from the server: they saturate instead of overflowing.
impl std::ops::AddAssign for TokenUsage {
    fn add_assign(&mut self, other: Self) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(other.completion_tokens);
    }
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// The reply's text.
    pub content: String,
    /// Why generation stopped (`stop`, `length`, ...), when the server says.
    pub finish_reason: Option<String>,
    /// Tokens consumed.
    pub usage: TokenUsage,
    /// What the call cost, in the currency of the client's price list (0 without one, and
    /// for replies served from a cache).
    pub cost: f64,
    /// Attempts made, 1 when the first succeeded (0 for a cached reply).
    pub attempts: u32,
    /// Time from the first attempt to the reply, waits between retries included.
    #[serde(with = "duration_millis")]
    pub latency: Duration,
    /// Whether the reply came from a cache instead of the model.
    pub cached: bool,
}

impl ChatReply {
    /// Whether the server cut the reply at `max_tokens`.
    pub fn truncated(&self) -> bool {
        self.finish_reason.as_deref() == Some("length")
    }
}

/// A chat-completion model: a judge, or a model under test.
///
/// Object safe, so metrics hold `Arc<dyn ChatModel>`; implementations must be cheap to call
/// concurrently.
#[async_trait]
pub trait ChatModel: Send + Sync + std::fmt::Debug {
    /// The model's name; part of every cache key, so two models never share replies.
    fn model_name(&self) -> &str;

    /// One completion of `request`.
    ///
    /// # Errors
    /// [`LlmError`] when the model cannot be reached or keeps failing.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, LlmError>;
}

mod duration_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64() * 1000.0)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let millis = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(millis.max(0.0) / 1000.0)
            .map_err(|_| serde::de::Error::custom(format!("{millis} ms is not a latency")))
    }
}
