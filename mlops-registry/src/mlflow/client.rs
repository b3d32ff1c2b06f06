//! A small client of the MLflow tracking server's REST API: JSON requests, MLflow's error
//! bodies, authentication, and retries where a request is safe to repeat.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::retry::{Backoff, parse_retry_after};

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
            Self::Decode { .. } => false,
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
        let body = self.send(Method::GET, url, None, Repeat::Safe).await?;
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
        let body = self.send(Method::GET, url, None, Repeat::Safe).await?;
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
        let answer = self.send(method.clone(), self.api(endpoint), Some(Bytes::from(json)), repeat).await?;
        decode(method, endpoint, &answer)
    }

    /// Uploads bytes to `url` (an artifact-proxy location).
    pub(crate) async fn put_bytes(&self, url: Url, bytes: Bytes) -> Result<(), ApiError> {
        self.send(Method::PUT, url, Some(bytes), Repeat::Safe).await.map(|_| ())
    }

    /// Downloads the bytes at `url`.
    pub(crate) async fn get_bytes(&self, url: Url) -> Result<Bytes, ApiError> {
        self.send(Method::GET, url, None, Repeat::Safe).await
    }

    fn api(&self, endpoint: &str) -> Url {
        self.url(["api", "2.0", "mlflow"].into_iter().chain(endpoint.split('/')))
    }

    /// Sends the request, again after a busy or unreachable server when it is safe to
    /// repeat, with the client's backoff.
    async fn send(&self, method: Method, url: Url, body: Option<Bytes>, repeat: Repeat) -> Result<Bytes, ApiError> {
        let retry = if repeat == Repeat::Safe { self.retry } else { Backoff::none() };
        let send = || self.send_once(method.clone(), url.clone(), body.clone());
        retry.retry(send, ApiError::is_transient, ApiError::retry_after).await.0
    }

    async fn send_once(&self, method: Method, url: Url, body: Option<Bytes>) -> Result<Bytes, ApiError> {
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
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes);
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
