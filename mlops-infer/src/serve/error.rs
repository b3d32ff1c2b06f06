//! Serving errors in MLflow's shape: `{"error_code": .., "message": ..}` with an HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The longest error message an answer carries; longer ones are cut.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// An error answer of the scoring server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeError {
    /// The HTTP status.
    pub status: StatusCode,
    /// MLflow's error code (`BAD_REQUEST`, `MALFORMED_REQUEST`, ...).
    pub error_code: &'static str,
    /// What is wrong, naming the culprit.
    pub message: String,
}

impl ServeError {
    /// An error whose message is cut to [`MAX_MESSAGE_BYTES`], so an answer never echoes a
    /// whole request.
    pub(crate) fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            let cut = message.len() - end;
            message.truncate(end);
            message.push_str(&format!("... ({cut} more bytes)"));
        }
        Self { status, error_code, message }
    }

    /// 500 for a model or server fault the caller cannot fix; the details stay on the
    /// server.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }

    /// 400: input that breaks the model's schema, or a model error.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 400: a body that is not what its content type says.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MALFORMED_REQUEST", message)
    }

    /// 404: no such endpoint or route.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", message)
    }
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.error_code, self.message)
    }
}

impl std::error::Error for ServeError {}

impl From<mlops_core::Error> for ServeError {
    fn from(error: mlops_core::Error) -> Self {
        Self::bad_request(error.to_string())
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error_code": self.error_code, "message": self.message });
        (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}
