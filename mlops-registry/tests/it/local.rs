use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mlops_registry::{CreateModel, CreateVersion, Error, ObjectStoreRegistry, Registry};
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;

use mlops_registry::conformance::{name, package};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_directory_registry_keeps_the_contract() {
    let root = tempfile::tempdir().unwrap();
    let counter = AtomicUsize::new(0);
    mlops_registry::conformance::run_all(|| {
        let dir = root.path().join(counter.fetch_add(1, Ordering::SeqCst).to_string());
        ObjectStoreRegistry::local(dir).unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_store_registry_keeps_the_contract_on_an_in_memory_store() {
    mlops_registry::conformance::run_all(|| {
        ObjectStoreRegistry::new(Arc::new(InMemory::new()), StorePath::from("registry"))
    })
    .await;
}

#[tokio::test]
async fn a_corrupted_artifact_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let version = registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    let stored = dir.path().join("models/transactions/packages").join(&version.package_digest);
    let expected_source = format!("file://{}", stored.canonicalize().unwrap().display());
    assert_eq!(version.source, expected_source, "a version's source is where its package lives");

    // One bit changed: the checksum names the file.
    let original = std::fs::read(stored.join("model.json")).unwrap();
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 1;
    std::fs::write(stored.join("model.json"), &flipped).unwrap();
    match registry.download_package(&tx, 1).await {
        Err(Error::Core(mlops_core::Error::Checksum { path, .. })) => assert_eq!(path, "model.json"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // Another size: refused before its bytes are read.
    std::fs::write(stored.join("model.json"), b"{\"tampered\": true}").unwrap();
    match registry.download_package(&tx, 1).await {
        Err(Error::Core(mlops_core::Error::InvalidPackage(message))) => {
            assert!(message.contains("model.json") && message.contains("manifest records"), "{message}")
        }
        other => panic!("expected a size error, got {other:?}"),
    }
    // A manifest that does not hash to the version's digest: refused before any file.
    std::fs::write(stored.join("model.json"), &original).unwrap();
    let manifest = std::fs::read_to_string(stored.join("manifest.json")).unwrap();
    std::fs::write(stored.join("manifest.json"), manifest.replace("tabular_classifier", "tabular_regressor")).unwrap();
    match registry.download_package(&tx, 1).await {
        Err(Error::Core(mlops_core::Error::Checksum { path, .. })) => assert_eq!(path, "manifest.json"),
        other => panic!("expected the manifest's checksum error, got {other:?}"),
    }
    std::fs::write(stored.join("manifest.json"), manifest).unwrap();
    std::fs::remove_file(stored.join("model.json")).unwrap();
    match registry.download_package(&tx, 1).await {
        Err(Error::Core(mlops_core::Error::InvalidPackage(message))) => {
            assert!(message.contains("model.json"), "{message}")
        }
        other => panic!("expected a missing-file error, got {other:?}"),
    }
}

#[test]
fn separate_processes_share_a_local_registry_safely() {
    let dir = tempfile::tempdir().unwrap();
    crate::processes::race_writer_processes(&format!("file://{}", dir.path().display()));
}

#[test]
fn writers_killed_at_random_points_leave_a_usable_local_registry() {
    let dir = tempfile::tempdir().unwrap();
    crate::processes::kill_writers_at_random_points(&format!("file://{}", dir.path().display()), 11);
}
