//! `GET /serving-endpoints/{name}/openapi`: an OpenAPI 3.1 document of an endpoint's
//! scoring route, generated from the signature it serves: every accepted input format, the
//! parameters, the answer's shape and the error shape, with an example request.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mlops_core::{ColSpec, ColumnType, Schema, Signature, TensorSpec, TensorType, frame_to_split_json};
use polars::prelude::DataFrame;
use serde_json::{Map, Value, json};

use super::endpoint::Endpoint;
use super::request::INPUT_FORMATS;
use super::{ModelServer, ServeError, not_loaded};

pub(super) async fn endpoint_openapi(State(server): State<Arc<ModelServer>>, Path(name): Path<String>) -> Response {
    let Some(endpoint) = server.endpoints.get(&name) else {
        let known: Vec<&str> = server.endpoints.keys().map(String::as_str).collect();
        return ServeError::not_found(format!("no endpoint `{name}` (endpoints: {})", known.join(", ")))
            .into_response();
    };
    match document(&name, endpoint, server.features.is_some()) {
        Ok(document) => ([(header::CONTENT_TYPE, "application/json")], document.to_string()).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The document of `endpoint`, from the signature of its first loaded route (the one whose
/// schema the server reads bodies with); without the looked-up features when
/// `looks_features_up` and the model records lookups, as requests then carry only its raw
/// inputs.
pub(super) fn document(name: &str, endpoint: &Endpoint, looks_features_up: bool) -> Result<Value, ServeError> {
    let loaded = endpoint
        .routes
        .iter()
        .find_map(|r| r.source.current())
        .ok_or_else(|| not_loaded(format!("the model of endpoint `{name}` is not loaded yet")))?;
    let mut served = loaded.model.signature().clone();
    // Columns the lookups read that the signature does not name (keys, record times): the
    // request carries them, of whatever type the feature tables' keys have.
    let mut lookup_columns: Vec<String> = Vec::new();
    if let (true, Some(spec)) = (looks_features_up, loaded.model.features()) {
        served.inputs = spec.raw_inputs(&served.inputs);
        for lookup in &spec.lookups {
            for column in lookup.lookup_key.iter().chain(&lookup.timestamp_lookup_key) {
                let named = served.inputs.columns().iter().any(|c| &c.name == column);
                if !named && !lookup_columns.contains(column) {
                    lookup_columns.push(column.clone());
                }
            }
        }
    }
    let signature = &served;
    let example = request_example(signature, &lookup_columns, loaded.input_example.as_ref());
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let error_answer =
        |why: &str| json!({ "description": why, "content": { "application/json": { "schema": error.clone() } } });
    let mut json_body = json!({ "schema": { "$ref": "#/components/schemas/Request" } });
    if let Some(example) = example {
        json_body["example"] = example;
    }
    let mut content = Map::new();
    content.insert("application/json".into(), json_body);
    if !signature.inputs.is_tensor_schema() {
        content.insert(
            "text/csv".into(),
            json!({ "schema": { "type": "string", "description": "a header of column names, then one line per row" } }),
        );
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("Serving endpoint `{name}`"),
            "version": format!("{} version {}", loaded.version.name, loaded.version.version),
            "description": "MLflow's scoring protocol: one JSON input format (with optional `params`) or CSV, answered with one prediction per input row.",
        },
        "paths": {
            format!("/serving-endpoints/{name}/invocations"): {
                "post": {
                    "operationId": "invoke",
                    "summary": format!("Score rows with the model of endpoint `{name}`"),
                    "requestBody": { "required": true, "content": content },
                    "responses": {
                        "200": {
                            "description": "One prediction per input row",
                            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Predictions" } } },
                        },
                        "400": error_answer("Malformed input, or input that breaks the signature (the message names the column)"),
                        "404": error_answer("No such endpoint"),
                        "413": error_answer("A body over the server's limit"),
                        "415": error_answer("Another content type than application/json or text/csv"),
                        "500": error_answer("The model failed"),
                        "503": error_answer("The model is not loaded yet"),
                        "504": error_answer("Not answered within the request timeout"),
                    },
                },
            },
        },
        "components": { "schemas": schemas(signature, &lookup_columns) },
    }))
}

/// The request formats, the answer and the error, as JSON Schema (2020-12, which OpenAPI
/// 3.1 uses).
fn schemas(signature: &Signature, lookup_columns: &[String]) -> Value {
    let inputs = &signature.inputs;
    let params = params_schema(signature);
    let with_params = |field: &str, value: Value| {
        json!({
            "type": "object",
            "required": [field],
            "properties": { field: value, "params": { "$ref": "#/components/schemas/Params" } },
        })
    };
    // A tensor model takes its tensors under `instances` or `inputs` only.
    let accepted: &[&str] = if inputs.is_tensor_schema() { &["instances", "inputs"] } else { &INPUT_FORMATS };
    let formats: Vec<Value> =
        accepted.iter().map(|f| json!({ "$ref": format!("#/components/schemas/{}", pascal(f)) })).collect();
    let mut schemas = Map::new();
    schemas.insert("Request".into(), json!({ "oneOf": formats }));
    schemas.insert("Params".into(), params);
    if inputs.is_tensor_schema() {
        let tensors = tensors_schema(inputs.tensors());
        for format in ["instances", "inputs"] {
            schemas.insert(pascal(format), with_params(format, tensors.clone()));
        }
    } else {
        let record = with_lookup_columns(record_schema(inputs.columns()), lookup_columns, json!({}));
        let columns = with_lookup_columns(
            columns_schema(inputs.columns()),
            lookup_columns,
            json!({ "type": "array", "minItems": 1 }),
        );
        let rows = json!({ "type": "array", "items": { "type": "array" }, "description": "rows of values in the order of the signature's columns" });
        schemas.insert("Record".into(), record);
        schemas.insert("Columns".into(), columns);
        let records = json!({ "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Record" } });
        let names: Vec<&str> =
            inputs.columns().iter().map(|c| c.name.as_str()).chain(lookup_columns.iter().map(String::as_str)).collect();
        schemas.insert(
            pascal("dataframe_split"),
            with_params(
                "dataframe_split",
                json!({
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": { "type": "array", "items": { "type": "string", "enum": names } },
                        "data": { "type": "array", "minItems": 1, "items": { "type": "array" } },
                        "index": { "type": "array" },
                    },
                }),
            ),
        );
        schemas.insert(pascal("dataframe_records"), with_params("dataframe_records", records.clone()));
        let any_shape = json!({ "oneOf": [records, { "$ref": "#/components/schemas/Columns" }, rows] });
        for format in ["instances", "inputs"] {
            schemas.insert(pascal(format), with_params(format, any_shape.clone()));
        }
    }
    schemas.insert("Predictions".into(), predictions_schema(signature));
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error_code", "message"],
            "properties": {
                "error_code": { "type": "string", "description": "MLflow's error code: BAD_REQUEST, MALFORMED_REQUEST, ..." },
                "message": { "type": "string", "description": "What is wrong, naming the culprit" },
            },
        }),
    );
    Value::Object(schemas)
}

/// `dataframe_split` -> `DataframeSplit`.
fn pascal(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// `schema` (an object schema) with the lookup columns as required properties of `value`.
fn with_lookup_columns(mut schema: Value, lookup_columns: &[String], value: Value) -> Value {
    for column in lookup_columns {
        schema["properties"][column] = value.clone();
        if let Some(required) = schema["required"].as_array_mut() {
            required.push(json!(column));
        }
    }
    schema
}

fn record_schema(columns: &[ColSpec]) -> Value {
    let properties: Map<String, Value> = columns.iter().map(|c| (c.name.clone(), column_value(c))).collect();
    let required: Vec<&str> = columns.iter().filter(|c| c.required).map(|c| c.name.as_str()).collect();
    json!({ "type": "object", "properties": properties, "required": required })
}

fn columns_schema(columns: &[ColSpec]) -> Value {
    let properties: Map<String, Value> = columns
        .iter()
        .map(|c| (c.name.clone(), json!({ "type": "array", "minItems": 1, "items": column_value(c) })))
        .collect();
    let required: Vec<&str> = columns.iter().filter(|c| c.required).map(|c| c.name.as_str()).collect();
    json!({ "type": "object", "properties": properties, "required": required })
}

/// One value of a column.
fn column_value(column: &ColSpec) -> Value {
    let mut schema = scalar(column.dtype);
    if column.nullable || !column.required {
        let kind = schema["type"].clone();
        schema["type"] = json!([kind, "null"]);
    }
    schema
}

fn scalar(dtype: ColumnType) -> Value {
    match dtype {
        ColumnType::Boolean => json!({ "type": "boolean" }),
        ColumnType::Integer | ColumnType::Long => json!({ "type": "integer" }),
        ColumnType::Float | ColumnType::Double => json!({ "type": "number" }),
        ColumnType::Binary => json!({ "type": "string", "contentEncoding": "base64" }),
        ColumnType::Datetime => json!({ "type": "string", "description": "an ISO 8601 date and time" }),
        // Strings, and any type added later, travel as text.
        _ => json!({ "type": "string" }),
    }
}

fn tensor_element(dtype: TensorType) -> Value {
    match dtype {
        TensorType::Bool => json!({ "type": "boolean" }),
        TensorType::Int8 => json!({ "type": "integer", "minimum": i8::MIN, "maximum": i8::MAX }),
        TensorType::Int16 => json!({ "type": "integer", "minimum": i16::MIN, "maximum": i16::MAX }),
        TensorType::UInt8 => json!({ "type": "integer", "minimum": 0, "maximum": u8::MAX }),
        TensorType::UInt16 => json!({ "type": "integer", "minimum": 0, "maximum": u16::MAX }),
        TensorType::Int32 | TensorType::Int64 | TensorType::UInt32 | TensorType::UInt64 => json!({ "type": "integer" }),
        TensorType::Float16 | TensorType::Float32 | TensorType::Float64 => json!({ "type": "number" }),
        TensorType::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        _ => json!({ "type": "string" }),
    }
}

/// Nested lists of one tensor, the batch first.
fn tensor_schema(tensor: &TensorSpec) -> Value {
    let mut schema = tensor_element(tensor.dtype());
    for &dimension in tensor.shape().iter().rev() {
        schema = if dimension >= 0 {
            json!({ "type": "array", "items": schema, "minItems": dimension, "maxItems": dimension })
        } else {
            json!({ "type": "array", "items": schema, "minItems": 1 })
        };
    }
    schema
}

/// A lone unnamed tensor as nested lists; named tensors as an object of them.
fn tensors_schema(tensors: &[TensorSpec]) -> Value {
    match tensors {
        [lone] if lone.name().is_none() => tensor_schema(lone),
        _ => {
            let properties: Map<String, Value> =
                tensors.iter().filter_map(|t| Some((t.name()?.to_owned(), tensor_schema(t)))).collect();
            let required: Vec<&String> = properties.keys().collect();
            json!({ "type": "object", "properties": properties, "required": required })
        }
    }
}

fn params_schema(signature: &Signature) -> Value {
    let properties: Map<String, Value> = signature
        .params
        .iter()
        .map(|p| {
            let mut schema = scalar(p.dtype);
            schema["default"] = p.default.clone();
            (p.name.clone(), schema)
        })
        .collect();
    json!({ "type": "object", "properties": properties, "additionalProperties": false })
}

/// What a 200 answer holds: records of the outputs, or (for a tensor model) an object of
/// output columns, as MLflow answers them.
fn predictions_schema(signature: &Signature) -> Value {
    let outputs = &signature.outputs;
    let predictions = if signature.inputs.is_tensor_schema() {
        match outputs_named(outputs) {
            Some(columns) => {
                let properties: Map<String, Value> = columns
                    .into_iter()
                    .map(|(name, value)| (name, json!({ "type": "array", "items": value })))
                    .collect();
                json!({ "type": "object", "properties": properties })
            }
            None => json!({ "type": "object" }),
        }
    } else {
        let record = match outputs_named(outputs) {
            Some(columns) => json!({ "type": "object", "properties": columns.into_iter().collect::<Map<_, _>>() }),
            None => json!({ "type": "object" }),
        };
        json!({ "type": "array", "items": record })
    };
    json!({ "type": "object", "required": ["predictions"], "properties": { "predictions": predictions } })
}

/// The declared outputs by name with a schema for one value each; `None` when the
/// signature declares none (or leaves them unnamed).
fn outputs_named(outputs: &Schema) -> Option<Vec<(String, Value)>> {
    if outputs.is_empty() {
        return None;
    }
    let columns = outputs.columns().iter().map(|c| (c.name.clone(), column_value(c)));
    let tensors = outputs.tensors().iter().map(|t| Some((t.name()?.to_owned(), element_or_rows(t))));
    let mut named: Vec<(String, Value)> = columns.collect();
    for tensor in tensors {
        named.push(tensor?);
    }
    Some(named)
}

/// One row of an output tensor: a value for shape `(-1,)`, nested lists otherwise.
fn element_or_rows(tensor: &TensorSpec) -> Value {
    let mut schema = tensor_element(tensor.dtype());
    for &dimension in tensor.shape().iter().skip(1).rev() {
        schema =
            json!({ "type": "array", "items": schema, "minItems": dimension.max(0), "maxItems": dimension.max(0) });
    }
    schema
}

/// A request the endpoint answers: the model's input example as `dataframe_split`; without
/// one, a record of placeholder values of each column's type. `None` for a tensor model
/// without an example.
fn request_example(
    signature: &Signature,
    lookup_columns: &[String],
    input_example: Option<&DataFrame>,
) -> Option<Value> {
    let inputs = &signature.inputs;
    if let Some(example) = input_example.filter(|_| !inputs.is_tensor_schema()) {
        // The signature's columns the example has (an optional one may be left out), and
        // the columns the lookups read.
        let columns: Vec<&str> = inputs
            .columns()
            .iter()
            .map(|c| c.name.as_str())
            .filter(|name| example.column(name).is_ok())
            .chain(lookup_columns.iter().map(String::as_str))
            .collect();
        if let Ok(split) = example.select(columns).map_err(|_| ()).and_then(|f| frame_to_split_json(&f).map_err(|_| ()))
        {
            return Some(json!({ "dataframe_split": split }));
        }
    }
    // Placeholders cannot stand for keys that must find features.
    if inputs.is_tensor_schema() || !lookup_columns.is_empty() {
        return None;
    }
    let record: Map<String, Value> = inputs
        .columns()
        .iter()
        .map(|c| {
            let value = match c.dtype {
                ColumnType::Boolean => json!(false),
                ColumnType::Integer | ColumnType::Long => json!(0),
                ColumnType::Float | ColumnType::Double => json!(0.0),
                ColumnType::Datetime => json!("1970-01-01T00:00:00"),
                _ => json!(""),
            };
            (c.name.clone(), value)
        })
        .collect();
    Some(json!({ "dataframe_records": [record] }))
}
