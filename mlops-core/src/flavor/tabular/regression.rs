//! Linear regression (least squares or elastic net) on a feature matrix: the fit that the
//! tabular regressor and the forecaster share.

use linfa::dataset::Dataset;
use linfa::traits::Fit;
use linfa_elasticnet::ElasticNet;
use linfa_linear::LinearRegression;
use ndarray::{Array1, Array2};

use super::LinearWeights;
use crate::error::{Error, Result};

/// The linear algorithm a [`TabularRegressorParams`](super::TabularRegressorParams) fits.
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
