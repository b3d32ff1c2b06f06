//! Copying a version from one registry to another: promotion from a development registry to
//! a production one, or a move between backends.

use mlops_core::{ModelName, ModelUri};

use crate::error::{Error, Result};
use crate::model::CreateModel;
use crate::registry::Registry;
use crate::version::{CreateVersion, ModelVersion, SearchVersions};

/// The version tag a copy carries: the source's `models:/<name>/<version>` URI.
pub const COPIED_FROM_TAG: &str = "copied_from";
/// The version tag naming the source registry, when [`CopyVersion::source_registry`] set one.
pub const COPIED_FROM_REGISTRY_TAG: &str = "copied_from_registry";

/// What [`copy_version`] copies, and where to.
///
/// ```
/// # use mlops_core::{ColSpec, ColumnType, Package, Schema, Signature};
/// use mlops_registry::{CopyVersion, CreateModel, CreateVersion, MemoryRegistry, Registry, copy_version};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// # let package = Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?)).build()?;
/// let (development, production) = (MemoryRegistry::new(), MemoryRegistry::new());
/// let name: mlops_core::ModelName = "transactions".parse()?;
/// development.create_model(CreateModel::new(name.clone())).await?;
/// development.create_version(CreateVersion::new(name.clone(), package).tag("validation_status", "passed_tests")).await?;
///
/// let request = CopyVersion::new(name.clone(), 1).source_registry("dev");
/// let copied = copy_version(&development, &production, request.clone()).await?;
/// assert!(copied.created);
/// assert_eq!(copied.version.tags["copied_from"], "models:/transactions/1");
/// assert_eq!(copied.version.tags["validation_status"], "passed_tests");
///
/// // Copying again finds the first copy instead of registering another.
/// let again = copy_version(&development, &production, request).await?;
/// assert!(!again.created);
/// assert_eq!(again.version.version, copied.version.version);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyVersion {
    /// The model in the source registry.
    pub model: ModelName,
    /// The version to copy.
    pub version: u64,
    /// The model to register the copy under in the target registry (by default the same
    /// name); it is created, with the source model's description and tags, if missing.
    pub target_model: ModelName,
    /// A name for the source registry, recorded in [`COPIED_FROM_REGISTRY_TAG`]: two
    /// registries holding the same model name are told apart by it.
    pub source_registry: Option<String>,
    /// Whether the copy links the source's training run. An MLflow target requires the run
    /// to exist on its server; without the link it records the lineage on a run of its own.
    pub keep_run: bool,
}

impl CopyVersion {
    /// Copies `version` of `model` to a model of the same name.
    pub fn new(model: ModelName, version: u64) -> Self {
        Self { target_model: model.clone(), model, version, source_registry: None, keep_run: true }
    }

    /// Registers the copy under `target` instead.
    #[must_use]
    pub fn target_model(mut self, target: ModelName) -> Self {
        self.target_model = target;
        self
    }

    /// Names the source registry in the copy's tags.
    #[must_use]
    pub fn source_registry(mut self, label: impl Into<String>) -> Self {
        self.source_registry = Some(label.into());
        self
    }

    /// Leaves the training-run link out of the copy (its lineage is still copied).
    #[must_use]
    pub fn without_run(mut self) -> Self {
        self.keep_run = false;
        self
    }

    fn source_uri(&self) -> String {
        ModelUri::Version { name: self.model.clone(), version: self.version }.to_string()
    }
}

/// The result of [`copy_version`].
#[derive(Debug, Clone, PartialEq)]
pub struct CopiedVersion {
    /// The version in the target registry.
    pub version: ModelVersion,
    /// `false` when an earlier copy of the same source version was found and returned.
    pub created: bool,
}

/// Copies a version from `from` to `to`: the package byte for byte, its description, tags,
/// training run and lineage, plus [`COPIED_FROM_TAG`] (and [`COPIED_FROM_REGISTRY_TAG`])
/// recording where it came from. Aliases are not copied: promoting the copy is a decision
/// of its own.
///
/// The package's digest is checked three times: what `from` serves against what `from`
/// recorded, the target's record against the source's, and the package read back from `to`
/// against both. A copy that fails the last check is deleted again, so a corrupt copy is
/// never left registered.
///
/// Re-running is idempotent: a target version of `target_model` carrying the same source
/// tags and package digest is returned with `created: false`. Two copies racing each other
/// may both register; the tags tell the duplicates apart.
///
/// # Errors
/// [`Error::NotFound`] for an unknown source model or version (or, on an MLflow target, a
/// training run that does not exist there: see [`CopyVersion::without_run`]);
/// [`Error::Core`] with [`mlops_core::Error::Checksum`] naming `manifest.json` when a
/// digest differs; whatever either registry's calls return.
pub async fn copy_version(from: &dyn Registry, to: &dyn Registry, request: CopyVersion) -> Result<CopiedVersion> {
    let source = from.get_version(&request.model, request.version).await?;
    let source_uri = request.source_uri();
    let mut copy_tags = vec![(COPIED_FROM_TAG, source_uri.clone())];
    if let Some(label) = &request.source_registry {
        copy_tags.push((COPIED_FROM_REGISTRY_TAG, label.clone()));
    }

    if let Some(existing) = earlier_copy(to, &request, &copy_tags).await?
        && (existing.package_digest == source.package_digest || source.package_digest.is_empty())
    {
        return Ok(CopiedVersion { version: existing, created: false });
    }

    let package = from.download_package(&request.model, request.version).await?;
    let digest = package.digest()?;
    expect_digest(&source.package_digest, &digest, || format!("{source_uri} as the source serves it"))?;

    let model = from.get_model(&request.model).await?;
    let target = model
        .tags
        .into_iter()
        .fold(CreateModel::new(request.target_model.clone()).description(model.description), |create, (k, v)| {
            create.tag(k, v)
        });
    match to.create_model(target).await {
        Ok(_) | Err(Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }

    let mut create = CreateVersion::new(request.target_model.clone(), package)
        .description(source.description.clone())
        .lineage(source.lineage.clone());
    create.tags = source.tags.clone();
    for (key, value) in &copy_tags {
        create.tags.insert((*key).to_owned(), value.clone());
    }
    if request.keep_run {
        create.run = source.run.clone();
    }
    let copied = to.create_version(create).await?;
    let verified = async {
        expect_digest(&digest, &copied.package_digest, || {
            format!("version {} of model `{}` as the target recorded it", copied.version, copied.name)
        })?;
        let read_back = to.download_package(&copied.name, copied.version).await?.digest()?;
        expect_digest(&digest, &read_back, || {
            format!("version {} of model `{}` as the target serves it", copied.version, copied.name)
        })
    }
    .await;
    if let Err(e) = verified {
        // Best effort: the error says what went wrong whether or not the copy could go.
        let _ = to.delete_version(&copied.name, copied.version).await;
        return Err(e);
    }
    Ok(CopiedVersion { version: copied, created: true })
}

/// The newest version of the target model carrying every one of `copy_tags`.
async fn earlier_copy(
    to: &dyn Registry,
    request: &CopyVersion,
    copy_tags: &[(&str, String)],
) -> Result<Option<ModelVersion>> {
    let filter = copy_tags
        .iter()
        .fold(SearchVersions::model(request.target_model.clone()), |filter, (k, v)| filter.tag(*k, v.clone()));
    match to.search_versions(filter).await {
        // Without a registry label, a copy that has one came from another registry.
        Ok(found) => Ok(found
            .into_iter()
            .rfind(|v| request.source_registry.is_some() || !v.tags.contains_key(COPIED_FROM_REGISTRY_TAG))),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn expect_digest(expected: &str, found: &str, what: impl FnOnce() -> String) -> Result<()> {
    if expected.is_empty() || expected == found {
        return Ok(());
    }
    Err(mlops_core::Error::Checksum {
        path: format!("manifest.json ({})", what()),
        expected: expected.to_owned(),
        found: found.to_owned(),
    }
    .into())
}
