//! A version's files on the tracking server: where they are for every source MLflow
//! writes, listing and fetching them through the artifact proxy, and writing a package
//! (with an `MLmodel` Python can read) under a run.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use mlops_core::{MANIFEST_FILE, MLMODEL_FILE, Manifest, MlflowModel, Package, PackageFormat};
use serde::Deserialize;
use url::Url;

use super::client::ApiError;
use super::wire::{DIGEST_TAG, int64_opt};
use super::{BACKEND, CONCURRENCY, MlflowRegistry, api_error};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::version::{ModelVersion, SearchVersions};

/// At most this many files are fetched for one model directory.
const MAX_FILES: usize = 10_000;
/// Directories deeper than this below a model's root are not followed.
const MAX_DEPTH: usize = 32;
/// The longest file fetched without a size to check it against: the manifest, or a file
/// the server lists without one.
const MAX_UNSIZED_FILE_BYTES: u64 = 64 << 20;
/// The artifact path Rust registrations use inside their run, written into `MLmodel`.
const RUN_ARTIFACT_PATH: &str = "model";

#[derive(Debug, Deserialize)]
struct ListedFile {
    path: String,
    #[serde(default)]
    is_dir: bool,
    #[serde(default, deserialize_with = "int64_opt")]
    file_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(default)]
    files: Vec<ListedFile>,
}

#[derive(Debug, Deserialize)]
struct LoggedModelInfo {
    #[serde(default)]
    artifact_uri: String,
}

#[derive(Debug, Deserialize)]
struct LoggedModel {
    info: LoggedModelInfo,
}

#[derive(Debug, Deserialize)]
struct LoggedModelResponse {
    model: LoggedModel,
}

#[derive(Debug, Deserialize)]
struct DownloadUri {
    #[serde(default)]
    artifact_uri: String,
}

fn corrupt(why: String) -> Error {
    Error::Core(mlops_core::Error::InvalidPackage(why))
}

/// The path on the artifact proxy of an `mlflow-artifacts:` location.
fn proxy_path(location: &str) -> Result<&str> {
    let Some(path) = location.strip_prefix("mlflow-artifacts:") else {
        return Err(Error::NotImplemented {
            backend: BACKEND,
            operation: format!(
                "artifacts at `{location}` (only the tracking server's artifact proxy, `mlflow-artifacts:`, is reachable)"
            ),
        });
    };
    // `mlflow-artifacts://host:port/path` names the server too; the path is what counts.
    Ok(match path.strip_prefix("//") {
        Some(rest) => rest.split_once('/').map_or("", |(_, p)| p),
        None => path,
    }
    .trim_matches('/'))
}

impl MlflowRegistry {
    /// The URL of `relative` inside the artifact location `location` on the server's proxy.
    pub(super) fn artifact_url(&self, location: &str, relative: &str) -> Result<Url> {
        let path = proxy_path(location)?;
        let segments = ["api", "2.0", "mlflow-artifacts", "artifacts"]
            .into_iter()
            .chain(path.split('/'))
            .chain(relative.split('/'))
            .filter(|s| !s.is_empty());
        Ok(self.client.url(segments))
    }

    /// The `mlflow-artifacts:` location of a version's files, for each source MLflow
    /// writes: the location itself, a logged model (`models:/m-<id>`, MLflow 3), or a
    /// run's artifact path (`runs:/<id>/<path>`); anything else is asked of the server.
    pub(super) async fn version_location(&self, record: &ModelVersion) -> Result<String> {
        let source = record.source.as_str();
        let context = || {
            format!("finding the files of version {} of model `{}` (source `{source}`)", record.version, record.name)
        };
        if source.starts_with("mlflow-artifacts:") {
            return Ok(source.to_owned());
        }
        if let Some(model_id) = source.strip_prefix("models:/").filter(|id| id.starts_with("m-") && !id.contains('/')) {
            let found: LoggedModelResponse = self
                .client
                .get(&format!("logged-models/{model_id}"), &[])
                .await
                .map_err(|e| api_error(context(), e))?;
            return Ok(found.model.info.artifact_uri);
        }
        let resolved = match source.strip_prefix("runs:/") {
            Some(_) => source.to_owned(),
            None => {
                let number = record.version.to_string();
                let found: DownloadUri = self
                    .client
                    .get("model-versions/get-download-uri", &[("name", record.name.as_str()), ("version", &number)])
                    .await
                    .map_err(|e| api_error(context(), e))?;
                found.artifact_uri
            }
        };
        match resolved.strip_prefix("runs:/") {
            Some(rest) => {
                let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
                let run = self.run(run_id).await.map_err(|e| api_error(context(), e))?;
                Ok(format!("{}/{}", run.info.artifact_uri.trim_end_matches('/'), path.trim_matches('/')))
            }
            None => Ok(resolved),
        }
    }

    /// Every file under `location`, by path relative to it, with the size the server
    /// reports.
    async fn list_tree(&self, location: &str) -> Result<Vec<(String, Option<u64>)>> {
        let root = proxy_path(location)?;
        let mut files = Vec::new();
        let mut pending = vec![(String::new(), 0usize)];
        while let Some((relative, depth)) = pending.pop() {
            let path = if relative.is_empty() { root.to_owned() } else { format!("{root}/{relative}") };
            let listing: Listing = self
                .client
                .get_url(self.client.url(["api", "2.0", "mlflow-artifacts", "artifacts"]), &[("path", &path)])
                .await
                .map_err(|e| api_error(format!("listing `{location}`"), e))?;
            for entry in listing.files {
                // The proxy names entries by their last path part.
                let name = entry.path.rsplit('/').next().unwrap_or_default();
                if name.is_empty() || name == "." || name == ".." {
                    return Err(corrupt(format!("the server lists an entry `{}` under `{location}`", entry.path)));
                }
                let child = if relative.is_empty() { name.to_owned() } else { format!("{relative}/{name}") };
                if entry.is_dir {
                    if depth + 1 > MAX_DEPTH {
                        return Err(corrupt(format!("`{location}` nests directories deeper than {MAX_DEPTH}")));
                    }
                    pending.push((child, depth + 1));
                } else {
                    files.push((child, entry.file_size));
                }
                if files.len() + pending.len() > MAX_FILES {
                    return Err(corrupt(format!("`{location}` holds more than {MAX_FILES} files")));
                }
            }
        }
        files.sort();
        Ok(files)
    }

    /// Fetches `relative` under `location`, checking its size when one is known (a file of
    /// unknown size, such as the manifest, may be [`MAX_UNSIZED_FILE_BYTES`] long).
    async fn fetch_file(&self, location: &str, relative: &str, size: Option<u64>, version: &str) -> Result<Bytes> {
        let url = self.artifact_url(location, relative)?;
        let bytes = match self.client.get_bytes(url, size.unwrap_or(MAX_UNSIZED_FILE_BYTES)).await {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => {
                return Err(corrupt(format!("`{relative}` is missing from `{location}` ({version})")));
            }
            Err(ApiError::TooLarge { limit, .. }) => {
                let listed = if size.is_some() { "the server lists" } else { "a file of unlisted size may hold" };
                return Err(corrupt(format!(
                    "`{relative}` under `{location}` is longer than the {limit} bytes {listed} ({version})"
                )));
            }
            Err(e) => return Err(api_error(format!("downloading `{relative}` from `{location}`"), e)),
        };
        if let Some(size) = size
            && bytes.len() as u64 != size
        {
            return Err(corrupt(format!(
                "`{relative}` under `{location}` is {} bytes where the server lists {size} ({version})",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// A version's package: this crate's (a manifest at the root, every checksum checked)
    /// or an MLflow model directory that Python logged (every file's size checked against
    /// the server's listing, the only record MLflow keeps).
    pub(super) async fn fetch_package(&self, record: &ModelVersion) -> Result<Package> {
        let (name, number) = (&record.name, record.version);
        let version = format!("version {number} of model `{name}`");
        let location = self.version_location(record).await?;
        // A version registered here records its digest; anything else may be either kind.
        let listing = if record.package_digest.is_empty() { Some(self.list_tree(&location).await?) } else { None };
        let is_native = listing.as_ref().is_none_or(|files| files.iter().any(|(path, _)| path == MANIFEST_FILE));
        if is_native {
            return self.fetch_native(&location, record, &version).await;
        }
        let files = listing.unwrap_or_default();
        if !files.iter().any(|(path, _)| path == MLMODEL_FILE) {
            return Err(corrupt(format!(
                "`{location}` ({version}) holds neither `{MANIFEST_FILE}` nor an MLflow `{MLMODEL_FILE}`"
            )));
        }
        let fetched: BTreeMap<String, Bytes> = futures::stream::iter(files)
            .map(|(path, size)| {
                let (location, version) = (&location, &version);
                async move { Ok::<_, Error>((path.clone(), self.fetch_file(location, &path, size, version).await?)) }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Package::from_mlflow_files(fetched)?)
    }

    async fn fetch_native(&self, location: &str, record: &ModelVersion, version: &str) -> Result<Package> {
        let manifest = self.fetch_file(location, MANIFEST_FILE, None, version).await?;
        let listed: Manifest =
            serde_json::from_slice(&manifest).map_err(|e| corrupt(format!("manifest at `{location}`: {e}")))?;
        // The digest is checked before any file is fetched, and never skipped: a package of
        // this crate is always registered with its digest, and the tag is editable.
        let digest = listed.digest()?;
        let expected = match record.package_digest.as_str() {
            "" => self.digest_registered_here(record).await?.ok_or_else(|| {
                corrupt(format!(
                    "{version} holds a package at `{location}` but records no digest (its `{DIGEST_TAG}` tag is \
                     missing); if that package is the one registered, set the tag to {digest}"
                ))
            })?,
            recorded => recorded.to_owned(),
        };
        if digest != expected {
            return Err(Error::Core(mlops_core::Error::Checksum {
                path: MANIFEST_FILE.to_owned(),
                expected,
                found: digest,
            }));
        }
        let entries: Vec<(String, u64)> = listed.files.into_iter().map(|f| (f.path, f.size)).collect();
        let files: BTreeMap<String, Bytes> = futures::stream::iter(entries)
            .map(|(path, size)| async move {
                Ok::<_, Error>((path.clone(), self.fetch_file(location, &path, Some(size), version).await?))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(Package::from_parts(&manifest, files)?)
    }

    /// The digest recorded by the version this crate registered from the same run and
    /// source, for a version registered elsewhere from its artifacts (Python re-registering
    /// them): the package is checked against what was registered, never taken on trust.
    async fn digest_registered_here(&self, record: &ModelVersion) -> Result<Option<String>> {
        let Some(run) = &record.run else { return Ok(None) };
        let filter = SearchVersions {
            model: Some(record.name.clone()),
            run_id: Some(run.run_id.clone()),
            ..SearchVersions::default()
        };
        let siblings = self.search_versions(filter).await?;
        Ok(siblings
            .into_iter()
            .find(|v| v.source == record.source && !v.package_digest.is_empty())
            .map(|v| v.package_digest))
    }

    /// Uploads the package's files, an `MLmodel` describing it (so Python's
    /// `mlflow.models.get_model_info` and the MLflow UI read its signature), then its
    /// manifest, under `location`; a location that already holds this package is left as
    /// is, one holding another is refused.
    pub(super) async fn upload_package(&self, location: &str, package: &Package, run_id: &str) -> Result<()> {
        let manifest = package.manifest_bytes()?;
        let manifest_url = self.artifact_url(location, MANIFEST_FILE)?;
        match self.client.get_bytes(manifest_url.clone(), MAX_UNSIZED_FILE_BYTES).await {
            Ok(existing) if existing == manifest => return Ok(()),
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    what: format!("a different model package at `{location}` (choose another artifact path)"),
                });
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(api_error(format!("checking `{location}`"), e)),
        }
        let mut uploads = package
            .files()
            .map(|(relative, bytes)| Ok((relative.to_owned(), self.artifact_url(location, relative)?, bytes.clone())))
            .collect::<Result<Vec<_>>>()?;
        // An MLflow model directory keeps the `MLmodel` it came with.
        if package.manifest().format != PackageFormat::Mlflow {
            let mut mlmodel = MlflowModel::describing(package)?;
            mlmodel.run_id = Some(run_id.to_owned());
            mlmodel.artifact_path = Some(RUN_ARTIFACT_PATH.to_owned());
            let yaml = Bytes::from(mlmodel.to_yaml()?);
            uploads.push((MLMODEL_FILE.to_owned(), self.artifact_url(location, MLMODEL_FILE)?, yaml));
        }
        futures::stream::iter(uploads)
            .map(|(relative, url, bytes)| async move {
                self.client.put_bytes(url, bytes).await.map_err(|e| api_error(format!("uploading `{relative}`"), e))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect::<()>()
            .await?;
        self.client.put_bytes(manifest_url, manifest).await.map_err(|e| api_error("uploading the manifest", e))
    }
}
