use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlops_core::{FlavorRegistry, ModelUri};
use mlops_registry::{
    CreateModel, CreateVersion, Error, LiveModel, MemoryRegistry, ObjectStoreRegistry, Registry, SetAlias,
};
use polars::prelude::*;

use mlops_registry::conformance::{name, package, training_frame};

const PENALTIES: [f64; 3] = [1.0, 0.01, 30.0];

fn champion() -> ModelUri {
    "models:/transactions@champion".parse().unwrap()
}

/// A registry with one version per penalty, champion on version 1, and what each version
/// predicts on the training frame.
async fn setup<R: Registry>(registry: &R) -> BTreeMap<u64, Series> {
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let flavors = FlavorRegistry::with_builtins();
    let mut expected = BTreeMap::new();
    for l2 in PENALTIES {
        let package = package(l2);
        let model = flavors.load(&package).unwrap();
        let version = registry.create_version(CreateVersion::new(tx.clone(), package)).await.unwrap();
        let predicted = model.predict(&training_frame()).unwrap();
        expected.insert(version.version, predicted.column("prediction").unwrap().as_materialized_series().clone());
    }
    let distinct: Vec<&Series> = expected.values().collect();
    assert!(!distinct[0].equals(distinct[1]) && !distinct[1].equals(distinct[2]), "versions must predict differently");
    registry.set_alias(SetAlias::new(tx, "champion", 1)).await.unwrap();
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_never_fail_while_the_alias_keeps_moving() {
    let registry = Arc::new(MemoryRegistry::new());
    let expected = Arc::new(setup(registry.as_ref()).await);
    let live = Arc::new(
        LiveModel::start(registry.clone(), champion(), FlavorRegistry::default(), Duration::from_millis(5))
            .await
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let predictors: Vec<_> = (0..3)
        .map(|_| {
            let (live, expected, stop) = (Arc::clone(&live), Arc::clone(&expected), Arc::clone(&stop));
            std::thread::spawn(move || {
                let frame = training_frame();
                let mut seen = BTreeMap::<u64, usize>::new();
                while !stop.load(Ordering::Relaxed) {
                    let prediction = live.predict(&frame).expect("a prediction failed while the alias moved");
                    let column = prediction.frame.column("prediction").unwrap().as_materialized_series();
                    assert!(
                        column.equals(&expected[&prediction.version]),
                        "a prediction reported version {} but was not made by it",
                        prediction.version
                    );
                    *seen.entry(prediction.version).or_default() += 1;
                }
                seen
            })
        })
        .collect();

    let tx = name("transactions");
    for round in 0..30u64 {
        let target = round % 3 + 1;
        registry.set_alias(SetAlias::new(tx.clone(), "champion", target)).await.unwrap();
        if round % 2 == 0 {
            live.refresh().await.unwrap();
            assert_eq!(live.version(), target, "an explicit refresh serves the new version at once");
        }
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = BTreeMap::<u64, usize>::new();
    for predictor in predictors {
        for (version, count) in predictor.join().expect("a predictor thread failed") {
            *seen.entry(version).or_default() += count;
        }
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [1, 2, 3], "every version served: {seen:?}");
    assert!(live.last_error().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_follows_the_alias_by_itself() {
    let registry = Arc::new(MemoryRegistry::new());
    setup(registry.as_ref()).await;
    let live = LiveModel::start(registry.clone(), champion(), FlavorRegistry::default(), Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(live.version(), 1);
    registry.set_alias(SetAlias::new(name("transactions"), "champion", 3)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.version() != 3 {
        assert!(Instant::now() < deadline, "the poller did not pick up the alias move");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(live.current().version.version, 3);
}

#[tokio::test]
async fn a_version_that_fails_to_load_never_replaces_the_serving_one() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(ObjectStoreRegistry::local(dir.path()).unwrap());
    setup(registry.as_ref()).await;
    let live = LiveModel::start(registry.clone(), champion(), FlavorRegistry::default(), Duration::from_secs(3600))
        .await
        .unwrap();

    let tx = name("transactions");
    let broken = registry.get_version(&tx, 2).await.unwrap();
    let weights = dir.path().join("models/transactions/packages").join(&broken.package_digest).join("model.json");
    let mut tampered = std::fs::read(&weights).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(&weights, tampered).unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();
    match live.refresh().await {
        Err(Error::Core(mlops_core::Error::Checksum { path, .. })) => assert_eq!(path, "model.json"),
        other => panic!("expected the corrupted version to be refused, got {other:?}"),
    }
    assert_eq!(live.version(), 1, "the working version keeps serving");
    assert!(live.predict(&training_frame()).is_ok());
    assert!(live.last_error().unwrap().contains("model.json"));

    registry.set_alias(SetAlias::new(tx, "champion", 3)).await.unwrap();
    assert_eq!(live.refresh().await.unwrap(), Some(3));
    assert_eq!(live.refresh().await.unwrap(), None, "nothing moved");
    assert!(live.last_error().is_none());
}

#[tokio::test]
async fn starting_needs_a_resolvable_uri_and_a_positive_interval() {
    let registry = Arc::new(MemoryRegistry::new());
    setup(registry.as_ref()).await;
    let challenger: ModelUri = "models:/transactions@challenger".parse().unwrap();
    assert!(matches!(
        LiveModel::start(registry.clone(), challenger, FlavorRegistry::default(), Duration::from_secs(1)).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        LiveModel::start(registry, champion(), FlavorRegistry::default(), Duration::ZERO).await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_events_trigger_an_immediate_refresh() {
    let registry = Arc::new(mlops_registry::ObservedRegistry::new(Arc::new(MemoryRegistry::new()), 64));
    setup(registry.as_ref()).await;
    // A poll interval far longer than the test: only the event can explain a swap.
    let live = LiveModel::start(registry.clone(), champion(), FlavorRegistry::default(), Duration::from_secs(3600))
        .await
        .unwrap()
        .with_events(registry.subscribe());
    let tx = name("transactions");
    // Events about other aliases or models do not move the champion.
    registry.set_alias(SetAlias::new(tx.clone(), "challenger", 3)).await.unwrap();
    registry.set_alias(SetAlias::new(tx, "champion", 2)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.version() != 2 {
        assert!(Instant::now() < deadline, "the alias event did not trigger a refresh");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A flavor whose loader panics, as a loader meeting a file it did not expect might.
struct Explodes;

impl mlops_core::Flavor for Explodes {
    fn name(&self) -> &str {
        "explodes"
    }

    fn load(&self, _: &mlops_core::Package) -> mlops_core::Result<Arc<dyn mlops_core::Model>> {
        panic!("index out of bounds: the len is 0 but the index is 7")
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_loader_panics_fails_alone_and_the_poller_goes_on() {
    let registry = Arc::new(MemoryRegistry::new());
    setup(registry.as_ref()).await;
    let mut flavors = FlavorRegistry::with_builtins();
    flavors.register(Arc::new(Explodes));
    let live =
        LiveModel::start(registry.clone(), champion(), flavors.clone(), Duration::from_millis(20)).await.unwrap();

    let tx = name("transactions");
    let signature = package(1.0).manifest().signature.clone();
    let explodes = mlops_core::Package::builder("explodes", signature).build().unwrap();
    let version = registry.create_version(CreateVersion::new(tx.clone(), explodes)).await.unwrap().version;
    registry.set_alias(SetAlias::new(tx.clone(), "champion", version)).await.unwrap();
    until("the panic is reported", || live.last_error().is_some_and(|e| e.contains("failed unexpectedly"))).await;
    let error = live.last_error().unwrap();
    assert!(error.contains("loading a `explodes` model") && error.contains("the index is 7"), "{error}");
    assert_eq!(live.version(), 1, "the working version keeps serving");
    assert!(live.status().polling);

    // The poller is alive: it follows the next move.
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 3)).await.unwrap();
    until("the poller follows the alias", || live.version() == 3).await;
    assert_eq!(live.status().problem(live.poll_interval()), None);

    // Starting on such a version is an error, not a panic.
    registry.set_alias(SetAlias::new(tx, "champion", version)).await.unwrap();
    let started = LiveModel::start(registry, champion(), flavors, Duration::from_secs(1)).await;
    assert!(matches!(started, Err(Error::Core(mlops_core::Error::Panicked { .. }))), "{started:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_cannot_confirm_its_alias_reports_itself_stale() {
    let registry = Arc::new(MemoryRegistry::new());
    setup(registry.as_ref()).await;
    let interval = Duration::from_millis(20);
    let live = LiveModel::start(registry.clone(), champion(), FlavorRegistry::default(), interval).await.unwrap();
    assert_eq!(live.status().problem(interval), None);
    registry.delete_alias(&name("transactions"), "champion").await.unwrap();
    until("the model reports itself stale", || live.status().problem(interval).is_some()).await;
    let problem = live.status().problem(interval).unwrap();
    assert!(problem.contains("serving version 1 unconfirmed") && problem.contains("champion"), "{problem}");
    assert!(live.predict(&training_frame()).is_ok(), "the last good version keeps serving");
    registry.set_alias(SetAlias::new(name("transactions"), "champion", 1)).await.unwrap();
    until("the alias is confirmed again", || live.status().problem(interval).is_none()).await;
}
