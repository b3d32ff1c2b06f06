//! The contract of [`Registry`] as a test suite: every backend of this crate runs it, and so
//! can a `Registry` of your own (on Postgres, on Unity Catalog, ...), with the `conformance`
//! feature, in its own tests.
//!
//! Each function takes a fresh, empty registry, exercises one part of the contract and
//! panics with the failed assertion, as a test does. [`run_all`] runs them all:
//!
//! ```
//! use mlops_registry::MemoryRegistry;
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // In a `#[tokio::test(flavor = "multi_thread")]` of your crate: `make` returns a fresh,
//! // empty registry each time (a new schema, a new prefix).
//! mlops_registry::conformance::run_all(MemoryRegistry::new).await;
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A backend without atomic conditional alias moves runs [`run_suite`] with
//! [`Capabilities::without_compare_and_swap`].
//!
//! [`concurrent_writers`] spawns tasks: run the suite on a multi-threaded Tokio runtime.

// A test suite: a panic is its failure report.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mlops_core::{FlavorRegistry, Model, ModelName, ModelUri, Package, TabularClassifierParams};
use polars::prelude::*;

use crate::{
    AliasMode, CreateModel, CreateVersion, DatasetRef, Error, Lineage, MlflowRegistry, Registry, RegistryExt,
    SearchVersions, SetAlias,
};

/// `s` as a model name.
pub fn name(s: &str) -> ModelName {
    s.parse().unwrap()
}

/// The frame the suite's models are trained and scored on.
pub fn training_frame() -> DataFrame {
    df!(
        "Product" => ["A", "B", "A", "B", "C", "C", "A", "B"],
        "Amount" => [1.0, 9.0, 2.0, 8.0, 5.0, 4.0, 1.5, 7.5],
        "Label" => [0, 1, 0, 1, 1, 0, 0, 1],
    )
    .unwrap()
}

/// A small logistic-regression package; packages of different `l2` predict differently.
pub fn package(l2: f64) -> Package {
    let train = training_frame();
    TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount"])
        .l2_penalty(l2)
        .check()
        .unwrap()
        .fit(&train)
        .unwrap()
        .package(Some(&train))
        .unwrap()
}

/// What the registry under test can do, and how the suite names training runs on it.
#[derive(Debug)]
pub struct Capabilities {
    compare_and_swap: bool,
    /// Makes the runs the suite links versions to; `None`: run ids are used as named.
    mlflow: Option<MlflowRegistry>,
    runs: tokio::sync::Mutex<BTreeMap<String, String>>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::standard()
    }
}

impl Capabilities {
    /// Atomic compare-and-swap alias moves, any string as a run id.
    pub fn standard() -> Self {
        Self { compare_and_swap: true, mlflow: None, runs: tokio::sync::Mutex::default() }
    }

    /// Without atomic conditional alias moves: the suite checks that the registry refuses
    /// them with [`Error::NotImplemented`] and moves nothing.
    #[must_use]
    pub fn without_compare_and_swap(mut self) -> Self {
        self.compare_and_swap = false;
        self
    }

    /// An MLflow server: unconditional alias moves only, and run ids of runs the suite
    /// creates on the server through `registry`.
    pub fn mlflow(registry: MlflowRegistry) -> Self {
        Self { compare_and_swap: false, mlflow: Some(registry), runs: tokio::sync::Mutex::default() }
    }

    /// The run id the suite calls `label`: the same id for the same label.
    pub async fn run_id(&self, label: &str) -> String {
        let mut runs = self.runs.lock().await;
        if let Some(id) = runs.get(label) {
            return id.clone();
        }
        let id = match &self.mlflow {
            Some(registry) => registry.create_run(label).await.unwrap(),
            None => label.to_owned(),
        };
        runs.insert(label.to_owned(), id.clone());
        id
    }
}

/// Runs every conformance function against registries made by `make`, with
/// [`Capabilities::standard`]; each function gets a fresh, empty registry.
pub async fn run_all<R: Registry + 'static>(make: impl Fn() -> R) {
    run_suite(async || make(), &Capabilities::standard()).await;
}

/// Runs every conformance function against `backend`, each on the fresh, empty registry
/// `make` returns.
pub async fn run_suite<R: Registry + 'static>(make: impl AsyncFn() -> R, backend: &Capabilities) {
    models(&make().await).await;
    versions(&make().await, backend).await;
    aliases(&make().await, backend).await;
    resolution_and_loading(&make().await, backend).await;
    search(&make().await, backend).await;
    deletion(&make().await).await;
    concurrent_writers(Arc::new(make().await), backend).await;
}

/// Models: create (a taken name refused), list sorted by name, descriptions and tags,
/// unknown models and invalid tags named.
pub async fn models(registry: &dyn Registry) {
    let tx = name("main.fraud.transactions");
    let created = registry
        .create_model(CreateModel::new(tx.clone()).description("fraud probability").tag("team", "risk"))
        .await
        .unwrap();
    assert_eq!(created.description, "fraud probability");
    assert!(matches!(
        registry.create_model(CreateModel::new(tx.clone())).await,
        Err(Error::AlreadyExists { what }) if what == "model `main.fraud.transactions`"
    ));
    registry.create_model(CreateModel::new(name("another"))).await.unwrap();
    let listed: Vec<String> = registry.list_models().await.unwrap().into_iter().map(|m| m.name.to_string()).collect();
    assert_eq!(listed, ["another", "main.fraud.transactions"]);

    registry.set_model_description(&tx, "probability that a transaction is fraud").await.unwrap();
    registry.set_model_tag(&tx, "owner", "ml-platform").await.unwrap();
    registry.delete_model_tag(&tx, "team").await.unwrap();
    registry.delete_model_tag(&tx, "never-set").await.unwrap();
    let model = registry.get_model(&tx).await.unwrap();
    assert_eq!(model.description, "probability that a transaction is fraud");
    assert_eq!(model.tags.into_iter().collect::<Vec<_>>(), [("owner".to_owned(), "ml-platform".to_owned())]);

    assert!(matches!(registry.get_model(&name("nope")).await, Err(Error::NotFound { what }) if what == "model `nope`"));
    assert!(matches!(registry.set_model_tag(&name("nope"), "k", "v").await, Err(Error::NotFound { .. })));
    assert!(matches!(registry.set_model_tag(&tx, "", "v").await, Err(Error::InvalidArgument(_))));
    let huge = "x".repeat(crate::MAX_TAG_VALUE_LEN + 1);
    assert!(matches!(registry.set_model_tag(&tx, "k", &huge).await, Err(Error::InvalidArgument(_))));
}

/// Versions: numbers from 1, description, tags, run link and lineage kept, packages back
/// byte for byte with their digest, non-finite metrics refused with nothing registered.
pub async fn versions(registry: &dyn Registry, backend: &Capabilities) {
    let run_1 = backend.run_id("run-1").await;
    let tx = name("transactions");
    assert!(matches!(
        registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await,
        Err(Error::NotFound { what }) if what == "model `transactions`"
    ));
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let lineage = Lineage {
        training_data: Some(DatasetRef { name: "train.parquet".into(), digest: "abc123".into() }),
        params: [("l2_penalty".to_owned(), "1.0".to_owned())].into(),
        metrics: [("train_log_loss".to_owned(), 0.42)].into(),
    };
    let v1 = registry
        .create_version(
            CreateVersion::new(tx.clone(), package(1.0))
                .description("first")
                .tag("validation_status", "needs_tested")
                .run(&run_1, "model")
                .lineage(lineage.clone()),
        )
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.flavor, "tabular_classifier");
    assert_eq!(v1.lineage, lineage);
    assert_eq!(v1.run.as_ref().unwrap().run_id, run_1);
    assert_eq!(v1.run.as_ref().unwrap().artifact_path, "model");
    let v2 = registry.create_version(CreateVersion::new(tx.clone(), package(0.1))).await.unwrap();
    let v3 = registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    assert_eq!((v2.version, v3.version), (2, 3));

    let read = registry.get_version(&tx, 1).await.unwrap();
    assert_eq!(read, v1);
    assert!(matches!(
        registry.get_version(&tx, 9).await,
        Err(Error::NotFound { what }) if what == "version 9 of model `transactions`"
    ));
    assert!(
        matches!(registry.get_version(&name("nope"), 1).await, Err(Error::NotFound { what }) if what == "model `nope`")
    );

    registry.set_version_tag(&tx, 1, "validation_status", "passed_tests").await.unwrap();
    registry.set_version_description(&tx, 1, "first, validated").await.unwrap();
    let updated = registry.delete_version_tag(&tx, 2, "absent").await.unwrap();
    assert!(updated.tags.is_empty());
    let v1 = registry.get_version(&tx, 1).await.unwrap();
    assert_eq!(v1.tags["validation_status"], "passed_tests");
    assert_eq!(v1.description, "first, validated");
    assert!(
        matches!(registry.set_version_tag(&tx, 7, "k", "v").await, Err(Error::NotFound { what }) if what.contains("version 7"))
    );

    // The package comes back byte for byte.
    let original = package(0.1);
    let v4 = registry.create_version(CreateVersion::new(tx.clone(), original.clone())).await.unwrap();
    let downloaded = registry.download_package(&tx, v4.version).await.unwrap();
    assert_eq!(downloaded.manifest(), original.manifest());
    for (path, bytes) in original.files() {
        assert_eq!(downloaded.file(path).unwrap(), bytes);
    }
    assert_eq!(v4.package_digest, original.digest().unwrap());

    // A metric that is not a finite number is refused where it enters: nothing registered,
    // and every listing of the model still reads.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let lineage = Lineage { metrics: [("log_loss".to_owned(), bad)].into(), ..Lineage::default() };
        let refused =
            registry.create_version(CreateVersion::new(tx.clone(), package(2.0)).lineage(lineage)).await.unwrap_err();
        assert!(matches!(&refused, Error::InvalidArgument(m) if m.contains("`log_loss`")), "{bad}: {refused:?}");
    }
    let listed = registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap();
    assert_eq!(listed.iter().map(|v| v.version).max(), Some(v4.version));
}

/// Deleting: a version an alias points at stays, a deleted number is never given again, a
/// deleted model goes with its versions and aliases and starts afresh when recreated.
pub async fn deletion(registry: &dyn Registry) {
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone()).tag("team", "risk")).await.unwrap();
    for l2 in [1.0, 0.5, 0.1] {
        registry.create_version(CreateVersion::new(tx.clone(), package(l2))).await.unwrap();
    }
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();

    // A version an alias points at stays, whole.
    let refused = registry.delete_version(&tx, 2).await.unwrap_err();
    assert!(
        matches!(&refused, Error::InUse { what, reason } if what == "version 2 of model `transactions`" && reason.contains("`champion`")),
        "{refused:?}"
    );
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 2);
    registry.download_package(&tx, 2).await.unwrap();

    // The highest version goes; its number is not given again.
    let deleted = registry.delete_version(&tx, 3).await.unwrap();
    assert_eq!(deleted.version, 3);
    assert!(matches!(registry.get_version(&tx, 3).await, Err(Error::NotFound { what }) if what.contains("version 3")));
    assert!(matches!(registry.download_package(&tx, 3).await, Err(Error::NotFound { .. })));
    assert!(matches!(registry.delete_version(&tx, 3).await, Err(Error::NotFound { .. })));
    assert!(matches!(
        registry.set_alias(SetAlias::new(tx.clone(), "challenger", 3)).await,
        Err(Error::NotFound { .. })
    ));
    let next = registry.create_version(CreateVersion::new(tx.clone(), package(2.0))).await.unwrap();
    assert_eq!(next.version, 4);
    registry.delete_version(&tx, 1).await.unwrap();
    let left: Vec<u64> =
        registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(left, [2, 4]);
    assert_eq!(registry.latest_version(&tx).await.unwrap().version, 4);
    assert!(
        matches!(registry.delete_version(&name("nope"), 1).await, Err(Error::NotFound { what }) if what == "model `nope`")
    );

    // A model goes with its versions and aliases; one made under its name starts afresh.
    let other = name("other");
    registry.create_model(CreateModel::new(other.clone())).await.unwrap();
    let gone = registry.delete_model(&tx).await.unwrap();
    assert_eq!(gone.tags["team"], "risk");
    assert!(matches!(registry.get_model(&tx).await, Err(Error::NotFound { .. })));
    assert!(matches!(registry.get_version(&tx, 2).await, Err(Error::NotFound { .. })));
    assert!(matches!(registry.version_by_alias(&tx, "champion").await, Err(Error::NotFound { .. })));
    assert!(matches!(registry.delete_model(&tx).await, Err(Error::NotFound { .. })));
    let listed: Vec<String> = registry.list_models().await.unwrap().into_iter().map(|m| m.name.to_string()).collect();
    assert_eq!(listed, ["other"]);
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    assert!(registry.get_model(&tx).await.unwrap().aliases.is_empty());
    assert_eq!(registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap().version, 1);
}

/// Aliases: moves (conditional ones when the registry has them), names validated, only
/// existing versions, aliases shown on every version read.
pub async fn aliases(registry: &dyn Registry, backend: &Capabilities) {
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    for l2 in [1.0, 0.5, 0.1] {
        registry.create_version(CreateVersion::new(tx.clone(), package(l2))).await.unwrap();
    }
    assert_eq!(registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap(), None);
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 1);

    if backend.compare_and_swap {
        // Create-only: refuses an existing alias.
        let create = SetAlias::new(tx.clone(), "champion", 2).mode(AliasMode::Create);
        assert!(matches!(
            registry.set_alias(create).await,
            Err(Error::Precondition { expected: None, found: Some(1), .. })
        ));
        // Compare-and-swap: wins when the expectation holds, loses (and changes nothing) otherwise.
        let swap = SetAlias::new(tx.clone(), "champion", 2).mode(AliasMode::Update(1));
        assert_eq!(registry.set_alias(swap).await.unwrap(), Some(1));
        let stale = SetAlias::new(tx.clone(), "champion", 3).mode(AliasMode::Update(1));
        match registry.set_alias(stale).await {
            Err(err @ Error::Precondition { .. }) => {
                assert_eq!(
                    err.to_string(),
                    "alias `champion` of model `transactions` points at version 2, expected version 1"
                )
            }
            other => panic!("expected Precondition, got {other:?}"),
        }
        let unset = SetAlias::new(tx.clone(), "challenger", 3).mode(AliasMode::Update(1));
        assert!(matches!(registry.set_alias(unset).await, Err(Error::Precondition { found: None, .. })));
    } else {
        // Without atomic conditional moves, the backend says so and moves nothing.
        for mode in [AliasMode::Create, AliasMode::Update(1)] {
            let conditional = SetAlias::new(tx.clone(), "champion", 3).mode(mode);
            assert!(matches!(registry.set_alias(conditional).await, Err(Error::NotImplemented { .. })));
        }
        assert_eq!(registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap(), Some(1));
    }
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 2);
    // The number alone, as a poller asks for it, agrees; unknown aliases and models are
    // told apart as the full read tells them.
    assert_eq!(registry.alias_version(&tx, "champion").await.unwrap(), 2);
    let champion: ModelUri = "models:/transactions@champion".parse().unwrap();
    assert_eq!(registry.resolve_version(&champion).await.unwrap(), 2);
    assert!(matches!(
        registry.alias_version(&tx, "nobody").await,
        Err(Error::NotFound { what }) if what.contains("alias `nobody`")
    ));
    assert!(matches!(
        registry.alias_version(&name("nope"), "champion").await,
        Err(Error::NotFound { what }) if what == "model `nope`"
    ));

    // An alias only points at a version that exists; names are validated.
    assert!(matches!(registry.set_alias(SetAlias::new(tx.clone(), "champion", 99)).await, Err(Error::NotFound { .. })));
    assert!(matches!(registry.set_alias(SetAlias::new(tx.clone(), "v3", 3)).await, Err(Error::Core(_))));
    assert!(matches!(
        registry.set_alias(SetAlias::new(name("nope"), "champion", 1)).await,
        Err(Error::NotFound { .. })
    ));

    registry.set_alias(SetAlias::new(tx.clone(), "challenger", 3)).await.unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "blue", 3)).await.unwrap();
    // Aliases appear on every version read, listed and searched.
    assert_eq!(registry.get_version(&tx, 3).await.unwrap().aliases, ["blue", "challenger"]);
    assert_eq!(registry.get_version(&tx, 2).await.unwrap().aliases, ["champion"]);
    assert!(registry.get_version(&tx, 1).await.unwrap().aliases.is_empty());
    let listed: Vec<Vec<String>> = registry
        .search_versions(SearchVersions::model(tx.clone()))
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.aliases)
        .collect();
    assert_eq!(listed, [vec![], vec!["champion".to_owned()], vec!["blue".to_owned(), "challenger".to_owned()]]);
    assert_eq!(registry.set_version_tag(&tx, 2, "k", "v").await.unwrap().aliases, ["champion"]);
    assert_eq!(registry.delete_alias(&tx, "blue").await.unwrap(), 3);
    let model = registry.get_model(&tx).await.unwrap();
    assert_eq!(
        model.aliases.into_iter().collect::<Vec<_>>(),
        [("challenger".to_owned(), 3), ("champion".to_owned(), 2)]
    );
    assert_eq!(registry.delete_alias(&tx, "challenger").await.unwrap(), 3);
    assert!(matches!(
        registry.delete_alias(&tx, "challenger").await,
        Err(Error::NotFound { what }) if what == "alias `challenger` of model `transactions`"
    ));
    assert!(matches!(
        registry.version_by_alias(&tx, "challenger").await,
        Err(Error::NotFound { what }) if what == "alias `challenger` of model `transactions`"
    ));
}

/// Resolving `models:/` and `runs:/` URIs, and loading the model they designate.
pub async fn resolution_and_loading(registry: &dyn Registry, backend: &Capabilities) {
    let (run_a, run_b) = (backend.run_id("run-a").await, backend.run_id("run-b").await);
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    assert!(matches!(registry.latest_version(&tx).await, Err(Error::NotFound { .. })));
    registry.create_version(CreateVersion::new(tx.clone(), package(1.0)).run(&run_a, "model")).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(0.01)).run(&run_b, "model")).await.unwrap();
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();

    let resolve = |uri: &str| {
        let uri: ModelUri = uri.parse().unwrap();
        async move { registry.resolve(&uri).await }
    };
    assert_eq!(resolve("models:/transactions@champion").await.unwrap().version, 1);
    assert_eq!(resolve("models:/transactions/2").await.unwrap().version, 2);
    assert_eq!(resolve("models:/transactions/latest").await.unwrap().version, 2);
    assert_eq!(resolve(&format!("runs:/{run_a}/model")).await.unwrap().version, 1);
    assert!(matches!(resolve(&format!("runs:/{run_a}/other")).await, Err(Error::NotFound { .. })));
    assert!(matches!(resolve("models:/transactions@challenger").await, Err(Error::NotFound { .. })));
    assert!(matches!(resolve("models:/unknown/latest").await, Err(Error::NotFound { .. })));

    let flavors = FlavorRegistry::with_builtins();
    let loaded = registry.load_model(&"models:/transactions@champion".parse().unwrap(), &flavors).await.unwrap();
    assert_eq!(loaded.version.version, 1);
    let expected = {
        let package = registry.download_package(&tx, 1).await.unwrap();
        flavors.load(&package).unwrap().predict(&training_frame()).unwrap()
    };
    assert!(loaded.model.predict(&training_frame()).unwrap().equals(&expected));
    let other = registry.load_model(&"models:/transactions/2".parse().unwrap(), &flavors).await.unwrap();
    assert!(!other.model.predict(&training_frame()).unwrap().equals(&expected), "v2 was trained differently");

    let no_flavors = FlavorRegistry::empty();
    assert!(matches!(
        registry.load_model(&"models:/transactions/1".parse().unwrap(), &no_flavors).await,
        Err(Error::Core(mlops_core::Error::UnknownFlavor { flavor, .. })) if flavor == "tabular_classifier"
    ));
}

/// Searching versions by model, tag and run.
pub async fn search(registry: &dyn Registry, backend: &Capabilities) {
    for model in ["a", "b"] {
        registry.create_model(CreateModel::new(name(model))).await.unwrap();
        // One run, one model in it, registered three times.
        let (run, trained) = (backend.run_id(&format!("{model}-run")).await, package(1.0));
        for status in ["needs_tested", "passed_tests", "needs_tested"] {
            registry
                .create_version(
                    CreateVersion::new(name(model), trained.clone())
                        .tag("validation_status", status)
                        .run(&run, "model"),
                )
                .await
                .unwrap();
        }
    }
    let found = |filter: SearchVersions| async move {
        registry
            .search_versions(filter)
            .await
            .unwrap()
            .into_iter()
            .map(|v| (v.name.to_string(), v.version))
            .collect::<Vec<_>>()
    };
    let pending = found(SearchVersions::default().tag("validation_status", "needs_tested")).await;
    assert_eq!(pending, [("a".into(), 1), ("a".into(), 3), ("b".into(), 1), ("b".into(), 3)]);
    assert_eq!(
        found(SearchVersions::model(name("b")).tag("validation_status", "passed_tests")).await,
        [("b".into(), 2)]
    );
    assert_eq!(found(SearchVersions::default().run_id(backend.run_id("a-run").await)).await.len(), 3);
    assert!(found(SearchVersions::model(name("a")).tag("project", "x")).await.is_empty());
    assert!(matches!(registry.search_versions(SearchVersions::model(name("zzz"))).await, Err(Error::NotFound { .. })));
}

/// Many writers at once: version numbers stay unique and dense, no tag update is lost, and
/// exactly one of several racing compare-and-swaps wins.
pub async fn concurrent_writers<R: Registry + 'static>(registry: Arc<R>, backend: &Capabilities) {
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let shared = package(1.0);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (registry, tx, package) = (Arc::clone(&registry), tx.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let v = registry.create_version(CreateVersion::new(tx.clone(), package)).await.unwrap();
            registry.set_model_tag(&tx, &format!("writer-{i}"), &v.version.to_string()).await.unwrap();
            v.version
        }));
    }
    let mut numbers = BTreeSet::new();
    for task in tasks {
        assert!(numbers.insert(task.await.unwrap()), "a version number was handed out twice");
    }
    assert_eq!(numbers, (1..=12).collect());
    let model = registry.get_model(&tx).await.unwrap();
    assert_eq!(model.tags.len(), 12, "a concurrent tag update was lost: {:?}", model.tags);

    registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    if !backend.compare_and_swap {
        return;
    }
    let mut racers = Vec::new();
    for target in 2..=9u64 {
        let (registry, tx) = (Arc::clone(&registry), tx.clone());
        racers.push(tokio::spawn(async move {
            registry.set_alias(SetAlias::new(tx, "champion", target).mode(AliasMode::Update(1))).await.map(|_| target)
        }));
    }
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.unwrap() {
            Ok(target) => winners.push(target),
            Err(Error::Precondition { .. }) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one compare-and-swap may win: {winners:?}");
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, winners[0]);
}
