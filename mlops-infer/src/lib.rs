//! # mlops-infer
//!
//! Running registered models on data. Batch scoring takes a `DataFrame`, a `LazyFrame` or a
//! Parquet file, resolves the model from a [`ModelUri`](mlops_core::ModelUri), scores in
//! parallel chunks, and adds `prediction`, `model_name`, `model_version` and `scored_at`.
//!
//! ```
//! use mlops_core::{FlavorRegistry, TabularClassifierParams};
//! use mlops_infer::BatchScorer;
//! use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, SetAlias};
//! use polars::prelude::*;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
//! let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
//!
//! let registry = MemoryRegistry::new();
//! let name: mlops_core::ModelName = "transactions".parse()?;
//! registry.create_model(CreateModel::new(name.clone())).await?;
//! registry.create_version(CreateVersion::new(name.clone(), model.package(None)?)).await?;
//! registry.set_alias(SetAlias::new(name, "champion", 1)).await?;
//!
//! let scorer = BatchScorer::load(&registry, &"models:/transactions@champion".parse()?, &FlavorRegistry::with_builtins()).await?;
//! let scored = scorer.score(&train)?;
//! assert_eq!(scored.column("model_version")?.get(0)?, AnyValue::Int64(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Errors
//!
//! [`Error`] wraps the model's errors (a schema violation names the column), the registry's
//! (unknown model, version or alias), and I/O errors naming the file.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "ballista")]
pub mod ballista;
mod batch;
#[cfg(feature = "stream")]
mod blocking;
#[cfg(any(feature = "serve", feature = "stream"))]
mod csv_cells;
#[cfg(feature = "delta")]
mod delta;
mod error;
#[cfg(feature = "stream")]
mod feature_cache;
#[cfg(feature = "stream")]
mod feature_store;
#[cfg(feature = "serve")]
pub mod serve;
mod shard;
#[cfg(feature = "sql")]
pub mod sql;
#[cfg(feature = "stream")]
pub mod stream;
pub mod telemetry;

pub use batch::{BatchScorer, DEFAULT_CHUNK_ROWS, MODEL_NAME, MODEL_VERSION, PREDICTION, SCORED_AT};
#[cfg(feature = "delta")]
pub use delta::{
    ACTUAL_LABEL, Appended, DEFAULT_COMMIT_BYTES, DeltaFeatureStore, FEATURE_KEYS_PROPERTY, FEATURE_TIMESTAMP_PROPERTY,
    FilesScored, INCREMENTAL_APP_ID, INCREMENTAL_ATTEMPTS, IncrementalRun, InferenceTable, InferenceTableConfig,
    LabelMerge, RECEIVED_AT, ROW_ID, RejectedLabel, ShardRun, ShardedJob, TableLocation, TimeWindow,
};
pub use error::{Error, Result};
#[cfg(feature = "stream")]
pub use feature_cache::FeatureCache;
#[cfg(feature = "stream")]
pub use feature_store::FeatureStore;
pub use shard::{JOB_COMPLETION_INDEX, Shard, assign_by_size, shard_of};
