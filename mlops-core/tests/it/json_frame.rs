//! Frames read from MLflow's JSON orientations cost what their input costs: records with
//! fields outside the schema never make a frame far larger than the body, and errors never
//! echo a whole value.

use mlops_core::{ColSpec, ColumnType, Error, Schema, records_json_to_frame, split_json_to_frame};
use proptest::prelude::*;
use serde_json::{Value, json};

fn schema() -> Schema {
    Schema::new(vec![ColSpec::new("Product", ColumnType::String), ColSpec::new("Amount", ColumnType::Double)]).unwrap()
}

fn records(body: &str) -> Vec<Value> {
    serde_json::from_str(body).unwrap()
}

#[test]
fn records_with_a_new_field_each_are_refused_instead_of_growing_a_square_frame() {
    // 20,000 records, each with the schema's columns and one field of its own: taken as
    // they come this is a 20,000 x 20,002 frame (400 million cells) from a 1 MB body.
    let wide: Vec<Value> =
        (0..20_000).map(|i| json!({"Product": "A", "Amount": 1.0, format!("field{i}"): i})).collect();
    let error = records_json_to_frame(&wide, &schema()).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
    assert!(error.to_string().contains("20000 distinct fields outside the model's signature"), "{error}");

    // Fields outside the schema that the records share are kept (a request id, a key).
    let shared: Vec<Value> =
        (0..20_000).map(|i| json!({"Product": "A", "Amount": 1.0, "request_id": format!("r{i}")})).collect();
    let frame = records_json_to_frame(&shared, &schema()).unwrap();
    assert_eq!((frame.height(), frame.width()), (20_000, 3));
    assert_eq!(frame.column("request_id").unwrap().str().unwrap().get(7), Some("r7"));

    // So are sparse ones within bounds, and a few distinct ones in a short request.
    let sparse = records(r#"[{"Product": "A", "Amount": 1, "note": "x"}, {"Product": "B", "Amount": 2}]"#);
    let frame = records_json_to_frame(&sparse, &schema()).unwrap();
    assert_eq!(frame.column("note").unwrap().str().unwrap().get(1), None);
    let few: Vec<Value> = (0..50).map(|i| json!({"Product": "A", "Amount": 1.0, format!("f{i}"): i})).collect();
    assert_eq!(records_json_to_frame(&few, &schema()).unwrap().width(), 52);
}

#[test]
fn errors_show_a_bounded_excerpt_of_the_value() {
    let long = "x".repeat(100_000);
    let body = json!([{"Product": "A", "Amount": long}]);
    let error = records_json_to_frame(body.as_array().unwrap(), &schema()).unwrap_err().to_string();
    assert!(error.contains("Amount") && error.contains("100000 bytes"), "{error}");
    assert!(error.len() < 300, "{} bytes: {}", error.len(), &error[..300]);
    let nested = json!([{"Product": "A", "Amount": vec![vec![1.0; 1000]; 100]}]);
    let error = records_json_to_frame(nested.as_array().unwrap(), &schema()).unwrap_err().to_string();
    assert!(error.contains("a list of 100 values") && error.len() < 300, "{error}");
    let not_a_record = json!([vec!["y".repeat(10_000)]]);
    let error = records_json_to_frame(not_a_record.as_array().unwrap(), &schema()).unwrap_err().to_string();
    assert!(error.contains("record 0") && error.len() < 300, "{error}");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn record() -> impl Strategy<Value = Value> {
    let field = prop_oneof![Just("Product".to_owned()), Just("Amount".to_owned()), "[a-z]{1,6}"];
    prop_oneof![
        9 => prop::collection::btree_map(field, json_value(), 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any list of values is read or refused without a panic, and a frame read holds
    /// cells in proportion to the values given.
    #[test]
    fn any_records_are_read_or_refused_with_a_frame_proportional_to_them(rows in prop::collection::vec(record(), 0..40)) {
        let values: usize = rows.iter().map(|r| r.as_object().map_or(1, serde_json::Map::len)).sum();
        if let Ok(frame) = records_json_to_frame(&rows, &schema()) {
            prop_assert_eq!(frame.height(), rows.len());
            let cells = frame.height() * frame.width();
            prop_assert!(cells <= 2 * rows.len() + 8 * values + (1 << 16), "{} cells for {} values", cells, values);
        }
        let split = json!({"columns": ["Product", "Amount"], "data": rows});
        let _ = split_json_to_frame(&split, &schema());
    }
}

#[test]
fn answers_are_written_straight_from_columns_as_json_values_would_write_them() {
    use polars::prelude::*;

    let probabilities = StructChunked::from_columns(
        "probability".into(),
        3,
        &[
            Series::new("0".into(), [0.25f32, f32::NAN, 0.5]).into_column(),
            Series::new("1".into(), [0.75f32, 1.0, 0.5]).into_column(),
        ],
    )
    .unwrap()
    .into_column();
    let frame = DataFrame::new(
        3,
        vec![
            Column::new("label".into(), [Some(1i64), None, Some(0)]),
            Column::new("small".into(), [1i8, -2, 3]),
            Column::new("name".into(), [Some("a\"b"), None, Some("c")]),
            probabilities,
        ],
    )
    .unwrap();
    let mut records = Vec::new();
    mlops_core::write_records_json(&frame, &mut records).unwrap();
    assert_eq!(
        String::from_utf8(records.clone()).unwrap(),
        r#"[{"label":1,"small":1,"name":"a\"b","probability":{"0":0.25,"1":0.75}},{"label":null,"small":-2,"name":null,"probability":{"0":null,"1":1.0}},{"label":0,"small":3,"name":"c","probability":{"0":0.5,"1":0.5}}]"#
    );
    assert_eq!(serde_json::from_slice::<Value>(&records).unwrap(), mlops_core::frame_to_records_json(&frame).unwrap());

    let mut columns = Vec::new();
    mlops_core::write_columns_json(&frame.select(["label", "small"]).unwrap(), &mut columns).unwrap();
    assert_eq!(String::from_utf8(columns).unwrap(), r#"{"label":[1,null,0],"small":[1,-2,3]}"#);

    let bytes = DataFrame::new(1, vec![Column::new("raw".into(), [&b"\x00\x01"[..]])]).unwrap();
    match mlops_core::write_records_json(&bytes, &mut Vec::new()) {
        Err(Error::Schema { column, .. }) => assert_eq!(column, "raw"),
        other => panic!("a binary column is refused by name, got {other:?}"),
    }
}
