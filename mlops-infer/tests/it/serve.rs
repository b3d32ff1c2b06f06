//! The scoring server over real HTTP on loopback: every MLflow input format, the documented
//! errors, several endpoints, and health while a model is not loaded yet.

use std::sync::Arc;

use mlops_core::{FlavorRegistry, ModelName, TabularClassifierParams};
use mlops_infer::serve::{
    ENDPOINT_HEADER, Endpoint, Exchange, MODEL_NAME_HEADER, MODEL_VERSION_HEADER, MemoryRecorder, ModelServer,
    ModelSlot, ROUTE_HEADER, ServerSettings,
};
use mlops_registry::{
    CreateModel, CreateVersion, LiveModel, LoadedModel, MemoryRegistry, Registry, RegistryExt, SetAlias,
};
use polars::prelude::*;
use serde_json::{Value, json};

/// Versions 1..=count of a small classifier (each with another L2 penalty), registered and
/// loaded back as a server loads them.
pub(crate) async fn versions(count: u64) -> Vec<LoadedModel> {
    registered(count).await.1
}

/// The registry holding `transactions` versions 1..=count, and each version loaded.
pub(crate) async fn registered(count: u64) -> (Arc<MemoryRegistry>, Vec<LoadedModel>) {
    let train = df!(
        "Product" => ["A", "B", "A", "B", "C", "C"],
        "Amount" => [1.0, 30.0, 2.0, 28.0, 3.0, 33.0],
        "Label" => [0, 1, 0, 1, 0, 1],
    )
    .unwrap();
    let registry = Arc::new(MemoryRegistry::new());
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
    (registry, loaded)
}

pub(crate) async fn serve(server: ModelServer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        mlops_infer::serve::serve(listener, server.router(), ServerSettings::new(), std::future::pending())
            .await
            .unwrap()
    });
    format!("http://{address}")
}

pub(crate) async fn post(
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
            Some("text/csv"),
            "Product,Amount\nA,1.0\nB,NaN\n".into(),
            400,
            "BAD_REQUEST",
            "expected finite double values, found 1 NaN or infinite value (the first in row 1)",
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

fn version_of(headers: &reqwest::header::HeaderMap) -> u64 {
    headers[MODEL_VERSION_HEADER].to_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_shares_traffic_sticks_by_key_and_shadows_never_answer() {
    let mut loaded = versions(3).await.into_iter().map(|l| Arc::new(ModelSlot::loaded(l)));
    let (v1, v2, v3) = (loaded.next().unwrap(), loaded.next().unwrap(), loaded.next().unwrap());
    let recorder = Arc::new(MemoryRecorder::new(100_000));
    let split = Endpoint::builder()
        .route("champion", v1.clone(), 90)
        .route("challenger", v2.clone(), 10)
        .shadow("candidate", v3.clone())
        .sticky_header("x-customer-id")
        .build()
        .unwrap();
    let by_product = Endpoint::builder()
        .route("champion", v1.clone(), 50)
        .route("challenger", v2.clone(), 50)
        .shadow("cold", Arc::new(ModelSlot::empty()))
        .sticky_column("Product")
        .build()
        .unwrap();
    let server = ModelServer::new()
        .endpoint("split", split)
        .unwrap()
        .endpoint("by-product", by_product)
        .unwrap()
        .recorder(recorder.clone());
    let base = serve(server).await;
    let client = reqwest::Client::new();
    let body = json!({"inputs": {"Product": ["A"], "Amount": [2.0]}}).to_string();
    let call = |path: &'static str, customer: Option<String>, body: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut request =
                client.post(format!("{base}{path}")).header("Content-Type", "application/json").body(body);
            if let Some(customer) = customer {
                request = request.header("x-customer-id", customer);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            (version_of(response.headers()), response.headers()[ROUTE_HEADER].to_str().unwrap().to_owned())
        }
    };

    // Without a key: random, in the configured shares.
    let requests = 2_000;
    let mut challenger = 0;
    for _ in 0..requests {
        let (version, route) = call("/invocations/split", None, body.clone()).await;
        assert_ne!(version, 3, "a shadow never answers");
        assert_eq!(route, if version == 2 { "challenger" } else { "champion" });
        challenger += usize::from(version == 2);
    }
    assert!(
        (140..=260).contains(&challenger),
        "challenger got {challenger} of {requests} requests, expected about 10%"
    );

    // With a key: each customer always meets the same version.
    let mut customers_on_challenger = 0;
    for customer in 0..300 {
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(call("/invocations/split", Some(format!("customer-{customer}")), body.clone()).await.0);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "customer-{customer} met versions {seen:?}");
        customers_on_challenger += usize::from(seen[0] == 2);
    }
    assert!(
        (10..=55).contains(&customers_on_challenger),
        "{customers_on_challenger} of 300 customers on the challenger"
    );

    // Sticky by an input column.
    for product in ["A", "B", "C"] {
        let body = json!({"inputs": {"Product": [product], "Amount": [2.0]}}).to_string();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(call("/invocations/by-product", None, body.clone()).await.0);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "Product {product} met versions {seen:?}");
    }

    // Every request to `split` was copied to the shadow, whose answers were recorded.
    let expected_shadows = requests + 900;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let shadow = |e: &&Exchange| e.route == "candidate";
    while recorder.exchanges().iter().filter(shadow).count() < expected_shadows {
        assert!(std::time::Instant::now() < deadline, "shadow answers were not all recorded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let exchanges = recorder.exchanges();
    for exchange in exchanges.iter().filter(shadow) {
        assert!(exchange.shadow);
        assert_eq!((exchange.endpoint.as_str(), exchange.model.as_ref().map(|m| m.1)), ("split", Some(3)));
        assert_eq!(exchange.outcome.as_ref().unwrap().height(), exchange.input.height());
    }
    // A shadow without a model never fails the caller; its miss is recorded.
    let cold: Vec<&Exchange> = exchanges.iter().filter(|e| e.route == "cold").collect();
    assert!(!cold.is_empty());
    assert!(cold.iter().all(|e| e.outcome.as_ref().is_err_and(|why| why.contains("no model loaded"))));
}

#[test]
fn endpoint_definitions_are_checked() {
    let slot = || -> Arc<dyn mlops_infer::serve::ModelSource> { Arc::new(ModelSlot::empty()) };
    let message = |builder: mlops_infer::serve::EndpointBuilder| builder.build().unwrap_err().to_string();
    assert!(message(Endpoint::builder()).contains("at least one serving route"));
    assert!(
        message(Endpoint::builder().route("a", slot(), 90).route("b", slot(), 20))
            .contains("route shares must sum to 100, not 110 (a 90%, b 20%)")
    );
    // Shares that would wrap around to 100 in 32 bits are summed without wrapping.
    assert!(
        message(Endpoint::builder().route("a", slot(), u32::MAX).route("b", slot(), 101)).contains("not 4294967396")
    );
    assert!(
        message(Endpoint::builder().route("a", slot(), 100).shadow("a", slot())).contains("route `a` is defined twice")
    );
    assert!(
        message(Endpoint::builder().route("a", slot(), 100).sticky_header("bad header"))
            .contains("`bad header` is not a valid header name")
    );
    let err = ModelServer::new().endpoint("a/b", slot()).unwrap_err().to_string();
    assert!(err.contains("endpoint name `a/b`"), "{err}");
}

/// Requests keep flowing while `champion` moves: none fails, and once the live model has
/// refreshed, every answer comes from the new version.
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_follows_its_alias_without_a_failed_request() {
    let train =
        df!("Product" => ["A", "B", "A", "B"], "Amount" => [1.0, 30.0, 2.0, 28.0], "Label" => [0, 1, 0, 1]).unwrap();
    let registry = Arc::new(MemoryRegistry::new());
    let name: ModelName = "transactions".parse().unwrap();
    registry.create_model(CreateModel::new(name.clone())).await.unwrap();
    for l2 in [1.0, 0.01] {
        let model = TabularClassifierParams::new("Label")
            .categorical(["Product"])
            .numeric(["Amount"])
            .l2_penalty(l2)
            .check()
            .unwrap()
            .fit(&train)
            .unwrap();
        registry.create_version(CreateVersion::new(name.clone(), model.package(Some(&train)).unwrap())).await.unwrap();
    }
    registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await.unwrap();
    let live = Arc::new(
        LiveModel::start(
            registry.clone(),
            "models:/transactions@champion".parse().unwrap(),
            FlavorRegistry::with_builtins(),
            std::time::Duration::from_secs(3600),
        )
        .await
        .unwrap(),
    );
    let base = serve(ModelServer::new().endpoint("transactions", live.clone()).unwrap()).await;
    let body = json!({"dataframe_split": {"columns": ["Product", "Amount"], "data": [["A", 3.0]]}}).to_string();

    let caller = {
        let (base, body) = (base.clone(), body.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut versions = Vec::new();
            for _ in 0..400 {
                let response = client
                    .post(format!("{base}/invocations"))
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "a request failed while the alias moved");
                versions.push(version_of(response.headers()));
            }
            versions
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    registry.set_alias(SetAlias::new(name, "champion", 2)).await.unwrap();
    live.refresh().await.unwrap();
    let after = post(&format!("{base}/invocations"), Some("application/json"), body).await;
    assert_eq!(version_of(&after.1), 2);
    let versions = caller.await.unwrap();
    let switched = versions.iter().position(|&v| v == 2).unwrap_or(versions.len());
    assert!(versions[switched..].iter().all(|&v| v == 2), "an old version answered after the switch: {versions:?}");
}

/// A model that takes its time and counts how many of its predictions overlap.
pub(crate) struct Slow {
    signature: mlops_core::Signature,
    delay: std::time::Duration,
    running: std::sync::atomic::AtomicUsize,
    pub(crate) most: std::sync::atomic::AtomicUsize,
}

impl mlops_core::Model for Slow {
    fn signature(&self) -> &mlops_core::Signature {
        &self.signature
    }

    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        use std::sync::atomic::Ordering;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.running.fetch_sub(1, Ordering::SeqCst);
        Ok(df!("prediction" => vec![0.5; input.height()])?)
    }
}

pub(crate) async fn slow(delay_ms: u64) -> (Arc<Slow>, LoadedModel) {
    let template = versions(1).await.pop().unwrap();
    let slow = Arc::new(Slow {
        signature: template.model.signature().clone(),
        delay: std::time::Duration::from_millis(delay_ms),
        running: 0.into(),
        most: 0.into(),
    });
    (slow.clone(), LoadedModel { version: template.version, model: slow, input_example: None })
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_requests_time_out_bursts_queue_and_shutdown_finishes_requests_in_flight() {
    let body = json!({"inputs": {"Product": ["A"], "Amount": [1.0]}}).to_string();

    // Over the timeout: 504, in MLflow's error shape.
    let (_, sleepy) = slow(3_000).await;
    let server = ModelServer::new()
        .endpoint("slow", Arc::new(ModelSlot::loaded(sleepy)))
        .unwrap()
        .request_timeout(std::time::Duration::from_millis(200));
    let base = serve(server).await;
    let (status, _, answer) = post(&format!("{base}/invocations"), Some("application/json"), body.clone()).await;
    assert_eq!((status, answer["error_code"].as_str()), (504, Some("DEADLINE_EXCEEDED")), "{answer}");

    // A burst of 12 against a limit of 2: all answered, never more than 2 at once.
    let (model, loaded) = slow(50).await;
    let base = serve(
        ModelServer::new().endpoint("slow", Arc::new(ModelSlot::loaded(loaded))).unwrap().concurrency_limit(2).unwrap(),
    )
    .await;
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let (url, body) = (format!("{base}/invocations"), body.clone());
            tokio::spawn(async move { post(&url, Some("application/json"), body).await.0 })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(model.most.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(ModelServer::new().concurrency_limit(0).is_err());

    // Graceful shutdown: a request in flight when shutdown starts still gets its answer.
    let (_, loaded) = slow(500).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/invocations", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = ModelServer::new().endpoint("slow", Arc::new(ModelSlot::loaded(loaded))).unwrap().router();
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = stopped.await;
        };
        mlops_infer::serve::serve(listener, app, ServerSettings::new(), stopped).await
    });
    let in_flight = tokio::spawn({
        let (url, body) = (url.clone(), body.clone());
        async move { post(&url, Some("application/json"), body).await.0 }
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stop.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap(), 200, "the request in flight was answered");
    server.await.unwrap().unwrap();
    assert!(reqwest::Client::new().post(&url).body(body).send().await.is_err(), "the server stopped accepting");
}

/// An inference table keyed by `Product` under `dir`.
#[cfg(feature = "delta")]
fn online_table(dir: &std::path::Path) -> Arc<mlops_infer::InferenceTable> {
    use mlops_infer::{InferenceTable, InferenceTableConfig, TableLocation};
    let location = TableLocation::local(dir.join("online")).unwrap();
    Arc::new(InferenceTable::new(location, InferenceTableConfig::new(["Product"])).unwrap())
}

/// A sampled share of the answers, and every shadow answer, land in a Delta inference table.
#[cfg(feature = "delta")]
#[tokio::test(flavor = "multi_thread")]
async fn online_traffic_is_captured_into_an_inference_table() {
    use mlops_infer::serve::{InferenceCapture, ROUTE_COLUMN, SHADOW_COLUMN};

    let dir = tempfile::tempdir().unwrap();
    let table = online_table(dir.path());
    let capture = InferenceCapture::start(table.clone(), 50, std::time::Duration::from_millis(200), 10_000).unwrap();
    let mut loaded = versions(2).await.into_iter().map(|l| Arc::new(ModelSlot::loaded(l)));
    let (v1, v2) = (loaded.next().unwrap(), loaded.next().unwrap());
    let endpoint = Endpoint::builder().route("champion", v1, 100).shadow("candidate", v2).build().unwrap();
    let server =
        ModelServer::new().endpoint("transactions", endpoint).unwrap().recorder(capture.clone()).capture(0.5).unwrap();
    assert!(ModelServer::new().capture(1.5).is_err());
    let base = serve(server).await;
    let requests = 200;
    for i in 0..requests {
        let body = json!({"inputs": {"Product": ["A"], "Amount": [i as f64]}}).to_string();
        assert_eq!(post(&format!("{base}/invocations"), Some("application/json"), body).await.0, 200);
    }
    // Shadow answers are recorded after the caller's answer: wait until all are queued.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        capture.flush().await;
        let stats = capture.stats();
        assert_eq!((stats.dropped, stats.failed_exchanges, stats.last_error.as_deref()), (0, 0, None));
        if stats.rows_written >= 200 + 60 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "captured rows did not arrive: {stats:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    capture.flush().await;

    let rows = table.read().await.unwrap();
    let shadow = rows.column(SHADOW_COLUMN).unwrap().bool().unwrap().clone();
    let shadows = shadow.sum().unwrap() as usize;
    let served = rows.height() - shadows;
    assert_eq!(shadows, requests, "every shadow answer is captured");
    assert!((60..=140).contains(&served), "{served} of {requests} served answers captured at a 50% rate");
    let routes = rows.column(ROUTE_COLUMN).unwrap().str().unwrap().clone();
    let versions = rows.column("model_version").unwrap().i64().unwrap().clone();
    for ((is_shadow, route), version) in shadow.iter().zip(routes.iter()).zip(versions.iter()) {
        let expected = if is_shadow == Some(true) { ("candidate", 2) } else { ("champion", 1) };
        assert_eq!((route.unwrap(), version.unwrap()), expected);
    }
    assert_eq!(rows.column("prediction").unwrap().null_count(), 0);
}

/// Sums each image's pixels: a model whose input is a tensor, as ONNX networks are.
struct PixelSum(mlops_core::Signature);

impl PixelSum {
    fn new(name: Option<&str>, shape: Vec<i64>) -> Self {
        let spec = mlops_core::TensorSpec::new(name, mlops_core::TensorType::Float32, shape).unwrap();
        Self(mlops_core::Signature::new(mlops_core::Schema::of_tensors(vec![spec]).unwrap()))
    }
}

impl mlops_core::Model for PixelSum {
    fn signature(&self) -> &mlops_core::Signature {
        &self.0
    }

    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        let input = self.0.enforce(input)?;
        let spec = &self.0.inputs.tensors()[0];
        let values: Vec<f32> = spec.values(input.column(spec.column_name())?)?.f32()?.into_no_null_iter().collect();
        let totals: Vec<f32> = values.chunks(spec.row_len()).map(|row| row.iter().sum()).collect();
        Ok(df!("total" => totals)?)
    }
}

fn tensor_server(model: PixelSum) -> ModelServer {
    let registry_version = mlops_registry::ModelVersion {
        name: "pixels".parse().unwrap(),
        version: 1,
        description: String::new(),
        tags: Default::default(),
        source: String::new(),
        flavor: String::new(),
        package_digest: String::new(),
        run: None,
        lineage: Default::default(),
        aliases: Vec::new(),
        created_at: Default::default(),
        updated_at: Default::default(),
    };
    let loaded = LoadedModel { version: registry_version, model: Arc::new(model), input_example: None };
    ModelServer::new().endpoint("pixels", Arc::new(ModelSlot::loaded(loaded))).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tensor_models_take_nested_lists_and_answer_by_output_as_mlflow_does() {
    let base = serve(tensor_server(PixelSum::new(Some("image"), vec![-1, 2, 2]))).await;
    let url = format!("{base}/invocations");
    let expected = json!({ "predictions": { "total": [10.0, 1.0] } });
    for body in [
        json!({ "inputs": [[[1, 2], [3, 4]], [[0, 0], [0, 1]]] }),
        json!({ "instances": [[[1, 2], [3, 4]], [[0, 0], [0, 1]]] }),
        json!({ "inputs": { "image": [[[1, 2], [3, 4]], [[0, 0], [0, 1]]] } }),
    ] {
        let (status, _, answer) = post(&url, Some("application/json"), body.to_string()).await;
        assert_eq!((status, &answer), (200, &expected), "{body}");
    }
    let (status, _, answer) =
        post(&url, Some("application/json"), json!({ "inputs": [[[1, 2, 3], [3, 4, 5]]] }).to_string()).await;
    assert_eq!(status, 400);
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("`image`") && message.contains("(-1, 2, 2)") && message.contains("[0, 0]"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_fills_an_unnamed_tensor_with_its_columns() {
    let base = serve(tensor_server(PixelSum::new(None, vec![-1, 3]))).await;
    let url = format!("{base}/invocations");
    let body = json!({ "dataframe_split": { "columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6.5]] } });
    let (status, _, answer) = post(&url, Some("application/json"), body.to_string()).await;
    assert_eq!((status, answer), (200, json!({ "predictions": { "total": [6.0, 15.5] } })));
    let (status, _, answer) = post(&url, Some("text/csv"), "a,b,c\n1,2,3\n").await;
    assert_eq!((status, answer), (200, json!({ "predictions": { "total": [6.0] } })));
}

/// Predicts `Amount` back; `Note` is an optional input some requests carry.
#[cfg(feature = "delta")]
struct EchoAmount(mlops_core::Signature);

#[cfg(feature = "delta")]
impl mlops_core::Model for EchoAmount {
    fn signature(&self) -> &mlops_core::Signature {
        &self.0
    }

    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        let input = self.0.enforce(input)?;
        Ok(DataFrame::new(input.height(), vec![input.column("Amount")?.clone().with_name("prediction".into())])?)
    }
}

/// Every request is captured with its id, status and time, failed ones in the requests
/// table too; a request carrying an optional column the table lacks adds it.
#[cfg(feature = "delta")]
#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_captured_failed_ones_too_and_new_columns_evolve_the_table() {
    use mlops_core::{ColSpec, ColumnType, Schema, Signature};
    use mlops_infer::TableLocation;
    use mlops_infer::serve::{EXECUTION_TIME_COLUMN, InferenceCapture, REQUEST_ID_COLUMN, STATUS_CODE_COLUMN};

    let dir = tempfile::tempdir().unwrap();
    let table = online_table(dir.path());
    let requests_dir = dir.path().join("requests");
    let capture = InferenceCapture::builder(table.clone())
        .batch_rows(100)
        .flush_every(std::time::Duration::from_millis(100))
        .requests_table(TableLocation::local(&requests_dir).unwrap())
        .start()
        .unwrap();
    let note = ColSpec::new("Note", ColumnType::String).optional().nullable();
    let signature = Signature::new(
        Schema::new(vec![
            ColSpec::new("Product", ColumnType::String),
            ColSpec::new("Amount", ColumnType::Double),
            note,
        ])
        .unwrap(),
    );
    let model = LoadedModel::unregistered("echo".parse().unwrap(), 3, Arc::new(EchoAmount(signature)));
    let server = ModelServer::new()
        .endpoint("echo", Arc::new(ModelSlot::loaded(model)))
        .unwrap()
        .recorder(capture.clone())
        .capture(1.0)
        .unwrap();
    let base = serve(server).await;
    let url = format!("{base}/invocations");
    for (id, body, status) in [
        ("r-1", json!({"dataframe_records": [{"Product": "A", "Amount": 1.5}]}).to_string(), 200),
        ("r-2", json!({"dataframe_records": [{"Product": "B", "Amount": 2.5, "Note": "late"}]}).to_string(), 200),
        ("r-3", json!({"dataframe_records": [{"Product": "C"}]}).to_string(), 400),
        ("r-4", "{broken".to_owned(), 400),
    ] {
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header(mlops_infer::serve::REQUEST_ID_HEADER, id)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{id}");
    }
    capture.flush().await;
    let stats = capture.stats();
    assert_eq!((stats.rows_written, stats.requests_written, stats.failed_exchanges), (2, 4, 2), "{stats:?}");
    assert_eq!(stats.last_error, None);

    let rows = table.read().await.unwrap().sort([REQUEST_ID_COLUMN], Default::default()).unwrap();
    let ids: Vec<Option<&str>> = rows.column(REQUEST_ID_COLUMN).unwrap().str().unwrap().iter().collect();
    assert_eq!(ids, [Some("r-1"), Some("r-2")]);
    let notes: Vec<Option<&str>> = rows.column("Note").unwrap().str().unwrap().iter().collect();
    assert_eq!(notes, [None, Some("late")], "the second request added `Note` to the table");
    assert_eq!(
        rows.column(STATUS_CODE_COLUMN).unwrap().i32().unwrap().into_no_null_iter().collect::<Vec<_>>(),
        [200, 200]
    );
    assert!(rows.column(EXECUTION_TIME_COLUMN).unwrap().f64().unwrap().into_no_null_iter().all(|ms| ms > 0.0));
    assert_eq!(rows.column("model_version").unwrap().i64().unwrap().into_no_null_iter().collect::<Vec<_>>(), [3, 3]);

    // The requests table, read by an independent reader.
    let Some(python) = crate::servers::server(crate::servers::PYTHON, "the Python deltalake reader") else { return };
    let output = std::process::Command::new(python)
        .arg(crate::servers::test_file("tests/it/read_delta.py"))
        .arg(requests_dir.to_str().unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "read_delta.py: {}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut logged: Vec<(String, i64, Option<String>, i64)> = seen["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["request_id"].as_str().unwrap().to_owned(),
                row["status_code"].as_i64().unwrap(),
                row["error"].as_str().map(str::to_owned),
                row["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    logged.sort();
    assert_eq!(logged.len(), 4, "{seen}");
    assert_eq!(logged[0], ("r-1".to_owned(), 200, None, 1));
    assert_eq!((logged[2].1, logged[2].3), (400, 0));
    assert!(logged[2].2.as_deref().is_some_and(|e| e.contains("Amount")), "{:?}", logged[2]);
    assert!(logged[3].2.as_deref().is_some_and(|e| e.contains("JSON")), "{:?}", logged[3]);
    for row in seen["rows"].as_array().unwrap() {
        assert_eq!((row["endpoint"].as_str(), row["shadow"].as_bool()), (Some("echo"), Some(false)));
        assert!(row["execution_time_ms"].as_f64().unwrap() > 0.0);
    }
    let versions: Vec<Value> = seen["rows"].as_array().unwrap().iter().map(|r| r["model_version"].clone()).collect();
    // The requests refused before a route took them name no model.
    assert_eq!(versions.iter().filter(|v| **v == json!(3)).count(), 2, "{versions:?}");
    assert_eq!(versions.iter().filter(|v| v.is_null()).count(), 2, "{versions:?}");
}
