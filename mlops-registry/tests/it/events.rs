use std::sync::Arc;

use mlops_registry::{
    CreateModel, CreateVersion, MemoryRegistry, ObservedRegistry, Registry, RegistryEvent, RegistryExt, SetAlias,
};

use mlops_registry::conformance::{name, package};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_observed_registry_keeps_the_contract() {
    mlops_registry::conformance::run_all(|| ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 1024)).await;
}

#[tokio::test]
async fn every_mutation_is_published_once_in_order_with_old_and_new_alias_versions() {
    let registry = ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 64);
    let mut events = registry.subscribe();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone()).tag("team", "risk")).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(1.0)).run("run-1", "model")).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(0.1))).await.unwrap();
    registry.set_model_tag(&tx, "owner", "fraud").await.unwrap();
    registry.delete_model_tag(&tx, "owner").await.unwrap();
    registry.set_version_tag(&tx, 1, "validation_status", "passed_tests").await.unwrap();
    registry.delete_version_tag(&tx, 1, "validation_status").await.unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();
    registry.delete_alias(&tx, "champion").await.unwrap();
    registry.delete_version(&tx, 1).await.unwrap();
    registry.delete_model(&tx).await.unwrap();
    // Failed calls publish nothing.
    assert!(registry.set_alias(SetAlias::new(tx.clone(), "champion", 9)).await.is_err());
    assert!(registry.delete_version(&tx, 1).await.is_err());

    let mut received = Vec::new();
    while let Ok(event) = events.try_recv() {
        received.push(event);
    }
    let kinds: Vec<String> =
        received.iter().map(|e| serde_json::to_value(e).unwrap()["event"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "model_created",
            "version_created",
            "version_created",
            "model_tag_set",
            "model_tag_deleted",
            "version_tag_set",
            "version_tag_deleted",
            "alias_set",
            "alias_set",
            "alias_deleted",
            "version_deleted",
            "model_deleted"
        ]
    );
    assert!(
        matches!(&received[1], RegistryEvent::VersionCreated { version: 1, run_id: Some(run), .. } if run == "run-1")
    );
    assert_eq!(
        received[8],
        RegistryEvent::AliasSet { name: tx.clone(), alias: "champion".into(), version: 2, previous: Some(1) }
    );
    assert_eq!(received[9], RegistryEvent::AliasDeleted { name: tx.clone(), alias: "champion".into(), previous: 2 });
    assert_eq!(received[10], RegistryEvent::VersionDeleted { name: tx.clone(), version: 1 });
    assert!(received.iter().all(|e| e.model() == &tx));
}
