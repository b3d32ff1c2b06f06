//! Feature tables on Delta Lake, and streams that look features up before scoring.

use std::sync::Arc;

use mlops_core::features::{
    FeatureFunctions, FeatureLookup, FeatureSpec, FeatureTable, FeatureTables, OnDemandFeature,
};
use mlops_core::{ColSpec, ColumnType, FlavorRegistry, Schema, TabularClassifierParams};
use mlops_infer::stream::{Checkpoint, FileFormat, FileSource, StreamingScorer};
use mlops_infer::{BatchScorer, DeltaFeatureStore, FeatureStore, InferenceTable, InferenceTableConfig, TableLocation};
use mlops_registry::{LoadedModel, ModelSlot};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use polars::prelude::*;

fn windows(values: [f64; 3]) -> FeatureTable {
    let frame = df!(
        "Product" => ["A", "B", "A"],
        "window_end" => [1_000i64, 1_000, 3_000],
        "MaxProductAmount" => values,
    )
    .unwrap();
    FeatureTable::new("products", ["Product"], Some("window_end"), frame).unwrap()
}

fn spec() -> FeatureSpec {
    FeatureSpec::new()
        .lookup(FeatureLookup::new("products", ["Product"]).timestamp_lookup_key("ts").features(["MaxProductAmount"]))
        .on_demand(
            OnDemandFeature::new("max_difference_ratio", "MaxDifferenceRatio")
                .bind("max", "MaxProductAmount")
                .bind("value", "Amount"),
        )
}

/// A classifier trained on looked-up features, loaded from a package that records them.
fn featured_scorer(tables: &FeatureTables) -> BatchScorer {
    let raw = df!(
        "Product" => ["A", "B", "A", "A", "B", "A"],
        "ts" => [1_500i64, 1_200, 3_100, 2_000, 1_900, 3_500],
        "Amount" => [10.0, 19.0, 79.0, 45.0, 2.0, 5.0],
        "Label" => [0, 1, 1, 1, 0, 0],
    )
    .unwrap();
    let train = spec().augment(&raw, tables, &FeatureFunctions::with_builtins()).unwrap();
    let model = TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount", "MaxProductAmount", "MaxDifferenceRatio"])
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    let package = model.package(Some(&train)).unwrap().with_features(spec());
    BatchScorer::new("transactions", 1, FlavorRegistry::with_builtins().load(&package).unwrap())
}

fn sorted(frame: &DataFrame, by: &str) -> DataFrame {
    frame.sort([by], SortMultipleOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_feature_tables_round_trip_with_their_keys_and_new_versions_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let store = DeltaFeatureStore::new(TableLocation::local(dir.path().join("features")).unwrap());
    // Version 0 creates the table with its description, version 1 holds the rows.
    assert_eq!(store.write(&windows([50.0, 20.0, 80.0])).await.unwrap(), 1);

    let read = store.read("products").await.unwrap();
    assert_eq!(read.keys(), ["Product"]);
    assert_eq!(read.timestamp(), Some("window_end"));
    assert!(
        sorted(read.frame(), "MaxProductAmount")
            .equals(&sorted(windows([50.0, 20.0, 80.0]).frame(), "MaxProductAmount"))
    );

    // A rewrite is a new version, and the next read sees it (not the cached one).
    assert_eq!(store.write(&windows([51.0, 21.0, 81.0])).await.unwrap(), 2);
    let tables = store.tables(&["products"]).await.unwrap();
    let max = tables.get("products").unwrap().frame().column("MaxProductAmount").unwrap().f64().unwrap().sum();
    assert_eq!(max, Some(153.0));

    let other_keys = FeatureTable::new("products", ["window_end"], None, windows([1.0, 2.0, 3.0]).frame().clone());
    let err = store.write(&other_keys.unwrap()).await.unwrap_err().to_string();
    assert!(err.contains("feature table `products` is stored with keys [\"Product\"]"), "{err}");
    let err = store.read("customers").await.unwrap_err().to_string();
    assert!(err.contains("no feature table `customers`"), "{err}");
    let err = store.location("_delta_log").unwrap_err().to_string();
    assert!(err.contains("`_delta_log`"), "{err}");

    // A Delta table that was not written as a feature table is refused, saying why.
    let inference = InferenceTable::new(store.location("scores").unwrap(), InferenceTableConfig::new(["id"])).unwrap();
    let scored = crate::inference_table::scorer().score(&crate::inference_table::records(0..2)).unwrap();
    inference.append(&scored).await.unwrap();
    let err = store.read("scores").await.unwrap_err().to_string();
    assert!(err.contains("table `scores` is not a feature table"), "{err}");
}

// Multi-threaded: the test itself runs Polars queries, whose engine blocks in place.
#[tokio::test(flavor = "multi_thread")]
async fn a_stream_looks_features_up_point_in_time_and_sets_aside_records_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let features = DeltaFeatureStore::new(TableLocation::local(dir.path().join("features")).unwrap());
    features.write(&windows([50.0, 20.0, 80.0])).await.unwrap();
    let tables = features.tables(&["products"]).await.unwrap();
    let scorer = featured_scorer(&tables);
    let model = || -> Arc<ModelSlot> {
        let loaded = LoadedModel::unregistered("transactions".parse().unwrap(), 1, scorer.model());
        Arc::new(ModelSlot::loaded(loaded))
    };

    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    let lines = [
        r#"{"id": "r0", "Product": "A", "ts": 2000, "Amount": 10.0}"#,
        r#"{"id": "r1", "Product": "A", "ts": 500, "Amount": 5.0}"#,
        r#"{"id": "r2", "Product": "B", "ts": 1500, "Amount": 10.0}"#,
        r#"{"id": "r3", "Product": "A", "ts": 3000, "Amount": 40.0}"#,
        r#"{"id": "r4", "Product": "C", "ts": 4000, "Amount": 1.0}"#,
        r#"{"id": "r5", "Product": "A", "ts": 3500, "Amount": "lots"}"#,
    ];
    std::fs::write(input.join("part-0.jsonl"), lines.join("\n")).unwrap();
    let schema = Schema::new(vec![
        ColSpec::new("id", ColumnType::String),
        ColSpec::new("Product", ColumnType::String),
        ColSpec::new("ts", ColumnType::Long),
        ColSpec::new("Amount", ColumnType::Double).nullable(),
    ])
    .unwrap();
    let source = || {
        FileSource::new(
            Arc::new(LocalFileSystem::new_with_prefix(&input).unwrap()),
            Path::default(),
            FileFormat::JsonLines,
        )
        .schema(schema.clone())
    };
    let table = Arc::new(
        InferenceTable::new(
            TableLocation::local(dir.path().join("inference")).unwrap(),
            InferenceTableConfig::new(["id"]),
        )
        .unwrap(),
    );
    let checkpoint = || Checkpoint::local(dir.path().join("checkpoint")).unwrap();

    // Without a feature store the stream refuses to start guessing.
    let mut blind = StreamingScorer::new("s", source(), model(), table.clone(), checkpoint());
    let err = blind.run(std::future::pending()).await.unwrap_err().to_string();
    assert!(err.contains("looks up features in products; give the streaming scorer a feature store"), "{err}");

    let store: Arc<dyn FeatureStore> = Arc::new(features);
    let mut stream = StreamingScorer::new("s", source(), model(), table.clone(), checkpoint())
        .features(store, FeatureFunctions::with_builtins());
    let report = stream.run(std::future::pending()).await.unwrap();
    assert_eq!((report.records, report.scored, report.dead_letters), (6, 3, 3));

    let written = sorted(&table.read().await.unwrap(), "id");
    let ids: Vec<&str> = written.column("id").unwrap().str().unwrap().iter().flatten().collect();
    assert_eq!(ids, ["r0", "r2", "r3"]);
    let max: Vec<f64> = written.column("MaxProductAmount").unwrap().f64().unwrap().into_no_null_iter().collect();
    assert_eq!(max, [50.0, 20.0, 80.0]);
    let ratio: Vec<f64> = written.column("MaxDifferenceRatio").unwrap().f64().unwrap().into_no_null_iter().collect();
    assert_eq!(ratio, [0.8, 0.5, 0.5]);

    // The stream's predictions are what scoring the same records directly gives.
    let direct = scorer
        .score_with_features(
            &df!("id" => ["r0", "r2", "r3"], "Product" => ["A", "B", "A"], "ts" => [2000i64, 1500, 3000], "Amount" => [10.0, 10.0, 40.0])
                .unwrap(),
            &tables,
            &FeatureFunctions::with_builtins(),
        )
        .unwrap();
    assert_eq!(written.column("prediction").unwrap(), direct.column("prediction").unwrap());

    let letters = checkpoint().dead_letters().await.unwrap();
    let mut reasons: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                serde_json::from_str::<serde_json::Value>(l.record.as_deref().unwrap()).unwrap()["id"].to_string(),
                l.reason.clone(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, "\"r1\"");
    assert!(reasons[0].1.contains("`MaxProductAmount`"), "{reasons:?}");
    assert_eq!(reasons[1].0, "\"r4\"");
    assert!(reasons[1].1.contains("`MaxProductAmount`"), "{reasons:?}");
    assert_eq!(reasons[2].0, "\"r5\"");
    assert!(reasons[2].1.contains("`Amount`"), "{reasons:?}");
}

/// The predictions the model makes on `raw` with its features looked up in `tables`.
#[cfg(feature = "serve")]
fn expected_predictions(scorer: &BatchScorer, raw: &DataFrame, tables: &FeatureTables) -> Vec<f64> {
    let augmented = spec().augment(raw, tables, &FeatureFunctions::with_builtins()).unwrap();
    let scored = scorer.score(&augmented).unwrap();
    scored.column("prediction").unwrap().f64().unwrap().into_no_null_iter().collect()
}

/// An endpoint with a feature store: requests carry keys and raw inputs only, features are
/// looked up point in time from tables held in memory and refreshed when the Delta table
/// gets a new version, and a record whose keys find nothing is refused, named.
#[cfg(feature = "serve")]
#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_looks_features_up_from_a_cache_refreshed_with_the_table() {
    use mlops_infer::FeatureCache;
    use mlops_infer::serve::ModelServer;
    use serde_json::{Value, json};

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DeltaFeatureStore::new(TableLocation::local(dir.path().join("features")).unwrap()));
    store.write(&windows([50.0, 20.0, 80.0])).await.unwrap();
    let first = store.tables(&["products"]).await.unwrap();
    let scorer = featured_scorer(&first);
    let mut loaded = LoadedModel::unregistered("transactions".parse().unwrap(), 1, scorer.model());
    loaded.input_example = Some(df!("Product" => ["B"], "ts" => [1_300i64], "Amount" => [12.0]).unwrap());
    let cache = FeatureCache::start(store.clone(), &["products"], std::time::Duration::from_millis(50)).await.unwrap();
    let with_store = ModelServer::new()
        .endpoint("featured", Arc::new(ModelSlot::loaded(loaded.clone())))
        .unwrap()
        .features(cache.clone(), FeatureFunctions::with_builtins());
    let without_store = ModelServer::new().endpoint("featured", Arc::new(ModelSlot::loaded(loaded))).unwrap();
    let base = crate::serve::serve(with_store).await;
    let bare = crate::serve::serve(without_store).await;

    let raw =
        df!("Product" => ["A", "B", "A"], "ts" => [1_500i64, 1_200, 3_100], "Amount" => [10.0, 19.0, 79.0]).unwrap();
    let body = json!({ "dataframe_split": mlops_core::frame_to_split_json(&raw).unwrap() }).to_string();
    let predictions = |answer: &Value| -> Vec<f64> {
        answer["predictions"].as_array().unwrap().iter().map(|r| r["prediction"].as_f64().unwrap()).collect()
    };
    let url = format!("{base}/invocations");
    let (status, _, answer) = crate::serve::post(&url, Some("application/json"), body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(predictions(&answer), expected_predictions(&scorer, &raw, &first));

    // The endpoint's OpenAPI document asks for the raw inputs only.
    let document: Value =
        reqwest::get(format!("{base}/serving-endpoints/featured/openapi")).await.unwrap().json().await.unwrap();
    let record = &document["components"]["schemas"]["Record"];
    let properties = record["properties"].as_object().unwrap();
    assert_eq!(properties.keys().collect::<Vec<_>>(), ["Amount", "Product", "ts"], "{document}");
    assert_eq!(record["required"], json!(["Product", "Amount", "ts"]));
    let example = &document["paths"]["/serving-endpoints/featured/invocations"]["post"]["requestBody"]["content"]["application/json"]
        ["example"];
    let (status, _, answer) = crate::serve::post(&url, Some("application/json"), example.to_string()).await;
    assert_eq!(status, 200, "the example request is answered: {example} {answer}");

    // Without a store the request must carry the features itself.
    let (status, _, answer) =
        crate::serve::post(&format!("{bare}/invocations"), Some("application/json"), body.clone()).await;
    assert_eq!(status, 400);
    assert!(answer["message"].as_str().unwrap().contains("MaxProductAmount"), "{answer}");

    // A product with no features, or a time before any window: refused, naming the record.
    for (product, ts) in [("C", 2_000i64), ("A", 10)] {
        let body = json!({"dataframe_records": [{"Product": "A", "ts": 1_500, "Amount": 1.0}, {"Product": product, "ts": ts, "Amount": 5.0}]});
        let (status, _, answer) = crate::serve::post(&url, Some("application/json"), body.to_string()).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains("record 1") && message.contains(product), "{message}");
    }

    // A new version of the table is served once the cache has read it.
    store.write(&windows([51.0, 90.0, 81.0])).await.unwrap();
    let second = store.tables(&["products"]).await.unwrap();
    let expected = expected_predictions(&scorer, &raw, &second);
    assert_ne!(expected, expected_predictions(&scorer, &raw, &first));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, _, answer) = crate::serve::post(&url, Some("application/json"), body.clone()).await;
        assert_eq!(status, 200, "{answer}");
        if predictions(&answer) == expected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cache never served the new table version");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(cache.last_error(), None);
}
