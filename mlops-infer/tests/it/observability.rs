//! What an operator sees: `/metrics` read by the official Prometheus parser and checked
//! against the requests sent, the spans and events of requests, registry calls and alias
//! swaps captured by a subscriber, and the endpoint state routes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::PrometheusHandle;
use mlops_core::FlavorRegistry;
use mlops_infer::serve::{
    Endpoint, ModelServer, ModelSlot, REQUEST_ID_HEADER, ROUTE_HEADER, TRACEPARENT_HEADER, prometheus_builder,
};
use mlops_registry::{LiveModel, LoadedModel, Registry, RegistryExt, SetAlias};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::serve::{post, registered, serve, versions};
use crate::servers::{PYTHON, server, test_file};

/// The process's Prometheus recorder, installed once for every test of this binary (tests
/// tell their series apart by endpoint name).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| prometheus_builder().install_recorder().unwrap()).clone()
}

/// One sample as the Prometheus parser read it.
#[derive(Debug, Clone)]
struct Sample {
    family_type: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// `/metrics` of `base`, parsed by the official Prometheus client; `None` (skipped) without
/// the test Python.
async fn scrape(base: &str) -> Option<Vec<Sample>> {
    let python = server(PYTHON, "the Python test environment (prometheus-client)")?;
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    let mut child = Command::new(python)
        .arg(test_file("tests/it/parse_prometheus.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser refused:\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let sample: Value = serde_json::from_str(line).unwrap();
            Sample {
                family_type: sample["type"].as_str().unwrap().to_owned(),
                name: sample["name"].as_str().unwrap().to_owned(),
                labels: serde_json::from_value(sample["labels"].clone()).unwrap(),
                value: sample["value"].as_f64().unwrap_or(f64::NAN),
            }
        })
        .collect();
    Some(samples)
}

/// The value of the sample `name` whose labels include all of `labels`, summed over the
/// samples that match (0 when none does).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// A live model on the latest version of `transactions`.
async fn follow_latest(registry: Arc<mlops_registry::MemoryRegistry>) -> LiveModel {
    let uri = "models:/transactions/latest".parse().unwrap();
    LiveModel::start(registry, uri, FlavorRegistry::with_builtins(), std::time::Duration::from_secs(60)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_every_request_by_endpoint_route_status_and_format() {
    let handle = prometheus();
    let (registry, mut loaded) = registered(2).await;
    let second = loaded.pop().unwrap();
    let first = loaded.pop().unwrap();
    let endpoint = Endpoint::builder()
        .route("champion", Arc::new(ModelSlot::loaded(first)), 50)
        .route("challenger", Arc::new(ModelSlot::loaded(second)), 50)
        .shadow("candidate", Arc::new(ModelSlot::empty()))
        .build()
        .unwrap();
    let live = follow_latest(registry.clone()).await;
    let server = ModelServer::new()
        .endpoint("metered", endpoint)
        .unwrap()
        .endpoint("followed", Arc::new(live))
        .unwrap()
        .prometheus(handle);
    let base = serve(server).await;
    let url = format!("{base}/serving-endpoints/metered/invocations");
    let json = Some("application/json");

    let split = json!({"dataframe_split": {"columns": ["Product", "Amount"], "data": [["A", 1.5], ["B", 29.0]]}});
    let records = json!({"dataframe_records": [{"Product": "C", "Amount": 3.0}]});
    let mut answered: HashMap<(String, &str), (u64, u64)> = HashMap::new();
    for (body, content_type, format, rows) in [
        (split.to_string(), json, "dataframe_split", 2),
        (records.to_string(), json, "dataframe_records", 1),
        ("Product,Amount\nA,1\nB,2\nC,3\n".to_owned(), Some("text/csv"), "csv", 3),
    ] {
        for _ in 0..6 {
            let (status, headers, answer) = post(&url, content_type, body.clone()).await;
            assert_eq!(status, 200, "{answer}");
            let entry = answered.entry((headers[ROUTE_HEADER].to_str().unwrap().to_owned(), format)).or_default();
            entry.0 += 1;
            entry.1 += rows;
        }
    }
    for _ in 0..2 {
        let (status, _, _) = post(&url, json, json!({"dataframe_records": [{"Product": "A"}]}).to_string()).await;
        assert_eq!(status, 400);
    }
    let (status, _, _) = post(&url, Some("text/plain"), "x").await;
    assert_eq!(status, 415);
    let (status, _, _) = post(&format!("{base}/serving-endpoints/no-such-endpoint/invocations"), json, "{}").await;
    assert_eq!(status, 404);

    // Shadow predictions run detached: let the last ones finish.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let Some(samples) = scrape(&base).await else { return };
    let endpoint = [("endpoint", "metered")];
    let mut total = 0;
    for ((route, format), (requests, _)) in &answered {
        let labels = [("endpoint", "metered"), ("route", route.as_str()), ("status", "200"), ("format", *format)];
        assert_eq!(value(&samples, "mlops_serving_requests_total", &labels), *requests as f64, "{labels:?}");
        total += requests;
    }
    assert_eq!(total, 18);
    for route in ["champion", "challenger"] {
        let labels = [("endpoint", "metered"), ("route", route)];
        let (requests, rows) = answered
            .iter()
            .filter(|((r, _), _)| r == route)
            .fold((0, 0), |(requests, rows), (_, (q, w))| (requests + q, rows + w));
        assert_eq!(value(&samples, "mlops_serving_rows_total", &labels), rows as f64, "{route}");
        assert_eq!(
            value(&samples, "mlops_serving_inference_duration_seconds_count", &labels),
            requests as f64,
            "{route}"
        );
        let version = if route == "champion" { "1" } else { "2" };
        let served = [("endpoint", "metered"), ("route", route), ("model", "transactions"), ("shadow", "false")];
        assert_eq!(value(&samples, "mlops_serving_route_model_version", &served), version.parse::<f64>().unwrap());
    }
    let shadow = [("endpoint", "metered"), ("route", "candidate"), ("shadow", "true")];
    assert_eq!(value(&samples, "mlops_serving_route_model_version", &shadow), 0.0);
    // A shadow route with no model fails each copy (or skips it when all shadow slots are busy).
    let shadows = [("endpoint", "metered"), ("route", "candidate")];
    assert_eq!(value(&samples, "mlops_serving_shadow_predictions_total", &shadows), 18.0);
    assert_eq!(
        value(&samples, "mlops_serving_shadow_predictions_total", &[("route", "candidate"), ("outcome", "ok")]),
        0.0
    );
    let refused = [("endpoint", "metered"), ("route", ""), ("status", "400"), ("format", "json")];
    assert_eq!(value(&samples, "mlops_serving_requests_total", &refused), 2.0);
    let unsupported = [("endpoint", "metered"), ("status", "415"), ("format", "")];
    assert_eq!(value(&samples, "mlops_serving_requests_total", &unsupported), 1.0);
    assert!(value(&samples, "mlops_serving_requests_total", &[("endpoint", ""), ("status", "404")]) >= 1.0);
    // Every answered request is in the latency histogram, in the bucket of +Inf at least.
    assert_eq!(value(&samples, "mlops_serving_request_duration_seconds_count", &endpoint), 21.0);
    let histogram = samples.iter().find(|s| s.name == "mlops_serving_request_duration_seconds_bucket").unwrap();
    assert_eq!(histogram.family_type, "histogram");
    assert_eq!(value(&samples, "mlops_serving_request_body_bytes_count", &endpoint), 20.0);
    assert_eq!(value(&samples, "mlops_serving_requests_in_flight", &endpoint), 0.0);
    assert_eq!(value(&samples, "mlops_serving_requests_queued", &endpoint), 0.0);

    // A live model: confirmed moments ago, serving what its URI designates.
    let followed = [("endpoint", "followed"), ("route", "default")];
    let since = value(&samples, "mlops_serving_route_seconds_since_confirmed", &followed);
    assert!((0.0..60.0).contains(&since), "{since}");
    assert_eq!(value(&samples, "mlops_serving_route_behind_target", &followed), 0.0);
    assert_eq!(value(&samples, "mlops_serving_route_model_version", &followed), 2.0);
    // The library's own metrics, recorded through the same facade.
    assert!(
        value(&samples, "mlops_registry_operations_total", &[("backend", "memory"), ("operation", "download_package")])
            >= 3.0
    );
    assert!(value(&samples, "mlops_live_model_version", &[("uri", "models:/transactions/latest")]) >= 2.0);
}

/// Spans (when they close) and events with mlops targets, as a subscriber sees them.
#[derive(Debug, Clone)]
struct Captured {
    kind: &'static str,
    name: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
    /// For an event, the fields of the spans it happened in, innermost first.
    scope: Vec<(String, BTreeMap<String, String>)>,
}

static CAPTURED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
/// Keeps the capture bounded whatever the other tests of the binary do.
const MAX_CAPTURED: usize = 200_000;

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

struct Capture;

fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("mlops")
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if ours(metadata) { Interest::always() } else { Interest::never() }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        ours(metadata)
    }

    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        attributes.record(&mut fields);
        if let Some(span) = context.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        if let Some(span) = context.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let scope = context
            .event_scope(event)
            .map(|scope| {
                scope
                    .map(|span| {
                        let fields = span.extensions().get::<Fields>().map(|f| f.0.clone()).unwrap_or_default();
                        (span.name().to_owned(), fields)
                    })
                    .collect()
            })
            .unwrap_or_default();
        keep(Captured {
            kind: "event",
            name: fields.0.get("message").cloned().unwrap_or_default(),
            level: *event.metadata().level(),
            fields: fields.0,
            scope,
        });
    }

    fn on_close(&self, id: Id, context: Context<'_, S>) {
        if let Some(span) = context.span(&id) {
            let fields = span.extensions().get::<Fields>().map(|f| f.0.clone()).unwrap_or_default();
            keep(Captured {
                kind: "span",
                name: span.name().to_owned(),
                level: *span.metadata().level(),
                fields,
                scope: Vec::new(),
            });
        }
    }
}

fn keep(captured: Captured) {
    let mut all = CAPTURED.lock();
    if all.len() >= MAX_CAPTURED {
        all.drain(..MAX_CAPTURED / 2);
    }
    all.push(captured);
}

/// Installs the capturing subscriber for the whole process, once.
fn capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture)).unwrap();
    });
}

/// What was captured and matches `keep`, waiting a little for spans closed on other threads.
async fn captured(keep: impl Fn(&Captured) -> bool) -> Vec<Captured> {
    for _ in 0..100 {
        let found: Vec<Captured> = CAPTURED.lock().iter().filter(|c| keep(c)).cloned().collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Vec::new()
}

fn field<'a>(captured: &'a Captured, name: &str) -> &'a str {
    captured.fields.get(name).map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_span_carries_its_endpoint_route_version_status_and_the_callers_trace() {
    capture();
    let model = versions(1).await.pop().unwrap();
    let joined = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&joined);
    let server = ModelServer::new()
        .endpoint("traced", Arc::new(ModelSlot::loaded(model)))
        .unwrap()
        .join_trace(move |_, parent| seen.lock().push(parent.trace_id_hex()));
    let base = serve(server).await;
    let url = format!("{base}/serving-endpoints/traced/invocations");
    let body = json!({"dataframe_records": [{"Product": "A", "Amount": 1.0}, {"Product": "B", "Amount": 2.0}]});
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(TRACEPARENT_HEADER, format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .header(REQUEST_ID_HEADER, "caller-request-17")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[REQUEST_ID_HEADER], "caller-request-17");

    let spans =
        captured(|c| c.kind == "span" && c.name == "request" && field(c, "request_id") == "caller-request-17").await;
    let [span] = spans.as_slice() else { panic!("one request span, not {spans:?}") };
    assert_eq!(span.level, tracing::Level::DEBUG);
    for (name, expected) in [
        ("endpoint", "traced"),
        ("route", "default"),
        ("model", "transactions"),
        ("version", "1"),
        ("format", "dataframe_records"),
        ("rows", "2"),
        ("status", "200"),
        ("trace_id", trace_id),
        ("parent_span_id", "00f067aa0ba902b7"),
    ] {
        assert_eq!(field(span, name), expected, "{name} in {span:?}");
    }
    assert!(field(span, "duration_ms").parse::<f64>().unwrap() > 0.0);
    assert_eq!(*joined.lock(), [trace_id]);

    // Without a usable id (or trace context), the server makes an id and answers it.
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(REQUEST_ID_HEADER, "x".repeat(500))
        .header(TRACEPARENT_HEADER, "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let made = response.headers()[REQUEST_ID_HEADER].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "{made}");
    let spans = captured(|c| c.kind == "span" && c.name == "request" && field(c, "request_id") == made).await;
    let [span] = spans.as_slice() else { panic!("one request span, not {spans:?}") };
    assert_eq!(field(span, "status"), "400");
    assert_eq!(field(span, "trace_id"), "");
    assert_eq!(joined.lock().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_calls_loads_swaps_and_failed_refreshes_are_traced() {
    capture();
    let (registry, _) = registered(2).await;
    let name: mlops_core::ModelName = "transactions".parse().unwrap();
    registry.set_alias(SetAlias::new(name.clone(), "traced-champion", 1)).await.unwrap();
    let uri = "models:/transactions@traced-champion";
    let live = LiveModel::start(
        registry.clone(),
        uri.parse().unwrap(),
        FlavorRegistry::with_builtins(),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let loaded = captured(|c| c.kind == "event" && c.name == "model loaded" && field(c, "uri") == uri).await;
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0].level, tracing::Level::INFO);
    assert_eq!(field(&loaded[0], "version"), "1");

    registry.set_alias(SetAlias::new(name.clone(), "traced-champion", 2)).await.unwrap();
    assert_eq!(live.refresh().await.unwrap(), Some(2));
    let swapped = captured(|c| c.kind == "event" && c.name == "model swapped" && field(c, "uri") == uri).await;
    let [swap] = swapped.as_slice() else { panic!("one swap, not {swapped:?}") };
    assert_eq!((field(swap, "from_version"), field(swap, "to_version")), ("1", "2"));
    assert_eq!(swap.scope[0].0, "live_model");

    // The registry span of that alias move, with the fields it names.
    let moves = captured(|c| {
        c.kind == "span" && c.name == "registry" && field(c, "alias") == "traced-champion" && field(c, "version") == "2"
    })
    .await;
    let [set] = moves.as_slice() else { panic!("one alias move, not {moves:?}") };
    for (field_name, expected) in
        [("backend", "memory"), ("operation", "set_alias"), ("model", "transactions"), ("outcome", "ok")]
    {
        assert_eq!(field(set, field_name), expected, "{set:?}");
    }
    assert!(field(set, "duration_ms").parse::<f64>().is_ok());

    // An alias onto a version that is not there: the refresh fails and says so at warn.
    registry.delete_alias(&name, "traced-champion").await.unwrap();
    assert!(live.refresh().await.is_err());
    let failed = captured(|c| c.kind == "event" && c.name == "refresh failed" && field(c, "uri") == uri).await;
    let [failure] = failed.as_slice() else { panic!("one failure, not {failed:?}") };
    assert_eq!(failure.level, tracing::Level::WARN);
    assert_eq!(field(failure, "version"), "2");
    assert!(field(failure, "error").contains("traced-champion"), "{failure:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_state_says_what_each_route_serves_and_why_it_is_not_ready() {
    let (registry, mut loaded) = registered(2).await;
    let waiting = Arc::new(ModelSlot::empty());
    let live = follow_latest(registry.clone()).await;
    let endpoint = Endpoint::builder()
        .route("champion", Arc::new(live), 80)
        .route("challenger", waiting.clone(), 20)
        .shadow("candidate", Arc::new(ModelSlot::loaded(loaded.remove(0))))
        .sticky_column("Product")
        .build()
        .unwrap();
    let base = serve(ModelServer::new().endpoint("split", endpoint).unwrap().ping_checks_readiness()).await;

    let state: Value = reqwest::get(format!("{base}/serving-endpoints/split")).await.unwrap().json().await.unwrap();
    assert_eq!(state["name"], "split");
    assert_eq!(state["state"]["ready"], "NOT_READY");
    assert!(state["state"]["reason"].as_str().unwrap().contains("route `challenger` has no model loaded"), "{state}");
    let entities = state["config"]["served_entities"].as_array().unwrap();
    assert_eq!(entities.len(), 3);
    assert_eq!(entities[0]["name"], "champion");
    assert_eq!(entities[0]["entity_name"], "transactions");
    assert_eq!(entities[0]["entity_version"], "2");
    assert_eq!(entities[0]["state"]["deployment"], "DEPLOYMENT_READY");
    assert_eq!(entities[0]["following"]["target_version"], "2");
    assert_eq!(entities[0]["following"]["polling"], true);
    assert!(entities[0]["following"]["last_swap"].as_str().unwrap().contains('T'));
    assert_eq!(entities[1]["state"]["deployment"], "DEPLOYMENT_CREATING");
    assert_eq!(entities[1]["entity_version"], Value::Null);
    assert_eq!(entities[1]["following"], Value::Null);
    assert_eq!((entities[2]["name"].as_str(), entities[2]["shadow"].as_bool()), (Some("candidate"), Some(true)));
    assert_eq!(entities[2]["entity_version"], "1");
    assert_eq!(
        state["config"]["traffic_config"]["routes"],
        json!([
            {"served_model_name": "champion", "traffic_percentage": 80},
            {"served_model_name": "challenger", "traffic_percentage": 20},
        ])
    );
    assert_eq!(state["config"]["sticky"], json!({"column": "Product"}));
    assert_eq!(reqwest::get(format!("{base}/ping")).await.unwrap().status(), 503);

    waiting.set(loaded.remove(0));
    let state: Value = reqwest::get(format!("{base}/serving-endpoints/split")).await.unwrap().json().await.unwrap();
    assert_eq!(state["state"], json!({"ready": "READY"}));
    assert_eq!(reqwest::get(format!("{base}/ping")).await.unwrap().status(), 200);
    let all: Value = reqwest::get(format!("{base}/serving-endpoints")).await.unwrap().json().await.unwrap();
    assert_eq!(all["endpoints"][0]["name"], "split");
    let missing = reqwest::get(format!("{base}/serving-endpoints/other")).await.unwrap();
    assert_eq!(missing.status(), 404);
    // No recorder given: no `/metrics` route.
    assert_eq!(reqwest::get(format!("{base}/metrics")).await.unwrap().status(), 404);
}

/// Runs `validate_openapi.py` on `document` and each (component schema, instance) pair.
fn validate_openapi(python: &str, document: &Value, instances: &[(&str, &Value)]) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    };
    let mut command = Command::new(python);
    command.arg(test_file("tests/it/validate_openapi.py")).arg(write("openapi.json", document));
    for (index, (schema, instance)) in instances.iter().enumerate() {
        command.arg(schema).arg(write(&format!("instance-{index}.json"), instance));
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "the OpenAPI validator refused:\n{}\n{document:#}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_validates_and_its_example_request_is_answered() {
    let Some(python) = server(PYTHON, "the Python test environment (openapi-spec-validator)") else { return };
    let (registry, _) = registered(1).await;
    let loaded = registry
        .load_model(&"models:/transactions/1".parse().unwrap(), &FlavorRegistry::with_builtins())
        .await
        .unwrap();
    assert!(loaded.input_example.is_some(), "the package keeps its input example");
    let unregistered = LoadedModel::unregistered("bare".parse().unwrap(), 4, Arc::clone(&loaded.model));
    let server = ModelServer::new()
        .endpoint("described", Arc::new(ModelSlot::loaded(loaded)))
        .unwrap()
        .endpoint("bare", Arc::new(ModelSlot::loaded(unregistered)))
        .unwrap()
        .endpoint("empty", Arc::new(ModelSlot::empty()))
        .unwrap();
    let base = serve(server).await;

    for name in ["described", "bare"] {
        let response = reqwest::get(format!("{base}/serving-endpoints/{name}/openapi")).await.unwrap();
        assert_eq!(response.status(), 200);
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let operation = &document["paths"][format!("/serving-endpoints/{name}/invocations")]["post"];
        let example = operation["requestBody"]["content"]["application/json"]["example"].clone();
        // The model's own input example where it has one; a record of placeholders otherwise.
        let format = if name == "described" { "dataframe_split" } else { "dataframe_records" };
        assert!(example.get(format).is_some(), "{name}: {example}");
        assert!(operation["requestBody"]["content"]["text/csv"].is_object());
        let properties = &document["components"]["schemas"]["Record"]["properties"];
        assert_eq!(properties["Amount"]["type"], "number", "{properties}");
        assert_eq!(properties["Product"]["type"], "string");

        let url = format!("{base}/serving-endpoints/{name}/invocations");
        let (status, _, answer) = post(&url, Some("application/json"), example.to_string()).await;
        assert_eq!(status, 200, "{name}: {answer}");
        let (status, _, refusal) = post(&url, Some("application/json"), r#"{"dataframe_records": [{}]}"#).await;
        assert_eq!(status, 400);
        validate_openapi(&python, &document, &[("Request", &example), ("Predictions", &answer), ("Error", &refusal)]);
    }
    // A request the document refuses is refused by its schema too: an unknown parameter.
    let document: Value =
        reqwest::get(format!("{base}/serving-endpoints/described/openapi")).await.unwrap().json().await.unwrap();
    assert_eq!(document["components"]["schemas"]["Params"]["additionalProperties"], false);

    let response = reqwest::get(format!("{base}/serving-endpoints/empty/openapi")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(reqwest::get(format!("{base}/serving-endpoints/nowhere/openapi")).await.unwrap().status(), 404);
}
