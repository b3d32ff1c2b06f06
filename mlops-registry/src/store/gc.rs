//! Keeping an object-store registry small over the years: compacting document revisions,
//! and collecting packages that no version references.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mlops_core::{MANIFEST_FILE, ModelName};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::ObjectStoreRegistry;
use super::model_document::ModelDocument;
use crate::error::{Error, Result};
use crate::version::ModelVersion;

/// How many revisions of each document [`ObjectStoreRegistry::compact`] keeps.
///
/// Revisions younger than `min_age` are always kept. On a store without conditional
/// overwrite (a local directory) a writer that read revision `n` and stalls for longer than
/// `min_age` before writing `n + 1` could find `n + 1` compacted away and write it again:
/// keep `min_age` well above any such stall (as Delta Lake's log retention assumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionRetention {
    keep: NonZeroU64,
    min_age: Duration,
}

impl RevisionRetention {
    /// Keeps the newest `keep` revisions of each document (the current one included), and
    /// any revision younger than an hour.
    pub fn keep_newest(keep: NonZeroU64) -> Self {
        Self { keep, min_age: Duration::from_secs(3600) }
    }

    /// Keeps every revision younger than `min_age` too.
    #[must_use]
    pub fn min_age(mut self, min_age: Duration) -> Self {
        self.min_age = min_age;
        self
    }
}

/// What [`ObjectStoreRegistry::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// Documents looked at: each model's and each version's.
    pub documents: u64,
    /// Past revisions removed.
    pub revisions_removed: u64,
    /// Past revisions kept.
    pub revisions_kept: u64,
}

/// Options of [`ObjectStoreRegistry::collect_garbage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarbageCollection {
    grace: Duration,
    dry_run: bool,
}

impl Default for GarbageCollection {
    fn default() -> Self {
        Self { grace: Duration::from_secs(3600), dry_run: false }
    }
}

impl GarbageCollection {
    /// Collects unreferenced packages written more than an hour ago.
    pub fn new() -> Self {
        Self::default()
    }

    /// Collects only packages last written more than `grace` ago: a registration uploads
    /// its package before it writes the version, and must not lose it in between.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Lists what would be removed, removing nothing.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }
}

/// What [`ObjectStoreRegistry::collect_garbage`] removed, or would remove in a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GarbageReport {
    /// Where each unreferenced package was (the registry's location and the path below it).
    pub packages_removed: Vec<String>,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Packages some version references.
    pub packages_live: u64,
    /// Unreferenced packages kept because they were written within the grace period.
    pub packages_recent: u64,
    /// Documents of deleted versions that a failed deletion left behind, removed.
    pub version_documents_removed: u64,
    /// Nothing was removed.
    pub dry_run: bool,
}

/// The objects of one stored package.
#[derive(Default)]
struct StoredPackage {
    newest: Option<DateTime<Utc>>,
    bytes: u64,
}

impl ObjectStoreRegistry {
    /// Removes old revisions of every document (models' and versions'), as `retention`
    /// allows. Reads cost the same before and after; this only returns the space. Each model
    /// done is logged at info.
    ///
    /// ```
    /// use std::num::NonZeroU64;
    /// use std::time::Duration;
    /// use mlops_registry::{CreateModel, ObjectStoreRegistry, Registry, RegistryExt, RevisionRetention};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let dir = tempfile::tempdir()?;
    /// let registry = ObjectStoreRegistry::local(dir.path())?;
    /// let name: mlops_core::ModelName = "transactions".parse()?;
    /// registry.create_model(CreateModel::new(name.clone())).await?;
    /// for i in 0..10 {
    ///     registry.set_model_tag(&name, "round", &i.to_string()).await?;
    /// }
    /// let retention = RevisionRetention::keep_newest(NonZeroU64::new(3).unwrap()).min_age(Duration::ZERO);
    /// let report = registry.compact(&retention).await?;
    /// assert_eq!((report.revisions_removed, report.revisions_kept), (8, 3));
    /// assert_eq!(registry.get_model(&name).await?.tags["round"], "9");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Backend`] when the store fails; what was removed until then stays removed.
    pub async fn compact(&self, retention: &RevisionRetention) -> Result<CompactionReport> {
        let written_before = crate::retention::cutoff(Utc::now(), retention.min_age);
        let keep = retention.keep.get();
        let mut report = CompactionReport::default();
        for name in self.model_names().await? {
            let mut removed =
                self.documents.compact::<ModelDocument>(&self.model_doc(&name), keep, written_before).await?;
            report.documents += 1;
            for number in self.version_numbers(&name).await? {
                let version = self
                    .documents
                    .compact::<ModelVersion>(&self.version_doc(&name, number), keep, written_before)
                    .await?;
                removed.removed += version.removed;
                removed.kept += version.kept;
                report.documents += 1;
            }
            report.revisions_removed += removed.removed;
            report.revisions_kept += removed.kept;
            tracing::info!(target: "mlops_registry", model = %name, removed = removed.removed, kept = removed.kept, "revisions compacted");
        }
        Ok(report)
    }

    /// Removes packages that no version references (those of deleted versions, or of a
    /// registration that failed after its upload) once they are older than the grace period,
    /// and what failed deletions left of deleted versions. A registration racing it never
    /// loses its package: packages are listed before versions are read, a package is checked
    /// again just before it goes, and a registration whose package went meanwhile uploads it
    /// again. Each model done is logged at info.
    ///
    /// # Errors
    /// [`Error::Backend`] when the store fails; what was removed until then stays removed.
    pub async fn collect_garbage(&self, options: &GarbageCollection) -> Result<GarbageReport> {
        let cutoff = crate::retention::cutoff(Utc::now(), options.grace);
        let mut report = GarbageReport { dry_run: options.dry_run, ..GarbageReport::default() };
        for name in self.model_names().await? {
            let removed_before = report.packages_removed.len();
            // Packages first: one uploaded after this listing is not looked at.
            let packages = self.stored_packages(&name).await?;
            let live = match self.model_document(&name).await? {
                Some(doc) if !doc.deleting => self.live_digests(&name, &doc, options.dry_run, &mut report).await?,
                // Being deleted: `delete_model` removes it all.
                Some(_) => continue,
                // No model (one deleted while a registration uploaded): nothing is live.
                None => BTreeSet::new(),
            };
            for (digest, package) in packages {
                if live.contains(&digest) {
                    report.packages_live += 1;
                    continue;
                }
                let prefix = self.package_prefix(&name, &digest);
                if package.newest.is_none_or(|newest| newest >= cutoff) || !self.still_old(&prefix, cutoff).await? {
                    report.packages_recent += 1;
                    continue;
                }
                if !options.dry_run {
                    self.remove_all(&prefix, None).await?;
                }
                report.bytes_removed += package.bytes;
                report.packages_removed.push(self.location_of(&prefix));
            }
            tracing::info!(
                target: "mlops_registry",
                model = %name,
                packages_removed = report.packages_removed.len() - removed_before,
                dry_run = options.dry_run,
                "garbage collected"
            );
        }
        Ok(report)
    }

    /// Every package under a model, by digest, with its newest write and its size.
    async fn stored_packages(&self, name: &ModelName) -> Result<BTreeMap<String, StoredPackage>> {
        let prefix = self.model_prefix(name).join("packages");
        let mut packages: BTreeMap<String, StoredPackage> = BTreeMap::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.try_next().await.map_err(|e| Error::backend(format!("listing `{prefix}`"), e))? {
            let Some(digest) = meta.location.prefix_match(&prefix).and_then(|mut parts| parts.next()) else { continue };
            let package = packages.entry(digest.as_ref().to_owned()).or_default();
            package.newest = package.newest.max(Some(meta.last_modified));
            package.bytes += meta.size;
        }
        Ok(packages)
    }

    /// The digests the model's versions reference; documents of deleted versions are
    /// removed (counted only, in a dry run).
    async fn live_digests(
        &self,
        name: &ModelName,
        doc: &ModelDocument,
        dry_run: bool,
        report: &mut GarbageReport,
    ) -> Result<BTreeSet<String>> {
        let mut live = BTreeSet::new();
        for number in self.version_numbers(name).await? {
            let prefix = self.version_doc(name, number);
            if doc.deleted_versions.contains(number) {
                if !dry_run {
                    self.documents.remove(&prefix).await?;
                }
                report.version_documents_removed += 1;
                continue;
            }
            // A version whose document does not parse keeps every package: which one it
            // references is unknown.
            match self.documents.latest::<ModelVersion>(&prefix).await {
                Ok(Some(revision)) => {
                    live.insert(revision.document.package_digest);
                }
                Ok(None) => {}
                Err(Error::Corrupt(why)) => {
                    return Err(Error::Corrupt(format!(
                        "{why}; no package of model `{name}` is collected until it is repaired"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(live)
    }

    /// Whether the package's manifest (or, without one, the package) is still older than
    /// `cutoff`, read again just before removing it.
    async fn still_old(&self, prefix: &Path, cutoff: DateTime<Utc>) -> Result<bool> {
        match self.store.head(&prefix.clone().join(MANIFEST_FILE)).await {
            Ok(meta) => Ok(meta.last_modified < cutoff),
            Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(Error::backend(format!("reading `{prefix}`"), e)),
        }
    }
}
