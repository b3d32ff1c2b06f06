//! # mlops-core
//!
//! The vocabulary and the model contract of mlops-rs:
//!
//! - [`ModelUri`]: `models:/name@alias`, `models:/name/3`, `models:/name/latest`,
//!   `runs:/id/path`, with three-level names (`catalog.schema.model`).
//! - [`Signature`]: input/output schemas and their enforcement on Polars frames, following
//!   MLflow's rules (missing required columns are an error naming them, extra columns are
//!   ignored, only safe widening casts).
//! - [`Model`] (object-safe, `predict(&DataFrame) -> DataFrame`) and [`ModelWrapper`]
//!   (preprocess, then predict on features).
//! - [`preprocess`]: fitted, serializable one-hot encoding, standard scaling and a column
//!   transformer that writes Polars columns straight into a feature matrix.
//! - [`Package`] and [`FlavorRegistry`]: a model directory with a manifest recording every
//!   file's sha256, loaded back into `Arc<dyn Model>`.
//! - [`features`]: feature lookups packaged with a model, joined point-in-time at
//!   scoring and at training, and on-demand features computed by named functions.
//! - Built-in flavors, each behind a feature of its own (all on by default, so a service
//!   that runs one kind of model builds only that one): [`TabularModel`] classifiers
//!   (logistic regression) and regressors (linear, elastic net), trained with linfa
//!   (`tabular`); [`ForecastModel`], daily forecasts from lag and calendar features
//!   (`forecast`); [`ImageClassifier`], a candle network with its image preprocessing
//!   packaged as data (`image`). A package of a flavor the build leaves out is refused with
//!   [`Error::FlavorNotBuilt`], naming the feature.
//! - Models trained in Python: MLflow model directories ([`MlflowModel`], `MLmodel` and
//!   its signature) are packages too; `OnnxModel` runs ONNX graphs (scikit-learn pipelines
//!   through skl2onnx, networks) as onnxruntime does (`onnx`); [`XgboostModel`] and
//!   [`LightgbmModel`] read XGBoost's and LightGBM's own model files and score them as the
//!   libraries do (`xgboost`, `lightgbm`).
//!
//! ```
//! use mlops_core::{FlavorRegistry, Model, Package, TabularClassifierParams};
//! use polars::prelude::*;
//!
//! let train = df!(
//!     "Product" => ["A", "B", "A", "B"],
//!     "Amount" => [1.0, 9.0, 2.0, 8.0],
//!     "Label" => [0, 1, 0, 1],
//! )?;
//! let model = TabularClassifierParams::new("Label").categorical(["Product"]).numeric(["Amount"]).check()?.fit(&train)?;
//!
//! let dir = tempfile::tempdir()?;
//! model.package(Some(&train))?.save(dir.path())?;
//! let loaded = FlavorRegistry::with_builtins().load(&Package::read_dir(dir.path())?)?;
//! assert_eq!(loaded.predict(&train)?, model.predict(&train)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Errors
//!
//! Every fallible function returns [`Error`], whose variants name what is wrong: the column
//! ([`Error::Schema`], [`Error::MissingColumns`]), the package file ([`Error::Checksum`]),
//! the flavor ([`Error::UnknownFlavor`]), or the position in a URI ([`Error::InvalidUri`]).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod atomic_write;
mod error;
pub mod features;
mod flavor;
mod json_frame;
pub mod mlflow;
mod model;
mod package;
mod parquet;
pub mod preprocess;
mod signature;
#[cfg(any(feature = "onnx", feature = "xgboost", feature = "lightgbm"))]
mod trees;
mod uri;

pub use error::{Error, Result, catching_panics, panic_message};
pub use flavor::{BUILTIN_FLAVORS, Flavor, FlavorRegistry};
#[cfg(feature = "image")]
pub use flavor::{
    BadImages, ColorMode, ConvNet, EpochReport, IMAGE_CLASSIFIER, ImageBatch, ImageClassifier, ImageClassifierFlavor,
    ImageClassifierParams, ImagePreprocessing, ImageSpec, ImageTask, ResizeFilter, ValidImageClassifierParams,
};
#[cfg(feature = "forecast")]
pub use flavor::{
    FORECASTER, ForecastFlavor, ForecastModel, ForecastParams, ForecastRequests, ForecastSpec, ValidForecastParams,
};
#[cfg(feature = "tabular")]
pub use flavor::{
    FeatureColumns, LinearWeights, RegressionAlgorithm, TABULAR_CLASSIFIER, TABULAR_REGRESSOR, TabularClassifierParams,
    TabularFlavor, TabularModel, TabularRegressorParams, TabularTask, ValidTabularClassifierParams,
    ValidTabularRegressorParams,
};
#[cfg(feature = "lightgbm")]
pub use flavor::{LIGHTGBM, LightgbmFlavor, LightgbmModel};
#[cfg(feature = "onnx")]
pub use flavor::{ONNX, OnnxFlavor, OnnxModel};
#[cfg(feature = "xgboost")]
pub use flavor::{XGBOOST, XgboostFlavor, XgboostModel, XgboostOutput};
pub use json_frame::{
    columns_json_to_frame, frame_to_columns_json, frame_to_records_json, frame_to_split_json, json_excerpt,
    records_json_to_frame, split_json_to_frame, tensor_json_to_column, write_columns_json, write_records_json,
};
pub use mlflow::{MLMODEL_FILE, MlflowModel};
pub use model::{Model, ModelWrapper};
pub use package::{
    FORMAT_VERSION, INPUT_EXAMPLE_FILE, INPUT_EXAMPLE_ROWS, MANIFEST_FILE, Manifest, Package, PackageBuilder,
    PackageFile, PackageFormat, sha256_hex,
};
pub use parquet::{read_parquet, write_parquet};
/// The Polars whose frames every crate of mlops-rs takes and returns: name it through here
/// (`mlops_core::polars::prelude::*`) to be on the same version.
pub use polars;
pub use signature::{ColSpec, ColumnType, ParamSpec, Schema, Signature, TensorSpec, TensorType, UNNAMED_TENSOR};
pub use uri::{ModelName, ModelUri, check_alias};
