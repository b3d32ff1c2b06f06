//! The model contract every flavor and every user model implements.

use std::sync::Arc;

use polars::prelude::DataFrame;

use crate::error::Result;
use crate::features::FeatureSpec;
use crate::signature::Signature;

/// A model that scores frames.
///
/// Object-safe, so registries and servers hold `Arc<dyn Model>`. `predict` is synchronous and
/// compute-bound: async callers move it to a blocking thread. Implementations must be
/// deterministic for a given input and must not do I/O.
///
/// The contract: `predict` accepts any frame that satisfies [`Model::signature`] (extra
/// columns are ignored) and returns a frame of the same height whose columns are the
/// signature's outputs (at least a `prediction` column).
pub trait Model: Send + Sync {
    /// The model's input/output signature.
    fn signature(&self) -> &Signature;

    /// Scores `input`.
    ///
    /// # Errors
    /// Schema errors for input that breaks the signature; model-specific errors otherwise.
    fn predict(&self, input: &DataFrame) -> Result<DataFrame>;

    /// The features scoring code must look up and compute before calling
    /// [`predict`](Self::predict), as recorded in the model's package; `None` when the
    /// inputs are used as they come.
    fn features(&self) -> Option<&FeatureSpec> {
        None
    }
}

impl<M: Model + ?Sized> Model for Arc<M> {
    fn signature(&self) -> &Signature {
        (**self).signature()
    }

    fn predict(&self, input: &DataFrame) -> Result<DataFrame> {
        (**self).predict(input)
    }

    fn features(&self) -> Option<&FeatureSpec> {
        (**self).features()
    }
}

/// A loaded model together with the feature spec its package records.
pub(crate) struct WithFeatures {
    pub(crate) model: Arc<dyn Model>,
    pub(crate) features: FeatureSpec,
}

impl Model for WithFeatures {
    fn signature(&self) -> &Signature {
        self.model.signature()
    }

    fn predict(&self, input: &DataFrame) -> Result<DataFrame> {
        self.model.predict(input)
    }

    fn features(&self) -> Option<&FeatureSpec> {
        Some(&self.features)
    }
}

/// A model written as preprocessing followed by prediction on features, like an MLflow
/// pyfunc wrapper that carries its own preprocessing.
///
/// Every `ModelWrapper` is a [`Model`] whose `predict` enforces the signature, calls
/// [`preprocess`](ModelWrapper::preprocess), then
/// [`predict_features`](ModelWrapper::predict_features). Training code calls the same
/// `preprocess`, so training and serving share one code path.
///
/// ```
/// use mlops_core::{ColSpec, ColumnType, Model, ModelWrapper, Result, Schema, Signature};
/// use polars::prelude::*;
///
/// struct Doubler(Signature);
///
/// impl ModelWrapper for Doubler {
///     type Features = Vec<f64>;
///     fn signature(&self) -> &Signature { &self.0 }
///     fn preprocess(&self, input: &DataFrame) -> Result<Vec<f64>> {
///         Ok(input.column("x")?.f64()?.no_null_iter().collect())
///     }
///     fn predict_features(&self, x: &Vec<f64>) -> Result<DataFrame> {
///         let prediction: Vec<f64> = x.iter().map(|v| v * 2.0).collect();
///         Ok(df!("prediction" => prediction)?)
///     }
/// }
///
/// let model = Doubler(Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Double)])?));
/// // An i32 column widens to double before preprocessing sees it.
/// let out = Model::predict(&model, &df!("x" => [1i32, 2])?)?;
/// assert_eq!(out.column("prediction")?.f64()?.get(1), Some(4.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ModelWrapper: Send + Sync {
    /// What preprocessing produces, e.g. a feature matrix.
    type Features;

    /// The model's signature; inputs are enforced before [`preprocess`](Self::preprocess).
    fn signature(&self) -> &Signature;

    /// Turns a signature-conforming frame into features.
    ///
    /// # Errors
    /// When the input cannot be turned into features.
    fn preprocess(&self, input: &DataFrame) -> Result<Self::Features>;

    /// Predicts from features.
    ///
    /// # Errors
    /// Model-specific.
    fn predict_features(&self, features: &Self::Features) -> Result<DataFrame>;
}

impl<W: ModelWrapper> Model for W {
    fn signature(&self) -> &Signature {
        ModelWrapper::signature(self)
    }

    fn predict(&self, input: &DataFrame) -> Result<DataFrame> {
        let input = ModelWrapper::signature(self).enforce(input)?;
        let features = self.preprocess(&input)?;
        self.predict_features(&features)
    }
}
