//! HTTP webhooks for registry events, signed and delivered as MLflow delivers them, through
//! a durable outbox.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::events::RegistryEvent;
use crate::json_objects::read_json_objects;

/// The longest wait a receiver's `Retry-After` is honoured for; a longer one waits this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Header carrying `v1,<base64 HMAC-SHA256>` of `"{delivery_id}.{timestamp}.{payload}"`.
pub const SIGNATURE_HEADER: &str = "X-MLflow-Signature";
/// Header carrying the delivery id (the same on every retry of one delivery).
pub const DELIVERY_ID_HEADER: &str = "X-MLflow-Delivery-Id";
/// Header carrying the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-MLflow-Timestamp";
const SIGNATURE_VERSION: &str = "v1";

/// Where to send which events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The receiver's URL.
    pub url: String,
    /// Secret for the HMAC signature; unsigned when `None`.
    pub secret: Option<String>,
    /// MLflow event names to send (`model_version.created`, `model_version_alias.created`,
    /// ...); every event when empty.
    pub events: BTreeSet<String>,
}

impl Webhook {
    /// A webhook to `url` receiving every event, signed with `secret`.
    pub fn new(url: impl Into<String>, secret: Option<String>) -> Self {
        Self { url: url.into(), secret, events: BTreeSet::new() }
    }

    /// Only sends the named events.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(mut self, events: I) -> Self {
        self.events = events.into_iter().map(Into::into).collect();
        self
    }
}

/// Retry schedule of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a delivery moves to the dead-letter list.
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (a `Retry-After` header may ask for more).
    pub max_backoff: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// One event on its way to one webhook, as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Delivery id, sent in [`DELIVERY_ID_HEADER`].
    pub id: String,
    /// Receiver URL.
    pub url: String,
    /// MLflow event name, e.g. `model_version.created`.
    pub event: String,
    /// The exact request body.
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Not before this time.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// For a hook with a secret: the dispatcher's HMAC over id, URL, event and payload,
    /// made when it built the delivery, so a delivery written by anyone else is never
    /// signed or sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// What one [`WebhookDispatcher::deliver_due`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Delivered and removed from the outbox.
    pub delivered: usize,
    /// Failed, to be retried later.
    pub retrying: usize,
    /// Failed for the last time, moved to the dead-letter list.
    pub dead: usize,
    /// Refused without an attempt and moved to the dead-letter list: addressed to no
    /// configured hook, or not built by a dispatcher holding the hook's secret.
    pub refused: usize,
    /// Outbox objects that do not parse as deliveries, moved aside to
    /// `webhooks/unreadable/` so they never block the others.
    pub unreadable: usize,
}

/// The MLflow event name (`entity.action`) and `data` payload of an event.
fn mlflow_event(event: &RegistryEvent) -> (String, Value) {
    let (name, data) = match event {
        RegistryEvent::ModelCreated { name, description, tags } => {
            ("registered_model.created", json!({ "name": name, "description": description, "tags": tags }))
        }
        RegistryEvent::VersionCreated { name, version, source, run_id, description, tags } => (
            "model_version.created",
            json!({ "name": name, "version": version.to_string(), "source": source, "run_id": run_id,
                    "description": description, "tags": tags }),
        ),
        RegistryEvent::ModelTagSet { name, key, value } => {
            ("registered_model_tag.set", json!({ "name": name, "key": key, "value": value }))
        }
        RegistryEvent::ModelTagDeleted { name, key } => {
            ("registered_model_tag.deleted", json!({ "name": name, "key": key }))
        }
        RegistryEvent::VersionTagSet { name, version, key, value } => (
            "model_version_tag.set",
            json!({ "name": name, "version": version.to_string(), "key": key, "value": value }),
        ),
        RegistryEvent::VersionTagDeleted { name, version, key } => {
            ("model_version_tag.deleted", json!({ "name": name, "version": version.to_string(), "key": key }))
        }
        RegistryEvent::AliasSet { name, alias, version, previous } => (
            "model_version_alias.created",
            json!({ "name": name, "alias": alias, "version": version.to_string(),
                    "previous_version": previous.map(|v| v.to_string()) }),
        ),
        RegistryEvent::AliasDeleted { name, alias, previous } => (
            "model_version_alias.deleted",
            json!({ "name": name, "alias": alias, "previous_version": previous.to_string() }),
        ),
        RegistryEvent::VersionDeleted { name, version } => {
            ("model_version.deleted", json!({ "name": name, "version": version.to_string() }))
        }
        RegistryEvent::ModelDeleted { name } => ("registered_model.deleted", json!({ "name": name })),
    };
    (name.to_owned(), data)
}

/// `v1,<base64 HMAC-SHA256(secret, "{delivery_id}.{timestamp}.{payload}")>`, MLflow's
/// webhook signature.
pub fn sign(secret: &str, delivery_id: &str, timestamp: &str, payload: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(format!("{delivery_id}.{timestamp}.{payload}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("{SIGNATURE_VERSION},{}", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Why a received webhook was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature header is absent or not `v1,<base64>`.
    #[error("malformed or missing signature")]
    Malformed,
    /// The timestamp is older (or further in the future) than allowed: a replay.
    #[error("timestamp {timestamp} is {age_seconds} s away from now, more than the {max_age_seconds} s allowed")]
    Stale {
        /// The request's timestamp.
        timestamp: i64,
        /// How far from now it is.
        age_seconds: i64,
        /// The tolerance.
        max_age_seconds: i64,
    },
    /// The signature does not match the payload and secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a received webhook: the signature over delivery id, timestamp and body, and a
/// timestamp within `max_age` of `now` (replay protection). Compares in constant time.
///
/// ```
/// use mlops_registry::{sign, verify};
/// let (id, ts, body) = ("d1", "1700000000", r#"{"entity":"model_version"}"#);
/// let signature = sign("s3cret", id, ts, body);
/// let now = chrono::DateTime::from_timestamp(1_700_000_010, 0).unwrap();
/// assert!(verify("s3cret", &signature, id, ts, body, now, std::time::Duration::from_secs(300)).is_ok());
/// assert!(verify("other", &signature, id, ts, body, now, std::time::Duration::from_secs(300)).is_err());
/// ```
///
/// # Errors
/// [`VerifyError`] saying why the request must be rejected.
pub fn verify(
    secret: &str,
    signature: &str,
    delivery_id: &str,
    timestamp: &str,
    body: &str,
    now: DateTime<Utc>,
    max_age: Duration,
) -> std::result::Result<(), VerifyError> {
    let Some(encoded) = signature.strip_prefix("v1,") else { return Err(VerifyError::Malformed) };
    let expected = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| VerifyError::Malformed)?;
    let sent_at: i64 = timestamp.parse().map_err(|_| VerifyError::Malformed)?;
    let age = i64::try_from(now.timestamp().abs_diff(sent_at)).unwrap_or(i64::MAX);
    let max_age_seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if age > max_age_seconds {
        return Err(VerifyError::Stale { timestamp: sent_at, age_seconds: age, max_age_seconds });
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| VerifyError::Malformed)?;
    mac.update(format!("{delivery_id}.{timestamp}.{body}").as_bytes());
    mac.verify_slice(&expected).map_err(|_| VerifyError::Mismatch)
}

static DELIVERY_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The HMAC a delivery is sealed with: over its id, URL, event and payload, with the hook's
/// secret (and a context, so a seal is never a valid request signature).
fn seal_mac(secret: &str, delivery: &Delivery) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    for part in ["mlops-webhook-seal", &delivery.id, &delivery.url, &delivery.event, &delivery.payload] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

fn seal(secret: &str, delivery: &Delivery) -> String {
    base64::engine::general_purpose::STANDARD.encode(seal_mac(secret, delivery).finalize().into_bytes())
}

/// Sends registry events to webhooks, at least once, surviving restarts.
///
/// Each event is first written, one [`Delivery`] per matching webhook, to an outbox on an
/// object store (`<root>/webhooks/outbox/`); [`deliver_due`](Self::deliver_due) then posts
/// what is due, signed as MLflow signs webhooks, removes what was delivered, reschedules
/// what failed with a retryable status (429, 5xx, no connection; `Retry-After` honoured)
/// with exponential backoff, and moves what failed for the last time or was refused for
/// good (other 4xx) to `<root>/webhooks/dead/`. A process that dies leaves its outbox for
/// the next one. Receivers deduplicate by delivery id. In a service,
/// [`spawn`](Self::spawn) feeds it an [`ObservedRegistry`](crate::ObservedRegistry)'s
/// events and delivers on a timer.
///
/// ```
/// use std::sync::Arc;
/// use mlops_registry::object_store::memory::InMemory;
/// use mlops_registry::{RegistryEvent, RetryPolicy, Webhook, WebhookDispatcher};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let hook = Webhook::new("http://127.0.0.1:9/hooks/registry", Some("s3cret".into()));
/// let outbox = Arc::new(InMemory::new());
/// let dispatcher = WebhookDispatcher::new(outbox, "registry".into(), vec![hook], RetryPolicy::default())?;
///
/// let event = RegistryEvent::ModelCreated { name: "fraud".parse()?, description: String::new(), tags: Default::default() };
/// assert_eq!(dispatcher.enqueue(&event).await?, 1);
/// // Nothing listens there: the delivery stays in the outbox, to be tried again later.
/// let report = dispatcher.deliver_due().await?;
/// assert_eq!((report.delivered, report.retrying), (0, 1));
/// assert_eq!(dispatcher.pending().await?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct WebhookDispatcher {
    store: Arc<dyn ObjectStore>,
    root: Path,
    hooks: Vec<Webhook>,
    retry: RetryPolicy,
    client: reqwest::Client,
}

impl WebhookDispatcher {
    /// A dispatcher for `hooks`, keeping its outbox under `root` on `store`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a retry policy with a zero request timeout or no attempt;
    /// [`Error::Backend`] when the HTTP client cannot be built.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, hooks: Vec<Webhook>, retry: RetryPolicy) -> Result<Self> {
        if retry.request_timeout.is_zero() || retry.max_attempts == 0 {
            return Err(Error::InvalidArgument(
                "a webhook retry policy needs a request timeout and at least one attempt".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(retry.request_timeout)
            // A receiver's redirect would send a signed payload to an address nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::backend("building the webhook HTTP client", e))?;
        Ok(Self { store, root, hooks, retry, client })
    }

    fn hook_of(&self, delivery: &Delivery) -> Option<&Webhook> {
        self.hooks.iter().find(|h| h.url == delivery.url)
    }

    /// Whether `delivery` is one this dispatcher may send: to a configured hook and, for a
    /// hook with a secret, sealed with it.
    fn check_built_here(&self, delivery: &Delivery) -> std::result::Result<(), String> {
        let hook = self.hook_of(delivery).ok_or_else(|| {
            format!("refused: `{}` is not a configured webhook", delivery.url.chars().take(200).collect::<String>())
        })?;
        let Some(secret) = hook.secret.as_deref() else { return Ok(()) };
        let sealed = delivery
            .seal
            .as_deref()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .is_some_and(|given| seal_mac(secret, delivery).verify_slice(&given).is_ok());
        if sealed { Ok(()) } else { Err("refused: its seal does not match the hook's secret".into()) }
    }

    fn outbox(&self) -> Path {
        self.root.clone().join("webhooks").join("outbox")
    }

    fn dead(&self) -> Path {
        self.root.clone().join("webhooks").join("dead")
    }

    /// Writes one delivery per webhook that wants `event` to the outbox; returns how many.
    ///
    /// # Errors
    /// [`Error::Backend`] when the outbox cannot be written.
    pub async fn enqueue(&self, event: &RegistryEvent) -> Result<usize> {
        let (name, data) = mlflow_event(event);
        let (entity, action) = name.split_once('.').unwrap_or((name.as_str(), ""));
        let now = Utc::now();
        let payload =
            json!({ "entity": entity, "action": action, "timestamp": now.to_rfc3339(), "data": data }).to_string();
        let mut queued = 0;
        for hook in self.hooks.iter().filter(|h| h.events.is_empty() || h.events.contains(&name)) {
            let sequence = DELIVERY_SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let nanos = now.timestamp_nanos_opt().unwrap_or_default();
            let mut delivery = Delivery {
                id: format!("{nanos:020}-{:x}-{sequence}", std::process::id()),
                url: hook.url.clone(),
                event: name.clone(),
                payload: payload.clone(),
                attempts: 0,
                next_attempt_at: now,
                last_error: None,
                seal: None,
            };
            delivery.seal = hook.secret.as_deref().map(|secret| seal(secret, &delivery));
            self.write(&self.outbox(), &delivery).await?;
            queued += 1;
        }
        Ok(queued)
    }

    async fn write(&self, dir: &Path, delivery: &Delivery) -> Result<()> {
        let path = dir.clone().join(format!("{}.json", delivery.id));
        let bytes = serde_json::to_vec(delivery).map_err(|e| Error::backend("encoding a webhook delivery", e))?;
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| Error::backend(format!("writing `{path}`"), e))?;
        Ok(())
    }

    /// Deliveries waiting in the outbox, oldest first.
    ///
    /// # Errors
    /// [`Error::Backend`] when the outbox cannot be read.
    pub async fn pending(&self) -> Result<Vec<Delivery>> {
        let read = read_json_objects(self.store.as_ref(), &self.outbox()).await?;
        Ok(read.documents.into_iter().map(|(_, delivery)| delivery).collect())
    }

    /// Deliveries given up on, with the last error.
    ///
    /// # Errors
    /// [`Error::Backend`] when the dead-letter list cannot be read.
    pub async fn dead_letters(&self) -> Result<Vec<Delivery>> {
        let read = read_json_objects(self.store.as_ref(), &self.dead()).await?;
        Ok(read.documents.into_iter().map(|(_, delivery)| delivery).collect())
    }

    fn unreadable(&self) -> Path {
        self.root.clone().join("webhooks").join("unreadable")
    }

    /// Moves an object that is not a delivery out of the outbox, bytes as they are.
    async fn set_aside(&self, path: &Path) -> Result<()> {
        let target = self.unreadable().join(path.filename().unwrap_or("object.json"));
        self.store.rename(path, &target).await.map_err(|e| Error::backend(format!("moving `{path}` aside"), e))
    }

    /// Attempts every delivery that is due.
    ///
    /// # Errors
    /// [`Error::Backend`] when the outbox cannot be read or updated; delivery failures are
    /// not errors, they are counted in the report.
    pub async fn deliver_due(&self) -> Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        let now = Utc::now();
        let outbox = read_json_objects::<Delivery>(self.store.as_ref(), &self.outbox()).await?;
        for (path, _) in &outbox.unreadable {
            self.set_aside(path).await?;
            report.unreadable += 1;
        }
        for (path, mut delivery) in outbox.documents.into_iter().filter(|(_, d)| d.next_attempt_at <= now) {
            if let Err(why) = self.check_built_here(&delivery) {
                delivery.last_error = Some(why);
                self.write(&self.dead(), &delivery).await?;
                self.store.delete(&path).await.map_err(|e| Error::backend(format!("removing `{path}`"), e))?;
                report.refused += 1;
                continue;
            }
            delivery.attempts = delivery.attempts.saturating_add(1);
            let attempt = self.post(&delivery).await;
            report_attempt(&delivery, &attempt, self.retry.max_attempts);
            match attempt {
                Ok(()) => report.delivered += 1,
                Err(failure) => {
                    delivery.last_error = Some(failure.reason);
                    if failure.retryable && delivery.attempts < self.retry.max_attempts {
                        let backoff = self
                            .retry
                            .initial_backoff
                            .saturating_mul(1 << (delivery.attempts - 1).min(16))
                            .min(self.retry.max_backoff)
                            .max(failure.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
                        let now = Utc::now();
                        delivery.next_attempt_at = chrono::TimeDelta::from_std(backoff)
                            .ok()
                            .and_then(|backoff| now.checked_add_signed(backoff))
                            .unwrap_or(DateTime::<Utc>::MAX_UTC);
                        self.write(&self.outbox(), &delivery).await?;
                        report.retrying += 1;
                        continue;
                    }
                    self.write(&self.dead(), &delivery).await?;
                    report.dead += 1;
                }
            }
            self.store.delete(&path).await.map_err(|e| Error::backend(format!("removing `{path}`"), e))?;
        }
        Ok(report)
    }

    async fn post(&self, delivery: &Delivery) -> std::result::Result<(), Failure> {
        let timestamp = Utc::now().timestamp().to_string();
        let mut request = self
            .client
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(DELIVERY_ID_HEADER, &delivery.id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .body(delivery.payload.clone());
        if let Some(secret) = self.hook_of(delivery).and_then(|h| h.secret.as_deref()) {
            request = request.header(SIGNATURE_HEADER, sign(secret, &delivery.id, &timestamp, &delivery.payload));
        }
        let response = request.send().await.map_err(|e| Failure {
            retryable: true,
            retry_after: None,
            reason: format!("request failed: {e}"),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(Failure {
            retryable: status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            retry_after,
            reason: format!("receiver answered {status}"),
        })
    }

    /// Enqueues every event from `events` and delivers what is due every `tick`, on the
    /// caller's tokio runtime, until the channel closes or the handle is aborted. Enqueuing
    /// and delivering run side by side, so a slow receiver never keeps events from reaching
    /// the outbox; what is still queued when the task ends stays in the outbox for the next
    /// dispatcher. Size the channel for bursts: events a lagging subscriber misses are not
    /// enqueued.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero `tick`.
    pub fn spawn(
        self,
        mut events: broadcast::Receiver<RegistryEvent>,
        tick: Duration,
    ) -> Result<tokio::task::JoinHandle<()>> {
        if tick.is_zero() {
            return Err(Error::InvalidArgument("the webhook dispatcher's tick must be longer than zero".into()));
        }
        Ok(tokio::spawn(async move {
            let enqueue = async {
                loop {
                    match events.recv().await {
                        // Only an outbox store that is down can lose the event here.
                        Ok(event) => {
                            let _ = self.enqueue(&event).await;
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            };
            let deliver = async {
                let mut ticks = tokio::time::interval(tick);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let _ = self.deliver_due().await;
                }
            };
            tokio::select! {
                _ = enqueue => {}
                _ = deliver => {}
            }
        }))
    }
}

struct Failure {
    retryable: bool,
    retry_after: Option<Duration>,
    reason: String,
}

/// The event and metric of one delivery attempt. The receiver is named by its origin only:
/// a URL's path or query may hold a token.
fn report_attempt(delivery: &Delivery, attempt: &std::result::Result<(), Failure>, max_attempts: u32) {
    let receiver = url::Url::parse(&delivery.url)
        .map_or_else(|_| "unparsable URL".to_owned(), |u| u.origin().ascii_serialization());
    let outcome = match attempt {
        Ok(()) => "delivered",
        Err(failure) if failure.retryable && delivery.attempts < max_attempts => "retry",
        Err(_) => "failed",
    };
    match attempt {
        Ok(()) => tracing::debug!(
            receiver,
            event = %delivery.event,
            delivery_id = %delivery.id,
            attempt = delivery.attempts,
            outcome,
            "webhook attempt"
        ),
        Err(failure) => tracing::warn!(
            receiver,
            event = %delivery.event,
            delivery_id = %delivery.id,
            attempt = delivery.attempts,
            outcome,
            error = %failure.reason,
            "webhook attempt"
        ),
    }
    metrics::counter!(crate::telemetry::WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
}
