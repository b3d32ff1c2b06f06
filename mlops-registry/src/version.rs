//! Model versions: what was registered, from where, trained on what.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mlops_core::{ModelName, Package};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metadata::{Change, check_description, check_tag};

/// The training run a version came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLink {
    /// Run id.
    pub run_id: String,
    /// Artifact path of the model inside the run (`runs:/<run_id>/<artifact_path>`).
    pub artifact_path: String,
}

/// A dataset a version was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// Dataset name.
    pub name: String,
    /// Content digest of the dataset.
    pub digest: String,
}

/// Where a version came from: training data, parameters, metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// Training dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_data: Option<DatasetRef>,
    /// Training parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Training metrics, finite numbers (refused otherwise when a version is created). A
    /// `null` stored by an earlier release reads as NaN, so the version stays readable.
    #[serde(default, deserialize_with = "metrics_allowing_nulls")]
    pub metrics: BTreeMap<String, f64>,
}

fn metrics_allowing_nulls<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<BTreeMap<String, f64>, D::Error> {
    let stored: BTreeMap<String, Option<f64>> = Deserialize::deserialize(deserializer)?;
    Ok(stored.into_iter().map(|(name, value)| (name, value.unwrap_or(f64::NAN))).collect())
}

/// A registered version of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model.
    pub name: ModelName,
    /// Version number: 1, 2, ... never reused.
    pub version: u64,
    /// Free text.
    pub description: String,
    /// Key/value tags (e.g. `validation_status`).
    pub tags: BTreeMap<String, String>,
    /// Where the registry keeps the version's package.
    pub source: String,
    /// Flavor of the package.
    pub flavor: String,
    /// Content digest of the package (sha256 of its manifest).
    pub package_digest: String,
    /// The training run, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunLink>,
    /// Training data, parameters and metrics.
    #[serde(default)]
    pub lineage: Lineage,
    /// The aliases pointing at this version when it was read. Filled by every read, list
    /// and search; not stored with the version (aliases live on the registered model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// When the version was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl ModelVersion {
    pub(crate) fn apply(&mut self, change: &Change) -> Result<()> {
        change.apply(&mut self.description, &mut self.tags)?;
        self.updated_at = Utc::now();
        Ok(())
    }
}

/// Options of [`Registry::create_version`](crate::Registry::create_version).
///
/// ```
/// # use mlops_core::{ColSpec, ColumnType, ModelName, Package, Schema, Signature};
/// use mlops_registry::{CreateVersion, Lineage};
/// # let package = Package::builder("f", Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?)).build()?;
/// let request = CreateVersion::new("transactions".parse()?, package)
///     .description("logistic regression, C = 1.0")
///     .tag("validation_status", "needs_tested")
///     .run("8c1f", "model");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CreateVersion {
    /// The model to add a version to (it must exist).
    pub model: ModelName,
    /// The package to store.
    pub package: Package,
    /// Free text.
    pub description: String,
    /// Initial tags.
    pub tags: BTreeMap<String, String>,
    /// The training run.
    pub run: Option<RunLink>,
    /// Training data, parameters, metrics.
    pub lineage: Lineage,
}

impl CreateVersion {
    /// A new version of `model` holding `package`.
    pub fn new(model: ModelName, package: Package) -> Self {
        Self {
            model,
            package,
            description: String::new(),
            tags: BTreeMap::new(),
            run: None,
            lineage: Lineage::default(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Links the training run.
    pub fn run(mut self, run_id: impl Into<String>, artifact_path: impl Into<String>) -> Self {
        self.run = Some(RunLink { run_id: run_id.into(), artifact_path: artifact_path.into() });
        self
    }

    /// Sets lineage: training data, parameters, metrics.
    pub fn lineage(mut self, lineage: Lineage) -> Self {
        self.lineage = lineage;
        self
    }

    /// Checks the request and builds the version document for number `version`.
    /// Checks what the request carries (description, tags, lineage metrics) before anything
    /// is written.
    pub(crate) fn check(&self) -> Result<()> {
        check_description(&self.description)?;
        for (key, value) in &self.tags {
            check_tag(key, value)?;
        }
        if let Some((metric, value)) = self.lineage.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "lineage metric `{metric}` is {value}; metrics must be finite numbers"
            )));
        }
        Ok(())
    }

    pub(crate) fn to_version(&self, version: u64, source: String, package_digest: String) -> Result<ModelVersion> {
        self.check()?;
        let now = Utc::now();
        Ok(ModelVersion {
            name: self.model.clone(),
            version,
            description: self.description.clone(),
            tags: self.tags.clone(),
            source,
            flavor: self.package.manifest().flavor.clone(),
            package_digest,
            run: self.run.clone(),
            lineage: self.lineage.clone(),
            aliases: Vec::new(),
            created_at: now,
            updated_at: now,
        })
    }
}

/// Filter of [`Registry::search_versions`](crate::Registry::search_versions); every set field
/// must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchVersions {
    /// Only versions of this model.
    pub model: Option<ModelName>,
    /// Only versions carrying all these tags with these values.
    pub tags: BTreeMap<String, String>,
    /// Only versions from this run.
    pub run_id: Option<String>,
}

impl SearchVersions {
    /// Versions of `model`.
    pub fn model(model: ModelName) -> Self {
        Self { model: Some(model), ..Self::default() }
    }

    /// Also require tag `key` = `value`.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Also require the run id.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// Whether `version` passes the filter.
    pub fn matches(&self, version: &ModelVersion) -> bool {
        self.model.as_ref().is_none_or(|m| *m == version.name)
            && self.run_id.as_ref().is_none_or(|r| version.run.as_ref().is_some_and(|run| &run.run_id == r))
            && self.tags.iter().all(|(k, v)| version.tags.get(k) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::Lineage;

    #[test]
    fn a_null_metric_stored_by_an_earlier_release_reads_as_nan() {
        let lineage: Lineage = serde_json::from_str(r#"{"metrics": {"auc": 0.9, "loss": null}}"#).unwrap();
        assert_eq!(lineage.metrics["auc"], 0.9);
        assert!(lineage.metrics["loss"].is_nan());
    }
}
