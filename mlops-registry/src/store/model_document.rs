//! What the object-store registry keeps in a model's document beside the model itself.

use serde::{Deserialize, Serialize};

use crate::model::RegisteredModel;

/// A model's document: the model, the versions deleted from it, and whether the model
/// itself is being deleted. Alias moves and deletions all update this one document, so an
/// alias can never be moved to a version that a concurrent deletion removes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ModelDocument {
    #[serde(flatten)]
    pub(crate) model: RegisteredModel,
    /// Versions deleted: their numbers are never given again.
    #[serde(default, skip_serializing_if = "VersionRanges::is_empty")]
    pub(crate) deleted_versions: VersionRanges,
    /// Set when `delete_model` starts: from then on the model reads as absent, and a new
    /// call of `delete_model` finishes removing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleting: bool,
}

impl ModelDocument {
    pub(crate) fn new(model: RegisteredModel) -> Self {
        Self { model, deleted_versions: VersionRanges::default(), deleting: false }
    }
}

/// A set of version numbers kept as inclusive ranges, so that a model which deleted
/// thousands of old versions still has a small document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct VersionRanges(Vec<[u64; 2]>);

impl VersionRanges {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, version: u64) -> bool {
        self.0.iter().any(|[first, last]| (*first..=*last).contains(&version))
    }

    /// The highest version in the set.
    pub(crate) fn max(&self) -> Option<u64> {
        self.0.iter().map(|[first, last]| *first.max(last)).max()
    }

    pub(crate) fn insert(&mut self, version: u64) {
        self.0.push([version, version]);
        self.0.iter_mut().for_each(|range| range.sort_unstable());
        self.0.sort_unstable();
        let mut merged: Vec<[u64; 2]> = Vec::with_capacity(self.0.len());
        for range in self.0.drain(..) {
            match merged.last_mut() {
                Some(last) if range[0] <= last[1].saturating_add(1) => last[1] = last[1].max(range[1]),
                _ => merged.push(range),
            }
        }
        self.0 = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::VersionRanges;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ranges_hold_exactly_what_was_inserted(versions in proptest::collection::vec(0u64..64, 0..40)) {
            let mut ranges = VersionRanges::default();
            for &v in &versions {
                ranges.insert(v);
            }
            for v in 0..66 {
                prop_assert_eq!(ranges.contains(v), versions.contains(&v));
            }
            prop_assert_eq!(ranges.max(), versions.iter().copied().max());
            // Merged: no two ranges touch.
            prop_assert!(ranges.0.windows(2).all(|w| w[0][1] + 1 < w[1][0]));
        }
    }
}
