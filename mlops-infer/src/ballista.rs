//! Scoring on an [Apache DataFusion Ballista](https://datafusion.apache.org/ballista/) cluster
//! (feature `ballista`): the same `predict`, `model_version` and `score` as on one machine
//! ([`crate::sql`]), run by a scheduler and executors that load the models plans name.
//!
//! A cluster is three kinds of process, each given a [`ClusterModels`] (the registry models
//! load from, and the object stores tables live in):
//!
//! - the scheduler: [`ClusterModels::run_scheduler`] (the `ballista_scheduler` example is
//!   that with flags);
//! - executors: [`ClusterModels::run_executor`] (the `ballista_executor` example);
//! - the client that plans queries: [`remote_context`] gives a session whose queries run on
//!   the cluster, with a [`ModelCatalog`] pinned before planning. Plans name the version each
//!   alias was pinned to, so the scheduler and every executor score with that version
//!   (loading it from the registry when a plan first names it), even if the alias moves
//!   while the query runs.
//!
//! Delta tables are read on executors as the Parquet files of one snapshot
//! ([`TableLocation::snapshot_files`](crate::TableLocation::snapshot_files)), which refuses
//! tables whose files do not hold exactly their rows.
//!
//! [`standalone_context`] runs a scheduler and an executor inside the calling process, for
//! tests and for one machine.

mod cluster_append;
mod codec;
mod write_parts;

use std::net::SocketAddr;
use std::sync::Arc;

use ::ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use deltalake::datafusion::error::{DataFusionError, Result as DfResult};
use deltalake::datafusion::execution::SessionStateBuilder;
use deltalake::datafusion::execution::context::SessionState;
use deltalake::datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use deltalake::datafusion::logical_expr::ScalarUDF;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
use mlops_core::FlavorRegistry;
use mlops_registry::Registry;
use object_store::ObjectStore;
use url::Url;

use self::codec::{LogicalCodec, PhysicalCodec};
use self::write_parts::WritingQueryPlanner;
use crate::error::{Error, Result};
use crate::sql::{ModelCatalog, ModelFunctions};

/// Ballista's crates (the client, its core, the executor and the scheduler), of the versions these functions are built for.
pub use {::ballista as client, ballista_core as core, ballista_executor as executor, ballista_scheduler as scheduler};

/// What every process of a cluster needs to run plans that score: a catalog that loads the
/// versions plans name from a registry, and the object stores the tables (and packages) live
/// in, by URL.
#[derive(Clone)]
pub struct ClusterModels {
    catalog: ModelCatalog,
    stores: Vec<(Url, Arc<dyn ObjectStore>)>,
}

impl std::fmt::Debug for ClusterModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stores: Vec<&str> = self.stores.iter().map(|(url, _)| url.as_str()).collect();
        f.debug_struct("ClusterModels").field("catalog", &self.catalog).field("stores", &stores).finish()
    }
}

impl ClusterModels {
    /// Models loaded from `registry` with `flavors`, on first use of each version.
    ///
    /// # Errors
    /// As [`ModelCatalog::loading`].
    pub fn new(registry: Arc<dyn Registry>, flavors: FlavorRegistry) -> Result<Self> {
        Ok(Self { catalog: ModelCatalog::loading(registry, flavors)?, stores: Vec::new() })
    }

    /// Serves the bucket (or container) of `url` with `store`, in every session this
    /// process runs.
    pub fn with_store(mut self, url: &Url, store: Arc<dyn ObjectStore>) -> Self {
        let root = store_root(url);
        self.stores.retain(|(known, _)| *known != root);
        self.stores.push((root, store));
        self
    }

    /// Serves the bucket of `url` (`s3://bucket`, `gs://`, `az://`, `file:///`) with a store
    /// configured by `options` (object_store's keys, such as `aws_endpoint`,
    /// `aws_allow_http`; unset keys fall back to the store's usual environment variables).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a malformed URL or one whose scheme has no store.
    pub fn with_store_url<I, K, V>(self, url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let parsed = Url::parse(url).map_err(|e| Error::InvalidArgument(format!("store url `{url}`: {e}")))?;
        let (store, _) = object_store::parse_url_opts(&parsed, options)
            .map_err(|e| Error::InvalidArgument(format!("store url `{url}`: {e}")))?;
        Ok(self.with_store(&parsed, Arc::from(store)))
    }

    /// The catalog plans score with.
    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    /// `predict` and `model_version` over this process's catalog.
    fn functions(&self) -> [Arc<ScalarUDF>; 2] {
        let functions = ModelFunctions::new(Arc::new(self.catalog.clone()));
        functions.scalar_functions()
    }

    /// The functions an executor resolves plans' calls with: Ballista's and ours.
    pub fn function_registry(&self) -> BallistaFunctionRegistry {
        let mut registry = BallistaFunctionRegistry::default();
        for function in ballista_core::extension::ballista_scalar_functions().into_iter().chain(self.functions()) {
            registry.scalar_functions.insert(function.name().to_owned(), function);
        }
        registry
    }

    /// A runtime with this process's object stores.
    ///
    /// # Errors
    /// DataFusion's, when the runtime cannot be built.
    pub fn runtime_env(&self) -> DfResult<Arc<RuntimeEnv>> {
        let runtime = RuntimeEnvBuilder::new().build()?;
        for (url, store) in &self.stores {
            runtime.register_object_store(url, Arc::clone(store));
        }
        Ok(Arc::new(runtime))
    }

    /// The session a scheduler plans a job in: Ballista's default, with this process's
    /// functions and stores.
    ///
    /// # Errors
    /// DataFusion's, when the runtime cannot be built.
    pub fn scheduler_session(&self, config: SessionConfig) -> DfResult<SessionState> {
        let state = ballista_core::utils::default_session_builder(with_codecs(config))?;
        let mut functions = state.scalar_functions().values().cloned().collect::<Vec<_>>();
        functions.extend(self.functions());
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(self.runtime_env()?)
            .with_scalar_functions(functions)
            .with_query_planner(Arc::new(WritingQueryPlanner))
            .build())
    }

    /// `config` with this process's functions and stores in every session the scheduler
    /// builds.
    pub fn scheduler_config(&self, config: SchedulerConfig) -> SchedulerConfig {
        let models = self.clone();
        SchedulerConfig {
            override_session_builder: Some(Arc::new(move |config: SessionConfig| models.scheduler_session(config))),
            override_logical_codec: Some(Arc::new(LogicalCodec::default())),
            override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
            ..config
        }
    }

    /// `config` with this process's functions and stores in every task the executor runs.
    pub fn executor_config(&self, config: ExecutorProcessConfig) -> ExecutorProcessConfig {
        let models = self.clone();
        ExecutorProcessConfig {
            override_function_registry: Some(Arc::new(self.function_registry())),
            override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| models.runtime_env())),
            override_logical_codec: Some(Arc::new(LogicalCodec::default())),
            override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
            ..config
        }
    }

    /// Runs a scheduler listening on `config.bind_host:config.bind_port` until it fails.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an address that does not parse; [`Error::Query`]
    /// when the scheduler cannot start or stops.
    pub async fn run_scheduler(&self, config: SchedulerConfig) -> Result<()> {
        let config = self.scheduler_config(config);
        let address = format!("{}:{}", config.bind_host, config.bind_port);
        let address: SocketAddr =
            address.parse().map_err(|e| Error::InvalidArgument(format!("scheduler address `{address}`: {e}")))?;
        let cluster =
            BallistaCluster::new_from_config(&config).await.map_err(|e| cluster_error("starting a scheduler", e))?;
        start_server(cluster, address, Arc::new(config)).await.map_err(|e| cluster_error("running a scheduler", e))
    }

    /// Runs an executor that registers with the scheduler `config` names, until it stops.
    ///
    /// # Errors
    /// [`Error::Query`] when the executor cannot start, or fails.
    pub async fn run_executor(&self, config: ExecutorProcessConfig) -> Result<()> {
        start_executor_process(Arc::new(self.executor_config(config)))
            .await
            .map_err(|e| cluster_error("running an executor", e))
    }
}

/// A session whose queries run on the Ballista scheduler at `scheduler_url`
/// (`df://host:port`), scoring with `catalog`'s pinned models; tables registered in it are
/// read by the executors, which need their stores ([`ClusterModels::with_store`]).
///
/// # Errors
/// [`Error::Query`] for a URL Ballista refuses.
pub async fn remote_context(scheduler_url: &str, catalog: &ModelCatalog) -> Result<(SessionContext, ModelFunctions)> {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(with_codecs(SessionConfig::new_with_ballista()))
        .build();
    let ctx = SessionContext::remote_with_state(scheduler_url, state)
        .await
        .map_err(|e| Error::query(format!("connecting to the Ballista scheduler `{scheduler_url}`"), e))?;
    let functions = catalog.register(&ctx);
    Ok((ctx, functions))
}

/// A session whose queries run on a scheduler and an executor inside this process, which
/// score with `catalog`'s pinned models and read tables from `stores` (given by the URL of
/// their bucket) as well as local files.
///
/// # Errors
/// [`Error::Query`] when the scheduler or the executor cannot start.
pub async fn standalone_context(
    catalog: &ModelCatalog,
    stores: &[(Url, Arc<dyn ObjectStore>)],
) -> Result<(SessionContext, ModelFunctions)> {
    let failed = |e| Error::query("starting a Ballista scheduler and executor in this process", e);
    let runtime = RuntimeEnvBuilder::new().build().map_err(failed)?;
    for (url, store) in stores {
        runtime.register_object_store(&store_root(url), Arc::clone(store));
    }
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(with_codecs(SessionConfig::new_with_ballista()))
        .with_runtime_env(Arc::new(runtime))
        .with_query_planner(Arc::new(WritingQueryPlanner))
        .build();
    // The in-process executor resolves functions from the state it is started with.
    let local = SessionContext::new_with_state(state);
    let functions = catalog.register(&local);
    let ctx = SessionContext::standalone_with_state(local.state()).await.map_err(failed)?;
    // The client's session is rebuilt for Ballista without the functions registered above.
    functions.register(&ctx);
    Ok((ctx, functions))
}

/// `config` with the codecs that carry this crate's plan nodes between processes.
fn with_codecs(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
}

/// The URL of `url`'s bucket: stores are registered by scheme and host.
fn store_root(url: &Url) -> Url {
    let mut root = url.clone();
    root.set_path("");
    root.set_query(None);
    root.set_fragment(None);
    root
}

fn cluster_error(context: &str, source: ballista_core::error::BallistaError) -> Error {
    Error::query(context, DataFusionError::External(Box::new(source)))
}
