//! What to do with an MLflow model whose flavor cannot run here.

use crate::error::Error;

/// The way out for a model of MLflow flavor `flavor`: an export that a registered loader
/// runs.
fn advice(flavor: &str) -> &'static str {
    match flavor {
        "sklearn" => {
            "a pickled scikit-learn model runs only in Python: convert it with skl2onnx (`skl2onnx.to_onnx(model, X)`) and log it with `mlflow.onnx.log_model`"
        }
        "pytorch" => "export the module with `torch.onnx.export` and log the file with `mlflow.onnx.log_model`",
        "tensorflow" | "keras" => "convert the model with tf2onnx and log it with `mlflow.onnx.log_model`",
        "catboost" => {
            "save it with `model.save_model(path, format=\"onnx\")` and log that file with `mlflow.onnx.log_model`"
        }
        "python_function" => {
            "a custom Python model (`mlflow.pyfunc.PythonModel`) runs only in Python: log the model inside it with `mlflow.onnx.log_model` instead"
        }
        "spark" => {
            "a Spark ML pipeline runs only on Spark: convert it with onnxmltools (`convert_sparkml`) and log it with `mlflow.onnx.log_model`"
        }
        _ => "convert the model to ONNX and log it with `mlflow.onnx.log_model`",
    }
}

/// The error for an MLflow model with `flavors` (the runnable one first) none of which
/// `known` can load.
pub(crate) fn unsupported_flavor(runnable: &str, flavors: Vec<String>, known: Vec<String>) -> Error {
    Error::UnsupportedMlflowFlavor { flavor: runnable.to_owned(), flavors, known, advice: advice(runnable).to_owned() }
}
