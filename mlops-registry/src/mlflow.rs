//! A registry on an MLflow tracking server, over its REST API.

mod artifacts;
mod client;
mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mlops_core::{ModelName, Package, check_alias};
use reqwest::Method;
use serde_json::json;
use url::Url;

use self::client::{ApiError, Auth, Repeat, RestClient};
use self::wire::{DIGEST_TAG, FLAVOR_TAG, RESERVED_TAG_PREFIX};
use crate::alias::{AliasMode, SetAlias};
use crate::error::{Error, Result, alias_not_found, model_not_found, refuse_if_aliased, version_not_found};
use crate::model::{Change, CreateModel, RegisteredModel};
use crate::registry::Registry;
use crate::retry::Backoff;
use crate::telemetry::traced;
use crate::version::{CreateVersion, Lineage, ModelVersion, SearchVersions};

/// How many artifact files or runs are fetched at once.
const CONCURRENCY: usize = 8;
/// Page size of searches.
const PAGE_SIZE: &str = "1000";
/// The most pages of a search followed: ten million items.
const MAX_PAGES: usize = 10_000;
/// Where a registration without a run puts the package inside the run it creates, as
/// `mlflow.<flavor>.log_model(..., name="model")` does.
const DEFAULT_ARTIFACT_PATH: &str = "model";
/// Name of this backend in [`Error::NotImplemented`].
const BACKEND: &str = "MLflow";

/// A registry on an MLflow tracking server, the one a data-science team already runs: a
/// Rust service registers, tags and promotes versions that the Python `MlflowClient` and
/// the MLflow UI see, and follows aliases that Python moves.
///
/// How the registry's contract maps onto MLflow:
///
/// - Models, versions, tags, descriptions and aliases are MLflow's own, through
///   `/api/2.0/mlflow/registered-models/*` and `model-versions/*`.
/// - [`create_version`](Registry::create_version) records lineage on an MLflow run: the run
///   named by [`CreateVersion::run`] (it must exist on the server), or a new run in the
///   registry's experiment. Parameters and metrics go through `runs/log-batch`, the training
///   dataset through `runs/log-inputs`. The package is uploaded through the server's artifact
///   proxy (`/api/2.0/mlflow-artifacts/artifacts/...`) under the run's artifact location,
///   manifest last, and only then is the version created, with that location as its source
///   and the run's id. A run's path already holding a different package is refused rather
///   than overwritten.
/// - A version's lineage is read back from its run, so parameters and metrics logged there
///   from Python show up too.
/// - The package's flavor and digest travel as version tags `mlops.flavor` and
///   `mlops.package_digest`; tags under `mlops.` are the registry's, hidden from
///   [`ModelVersion::tags`] and refused as user tags.
/// - Aliases appear on every version read, listed and searched: MLflow's version search
///   leaves them out, so they are filled in from the registered models.
///
/// What MLflow cannot do, and how this backend says so:
///
/// - Alias moves have no condition in MLflow's API, so [`AliasMode::Create`] and
///   [`AliasMode::Update`] fail with [`Error::NotImplemented`] instead of pretending to be
///   atomic; [`AliasMode::Overwrite`] works, and the previous version it returns is the
///   one read just before the move.
/// - Version sources must be on the artifact proxy (`mlflow-artifacts:`) to be uploaded or
///   downloaded; a run whose artifact location is elsewhere fails with
///   [`Error::NotImplemented`].
/// - Models whose names are not valid [`ModelName`]s (MLflow allows spaces, for example)
///   are left out of [`list_models`](Registry::list_models) and searches.
///
/// ```no_run
/// use mlops_registry::{MlflowRegistry, Registry, RegistryExt};
/// # async fn run() -> mlops_registry::Result<()> {
/// // MLFLOW_TRACKING_URI, and MLFLOW_TRACKING_TOKEN or _USERNAME / _PASSWORD if set.
/// let registry = MlflowRegistry::from_env()?.experiment("fraud-retraining").build()?;
/// let champion = registry.resolve(&"models:/transactions@champion".parse()?).await?;
/// println!("serving version {} from {}", champion.version, champion.source);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MlflowRegistry {
    client: RestClient,
    experiment: String,
    experiment_id: Arc<tokio::sync::OnceCell<String>>,
}

/// Options of an [`MlflowRegistry`]: server, credentials, experiment, timeout.
#[derive(Debug, Clone)]
pub struct MlflowRegistryBuilder {
    tracking_uri: String,
    auth: Auth,
    experiment: String,
    timeout: Duration,
    reuse_connections: Option<bool>,
    retry: Backoff,
}

/// How an [`MlflowRegistry`] retries a request that is safe to repeat when the server is
/// busy (429, 502, 503, 504) or unreachable: three retries from 100 ms up to 2 s, honouring
/// a `Retry-After` of up to 30 s. Requests that could act twice (creating a run or a
/// version) are never repeated.
pub const MLFLOW_RETRY: Backoff = Backoff {
    max_retries: 3,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(2),
    max_retry_after: Duration::from_secs(30),
};

impl MlflowRegistryBuilder {
    /// Retries requests that are safe to repeat with `retry` instead of [`MLFLOW_RETRY`].
    #[must_use]
    pub fn retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }

    /// Sends `Authorization: Bearer <token>` (a Databricks or MLflow access token).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    /// Sends HTTP basic authentication (MLflow's built-in authentication).
    #[must_use]
    pub fn basic_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic { username: username.into(), password: password.into() };
        self
    }

    /// The experiment (by name, created if absent) that holds the runs made for
    /// registrations that name no run. Default: `Default`.
    #[must_use]
    pub fn experiment(mut self, name: impl Into<String>) -> Self {
        self.experiment = name.into();
        self
    }

    /// Limit on each HTTP request, package uploads included. Default: 120 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether requests reuse open connections. Default: over `https` yes (a TLS handshake
    /// per request costs more than it saves), over plain `http` no: `mlflow server` answers
    /// a request on a kept-alive connection about 40 ms later than one on a fresh
    /// connection (48 ms against 10 ms measured on loopback with MLflow 3.17), while a new
    /// plain TCP connection costs well under a millisecond on a local network.
    #[must_use]
    pub fn reuse_connections(mut self, reuse: bool) -> Self {
        self.reuse_connections = Some(reuse);
        self
    }

    /// Builds the registry; nothing is sent to the server yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the tracking URI when it is not an `http(s)` URL;
    /// [`Error::Backend`] when the HTTP client cannot be set up.
    pub fn build(self) -> Result<MlflowRegistry> {
        let uri = &self.tracking_uri;
        let base = Url::parse(uri).map_err(|e| Error::InvalidArgument(format!("MLflow tracking URI `{uri}`: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::InvalidArgument(format!(
                "MLflow tracking URI `{uri}` must be an http:// or https:// server address"
            )));
        }
        let reuse = self.reuse_connections.unwrap_or(base.scheme() == "https");
        let client = RestClient::new(base, self.auth, self.timeout, reuse, self.retry)
            .map_err(|e| Error::backend("setting up the MLflow HTTP client", e))?;
        Ok(MlflowRegistry {
            client,
            experiment: self.experiment,
            experiment_id: Arc::new(tokio::sync::OnceCell::new()),
        })
    }
}

impl MlflowRegistry {
    /// A registry on the tracking server at `tracking_uri` (e.g. `http://127.0.0.1:5000`),
    /// without credentials.
    ///
    /// # Errors
    /// As [`MlflowRegistryBuilder::build`].
    pub fn new(tracking_uri: &str) -> Result<Self> {
        Self::builder(tracking_uri).build()
    }

    /// Options for the tracking server at `tracking_uri`.
    pub fn builder(tracking_uri: &str) -> MlflowRegistryBuilder {
        MlflowRegistryBuilder {
            tracking_uri: tracking_uri.to_owned(),
            auth: Auth::None,
            experiment: "Default".to_owned(),
            timeout: Duration::from_secs(120),
            reuse_connections: None,
            retry: MLFLOW_RETRY,
        }
    }

    /// Options read from MLflow's environment variables: `MLFLOW_TRACKING_URI`, and
    /// `MLFLOW_TRACKING_TOKEN` or `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `MLFLOW_TRACKING_URI` is not set.
    pub fn from_env() -> Result<MlflowRegistryBuilder> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let uri = var("MLFLOW_TRACKING_URI")
            .ok_or_else(|| Error::InvalidArgument("MLFLOW_TRACKING_URI is not set".to_owned()))?;
        let mut builder = Self::builder(&uri);
        if let Some(token) = var("MLFLOW_TRACKING_TOKEN") {
            builder = builder.token(token);
        } else if let Some(username) = var("MLFLOW_TRACKING_USERNAME") {
            builder = builder.basic_auth(username, var("MLFLOW_TRACKING_PASSWORD").unwrap_or_default());
        }
        Ok(builder)
    }

    /// The tracking server's address.
    pub fn tracking_uri(&self) -> &str {
        self.client.base().as_str()
    }

    /// Creates a run in the registry's experiment and returns its id: training code logs to
    /// it and names it in [`CreateVersion::run`].
    ///
    /// # Errors
    /// [`Error::Backend`] when the server fails.
    pub async fn create_run(&self, run_name: &str) -> Result<String> {
        Ok(self.start_run(run_name, &[]).await?.info.run_id)
    }

    async fn experiment_id(&self) -> Result<&str> {
        let id = self
            .experiment_id
            .get_or_try_init(|| async {
                let name = self.experiment.as_str();
                let context = || format!("finding MLflow experiment `{name}`");
                let found: std::result::Result<wire::ExperimentResponse, _> =
                    self.client.get("experiments/get-by-name", &[("experiment_name", name)]).await;
                match found {
                    Ok(found) => return Ok(found.experiment.experiment_id),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(api_error(context(), e)),
                }
                let created: std::result::Result<wire::CreatedExperiment, _> = self
                    .client
                    .call(Method::POST, "experiments/create", &json!({ "name": name }), Repeat::Unsafe)
                    .await;
                match created {
                    Ok(created) => Ok(created.experiment_id),
                    // Another process created it meanwhile.
                    Err(e) if e.code() == Some("RESOURCE_ALREADY_EXISTS") => self
                        .client
                        .get::<wire::ExperimentResponse>("experiments/get-by-name", &[("experiment_name", name)])
                        .await
                        .map(|found| found.experiment.experiment_id)
                        .map_err(|e| api_error(context(), e)),
                    Err(e) => Err(api_error(format!("creating MLflow experiment `{name}`"), e)),
                }
            })
            .await?;
        Ok(id)
    }

    async fn start_run(&self, run_name: &str, tags: &[wire::Tag]) -> Result<wire::Run> {
        let experiment_id = self.experiment_id().await?;
        let body = json!({
            "experiment_id": experiment_id,
            "run_name": run_name,
            "start_time": now_millis(),
            "tags": tags,
        });
        let created: wire::RunResponse = self
            .client
            .call(Method::POST, "runs/create", &body, Repeat::Unsafe)
            .await
            .map_err(|e| api_error(format!("creating a run in experiment `{}`", self.experiment), e))?;
        Ok(created.run)
    }

    async fn end_run(&self, run_id: &str, status: &str) -> Result<()> {
        let body = json!({ "run_id": run_id, "status": status, "end_time": now_millis() });
        self.client
            .call::<_, wire::Empty>(Method::POST, "runs/update", &body, Repeat::Safe)
            .await
            .map_err(|e| api_error(format!("ending run `{run_id}`"), e))?;
        Ok(())
    }

    async fn run(&self, run_id: &str) -> std::result::Result<wire::Run, ApiError> {
        Ok(self.client.get::<wire::RunResponse>("runs/get", &[("run_id", run_id)]).await?.run)
    }

    /// Logs the version's parameters, metrics and training dataset to its run.
    async fn log_lineage(&self, run_id: &str, lineage: &Lineage) -> Result<()> {
        let context = || format!("logging lineage to run `{run_id}`");
        if !lineage.params.is_empty() || !lineage.metrics.is_empty() {
            let timestamp = now_millis();
            let params: Vec<_> =
                lineage.params.iter().map(|(key, value)| json!({ "key": key, "value": value })).collect();
            let metrics: Vec<_> = lineage
                .metrics
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": value, "timestamp": timestamp, "step": 0 }))
                .collect();
            let body = json!({ "run_id": run_id, "params": params, "metrics": metrics });
            self.client
                .call::<_, wire::Empty>(Method::POST, "runs/log-batch", &body, Repeat::Safe)
                .await
                .map_err(|e| api_error(context(), e))?;
        }
        if let Some(dataset) = &lineage.training_data {
            let body = json!({
                "run_id": run_id,
                "datasets": [{
                    "tags": [{ "key": wire::DATASET_CONTEXT_TAG, "value": "training" }],
                    "dataset": {
                        "name": dataset.name,
                        "digest": dataset.digest,
                        "source_type": "local",
                        "source": json!({ "uri": dataset.name }).to_string(),
                    },
                }],
            });
            self.client
                .call::<_, wire::Empty>(Method::POST, "runs/log-inputs", &body, Repeat::Safe)
                .await
                .map_err(|e| api_error(context(), e))?;
        }
        Ok(())
    }

    async fn fetch_model(&self, name: &ModelName) -> Result<wire::Model> {
        let found: wire::ModelResponse = self
            .client
            .get("registered-models/get", &[("name", name.as_str())])
            .await
            .map_err(|e| not_found_or(e, || model_not_found(name), || format!("reading model `{name}`")))?;
        Ok(found.registered_model)
    }

    /// The version as MLflow holds it; a missing version is told apart from a missing model.
    async fn fetch_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        let number = version.to_string();
        match self
            .client
            .get::<wire::VersionResponse>("model-versions/get", &[("name", name.as_str()), ("version", &number)])
            .await
        {
            Ok(found) => found.model_version.into_version(),
            Err(e) if e.is_not_found() => {
                self.fetch_model(name).await?;
                Err(version_not_found(name, version))
            }
            Err(e) => Err(api_error(format!("reading version {version} of model `{name}`"), e)),
        }
    }

    /// The version an alias points at, without its lineage.
    async fn aliased(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        check_alias(alias)?;
        let found: std::result::Result<wire::VersionResponse, _> =
            self.client.get("registered-models/alias", &[("name", name.as_str()), ("alias", alias)]).await;
        match found {
            Ok(found) => found.model_version.into_version(),
            // MLflow reports an unknown alias as an invalid parameter, an unknown model as
            // missing: ask which one it was.
            Err(e) if e.is_not_found() || e.code() == Some("INVALID_PARAMETER_VALUE") => {
                self.fetch_model(name).await?;
                Err(alias_not_found(name, alias))
            }
            Err(e) => Err(api_error(format!("resolving alias `{alias}` of model `{name}`"), e)),
        }
    }

    /// Fills in the version's lineage from its run (none when the run is gone).
    async fn with_lineage(&self, mut version: ModelVersion) -> Result<ModelVersion> {
        if let Some(link) = &version.run {
            match self.run(&link.run_id).await {
                Ok(run) => version.lineage = run.lineage(),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(api_error(format!("reading run `{}`", link.run_id), e)),
            }
        }
        Ok(version)
    }

    /// Every item of a paged search, following `next_page_token`.
    async fn all_pages<P: wire::Page>(
        &self,
        endpoint: &str,
        query: &[(&str, &str)],
        context: &str,
    ) -> Result<Vec<P::Item>> {
        let mut items = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut paged = query.to_vec();
            paged.push(("max_results", PAGE_SIZE));
            if !token.is_empty() {
                paged.push(("page_token", &token));
            }
            let page: P = self.client.get(endpoint, &paged).await.map_err(|e| api_error(context, e))?;
            let (found, next) = page.into_parts();
            items.extend(found);
            match next {
                Some(next) if !next.is_empty() && next == token => {
                    return Err(Error::Backend {
                        context: context.to_owned(),
                        source: format!("the server answered page token `{token}` with the same token").into(),
                    });
                }
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(items),
            }
        }
        Err(Error::Backend {
            context: context.to_owned(),
            source: format!("the server gave more than {MAX_PAGES} pages of {PAGE_SIZE} items").into(),
        })
    }
}

/// The `backend` label of this registry's spans and metrics.
const TRACED_AS: &str = "mlflow";

#[async_trait]
impl Registry for MlflowRegistry {
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel> {
        traced(TRACED_AS, "create_model")
            .model(&request.name)
            .run(async {
                let name = request.name.clone();
                let model = request.into_model()?;
                let body =
                    json!({ "name": name.as_str(), "description": model.description, "tags": wire::tags(&model.tags) });
                let created: wire::ModelResponse =
                    self.client.call(Method::POST, "registered-models/create", &body, Repeat::Unsafe).await.map_err(
                        |e| {
                            if e.code() == Some("RESOURCE_ALREADY_EXISTS") {
                                Error::AlreadyExists { what: format!("model `{name}`") }
                            } else {
                                api_error(format!("creating model `{name}`"), e)
                            }
                        },
                    )?;
                created.registered_model.into_model()
            })
            .await
    }

    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        traced(TRACED_AS, "get_model").model(name).run(async { self.fetch_model(name).await?.into_model() }).await
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>> {
        traced(TRACED_AS, "list_models")
            .run(async {
                let mut models: Vec<RegisteredModel> = self
                    .all_pages::<wire::ModelPage>(
                        "registered-models/search",
                        &[("order_by", "name ASC")],
                        "listing models",
                    )
                    .await?
                    .into_iter()
                    .filter_map(|m| m.into_model().ok())
                    .collect();
                models.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(models)
            })
            .await
    }

    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel> {
        traced(TRACED_AS, "update_model")
            .model(name)
            .run(async {
                change.check()?;
                let (method, endpoint, body) = match &change {
                    Change::SetDescription(text) => (
                        Method::PATCH,
                        "registered-models/update",
                        json!({ "name": name.as_str(), "description": text }),
                    ),
                    Change::SetTag { key, value } => (
                        Method::POST,
                        "registered-models/set-tag",
                        json!({ "name": name.as_str(), "key": key, "value": value }),
                    ),
                    Change::DeleteTag { key } => {
                        (Method::DELETE, "registered-models/delete-tag", json!({ "name": name.as_str(), "key": key }))
                    }
                };
                self.client
                    .call::<_, serde_json::Value>(method, endpoint, &body, Repeat::Safe)
                    .await
                    .map_err(|e| not_found_or(e, || model_not_found(name), || format!("updating model `{name}`")))?;
                self.get_model(name).await
            })
            .await
    }

    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion> {
        traced(TRACED_AS, "create_version")
            .model(&request.model)
            .run(async {
                let name = &request.model;
                let digest = request.package.digest()?;
                // Checks description and tags before anything is written.
                request.to_version(0, String::new(), digest.clone())?;
                if let Some(key) = request.tags.keys().find(|k| k.starts_with(RESERVED_TAG_PREFIX)) {
                    return Err(reserved_tag(key));
                }
                self.fetch_model(name).await?;

                let (run, artifact_path, made_here) = match &request.run {
                    Some(link) => {
                        check_artifact_path(&link.artifact_path)?;
                        let run = self.run(&link.run_id).await.map_err(|e| {
                            not_found_or(
                                e,
                                || Error::not_found(format!("MLflow run `{}`", link.run_id)),
                                || format!("reading run `{}`", link.run_id),
                            )
                        })?;
                        (run, link.artifact_path.clone(), false)
                    }
                    None => {
                        let tags = [wire::Tag { key: "mlops.registered_model".into(), value: name.to_string() }];
                        (
                            self.start_run(&format!("register {name}"), &tags).await?,
                            DEFAULT_ARTIFACT_PATH.to_owned(),
                            true,
                        )
                    }
                };
                let run_id = run.info.run_id.clone();
                let source = format!("{}/{artifact_path}", run.info.artifact_uri.trim_end_matches('/'));
                let logged = async {
                    self.log_lineage(&run_id, &request.lineage).await?;
                    self.upload_package(&source, &request.package, &run_id).await
                }
                .await;
                if made_here {
                    let status = if logged.is_ok() { "FINISHED" } else { "FAILED" };
                    let ended = self.end_run(&run_id, status).await;
                    logged?;
                    ended?;
                } else {
                    logged?;
                }

                let mut tags = request.tags.clone();
                tags.insert(FLAVOR_TAG.to_owned(), request.package.manifest().flavor.clone());
                tags.insert(DIGEST_TAG.to_owned(), digest);
                let body = json!({
                    "name": name.as_str(),
                    "source": source,
                    "run_id": run_id,
                    "description": request.description,
                    "tags": wire::tags(&tags),
                });
                let created: wire::VersionResponse =
                    self.client.call(Method::POST, "model-versions/create", &body, Repeat::Unsafe).await.map_err(
                        |e| not_found_or(e, || model_not_found(name), || format!("creating a version of `{name}`")),
                    )?;
                self.with_lineage(created.model_version.into_version()?).await
            })
            .await
    }

    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        traced(TRACED_AS, "get_version")
            .model(name)
            .version(version)
            .run(async { self.with_lineage(self.fetch_version(name, version).await?).await })
            .await
    }

    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>> {
        traced(TRACED_AS, "search_versions")
            .maybe_model(filter.model.as_ref())
            .run(async {
                let mut clauses = Vec::new();
                let aliases: BTreeMap<String, BTreeMap<String, u64>> = match &filter.model {
                    Some(name) => {
                        let model = self.fetch_model(name).await?.into_model()?;
                        clauses.push(format!("name = '{name}'"));
                        [(name.to_string(), model.aliases)].into()
                    }
                    None => self.list_models().await?.into_iter().map(|m| (m.name.to_string(), m.aliases)).collect(),
                };
                if let Some(run_id) = &filter.run_id {
                    if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                        return Err(Error::InvalidArgument(format!(
                            "run id `{run_id}`: MLflow run ids are letters, digits, `-` and `_`"
                        )));
                    }
                    clauses.push(format!("run_id = '{run_id}'"));
                }
                let mut found: Vec<ModelVersion> = self
                    .all_pages::<wire::VersionPage>(
                        "model-versions/search",
                        &[("filter", &clauses.join(" AND "))],
                        "searching versions",
                    )
                    .await?
                    .into_iter()
                    .filter_map(|v| v.into_version().ok())
                    .filter(|v| filter.matches(v))
                    .map(|mut v| {
                        if let Some(model_aliases) = aliases.get(v.name.as_str()) {
                            v.aliases = model_aliases
                                .iter()
                                .filter(|(_, n)| **n == v.version)
                                .map(|(a, _)| a.clone())
                                .collect();
                        }
                        v
                    })
                    .collect();
                found.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
                futures::stream::iter(found).map(|v| self.with_lineage(v)).buffered(CONCURRENCY).try_collect().await
            })
            .await
    }

    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion> {
        traced(TRACED_AS, "update_version")
            .model(name)
            .version(version)
            .run(async {
                change.check()?;
                let number = version.to_string();
                let (method, endpoint, body) = match &change {
                    Change::SetDescription(text) => (
                        Method::PATCH,
                        "model-versions/update",
                        json!({ "name": name.as_str(), "version": number, "description": text }),
                    ),
                    Change::SetTag { key, .. } | Change::DeleteTag { key } if key.starts_with(RESERVED_TAG_PREFIX) => {
                        return Err(reserved_tag(key));
                    }
                    Change::SetTag { key, value } => (
                        Method::POST,
                        "model-versions/set-tag",
                        json!({ "name": name.as_str(), "version": number, "key": key, "value": value }),
                    ),
                    Change::DeleteTag { key } => (
                        Method::DELETE,
                        "model-versions/delete-tag",
                        json!({ "name": name.as_str(), "version": number, "key": key }),
                    ),
                };
                match self.client.call::<_, serde_json::Value>(method, endpoint, &body, Repeat::Safe).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        self.fetch_model(name).await?;
                        return Err(version_not_found(name, version));
                    }
                    Err(e) => return Err(api_error(format!("updating version {version} of model `{name}`"), e)),
                }
                self.get_version(name, version).await
            })
            .await
    }

    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>> {
        traced(TRACED_AS, "set_alias").model(&request.model).alias(&request.alias).version(request.version).run(async {
            check_alias(&request.alias)?;
            if request.mode != AliasMode::Overwrite {
                return Err(Error::NotImplemented {
                    backend: BACKEND,
                    operation: format!(
                        "conditional alias moves ({:?}): MLflow moves aliases unconditionally, use AliasMode::Overwrite",
                        request.mode
                    ),
                });
            }
            let name = &request.model;
            let previous = self.fetch_model(name).await?.into_model()?.aliases.get(&request.alias).copied();
            let body = json!({ "name": name.as_str(), "alias": request.alias, "version": request.version.to_string() });
            self.client
                .call::<_, wire::Empty>(Method::POST, "registered-models/alias", &body, Repeat::Safe)
                .await
                .map_err(|e| {
                    not_found_or(
                        e,
                        || version_not_found(name, request.version),
                        || format!("setting alias `{}`", request.alias),
                    )
                })?;
            Ok(previous)
        })
        .await
    }

    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64> {
        traced(TRACED_AS, "delete_alias")
            .model(name)
            .alias(alias)
            .run(async {
                let model = self.fetch_model(name).await?.into_model()?;
                let version = *model.aliases.get(alias).ok_or_else(|| alias_not_found(name, alias))?;
                let body = json!({ "name": name.as_str(), "alias": alias });
                self.client
                    .call::<_, wire::Empty>(Method::DELETE, "registered-models/alias", &body, Repeat::Safe)
                    .await
                    .map_err(|e| {
                        not_found_or(e, || alias_not_found(name, alias), || format!("deleting alias `{alias}`"))
                    })?;
                Ok(version)
            })
            .await
    }

    /// MLflow would delete the aliases too: a version an alias points at is refused first,
    /// as on every backend (a move racing the check is not seen: MLflow offers no
    /// compare-and-swap). The run's artifacts stay with the run, as in MLflow.
    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        traced(TRACED_AS, "delete_version")
            .model(name)
            .version(version)
            .run(async {
                let record = self.fetch_version(name, version).await?;
                refuse_if_aliased(&self.fetch_model(name).await?.into_model()?, version)?;
                let body = json!({ "name": name.as_str(), "version": version.to_string() });
                self.client
                    .call::<_, wire::Empty>(Method::DELETE, "model-versions/delete", &body, Repeat::Unsafe)
                    .await
                    .map_err(|e| {
                        not_found_or(e, || version_not_found(name, version), || format!("deleting version {version}"))
                    })?;
                Ok(record)
            })
            .await
    }

    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        traced(TRACED_AS, "delete_model")
            .model(name)
            .run(async {
                let model = self.fetch_model(name).await?.into_model()?;
                let body = json!({ "name": name.as_str() });
                self.client
                    .call::<_, wire::Empty>(Method::DELETE, "registered-models/delete", &body, Repeat::Unsafe)
                    .await
                    .map_err(|e| not_found_or(e, || model_not_found(name), || format!("deleting model `{name}`")))?;
                Ok(model)
            })
            .await
    }

    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package> {
        traced(TRACED_AS, "download_package")
            .model(name)
            .version(version)
            .run(async {
                let record = self.fetch_version(name, version).await?;
                self.fetch_package(&record).await
            })
            .await
    }

    /// One lookup (`registered-models/alias`) instead of reading the model, then the version;
    /// then the run, for the lineage.
    async fn version_by_alias(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        traced(TRACED_AS, "version_by_alias")
            .model(name)
            .alias(alias)
            .run(async { self.with_lineage(self.aliased(name, alias).await?).await })
            .await
    }

    /// One request (`registered-models/alias`): the lineage, which takes a second one for
    /// the run, is left out.
    async fn alias_version(&self, name: &ModelName, alias: &str) -> Result<u64> {
        traced(TRACED_AS, "alias_version")
            .model(name)
            .alias(alias)
            .run(async { Ok(self.aliased(name, alias).await?.version) })
            .await
    }
}

fn api_error(context: impl Into<String>, error: ApiError) -> Error {
    match error.code() {
        Some("INVALID_PARAMETER_VALUE") => Error::InvalidArgument(format!("{}: {}", context.into(), error.message())),
        _ => Error::backend(context, error),
    }
}

fn not_found_or(error: ApiError, missing: impl FnOnce() -> Error, context: impl FnOnce() -> String) -> Error {
    if error.is_not_found() { missing() } else { api_error(context(), error) }
}

fn reserved_tag(key: &str) -> Error {
    Error::InvalidArgument(format!("tag `{key}`: tags under `{RESERVED_TAG_PREFIX}` are kept by the registry"))
}

fn check_artifact_path(path: &str) -> Result<()> {
    if path.is_empty() || path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return Err(Error::InvalidArgument(format!(
            "artifact path `{path}` must be a relative path such as `model` (no empty, `.` or `..` parts)"
        )));
    }
    Ok(())
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
