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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mlops_core::{FlavorRegistry, ModelName, TabularClassifierParams};
use mlops_examples::transactions::{self, CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES};
use mlops_infer::serve::{Endpoint, MemoryRecorder, ModelServer, ROUTE_HEADER};
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
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
    let recorder = Arc::new(MemoryRecorder::new(100_000));
    let app = ModelServer::new().endpoint("transactions", endpoint)?.recorder(recorder.clone()).router();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let address = listener.local_addr()?;
    println!("==> serving on http://{address}/invocations (and /serving-endpoints/transactions/invocations)");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = tokio::signal::ctrl_c() => println!("==> Ctrl-C: finishing requests in flight"),
                }
            })
            .await
    });

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
        let _ = stop.send(());
    }
    server.await??;
    Ok(())
}

/// The versions of the model, registering three (champion, challenger, and a newer one)
/// when the registry holds none.
async fn ensure_versions(registry: &dyn Registry, name: &ModelName) -> Result<Vec<u64>, Box<dyn std::error::Error>> {
    let existing = registry.search_versions(mlops_registry::SearchVersions::model(name.clone())).await;
    if let Ok(found) = &existing
        && found.len() >= 2
        && registry.get_model(name).await?.aliases.contains_key("challenger")
    {
        return Ok(found.iter().map(|v| v.version).collect());
    }
    println!("==> registering three versions in an empty registry");
    let train = transactions::generate(&transactions::Config::new(20_000, 42))?;
    if registry.get_model(name).await.is_err() {
        registry.create_model(CreateModel::new(name.clone())).await?;
    }
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
