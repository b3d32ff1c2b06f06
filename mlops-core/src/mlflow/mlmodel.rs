//! The `MLmodel` file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::{params_from_mlflow, params_to_mlflow, schema_from_mlflow, schema_to_mlflow};
use crate::error::{Error, Result};
use crate::package::{MANIFEST_FILE, Package};
use crate::signature::Signature;

/// Name of the file that describes an MLflow model directory.
pub const MLMODEL_FILE: &str = "MLmodel";

/// The flavor every Python-loadable MLflow model has besides its own.
const PYTHON_FUNCTION: &str = "python_function";
/// The flavor an `MLmodel` written for a package of this crate names.
pub const MLOPS_FLAVOR: &str = "mlops";

/// A model signature as `MLmodel` stores it: each part a JSON string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MlflowSignature {
    /// The input schema, as MLflow's JSON.
    #[serde(default)]
    pub inputs: Option<String>,
    /// The output schema, as MLflow's JSON.
    #[serde(default)]
    pub outputs: Option<String>,
    /// The parameter schema, as MLflow's JSON.
    #[serde(default)]
    pub params: Option<String>,
}

/// Where a model directory keeps its input example (`saved_input_example_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputExampleInfo {
    /// The example file inside the directory, e.g. `input_example.json`.
    pub artifact_path: String,
    /// What the example is: `dataframe`, `ndarray`, `json_object`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// For a `dataframe`: `split` or `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pandas_orient: Option<String>,
    /// The same example as a scoring request body, e.g. `serving_input_example.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_input_path: Option<String>,
}

/// The `MLmodel` file of an MLflow model directory.
///
/// Only the fields this crate uses are kept; reading ignores the others, and writing
/// produces what Python's `mlflow.models.Model.load` reads (no field of our own at the top
/// level, where MLflow refuses unknown keys: extra information goes under `metadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MlflowModel {
    /// Where the model was logged (a run-relative path, or in MLflow 3 the logged model's
    /// artifact URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// Each flavor's configuration, by flavor name.
    #[serde(default)]
    pub flavors: BTreeMap<String, Value>,
    /// The id of the logged model (`m-...`), in MLflow 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// A unique id of this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    /// The run the model was logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// When the model was saved, in UTC (`2026-12-01 21:41:03.661732`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_time_created: Option<String>,
    /// The MLflow version that wrote the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_version: Option<String>,
    /// The signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<MlflowSignature>,
    /// Where the input example is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_input_example_info: Option<InputExampleInfo>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl MlflowModel {
    /// An `MLmodel` describing a package of this crate, for MLflow's tools to read: its
    /// signature and input example in MLflow's form, and an `mlops` flavor naming the
    /// package's own flavor and manifest. The caller adds where it was logged (`run_id`,
    /// `artifact_path`).
    ///
    /// ```
    /// use mlops_core::{ColSpec, ColumnType, MlflowModel, Package, Schema, Signature};
    ///
    /// let signature = Signature::new(Schema::new(vec![ColSpec::new("Amount", ColumnType::Double)])?);
    /// let package = Package::builder("tabular_classifier", signature.clone()).build()?;
    /// let mlmodel = MlflowModel::describing(&package)?;
    /// let read_back = MlflowModel::from_yaml(mlmodel.to_yaml()?.as_bytes())?;
    /// assert_eq!(read_back.signature()?.map(|s| s.inputs.columns()[0].name.clone()), Some("Amount".to_owned()));
    /// assert_eq!(read_back.runnable_flavor(), Some("mlops"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Json`] if the manifest or signature cannot be serialized.
    pub fn describing(package: &Package) -> Result<Self> {
        let manifest = package.manifest();
        let mut model = Self::default();
        model.flavors.insert(
            MLOPS_FLAVOR.to_owned(),
            serde_json::json!({
                "flavor": manifest.flavor,
                "manifest": MANIFEST_FILE,
                "mlops_version": manifest.mlops_version,
            }),
        );
        model.set_signature(&manifest.signature)?;
        model.saved_input_example_info = manifest.input_example.as_ref().map(|path| InputExampleInfo {
            artifact_path: path.clone(),
            kind: "dataframe".to_owned(),
            pandas_orient: Some("split".to_owned()),
            serving_input_path: None,
        });
        model.utc_time_created = Some(manifest.created_at.format("%Y-%m-%d %H:%M:%S%.6f").to_string());
        model.model_uuid = Some(package.digest()?.chars().take(32).collect());
        Ok(model)
    }

    /// Parses an `MLmodel` file.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] with the YAML error (and its position) for a file that is
    /// not an `MLmodel` document.
    pub fn from_yaml(bytes: &[u8]) -> Result<Self> {
        serde_saphyr::from_slice(bytes).map_err(|e| Error::InvalidPackage(format!("`{MLMODEL_FILE}`: {e}")))
    }

    /// The file as YAML.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] if serialization fails.
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self).map_err(|e| Error::InvalidPackage(format!("writing `{MLMODEL_FILE}`: {e}")))
    }

    /// The flavor names, in the file's order (which MLflow sorts).
    pub fn flavor_names(&self) -> impl Iterator<Item = &str> {
        self.flavors.keys().map(String::as_str)
    }

    /// The flavor that says how to run the model: the first one that is not
    /// `python_function`, or `python_function` when the model has no other (a custom
    /// Python model).
    pub fn runnable_flavor(&self) -> Option<&str> {
        self.flavor_names()
            .find(|f| *f != PYTHON_FUNCTION)
            .or_else(|| self.flavor_names().find(|f| *f == PYTHON_FUNCTION))
    }

    /// The configuration of flavor `name`.
    pub fn flavor(&self, name: &str) -> Option<&Value> {
        self.flavors.get(name)
    }

    /// The signature in this crate's terms, when the file has one.
    ///
    /// Column types map one to one; MLflow checks no nulls in floating-point, string,
    /// boolean, binary and datetime columns, so those are nullable here, while integer
    /// columns are not (MLflow refuses the floats a missing value turns them into). Tensor
    /// specs keep their element type and shape. Unnamed outputs are called `prediction`.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] naming the column for a type that cannot be honoured here
    /// (`array`, `object`, `map`, `any`, a tensor element type such as `float16`) and for
    /// malformed JSON.
    pub fn signature(&self) -> Result<Option<Signature>> {
        let Some(stored) = &self.signature else { return Ok(None) };
        let Some(inputs) = stored.inputs.as_deref().filter(|s| !s.trim().is_empty() && s.trim() != "null") else {
            return Ok(None);
        };
        let part = |what: &str, json: Option<&str>| -> Result<Option<Value>> {
            match json.map(str::trim).filter(|s| !s.is_empty() && *s != "null") {
                None => Ok(None),
                Some(text) => serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| Error::InvalidPackage(format!("the signature's {what} in `{MLMODEL_FILE}`: {e}"))),
            }
        };
        let inputs = part("inputs", Some(inputs))?.unwrap_or(Value::Null);
        let mut signature = Signature::new(schema_from_mlflow(&inputs, "input")?);
        if let Some(outputs) = part("outputs", stored.outputs.as_deref())? {
            signature.outputs = schema_from_mlflow(&outputs, "output")?;
        }
        if let Some(params) = part("params", stored.params.as_deref())? {
            signature.params = params_from_mlflow(&params)?;
        }
        Ok(Some(signature))
    }

    /// Stores `signature` in MLflow's form.
    ///
    /// # Errors
    /// [`Error::Json`] if serialization fails.
    pub fn set_signature(&mut self, signature: &Signature) -> Result<()> {
        let json = |value: Value| serde_json::to_string(&value).map_err(|e| Error::json("MLflow signature", e));
        self.signature = Some(MlflowSignature {
            inputs: Some(json(schema_to_mlflow(&signature.inputs))?),
            outputs: if signature.outputs.is_empty() {
                None
            } else {
                Some(json(schema_to_mlflow(&signature.outputs))?)
            },
            params: if signature.params.is_empty() { None } else { Some(json(params_to_mlflow(&signature.params))?) },
        });
        Ok(())
    }
}
