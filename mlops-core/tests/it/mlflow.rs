//! MLflow's `MLmodel`, its signatures (columns, tensors, params) and tensor columns.

use mlops_core::{ColumnType, Error, MlflowModel, Schema, Signature, TensorSpec, TensorType, tensor_json_to_column};
use polars::prelude::*;

fn mlmodel(inputs: &str, outputs: &str, params: &str) -> MlflowModel {
    let text = format!(
        "flavors:\n  onnx: {{data: model.onnx}}\n  python_function: {{loader_module: mlflow.onnx}}\nsignature:\n  inputs: '{inputs}'\n  outputs: {outputs}\n  params: {params}\n"
    );
    MlflowModel::from_yaml(text.as_bytes()).unwrap()
}

#[test]
fn every_mlflow_column_type_maps_and_optional_columns_stay_optional() {
    let inputs = r#"[{"type": "boolean", "name": "b", "required": true}, {"type": "integer", "name": "i"}, {"type": "long", "name": "l"},
        {"type": "float", "name": "f"}, {"type": "double", "name": "d", "required": false}, {"type": "string", "name": "s"},
        {"type": "binary", "name": "bin"}, {"type": "datetime", "name": "when"}]"#;
    let signature = mlmodel(&inputs.replace('\n', " "), "null", "null").signature().unwrap().unwrap();
    let columns = signature.inputs.columns();
    let types: Vec<ColumnType> = columns.iter().map(|c| c.dtype).collect();
    use ColumnType as T;
    assert_eq!(types, [T::Boolean, T::Integer, T::Long, T::Float, T::Double, T::String, T::Binary, T::Datetime]);
    assert!(columns.iter().filter(|c| c.name != "d").all(|c| c.required));
    assert!(!columns[4].required, "required: false is optional");
    // MLflow checks no nulls in floats and strings, and refuses them in integers.
    let nullable: Vec<bool> = columns.iter().map(|c| c.nullable).collect();
    assert_eq!(nullable, [true, false, false, true, true, true, true, true]);
    // MLflow passes NaN and infinities in floats and doubles (its models read NaN as missing).
    let non_finite: Vec<bool> = columns.iter().map(|c| c.allow_non_finite).collect();
    assert_eq!(non_finite, [false, false, false, true, true, false, false, false]);
}

#[test]
fn composite_types_and_complex_tensors_are_refused_naming_the_column() {
    let arrays = mlmodel(
        r#"[{"type": "array", "items": {"type": "string"}, "name": "tags", "required": true}]"#,
        "null",
        "null",
    );
    let message = arrays.signature().unwrap_err().to_string();
    assert!(message.contains("column `tags`") && message.contains("`array`"), "{message}");
    for kind in ["object", "map", "any"] {
        let entry = format!(r#"[{{"type": "{kind}", "name": "field_{kind}"}}]"#);
        let message = mlmodel(&entry, "null", "null").signature().unwrap_err().to_string();
        assert!(message.contains(&format!("column `field_{kind}`")), "{message}");
    }
    let complex = mlmodel(
        r#"[{"type": "tensor", "tensor-spec": {"dtype": "complex64", "shape": [-1, 2]}, "name": "x"}]"#,
        "null",
        "null",
    );
    let message = complex.signature().unwrap_err().to_string();
    assert!(
        message.contains("tensor `x`") && message.contains("complex64") && message.contains("float16"),
        "{message}"
    );
}

#[test]
fn narrow_integer_and_half_float_tensors_are_held_wider_and_range_checked() {
    let entries: Vec<String> = ["int8", "int16", "uint8", "uint16", "float16"]
        .iter()
        .map(|t| {
            format!(r#"{{"type": "tensor", "tensor-spec": {{"dtype": "{t}", "shape": [-1, 2]}}, "name": "{t}_in"}}"#)
        })
        .collect();
    let model = mlmodel(&format!("[{}]", entries.join(", ")), "null", "null");
    let signature = model.signature().unwrap().unwrap();
    let specs = signature.inputs.tensors();
    let types: Vec<TensorType> = specs.iter().map(TensorSpec::dtype).collect();
    assert_eq!(
        types,
        [TensorType::Int8, TensorType::Int16, TensorType::UInt8, TensorType::UInt16, TensorType::Float16]
    );
    let held: Vec<DataType> = specs.iter().map(|s| s.dtype().polars_dtype()).collect();
    assert_eq!(held, [DataType::Int32, DataType::Int32, DataType::UInt32, DataType::UInt32, DataType::Float32]);

    // From JSON: each type's bounds are its own, and a half float is rounded once.
    let int8 = &specs[0];
    assert!(tensor_json_to_column(&serde_json::json!([[-128, 127]]), int8).is_ok());
    match tensor_json_to_column(&serde_json::json!([[0, 1], [128, 0]]), int8) {
        Err(Error::Schema { column, found, .. }) => {
            assert_eq!((column.as_str(), found.as_str()), ("int8_in", "a number at [1, 0] where an int8 belongs"))
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert!(tensor_json_to_column(&serde_json::json!([[65535, 0]]), &specs[3]).is_ok());
    assert!(tensor_json_to_column(&serde_json::json!([[65536, 0]]), &specs[3]).is_err(), "beyond uint16");
    assert!(tensor_json_to_column(&serde_json::json!([[-1, 0]]), &specs[2]).is_err(), "below uint8");
    let half = tensor_json_to_column(&serde_json::json!([[0.1, 70000.0]]), &specs[4]).unwrap();
    let values: Vec<f32> = specs[4].values(&half).unwrap().f32().unwrap().into_no_null_iter().collect();
    // 0.1 is 0.0999755859375 in half precision, and 70000 is beyond its largest value.
    assert_eq!(values, [0.099_975_586, f32::INFINITY]);

    // From a frame: a wider column holding a value outside the narrow type is refused,
    // naming the row.
    let rows =
        Series::new("uint8_in".into(), vec![Series::new("".into(), [1u32, 2]), Series::new("".into(), [3u32, 256])]);
    let frame = DataFrame::new(2, vec![rows.into_column()]).unwrap();
    let only_uint8 = Signature::new(Schema::of_tensors(vec![specs[2].clone()]).unwrap());
    match only_uint8.enforce(&frame) {
        Err(Error::Schema { column, found, .. }) => {
            assert_eq!((column.as_str(), found.as_str()), ("uint8_in", "256 in row 1, outside uint8's range 0..=255"))
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn tensor_specs_unnamed_outputs_and_params_map() {
    let model = mlmodel(
        r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3, 8, 8]}}]"#,
        r#"'[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 10]}}]'"#,
        r#"'[{"name": "temperature", "type": "double", "default": 0.5, "shape": null}]'"#,
    );
    let signature = model.signature().unwrap().unwrap();
    let input = &signature.inputs.tensors()[0];
    assert_eq!((input.name(), input.dtype(), input.shape()), (None, TensorType::Float32, &[-1i64, 3, 8, 8][..]));
    assert_eq!(input.row_len(), 192);
    assert_eq!(signature.outputs.tensors()[0].name(), Some("prediction"), "an unnamed output is the prediction");
    assert_eq!(signature.params[0].name, "temperature");
    assert_eq!(signature.resolve_params(&Default::default()).unwrap()["temperature"], 0.5);

    // Written back in MLflow's form and read again, nothing changes.
    let mut written = MlflowModel::default();
    written.set_signature(&signature).unwrap();
    let again = MlflowModel::from_yaml(written.to_yaml().unwrap().as_bytes()).unwrap().signature().unwrap().unwrap();
    assert_eq!(again, signature);
}

#[test]
fn a_broken_mlmodel_is_an_error_naming_the_file() {
    let message = MlflowModel::from_yaml(b"flavors: [unclosed").unwrap_err().to_string();
    assert!(message.contains("`MLmodel`"), "{message}");
    let message = mlmodel("not json", "null", "null").signature().unwrap_err().to_string();
    assert!(message.contains("inputs"), "{message}");
}

fn image_spec() -> TensorSpec {
    TensorSpec::new(Some("image"), TensorType::Float32, vec![-1, 2, 3]).unwrap()
}

#[test]
fn tensor_columns_are_shaped_arrays_and_lists_of_the_right_length_convert() {
    let spec = image_spec();
    let signature = Signature::new(Schema::of_tensors(vec![spec.clone()]).unwrap());
    let rows: Vec<Series> =
        (0..2).map(|r| Series::new("".into(), (0..6).map(|v| (r * 6 + v) as f32).collect::<Vec<_>>())).collect();
    let lists = Series::new("image".into(), rows);
    let enforced = signature.enforce(&DataFrame::new(2, vec![lists.into_column()]).unwrap()).unwrap();
    let column = enforced.column("image").unwrap();
    assert_eq!(column.dtype(), &spec.polars_dtype());
    let flat: Vec<f32> = spec.values(column).unwrap().f32().unwrap().into_no_null_iter().collect();
    assert_eq!(flat, (0..12).map(|v| v as f32).collect::<Vec<_>>());

    let short = Series::new("image".into(), vec![Series::new("".into(), [1.0f32, 2.0])]);
    match signature.enforce(&DataFrame::new(1, vec![short.into_column()]).unwrap()) {
        Err(Error::Schema { column, found, .. }) => {
            assert_eq!((column.as_str(), found.as_str()), ("image", "2 values in row 0"))
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    let doubles = Series::new("image".into(), vec![0.0f64; 6]).reshape_array(&[
        ReshapeDimension::new(1),
        ReshapeDimension::new(2),
        ReshapeDimension::new(3),
    ]);
    let err = signature.enforce(&DataFrame::new(1, vec![doubles.unwrap().into_column()]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("float32 tensor of shape (-1, 2, 3)"), "tensors are not cast: {err}");
}

#[test]
fn a_frame_fills_an_unnamed_tensor_with_its_columns_in_order() {
    let spec = TensorSpec::new(None, TensorType::Float32, vec![-1, 3]).unwrap();
    let signature = Signature::new(Schema::of_tensors(vec![spec.clone()]).unwrap());
    let frame = df!("a" => [1.0f32, 4.0], "b" => [2.0f32, 5.0], "c" => [3.0f32, 6.0]).unwrap();
    let enforced = signature.enforce(&frame).unwrap();
    let flat: Vec<f32> =
        spec.values(enforced.column(spec.column_name()).unwrap()).unwrap().f32().unwrap().into_no_null_iter().collect();
    assert_eq!(flat, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let message = signature.enforce(&frame.drop("c").unwrap()).unwrap_err().to_string();
    assert!(message.contains("2 columns"), "{message}");
}

#[test]
fn json_tensors_are_read_with_their_nesting_checked() {
    let spec = image_spec();
    let good = serde_json::json!([[[1, 2, 3], [4, 5, 6.5]]]);
    let column = tensor_json_to_column(&good, &spec).unwrap();
    assert_eq!(column.len(), 1);
    let flat: Vec<f32> = spec.values(&column).unwrap().f32().unwrap().into_no_null_iter().collect();
    assert_eq!(flat, [1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
    for (bad, found) in [
        (serde_json::json!([[[1, 2, 3]]]), "1 values at [0] where 2 belong"),
        (serde_json::json!([[[1, 2], [3, 4, 5]]]), "2 values at [0, 0] where 3 belong"),
        (serde_json::json!([[[1, 2, "x"], [4, 5, 6]]]), "a string at [0, 0, 2] where a number belongs"),
        (serde_json::json!({"a": 1}), "an object instead of a list of rows"),
    ] {
        match tensor_json_to_column(&bad, &spec) {
            Err(Error::Schema { column, found: f, .. }) => assert_eq!((column.as_str(), f.as_str()), ("image", found)),
            other => panic!("{bad}: expected a schema error, got {other:?}"),
        }
    }
    let ints = TensorSpec::new(Some("ids"), TensorType::Int64, vec![-1]).unwrap();
    assert!(tensor_json_to_column(&serde_json::json!([1, 2.5]), &ints).is_err(), "2.5 is no int64");
    assert_eq!(tensor_json_to_column(&serde_json::json!([1, 2.0]), &ints).unwrap().len(), 2);
}
