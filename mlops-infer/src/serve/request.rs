//! Scoring request bodies as MLflow's scoring server reads them: JSON with exactly one of
//! `dataframe_split`, `dataframe_records`, `instances`, `inputs` (plus `params`), or CSV.

use std::collections::BTreeMap;
use std::io::Cursor;

use mlops_core::{
    Schema, columns_json_to_frame, json_excerpt, records_json_to_frame, split_json_to_frame, tensor_json_to_column,
};
use polars::prelude::{Column, CsvReadOptions, DataFrame, DataType, SerReader};
use serde_json::{Map, Value};

use super::error::ServeError;

/// The JSON keys that carry the input, one per request.
pub const INPUT_FORMATS: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];

/// How a body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Csv,
}

impl BodyFormat {
    /// The format's metric label until the body says more.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }

    /// Reads a `Content-Type` value: `application/json` or `text/csv`, with at most a UTF-8
    /// charset parameter.
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Result<Self, ServeError> {
        let unsupported =
            |why: String| ServeError::new(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, "BAD_REQUEST", why);
        let Some(content_type) = content_type else {
            return Err(unsupported("a Content-Type header is required: application/json or text/csv".into()));
        };
        let mut parts = content_type.split(';').map(str::trim);
        let mime = parts.next().unwrap_or_default().to_ascii_lowercase();
        for parameter in parts.filter(|p| !p.is_empty()) {
            let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            if !key.trim().eq_ignore_ascii_case("charset") {
                return Err(unsupported(format!("unrecognized content type parameter `{}`", key.trim())));
            }
            if !value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8") {
                return Err(unsupported(format!("only UTF-8 bodies are accepted, not charset `{}`", value.trim())));
            }
        }
        match mime.as_str() {
            "application/json" => Ok(Self::Json),
            "text/csv" => Ok(Self::Csv),
            _ => Err(unsupported(format!(
                "this server accepts application/json and text/csv bodies, not `{content_type}`"
            ))),
        }
    }
}

/// A parsed request: the input frame and the parameters given.
#[derive(Debug)]
pub(crate) struct ScoringRequest {
    pub(crate) input: DataFrame,
    pub(crate) params: BTreeMap<String, Value>,
    /// `csv`, or the JSON input field given (one of [`INPUT_FORMATS`]).
    pub(crate) format: &'static str,
}

pub(crate) fn parse(format: BodyFormat, body: &[u8], schema: &Schema) -> Result<ScoringRequest, ServeError> {
    let mut request = match format {
        BodyFormat::Json => parse_json(body, schema)?,
        BodyFormat::Csv => ScoringRequest { input: parse_csv(body, schema)?, params: BTreeMap::new(), format: "csv" },
    };
    if schema.is_tensor_schema() {
        request.input = columns_for_one_tensor(request.input, schema)?;
    }
    if request.input.height() == 0 {
        return Err(ServeError::bad_request("the input has no rows"));
    }
    Ok(request)
}

fn parse_json(body: &[u8], schema: &Schema) -> Result<ScoringRequest, ServeError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| ServeError::malformed(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut object) = document else {
        return Err(ServeError::bad_request(format!(
            "the input must be a JSON object with exactly one of the fields {}",
            INPUT_FORMATS.join(", ")
        )));
    };
    let given: Vec<&str> = INPUT_FORMATS.iter().copied().filter(|k| object.contains_key(*k)).collect();
    let [format] = given.as_slice() else {
        let keys: Vec<&String> = object.keys().collect();
        return Err(ServeError::bad_request(format!(
            "the input must be a JSON object with exactly one of the fields {}; got the fields {keys:?}",
            INPUT_FORMATS.join(", ")
        )));
    };
    let format = *format;
    let params = match object.remove("params") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(params)) => params.into_iter().collect(),
        Some(other) => {
            return Err(ServeError::bad_request(format!(
                "`params` must be a JSON object, not {}",
                json_excerpt(&other)
            )));
        }
    };
    let data = object.remove(format).unwrap_or(Value::Null);
    if schema.is_tensor_schema() && matches!(format, "instances" | "inputs") {
        return Ok(ScoringRequest { input: tensors_to_frame(format, data, schema)?, params, format });
    }
    let input = match (format, data) {
        ("dataframe_split", data) => split_json_to_frame(&data, schema)?,
        ("dataframe_records", Value::Array(records)) => records_json_to_frame(&records, schema)?,
        ("dataframe_records", other) => {
            return Err(ServeError::bad_request(format!(
                "`dataframe_records` must be a list of records, not {}",
                json_excerpt(&other)
            )));
        }
        (_, Value::Object(columns)) => columns_json_to_frame(&columns, schema)?,
        (_, Value::Array(rows)) => instances_to_frame(format, &rows, schema)?,
        (_, other) => {
            return Err(ServeError::bad_request(format!(
                "`{format}` must be a list of records or rows, or an object of columns, not {}",
                json_excerpt(&other)
            )));
        }
    };
    Ok(ScoringRequest { input, params, format })
}

/// `instances` / `inputs` for a model taking tensors: the rows of its only tensor, or an
/// object of tensors by name (as MLflow's scoring server reads them, converting numbers to
/// each tensor's element type).
fn tensors_to_frame(format: &str, data: Value, schema: &Schema) -> Result<DataFrame, ServeError> {
    let tensors = schema.tensors();
    let columns: Vec<Column> = match data {
        Value::Object(named) => tensors
            .iter()
            .filter_map(|t| named.get(t.column_name()).map(|value| tensor_json_to_column(value, t)))
            .collect::<mlops_core::Result<_>>()?,
        rows @ Value::Array(_) => match tensors {
            [only] => vec![tensor_json_to_column(&rows, only)?],
            _ => {
                let names: Vec<&str> = tensors.iter().map(|t| t.column_name()).collect();
                return Err(ServeError::bad_request(format!(
                    "the model takes several tensors ({}): send `{format}` as an object of tensors by name",
                    names.join(", ")
                )));
            }
        },
        other => {
            return Err(ServeError::bad_request(format!(
                "`{format}` must be a list of rows or an object of tensors by name, not {}",
                json_excerpt(&other)
            )));
        }
    };
    let height = columns.first().map_or(0, Column::len);
    if let Some(other) = columns.iter().find(|c| c.len() != height) {
        return Err(ServeError::bad_request(format!(
            "tensor `{}` has {} rows where `{}` has {height}",
            other.name(),
            other.len(),
            columns[0].name()
        )));
    }
    DataFrame::new(height, columns).map_err(|e| ServeError::malformed(e.to_string()))
}

/// A frame's columns for a model whose only input is a tensor it does not name: converted
/// to the tensor's element type, as MLflow's scoring server converts them, to fill it.
fn columns_for_one_tensor(frame: DataFrame, schema: &Schema) -> Result<DataFrame, ServeError> {
    let [only] = schema.tensors() else { return Ok(frame) };
    if frame.column(only.column_name()).is_ok() {
        return Ok(frame);
    }
    let element = only.dtype().polars_dtype();
    let columns = frame
        .columns()
        .iter()
        .map(|c| {
            c.strict_cast(&element).map_err(|_| {
                ServeError::from(mlops_core::Error::Schema {
                    column: c.name().to_string(),
                    expected: format!("{} values for tensor `{}`", only.dtype(), only.column_name()),
                    found: c.dtype().to_string(),
                })
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    DataFrame::new(frame.height(), columns).map_err(|e| ServeError::malformed(e.to_string()))
}

/// `instances` / `inputs` as a list: records (objects), rows (lists in the schema's column
/// order), or scalars for a one-column schema.
fn instances_to_frame(format: &str, rows: &[Value], schema: &Schema) -> Result<DataFrame, ServeError> {
    if rows.iter().all(Value::is_object) {
        return Ok(records_json_to_frame(rows, schema)?);
    }
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
    let mut records = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let values: Vec<Value> = match row {
            Value::Array(values) => values.clone(),
            scalar if names.len() == 1 => vec![scalar.clone()],
            other => {
                return Err(ServeError::bad_request(format!(
                    "`{format}` row {index} must be a record or a list of {} values ({}), not {}",
                    names.len(),
                    names.join(", "),
                    json_excerpt(other)
                )));
            }
        };
        if values.len() != names.len() {
            return Err(ServeError::bad_request(format!(
                "`{format}` row {index} has {} values; the model takes {} ({})",
                values.len(),
                names.len(),
                names.join(", ")
            )));
        }
        records.push(Value::Object(names.iter().map(|n| (*n).to_owned()).zip(values).collect::<Map<_, _>>()));
    }
    Ok(records_json_to_frame(&records, schema)?)
}

/// CSV with a header row. Every value is read as text, then each schema column is cast to
/// its type, so a value that does not fit is reported with its column.
fn parse_csv(body: &[u8], schema: &Schema) -> Result<DataFrame, ServeError> {
    crate::csv_cells::check_csv_cells(body).map_err(|e| ServeError::bad_request(format!("the CSV body has {e}")))?;
    let text = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(Cursor::new(body))
        .finish()
        .map_err(|e| ServeError::malformed(format!("the body is not valid CSV: {e}")))?;
    let mut columns = Vec::with_capacity(text.width());
    for column in text.columns() {
        let Some(spec) = schema.column(column.name()) else {
            columns.push(column.clone());
            continue;
        };
        let target = spec.dtype.polars_dtype();
        let typed = match target {
            DataType::String => column.clone(),
            _ => column.strict_cast(&target).map_err(|_| cast_error(column, &target, spec.dtype))?,
        };
        columns.push(typed);
    }
    DataFrame::new(text.height(), columns).map_err(|e| ServeError::malformed(e.to_string()))
}

/// The schema error for a text column that does not cast to `target`, quoting the first
/// value that fails.
fn cast_error(column: &polars::prelude::Column, target: &DataType, dtype: mlops_core::ColumnType) -> ServeError {
    let lenient = column.cast(target).ok();
    let first_bad = column.str().ok().and_then(|text| {
        let lenient = lenient.as_ref()?;
        let failed = lenient.is_null();
        text.iter().zip(failed.iter()).find_map(|(value, failed)| match (value, failed) {
            (Some(value), Some(true)) => Some(value.to_owned()),
            _ => None,
        })
    });
    ServeError::from(mlops_core::Error::Schema {
        column: column.name().to_string(),
        expected: dtype.to_string(),
        found: first_bad.map_or_else(|| "values of another type".to_owned(), |v| format!("`{v}`")),
    })
}

#[cfg(test)]
mod tests {
    use mlops_core::{ColSpec, ColumnType, Schema};
    use proptest::prelude::*;

    use super::{BodyFormat, parse};

    fn schema() -> Schema {
        Schema::new(vec![ColSpec::new("Product", ColumnType::String), ColSpec::new("Amount", ColumnType::Double)])
            .expect("a valid schema")
    }

    /// The frame a parsed body may hold: no more cells than a small multiple of its bytes
    /// (every cell but the schema's needs a byte of its own), so no body buys a frame far
    /// larger than itself.
    fn cells_allowed(body: &[u8]) -> usize {
        crate::csv_cells::cells_allowed(body.len())
    }

    #[test]
    fn blank_csv_lines_after_a_wide_header_do_not_make_a_square_frame() {
        let header: Vec<String> = (0..2_000).map(|i| format!("c{i}")).collect();
        let body = format!("Product,Amount,{}\n{}", header.join(","), "\n".repeat(200_000));
        // Read as it comes, this 210 KB body was a 400-million-cell frame.
        match parse(BodyFormat::Csv, body.as_bytes(), &schema()) {
            Err(e) => assert!(e.message.contains("blank lines included"), "{e}"),
            Ok(r) => panic!("{} cells from {} bytes", r.input.height() * r.input.width(), body.len()),
        }
        let dense =
            format!("Product,Amount,{}\n{}", header.join(","), format!("A,1{}\n", ",".repeat(2_000)).repeat(50));
        assert_eq!(parse(BodyFormat::Csv, dense.as_bytes(), &schema()).unwrap().input.height(), 50);
    }

    fn csv_body() -> impl Strategy<Value = String> {
        let cell = prop_oneof![
            "[A-C]",
            "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
            Just(String::new()),
            "\"[a-z,\n]{0,4}\"",
            "[^\n]{0,3}"
        ];
        let header = prop::collection::vec(
            prop_oneof![Just("Product".to_owned()), Just("Amount".to_owned()), "[a-z]{1,3}"],
            0..6,
        );
        (header, prop::collection::vec(prop::collection::vec(cell, 0..7), 0..8)).prop_map(|(header, rows)| {
            let mut body = header.join(",");
            for row in rows {
                body.push('\n');
                body.push_str(&row.join(","));
            }
            body
        })
    }

    fn json_body() -> impl Strategy<Value = String> {
        let value = prop_oneof![
            Just("null".to_owned()),
            "-?[0-9]{1,3}(\\.[0-9])?(e[0-9]{1,3})?",
            "\"[A-Cx]{0,3}\"",
            Just("[]".to_owned()),
            Just("{}".to_owned()),
            Just("[1, [2]]".to_owned()),
        ];
        let field = prop_oneof![Just("Product"), Just("Amount"), Just("x"), Just("y")];
        let record = prop::collection::vec((field.clone(), value.clone()), 0..4).prop_map(|fields| {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", fields.join(", "))
        });
        let records =
            prop::collection::vec(prop_oneof![record, value.clone()], 0..6).prop_map(|r| format!("[{}]", r.join(", ")));
        let columns = prop::collection::vec((field, prop::collection::vec(value, 0..4)), 0..3).prop_map(|columns| {
            let columns: Vec<String> = columns.iter().map(|(k, v)| format!("\"{k}\": [{}]", v.join(", "))).collect();
            format!("{{{}}}", columns.join(", "))
        });
        let key = prop_oneof![
            Just("dataframe_records"),
            Just("dataframe_split"),
            Just("instances"),
            Just("inputs"),
            Just("params")
        ];
        (key, prop_oneof![records, columns], prop::option::of("[a-z\"{}:, ]{0,8}")).prop_map(|(key, data, extra)| {
            format!("{{\"{key}\": {data}{}}}", extra.map(|e| format!(", {e}")).unwrap_or_default())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(384))]

        /// Any CSV body is parsed or refused without a panic, into a frame proportional to it.
        #[test]
        fn any_csv_body_is_read_or_refused_in_proportion(body in csv_body()) {
            if let Ok(request) = parse(BodyFormat::Csv, body.as_bytes(), &schema()) {
                prop_assert!(request.input.height() * request.input.width() <= cells_allowed(body.as_bytes()));
            }
        }

        /// Any JSON-shaped body, or any bytes at all, is parsed or refused without a panic.
        #[test]
        fn any_json_body_is_read_or_refused_in_proportion(body in json_body(), noise in prop::collection::vec(any::<u8>(), 0..64)) {
            for body in [body.as_bytes(), &noise] {
                if let Ok(request) = parse(BodyFormat::Json, body, &schema()) {
                    prop_assert!(request.input.height() * request.input.width() <= cells_allowed(body));
                }
                let _ = parse(BodyFormat::Csv, body, &schema());
            }
        }
    }
}
