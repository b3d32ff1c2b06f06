//! A client for OpenAI-compatible chat-completion servers: OpenAI, vLLM, Ollama,
//! llama.cpp's server, Databricks serving endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use mlops_registry::Backoff;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::{Value, json};

use super::chat::{ChatModel, ChatReply, ChatRequest, TokenUsage};
use super::error::{LlmError, RetryAfter};
use super::limit::AdaptiveLimit;
use super::usage::{Pricing, UsageMeter};
use crate::telemetry;

/// Chat completions over HTTP, with retries, an adaptive concurrency limit and usage
/// accounting.
///
/// ```no_run
/// use mlops_eval::llm::{ChatMessage, ChatModel, ChatRequest, OpenAiChat, Pricing};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let judge = OpenAiChat::builder("http://localhost:8000/v1", "llama-3.1-8b-instruct")
///     .bearer_token_from_env("JUDGE_API_KEY")?
///     .pricing(Pricing::per_million(0.15, 0.60))
///     .build()?;
/// let reply = judge.chat(&ChatRequest::new(vec![ChatMessage::user("Say hi.")])).await?;
/// println!("{} ({} tokens, cost {})", reply.content, reply.usage.total(), reply.cost);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OpenAiChat {
    http: reqwest::Client,
    url: String,
    model: String,
    timeout: Duration,
    retry: Backoff,
    limit: AdaptiveLimit,
    pricing: Pricing,
    structured_output: bool,
    meter: UsageMeter,
}

impl std::fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client's default headers hold the bearer token: never printed.
        f.debug_struct("OpenAiChat")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("limit", &self.limit.current())
            .finish_non_exhaustive()
    }
}

/// Configures an [`OpenAiChat`].
#[derive(Debug)]
pub struct OpenAiChatBuilder {
    base_url: String,
    model: String,
    headers: Vec<(String, String)>,
    bearer_token: Option<String>,
    timeout: Duration,
    retry: Backoff,
    limit: AdaptiveLimit,
    pricing: Pricing,
    structured_output: bool,
    meter: UsageMeter,
}

impl OpenAiChat {
    /// A client for `model` at `base_url`, the URL that `/chat/completions` is appended to
    /// (`https://api.openai.com/v1`, `http://localhost:11434/v1`,
    /// `https://<workspace>/serving-endpoints`).
    pub fn builder(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiChatBuilder {
        OpenAiChatBuilder {
            base_url: base_url.into(),
            model: model.into(),
            headers: Vec::new(),
            bearer_token: None,
            timeout: Duration::from_secs(60),
            retry: Backoff::default(),
            limit: AdaptiveLimit::new(8, 1, 64),
            pricing: Pricing::default(),
            structured_output: false,
            meter: UsageMeter::new(),
        }
    }

    /// The running usage totals of every call through this client and its clones.
    pub fn meter(&self) -> &UsageMeter {
        &self.meter
    }

    /// The concurrency limit calls wait under.
    pub fn limit(&self) -> &AdaptiveLimit {
        &self.limit
    }

    /// The endpoint called.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut body = json!({ "model": self.model, "messages": request.messages });
        let params = &request.params;
        if let Some(t) = params.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = params.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if let Some(p) = params.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(s) = params.seed {
            body["seed"] = json!(s);
        }
        if let (true, Some(schema)) = (self.structured_output, &request.response_schema) {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": schema.name, "schema": schema.schema, "strict": true },
            });
        }
        body
    }

    async fn attempt(&self, body: &Bytes) -> Result<(String, Option<String>, TokenUsage), LlmError> {
        let mut permit = self.limit.acquire().await;
        let sent = self.http.post(&self.url).body(body.clone()).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Err(self.transport_error(e)),
        };
        let status = response.status();
        if !status.is_success() {
            if status.as_u16() == 429 {
                permit.rate_limited();
                tracing::debug!(model = %self.model, status = 429, "rate limited");
                metrics::counter!(telemetry::LLM_RATE_LIMITED, "model" => self.model.clone()).increment(1);
            }
            // OpenAI also sends `retry-after-ms`, the more precise of the two.
            let header = |name: &str, unit: f64| {
                let value = response.headers().get(name)?.to_str().ok()?.trim().parse::<f64>().ok()?;
                // A wait past what a `Duration` holds is as good as none: the retry policy's
                // longest wait refuses it.
                Duration::try_from_secs_f64(value / unit).ok().map(RetryAfter)
            };
            let retry_after = header("retry-after-ms", 1000.0).or_else(|| header(RETRY_AFTER.as_str(), 1.0));
            // Only the start of an error's body is kept, so only that much is read.
            let body = read_limited(response, MAX_ERROR_BODY_BYTES).await.map(|(bytes, _)| bytes).unwrap_or_default();
            let body = String::from_utf8_lossy(&body);
            return Err(LlmError::Status {
                model: self.model.clone(),
                url: self.url.clone(),
                status: status.as_u16(),
                body: body.chars().take(500).collect(),
                attempts: 1,
                retry_after,
            });
        }
        let (bytes, complete) = read_limited(response, MAX_REPLY_BYTES).await.map_err(|e| self.transport_error(e))?;
        if !complete {
            return Err(LlmError::Malformed {
                model: self.model.clone(),
                url: self.url.clone(),
                reason: format!("the reply is longer than {MAX_REPLY_BYTES} bytes"),
            });
        }
        permit.success();
        drop(permit);
        self.read_completion(&bytes)
    }

    fn transport_error(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout { model: self.model.clone(), url: self.url.clone(), timeout: self.timeout, attempts: 1 }
        } else {
            LlmError::Connection { model: self.model.clone(), url: self.url.clone(), attempts: 1, source: e }
        }
    }

    fn read_completion(&self, bytes: &[u8]) -> Result<(String, Option<String>, TokenUsage), LlmError> {
        let malformed =
            |reason: String| LlmError::Malformed { model: self.model.clone(), url: self.url.clone(), reason };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON ({e})")))?;
        let choice = value.get("choices").and_then(|c| c.get(0)).ok_or_else(|| malformed("no `choices[0]`".into()))?;
        let content = match choice.pointer("/message/content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => return Err(malformed(format!("`message.content` is not text: {other}"))),
        };
        let finish_reason = choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
        let tokens = |name: &str| value.pointer(&format!("/usage/{name}")).and_then(Value::as_u64).unwrap_or(0);
        let usage =
            TokenUsage { prompt_tokens: tokens("prompt_tokens"), completion_tokens: tokens("completion_tokens") };
        Ok((content, finish_reason, usage))
    }
}

#[async_trait]
impl ChatModel for OpenAiChat {
    fn model_name(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, LlmError> {
        // Shared by every attempt without a copy.
        let body = Bytes::from(serde_json::to_vec(&self.body(request)).map_err(|e| LlmError::Config(e.to_string()))?);
        let started = Instant::now();
        let (outcome, attempts) =
            self.retry.retry(|| self.attempt(&body), LlmError::is_transient, LlmError::retry_after).await;
        let outcome = match outcome {
            Ok((content, finish_reason, usage)) => {
                let reply = ChatReply {
                    content,
                    finish_reason,
                    usage,
                    cost: self.pricing.cost(usage),
                    attempts,
                    latency: started.elapsed(),
                    cached: false,
                };
                self.meter.record(&reply);
                Ok(reply)
            }
            Err(mut error) => {
                error.set_attempts(attempts);
                self.meter.record_failure(attempts);
                Err(error)
            }
        };
        telemetry::record_call(&self.model, attempts, started.elapsed(), &outcome);
        outcome
    }
}

impl OpenAiChatBuilder {
    /// Sends `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_token = Some(token.into());
        self
    }

    /// Reads the bearer token from the environment variable `name`.
    ///
    /// # Errors
    /// [`LlmError::Config`] naming the variable when it is unset or empty.
    pub fn bearer_token_from_env(self, name: &str) -> Result<Self, LlmError> {
        match std::env::var(name) {
            Ok(token) if !token.is_empty() => Ok(self.bearer_token(token)),
            _ => Err(LlmError::Config(format!("environment variable `{name}` (the bearer token) is not set"))),
        }
    }

    /// Adds a header to every request (an API version, a gateway route, ...).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Longest wait for one attempt's reply (default 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How failed calls are retried.
    #[must_use]
    pub fn retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    /// The concurrency limit calls wait under (default: adaptive, from 8 between 1 and 64).
    #[must_use]
    pub fn concurrency(mut self, limit: AdaptiveLimit) -> Self {
        self.limit = limit;
        self
    }

    /// Prices for the cost accounting.
    #[must_use]
    pub fn pricing(mut self, pricing: Pricing) -> Self {
        self.pricing = pricing;
        self
    }

    /// Sends a request's JSON schema as `response_format` (for servers with structured
    /// output: OpenAI, vLLM, Ollama, llama.cpp).
    #[must_use]
    pub fn structured_output(mut self, enabled: bool) -> Self {
        self.structured_output = enabled;
        self
    }

    /// Adds usage to `meter` (shared with other clients) instead of a meter of its own.
    #[must_use]
    pub fn meter(mut self, meter: UsageMeter) -> Self {
        self.meter = meter;
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`LlmError::Config`] for a base URL that is not http(s), or a header that is not
    /// valid HTTP.
    pub fn build(self) -> Result<OpenAiChat, LlmError> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::Config(format!("base URL `{}` is not an http(s) URL", self.base_url)));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(token) = &self.bearer_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| LlmError::Config("the bearer token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| LlmError::Config(format!("`{name}` is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| LlmError::Config(format!("the value of header `{name}` is not valid")))?;
            headers.insert(header, value);
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        Ok(OpenAiChat {
            http,
            url: format!("{base}/chat/completions"),
            model: self.model,
            timeout: self.timeout,
            retry: self.retry,
            limit: self.limit,
            pricing: self.pricing,
            structured_output: self.structured_output,
            meter: self.meter,
        })
    }
}

/// Shared handle to any chat model.
pub type SharedChatModel = Arc<dyn ChatModel>;

/// The longest completion read: 32 MiB, far above any model's output limit.
const MAX_REPLY_BYTES: usize = 32 << 20;

/// How much of an error's body is read: the message quotes its first 500 characters.
const MAX_ERROR_BODY_BYTES: usize = 4096;

/// Up to `limit` bytes of `response`'s body, a chunk at a time, and whether that was all of
/// it.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}
