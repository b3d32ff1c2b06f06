//! A registry held in process memory.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mlops_core::{ModelName, Package, check_alias};
use parking_lot::RwLock;

use crate::alias::SetAlias;
use crate::error::{Error, Result, model_not_found, refuse_if_aliased, version_not_found};
use crate::metadata::Change;
use crate::model::{CreateModel, RegisteredModel};
use crate::registry::Registry;
use crate::telemetry::traced;
use crate::version::{CreateVersion, ModelVersion, SearchVersions};

/// A registry in process memory: for tests, examples and single-process tools.
///
/// It keeps the full [`Registry`] contract within one process; nothing survives the process.
///
/// ```
/// use mlops_registry::{CreateModel, MemoryRegistry, Registry};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let registry = MemoryRegistry::new();
/// registry.create_model(CreateModel::new("transactions".parse()?)).await?;
/// assert_eq!(registry.list_models().await?.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    models: RwLock<BTreeMap<ModelName, Entry>>,
}

#[derive(Debug)]
struct Entry {
    model: RegisteredModel,
    versions: BTreeMap<u64, (ModelVersion, Package)>,
    /// The number the next version gets: deleted numbers are never given again.
    next_version: u64,
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The `backend` label of this registry's spans and metrics.
const BACKEND: &str = "memory";

#[async_trait]
impl Registry for MemoryRegistry {
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel> {
        traced(BACKEND, "create_model")
            .model(&request.name)
            .run(async {
                let model = request.into_model()?;
                let mut models = self.models.write();
                if models.contains_key(&model.name) {
                    return Err(Error::AlreadyExists { what: format!("model `{}`", model.name) });
                }
                models.insert(
                    model.name.clone(),
                    Entry { model: model.clone(), versions: BTreeMap::new(), next_version: 1 },
                );
                Ok(model)
            })
            .await
    }

    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        traced(BACKEND, "get_model")
            .model(name)
            .run(async { self.models.read().get(name).map(|e| e.model.clone()).ok_or_else(|| model_not_found(name)) })
            .await
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>> {
        traced(BACKEND, "list_models")
            .run(async { Ok(self.models.read().values().map(|e| e.model.clone()).collect()) })
            .await
    }

    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel> {
        traced(BACKEND, "update_model")
            .model(name)
            .run(async {
                let mut models = self.models.write();
                let entry = models.get_mut(name).ok_or_else(|| model_not_found(name))?;
                let mut model = entry.model.clone();
                model.apply(&change)?;
                entry.model = model.clone();
                Ok(model)
            })
            .await
    }

    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion> {
        traced(BACKEND, "create_version")
            .model(&request.model)
            .run(async {
                let digest = request.package.digest()?;
                let mut models = self.models.write();
                let entry = models.get_mut(&request.model).ok_or_else(|| model_not_found(&request.model))?;
                let number = entry.next_version;
                let following = number.checked_add(1).ok_or_else(|| {
                    Error::InvalidArgument(format!("model `{}` has used every version number", request.model))
                })?;
                let source = format!("memory://{}/{number}", request.model);
                let version = request.to_version(number, source, digest)?;
                entry.versions.insert(number, (version.clone(), request.package));
                entry.next_version = following;
                Ok(version)
            })
            .await
    }

    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        traced(BACKEND, "get_version")
            .model(name)
            .version(version)
            .run(async {
                let models = self.models.read();
                let entry = models.get(name).ok_or_else(|| model_not_found(name))?;
                let stored = entry.versions.get(&version).ok_or_else(|| version_not_found(name, version))?;
                Ok(entry.model.label(stored.0.clone()))
            })
            .await
    }

    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>> {
        traced(BACKEND, "search_versions")
            .maybe_model(filter.model.as_ref())
            .run(async {
                let models = self.models.read();
                if let Some(name) = filter.model.as_ref().filter(|name| !models.contains_key(*name)) {
                    return Err(model_not_found(name));
                }
                Ok(models
                    .values()
                    .flat_map(|e| e.versions.values().map(|(v, _)| e.model.label(v.clone())))
                    .filter(|v| filter.matches(v))
                    .collect())
            })
            .await
    }

    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion> {
        traced(BACKEND, "update_version")
            .model(name)
            .version(version)
            .run(async {
                let mut models = self.models.write();
                let entry = models.get_mut(name).ok_or_else(|| model_not_found(name))?;
                let (stored, _) = entry.versions.get_mut(&version).ok_or_else(|| version_not_found(name, version))?;
                let mut updated = stored.clone();
                updated.apply(&change)?;
                *stored = updated.clone();
                Ok(entry.model.label(updated))
            })
            .await
    }

    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>> {
        traced(BACKEND, "set_alias")
            .model(&request.model)
            .alias(&request.alias)
            .version(request.version)
            .run(async {
                check_alias(&request.alias)?;
                let mut models = self.models.write();
                let entry = models.get_mut(&request.model).ok_or_else(|| model_not_found(&request.model))?;
                if !entry.versions.contains_key(&request.version) {
                    return Err(version_not_found(&request.model, request.version));
                }
                entry.model.move_alias(&request.alias, request.version, request.mode)
            })
            .await
    }

    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64> {
        traced(BACKEND, "delete_alias")
            .model(name)
            .alias(alias)
            .run(async {
                let mut models = self.models.write();
                let entry = models.get_mut(name).ok_or_else(|| model_not_found(name))?;
                entry.model.remove_alias(alias)
            })
            .await
    }

    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        traced(BACKEND, "delete_version")
            .model(name)
            .version(version)
            .run(async {
                let mut models = self.models.write();
                let entry = models.get_mut(name).ok_or_else(|| model_not_found(name))?;
                if !entry.versions.contains_key(&version) {
                    return Err(version_not_found(name, version));
                }
                refuse_if_aliased(&entry.model, version)?;
                let (deleted, _) = entry.versions.remove(&version).ok_or_else(|| version_not_found(name, version))?;
                Ok(deleted)
            })
            .await
    }

    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        traced(BACKEND, "delete_model")
            .model(name)
            .run(async { self.models.write().remove(name).map(|e| e.model).ok_or_else(|| model_not_found(name)) })
            .await
    }

    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package> {
        traced(BACKEND, "download_package")
            .model(name)
            .version(version)
            .run(async {
                let models = self.models.read();
                let entry = models.get(name).ok_or_else(|| model_not_found(name))?;
                entry.versions.get(&version).map(|(_, p)| p.clone()).ok_or_else(|| version_not_found(name, version))
            })
            .await
    }
}
