use std::collections::BTreeMap;

use mlops_core::{ColSpec, ColumnType, Error, ParamSpec, Schema, Signature};
use polars::prelude::*;

fn transactions_signature() -> Signature {
    Signature::new(
        Schema::new(vec![
            ColSpec::new("CustomerID", ColumnType::Long),
            ColSpec::new("Product", ColumnType::String),
            ColSpec::new("Amount", ColumnType::Double),
            ColSpec::new("transactionCount", ColumnType::Long),
        ])
        .unwrap(),
    )
}

#[test]
fn all_missing_required_columns_are_reported_together() {
    let frame = df!("Product" => ["Product A"]).unwrap();
    match transactions_signature().enforce(&frame) {
        Err(Error::MissingColumns { columns }) => assert_eq!(columns, ["CustomerID", "Amount", "transactionCount"]),
        other => panic!("expected MissingColumns, got {other:?}"),
    }
}

#[test]
fn extra_columns_are_dropped_and_order_follows_the_signature() {
    let frame = df!(
        "transactionCount" => [1i64],
        "TransactionTimestamp" => [5i64],
        "Amount" => [10.5],
        "Product" => ["Product B"],
        "CustomerID" => [1240i64],
    )
    .unwrap();
    let enforced = transactions_signature().enforce(&frame).unwrap();
    assert_eq!(enforced.get_column_names(), ["CustomerID", "Product", "Amount", "transactionCount"]);
    assert_eq!(enforced.height(), 1);
}

#[test]
fn safe_widening_casts_are_made() {
    let signature = Signature::new(
        Schema::new(vec![
            ColSpec::new("int_to_long", ColumnType::Long),
            ColSpec::new("uint_to_long", ColumnType::Long),
            ColSpec::new("int_to_double", ColumnType::Double),
            ColSpec::new("float_to_double", ColumnType::Double),
        ])
        .unwrap(),
    );
    let frame = df!(
        "int_to_long" => [1i32, 2],
        "uint_to_long" => [3u32, 4],
        "int_to_double" => [5i32, 6],
        "float_to_double" => [0.5f32, 1.5],
    )
    .unwrap();
    let enforced = signature.enforce(&frame).unwrap();
    let dtypes: Vec<DataType> = enforced.columns().iter().map(|c| c.dtype().clone()).collect();
    assert_eq!(dtypes, [DataType::Int64, DataType::Int64, DataType::Float64, DataType::Float64]);
    assert_eq!(enforced.column("int_to_double").unwrap().f64().unwrap().get(1), Some(6.0));
}

fn schema_error(signature: &Signature, frame: &DataFrame) -> (String, String, String) {
    match signature.enforce(frame) {
        Err(Error::Schema { column, expected, found }) => (column, expected, found),
        other => panic!("expected Schema error, got {other:?}"),
    }
}

#[test]
fn unsafe_conversions_are_refused_naming_the_column() {
    let one = |name: &str, dtype| Signature::new(Schema::new(vec![ColSpec::new(name, dtype)]).unwrap());
    let (column, expected, found) =
        schema_error(&one("Amount", ColumnType::Double), &df!("Amount" => ["12.5"]).unwrap());
    assert_eq!((column.as_str(), expected.as_str(), found.as_str()), ("Amount", "double", "str"));
    let (column, _, found) = schema_error(&one("CustomerID", ColumnType::Long), &df!("CustomerID" => [1.0]).unwrap());
    assert_eq!((column.as_str(), found.as_str()), ("CustomerID", "f64"));
    // i64 -> double can lose precision: MLflow refuses it, so do we.
    let (column, ..) = schema_error(&one("n", ColumnType::Double), &df!("n" => [1i64]).unwrap());
    assert_eq!(column, "n");
    // narrowing
    schema_error(&one("n", ColumnType::Integer), &df!("n" => [1i64]).unwrap());
    schema_error(&one("x", ColumnType::Float), &df!("x" => [1.0f64]).unwrap());
    schema_error(&one("flag", ColumnType::Boolean), &df!("flag" => [1i32]).unwrap());
}

#[test]
fn nulls_need_a_nullable_column_and_optional_columns_may_be_absent() {
    let frame = df!("Amount" => [Some(1.0), None, None]).unwrap();
    let strict = Signature::new(Schema::new(vec![ColSpec::new("Amount", ColumnType::Double)]).unwrap());
    let (column, expected, found) = schema_error(&strict, &frame);
    assert_eq!((column.as_str(), expected.as_str(), found.as_str()), ("Amount", "non-null double", "2 null values"));
    let lenient = Signature::new(Schema::new(vec![ColSpec::new("Amount", ColumnType::Double).nullable()]).unwrap());
    assert_eq!(lenient.enforce(&frame).unwrap().column("Amount").unwrap().null_count(), 2);

    let optional = Signature::new(
        Schema::new(vec![
            ColSpec::new("Amount", ColumnType::Double),
            ColSpec::new("note", ColumnType::String).optional(),
        ])
        .unwrap(),
    );
    let enforced = optional.enforce(&df!("Amount" => [1.0]).unwrap()).unwrap();
    assert_eq!(enforced.get_column_names(), ["Amount"]);
}

#[test]
fn nan_and_infinities_need_a_column_that_allows_them() {
    let frame = df!("Amount" => [Some(1.0), None, Some(f64::NAN), Some(f64::INFINITY)]).unwrap();
    let strict = Signature::new(Schema::new(vec![ColSpec::new("Amount", ColumnType::Double).nullable()]).unwrap());
    let (column, expected, found) = schema_error(&strict, &frame);
    assert_eq!(
        (column.as_str(), expected.as_str(), found.as_str()),
        ("Amount", "finite double values", "2 NaN or infinite values (the first in row 2)")
    );
    let f32s = df!("x" => [1.0f32, f32::NEG_INFINITY]).unwrap();
    let (column, ..) =
        schema_error(&Signature::new(Schema::new(vec![ColSpec::new("x", ColumnType::Float)]).unwrap()), &f32s);
    assert_eq!(column, "x");

    let lenient = Signature::new(
        Schema::new(vec![ColSpec::new("Amount", ColumnType::Double).nullable().allow_non_finite()]).unwrap(),
    );
    let enforced = lenient.enforce(&frame).unwrap();
    assert!(enforced.column("Amount").unwrap().f64().unwrap().get(2).unwrap().is_nan());

    // Inferred from a frame that holds them, a column allows them; the setting is stored.
    let inferred = Signature::infer(&frame, None).unwrap();
    assert!(inferred.inputs.column("Amount").unwrap().allow_non_finite);
    assert!(!Signature::infer(&df!("Amount" => [1.0]).unwrap(), None).unwrap().inputs.columns()[0].allow_non_finite);
    let json = serde_json::to_value(&inferred).unwrap();
    assert_eq!(json["inputs"][0]["allow_non_finite"], true);
    assert_eq!(serde_json::from_value::<Signature>(json).unwrap(), inferred);
}

#[test]
fn inferred_from_a_frame_and_serialized_in_mlflow_column_spec_shape() {
    let frame = df!(
        "CustomerID" => [1234i64, 1235],
        "Product" => ["Product A", "Product C"],
        "Amount" => [Some(1.0), None],
        "Label" => [1i32, 0],
        "flag" => [true, false],
    )
    .unwrap();
    let signature = Signature::infer(&frame, Some(&df!("prediction" => [0.5, 0.2]).unwrap())).unwrap();
    let types: Vec<ColumnType> = signature.inputs.columns().iter().map(|c| c.dtype).collect();
    assert_eq!(
        types,
        [ColumnType::Long, ColumnType::String, ColumnType::Double, ColumnType::Integer, ColumnType::Boolean]
    );
    assert!(signature.inputs.column("Amount").unwrap().nullable);
    assert!(!signature.inputs.column("Product").unwrap().nullable);
    assert_eq!(signature.outputs.columns()[0], ColSpec::new("prediction", ColumnType::Double));

    let json = serde_json::to_value(&signature).unwrap();
    assert_eq!(json["inputs"][0], serde_json::json!({"name": "CustomerID", "type": "long"}));
    assert_eq!(json["inputs"][2], serde_json::json!({"name": "Amount", "type": "double", "nullable": true}));
    let back: Signature = serde_json::from_value(json).unwrap();
    assert_eq!(back, signature);
    // A spec as MLflow writes it reads back.
    let mlflow: ColSpec = serde_json::from_str(r#"{"type": "string", "name": "Product", "required": true}"#).unwrap();
    assert_eq!(mlflow, ColSpec::new("Product", ColumnType::String));

    // u64 has no signature type: it fits neither long nor double without loss.
    let unsupported = df!("ok" => [1i64], "bad" => [1u64]).unwrap();
    assert!(matches!(Schema::infer(&unsupported), Err(Error::Schema { column, .. }) if column == "bad"));
}

#[test]
fn duplicate_columns_are_rejected() {
    let err =
        Schema::new(vec![ColSpec::new("a", ColumnType::Double), ColSpec::new("a", ColumnType::Long)]).unwrap_err();
    assert!(err.to_string().contains("`a` appears twice"));
}

#[test]
fn params_get_defaults_and_are_type_checked() {
    let signature = transactions_signature()
        .with_param(ParamSpec { name: "threshold".into(), dtype: ColumnType::Double, default: 0.5.into() })
        .with_param(ParamSpec { name: "top_k".into(), dtype: ColumnType::Integer, default: 3.into() });
    let resolved = signature.resolve_params(&BTreeMap::new()).unwrap();
    assert_eq!(resolved["threshold"], 0.5);
    assert_eq!(resolved["top_k"], 3);
    let given = BTreeMap::from([("top_k".to_owned(), serde_json::json!(10))]);
    assert_eq!(signature.resolve_params(&given).unwrap()["top_k"], 10);
    let wrong = BTreeMap::from([("top_k".to_owned(), serde_json::json!("ten"))]);
    assert!(signature.resolve_params(&wrong).unwrap_err().to_string().contains("parameter `top_k` must be integer"));
    let unknown = BTreeMap::from([("temperature".to_owned(), serde_json::json!(1))]);
    assert!(signature.resolve_params(&unknown).unwrap_err().to_string().contains("unknown parameter `temperature`"));
}

mod every_type_pair {
    use mlops_core::{ColSpec, ColumnType, Schema, Signature};
    use polars::prelude::*;
    use proptest::prelude::*;

    const TYPES: [ColumnType; 8] = [
        ColumnType::Boolean,
        ColumnType::Integer,
        ColumnType::Long,
        ColumnType::Float,
        ColumnType::Double,
        ColumnType::String,
        ColumnType::Binary,
        ColumnType::Datetime,
    ];

    /// A column of any type a frame can bring, with nulls, extremes and non-finite values.
    fn column() -> impl Strategy<Value = Column> {
        let len = 0..6usize;
        prop_oneof![
            prop::collection::vec(prop::option::of(any::<bool>()), len.clone())
                .prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<i8>()), len.clone()).prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<i32>()), len.clone()).prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<i64>()), len.clone()).prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<u64>()), len.clone()).prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<f32>()), len.clone()).prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<f64>()), len.clone()).prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of("[a-z0-9.:-]{0,12}"), len.clone())
                .prop_map(|v| Column::new("x".into(), v)),
            prop::collection::vec(prop::option::of(any::<i64>()), len.clone()).prop_map(|v| {
                Column::new("x".into(), v)
                    .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
                    .expect("an integer column casts to datetime")
            }),
            prop::collection::vec(prop::option::of(any::<i64>()), len).prop_map(|v| {
                Column::new("x".into(), v).cast(&DataType::Date).expect("an integer column casts to date")
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Enforcement of any column against any column type returns a frame of the
        /// schema's type (a datetime of any precision for `Datetime`) or an error: never a
        /// panic, never a frame of another type.
        #[test]
        fn enforcement_never_panics_and_keeps_the_schema_type(
            column in column(),
            wanted in prop::sample::select(TYPES.to_vec()),
            optional in any::<bool>(),
        ) {
            let spec = ColSpec::new("x", wanted);
            let spec = if optional { spec.optional() } else { spec };
            let signature = Signature::new(Schema::new(vec![spec]).unwrap());
            let frame = DataFrame::new(column.len(), vec![column]).unwrap();
            if let Ok(enforced) = signature.enforce(&frame) {
                let found = enforced.column("x").unwrap().dtype();
                match wanted {
                    ColumnType::Datetime => prop_assert!(matches!(found, DataType::Datetime(_, None)), "{found}"),
                    _ => prop_assert_eq!(found, &wanted.polars_dtype()),
                }
                prop_assert_eq!(enforced.height(), frame.height());
            }
        }
    }
}
