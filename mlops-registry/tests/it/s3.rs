//! The object-store registry on an S3-compatible server, through `s3://` URLs.

use mlops_registry::{CreateModel, CreateVersion, Registry, RegistryExt};

use crate::servers::{open, s3_bucket_url, unique_prefix};
use mlops_registry::conformance::{name, package};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_registry_keeps_the_contract() {
    let Some(bucket) = s3_bucket_url() else { return };
    mlops_registry::conformance::run_all(|| open(&format!("{bucket}/{}", unique_prefix("conformance")))).await;
}

#[tokio::test]
async fn an_s3_registry_is_shared_by_independent_clients() {
    let Some(bucket) = s3_bucket_url() else { return };
    let url = format!("{bucket}/{}", unique_prefix("shared"));
    let (writer, reader) = (open(&url), open(&url));
    let tx = name("transactions");
    writer.create_model(CreateModel::new(tx.clone())).await.unwrap();
    let version = writer.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    assert_eq!(version.source, format!("{url}/models/transactions/packages/{}", version.package_digest));
    assert_eq!(reader.latest_version(&tx).await.unwrap(), version);
    let downloaded = reader.download_package(&tx, 1).await.unwrap();
    assert_eq!(downloaded.digest().unwrap(), version.package_digest);
}

#[test]
fn separate_processes_share_an_s3_registry_safely() {
    let Some(bucket) = s3_bucket_url() else { return };
    crate::processes::race_writer_processes(&format!("{bucket}/{}", unique_prefix("processes")));
}

#[test]
fn writers_killed_at_random_points_leave_a_usable_s3_registry() {
    let Some(bucket) = s3_bucket_url() else { return };
    crate::processes::kill_writers_at_random_points(&format!("{bucket}/{}", unique_prefix("killed")), 23);
}

#[tokio::test]
async fn an_s3_registry_resolves_in_two_requests_and_polls_in_one_through_conditional_overwrites() {
    use std::sync::Arc;

    use mlops_registry::object_store::path::Path;
    use mlops_registry::object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
    use mlops_registry::{ObjectStoreRegistry, SetAlias};

    let Some(bucket) = s3_bucket_url() else { return };
    let url = format!("{bucket}/{}", unique_prefix("requests"));
    let store = Arc::clone(open(&url).store());
    // The server refuses an overwrite on a stale e-tag: pointers are swapped, never clobbered.
    let probe = Path::from(format!("{}/probe", unique_prefix("etag")));
    store.put(&probe, PutPayload::from_static(b"1")).await.unwrap();
    let stale = UpdateVersion { e_tag: Some("\"not-the-etag\"".into()), version: None };
    let options = PutOptions { mode: PutMode::Update(stale), ..PutOptions::default() };
    let refused = store.put_opts(&probe, PutPayload::from_static(b"2"), options).await;
    assert!(matches!(refused, Err(mlops_registry::object_store::Error::Precondition { .. })), "{refused:?}");

    let registry = open(&url);
    let tx = name("transactions");
    registry.create_model(CreateModel::new(tx.clone())).await.unwrap();
    registry.create_version(CreateVersion::new(tx.clone(), package(1.0))).await.unwrap();
    for _ in 0..20 {
        registry.set_alias(SetAlias::new(tx.clone(), "champion", 1)).await.unwrap();
    }
    let counting = Arc::new(crate::stores::InstrumentedStore::new(Arc::clone(&store)));
    let root = Path::from(url.trim_start_matches(&format!("{bucket}/")));
    let fresh = ObjectStoreRegistry::new(Arc::clone(&counting) as Arc<dyn ObjectStore>, root);
    let uri = "models:/transactions@champion".parse().unwrap();
    assert_eq!(fresh.resolve(&uri).await.unwrap().version, 1);
    assert_eq!(counting.requests(), 2, "requests to resolve an alias on S3");
    // What a LiveModel asks each poll: the alias's version number, from the model's document.
    assert_eq!(fresh.resolve_version(&uri).await.unwrap(), 1);
    assert_eq!(counting.requests(), 3, "requests to read an alias's version number on S3");
}
