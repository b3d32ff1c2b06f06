//! The JSON shapes of MLflow's REST API, and their conversion to the registry's types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use mlops_core::ModelName;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::model::RegisteredModel;
use crate::version::{DatasetRef, Lineage, ModelVersion, RunLink};

/// Version tag holding the package's flavor.
pub(crate) const FLAVOR_TAG: &str = "mlops.flavor";
/// Version tag holding the package's digest.
pub(crate) const DIGEST_TAG: &str = "mlops.package_digest";
/// Tags under this prefix belong to the registry, not to users.
pub(crate) const RESERVED_TAG_PREFIX: &str = "mlops.";
/// Input tag MLflow uses to say what a dataset was for.
pub(crate) const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

pub(crate) fn tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter().map(|(key, value)| Tag { key: key.clone(), value: value.clone() }).collect()
}

#[derive(Debug, Deserialize)]
pub(crate) struct Alias {
    pub alias: String,
    #[serde(deserialize_with = "int64")]
    pub version: u64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Model {
    pub name: String,
    #[serde(default, deserialize_with = "int64")]
    pub creation_timestamp: u64,
    #[serde(default, deserialize_with = "int64")]
    pub last_updated_timestamp: u64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub aliases: Vec<Alias>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Version {
    pub name: String,
    #[serde(deserialize_with = "int64")]
    pub version: u64,
    #[serde(default, deserialize_with = "int64")]
    pub creation_timestamp: u64,
    #[serde(default, deserialize_with = "int64")]
    pub last_updated_timestamp: u64,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Present on single reads; search results leave it out.
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelResponse {
    pub registered_model: Model,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ModelPage {
    #[serde(default)]
    pub registered_models: Vec<Model>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VersionResponse {
    pub model_version: Version,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VersionPage {
    #[serde(default)]
    pub model_versions: Vec<Version>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// One page of a search.
pub(crate) trait Page: serde::de::DeserializeOwned {
    type Item;
    /// The page's items and the token of the next page.
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for ModelPage {
    type Item = Model;
    fn into_parts(self) -> (Vec<Model>, Option<String>) {
        (self.registered_models, self.next_page_token)
    }
}

impl Page for VersionPage {
    type Item = Version;
    fn into_parts(self) -> (Vec<Version>, Option<String>) {
        (self.model_versions, self.next_page_token)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Experiment {
    pub experiment_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExperimentResponse {
    pub experiment: Experiment,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CreatedExperiment {
    pub experiment_id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunInfo {
    pub run_id: String,
    #[serde(default)]
    pub artifact_uri: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Param {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Metric {
    pub key: String,
    #[serde(deserialize_with = "proto_double")]
    pub value: f64,
}

/// A double as protobuf's JSON mapping writes it: a number, or `"NaN"`, `"Infinity"` and
/// `"-Infinity"` as strings (what MLflow answers for a run that logged them).
fn proto_double<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Double {
        Number(f64),
        Text(String),
    }
    match Double::deserialize(deserializer)? {
        Double::Number(value) => Ok(value),
        Double::Text(text) => text
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{}` is not a metric value", text.escape_debug()))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunData {
    #[serde(default)]
    pub params: Vec<Param>,
    #[serde(default)]
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Dataset {
    pub name: String,
    #[serde(default)]
    pub digest: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct DatasetInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub dataset: Dataset,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunInputs {
    #[serde(default)]
    pub dataset_inputs: Vec<DatasetInput>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
    #[serde(default)]
    pub inputs: RunInputs,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunResponse {
    pub run: Run,
}

/// An answer whose content is not needed.
#[derive(Debug, Deserialize)]
pub(crate) struct Empty {}

impl Run {
    /// The run's parameters, latest metric values and training dataset.
    pub(crate) fn lineage(&self) -> Lineage {
        let is_training =
            |input: &&DatasetInput| input.tags.iter().any(|t| t.key == DATASET_CONTEXT_TAG && t.value == "training");
        let training =
            self.inputs.dataset_inputs.iter().find(is_training).or_else(|| self.inputs.dataset_inputs.first());
        Lineage {
            training_data: training
                .map(|input| DatasetRef { name: input.dataset.name.clone(), digest: input.dataset.digest.clone() }),
            params: self.data.params.iter().map(|p| (p.key.clone(), p.value.clone())).collect(),
            metrics: self.data.metrics.iter().map(|m| (m.key.clone(), m.value)).collect(),
        }
    }
}

impl Model {
    pub(crate) fn into_model(self) -> Result<RegisteredModel> {
        Ok(RegisteredModel {
            name: model_name(&self.name)?,
            description: self.description,
            tags: self.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            aliases: self.aliases.into_iter().map(|a| (a.alias, a.version)).collect(),
            created_at: timestamp(self.creation_timestamp),
            updated_at: timestamp(self.last_updated_timestamp),
        })
    }
}

impl Version {
    /// The version, without lineage (that lives on the run) and with the aliases the server
    /// sent.
    pub(crate) fn into_version(self) -> Result<ModelVersion> {
        let mut tags: BTreeMap<String, String> = self.tags.into_iter().map(|t| (t.key, t.value)).collect();
        let flavor = tags.remove(FLAVOR_TAG).unwrap_or_default();
        let package_digest = tags.remove(DIGEST_TAG).unwrap_or_default();
        tags.retain(|key, _| !key.starts_with(RESERVED_TAG_PREFIX));
        let run = (!self.run_id.is_empty())
            .then(|| RunLink { artifact_path: artifact_path(&self.source, &self.run_id), run_id: self.run_id });
        let mut aliases = self.aliases;
        aliases.sort();
        Ok(ModelVersion {
            name: model_name(&self.name)?,
            version: self.version,
            description: self.description,
            tags,
            source: self.source,
            flavor,
            package_digest,
            run,
            lineage: Lineage::default(),
            aliases,
            created_at: timestamp(self.creation_timestamp),
            updated_at: timestamp(self.last_updated_timestamp),
        })
    }
}

/// The model's path inside its run: what follows `<run_id>/artifacts/` in an artifact
/// location, or `<run_id>/` in a `runs:/` URI; empty when the source says neither.
fn artifact_path(source: &str, run_id: &str) -> String {
    let in_artifacts = format!("/{run_id}/artifacts/");
    if let Some(at) = source.find(&in_artifacts) {
        return source[at + in_artifacts.len()..].trim_matches('/').to_owned();
    }
    source
        .strip_prefix("runs:/")
        .and_then(|rest| rest.strip_prefix(run_id))
        .map(|rest| rest.trim_matches('/').to_owned())
        .unwrap_or_default()
}

fn model_name(name: &str) -> Result<ModelName> {
    ModelName::new(name).map_err(|e| Error::InvalidArgument(format!("MLflow model name `{name}`: {e}")))
}

fn timestamp(millis: u64) -> DateTime<Utc> {
    i64::try_from(millis).ok().and_then(DateTime::from_timestamp_millis).unwrap_or_default()
}

/// Protobuf's JSON mapping writes 64-bit integers as strings; MLflow writes numbers. Both
/// are accepted.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::String(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// An optional 64-bit integer, as a number or a string.
pub(crate) fn int64_opt<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(u64),
        String(String),
    }
    match Option::<NumberOrString>::deserialize(deserializer)? {
        None => Ok(None),
        Some(NumberOrString::Number(n)) => Ok(Some(n)),
        Some(NumberOrString::String(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artifact_path_comes_from_the_source() {
        let run = "0a1b";
        assert_eq!(artifact_path("mlflow-artifacts:/0/0a1b/artifacts/model", run), "model");
        assert_eq!(artifact_path("s3://bucket/1/0a1b/artifacts/nested/clf/", run), "nested/clf");
        assert_eq!(artifact_path("runs:/0a1b/model", run), "model");
        assert_eq!(artifact_path("models:/m-123", run), "");
    }

    #[test]
    fn versions_accept_numbers_and_strings_and_hide_reserved_tags() {
        let json = r#"{"name": "tx", "version": "3", "creation_timestamp": 1700000000000, "run_id": "0a1b",
            "source": "mlflow-artifacts:/0/0a1b/artifacts/model",
            "tags": [{"key": "mlops.flavor", "value": "tabular_classifier"}, {"key": "team", "value": "risk"},
                     {"key": "mlops.package_digest", "value": "abc"}, {"key": "mlops.future", "value": "x"}],
            "aliases": ["z", "champion"]}"#;
        let version = serde_json::from_str::<Version>(json).unwrap().into_version().unwrap();
        assert_eq!(version.version, 3);
        assert_eq!((version.flavor.as_str(), version.package_digest.as_str()), ("tabular_classifier", "abc"));
        assert_eq!(version.tags.into_iter().collect::<Vec<_>>(), [("team".to_owned(), "risk".to_owned())]);
        assert_eq!(version.aliases, ["champion", "z"]);
        assert_eq!(version.run.unwrap().artifact_path, "model");
        assert_eq!(version.created_at.timestamp(), 1_700_000_000);
    }

    #[test]
    fn metrics_read_as_mlflow_writes_non_finite_values() {
        let value = |json: &str| serde_json::from_str::<Metric>(json).map(|m| m.value);
        assert_eq!(value(r#"{"key": "loss", "value": 0.25}"#).unwrap(), 0.25);
        assert_eq!(value(r#"{"key": "loss", "value": "Infinity"}"#).unwrap(), f64::INFINITY);
        assert_eq!(value(r#"{"key": "loss", "value": "-Infinity"}"#).unwrap(), f64::NEG_INFINITY);
        assert!(value(r#"{"key": "loss", "value": "NaN"}"#).unwrap().is_nan());
        let error = value(r#"{"key": "loss", "value": "lots"}"#).unwrap_err().to_string();
        assert!(error.contains("`lots` is not a metric value"), "{error}");
    }
}
