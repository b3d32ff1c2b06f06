//! The scoring server against hostile traffic: what a request costs is bounded by the
//! server's settings, never by the caller, and no request takes the server down.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_infer::serve::{
    Endpoint, Exchange, ExchangeRecorder, MAX_MESSAGE_BYTES, MemoryRecorder, ModelServer, ModelSlot, ServerSettings,
};
use mlops_registry::LoadedModel;
use polars::prelude::*;
use serde_json::{Value, json};

use super::serve::{post, registered, serve, slow, versions};

fn one_row() -> String {
    json!({"inputs": {"Product": ["A"], "Amount": [1.0]}}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn wide_records_and_huge_values_cost_what_their_body_costs() {
    let model = versions(1).await.pop().unwrap();
    let base = serve(ModelServer::new().endpoint("transactions", Arc::new(ModelSlot::loaded(model))).unwrap()).await;
    let url = format!("{base}/invocations");
    let json = Some("application/json");

    // Records with a field of their own each: read as they come, 8,000 of them make a
    // 64-million-cell frame from a 200 KB body. Three at once, then the server answers.
    let wide: Vec<Value> = (0..8_000).map(|i| json!({"Product": "A", "Amount": 1.0, format!("k{i}"): 1})).collect();
    let body = json!({ "dataframe_records": wide }).to_string();
    let attempts: Vec<_> = (0..3)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move { post(&url, Some("application/json"), body).await })
        })
        .collect();
    for attempt in attempts {
        let (status, _, answer) = attempt.await.unwrap();
        assert_eq!(status, 400, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("8000 distinct fields"), "{answer}");
    }
    let (status, _, answer) = post(&url, json, one_row()).await;
    assert_eq!(status, 200, "{answer}");

    // Error messages never echo a whole body.
    let huge = "9".repeat(1_000_000);
    for body in [
        json!({"dataframe_records": [{"Product": "A", "Amount": huge}]}),
        json!({"inputs": {"Product": ["A"], "Amount": [1.0]}, "params": {huge.clone(): 1}}),
        json!({"dataframe_records": huge}),
        json!({"inputs": [[huge]]}),
    ] {
        let (status, _, answer) = post(&url, json, body.to_string()).await;
        assert_eq!(status, 400, "{}", &answer.to_string()[..200]);
        let message = answer["message"].as_str().unwrap();
        assert!(message.len() <= MAX_MESSAGE_BYTES + 32, "a message of {} bytes", message.len());
    }
}

/// Sends `request` on `stream` and reads until the server closes the connection or
/// `patience` passes: what was read, and whether the server closed it.
fn talk(stream: &mut TcpStream, request: &[u8], patience: Duration) -> (String, bool) {
    stream.write_all(request).unwrap();
    stream.set_read_timeout(Some(patience)).unwrap();
    let (mut read, mut chunk) = (Vec::new(), [0u8; 4096]);
    let closed = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break false,
            Err(_) => break true,
        }
    };
    (String::from_utf8_lossy(&read).into_owned(), closed)
}

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: test\r\n\r\n";

async fn listen(server: ModelServer, settings: ServerSettings) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(mlops_infer::serve::serve(listener, server.router(), settings, std::future::pending()));
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_idle_connections_and_declared_giants_are_cut_off() {
    let model = versions(1).await.pop().unwrap();
    let server = ModelServer::new().endpoint("transactions", Arc::new(ModelSlot::loaded(model))).unwrap();
    let settings = ServerSettings::new().header_read_timeout(Duration::from_millis(300)).unwrap();
    let address = listen(server.clone(), settings).await;
    tokio::task::spawn_blocking(move || {
        // Headers that never end: closed after the header read timeout.
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).unwrap();
        let (_, closed) = talk(&mut stream, b"POST /invocations HTTP/1.1\r\nHost: test\r\nX-Slow: ", Duration::from_secs(5));
        assert!(closed && started.elapsed() < Duration::from_secs(3), "closed {closed} after {:?}", started.elapsed());

        // A keep-alive connection gets its answer, then is closed once idle too long.
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).unwrap();
        let (answer, closed) = talk(&mut stream, PING, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(closed && started.elapsed() < Duration::from_secs(3), "closed {closed} after {:?}", started.elapsed());

        // A body declared over the limit is refused before it is sent.
        let mut stream = TcpStream::connect(address).unwrap();
        let head = b"POST /invocations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n";
        let (answer, _) = talk(&mut stream, head, Duration::from_secs(2));
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("REQUEST_LIMIT_EXCEEDED"), "{answer}");
    })
    .await
    .unwrap();

    // At most one connection: the second waits until the first closes.
    let settings = ServerSettings::new().max_connections(1).unwrap();
    let address = listen(server, settings).await;
    tokio::task::spawn_blocking(move || {
        let mut first = TcpStream::connect(address).unwrap();
        let (answer, closed) = talk(&mut first, PING, Duration::from_millis(300));
        assert!(answer.starts_with("HTTP/1.1 200") && !closed, "{answer}");
        let mut second = TcpStream::connect(address).unwrap();
        let (answer, _) = talk(&mut second, PING, Duration::from_millis(500));
        assert_eq!(answer, "", "the second connection was served while the first was open");
        drop(first);
        let (answer, _) = talk(&mut second, b"", Duration::from_secs(3));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .unwrap();
    assert!(ServerSettings::new().max_connections(0).is_err());
    assert!(ServerSettings::new().max_header_bytes(100).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_waiting_and_scoring_stay_within_the_memory_budget() {
    // Each body is 3 KiB, and counts as twelve times that (what parsing and scoring it
    // takes): the 48 KiB budget holds one, so the model never sees two at once, though eight
    // could be scored at once.
    let (model, loaded) = slow(100).await;
    let server = ModelServer::new()
        .endpoint("slow", Arc::new(ModelSlot::loaded(loaded)))
        .unwrap()
        .concurrency_limit(8)
        .unwrap()
        .body_memory_limit(48 * 1024)
        .unwrap();
    let base = serve(server).await;
    let padded = format!("{}{}", one_row(), " ".repeat(3 * 1024));
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let (url, body) = (format!("{base}/invocations"), padded.clone());
            tokio::spawn(async move { post(&url, Some("application/json"), body).await.0 })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(model.most.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Small bodies share the same budget and are scored side by side.
    let (model, loaded) = slow(100).await;
    let server = ModelServer::new()
        .endpoint("slow", Arc::new(ModelSlot::loaded(loaded)))
        .unwrap()
        .body_memory_limit(48 * 1024)
        .unwrap();
    let base = serve(server).await;
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{base}/invocations");
            tokio::spawn(async move { post(&url, Some("application/json"), one_row()).await.0 })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert!(model.most.load(std::sync::atomic::Ordering::SeqCst) > 1);
    assert!(ModelServer::new().body_memory_limit(10).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn shadows_run_within_their_limit_and_skipped_copies_are_recorded() {
    let champion = versions(1).await.pop().unwrap();
    let (shadow, candidate) = slow(400).await;
    let recorder = Arc::new(MemoryRecorder::new(1_000));
    let endpoint = Endpoint::builder()
        .route("champion", Arc::new(ModelSlot::loaded(champion)), 100)
        .shadow("candidate", Arc::new(ModelSlot::loaded(candidate)))
        .build()
        .unwrap();
    let server = ModelServer::new()
        .endpoint("transactions", endpoint)
        .unwrap()
        .recorder(recorder.clone())
        .shadow_limit(1)
        .unwrap();
    let base = serve(server).await;
    for _ in 0..6 {
        let (status, _, answer) = post(&format!("{base}/invocations"), Some("application/json"), one_row()).await;
        assert_eq!(status, 200, "{answer}");
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    let shadows: Vec<Exchange> = recorder.exchanges().into_iter().filter(|e| e.shadow).collect();
    assert_eq!(shadows.len(), 6);
    let skipped = shadows.iter().filter(|e| e.outcome.as_ref().is_err_and(|why| why.starts_with("skipped"))).count();
    let scored = shadows.iter().filter(|e| e.outcome.is_ok()).count();
    assert!(skipped >= 1 && scored >= 1 && skipped + scored == 6, "{skipped} skipped, {scored} scored");
    assert_eq!(shadow.most.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(ModelServer::new().shadow_limit(0).is_err());
}

#[test]
fn the_memory_recorder_keeps_a_bounded_number_of_bytes() {
    let frame = df!("x" => vec![1.0f64; 1_000]).unwrap();
    let exchange = |input: DataFrame| Exchange {
        request_id: "id".into(),
        endpoint: "e".into(),
        route: "r".into(),
        shadow: true,
        model: None,
        outcome: Ok(input.clone()),
        input,
        status: 200,
        latency: Duration::ZERO,
        execution_time: Duration::ZERO,
    };
    let recorder = MemoryRecorder::new(1_000).with_byte_limit(100_000);
    for _ in 0..50 {
        recorder.record(exchange(frame.clone()));
    }
    let kept = recorder.exchanges().len();
    assert!(recorder.bytes() <= 100_000 && kept >= 5, "{kept} kept in {} bytes", recorder.bytes());
    assert_eq!(recorder.dropped(), 50 - kept as u64);
    recorder.record(exchange(df!("x" => vec![1.0f64; 100_000]).unwrap()));
    assert_eq!((recorder.exchanges().len(), recorder.dropped()), (kept, 51 - kept as u64), "too large on its own");
}

/// A model that panics, with a detail the caller must not see.
struct Panics(mlops_core::Signature);

impl mlops_core::Model for Panics {
    fn signature(&self) -> &mlops_core::Signature {
        &self.0
    }

    fn predict(&self, _: &DataFrame) -> mlops_core::Result<DataFrame> {
        panic!("secret detail of the model's internals")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_panics_answers_500_without_its_message_and_the_server_goes_on() {
    let template = versions(1).await.pop().unwrap();
    let panics = LoadedModel {
        version: template.version.clone(),
        model: Arc::new(Panics(template.model.signature().clone())),
        input_example: None,
    };
    let server = ModelServer::new()
        .endpoint("panics", Arc::new(ModelSlot::loaded(panics)))
        .unwrap()
        .endpoint("works", Arc::new(ModelSlot::loaded(template)))
        .unwrap();
    let base = serve(server).await;
    for _ in 0..3 {
        let (status, _, answer) =
            post(&format!("{base}/invocations/panics"), Some("application/json"), one_row()).await;
        assert_eq!((status, answer["error_code"].as_str()), (500, Some("INTERNAL_ERROR")), "{answer}");
        assert!(!answer.to_string().contains("secret"), "{answer}");
    }
    let (status, _, _) = post(&format!("{base}/invocations/works"), Some("application/json"), one_row()).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_a_live_model_that_stopped_confirming_its_alias() {
    use mlops_registry::{LiveModel, Registry, SetAlias};
    let (registry, _) = registered(1).await;
    let name: mlops_core::ModelName = "transactions".parse().unwrap();
    registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await.unwrap();
    let uri = "models:/transactions@champion".parse().unwrap();
    let interval = Duration::from_millis(20);
    let live = LiveModel::start(registry.clone(), uri, mlops_core::FlavorRegistry::default(), interval).await.unwrap();
    let base = serve(ModelServer::new().endpoint("transactions", Arc::new(live)).unwrap()).await;
    let health = || async { reqwest::get(format!("{base}/health")).await.unwrap() };
    assert_eq!(health().await.status(), 200);

    registry.delete_alias(&name, "champion").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let answer = health().await;
        if answer.status() == 503 {
            break answer.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/health never reported the stale alias");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(answer.contains("transactions/default") && answer.contains("unconfirmed"), "{answer}");
    let (status, _, _) = post(&format!("{base}/invocations"), Some("application/json"), one_row()).await;
    assert_eq!(status, 200, "the last good version keeps serving");
}

/// A model that notes the thread each prediction ran on, takes `delay` over each, and
/// panics on the prediction numbered `panics_at`.
struct Paced {
    signature: mlops_core::Signature,
    delay: Duration,
    panics_at: Option<usize>,
    threads: parking_lot::Mutex<Vec<std::thread::ThreadId>>,
}

impl mlops_core::Model for Paced {
    fn signature(&self) -> &mlops_core::Signature {
        &self.signature
    }

    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        std::thread::sleep(self.delay);
        let mut threads = self.threads.lock();
        threads.push(std::thread::current().id());
        if self.panics_at == Some(threads.len()) {
            drop(threads);
            panic!("prediction {} fails", self.panics_at.unwrap_or_default());
        }
        Ok(DataFrame::new(input.height(), vec![Column::new("prediction".into(), vec![1.0f64; input.height()])])?)
    }
}

// One runtime thread: a prediction on it ran on the async worker, one elsewhere in the
// blocking pool.
#[tokio::test(flavor = "current_thread")]
async fn small_requests_to_a_model_shown_to_be_quick_skip_the_blocking_pool_and_slow_models_never_do() {
    let template = versions(1).await.pop().unwrap();
    let paced = |delay, panics_at| {
        Arc::new(Paced {
            signature: template.model.signature().clone(),
            delay,
            panics_at,
            threads: parking_lot::Mutex::default(),
        })
    };
    let (quick, slow, flaky) =
        (paced(Duration::ZERO, None), paced(Duration::from_millis(250), None), paced(Duration::ZERO, Some(3)));
    let loaded = |model: &Arc<Paced>| {
        Arc::new(ModelSlot::loaded(LoadedModel {
            version: template.version.clone(),
            model: Arc::clone(model) as Arc<dyn mlops_core::Model>,
            input_example: None,
        }))
    };
    let pooled = paced(Duration::ZERO, None);
    // A limit far above what the quick models take however loaded the test machine is,
    // and far below the slow one.
    let server = ModelServer::new()
        .inline_scoring_limit(Duration::from_millis(50))
        .endpoint("quick", loaded(&quick))
        .unwrap()
        .endpoint("slow", loaded(&slow))
        .unwrap()
        .endpoint("flaky", loaded(&flaky))
        .unwrap();
    let base = serve(server).await;
    let pooled_base =
        serve(ModelServer::new().inline_scoring_limit(Duration::ZERO).endpoint("pooled", loaded(&pooled)).unwrap())
            .await;
    let here = std::thread::current().id();
    for (base, endpoint) in [(&base, "quick"), (&base, "slow"), (&base, "flaky"), (&pooled_base, "pooled")] {
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let url = format!("{base}/invocations/{endpoint}");
            statuses.push(post(&url, Some("application/json"), one_row()).await.0);
        }
        let expected = if endpoint == "flaky" { [200, 200, 500, 200] } else { [200; 4] };
        assert_eq!(statuses, expected, "{endpoint}");
    }
    let on_worker = |model: &Paced| model.threads.lock().iter().map(|t| *t == here).collect::<Vec<_>>();
    assert_eq!(on_worker(&quick), [false, true, true, true], "the first request times the model in the pool");
    assert_eq!(on_worker(&slow), [false; 4], "a model slower than the limit stays in the pool");
    assert_eq!(on_worker(&flaky), [false, true, true, true], "a panic on the worker is an answer, not a crash");
    assert_eq!(on_worker(&pooled), [false; 4], "a zero limit keeps every request in the pool");
}
