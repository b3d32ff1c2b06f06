use std::sync::Arc;

use mlops_registry::{
    AliasMode, AllowAll, AuditLog, AuditOutcome, CreateModel, CreateVersion, Error, GovernedRegistry, MemoryAuditLog,
    MemoryRegistry, ObjectStoreAuditLog, ObjectStoreRegistry, Operation, Permission, Principal, Registry, RegistryExt,
    RolePolicy, SetAlias,
};
use serde_json::json;

use mlops_registry::conformance::{name, package};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_governed_registry_that_allows_everything_keeps_the_contract() {
    mlops_registry::conformance::run_all(|| {
        GovernedRegistry::new(Arc::new(MemoryRegistry::new()), Arc::new(AllowAll), Arc::new(MemoryAuditLog::new()))
            .as_principal(Principal::new("tester"))
    })
    .await;
}

fn governed() -> GovernedRegistry {
    let policy = RolePolicy::new()
        .grant("scoring-service", "*", Permission::Read)
        .grant("data-scientist", "main.fraud.*", Permission::Write)
        .grant("release-manager", "*", Permission::Manage)
        .protect_alias("champion");
    GovernedRegistry::new(Arc::new(MemoryRegistry::new()), Arc::new(policy), Arc::new(MemoryAuditLog::new()))
}

#[tokio::test]
async fn the_policy_decides_and_denials_name_principal_action_and_model() {
    let governed = governed();
    let (reader, scientist, manager) = (
        governed.as_principal(Principal::new("scoring-service")),
        governed.as_principal(Principal::new("data-scientist")),
        governed.as_principal(Principal::new("release-manager")),
    );
    let tx = name("main.fraud.transactions");
    scientist.create_model(CreateModel::new(tx.clone())).await.unwrap();
    scientist.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    scientist.create_version(CreateVersion::new(tx.clone(), package(0.1))).await.unwrap();
    scientist.set_alias(SetAlias::new(tx.clone(), "challenger", 2)).await.unwrap();

    match scientist.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await {
        Err(err @ Error::PermissionDenied { .. }) => assert_eq!(
            err.to_string(),
            "principal `data-scientist` may not set alias `champion` of model `main.fraud.transactions`: \
             it holds Write access, Manage is required"
        ),
        other => panic!("a protected alias moved without Manage: {other:?}"),
    }
    manager.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();

    assert_eq!(reader.version_by_alias(&tx, "champion").await.unwrap().version, 2);
    reader.download_package(&tx, 2).await.unwrap();
    assert!(matches!(
        reader.set_version_tag(&tx, 1, "k", "v").await,
        Err(Error::PermissionDenied { principal, action, .. }) if principal == "scoring-service" && action == "update a version of"
    ));
    let stranger = governed.as_principal(Principal::new("stranger"));
    assert!(matches!(stranger.get_model(&tx).await, Err(Error::PermissionDenied { action, .. }) if action == "read"));
    assert!(stranger.list_models().await.unwrap().is_empty(), "lists show only readable models");
    // The scientist's grant covers main.fraud.* only.
    assert!(matches!(
        scientist.create_model(CreateModel::new(name("main.marketing.churn"))).await,
        Err(Error::PermissionDenied { .. })
    ));

    let entries = governed.audit().entries(&tx).await.unwrap();
    let denied: Vec<(&str, Operation)> = entries
        .iter()
        .filter(|e| matches!(e.outcome, AuditOutcome::Denied(_)))
        .map(|e| (e.principal.as_str(), e.operation))
        .collect();
    assert_eq!(denied, [("data-scientist", Operation::SetAlias), ("scoring-service", Operation::UpdateVersion)]);
}

#[tokio::test]
async fn every_mutation_is_audited_with_old_and_new_values_and_aliases_roll_back() {
    let governed = governed();
    let manager = governed.as_principal(Principal::new("release-manager"));
    let tx = name("main.fraud.transactions");
    manager.create_model(CreateModel::new(tx.clone()).description("v0")).await.unwrap();
    for l2 in [1.0, 0.1, 0.01] {
        manager.create_version(CreateVersion::new(tx.clone(), package(l2))).await.unwrap();
    }
    manager.set_model_tag(&tx, "owner", "risk").await.unwrap();
    manager.set_model_tag(&tx, "owner", "fraud").await.unwrap();
    manager.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    manager.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();
    manager.set_alias(SetAlias::new(tx.clone(), "champion", 3)).await.unwrap();
    // A lost compare-and-swap is audited as failed, not as a move.
    let lost = manager.set_alias(SetAlias::new(tx.clone(), "champion", 1).mode(AliasMode::Update(2))).await;
    assert!(matches!(lost, Err(Error::Precondition { .. })));

    let entries = governed.audit().entries(&tx).await.unwrap();
    let tag_changes: Vec<_> = entries.iter().filter(|e| e.operation == Operation::UpdateModel).collect();
    assert_eq!(tag_changes[0].old, None);
    assert_eq!(tag_changes[0].new, Some(json!({ "owner": "risk" })));
    assert_eq!(tag_changes[1].old, Some(json!({ "owner": "risk" })));
    assert!(entries.iter().all(|e| e.principal == "release-manager"));
    assert!(matches!(entries.last().unwrap().outcome, AuditOutcome::Failed(ref m) if m.contains("expected version 2")));

    let history = governed.alias_history(&tx, "champion").await.unwrap();
    let moves: Vec<(Option<u64>, Option<u64>)> = history.iter().map(|m| (m.from, m.to)).collect();
    assert_eq!(moves, [(None, Some(1)), (Some(1), Some(2)), (Some(2), Some(3))]);
    // Roll back the last move.
    let last = history.last().unwrap();
    manager
        .set_alias(SetAlias::new(tx.clone(), "champion", last.from.unwrap()).mode(AliasMode::Update(last.to.unwrap())))
        .await
        .unwrap();
    assert_eq!(manager.version_by_alias(&tx, "champion").await.unwrap().version, 2);
    manager.delete_alias(&tx, "champion").await.unwrap();
    let history = governed.alias_history(&tx, "champion").await.unwrap();
    assert_eq!(history.last().map(|m| (m.from, m.to)), Some((Some(2), None)));
}

#[tokio::test]
async fn an_object_store_audit_log_is_shared_by_every_writer() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(ObjectStoreRegistry::local(dir.path()).unwrap());
    // Two services, each with its own log handle on the same store: one history.
    let services: Vec<GovernedRegistry> = (0..2)
        .map(|_| {
            let log = ObjectStoreAuditLog::new(Arc::clone(registry.store()), Default::default());
            GovernedRegistry::new(registry.clone(), Arc::new(AllowAll), Arc::new(log))
        })
        .collect();
    let tx = name("transactions");
    let first = services[0].as_principal(Principal::new("ci"));
    first.create_model(CreateModel::new(tx.clone())).await.unwrap();
    first.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    first.create_version(CreateVersion::new(tx.clone(), package(0.1))).await.unwrap();
    first.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    services[1]
        .as_principal(Principal::new("release-manager"))
        .set_alias(SetAlias::new(tx.clone(), "champion", 2))
        .await
        .unwrap();

    let fresh = ObjectStoreAuditLog::new(Arc::clone(registry.store()), Default::default());
    let entries = fresh.entries(&tx).await.unwrap();
    assert_eq!(entries.len(), 5);
    let history = services[0].alias_history(&tx, "champion").await.unwrap();
    let moves: Vec<(&str, Option<u64>, Option<u64>)> =
        history.iter().map(|m| (m.principal.as_str(), m.from, m.to)).collect();
    assert_eq!(moves, [("ci", None, Some(1)), ("release-manager", Some(1), Some(2))]);
}

/// An audit log whose storage is down.
struct BrokenAuditLog;

#[async_trait::async_trait]
impl AuditLog for BrokenAuditLog {
    async fn append(&self, _: &mlops_registry::AuditEntry) -> mlops_registry::Result<()> {
        Err(Error::InvalidArgument("the audit store is down".into()))
    }

    async fn entries(&self, _: &mlops_core::ModelName) -> mlops_registry::Result<Vec<mlops_registry::AuditEntry>> {
        Err(Error::InvalidArgument("the audit store is down".into()))
    }
}

#[tokio::test]
async fn protected_aliases_fold_case_and_a_lost_audit_entry_never_fails_a_done_mutation() {
    let governed = governed();
    let (scientist, manager) = (
        governed.as_principal(Principal::new("data-scientist")),
        governed.as_principal(Principal::new("release-manager")),
    );
    let tx = name("main.fraud.transactions");
    scientist.create_model(CreateModel::new(tx.clone())).await.unwrap();
    scientist.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    for alias in ["Champion", "CHAMPION"] {
        let moved = scientist.set_alias(SetAlias::new(tx.clone(), alias, 1)).await;
        assert!(matches!(moved, Err(Error::PermissionDenied { .. })), "{alias}: {moved:?}");
    }
    manager.set_alias(SetAlias::new(tx.clone(), "Champion", 1)).await.unwrap();

    let inner = Arc::new(MemoryRegistry::new());
    let governed = GovernedRegistry::new(inner.clone(), Arc::new(AllowAll), Arc::new(BrokenAuditLog));
    let handle = governed.as_principal(Principal::new("tester"));
    handle.create_model(CreateModel::new(tx.clone())).await.expect("the model was created");
    let version = handle.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    assert_eq!(inner.get_version(&tx, version.version).await.unwrap().version, 1);
    let (count, latest) = governed.unaudited();
    assert_eq!(count, 2);
    assert!(latest[1].contains("`tester`") && latest[1].contains("the audit store is down"), "{latest:?}");
}

#[tokio::test]
async fn deleting_needs_manage_spares_protected_aliases_and_is_audited() {
    let governed = governed();
    let (scientist, manager) = (
        governed.as_principal(Principal::new("data-scientist")),
        governed.as_principal(Principal::new("release-manager")),
    );
    let tx = name("main.fraud.transactions");
    scientist.create_model(CreateModel::new(tx.clone())).await.unwrap();
    for l2 in [1.0, 0.5, 0.1] {
        scientist.create_version(CreateVersion::new(tx.clone(), package(l2))).await.unwrap();
    }
    manager.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();

    assert!(matches!(
        scientist.delete_version(&tx, 1).await,
        Err(Error::PermissionDenied { action, .. }) if action == "delete a version of"
    ));
    manager.delete_version(&tx, 1).await.unwrap();
    assert!(matches!(manager.delete_version(&tx, 2).await, Err(Error::InUse { .. })));
    match manager.delete_model(&tx).await {
        Err(Error::InUse { what, reason }) => {
            assert_eq!(what, "model `main.fraud.transactions`");
            assert!(reason.contains("protected alias `champion`"), "{reason}");
        }
        other => panic!("a model deleted under its champion: {other:?}"),
    }
    manager.delete_alias(&tx, "champion").await.unwrap();
    manager.delete_model(&tx).await.unwrap();
    assert!(matches!(manager.get_model(&tx).await, Err(Error::NotFound { .. })));

    let entries = governed.audit().entries(&tx).await.unwrap();
    let deletions: Vec<(Operation, Option<u64>, &AuditOutcome)> = entries
        .iter()
        .filter(|e| matches!(e.operation, Operation::DeleteVersion | Operation::DeleteModel))
        .map(|e| (e.operation, e.version, &e.outcome))
        .collect();
    assert_eq!(deletions.len(), 5, "{deletions:?}");
    assert!(matches!(deletions[0], (Operation::DeleteVersion, Some(1), AuditOutcome::Denied(_))));
    assert!(matches!(deletions[1], (Operation::DeleteVersion, Some(1), AuditOutcome::Done)));
    assert!(matches!(deletions[2], (Operation::DeleteVersion, Some(2), AuditOutcome::Failed(_))));
    assert!(matches!(deletions[3], (Operation::DeleteModel, None, AuditOutcome::Failed(_))));
    assert!(matches!(deletions[4], (Operation::DeleteModel, None, AuditOutcome::Done)));
    let removed = entries.iter().find(|e| e.operation == Operation::DeleteVersion && e.outcome == AuditOutcome::Done);
    assert_eq!(removed.unwrap().old.as_ref().unwrap()["version"], json!(1));
}
