//! Where an endpoint gets the model it serves.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use mlops_registry::{LiveModel, LoadedModel};

/// The model an endpoint serves right now.
///
/// `None` means not loaded yet: the endpoint answers 503 and `/health` is not healthy.
pub trait ModelSource: Send + Sync + 'static {
    /// The model serving now.
    fn current(&self) -> Option<Arc<LoadedModel>>;

    /// What keeps the source from being trusted to serve what it should (a model that
    /// stopped following its alias, say), reported by `/health`; `None` when all is well.
    fn problem(&self) -> Option<String> {
        None
    }
}

/// A model that follows its alias: the endpoint serves whatever version it holds, so an
/// alias move is served without a restart and without a failed request.
impl ModelSource for LiveModel {
    fn current(&self) -> Option<Arc<LoadedModel>> {
        Some(LiveModel::current(self))
    }

    /// A stopped poller, or an alias not confirmed for
    /// [`STALE_AFTER_POLLS`](mlops_registry::STALE_AFTER_POLLS) poll intervals.
    fn problem(&self) -> Option<String> {
        self.status().problem(self.poll_interval()).map(|why| format!("`{}` {why}", self.uri()))
    }
}

/// A place for a model that is filled later (or replaced): mount the router first, load
/// the model in the background, and serve 503 until it is there.
#[derive(Debug, Default)]
pub struct ModelSlot {
    model: ArcSwapOption<LoadedModel>,
}

impl ModelSlot {
    /// A slot with no model yet.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A slot holding `model`.
    pub fn loaded(model: LoadedModel) -> Self {
        let slot = Self::empty();
        slot.set(model);
        slot
    }

    /// Serves `model` from now on.
    pub fn set(&self, model: LoadedModel) {
        self.model.store(Some(Arc::new(model)));
    }
}

impl ModelSource for ModelSlot {
    fn current(&self) -> Option<Arc<LoadedModel>> {
        self.model.load_full()
    }
}
