//! Where a server or a stream gets the model it runs: a [`LiveModel`] that follows an
//! alias, or a [`ModelSlot`] filled by the application.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::live::{FollowStatus, LiveModel};
use crate::registry::LoadedModel;

/// The model to run right now.
///
/// A model server asks for it on every request and a stream on every micro-batch, so a
/// source that swaps its model (an alias moved) is followed without a restart. `None` means
/// not loaded yet: a server answers 503 and a stream waits.
pub trait ModelSource: Send + Sync + 'static {
    /// The model to run now.
    fn current(&self) -> Option<Arc<LoadedModel>>;

    /// What keeps the source from being trusted to run what it should (a model that
    /// stopped following its alias, say); `None` when all is well. A server reports it in
    /// `/health`.
    fn problem(&self) -> Option<String> {
        None
    }

    /// How the source is keeping up with the URI it follows, for a source that follows one
    /// (a [`LiveModel`]); `None` for one that does not. A server shows it in its endpoint
    /// state and its metrics.
    fn following(&self) -> Option<FollowStatus> {
        None
    }
}

/// A model that follows its alias: whatever version it holds runs, so an alias move takes
/// effect without a restart and without a failed request.
impl ModelSource for LiveModel {
    fn current(&self) -> Option<Arc<LoadedModel>> {
        Some(LiveModel::current(self))
    }

    /// A stopped poller, or an alias not confirmed for
    /// [`STALE_AFTER_POLLS`](crate::STALE_AFTER_POLLS) poll intervals.
    fn problem(&self) -> Option<String> {
        self.status().problem(self.poll_interval()).map(|why| format!("`{}` {why}", self.uri()))
    }

    fn following(&self) -> Option<FollowStatus> {
        Some(self.status())
    }
}

/// A place for a model that is filled later (or replaced): mount a router or start a stream
/// first, load the model in the background, and run it once it is there.
///
/// ```
/// use mlops_registry::{ModelSlot, ModelSource};
///
/// let slot = ModelSlot::empty();
/// assert!(slot.current().is_none());
/// ```
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

    /// Runs `model` from now on.
    pub fn set(&self, model: LoadedModel) {
        self.model.store(Some(Arc::new(model)));
    }
}

impl ModelSource for ModelSlot {
    fn current(&self) -> Option<Arc<LoadedModel>> {
        self.model.load_full()
    }
}
