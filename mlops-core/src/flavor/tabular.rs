//! Linear models over tabular features: a logistic-regression classifier and a linear /
//! elastic-net regressor, trained with linfa, preprocessed by a [`ColumnTransformer`].

mod classifier;
mod columns;
mod regression;
mod regressor;

pub use classifier::{TabularClassifierParams, ValidTabularClassifierParams};
pub use columns::FeatureColumns;
pub use regression::RegressionAlgorithm;
pub use regressor::{TabularRegressorParams, ValidTabularRegressorParams};

pub(crate) use regression::fit_regression;

use std::sync::Arc;

use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flavor::Flavor;
use crate::model::{Model, ModelWrapper};
use crate::package::Package;
use crate::preprocess::{ColumnTransformer, EncodedFeatures};
use crate::signature::Signature;

/// Flavor name of packaged [`TabularTask::Classifier`] models.
pub const TABULAR_CLASSIFIER: &str = "tabular_classifier";
/// Flavor name of packaged [`TabularTask::Regressor`] models.
pub const TABULAR_REGRESSOR: &str = "tabular_regressor";

const PREPROCESSOR_FILE: &str = "preprocessor.json";
const WEIGHTS_FILE: &str = "model.json";
const PREDICTION: &str = "prediction";

/// What a tabular model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabularTask {
    /// Binary classification: `prediction` is the probability of the positive class (label 1).
    Classifier,
    /// Regression: `prediction` is the estimate.
    Regressor,
}

impl TabularTask {
    fn flavor(self) -> &'static str {
        match self {
            Self::Classifier => TABULAR_CLASSIFIER,
            Self::Regressor => TABULAR_REGRESSOR,
        }
    }
}

/// Coefficients of a fitted linear model over the transformed features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearWeights {
    /// The algorithm that produced the weights (`logistic_regression`, `linear_regression`,
    /// `elastic_net`).
    pub algorithm: String,
    /// Intercept term.
    pub intercept: f64,
    /// One coefficient per feature, in feature-matrix order.
    pub coefficients: Vec<f64>,
    /// Feature names, in feature-matrix order.
    pub feature_names: Vec<String>,
}

/// A fitted tabular model: signature, preprocessing, linear weights.
///
/// It is a [`ModelWrapper`], so [`Model::predict`] enforces the signature, transforms the
/// columns into a feature matrix with the very transform used in training, and applies the
/// weights.
#[derive(Debug, Clone)]
pub struct TabularModel {
    task: TabularTask,
    signature: Signature,
    transformer: ColumnTransformer,
    weights: LinearWeights,
}

impl TabularModel {
    /// Assembles a model from fitted parts.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the weights do not match the transformer's width or
    /// the transformer reads a column the signature does not declare.
    pub fn new(
        task: TabularTask,
        signature: Signature,
        transformer: ColumnTransformer,
        weights: LinearWeights,
    ) -> Result<Self> {
        if weights.coefficients.len() != transformer.width() {
            return Err(Error::InvalidArgument(format!(
                "{} coefficients for {} features",
                weights.coefficients.len(),
                transformer.width()
            )));
        }
        if let Some(column) = transformer.input_columns().find(|c| signature.inputs.column(c).is_none()) {
            return Err(Error::InvalidArgument(format!(
                "preprocessing reads column `{column}` that the signature lacks"
            )));
        }
        Ok(Self { task, signature, transformer, weights })
    }

    /// Classifier or regressor.
    pub fn task(&self) -> TabularTask {
        self.task
    }

    /// The fitted preprocessing.
    pub fn transformer(&self) -> &ColumnTransformer {
        &self.transformer
    }

    /// The fitted weights.
    pub fn weights(&self) -> &LinearWeights {
        &self.weights
    }

    /// Packages the model, storing the first rows of `input_example` when given.
    ///
    /// # Errors
    /// Schema errors when `input_example` breaks the signature.
    pub fn package(&self, input_example: Option<&DataFrame>) -> Result<Package> {
        let mut builder = Package::builder(self.task.flavor(), self.signature.clone())
            .json_file(PREPROCESSOR_FILE, &self.transformer)?
            .json_file(WEIGHTS_FILE, &self.weights)?
            .metadata("algorithm", self.weights.algorithm.as_str())
            .metadata("features", self.weights.feature_names.len());
        if let Some(example) = input_example {
            builder = builder.input_example(example)?;
        }
        builder.build()
    }
}

impl ModelWrapper for TabularModel {
    /// Compact features: training densifies the same encoding with
    /// [`EncodedFeatures::to_dense`].
    type Features = EncodedFeatures;

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn preprocess(&self, input: &DataFrame) -> Result<EncodedFeatures> {
        self.transformer.encode(input)
    }

    fn predict_features(&self, features: &EncodedFeatures) -> Result<DataFrame> {
        let mut scores = features.linear_scores(&self.weights.coefficients, self.weights.intercept);
        if self.task == TabularTask::Classifier {
            scores.iter_mut().for_each(|z| *z = 1.0 / (1.0 + (-*z).exp()));
        }
        Ok(DataFrame::new(features.rows(), vec![Column::new(PREDICTION.into(), scores)])?)
    }
}

/// Loads [`TabularModel`] packages of one task.
#[derive(Debug, Clone, Copy)]
pub struct TabularFlavor {
    task: TabularTask,
}

impl TabularFlavor {
    /// The loader for `task`'s flavor.
    pub fn new(task: TabularTask) -> Self {
        Self { task }
    }
}

impl Flavor for TabularFlavor {
    fn name(&self) -> &str {
        self.task.flavor()
    }

    fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        let transformer: ColumnTransformer = package.json_file(PREPROCESSOR_FILE)?;
        let weights: LinearWeights = package.json_file(WEIGHTS_FILE)?;
        let model = TabularModel::new(self.task, package.manifest().signature.clone(), transformer, weights)
            .map_err(|e| Error::InvalidPackage(e.to_string()))?;
        Ok(Arc::new(model))
    }
}
