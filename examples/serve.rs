//! Serves the transactions model over MLflow's scoring protocol: `champion` and
//! `challenger` behind one endpoint with a 90/10 split (sticky by the `x-customer-id`
//! header) and the latest version as a shadow route, each route following its alias.
//!
//! ```text
//! cargo run --release --features serve --example serve -- --port 8080
//! curl -s localhost:8080/invocations -H 'Content-Type: application/json' \
//!   -d '{"dataframe_records": [{"CustomerID": 1240, "Product": "Product A", "Amount": 120.5,
//!        "MaxProductAmount": 250.0, "MaxDifferenceRatio": 0.52, "transactionCount": 3}]}'
//! ```
//!
//! It uses the registry under `--dir` (the quickstart's, by default), registering three
//! versions first if it holds none. `--self-test N` sends N requests to itself, prints the
//! routes that answered, and stops; otherwise it serves until Ctrl-C, finishing requests in
//! flight.
//!
//! Any registered model, Python-trained ones included, is served with `--registry` (an
//! MLflow tracking server, an object-store URL or a directory) and one or more `--model`
//! URIs, each with an optional share of the traffic (`=90`; by default shares are equal):
//!
//! ```text
//! cargo run --release --features serve,python-flavors --example serve -- --registry http://127.0.0.1:5000 \
//!     --model models:/fraud@champion=90 --model models:/fraud@challenger=10 --port 8080
//! ```
//!
//! The server answers `GET /metrics` (Prometheus), `GET /serving-endpoints/{name}` (what
//! each route serves), `/ping` and `/health`; events (models loaded and swapped, failed
//! refreshes, 5xx answers) go to standard error at `--log-level`.
//!
//! Each route follows its URI (polled every `--poll-secs`). The endpoint is named after the
//! first model; `--self-test N` then sends the first model's input example N times. Exit
//! codes: 0 after a clean stop, 2 for bad arguments, 3 when a model cannot be loaded, 1
//! for anything else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mlops_core::{FlavorRegistry, ModelName, ModelUri, TabularClassifierParams};
use mlops_examples::registries::{key_value, open_registry};
use mlops_examples::transactions::{self, CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES};
use mlops_infer::serve::metrics_exporter_prometheus::PrometheusHandle;
use mlops_infer::serve::{
    DEFAULT_RECORDER_BYTES, Endpoint, MODEL_VERSION_HEADER, MemoryRecorder, ModelServer, ROUTE_HEADER, ServerSettings,
    serve,
};
use mlops_registry::{CreateModel, CreateVersion, LiveModel, ObjectStoreRegistry, Registry, SetAlias};

#[derive(Parser, Debug)]
#[command(about = "Serve transactions@champion and @challenger with a 90/10 split and a shadow route")]
struct Args {
    /// Port to listen on (loopback); 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Directory of the registry to serve from.
    #[arg(long, default_value = "./mlops-quickstart")]
    dir: PathBuf,
    /// Send this many requests to the server, print who answered, and stop.
    #[arg(long)]
    self_test: Option<usize>,
    /// The registry `--model` URIs are resolved in: an MLflow server (`http(s)://`), an
    /// object-store URL or a directory.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    registry: Option<String>,
    /// An option of an object-store registry, `key=value` (repeatable).
    #[arg(long = "registry-option", value_parser = key_value)]
    registry_options: Vec<(String, String)>,
    /// A model to serve, `models:/name@alias[=PERCENT]` (repeatable: one route each).
    #[arg(long = "model", value_parser = route)]
    models: Vec<(ModelUri, Option<u8>)>,
    /// Seconds between checks of where each URI points.
    #[arg(long, default_value_t = 10)]
    poll_secs: u64,
    /// The most detailed events printed: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
    /// Seconds a connection may take to send a request's headers, and may stay idle
    /// between requests.
    #[arg(long, default_value_t = mlops_infer::serve::DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout_secs: u64,
    /// Connections kept open at once; further callers wait in the listen backlog.
    #[arg(long, default_value_t = mlops_infer::serve::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
}

impl Args {
    /// The connection settings the flags ask for.
    fn server_settings(&self) -> Result<ServerSettings, Failure> {
        let invalid = |e: mlops_infer::Error| (2, e.to_string());
        ServerSettings::new()
            .header_read_timeout(Duration::from_secs(self.header_read_timeout_secs))
            .map_err(invalid)?
            .max_connections(self.max_connections)
            .map_err(invalid)
    }
}

/// `URI[=PERCENT]`.
fn route(text: &str) -> Result<(ModelUri, Option<u8>), String> {
    let (uri, share) = match text.rsplit_once('=') {
        Some((uri, share)) if !share.is_empty() && share.bytes().all(|b| b.is_ascii_digit()) => {
            (uri, Some(share.parse::<u8>().map_err(|_| format!("share `{share}` is not a percentage"))?))
        }
        _ => (text, None),
    };
    Ok((uri.parse().map_err(|e| format!("{e}"))?, share))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt().with_max_level(args.log_level).with_writer(std::io::stderr).init();
    let metrics = match mlops_infer::serve::prometheus_builder().install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("serve: installing the metrics recorder: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome =
        if args.models.is_empty() { serve_quickstart(args, metrics).await } else { serve_models(args, metrics).await };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("serve: {message}");
            std::process::ExitCode::from(code)
        }
    }
}

/// An exit code and a message.
type Failure = (u8, String);

/// Serves `app` on `listener` with `settings` (header and idle timeouts, connection cap)
/// until the returned sender fires or Ctrl-C, letting requests in flight finish.
fn spawn_server(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    settings: ServerSettings,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            tokio::select! {
                _ = stopped => {}
                _ = tokio::signal::ctrl_c() => println!("==> Ctrl-C: finishing requests in flight"),
            }
        };
        serve(listener, app, settings, shutdown).await
    });
    (stop, server)
}

/// Each route's percentage: the ones given, and what they leave split evenly between the
/// others (the last of them taking the remainder).
fn shares(models: &[(ModelUri, Option<u8>)]) -> Result<Vec<u8>, Failure> {
    let given: u32 = models.iter().filter_map(|(_, share)| share.map(u32::from)).sum();
    let left =
        100u32.checked_sub(given).ok_or_else(|| (2, format!("the given shares add up to {given}%, more than 100%")))?;
    let open: Vec<usize> = models.iter().enumerate().filter(|(_, (_, s))| s.is_none()).map(|(i, _)| i).collect();
    let mut shares: Vec<u8> = models.iter().map(|(_, s)| s.unwrap_or(0)).collect();
    if let Some((&last, rest)) = open.split_last() {
        let each = left / open.len() as u32;
        for &i in rest {
            shares[i] = each as u8;
        }
        shares[last] = (left - each * rest.len() as u32) as u8;
    }
    Ok(shares)
}

/// Serves the `--model` routes from `--registry`.
async fn serve_models(args: Args, metrics: PrometheusHandle) -> Result<(), Failure> {
    let location =
        args.registry.clone().ok_or_else(|| (2, "--model needs --registry (or MLFLOW_TRACKING_URI)".to_owned()))?;
    let registry =
        open_registry(&location, &args.registry_options).map_err(|e| (3, format!("opening `{location}`: {e}")))?;
    let shares = shares(&args.models)?;
    let settings = args.server_settings()?;
    let mut builder = Endpoint::builder();
    let mut endpoint_name = String::new();
    let mut example = None;
    for (index, (uri, _)) in args.models.iter().enumerate() {
        let live = LiveModel::start(
            Arc::clone(&registry),
            uri.clone(),
            FlavorRegistry::with_builtins(),
            Duration::from_secs(args.poll_secs.max(1)),
        )
        .await
        .map_err(|e| (3, format!("loading `{uri}` from `{location}`: {e}")))?;
        let version = live.current().version.clone();
        println!("==> route {index}: {uri} = version {} of `{}`", version.version, version.name);
        if index == 0 {
            endpoint_name = version.name.to_string();
            let package =
                registry.download_package(&version.name, version.version).await.map_err(|e| (3, e.to_string()))?;
            example = package.input_example().map_err(|e| (3, e.to_string()))?;
        }
        builder = builder.route(format!("route{index}"), Arc::new(live), u32::from(shares[index]));
    }
    let endpoint = builder.build().map_err(|e| (2, e.to_string()))?;
    let app = ModelServer::new()
        .endpoint(endpoint_name.clone(), endpoint)
        .map_err(|e| (2, e.to_string()))?
        .prometheus(metrics)
        .router();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await.map_err(|e| (1, e.to_string()))?;
    let address = listener.local_addr().map_err(|e| (1, e.to_string()))?;
    println!("==> serving `{endpoint_name}` on http://{address}/invocations");
    let (stop, server) = spawn_server(listener, app, settings);
    if let Some(requests) = args.self_test {
        let example = example.ok_or_else(|| (3, "the first model has no input example to send".to_owned()))?;
        let body = serde_json::json!({ "dataframe_split": mlops_core::frame_to_split_json(&example).map_err(|e| (1, e.to_string()))? }).to_string();
        let client = reqwest::Client::new();
        let mut answered = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..requests {
            let response = client
                .post(format!("http://{address}/invocations"))
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| (1, e.to_string()))?;
            let status = response.status();
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let key = format!("{} (version {})", header(ROUTE_HEADER), header(MODEL_VERSION_HEADER));
            if !status.is_success() {
                return Err((1, format!("{status}: {}", response.text().await.unwrap_or_default())));
            }
            *answered.entry(key).or_default() += 1;
        }
        for (route, count) in &answered {
            println!("    {route}: {count} of {requests} requests");
        }
        let _ = stop.send(());
    }
    server.await.map_err(|e| (1, e.to_string()))?.map_err(|e| (1, e.to_string()))
}

/// Serves the quickstart's transactions model: `champion` and `challenger` with a shadow.
async fn serve_quickstart(args: Args, metrics: PrometheusHandle) -> Result<(), Failure> {
    let settings = args.server_settings()?;
    run_quickstart(args, settings, metrics).await.map_err(|e| (1, e.to_string()))
}

async fn run_quickstart(
    args: Args,
    settings: ServerSettings,
    metrics: PrometheusHandle,
) -> Result<(), Box<dyn std::error::Error>> {
    let registry: Arc<dyn Registry> = Arc::new(ObjectStoreRegistry::local(args.dir.join("registry"))?);
    let name: ModelName = "transactions".parse()?;
    let versions = ensure_versions(registry.as_ref(), &name).await?;
    let latest = versions.last().copied().unwrap_or(1);

    let flavors = FlavorRegistry::with_builtins();
    let follow = |uri: String| {
        let (registry, flavors) = (Arc::clone(&registry), flavors.clone());
        async move { LiveModel::start(registry, uri.parse()?, flavors, Duration::from_secs(10)).await }
    };
    let champion = follow("models:/transactions@champion".into()).await?;
    let challenger = follow("models:/transactions@challenger".into()).await?;
    let shadow = follow(format!("models:/transactions/{latest}")).await?;
    println!(
        "==> champion v{}, challenger v{}, shadow v{}",
        champion.version(),
        challenger.version(),
        shadow.version()
    );
    let endpoint = Endpoint::builder()
        .route("champion", Arc::new(champion), 90)
        .route("challenger", Arc::new(challenger), 10)
        .shadow("latest", Arc::new(shadow))
        .sticky_header("x-customer-id")
        .build()?;
    let recorder = Arc::new(MemoryRecorder::new(100_000).with_byte_limit(DEFAULT_RECORDER_BYTES));
    let app =
        ModelServer::new().endpoint("transactions", endpoint)?.recorder(recorder.clone()).prometheus(metrics).router();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let address = listener.local_addr()?;
    println!("==> serving on http://{address}/invocations (and /serving-endpoints/transactions/invocations)");
    println!("    state: http://{address}/serving-endpoints/transactions, metrics: http://{address}/metrics");

    let (stop, server) = spawn_server(listener, app, settings);

    if let Some(requests) = args.self_test {
        let sample = transactions::generate(&transactions::Config::new(requests, 99))?;
        let records = mlops_core::frame_to_records_json(&sample.drop(LABEL)?)?;
        let client = reqwest::Client::new();
        let mut answered = std::collections::BTreeMap::<String, usize>::new();
        for record in records.as_array().into_iter().flatten() {
            let customer = record["CustomerID"].to_string();
            let response = client
                .post(format!("http://{address}/invocations"))
                .header("Content-Type", "application/json")
                .header("x-customer-id", customer)
                .body(serde_json::json!({ "dataframe_records": [record] }).to_string())
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(format!("{}: {}", response.status(), response.text().await?).into());
            }
            let route = response.headers()[ROUTE_HEADER].to_str()?.to_owned();
            *answered.entry(route).or_default() += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (route, count) in &answered {
            println!("    {route}: {count} of {requests} requests");
        }
        println!("    shadow answers recorded: {}", recorder.exchanges().len());
        let text = client.get(format!("http://{address}/metrics")).send().await?.text().await?;
        println!("==> /metrics, requests by route:");
        for line in text.lines().filter(|l| l.starts_with("mlops_serving_requests_total{")) {
            println!("    {line}");
        }
        let _ = stop.send(());
    }
    server.await??;
    Ok(())
}

/// The versions of the model, registering three (champion, challenger, and a newer one)
/// when the registry holds none.
async fn ensure_versions(registry: &dyn Registry, name: &ModelName) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    // Only a model that is not there is registered anew: any other error stops here, so
    // an unreadable registry never has its aliases overwritten.
    match registry.get_model(name).await {
        Ok(model) => {
            let found = registry.search_versions(mlops_registry::SearchVersions::model(name.clone())).await?;
            if found.len() >= 2 && model.aliases.contains_key("challenger") {
                return Ok(found.iter().map(|v| v.version).collect());
            }
        }
        Err(mlops_registry::Error::NotFound { .. }) => {
            registry.create_model(CreateModel::new(name.clone())).await?;
        }
        Err(other) => return Err(other.into()),
    }
    println!("==> registering three versions in an empty registry");
    let train = transactions::generate(&transactions::Config::new(20_000, 42))?;
    let mut versions = Vec::new();
    for (l2, iterations) in [(50.0, 5), (0.01, 100), (1.0, 50)] {
        let model = TabularClassifierParams::new(LABEL)
            .categorical(CATEGORICAL_FEATURES)
            .numeric(NUMERIC_FEATURES)
            .l2_penalty(l2)
            .max_iterations(iterations)
            .check()?
            .fit(&train)?;
        let version = registry.create_version(CreateVersion::new(name.clone(), model.package(Some(&train))?)).await?;
        versions.push(version.version);
    }
    registry.set_alias(SetAlias::new(name.clone(), "champion", versions[0])).await?;
    registry.set_alias(SetAlias::new(name.clone(), "challenger", versions[1])).await?;
    Ok(versions)
}
