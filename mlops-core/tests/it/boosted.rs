//! Gradient-boosted trees trained in Python by XGBoost and LightGBM score in Rust as the
//! libraries' own predictors and MLflow's pyfunc score them. `boosted_models.py` trains
//! the models on generated rows (missing values, exact zeros, a categorical column with
//! unseen values and nulls) and writes their predictions.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mlops_core::{Error, FlavorRegistry, LightgbmModel, Model, Package, XgboostModel, XgboostOutput, read_parquet};
use polars::prelude::*;
use proptest::prelude::*;

/// Rows scored per model.
const ROWS: usize = 10_000;

/// The models `boosted_models.py` wrote, made once per test run; `None` when Python is
/// missing.
fn models() -> Option<&'static Path> {
    static MODELS: OnceLock<Option<PathBuf>> = OnceLock::new();
    crate::python::made_once(&MODELS, "boosted_models.py", ROWS)
}

struct Listed {
    name: String,
    library: String,
    output: String,
}

fn listed(dir: &Path) -> Vec<Listed> {
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("models.json")).unwrap()).unwrap();
    document["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Listed {
            name: m["name"].as_str().unwrap().into(),
            library: m["library"].as_str().unwrap().into(),
            output: m["output"].as_str().unwrap().into(),
        })
        .collect()
}

struct Expected {
    margin: Vec<f64>,
    prediction: Vec<f64>,
    width: usize,
    pyfunc: Option<Vec<f64>>,
    pyfunc_note: Option<String>,
}

fn expected(dir: &Path, name: &str) -> Expected {
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(name).join("expected.json")).unwrap()).unwrap();
    let numbers = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    Expected {
        margin: numbers(&document["margin"]),
        prediction: numbers(&document["prediction"]),
        width: document["width"].as_u64().unwrap() as usize,
        pyfunc: document["pyfunc"].as_array().map(|_| numbers(&document["pyfunc"])),
        pyfunc_note: document["pyfunc_note"].as_str().map(str::to_owned),
    }
}

fn input(dir: &Path) -> DataFrame {
    read_parquet(&dir.join("input.parquet")).unwrap()
}

/// The values of a one-column result, flattened row-major (arrays of per-class scores
/// included), as f64.
fn flat(frame: &DataFrame) -> Vec<f64> {
    let column = &frame.columns()[0];
    let leaves = column.as_materialized_series().get_leaf_array();
    leaves.cast(&DataType::Float64).unwrap().f64().unwrap().iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

/// Every value within 1e-6 relative of the reference.
fn assert_close(what: &str, found: &[f64], expected: &[f64]) {
    assert_eq!(found.len(), expected.len(), "{what}: lengths");
    let bad: Vec<(usize, f64, f64)> = found
        .iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (f, e))| !(f == e || (**f - **e).abs() <= 1e-6 * f.abs().max(e.abs())))
        .map(|(i, (f, e))| (i, *f, *e))
        .take(5)
        .collect();
    assert!(bad.is_empty(), "{what}: values differ beyond 1e-6 relative (index, rust, python): {bad:?}");
}

fn load_mlflow(dir: &Path, name: &str) -> Result<std::sync::Arc<dyn Model>, Error> {
    let package = Package::read_dir(&dir.join(name).join("mlflow")).unwrap();
    FlavorRegistry::with_builtins().load(&package)
}

#[test]
fn xgboost_models_score_as_xgboost_and_pyfunc_score_them() {
    let Some(dir) = models() else { return };
    let frame = input(dir);
    let boosters: Vec<Listed> =
        listed(dir).into_iter().filter(|m| m.library == "xgboost" && m.output == "booster").collect();
    assert_eq!(boosters.len(), 7, "one booster per objective");
    for model in boosters {
        let name = &model.name;
        let want = expected(dir, name);
        for file in ["model.json", "model.ubj"] {
            let bytes = std::fs::read(dir.join(name).join(file)).unwrap();
            let booster = XgboostModel::from_file(&bytes, file, None, XgboostOutput::Booster).unwrap();
            let what = format!("{name}/{file}");
            assert_close(&format!("{what} margins"), &flat(&booster.predict_margins(&frame).unwrap()), &want.margin);
            let predicted = booster.predict(&frame).unwrap();
            assert_eq!(predicted.height(), ROWS);
            assert_close(&format!("{what} predictions"), &flat(&predicted), &want.prediction);
        }
        let through_mlflow = load_mlflow(dir, name).unwrap().predict(&frame).unwrap();
        assert_close(&format!("{name} through MLflow, against pyfunc"), &flat(&through_mlflow), &want.pyfunc.unwrap());
        assert_eq!(through_mlflow.columns()[0].len(), ROWS);
        if want.width > 1 {
            assert_eq!(
                through_mlflow.columns()[0].dtype(),
                &DataType::Array(Box::new(DataType::Float32), want.width),
                "{name}: per-class probabilities as pyfunc returns them"
            );
        }
    }
}

#[test]
fn an_xgboost_classifier_predicts_labels_up_to_its_best_iteration() {
    let Some(dir) = models() else { return };
    let frame = input(dir);
    let want = expected(dir, "xgb_classifier");
    let model = load_mlflow(dir, "xgb_classifier").unwrap();
    let labels = model.predict(&frame).unwrap();
    assert_eq!(labels.columns()[0].dtype(), &DataType::Int64);
    assert_eq!(flat(&labels), want.pyfunc.unwrap(), "labels exactly as pyfunc gives them");

    let package = Package::read_dir(&dir.join("xgb_classifier").join("mlflow")).unwrap();
    let bytes = package.file("model.ubj").unwrap();
    let all = XgboostModel::from_file(bytes, "model.ubj", None, XgboostOutput::Booster).unwrap();
    let best = XgboostModel::from_file(bytes, "model.ubj", None, XgboostOutput::ClassifierLabels).unwrap();
    assert!(best.trees() < all.trees(), "early stopping kept {} of {} trees", best.trees(), all.trees());
    assert_close("margins up to the best iteration", &flat(&best.predict_margins(&frame).unwrap()), &want.margin);
}

#[test]
fn lightgbm_models_score_as_lightgbm_and_pyfunc_score_them() {
    let Some(dir) = models() else { return };
    let frame = input(dir);
    let boosters: Vec<Listed> =
        listed(dir).into_iter().filter(|m| m.library == "lightgbm" && m.output == "booster").collect();
    assert_eq!(boosters.len(), 6, "binary, regression, multiclass, two missing-value modes, poisson");
    for model in boosters {
        let name = &model.name;
        let want = expected(dir, name);
        let text = std::fs::read_to_string(dir.join(name).join("model.lgb")).unwrap();
        let booster = LightgbmModel::from_text(&text, None).unwrap();
        assert_close(&format!("{name} raw scores"), &flat(&booster.predict_margins(&frame).unwrap()), &want.margin);
        assert_close(&format!("{name} predictions"), &flat(&booster.predict(&frame).unwrap()), &want.prediction);

        let through_mlflow = flat(&load_mlflow(dir, name).unwrap().predict(&frame).unwrap());
        match (&want.pyfunc, &want.pyfunc_note) {
            (Some(pyfunc), _) => {
                assert_close(&format!("{name} through MLflow, against pyfunc"), &through_mlflow, pyfunc)
            }
            (None, note) => {
                // MLflow's pyfunc cannot feed a categorical column: its signature calls the
                // column a string, which LightGBM refuses, and a pandas category fails the
                // signature. The library's own predictor is the reference then.
                eprintln!("{name}: {}", note.as_deref().unwrap_or("no pyfunc predictions"));
                assert_close(&format!("{name} through MLflow, against LightGBM"), &through_mlflow, &want.prediction);
            }
        }
    }
}

#[test]
fn models_that_cannot_score_correctly_are_refused_naming_why() {
    let Some(dir) = models() else { return };
    let bytes = std::fs::read(dir.join("xgb_categorical").join("model.json")).unwrap();
    let err = XgboostModel::from_file(&bytes, "model.json", None, XgboostOutput::Booster).unwrap_err().to_string();
    assert!(err.contains("`color`") && err.contains("by category"), "{err}");

    match load_mlflow(dir, "lgb_sklearn") {
        Err(Error::UnsupportedMlflowFlavor { flavor, advice, .. }) => {
            assert_eq!(flavor, "lightgbm");
            assert!(advice.contains("LGBMClassifier") && advice.contains("model.booster_"), "{advice}");
        }
        other => panic!("expected the way out for a pickled scikit-learn model, got {:?}", other.map(|_| ())),
    }

    // Truncated and corrupt files name the file.
    let json = std::fs::read(dir.join("xgb_binary").join("model.json")).unwrap();
    let ubj = std::fs::read(dir.join("xgb_binary").join("model.ubj")).unwrap();
    for (file, bytes) in [
        ("model.json", &json[..json.len() / 2]),
        ("model.ubj", &ubj[..ubj.len() - 7]),
        ("model.ubj", &b"binf\x00\x01"[..]),
    ] {
        let err = XgboostModel::from_file(bytes, file, None, XgboostOutput::Booster).unwrap_err();
        assert!(matches!(err, Error::InvalidPackage(_)) && err.to_string().contains(file), "{err}");
    }
    let text = std::fs::read_to_string(dir.join("lgb_binary").join("model.lgb")).unwrap();
    let err = LightgbmModel::from_text(&text[..text.len() / 2], None).unwrap_err().to_string();
    assert!(err.contains("truncated"), "{err}");
    let mangled = text.replacen("leaf_value=", "leaf_value=oops ", 1);
    assert!(LightgbmModel::from_text(&mangled, None).unwrap_err().to_string().contains("tree 0"));

    // A file that claims absurd sizes is refused before anything is allocated for them.
    let huge =
        String::from_utf8(json.clone()).unwrap().replacen("\"num_class\":\"0\"", "\"num_class\":\"999999999999\"", 1);
    assert_ne!(huge.as_bytes(), &json[..], "the JSON names num_class");
    let err = XgboostModel::from_file(huge.as_bytes(), "model.json", None, XgboostOutput::Booster).unwrap_err();
    assert!(err.to_string().contains("num_class"), "{err}");
    let huge = text.replacen("num_tree_per_iteration=1", "num_tree_per_iteration=99999999999", 1);
    assert!(LightgbmModel::from_text(&huge, None).is_err());

    // Unknown objectives are named.
    let odd = String::from_utf8(json.clone()).unwrap().replace("binary:logistic", "binary:hinge2");
    let err = XgboostModel::from_file(odd.as_bytes(), "model.json", None, XgboostOutput::Booster).unwrap_err();
    assert!(err.to_string().contains("`binary:hinge2`"), "{err}");
    let odd = text.replace("objective=binary sigmoid:1", "objective=custom_loss");
    assert!(LightgbmModel::from_text(&odd, None).unwrap_err().to_string().contains("`custom_loss`"));

    // A feature missing from the input is named.
    let model = load_mlflow(dir, "xgb_binary").unwrap();
    let without = input(dir).drop("x3").unwrap();
    match model.predict(&without) {
        Err(Error::MissingColumns { columns }) => assert_eq!(columns, ["x3"]),
        other => panic!("expected x3 to be missing, got {other:?}"),
    }
    let model = XgboostModel::from_file(&json, "model.json", None, XgboostOutput::Booster).unwrap();
    match model.predict(&input(dir).drop("x5").unwrap()) {
        Err(Error::MissingColumns { columns }) => assert_eq!(columns, ["x5"]),
        other => panic!("expected x5 to be missing, got {other:?}"),
    }
}

/// The JSON and UBJSON copies of each XGBoost model, made by `Booster.save_model`.
fn copies() -> Option<&'static [(XgboostModel, XgboostModel)]> {
    static COPIES: OnceLock<Option<Vec<(XgboostModel, XgboostModel)>>> = OnceLock::new();
    COPIES
        .get_or_init(|| {
            let dir = models()?;
            let load = |name: &str, file: &str| {
                let bytes = std::fs::read(dir.join(name).join(file)).unwrap();
                XgboostModel::from_file(&bytes, file, None, XgboostOutput::Booster).unwrap()
            };
            Some(
                ["xgb_binary", "xgb_multiclass", "xgb_regressor"]
                    .iter()
                    .map(|name| (load(name, "model.json"), load(name, "model.ubj")))
                    .collect(),
            )
        })
        .as_deref()
}

fn feature() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(0.0)),
        1 => Just(Some(f64::NAN)),
        6 => (-4.0f64..4.0).prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_model_and_its_copy_in_the_other_format_score_identically(
        rows in prop::collection::vec(prop::collection::vec(feature(), 6), 1..40)
    ) {
        let Some(copies) = copies() else { return Ok(()) };
        let columns: Vec<Column> = (0..6)
            .map(|f| Series::new(format!("x{f}").into(), rows.iter().map(|r| r[f]).collect::<Vec<_>>()).into_column())
            .collect();
        let frame = DataFrame::new(rows.len(), columns).unwrap();
        for (json, ubj) in copies {
            let (a, b) = (flat(&json.predict_margins(&frame).unwrap()), flat(&ubj.predict_margins(&frame).unwrap()));
            prop_assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }
}
