//! Model packages: a directory (or a set of blobs) holding a manifest and flavor files, each
//! file recorded with its sha256 so a corrupted or tampered package refuses to load.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::features::FeatureSpec;
use crate::json_frame::{frame_to_split_json, split_json_to_frame};
use crate::mlflow::{MLMODEL_FILE, MlflowModel, parse_python_json, read_input_example};
use crate::signature::Signature;

/// Name of the manifest file at the root of a package.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Name of the input example file, when a package has one.
pub const INPUT_EXAMPLE_FILE: &str = "input_example.json";
/// Version of the manifest format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// At most this many rows of an input example are stored.
pub const INPUT_EXAMPLE_ROWS: usize = 5;

/// One file of a package, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFile {
    /// Relative path inside the package, `/`-separated.
    pub path: String,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// How a package's files are laid out.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageFormat {
    /// Built by this crate: the flavor's own files and a `dataframe_split` input example.
    #[default]
    Native,
    /// An MLflow model directory: an `MLmodel` file, the flavor's files as MLflow wrote
    /// them, and MLflow's input example.
    Mlflow,
}

impl PackageFormat {
    fn is_native(&self) -> bool {
        *self == Self::Native
    }
}

/// What a package is: its flavor, signature, metadata and files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format_version: u32,
    /// How the files are laid out.
    #[serde(default, skip_serializing_if = "PackageFormat::is_native")]
    pub format: PackageFormat,
    /// The flavor that loads the package.
    pub flavor: String,
    /// The model's signature.
    pub signature: Signature,
    /// Path of the input example file, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_example: Option<String>,
    /// Free-form metadata (training parameters, feature names, ...).
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Features looked up and computed for the model before it predicts.
    #[serde(default, skip_serializing_if = "FeatureSpec::is_empty")]
    pub features: FeatureSpec,
    /// Every file of the package other than the manifest.
    pub files: Vec<PackageFile>,
    /// When the package was built.
    pub created_at: DateTime<Utc>,
    /// Version of mlops-core that built it.
    pub mlops_version: String,
}

impl Manifest {
    /// The sha256 of the manifest as it is stored: the digest of the package it describes
    /// ([`Package::digest`]), known before any of the package's files is read.
    ///
    /// # Errors
    /// [`Error::Json`] if the manifest cannot be serialized.
    pub fn digest(&self) -> Result<String> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::json("manifest", e))?;
        Ok(sha256_hex(&bytes))
    }
}

/// A model package held in memory: a manifest and its verified files.
///
/// ```
/// use mlops_core::{ColSpec, ColumnType, Package, Schema, Signature};
///
/// let signature = Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?);
/// let package = Package::builder("my_flavor", signature).file("weights.json", b"[1.0, 2.0]".to_vec())?.build()?;
///
/// let dir = tempfile::tempdir()?;
/// package.save(dir.path())?;
/// let loaded = Package::read_dir(dir.path())?;
/// assert_eq!(loaded.file("weights.json")?.as_ref(), b"[1.0, 2.0]");
///
/// // A modified file is refused, naming the file.
/// std::fs::write(dir.path().join("weights.json"), b"[9.0]")?;
/// let err = Package::read_dir(dir.path()).unwrap_err();
/// assert!(err.to_string().contains("`weights.json`"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Package {
    manifest: Manifest,
    files: BTreeMap<String, Bytes>,
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn check_relative_path(path: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("package file path `{path}`: {why}")));
    if path.is_empty() || path.starts_with('/') || path.contains('\\') {
        return bad("must be a non-empty relative path with `/` separators");
    }
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return bad("must not contain empty, `.` or `..` parts");
    }
    if path == MANIFEST_FILE {
        return bad("is reserved for the manifest");
    }
    Ok(())
}

impl Package {
    /// Starts a package of `flavor` with `signature`.
    pub fn builder(flavor: impl Into<String>, signature: Signature) -> PackageBuilder {
        PackageBuilder {
            flavor: flavor.into(),
            signature,
            metadata: BTreeMap::new(),
            files: BTreeMap::new(),
            input_example: None,
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The bytes of the file at `path`.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] when the package has no such file.
    pub fn file(&self, path: &str) -> Result<&Bytes> {
        self.files.get(path).ok_or_else(|| Error::InvalidPackage(format!("package has no file `{path}`")))
    }

    /// Parses the JSON file at `path` as `T`.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] for a missing file, [`Error::Json`] for malformed content.
    pub fn json_file<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_slice(self.file(path)?).map_err(|e| Error::json(format!("package file `{path}`"), e))
    }

    /// Every file other than the manifest, by path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Bytes)> {
        self.files.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The manifest serialized as it is stored.
    ///
    /// # Errors
    /// [`Error::Json`] if serialization fails.
    pub fn manifest_bytes(&self) -> Result<Bytes> {
        serde_json::to_vec_pretty(&self.manifest).map(Bytes::from).map_err(|e| Error::json("manifest", e))
    }

    /// A content address for the package: the sha256 of its manifest, which itself records
    /// the sha256 of every file.
    ///
    /// # Errors
    /// [`Error::Json`] if the manifest cannot be serialized.
    pub fn digest(&self) -> Result<String> {
        self.manifest.digest()
    }

    /// This package with `features` recorded in its manifest: scoring code looks them up
    /// and computes them before the model predicts. The digest changes with them.
    #[must_use]
    pub fn with_features(mut self, features: FeatureSpec) -> Self {
        self.manifest.features = features;
        self
    }

    /// The stored input example, typed by the signature.
    ///
    /// # Errors
    /// [`Error::Json`] or [`Error::Schema`] when the stored example is malformed.
    pub fn input_example(&self) -> Result<Option<DataFrame>> {
        let Some(path) = &self.manifest.input_example else { return Ok(None) };
        let inputs = &self.manifest.signature.inputs;
        match self.manifest.format {
            PackageFormat::Native => split_json_to_frame(&self.json_file(path)?, inputs).map(Some),
            PackageFormat::Mlflow => match self.mlflow_model()?.and_then(|m| m.saved_input_example_info) {
                Some(info) => {
                    let document = parse_python_json(self.file(path)?, &format!("package file `{path}`"))?;
                    read_input_example(&info, &document, inputs)
                }
                None => Ok(None),
            },
        }
    }

    /// The package's `MLmodel` file, parsed, when it has one (an MLflow model directory).
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] when the file is not an `MLmodel` document.
    pub fn mlflow_model(&self) -> Result<Option<MlflowModel>> {
        self.files.get(MLMODEL_FILE).map(|bytes| MlflowModel::from_yaml(bytes)).transpose()
    }

    /// A package from the files of an MLflow model directory (paths relative to it, `/`
    /// separated), as `mlflow.<flavor>.log_model` writes it: the flavor is the model's own
    /// ([`MlflowModel::runnable_flavor`]), the signature is `MLmodel`'s (none: an empty
    /// one), the input example MLflow's. Every file is kept, each recorded with its sha256,
    /// so a package built from the same files always has the same digest.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] when `MLmodel` is missing or unreadable, names no flavor,
    /// or holds a signature that cannot be honoured (naming the column);
    /// [`Error::InvalidArgument`] for a path that is absolute or escapes the directory.
    pub fn from_mlflow_files(files: BTreeMap<String, Bytes>) -> Result<Self> {
        let bytes = files.get(MLMODEL_FILE).ok_or_else(|| {
            Error::InvalidPackage(format!("an MLflow model directory needs an `{MLMODEL_FILE}` file"))
        })?;
        let model = MlflowModel::from_yaml(bytes)?;
        let flavor = model
            .runnable_flavor()
            .ok_or_else(|| Error::InvalidPackage(format!("`{MLMODEL_FILE}` names no flavor")))?
            .to_owned();
        let signature = model.signature()?.unwrap_or_default();
        let input_example = model
            .saved_input_example_info
            .as_ref()
            .map(|info| info.artifact_path.clone())
            .filter(|path| files.contains_key(path));
        let mut entries = Vec::with_capacity(files.len());
        for (path, bytes) in &files {
            if path == MANIFEST_FILE {
                return Err(Error::InvalidPackage(format!(
                    "an MLflow model directory with a `{MANIFEST_FILE}` is a package of this crate: read it with Package::read_dir"
                )));
            }
            check_relative_path(path)?;
            entries.push(PackageFile { path: path.clone(), sha256: sha256_hex(bytes), size: bytes.len() as u64 });
        }
        let mut metadata = BTreeMap::new();
        let provenance = [
            ("mlflow_version", &model.mlflow_version),
            ("model_id", &model.model_id),
            ("model_uuid", &model.model_uuid),
            ("run_id", &model.run_id),
            ("artifact_path", &model.artifact_path),
        ];
        let provenance: serde_json::Map<String, serde_json::Value> =
            provenance.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v.into()))).collect();
        metadata.insert("mlflow".to_owned(), serde_json::Value::Object(provenance));
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            format: PackageFormat::Mlflow,
            flavor,
            signature,
            input_example,
            metadata,
            features: FeatureSpec::default(),
            files: entries,
            // From the model, not the clock: the same files give the same digest.
            created_at: model.utc_time_created.as_deref().and_then(parse_mlflow_time).unwrap_or_default(),
            mlops_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        Ok(Self { manifest, files })
    }

    /// Builds a package from a stored manifest and the files it lists, verifying every
    /// checksum. Files the manifest does not list are ignored.
    ///
    /// # Errors
    /// [`Error::Json`] for an unreadable manifest, [`Error::InvalidPackage`] for a missing
    /// file or an unsupported format version, [`Error::Checksum`] naming a corrupted file.
    pub fn from_parts(manifest: &[u8], mut files: BTreeMap<String, Bytes>) -> Result<Self> {
        let manifest: Manifest = serde_json::from_slice(manifest).map_err(|e| Error::json("package manifest", e))?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(Error::InvalidPackage(format!(
                "manifest format version {} is not supported (this build reads version {FORMAT_VERSION})",
                manifest.format_version
            )));
        }
        let mut verified = BTreeMap::new();
        for entry in &manifest.files {
            check_relative_path(&entry.path)?;
            let bytes = files.remove(&entry.path).ok_or_else(|| {
                Error::InvalidPackage(format!("file `{}` listed in the manifest is missing", entry.path))
            })?;
            check_size(&entry.path, bytes.len() as u64, entry.size)?;
            let found = sha256_hex(&bytes);
            if found != entry.sha256 {
                return Err(Error::Checksum { path: entry.path.clone(), expected: entry.sha256.clone(), found });
            }
            verified.insert(entry.path.clone(), bytes);
        }
        Ok(Self { manifest, files: verified })
    }

    /// Reads and verifies a package directory, or reads an MLflow model directory (one with
    /// an `MLmodel` file and no manifest; see [`Package::from_mlflow_files`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming an unreadable file, [`Error::InvalidPackage`] for a directory
    /// that is neither or holds a symbolic link, and the errors of [`Package::from_parts`]
    /// and [`Package::from_mlflow_files`].
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.exists() && dir.join(MLMODEL_FILE).is_file() {
            return Self::from_mlflow_files(read_tree(dir)?);
        }
        regular_file_size(dir, MANIFEST_FILE)?;
        let manifest =
            fs::read(&manifest_path).map_err(|e| Error::io("reading package manifest", &manifest_path, e))?;
        let listed: Manifest =
            serde_json::from_slice(&manifest).map_err(|e| Error::json(format!("{}", manifest_path.display()), e))?;
        let mut files = BTreeMap::new();
        for entry in &listed.files {
            check_relative_path(&entry.path)?;
            let path = dir.join(&entry.path);
            let found = regular_file_size(dir, &entry.path)?;
            check_size(&entry.path, found, entry.size)?;
            let bytes = fs::read(&path).map_err(|e| Error::io("reading package file", &path, e))?;
            files.insert(entry.path.clone(), Bytes::from(bytes));
        }
        Self::from_parts(&manifest, files)
    }

    /// Writes the package into `dir` (created if absent, or taken over if empty): every file
    /// into a staging directory of its own beside `dir`, flushed to disk, and the whole
    /// directory renamed into place, so a crash never leaves a directory that looks like a
    /// package and concurrent savers never mix their files.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `dir` already holds a package (or anything else),
    /// [`Error::Io`] naming the path that could not be written.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let already = || Error::InvalidArgument(format!("`{}` already holds a model package", dir.display()));
        if dir.join(MANIFEST_FILE).exists() {
            return Err(already());
        }
        let published = crate::atomic_write::publish_dir(dir, |staging| {
            for (relative, bytes) in &self.files {
                crate::atomic_write::write_new(&staging.join(relative), bytes)?;
            }
            crate::atomic_write::write_new(&staging.join(MANIFEST_FILE), &self.manifest_bytes()?)
        })?;
        if published {
            Ok(())
        } else if dir.join(MANIFEST_FILE).exists() {
            Err(already())
        } else {
            Err(Error::InvalidArgument(format!("`{}` exists and is not empty", dir.display())))
        }
    }
}

/// A file's size against the size its manifest records, checked before it is hashed.
fn check_size(path: &str, found: u64, recorded: u64) -> Result<()> {
    if found == recorded {
        return Ok(());
    }
    Err(Error::InvalidPackage(format!("file `{path}` is {found} bytes; the manifest records {recorded}")))
}

/// The size of `relative` under `root`, which must be a regular file reached without a
/// symbolic link: a package never reads outside its directory.
fn regular_file_size(root: &Path, relative: &str) -> Result<u64> {
    let mut path = root.to_path_buf();
    let mut parts = relative.split('/').peekable();
    while let Some(part) = parts.next() {
        path.push(part);
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io("reading package file", &path, e))?;
        if meta.file_type().is_symlink() {
            return Err(Error::InvalidPackage(format!(
                "`{}` is a symbolic link; a package holds only files and directories",
                path.display()
            )));
        }
        if parts.peek().is_none() {
            return if meta.is_file() {
                Ok(meta.len())
            } else {
                Err(Error::InvalidPackage(format!("`{}` is not a regular file", path.display())))
            };
        }
    }
    Err(Error::InvalidPackage(format!("`{relative}` is not a file path")))
}

/// `2026-12-01 21:41:03.661732` (MLflow's `utc_time_created`) as a UTC time.
fn parse_mlflow_time(text: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok().map(|t| t.and_utc())
}

/// Every regular file under `root`, by `/`-separated relative path. Symbolic links are
/// refused: a model directory must not reach outside itself.
fn read_tree(root: &Path) -> Result<BTreeMap<String, Bytes>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("listing model directory", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("listing model directory", &dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::io("reading file type", &path, e))?;
            if kind.is_symlink() {
                return Err(Error::InvalidPackage(format!(
                    "`{}` is a symbolic link; a model directory holds only files and directories",
                    path.display()
                )));
            }
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::InvalidPackage(format!("`{}` is not a UTF-8 path", path.display())))?
                .join("/");
            let bytes = fs::read(&path).map_err(|e| Error::io("reading model file", &path, e))?;
            files.insert(name, Bytes::from(bytes));
        }
    }
    Ok(files)
}

/// Collects the files and metadata of a new [`Package`].
#[derive(Debug)]
pub struct PackageBuilder {
    flavor: String,
    signature: Signature,
    metadata: BTreeMap<String, serde_json::Value>,
    files: BTreeMap<String, Bytes>,
    input_example: Option<serde_json::Value>,
}

impl PackageBuilder {
    /// Adds a file.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a path that is absolute, escapes the package, or is
    /// the manifest's.
    pub fn file(mut self, path: impl Into<String>, bytes: impl Into<Bytes>) -> Result<Self> {
        let path = path.into();
        check_relative_path(&path)?;
        self.files.insert(path, bytes.into());
        Ok(self)
    }

    /// Adds `value` serialized as pretty JSON.
    ///
    /// # Errors
    /// As [`file`](Self::file), and [`Error::Json`] if serialization fails.
    pub fn json_file<T: Serialize>(self, path: impl Into<String>, value: &T) -> Result<Self> {
        let path = path.into();
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::json(format!("package file `{path}`"), e))?;
        self.file(path, bytes)
    }

    /// Sets a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Stores the first rows of `frame` (its signature columns) as the input example.
    ///
    /// # Errors
    /// Schema errors when `frame` does not satisfy the signature.
    pub fn input_example(mut self, frame: &DataFrame) -> Result<Self> {
        let example = self.signature.enforce(&frame.head(Some(INPUT_EXAMPLE_ROWS)))?;
        self.input_example = Some(frame_to_split_json(&example)?);
        Ok(self)
    }

    /// Computes checksums and produces the package.
    ///
    /// # Errors
    /// [`Error::Json`] if the input example cannot be serialized.
    pub fn build(mut self) -> Result<Package> {
        let input_example = match self.input_example.take() {
            Some(example) => {
                self = self.json_file(INPUT_EXAMPLE_FILE, &example)?;
                Some(INPUT_EXAMPLE_FILE.to_owned())
            }
            None => None,
        };
        let files = self
            .files
            .iter()
            .map(|(path, bytes)| PackageFile {
                path: path.clone(),
                sha256: sha256_hex(bytes),
                size: bytes.len() as u64,
            })
            .collect();
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            format: PackageFormat::Native,
            flavor: self.flavor,
            signature: self.signature,
            input_example,
            metadata: self.metadata,
            features: FeatureSpec::default(),
            files,
            created_at: Utc::now(),
            mlops_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        Ok(Package { manifest, files: self.files })
    }
}
