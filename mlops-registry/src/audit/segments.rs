//! An object-store audit log read back, and compacted: entries written one object each are
//! merged into segments of many, and entries past their retention are dropped.
//!
//! A segment is a JSON-lines object under `<model>/segments/`, each line an entry with the
//! name of the object it was written as (its key: time, writer, sequence). Readers take the
//! union of segments and loose entries, one entry per key, so an entry seen twice (a
//! compaction stopped between writing a segment and deleting what it merged, or two
//! compactions at once) is read once. A compaction writes its segments before it deletes
//! anything, and deletes only objects it read and rewrote: a failure at any point loses no
//! entry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::{AuditEntry, ObjectStoreAuditLog, Operation};
use crate::error::{Error, Result};
use crate::retention::cutoff;

const SEGMENTS: &str = "segments";
/// Entries per segment: a segment this full is left alone until retention drops from it.
const SEGMENT_ENTRIES: usize = 10_000;
/// Objects larger than these are reported unreadable instead of read into memory.
const MAX_ENTRY_BYTES: u64 = 1 << 20;
const MAX_SEGMENT_BYTES: u64 = 256 << 20;
/// Times in a row a read lists segments again because one it listed went meanwhile (a
/// compaction moved what it held into a segment the listing may predate).
const READ_ATTEMPTS: usize = 5;

/// How long an [`ObjectStoreAuditLog`] keeps its entries, for
/// [`ObjectStoreAuditLog::compact`]. By default everything is kept, and entries older than
/// an hour are merged into segments.
///
/// Alias moves (`set_alias`, `delete_alias`: what
/// [`GovernedRegistry::alias_history`](crate::GovernedRegistry::alias_history) reads) have a
/// retention of their own, so the history of who promoted what stays complete for as long
/// as you need it while the rest of the log is trimmed sooner.
///
/// ```
/// use std::time::Duration;
/// use mlops_registry::AuditRetention;
///
/// const DAY: Duration = Duration::from_secs(86_400);
/// let retention = AuditRetention::keep_everything().keep_for(90 * DAY).alias_history_for(7 * 365 * DAY);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRetention {
    min_age: Duration,
    keep: Option<Duration>,
    alias_history: Option<Duration>,
}

impl Default for AuditRetention {
    fn default() -> Self {
        Self::keep_everything()
    }
}

impl AuditRetention {
    /// Keeps every entry; compaction only merges them.
    pub fn keep_everything() -> Self {
        Self { min_age: Duration::from_secs(3600), keep: None, alias_history: None }
    }

    /// Drops entries other than alias moves once they are older than `age`.
    #[must_use]
    pub fn keep_for(mut self, age: Duration) -> Self {
        self.keep = Some(age);
        self
    }

    /// Drops alias moves once they are older than `age` (by default they are kept forever).
    #[must_use]
    pub fn alias_history_for(mut self, age: Duration) -> Self {
        self.alias_history = Some(age);
        self
    }

    /// Merges only entries older than `age` (an hour by default), so the objects of recent
    /// writes stay as they were written.
    #[must_use]
    pub fn min_age(mut self, age: Duration) -> Self {
        self.min_age = age;
        self
    }

    fn expired(&self, entry: &AuditEntry, now: DateTime<Utc>) -> bool {
        let limit = match entry.operation {
            Operation::SetAlias | Operation::DeleteAlias => self.alias_history,
            _ => self.keep,
        };
        limit.is_some_and(|age| entry.at < cutoff(now, age))
    }
}

/// What [`ObjectStoreAuditLog::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditCompactionReport {
    /// Models whose logs were looked at.
    pub models: usize,
    /// Entry objects merged into segments.
    pub merged: usize,
    /// Entries dropped because they were past their retention.
    pub dropped: usize,
    /// Segments written.
    pub segments_written: usize,
    /// Segments replaced by those written.
    pub segments_removed: usize,
    /// Objects left as they were because they do not parse (see
    /// [`ObjectStoreAuditLog::unreadable_entries`]).
    pub unreadable: usize,
}

#[derive(Serialize, Deserialize)]
struct SegmentLine {
    key: String,
    entry: AuditEntry,
}

/// One model's log as read: entries by key, and what did not parse.
#[derive(Default)]
pub(super) struct Snapshot {
    pub(super) entries: BTreeMap<String, AuditEntry>,
    pub(super) unreadable: Vec<(String, String)>,
}

struct Listing {
    loose: Vec<ObjectMeta>,
    segments: Vec<ObjectMeta>,
}

/// A segment's entries, or why it cannot be read.
enum Segment {
    Read(Vec<(String, AuditEntry)>),
    Unreadable(Vec<(String, AuditEntry)>, Vec<(String, String)>),
}

enum Fetched {
    Bytes(bytes::Bytes),
    Gone,
}

impl ObjectStoreAuditLog {
    /// Reads one model's log: every segment and loose entry, one entry per key.
    ///
    /// An object listed and gone by the time it is read was replaced by a compaction,
    /// which wrote what it held into a newer segment first: the segments are listed again
    /// and the new ones read, until none went. Nothing is read twice, so a read racing
    /// compactions costs a listing and the new segments per round; [`READ_ATTEMPTS`] rounds
    /// in a row that each lose a segment are an error, never a shorter log.
    pub(super) async fn snapshot(&self, prefix: &Path) -> Result<Snapshot> {
        let listing = self.listing(prefix, false).await?;
        let mut snapshot = Snapshot::default();
        let mut read = BTreeSet::new();
        let mut moved = self.read_segments(&listing.segments, &mut read, &mut snapshot).await?;
        for object in &listing.loose {
            match self.loose_entry(object).await? {
                None => moved = true,
                Some(Ok((key, entry))) => {
                    snapshot.entries.insert(key, entry);
                }
                Some(Err(why)) => snapshot.unreadable.push((object.location.to_string(), why)),
            }
        }
        let mut rounds = 0;
        while moved {
            rounds += 1;
            if rounds > READ_ATTEMPTS {
                return Err(kept_changing(prefix));
            }
            let segments = self.listing(prefix, true).await?.segments;
            moved = self.read_segments(&segments, &mut read, &mut snapshot).await?;
        }
        Ok(snapshot)
    }

    /// Reads the segments not read yet into `snapshot`; whether one of them went.
    async fn read_segments(
        &self,
        segments: &[ObjectMeta],
        read: &mut BTreeSet<Path>,
        snapshot: &mut Snapshot,
    ) -> Result<bool> {
        let mut moved = false;
        for object in segments {
            if !read.insert(object.location.clone()) {
                continue;
            }
            match self.segment(object).await? {
                None => moved = true,
                Some(Segment::Read(lines)) => snapshot.entries.extend(lines),
                Some(Segment::Unreadable(lines, why)) => {
                    snapshot.entries.extend(lines);
                    snapshot.unreadable.extend(why);
                }
            }
        }
        Ok(moved)
    }

    /// Merges entries older than the retention's minimum age into segments and drops those
    /// past their retention, in every model's log. Safe while others append and read, and
    /// while another compaction runs: nothing is deleted before what replaces it is
    /// written, so an interrupted compaction leaves every entry readable (the next one
    /// finishes the job). Each model done is logged at info.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// use std::time::Duration;
    /// use mlops_registry::{AuditEntry, AuditLog, AuditOutcome, AuditRetention, ObjectStoreAuditLog, Operation};
    ///
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let log = ObjectStoreAuditLog::new(Arc::new(object_store::memory::InMemory::new()), "registry".into());
    /// # let model: mlops_core::ModelName = "transactions".parse()?;
    /// # let entry = |days: i64, operation| AuditEntry { at: chrono::Utc::now() - chrono::Duration::days(days), principal: "ci".into(), operation, model: model.clone(), version: Some(1), alias: None, old: None, new: None, outcome: AuditOutcome::Done };
    /// log.append(&entry(400, Operation::SetAlias)).await?;
    /// log.append(&entry(400, Operation::UpdateVersion)).await?;
    /// log.append(&entry(3, Operation::UpdateVersion)).await?;
    ///
    /// let retention = AuditRetention::keep_everything().keep_for(Duration::from_secs(90 * 86_400));
    /// let report = log.compact(&retention).await?;
    /// assert_eq!((report.merged, report.dropped, report.segments_written), (2, 1, 1));
    /// // The alias move stays: alias history is kept until its own retention says otherwise.
    /// assert_eq!(log.entries(&model).await?.len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Backend`] when the store fails; what was done until then stays done, and
    /// every entry stays readable.
    pub async fn compact(&self, retention: &AuditRetention) -> Result<AuditCompactionReport> {
        let audit = self.root.clone().join("audit");
        let listed = self
            .store
            .list_with_delimiter(Some(&audit))
            .await
            .map_err(|e| Error::backend(format!("listing `{audit}`"), e))?;
        let mut report = AuditCompactionReport::default();
        for model in listed.common_prefixes {
            let before = report.clone();
            self.compact_model(&model, retention, Utc::now(), &mut report).await?;
            report.models += 1;
            tracing::info!(
                target: "mlops_registry",
                audit_log = %model,
                merged = report.merged - before.merged,
                dropped = report.dropped - before.dropped,
                "audit log compacted"
            );
        }
        Ok(report)
    }

    async fn compact_model(
        &self,
        prefix: &Path,
        retention: &AuditRetention,
        now: DateTime<Utc>,
        report: &mut AuditCompactionReport,
    ) -> Result<()> {
        let merge_before = cutoff(now, retention.min_age).timestamp_micros();
        let listing = self.listing(prefix, false).await?;
        let (mut untouched, mut pool) = (BTreeSet::new(), BTreeMap::new());
        let (mut replaced, mut merged) = (Vec::new(), Vec::new());
        let mut dropped = 0;
        for object in &listing.segments {
            let lines = match self.segment(object).await? {
                // Another compaction replaced it; what it held is in a segment of its own.
                None => continue,
                Some(Segment::Unreadable(lines, _)) => {
                    report.unreadable += 1;
                    untouched.extend(lines.into_iter().map(|(key, _)| key));
                    continue;
                }
                Some(Segment::Read(lines)) => lines,
            };
            let total = lines.len();
            let (gone, kept): (Vec<_>, Vec<_>) = lines.into_iter().partition(|(_, e)| retention.expired(e, now));
            if total >= SEGMENT_ENTRIES && gone.is_empty() {
                untouched.extend(kept.into_iter().map(|(key, _)| key));
                continue;
            }
            dropped += gone.len();
            pool.extend(kept);
            replaced.push(object.location.clone());
        }
        for object in &listing.loose {
            let Some(micros) = key_of(&object.location).and_then(written_at) else { continue };
            if micros >= merge_before {
                continue;
            }
            match self.loose_entry(object).await? {
                None => continue,
                Some(Err(_)) => report.unreadable += 1,
                Some(Ok((key, entry))) => {
                    if retention.expired(&entry, now) {
                        dropped += 1;
                    } else if pool.insert(key, entry).is_none() {
                        // Not already in a segment (a compaction that stopped before its
                        // deletes): this one is merged now.
                        report.merged += 1;
                    }
                    merged.push(object.location.clone());
                }
            }
        }
        // A lone partial segment with nothing to add or drop is as compact as it gets.
        if merged.is_empty() && dropped == 0 && replaced.len() <= 1 {
            return Ok(());
        }
        pool.retain(|key, _| !untouched.contains(key));

        let entries: Vec<_> = pool.into_iter().collect();
        for chunk in entries.chunks(SEGMENT_ENTRIES) {
            self.write_segment(prefix, chunk).await?;
            report.segments_written += 1;
        }
        for location in replaced.iter().chain(&merged) {
            match self.store.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::backend(format!("removing `{location}`"), e)),
            }
        }
        report.segments_removed += replaced.len();
        report.dropped += dropped;
        Ok(())
    }

    async fn write_segment(&self, prefix: &Path, entries: &[(String, AuditEntry)]) -> Result<()> {
        let mut bytes = Vec::new();
        for (key, entry) in entries {
            let line = SegmentLine { key: key.clone(), entry: entry.clone() };
            serde_json::to_writer(&mut bytes, &line).map_err(|e| Error::backend("encoding an audit segment", e))?;
            bytes.push(b'\n');
        }
        self.put_new(&prefix.clone().join(SEGMENTS), Utc::now(), "jsonl", bytes).await
    }

    /// The log's loose entries and segments, or only its segments.
    async fn listing(&self, prefix: &Path, segments_only: bool) -> Result<Listing> {
        let segments_prefix = prefix.clone().join(SEGMENTS);
        let listed = if segments_only { &segments_prefix } else { prefix };
        let objects: Vec<ObjectMeta> = self
            .store
            .list(Some(listed))
            .try_collect()
            .await
            .map_err(|e| Error::backend(format!("listing `{listed}`"), e))?;
        let mut listing = Listing { loose: Vec::new(), segments: Vec::new() };
        for object in objects {
            let relative: Vec<_> = object.location.prefix_match(prefix).map(Iterator::collect).unwrap_or_default();
            let name = object.location.filename().unwrap_or_default();
            if relative.len() == 1 && name.ends_with(".json") {
                listing.loose.push(object);
            } else if object.location.prefix_matches(&segments_prefix)
                && relative.len() == 2
                && name.ends_with(".jsonl")
            {
                listing.segments.push(object);
            }
        }
        listing.loose.sort_by(|a, b| a.location.cmp(&b.location));
        listing.segments.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(listing)
    }

    async fn fetch(&self, object: &ObjectMeta, limit: u64) -> Result<std::result::Result<Fetched, String>> {
        if object.size > limit {
            return Ok(Err(format!("{} bytes, more than the {limit} an audit object may hold", object.size)));
        }
        let reading = |e| Error::backend(format!("reading `{}`", object.location), e);
        match self.store.get(&object.location).await {
            Ok(got) => Ok(Ok(Fetched::Bytes(got.bytes().await.map_err(reading)?))),
            Err(object_store::Error::NotFound { .. }) => Ok(Ok(Fetched::Gone)),
            Err(e) => Err(reading(e)),
        }
    }

    /// A segment's entries; `None` when it went after it was listed.
    async fn segment(&self, object: &ObjectMeta) -> Result<Option<Segment>> {
        let bytes = match self.fetch(object, MAX_SEGMENT_BYTES).await? {
            Ok(Fetched::Gone) => return Ok(None),
            Ok(Fetched::Bytes(bytes)) => bytes,
            Err(why) => return Ok(Some(Segment::Unreadable(Vec::new(), vec![(object.location.to_string(), why)]))),
        };
        let (mut lines, mut unreadable) = (Vec::new(), Vec::new());
        for (number, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, line)| !line.is_empty()) {
            match serde_json::from_slice::<SegmentLine>(line) {
                Ok(line) => lines.push((line.key, line.entry)),
                Err(e) => unreadable.push((format!("{} line {}", object.location, number + 1), e.to_string())),
            }
        }
        Ok(Some(if unreadable.is_empty() { Segment::Read(lines) } else { Segment::Unreadable(lines, unreadable) }))
    }

    /// A loose entry with its key, or why it does not parse; `None` when it went after it
    /// was listed.
    async fn loose_entry(
        &self,
        object: &ObjectMeta,
    ) -> Result<Option<std::result::Result<(String, AuditEntry), String>>> {
        let bytes = match self.fetch(object, MAX_ENTRY_BYTES).await? {
            Ok(Fetched::Gone) => return Ok(None),
            Ok(Fetched::Bytes(bytes)) => bytes,
            Err(why) => return Ok(Some(Err(why))),
        };
        let key = key_of(&object.location).unwrap_or_default().to_owned();
        Ok(Some(serde_json::from_slice(&bytes).map(|entry| (key, entry)).map_err(|e| e.to_string())))
    }
}

/// The name an entry was written as, without `.json`.
fn key_of(location: &Path) -> Option<&str> {
    location.filename()?.strip_suffix(".json")
}

/// The microseconds a key starts with.
fn written_at(key: &str) -> Option<i64> {
    key.get(..20)?.parse().ok()
}

fn kept_changing(prefix: &Path) -> Error {
    Error::Backend {
        context: format!("reading the audit log `{prefix}`"),
        source: format!("objects kept moving while it was read, {READ_ATTEMPTS} times in a row").into(),
    }
}
