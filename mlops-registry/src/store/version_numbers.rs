//! Giving each new version the next number without listing the model's versions.
//!
//! Numbers are dense (1, 2, 3, ...) and never given twice, deleted ones included. Listing
//! every version to find the highest makes each registration cost as much as the model's
//! history, and registering the n-th version quadratic; instead a small hint object beside
//! the model says which number comes next. The hint is only a starting point: a number is
//! taken by a create-only write of its document, a hint is trusted only when the number
//! below it is taken, and a missing, unreadable or doubtful hint falls back to the listing.

use mlops_core::ModelName;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::ObjectStoreRegistry;
use super::model_document::VersionRanges;
use crate::error::{Error, Result};

/// The hint's name beside the model's document.
const NEXT_VERSION_FILE: &str = "next-version";

/// The largest hint object read.
const MAX_HINT_BYTES: u64 = 64;

/// How many taken numbers a registration steps over before it lists the versions again:
/// writers racing for the same numbers, or a hint left behind by a writer that stopped.
const PROBES_BEFORE_LISTING: u32 = 16;

/// Where the search for a free number starts.
pub(super) struct Candidate {
    number: u64,
    probes_left: u32,
}

impl ObjectStoreRegistry {
    fn next_version_hint(&self, name: &ModelName) -> Path {
        self.model_prefix(name).join(NEXT_VERSION_FILE)
    }

    /// The first number to try for a new version of `name`: the hint when the number below
    /// it is taken, else one above the highest version listed; never a deleted number.
    pub(super) async fn first_candidate(&self, name: &ModelName, deleted: &VersionRanges) -> Result<Candidate> {
        let floor = deleted.max().map_or(Some(1), |v| v.checked_add(1)).ok_or_else(|| exhausted(name))?;
        if let Some(hint) = self.read_hint(name).await? {
            let number = hint.max(floor);
            if number == 1 || self.number_taken(name, number - 1, deleted).await? {
                return Ok(Candidate { number, probes_left: PROBES_BEFORE_LISTING });
            }
        }
        self.listed_candidate(name, floor).await
    }

    /// The next number to try after `tried` turned out to be taken.
    pub(super) async fn next_candidate(
        &self,
        name: &ModelName,
        tried: Candidate,
        deleted: &VersionRanges,
    ) -> Result<Candidate> {
        let floor = deleted.max().map_or(1, |v| v.saturating_add(1));
        if tried.probes_left == 0 {
            return self.listed_candidate(name, floor.max(tried.number)).await;
        }
        let number = tried.number.checked_add(1).ok_or_else(|| exhausted(name))?.max(floor);
        Ok(Candidate { number, probes_left: tried.probes_left - 1 })
    }

    /// Records that the version after `taken` is the next to give. Best effort: a hint not
    /// written costs the next registration a listing, no more.
    pub(super) async fn advance_hint(&self, name: &ModelName, taken: u64) {
        let Some(next) = taken.checked_add(1) else { return };
        let path = self.next_version_hint(name);
        if let Err(e) = self.store.put(&path, PutPayload::from(next.to_string())).await {
            tracing::warn!(target: "mlops_registry", hint = %path, error = %e, "next version hint not updated");
        }
    }

    async fn read_hint(&self, name: &ModelName) -> Result<Option<u64>> {
        let path = self.next_version_hint(name);
        let reading = |e| Error::backend(format!("reading `{path}`"), e);
        let bytes = match self.store.get(&path).await {
            // A number is at most 20 digits: anything far larger is not a hint, and is not
            // read into memory.
            Ok(object) if object.meta.size > MAX_HINT_BYTES => None,
            Ok(object) => Some(object.bytes().await.map_err(reading)?),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(reading(e)),
        };
        let hint = bytes
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.trim().parse::<u64>().ok());
        if hint.is_none() {
            tracing::warn!(target: "mlops_registry", hint = %path, "next version hint unreadable; listing versions");
        }
        Ok(hint.filter(|&number| number > 0))
    }

    /// Whether `number` is given: deleted, or with a document.
    async fn number_taken(&self, name: &ModelName, number: u64, deleted: &VersionRanges) -> Result<bool> {
        Ok(deleted.contains(number) || self.documents.exists(&self.version_doc(name, number)).await?)
    }

    /// One above the highest version listed, and at least `floor`.
    async fn listed_candidate(&self, name: &ModelName, floor: u64) -> Result<Candidate> {
        let listed = self.version_numbers(name).await?.last().copied();
        let after_listed = listed.map_or(Some(1), |v| v.checked_add(1)).ok_or_else(|| exhausted(name))?;
        Ok(Candidate { number: after_listed.max(floor), probes_left: PROBES_BEFORE_LISTING })
    }
}

impl Candidate {
    pub(super) fn number(&self) -> u64 {
        self.number
    }
}

fn exhausted(name: &ModelName) -> Error {
    Error::InvalidArgument(format!("model `{name}` has used every version number"))
}
