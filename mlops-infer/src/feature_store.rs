//! The trait scorers read feature tables through (feature `stream`).

use async_trait::async_trait;
use mlops_core::features::FeatureTables;

use crate::error::Result;

/// Where scorers get the feature tables a model's lookups read:
/// [`DeltaFeatureStore`](crate::DeltaFeatureStore) (feature `delta`), tables held in memory,
/// or your own.
#[async_trait]
pub trait FeatureStore: Send + Sync {
    /// The current state of the tables called `names`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming a table that does not
    /// exist; storage errors.
    async fn tables(&self, names: &[&str]) -> Result<FeatureTables>;
}

/// Tables held in memory serve as a store too (tests, or tables computed in process).
#[async_trait]
impl FeatureStore for FeatureTables {
    async fn tables(&self, names: &[&str]) -> Result<FeatureTables> {
        names.iter().map(|name| Ok(self.get(name)?.clone())).collect()
    }
}
