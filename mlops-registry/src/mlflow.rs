//! A registry on an MLflow tracking server, over its REST API.

mod artifacts;
mod builder;
mod client;
mod reads;
mod runs;
mod wire;

pub use self::builder::{MLFLOW_RETRY, MlflowRegistryBuilder};

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use mlops_core::{ModelName, Package, check_alias};
use reqwest::Method;
use serde_json::json;

use self::client::{ApiError, Repeat, RestClient};
use self::wire::{DIGEST_TAG, FLAVOR_TAG, RESERVED_TAG_PREFIX};
use crate::alias::{AliasMode, SetAlias};
use crate::error::{Error, Result, alias_not_found, model_not_found, refuse_if_aliased, version_not_found};
use crate::metadata::Change;
use crate::model::{CreateModel, RegisteredModel};
use crate::registry::Registry;
use crate::telemetry::traced;
use crate::version::{CreateVersion, ModelVersion, SearchVersions};

/// How many artifact files or runs are fetched at once.
const CONCURRENCY: usize = 8;
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
