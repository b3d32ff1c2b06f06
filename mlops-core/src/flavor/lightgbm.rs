//! The `lightgbm` flavor: LightGBM's text model (`Booster.save_model`, MLflow's
//! `model.lgb`), scored by this crate's tree evaluator with LightGBM's arithmetic (float64
//! features, thresholds and sums) and decision rules (missing values by each split's
//! missing type, categorical bitsets).

mod model_text;

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::DataFrame;

use self::model_text::{Booster, Objective, PandasCategories};
use super::Flavor;
use super::boosted::{FeatureSource, feature_rows, match_features, scores_frame, signature_of_features, softmax};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::package::Package;
use crate::signature::{ColumnType, Signature};

/// Name of the LightGBM flavor, as MLflow names it.
pub const LIGHTGBM: &str = "lightgbm";

/// The model file of a package.
const DEFAULT_FILE: &str = "model.lgb";

/// The output column.
const PREDICTION: &str = "prediction";

/// Loads LightGBM packages: MLflow model directories with a `lightgbm` flavor holding a
/// Booster (`mlflow.lightgbm.log_model(booster)`), or packages of this crate with a
/// `model.lgb` file. A scikit-learn `LGBMClassifier` or `LGBMRegressor`, which MLflow
/// pickles, is refused with the way out.
#[derive(Debug, Clone, Copy, Default)]
pub struct LightgbmFlavor;

impl Flavor for LightgbmFlavor {
    fn name(&self) -> &str {
        LIGHTGBM
    }

    fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        let file = match package.mlflow_model()? {
            Some(model) => {
                let config = model.flavor(LIGHTGBM);
                let text = |key: &str| config.and_then(|c| c.get(key)).and_then(serde_json::Value::as_str);
                if let Some(class) = text("model_class").filter(|c| *c != "lightgbm.basic.Booster") {
                    return Err(Error::UnsupportedMlflowFlavor {
                        flavor: LIGHTGBM.to_owned(),
                        flavors: model.flavor_names().map(str::to_owned).collect(),
                        known: vec![format!("{LIGHTGBM} (Booster models)")],
                        advice: format!(
                            "a scikit-learn `{class}` is stored as a Python object ({}), which loads only in Python: log its booster with `mlflow.lightgbm.log_model(model.booster_, ...)`",
                            text("serialization_format").unwrap_or("pickle")
                        ),
                    });
                }
                text("data").unwrap_or(DEFAULT_FILE).to_owned()
            }
            None => DEFAULT_FILE.to_owned(),
        };
        let bytes = package.file(&file)?;
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Error::InvalidPackage(format!("LightGBM model `{file}` is not text: not a LightGBM text model"))
        })?;
        let signature = &package.manifest().signature;
        let signature = (!signature.inputs.is_empty()).then(|| signature.clone());
        Ok(Arc::new(LightgbmModel::from_text(text, signature)?))
    }
}

/// A LightGBM model as a [`Model`].
///
/// Features are read by the names the model file records (files made from arrays, whose
/// features are `Column_0`, `Column_1`, ..., read the signature's columns in order) as
/// float64, nulls as missing values. A categorical feature trained from a pandas
/// `category` column is read from a string column and coded with the training
/// categories, as LightGBM's pandas path codes it (an unseen category is missing); one
/// trained from integer codes is read as numbers. Scores add every tree's leaf in
/// float64 in LightGBM's order, then the objective gives probabilities or values. The
/// output is one column, `prediction`: float64 values, or one float64 array of
/// per-class probabilities per row for multi-class objectives, as `Booster.predict`
/// returns them.
///
/// ```no_run
/// use mlops_core::{LightgbmModel, Model};
/// use polars::prelude::*;
///
/// // A file written by `booster.save_model("model.lgb")`.
/// let text = std::fs::read_to_string("model.lgb")?;
/// let model = LightgbmModel::from_text(&text, None)?;
/// let scored = model.predict(&df!("amount" => [12.5], "color" => ["red"])?)?;
/// println!("{scored}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LightgbmModel {
    signature: Signature,
    booster: Booster,
    sources: Vec<FeatureSource>,
}

impl LightgbmModel {
    /// A model from a LightGBM text model, with `signature`, or one nullable `double`
    /// column per feature the file names (string columns for categorical features trained
    /// from pandas categories).
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] for text that is not a LightGBM model or ends early, an
    /// unsupported objective (named), linear trees, malformed trees (naming the tree), or
    /// features the signature lacks (named).
    pub fn from_text(text: &str, signature: Option<Signature>) -> Result<Self> {
        let booster = Booster::from_text(text)?;
        let signature = match signature {
            Some(signature) => signature,
            None => {
                let names = booster.feature_names.clone().ok_or_else(|| {
                    Error::InvalidPackage(
                        "the LightGBM model names no features: give a signature with one column per feature, in order"
                            .into(),
                    )
                })?;
                let mut signature = signature_of_features(&names)?;
                let strings = string_categories(&booster);
                let columns: Vec<_> = signature
                    .inputs
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let mut c = c.clone();
                        if strings.contains_key(&i) {
                            c.dtype = ColumnType::String;
                        }
                        c
                    })
                    .collect();
                signature.inputs = crate::signature::Schema::new(columns)?;
                signature
            }
        };
        let columns = match_features("LightGBM", booster.feature_names.as_deref(), booster.features, &signature)?;
        let strings = string_categories(&booster);
        let mut sources = Vec::with_capacity(columns.len());
        for (feature, column) in columns.into_iter().enumerate() {
            let is_string = signature
                .inputs
                .columns()
                .iter()
                .find(|c| c.name == column)
                .is_some_and(|c| c.dtype == ColumnType::String);
            sources.push(match (is_string, strings.get(&feature)) {
                (false, _) => FeatureSource::Number(column),
                (true, Some(categories)) => FeatureSource::Category {
                    column,
                    codes: categories.iter().enumerate().map(|(code, c)| (c.clone(), code as u32)).collect(),
                },
                (true, None) => {
                    return Err(Error::InvalidPackage(format!(
                        "column `{column}` holds strings, but the LightGBM model was not trained on it as a pandas category, so its codes are unknown"
                    )));
                }
            });
        }
        Ok(Self { signature, booster, sources })
    }

    /// The number of trees scored.
    pub fn trees(&self) -> usize {
        self.booster.ensemble.trees()
    }

    /// The raw scores of `input`'s rows (what `Booster.predict(..., raw_score=True)`
    /// gives): one float64 column `margin`, an array per row for several classes.
    ///
    /// # Errors
    /// As [`Model::predict`].
    pub fn predict_margins(&self, input: &DataFrame) -> Result<DataFrame> {
        let input = self.signature.enforce(input)?;
        let scores = self.raw_scores(&input)?;
        scores_frame("margin", scores, input.height(), self.booster.ensemble.groups())
    }

    fn raw_scores(&self, input: &DataFrame) -> Result<Vec<f64>> {
        let ensemble = &self.booster.ensemble;
        let features = feature_rows::<f64>(input, &self.sources, ensemble.row_width())?;
        let mut scores = vec![0.0f64; input.height() * ensemble.groups()];
        ensemble.accumulate(&features, &mut scores)?;
        if let Some(iterations) = self.booster.average_over {
            scores.iter_mut().for_each(|s| *s /= iterations as f64);
        }
        Ok(scores)
    }
}

/// The string categories of each categorical feature trained from a pandas column, by
/// feature index.
fn string_categories(booster: &Booster) -> HashMap<usize, Vec<String>> {
    let categorical: Vec<usize> = booster.categorical.iter().enumerate().filter(|(_, c)| **c).map(|(i, _)| i).collect();
    if categorical.len() != booster.pandas_categories.len() {
        return HashMap::new();
    }
    categorical
        .into_iter()
        .zip(&booster.pandas_categories)
        .filter_map(|(feature, categories)| match categories {
            PandasCategories::Strings(strings) => Some((feature, strings.clone())),
            PandasCategories::Other => None,
        })
        .collect()
}

fn sigmoid(x: f64, scale: f64) -> f64 {
    1.0 / (1.0 + (-scale * x).exp())
}

impl Model for LightgbmModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, input: &DataFrame) -> Result<DataFrame> {
        let input = self.signature.enforce(input)?;
        let rows = input.height();
        let groups = self.booster.ensemble.groups();
        let mut scores = self.raw_scores(&input)?;
        match self.booster.objective {
            Objective::Identity => {}
            Objective::SignedSquare => scores.iter_mut().for_each(|s| *s = s.signum() * *s * *s),
            Objective::Sigmoid(scale) | Objective::SigmoidPerClass(scale) => {
                scores.iter_mut().for_each(|s| *s = sigmoid(*s, scale))
            }
            Objective::Exp => scores.iter_mut().for_each(|s| *s = s.exp()),
            Objective::Softmax => scores.chunks_mut(groups).for_each(softmax),
        }
        scores_frame(PREDICTION, scores, rows, groups)
    }
}
