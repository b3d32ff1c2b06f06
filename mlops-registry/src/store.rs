//! A registry on an object store: a local directory by default, or S3, GCS, Azure.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use mlops_core::{MANIFEST_FILE, ModelName, Package, check_alias};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

mod gc;
mod model_document;
mod version_numbers;

pub use gc::{CompactionReport, GarbageCollection, GarbageReport, RevisionRetention};

use model_document::ModelDocument;

use crate::alias::SetAlias;
use crate::documents::{Documents, POINTER_FILE, object_exists, revision_number};
use crate::error::{Error, Result, model_not_found, refuse_if_aliased, version_not_found};
use crate::metadata::Change;
use crate::model::{CreateModel, RegisteredModel};
use crate::registry::Registry;
use crate::telemetry::traced;
use crate::version::{CreateVersion, ModelVersion, SearchVersions};

/// How many package files are transferred at once.
const TRANSFER_CONCURRENCY: usize = 8;

/// A registry kept on an [`ObjectStore`], shared safely by any number of processes on any
/// number of machines.
///
/// Layout under the root prefix:
///
/// ```text
/// models/<name>/model/current.json                    the registered model (tags, aliases)
/// models/<name>/model/<revision>.json                 ... and its past revisions
/// models/<name>/versions/<version>/current.json       each version (tags, lineage, source)
/// models/<name>/packages/<digest>/...                 package files, manifest last
/// ```
///
/// Every update is a compare-and-swap (on the store's conditional overwrite where it has
/// one, by create-only puts otherwise), so concurrent writers never lose each other's
/// updates and a compare-and-swap that reports success really happened; a read costs the
/// same however many revisions a document has. [`compact`](Self::compact) removes old
/// revisions and [`collect_garbage`](Self::collect_garbage) unreferenced packages. A version document is written only after its package is completely
/// uploaded, so no reader ever sees a version without its artifacts, whatever instant a
/// writer dies at.
///
/// ```
/// use mlops_registry::{CreateModel, ObjectStoreRegistry, Registry};
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let registry = ObjectStoreRegistry::local(dir.path())?;
/// registry.create_model(CreateModel::new("transactions".parse()?)).await?;
///
/// // Another instance (or process) on the same directory sees it.
/// let other = ObjectStoreRegistry::local(dir.path())?;
/// assert_eq!(other.list_models().await?[0].name.as_str(), "transactions");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ObjectStoreRegistry {
    store: Arc<dyn ObjectStore>,
    documents: Documents,
    root: Path,
    /// Where the registry's root is (a URL where there is one), the base of each version's
    /// `source`.
    location: String,
    /// A local directory, whose reads run their file calls on one thread ([`Self::read_files`]).
    local_files: bool,
}

impl ObjectStoreRegistry {
    /// A registry under `root` on `store`. The store must support create-only puts
    /// (`PutMode::Create`): local directories, memory, S3, GCS and Azure do.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        let location = if root.is_root() { store.to_string() } else { format!("{store}/{root}") };
        Self { documents: Documents::new(Arc::clone(&store)), store, root, location, local_files: false }
    }

    /// A registry in a local directory, created if absent.
    ///
    /// # Errors
    /// [`Error::Backend`] when the directory cannot be created or opened.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::backend(format!("creating `{}`", dir.display()), e))?;
        // Deleting and collecting leave no empty folders behind.
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::backend(format!("opening `{}`", dir.display()), e))?
            .with_automatic_cleanup(true);
        let absolute = dir.canonicalize().map_err(|e| Error::backend(format!("resolving `{}`", dir.display()), e))?;
        Ok(Self {
            location: format!("file://{}", absolute.display()),
            local_files: true,
            ..Self::new(Arc::new(store), Path::default())
        })
    }

    /// Opens the registry at `url`, configuring the store with `options` (object_store's
    /// configuration keys, such as `aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_allow_http`; unset keys fall back to the usual environment variables where the
    /// store reads them):
    ///
    /// | URL | Store |
    /// | --- | --- |
    /// | `file:///path/to/dir` | local directory (created if absent) |
    /// | `memory:///` | process memory |
    /// | `s3://bucket/prefix` | Amazon S3 or an S3-compatible server |
    /// | `gs://bucket/prefix` | Google Cloud Storage |
    /// | `az://container/prefix` | Azure Blob Storage |
    ///
    /// ```
    /// use mlops_registry::ObjectStoreRegistry;
    /// let dir = tempfile::tempdir()?;
    /// let url = format!("file://{}", dir.path().display());
    /// let registry = ObjectStoreRegistry::open(&url, std::iter::empty::<(&str, &str)>())?;
    /// assert!(ObjectStoreRegistry::open("ftp://host/x", std::iter::empty::<(&str, &str)>()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the URL when it is malformed or its scheme unknown;
    /// [`Error::Backend`] when the store cannot be set up.
    pub fn open<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let parsed = url::Url::parse(url).map_err(|e| Error::InvalidArgument(format!("registry url `{url}`: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| Error::InvalidArgument(format!("registry url `{url}` is not a local path")))?;
            return Self::local(dir);
        }
        let (store, root) = object_store::parse_url_opts(&parsed, options).map_err(|e| match e {
            object_store::Error::Generic { .. } | object_store::Error::NotImplemented { .. } => {
                Error::InvalidArgument(format!("registry url `{url}`: {e}"))
            }
            e => Error::backend(format!("opening registry `{url}`"), e),
        })?;
        Ok(Self { location: url.trim_end_matches('/').to_owned(), ..Self::new(Arc::from(store), root) })
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn models_prefix(&self) -> Path {
        self.root.clone().join("models")
    }

    fn model_prefix(&self, name: &ModelName) -> Path {
        self.models_prefix().join(name.as_str())
    }

    fn model_doc(&self, name: &ModelName) -> Path {
        self.model_prefix(name).join("model")
    }

    fn versions_prefix(&self, name: &ModelName) -> Path {
        self.model_prefix(name).join("versions")
    }

    fn version_doc(&self, name: &ModelName, version: u64) -> Path {
        self.versions_prefix(name).join(format!("{version:010}"))
    }

    /// Where `path` (under the root) is, for humans and other tools: the registry's location
    /// followed by the path below the root.
    fn location_of(&self, path: &Path) -> String {
        let below_root =
            path.prefix_match(&self.root).map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>());
        format!("{}/{}", self.location.trim_end_matches('/'), below_root.unwrap_or_default().join("/"))
    }

    fn package_prefix(&self, name: &ModelName, digest: &str) -> Path {
        self.model_prefix(name).join("packages").join(digest)
    }

    /// Runs `read` on this registry. On a local directory the read runs on a thread of the
    /// `blocking` pool, outside the tokio runtime, where object_store's `LocalFileSystem` makes
    /// its file calls inline: under the runtime it hands each call to a blocking thread and
    /// back, and those round trips cost several times the file calls themselves. A read that
    /// makes several calls (a resolve makes six) thus pays for one round trip.
    async fn read_files<T, F, Fut>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
    {
        if !self.local_files {
            return read(self.clone()).await;
        }
        let this = self.clone();
        blocking::unblock(move || futures::executor::block_on(read(this))).await
    }

    /// Reads the model and the version `alias` points at, then `then` with them, in one
    /// [`read_files`](Self::read_files).
    async fn through_alias<T, F, Fut>(&self, name: &ModelName, alias: &str, then: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Self, ModelName, RegisteredModel, u64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>>,
    {
        let (name, alias) = (name.clone(), alias.to_owned());
        self.read_files(move |this| async move {
            let model = this.read_model(&name).await?;
            let version = *model.aliases.get(&alias).ok_or_else(|| crate::error::alias_not_found(&name, &alias))?;
            then(this, name, model, version).await
        })
        .await
    }

    /// The model's document, deleted or not; `None` when there is none.
    async fn model_document(&self, name: &ModelName) -> Result<Option<ModelDocument>> {
        Ok(self.documents.latest(&self.model_doc(name)).await?.map(|revision| revision.document))
    }

    /// The document of a model that exists (and is not being deleted).
    async fn live_model_document(&self, name: &ModelName) -> Result<ModelDocument> {
        self.model_document(name).await?.filter(|doc| !doc.deleting).ok_or_else(|| model_not_found(name))
    }

    async fn read_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        Ok(self.live_model_document(name).await?.model)
    }

    /// Applies `change` to a live model's document as one compare-and-swap.
    async fn update_model_document<R, F>(&self, name: &ModelName, mut change: F) -> Result<(ModelDocument, R)>
    where
        F: FnMut(&mut ModelDocument) -> Result<R> + Send,
    {
        self.documents
            .update(
                &self.model_doc(name),
                || model_not_found(name),
                |doc: &mut ModelDocument| {
                    if doc.deleting {
                        return Err(model_not_found(name));
                    }
                    change(doc)
                },
            )
            .await
    }

    /// Numbers of the versions that have a document, ascending. A version prefix can exist
    /// without one, for a moment while a writer creates it, or for good if the writer died
    /// then (a local directory keeps the empty folder and the writer's staging file): such a
    /// prefix is not a version, and its number is claimed by the next registration.
    async fn version_numbers(&self, name: &ModelName) -> Result<Vec<u64>> {
        let prefix = self.versions_prefix(name);
        let objects: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Error::backend(format!("listing versions of `{name}`"), e))?;
        let mut numbers: Vec<u64> = objects
            .iter()
            .filter_map(|meta| {
                let mut parts = meta.location.prefix_match(&prefix)?;
                let version = parts.next()?.as_ref().parse().ok()?;
                let file = parts.next()?;
                (file.as_ref() == POINTER_FILE || revision_number(file.as_ref()).is_some()).then_some(version)
            })
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        Ok(numbers)
    }

    async fn read_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        match self.documents.latest(&self.version_doc(name, version)).await? {
            Some(revision) => Ok(revision.document),
            None => {
                self.read_model(name).await?;
                Err(version_not_found(name, version))
            }
        }
    }

    /// Every version of a model, with its aliases.
    async fn versions_of(&self, name: &ModelName) -> Result<Vec<ModelVersion>> {
        let doc = self.live_model_document(name).await?;
        let mut numbers = self.version_numbers(name).await?;
        numbers.retain(|n| !doc.deleted_versions.contains(*n));
        let versions: Vec<Option<ModelVersion>> = futures::stream::iter(numbers)
            .map(|n| async move {
                match self.documents.latest::<ModelVersion>(&self.version_doc(name, n)).await? {
                    Some(revision) => Ok::<_, Error>(Some(revision.document)),
                    // Deleted since the listing.
                    None => Ok(None),
                }
            })
            .buffered(TRANSFER_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(versions.into_iter().flatten().map(|v| doc.model.label(v)).collect())
    }

    /// Removes everything under `prefix` but the documents below `keep`, packages' manifests
    /// first (a package without its manifest is incomplete, never read).
    async fn remove_all(&self, prefix: &Path, keep: Option<&Path>) -> Result<()> {
        let objects: Vec<Path> = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_filter(|path| futures::future::ready(keep.is_none_or(|keep| path.prefix_match(keep).is_none())))
            .try_collect()
            .await
            .map_err(|e| Error::backend(format!("listing `{prefix}`"), e))?;
        let (manifests, files): (Vec<Path>, Vec<Path>) =
            objects.into_iter().partition(|path| path.filename() == Some(MANIFEST_FILE));
        for batch in [manifests, files] {
            futures::stream::iter(batch)
                .map(|path| async move {
                    match self.store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(e) => Err(Error::backend(format!("removing `{path}`"), e)),
                    }
                })
                .buffer_unordered(TRANSFER_CONCURRENCY)
                .try_collect::<()>()
                .await?;
        }
        Ok(())
    }

    /// Uploads the files, then the manifest: a package prefix with a manifest is complete.
    async fn upload_package(&self, prefix: &Path, package: &Package) -> Result<()> {
        let uploads: Vec<(Path, Bytes)> =
            package.files().map(|(relative, bytes)| (nested(prefix, relative), bytes.clone())).collect();
        futures::stream::iter(uploads)
            .map(|(path, bytes)| self.put(path, bytes))
            .buffer_unordered(TRANSFER_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        self.put(prefix.clone().join(MANIFEST_FILE), package.manifest_bytes()?).await
    }

    async fn put(&self, path: Path, bytes: Bytes) -> Result<()> {
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| Error::backend(format!("uploading `{path}`"), e))
    }

    /// Downloads `path`; with `expected_size`, an object of another size is refused before
    /// its bytes are read, so a tampered file costs no more than the manifest says.
    async fn get(&self, path: &Path, expected_size: Option<u64>) -> Result<Bytes> {
        let result = self.store.get(path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                Error::Core(mlops_core::Error::InvalidPackage(format!("stored package file `{path}` is missing")))
            }
            e => Error::backend(format!("downloading `{path}`"), e),
        })?;
        if let Some(expected) = expected_size.filter(|expected| *expected != result.meta.size) {
            return Err(Error::Core(mlops_core::Error::InvalidPackage(format!(
                "stored package file `{path}` is {} bytes; its manifest records {expected}",
                result.meta.size
            ))));
        }
        result.bytes().await.map_err(|e| Error::backend(format!("downloading `{path}`"), e))
    }
}

impl ObjectStoreRegistry {
    /// The names under `models/`, documents or not.
    async fn model_names(&self) -> Result<Vec<ModelName>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&self.models_prefix()))
            .await
            .map_err(|e| Error::backend("listing models", e))?;
        Ok(listing.common_prefixes.iter().filter_map(|p| ModelName::new(p.filename()?).ok()).collect())
    }
}

fn nested(base: &Path, relative: &str) -> Path {
    relative.split('/').fold(base.clone(), |path, part| path.join(part))
}

/// The `backend` label of this registry's spans and metrics.
const BACKEND: &str = "object_store";

#[async_trait]
impl Registry for ObjectStoreRegistry {
    async fn create_model(&self, request: CreateModel) -> Result<RegisteredModel> {
        traced(BACKEND, "create_model")
            .model(&request.name)
            .run(async {
                let model = request.into_model()?;
                let name = model.name.clone();
                if self.documents.create(&self.model_doc(&name), &ModelDocument::new(model.clone())).await? {
                    return Ok(model);
                }
                let what = match self.model_document(&name).await {
                    Ok(Some(doc)) if doc.deleting => {
                        format!("model `{name}` (it is being deleted: `delete_model` finishes that)")
                    }
                    _ => format!("model `{name}`"),
                };
                Err(Error::AlreadyExists { what })
            })
            .await
    }

    async fn get_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        traced(BACKEND, "get_model").model(name).run(async { self.read_model(name).await }).await
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>> {
        traced(BACKEND, "list_models")
            .run(async {
                let mut models = Vec::new();
                for name in self.model_names().await? {
                    // A model prefix without a model document is not a model (nothing is written
                    // under a model before its first revision, but stay robust to stray files).
                    if let Some(doc) = self.model_document(&name).await?.filter(|doc| !doc.deleting) {
                        models.push(doc.model);
                    }
                }
                models.sort_by(|a: &RegisteredModel, b| a.name.cmp(&b.name));
                Ok(models)
            })
            .await
    }

    async fn update_model(&self, name: &ModelName, change: Change) -> Result<RegisteredModel> {
        traced(BACKEND, "update_model")
            .model(name)
            .run(async {
                let (doc, ()) = self.update_model_document(name, |doc| doc.model.apply(&change)).await?;
                Ok(doc.model)
            })
            .await
    }

    async fn create_version(&self, request: CreateVersion) -> Result<ModelVersion> {
        traced(BACKEND, "create_version")
            .model(&request.model)
            .run(async {
                let name = &request.model;
                request.check()?;
                self.read_model(name).await?;
                let digest = request.package.digest()?;
                let prefix = self.package_prefix(name, &digest);
                self.upload_package(&prefix, &request.package).await?;
                let source = self.location_of(&prefix);
                let mut deleted = self.live_model_document(name).await?.deleted_versions;
                let mut candidate = self.first_candidate(name, &deleted).await?;
                let version = loop {
                    let number = candidate.number();
                    let doc = self.version_doc(name, number);
                    // A version compacted down to its newest revisions has no revision 1 for
                    // the create-only write to collide with: ask first.
                    if !self.documents.exists(&doc).await? {
                        let version = request.to_version(number, source.clone(), digest.clone())?;
                        if self.documents.create(&doc, &version).await? {
                            match self.live_model_document(name).await {
                                Ok(model) if !model.deleted_versions.contains(number) => break version,
                                // Deleted since its number was picked: the number stays given.
                                Ok(model) => {
                                    self.documents.remove(&doc).await?;
                                    deleted = model.deleted_versions;
                                }
                                // A `delete_model` that began meanwhile did not see this
                                // version: take it back.
                                Err(e) => {
                                    self.documents.remove(&doc).await?;
                                    return Err(e);
                                }
                            }
                        }
                    }
                    candidate = self.next_candidate(name, candidate, &deleted).await?;
                };
                self.advance_hint(name, version.version).await;
                // A garbage collection that found the package unreferenced a moment ago may
                // have removed it since: upload it again, so the version never lacks it.
                if !object_exists(self.store.as_ref(), &prefix.clone().join(MANIFEST_FILE)).await? {
                    self.upload_package(&prefix, &request.package).await?;
                }
                Ok(version)
            })
            .await
    }

    async fn get_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        traced(BACKEND, "get_version")
            .model(name)
            .version(version)
            .run(self.read_files({
                let name = name.clone();
                move |this| async move {
                    let doc = this.live_model_document(&name).await?;
                    if doc.deleted_versions.contains(version) {
                        return Err(version_not_found(&name, version));
                    }
                    Ok(doc.model.label(this.read_version(&name, version).await?))
                }
            }))
            .await
    }

    async fn search_versions(&self, filter: SearchVersions) -> Result<Vec<ModelVersion>> {
        traced(BACKEND, "search_versions")
            .maybe_model(filter.model.as_ref())
            .run(async {
                let names = match &filter.model {
                    Some(name) => vec![name.clone()],
                    None => self.list_models().await?.into_iter().map(|m| m.name).collect(),
                };
                let mut found = Vec::new();
                for name in &names {
                    found.extend(self.versions_of(name).await?.into_iter().filter(|v| filter.matches(v)));
                }
                Ok(found)
            })
            .await
    }

    async fn update_version(&self, name: &ModelName, version: u64, change: Change) -> Result<ModelVersion> {
        traced(BACKEND, "update_version")
            .model(name)
            .version(version)
            .run(async {
                let missing = || version_not_found(name, version);
                if self.live_model_document(name).await?.deleted_versions.contains(version) {
                    return Err(missing());
                }
                let (updated, ()) = self
                    .documents
                    .update(&self.version_doc(name, version), missing, |v: &mut ModelVersion| v.apply(&change))
                    .await?;
                Ok(self.read_model(name).await?.label(updated))
            })
            .await
    }

    async fn set_alias(&self, request: SetAlias) -> Result<Option<u64>> {
        traced(BACKEND, "set_alias")
            .model(&request.model)
            .alias(&request.alias)
            .version(request.version)
            .run(async {
                check_alias(&request.alias)?;
                self.read_version(&request.model, request.version).await?;
                // The move and a deletion of the version both update the model's document,
                // so the one that lands second sees the other.
                let (_, previous) = self
                    .update_model_document(&request.model, |doc| {
                        if doc.deleted_versions.contains(request.version) {
                            return Err(version_not_found(&request.model, request.version));
                        }
                        doc.model.move_alias(&request.alias, request.version, request.mode)
                    })
                    .await?;
                Ok(previous)
            })
            .await
    }

    async fn delete_alias(&self, name: &ModelName, alias: &str) -> Result<u64> {
        traced(BACKEND, "delete_alias")
            .model(name)
            .alias(alias)
            .run(async {
                let (_, version) = self.update_model_document(name, |doc| doc.model.remove_alias(alias)).await?;
                Ok(version)
            })
            .await
    }

    async fn delete_version(&self, name: &ModelName, version: u64) -> Result<ModelVersion> {
        traced(BACKEND, "delete_version")
            .model(name)
            .version(version)
            .run(async {
                if self.live_model_document(name).await?.deleted_versions.contains(version) {
                    return Err(version_not_found(name, version));
                }
                let deleted = self.read_version(name, version).await?;
                self.update_model_document(name, |doc| {
                    if doc.deleted_versions.contains(version) {
                        return Err(version_not_found(name, version));
                    }
                    refuse_if_aliased(&doc.model, version)?;
                    doc.deleted_versions.insert(version);
                    doc.model.updated_at = chrono::Utc::now();
                    Ok(())
                })
                .await?;
                // Deleted from here on; what is left of its document, should this fail, is
                // removed by `collect_garbage`.
                self.documents.remove(&self.version_doc(name, version)).await?;
                Ok(deleted)
            })
            .await
    }

    async fn delete_model(&self, name: &ModelName) -> Result<RegisteredModel> {
        traced(BACKEND, "delete_model")
            .model(name)
            .run(async {
                let doc = self.model_document(name).await?.ok_or_else(|| model_not_found(name))?;
                if !doc.deleting {
                    // From here on the model reads as absent; a call that fails part-way is
                    // finished by calling again.
                    self.documents
                        .update(
                            &self.model_doc(name),
                            || model_not_found(name),
                            |doc: &mut ModelDocument| {
                                doc.deleting = true;
                                Ok(())
                            },
                        )
                        .await?;
                }
                self.remove_all(&self.model_prefix(name), Some(&self.model_doc(name))).await?;
                self.documents.remove(&self.model_doc(name)).await?;
                Ok(doc.model)
            })
            .await
    }

    async fn download_package(&self, name: &ModelName, version: u64) -> Result<Package> {
        traced(BACKEND, "download_package")
            .model(name)
            .version(version)
            .run(async {
                let record = self.read_version(name, version).await?;
                let prefix = self.package_prefix(name, &record.package_digest);
                let manifest = self.get(&prefix.clone().join(MANIFEST_FILE), None).await?;
                let listed: mlops_core::Manifest = serde_json::from_slice(&manifest).map_err(|e| {
                    Error::Core(mlops_core::Error::InvalidPackage(format!("manifest of `{prefix}`: {e}")))
                })?;
                // The manifest is checked against the version's digest before any file is fetched.
                let digest = listed.digest()?;
                if digest != record.package_digest {
                    return Err(Error::Core(mlops_core::Error::Checksum {
                        path: MANIFEST_FILE.to_owned(),
                        expected: record.package_digest,
                        found: digest,
                    }));
                }
                let wanted: Vec<(String, Path, u64)> = listed
                    .files
                    .iter()
                    .map(|entry| (entry.path.clone(), nested(&prefix, &entry.path), entry.size))
                    .collect();
                let files: BTreeMap<String, Bytes> = futures::stream::iter(wanted)
                    .map(|(relative, path, size)| async move {
                        Ok::<_, Error>((relative, self.get(&path, Some(size)).await?))
                    })
                    .buffer_unordered(TRANSFER_CONCURRENCY)
                    .try_collect()
                    .await?;
                Ok(Package::from_parts(&manifest, files)?)
            })
            .await
    }

    /// Two requests on a store with conditional overwrite: the model's document and the
    /// version's.
    async fn version_by_alias(&self, name: &ModelName, alias: &str) -> Result<ModelVersion> {
        traced(BACKEND, "version_by_alias")
            .model(name)
            .alias(alias)
            .run(self.through_alias(name, alias, |this, name, model, version| async move {
                Ok(model.label(this.read_version(&name, version).await?))
            }))
            .await
    }

    /// One request on a store with conditional overwrite: the model's document.
    async fn alias_version(&self, name: &ModelName, alias: &str) -> Result<u64> {
        traced(BACKEND, "alias_version")
            .model(name)
            .alias(alias)
            .run(self.through_alias(name, alias, |_, _, _, version| async move { Ok(version) }))
            .await
    }
}
