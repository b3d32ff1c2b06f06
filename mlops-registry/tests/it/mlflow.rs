//! The MLflow backend against a real tracking server, and interop with the Python
//! `MlflowClient` both ways.
//!
//! The tests share one server and each starts from an empty registry, so they take turns.

use std::process::Command;

use mlops_core::{FlavorRegistry, Model};
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, DatasetRef, Error, Lineage, MlflowRegistry, Registry, RegistryExt, SetAlias,
};

use crate::servers::{MLFLOW_URI, PYTHON, server};
use mlops_registry::conformance::{Capabilities, name, package, training_frame};

/// One test at a time on the server.
static SERVER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Deletes every registered model on the server, so the next test starts empty.
async fn wipe(uri: &str) {
    let http = reqwest::Client::new();
    let api = |endpoint: &str| format!("{uri}/api/2.0/mlflow/{endpoint}");
    let listed = http.get(api("registered-models/search?max_results=1000")).send().await.unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.bytes().await.unwrap()).unwrap();
    for model in listed["registered_models"].as_array().into_iter().flatten() {
        let body = serde_json::json!({ "name": model["name"] }).to_string();
        let deleted = http
            .delete(api("registered-models/delete"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success(), "deleting {}: {}", model["name"], deleted.status());
    }
}

fn python_client(uri: &str, args: &[&str]) -> serde_json::Value {
    let python = std::env::var(PYTHON).expect("MLOPS_PYTHON is checked before");
    let script = crate::servers::test_file("tests/it/mlflow_client.py");
    let output = Command::new(python).arg(script).arg(uri).args(args).output().unwrap();
    assert!(output.status.success(), "mlflow_client.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mlflow_registry_keeps_the_contract() {
    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let _turn = SERVER.lock().await;
    let registry = MlflowRegistry::builder(&uri).experiment("conformance").build().unwrap();
    let backend = Capabilities::mlflow(registry.clone());
    mlops_registry::conformance::run_suite(
        async || {
            wipe(&uri).await;
            registry.clone()
        },
        &backend,
    )
    .await;
}

#[tokio::test]
async fn python_sees_what_rust_registers_and_rust_follows_what_python_moves() {
    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let Some(_) = server(PYTHON, "Python with mlflow") else { return };
    let _turn = SERVER.lock().await;
    wipe(&uri).await;
    let registry = MlflowRegistry::builder(&uri).experiment("interop").build().unwrap();
    let tx = name("main.fraud.transactions");
    registry.create_model(CreateModel::new(tx.clone()).description("fraud probability")).await.unwrap();
    let lineage = Lineage {
        training_data: Some(DatasetRef { name: "transactions.parquet".into(), digest: "3f2a9c".into() }),
        params: [("l2_penalty".to_owned(), "1.0".to_owned())].into(),
        metrics: [("train_log_loss".to_owned(), 0.3125)].into(),
    };
    let v1 = registry
        .create_version(
            CreateVersion::new(tx.clone(), package(1.0))
                .description("logistic regression")
                .tag("validation_status", "passed_tests")
                .lineage(lineage.clone()),
        )
        .await
        .unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", v1.version)).await.unwrap();

    // Python sees the version, its alias, its tags and the lineage logged to its run.
    let seen = python_client(&uri, &["describe", tx.as_str(), "champion"]);
    assert_eq!(seen["version"], 1);
    assert_eq!(seen["aliases"], serde_json::json!(["champion"]));
    assert_eq!(seen["source"], v1.source.as_str());
    assert_eq!(seen["run_id"], v1.run.as_ref().unwrap().run_id.as_str());
    assert_eq!(seen["tags"]["validation_status"], "passed_tests");
    assert_eq!(seen["tags"]["mlops.flavor"], "tabular_classifier");
    assert_eq!(seen["tags"]["mlops.package_digest"], v1.package_digest.as_str());
    assert_eq!(seen["params"]["l2_penalty"], "1.0");
    assert_eq!(seen["metrics"]["train_log_loss"], 0.3125);
    assert_eq!(seen["datasets"], serde_json::json!([{ "name": "transactions.parquet", "digest": "3f2a9c" }]));
    assert_eq!(registry.get_version(&tx, 1).await.unwrap().lineage, lineage);

    // Python registers the same artifacts again and promotes that version; Rust follows.
    let reregistered = python_client(&uri, &["reregister", tx.as_str(), "1"]);
    assert_eq!(reregistered["version"], 2);
    python_client(&uri, &["move-alias", tx.as_str(), "champion", "2"]);
    let flavors = FlavorRegistry::with_builtins();
    let champion = registry.load_model(&"models:/main.fraud.transactions@champion".parse().unwrap(), &flavors).await;
    let champion = champion.unwrap();
    assert_eq!(champion.version.version, 2);
    assert_eq!(champion.version.aliases, ["champion"]);
    assert_eq!(champion.version.description, "re-registered from Python");
    assert_eq!(champion.version.tags["registered_by"], "python");
    // Registered outside this library: no flavor tag, but the package is still checked file by file.
    assert_eq!(champion.version.flavor, "");
    let expected = flavors.load(&package(1.0)).unwrap().predict(&training_frame()).unwrap();
    assert!(champion.model.predict(&training_frame()).unwrap().equals(&expected));
}

#[tokio::test]
async fn mlflow_registrations_refuse_what_would_lose_or_fake_something() {
    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let _turn = SERVER.lock().await;
    wipe(&uri).await;
    let registry = MlflowRegistry::builder(&uri).experiment("refusals").build().unwrap();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();

    // Runs are MLflow's: an unknown one is named.
    let unknown = registry.create_version(CreateVersion::new(tx.clone(), package(1.0)).run("0123abcd", "model")).await;
    assert!(matches!(unknown, Err(Error::NotFound { what }) if what == "MLflow run `0123abcd`"));

    // A run's artifact path holds one package: another one there is refused, the same one is reused.
    let (run, trained) = (registry.create_run("training").await.unwrap(), package(1.0));
    let first =
        registry.create_version(CreateVersion::new(tx.clone(), trained.clone()).run(&run, "clf")).await.unwrap();
    let other = registry.create_version(CreateVersion::new(tx.clone(), package(0.1)).run(&run, "clf")).await;
    assert!(matches!(other, Err(Error::AlreadyExists { what }) if what.contains("different model package")));
    let again = registry.create_version(CreateVersion::new(tx.clone(), trained).run(&run, "clf")).await.unwrap();
    assert_eq!((first.version, again.version), (1, 2));
    assert_eq!(again.source, first.source);
    assert!(registry.download_package(&tx, 1).await.is_ok(), "the first package was not overwritten");
    let escape = registry.create_version(CreateVersion::new(tx.clone(), package(1.0)).run(&run, "../x")).await;
    assert!(matches!(escape, Err(Error::InvalidArgument(_))));

    // Tags under `mlops.` are the registry's.
    let reserved = registry.set_version_tag(&tx, 1, "mlops.flavor", "other").await;
    assert!(matches!(reserved, Err(Error::InvalidArgument(message)) if message.contains("mlops.flavor")));
    let reserved = registry.create_version(CreateVersion::new(tx.clone(), package(1.0)).tag("mlops.x", "y")).await;
    assert!(matches!(reserved, Err(Error::InvalidArgument(_))));
    assert_eq!(registry.get_version(&tx, 1).await.unwrap().flavor, "tabular_classifier");

    // No conditional alias moves on MLflow, and nothing moved.
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    let conditional = registry.set_alias(SetAlias::new(tx.clone(), "champion", 2).mode(AliasMode::Update(1))).await;
    match conditional {
        Err(e @ Error::NotImplemented { .. }) => assert!(e.to_string().contains("MLflow"), "{e}"),
        other => panic!("expected NotImplemented, got {other:?}"),
    }
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 1);
}

#[tokio::test]
async fn mlflow_addresses_are_checked() {
    for bad in ["localhost:5000", "file:///tmp/mlruns", "not a url"] {
        match MlflowRegistry::new(bad) {
            Err(Error::InvalidArgument(message)) => assert!(message.contains(bad), "{message}"),
            other => panic!("{bad}: expected InvalidArgument, got {other:?}"),
        }
    }
    // A server that is not there is a backend error naming the call, not a hang or a panic.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let registry = MlflowRegistry::new(&format!("http://{closed}")).unwrap();
    match registry.get_model(&name("transactions")).await {
        Err(e @ Error::Backend { .. }) => assert!(e.to_string().contains("registered-models/get"), "{e}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_package_whose_digest_tag_was_removed_is_refused_not_trusted() {
    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let _turn = SERVER.lock().await;
    wipe(&uri).await;
    let registry = MlflowRegistry::builder(&uri).experiment("digests").build().unwrap();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let version = registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    registry.download_package(&tx, version.version).await.unwrap();

    // Anyone with write access can delete the tag through MLflow's own API.
    let body = serde_json::json!({ "name": "transactions", "version": version.version.to_string(), "key": "mlops.package_digest" });
    let deleted = reqwest::Client::new()
        .delete(format!("{uri}/api/2.0/mlflow/model-versions/delete-tag"))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    match registry.download_package(&tx, version.version).await {
        Err(Error::Core(mlops_core::Error::InvalidPackage(message))) => {
            assert!(message.contains("records no digest") && message.contains(&version.package_digest), "{message}")
        }
        other => panic!("expected the package to be refused, got {other:?}"),
    }
}

/// A stand-in for a tracking server gone wrong: `registered-models/get` streams 1 GiB of
/// spaces, `registered-models/search` answers every page with the token it was asked for.
async fn broken_server() -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new()
        .route(
            "/api/2.0/mlflow/registered-models/get",
            axum::routing::get(|| async {
                let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
                let chunks = futures::stream::iter((0..1024).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
                ([("content-type", "application/json")], axum::body::Body::from_stream(chunks)).into_response()
            }),
        )
        .route(
            "/api/2.0/mlflow/registered-models/search",
            axum::routing::get(|| async {
                ([("content-type", "application/json")], r#"{"registered_models": [], "next_page_token": "again"}"#)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test]
async fn an_endless_answer_or_page_chain_from_the_server_is_an_error() {
    let registry = MlflowRegistry::builder(&broken_server().await).build().unwrap();
    // The body is cut off at the reply limit (64 MiB), not read to its end.
    let error = registry.get_model(&name("transactions")).await.unwrap_err();
    assert!(error.to_string().contains("longer than the 67108864 bytes"), "{error}");
    // The second page asks for the token the first gave, and gets it again.
    let error = registry.list_models().await.unwrap_err();
    assert!(error.to_string().contains("with the same token"), "{error}");
}

/// A stand-in for a busy tracking server: `registered-models/get` answers 429 with
/// `Retry-After: <retry_after>` to the first `busy` requests, then the model. Its address
/// and the number of requests it received.
async fn busy_server(busy: u32, retry_after: &'static str) -> (String, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let received = std::sync::Arc::new(AtomicU32::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/api/2.0/mlflow/registered-models/get",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                use axum::response::IntoResponse;
                if counter.fetch_add(1, Ordering::SeqCst) < busy {
                    let body = r#"{"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "slow down"}"#;
                    return (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry_after)], body)
                        .into_response();
                }
                let body = r#"{"registered_model": {"name": "transactions", "creation_timestamp": "1700000000000"}}"#;
                ([("content-type", "application/json")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), received)
}

#[tokio::test]
async fn a_busy_server_is_retried_after_the_wait_it_asks_for_within_the_policy() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    let quick = mlops_registry::Backoff {
        max_retries: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(5),
    };
    // Two 429s asking for a second each: answered on the third attempt, after both waits.
    let (uri, received) = busy_server(2, "1").await;
    let registry = MlflowRegistry::builder(&uri).retry(quick).build().unwrap();
    let started = Instant::now();
    assert_eq!(registry.get_model(&name("transactions")).await.unwrap().name, name("transactions"));
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(received.load(Ordering::SeqCst), 3);

    // A wait longer than the policy allows fails at once, naming the server's answer.
    let (uri, received) = busy_server(1, "3600").await;
    let registry = MlflowRegistry::builder(&uri).retry(quick).build().unwrap();
    let started = Instant::now();
    let error = registry.get_model(&name("transactions")).await.unwrap_err();
    assert!(error.to_string().contains("429"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(received.load(Ordering::SeqCst), 1);

    // Retries spent: the last answer is the error.
    let (uri, received) = busy_server(10, "0").await;
    let registry = MlflowRegistry::builder(&uri).retry(quick).build().unwrap();
    assert!(registry.get_model(&name("transactions")).await.is_err());
    assert_eq!(received.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_version_travels_from_mlflow_to_s3_and_back_unchanged() {
    use mlops_registry::{COPIED_FROM_REGISTRY_TAG, COPIED_FROM_TAG, CopyVersion, SearchVersions, copy_version};

    let Some(uri) = server(MLFLOW_URI, "an MLflow tracking server") else { return };
    let Some(bucket) = crate::servers::s3_bucket_url() else { return };
    let _turn = SERVER.lock().await;
    wipe(&uri).await;
    let mlflow = MlflowRegistry::builder(&uri).experiment("copies").build().unwrap();
    let s3 = crate::servers::open(&format!("{bucket}/{}", crate::servers::unique_prefix("copies")));
    let tx = name("transactions");
    mlflow.create_model(CreateModel::new(tx.clone()).description("fraud probability")).await.unwrap();
    let run = mlflow.create_run("training").await.unwrap();
    let source = mlflow
        .create_version(
            CreateVersion::new(tx.clone(), package(0.5))
                .description("trained on November")
                .tag("validation_status", "passed_tests")
                .run(&run, "model")
                .lineage(crate::copying::lineage()),
        )
        .await
        .unwrap();

    let to_s3 = CopyVersion::new(tx.clone(), source.version).source_registry(uri.clone());
    let in_s3 = copy_version(&mlflow, &s3, to_s3.clone()).await.unwrap();
    assert!(in_s3.created);
    assert_eq!(in_s3.version.run, source.run, "the MLflow run stays linked");
    assert_eq!(in_s3.version.tags[COPIED_FROM_REGISTRY_TAG], uri);
    crate::copying::assert_copied(&mlflow, &source, &s3, &in_s3.version).await;
    assert!(!copy_version(&mlflow, &s3, to_s3).await.unwrap().created);

    // Back, under another name: MLflow sees the run it knows and the lineage read from it.
    let back_name = name("transactions-promoted");
    let back =
        CopyVersion::new(tx.clone(), in_s3.version.version).target_model(back_name.clone()).source_registry("s3");
    let in_mlflow = copy_version(&s3, &mlflow, back.clone()).await.unwrap();
    assert!(in_mlflow.created);
    assert_eq!(in_mlflow.version.run, source.run);
    assert_eq!(in_mlflow.version.tags[COPIED_FROM_TAG], format!("models:/transactions/{}", in_s3.version.version));
    crate::copying::assert_copied(&s3, &in_s3.version, &mlflow, &in_mlflow.version).await;
    let again = copy_version(&s3, &mlflow, back).await.unwrap();
    assert_eq!((again.created, again.version.version), (false, in_mlflow.version.version));
    assert_eq!(mlflow.search_versions(SearchVersions::model(back_name.clone())).await.unwrap().len(), 1);
    assert_eq!(mlflow.get_model(&back_name).await.unwrap().description, "fraud probability");

    // Python sees the promoted copy, its provenance in its tags and its run's lineage.
    mlflow.set_alias(SetAlias::new(back_name.clone(), "champion", in_mlflow.version.version)).await.unwrap();
    if server(PYTHON, "Python with mlflow").is_some() {
        let seen = python_client(&uri, &["describe", back_name.as_str(), "champion"]);
        assert_eq!(seen["tags"][COPIED_FROM_REGISTRY_TAG], "s3", "{seen}");
        assert_eq!(seen["run_id"], run.as_str(), "{seen}");
        assert_eq!(seen["params"]["l2_penalty"], "0.5", "{seen}");
    }
}
