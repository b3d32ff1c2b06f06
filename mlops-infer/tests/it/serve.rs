//! The scoring server over real HTTP on loopback: every MLflow input format, the documented
//! errors, several endpoints, and health while a model is not loaded yet.

use std::sync::Arc;

use mlops_core::{FlavorRegistry, ModelName, TabularClassifierParams};
use mlops_infer::serve::{ENDPOINT_HEADER, MODEL_NAME_HEADER, MODEL_VERSION_HEADER, ModelServer, ModelSlot};
use mlops_registry::{CreateModel, CreateVersion, LoadedModel, MemoryRegistry, Registry, RegistryExt};
use polars::prelude::*;
use serde_json::{Value, json};

/// Versions 1..=count of a small classifier (each with another L2 penalty), registered and
/// loaded back as a server loads them.
async fn versions(count: u64) -> Vec<LoadedModel> {
    let train = df!(
        "Product" => ["A", "B", "A", "B", "C", "C"],
        "Amount" => [1.0, 30.0, 2.0, 28.0, 3.0, 33.0],
        "Label" => [0, 1, 0, 1, 0, 1],
    )
    .unwrap();
    let registry = MemoryRegistry::new();
    let name: ModelName = "transactions".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    let mut loaded = Vec::new();
    for version in 1..=count {
        let model = TabularClassifierParams::new("Label")
            .categorical(["Product"])
            .numeric(["Amount"])
            .l2_penalty(1.0 / version as f64)
            .check()
            .unwrap()
            .fit(&train)
            .unwrap();
        registry.create_version(CreateVersion::new(name.clone(), model.package(Some(&train)).unwrap())).await.unwrap();
        let uri = format!("models:/transactions/{version}").parse().unwrap();
        loaded.push(registry.load_model(&uri, &FlavorRegistry::with_builtins()).await.unwrap());
    }
    loaded
}

async fn serve(server: ModelServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, server.router()).await.unwrap() });
    format!("http://{address}")
}

async fn post(
    url: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

fn predictions(value: &Value) -> Vec<f64> {
    value["predictions"].as_array().unwrap().iter().map(|r| r["prediction"].as_f64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mlflow_input_format_gives_the_predictions_of_the_model_called_directly() {
    let model = versions(3).await.pop().unwrap();
    let frame = df!("Product" => ["A", "B", "C"], "Amount" => [1.5, 29.0, 3.0]).unwrap();
    let expected: Vec<f64> =
        model.model.predict(&frame).unwrap().column("prediction").unwrap().f64().unwrap().into_no_null_iter().collect();
    let base = serve(ModelServer::new().endpoint("transactions", Arc::new(ModelSlot::loaded(model))).unwrap()).await;

    let bodies = [
        json!({"dataframe_split": {"columns": ["Product", "Amount"], "data": [["A", 1.5], ["B", 29.0], ["C", 3.0]]}}),
        json!({"dataframe_split": {"index": [0, 1, 2], "columns": ["Amount", "Product"], "data": [[1.5, "A"], [29, "B"], [3, "C"]]}}),
        json!({"dataframe_records": [{"Product": "A", "Amount": 1.5}, {"Product": "B", "Amount": 29.0}, {"Product": "C", "Amount": 3.0}]}),
        json!({"instances": [{"Product": "A", "Amount": 1.5}, {"Product": "B", "Amount": 29.0}, {"Product": "C", "Amount": 3.0}]}),
        json!({"inputs": {"Product": ["A", "B", "C"], "Amount": [1.5, 29.0, 3.0]}}),
        json!({"instances": {"Product": ["A", "B", "C"], "Amount": [1.5, 29.0, 3.0]}}),
        json!({"inputs": [["A", 1.5], ["B", 29.0], ["C", 3.0]]}),
        json!({"inputs": {"Product": ["A", "B", "C"], "Amount": [1.5, 29.0, 3.0]}, "params": {}}),
    ];
    for path in ["/invocations", "/invocations/transactions", "/serving-endpoints/transactions/invocations"] {
        for body in &bodies {
            let (status, headers, answer) =
                post(&format!("{base}{path}"), Some("application/json"), body.to_string()).await;
            assert_eq!(status, 200, "{path} {body}: {answer}");
            assert_eq!(predictions(&answer), expected, "{path} {body}");
            assert_eq!(headers[MODEL_NAME_HEADER], "transactions");
            assert_eq!(headers[MODEL_VERSION_HEADER], "3");
            assert_eq!(headers[ENDPOINT_HEADER], "transactions");
        }
    }
    for content_type in ["text/csv", "text/csv; charset=utf-8"] {
        let (status, _, answer) =
            post(&format!("{base}/invocations"), Some(content_type), "Product,Amount\nA,1.5\nB,29\nC,3.0\n").await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(predictions(&answer), expected);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_documented_error_never_a_panic() {
    let mut loaded = versions(7).await;
    let (seventh, first) = (loaded.pop().unwrap(), loaded.swap_remove(0));
    let slot = Arc::new(ModelSlot::empty());
    let server = ModelServer::new()
        .endpoint("transactions", Arc::new(ModelSlot::loaded(first)))
        .unwrap()
        .endpoint("later", slot.clone())
        .unwrap()
        .body_limit(1_000);
    let base = serve(server).await;
    let url = format!("{base}/invocations");
    let json = Some("application/json");
    let cases: Vec<(Option<&str>, String, u16, &str, &str)> = vec![
        (json, "{not json".into(), 400, "MALFORMED_REQUEST", "not valid JSON"),
        (json, "[1, 2]".into(), 400, "BAD_REQUEST", "exactly one of the fields"),
        (
            json,
            json!({"dataframe_records": [], "inputs": []}).to_string(),
            400,
            "BAD_REQUEST",
            "exactly one of the fields",
        ),
        (json, json!({"columns": ["Amount"]}).to_string(), 400, "BAD_REQUEST", "exactly one of the fields"),
        (json, json!({"dataframe_records": []}).to_string(), 400, "BAD_REQUEST", "no rows"),
        (
            json,
            json!({"dataframe_records": [{"Product": "A", "Amount": "lots"}]}).to_string(),
            400,
            "BAD_REQUEST",
            "column `Amount`",
        ),
        (
            json,
            json!({"dataframe_records": [{"Product": "A"}]}).to_string(),
            400,
            "BAD_REQUEST",
            "missing required columns: Amount",
        ),
        (json, json!({"inputs": [["A"]]}).to_string(), 400, "BAD_REQUEST", "row 0 has 1 values"),
        (
            json,
            json!({"inputs": {"Product": ["A", "B"], "Amount": [1.0]}}).to_string(),
            400,
            "BAD_REQUEST",
            "column `Product` has 2 values where the others have 1",
        ),
        (
            json,
            json!({"inputs": {"Product": ["A"], "Amount": [1.0]}, "params": {"temperature": 1}}).to_string(),
            400,
            "BAD_REQUEST",
            "unknown parameter `temperature`",
        ),
        (
            Some("text/csv"),
            "Product,Amount\nA,lots\n".into(),
            400,
            "BAD_REQUEST",
            "column `Amount`: expected double, found `lots`",
        ),
        (
            json,
            format!("{{\"inputs\": {{\"Product\": [{}]}}}}", vec!["\"A\""; 400].join(",")),
            413,
            "REQUEST_LIMIT_EXCEEDED",
            "limit of 1000 bytes",
        ),
        (Some("text/plain"), "Amount\n1".into(), 415, "BAD_REQUEST", "not `text/plain`"),
        (Some("application/json; charset=latin-1"), "{}".into(), 415, "BAD_REQUEST", "UTF-8"),
        (None, "{}".into(), 415, "BAD_REQUEST", "Content-Type header is required"),
    ];
    for (content_type, body, status, code, message) in cases {
        let (found, _, answer) = post(&url, content_type, body.clone()).await;
        assert_eq!(found, status, "{body}: {answer}");
        assert_eq!(answer["error_code"], code, "{body}: {answer}");
        let text = answer["message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: `{text}` should mention `{message}`");
    }

    let body = json!({"inputs": {"Product": ["A"], "Amount": [1.0]}}).to_string();
    let (status, _, answer) = post(&format!("{base}/invocations/nope"), json, body.clone()).await;
    assert_eq!((status, answer["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));
    assert!(answer["message"].as_str().unwrap().contains("no endpoint `nope` (endpoints: later, transactions)"));
    let (status, _, _) = post(&format!("{base}/serving-endpoints/nope/invocations"), json, body.clone()).await;
    assert_eq!(status, 404);
    let (status, _, answer) = post(&format!("{base}/predict"), json, body.clone()).await;
    assert_eq!((status, answer["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));

    // A model that is not loaded yet: 503, and /health says so; /ping does not care.
    let (status, _, answer) = post(&format!("{base}/invocations/later"), json, body.clone()).await;
    assert_eq!((status, answer["error_code"].as_str()), (503, Some("TEMPORARILY_UNAVAILABLE")));
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("{base}/health")).send().await.unwrap().status(), 503);
    assert_eq!(client.get(format!("{base}/ping")).send().await.unwrap().status(), 200);
    slot.set(seventh);
    assert_eq!(client.get(format!("{base}/health")).send().await.unwrap().status(), 200);
    let (status, headers, _) = post(&format!("{base}/invocations/later"), json, body.clone()).await;
    assert_eq!((status, &headers[MODEL_VERSION_HEADER]), (200, &"7".parse::<reqwest::header::HeaderValue>().unwrap()));
    let (_, headers, _) = post(&format!("{base}/invocations"), json, body).await;
    assert_eq!(headers[MODEL_VERSION_HEADER], "1", "the first endpoint answers /invocations");
    let version = client.get(format!("{base}/version")).send().await.unwrap().text().await.unwrap();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}
