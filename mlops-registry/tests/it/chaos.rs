//! A local registry whose documents are corrupted, truncated and deleted under a running
//! `LiveModel`: it keeps serving the last good version, reports the fault, and recovers
//! once the documents are back; a corrupt newest revision is repaired by the next write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mlops_core::FlavorRegistry;
use mlops_registry::{CreateModel, CreateVersion, Error, LiveModel, ObjectStoreRegistry, Registry, SetAlias};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use mlops_registry::conformance::{name, package, training_frame};

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { pending.push(path) } else { found.push(path) }
        }
    }
    found.sort();
    found
}

async fn registry_with_three_versions(dir: &Path) -> Arc<ObjectStoreRegistry> {
    let registry = Arc::new(ObjectStoreRegistry::local(dir).unwrap());
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    for l2 in [1.0, 0.1, 10.0] {
        registry.create_version(CreateVersion::new(tx.clone(), package(l2))).await.unwrap();
    }
    registry.set_alias(SetAlias::new(tx, "champion", 1)).await.unwrap();
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_model_keeps_serving_through_corrupt_truncated_and_deleted_documents() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_three_versions(dir.path()).await;
    let interval = Duration::from_millis(10);
    let live = Arc::new(
        LiveModel::start(
            registry.clone(),
            "models:/transactions@champion".parse().unwrap(),
            FlavorRegistry::default(),
            interval,
        )
        .await
        .unwrap(),
    );
    let models = dir.path().join("models");
    let originals: Vec<(PathBuf, Vec<u8>)> =
        files_under(&models).into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let predictor = {
        let (live, stop) = (Arc::clone(&live), Arc::clone(&stop));
        std::thread::spawn(move || {
            let frame = training_frame();
            let mut predictions = 0u64;
            while !stop.load(Ordering::Relaxed) {
                live.predict(&frame).expect("a prediction failed while the registry was damaged");
                predictions += 1;
            }
            predictions
        })
    };

    let mut rng = StdRng::seed_from_u64(17);
    let mut faults_seen = 0;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        let (path, bytes) = &originals[rng.random_range(0..originals.len())];
        match rng.random_range(0..4u8) {
            0 => std::fs::write(path, b"{ \"not\": a document").unwrap(),
            1 => std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap(),
            2 => {
                let _ = std::fs::remove_file(path);
            }
            _ => std::fs::write(path, bytes).unwrap(),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        faults_seen += usize::from(live.last_error().is_some());
    }
    // Corrupt the alias document for certain, then watch the fault being reported.
    let model_revisions: Vec<&PathBuf> =
        originals.iter().map(|(p, _)| p).filter(|p| p.to_string_lossy().contains("/model/")).collect();
    for path in &model_revisions {
        std::fs::write(path, b"garbage").unwrap();
    }
    let reported = Instant::now() + Duration::from_secs(10);
    while live.last_error().is_none() {
        assert!(Instant::now() < reported, "a registry that cannot be read was never reported");
        tokio::time::sleep(interval).await;
    }
    let problem_deadline = Instant::now() + Duration::from_secs(10);
    while live.status().problem(interval).is_none() {
        assert!(Instant::now() < problem_deadline, "the stale alias was never reported as a problem");
        tokio::time::sleep(interval).await;
    }
    assert!(faults_seen > 0 || live.last_error().is_some());
    assert_eq!(live.version(), 1, "the last good version keeps serving");

    // The documents come back: the model confirms its alias again and follows it.
    for (path, bytes) in &originals {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    registry.set_alias(SetAlias::new(name("transactions"), "champion", 2)).await.unwrap();
    let recovered = Instant::now() + Duration::from_secs(10);
    while live.version() != 2 || live.status().problem(interval).is_some() {
        assert!(Instant::now() < recovered, "the model did not recover: {:?}", live.status());
        tokio::time::sleep(interval).await;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(predictor.join().unwrap() > 0);
}

#[tokio::test]
async fn a_corrupt_newest_revision_is_named_and_the_next_write_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry_with_three_versions(dir.path()).await;
    let tx = name("transactions");
    let revisions = dir.path().join("models/transactions/model");
    let newest = files_under(&revisions).pop().unwrap();
    for damage in [&b"{ torn"[..], b""] {
        std::fs::write(&newest, damage).unwrap();
        match registry.get_model(&tx).await {
            Err(Error::Corrupt(message)) => {
                let file = newest.file_name().unwrap().to_string_lossy().into_owned();
                assert!(message.contains(&file) && message.contains("next update"), "{message}");
            }
            other => panic!("expected the corrupt revision to be named, got {other:?}"),
        }
    }
    // Any write supersedes it, from the newest revision that parses.
    registry.set_alias(SetAlias::new(tx.clone(), "champion", 2)).await.unwrap();
    let model = registry.get_model(&tx).await.unwrap();
    assert_eq!(model.aliases["champion"], 2);
    assert_eq!(registry.version_by_alias(&tx, "champion").await.unwrap().version, 2);

    // A stray file that is not a padded revision never shadows the real ones.
    std::fs::write(revisions.join("99.json"), b"{}").unwrap();
    assert_eq!(registry.get_model(&tx).await.unwrap().aliases["champion"], 2);
}
