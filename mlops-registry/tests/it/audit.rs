//! The object-store audit log compacted: segments, retention, and what stays true while
//! others append, read and compact at the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use mlops_core::ModelName;
use mlops_registry::object_store::memory::InMemory;
use mlops_registry::object_store::path::Path;
use mlops_registry::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use mlops_registry::{
    AllowAll, AuditEntry, AuditLog, AuditOutcome, AuditRetention, CreateModel, CreateVersion, GovernedRegistry,
    ObjectStoreAuditLog, ObjectStoreRegistry, Operation, Principal, Registry, SetAlias,
};

use crate::stores::InstrumentedStore;
use mlops_registry::conformance::{name, package};

const DAY: Duration = Duration::from_secs(86_400);

fn entry(model: &ModelName, days_ago: i64, operation: Operation, version: u64) -> AuditEntry {
    AuditEntry {
        at: Utc::now() - chrono::Duration::days(days_ago),
        principal: "ci".into(),
        operation,
        model: model.clone(),
        version: Some(version),
        alias: None,
        old: None,
        new: None,
        outcome: AuditOutcome::Done,
    }
}

/// Merges everything whatever its age.
fn merge_all() -> AuditRetention {
    AuditRetention::keep_everything().min_age(Duration::ZERO)
}

fn versions(entries: &[AuditEntry]) -> Vec<u64> {
    entries.iter().filter_map(|e| e.version).collect()
}

async fn objects(store: &dyn ObjectStore, prefix: &str) -> Vec<Path> {
    let prefix = Path::from(prefix);
    store.list(Some(&prefix)).map_ok(|meta| meta.location).try_collect().await.unwrap()
}

#[tokio::test]
async fn compaction_keeps_the_alias_history_whole_and_reading_costs_two_requests() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(ObjectStoreRegistry::local(dir.path()).unwrap());
    let log = Arc::new(ObjectStoreAuditLog::new(Arc::clone(registry.store()), Path::default()));
    let governed = GovernedRegistry::new(registry.clone(), Arc::new(AllowAll), log.clone());
    let manager = governed.as_principal(Principal::new("release-manager"));
    let tx = name("transactions");
    manager.create_model(CreateModel::new(tx.clone())).await.unwrap();
    for weight in [1.0, 2.0, 3.0] {
        manager.create_version(CreateVersion::new(tx.clone(), package(weight))).await.unwrap();
    }
    for version in [1, 2, 3, 2, 3, 1, 3] {
        manager.set_alias(SetAlias::new(tx.clone(), "champion", version)).await.unwrap();
    }
    let history = governed.alias_history(&tx, "champion").await.unwrap();
    let entries = log.entries(&tx).await.unwrap();
    assert_eq!(entries.len(), 11);

    let report = log.compact(&merge_all()).await.unwrap();
    assert_eq!((report.models, report.merged, report.dropped), (1, 11, 0));
    assert_eq!((report.segments_written, report.segments_removed), (1, 0));
    assert_eq!(log.entries(&tx).await.unwrap(), entries, "the log reads the same, in the same order");
    assert_eq!(governed.alias_history(&tx, "champion").await.unwrap(), history);
    assert_eq!(objects(registry.store().as_ref(), "audit/transactions").await.len(), 1);

    // A compacted log costs a listing and its segment, however many entries it holds.
    let counting = Arc::new(InstrumentedStore::new(InMemory::new()));
    let counted = ObjectStoreAuditLog::new(counting.clone(), Path::default());
    for version in 0..500 {
        counted.append(&entry(&tx, 2, Operation::UpdateVersion, version)).await.unwrap();
    }
    let before = counting.requests();
    assert_eq!(counted.entries(&tx).await.unwrap().len(), 500);
    assert_eq!(counting.requests() - before, 501, "uncompacted: a listing and a request per entry");
    counted.compact(&AuditRetention::keep_everything()).await.unwrap();
    let before = counting.requests();
    assert_eq!(versions(&counted.entries(&tx).await.unwrap()), (0..500).collect::<Vec<_>>());
    assert_eq!(counting.requests() - before, 2);

    // Compacting again finds nothing to do and writes nothing.
    let before = counting.requests();
    let again = counted.compact(&AuditRetention::keep_everything()).await.unwrap();
    assert_eq!((again.merged, again.segments_written, again.segments_removed), (0, 0, 0));
    assert_eq!(counting.requests() - before, 3, "a listing of models, a listing of the log, its segment");
}

#[tokio::test]
async fn retention_drops_only_what_is_past_it_and_alias_moves_keep_their_own() {
    let store = Arc::new(InMemory::new());
    let log = ObjectStoreAuditLog::new(store.clone(), Path::from("registry"));
    let tx = name("transactions");
    let other = name("other");
    let appended = [
        entry(&tx, 400, Operation::SetAlias, 1),
        entry(&tx, 400, Operation::CreateVersion, 2),
        entry(&tx, 100, Operation::DeleteAlias, 3),
        entry(&tx, 100, Operation::UpdateVersion, 4),
        entry(&tx, 10, Operation::UpdateModel, 5),
        entry(&tx, 0, Operation::CreateVersion, 6),
        entry(&other, 400, Operation::CreateModel, 7),
    ];
    for appended in &appended {
        log.append(appended).await.unwrap();
    }

    let report = log.compact(&AuditRetention::keep_everything().keep_for(90 * DAY)).await.unwrap();
    assert_eq!(report.models, 2);
    assert_eq!(report.dropped, 3, "the 400- and 100-day-old entries other than alias moves");
    assert_eq!(report.merged, 3, "the alias moves and the 10-day-old entry; the newest is too young to merge");
    assert_eq!(versions(&log.entries(&tx).await.unwrap()), [1, 3, 5, 6]);
    assert_eq!(log.entries(&other).await.unwrap(), []);
    let loose = objects(store.as_ref(), "registry/audit/transactions").await;
    assert_eq!(loose.iter().filter(|p| p.extension() == Some("json")).count(), 1, "the young entry as written");

    // Alias history gets its own limit; the segment is rewritten without what it drops.
    let retention = AuditRetention::keep_everything().keep_for(90 * DAY).alias_history_for(365 * DAY);
    let report = log.compact(&retention).await.unwrap();
    assert_eq!((report.dropped, report.segments_written, report.segments_removed), (1, 1, 1));
    assert_eq!(versions(&log.entries(&tx).await.unwrap()), [3, 5, 6]);
}

#[tokio::test]
async fn a_full_segment_is_left_alone_until_retention_drops_from_it() {
    let store = Arc::new(InMemory::new());
    let log = ObjectStoreAuditLog::new(store.clone(), Path::default());
    let tx = name("transactions");
    for version in 0..10_003 {
        let days = if version == 0 { 200 } else { 5 };
        log.append(&entry(&tx, days, Operation::UpdateVersion, version)).await.unwrap();
    }
    let report = log.compact(&merge_all()).await.unwrap();
    assert_eq!((report.merged, report.segments_written), (10_003, 2));

    for version in 10_003..10_005 {
        log.append(&entry(&tx, 5, Operation::UpdateVersion, version)).await.unwrap();
    }
    let report = log.compact(&merge_all()).await.unwrap();
    assert_eq!((report.merged, report.segments_written, report.segments_removed), (2, 1, 1), "the full one stays");
    assert_eq!(log.entries(&tx).await.unwrap().len(), 10_005);

    // Dropping the oldest entry rewrites the full segment too: 10,004 entries in two.
    let report = log.compact(&merge_all().keep_for(100 * DAY)).await.unwrap();
    assert_eq!((report.dropped, report.segments_written, report.segments_removed), (1, 2, 2));
    assert_eq!(versions(&log.entries(&tx).await.unwrap()), (1..10_005).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_compaction_stopped_before_its_deletes_leaves_no_entry_twice() {
    let store = Arc::new(InMemory::new());
    let log = ObjectStoreAuditLog::new(store.clone(), Path::default());
    let tx = name("transactions");
    for version in 0..20 {
        log.append(&entry(&tx, 1, Operation::UpdateVersion, version)).await.unwrap();
    }
    let written: Vec<(Path, bytes::Bytes)> = {
        let mut written = Vec::new();
        for path in objects(store.as_ref(), "audit/transactions").await {
            let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
            written.push((path, bytes));
        }
        written
    };
    log.compact(&merge_all()).await.unwrap();
    // The state a crash between the segment's write and the deletes leaves.
    for (path, bytes) in &written {
        store.put(path, PutPayload::from(bytes.clone())).await.unwrap();
    }
    assert_eq!(versions(&log.entries(&tx).await.unwrap()), (0..20).collect::<Vec<_>>());

    let report = log.compact(&merge_all()).await.unwrap();
    assert_eq!(report.merged, 0, "every loose entry was already in the segment");
    assert_eq!(versions(&log.entries(&tx).await.unwrap()), (0..20).collect::<Vec<_>>());
    assert_eq!(objects(store.as_ref(), "audit/transactions").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_reads_and_two_compactions_at_once_lose_nothing() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tx = name("transactions");
    let appended = Arc::new(AtomicUsize::new(0));
    let (writers, per_writer) = (3, 150);
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (log, tx, appended) =
            (ObjectStoreAuditLog::new(store.clone(), Path::default()), tx.clone(), appended.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                log.append(&entry(&tx, 1, Operation::UpdateVersion, writer * 1_000 + i)).await.unwrap();
                appended.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }));
    }
    let done = writers as usize * per_writer as usize;
    let mut compactors = Vec::new();
    for _ in 0..2 {
        let (log, appended) = (ObjectStoreAuditLog::new(store.clone(), Path::default()), appended.clone());
        compactors.push(tokio::spawn(async move {
            let mut runs = 0;
            loop {
                log.compact(&merge_all()).await.unwrap();
                runs += 1;
                // An in-memory store never yields: give the writers their turn.
                tokio::task::yield_now().await;
                if appended.load(Ordering::SeqCst) == done {
                    break runs;
                }
            }
        }));
    }
    let reader = {
        let (log, tx, appended) =
            (ObjectStoreAuditLog::new(store.clone(), Path::default()), tx.clone(), appended.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            loop {
                let at_least = appended.load(Ordering::SeqCst);
                let mut read = versions(&log.entries(&tx).await.unwrap());
                read.sort_unstable();
                read.dedup();
                assert!(read.len() >= at_least, "a read saw {} entries after {at_least} were appended", read.len());
                reads += 1;
                tokio::task::yield_now().await;
                if at_least == done {
                    break reads;
                }
            }
        })
    };
    for task in tasks {
        task.await.unwrap();
    }
    for compactor in compactors {
        assert!(compactor.await.unwrap() > 0);
    }
    assert!(reader.await.unwrap() > 1);

    let log = ObjectStoreAuditLog::new(store.clone(), Path::default());
    log.compact(&merge_all()).await.unwrap();
    let mut read = versions(&log.entries(&tx).await.unwrap());
    read.sort_unstable();
    let expected: Vec<u64> = (0..writers).flat_map(|w| (0..per_writer).map(move |i| w * 1_000 + i)).collect();
    assert_eq!(read, expected);
    let segments = objects(store.as_ref(), "audit/transactions").await;
    assert_eq!(segments.len(), 1, "one segment once the dust settles: {segments:?}");
}

#[tokio::test]
async fn unreadable_segments_and_entries_are_reported_and_left_where_they_are() {
    let store = Arc::new(InMemory::new());
    let log = ObjectStoreAuditLog::new(store.clone(), Path::default());
    let tx = name("transactions");
    for version in 0..3 {
        log.append(&entry(&tx, 1, Operation::UpdateVersion, version)).await.unwrap();
    }
    log.compact(&merge_all()).await.unwrap();
    let segment = objects(store.as_ref(), "audit/transactions/segments").await.remove(0);
    let bytes = store.get(&segment).await.unwrap().bytes().await.unwrap();
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    lines[1] = b"{\"key\": \"truncated";
    store.put(&segment, PutPayload::from(lines.join(&b'\n'))).await.unwrap();
    let huge = Path::from(format!("audit/transactions/{:020}-big-0000000000.json", 1));
    store.put(&huge, PutPayload::from(vec![b' '; 2 << 20])).await.unwrap();
    log.append(&entry(&tx, 1, Operation::UpdateVersion, 7)).await.unwrap();

    assert_eq!(versions(&log.entries(&tx).await.unwrap()), [0, 2, 7], "what parses is still read");
    let unreadable = log.unreadable_entries(&tx).await.unwrap();
    let culprits: Vec<&str> = unreadable.iter().map(|(what, _)| what.as_str()).collect();
    assert_eq!(culprits, [format!("{segment} line 2").as_str(), huge.as_ref()], "{unreadable:?}");
    assert!(unreadable[1].1.contains("bytes"), "{unreadable:?}");

    let report = log.compact(&merge_all()).await.unwrap();
    assert_eq!((report.unreadable, report.merged, report.segments_written), (2, 1, 1));
    assert!(store.head(&segment).await.is_ok() && store.head(&huge).await.is_ok(), "left for an operator");
    assert_eq!(versions(&log.entries(&tx).await.unwrap()), [0, 2, 7]);
}
