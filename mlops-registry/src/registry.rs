//! The `Registry` trait and its conveniences.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use mlops_core::{FlavorRegistry, Model, ModelName, ModelUri, Package};
use polars::prelude::DataFrame;

use crate::alias::SetAlias;
use crate::error::{Error, Result, alias_not_found};
use crate::metadata::Change;
use crate::model::{CreateModel, RegisteredModel};
use crate::version::{CreateVersion, Lineage, ModelVersion, SearchVersions};

/// Where model versions live and how aliases move.
///
/// Object-safe and async: services hold an `Arc<dyn Registry>`. Every backend keeps this
/// contract, checked by one conformance suite:
///
/// - Version numbers start at 1, grow by one per model, and are never reused, even when
///   several processes register at once.
/// - A version becomes visible only after its package is fully stored; a failed or
///   cancelled `create_version` leaves no version behind.
/// - Alias moves are atomic; [`AliasMode`](crate::AliasMode) turns them into
///   compare-and-swap, and a lost race is [`Error::Precondition`], never a silent overwrite.
/// - An alias always points at an existing version: a version an alias points at cannot be
///   deleted, and an alias cannot be moved to a deleted version.
/// - Packages come back byte-identical, with every checksum verified.
///
/// Cancelling a future part-way is safe: a mutation either happened or did not.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Creates a registered model.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] when the name is taken; [`Error::InvalidArgument`] for
    /// oversized tags or description.
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel>;

    /// Reads a registered model.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model.
    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel>;

    /// Lists all registered models, sorted by name.
    ///
    /// # Errors
    /// [`Error::Backend`] when storage fails.
    async fn list_models(&self) -> Result<Vec<RegisteredModel>>;

    /// Changes a model's description or tags.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model; [`Error::InvalidArgument`] for an invalid tag.
    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel>;

    /// Stores the package and registers it as the model's next version.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the model does not exist; [`Error::InvalidArgument`] for an
    /// invalid tag or description.
    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion>;

    /// Reads a version.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model or version.
    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion>;

    /// Versions matching `filter`, sorted by model name then version.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the filter names a model that does not exist.
    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>>;

    /// Changes a version's description or tags.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model or version; [`Error::InvalidArgument`].
    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion>;

    /// Points an alias at a version, as `request.mode` allows. Returns the version the alias
    /// pointed at before, if any.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown model or version; [`Error::Precondition`] when the
    /// mode's condition does not hold; [`Error::Core`] for a malformed alias.
    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>>;

    /// Removes an alias and returns the version it pointed at.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model or alias.
    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64>;

    /// Deletes a version and returns it as it was. Its number is never given again, and its
    /// package goes with it ([`ObjectStoreRegistry`](crate::ObjectStoreRegistry) leaves a
    /// package to [`collect_garbage`](crate::ObjectStoreRegistry::collect_garbage), since
    /// identical packages are stored once).
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model or version; [`Error::InUse`] while an alias
    /// points at the version.
    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion>;

    /// Deletes a model with all its versions and aliases, and returns it as it was. A model
    /// created later under the same name starts again at version 1.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model.
    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel>;

    /// Fetches a version's package, verifying every checksum.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the version; [`Error::Core`] with
    /// [`mlops_core::Error::Checksum`] naming a corrupted file.
    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package>;

    /// The version an alias points at. Backends with a direct lookup override it.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model or alias.
    async fn version_by_alias(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        let model = self.get_model(name).await?;
        let version = *model.aliases.get(alias).ok_or_else(|| alias_not_found(name, alias))?;
        self.get_version(name, version).await
    }

    /// The number of the version an alias points at, without the version's details: what a
    /// poller asks every interval, so backends answer it with their cheapest read (one
    /// request on MLflow, whose versions' lineage lives on their runs).
    ///
    /// # Errors
    /// [`Error::NotFound`] naming the model or alias.
    async fn alias_version(&self, name: &ModelName, alias: &str) -> Result<u64> {
        Ok(self.version_by_alias(name, alias).await?.version)
    }
}

/// A model loaded from the registry, with the version it came from.
#[derive(Clone)]
pub struct LoadedModel {
    /// The version that was loaded.
    pub version: ModelVersion,
    /// The model, ready to predict.
    pub model: Arc<dyn Model>,
    /// The package's input example, when it has one: a request the model is known to
    /// answer (a server's OpenAPI document shows it).
    pub input_example: Option<DataFrame>,
}

impl LoadedModel {
    /// A model that no registry holds (trained in this process, or read from a file),
    /// recorded as version `version` of `name`; the other fields of [`ModelVersion`] are
    /// empty, and `created_at` is now.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use mlops_core::TabularClassifierParams;
    /// use mlops_registry::{LoadedModel, ModelSlot};
    ///
    /// # let train = polars::prelude::df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
    /// let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
    /// let slot = ModelSlot::loaded(LoadedModel::unregistered("transactions".parse()?, 1, Arc::new(model)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unregistered(name: ModelName, version: u64, model: Arc<dyn Model>) -> Self {
        let now = chrono::Utc::now();
        let version = ModelVersion {
            name,
            version,
            description: String::new(),
            tags: BTreeMap::new(),
            source: String::new(),
            flavor: String::new(),
            package_digest: String::new(),
            run: None,
            lineage: Lineage::default(),
            aliases: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        Self { version, model, input_example: None }
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("version", &self.version).finish_non_exhaustive()
    }
}

/// Conveniences over any [`Registry`]: tag and description helpers, URI resolution, model
/// loading.
///
/// ```
/// use mlops_core::{ColSpec, ColumnType, ModelUri, Package, Schema, Signature};
/// use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, RegistryExt, SetAlias};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let registry = MemoryRegistry::new();
/// let name: mlops_core::ModelName = "transactions".parse()?;
/// registry.create_model(CreateModel::new(name.clone())).await?;
/// # let package = Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?)).build()?;
/// let v1 = registry.create_version(CreateVersion::new(name.clone(), package)).await?;
/// registry.set_alias(SetAlias::new(name.clone(), "champion", v1.version)).await?;
///
/// let uri: ModelUri = "models:/transactions@champion".parse()?;
/// assert_eq!(registry.resolve(&uri).await?.version, 1);
/// registry.set_version_tag(&name, 1, "validation_status", "passed_tests").await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[async_trait]
pub trait RegistryExt: Registry {
    /// Replaces a model's description.
    ///
    /// # Errors
    /// As [`Registry::update_model`].
    async fn set_model_description(&self, name: &ModelName, description: &str) -> Result<RegisteredModel> {
        self.update_model(name, Change::SetDescription(description.to_owned())).await
    }

    /// Sets a model tag.
    ///
    /// # Errors
    /// As [`Registry::update_model`].
    async fn set_model_tag(&self, name: &ModelName, key: &str, value: &str) -> Result<RegisteredModel> {
        self.update_model(name, Change::SetTag { key: key.to_owned(), value: value.to_owned() }).await
    }

    /// Removes a model tag.
    ///
    /// # Errors
    /// As [`Registry::update_model`].
    async fn delete_model_tag(&self, name: &ModelName, key: &str) -> Result<RegisteredModel> {
        self.update_model(name, Change::DeleteTag { key: key.to_owned() }).await
    }

    /// Replaces a version's description.
    ///
    /// # Errors
    /// As [`Registry::update_version`].
    async fn set_version_description(&self, name: &ModelName, version: u64, description: &str) -> Result<ModelVersion> {
        self.update_version(name, version, Change::SetDescription(description.to_owned())).await
    }

    /// Sets a version tag.
    ///
    /// # Errors
    /// As [`Registry::update_version`].
    async fn set_version_tag(&self, name: &ModelName, version: u64, key: &str, value: &str) -> Result<ModelVersion> {
        self.update_version(name, version, Change::SetTag { key: key.to_owned(), value: value.to_owned() }).await
    }

    /// Removes a version tag.
    ///
    /// # Errors
    /// As [`Registry::update_version`].
    async fn delete_version_tag(&self, name: &ModelName, version: u64, key: &str) -> Result<ModelVersion> {
        self.update_version(name, version, Change::DeleteTag { key: key.to_owned() }).await
    }

    /// The highest version of a model.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the model does not exist or has no version.
    async fn latest_version(&self, name: &ModelName) -> Result<ModelVersion> {
        self.search_versions(SearchVersions::model(name.clone()))
            .await?
            .pop()
            .ok_or_else(|| Error::not_found(format!("any version of model `{name}`")))
    }

    /// The version a URI designates. `runs:/<id>/<path>` resolves to the newest version
    /// registered from that run and artifact path.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming what the URI refers to.
    async fn resolve(&self, uri: &ModelUri) -> Result<ModelVersion> {
        match uri {
            ModelUri::Alias { name, alias } => self.version_by_alias(name, alias).await,
            ModelUri::Version { name, version } => self.get_version(name, *version).await,
            ModelUri::Latest { name } => self.latest_version(name).await,
            ModelUri::Run { run_id, path } => self
                .search_versions(SearchVersions::default().run_id(run_id.clone()))
                .await?
                .into_iter()
                .filter(|v| v.run.as_ref().is_some_and(|r| r.artifact_path == *path))
                .max_by_key(|v| v.created_at)
                .ok_or_else(|| Error::not_found(format!("registered version for `{uri}`"))),
        }
    }

    /// The number of the version a URI designates, by the cheapest read there is for it
    /// ([`Registry::alias_version`] for an alias): what a poller asks before it reads the
    /// whole version.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    async fn resolve_version(&self, uri: &ModelUri) -> Result<u64> {
        match uri {
            ModelUri::Alias { name, alias } => self.alias_version(name, alias).await,
            other => Ok(self.resolve(other).await?.version),
        }
    }

    /// Resolves a URI, downloads and verifies the package, and loads it with `flavors`.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve) and [`Registry::download_package`], and
    /// [`mlops_core::Error::UnknownFlavor`] (inside [`Error::Core`]).
    async fn load_model(&self, uri: &ModelUri, flavors: &FlavorRegistry) -> Result<LoadedModel> {
        let version = self.resolve(uri).await?;
        let package = self.download_package(&version.name, version.version).await?;
        let model = flavors.load(&package)?;
        let input_example = package.input_example()?;
        Ok(LoadedModel { version, model, input_example })
    }
}

impl<R: Registry + ?Sized> RegistryExt for R {}

#[deny(clippy::missing_trait_methods)]
#[async_trait]
impl<R: Registry + ?Sized> Registry for Arc<R> {
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel> {
        (**self).create_model(request).await
    }
    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        (**self).get_model(name).await
    }
    async fn list_models(&self) -> Result<Vec<RegisteredModel>> {
        (**self).list_models().await
    }
    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel> {
        (**self).update_model(name, change).await
    }
    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion> {
        (**self).create_version(request).await
    }
    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        (**self).get_version(name, version).await
    }
    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>> {
        (**self).search_versions(filter).await
    }
    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion> {
        (**self).update_version(name, version, change).await
    }
    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>> {
        (**self).set_alias(request).await
    }
    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64> {
        (**self).delete_alias(name, alias).await
    }
    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        (**self).delete_version(name, version).await
    }
    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        (**self).delete_model(name).await
    }
    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package> {
        (**self).download_package(name, version).await
    }
    async fn version_by_alias(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        (**self).version_by_alias(name, alias).await
    }
    async fn alias_version(&self, name: &ModelName, alias: &str) -> Result<u64> {
        (**self).alias_version(name, alias).await
    }
}
