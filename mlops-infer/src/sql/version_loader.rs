//! Versions loaded when a plan first names them, for processes that run plans pinned
//! elsewhere.

use std::collections::HashMap;
use std::sync::Arc;

use mlops_core::{FlavorRegistry, ModelUri};
use mlops_registry::{Registry, RegistryExt};
use parking_lot::Mutex;

use super::catalog::PinnedModel;
use crate::batch::BatchScorer;
use crate::error::{Error, Result};

/// Loads `models:/<name>/<version>` URIs from a registry on first use and keeps them.
///
/// Only version URIs load: a version never changes, so every process that loads one scores
/// with the same model, while an alias could name another version by the time a second
/// process reads it. Plans carry version URIs: the process that plans a query pins its
/// aliases and writes the versions into the plan.
///
/// Functions are called synchronously while a plan is built or a batch is scored, so a load
/// blocks its caller. It runs on a thread of its own inside the loader's runtime, which
/// outlives each load so that the registry's connections stay usable between them.
pub(crate) struct VersionLoader {
    registry: Arc<dyn Registry>,
    flavors: FlavorRegistry,
    runtime: LoaderRuntime,
    loaded: Mutex<HashMap<String, Arc<PinnedModel>>>,
    /// One lock per version, held while it loads: partitions asking for a version at once
    /// load it once, and a slow version holds up no other.
    loading: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl std::fmt::Debug for VersionLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let loaded: Vec<String> = self.loaded.lock().keys().cloned().collect();
        f.debug_struct("VersionLoader").field("loaded", &loaded).finish_non_exhaustive()
    }
}

impl VersionLoader {
    pub(crate) fn new(registry: Arc<dyn Registry>, flavors: FlavorRegistry) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mlops-version-loader")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                operation: "starting the model loader's runtime",
                path: std::path::PathBuf::new(),
                source,
            })?;
        Ok(Self {
            registry,
            flavors,
            runtime: LoaderRuntime(Some(runtime)),
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
        })
    }

    /// The version `uri` names, loaded now if no call loaded it before.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URI that is not a version URI; the registry's error
    /// (unknown version, damaged package) or the model's, naming the version. A failed load
    /// is not remembered: the next call tries again.
    pub(crate) fn get(&self, uri: &ModelUri) -> Result<Arc<PinnedModel>> {
        if !matches!(uri, ModelUri::Version { .. }) {
            return Err(Error::InvalidArgument(format!(
                "model `{uri}` reached a process that loads models on demand, which loads only version URIs \
                 (`models:/<name>/<version>`): pin the alias in the process that plans the query, whose plans \
                 then name the version"
            )));
        }
        let key = uri.to_string();
        if let Some(pinned) = self.loaded.lock().get(&key) {
            return Ok(Arc::clone(pinned));
        }
        let lock = Arc::clone(self.loading.lock().entry(key.clone()).or_default());
        let _loading = lock.lock();
        if let Some(pinned) = self.loaded.lock().get(&key) {
            return Ok(Arc::clone(pinned));
        }
        let loaded = self.load(uri).map(Arc::new);
        if let Ok(pinned) = &loaded {
            self.loaded.lock().insert(key.clone(), Arc::clone(pinned));
        }
        // Failed URIs leave nothing behind, however many a plan names.
        self.loading.lock().remove(&key);
        loaded
    }

    fn load(&self, uri: &ModelUri) -> Result<PinnedModel> {
        let Some(runtime) = self.runtime.0.as_ref() else {
            return Err(Error::InvalidArgument("the model loader has shut down".to_owned()));
        };
        let (registry, flavors) = (&self.registry, &self.flavors);
        // A thread of its own: the caller may be on a runtime's worker, where blocking on
        // another runtime is refused; a panic in a flavor's loader ends that thread only.
        let loaded = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let loaded = runtime.block_on(registry.load_model(uri, flavors))?;
                    let example = loaded.input_example.clone();
                    PinnedModel::new(uri.clone(), BatchScorer::from(loaded), example.as_ref())
                })
                .join()
        });
        loaded.unwrap_or_else(|panic| {
            Err(mlops_core::Error::Panicked {
                what: format!("loading model `{uri}`"),
                message: mlops_core::panic_message(&*panic),
            }
            .into())
        })
    }
}

/// The loader's runtime, shut down without waiting when the loader goes: dropping a runtime
/// inside another runtime's task would panic.
struct LoaderRuntime(Option<tokio::runtime::Runtime>);

impl Drop for LoaderRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
