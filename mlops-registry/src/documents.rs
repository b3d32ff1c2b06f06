//! Documents kept as numbered revisions on an object store, read in constant time.
//!
//! A document under `<prefix>` has a pointer, `<prefix>/current.json`, holding its newest
//! revision (number and content), and past revisions as `<prefix>/<revision>.json`, revision
//! 1, 2, 3, ... zero-padded so that lexical order is numeric order. Reads never list: they
//! get the pointer, whatever the number of revisions. How the pointer is kept depends on the
//! store, which every writer learns on its first write:
//!
//! - **Conditional overwrite** (S3, GCS, Azure, memory: `PutMode::Update`). The pointer is the
//!   truth. An update archives the revision it replaces as `<n>.json` and then swaps the
//!   pointer to `n + 1` on its e-tag; when two writers race exactly one swap lands and the
//!   other re-reads and re-applies. A read is one request, and the pointer never goes back.
//! - **Create-only** (local directories, which cannot do `PutMode::Update`). The revisions
//!   are the truth: an update creates `<n + 1>.json` with a create-only put (the loser of a
//!   race re-reads and re-applies) and then overwrites the pointer, which is a hint that a
//!   slow writer can set back. A read gets the pointer and checks that the next revision does
//!   not exist, following newer ones if it does.
//!
//! A pointer records which of the two kept it (`exact`), so a reader knows whether to check.
//! A document without a pointer (written before pointers existed, or by a writer that died
//! between creating revision 1 and the pointer) is read by listing its revisions, and its next
//! update writes the pointer. [`Documents::compact`] removes old revisions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const REVISION_DIGITS: usize = 20;
/// The pointer's file name; never a revision name, which is all digits.
pub(crate) const POINTER_FILE: &str = "current.json";
/// How many unreadable revisions in a row an update passes over before giving up.
const MAX_UNREADABLE_REVISIONS: usize = 16;

/// The pointer as stored.
#[derive(Serialize, Deserialize)]
struct Pointer<T> {
    revision: u64,
    /// Kept with conditional overwrites, so it is the newest revision; otherwise a hint.
    exact: bool,
    document: T,
}

/// A revision of a document, and the document.
#[derive(Debug, Clone)]
pub(crate) struct Revision<T> {
    pub(crate) number: u64,
    pub(crate) document: T,
}

/// What the store offers for overwriting the pointer, learned on the first write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overwrite {
    Unknown = 0,
    Conditional = 1,
    CreateOnly = 2,
}

/// The newest state found for an update: its number, its document (the newest that parses),
/// and the pointer's version when there is a pointer.
struct ForUpdate<T> {
    number: u64,
    document: T,
    pointer: Option<PointerState>,
}

/// A pointer as read: the version to swap it on, and whether it is exact (then the revision
/// it holds exists nowhere else and is archived before the swap).
struct PointerState {
    version: UpdateVersion,
    exact: bool,
}

/// What [`Documents::compact`] did to one document.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compacted {
    pub(crate) removed: u64,
    pub(crate) kept: u64,
}

/// Reads and writes revisioned documents on `store`.
#[derive(Debug, Clone)]
pub(crate) struct Documents {
    store: Arc<dyn ObjectStore>,
    overwrite: Arc<AtomicU8>,
}

impl Documents {
    pub(crate) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, overwrite: Arc::new(AtomicU8::new(Overwrite::Unknown as u8)) }
    }

    fn overwrite(&self) -> Overwrite {
        match self.overwrite.load(Ordering::Relaxed) {
            1 => Overwrite::Conditional,
            2 => Overwrite::CreateOnly,
            _ => Overwrite::Unknown,
        }
    }

    fn learn(&self, overwrite: Overwrite) {
        self.overwrite.store(overwrite as u8, Ordering::Relaxed);
    }

    fn revision_path(prefix: &Path, number: u64) -> Path {
        prefix.clone().join(format!("{number:0REVISION_DIGITS$}.json"))
    }

    fn pointer_path(prefix: &Path) -> Path {
        prefix.clone().join(POINTER_FILE)
    }

    /// The object at `path` with its metadata, `None` when there is none.
    async fn get(&self, path: &Path) -> Result<Option<(ObjectMeta, Bytes)>> {
        let reading = |e| Error::backend(format!("reading `{path}`"), e);
        match self.store.get(path).await {
            Ok(result) => {
                let meta = result.meta.clone();
                Ok(Some((meta, result.bytes().await.map_err(reading)?)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(reading(e)),
        }
    }

    /// The revisions under `prefix`, newest first.
    async fn listed(&self, prefix: &Path) -> Result<Vec<(u64, ObjectMeta)>> {
        let listing: Vec<ObjectMeta> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| Error::backend(format!("listing `{prefix}`"), e))?;
        let mut revisions: Vec<(u64, ObjectMeta)> = listing
            .into_iter()
            .filter(|meta| meta.location.prefix_match(prefix).is_some_and(|mut parts| parts.nth(1).is_none()))
            .filter_map(|meta| Some((revision_number(meta.location.filename()?)?, meta)))
            .collect();
        revisions.sort_unstable_by_key(|(number, _)| std::cmp::Reverse(*number));
        Ok(revisions)
    }

    /// Revision `number` parsed, `Ok(None)` when it does not exist, `Ok(Some(Err(why)))` when
    /// it does not parse.
    async fn read_revision<T: DeserializeOwned>(
        &self,
        prefix: &Path,
        number: u64,
    ) -> Result<Option<std::result::Result<T, String>>> {
        let path = Self::revision_path(prefix, number);
        Ok(self.get(&path).await?.map(|(_, bytes)| parse(&path, &bytes)))
    }

    /// The newest revision and the newest one that parses, found by listing.
    async fn newest_listed<T: DeserializeOwned>(&self, prefix: &Path) -> Result<Option<Newest<T>>> {
        let numbers: Vec<u64> = self.listed(prefix).await?.into_iter().map(|(number, _)| number).collect();
        let Some(&highest) = numbers.first() else { return Ok(None) };
        let mut newest = Newest { highest, problems: Vec::new(), readable: None };
        for &number in numbers.iter().take(MAX_UNREADABLE_REVISIONS + 1) {
            match self.read_revision(prefix, number).await? {
                Some(Ok(document)) => {
                    newest.readable = Some(Revision { number, document });
                    break;
                }
                Some(Err(why)) => newest.problems.push(why),
                // Removed by a compaction since the listing: only older ones follow.
                None => break,
            }
        }
        Ok(Some(newest))
    }

    /// The newest revision at or after the hint `from` (whose document is `document`),
    /// following revisions the hint does not know of yet. `None` when `from` itself was
    /// removed by a compaction, so the hint may be older than every revision left: the
    /// caller lists instead.
    async fn newest_after<T: DeserializeOwned>(
        &self,
        prefix: &Path,
        from: u64,
        document: T,
    ) -> Result<Option<Newest<T>>> {
        // Compaction removes revisions oldest first and never the newest, so when `from` is
        // still there and the revision after it is not, `from` is the newest. Both are asked
        // at once: on a local directory each request is a round trip to a blocking thread.
        let after = from.checked_add(1);
        let from_path = Self::revision_path(prefix, from);
        let (next, from_exists) = futures::try_join!(
            async {
                match after {
                    Some(next) => self.read_revision::<T>(prefix, next).await,
                    None => Ok(None),
                }
            },
            object_exists(self.store.as_ref(), &from_path),
        )?;
        let mut newest =
            Newest { highest: from, problems: Vec::new(), readable: Some(Revision { number: from, document }) };
        let Some(next) = next else { return Ok(from_exists.then_some(newest)) };
        let mut found = Some(next);
        while let Some(revision) = found {
            newest.highest = newest.highest.saturating_add(1);
            match revision {
                Ok(document) => {
                    newest.problems.clear();
                    newest.readable = Some(Revision { number: newest.highest, document });
                }
                Err(why) => newest.problems.push(why),
            }
            found = match newest.highest.checked_add(1) {
                Some(next) => self.read_revision(prefix, next).await?,
                None => None,
            };
        }
        Ok(Some(newest))
    }

    /// The newest state of the document under `prefix`, `None` if it was never created, and
    /// the pointer as read (its metadata and bytes) when there is one.
    async fn newest<T: DeserializeOwned>(&self, prefix: &Path) -> Result<(Option<Newest<T>>, Option<PointerState>)> {
        let path = Self::pointer_path(prefix);
        let Some((meta, bytes)) = self.get(&path).await? else { return Ok((self.newest_listed(prefix).await?, None)) };
        let mut exact = false;
        let newest = match parse::<Pointer<T>>(&path, &bytes) {
            Ok(pointer) if pointer.exact => {
                exact = true;
                Some(Newest::exact(pointer.revision, pointer.document))
            }
            Ok(pointer) => match self.newest_after(prefix, pointer.revision, pointer.document).await? {
                Some(newest) => Some(newest),
                None => self.newest_listed(prefix).await?,
            },
            Err(why) => {
                // The revisions lag behind an exact pointer by one, so listing them would
                // answer an older state as current; only an update repairs this.
                let listed = self.newest_listed::<T>(prefix).await?;
                Some(Newest {
                    highest: listed.as_ref().map_or(0, |l| l.highest),
                    problems: vec![why],
                    readable: listed.and_then(|l| l.readable),
                })
            }
        };
        let version = UpdateVersion { e_tag: meta.e_tag, version: meta.version };
        Ok((newest, Some(PointerState { version, exact })))
    }

    /// The current revision of the document under `prefix`, `None` if it was never created.
    /// A newest revision that does not parse is an error naming it (reading an older one
    /// instead would report a state that is no longer current); any update repairs it.
    pub(crate) async fn latest<T: DeserializeOwned>(&self, prefix: &Path) -> Result<Option<Revision<T>>> {
        let (newest, _) = self.newest::<T>(prefix).await?;
        let Some(newest) = newest else { return Ok(None) };
        match newest.readable {
            Some(revision) if newest.problems.is_empty() => Ok(Some(revision)),
            _ => Err(Error::Corrupt(format!(
                "{}; the next update of the document writes over it from the newest revision that parses",
                newest.problems.join("; ")
            ))),
        }
    }

    /// The state an update starts from: revisions that do not parse (a torn write by another
    /// tool, a bad edit) are passed over, so they never make a document unwritable.
    async fn for_update<T: DeserializeOwned>(&self, prefix: &Path) -> Result<Option<ForUpdate<T>>> {
        let (newest, pointer) = self.newest::<T>(prefix).await?;
        let Some(newest) = newest else { return Ok(None) };
        let Some(readable) = newest.readable.filter(|_| newest.problems.len() <= MAX_UNREADABLE_REVISIONS) else {
            return Err(Error::Corrupt(format!(
                "none of the newest {} revisions of `{prefix}` parses: {}",
                newest.problems.len(),
                newest.problems.join("; ")
            )));
        };
        Ok(Some(ForUpdate { number: newest.highest, document: readable.document, pointer }))
    }

    /// Whether the document under `prefix` exists: it has a pointer from its first revision
    /// on until it is removed. One request.
    pub(crate) async fn exists(&self, prefix: &Path) -> Result<bool> {
        object_exists(self.store.as_ref(), &Self::pointer_path(prefix)).await
    }

    /// Writes revision 1 of a new document; `Ok(false)` when the document exists already.
    pub(crate) async fn create<T: Serialize>(&self, prefix: &Path, document: &T) -> Result<bool> {
        let path = Self::revision_path(prefix, 1);
        if !self.put_create(&path, encode(&path, document)?).await? {
            return Ok(false);
        }
        self.write_first_pointer(prefix, 1, document).await?;
        Ok(true)
    }

    /// The pointer of a document that has none, at revision `number`. A writer that does not
    /// know yet whether the store overwrites conditionally learns it here, by swapping the
    /// pointer it just created for an exact one.
    async fn write_first_pointer<T: Serialize>(&self, prefix: &Path, number: u64, document: &T) -> Result<()> {
        let path = Self::pointer_path(prefix);
        let exact = self.overwrite() == Overwrite::Conditional;
        let bytes = encode(&path, &Pointer { revision: number, exact, document })?;
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        let created = match self.store.put_opts(&path, PutPayload::from(bytes), options).await {
            Ok(created) => created,
            // Another writer wrote it first, from the same revision or a later one.
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(()),
            Err(e) => return Err(Error::backend(format!("writing `{path}`"), e)),
        };
        if self.overwrite() != Overwrite::Unknown {
            return Ok(());
        }
        let bytes = encode(&path, &Pointer { revision: number, exact: true, document })?;
        let version = UpdateVersion { e_tag: created.e_tag, version: created.version };
        let options = PutOptions { mode: PutMode::Update(version), ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from(bytes), options).await {
            Ok(_) => self.learn(Overwrite::Conditional),
            Err(object_store::Error::NotImplemented { .. }) => self.learn(Overwrite::CreateOnly),
            // Another writer moved the pointer on already; it stays a hint, which is safe.
            Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => return Err(Error::backend(format!("writing `{path}`"), e)),
        }
        Ok(())
    }

    /// A create-only put; `Ok(false)` when the object exists.
    async fn put_create(&self, path: &Path, bytes: Vec<u8>) -> Result<bool> {
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(path, PutPayload::from(bytes), options).await {
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
            let Some(ForUpdate { number, mut document, pointer }) = self.for_update::<T>(prefix).await? else {
                return Err(missing());
            };
            // An exact pointer holds the only copy of its revision: it is archived as it was.
            let archive = match &pointer {
                Some(PointerState { exact: true, .. }) => Some(encode(prefix, &document)?),
                _ => None,
            };
            let outcome = change(&mut document)?;
            let next = number.checked_add(1).ok_or_else(|| {
                Error::InvalidArgument(format!("`{prefix}` is at the last revision number, {number}"))
            })?;
            let landed = match pointer {
                _ if self.overwrite() == Overwrite::CreateOnly => self.create_next(prefix, next, &document).await?,
                Some(pointer) => self.swap_pointer(prefix, number, next, &document, pointer.version, archive).await?,
                None => {
                    // No pointer yet: write one for the state found, then update through it.
                    self.write_first_pointer_from_listing::<T>(prefix).await?;
                    false
                }
            };
            if landed {
                return Ok((document, outcome));
            }
        }
    }

    async fn write_first_pointer_from_listing<T: Serialize + DeserializeOwned>(&self, prefix: &Path) -> Result<()> {
        let Some(newest) = self.newest_listed::<T>(prefix).await? else { return Ok(()) };
        match newest.readable {
            Some(revision) if revision.number == newest.highest => {
                self.write_first_pointer(prefix, revision.number, &revision.document).await
            }
            // The newest revision does not parse: a pointer to the newest one that does,
            // numbered above it, repairs the document.
            Some(revision) => {
                let above = newest.highest.checked_add(1).ok_or_else(|| {
                    Error::InvalidArgument(format!("`{prefix}` is at the last revision number, {}", newest.highest))
                })?;
                let path = Self::revision_path(prefix, above);
                if self.put_create(&path, encode(&path, &revision.document)?).await? {
                    self.write_first_pointer(prefix, above, &revision.document).await?;
                }
                Ok(())
            }
            None => Err(Error::Corrupt(format!(
                "none of the newest {} revisions of `{prefix}` parses: {}",
                newest.problems.len(),
                newest.problems.join("; ")
            ))),
        }
    }

    /// Conditional overwrite: archives revision `number` and swaps the pointer to `next`.
    /// `Ok(false)` when another writer moved the pointer first.
    async fn swap_pointer<T: Serialize>(
        &self,
        prefix: &Path,
        number: u64,
        next: u64,
        document: &T,
        version: UpdateVersion,
        archive: Option<Vec<u8>>,
    ) -> Result<bool> {
        if let Some(archive) = archive {
            // Whoever archives revision `number` writes the same bytes, so a lost race here,
            // or a revision archived again after a compaction, changes nothing.
            self.put_create(&Self::revision_path(prefix, number), archive).await?;
        }
        let path = Self::pointer_path(prefix);
        let bytes = encode(&path, &Pointer { revision: next, exact: true, document })?;
        let options = PutOptions { mode: PutMode::Update(version), ..PutOptions::default() };
        match self.store.put_opts(&path, PutPayload::from(bytes), options).await {
            Ok(_) => {
                self.learn(Overwrite::Conditional);
                Ok(true)
            }
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => {
                self.learn(Overwrite::CreateOnly);
                Ok(false)
            }
            Err(e) => Err(Error::backend(format!("writing `{path}`"), e)),
        }
    }

    /// Create-only: creates revision `next`, then points the hint at it. `Ok(false)` when
    /// another writer created it first.
    async fn create_next<T: Serialize>(&self, prefix: &Path, next: u64, document: &T) -> Result<bool> {
        let path = Self::revision_path(prefix, next);
        if !self.put_create(&path, encode(&path, document)?).await? {
            return Ok(false);
        }
        let pointer = Self::pointer_path(prefix);
        let bytes = encode(&pointer, &Pointer { revision: next, exact: false, document })?;
        // The revision is written: a pointer left behind costs readers a request, no more.
        if let Err(e) = self.store.put(&pointer, PutPayload::from(bytes)).await {
            tracing::warn!(target: "mlops_registry", pointer = %pointer, error = %e, "revision pointer not updated");
        }
        Ok(true)
    }

    /// Removes the document under `prefix`: revisions oldest first, the pointer last, so that
    /// a reader meanwhile finds the newest state or nothing.
    pub(crate) async fn remove(&self, prefix: &Path) -> Result<()> {
        let mut listed = self.listed(prefix).await?;
        listed.reverse();
        let pointer = Self::pointer_path(prefix);
        for path in listed.into_iter().map(|(_, meta)| meta.location).chain(std::iter::once(pointer)) {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::backend(format!("removing `{path}`"), e)),
            }
        }
        Ok(())
    }

    /// Removes the revisions of the document under `prefix` older than its newest `keep`,
    /// among those written before `written_before`, oldest first. The current revision is
    /// never removed.
    pub(crate) async fn compact<T: DeserializeOwned>(
        &self,
        prefix: &Path,
        keep: u64,
        written_before: DateTime<Utc>,
    ) -> Result<Compacted> {
        let (newest, _) = self.newest::<T>(prefix).await?;
        let Some(newest) = newest else { return Ok(Compacted::default()) };
        let horizon = newest.highest.saturating_sub(keep.saturating_sub(1));
        let mut listed = self.listed(prefix).await?;
        listed.reverse();
        let mut compacted = Compacted::default();
        for (number, meta) in listed {
            if number >= horizon || meta.last_modified >= written_before {
                compacted.kept += 1;
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => compacted.removed += 1,
                Err(e) => return Err(Error::backend(format!("removing `{}`", meta.location), e)),
            }
        }
        Ok(compacted)
    }
}

/// The newest state found: the highest revision number, what did not parse above the newest
/// revision that does, and that revision.
struct Newest<T> {
    highest: u64,
    problems: Vec<String>,
    readable: Option<Revision<T>>,
}

impl<T> Newest<T> {
    fn exact(number: u64, document: T) -> Self {
        Self { highest: number, problems: Vec::new(), readable: Some(Revision { number, document }) }
    }
}

/// Whether an object is at `path`.
pub(crate) async fn object_exists(store: &dyn ObjectStore, path: &Path) -> Result<bool> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::backend(format!("reading `{path}`"), e)),
    }
}

fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> std::result::Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("`{path}` does not parse: {e}"))
}

fn encode<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::backend(format!("encoding `{path}`"), e))
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
