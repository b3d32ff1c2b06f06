//! A small client of the MLflow tracking server's REST API: JSON requests, MLflow's error
//! bodies, authentication, and retries where a request is safe to repeat.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::retry::{Backoff, parse_retry_after};

/// The longest JSON answer read from the server: 64 MiB (a page of 1,000 versions with
/// their tags is well under 10 MiB).
pub(crate) const MAX_REPLY_BYTES: u64 = 64 << 20;

/// How much of an error answer's body is read.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// An MLflow REST call that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The server answered with an error.
    #[error("{method} {path}: HTTP {status} {code}: {message}")]
    Server {
        method: Method,
        path: String,
        status: StatusCode,
        /// MLflow's `error_code`, e.g. `RESOURCE_DOES_NOT_EXIST`.
        code: String,
        message: String,
        /// The wait a `Retry-After` header asked for.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, timeout, broken body.
    #[error("{method} {path}: {source}")]
    Transport {
        method: Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer was longer than the call takes: a JSON reply over
    /// [`MAX_REPLY_BYTES`], or a file over the size it was listed with.
    #[error("{method} {path}: the answer is longer than the {limit} bytes expected")]
    TooLarge { method: Method, path: String, limit: u64 },
    /// The answer was not the JSON expected.
    #[error("{method} {path}: unexpected response: {source}")]
    Decode {
        method: Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ApiError {
    /// MLflow's error code, when the server answered with one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The server's message, or the whole error.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Server { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    pub(crate) fn is_not_found(&self) -> bool {
        self.code() == Some("RESOURCE_DOES_NOT_EXIST")
            || matches!(self, Self::Server { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Self::Server { status, .. } => {
                matches!(
                    *status,
                    StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                )
            }
            Self::Transport { source, .. } => source.is_connect() || source.is_timeout(),
            Self::Decode { .. } | Self::TooLarge { .. } => false,
        }
    }
}

/// Whether a request may be sent again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Repeating it changes nothing (reads, setting a tag to a value, ...).
    Safe,
    /// Repeating it could do it twice (creating a run or a version).
    Unsafe,
}

/// Credentials sent with every request.
#[derive(Clone)]
pub(crate) enum Auth {
    None,
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Bearer(_) => "Bearer(..)",
            Self::Basic { .. } => "Basic(..)",
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RestClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    retry: Backoff,
}

impl RestClient {
    pub(crate) fn new(
        base: Url,
        auth: Auth,
        timeout: Duration,
        reuse_connections: bool,
        retry: Backoff,
    ) -> reqwest::Result<Self> {
        let mut http = reqwest::Client::builder().timeout(timeout);
        if !reuse_connections {
            http = http.pool_max_idle_per_host(0);
        }
        let http = http.build()?;
        Ok(Self { http, base, auth, retry })
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// `base` joined with `segments`, each percent-encoded as one path segment.
    pub(crate) fn url<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `GET /api/2.0/mlflow/<endpoint>?<query>`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, endpoint: &str, query: &[(&str, &str)]) -> Result<T, ApiError> {
        let mut url = self.api(endpoint);
        url.query_pairs_mut().extend_pairs(query);
        let body = self.send(Method::GET, url, None, Repeat::Safe, MAX_REPLY_BYTES).await?;
        decode(Method::GET, endpoint, &body)
    }

    /// `GET <url>?<query>` for a URL outside `/api/2.0/mlflow` (the artifact proxy).
    pub(crate) async fn get_url<T: DeserializeOwned>(
        &self,
        mut url: Url,
        query: &[(&str, &str)],
    ) -> Result<T, ApiError> {
        url.query_pairs_mut().extend_pairs(query);
        let path = url.path().to_owned();
        let body = self.send(Method::GET, url, None, Repeat::Safe, MAX_REPLY_BYTES).await?;
        decode(Method::GET, &path, &body)
    }

    /// A JSON request with a body to `/api/2.0/mlflow/<endpoint>`.
    pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        body: &B,
        repeat: Repeat,
    ) -> Result<T, ApiError> {
        let json = serde_json::to_vec(body).map_err(|source| ApiError::Decode {
            method: method.clone(),
            path: endpoint.to_owned(),
            source,
        })?;
        let answer =
            self.send(method.clone(), self.api(endpoint), Some(Bytes::from(json)), repeat, MAX_REPLY_BYTES).await?;
        decode(method, endpoint, &answer)
    }

    /// Uploads bytes to `url` (an artifact-proxy location).
    pub(crate) async fn put_bytes(&self, url: Url, bytes: Bytes) -> Result<(), ApiError> {
        self.send(Method::PUT, url, Some(bytes), Repeat::Safe, MAX_REPLY_BYTES).await.map(|_| ())
    }

    /// Downloads the bytes at `url`, refusing more than `limit` of them.
    pub(crate) async fn get_bytes(&self, url: Url, limit: u64) -> Result<Bytes, ApiError> {
        self.send(Method::GET, url, None, Repeat::Safe, limit).await
    }

    fn api(&self, endpoint: &str) -> Url {
        self.url(["api", "2.0", "mlflow"].into_iter().chain(endpoint.split('/')))
    }

    /// Sends the request, again after a busy or unreachable server when it is safe to
    /// repeat, with the client's backoff.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        repeat: Repeat,
        limit: u64,
    ) -> Result<Bytes, ApiError> {
        let retry = if repeat == Repeat::Safe { self.retry } else { Backoff::none() };
        let send = || self.send_once(method.clone(), url.clone(), body.clone(), limit);
        retry.retry(send, ApiError::is_transient, ApiError::retry_after).await.0
    }

    async fn send_once(&self, method: Method, url: Url, body: Option<Bytes>, limit: u64) -> Result<Bytes, ApiError> {
        let path = url.path().to_owned();
        let transport = |source| ApiError::Transport { method: method.clone(), path: path.clone(), source };
        let mut request = self.http.request(method.clone(), url);
        request = match &self.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
        };
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        if status.is_success() {
            if response.content_length().is_some_and(|length| length > limit) {
                return Err(ApiError::TooLarge { method, path, limit });
            }
            // A chunk at a time, so a peer sending more than it declared (or declaring
            // nothing) is stopped at the limit.
            let mut bytes = BytesMut::with_capacity(response.content_length().unwrap_or(0).min(1 << 20) as usize);
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(ApiError::TooLarge { method, path, limit });
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(bytes.freeze());
        }
        // Of an error's body, only the start is read: the message quotes 500 characters.
        let mut bytes = BytesMut::new();
        while bytes.len() < MAX_ERROR_BYTES
            && let Ok(Some(chunk)) = response.chunk().await
        {
            bytes.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BYTES - bytes.len())]);
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => (body.error_code, body.message),
            Err(_) => (String::new(), String::from_utf8_lossy(&bytes).chars().take(500).collect()),
        };
        Err(ApiError::Server { method, path, status, code, message, retry_after })
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

fn decode<T: DeserializeOwned>(method: Method, endpoint: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|source| ApiError::Decode { method, path: endpoint.to_owned(), source })
}
