use async_trait::async_trait;
use mlops_core::{ColSpec, ColumnType, ModelName, Package, Schema, Signature};
use mlops_eval::{BeatsAliasCheck, Check, DescriptionCheck, Error, FAILED_CHECKS, Outcome, ValidationSuite, Verdict};
use mlops_registry::{
    CreateModel, CreateVersion, Lineage, MemoryRegistry, ModelVersion, Registry, RegistryExt, SetAlias,
};

fn package() -> Package {
    Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)]).unwrap()))
        .build()
        .unwrap()
}

async fn registry_with(versions: Vec<CreateVersion>) -> (MemoryRegistry, ModelName) {
    let registry = MemoryRegistry::new();
    let name: ModelName = "transactions".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    for version in versions {
        registry.create_version(version).await.unwrap();
    }
    (registry, name)
}

fn candidate(description: &str, status: Option<&str>, project: Option<&str>) -> CreateVersion {
    let mut request = CreateVersion::new("transactions".parse().unwrap(), package()).description(description);
    if let Some(status) = status {
        request = request.tag("validation_status", status);
    }
    if let Some(project) = project {
        request = request.tag("project", project);
    }
    request
}

#[tokio::test]
async fn the_reference_checks_pass_and_fail_as_the_workflow_expects() {
    let (registry, name) = registry_with(vec![
        candidate("Logistic regression, C = 1.0", Some("needs_tested"), Some("synthetic_transactions")),
        candidate("short", Some("needs_tested"), Some("other_project")),
        candidate("", Some("needs_tested"), None),
    ])
    .await;
    let suite = ValidationSuite::reference(["synthetic_transactions"]);

    assert_eq!(suite.validate(&registry, &name, 1).await.unwrap(), Outcome::Passed);
    let v1 = registry.get_version(&name, 1).await.unwrap();
    assert_eq!(v1.tags["validation_status"], "passed_tests");
    assert!(!v1.tags.contains_key(FAILED_CHECKS));
    // Validating again is a no-op.
    assert_eq!(suite.validate(&registry, &name, 1).await.unwrap(), Outcome::AlreadyPassed);

    let Outcome::Failed(failed) = suite.validate(&registry, &name, 2).await.unwrap() else { panic!("v2 must fail") };
    assert_eq!(failed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["description", "project_tag"]);
    assert!(failed[0].1.contains("5 characters, at least 15"), "{}", failed[0].1);
    assert!(failed[1].1.contains("`other_project`"), "{}", failed[1].1);
    let v2 = registry.get_version(&name, 2).await.unwrap();
    assert_eq!(v2.tags["validation_status"], "failed_tests");
    assert_eq!(v2.tags[FAILED_CHECKS], "description,project_tag");
    assert_eq!(suite.validate(&registry, &name, 2).await.unwrap(), Outcome::AlreadyFailed);

    let Outcome::Failed(failed) = suite.validate(&registry, &name, 3).await.unwrap() else { panic!("v3 must fail") };
    assert_eq!(failed[0].1, "the version has no description");
    assert_eq!(failed[1].1, "the version has no `project` tag");

    // After a fix, setting needs_tested again re-runs the checks and clears the failure list.
    registry.set_version_description(&name, 2, "Logistic regression, fixed description").await.unwrap();
    registry.set_version_tag(&name, 2, "project", "synthetic_transactions").await.unwrap();
    registry.set_version_tag(&name, 2, "validation_status", "needs_tested").await.unwrap();
    assert_eq!(suite.validate(&registry, &name, 2).await.unwrap(), Outcome::Passed);
    assert!(!registry.get_version(&name, 2).await.unwrap().tags.contains_key(FAILED_CHECKS));
}

#[tokio::test]
async fn a_version_without_or_with_an_unknown_status_is_an_error() {
    let (registry, name) = registry_with(vec![
        candidate("Logistic regression, C = 1.0", None, Some("p")),
        candidate("Logistic regression, C = 1.0", Some("maybe"), Some("p")),
    ])
    .await;
    let suite = ValidationSuite::new().with_check(DescriptionCheck::new(15));
    match suite.validate(&registry, &name, 1).await {
        Err(err @ Error::MissingTag { .. }) => {
            assert_eq!(err.to_string(), "version 1 of model `transactions` has no `validation_status` tag")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(suite.validate(&registry, &name, 2).await, Err(Error::InvalidArgument(m)) if m.contains("`maybe`"))
    );
    assert!(matches!(
        suite.validate(&registry, &name, 9).await,
        Err(Error::Registry(mlops_registry::Error::NotFound { .. }))
    ));
}

/// An application's own rule.
struct RequiresOwner;

#[async_trait]
impl Check for RequiresOwner {
    fn name(&self) -> &str {
        "owner_tag"
    }
    async fn check(&self, _: &dyn Registry, version: &ModelVersion) -> mlops_eval::Result<Verdict> {
        Ok(if version.tags.contains_key("owner") { Verdict::Passed } else { Verdict::Failed("no owner".into()) })
    }
}

#[tokio::test]
async fn applications_add_checks_including_comparisons_with_the_champion() {
    let with_metric = |loss: f64| {
        let lineage = Lineage { metrics: [("log_loss".to_owned(), loss)].into(), ..Lineage::default() };
        candidate("Logistic regression, C = 1.0", Some("needs_tested"), Some("p")).lineage(lineage)
    };
    let (registry, name) = registry_with(vec![with_metric(0.50), with_metric(0.45), with_metric(0.60)]).await;
    let suite = ValidationSuite::new()
        .with_check(BeatsAliasCheck::new("log_loss", "champion", false).tolerance(0.01))
        .with_check(RequiresOwner);

    // No champion yet: nothing to beat, but the custom check still applies.
    let Outcome::Failed(failed) = suite.validate(&registry, &name, 1).await.unwrap() else { panic!() };
    assert_eq!(failed, [("owner_tag".to_owned(), "no owner".to_owned())]);

    registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await.unwrap();
    for v in [2, 3] {
        registry.set_version_tag(&name, v, "owner", "risk-team").await.unwrap();
    }
    assert_eq!(suite.validate(&registry, &name, 2).await.unwrap(), Outcome::Passed);
    let Outcome::Failed(failed) = suite.validate(&registry, &name, 3).await.unwrap() else { panic!("v3 is worse") };
    assert_eq!(failed[0].0, "log_loss_vs_champion");
    assert!(failed[0].1.contains("0.6000 is worse than champion's (version 1) 0.5000"), "{}", failed[0].1);
}
