use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mlops_registry::{
    AliasMode, CreateModel, CreateVersion, Error, ObjectStoreRegistry, Registry, RegistryExt, SearchVersions, SetAlias,
};
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;

use crate::conformance::{name, package};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_directory_registry_keeps_the_contract() {
    let root = tempfile::tempdir().unwrap();
    let counter = AtomicUsize::new(0);
    crate::conformance::run_all(|| {
        let dir = root.path().join(counter.fetch_add(1, Ordering::SeqCst).to_string());
        ObjectStoreRegistry::local(dir).unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_store_registry_keeps_the_contract_on_an_in_memory_store() {
    crate::conformance::run_all(|| ObjectStoreRegistry::new(Arc::new(InMemory::new()), StorePath::from("registry")))
        .await;
}

#[tokio::test]
async fn a_corrupted_artifact_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let version = registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    let stored = dir.path().join("models/transactions/packages").join(&version.package_digest);
    let expected_source = format!("file://{}", stored.canonicalize().unwrap().display());
    assert_eq!(version.source, expected_source, "a version's source is where its package lives");

    std::fs::write(stored.join("model.json"), b"{\"tampered\": true}").unwrap();
    match registry.download_package(&tx, 1).await {
        Err(Error::Core(mlops_core::Error::Checksum { path, .. })) => assert_eq!(path, "model.json"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    std::fs::remove_file(stored.join("model.json")).unwrap();
    match registry.download_package(&tx, 1).await {
        Err(Error::Core(mlops_core::Error::InvalidPackage(message))) => {
            assert!(message.contains("model.json"), "{message}")
        }
        other => panic!("expected a missing-file error, got {other:?}"),
    }
}

/// Separate registry instances, each on its own thread and runtime, share nothing but the
/// directory, like separate services.
#[test]
fn independent_instances_on_one_directory_never_lose_updates() {
    let dir = tempfile::tempdir().unwrap();
    let tx = name("transactions");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime
        .block_on(ObjectStoreRegistry::local(dir.path()).unwrap().create_model(CreateModel::new(tx.clone())))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|writer| {
            let (dir, tx) = (dir.path().to_owned(), tx.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(write_versions(&dir, &tx, writer, 3))
            })
        })
        .collect();
    let numbers: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    check_dense_and_complete(&runtime, dir.path(), numbers, 0);
}

async fn write_versions(dir: &Path, tx: &mlops_core::ModelName, writer: usize, count: usize) -> Vec<u64> {
    let registry = ObjectStoreRegistry::local(dir).unwrap();
    let mut numbers = Vec::new();
    for i in 0..count {
        let version = registry.create_version(CreateVersion::new(tx.clone(), package(1.0 + i as f64))).await.unwrap();
        registry.set_model_tag(tx, &format!("writer-{writer}-{i}"), &version.version.to_string()).await.unwrap();
        numbers.push(version.version);
    }
    numbers
}

/// The writers' version numbers are unique and, with the `first` ones created before them,
/// dense; every writer's tag update landed.
fn check_dense_and_complete(runtime: &tokio::runtime::Runtime, dir: &Path, numbers: Vec<u64>, first: u64) {
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "a version number was handed out twice: {numbers:?}");
    let total = first + numbers.len() as u64;
    assert_eq!(unique, (first + 1..=total).collect(), "version numbers must be dense");
    let registry = ObjectStoreRegistry::local(dir).unwrap();
    let tx = name("transactions");
    let model = runtime.block_on(registry.get_model(&tx)).unwrap();
    assert_eq!(model.tags.len(), numbers.len(), "a tag update was lost: {:?}", model.tags);
    let versions = runtime.block_on(registry.search_versions(SearchVersions::model(tx))).unwrap();
    assert_eq!(versions.len() as u64, total);
}

const WRITER_DIR: &str = "MLOPS_TEST_WRITER_DIR";
const WRITER_ID: &str = "MLOPS_TEST_WRITER_ID";

/// Runs inside the child processes of
/// [`separate_processes_never_lose_updates_or_double_win_a_swap`]; does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of separate_processes_never_lose_updates_or_double_win_a_swap"]
fn writer_process() {
    let (Ok(dir), Ok(id)) = (std::env::var(WRITER_DIR), std::env::var(WRITER_ID)) else { return };
    let writer: usize = id.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let tx = name("transactions");
    let numbers = runtime.block_on(write_versions(Path::new(&dir), &tx, writer, 3));
    // Every process tries to move champion off version 1; at most one may succeed.
    let registry = ObjectStoreRegistry::local(&dir).unwrap();
    let target = numbers[0];
    let outcome =
        runtime.block_on(registry.set_alias(SetAlias::new(tx, "champion", target).mode(AliasMode::Update(1))));
    let won = match outcome {
        Ok(_) => true,
        Err(Error::Precondition { .. }) => false,
        Err(other) => panic!("{other}"),
    };
    let line = format!(
        "{}|{}\n",
        numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        if won { target } else { 0 }
    );
    std::fs::write(Path::new(&dir).join(format!("writer-{writer}.out")), line).unwrap();
}

#[test]
fn separate_processes_never_lose_updates_or_double_win_a_swap() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let tx = name("transactions");
    let registry = ObjectStoreRegistry::local(dir.path()).unwrap();
    runtime.block_on(async {
        registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
        registry.create_version(CreateVersion::new(tx.clone(), package(0.5))).await.unwrap();
        registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    });
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|writer| {
            Command::new(&exe)
                .args(["--ignored", "--exact", "local::writer_process", "--test-threads", "1"])
                .env(WRITER_DIR, dir.path())
                .env(WRITER_ID, writer.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a writer process failed");
    }
    let mut numbers = Vec::new();
    let mut winners = Vec::new();
    for writer in 0..4 {
        let out = std::fs::read_to_string(dir.path().join(format!("writer-{writer}.out"))).unwrap();
        let (versions, won) = out.trim().split_once('|').unwrap();
        numbers.extend(versions.split(',').map(|v| v.parse::<u64>().unwrap()));
        let won: u64 = won.parse().unwrap();
        if won != 0 {
            winners.push(won);
        }
    }
    check_dense_and_complete(&runtime, dir.path(), numbers, 1);
    assert_eq!(winners.len(), 1, "exactly one process may win the swap: {winners:?}");
    let champion = runtime.block_on(registry.get_model(&tx)).unwrap().aliases["champion"];
    assert_eq!(champion, winners[0], "the reported winner is where the alias points");
}
