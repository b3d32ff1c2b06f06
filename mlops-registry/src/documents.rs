//! Documents kept as append-only revisions on an object store.
//!
//! A document lives under a prefix as `<prefix>/<revision>.json`, revision 1, 2, 3, ...
//! zero-padded so that lexical order is numeric order. The current state is the highest
//! revision. An update writes revision `n + 1` with a create-only put: when two writers race,
//! exactly one create succeeds and the other re-reads and re-applies its change. This needs
//! only `PutMode::Create`, which every object store supports (local directories included,
//! which cannot do `PutMode::Update`), and it keeps every past state for history.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const REVISION_DIGITS: usize = 20;
/// How many unreadable revisions in a row an update passes over before giving up.
const MAX_UNREADABLE_REVISIONS: usize = 16;

/// A revision of a document, and the document.
#[derive(Debug, Clone)]
pub(crate) struct Revision<T> {
    pub(crate) number: u64,
    pub(crate) document: T,
}

/// Reads and writes revisioned documents on `store`.
#[derive(Debug, Clone)]
pub(crate) struct Documents {
    store: Arc<dyn ObjectStore>,
}

impl Documents {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    fn revision_path(prefix: &Path, number: u64) -> Path {
        prefix.clone().join(format!("{number:0REVISION_DIGITS$}.json"))
    }

    /// The revision numbers under `prefix`, newest first.
    async fn numbers(&self, prefix: &Path) -> Result<Vec<u64>> {
        let listing: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| Error::backend(format!("listing `{prefix}`"), e))?;
        let mut numbers: Vec<u64> =
            listing.iter().filter_map(|meta| revision_number(meta.location.filename()?)).collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        Ok(numbers)
    }

    async fn read<T: DeserializeOwned>(&self, prefix: &Path, number: u64) -> Result<std::result::Result<T, String>> {
        let path = Self::revision_path(prefix, number);
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| Error::backend(format!("reading `{path}`"), e))?
            .bytes()
            .await
            .map_err(|e| Error::backend(format!("reading `{path}`"), e))?;
        Ok(serde_json::from_slice(&bytes).map_err(|e| format!("`{path}` does not parse: {e}")))
    }

    /// The current revision of the document under `prefix`, `None` if it was never created.
    /// A newest revision that does not parse is an error naming it (reading an older one
    /// instead would report a state that is no longer current); any update repairs it.
    pub(crate) async fn latest<T: DeserializeOwned>(&self, prefix: &Path) -> Result<Option<Revision<T>>> {
        let Some(&number) = self.numbers(prefix).await?.first() else { return Ok(None) };
        let document = self.read(prefix, number).await?.map_err(|why| {
            Error::Corrupt(format!(
                "{why}; the next update of the document writes over it from the newest revision that parses"
            ))
        })?;
        Ok(Some(Revision { number, document }))
    }

    /// The highest revision number under `prefix` and the newest document that parses, for
    /// writing the next revision: revisions that do not parse (a torn write by another
    /// tool, a bad edit) are passed over, so they never make a document unwritable.
    async fn latest_for_update<T: DeserializeOwned>(&self, prefix: &Path) -> Result<Option<Revision<T>>> {
        let numbers = self.numbers(prefix).await?;
        let Some(&highest) = numbers.first() else { return Ok(None) };
        let mut problems = Vec::new();
        for &number in numbers.iter().take(MAX_UNREADABLE_REVISIONS + 1) {
            match self.read(prefix, number).await? {
                Ok(document) => return Ok(Some(Revision { number: highest, document })),
                Err(why) => problems.push(why),
            }
        }
        Err(Error::Corrupt(format!(
            "none of the newest {} revisions of `{prefix}` parses: {}",
            problems.len(),
            problems.join("; ")
        )))
    }

    /// Writes revision `number`; `Ok(false)` when another writer holds it already.
    pub(crate) async fn create<T: Serialize>(&self, prefix: &Path, number: u64, document: &T) -> Result<bool> {
        let path = Self::revision_path(prefix, number);
        let bytes = serde_json::to_vec_pretty(document).map_err(|e| Error::backend(format!("encoding `{path}`"), e))?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from(bytes), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => Err(Error::NotImplemented {
                backend: "object store",
                operation: format!("create-only writes on {}", self.store),
            }),
            Err(e) => Err(Error::backend(format!("writing `{path}`"), e)),
        }
    }

    /// Applies `change` to the current revision and writes the result as the next one,
    /// retrying on lost races until it lands or `change` refuses. Returns the new document
    /// and what `change` returned.
    pub(crate) async fn update<T, R, F>(
        &self,
        prefix: &Path,
        missing: impl Fn() -> Error,
        mut change: F,
    ) -> Result<(T, R)>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnMut(&mut T) -> Result<R> + Send,
    {
        loop {
            let Some(Revision { number, mut document }) = self.latest_for_update::<T>(prefix).await? else {
                return Err(missing());
            };
            let outcome = change(&mut document)?;
            let next = number.checked_add(1).ok_or_else(|| {
                Error::InvalidArgument(format!("`{prefix}` is at the last revision number, {number}"))
            })?;
            if self.create(prefix, next, &document).await? {
                return Ok((document, outcome));
            }
        }
    }
}

/// The revision a file name holds: exactly [`REVISION_DIGITS`] digits and `.json`, so a
/// stray `7.json` (or anything else dropped under the prefix) never shadows the real ones.
pub(crate) fn revision_number(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(".json")?;
    if digits.len() != REVISION_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::revision_number;

    #[test]
    fn only_padded_revision_names_count() {
        assert_eq!(revision_number("00000000000000000007.json"), Some(7));
        assert_eq!(revision_number("18446744073709551615.json"), Some(u64::MAX));
        for stray in ["7.json", "+0000000000000000007.json", "99999999999999999999.json", "00000000000000000007.jsn"] {
            assert_eq!(revision_number(stray), None, "{stray}");
        }
    }
}
