//! Where a Delta table lives: an object store and the table's URL on it.

use std::sync::Arc;

use deltalake::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::error::{Error, Result};

/// A Delta table's location: a store whose root is the root of the URL (the bucket, or `/`
/// for local files) and the table's URL.
///
/// One store instance can serve a model registry and any number of tables; commits use the
/// store's create-only puts, which local directories, S3 (and S3-compatible servers), GCS and
/// Azure support, so writers in many processes never overwrite each other's commits.
///
/// ```
/// use mlops_infer::TableLocation;
/// let dir = tempfile::tempdir()?;
/// let table = TableLocation::local(dir.path().join("inference"))?;
/// assert!(table.url().as_str().ends_with("/inference"));
/// assert!(table.sibling("pending_labels")?.url().as_str().ends_with("/inference_pending_labels"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct TableLocation {
    root: Arc<dyn ObjectStore>,
    url: Url,
}

impl TableLocation {
    /// A table at `url` on `root`, a store rooted where the URL's path starts.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the URL cannot hold a table (no path).
    pub fn new(root: Arc<dyn ObjectStore>, url: Url) -> Result<Self> {
        if url.cannot_be_a_base() || url.path().trim_matches('/').is_empty() {
            return Err(Error::InvalidArgument(format!("table location `{url}` needs a path below the store's root")));
        }
        let mut url = url;
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        Ok(Self { root, url })
    }

    /// A table in a local directory (created on first write).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created; [`Error::InvalidArgument`] when
    /// the path cannot be expressed as a URL.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            operation: "creating table directory",
            path: dir.to_owned(),
            source,
        })?;
        let absolute = dir.canonicalize().map_err(|source| Error::Io {
            operation: "resolving table directory",
            path: dir.to_owned(),
            source,
        })?;
        let url = Url::from_directory_path(&absolute)
            .map_err(|()| Error::InvalidArgument(format!("table path `{}` is not absolute", absolute.display())))?;
        Self::new(Arc::new(LocalFileSystem::new()), url)
    }

    /// A table at `url` (`file://`, `s3://bucket/path`, `gs://`, `az://`, `memory://`), with
    /// object_store configuration `options` (e.g. `aws_endpoint`, `aws_region`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the URL when it is malformed or its scheme unknown.
    pub fn open<I, K, V>(url: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let parsed = Url::parse(url).map_err(|e| Error::InvalidArgument(format!("table url `{url}`: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| Error::InvalidArgument(format!("table url `{url}` is not a local path")))?;
            return Self::local(dir);
        }
        let (store, _) = object_store::parse_url_opts(&parsed, options)
            .map_err(|e| Error::InvalidArgument(format!("table url `{url}`: {e}")))?;
        Self::new(Arc::from(store), parsed)
    }

    /// The table's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The URL without user, password or query, fit for logs and metric labels.
    pub(crate) fn url_without_secrets(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        let _ = url.set_username("");
        url.set_query(None);
        url.to_string()
    }

    /// The store, rooted at the URL's root.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.root
    }

    /// A table next to this one, named `<this table>_<suffix>`, on the same store.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a suffix with a `/`.
    pub fn sibling(&self, suffix: &str) -> Result<Self> {
        if suffix.is_empty() || suffix.contains('/') {
            return Err(Error::InvalidArgument(format!("table suffix `{suffix}` must be one non-empty path part")));
        }
        let mut url = self.url.clone();
        url.set_path(&format!("{}_{suffix}", self.url.path()));
        Ok(Self { root: Arc::clone(&self.root), url })
    }

    /// A table inside this location's path, at `<this table>/<name>`, on the same store:
    /// how one root holds many tables (feature tables, for instance).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that is empty, has a `/` or starts with `_`
    /// (Delta keeps its own files under such names).
    pub fn child(&self, name: &str) -> Result<Self> {
        if name.is_empty() || name.contains('/') || name.starts_with('_') || name.starts_with('.') {
            return Err(Error::InvalidArgument(format!(
                "table name `{name}` must be one path part that starts with neither `_` nor `.`"
            )));
        }
        let mut url = self.url.clone();
        url.set_path(&format!("{}/{name}", self.url.path()));
        Ok(Self { root: Arc::clone(&self.root), url })
    }

    pub(crate) fn log_store(&self) -> Result<LogStoreRef> {
        let prefix = Path::from_url_path(self.url.path())
            .map_err(|e| Error::InvalidArgument(format!("table location `{}`: {e}", self.url)))?;
        let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(Arc::clone(&self.root), prefix));
        let config = StorageConfig::parse_options(std::iter::empty::<(String, String)>())
            .map_err(|e| Error::delta(format!("configuring `{}`", self.url), e))?;
        Ok(default_logstore(prefixed, Arc::clone(&self.root), &self.url, &config))
    }

    /// The table with its latest state, or `None` when no table exists there yet.
    pub(crate) async fn load(&self) -> Result<Option<DeltaTable>> {
        // No commit under `_delta_log/` means no table (the directory may not exist either).
        let log = Path::from_url_path(self.url.path())
            .map_err(|e| Error::InvalidArgument(format!("table location `{}`: {e}", self.url)))?
            .join("_delta_log");
        let first = self.root.list(Some(&log)).next().await.transpose();
        match first {
            Ok(None) => return Ok(None),
            Ok(Some(_)) => {}
            Err(e) => return Err(Error::delta(format!("listing table `{}`", self.url), e.into())),
        }
        let mut table = DeltaTable::new(self.log_store()?);
        match table.load().await {
            Ok(()) => Ok(Some(table)),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Error::delta(format!("loading table `{}`", self.url), e)),
        }
    }

    /// The table, loaded if it exists, otherwise unloaded (a write creates it).
    pub(crate) async fn load_or_new(&self) -> Result<DeltaTable> {
        match self.load().await? {
            Some(table) => Ok(table),
            None => Ok(DeltaTable::new(self.log_store()?)),
        }
    }
}
