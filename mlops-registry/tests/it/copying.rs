//! Copying versions between registries: between in-process backends here; from an MLflow
//! server to S3 and back in `mlflow.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use mlops_core::{ModelName, Package};
use mlops_registry::{
    COPIED_FROM_REGISTRY_TAG, COPIED_FROM_TAG, Change, CopyVersion, CreateModel, CreateVersion, DatasetRef, Error,
    Lineage, MemoryRegistry, ModelVersion, ObjectStoreRegistry, RegisteredModel, Registry, SearchVersions, SetAlias,
    copy_version,
};

use mlops_registry::conformance::{name, package};

pub fn lineage() -> Lineage {
    Lineage {
        training_data: Some(DatasetRef { name: "train.parquet".into(), digest: "abc123".into() }),
        params: [("l2_penalty".to_owned(), "0.5".to_owned())].into(),
        metrics: [("auc".to_owned(), 0.91)].into(),
    }
}

/// Asserts that `copy` carries everything of `source` a copy keeps, and that both serve the
/// same package, file for file.
pub async fn assert_copied(from: &dyn Registry, source: &ModelVersion, to: &dyn Registry, copy: &ModelVersion) {
    assert_eq!(copy.description, source.description);
    assert_eq!(copy.package_digest, source.package_digest);
    assert_eq!(copy.flavor, source.flavor);
    assert_eq!(copy.lineage, source.lineage);
    for (key, value) in &source.tags {
        if key != COPIED_FROM_TAG && key != COPIED_FROM_REGISTRY_TAG {
            assert_eq!(copy.tags.get(key), Some(value), "tag `{key}`");
        }
    }
    assert_eq!(copy.tags[COPIED_FROM_TAG], format!("models:/{}/{}", source.name, source.version));
    let (original, copied) = (
        from.download_package(&source.name, source.version).await.unwrap(),
        to.download_package(&copy.name, copy.version).await.unwrap(),
    );
    assert_eq!(copied.manifest(), original.manifest());
    for (path, bytes) in original.files() {
        assert_eq!(copied.file(path).unwrap(), bytes, "file `{path}`");
    }
}

#[tokio::test]
async fn a_version_is_copied_whole_once_however_often_the_copy_runs() {
    let development = MemoryRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    let production = ObjectStoreRegistry::local(dir.path()).unwrap();
    let tx = name("transactions");
    development
        .create_model(CreateModel::new(tx.clone()).description("fraud probability").tag("team", "risk"))
        .await
        .unwrap();
    development.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    let source = development
        .create_version(
            CreateVersion::new(tx.clone(), package(0.5))
                .description("the one to promote")
                .tag("validation_status", "passed_tests")
                .run("run-7", "model")
                .lineage(lineage()),
        )
        .await
        .unwrap();
    development.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();

    let request = CopyVersion::new(tx.clone(), 2).source_registry("development");
    let copied = copy_version(&development, &production, request.clone()).await.unwrap();
    assert!(copied.created);
    assert_eq!(copied.version.version, 1, "the target numbers its own versions");
    assert_eq!(copied.version.tags[COPIED_FROM_REGISTRY_TAG], "development");
    assert_eq!(copied.version.run, source.run);
    assert!(copied.version.aliases.is_empty(), "promoting the copy is a decision of its own");
    assert_copied(&development, &source, &production, &copied.version).await;
    let model = production.get_model(&tx).await.unwrap();
    assert_eq!((model.description.as_str(), model.tags["team"].as_str()), ("fraud probability", "risk"));

    // Again: the first copy, nothing new registered.
    let again = copy_version(&development, &production, request).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.version.version, 1);
    assert_eq!(production.search_versions(SearchVersions::model(tx.clone())).await.unwrap().len(), 1);

    // The same version from a registry of another name is another copy; so is a copy under
    // another model name, into a model that exists already.
    let other = copy_version(&development, &production, CopyVersion::new(tx.clone(), 2).source_registry("staging"))
        .await
        .unwrap();
    assert_eq!((other.created, other.version.version), (true, 2));
    production.create_model(CreateModel::new(name("fraud")).description("kept")).await.unwrap();
    let renamed = copy_version(
        &development,
        &production,
        CopyVersion::new(tx.clone(), 1).target_model(name("fraud")).without_run(),
    )
    .await
    .unwrap();
    assert_eq!((renamed.version.name.as_str(), renamed.version.version), ("fraud", 1));
    assert_eq!(renamed.version.run, None);
    assert_eq!(production.get_model(&name("fraud")).await.unwrap().description, "kept");

    // Unknown sources are named.
    let missing = copy_version(&development, &production, CopyVersion::new(tx.clone(), 9)).await.unwrap_err();
    assert!(matches!(&missing, Error::NotFound { what } if what == "version 9 of model `transactions`"), "{missing:?}");
    let missing = copy_version(&development, &production, CopyVersion::new(name("nope"), 1)).await.unwrap_err();
    assert!(matches!(&missing, Error::NotFound { what } if what == "model `nope`"), "{missing:?}");
}

/// A registry that serves another package than the one it stored.
struct ServesAnotherPackage {
    inner: MemoryRegistry,
    substitute: Package,
}

#[async_trait]
impl Registry for ServesAnotherPackage {
    async fn create_model(&self, request: CreateModel) -> mlops_registry::Result<RegisteredModel> {
        self.inner.create_model(request).await
    }
    async fn get_model(&self, name: &ModelName) -> mlops_registry::Result<RegisteredModel> {
        self.inner.get_model(name).await
    }
    async fn list_models(&self) -> mlops_registry::Result<Vec<RegisteredModel>> {
        self.inner.list_models().await
    }
    async fn update_model(&self, name: &ModelName, change: Change) -> mlops_registry::Result<RegisteredModel> {
        self.inner.update_model(name, change).await
    }
    async fn create_version(&self, request: CreateVersion) -> mlops_registry::Result<ModelVersion> {
        self.inner.create_version(request).await
    }
    async fn get_version(&self, name: &ModelName, version: u64) -> mlops_registry::Result<ModelVersion> {
        self.inner.get_version(name, version).await
    }
    async fn search_versions(&self, filter: SearchVersions) -> mlops_registry::Result<Vec<ModelVersion>> {
        self.inner.search_versions(filter).await
    }
    async fn update_version(
        &self,
        name: &ModelName,
        version: u64,
        change: Change,
    ) -> mlops_registry::Result<ModelVersion> {
        self.inner.update_version(name, version, change).await
    }
    async fn set_alias(&self, request: SetAlias) -> mlops_registry::Result<Option<u64>> {
        self.inner.set_alias(request).await
    }
    async fn delete_alias(&self, name: &ModelName, alias: &str) -> mlops_registry::Result<u64> {
        self.inner.delete_alias(name, alias).await
    }
    async fn delete_version(&self, name: &ModelName, version: u64) -> mlops_registry::Result<ModelVersion> {
        self.inner.delete_version(name, version).await
    }
    async fn delete_model(&self, name: &ModelName) -> mlops_registry::Result<RegisteredModel> {
        self.inner.delete_model(name).await
    }
    async fn download_package(&self, _: &ModelName, _: u64) -> mlops_registry::Result<Package> {
        Ok(self.substitute.clone())
    }
}

#[tokio::test]
async fn a_copy_whose_package_differs_is_refused_and_left_unregistered() {
    let tx = name("transactions");
    let honest = MemoryRegistry::new();
    honest.create_model(CreateModel::new(tx.clone())).await.unwrap();
    honest.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();

    // The target stores the copy but serves something else: the copy goes again.
    let target = ServesAnotherPackage { inner: MemoryRegistry::new(), substitute: package(0.1) };
    let refused = copy_version(&honest, &target, CopyVersion::new(tx.clone(), 1)).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Core(mlops_core::Error::Checksum { path, .. }) if path.contains("as the target serves it")),
        "{refused:?}"
    );
    assert!(target.inner.search_versions(SearchVersions::model(tx.clone())).await.unwrap().is_empty());

    // A source serving another package than it recorded is refused before anything is written.
    let source = Arc::new(ServesAnotherPackage { inner: MemoryRegistry::new(), substitute: package(0.1) });
    source.create_model(CreateModel::new(tx.clone())).await.unwrap();
    source.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    let target = MemoryRegistry::new();
    let refused = copy_version(source.as_ref(), &target, CopyVersion::new(tx.clone(), 1)).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Core(mlops_core::Error::Checksum { path, .. }) if path.contains("as the source serves it")),
        "{refused:?}"
    );
    assert!(matches!(target.get_model(&tx).await, Err(Error::NotFound { .. })));
}
