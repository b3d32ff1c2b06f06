//! Version numbers on the object-store registry: dense, never given twice, and found
//! without listing the model's versions, whatever state the next-number hint is in.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use mlops_registry::conformance::{name, package};
use mlops_registry::object_store::memory::InMemory;
use mlops_registry::object_store::path::Path;
use mlops_registry::object_store::{self, ObjectStore, ObjectStoreExt, PutPayload};
use mlops_registry::{
    CreateModel, CreateVersion, ObjectStoreRegistry, Registry, RegistryExt, RevisionRetention, SearchVersions,
};

use crate::stores::InstrumentedStore;

const VERSIONS_PREFIX: &str = "models/transactions/versions";
const HINT: &str = "models/transactions/next-version";

async fn register(registry: &ObjectStoreRegistry) -> u64 {
    let tx = name("transactions");
    registry.create_version(CreateVersion::new(tx, package(1.0))).await.unwrap().version
}

#[tokio::test]
async fn a_registration_does_not_list_the_versions_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Arc::new(InstrumentedStore::new(InMemory::new()));
    let local =
        Arc::new(InstrumentedStore::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap()));
    for (store, listed) in [
        (
            Arc::clone(&memory) as Arc<dyn ObjectStore>,
            Box::new(move || memory.listed()) as Box<dyn Fn() -> Vec<String>>,
        ),
        (Arc::clone(&local) as Arc<dyn ObjectStore>, Box::new(move || local.listed())),
    ] {
        let registry = ObjectStoreRegistry::new(store, Path::default());
        registry.create_model(CreateModel::new(name("transactions"))).await.unwrap();
        for expected in 1..=40 {
            assert_eq!(register(&registry).await, expected);
        }
        let listings = listed().iter().filter(|prefix| prefix.as_str() == VERSIONS_PREFIX).count();
        // The first registration finds no hint and lists the (empty) versions once.
        assert_eq!(listings, 1, "listings of `{VERSIONS_PREFIX}` over 40 registrations: {:?}", listed());
    }
}

#[tokio::test]
async fn a_wrong_or_missing_hint_never_skips_nor_repeats_a_number() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let registry = ObjectStoreRegistry::new(Arc::clone(&store), Path::default());
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    for expected in 1..=3 {
        assert_eq!(register(&registry).await, expected);
    }
    let hint = Path::from(HINT);
    let put_hint = |text: &'static str| {
        let (store, hint) = (Arc::clone(&store), hint.clone());
        async move { store.put(&hint, PutPayload::from(text)).await.unwrap() }
    };

    // Ahead of the versions (left by a model of the same name deleted since, say).
    put_hint("40").await;
    assert_eq!(register(&registry).await, 4, "a hint ahead of the versions");
    put_hint("not a number").await;
    assert_eq!(register(&registry).await, 5, "an unreadable hint");
    // Behind them (a writer that stopped before writing it).
    put_hint("2").await;
    assert_eq!(register(&registry).await, 6, "a hint behind the versions");

    // A deleted version's number is never given again, with or without the hint.
    registry.delete_version(&tx, 6).await.unwrap();
    assert_eq!(register(&registry).await, 7, "after deleting the newest version");
    registry.delete_version(&tx, 7).await.unwrap();
    store.delete(&hint).await.unwrap();
    assert_eq!(register(&registry).await, 8, "after deleting the newest version and the hint");

    // A version whose first revision was compacted away is not written over.
    for round in 0..3 {
        registry.set_version_tag(&tx, 1, "round", &round.to_string()).await.unwrap();
    }
    let keep_newest = RevisionRetention::keep_newest(NonZeroU64::new(1).unwrap()).min_age(Duration::ZERO);
    registry.compact(&keep_newest).await.unwrap();
    let first_revision = Path::from(format!("{VERSIONS_PREFIX}/0000000001/{:020}.json", 1));
    assert!(store.head(&first_revision).await.is_err(), "version 1 should have lost its first revision");
    put_hint("1").await;
    assert_eq!(register(&registry).await, 9, "a hint at a compacted version");
    assert_eq!(registry.get_version(&tx, 1).await.unwrap().tags.get("round").map(String::as_str), Some("2"));

    let mut live: Vec<u64> =
        registry.search_versions(SearchVersions::model(tx)).await.unwrap().iter().map(|v| v.version).collect();
    live.sort_unstable();
    assert_eq!(live, [1, 2, 3, 4, 5, 8, 9]);

    // Far too large to be a number: not read, and the versions are listed instead.
    store.put(&hint, PutPayload::from(vec![b'9'; 1 << 20])).await.unwrap();
    assert_eq!(register(&registry).await, 10, "a hint of a megabyte");
}
