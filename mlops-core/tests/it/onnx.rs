//! Models trained in Python (scikit-learn, exported with skl2onnx, saved by MLflow) score
//! in Rust as MLflow's pyfunc (or onnxruntime, where pyfunc cannot feed the graph) scores
//! them. `onnx_models.py` makes the models, the rows and the expected predictions.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mlops_core::{Error, FlavorRegistry, MLMODEL_FILE, Model, Package, PackageFormat, read_parquet};
use polars::prelude::*;

/// Rows scored per model.
const ROWS: usize = 10_000;

/// The models `onnx_models.py` wrote, made once per test run; `None` when Python is missing.
fn models() -> Option<&'static Path> {
    static MODELS: OnceLock<Option<PathBuf>> = OnceLock::new();
    crate::python::made_once(&MODELS, "onnx_models.py", ROWS)
}

fn manifest(dir: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(dir.join("models.json")).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    document["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let field = |k: &str| m[k].as_str().unwrap().to_owned();
            (field("name"), field("kind"), field("reference"))
        })
        .collect()
}

fn load(dir: &Path, name: &str) -> std::sync::Arc<dyn Model> {
    let package = Package::read_dir(&dir.join(name).join("model")).unwrap();
    assert_eq!(package.manifest().format, PackageFormat::Mlflow);
    assert_eq!(package.manifest().flavor, "onnx");
    FlavorRegistry::with_builtins().load(&package).unwrap()
}

/// Within 1e-5 relative; NaN (a missing input's outcome, in both) equals NaN.
fn close(found: f32, expected: f32) -> bool {
    found == expected
        || (found.is_nan() && expected.is_nan())
        || (found - expected).abs() <= 1e-5 * found.abs().max(expected.abs())
}

/// The values as f32; Parquet written from pandas holds NaN as null.
fn floats(column: &Column) -> Vec<f32> {
    column.cast(&DataType::Float32).unwrap().f32().unwrap().iter().map(|v| v.unwrap_or(f32::NAN)).collect()
}

fn assert_all_close(what: &str, found: &[f32], expected: &[f32]) {
    assert_eq!(found.len(), expected.len(), "{what}: lengths");
    let bad: Vec<(usize, f32, f32)> = found
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (f, e))| !close(**f, **e))
        .map(|(i, (f, e))| (i, *f, *e))
        .take(5)
        .collect();
    assert!(bad.is_empty(), "{what}: rows differ beyond 1e-5 relative (row, rust, python): {bad:?}");
}

#[test]
fn python_models_score_in_rust_as_python_scores_them() {
    let Some(dir) = models() else { return };
    let models = manifest(dir);
    assert_eq!(models.len(), 17, "the script makes seventeen models");
    for (name, kind, reference) in models {
        let model = load(dir, &name);
        let input = read_parquet(&dir.join(&name).join("input.parquet")).unwrap();
        let expected = read_parquet(&dir.join(&name).join("expected.parquet")).unwrap();
        let scored = model.predict(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(scored.height(), input.height(), "{name}");
        let what = format!("{name} (against {reference})");
        match kind.as_str() {
            "classifier" => {
                let labels: Vec<i64> =
                    scored.column("output_label").unwrap().i64().unwrap().into_no_null_iter().collect();
                let want: Vec<i64> = expected.column("label").unwrap().i64().unwrap().into_no_null_iter().collect();
                let wrong = labels.iter().zip(&want).filter(|(a, b)| a != b).count();
                assert_eq!(wrong, 0, "{what}: {wrong} labels differ");
                let probabilities = scored.column("output_probability").unwrap().struct_().unwrap().fields_as_series();
                let classes: Vec<String> = expected
                    .get_column_names()
                    .iter()
                    .filter_map(|c| c.strip_prefix("p_").map(str::to_owned))
                    .collect();
                assert_eq!(
                    probabilities.iter().map(|s| s.name().to_string()).collect::<Vec<_>>(),
                    classes,
                    "{what}: class fields"
                );
                for (field, class) in probabilities.iter().zip(&classes) {
                    let want = floats(expected.column(&format!("p_{class}")).unwrap());
                    assert_all_close(&format!("{what}, P({class})"), &floats(&field.clone().into_column()), &want);
                }
            }
            "regressor" => {
                let found = floats(scored.column("variable").unwrap());
                assert_all_close(&what, &found, &floats(expected.column("value").unwrap()));
            }
            "tensor" => {
                let probabilities = scored.column("probabilities").unwrap();
                assert_eq!(probabilities.dtype(), &DataType::Array(Box::new(DataType::Float32), 10), "{what}");
                let flat = floats(&probabilities.as_materialized_series().get_leaf_array().into_column());
                for class in 0..10 {
                    let found: Vec<f32> = flat.iter().skip(class).step_by(10).copied().collect();
                    assert_all_close(
                        &format!("{what}, class {class}"),
                        &found,
                        &floats(expected.column(&format!("p_{class}")).unwrap()),
                    );
                }
            }
            "small_types" => {
                // Each output in the type a frame holds it in, equal to pyfunc's value for
                // value: products rounded once, half floats rounded from them, integers.
                for (output, held, width) in [
                    ("score", DataType::Float32, 12),
                    ("score_half", DataType::Float32, 12),
                    ("pixels_out", DataType::UInt32, 4),
                    ("deltas_out", DataType::Int32, 2),
                ] {
                    let column = scored.column(output).unwrap();
                    assert_eq!(column.dtype(), &DataType::Array(Box::new(held), width), "{what}: {output}");
                    let flat = |c: &Column| -> Vec<f64> {
                        let leaves = c.as_materialized_series().get_leaf_array().cast(&DataType::Float64).unwrap();
                        leaves.f64().unwrap().into_no_null_iter().collect()
                    };
                    let (found, want) = (flat(column), flat(expected.column(output).unwrap()));
                    assert_eq!(found.len(), want.len(), "{what}: {output} lengths");
                    let wrong = found.iter().zip(&want).filter(|(a, b)| a != b).count();
                    assert_eq!(wrong, 0, "{what}: {wrong} values of {output} differ");
                }
            }
            "labels" => {
                let found = scored.column("Y").unwrap().as_materialized_series().cast(&DataType::String).unwrap();
                let want = expected.column("Y").unwrap().as_materialized_series().cast(&DataType::String).unwrap();
                let wrong = found.str().unwrap().iter().zip(want.str().unwrap().iter()).filter(|(a, b)| a != b).count();
                assert_eq!(wrong, 0, "{what}: {wrong} of {} labels differ", found.len());
            }
            other => panic!("unknown kind {other}"),
        }
    }
}

#[test]
fn an_mlflow_model_becomes_a_package_with_a_stable_digest_and_survives_a_save() {
    let Some(dir) = models() else { return };
    let model_dir = dir.join("pipeline_lr_columns").join("model");
    let first = Package::read_dir(&model_dir).unwrap();
    let second = Package::read_dir(&model_dir).unwrap();
    assert_eq!(first.digest().unwrap(), second.digest().unwrap(), "the same files give the same digest");
    assert!(first.files().any(|(path, _)| path == MLMODEL_FILE));
    let signature = &first.manifest().signature;
    let names: Vec<&str> = signature.inputs.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Product", "CustomerID", "Amount", "MaxDifferenceRatio"]);

    let saved = tempfile::tempdir().unwrap();
    first.save(saved.path()).unwrap();
    let reread = Package::read_dir(saved.path()).unwrap();
    assert_eq!(reread.manifest().format, PackageFormat::Mlflow);
    let input = read_parquet(&dir.join("pipeline_lr_columns").join("input.parquet")).unwrap().head(Some(200));
    let flavors = FlavorRegistry::with_builtins();
    let direct = flavors.load(&first).unwrap().predict(&input).unwrap();
    let through_save = flavors.load(&reread).unwrap().predict(&input).unwrap();
    assert!(direct.equals_missing(&through_save));
    let example = reread.input_example().unwrap().expect("MLflow's input example");
    assert!(example.height() > 0);
}

/// Copies an MLflow model directory so a test can damage it.
fn copy_model(dir: &Path, name: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let source = dir.join(name).join("model");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}

fn load_error(dir: &Path) -> Error {
    let package = match Package::read_dir(dir) {
        Ok(package) => package,
        Err(e) => return e,
    };
    match FlavorRegistry::with_builtins().load(&package) {
        Ok(_) => panic!("the damaged model loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_corrupt_onnx_file_is_refused_naming_it() {
    let Some(dir) = models() else { return };
    let copy = copy_model(dir, "rf_binary");
    let path = copy.path().join("model.onnx");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = load_error(copy.path()).to_string();
    assert!(message.contains("ONNX model `model.onnx`"), "{message}");
}

#[test]
fn a_pickled_scikit_learn_model_asks_for_an_onnx_export() {
    let Some(dir) = models() else { return };
    let copy = copy_model(dir, "rf_binary");
    let mlmodel = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n  sklearn:\n    pickled_model: model.pkl\n    serialization_format: cloudpickle\nmlflow_version: 3.17.2\n";
    std::fs::write(copy.path().join(MLMODEL_FILE), mlmodel).unwrap();
    let error = load_error(copy.path());
    match &error {
        Error::UnsupportedMlflowFlavor { flavor, flavors, known, .. } => {
            assert_eq!(flavor, "sklearn");
            assert_eq!(flavors, &["python_function", "sklearn"]);
            assert!(known.contains(&"onnx".to_owned()), "{known:?}");
        }
        other => panic!("expected UnsupportedMlflowFlavor, got {other}"),
    }
    let message = error.to_string();
    assert!(message.contains("`sklearn`"), "{message}");
    assert!(message.contains("skl2onnx") && message.contains("mlflow.onnx.log_model"), "{message}");
    assert!(message.contains("python_function, sklearn"), "{message}");
}

#[test]
fn a_signature_that_does_not_fit_the_graph_names_the_input() {
    let Some(dir) = models() else { return };
    let copy = copy_model(dir, "pipeline_lr_columns");
    let path = copy.path().join(MLMODEL_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let renamed = text
        .replace("\\\"name\\\": \\\"Amount\\\"", "\\\"name\\\": \\\"amount_usd\\\"")
        .replace("\"name\": \"Amount\"", "\"name\": \"amount_usd\"");
    assert_ne!(renamed, text, "the signature names Amount");
    std::fs::write(&path, renamed).unwrap();
    let message = load_error(copy.path()).to_string();
    assert!(message.contains("`Amount`") && message.contains("amount_usd"), "{message}");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_refused_naming_it() {
    let Some(dir) = models() else { return };
    let model = load(dir, "cnn");
    let rows = 2;
    let values = Series::new("image".into(), vec![0.5f32; rows * 3 * 8 * 7]);
    let wrong = values
        .reshape_array(&[
            ReshapeDimension::new(rows as i64),
            ReshapeDimension::new(3),
            ReshapeDimension::new(8),
            ReshapeDimension::new(7),
        ])
        .unwrap();
    let frame = DataFrame::new(rows, vec![wrong.into_column()]).unwrap();
    match model.predict(&frame) {
        Err(Error::Schema { column, expected, .. }) => {
            assert_eq!(column, "image");
            assert!(expected.contains("(-1, 3, 8, 8)"), "{expected}");
        }
        other => panic!("expected a schema error naming `image`, got {other:?}"),
    }
}

#[test]
fn attributes_no_memory_holds_are_refused_when_the_model_loads() {
    let Some(dir) = models() else { return };
    let text = std::fs::read_to_string(dir.join("hostile").join("errors.json")).unwrap();
    let cases: std::collections::BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
    assert_eq!(cases.len(), 7);
    let input = df!("X" => [1.0f32, 2.0]).unwrap();
    for (name, expected) in cases {
        let bytes = std::fs::read(dir.join("hostile").join(format!("{name}.onnx"))).unwrap();
        // Scoring is tried too, so that an operator that loads has to score without panicking.
        let outcome = mlops_core::OnnxModel::from_bytes(bytes, None).and_then(|model| model.predict(&input).map(drop));
        match outcome {
            Err(e) => assert!(e.to_string().contains(&expected), "{name}: {e}"),
            Ok(()) => panic!("{name}: the model loaded and scored"),
        }
    }
}
