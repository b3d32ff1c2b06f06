use mlops_core::Error;
use mlops_core::preprocess::{Categories, ColumnTransformer, OneHotEncoder, StandardScaler, Transform};
use polars::prelude::*;

#[test]
fn one_hot_learns_sorted_categories_of_strings_and_integers() {
    let products = Column::new("Product".into(), ["Product C", "Product A", "Product C", "Product B"]);
    let encoder = OneHotEncoder::fit(&products).unwrap();
    assert_eq!(
        encoder.categories(),
        &Categories::String(vec!["Product A".into(), "Product B".into(), "Product C".into()])
    );
    let customers = Column::new("CustomerID".into(), [Some(1260i64), Some(1234), None, Some(1260)]);
    let encoder = OneHotEncoder::fit(&customers).unwrap();
    assert_eq!(encoder.categories(), &Categories::Integer(vec![1234, 1260]));
    assert_eq!(encoder.feature_names(), ["CustomerID_1234", "CustomerID_1260"]);
}

#[test]
fn unknown_categories_and_nulls_encode_as_all_zeros() {
    let train = df!("Product" => ["A", "B"], "CustomerID" => [10i64, 5_000_000]).unwrap();
    let transformer = ColumnTransformer::builder().one_hot(["Product", "CustomerID"]).fit(&train).unwrap();
    let frame = df!(
        "Product" => [Some("B"), Some("Z"), None, Some("A")],
        // 5_000_000 - 10 exceeds the dense lookup span: the sorted lookup is exercised too.
        "CustomerID" => [Some(5_000_000i64), Some(11), None, Some(10)],
    )
    .unwrap();
    let features = transformer.transform(&frame).unwrap();
    let rows: Vec<Vec<f64>> = features.rows().into_iter().map(|r| r.to_vec()).collect();
    assert_eq!(rows, [vec![0., 1., 0., 1.], vec![0., 0., 0., 0.], vec![0., 0., 0., 0.], vec![1., 0., 1., 0.]]);

    let dense = ColumnTransformer::builder()
        .one_hot(["CustomerID"])
        .fit(&df!("CustomerID" => [1234i32, 1260]).unwrap())
        .unwrap();
    // An i32 column is encoded by the i64 categories it was fitted on.
    let features = dense.transform(&df!("CustomerID" => [1260i32, 1235, 1234]).unwrap()).unwrap();
    assert_eq!(features.column(0).to_vec(), [0., 0., 1.]);
    assert_eq!(features.column(1).to_vec(), [1., 0., 0.]);
}

#[test]
fn standard_scaler_matches_population_statistics() {
    let scaler = StandardScaler::fit(&Column::new("Amount".into(), [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])).unwrap();
    assert_eq!(scaler.mean(), 5.0);
    assert_eq!(scaler.scale(), 2.0);
    let constant = StandardScaler::fit(&Column::new("c".into(), [3.0, 3.0])).unwrap();
    assert_eq!(constant.scale(), 1.0);
    let transformer = ColumnTransformer::from_steps(vec![Transform::Standardize(scaler)]);
    let features = transformer.transform(&df!("Amount" => [5i64, 9, 1]).unwrap()).unwrap();
    assert_eq!(features.column(0).to_vec(), [0.0, 2.0, -2.0]);
}

#[test]
fn column_transformer_lays_out_features_in_step_order_and_round_trips_through_serde() {
    let train = df!(
        "Product" => ["A", "B", "A"],
        "Amount" => [1.0, 2.0, 3.0],
        "count" => [7i64, 8, 9],
    )
    .unwrap();
    let transformer = ColumnTransformer::builder()
        .one_hot(["Product"])
        .standardize(["Amount"])
        .passthrough(["count"])
        .fit(&train)
        .unwrap();
    assert_eq!(transformer.width(), 4);
    assert_eq!(transformer.feature_names(), ["Product_A", "Product_B", "Amount", "count"]);
    let features = transformer.transform(&train).unwrap();
    let scale = (2.0f64 / 3.0).sqrt();
    assert_eq!(features.row(2).to_vec(), [1.0, 0.0, 1.0 / scale, 9.0]);

    let json = serde_json::to_string(&transformer).unwrap();
    let back: ColumnTransformer = serde_json::from_str(&json).unwrap();
    assert_eq!(back, transformer);
    assert_eq!(back.transform(&train).unwrap(), features);
}

#[test]
fn transform_errors_name_the_column() {
    let train = df!("Product" => ["A", "B"], "Amount" => [1.0, 2.0]).unwrap();
    let transformer = ColumnTransformer::builder().one_hot(["Product"]).standardize(["Amount"]).fit(&train).unwrap();
    match transformer.transform(&df!("Product" => ["A"]).unwrap()) {
        Err(Error::MissingColumns { columns }) => assert_eq!(columns, ["Amount"]),
        other => panic!("{other:?}"),
    }
    match transformer.transform(&df!("Product" => ["A"], "Amount" => ["1.0"]).unwrap()) {
        Err(Error::Schema { column, .. }) => assert_eq!(column, "Amount"),
        other => panic!("{other:?}"),
    }
    match transformer.transform(&df!("Product" => [1i64], "Amount" => [1.0]).unwrap()) {
        Err(Error::Schema { column, expected, .. }) => {
            assert_eq!((column.as_str(), expected.as_str()), ("Product", "string categories"))
        }
        other => panic!("{other:?}"),
    }
    match transformer.transform(&df!("Product" => ["A"], "Amount" => [None::<f64>]).unwrap()) {
        Err(Error::Schema { column, found, .. }) => {
            assert_eq!((column.as_str(), found.as_str()), ("Amount", "1 null value"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fitting_refuses_unusable_columns() {
    let frame = df!("flag" => [true, false], "empty" => [None::<&str>, None], "x" => [1.0, 2.0]).unwrap();
    assert!(
        matches!(ColumnTransformer::builder().one_hot(["flag"]).fit(&frame), Err(Error::Schema { column, .. }) if column == "flag")
    );
    assert!(matches!(ColumnTransformer::builder().one_hot(["empty"]).fit(&frame), Err(Error::Fit { .. })));
    assert!(
        matches!(ColumnTransformer::builder().standardize(["x", "x"]).fit(&frame), Err(Error::InvalidArgument(m)) if m.contains("`x`"))
    );
    assert!(matches!(ColumnTransformer::builder().fit(&frame), Err(Error::InvalidArgument(_))));
    assert!(
        matches!(ColumnTransformer::builder().standardize(["nope"]).fit(&frame), Err(Error::MissingColumns { columns }) if columns == ["nope"])
    );
}

#[test]
fn the_compact_encoding_scores_exactly_like_the_dense_matrix() {
    use mlops_core::preprocess::{EncodedColumn, UNKNOWN_CATEGORY};
    let train = df!(
        "Product" => ["A", "B", "C", "A"],
        "CustomerID" => [1234i64, 1260, 1240, 1234],
        "Amount" => [10.0, 20.0, 30.0, 40.0],
        "count" => [1i64, 2, 3, 4],
    )
    .unwrap();
    let transformer = ColumnTransformer::builder()
        .one_hot(["Product", "CustomerID"])
        .standardize(["Amount"])
        .passthrough(["count"])
        .fit(&train)
        .unwrap();
    let frame = df!(
        "Product" => [Some("C"), None, Some("Z")],
        "CustomerID" => [1240i64, 1234, 9999],
        "Amount" => [12.5, 30.0, -1.0],
        "count" => [7i64, 0, 2],
    )
    .unwrap();
    let encoded = transformer.encode(&frame).unwrap();
    assert_eq!((encoded.rows(), encoded.width()), (3, transformer.width()));
    assert_eq!(
        encoded.columns()[0],
        EncodedColumn::OneHot { offset: 0, width: 3, codes: vec![2, UNKNOWN_CATEGORY, UNKNOWN_CATEGORY] }
    );
    let dense = encoded.to_dense();
    assert_eq!(dense, transformer.transform(&frame).unwrap());
    let coefficients: Vec<f64> = (0..transformer.width()).map(|i| (i as f64 + 1.0) * 0.25 - 1.0).collect();
    let expected = dense.dot(&ndarray::Array1::from(coefficients.clone())) + 0.5;
    let scores = encoded.linear_scores(&coefficients, 0.5);
    for (got, want) in scores.iter().zip(expected.iter()) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
}

#[test]
fn a_stored_encoder_with_unusable_categories_is_refused_when_read() {
    let stores = Column::new("Store".into(), [30i64, 10, 20]);
    let fitted = serde_json::to_value(OneHotEncoder::fit(&stores).unwrap()).unwrap();
    assert_eq!(fitted["categories"]["values"], serde_json::json!([10, 20, 30]));
    let with = |values: serde_json::Value| {
        let mut stored = fitted.clone();
        stored["categories"]["values"] = values;
        serde_json::from_value::<OneHotEncoder>(stored).map_err(|e| e.to_string())
    };
    assert!(with(serde_json::json!([10, 20, 30])).is_ok());
    // Unsorted integer categories once made the dense lookup table's size overflow.
    for (values, problem) in [
        (serde_json::json!([30, 10]), "not sorted and distinct"),
        (serde_json::json!([9_000_000_000_000_000_000i64, -9_000_000_000_000_000_000i64]), "not sorted"),
        (serde_json::json!([10, 10]), "not sorted and distinct"),
        (serde_json::json!([]), "no categories"),
    ] {
        let error = with(values.clone()).unwrap_err();
        assert!(error.contains("column `Store`") && error.contains(problem), "{values}: {error}");
    }
    let mut strings = serde_json::to_value(OneHotEncoder::fit(&Column::new("P".into(), ["b", "a"])).unwrap()).unwrap();
    strings["categories"]["values"] = serde_json::json!(["b", "a"]);
    assert!(serde_json::from_value::<OneHotEncoder>(strings).is_err());
}
