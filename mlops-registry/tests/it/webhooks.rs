//! Webhook delivery to real HTTP receivers on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mlops_registry::{
    CreateModel, CreateVersion, DELIVERY_ID_HEADER, Delivery, MemoryRegistry, ObservedRegistry, Registry,
    RegistryEvent, RetryPolicy, SIGNATURE_HEADER, SetAlias, TIMESTAMP_HEADER, VerifyError, Webhook, WebhookDispatcher,
    verify,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use parking_lot::Mutex;
use serde_json::Value;

use mlops_registry::conformance::{name, package};

const SECRET: &str = "webhook-secret";

/// What a receiver saw: (headers, body) per request.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver on a free loopback port that fails its first `failures` requests with `failure`.
async fn receiver(failures: usize, failure: StatusCode) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let recorded = Arc::clone(&seen);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let (recorded, calls) = (Arc::clone(&recorded), Arc::clone(&calls));
            async move {
                recorded.lock().push((headers, body));
                if calls.fetch_add(1, Ordering::SeqCst) < failures { failure } else { StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), seen)
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

/// Delivers until the outbox is empty (or a deadline passes).
async fn drain(dispatcher: &WebhookDispatcher) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !dispatcher.pending().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the outbox did not drain");
        dispatcher.deliver_due().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_signed_in_mlflow_format() {
    let (url, seen) = receiver(0, StatusCode::OK).await;
    let registry = ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 64);
    let hooks =
        vec![Webhook::new(&url, Some(SECRET.into())).only(["model_version.created", "model_version_alias.created"])];
    let dispatcher =
        WebhookDispatcher::new(Arc::new(InMemory::new()), Path::from("r"), hooks, fast_retries(3)).unwrap();
    let task = dispatcher.clone().spawn(registry.subscribe(), Duration::from_millis(20)).unwrap();

    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(1.0)).tag("k", "v")).await.unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "webhooks did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();

    let requests = seen.lock().clone();
    assert_eq!(requests.len(), 2, "the filter keeps model creation out");
    for (headers, body) in &requests {
        let now = chrono::Utc::now();
        let (signature, id, ts) =
            (header(headers, SIGNATURE_HEADER), header(headers, DELIVERY_ID_HEADER), header(headers, TIMESTAMP_HEADER));
        verify(SECRET, signature, id, ts, body, now, Duration::from_secs(300)).unwrap();
        assert_eq!(verify("wrong", signature, id, ts, body, now, Duration::from_secs(300)), Err(VerifyError::Mismatch));
        let tampered = body.replace("transactions", "other");
        assert_eq!(
            verify(SECRET, signature, id, ts, &tampered, now, Duration::from_secs(300)),
            Err(VerifyError::Mismatch)
        );
        let later = now + chrono::Duration::minutes(10);
        assert!(matches!(
            verify(SECRET, signature, id, ts, body, later, Duration::from_secs(300)),
            Err(VerifyError::Stale { .. })
        ));
    }
    let bodies: Vec<Value> = requests.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    assert_eq!((bodies[0]["entity"].as_str(), bodies[0]["action"].as_str()), (Some("model_version"), Some("created")));
    assert_eq!(bodies[0]["data"]["name"], "transactions");
    assert_eq!(bodies[0]["data"]["version"], "1");
    assert_eq!(bodies[0]["data"]["tags"]["k"], "v");
    assert_eq!(bodies[1]["entity"], "model_version_alias");
    assert_eq!(bodies[1]["data"]["alias"], "champion");
    assert!(dispatcher.pending().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_dead_lettered_and_the_outbox_survives_a_restart() {
    let store = Arc::new(InMemory::new());
    let event = RegistryEvent::AliasDeleted { name: name("transactions"), alias: "champion".into(), previous: 3 };

    // A receiver that fails twice with 503 then accepts: one delivery, three attempts, same id.
    let (flaky, flaky_seen) = receiver(2, StatusCode::SERVICE_UNAVAILABLE).await;
    // A receiver that refuses for good.
    let (gone, gone_seen) = receiver(usize::MAX, StatusCode::GONE).await;
    // A receiver that rate-limits every time: retried until the attempts run out.
    let (limited, limited_seen) = receiver(usize::MAX, StatusCode::TOO_MANY_REQUESTS).await;
    let hooks =
        vec![Webhook::new(&flaky, Some(SECRET.into())), Webhook::new(&gone, None), Webhook::new(&limited, None)];
    let first = WebhookDispatcher::new(store.clone(), Path::from("r"), hooks.clone(), fast_retries(3)).unwrap();
    assert_eq!(first.enqueue(&event).await.unwrap(), 3);
    let report = first.deliver_due().await.unwrap();
    assert_eq!((report.delivered, report.retrying, report.dead), (0, 2, 1));
    drop(first);

    // A new process picks the outbox up where the first stopped.
    let second = WebhookDispatcher::new(store, Path::from("r"), hooks, fast_retries(3)).unwrap();
    assert_eq!(second.pending().await.unwrap().len(), 2);
    drain(&second).await;

    let flaky_ids: Vec<String> =
        flaky_seen.lock().iter().map(|(h, _)| header(h, DELIVERY_ID_HEADER).to_owned()).collect();
    assert_eq!(flaky_ids.len(), 3);
    assert!(flaky_ids.iter().all(|id| id == &flaky_ids[0]), "retries keep the delivery id");
    assert_eq!(gone_seen.lock().len(), 1, "a 4xx other than 429 is not retried");
    assert_eq!(limited_seen.lock().len(), 3, "429 is retried up to max_attempts");
    let dead = second.dead_letters().await.unwrap();
    let mut dead_urls: Vec<&str> = dead.iter().map(|d| d.url.as_str()).collect();
    dead_urls.sort_unstable();
    let mut expected = vec![gone.as_str(), limited.as_str()];
    expected.sort_unstable();
    assert_eq!(dead_urls, expected);
    assert!(dead.iter().all(|d| d.last_error.as_deref().is_some_and(|e| e.contains("410") || e.contains("429"))));
    assert!(dead.iter().all(|d| d.event == "model_version_alias.deleted"));
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_with_backoff() {
    // Nothing listens on this port once the listener is dropped.
    let address = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let hooks = vec![Webhook::new(format!("http://{address}/hook"), None)];
    let dispatcher =
        WebhookDispatcher::new(Arc::new(InMemory::new()), Path::from("r"), hooks, fast_retries(5)).unwrap();
    dispatcher.enqueue(&RegistryEvent::ModelTagDeleted { name: name("m"), key: "k".into() }).await.unwrap();
    let report = dispatcher.deliver_due().await.unwrap();
    assert_eq!(report.retrying, 1);
    let pending = dispatcher.pending().await.unwrap();
    assert_eq!(pending[0].attempts, 1);
    assert!(pending[0].next_attempt_at > chrono::Utc::now() - chrono::Duration::seconds(1));
    assert!(pending[0].last_error.as_deref().unwrap().contains("request failed"));
    // Not due yet: an immediate pass does not hammer the receiver.
    assert_eq!(dispatcher.deliver_due().await.unwrap().retrying, 0);
}

#[tokio::test]
async fn hostile_receivers_and_timestamps_never_stop_the_dispatcher() {
    // A receiver asking to be retried in 317,000 years: honoured up to a day.
    let app = Router::new()
        .route("/hook", post(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "9999999999999")]) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hooks = vec![Webhook::new(format!("http://{address}/hook"), None)];
    let dispatcher =
        WebhookDispatcher::new(Arc::new(InMemory::new()), Path::from("r"), hooks, fast_retries(5)).unwrap();
    dispatcher.enqueue(&RegistryEvent::ModelTagDeleted { name: name("m"), key: "k".into() }).await.unwrap();
    assert_eq!(dispatcher.deliver_due().await.unwrap().retrying, 1);
    let next = dispatcher.pending().await.unwrap()[0].next_attempt_at;
    let day = chrono::Duration::from_std(mlops_registry::MAX_RETRY_AFTER).unwrap();
    let now = chrono::Utc::now();
    assert!(next > now + day - chrono::Duration::minutes(1) && next <= now + day, "next attempt at {next}");

    // Zero durations are refused where they are given.
    let events = ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 4).subscribe();
    assert!(matches!(dispatcher.clone().spawn(events, Duration::ZERO), Err(mlops_registry::Error::InvalidArgument(_))));
    let zero_timeout = RetryPolicy { request_timeout: Duration::ZERO, ..fast_retries(3) };
    assert!(WebhookDispatcher::new(Arc::new(InMemory::new()), Path::from("r"), vec![], zero_timeout).is_err());

    // Timestamps at the ends of the range are stale, not an overflow.
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    for timestamp in [i64::MIN.to_string(), i64::MAX.to_string(), (i64::MIN + 1).to_string()] {
        let signature = mlops_registry::sign(SECRET, "id", &timestamp, "{}");
        let verdict = verify(SECRET, &signature, "id", &timestamp, "{}", now, Duration::from_secs(300));
        assert!(matches!(verdict, Err(VerifyError::Stale { .. })), "{timestamp}: {verdict:?}");
    }
}

#[tokio::test]
async fn the_outbox_sends_only_what_this_dispatcher_built_to_hooks_it_was_given() {
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    let (url, seen) = receiver(0, StatusCode::OK).await;
    let (elsewhere, seen_elsewhere) = receiver(0, StatusCode::OK).await;
    // A hook whose receiver redirects to another address.
    let target = elsewhere.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let hooks = vec![Webhook::new(&url, Some(SECRET.into())), Webhook::new(&redirecting, None)];
    let dispatcher = WebhookDispatcher::new(store.clone(), Path::from("r"), hooks, fast_retries(1)).unwrap();
    assert_eq!(
        dispatcher.enqueue(&RegistryEvent::ModelTagDeleted { name: name("m"), key: "k".into() }).await.unwrap(),
        2
    );
    let genuine = dispatcher.pending().await.unwrap().into_iter().find(|d| d.url == url).unwrap();

    // Written by someone who can write the store but holds no secret.
    let outbox = Path::from("r/webhooks/outbox");
    let forged_payload = Delivery { id: "forged-1".into(), payload: "{\"attack\": 1}".into(), ..genuine.clone() };
    let forged_url = Delivery { id: "forged-2".into(), url: elsewhere.clone(), seal: None, ..genuine.clone() };
    for forged in [&forged_payload, &forged_url] {
        let bytes = serde_json::to_vec(forged).unwrap();
        store.put(&outbox.clone().join(format!("{}.json", forged.id)), PutPayload::from(bytes)).await.unwrap();
    }
    store.put(&outbox.clone().join("corrupt.json"), PutPayload::from_static(b"{ not json")).await.unwrap();

    let report = dispatcher.deliver_due().await.unwrap();
    assert_eq!((report.delivered, report.refused, report.unreadable, report.dead), (1, 2, 1, 1), "{report:?}");
    let bodies: Vec<String> = seen.lock().iter().map(|(_, body)| body.clone()).collect();
    assert_eq!(bodies, [genuine.payload.as_str()], "only the genuine delivery reached the hook");
    assert!(seen_elsewhere.lock().is_empty(), "nothing reached an address no hook names, redirects included");
    let dead = dispatcher.dead_letters().await.unwrap();
    let reasons: Vec<&str> = dead.iter().filter_map(|d| d.last_error.as_deref()).collect();
    assert!(reasons.iter().any(|r| r.contains("seal does not match")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not a configured webhook")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("307")), "{reasons:?}");
    assert!(dispatcher.pending().await.unwrap().is_empty());
}
