//! A registry that has lived: resolving `models:/transactions@champion` and moving the alias
//! by compare-and-swap when the model's document has 10, 1,000 and 100,000 revisions, on a
//! local directory and on S3 (when `MLOPS_S3_ENDPOINT` names an S3-compatible server); then
//! garbage collection of 10,000 versions' packages with registrations racing it.
//!
//! `REVISIONS` (comma-separated, default `10,1000,100000`) and `GC_VERSIONS` (default
//! 10,000) change the sizes. In test mode (`cargo test --benches`, an unoptimized build)
//! the defaults are `10,100` and 200: a check that it runs, in seconds. The local histories are written by real alias moves. An S3
//! history is written by the same moves on an in-memory store (which keeps the pointer the
//! way S3 does, by conditional overwrite), then uploaded object by object: 100,000 moves
//! against a Python S3 server one request at a time would take hours. Each alias-move
//! measurement adds revisions of its own; below 100,000 they are compacted away (outside
//! the timing) every 100 moves, so a size stays what it says.
//!
//! `benches/compare-registry.sh` runs it with a moto server.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures::{StreamExt, TryStreamExt};
use mlops_core::{ModelName, ModelUri};
use mlops_registry::conformance::package;
use mlops_registry::object_store::memory::InMemory;
use mlops_registry::object_store::path::Path;
use mlops_registry::object_store::{ObjectStore, ObjectStoreExt};
use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, GarbageCollection, ObjectStoreRegistry, Registry, RegistryExt,
    RevisionRetention, SetAlias,
};

/// Alias moves between compactions in the compare-and-swap measurement.
const COMPACT_EVERY: u64 = 100;

fn sizes() -> Vec<u64> {
    std::env::var("REVISIONS")
        .unwrap_or_else(|_| if mlops_benches::benchmarking() { "10,1000,100000" } else { "10,100" }.into())
        .split(',')
        .map(|size| size.trim().parse().expect("REVISIONS: comma-separated revision counts"))
        .collect()
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// A model with two versions whose document has `revisions` revisions: its creation, two
/// registrations, then alias moves between 1 and 2. Returns where the alias points.
async fn live_through(registry: &dyn Registry, name: &ModelName, revisions: u64) -> u64 {
    registry.create_model(CreateModel::new(name.clone())).await.expect("model");
    for l2 in [1.0, 0.5] {
        registry.create_version(CreateVersion::new(name.clone(), package(l2))).await.expect("version");
    }
    let (mut current, started) = (None, Instant::now());
    for move_number in 3..revisions {
        let target = if current == Some(1) { 2 } else { 1 };
        let mode = current.map_or(AliasMode::Create, AliasMode::Update);
        registry.set_alias(SetAlias::new(name.clone(), "champion", target).mode(mode)).await.expect("alias move");
        current = Some(target);
        if move_number % 10_000 == 0 {
            eprintln!("  {move_number} of {revisions} revisions in {:.0?}", started.elapsed());
        }
    }
    current.expect("at least four revisions")
}

/// A registry whose model has lived through `revisions` updates, and where its alias points.
struct Lived {
    registry: ObjectStoreRegistry,
    champion: u64,
    revisions: u64,
}

fn local_registry(runtime: &tokio::runtime::Runtime, dir: &std::path::Path, revisions: u64) -> Lived {
    let registry = ObjectStoreRegistry::local(dir.join(revisions.to_string())).expect("registry");
    let name: ModelName = "transactions".parse().expect("name");
    let started = Instant::now();
    let champion = runtime.block_on(live_through(&registry, &name, revisions));
    eprintln!("local directory: {revisions} revisions written in {:.1?}", started.elapsed());
    Lived { registry, champion, revisions }
}

fn s3_registry(runtime: &tokio::runtime::Runtime, revisions: u64) -> Option<Lived> {
    let root = format!("lifecycle-{}-{revisions}", nanos());
    let registry = mlops_benches::s3_registry_at(&root)?;
    let memory = Arc::new(InMemory::new());
    let written = ObjectStoreRegistry::new(memory.clone(), Path::default());
    let name: ModelName = "transactions".parse().expect("name");
    let started = Instant::now();
    let champion = runtime.block_on(async {
        let champion = live_through(&written, &name, revisions).await;
        let objects: Vec<_> = memory.list(None).try_collect().await.expect("listing");
        let s3 = Arc::clone(registry.store());
        futures::stream::iter(objects)
            .map(|meta| {
                let (memory, s3, root) = (memory.clone(), s3.clone(), root.clone());
                async move {
                    let bytes = memory.get(&meta.location).await?.bytes().await?;
                    let target = Path::from(format!("{root}/{}", meta.location));
                    s3.put(&target, bytes.into()).await.map(|_| ())
                }
            })
            .buffer_unordered(32)
            .try_collect::<()>()
            .await
            .expect("upload");
        champion
    });
    eprintln!("S3: {revisions} revisions written and uploaded in {:.1?}", started.elapsed());
    Some(Lived { registry, champion, revisions })
}

fn at_scale(c: &mut Criterion, group_name: &str, lived: &mut [Lived], runtime: &tokio::runtime::Runtime) {
    let name: ModelName = "transactions".parse().expect("name");
    let uri: ModelUri = "models:/transactions@champion".parse().expect("uri");
    let mut group = c.benchmark_group(group_name);
    group.measurement_time(Duration::from_secs(5));
    for lived in lived.iter() {
        group.bench_with_input(BenchmarkId::new("resolve", lived.revisions), lived, |b, lived| {
            b.iter(|| runtime.block_on(lived.registry.resolve(&uri)).expect("resolves").version)
        });
    }
    for lived in lived.iter_mut() {
        let retention = RevisionRetention::keep_newest(NonZeroU64::new(lived.revisions).expect("revisions"))
            .min_age(Duration::ZERO);
        group.bench_function(BenchmarkId::new("compare_and_swap", lived.revisions), |b| {
            b.iter_custom(|moves| {
                let mut timed = Duration::ZERO;
                for move_number in 0..moves {
                    if lived.revisions < 100_000 && move_number % COMPACT_EVERY == COMPACT_EVERY - 1 {
                        runtime.block_on(lived.registry.compact(&retention)).expect("compaction");
                    }
                    let target = 3 - lived.champion;
                    let request =
                        SetAlias::new(name.clone(), "champion", target).mode(AliasMode::Update(lived.champion));
                    let started = Instant::now();
                    runtime.block_on(lived.registry.set_alias(request)).expect("moves");
                    timed += started.elapsed();
                    lived.champion = target;
                }
                timed
            })
        });
    }
    group.finish();
}

fn registry_at_scale(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut local: Vec<Lived> = sizes().into_iter().map(|size| local_registry(&runtime, dir.path(), size)).collect();
    at_scale(c, "registry_at_scale_local_dir", &mut local, &runtime);
    drop(local);
    let mut s3: Vec<Lived> = sizes().into_iter().filter_map(|size| s3_registry(&runtime, size)).collect();
    if !s3.is_empty() {
        at_scale(c, "registry_at_scale_s3", &mut s3, &runtime);
    }
}

/// Garbage collection of `GC_VERSIONS` versions' packages, half of them deleted, while a
/// registration loop adds versions (new packages, and packages just deleted) until it ends.
/// One run: collecting is not repeatable on the same registry. Prints one JSON line.
fn garbage_collection_racing_registrations(_: &mut Criterion) {
    let versions: u64 = std::env::var("GC_VERSIONS")
        .map_or(if mlops_benches::benchmarking() { 10_000 } else { 200 }, |v| v.parse().expect("GC_VERSIONS: a count"));
    if versions == 0 {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Arc::new(ObjectStoreRegistry::local(dir.path()).expect("registry"));
    let name: ModelName = "transactions".parse().expect("name");
    let l2 = |i: u64| 1.0 / (i as f64 + 1.0);
    let started = Instant::now();
    runtime.block_on(async {
        registry.create_model(CreateModel::new(name.clone())).await.expect("model");
        for i in 0..versions {
            registry.create_version(CreateVersion::new(name.clone(), package(l2(i)))).await.expect("version");
            if (i + 1) % 1_000 == 0 {
                eprintln!("  {} of {versions} versions registered in {:.0?}", i + 1, started.elapsed());
            }
        }
        for version in (1..=versions).step_by(2) {
            registry.delete_version(&name, version).await.expect("delete");
        }
    });
    eprintln!("{versions} versions registered, half deleted, in {:.1?}", started.elapsed());

    let collecting = Arc::new(AtomicBool::new(true));
    let registering = {
        let (registry, name, collecting) = (registry.clone(), name.clone(), collecting.clone());
        runtime.spawn(async move {
            let mut registered = Vec::new();
            for i in 0.. {
                // Alternately a package never seen and one whose version was just deleted,
                // which the collector may be removing right now.
                let l2 = if i % 2 == 0 { 1.0 / (versions + i + 1) as f64 } else { l2(2 * (i / 2) % versions) };
                let version = registry.create_version(CreateVersion::new(name.clone(), package(l2))).await;
                registered.push(version.expect("registration during collection").version);
                if !collecting.load(Ordering::SeqCst) {
                    break;
                }
            }
            registered
        })
    };
    let started = Instant::now();
    let report = runtime
        .block_on(registry.collect_garbage(&GarbageCollection::new().grace(Duration::ZERO)))
        .expect("garbage collection");
    let collection = started.elapsed();
    collecting.store(false, Ordering::SeqCst);
    let registered = runtime.block_on(registering).expect("registrations");

    // Every version left, the racing ones included, still downloads and verifies.
    let live: Vec<u64> = (2..=versions).step_by(2).chain(registered.iter().copied()).collect();
    let lost: Vec<u64> = runtime.block_on(async {
        futures::stream::iter(live.iter().copied())
            .filter(|&version| {
                let (registry, name) = (registry.clone(), name.clone());
                async move { registry.download_package(&name, version).await.is_err() }
            })
            .collect()
            .await
    });
    println!(
        "garbage collection: {}",
        serde_json::json!({
            "versions": versions,
            "seconds": collection.as_secs_f64(),
            "packages_removed": report.packages_removed.len(),
            "packages_live": report.packages_live,
            "packages_recent": report.packages_recent,
            "registered_while_collecting": registered.len(),
            "live_versions_checked": live.len(),
            "live_versions_lost": lost.len(),
        })
    );
    assert!(lost.is_empty(), "versions whose package went: {lost:?}");
}

criterion_group!(benches, registry_at_scale, garbage_collection_racing_registrations);
criterion_main!(benches);
