//! A model that follows its alias.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use mlops_core::{FlavorRegistry, ModelUri};
use parking_lot::Mutex;
use polars::prelude::DataFrame;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::events::RegistryEvent;
use crate::registry::{LoadedModel, Registry, RegistryExt};
use crate::telemetry::{
    LIVE_MODEL_CONFIRMED_AT, LIVE_MODEL_REFRESH_FAILURES, LIVE_MODEL_SWAPS, LIVE_MODEL_VERSION, unix_now,
};
use crate::version::ModelVersion;

/// A refresh that has not succeeded for this many poll intervals makes a [`LiveModel`]
/// stale.
pub const STALE_AFTER_POLLS: u32 = 3;

/// How a [`LiveModel`] is keeping up with its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowStatus {
    /// The version serving.
    pub version: u64,
    /// The version the URI designated when last resolved; another than `version` while
    /// that one fails to load (the old version keeps serving).
    pub target_version: u64,
    /// When the version serving was swapped in (or first loaded).
    pub serving_since: SystemTime,
    /// How long ago the URI was last resolved successfully (at start, at the latest).
    pub since_confirmed: Duration,
    /// Whether the background poller is still running.
    pub polling: bool,
    /// The error of the last refresh, if it failed.
    pub last_error: Option<String>,
}

impl FollowStatus {
    /// What is wrong, if anything: the poller stopped, or the URI has not been confirmed
    /// for [`STALE_AFTER_POLLS`] poll intervals.
    pub fn problem(&self, poll_interval: Duration) -> Option<String> {
        let why = self.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        if !self.polling {
            return Some(format!("stopped following its URI at version {}{why}", self.version));
        }
        let stale = poll_interval.saturating_mul(STALE_AFTER_POLLS);
        (self.since_confirmed > stale).then(|| {
            format!(
                "serving version {} unconfirmed for {:.1} s (polls every {:.1} s){why}",
                self.version,
                self.since_confirmed.as_secs_f64(),
                poll_interval.as_secs_f64()
            )
        })
    }
}

/// A prediction and the version that made it.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The model's output.
    pub frame: DataFrame,
    /// The version that produced it.
    pub version: u64,
}

/// The model behind a URI such as `models:/transactions@champion`, kept current.
///
/// A background task (on the caller's tokio runtime) resolves the URI every poll interval;
/// when it designates another version, that version is downloaded, verified, loaded and
/// checked on its input example *before* it replaces the current one with one atomic swap.
/// A version that fails to load never replaces a working one: the old version keeps
/// serving and the failure is kept in [`last_error`](Self::last_error). A loader or model
/// that panics fails that version the same way, and the poller goes on;
/// [`status`](Self::status) tells whether the URI is still being confirmed.
///
/// The predict path takes no lock and does no I/O: it clones an `Arc` to the current model.
/// A prediction is made entirely by one version, which it reports.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use mlops_core::{FlavorRegistry, TabularClassifierParams};
/// use mlops_registry::{CreateModel, CreateVersion, LiveModel, MemoryRegistry, Registry, SetAlias};
/// use polars::prelude::*;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
/// let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
/// let registry = Arc::new(MemoryRegistry::new());
/// let name: mlops_core::ModelName = "transactions".parse()?;
/// registry.create_model(CreateModel::new(name.clone())).await?;
/// for _ in 0..2 {
///     registry.create_version(CreateVersion::new(name.clone(), model.package(Some(&train))?)).await?;
/// }
/// registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await?;
///
/// let live = LiveModel::start(registry.clone(), "models:/transactions@champion".parse()?, FlavorRegistry::default(), Duration::from_secs(5)).await?;
/// assert_eq!(live.predict(&train)?.version, 1);
///
/// registry.set_alias(SetAlias::new(name, "champion", 2)).await?;
/// live.refresh().await?; // or wait for the next poll
/// assert_eq!(live.predict(&train)?.version, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LiveModel {
    shared: Arc<Shared>,
    poller: tokio::task::JoinHandle<()>,
    listener: Option<tokio::task::JoinHandle<()>>,
}

struct Shared {
    registry: Arc<dyn Registry>,
    uri: ModelUri,
    flavors: FlavorRegistry,
    current: ArcSwap<LoadedModel>,
    last_error: Mutex<Option<String>>,
    poll_interval: Duration,
    /// When the URI was last resolved successfully.
    confirmed_at: Mutex<Instant>,
    /// What the URI designated when last resolved, and when the serving version came in.
    target_version: std::sync::atomic::AtomicU64,
    serving_since: Mutex<SystemTime>,
    /// Serializes refreshes, so a poll and an explicit refresh never load the same version
    /// twice. Held across awaits, hence tokio's mutex; never touched by the predict path.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LiveModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveModel")
            .field("uri", &self.shared.uri.to_string())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl LiveModel {
    /// Loads the model `uri` designates now and starts following it, polling every
    /// `poll_interval`. Must be called within a tokio runtime, which runs the poller; the
    /// poller stops when the `LiveModel` is dropped.
    ///
    /// # Errors
    /// As [`RegistryExt::load_model`] when the first load fails, and
    /// [`Error::InvalidArgument`] for a zero poll interval or a model that fails its own
    /// input example.
    pub async fn start(
        registry: Arc<dyn Registry>,
        uri: ModelUri,
        flavors: FlavorRegistry,
        poll_interval: Duration,
    ) -> Result<Self> {
        if poll_interval.is_zero() {
            return Err(Error::InvalidArgument("the poll interval of a live model must be positive".into()));
        }
        let span = tracing::debug_span!("live_model", uri = %uri);
        let started = Instant::now();
        let first = async {
            let version = registry.resolve(&uri).await?;
            load_checked(registry.as_ref(), version, &flavors).await
        }
        .instrument(span.clone())
        .await?;
        let label = uri.to_string();
        span.in_scope(|| {
            tracing::info!(
                uri = %label,
                model = %first.version.name,
                version = first.version.version,
                duration_ms = crate::telemetry::millis(started.elapsed()),
                "model loaded"
            );
        });
        metrics::gauge!(LIVE_MODEL_VERSION, "uri" => label.clone()).set(first.version.version as f64);
        metrics::gauge!(LIVE_MODEL_CONFIRMED_AT, "uri" => label).set(unix_now());
        let target_version = std::sync::atomic::AtomicU64::new(first.version.version);
        let shared = Arc::new(Shared {
            registry,
            uri,
            flavors,
            current: ArcSwap::from_pointee(first),
            last_error: Mutex::new(None),
            poll_interval,
            confirmed_at: Mutex::new(Instant::now()),
            target_version,
            serving_since: Mutex::new(SystemTime::now()),
            refreshing: tokio::sync::Mutex::new(()),
        });
        let poller = tokio::spawn(poll(Arc::downgrade(&shared), poll_interval));
        Ok(Self { shared, poller, listener: None })
    }

    /// Also refreshes as soon as `events` reports a change that can move the URI (an alias
    /// set or deleted on the model, a new version for `latest`), instead of waiting for the
    /// next poll. Polling goes on, for changes made by other processes.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use std::time::Duration;
    /// # use mlops_core::FlavorRegistry;
    /// # use mlops_registry::{CreateModel, CreateVersion, LiveModel, MemoryRegistry, ObservedRegistry, Registry, SetAlias};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// # let train = polars::prelude::df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
    /// # let model = mlops_core::TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
    /// let registry = Arc::new(ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 64));
    /// # let name: mlops_core::ModelName = "transactions".parse()?;
    /// # registry.create_model(CreateModel::new(name.clone())).await?;
    /// # for _ in 0..2 { registry.create_version(CreateVersion::new(name.clone(), model.package(None)?)).await?; }
    /// # registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await?;
    /// let live = LiveModel::start(registry.clone(), "models:/transactions@champion".parse()?, FlavorRegistry::default(), Duration::from_secs(60))
    ///     .await?
    ///     .with_events(registry.subscribe());
    /// registry.set_alias(SetAlias::new(name, "champion", 2)).await?;
    /// # let deadline = std::time::Instant::now() + Duration::from_secs(10);
    /// while live.version() != 2 {
    ///     # assert!(std::time::Instant::now() < deadline);
    ///     tokio::time::sleep(Duration::from_millis(5)).await; // well before the next poll
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_events(mut self, events: tokio::sync::broadcast::Receiver<RegistryEvent>) -> Self {
        if let Some(previous) = self.listener.replace(tokio::spawn(listen(Arc::downgrade(&self.shared), events))) {
            previous.abort();
        }
        self
    }

    /// The URI being followed.
    pub fn uri(&self) -> &ModelUri {
        &self.shared.uri
    }

    /// The loaded model now serving. Holding it keeps that version alive even after a swap.
    pub fn current(&self) -> Arc<LoadedModel> {
        self.shared.current.load_full()
    }

    /// The version now serving.
    pub fn version(&self) -> u64 {
        self.shared.current.load().version.version
    }

    /// Predicts with the version now serving, and says which version that was.
    ///
    /// # Errors
    /// The model's errors (schema violations name the column).
    pub fn predict(&self, input: &DataFrame) -> Result<Prediction> {
        let loaded = self.current();
        Ok(Prediction { frame: loaded.model.predict(input)?, version: loaded.version.version })
    }

    /// Resolves the URI now and, if it designates another version, loads, checks and swaps
    /// it in. Returns the new version when a swap happened.
    ///
    /// # Errors
    /// Resolution or load errors; the serving version is unchanged and the error is also
    /// kept in [`last_error`](Self::last_error).
    pub async fn refresh(&self) -> Result<Option<u64>> {
        self.shared.refresh().await
    }

    /// The error of the last refresh, if it failed; cleared by a successful one.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().clone()
    }

    /// The poll interval given at start.
    pub fn poll_interval(&self) -> Duration {
        self.shared.poll_interval
    }

    /// How the model is keeping up with its URI.
    pub fn status(&self) -> FollowStatus {
        FollowStatus {
            version: self.version(),
            target_version: self.shared.target_version.load(std::sync::atomic::Ordering::Relaxed),
            serving_since: *self.shared.serving_since.lock(),
            since_confirmed: self.shared.confirmed_at.lock().elapsed(),
            polling: !self.poller.is_finished(),
            last_error: self.last_error(),
        }
    }
}

impl Drop for LiveModel {
    fn drop(&mut self) {
        self.poller.abort();
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl Shared {
    async fn refresh(&self) -> Result<Option<u64>> {
        let _one_at_a_time = self.refreshing.lock().await;
        let span = tracing::debug_span!("live_model", uri = %self.uri);
        let outcome = self.swap_if_moved().instrument(span.clone()).await;
        let error = outcome.as_ref().err().map(ToString::to_string);
        if let Some(error) = &error {
            self.failed(error, &span);
        }
        *self.last_error.lock() = error;
        outcome
    }

    /// Reports a refresh that failed; the serving version stays.
    fn failed(&self, error: &str, span: &tracing::Span) {
        let version = self.current.load().version.version;
        span.in_scope(|| tracing::warn!(uri = %self.uri, version, error, "refresh failed"));
        metrics::counter!(LIVE_MODEL_REFRESH_FAILURES, "uri" => self.uri.to_string()).increment(1);
    }

    /// A refresh on its own task, so a panic in a registry backend fails that refresh
    /// (kept in `last_error`) instead of the poller or listener that asked for it.
    async fn refresh_isolated(self: Arc<Self>) {
        let shared = Arc::clone(&self);
        if let Err(failed) = tokio::spawn(async move { shared.refresh().await }).await {
            let message = if failed.is_panic() {
                mlops_core::panic_message(&*failed.into_panic())
            } else {
                "the refresh was cancelled".to_owned()
            };
            let error = format!("refreshing `{}` failed unexpectedly: {message}", self.uri);
            self.failed(&error, &tracing::Span::current());
            *self.last_error.lock() = Some(error);
        }
    }

    async fn swap_if_moved(&self) -> Result<Option<u64>> {
        // The version's number first (one request on every backend): most polls end here.
        let number = self.registry.resolve_version(&self.uri).await?;
        let label = self.uri.to_string();
        let from_version = self.current.load().version.version;
        let confirmed = |version: u64| {
            *self.confirmed_at.lock() = Instant::now();
            metrics::gauge!(LIVE_MODEL_CONFIRMED_AT, "uri" => label.clone()).set(unix_now());
            self.target_version.store(version, std::sync::atomic::Ordering::Relaxed);
        };
        if number == from_version {
            confirmed(number);
            return Ok(None);
        }
        let target = self.registry.resolve(&self.uri).await?;
        confirmed(target.version);
        if target.version == from_version {
            return Ok(None);
        }
        let started = Instant::now();
        let loaded = load_checked(self.registry.as_ref(), target, &self.flavors).await?;
        let version = loaded.version.version;
        tracing::info!(
            uri = %label,
            model = %loaded.version.name,
            from_version,
            to_version = version,
            duration_ms = crate::telemetry::millis(started.elapsed()),
            "model swapped"
        );
        self.current.store(Arc::new(loaded));
        *self.serving_since.lock() = SystemTime::now();
        metrics::counter!(LIVE_MODEL_SWAPS, "uri" => label.clone()).increment(1);
        metrics::gauge!(LIVE_MODEL_VERSION, "uri" => label).set(version as f64);
        Ok(Some(version))
    }
}

/// Loads a version and proves it can predict: on its input example when the package has one.
async fn load_checked(registry: &dyn Registry, version: ModelVersion, flavors: &FlavorRegistry) -> Result<LoadedModel> {
    let package = registry.download_package(&version.name, version.version).await?;
    let model = flavors.load(&package)?;
    let input_example = package.input_example()?;
    if let Some(example) = &input_example {
        let what = format!("version {} of model `{}` on its input example", version.version, version.name);
        let predicted = mlops_core::catching_panics(&what, || model.predict(example))?;
        if predicted.height() != example.height() {
            return Err(Error::InvalidArgument(format!(
                "version {} of model `{}` returned {} rows for its {}-row input example",
                version.version,
                version.name,
                predicted.height(),
                example.height()
            )));
        }
    }
    Ok(LoadedModel { version, model, input_example })
}

/// Whether `event` can change what `uri` resolves to.
fn moves(uri: &ModelUri, event: &RegistryEvent) -> bool {
    match (uri, event) {
        (ModelUri::Alias { name, alias }, RegistryEvent::AliasSet { name: n, alias: a, .. })
        | (ModelUri::Alias { name, alias }, RegistryEvent::AliasDeleted { name: n, alias: a, .. }) => {
            name == n && alias == a
        }
        (ModelUri::Latest { name }, RegistryEvent::VersionCreated { name: n, .. }) => name == n,
        (ModelUri::Run { .. }, RegistryEvent::VersionCreated { .. }) => true,
        _ => false,
    }
}

async fn listen(shared: std::sync::Weak<Shared>, mut events: tokio::sync::broadcast::Receiver<RegistryEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let relevant = match events.recv().await {
            Ok(event) => shared.upgrade().is_some_and(|s| moves(&s.uri, &event)),
            // Missed events may have moved the URI: check.
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if relevant {
            let Some(shared) = shared.upgrade() else { return };
            shared.refresh_isolated().await;
        }
    }
}

async fn poll(shared: std::sync::Weak<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        // Failures are kept in `last_error`; the serving version stays.
        shared.refresh_isolated().await;
    }
}
