//! A registration that fails part-way leaves nothing visible.

use std::sync::Arc;

use mlops_registry::{CreateModel, CreateVersion, Error, ObjectStoreRegistry, Registry, RegistryExt, SearchVersions};
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::stores::InstrumentedStore;

use mlops_registry::conformance::{name, package};

#[tokio::test]
async fn a_failed_registration_leaves_no_version_and_burns_no_number() {
    let store = Arc::new(InstrumentedStore::new(InMemory::new()));
    let registry = ObjectStoreRegistry::new(store.clone(), Path::from("registry"));
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();

    // A network or disk failure in the middle of the package's upload.
    store.fail_puts(|location| location.as_ref().contains("/packages/") && location.as_ref().ends_with("model.json"));
    match registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await {
        Err(Error::Backend { context, .. }) => assert!(context.contains("model.json"), "{context}"),
        other => panic!("expected the injected failure, got {other:?}"),
    }
    assert!(matches!(registry.get_version(&tx, 1).await, Err(Error::NotFound { .. })));
    assert!(registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap().is_empty());
    assert!(matches!(registry.latest_version(&tx).await, Err(Error::NotFound { .. })));

    store.heal();
    let version = registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    assert_eq!(version.version, 1, "the failed attempt must not use up a version number");
    registry.download_package(&tx, 1).await.unwrap();
}
