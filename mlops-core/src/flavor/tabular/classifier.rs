//! The logistic-regression classifier: its parameters, their check and the fit.

use linfa::dataset::Dataset;
use linfa::traits::Fit;
use linfa_logistic::LogisticRegression;
use ndarray::Array1;
use polars::prelude::{DataFrame, DataType};

use super::columns::{FeatureColumns, target_column};
use super::{LinearWeights, TabularModel, TabularTask};
use crate::error::{Error, Result};

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
