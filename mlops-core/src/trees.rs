//! Tree ensembles flattened into arrays: the forests of ONNX's tree-ensemble operators, and
//! the boosted ensembles of XGBoost and LightGBM model files.

#[cfg(any(feature = "xgboost", feature = "lightgbm"))]
pub(crate) mod boosted;
#[cfg(feature = "onnx")]
mod forest;

#[cfg(feature = "onnx")]
pub(crate) use forest::{Aggregate, Forest, NodeSpec, Score, Scored, Split};
