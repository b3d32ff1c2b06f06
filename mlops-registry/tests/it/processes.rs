//! Writers in separate OS processes: the test binary runs itself again as each writer.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use mlops_registry::{AliasMode, CreateModel, CreateVersion, Error, Registry, RegistryExt, SearchVersions, SetAlias};

use crate::servers::open;
use mlops_registry::conformance::{name, package};

const REGISTRY_URL: &str = "MLOPS_TEST_WRITER_REGISTRY";
const OUT_DIR: &str = "MLOPS_TEST_WRITER_OUT";
const WRITER_ID: &str = "MLOPS_TEST_WRITER_ID";
const WRITERS: usize = 4;
const VERSIONS_PER_WRITER: usize = 3;

/// Runs inside the child processes of [`race_writer_processes`]; does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of the separate-process tests"]
fn writer_process() {
    let (Ok(url), Ok(out), Ok(id)) = (std::env::var(REGISTRY_URL), std::env::var(OUT_DIR), std::env::var(WRITER_ID))
    else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = open(&url);
    let tx = name("transactions");
    let line = runtime.block_on(async {
        let mut numbers = Vec::new();
        for i in 0..VERSIONS_PER_WRITER {
            let version =
                registry.create_version(CreateVersion::new(tx.clone(), package(1.0 + i as f64))).await.unwrap();
            registry.set_model_tag(&tx, &format!("writer-{id}-{i}"), &version.version.to_string()).await.unwrap();
            numbers.push(version.version);
        }
        // Every process tries to move champion off version 1; exactly one may succeed.
        let target = numbers[0];
        let won =
            match registry.set_alias(SetAlias::new(tx.clone(), "champion", target).mode(AliasMode::Update(1))).await {
                Ok(_) => target,
                Err(Error::Precondition { .. }) => 0,
                Err(other) => panic!("{other}"),
            };
        format!("{}|{won}", numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(","))
    });
    std::fs::write(Path::new(&out).join(format!("writer-{id}.out")), line).unwrap();
}

/// Starts [`WRITERS`] processes on the registry at `url`, racing version creation, tag
/// updates and one compare-and-swap, and checks that nothing was lost or doubled.
pub fn race_writer_processes(url: &str) {
    let out = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = open(url);
    let tx = name("transactions");
    runtime.block_on(async {
        registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
        registry.create_version(CreateVersion::new(tx.clone(), package(0.5))).await.unwrap();
        registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    });
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WRITERS)
        .map(|writer| {
            Command::new(&exe)
                .args(["--ignored", "--exact", "processes::writer_process", "--test-threads", "1"])
                .env(REGISTRY_URL, url)
                .env(OUT_DIR, out.path())
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
    for writer in 0..WRITERS {
        let line = std::fs::read_to_string(out.path().join(format!("writer-{writer}.out"))).unwrap();
        let (versions, won) = line.trim().split_once('|').unwrap();
        numbers.extend(versions.split(',').map(|v| v.parse::<u64>().unwrap()));
        match won.parse::<u64>().unwrap() {
            0 => {}
            target => winners.push(target),
        }
    }
    let unique: BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(unique.len(), numbers.len(), "a version number was handed out twice: {numbers:?}");
    let total = (1 + WRITERS * VERSIONS_PER_WRITER) as u64;
    assert_eq!(unique, (2..=total).collect(), "version numbers must be dense");
    runtime.block_on(async {
        let model = registry.get_model(&tx).await.unwrap();
        assert_eq!(model.tags.len(), WRITERS * VERSIONS_PER_WRITER, "a tag update was lost: {:?}", model.tags);
        assert_eq!(winners.len(), 1, "exactly one process may win the swap: {winners:?}");
        assert_eq!(model.aliases["champion"], winners[0], "the reported winner is where the alias points");
        let versions = registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap();
        assert_eq!(versions.len() as u64, total);
    });
}

const CRASH_ROUNDS: u64 = 5;
const CRASH_WRITERS: usize = 3;

/// Runs inside the child processes of [`kill_writers_at_random_points`]: writes until it is
/// killed. Does nothing otherwise.
#[test]
#[ignore = "helper: runs as a child process of the kill tests"]
fn endless_writer_process() {
    let (Ok(url), Ok(id)) = (std::env::var(REGISTRY_URL), std::env::var(WRITER_ID)) else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let registry = open(&url);
    let tx = name("transactions");
    runtime.block_on(async {
        for i in 0u64.. {
            let version =
                registry.create_version(CreateVersion::new(tx.clone(), package(1.0 + i as f64))).await.unwrap();
            registry.set_version_tag(&tx, version.version, "writer", &id).await.unwrap();
            registry.set_alias(SetAlias::new(tx.clone(), "champion", version.version)).await.unwrap();
            let current = registry.version_by_alias(&tx, "challenger").await.map(|v| v.version).ok();
            let mode = current.map_or(AliasMode::Create, AliasMode::Update);
            match registry.set_alias(SetAlias::new(tx.clone(), "challenger", version.version).mode(mode)).await {
                Ok(_) | Err(Error::Precondition { .. }) => {}
                Err(other) => panic!("{other}"),
            }
        }
    });
}

/// Starts writers on the registry at `url` and kills them (SIGKILL) at pseudo-random
/// instants, round after round; after every round a fresh reader must find a registry it
/// can fully use: dense version numbers, every version's package complete and verified,
/// every alias on an existing version.
pub fn kill_writers_at_random_points(url: &str, seed: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tx = name("transactions");
    runtime.block_on(open(url).create_model(CreateModel::new(tx.clone()))).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut state = seed;
    for round in 0..CRASH_ROUNDS {
        let mut writers: Vec<_> = (0..CRASH_WRITERS)
            .map(|writer| {
                Command::new(&exe)
                    .args(["--ignored", "--exact", "processes::endless_writer_process", "--test-threads", "1"])
                    .env(REGISTRY_URL, url)
                    .env(WRITER_ID, format!("{round}-{writer}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let lifetime = std::time::Duration::from_millis(150 + (state >> 33) % 600);
        std::thread::sleep(lifetime);
        for writer in &mut writers {
            writer.kill().unwrap();
        }
        for mut writer in writers {
            writer.wait().unwrap();
        }
        runtime.block_on(check_usable(url, round));
    }
    // And writing goes on where the dead writers stopped.
    let registry = open(url);
    runtime.block_on(async {
        let before = registry.latest_version(&tx).await.map(|v| v.version).unwrap_or(0);
        assert!(before >= CRASH_ROUNDS, "the writers made too little progress to test anything: {before} versions");
        let next = registry.create_version(CreateVersion::new(tx.clone(), package(0.5))).await.unwrap();
        assert_eq!(next.version, before + 1);
    });
}

async fn check_usable(url: &str, round: u64) {
    let registry = open(url);
    let tx = name("transactions");
    let versions = registry.search_versions(SearchVersions::model(tx.clone())).await.unwrap();
    let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "round {round}: version numbers must be dense");
    for version in &versions {
        registry
            .download_package(&tx, version.version)
            .await
            .unwrap_or_else(|e| panic!("round {round}: version {} is visible but unusable: {e}", version.version));
    }
    let model = registry.get_model(&tx).await.unwrap();
    for (alias, version) in &model.aliases {
        assert!(numbers.contains(version), "round {round}: alias {alias} points at missing version {version}");
    }
}
