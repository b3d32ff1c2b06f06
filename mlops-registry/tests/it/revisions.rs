//! Documents that cost the same however many revisions they have, compaction, deletion and
//! garbage collection on the object-store registry.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use mlops_registry::object_store::memory::InMemory;
use mlops_registry::object_store::path::Path;
use mlops_registry::object_store::{self, ObjectStore, ObjectStoreExt, PutPayload};
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, Error, GarbageCollection, ObjectStoreRegistry, Registry, RegistryExt,
    RetentionPolicy, RevisionRetention, SearchVersions, SetAlias,
};

use mlops_registry::conformance::{name, package};

use crate::stores::InstrumentedStore;

/// A model with one version, `champion` on it, and `updates` alias moves and tag edits.
async fn lived(registry: &ObjectStoreRegistry, updates: usize) {
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(0.5))).await.unwrap();
    for i in 0..updates {
        let version = 1 + (i % 2) as u64;
        registry.set_alias(SetAlias::new(tx.clone(), "champion", version)).await.unwrap();
        registry.set_version_tag(&tx, 1, "round", &i.to_string()).await.unwrap();
    }
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();
}

/// Requests a resolve and an alias compare-and-swap take, each on a fresh registry instance
/// over `store` (nothing cached).
async fn requests_per_operation(store: &Arc<InstrumentedStore<impl ObjectStore>>) -> (u64, u64) {
    let tx = name("transactions");
    let uri = "models:/transactions@champion".parse().unwrap();
    let registry = ObjectStoreRegistry::new(Arc::clone(store) as Arc<dyn ObjectStore>, Path::default());
    let before = store.requests();
    assert_eq!(registry.resolve(&uri).await.unwrap().version, 2);
    let resolve = store.requests() - before;

    // The instance has learned what the store offers from its first write.
    registry.set_model_tag(&tx, "warm", "up").await.unwrap();
    let before = store.requests();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1).mode(AliasMode::Update(2))).await.unwrap();
    registry.set_alias(SetAlias::new(tx, "champion", 2).mode(AliasMode::Update(1))).await.unwrap();
    (resolve, (store.requests() - before) / 2)
}

#[tokio::test]
async fn reads_and_swaps_cost_the_same_after_many_updates() {
    let mut costs = Vec::new();
    for updates in [5, 400] {
        let memory = Arc::new(InstrumentedStore::new(InMemory::new()));
        lived(&ObjectStoreRegistry::new(Arc::clone(&memory) as Arc<dyn ObjectStore>, Path::default()), updates).await;
        let dir = tempfile::tempdir().unwrap();
        lived(&ObjectStoreRegistry::local(dir.path()).unwrap(), updates).await;
        let local = Arc::new(InstrumentedStore::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
        ));
        costs.push((requests_per_operation(&memory).await, requests_per_operation(&local).await));
    }
    let [(memory_few, local_few), (memory_many, local_many)] = costs[..] else { unreachable!() };
    assert_eq!(memory_few, memory_many, "requests on a store with conditional overwrite");
    assert_eq!(local_few, local_many, "requests on a local directory");
    // With conditional overwrite, a resolve is the model's document and the version's.
    assert_eq!(memory_many.0, 2, "requests to resolve models:/transactions@champion");
    // A swap: the version is checked, the model read, its revision archived, the pointer swapped.
    assert_eq!(memory_many.1, 4, "requests to move an alias by compare-and-swap");
    // Without it, each document also costs a check that no newer revision exists.
    assert_eq!(local_many.0, 6, "requests to resolve on a local directory");
    println!("requests per operation (resolve, compare-and-swap): memory {memory_many:?}, local {local_many:?}");
}

#[tokio::test]
async fn compaction_keeps_the_newest_revisions_and_every_state_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for registry in [ObjectStoreRegistry::local(dir.path()).unwrap(), ObjectStoreRegistry::new(memory, Path::default())]
    {
        lived(&registry, 30).await;
        let tx = name("transactions");
        let before = (registry.get_model(&tx).await.unwrap(), registry.get_version(&tx, 1).await.unwrap());

        // Nothing is old enough yet.
        let keep_3 = RevisionRetention::keep_newest(NonZeroU64::new(3).unwrap());
        let untouched = registry.compact(&keep_3).await.unwrap();
        assert_eq!(untouched.revisions_removed, 0, "{untouched:?}");

        let report = registry.compact(&keep_3.min_age(Duration::ZERO)).await.unwrap();
        assert_eq!(report.documents, 3, "{report:?}");
        assert!(report.revisions_removed >= 50 && report.revisions_kept <= 9, "{report:?}");
        assert_eq!((registry.get_model(&tx).await.unwrap(), registry.get_version(&tx, 1).await.unwrap()), before);

        // Another instance reads and writes it as before.
        let other = match registry.store().to_string().starts_with("LocalFileSystem") {
            true => ObjectStoreRegistry::local(dir.path()).unwrap(),
            false => ObjectStoreRegistry::new(Arc::clone(registry.store()), Path::default()),
        };
        other.set_alias(SetAlias::new(tx.clone(), "champion", 1).mode(AliasMode::Update(2))).await.unwrap();
        assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 1);
        let again = other.compact(&keep_3.min_age(Duration::ZERO)).await.unwrap();
        assert!(again.revisions_removed <= 2, "{again:?}");
    }
}

#[tokio::test]
async fn a_pointer_left_behind_or_missing_never_hides_the_newest_revision() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
    lived(&registry, 6).await;
    let tx = name("transactions");
    let pointer = dir.path().join("models/transactions/model/current.json");
    let stale = std::fs::read(&pointer).unwrap();
    for i in 0..4 {
        registry.set_model_tag(&tx, "after", &i.to_string()).await.unwrap();
    }
    // A slow writer puts back an older pointer: readers follow the revisions past it.
    std::fs::write(&pointer, &stale).unwrap();
    assert_eq!(registry.get_model(&tx).await.unwrap().tags["after"], "3");
    // Compacted past it: readers list instead.
    let everything_old = RevisionRetention::keep_newest(NonZeroU64::MIN).min_age(Duration::ZERO);
    registry.compact(&everything_old).await.unwrap();
    std::fs::write(&pointer, &stale).unwrap();
    assert_eq!(registry.get_model(&tx).await.unwrap().tags["after"], "3");
    registry.set_model_tag(&tx, "after", "4").await.unwrap();
    assert_eq!(registry.get_model(&tx).await.unwrap().tags["after"], "4");

    // A document written before pointers existed reads by listing; its next update adds one.
    std::fs::remove_file(&pointer).unwrap();
    assert_eq!(registry.get_model(&tx).await.unwrap().tags["after"], "4");
    registry.set_model_tag(&tx, "after", "5").await.unwrap();
    assert!(pointer.exists());
    assert_eq!(ObjectStoreRegistry::local(dir.path()).unwrap().get_model(&tx).await.unwrap().tags["after"], "5");
}

#[tokio::test]
async fn a_corrupt_exact_pointer_is_named_and_the_next_update_repairs_it() {
    let memory: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let registry = ObjectStoreRegistry::new(Arc::clone(&memory), Path::default());
    lived(&registry, 3).await;
    let tx = name("transactions");
    let pointer = Path::from("models/transactions/model/current.json");
    memory.put(&pointer, PutPayload::from_static(b"{ torn")).await.unwrap();
    match registry.get_model(&tx).await {
        Err(Error::Corrupt(message)) => assert!(message.contains("current.json"), "{message}"),
        other => panic!("expected the pointer to be named, got {other:?}"),
    }
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 1);
}

#[tokio::test]
async fn garbage_collection_removes_only_what_no_version_references() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let (shared, own, other) = (package(1.0), package(0.5), package(0.25));
    for package in [&shared, &own, &shared, &other] {
        registry.create_version(CreateVersion::new(tx.clone(), package.clone())).await.unwrap();
    }
    // Versions 1 and 3 share a package; 2 has its own.
    registry.delete_version(&tx, 1).await.unwrap();
    registry.delete_version(&tx, 2).await.unwrap();
    let packages = || std::fs::read_dir(dir.path().join("models/transactions/packages")).unwrap().count();
    assert_eq!(packages(), 3);

    let recent = registry.collect_garbage(&GarbageCollection::new()).await.unwrap();
    assert_eq!((recent.packages_removed.len(), recent.packages_recent, recent.packages_live), (0, 1, 2), "{recent:?}");
    let now = GarbageCollection::new().grace(Duration::ZERO);
    let dry = registry.collect_garbage(&now.dry_run(true)).await.unwrap();
    assert_eq!(dry.packages_removed.len(), 1, "{dry:?}");
    assert_eq!(packages(), 3);
    let done = registry.collect_garbage(&now).await.unwrap();
    assert_eq!(done.packages_removed, dry.packages_removed);
    assert!(done.bytes_removed > 0);
    assert_eq!(packages(), 2);
    for version in [3, 4] {
        registry.download_package(&tx, version).await.unwrap();
    }
    // Registering the removed package again stores it again.
    let again = registry.create_version(CreateVersion::new(tx.clone(), own)).await.unwrap();
    registry.download_package(&tx, again.version).await.unwrap();
    assert_eq!(registry.collect_garbage(&now).await.unwrap().packages_removed.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_racing_garbage_collection_never_lose_their_package() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(ObjectStoreRegistry::local(dir.path()).unwrap());
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let collector = {
        let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
        tokio::spawn(async move {
            let now = GarbageCollection::new().grace(Duration::ZERO);
            for _ in 0..40 {
                registry.collect_garbage(&now).await.unwrap();
            }
        })
    };
    // The same two packages over and over: each deletion leaves one unreferenced, and the
    // next registration brings it back while the collector looks.
    let packages = [package(1.0), package(0.5)];
    for round in 0..30 {
        let package = packages[round % 2].clone();
        let version = registry.create_version(CreateVersion::new(tx.clone(), package)).await.unwrap();
        if round > 0 {
            registry.delete_version(&tx, version.version - 1).await.unwrap();
        }
    }
    collector.await.unwrap();
    let latest = registry.latest_version(&tx).await.unwrap();
    registry.download_package(&tx, latest.version).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alias_moves_racing_deletions_never_leave_an_alias_on_a_deleted_version() {
    let dir = tempfile::tempdir().unwrap();
    let setup = ObjectStoreRegistry::local(dir.path()).unwrap();
    let tx = name("transactions");
    setup.create_model(CreateModel::new(tx.clone())).await.unwrap();
    for _ in 0..12 {
        setup.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    }
    let mover = {
        let (registry, tx) = (ObjectStoreRegistry::local(dir.path()).unwrap(), tx.clone());
        tokio::spawn(async move {
            for version in (1..=12).rev().chain(1..=12) {
                match registry.set_alias(SetAlias::new(tx.clone(), "champion", version)).await {
                    Ok(_) | Err(Error::NotFound { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let deleter = {
        let (registry, tx) = (ObjectStoreRegistry::local(dir.path()).unwrap(), tx.clone());
        tokio::spawn(async move {
            let mut deleted = 0;
            for version in 1..=12 {
                match registry.delete_version(&tx, version).await {
                    Ok(_) => deleted += 1,
                    Err(Error::InUse { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            deleted
        })
    };
    mover.await.unwrap();
    assert!(deleter.await.unwrap() > 0);
    let model = setup.get_model(&tx).await.unwrap();
    if let Some(&version) = model.aliases.get("champion") {
        setup.get_version(&tx, version).await.unwrap();
        setup.download_package(&tx, version).await.unwrap();
    }
}

#[tokio::test]
async fn a_retention_plan_keeps_the_newest_aliased_and_tagged_and_spares_what_an_alias_moved_onto() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let shared = package(1.0);
    for _ in 0..8 {
        registry.create_version(CreateVersion::new(tx.clone(), shared.clone())).await.unwrap();
    }
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();
    registry.set_version_tag(&tx, 3, "audit", "keep").await.unwrap();
    registry.set_version_tag(&tx, 4, "audit", "other").await.unwrap();
    registry.set_version_tag(&tx, 5, "pinned", "").await.unwrap();

    let policy = RetentionPolicy::keep_newest(2).keep_tagged("audit", "keep").keep_any_tagged("pinned");
    let plan = policy.plan(&registry, &tx).await.unwrap();
    assert_eq!((plan.keep.clone(), plan.delete.clone()), (vec![2, 3, 5, 7, 8], vec![1, 4, 6]));
    assert_eq!(
        registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap().len(),
        8,
        "a plan deletes nothing"
    );

    // An alias lands on a planned version before the plan is applied; another goes first.
    registry.set_alias(SetAlias::new(tx.clone(), "challenger", 4)).await.unwrap();
    registry.delete_version(&tx, 6).await.unwrap();
    let outcome = plan.apply(&registry).await.unwrap();
    assert_eq!((outcome.deleted, outcome.spared, outcome.already_gone), (vec![1], vec![4], vec![6]));
    let left: Vec<u64> =
        registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(left, [2, 3, 4, 5, 7, 8]);
    // They all share one package, which stays.
    let collected = registry.collect_garbage(&GarbageCollection::new().grace(Duration::ZERO)).await.unwrap();
    assert!(collected.packages_removed.is_empty(), "{collected:?}");
    registry.download_package(&tx, 2).await.unwrap();
}
