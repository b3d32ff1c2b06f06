//! Resolving `models:/transactions@champion` and moving aliases, through the public API:
//! a `LiveModel` (no I/O), an uncached resolve on a local directory, on S3 (when
//! `MLOPS_S3_ENDPOINT` names an S3-compatible server) and on an MLflow tracking server (when
//! `MLOPS_MLFLOW_URI` names one), the version number alone (`resolve_version`, what a
//! `LiveModel` asks each poll) on S3 and MLflow, and compare-and-swap alias moves.
//!
//! `benches/compare-registry.sh` runs this beside the Python `MlflowClient` resolving an
//! alias against a local MLflow server.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mlops_core::{FlavorRegistry, ModelName, ModelUri, Package, TabularClassifierParams};
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, LiveModel, MlflowRegistry, ObjectStoreRegistry, Registry, RegistryExt,
    SetAlias,
};
use polars::prelude::df;

fn small_package() -> Package {
    let train = df!("Amount" => [1.0, 9.0, 2.0, 8.0], "Label" => [0, 1, 0, 1]).expect("frame");
    let model =
        TabularClassifierParams::new("Label").numeric(["Amount"]).check().expect("params").fit(&train).expect("fit");
    model.package(Some(&train)).expect("package")
}

async fn populate(registry: &dyn Registry, name: &ModelName) {
    registry.create_model(CreateModel::new(name.clone())).await.expect("model");
    for _ in 0..2 {
        registry.create_version(CreateVersion::new(name.clone(), small_package())).await.expect("version");
    }
    registry.set_alias(SetAlias::new(name.clone(), "champion", 1)).await.expect("alias");
}

fn s3_registry(runtime: &tokio::runtime::Runtime, name: &ModelName) -> Option<ObjectStoreRegistry> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let registry = mlops_benches::s3_registry_at(&format!("bench-{nanos}"))?;
    runtime.block_on(populate(&registry, name));
    Some(registry)
}

/// A model of its own on the MLflow server (others may share it), and its champion's URI.
fn mlflow_registry(runtime: &tokio::runtime::Runtime) -> Option<(MlflowRegistry, ModelUri)> {
    let tracking_uri = std::env::var("MLOPS_MLFLOW_URI").ok()?;
    let registry = MlflowRegistry::builder(&tracking_uri).experiment("alias-resolution-bench").build().expect("mlflow");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let name: ModelName = format!("transactions-bench-{nanos}").parse().expect("name");
    runtime.block_on(populate(&registry, &name));
    Some((registry, format!("models:/{name}@champion").parse().expect("uri")))
}

fn alias_resolution(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let name: ModelName = "transactions".parse().expect("name");
    let uri: ModelUri = "models:/transactions@champion".parse().expect("uri");
    let dir = tempfile::tempdir().expect("temp dir");
    let local = Arc::new(ObjectStoreRegistry::local(dir.path()).expect("registry"));
    runtime.block_on(populate(&local, &name));

    let mut group = c.benchmark_group("alias_resolution");
    group.measurement_time(Duration::from_secs(3));
    let live = runtime
        .block_on(LiveModel::start(local.clone(), uri.clone(), FlavorRegistry::default(), Duration::from_secs(3600)))
        .expect("live model");
    group.bench_function("live_model", |b| b.iter(|| live.current().version.version));
    group.bench_function("resolve_local_dir", |b| {
        b.iter(|| runtime.block_on(local.resolve(&uri)).expect("resolves").version)
    });
    if let Some(s3) = s3_registry(&runtime, &name) {
        group
            .bench_function("resolve_s3", |b| b.iter(|| runtime.block_on(s3.resolve(&uri)).expect("resolves").version));
        group.bench_function("resolve_version_s3", |b| {
            b.iter(|| runtime.block_on(s3.resolve_version(&uri)).expect("resolves"))
        });
    }
    if let Some((mlflow, champion)) = mlflow_registry(&runtime) {
        group.bench_function("resolve_mlflow", |b| {
            b.iter(|| runtime.block_on(mlflow.resolve(&champion)).expect("resolves").version)
        });
        // What a LiveModel asks each poll, as MlflowClient's `get_model_version_by_alias`
        // does: one request.
        group.bench_function("resolve_version_mlflow", |b| {
            b.iter(|| runtime.block_on(mlflow.resolve_version(&champion)).expect("resolves"))
        });
    }
    let mut current = 1;
    group.bench_function("cas_alias_move_local_dir", |b| {
        b.iter(|| {
            let target = 3 - current;
            let request = SetAlias::new(name.clone(), "champion", target).mode(AliasMode::Update(current));
            runtime.block_on(local.set_alias(request)).expect("moves");
            current = target;
        })
    });
    group.finish();
}

criterion_group!(benches, alias_resolution);
criterion_main!(benches);
