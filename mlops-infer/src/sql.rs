//! Scoring in SQL and DataFusion plans (feature `sql`), where the data already is: Delta
//! tables, Parquet files, any DataFusion table.
//!
//! A [`ModelCatalog`] resolves model URIs in a registry and pins each to one version before a
//! query is planned; [`ModelCatalog::register`] adds three functions to a session:
//!
//! - `predict('models:/fraud@champion', amount, merchant, ...)`: the model's output for each
//!   row (a struct of its outputs when it has several). Arguments fill the signature's columns
//!   in order, or by name with one `named_struct('amount', x, ...)` argument; the signature
//!   is enforced as everywhere else, with types checked while the query is planned.
//!   A model with several outputs is best spread with `score`, or with `unnest` of the
//!   struct: DataFusion's optimizer pushes each `p['field']` taken from a subquery's
//!   `predict(...) AS p` down into a call of its own, which runs the model once per field.
//! - `model_version('models:/fraud@champion')`: the version the query scores with.
//! - `SELECT * FROM score('models:/fraud@champion', 'transactions')`: the table with the
//!   model's outputs, `prediction`, `model_name`, `model_version` and `scored_at`, the rows
//!   [`InferenceTable::append_query`](crate::InferenceTable::append_query) takes.
//!
//! ```
//! use mlops_core::{FlavorRegistry, TabularClassifierParams};
//! use mlops_infer::sql::ModelCatalog;
//! use mlops_infer::{InferenceTable, InferenceTableConfig, TableLocation};
//! use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, SetAlias};
//! use mlops_infer::sql::datafusion::prelude::SessionContext;
//! use polars::prelude::*;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let train = df!("id" => [1, 2, 3, 4], "Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1])?;
//! let model = TabularClassifierParams::new("Label").numeric(["Amount"]).check()?.fit(&train)?;
//! let registry = MemoryRegistry::new();
//! let name: mlops_core::ModelName = "fraud".parse()?;
//! registry.create_model(CreateModel::new(name.clone())).await?;
//! registry.create_version(CreateVersion::new(name.clone(), model.package(None)?)).await?;
//! registry.set_alias(SetAlias::new(name, "champion", 1)).await?;
//!
//! let mut catalog = ModelCatalog::new();
//! catalog.pin(&registry, &"models:/fraud@champion".parse()?, &FlavorRegistry::with_builtins()).await?;
//! let ctx = SessionContext::new();
//! catalog.register(&ctx);
//! ctx.sql(r#"CREATE TABLE transactions (id INT, "Amount" DOUBLE) AS VALUES (1, 1.5), (2, 8.5), (3, 7.0)"#).await?;
//!
//! let dir = tempfile::tempdir()?;
//! let table = InferenceTable::new(TableLocation::local(dir.path().join("inference"))?, InferenceTableConfig::new(["id"]))?;
//! let query = ctx.sql(r#"SELECT * FROM score('models:/fraud@champion', 'transactions') WHERE "Amount" > 2"#).await?;
//! assert_eq!(table.append_query(query).await?.rows, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
mod functions;
mod inference_table;
mod predict;
mod score_table;
mod snapshot_files;
mod version_loader;

/// The DataFusion these functions are built for, so a session and its plans are of the same
/// version.
pub use deltalake::datafusion;

pub use catalog::{ModelCatalog, PinnedModel};
pub use functions::ModelFunctions;
pub use predict::{MODEL_VERSION_FUNCTION, PREDICT};
pub use score_table::SCORE_TABLE_FUNCTION;
pub use snapshot_files::{DataFile, SnapshotFiles};
