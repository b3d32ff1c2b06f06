//! Which versions of a model to keep, planned as a dry run and then applied on any backend.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use mlops_core::ModelName;

use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::version::SearchVersions;

/// What to keep of a model's versions: the newest N, every version an alias points at, and
/// every version carrying one of the named tags. Everything else is deleted.
///
/// ```
/// use mlops_core::{ColSpec, ColumnType, Package, Schema, Signature};
/// use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, RetentionPolicy, SetAlias};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let registry = MemoryRegistry::new();
/// let name: mlops_core::ModelName = "transactions".parse()?;
/// registry.create_model(CreateModel::new(name.clone())).await?;
/// # let package = Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?)).build()?;
/// for _ in 0..6 {
///     registry.create_version(CreateVersion::new(name.clone(), package.clone())).await?;
/// }
/// registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await?;
///
/// let plan = RetentionPolicy::keep_newest(2).plan(&registry, &name).await?;
/// assert_eq!(plan.delete, [2, 3, 4]); // a dry run: nothing deleted yet
/// assert_eq!(plan.apply(&registry).await?.deleted, [2, 3, 4]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    newest: usize,
    tags: Vec<(String, Option<String>)>,
}

impl RetentionPolicy {
    /// Keeps the newest `newest` versions and every version an alias points at.
    pub fn keep_newest(newest: usize) -> Self {
        Self { newest, tags: Vec::new() }
    }

    /// Also keeps every version with tag `key` set to `value`.
    #[must_use]
    pub fn keep_tagged(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), Some(value.into())));
        self
    }

    /// Also keeps every version with tag `key`, whatever its value.
    #[must_use]
    pub fn keep_any_tagged(mut self, key: impl Into<String>) -> Self {
        self.tags.push((key.into(), None));
        self
    }

    /// What applying the policy to `model` would delete and keep, deleting nothing.
    ///
    /// # Errors
    /// As [`Registry::search_versions`].
    pub async fn plan(&self, registry: &dyn Registry, model: &ModelName) -> Result<RetentionPlan> {
        let mut versions = registry.search_versions(SearchVersions::model(model.clone())).await?;
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        let aliased: BTreeSet<u64> = registry.get_model(model).await?.aliases.into_values().collect();
        let (mut keep, mut delete) = (Vec::new(), Vec::new());
        for (rank, version) in versions.iter().enumerate() {
            let tagged = self.tags.iter().any(|(key, value)| match value {
                Some(value) => version.tags.get(key) == Some(value),
                None => version.tags.contains_key(key),
            });
            if rank < self.newest || aliased.contains(&version.version) || tagged {
                keep.push(version.version);
            } else {
                delete.push(version.version);
            }
        }
        keep.reverse();
        delete.reverse();
        Ok(RetentionPlan { model: model.clone(), keep, delete })
    }
}

/// A [`RetentionPolicy`] worked out for one model: a dry run until applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPlan {
    /// The model.
    pub model: ModelName,
    /// The versions kept, ascending.
    pub keep: Vec<u64>,
    /// The versions to delete, ascending.
    pub delete: Vec<u64>,
}

/// What [`RetentionPlan::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionOutcome {
    /// Versions deleted.
    pub deleted: Vec<u64>,
    /// Versions the plan would delete that an alias moved onto since: kept.
    pub spared: Vec<u64>,
    /// Versions someone else deleted first.
    pub already_gone: Vec<u64>,
}

impl RetentionPlan {
    /// Deletes the planned versions. One that an alias moved onto since the plan is spared
    /// (the registry refuses to delete it), one already deleted is noted.
    ///
    /// # Errors
    /// The first other error of [`Registry::delete_version`]; what was deleted until then
    /// stays deleted.
    pub async fn apply(&self, registry: &dyn Registry) -> Result<RetentionOutcome> {
        let mut outcome = RetentionOutcome::default();
        for &version in &self.delete {
            match registry.delete_version(&self.model, version).await {
                Ok(_) => outcome.deleted.push(version),
                Err(Error::InUse { .. }) => outcome.spared.push(version),
                Err(Error::NotFound { .. }) => outcome.already_gone.push(version),
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }
}

/// The instant `age` before `now`: the cut-off of a retention or a grace period. An age
/// longer than the calendar reaches back (`Duration::MAX` for "never") gives its first
/// instant, so nothing is old enough.
pub(crate) fn cutoff(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_past_the_calendar_cuts_off_at_its_start() {
        let now = Utc::now();
        assert_eq!(cutoff(now, Duration::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(cutoff(now, Duration::from_secs(300_000 * 365 * 86_400)), DateTime::<Utc>::MIN_UTC);
        assert_eq!(cutoff(now, Duration::from_secs(60)), now - chrono::TimeDelta::seconds(60));
    }
}
