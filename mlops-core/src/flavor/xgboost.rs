//! The `xgboost` flavor: XGBoost's own model files (JSON and UBJSON, as
//! `mlflow.xgboost.log_model` and `Booster.save_model` write them), scored by this crate's
//! tree evaluator with XGBoost's arithmetic (float32 features, thresholds and sums).

mod model_file;
mod ubjson;

use std::sync::Arc;

use polars::prelude::{DataFrame, IntoColumn, NamedFrom, Series};

use self::model_file::{Booster, Objective};
use super::Flavor;
use super::boosted::{FeatureSource, feature_rows, match_features, scores_frame, signature_of_features, softmax};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::package::Package;
use crate::signature::Signature;

/// Name of the XGBoost flavor, as MLflow names it.
pub const XGBOOST: &str = "xgboost";

/// The model file a package of this crate holds.
const DEFAULT_FILE: &str = "model.ubj";

/// The output column.
const PREDICTION: &str = "prediction";

/// What `predict` returns, after the Python class the model was saved from (MLflow's
/// `model_class`), as pyfunc returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XgboostOutput {
    /// `xgboost.Booster.predict`: the objective's output over all trees (probabilities
    /// for `binary:logistic`, per-class probabilities for `multi:softprob`, values for
    /// regression).
    #[default]
    Booster,
    /// `XGBClassifier.predict`: class labels, with the trees up to `best_iteration` when
    /// the model was trained with early stopping.
    ClassifierLabels,
    /// `XGBRegressor.predict`: values, with the trees up to `best_iteration`.
    RegressorValues,
}

impl XgboostOutput {
    fn from_model_class(class: &str) -> Result<Self> {
        Ok(match class {
            "xgboost.core.Booster" => Self::Booster,
            "xgboost.sklearn.XGBClassifier" | "xgboost.sklearn.XGBRFClassifier" => Self::ClassifierLabels,
            "xgboost.sklearn.XGBRegressor" | "xgboost.sklearn.XGBRFRegressor" | "xgboost.sklearn.XGBRanker" => {
                Self::RegressorValues
            }
            other => {
                return Err(Error::InvalidPackage(format!(
                    "XGBoost model of class `{other}`: only Booster, XGBClassifier, XGBRegressor and XGBRanker models are supported here"
                )));
            }
        })
    }
}

/// Loads XGBoost packages: MLflow model directories with an `xgboost` flavor (the file
/// its `data` names, the class its `model_class` names), or packages of this crate with a
/// `model.ubj` or `model.json` file.
#[derive(Debug, Clone, Copy, Default)]
pub struct XgboostFlavor;

impl Flavor for XgboostFlavor {
    fn name(&self) -> &str {
        XGBOOST
    }

    fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        let (file, output) = match package.mlflow_model()? {
            Some(model) => {
                let config = model.flavor(XGBOOST);
                let text = |key: &str| config.and_then(|c| c.get(key)).and_then(serde_json::Value::as_str);
                let output = text("model_class").map(XgboostOutput::from_model_class).transpose()?.unwrap_or_default();
                (text("data").unwrap_or("model.xgb").to_owned(), output)
            }
            None if package.file("model.json").is_ok() => ("model.json".to_owned(), XgboostOutput::Booster),
            None => (DEFAULT_FILE.to_owned(), XgboostOutput::Booster),
        };
        let bytes = package.file(&file)?;
        let signature = &package.manifest().signature;
        let signature = (!signature.inputs.is_empty()).then(|| signature.clone());
        Ok(Arc::new(XgboostModel::from_file(bytes, &file, signature, output)?))
    }
}

/// An XGBoost model as a [`Model`].
///
/// Features are read by the names the model file records (or, for a file without
/// names, from the signature's columns in order), converted to float32 as XGBoost's
/// `DMatrix` converts them; a null is a missing value and takes each split's default
/// side. Margins start from `base_score` and add every tree's leaf in float32, in
/// XGBoost's order, so each sum rounds as XGBoost's does; the objective then gives
/// probabilities, labels or values. The output is one column, `prediction`: float32
/// values, int64 labels for a classifier's labels, or one float32 array of per-class
/// probabilities per row for `multi:softprob`.
///
/// ```no_run
/// use mlops_core::{Model, XgboostModel, XgboostOutput};
/// use polars::prelude::*;
///
/// // A file written by `booster.save_model("model.ubj")`, with feature names.
/// let bytes = std::fs::read("model.ubj")?;
/// let model = XgboostModel::from_file(&bytes, "model.ubj", None, XgboostOutput::Booster)?;
/// let scored = model.predict(&df!("amount" => [12.5], "age" => [None::<f64>])?)?;
/// println!("{scored}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct XgboostModel {
    signature: Signature,
    booster: Booster,
    sources: Vec<FeatureSource>,
    output: XgboostOutput,
}

impl XgboostModel {
    /// A model from the bytes of an XGBoost model file (JSON or UBJSON, told apart by
    /// content; `file` names it in errors), with `signature`, or one nullable `double`
    /// column per feature the file names.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] naming the file for one that cannot be read (truncated,
    /// corrupt, XGBoost's old binary format), an unsupported objective or booster
    /// (named), a categorical split (naming the feature), or features the signature
    /// lacks (named).
    pub fn from_file(bytes: &[u8], file: &str, signature: Option<Signature>, output: XgboostOutput) -> Result<Self> {
        let mut booster = Booster::from_bytes(bytes, file)?;
        let signature = match signature {
            Some(signature) => signature,
            None => match &booster.feature_names {
                Some(names) => signature_of_features(names)?,
                None => {
                    return Err(Error::InvalidPackage(format!(
                        "XGBoost model `{file}` names no features: give a signature with one column per feature, in order"
                    )));
                }
            },
        };
        let columns = match_features("XGBoost", booster.feature_names.as_deref(), booster.features, &signature)?;
        if output != XgboostOutput::Booster
            && let Some(best) = booster.best_iteration
        {
            let keep = best.saturating_add(1).saturating_mul(booster.trees_per_iteration);
            booster.ensemble.truncate(keep);
        }
        if output == XgboostOutput::ClassifierLabels
            && !matches!(booster.objective, Objective::Logistic | Objective::Softprob | Objective::Softmax)
        {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model `{file}`: a classifier whose objective gives no probabilities"
            )));
        }
        let sources = columns.into_iter().map(FeatureSource::Number).collect();
        Ok(Self { signature, booster, sources, output })
    }

    /// The number of trees scored.
    pub fn trees(&self) -> usize {
        self.booster.ensemble.trees()
    }

    /// The XGBoost version that wrote the file (`[major, minor, patch]`), when recorded.
    pub fn xgboost_version(&self) -> &[u32] {
        &self.booster.version
    }

    /// The margins of `input`'s rows (what `Booster.predict(..., output_margin=True)`
    /// gives): one float32 column `margin`, an array per row for several classes.
    ///
    /// # Errors
    /// As [`Model::predict`].
    pub fn predict_margins(&self, input: &DataFrame) -> Result<DataFrame> {
        let input = self.signature.enforce(input)?;
        let margins = self.margins(&input)?;
        scores_frame("margin", margins, input.height(), self.booster.ensemble.groups())
    }

    /// The margins (raw scores before the objective's transformation), `groups` per row.
    fn margins(&self, input: &DataFrame) -> Result<Vec<f32>> {
        let ensemble = &self.booster.ensemble;
        let rows = feature_rows::<f32>(input, &self.sources, ensemble.row_width())?;
        let mut margins = Vec::with_capacity(input.height() * ensemble.groups());
        for _ in 0..input.height() {
            margins.extend_from_slice(&self.booster.base_margins);
        }
        ensemble.accumulate(&rows, &mut margins)?;
        Ok(margins)
    }
}

/// XGBoost's logistic function, in float32.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The index of the largest value, the first of equals.
fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}

impl Model for XgboostModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, input: &DataFrame) -> Result<DataFrame> {
        let input = self.signature.enforce(input)?;
        let rows = input.height();
        let groups = self.booster.ensemble.groups();
        let mut margins = self.margins(&input)?;
        let column = match (self.booster.objective, self.output) {
            (Objective::Logistic, XgboostOutput::ClassifierLabels) => {
                let labels: Vec<i64> = margins.iter().map(|&m| i64::from(sigmoid(m) > 0.5)).collect();
                Series::new(PREDICTION.into(), labels)
            }
            (Objective::Softprob | Objective::Softmax, XgboostOutput::ClassifierLabels) => {
                let labels: Vec<i64> = margins.chunks(groups).map(|row| argmax(row) as i64).collect();
                Series::new(PREDICTION.into(), labels)
            }
            (Objective::Softmax, _) => {
                let classes: Vec<f32> = margins.chunks(groups).map(|row| argmax(row) as f32).collect();
                Series::new(PREDICTION.into(), classes)
            }
            (Objective::Softprob, _) => {
                margins.chunks_mut(groups).for_each(softmax);
                return scores_frame(PREDICTION, margins, rows, groups);
            }
            (objective, _) => {
                let transform: fn(f32) -> f32 = match objective {
                    Objective::Logistic => sigmoid,
                    Objective::Exp => f32::exp,
                    _ => |m| m,
                };
                margins.iter_mut().for_each(|m| *m = transform(*m));
                Series::new(PREDICTION.into(), margins)
            }
        };
        Ok(DataFrame::new(rows, vec![column.into_column()])?)
    }
}
