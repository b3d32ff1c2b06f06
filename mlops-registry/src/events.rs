//! Registry events, published to in-process subscribers.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use mlops_core::{ModelName, Package};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::alias::SetAlias;
use crate::error::Result;
use crate::metadata::Change;
use crate::model::{CreateModel, RegisteredModel};
use crate::registry::Registry;
use crate::version::{CreateVersion, ModelVersion, SearchVersions};

/// Something that changed in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegistryEvent {
    /// A registered model was created.
    ModelCreated {
        /// The model.
        name: ModelName,
        /// Its description.
        description: String,
        /// Its tags.
        tags: BTreeMap<String, String>,
    },
    /// A version was registered.
    VersionCreated {
        /// The model.
        name: ModelName,
        /// The new version.
        version: u64,
        /// Where its package is.
        source: String,
        /// The run it came from.
        run_id: Option<String>,
        /// Its description.
        description: String,
        /// Its tags.
        tags: BTreeMap<String, String>,
    },
    /// A model tag was set.
    ModelTagSet {
        /// The model.
        name: ModelName,
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
    /// A model tag was deleted.
    ModelTagDeleted {
        /// The model.
        name: ModelName,
        /// Tag key.
        key: String,
    },
    /// A version tag was set.
    VersionTagSet {
        /// The model.
        name: ModelName,
        /// The version.
        version: u64,
        /// Tag key.
        key: String,
        /// Tag value.
        value: String,
    },
    /// A version tag was deleted.
    VersionTagDeleted {
        /// The model.
        name: ModelName,
        /// The version.
        version: u64,
        /// Tag key.
        key: String,
    },
    /// An alias was set or moved.
    AliasSet {
        /// The model.
        name: ModelName,
        /// The alias.
        alias: String,
        /// The version it points at now.
        version: u64,
        /// The version it pointed at before, if any.
        previous: Option<u64>,
    },
    /// An alias was deleted.
    AliasDeleted {
        /// The model.
        name: ModelName,
        /// The alias.
        alias: String,
        /// The version it pointed at.
        previous: u64,
    },
    /// A version was deleted.
    VersionDeleted {
        /// The model.
        name: ModelName,
        /// The deleted version.
        version: u64,
    },
    /// A registered model was deleted, with all its versions.
    ModelDeleted {
        /// The model.
        name: ModelName,
    },
}

impl RegistryEvent {
    /// The model the event concerns.
    pub fn model(&self) -> &ModelName {
        match self {
            Self::ModelCreated { name, .. }
            | Self::VersionCreated { name, .. }
            | Self::ModelTagSet { name, .. }
            | Self::ModelTagDeleted { name, .. }
            | Self::VersionTagSet { name, .. }
            | Self::VersionTagDeleted { name, .. }
            | Self::AliasSet { name, .. }
            | Self::AliasDeleted { name, .. }
            | Self::VersionDeleted { name, .. }
            | Self::ModelDeleted { name } => name,
        }
    }
}

/// A registry layer that publishes a [`RegistryEvent`] after every successful mutation.
///
/// Subscribers get a `tokio::sync::broadcast` receiver; a subscriber that falls more than
/// the channel's capacity behind is told how many events it missed (`RecvError::Lagged`)
/// rather than slowing the registry down.
///
/// ```
/// use std::sync::Arc;
/// use mlops_registry::{CreateModel, MemoryRegistry, ObservedRegistry, Registry, RegistryEvent};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let registry = ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 1024);
/// let mut events = registry.subscribe();
/// registry.create_model(CreateModel::new("transactions".parse()?)).await?;
/// assert!(matches!(events.recv().await?, RegistryEvent::ModelCreated { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ObservedRegistry {
    inner: Arc<dyn Registry>,
    sender: broadcast::Sender<RegistryEvent>,
}

impl std::fmt::Debug for ObservedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedRegistry").field("subscribers", &self.sender.receiver_count()).finish_non_exhaustive()
    }
}

impl ObservedRegistry {
    /// Publishes the mutations made through it to subscribers, each of which may fall at
    /// most `capacity` events behind.
    pub fn new(inner: Arc<dyn Registry>, capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { inner, sender }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.sender.subscribe()
    }

    fn publish(&self, event: RegistryEvent) {
        // No subscriber is not an error: events are fire-and-forget.
        let _ = self.sender.send(event);
    }
}

#[async_trait]
impl Registry for ObservedRegistry {
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel> {
        let model = self.inner.create_model(request).await?;
        self.publish(RegistryEvent::ModelCreated {
            name: model.name.clone(),
            description: model.description.clone(),
            tags: model.tags.clone(),
        });
        Ok(model)
    }

    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        self.inner.get_model(name).await
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>> {
        self.inner.list_models().await
    }

    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel> {
        let model = self.inner.update_model(name, change.clone()).await?;
        match change {
            Change::SetTag { key, value } => {
                self.publish(RegistryEvent::ModelTagSet { name: name.clone(), key, value })
            }
            Change::DeleteTag { key } => self.publish(RegistryEvent::ModelTagDeleted { name: name.clone(), key }),
            Change::SetDescription(_) => {}
        }
        Ok(model)
    }

    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion> {
        let version = self.inner.create_version(request).await?;
        self.publish(RegistryEvent::VersionCreated {
            name: version.name.clone(),
            version: version.version,
            source: version.source.clone(),
            run_id: version.run.as_ref().map(|r| r.run_id.clone()),
            description: version.description.clone(),
            tags: version.tags.clone(),
        });
        Ok(version)
    }

    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        self.inner.get_version(name, version).await
    }

    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>> {
        self.inner.search_versions(filter).await
    }

    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion> {
        let updated = self.inner.update_version(name, version, change.clone()).await?;
        let name = name.clone();
        match change {
            Change::SetTag { key, value } => self.publish(RegistryEvent::VersionTagSet { name, version, key, value }),
            Change::DeleteTag { key } => self.publish(RegistryEvent::VersionTagDeleted { name, version, key }),
            Change::SetDescription(_) => {}
        }
        Ok(updated)
    }

    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>> {
        let (name, alias, version) = (request.model.clone(), request.alias.clone(), request.version);
        let previous = self.inner.set_alias(request).await?;
        self.publish(RegistryEvent::AliasSet { name, alias, version, previous });
        Ok(previous)
    }

    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64> {
        let previous = self.inner.delete_alias(name, alias).await?;
        self.publish(RegistryEvent::AliasDeleted { name: name.clone(), alias: alias.to_owned(), previous });
        Ok(previous)
    }

    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        let deleted = self.inner.delete_version(name, version).await?;
        self.publish(RegistryEvent::VersionDeleted { name: name.clone(), version });
        Ok(deleted)
    }

    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        let deleted = self.inner.delete_model(name).await?;
        self.publish(RegistryEvent::ModelDeleted { name: name.clone() });
        Ok(deleted)
    }

    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package> {
        self.inner.download_package(name, version).await
    }

    async fn version_by_alias(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        self.inner.version_by_alias(name, alias).await
    }

    async fn alias_version(&self, name: &ModelName, alias: &str) -> Result<u64> {
        self.inner.alias_version(name, alias).await
    }
}
