//! What looking features up costs a request: the same model behind the scoring router,
//! called in process (no sockets), once with requests that carry their features and once
//! with requests that carry only keys and raw inputs, the features looked up point in time
//! in a `FeatureCache` over a table of 100,000 customers (2 windows each). The difference
//! is the added latency, at 1 and 100 records.
//!
//! `cargo bench -p mlops-benches --features serve --bench serving_features`

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mlops_core::features::{
    FeatureFunctions, FeatureLookup, FeatureSpec, FeatureTable, FeatureTables, OnDemandFeature,
};
use mlops_core::{FlavorRegistry, TabularClassifierParams, frame_to_split_json};
use mlops_infer::FeatureCache;
use mlops_infer::serve::{ModelServer, ModelSlot};
use mlops_registry::LoadedModel;
use polars::prelude::*;
use tower::ServiceExt;

fn spec() -> FeatureSpec {
    FeatureSpec::new()
        .lookup(FeatureLookup::new("customers", ["CustomerID"]).timestamp_lookup_key("ts").features(["MaxAmount"]))
        .on_demand(
            OnDemandFeature::new("max_difference_ratio", "MaxDifferenceRatio")
                .bind("max", "MaxAmount")
                .bind("value", "Amount"),
        )
}

/// Two windows per customer, ending at 1,000 and 2,000.
fn customers(count: i64) -> FeatureTables {
    let ids: Vec<i64> = (0..count).flat_map(|c| [c, c]).collect();
    let ends: Vec<i64> = (0..count).flat_map(|_| [1_000i64, 2_000]).collect();
    let max: Vec<f64> = (0..count).flat_map(|c| [(c % 97) as f64 + 10.0, (c % 89) as f64 + 20.0]).collect();
    let frame = df!("CustomerID" => ids, "window_end" => ends, "MaxAmount" => max).expect("frame");
    let mut tables = FeatureTables::new();
    tables.insert(FeatureTable::new("customers", ["CustomerID"], Some("window_end"), frame).expect("table"));
    tables
}

/// `rows` raw records of customers spread over the table, at times in either window.
fn raw(rows: usize, customers: i64) -> DataFrame {
    let ids: Vec<i64> = (0..rows as i64).map(|i| (i * 7_919) % customers).collect();
    let ts: Vec<i64> = (0..rows as i64).map(|i| 1_500 + (i % 2) * 1_000).collect();
    let amounts: Vec<f64> = (0..rows).map(|i| (i % 50) as f64 * 3.0).collect();
    df!("CustomerID" => ids, "ts" => ts, "Amount" => amounts).expect("records")
}

fn request(frame: &DataFrame) -> Request<Body> {
    let body = serde_json::json!({ "dataframe_split": frame_to_split_json(frame).expect("json") }).to_string();
    Request::post("/invocations").header("content-type", "application/json").body(Body::from(body)).expect("request")
}

fn serving_features(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let count = mlops_benches::bench_rows(100_000, 1_000) as i64;
    let tables = customers(count);
    let functions = FeatureFunctions::with_builtins();
    let mut train = spec().augment(&raw(2_000, count), &tables, &functions).expect("features");
    let labels: Vec<i32> = (0..train.height()).map(|i| i32::from(i % 3 == 0)).collect();
    train.with_column(Column::new("Label".into(), labels)).expect("label");
    let model = TabularClassifierParams::new("Label")
        .numeric(["Amount", "MaxAmount", "MaxDifferenceRatio"])
        .check()
        .expect("params")
        .fit(&train)
        .expect("fit");
    let package = model.package(Some(&train)).expect("package").with_features(spec());
    let loaded = LoadedModel::unregistered(
        "transactions".parse().expect("name"),
        1,
        FlavorRegistry::with_builtins().load(&package).expect("loads"),
    );
    let cache = runtime
        .block_on(FeatureCache::start(Arc::new(tables.clone()), &["customers"], Duration::from_secs(60)))
        .expect("cache");
    let carried =
        ModelServer::new().endpoint("t", Arc::new(ModelSlot::loaded(loaded.clone()))).expect("endpoint").router();
    let looked_up = ModelServer::new()
        .endpoint("t", Arc::new(ModelSlot::loaded(loaded)))
        .expect("endpoint")
        .features(cache, functions.clone())
        .router();

    let mut group = c.benchmark_group("serving_features");
    for rows in [1usize, 100] {
        let records = raw(rows, count);
        let with_features = spec().augment(&records, &tables, &functions).expect("features");
        for (name, router, frame) in
            [("features_in_request", &carried, &with_features), ("features_looked_up", &looked_up, &records)]
        {
            let answered = runtime.block_on(router.clone().oneshot(request(frame))).expect("answer");
            assert_eq!(answered.status(), 200, "{name} at {rows} records");
            group.bench_with_input(BenchmarkId::new(name, rows), frame, |b, frame| {
                b.iter(|| runtime.block_on(router.clone().oneshot(request(frame))).expect("answer").status())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, serving_features);
criterion_main!(benches);
