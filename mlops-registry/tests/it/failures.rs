//! A registration that fails part-way leaves nothing visible.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use mlops_registry::{CreateModel, CreateVersion, Error, ObjectStoreRegistry, Registry, RegistryExt, SearchVersions};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};

use mlops_registry::conformance::{name, package};

/// An in-memory store whose package uploads fail while `broken` is set, as a network or
/// disk failure in the middle of a registration would.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: InMemory,
    broken: AtomicBool,
}

impl std::fmt::Display for FlakyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FlakyStore")
    }
}

#[async_trait]
impl ObjectStore for FlakyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.broken.load(Ordering::SeqCst)
            && location.as_ref().contains("/packages/")
            && location.as_ref().ends_with("model.json")
        {
            return Err(object_store::Error::Generic { store: "flaky", source: "injected upload failure".into() });
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_failed_registration_leaves_no_version_and_burns_no_number() {
    let store = Arc::new(FlakyStore::default());
    let registry = ObjectStoreRegistry::new(store.clone(), Path::from("registry"));
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();

    store.broken.store(true, Ordering::SeqCst);
    match registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await {
        Err(Error::Backend { context, .. }) => assert!(context.contains("model.json"), "{context}"),
        other => panic!("expected the injected failure, got {other:?}"),
    }
    assert!(matches!(registry.get_version(&tx, 1).await, Err(Error::NotFound { .. })));
    assert!(registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap().is_empty());
    assert!(matches!(registry.latest_version(&tx).await, Err(Error::NotFound { .. })));

    store.broken.store(false, Ordering::SeqCst);
    let version = registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    assert_eq!(version.version, 1, "the failed attempt must not use up a version number");
    registry.download_package(&tx, 1).await.unwrap();
}
