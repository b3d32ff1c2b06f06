//! Reading record files (Parquet, CSV, JSON lines) into a frame of a held schema: values
//! that do not parse become null, with their raw text kept in the rescued-data column.

use std::io::Cursor;
use std::sync::Arc;

use mlops_core::Schema;
use polars::prelude::*;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Column holding, per record, a JSON object of the raw values that did not parse.
pub const RESCUED_DATA: &str = "_rescued_data";

/// How a record file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl FileFormat {
    /// The format a file name's extension says (`.parquet`, `.csv`, `.json` / `.jsonl` /
    /// `.ndjson`).
    pub fn from_name(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "parquet" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            "json" | "jsonl" | "ndjson" => Some(Self::JsonLines),
            _ => None,
        }
    }
}

/// Parses a file's bytes as it comes (types as the file says, or inferred), without a schema.
pub(crate) fn parse_raw(bytes: &[u8], format: FileFormat) -> PolarsResult<DataFrame> {
    match format {
        FileFormat::Parquet => ParquetReader::new(Cursor::new(bytes)).finish(),
        FileFormat::Csv => {
            CsvReadOptions::default().with_has_header(true).into_reader_with_file_handle(Cursor::new(bytes)).finish()
        }
        FileFormat::JsonLines => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(DataFrame::empty());
            }
            JsonReader::new(Cursor::new(bytes)).with_json_format(JsonFormat::JsonLines).finish()
        }
    }
}

/// Parses a file's bytes into `schema`'s columns. Text formats are read as text first, so a
/// value that does not parse as its column's type becomes null and its raw text goes to
/// [`RESCUED_DATA`] instead of failing the file. Columns the file lacks are all null.
pub(crate) fn parse(bytes: &[u8], format: FileFormat, schema: &Schema) -> PolarsResult<DataFrame> {
    let as_text: polars::prelude::Schema =
        schema.columns().iter().map(|c| Field::new(c.name.as_str().into(), DataType::String)).collect();
    let empty_text = format != FileFormat::Parquet && bytes.iter().all(u8::is_ascii_whitespace);
    let raw = match format {
        _ if empty_text => DataFrame::empty(),
        FileFormat::Parquet => ParquetReader::new(Cursor::new(bytes)).finish()?,
        FileFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_schema(Some(Arc::new(as_text)))
            .into_reader_with_file_handle(Cursor::new(bytes))
            .finish()?,
        FileFormat::JsonLines => JsonReader::new(Cursor::new(bytes))
            .with_json_format(JsonFormat::JsonLines)
            .with_schema(Arc::new(as_text))
            .finish()?,
    };
    let height = raw.height();
    let mut columns = Vec::with_capacity(schema.columns().len() + 1);
    let mut rescued: Vec<Option<Map<String, Value>>> = vec![None; height];
    for spec in schema.columns() {
        let target = spec.dtype.polars_dtype();
        let Ok(column) = raw.column(&spec.name) else {
            columns.push(Column::full_null(spec.name.as_str().into(), height, &target));
            continue;
        };
        let parsed = column.cast(&target)?;
        let failed = column.is_not_null() & parsed.is_null();
        if failed.any() {
            let text = column.cast(&DataType::String)?;
            let text = text.str()?;
            for (row, bad) in failed.iter().enumerate() {
                if bad == Some(true) {
                    let value = text.get(row).map_or(Value::Null, |t| Value::String(t.to_owned()));
                    rescued[row].get_or_insert_with(Map::new).insert(spec.name.clone(), value);
                }
            }
        }
        columns.push(parsed);
    }
    let rescued: StringChunked = rescued
        .into_iter()
        .map(|fields| fields.map(|f| Value::Object(f).to_string()))
        .collect::<StringChunked>()
        .with_name(RESCUED_DATA.into());
    columns.push(rescued.into_column());
    DataFrame::new(height, columns)
}

/// Splits parsed records into those the signature accepts and, per rejected row, the reason:
/// a null (or unparsable) value in a column that may not be null.
pub(crate) fn split_valid(records: &DataFrame, inputs: &Schema) -> Result<(DataFrame, Vec<(usize, String)>)> {
    let height = records.height();
    let mut reasons: Vec<Option<String>> = vec![None; height];
    for spec in inputs.columns().iter().filter(|c| !c.nullable) {
        let Ok(column) = records.column(&spec.name) else {
            if spec.required {
                return Err(Error::InvalidArgument(format!(
                    "the records have no column `{}`, which the model requires",
                    spec.name
                )));
            }
            continue;
        };
        if column.null_count() == 0 {
            continue;
        }
        for (row, missing) in column.is_null().iter().enumerate() {
            if missing == Some(true) && reasons[row].is_none() {
                reasons[row] = Some(format!("column `{}` ({}) has no valid value", spec.name, spec.dtype));
            }
        }
    }
    let keep: BooleanChunked = reasons.iter().map(|r| Some(r.is_none())).collect();
    let valid = records.filter(&keep)?;
    let rejected = reasons.into_iter().enumerate().filter_map(|(row, r)| r.map(|r| (row, r))).collect();
    Ok((valid, rejected))
}

/// One record as a JSON object, for dead letters.
pub(crate) fn record_json(records: &DataFrame, row: usize) -> String {
    let mut object = Map::new();
    for column in records.columns() {
        let value = match column.get(row) {
            Ok(AnyValue::Null) | Err(_) => Value::Null,
            Ok(AnyValue::String(s)) => Value::String(s.to_owned()),
            Ok(AnyValue::StringOwned(s)) => Value::String(s.to_string()),
            Ok(AnyValue::Boolean(b)) => Value::Bool(b),
            Ok(AnyValue::Int32(v)) => Value::from(v),
            Ok(AnyValue::Int64(v)) => Value::from(v),
            Ok(AnyValue::Float32(v)) => Value::from(f64::from(v)),
            Ok(AnyValue::Float64(v)) => Value::from(v),
            Ok(other) => Value::String(other.to_string()),
        };
        object.insert(column.name().to_string(), value);
    }
    Value::Object(object).to_string()
}
