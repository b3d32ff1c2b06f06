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

/// Records of a text file read to infer its schema: as many as Polars' readers infer types
/// from.
const SAMPLE_RECORDS: usize = 100;

/// The first `lines` lines of `bytes`, whole.
fn leading_lines(bytes: &[u8], lines: usize) -> &[u8] {
    let end = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(lines - 1).map_or(bytes.len(), |(i, _)| i + 1);
    &bytes[..end]
}

/// Parses the start of a file (types as the file says, or inferred from its first records),
/// without a schema: what the schema is inferred from. Only the first records of a text file
/// are read, so a file whose records each carry keys of their own costs columns for those
/// records only.
pub(crate) fn parse_raw(bytes: &[u8], format: FileFormat) -> PolarsResult<DataFrame> {
    let bytes = match format {
        FileFormat::Parquet => bytes,
        FileFormat::Csv => leading_lines(bytes, SAMPLE_RECORDS + 1), // and the header
        FileFormat::JsonLines => leading_lines(bytes, SAMPLE_RECORDS),
    };
    match format {
        FileFormat::Parquet => ParquetReader::new(Cursor::new(bytes)).finish(),
        FileFormat::Csv => {
            check_csv_cells(bytes)?;
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
        // Every column as text, matched to the schema by its header name (a schema given to
        // the reader would name the file's columns by position).
        FileFormat::Csv => {
            check_csv_cells(bytes)?;
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .into_reader_with_file_handle(Cursor::new(bytes))
                .finish()?
        }
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
        let mut parsed = column.cast(&target)?;
        let mut failed = column.is_not_null() & parsed.is_null();
        // A number that does not fit its column exactly (1247.9 into an integer key, an
        // integer past 2^53 into a double) is rescued, not rounded.
        if column.dtype().is_primitive_numeric() && target.is_primitive_numeric() && column.dtype() != &target {
            let back = parsed.cast(column.dtype())?;
            let inexact = column.is_not_null()
                & back.as_materialized_series().not_equal_missing(column.as_materialized_series())?;
            if inexact.any() {
                let nulls = Series::full_null(spec.name.as_str().into(), height, &target);
                parsed = parsed.as_materialized_series().zip_with(&!&inexact, &nulls)?.into_column();
                failed = failed | inexact;
            }
        }
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
/// a null (or unparsable) value in a column that may not be null, or a NaN or an infinity in
/// a column that does not allow them.
pub(crate) fn split_valid(records: &DataFrame, inputs: &Schema) -> Result<(DataFrame, Vec<(usize, String)>)> {
    let height = records.height();
    let mut reasons: Vec<Option<String>> = vec![None; height];
    for spec in inputs.columns() {
        let Ok(column) = records.column(&spec.name) else {
            if spec.required {
                return Err(Error::InvalidArgument(format!(
                    "the records have no column `{}`, which the model requires",
                    spec.name
                )));
            }
            continue;
        };
        if !spec.nullable && column.null_count() > 0 {
            for (row, missing) in column.is_null().iter().enumerate() {
                if missing == Some(true) && reasons[row].is_none() {
                    reasons[row] = Some(format!("column `{}` ({}) has no valid value", spec.name, spec.dtype));
                }
            }
        }
        // Only float columns have an answer; others hold no NaN.
        if !spec.allow_non_finite
            && let Ok(finite) = column.as_materialized_series().is_finite()
        {
            for (row, finite) in finite.iter().enumerate() {
                if finite == Some(false) && reasons[row].is_none() {
                    reasons[row] = Some(format!(
                        "column `{}` ({}) holds NaN or an infinity, which the model's signature does not allow",
                        spec.name, spec.dtype
                    ));
                }
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

/// [`crate::csv_cells::check_csv_cells`] as a Polars error, so the file goes to the dead
/// letters with the reason.
fn check_csv_cells(bytes: &[u8]) -> PolarsResult<()> {
    crate::csv_cells::check_csv_cells(bytes).map_err(|e| PolarsError::ComputeError(format!("the file has {e}").into()))
}

#[cfg(test)]
mod tests {
    use mlops_core::{ColSpec, ColumnType, Schema};
    use polars::prelude::*;

    use super::{FileFormat, RESCUED_DATA, parse};

    fn schema() -> Schema {
        Schema::new(vec![
            ColSpec::new("CustomerID", ColumnType::Long).nullable(),
            ColSpec::new("Amount", ColumnType::Double).nullable(),
        ])
        .expect("a valid schema")
    }

    fn rescued(frame: &DataFrame) -> Vec<Option<String>> {
        frame.column(RESCUED_DATA).unwrap().str().unwrap().iter().map(|v| v.map(str::to_owned)).collect()
    }

    #[test]
    fn a_wide_header_over_blank_lines_is_refused_before_it_is_read() {
        let header: Vec<String> = (0..2_000).map(|i| format!("c{i}")).collect();
        let file = format!("CustomerID,Amount,{}\n{}", header.join(","), "\n".repeat(200_000));
        for outcome in
            [parse(file.as_bytes(), FileFormat::Csv, &schema()), super::parse_raw(file.as_bytes(), FileFormat::Csv)]
        {
            let error = outcome.unwrap_err().to_string();
            assert!(error.contains("blank lines included"), "{error}");
        }
    }

    #[test]
    fn a_schema_is_inferred_from_the_first_records_only() {
        // Each record a key of its own: read whole, 100,000 columns as tall as the file.
        let file: String = (0..100_000).map(|i| format!("{{\"Amount\": 1.5, \"k{i}\": 1}}\n")).collect();
        let sample = super::parse_raw(file.as_bytes(), FileFormat::JsonLines).unwrap();
        assert_eq!((sample.height(), sample.width()), (100, 101));
        let csv: String = std::iter::once("Amount\n".to_owned()).chain((0..1000).map(|i| format!("{i}\n"))).collect();
        assert_eq!(super::parse_raw(csv.as_bytes(), FileFormat::Csv).unwrap().height(), 100);
    }

    #[test]
    fn csv_columns_are_matched_by_header_name_not_position() {
        let parsed = parse(b"Amount,Extra,CustomerID\n12.5,x,1247\n", FileFormat::Csv, &schema()).unwrap();
        assert_eq!(parsed.column("CustomerID").unwrap().i64().unwrap().get(0), Some(1247));
        assert_eq!(parsed.column("Amount").unwrap().f64().unwrap().get(0), Some(12.5));
        assert_eq!(rescued(&parsed), [None]);
    }

    #[test]
    fn numbers_that_do_not_fit_exactly_are_rescued_not_rounded() {
        let mut file = df!(
            "CustomerID" => [1247.9, 1248.0, f64::NAN],
            "Amount" => [Some(1.5f32), None, Some(f32::NAN)],
        )
        .unwrap();
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut file).unwrap();
        let parsed = parse(&bytes, FileFormat::Parquet, &schema()).unwrap();
        let ids: Vec<Option<i64>> = parsed.column("CustomerID").unwrap().i64().unwrap().iter().collect();
        assert_eq!(ids, [None, Some(1248), None]);
        assert_eq!(parsed.column("Amount").unwrap().f64().unwrap().get(0), Some(1.5));
        assert!(parsed.column("Amount").unwrap().f64().unwrap().get(2).is_some_and(f64::is_nan), "NaN stays NaN");
        let rescued = rescued(&parsed);
        assert!(rescued[0].as_deref().is_some_and(|r| r.contains("1247.9")), "{rescued:?}");
        assert_eq!(rescued[1], None);
    }
}
