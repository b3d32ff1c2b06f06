//! The linear or elastic-net regressor: its parameters, their check and the fit.

use ndarray::Array1;
use polars::prelude::{DataFrame, DataType};

use super::columns::{FeatureColumns, target_column};
use super::{RegressionAlgorithm, TabularModel, TabularTask, fit_regression};
use crate::error::{Error, Result};

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
