//! Alias moves with compare-and-swap.

use mlops_core::ModelName;

/// When an alias may be moved, in the shape of object_store's `PutMode`.
///
/// A deployment that reads `champion -> 3`, evaluates a challenger and promotes it uses
/// `Update(3)`: if another process moved the alias meanwhile, the move fails with
/// [`Error::Precondition`](crate::Error::Precondition) instead of silently overwriting that
/// decision. Retry by reading the alias again and re-deciding:
///
/// ```
/// # use mlops_registry::{AliasMode, Error, MemoryRegistry, Registry, RegistryExt, SetAlias};
/// # async fn promote(registry: &dyn Registry, name: mlops_core::ModelName, challenger: u64) -> mlops_registry::Result<()> {
/// loop {
///     let current = registry.version_by_alias(&name, "champion").await?.version;
///     // ... decide that `challenger` beats `current` ...
///     let request = SetAlias::new(name.clone(), "champion", challenger).mode(AliasMode::Update(current));
///     match registry.set_alias(request).await {
///         Err(Error::Precondition { .. }) => continue, // someone else moved it: decide again
///         other => return other.map(|_| ()),
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AliasMode {
    /// Move the alias wherever it points (or create it).
    #[default]
    Overwrite,
    /// Only create the alias; fail with `Precondition` if it exists.
    Create,
    /// Only move the alias if it currently points at this version.
    Update(u64),
}

/// Options of [`Registry::set_alias`](crate::Registry::set_alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAlias {
    /// The model.
    pub model: ModelName,
    /// The alias, e.g. `champion`.
    pub alias: String,
    /// The version the alias should point at.
    pub version: u64,
    /// When the move is allowed.
    pub mode: AliasMode,
}

impl SetAlias {
    /// Points `alias` of `model` at `version`, whatever it points at now.
    pub fn new(model: ModelName, alias: impl Into<String>, version: u64) -> Self {
        Self { model, alias: alias.into(), version, mode: AliasMode::Overwrite }
    }

    /// Sets the compare-and-swap mode.
    pub fn mode(mut self, mode: AliasMode) -> Self {
        self.mode = mode;
        self
    }
}
