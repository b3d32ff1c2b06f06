//! Linear models over tabular features: a logistic-regression classifier and a linear /
//! elastic-net regressor, trained with linfa, preprocessed by a [`ColumnTransformer`].

use std::sync::Arc;

use linfa::dataset::Dataset;
use linfa::traits::Fit;
use linfa_elasticnet::ElasticNet;
use linfa_linear::LinearRegression;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use polars::prelude::{Column, DataFrame, DataType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flavor::Flavor;
use crate::model::{Model, ModelWrapper};
use crate::package::Package;
use crate::preprocess::{ColumnTransformer, EncodedFeatures};
use crate::signature::{ColSpec, ColumnType, Schema, Signature};

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

/// Which columns feed a tabular model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureColumns {
    /// One-hot encoded columns (string or integer).
    pub categorical: Vec<String>,
    /// Standard-scaled numeric columns.
    pub numeric: Vec<String>,
}

impl FeatureColumns {
    fn check(&self, target: &str) -> Result<()> {
        if self.categorical.is_empty() && self.numeric.is_empty() {
            return Err(Error::InvalidArgument("a tabular model needs at least one feature column".into()));
        }
        if self.categorical.iter().chain(&self.numeric).any(|c| c == target) {
            return Err(Error::InvalidArgument(format!("the target column `{target}` cannot also be a feature")));
        }
        Ok(())
    }

    /// Signature (from the training frame's types) and fitted transformer.
    fn fit(&self, train: &DataFrame) -> Result<(Signature, ColumnTransformer, Array2<f64>)> {
        let names: Vec<&String> = self.categorical.iter().chain(&self.numeric).collect();
        let missing: Vec<String> = names.iter().filter(|c| train.column(c).is_err()).map(|c| (*c).clone()).collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let inputs = Schema::infer(&train.select(names.iter().map(|s| s.as_str()))?)?;
        let signature =
            Signature::new(inputs).with_outputs(Schema::new(vec![ColSpec::new(PREDICTION, ColumnType::Double)])?);
        let transformer = ColumnTransformer::builder()
            .one_hot(self.categorical.iter().cloned())
            .standardize(self.numeric.iter().cloned())
            .fit(train)?;
        let features = transformer.transform(train)?;
        Ok((signature, transformer, features))
    }
}

fn target_column<'a>(train: &'a DataFrame, target: &str) -> Result<&'a Column> {
    let column = train.column(target).map_err(|_| Error::MissingColumns { columns: vec![target.to_owned()] })?;
    let nulls = column.null_count();
    if nulls > 0 {
        return Err(Error::Schema {
            column: target.to_owned(),
            expected: "a target without nulls".into(),
            found: format!("{nulls} null values"),
        });
    }
    Ok(column)
}

/// Hyperparameters of the logistic-regression classifier; [`check`](Self::check) validates
/// them, and only checked parameters can fit.
///
/// ```
/// use mlops_core::{Model, TabularClassifierParams};
/// use polars::prelude::*;
///
/// let train = df!(
///     "Product" => ["A", "B", "A", "B", "A", "B"],
///     "Amount" => [1.0, 9.0, 2.0, 8.0, 1.5, 9.5],
///     "Label" => [0, 1, 0, 1, 0, 1],
/// )?;
/// let model = TabularClassifierParams::new("Label")
///     .categorical(["Product"])
///     .numeric(["Amount"])
///     .check()?
///     .fit(&train)?;
/// let scored = model.predict(&train)?;
/// let p = scored.column("prediction")?.f64()?;
/// assert!(p.get(1).unwrap() > 0.5 && p.get(0).unwrap() < 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TabularClassifierParams {
    label: String,
    features: FeatureColumns,
    l2_penalty: f64,
    max_iterations: u64,
    gradient_tolerance: f64,
}

/// [`TabularClassifierParams`] that passed [`check`](TabularClassifierParams::check).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTabularClassifierParams(TabularClassifierParams);

impl TabularClassifierParams {
    /// Parameters predicting the 0/1 (or boolean) column `label`.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            features: FeatureColumns::default(),
            l2_penalty: 1.0,
            max_iterations: 100,
            gradient_tolerance: 1e-4,
        }
    }

    /// Adds one-hot encoded feature columns.
    pub fn categorical<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.features.categorical.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Adds standard-scaled numeric feature columns.
    pub fn numeric<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.features.numeric.extend(columns.into_iter().map(Into::into));
        self
    }

    /// L2 regularization strength (linfa's `alpha`), default 1.0.
    pub fn l2_penalty(mut self, penalty: f64) -> Self {
        self.l2_penalty = penalty;
        self
    }

    /// Iteration limit of the optimizer, default 100.
    pub fn max_iterations(mut self, iterations: u64) -> Self {
        self.max_iterations = iterations;
        self
    }

    /// Gradient norm at which the optimizer stops, default 1e-4.
    pub fn gradient_tolerance(mut self, tolerance: f64) -> Self {
        self.gradient_tolerance = tolerance;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter out of range or the column misused.
    pub fn check(self) -> Result<ValidTabularClassifierParams> {
        self.features.check(&self.label)?;
        if !(self.l2_penalty.is_finite() && self.l2_penalty >= 0.0) {
            return Err(Error::InvalidArgument(format!("l2_penalty must be finite and >= 0, got {}", self.l2_penalty)));
        }
        if self.max_iterations == 0 {
            return Err(Error::InvalidArgument("max_iterations must be at least 1".into()));
        }
        if !(self.gradient_tolerance.is_finite() && self.gradient_tolerance > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "gradient_tolerance must be finite and > 0, got {}",
                self.gradient_tolerance
            )));
        }
        Ok(ValidTabularClassifierParams(self))
    }
}

impl ValidTabularClassifierParams {
    /// Fits preprocessing and a logistic regression on `train`.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] / [`Error::Schema`] for absent or unusable columns (the
    /// label must hold only 0 and 1, or booleans), [`Error::Fit`] when the optimizer fails.
    pub fn fit(&self, train: &DataFrame) -> Result<TabularModel> {
        let params = &self.0;
        let label = target_column(train, &params.label)?;
        let positives: Array1<bool> = match label.dtype() {
            DataType::Boolean => label.bool()?.no_null_iter().collect(),
            dtype if dtype.is_integer() => {
                let values = label.cast(&DataType::Int64)?;
                values
                    .i64()?
                    .no_null_iter()
                    .map(|v| match v {
                        0 => Ok(false),
                        1 => Ok(true),
                        other => Err(Error::Schema {
                            column: params.label.clone(),
                            expected: "binary labels 0 and 1".into(),
                            found: format!("label {other}"),
                        }),
                    })
                    .collect::<Result<_>>()?
            }
            other => {
                return Err(Error::Schema {
                    column: params.label.clone(),
                    expected: "an integer 0/1 or boolean label".into(),
                    found: other.to_string(),
                });
            }
        };
        let (signature, transformer, features) = params.features.fit(train)?;
        let dataset = Dataset::new(features, positives);
        let fitted = LogisticRegression::default()
            .alpha(params.l2_penalty)
            .max_iterations(params.max_iterations)
            .gradient_tolerance(params.gradient_tolerance)
            .fit(&dataset)
            .map_err(|e| Error::Fit { model: "logistic regression".into(), reason: e.to_string() })?;
        // linfa models the larger class as positive; store weights for P(label = 1).
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let weights = LinearWeights {
            algorithm: "logistic_regression".into(),
            intercept: sign * fitted.intercept(),
            coefficients: fitted.params().iter().map(|w| sign * w).collect(),
            feature_names: transformer.feature_names(),
        };
        TabularModel::new(TabularTask::Classifier, signature, transformer, weights)
    }
}

/// The linear algorithm a [`TabularRegressorParams`] fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RegressionAlgorithm {
    /// Ordinary least squares.
    Linear,
    /// Elastic net: `penalty` is the overall strength, `l1_ratio` in [0, 1] the share of L1.
    ElasticNet {
        /// Overall regularization strength.
        penalty: f64,
        /// Share of the L1 term, in [0, 1].
        l1_ratio: f64,
    },
}

/// Hyperparameters of the tabular regressor; [`check`](Self::check) validates them.
///
/// ```
/// use mlops_core::{Model, RegressionAlgorithm, TabularRegressorParams};
/// use polars::prelude::*;
///
/// let train = df!("x" => [1.0, 2.0, 3.0, 4.0], "y" => [3.0, 5.0, 7.0, 9.0])?;
/// let model = TabularRegressorParams::new("y", RegressionAlgorithm::Linear).numeric(["x"]).check()?.fit(&train)?;
/// let y = model.predict(&df!("x" => [10.0])?)?;
/// assert!((y.column("prediction")?.f64()?.get(0).unwrap() - 21.0).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TabularRegressorParams {
    target: String,
    features: FeatureColumns,
    algorithm: RegressionAlgorithm,
}

/// [`TabularRegressorParams`] that passed [`check`](TabularRegressorParams::check).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTabularRegressorParams(TabularRegressorParams);

impl TabularRegressorParams {
    /// Parameters predicting the numeric column `target` with `algorithm`.
    pub fn new(target: impl Into<String>, algorithm: RegressionAlgorithm) -> Self {
        Self { target: target.into(), features: FeatureColumns::default(), algorithm }
    }

    /// Adds one-hot encoded feature columns.
    pub fn categorical<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.features.categorical.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Adds standard-scaled numeric feature columns.
    pub fn numeric<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.features.numeric.extend(columns.into_iter().map(Into::into));
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter out of range or the column misused.
    pub fn check(self) -> Result<ValidTabularRegressorParams> {
        self.features.check(&self.target)?;
        if let RegressionAlgorithm::ElasticNet { penalty, l1_ratio } = self.algorithm {
            if !(penalty.is_finite() && penalty >= 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "elastic net penalty must be finite and >= 0, got {penalty}"
                )));
            }
            if !(0.0..=1.0).contains(&l1_ratio) {
                return Err(Error::InvalidArgument(format!("elastic net l1_ratio must be in [0, 1], got {l1_ratio}")));
            }
        }
        Ok(ValidTabularRegressorParams(self))
    }
}

impl ValidTabularRegressorParams {
    /// Fits preprocessing and the linear model on `train`.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] / [`Error::Schema`] for absent or non-numeric columns,
    /// [`Error::Fit`] when the solver fails.
    pub fn fit(&self, train: &DataFrame) -> Result<TabularModel> {
        let params = &self.0;
        let target = target_column(train, &params.target)?;
        if !target.dtype().is_primitive_numeric() {
            return Err(Error::Schema {
                column: params.target.clone(),
                expected: "a numeric target".into(),
                found: target.dtype().to_string(),
            });
        }
        let targets: Array1<f64> = target.cast(&DataType::Float64)?.f64()?.no_null_iter().collect();
        let (signature, transformer, features) = params.features.fit(train)?;
        let weights =
            fit_regression(params.algorithm, features, targets, transformer.feature_names(), "linear regression")?;
        TabularModel::new(TabularTask::Regressor, signature, transformer, weights)
    }
}

/// Fits `algorithm` on a feature matrix; `model` names what failed in a fit error.
pub(crate) fn fit_regression(
    algorithm: RegressionAlgorithm,
    features: Array2<f64>,
    targets: Array1<f64>,
    feature_names: Vec<String>,
    model: &str,
) -> Result<LinearWeights> {
    let dataset = Dataset::new(features, targets);
    let fit_error = |e: &dyn std::fmt::Display| Error::Fit { model: model.into(), reason: e.to_string() };
    let (algorithm, intercept, coefficients) = match algorithm {
        RegressionAlgorithm::Linear => {
            let fitted = LinearRegression::new().fit(&dataset).map_err(|e| fit_error(&e))?;
            ("linear_regression", fitted.intercept(), fitted.params().to_vec())
        }
        RegressionAlgorithm::ElasticNet { penalty, l1_ratio } => {
            let fitted =
                ElasticNet::params().penalty(penalty).l1_ratio(l1_ratio).fit(&dataset).map_err(|e| fit_error(&e))?;
            ("elastic_net", fitted.intercept(), fitted.hyperplane().to_vec())
        }
    };
    Ok(LinearWeights { algorithm: algorithm.into(), intercept, coefficients, feature_names })
}
