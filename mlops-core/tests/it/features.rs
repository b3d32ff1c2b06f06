use std::time::Duration;

use mlops_core::features::{
    FeatureFunctions, FeatureLookup, FeatureSpec, FeatureTable, FeatureTables, OnDemandFeature, SlidingWindow,
    WindowAggregation,
};
use mlops_core::{Error, FlavorRegistry, Model, Package, TabularClassifierParams};
use polars::prelude::*;

const MINUTE: i64 = 60_000;

fn datetime_ms(frame: DataFrame, column: &str) -> DataFrame {
    frame.lazy().with_column(col(column).cast(DataType::Datetime(TimeUnit::Milliseconds, None))).collect().unwrap()
}

fn products() -> FeatureTables {
    let windows = df!(
        "Product" => ["A", "A", "B", "A"],
        "window_end" => [MINUTE, 2 * MINUTE, MINUTE, 3 * MINUTE],
        "MaxProductAmount" => [50.0, 80.0, 20.0, 30.0],
        "Count" => [1i64, 2, 3, 4],
    )
    .unwrap();
    FeatureTables::from([FeatureTable::new("products", ["Product"], Some("window_end"), windows).unwrap()])
}

fn product_lookup() -> FeatureLookup {
    FeatureLookup::new("products", ["Product"]).timestamp_lookup_key("ts").features(["MaxProductAmount"])
}

fn f64s(frame: &DataFrame, column: &str) -> Vec<Option<f64>> {
    frame.column(column).unwrap().f64().unwrap().iter().collect()
}

#[test]
fn point_in_time_takes_the_latest_row_at_or_before_each_record_and_keeps_record_order() {
    let records = df!(
        "id" => [0i64, 1, 2, 3, 4, 5],
        "Product" => [Some("A"), Some("A"), Some("B"), Some("A"), Some("C"), None],
        "ts" => [Some(2 * MINUTE + 1), Some(MINUTE - 1), Some(10 * MINUTE), None, Some(5 * MINUTE), Some(5 * MINUTE)],
    )
    .unwrap();
    let spec = FeatureSpec::new().lookup(product_lookup());
    let out = spec.augment(&records, &products(), &FeatureFunctions::with_builtins()).unwrap();
    assert_eq!(out.column("id").unwrap().i64().unwrap().into_no_null_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    // 2m+1 sees the window closed at 2m; 1m-1 is before A's first window; B's only window is
    // at 1m; a record without time, an unknown product and a null key find nothing.
    assert_eq!(f64s(&out, "MaxProductAmount"), [Some(80.0), None, Some(20.0), None, None, None]);

    // A record exactly at a window's end sees it.
    let at_end = df!("Product" => ["A"], "ts" => [3 * MINUTE]).unwrap();
    let out = spec.augment(&at_end, &products(), &FeatureFunctions::with_builtins()).unwrap();
    assert_eq!(f64s(&out, "MaxProductAmount"), [Some(30.0)]);
}

#[test]
fn datetime_records_join_tables_in_another_time_unit_and_key_width() {
    let records = datetime_ms(df!("Product" => ["A"], "ts" => [2 * MINUTE + 5]).unwrap(), "ts");
    let windows = df!("Product" => ["A"], "window_end" => [2 * MINUTE * 1000], "MaxProductAmount" => [7.0]).unwrap();
    let windows = windows
        .lazy()
        .with_column(col("window_end").cast(DataType::Datetime(TimeUnit::Microseconds, None)))
        .collect()
        .unwrap();
    let tables =
        FeatureTables::from([FeatureTable::new("products", ["Product"], Some("window_end"), windows).unwrap()]);
    let out =
        FeatureSpec::new().lookup(product_lookup()).augment(&records, &tables, &FeatureFunctions::default()).unwrap();
    assert_eq!(f64s(&out, "MaxProductAmount"), [Some(7.0)]);

    let customers = df!("CustomerID" => [1i32, 2], "segment" => ["x", "y"]).unwrap();
    let tables = FeatureTables::from([FeatureTable::new("customers", ["CustomerID"], None, customers).unwrap()]);
    let records = df!("CustomerID" => [2i64, 3, 1]).unwrap();
    let spec = FeatureSpec::new().lookup(FeatureLookup::new("customers", ["CustomerID"]).features(["segment"]));
    let out = spec.augment(&records, &tables, &FeatureFunctions::default()).unwrap();
    let segments: Vec<Option<&str>> = out.column("segment").unwrap().str().unwrap().iter().collect();
    assert_eq!(segments, [Some("y"), None, Some("x")]);
}

#[test]
fn without_a_record_time_the_latest_row_per_key_is_used_and_renames_and_defaults_apply() {
    let records = df!("Product" => ["A", "B", "C"]).unwrap();
    let spec = FeatureSpec::new().lookup(
        FeatureLookup::new("products", ["Product"])
            .features(["MaxProductAmount", "Count"])
            .rename("MaxProductAmount", "latest_max")
            .default_value("Count", 0),
    );
    assert_eq!(spec.outputs(), ["latest_max", "Count"]);
    let out = spec.augment(&records, &products(), &FeatureFunctions::default()).unwrap();
    assert_eq!(f64s(&out, "latest_max"), [Some(30.0), Some(20.0), None]);
    let counts: Vec<Option<i64>> = out.column("Count").unwrap().i64().unwrap().iter().collect();
    assert_eq!(counts, [Some(4), Some(3), Some(0)]);
}

#[test]
fn max_difference_ratio_is_rounded_to_two_places_and_null_without_a_max() {
    let frame = df!(
        "max" => [Some(80.0), Some(3.0), None, Some(0.0), Some(10.0)],
        "amount" => [Some(20.0), Some(2.0), Some(1.0), Some(1.0), Some(12.0)],
    )
    .unwrap();
    let feature = OnDemandFeature::new("max_difference_ratio", "ratio").bind("max", "max").bind("value", "amount");
    let column = FeatureFunctions::with_builtins().compute(&feature, &frame).unwrap();
    assert_eq!(column.name().as_str(), "ratio");
    let values: Vec<Option<f64>> = column.f64().unwrap().iter().collect();
    assert_eq!(values, [Some(0.75), Some(0.33), None, None, Some(-0.2)]);
}

#[test]
fn bad_specs_and_inputs_are_refused_naming_the_culprit() {
    let functions = FeatureFunctions::with_builtins();
    let records = df!("Product" => ["A"], "ts" => [MINUTE]).unwrap();
    let message = |spec: FeatureSpec, records: &DataFrame| {
        spec.augment(records, &products(), &functions).unwrap_err().to_string()
    };

    let no_ts = df!("Product" => ["A"]).unwrap();
    let err = FeatureSpec::new().lookup(product_lookup()).augment(&no_ts, &products(), &functions).unwrap_err();
    assert!(matches!(&err, Error::MissingColumns { columns } if columns == &["ts"]), "{err}");

    let unknown_table = FeatureSpec::new().lookup(FeatureLookup::new("nope", ["Product"]).features(["x"]));
    assert!(message(unknown_table, &records).contains("no feature table `nope` (tables given: products)"));
    let unknown_feature = FeatureSpec::new().lookup(product_lookup().features(["Price"]));
    assert!(message(unknown_feature, &records).contains("feature table `products` has no feature `Price`"));
    let clash = df!("Product" => ["A"], "ts" => [MINUTE], "MaxProductAmount" => [1.0]).unwrap();
    assert!(
        message(FeatureSpec::new().lookup(product_lookup()), &clash)
            .contains("already have a column `MaxProductAmount`")
    );

    let wrong_key_type = df!("Product" => [1i64], "ts" => [MINUTE]).unwrap();
    let err =
        FeatureSpec::new().lookup(product_lookup()).augment(&wrong_key_type, &products(), &functions).unwrap_err();
    assert!(matches!(&err, Error::Schema { column, .. } if column == "Product"), "{err}");

    let twice = FeatureSpec::new().lookup(product_lookup()).lookup(product_lookup());
    assert!(message(twice, &records).contains("`MaxProductAmount` is produced twice"));
    let unknown_function = FeatureSpec::new().on_demand(OnDemandFeature::new("magic", "m"));
    assert!(message(unknown_function, &records).contains("unknown function `magic` (known: max_difference_ratio)"));
    let unbound = FeatureSpec::new().on_demand(OnDemandFeature::new("max_difference_ratio", "r").bind("max", "x"));
    assert!(message(unbound, &records).contains("parameter `value` of `max_difference_ratio` is not bound"));
    let absent_input = FeatureSpec::new()
        .on_demand(OnDemandFeature::new("max_difference_ratio", "r").bind("max", "Amount").bind("value", "Amount"));
    assert!(message(absent_input, &records).contains("missing required columns: Amount"));

    let repeated = df!("id" => [1i64, 1], "x" => [1.0, 2.0]).unwrap();
    let tables = FeatureTables::from([FeatureTable::new("t", ["id"], None, repeated).unwrap()]);
    let err = FeatureSpec::new()
        .lookup(FeatureLookup::new("t", ["id"]).features(["x"]))
        .augment(&df!("id" => [1i64]).unwrap(), &tables, &functions)
        .unwrap_err();
    assert!(err.to_string().contains("feature table `t` has no timestamp column and repeats keys (id)"), "{err}");

    let err = FeatureTable::new("t", ["id"], Some("when"), df!("id" => [1i64]).unwrap()).unwrap_err();
    assert!(matches!(&err, Error::MissingColumns { columns } if columns == &["when"]), "{err}");
}

/// Sliding windows against a brute-force definition on random events: every window
/// [end - period, end) aligned on the step, per key.
#[test]
fn sliding_windows_match_their_definition() {
    let (period, every) = (3 * MINUTE, MINUTE);
    let mut state = 17u64;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut times = Vec::new();
    let mut keys = Vec::new();
    let mut amounts = Vec::new();
    let mut now = 1_767_225_600_000i64 + 12_345;
    for _ in 0..400 {
        now += (next() % 4_000) as i64;
        times.push(now);
        keys.push(["A", "B", "C"][(next() % 3) as usize]);
        amounts.push((next() % 10_000) as f64 / 100.0);
    }
    let events = datetime_ms(df!("key" => &keys, "ts" => &times, "Amount" => &amounts).unwrap(), "ts");
    let table =
        SlidingWindow::new(["key"], "ts", Duration::from_millis(period as u64), Duration::from_millis(every as u64))
            .aggregate(WindowAggregation::Max { column: "Amount".into(), output: "max".into() })
            .aggregate(WindowAggregation::Count { output: "count".into() })
            .build("windows", &events)
            .unwrap();
    assert_eq!(table.keys(), ["key"]);
    assert_eq!(table.timestamp(), Some("window_end"));
    let frame = table.frame().clone().lazy().with_column(col("window_end").cast(DataType::Int64)).collect().unwrap();

    let mut expected = Vec::new();
    for key in ["A", "B", "C"] {
        let first_end = (times[0] / every) * every + every;
        let last_end = (times[times.len() - 1] / every) * every + period;
        for end in (first_end..=last_end).step_by(every as usize) {
            let inside: Vec<f64> = (0..times.len())
                .filter(|&i| keys[i] == key && times[i] >= end - period && times[i] < end)
                .map(|i| amounts[i])
                .collect();
            if !inside.is_empty() {
                expected.push((
                    key.to_owned(),
                    end,
                    inside.iter().copied().fold(f64::MIN, f64::max),
                    inside.len() as i64,
                ));
            }
        }
    }
    let mut found: Vec<(String, i64, f64, i64)> = (0..frame.height())
        .map(|row| {
            let get = |c: &str| frame.column(c).unwrap().get(row).unwrap().into_static();
            (
                get("key").get_str().unwrap().to_owned(),
                get("window_end").extract::<i64>().unwrap(),
                get("max").extract::<f64>().unwrap(),
                get("count").extract::<i64>().unwrap(),
            )
        })
        .collect();
    found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    assert_eq!(found, expected);

    let err = SlidingWindow::new(["key"], "Amount", Duration::from_secs(60), Duration::from_secs(60))
        .aggregate(WindowAggregation::Count { output: "n".into() })
        .build("w", &events)
        .unwrap_err();
    assert!(matches!(&err, Error::Schema { column, .. } if column == "Amount"), "{err}");
    let err = SlidingWindow::new(["key"], "ts", Duration::from_secs(60), Duration::from_secs(120))
        .aggregate(WindowAggregation::Count { output: "n".into() })
        .build("w", &events)
        .unwrap_err();
    assert!(err.to_string().contains("every (120000 ms) <= period (60000 ms)"), "{err}");
    // A period past 100 years would overflow the nanosecond arithmetic of a window's end.
    let err = SlidingWindow::new(["key"], "ts", Duration::MAX, Duration::from_secs(60))
        .aggregate(WindowAggregation::Count { output: "n".into() })
        .build("w", &events)
        .unwrap_err();
    assert!(err.to_string().contains("<= 100 years"), "{err}");
}

/// Training and scoring build features with the same spec, and the package carries it.
#[test]
fn the_spec_travels_in_the_package_and_training_and_scoring_agree() {
    let spec = FeatureSpec::new().lookup(product_lookup().default_value("MaxProductAmount", 100.0)).on_demand(
        OnDemandFeature::new("max_difference_ratio", "MaxDifferenceRatio")
            .bind("max", "MaxProductAmount")
            .bind("value", "Amount"),
    );
    let functions = FeatureFunctions::with_builtins();
    let raw = df!(
        "Product" => ["A", "B", "A", "B", "A", "A"],
        "ts" => [MINUTE + 1, 2 * MINUTE, 2 * MINUTE + 1, 3 * MINUTE, 4 * MINUTE, 30],
        "Amount" => [10.0, 19.0, 70.0, 1.0, 29.0, 3.0],
        "Label" => [0, 0, 1, 0, 1, 0],
    )
    .unwrap();
    let train = spec.augment(&raw, &products(), &functions).unwrap();
    let model = TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount", "MaxProductAmount", "MaxDifferenceRatio"])
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    let package = model.package(Some(&train)).unwrap().with_features(spec.clone());
    let dir = tempfile::tempdir().unwrap();
    package.save(dir.path()).unwrap();
    let loaded = FlavorRegistry::with_builtins().load(&Package::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(loaded.features(), Some(&spec));
    assert_eq!(
        spec.raw_inputs(&loaded.signature().inputs).columns().iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["Product", "Amount"]
    );

    let records = raw.drop("Label").unwrap();
    let scored = loaded.features().unwrap().augment(&records, &products(), &functions).unwrap();
    assert_eq!(loaded.predict(&scored).unwrap(), model.predict(&train).unwrap());

    // A package without features loads a model without them, and its manifest has no key.
    let plain = model.package(None).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&plain.manifest_bytes().unwrap()).unwrap();
    assert!(manifest.get("features").is_none(), "{manifest}");
    assert_eq!(FlavorRegistry::with_builtins().load(&plain).unwrap().features(), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Cutting the tables to the rows the records' keys meet changes nothing a lookup finds,
    /// point in time or latest, with null and unknown keys, and keys of another width.
    #[test]
    fn tables_cut_to_the_records_keys_give_the_same_features(
        table_rows in proptest::collection::vec((0i32..12, 0i64..50, -100.0f64..100.0), 0..60),
        records in proptest::collection::vec((proptest::option::of(0i64..15), proptest::option::of(0i64..60)), 1..12),
    ) {
        let windows = df!(
            "CustomerID" => table_rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "window_end" => table_rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "Max" => table_rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )
        .unwrap();
        let tables = FeatureTables::from([
            FeatureTable::new("timed", ["CustomerID"], Some("window_end"), windows.clone()).unwrap(),
            // Without a timestamp a table holds one row per key.
            FeatureTable::new("latest", ["CustomerID"], None, windows.unique_stable(Some(&["CustomerID".into()]), UniqueKeepStrategy::Last, None).unwrap()).unwrap(),
        ]);
        let records = df!(
            "CustomerID" => records.iter().map(|r| r.0).collect::<Vec<_>>(),
            "ts" => records.iter().map(|r| r.1).collect::<Vec<_>>(),
        )
        .unwrap();
        let spec = FeatureSpec::new()
            .lookup(FeatureLookup::new("timed", ["CustomerID"]).timestamp_lookup_key("ts").features(["Max"]))
            .lookup(FeatureLookup::new("latest", ["CustomerID"]).features(["Max"]).rename("Max", "LatestMax"));
        let functions = FeatureFunctions::default();
        let whole = spec.augment(&records, &tables, &functions).unwrap();
        let cut = spec.tables_for(&records, &tables).unwrap();
        let from_cut = spec.augment(&records, &cut, &functions).unwrap();
        proptest::prop_assert!(whole.equals_missing(&from_cut), "{whole}\n{from_cut}");
        let known = records.column("CustomerID").unwrap().i64().unwrap().iter().flatten().collect::<Vec<_>>();
        let kept = cut.get("timed").unwrap().frame().column("CustomerID").unwrap().i32().unwrap().into_no_null_iter()
            .all(|k| known.contains(&i64::from(k)));
        proptest::prop_assert!(kept, "only the records' keys are kept");
    }
}
