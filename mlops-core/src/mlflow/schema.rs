//! MLflow's schema JSON (`ColSpec`, `TensorSpec`, `ParamSpec`) and this crate's schemas.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::signature::{ColSpec, ColumnType, ParamSpec, Schema, TensorSpec, TensorType};

/// The name given to an unnamed output (and `prediction_<i>` when there are several).
const UNNAMED_OUTPUT: &str = "prediction";

fn invalid(what: String) -> Error {
    Error::InvalidPackage(format!("MLflow signature: {what}"))
}

/// A schema from MLflow's JSON list. `part` is `input` or `output`, for messages and for
/// naming unnamed outputs.
pub(crate) fn schema_from_mlflow(value: &Value, part: &str) -> Result<Schema> {
    let entries =
        value.as_array().ok_or_else(|| invalid(format!("the {part} schema must be a JSON list, not {value}")))?;
    let is_tensor = |e: &Value| e.get("type").and_then(Value::as_str) == Some("tensor");
    let tensors = entries.iter().filter(|e| is_tensor(e)).count();
    if tensors > 0 && tensors < entries.len() {
        return Err(invalid(format!("the {part} schema mixes tensors and columns")));
    }
    let unnamed = |index: usize| {
        if entries.len() == 1 { UNNAMED_OUTPUT.to_owned() } else { format!("{UNNAMED_OUTPUT}_{index}") }
    };
    if tensors > 0 {
        let specs = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let mut spec = tensor_from_mlflow(entry, part, index)?;
                if spec.name().is_none() && part == "output" {
                    spec = spec.named(unnamed(index));
                }
                Ok(spec)
            })
            .collect::<Result<Vec<_>>>()?;
        return Schema::of_tensors(specs).map_err(|e| invalid(e.to_string()));
    }
    let columns = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let name = match entry.get("name").and_then(Value::as_str) {
                Some(name) => name.to_owned(),
                None if part == "output" => unnamed(index),
                None => {
                    return Err(invalid(format!(
                        "input column {index} has no name (a model taking unnamed columns is fed by position, which is not supported)"
                    )));
                }
            };
            column_from_mlflow(entry, name)
        })
        .collect::<Result<Vec<_>>>()?;
    Schema::new(columns).map_err(|e| invalid(e.to_string()))
}

fn column_type_from_mlflow(name: &str, column: &str) -> Result<ColumnType> {
    Ok(match name {
        "boolean" => ColumnType::Boolean,
        "integer" => ColumnType::Integer,
        "long" => ColumnType::Long,
        "float" => ColumnType::Float,
        "double" => ColumnType::Double,
        "string" => ColumnType::String,
        "binary" => ColumnType::Binary,
        "datetime" => ColumnType::Datetime,
        "array" | "object" | "map" | "any" | "sparkml_vector" => {
            return Err(invalid(format!(
                "column `{column}` has MLflow type `{name}`, which is not supported yet (supported: boolean, integer, long, float, double, string, binary, datetime, and tensors)"
            )));
        }
        other => return Err(invalid(format!("column `{column}` has the unknown MLflow type `{other}`"))),
    })
}

fn column_from_mlflow(entry: &Value, name: String) -> Result<ColSpec> {
    let type_name =
        entry.get("type").and_then(Value::as_str).ok_or_else(|| invalid(format!("column `{name}` has no type")))?;
    let dtype = column_type_from_mlflow(type_name, &name)?;
    let required = entry.get("required").and_then(Value::as_bool).unwrap_or(true);
    // MLflow checks no nulls in these types (NaN, None, NaT pass); integers with a missing
    // value become floats, which it refuses.
    let nullable = !matches!(dtype, ColumnType::Integer | ColumnType::Long);
    let mut spec = ColSpec::new(name, dtype);
    spec.required = required;
    spec.nullable = nullable;
    // MLflow passes NaN and ±inf in float and double columns, and the models it logs read
    // NaN as a missing value: such a signature allows them.
    spec.allow_non_finite = matches!(dtype, ColumnType::Float | ColumnType::Double);
    Ok(spec)
}

fn tensor_from_mlflow(entry: &Value, part: &str, index: usize) -> Result<TensorSpec> {
    let name = entry.get("name").and_then(Value::as_str);
    let label = name.map_or_else(|| format!("{part} tensor {index}"), |n| format!("tensor `{n}`"));
    let spec = entry.get("tensor-spec").ok_or_else(|| invalid(format!("{label} has no `tensor-spec`")))?;
    let dtype = spec.get("dtype").and_then(Value::as_str).ok_or_else(|| invalid(format!("{label} has no dtype")))?;
    let shape = spec
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(format!("{label} has no shape")))?
        .iter()
        .map(|d| d.as_i64().ok_or_else(|| invalid(format!("{label}: shape entry {d} is not an integer"))))
        .collect::<Result<Vec<i64>>>()?;
    let dtype = TensorType::from_numpy(dtype).map_err(|e| invalid(format!("{label}: {e}")))?;
    TensorSpec::new(name, dtype, shape).map_err(|e| invalid(e.to_string()))
}

/// A schema as MLflow's JSON list.
pub(crate) fn schema_to_mlflow(schema: &Schema) -> Value {
    let columns =
        schema.columns().iter().map(|c| json!({ "type": c.dtype.to_string(), "name": c.name, "required": c.required }));
    let tensors = schema.tensors().iter().map(|t| {
        let mut entry = Map::new();
        entry.insert("type".into(), "tensor".into());
        entry.insert("tensor-spec".into(), json!({ "dtype": t.dtype().numpy_name(), "shape": t.shape() }));
        if let Some(name) = t.name() {
            entry.insert("name".into(), name.into());
        }
        Value::Object(entry)
    });
    Value::Array(columns.chain(tensors).collect())
}

/// Inference parameters from MLflow's `ParamSchema` JSON.
pub(crate) fn params_from_mlflow(value: &Value) -> Result<Vec<ParamSpec>> {
    let entries =
        value.as_array().ok_or_else(|| invalid(format!("the params schema must be a JSON list, not {value}")))?;
    entries
        .iter()
        .map(|entry| {
            let name =
                entry.get("name").and_then(Value::as_str).ok_or_else(|| invalid("a parameter has no name".into()))?;
            let type_name = entry
                .get("type")
                .or_else(|| entry.get("dtype"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("parameter `{name}` has no type")))?;
            if entry.get("shape").is_some_and(|s| !s.is_null()) {
                return Err(invalid(format!("parameter `{name}` is a list, which is not supported yet")));
            }
            let dtype = column_type_from_mlflow(type_name, name).map_err(|_| {
                invalid(format!("parameter `{name}` has MLflow type `{type_name}`, which is not supported"))
            })?;
            Ok(ParamSpec {
                name: name.to_owned(),
                dtype,
                default: entry.get("default").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// Inference parameters as MLflow's `ParamSchema` JSON.
pub(crate) fn params_to_mlflow(params: &[ParamSpec]) -> Value {
    Value::Array(
        params
            .iter()
            .map(|p| json!({ "name": p.name, "type": p.dtype.to_string(), "default": p.default, "shape": null }))
            .collect(),
    )
}
