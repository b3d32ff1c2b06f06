use std::time::Duration;

/// Why a chat call failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The client is misconfigured (a bad URL or header, a missing API key).
    #[error("chat client configuration: {0}")]
    Config(String),
    /// The server answered with an error status on the last attempt.
    #[error("`{model}` at {url} answered {status} after {attempts} attempt(s): {body}")]
    Status {
        /// Model name.
        model: String,
        /// Endpoint called.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the response body.
        body: String,
        /// Attempts made.
        attempts: u32,
        /// `Retry-After` the server sent, if any.
        #[source]
        retry_after: Option<RetryAfter>,
    },
    /// No reply within the request timeout on the last attempt.
    #[error("`{model}` at {url} gave no reply within {timeout:?} after {attempts} attempt(s)")]
    Timeout {
        /// Model name.
        model: String,
        /// Endpoint called.
        url: String,
        /// The per-request timeout.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The connection failed on the last attempt.
    #[error("`{model}` at {url} could not be reached after {attempts} attempt(s): {source}")]
    Connection {
        /// Model name.
        model: String,
        /// Endpoint called.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The server answered 200 with a body that is not a chat completion.
    #[error("`{model}` at {url} answered with an unreadable completion: {reason}")]
    Malformed {
        /// Model name.
        model: String,
        /// Endpoint called.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A replay-only cache has no recording of the request.
    #[error("no recorded reply for request {key} in the replay cache {dir}")]
    NotRecorded {
        /// The request's cache key.
        key: String,
        /// The cache directory.
        dir: String,
    },
    /// Reading or writing the cache failed.
    #[error("chat cache {path}: {source}")]
    Cache {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The call was cancelled before it finished.
    #[error("cancelled")]
    Cancelled,
}

/// The wait a server asked for, as an error source so it shows in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server asked to retry after {0:?}")]
pub struct RetryAfter(pub Duration);

impl LlmError {
    /// The variant's name in snake case (`status`, `timeout`, ...): a label of bounded
    /// cardinality for metrics and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Status { .. } => "status",
            Self::Timeout { .. } => "timeout",
            Self::Connection { .. } => "connection",
            Self::Malformed { .. } => "malformed",
            Self::NotRecorded { .. } => "not_recorded",
            Self::Cache { .. } => "cache",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether trying again may succeed: rate limits, server errors, timeouts and lost
    /// connections.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Self::Timeout { .. } | Self::Connection { .. } => true,
            _ => false,
        }
    }

    /// Whether the server said it is rate limiting (429).
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, Self::Status { status: 429, .. })
    }

    /// The wait the server asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => retry_after.map(|r| r.0),
            _ => None,
        }
    }

    pub(crate) fn set_attempts(&mut self, made: u32) {
        match self {
            Self::Status { attempts, .. } | Self::Timeout { attempts, .. } | Self::Connection { attempts, .. } => {
                *attempts = made;
            }
            _ => {}
        }
    }
}
