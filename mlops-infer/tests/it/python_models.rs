//! Models trained and registered in Python, served and batch-scored by Rust, against the
//! MLflow tracking server the test script starts: Python logs a scikit-learn pipeline as
//! ONNX and sets `champion`; a `LiveModel` on `models:/<name>@champion` answers through the
//! router with Python's predictions, and the same model batch-scores them and streams them
//! into a Delta inference table with the same predictions; Python registers a second
//! version and moves `champion`; Rust follows and says which version served. Python reads
//! back, with its signature, a version Rust registers.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mlops_core::{FlavorRegistry, ModelName, TabularClassifierParams};
use mlops_infer::BatchScorer;
use mlops_infer::serve::{MODEL_VERSION_HEADER, ModelServer};
use mlops_registry::{CreateModel, CreateVersion, LiveModel, MlflowRegistry, Registry};
use polars::prelude::*;
use serde_json::{Value, json};

use crate::servers::{MLFLOW_URI, PYTHON, server, test_file, unique_prefix};

fn python(uri: &str, args: &[&str]) -> Value {
    let python = std::env::var(PYTHON).expect("checked before");
    let output = Command::new(python).arg(test_file("tests/it/mlflow_models.py")).arg(uri).args(args).output().unwrap();
    assert!(output.status.success(), "mlflow_models.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

async fn serve(server: ModelServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, server.router()).await.unwrap() });
    format!("http://{address}/invocations")
}

/// Asks the server to score Python's request rows; the version that answered and the
/// answer, checked against Python's labels and probabilities.
async fn score_and_check(url: &str, logged: &Value) -> u64 {
    let body = json!({ "dataframe_records": logged["records"] }).to_string();
    let response =
        reqwest::Client::new().post(url).header("Content-Type", "application/json").body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let version: u64 = response.headers()[MODEL_VERSION_HEADER].to_str().unwrap().parse().unwrap();
    let answer: Value = response.json().await.unwrap();
    let predictions = answer["predictions"].as_array().unwrap();
    let labels = logged["labels"].as_array().unwrap();
    let probabilities = logged["probabilities"].as_array().unwrap();
    assert_eq!(predictions.len(), labels.len());
    for ((prediction, label), expected) in predictions.iter().zip(labels).zip(probabilities) {
        assert_eq!(&prediction["output_label"], label, "{prediction}");
        for class in 0..2 {
            let found = prediction["output_probability"][class.to_string()].as_f64().unwrap();
            let want = expected[class].as_f64().unwrap();
            assert!((found - want).abs() <= 1e-5 * want.abs().max(found.abs()), "P({class}): {found} vs {want}");
        }
    }
    version
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_python_registers_is_served_and_followed_when_python_moves_champion() {
    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let Some(_) = server(PYTHON, "Python with mlflow, scikit-learn and skl2onnx") else { return };
    let name = unique_prefix("fraud").replace('-', "_");
    let first = python(&uri, &["log", &name, "1"]);

    let registry: Arc<dyn Registry> = Arc::new(MlflowRegistry::new(&uri).unwrap());
    let champion: mlops_core::ModelUri = format!("models:/{name}@champion").parse().unwrap();
    let live = Arc::new(
        LiveModel::start(Arc::clone(&registry), champion, FlavorRegistry::with_builtins(), Duration::from_secs(3600))
            .await
            .unwrap(),
    );
    assert_eq!(live.version(), first["version"].as_u64().unwrap());
    let url = serve(ModelServer::new().endpoint("fraud", Arc::clone(&live)).unwrap()).await;
    assert_eq!(score_and_check(&url, &first).await, 1, "version 1 answers");

    // Batch scoring of the same model: `prediction` is the label.
    let records = logged_frame(&first);
    let scored = BatchScorer::from((*live.current()).clone()).score(&records).unwrap();
    let labels: Vec<i64> = scored.column("prediction").unwrap().i64().unwrap().into_no_null_iter().collect();
    let expected: Vec<i64> = first["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(labels, expected);

    // The same model in SQL, pinned by alias from the MLflow server: two outputs, so
    // `predict` returns a struct, whose label is Python's.
    #[cfg(feature = "sql")]
    sql_labels_match(&registry, &champion_uri(&name), &first).await;

    // Streamed into a Delta inference table by whatever the live model holds.
    #[cfg(feature = "delta")]
    stream_and_check(Arc::clone(&live) as Arc<dyn mlops_registry::ModelSource>, &first).await;

    let second = python(&uri, &["log", &name, "2"]);
    assert_eq!(second["version"], 2);
    assert_eq!(live.refresh().await.unwrap(), Some(2), "the live model follows champion to version 2");
    assert_eq!(score_and_check(&url, &second).await, 2, "version 2 answers after the move");
}

fn champion_uri(name: &str) -> String {
    format!("models:/{name}@champion")
}

/// Scores Python's request rows with `predict` in SQL and checks the labels.
#[cfg(feature = "sql")]
async fn sql_labels_match(registry: &Arc<dyn Registry>, uri: &str, logged: &Value) {
    use deltalake::arrow::array::{Array, Float32Array, Int64Array, RecordBatch, StringArray, StructArray};
    use mlops_infer::sql::ModelCatalog;
    use mlops_infer::sql::datafusion::prelude::SessionContext;

    let mut catalog = ModelCatalog::new();
    catalog.pin(registry.as_ref(), &uri.parse().unwrap(), &FlavorRegistry::with_builtins()).await.unwrap();
    let ctx = SessionContext::new();
    catalog.register(&ctx);
    let records = logged["records"].as_array().unwrap();
    let positions: Vec<i64> = (0..records.len() as i64).collect();
    let product: Vec<Option<&str>> = records.iter().map(|r| r["Product"].as_str()).collect();
    let customer: Vec<i64> = records.iter().map(|r| r["CustomerID"].as_i64().unwrap()).collect();
    let amount: Vec<Option<f32>> = records.iter().map(|r| r["Amount"].as_f64().map(|v| v as f32)).collect();
    let batch = RecordBatch::try_from_iter([
        ("position", Arc::new(Int64Array::from(positions)) as Arc<dyn Array>),
        ("Product", Arc::new(StringArray::from(product)) as Arc<dyn Array>),
        ("CustomerID", Arc::new(Int64Array::from(customer)) as Arc<dyn Array>),
        ("Amount", Arc::new(Float32Array::from(amount)) as Arc<dyn Array>),
    ])
    .unwrap();
    ctx.register_batch("requests", batch).unwrap();
    let sql =
        format!(r#"SELECT predict('{uri}', "Product", "CustomerID", "Amount") AS p FROM requests ORDER BY position"#);
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut labels = Vec::new();
    for batch in &batches {
        let outputs = batch.column(0).as_any().downcast_ref::<StructArray>().unwrap();
        let label = outputs.column_by_name("output_label").unwrap();
        labels.extend(label.as_any().downcast_ref::<Int64Array>().unwrap().values().iter().copied());
    }
    let expected: Vec<i64> = logged["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(labels, expected);
}

/// Streams Python's request rows through a channel into a Delta inference table and checks
/// the rows the table holds: Python's labels and probabilities, the version that scored.
#[cfg(feature = "delta")]
async fn stream_and_check(model: Arc<dyn mlops_registry::ModelSource>, logged: &Value) {
    use mlops_infer::stream::{ChannelSource, Checkpoint, StreamingScorer};
    use mlops_infer::{InferenceTable, InferenceTableConfig, TableLocation};

    let dir = tempfile::tempdir().unwrap();
    let table = Arc::new(
        InferenceTable::new(
            TableLocation::local(dir.path().join("inference")).unwrap(),
            InferenceTableConfig::new(["id"]),
        )
        .unwrap(),
    );
    let (sender, source) = ChannelSource::new(4);
    let checkpoint = Checkpoint::local(dir.path().join("checkpoint")).unwrap();
    let mut stream = StreamingScorer::new("python-model", source, model, table.clone(), checkpoint);
    let mut records = logged_frame(logged);
    let ids: Vec<String> = (0..records.height()).map(|i| format!("r{i}")).collect();
    records.insert_column(0, Column::new("id".into(), ids)).unwrap();
    // Two micro-batches, so rows from both meet in the table.
    let half = (records.height() / 2) as i64;
    sender.send(records.slice(0, half as usize)).await.unwrap();
    sender.send(records.slice(half, records.height())).await.unwrap();
    drop(sender);
    let report = stream.run(std::future::pending()).await.unwrap();
    assert_eq!(report.scored, records.height());

    let stored = table.read().await.unwrap().sort(["id"], SortMultipleOptions::default()).unwrap();
    assert_eq!(stored.height(), records.height());
    let labels: Vec<i64> = stored.column("output_label").unwrap().i64().unwrap().into_no_null_iter().collect();
    let expected: Vec<i64> = logged["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(labels, expected, "the stream's labels are Python's");
    let probabilities = stored.column("output_probability").unwrap().struct_().unwrap().clone();
    let wanted = logged["probabilities"].as_array().unwrap();
    for class in 0..2 {
        let field = probabilities.field_by_name(&class.to_string()).unwrap();
        let found = field.cast(&DataType::Float64).unwrap();
        for (found, want) in found.f64().unwrap().into_no_null_iter().zip(wanted) {
            let want = want[class].as_f64().unwrap();
            assert!((found - want).abs() <= 1e-5 * want.abs().max(found.abs()), "P({class}): {found} vs {want}");
        }
    }
    let versions = stored.column("model_version").unwrap().cast(&DataType::Int64).unwrap();
    assert!(versions.i64().unwrap().into_no_null_iter().all(|v| v == 1), "version 1 scored every row");
}

/// Python's request rows as a frame.
fn logged_frame(logged: &Value) -> DataFrame {
    let records = logged["records"].as_array().unwrap();
    let product: Vec<Option<&str>> = records.iter().map(|r| r["Product"].as_str()).collect();
    let customer: Vec<i64> = records.iter().map(|r| r["CustomerID"].as_i64().unwrap()).collect();
    let amount: Vec<Option<f32>> = records.iter().map(|r| r["Amount"].as_f64().map(|v| v as f32)).collect();
    df!("Product" => product, "CustomerID" => customer, "Amount" => amount).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_the_signature_of_a_version_rust_registers() {
    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let Some(_) = server(PYTHON, "Python with mlflow") else { return };
    let registry = MlflowRegistry::builder(&uri).experiment("rust-models").build().unwrap();
    let name: ModelName = unique_prefix("rust_model").replace('-', "_").parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    let train =
        df!("Product" => ["A", "B", "A", "B"], "Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1]).unwrap();
    let model = TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount"])
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    let version =
        registry.create_version(CreateVersion::new(name.clone(), model.package(Some(&train)).unwrap())).await.unwrap();

    let info = python(&uri, &["info", name.as_str(), &version.version.to_string()]);
    let inputs = info["inputs"].as_array().unwrap();
    let columns: Vec<(&str, &str)> =
        inputs.iter().map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap())).collect();
    assert_eq!(columns, [("Product", "string"), ("Amount", "double")]);
    assert_eq!(info["flavors"], json!(["mlops"]));
    let run = version.run.as_ref().unwrap();
    assert_eq!(info["model_uri"], format!("runs:/{}/model", run.run_id));
}
