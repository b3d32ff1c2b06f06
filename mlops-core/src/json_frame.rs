//! Frames as JSON in MLflow's orientations: `dataframe_split` (`{"columns": [..], "data":
//! [[..], ..]}`), records (`[{"column": value, ..}, ..]`, MLflow's `dataframe_records`,
//! `instances` and `inputs` as a list, and its prediction output) and columns (`{"column":
//! [values], ..}`, `instances` and `inputs` as an object).

use std::collections::HashMap;

use polars::prelude::{AnyValue, Column, DataFrame, NamedFrom, Series, TimeUnit};
use serde_json::{Map, Value, json};

use self::writer::{Columns, FrameCells, Records};
use crate::error::{Error, Result};
use crate::signature::{ColumnType, Schema, TensorSpec, TensorType};

mod writer;

/// Writes `frame` as a `dataframe_split` JSON object. Datetimes become ISO 8601 strings.
///
/// # Errors
/// [`Error::Schema`] for a column whose type has no JSON form here (binary, nested types).
pub fn frame_to_split_json(frame: &DataFrame) -> Result<Value> {
    let columns: Vec<&Column> = frame.columns().iter().collect();
    let mut data = Vec::with_capacity(frame.height());
    for row in 0..frame.height() {
        let values = columns.iter().map(|c| any_to_json(c.name().as_str(), c.get(row)?)).collect::<Result<Vec<_>>>()?;
        data.push(Value::Array(values));
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name().as_str()).collect();
    Ok(json!({ "columns": names, "data": data }))
}

/// Writes `frame` as a list of records, one JSON object per row (MLflow's `predictions`
/// shape for a frame).
///
/// # Errors
/// [`Error::Schema`] for a column whose type has no JSON form here (binary).
pub fn frame_to_records_json(frame: &DataFrame) -> Result<Value> {
    serde_json::to_value(Records(&FrameCells::new(frame)?)).map_err(written)
}

/// Writes `frame` as an object of columns, `{"column": [values], ..}` (MLflow's answer for a
/// model that returns a dictionary of arrays, such as an ONNX graph fed tensors).
///
/// # Errors
/// [`Error::Schema`] for a column whose type has no JSON form here (binary).
pub fn frame_to_columns_json(frame: &DataFrame) -> Result<Value> {
    serde_json::to_value(Columns(&FrameCells::new(frame)?)).map_err(written)
}

/// Appends `frame` to `out` as [`frame_to_records_json`] writes it, without building JSON
/// values: the form for answers written once.
///
/// ```
/// use polars::prelude::*;
///
/// let frame = df!("label" => [1i64, 0], "score" => [0.75f64, 0.25])?;
/// let mut out = Vec::new();
/// mlops_core::write_records_json(&frame, &mut out)?;
/// assert_eq!(out, br#"[{"label":1,"score":0.75},{"label":0,"score":0.25}]"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Schema`] for a column whose type has no JSON form here (binary).
pub fn write_records_json(frame: &DataFrame, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(out, &Records(&FrameCells::new(frame)?)).map_err(written)
}

/// Appends `frame` to `out` as [`frame_to_columns_json`] writes it, without building JSON
/// values.
///
/// # Errors
/// [`Error::Schema`] for a column whose type has no JSON form here (binary).
pub fn write_columns_json(frame: &DataFrame, out: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(out, &Columns(&FrameCells::new(frame)?)).map_err(written)
}

/// A failure to write cells whose types were checked: a value Polars could not read.
fn written(error: serde_json::Error) -> Error {
    Error::InvalidArgument(format!("writing a frame as JSON: {error}"))
}

/// Reads a tensor from JSON: a list with one entry per row, each row nested as the
/// tensor's inner dimensions (`[[0.1, 0.2], [0.3, 0.4]]` for shape `(-1, 2)`), into a
/// column typed and shaped as `spec` says. Numbers are converted to the element type as
/// MLflow's scoring server does (`np.array(data, dtype=...)`), except that a number that
/// does not fit an integer type exactly is refused rather than truncated.
///
/// # Errors
/// [`Error::Schema`] naming the tensor and the position of the first value or row whose
/// nesting, length or type does not fit.
pub fn tensor_json_to_column(value: &Value, spec: &TensorSpec) -> Result<Column> {
    let mismatch =
        |found: String| Error::Schema { column: spec.column_name().to_owned(), expected: spec.describe(), found };
    let rows = match value {
        Value::Array(rows) => rows.as_slice(),
        other => return Err(mismatch(format!("{} instead of a list of rows", json_kind(other)))),
    };
    let expected = rows.len().saturating_mul(spec.row_len());
    // Capacity follows the body, not the declared shape: a short body cannot reserve much.
    let mut sink = TensorSink::new(spec.dtype(), expected.min(1 << 20));
    let mut position = Vec::with_capacity(spec.shape().len());
    for (row, value) in rows.iter().enumerate() {
        position.clear();
        position.push(row);
        walk_tensor(value, &spec.shape()[1..], &mut sink, &mut position).map_err(mismatch)?;
    }
    spec.column_from_values(sink.finish(spec.column_name()), rows.len())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn walk_tensor(value: &Value, dims: &[i64], sink: &mut TensorSink, position: &mut Vec<usize>) -> Result<(), String> {
    let at = |position: &[usize]| format!("{position:?}");
    let Some((&dim, inner)) = dims.split_first() else {
        return sink
            .push(value)
            .map_err(|expected| format!("{} at {} where {expected} belongs", json_kind(value), at(position)));
    };
    let Value::Array(items) = value else {
        return Err(format!("{} at {} where a list of {dim} values belongs", json_kind(value), at(position)));
    };
    if items.len() as i64 != dim {
        return Err(format!("{} values at {} where {dim} belong", items.len(), at(position)));
    }
    for (index, item) in items.iter().enumerate() {
        position.push(index);
        walk_tensor(item, inner, sink, position)?;
        position.pop();
    }
    Ok(())
}

/// The flat elements of a tensor being read, in the type a frame holds its element type in.
enum TensorSink {
    Bool(Vec<bool>),
    /// 8-, 16- and 32-bit integers, with the range of the tensor's type and its name.
    Int32(Vec<i32>, (i32, i32), &'static str),
    Int64(Vec<i64>),
    /// 8-, 16- and 32-bit unsigned integers, with the largest of the tensor's type and its name.
    UInt32(Vec<u32>, u32, &'static str),
    UInt64(Vec<u64>),
    /// Half-precision values, rounded once from the JSON number, held in f32.
    Float16(Vec<f32>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    Str(Vec<String>),
}

impl TensorSink {
    fn new(dtype: TensorType, capacity: usize) -> Self {
        // The narrow types' bounds are the signature's, which enforcement checks too; here
        // they name the JSON position of a value outside them.
        let range = dtype.narrow_range();
        let ints = |what| {
            let (low, high) = range.map_or((i32::MIN, i32::MAX), |(low, high)| (low as i32, high as i32));
            Self::Int32(Vec::with_capacity(capacity), (low, high), what)
        };
        let unsigned =
            |what| Self::UInt32(Vec::with_capacity(capacity), range.map_or(u32::MAX, |(_, high)| high as u32), what);
        match dtype {
            TensorType::Bool => Self::Bool(Vec::with_capacity(capacity)),
            TensorType::Int8 => ints("an int8"),
            TensorType::Int16 => ints("an int16"),
            TensorType::Int32 => ints("an int32"),
            TensorType::Int64 => Self::Int64(Vec::with_capacity(capacity)),
            TensorType::UInt8 => unsigned("a uint8"),
            TensorType::UInt16 => unsigned("a uint16"),
            TensorType::UInt32 => unsigned("a uint32"),
            TensorType::UInt64 => Self::UInt64(Vec::with_capacity(capacity)),
            TensorType::Float16 => Self::Float16(Vec::with_capacity(capacity)),
            TensorType::Float32 => Self::Float32(Vec::with_capacity(capacity)),
            TensorType::Float64 => Self::Float64(Vec::with_capacity(capacity)),
            // Bytes travel in JSON as base64 text; they are checked as text here and
            // refused by the spec's type check when the column is built. A type added
            // later is read as text too, and refused the same way.
            _ => Self::Str(Vec::with_capacity(capacity.min(1024))),
        }
    }

    /// Adds one element; on a mismatch, what was expected.
    fn push(&mut self, value: &Value) -> Result<(), &'static str> {
        let integral = |value: &Value| -> Option<i128> {
            match value {
                Value::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19).map(|f| f as i128)),
                Value::Bool(b) => Some(i128::from(*b)),
                _ => None,
            }
        };
        match self {
            Self::Bool(out) => out.push(value.as_bool().ok_or("a boolean")?),
            Self::Int32(out, (low, high), what) => out.push(
                integral(value)
                    .and_then(|v| i32::try_from(v).ok())
                    .filter(|v| (*low..=*high).contains(v))
                    .ok_or(*what)?,
            ),
            Self::Int64(out) => out.push(integral(value).and_then(|v| i64::try_from(v).ok()).ok_or("an int64")?),
            Self::UInt32(out, high, what) => {
                out.push(integral(value).and_then(|v| u32::try_from(v).ok()).filter(|v| v <= high).ok_or(*what)?)
            }
            Self::UInt64(out) => out.push(integral(value).and_then(|v| u64::try_from(v).ok()).ok_or("a uint64")?),
            // As numpy makes a float16 array of Python floats: rounded once, from the double.
            Self::Float16(out) => out.push(f16_of(value.as_f64().ok_or("a number")?)),
            Self::Float32(out) => out.push(value.as_f64().ok_or("a number")? as f32),
            Self::Float64(out) => out.push(value.as_f64().ok_or("a number")?),
            Self::Str(out) => out.push(value.as_str().ok_or("a string")?.to_owned()),
        }
        Ok(())
    }

    fn finish(self, name: &str) -> Series {
        let name = name.into();
        match self {
            Self::Bool(v) => Series::new(name, v),
            Self::Int32(v, _, _) => Series::new(name, v),
            Self::Int64(v) => Series::new(name, v),
            Self::UInt32(v, _, _) => Series::new(name, v),
            Self::UInt64(v) => Series::new(name, v),
            Self::Float16(v) | Self::Float32(v) => Series::new(name, v),
            Self::Float64(v) => Series::new(name, v),
            Self::Str(v) => Series::new(name, v),
        }
    }
}

/// `value` rounded to the nearest half-precision value (ties to even), as `f32`, which
/// holds it exactly.
fn f16_of(value: f64) -> f32 {
    half::f16::from_f64(value).to_f32()
}

/// Reads a list of records (`[{"column": value, ..}, ..]`) into a frame typed by `schema`.
/// Columns are those of the first record and any later one; a record without a column
/// holds null there. Fields the schema does not name are kept (a request id, a sticky or
/// key column) as long as the frame stays proportional to the records: fields outside
/// the schema that most records lack would make a frame far larger than its input, and
/// are refused.
///
/// # Errors
/// [`Error::InvalidArgument`] naming a row that is not an object, or for records whose
/// fields outside the schema are too sparse; [`Error::Schema`] naming a column whose
/// values do not fit its type.
pub fn records_json_to_frame(records: &[Value], schema: &Schema) -> Result<DataFrame> {
    let mut objects = Vec::with_capacity(records.len());
    let mut names: Vec<&str> = Vec::new();
    // Whether each field seen so far is a schema column.
    let mut known: HashMap<&str, bool> = HashMap::new();
    // Values of fields outside the schema that the records carry, and the distinct fields.
    let mut unknown_values = 0usize;
    let mut unknown_fields = 0usize;
    for (row, record) in records.iter().enumerate() {
        let object = record.as_object().ok_or_else(|| {
            Error::InvalidArgument(format!("record {row} is not a JSON object: {}", json_excerpt(record)))
        })?;
        for name in object.keys() {
            let known = *known.entry(name.as_str()).or_insert_with(|| {
                names.push(name);
                let known = schema.column(name).is_some();
                unknown_fields += usize::from(!known);
                known
            });
            unknown_values += usize::from(!known);
        }
        objects.push(object);
    }
    let unknown_cells = unknown_fields.saturating_mul(objects.len());
    if unknown_cells > unknown_values.saturating_mul(SPARSE_FIELDS_FACTOR).max(SPARSE_FIELDS_ALLOWANCE) {
        return Err(Error::InvalidArgument(format!(
            "the {} records carry {unknown_fields} distinct fields outside the model's signature, most of them in \
             few records; send the signature's columns, and extra fields only where most records have them",
            objects.len()
        )));
    }
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let cells: Vec<&Value> = objects.iter().map(|r| r.get(name).unwrap_or(&Value::Null)).collect();
        columns.push(typed_column(name, &cells, schema)?);
    }
    Ok(DataFrame::new(objects.len(), columns)?)
}

/// Fields outside the schema may fill this many times more cells than the values the
/// records carry for them (sparse optional fields), beyond [`SPARSE_FIELDS_ALLOWANCE`].
const SPARSE_FIELDS_FACTOR: usize = 8;
/// Cells of fields outside the schema allowed whatever their sparsity.
const SPARSE_FIELDS_ALLOWANCE: usize = 1 << 16;

/// A JSON value for an error message: scalars as they are (long strings cut), lists and
/// objects by kind and size, so a message never echoes a whole body.
pub fn json_excerpt(value: &Value) -> String {
    const MAX_CHARS: usize = 64;
    match value {
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            format!("{:?}... ({} bytes)", s.chars().take(MAX_CHARS).collect::<String>(), s.len())
        }
        Value::Array(items) => format!("a list of {} values", items.len()),
        Value::Object(fields) => format!("an object of {} fields", fields.len()),
        scalar => scalar.to_string(),
    }
}

/// Reads an object of columns (`{"column": [values], ..}`) into a frame typed by `schema`.
///
/// # Errors
/// [`Error::InvalidArgument`] naming a column that is not a list or whose length differs
/// from the first's, [`Error::Schema`] naming a column whose values do not fit its type.
pub fn columns_json_to_frame(object: &Map<String, Value>, schema: &Schema) -> Result<DataFrame> {
    let mut height = None;
    let mut columns = Vec::with_capacity(object.len());
    for (name, values) in object {
        let values = values
            .as_array()
            .ok_or_else(|| Error::InvalidArgument(format!("column `{name}` is not a list of values")))?;
        match height {
            None => height = Some(values.len()),
            Some(h) if h != values.len() => {
                return Err(Error::InvalidArgument(format!(
                    "column `{name}` has {} values where the others have {h}",
                    values.len()
                )));
            }
            Some(_) => {}
        }
        let cells: Vec<&Value> = values.iter().collect();
        columns.push(typed_column(name, &cells, schema)?);
    }
    Ok(DataFrame::new(height.unwrap_or(0), columns)?)
}

fn typed_column(name: &str, cells: &[&Value], schema: &Schema) -> Result<Column> {
    let dtype = match schema.column(name) {
        Some(spec) => spec.dtype,
        None => infer_json_type(cells),
    };
    json_column(name, dtype, cells)
}

fn any_to_json(column: &str, value: AnyValue<'_>) -> Result<Value> {
    Ok(match value {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(v) => Value::Bool(v),
        AnyValue::Int32(v) => v.into(),
        AnyValue::Int64(v) => v.into(),
        AnyValue::UInt32(v) => v.into(),
        AnyValue::UInt64(v) => v.into(),
        AnyValue::Float32(v) => json_float(f64::from(v)),
        AnyValue::Float64(v) => json_float(v),
        AnyValue::String(v) => v.into(),
        AnyValue::StringOwned(v) => v.as_str().into(),
        AnyValue::Datetime(v, unit, _) | AnyValue::DatetimeOwned(v, unit, _) => {
            let nanos = match unit {
                TimeUnit::Nanoseconds => v,
                TimeUnit::Microseconds => v.saturating_mul(1_000),
                TimeUnit::Milliseconds => v.saturating_mul(1_000_000),
            };
            chrono::DateTime::from_timestamp_nanos(nanos).naive_utc().format("%Y-%m-%dT%H:%M:%S%.3f").to_string().into()
        }
        // Lists, tensor rows and structs (a classifier's labels and scores) become arrays and
        // objects.
        AnyValue::List(values) | AnyValue::Array(values, _) => {
            Value::Array(values.iter().map(|v| any_to_json(column, v)).collect::<Result<Vec<_>>>()?)
        }
        AnyValue::Struct(_, _, fields) => {
            let mut object = Map::with_capacity(fields.len());
            for (field, v) in fields.iter().zip(value._iter_struct_av()) {
                object.insert(field.name().to_string(), any_to_json(column, v)?);
            }
            Value::Object(object)
        }
        AnyValue::StructOwned(payload) => {
            let mut object = Map::with_capacity(payload.1.len());
            for (field, v) in payload.1.iter().zip(payload.0) {
                object.insert(field.name().to_string(), any_to_json(column, v)?);
            }
            Value::Object(object)
        }
        other => {
            return Err(Error::Schema {
                column: column.to_owned(),
                expected: "a value that JSON can carry".into(),
                found: other.dtype().to_string(),
            });
        }
    })
}

fn json_float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Reads a `dataframe_split` JSON object into a frame typed by `schema`. Columns the schema
/// does not know are kept with their JSON-inferred type where it is unambiguous (numbers as
/// double, strings, booleans); schema columns are read with the schema's type.
///
/// # Errors
/// [`Error::InvalidArgument`] for a malformed document, [`Error::Schema`] naming a column
/// whose values do not fit its type.
pub fn split_json_to_frame(document: &Value, schema: &Schema) -> Result<DataFrame> {
    let bad = |what: &str| Error::InvalidArgument(format!("dataframe_split document: {what}"));
    let object: &Map<String, Value> = document.as_object().ok_or_else(|| bad("expected a JSON object"))?;
    let names = object.get("columns").and_then(Value::as_array).ok_or_else(|| bad("missing `columns` array"))?;
    let rows = object.get("data").and_then(Value::as_array).ok_or_else(|| bad("missing `data` array"))?;
    let mut columns = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let name = name.as_str().ok_or_else(|| bad("column names must be strings"))?;
        let cells = rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                let row = row.as_array().ok_or_else(|| bad(&format!("row {r} is not an array")))?;
                if row.len() != names.len() {
                    return Err(bad(&format!("row {r} has {} values for {} columns", row.len(), names.len())));
                }
                Ok(&row[index])
            })
            .collect::<Result<Vec<&Value>>>()?;
        columns.push(typed_column(name, &cells, schema)?);
    }
    Ok(DataFrame::new(rows.len(), columns)?)
}

fn infer_json_type(cells: &[&Value]) -> ColumnType {
    let first = cells.iter().find(|v| !v.is_null());
    match first {
        Some(Value::Bool(_)) => ColumnType::Boolean,
        Some(Value::Number(_)) if cells.iter().all(|v| v.is_null() || v.is_i64()) => ColumnType::Long,
        Some(Value::Number(_)) => ColumnType::Double,
        _ => ColumnType::String,
    }
}

fn json_column(name: &str, dtype: ColumnType, cells: &[&Value]) -> Result<Column> {
    let mismatch = |row: usize, value: &Value| Error::Schema {
        column: name.to_owned(),
        expected: dtype.to_string(),
        found: format!("{} in row {row}", json_excerpt(value)),
    };
    fn collect<T>(
        cells: &[&Value],
        convert: impl Fn(&Value) -> Option<T>,
        mismatch: impl Fn(usize, &Value) -> Error,
    ) -> Result<Vec<Option<T>>> {
        cells
            .iter()
            .enumerate()
            .map(|(row, v)| if v.is_null() { Ok(None) } else { convert(v).map(Some).ok_or_else(|| mismatch(row, v)) })
            .collect()
    }
    let name = name.into();
    let series = match dtype {
        ColumnType::Boolean => Series::new(name, collect(cells, Value::as_bool, mismatch)?),
        ColumnType::Integer => {
            Series::new(name, collect(cells, |v| v.as_i64().and_then(|i| i32::try_from(i).ok()), mismatch)?)
        }
        ColumnType::Long => Series::new(name, collect(cells, Value::as_i64, mismatch)?),
        ColumnType::Float => Series::new(name, collect(cells, |v| v.as_f64().map(|f| f as f32), mismatch)?),
        ColumnType::Double => Series::new(name, collect(cells, Value::as_f64, mismatch)?),
        ColumnType::String => Series::new(name, collect(cells, |v| v.as_str().map(str::to_owned), mismatch)?),
        ColumnType::Datetime => {
            let millis = collect(cells, parse_datetime_millis, mismatch)?;
            Series::new(name, millis).cast(&ColumnType::Datetime.polars_dtype())?
        }
        ColumnType::Binary => {
            return Err(Error::Schema {
                column: name.to_string(),
                expected: "a column JSON can carry".into(),
                found: "binary".into(),
            });
        }
    };
    Ok(series.into())
}

fn parse_datetime_millis(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .or_else(|| chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.naive_utc()))
            .map(|d| d.and_utc().timestamp_millis()),
        _ => None,
    }
}
