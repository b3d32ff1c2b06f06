//! A store wrapper for tests: counts the requests made to it, and fails the puts you pick.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use mlops_registry::object_store::path::Path;
use mlops_registry::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use parking_lot::RwLock;

/// Which puts fail, as a network or disk failure would.
type FailingPuts = Box<dyn Fn(&Path) -> bool + Send + Sync>;

/// A store that counts the requests made to it, keeps the prefixes it was asked to list,
/// and fails the puts [`fail_puts`] picks.
pub struct InstrumentedStore<S> {
    inner: S,
    requests: AtomicU64,
    listed: RwLock<Vec<String>>,
    failing: RwLock<Option<FailingPuts>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for InstrumentedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStore").field("inner", &self.inner).field("requests", &self.requests).finish()
    }
}

impl<S> InstrumentedStore<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, requests: AtomicU64::new(0), listed: RwLock::new(Vec::new()), failing: RwLock::new(None) }
    }

    /// Fails every put whose location `which` picks, from now until [`heal`](Self::heal).
    pub fn fail_puts(&self, which: impl Fn(&Path) -> bool + Send + Sync + 'static) {
        *self.failing.write() = Some(Box::new(which));
    }

    pub fn heal(&self) {
        *self.failing.write() = None;
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The prefixes listed so far, oldest first (`""` for the whole store).
    pub fn listed(&self) -> Vec<String> {
        self.listed.read().clone()
    }

    fn count_listing(&self, prefix: Option<&Path>) {
        self.count();
        self.listed.write().push(prefix.map(|p| p.to_string()).unwrap_or_default());
    }
}

impl<S: std::fmt::Display> std::fmt::Display for InstrumentedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InstrumentedStore({})", self.inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: ObjectStore> ObjectStore for InstrumentedStore<S> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.count();
        if self.failing.read().as_ref().is_some_and(|fails| fails(location)) {
            return Err(object_store::Error::Generic { store: "instrumented", source: "injected put failure".into() });
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.count();
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.count();
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.count();
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.count();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_listing(prefix);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.count_listing(prefix);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.count_listing(prefix);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.count();
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.count();
        self.inner.rename_opts(from, to, options).await
    }
}
