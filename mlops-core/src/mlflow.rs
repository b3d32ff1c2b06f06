//! MLflow's model format: the `MLmodel` file of a model directory that Python's
//! `mlflow.<flavor>.log_model` writes, its signature and input examples.
//!
//! A directory with an `MLmodel` file and no `manifest.json` is read by
//! [`Package::read_dir`](crate::Package::read_dir) (or built from its files with
//! [`Package::from_mlflow_files`](crate::Package::from_mlflow_files)) into a package whose
//! flavor is the model's MLflow flavor (`onnx`, `xgboost`, ...), whose signature is the
//! `MLmodel` signature in this crate's terms, and whose files are every file of the
//! directory, each with its sha256 from then on. [`FlavorRegistry::load`](crate::FlavorRegistry::load)
//! runs it when a loader for that flavor is registered and otherwise says what to export
//! instead ([`Error::UnsupportedMlflowFlavor`](crate::Error::UnsupportedMlflowFlavor)).
//!
//! ```
//! use mlops_core::{ColumnType, MlflowModel};
//!
//! let mlmodel = br#"
//! flavors:
//!   onnx: {data: model.onnx, onnx_version: 1.23.2}
//!   python_function: {data: model.onnx, loader_module: mlflow.onnx}
//! mlflow_version: 3.17.2
//! signature:
//!   inputs: '[{"type": "string", "name": "Product", "required": true}, {"type": "double", "name": "Amount", "required": false}]'
//!   outputs: '[{"type": "long", "name": "output_label", "required": true}]'
//!   params: null
//! "#;
//! let model = MlflowModel::from_yaml(mlmodel)?;
//! assert_eq!(model.runnable_flavor(), Some("onnx"));
//! let signature = model.signature()?.expect("the file has a signature");
//! assert_eq!(signature.inputs.columns()[1].dtype, ColumnType::Double);
//! assert!(!signature.inputs.columns()[1].required);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod example;
mod hints;
mod mlmodel;
mod schema;

pub use mlmodel::{InputExampleInfo, MLMODEL_FILE, MLOPS_FLAVOR, MlflowModel, MlflowSignature};

pub(crate) use example::{parse_python_json, read_input_example};
pub(crate) use hints::unsupported_flavor;
