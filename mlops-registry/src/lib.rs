//! # mlops-registry
//!
//! Where model versions live and who may move them: registered models with descriptions and
//! tags, versions that never reuse a number, and aliases (`champion`, `challenger`) moved with
//! compare-and-swap, shared by every service that reads them.
//!
//! - [`Registry`]: the async, object-safe contract; [`RegistryExt`] adds tag helpers, alias
//!   lookups, [`ModelUri`](mlops_core::ModelUri) resolution and model loading.
//! - [`MemoryRegistry`]: in process memory.
//! - [`ObjectStoreRegistry`]: on any `object_store` store (local directory, S3, GCS, Azure),
//!   safe for many processes at once thanks to create-only conditional writes.
//! - [`MlflowRegistry`]: on an MLflow tracking server, over its REST API and artifact
//!   proxy, shared with the Python `MlflowClient` and the MLflow UI.
//! - [`GovernedRegistry`]: every call made as a [`Principal`], authorized by a [`Policy`]
//!   (protected aliases only managers move) and recorded in an [`AuditLog`], from which
//!   [`GovernedRegistry::alias_history`] reads every move.
//! - [`ObservedRegistry`]: publishes a [`RegistryEvent`] for every mutation to in-process
//!   subscribers; [`WebhookDispatcher`] delivers them to HTTP receivers in MLflow's signed
//!   webhook format through a durable outbox.
//! - [`copy_version`]: a version copied between any two registries (a development MLflow
//!   server to a production bucket, say), package digest verified, idempotent.
//! - `conformance` (feature `conformance`): the contract as a test suite, for a `Registry`
//!   of your own.
//! - [`LiveModel`]: the model behind an alias, swapped atomically when the alias moves; the
//!   predict path never does I/O.
//!
//! ```
//! use mlops_core::{FlavorRegistry, Model, ModelUri, TabularClassifierParams};
//! use mlops_registry::{CreateModel, CreateVersion, ObjectStoreRegistry, Registry, RegistryExt, SetAlias};
//! use polars::prelude::*;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
//! let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
//!
//! let dir = tempfile::tempdir()?;
//! let registry = ObjectStoreRegistry::local(dir.path())?;
//! let name: mlops_core::ModelName = "transactions".parse()?;
//! registry.create_model(CreateModel::new(name.clone())).await?;
//! let v1 = registry
//!     .create_version(CreateVersion::new(name.clone(), model.package(None)?).tag("validation_status", "needs_tested"))
//!     .await?;
//! registry.set_alias(SetAlias::new(name, "champion", v1.version)).await?;
//!
//! let loaded = registry.load_model(&"models:/transactions@champion".parse()?, &FlavorRegistry::with_builtins()).await?;
//! assert_eq!(loaded.version.version, 1);
//! assert_eq!(loaded.model.predict(&train)?.height(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Errors
//!
//! [`Error`] variants are what callers act on: `NotFound` (unknown model, version or alias),
//! `AlreadyExists`, `Precondition` (a compare-and-swap lost), `PermissionDenied` (naming
//! principal, action and model), `InvalidArgument`,
//! `NotImplemented` (a backend lacks a capability), `Core` (a corrupted package or unknown
//! flavor) and `Backend` (storage failed).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod alias;
mod audit;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod copy;
mod documents;
mod error;
mod events;
mod governance;
mod json_objects;
mod live;
mod memory;
mod metadata;
mod mlflow;
mod model;
mod model_source;
mod registry;
mod retention;
mod retry;
mod store;
pub mod telemetry;
mod version;
mod webhooks;

pub use alias::{AliasMode, SetAlias};
pub use audit::{
    AuditCompactionReport, AuditEntry, AuditLog, AuditOutcome, AuditRetention, MemoryAuditLog, ObjectStoreAuditLog,
    Operation,
};
pub use copy::{COPIED_FROM_REGISTRY_TAG, COPIED_FROM_TAG, CopiedVersion, CopyVersion, copy_version};
pub use error::{Error, Result};
pub use events::{ObservedRegistry, RegistryEvent};
pub use governance::{
    Access, AliasMove, AllowAll, GovernedHandle, GovernedRegistry, Permission, Policy, Principal, RolePolicy,
    UNAUDITED_KEPT,
};
pub use live::{FollowStatus, LiveModel, Prediction, STALE_AFTER_POLLS};
pub use memory::MemoryRegistry;
pub use metadata::{Change, MAX_DESCRIPTION_LEN, MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN};
pub use mlflow::{MLFLOW_RETRY, MlflowRegistry, MlflowRegistryBuilder};
pub use model::{CreateModel, RegisteredModel};
pub use model_source::{ModelSlot, ModelSource};
/// The object_store that [`ObjectStoreRegistry`], checkpoints and inference tables are built
/// on: name stores through here to be on the same version.
pub use object_store;
pub use registry::{LoadedModel, Registry, RegistryExt};
pub use retention::{RetentionOutcome, RetentionPlan, RetentionPolicy};
pub use retry::Backoff;
pub use store::{CompactionReport, GarbageCollection, GarbageReport, ObjectStoreRegistry, RevisionRetention};
pub use version::{CreateVersion, DatasetRef, Lineage, ModelVersion, RunLink, SearchVersions};
pub use webhooks::{
    DELIVERY_ID_HEADER, Delivery, DeliveryReport, MAX_RETRY_AFTER, RetryPolicy, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    VerifyError, Webhook, WebhookDispatcher, sign, verify,
};
