//! The transactions model behind the `mlops-infer` scoring router, for load tests.
//!
//! `benches/compare-serving.sh` runs this with `--bench` (it then serves on
//! `MLOPS_BENCH_PORT` until killed) and drives it, and `mlflow models serve` with the same
//! model trained the same way, with `wrk`. With `MLOPS_SERVE_MODEL` set to a model
//! directory (the scikit-learn pipeline `benches/peer/onnx_batch.py` exports, say) it
//! serves that model instead. With `MLOPS_SERVE_TELEMETRY=1` it runs as an operator would:
//! a Prometheus recorder behind `/metrics` and a log subscriber at `info` (the lines go
//! nowhere, so the terminal does not set the pace), to measure what observability costs;
//! `metrics` or `tracing` turns on one of the two, and `debug` both with the subscriber at
//! `debug`, where every request's span is recorded. In test mode (`cargo test --benches`) it serves on a free
//! port, sends each payload once, checks the answers and, with telemetry, the metrics.

use std::path::PathBuf;
use std::sync::Arc;

use mlops_core::{FlavorRegistry, ModelName, frame_to_split_json, read_parquet};
use mlops_infer::serve::{ModelServer, ModelSlot};
use mlops_registry::{CreateModel, CreateVersion, MemoryRegistry, Registry, RegistryExt};
use polars::prelude::DataFrame;

fn data_dir() -> PathBuf {
    mlops_benches::bench_dir(env!("CARGO_TARGET_TMPDIR"))
}

/// `{"dataframe_split": ...}` bodies of 1 and 100 records, written beside the data for the
/// load generator and the Python peer.
fn payloads(score: &DataFrame, dir: &std::path::Path) -> Vec<(usize, PathBuf)> {
    let inputs = score.drop("Label").expect("label column");
    [1usize, 100]
        .into_iter()
        .map(|rows| {
            let body =
                serde_json::json!({ "dataframe_split": frame_to_split_json(&inputs.head(Some(rows))).expect("json") });
            let path = dir.join(format!("payload-{rows}.json"));
            std::fs::write(&path, body.to_string()).expect("payload file");
            (rows, path)
        })
        .collect()
}

fn main() {
    let bench = mlops_benches::benchmarking();
    // `1`: both; `metrics` or `tracing`: one of them, to tell their costs apart; `debug`:
    // both, the subscriber at debug, so every request span is recorded and its events written.
    let telemetry = std::env::var("MLOPS_SERVE_TELEMETRY").unwrap_or_default();
    let level = if telemetry == "debug" { tracing::Level::DEBUG } else { tracing::Level::INFO };
    if matches!(telemetry.as_str(), "1" | "tracing" | "debug") {
        tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::sink).init();
    }
    let metrics = matches!(telemetry.as_str(), "1" | "metrics" | "debug")
        .then(|| mlops_infer::serve::prometheus_builder().install_recorder().expect("metrics recorder"));
    let telemetry = metrics.is_some();
    let prepared = mlops_benches::prepare(&data_dir(), 10_000).expect("benchmark data");
    let score = read_parquet(&prepared.score).expect("scoring rows");
    let payloads = payloads(&score, prepared.score.parent().expect("data directory"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        // Registered and loaded back, as a server gets its model.
        let registry = MemoryRegistry::new();
        let name: ModelName = "transactions".parse().expect("name");
        registry.create_model(CreateModel::new(name.clone())).await.expect("model");
        let package = match std::env::var_os("MLOPS_SERVE_MODEL") {
            Some(dir) => mlops_core::Package::read_dir(std::path::Path::new(&dir)).expect("model directory"),
            None => mlops_benches::package(&prepared).expect("package"),
        };
        registry.create_version(CreateVersion::new(name, package)).await.expect("version");
        let loaded = registry
            .load_model(&"models:/transactions/1".parse().expect("uri"), &FlavorRegistry::with_builtins())
            .await
            .expect("loads");
        let mut server =
            ModelServer::new().endpoint("transactions", Arc::new(ModelSlot::loaded(loaded))).expect("endpoint");
        if let Some(handle) = metrics {
            server = server.prometheus(handle);
        }
        let app = server.router();
        let port: u16 =
            if bench { std::env::var("MLOPS_BENCH_PORT").map_or(8080, |p| p.parse().expect("port")) } else { 0 };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let address = listener.local_addr().expect("address");
        println!(
            "listening on http://{address}/invocations; payloads in {}",
            payloads[0].1.parent().expect("dir").display()
        );
        let settings = mlops_infer::serve::ServerSettings::new();
        let server = tokio::spawn(mlops_infer::serve::serve(listener, app, settings, std::future::pending()));
        if bench {
            server.await.expect("server task").expect("server");
            return;
        }
        let client = reqwest::Client::new();
        for (rows, path) in &payloads {
            let response = client
                .post(format!("http://{address}/invocations"))
                .header("Content-Type", "application/json")
                .body(std::fs::read(path).expect("payload"))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200);
            let answer: serde_json::Value = response.json().await.expect("json answer");
            assert_eq!(answer["predictions"].as_array().map(Vec::len), Some(*rows));
        }
        if telemetry {
            let text = client.get(format!("http://{address}/metrics")).send().await.expect("metrics").text().await;
            let counted = format!(
                "mlops_serving_requests_total{{endpoint=\"transactions\",route=\"default\",status=\"200\",format=\"dataframe_split\"}} {}",
                payloads.len()
            );
            assert!(text.expect("metrics text").contains(&counted), "{counted}");
        }
        println!("Success: {} payloads answered", payloads.len());
    });
}
