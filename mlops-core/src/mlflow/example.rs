//! Input examples as MLflow stores them (`input_example.json`).

use polars::prelude::DataFrame;
use serde_json::{Map, Value};

use super::mlmodel::InputExampleInfo;
use crate::error::{Error, Result};

use crate::json_frame::{records_json_to_frame, split_json_to_frame, tensor_json_to_column};
use crate::signature::Schema;

/// JSON as Python's `json` module writes it, which allows `NaN`, `Infinity` and
/// `-Infinity` (MLflow's input examples hold them for missing values): those tokens become
/// `null`, a missing value in every column type.
pub(crate) fn parse_python_json(bytes: &[u8], what: &str) -> Result<Value> {
    let mut text = Vec::with_capacity(bytes.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            text.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let rest = &bytes[i..];
        let token = [&b"-Infinity"[..], b"Infinity", b"NaN"].into_iter().find(|t| rest.starts_with(t));
        match (b, token) {
            (b'"', _) => {
                in_string = true;
                text.push(b);
                i += 1;
            }
            (_, Some(token)) => {
                text.extend_from_slice(b"null");
                i += token.len();
            }
            _ => {
                text.push(b);
                i += 1;
            }
        }
    }
    serde_json::from_slice(&text).map_err(|e| Error::json(what, e))
}

/// The example `document` described by `info`, typed by `inputs`; `None` for kinds that are
/// no frame (`json_object`, sparse matrices).
pub(crate) fn read_input_example(
    info: &InputExampleInfo,
    document: &Value,
    inputs: &Schema,
) -> Result<Option<DataFrame>> {
    let bad = |why: String| Error::InvalidPackage(format!("input example `{}`: {why}", info.artifact_path));
    match info.kind.as_str() {
        "dataframe" => match info.pandas_orient.as_deref().unwrap_or("split") {
            "split" => Ok(Some(split_json_to_frame(document, inputs)?)),
            "values" => {
                let rows = document.as_array().ok_or_else(|| bad("`values` orient must be a list of rows".into()))?;
                let names: Vec<&str> = inputs.columns().iter().map(|c| c.name.as_str()).collect();
                let records = rows
                    .iter()
                    .enumerate()
                    .map(|(index, row)| {
                        let values = row.as_array().filter(|v| v.len() == names.len()).ok_or_else(|| {
                            bad(format!(
                                "row {index} must be a list of {} values, one per signature column",
                                names.len()
                            ))
                        })?;
                        Ok(Value::Object(
                            names.iter().map(|n| (*n).to_owned()).zip(values.iter().cloned()).collect::<Map<_, _>>(),
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Some(records_json_to_frame(&records, inputs)?))
            }
            other => Err(bad(format!("pandas orient `{other}` is not supported"))),
        },
        "ndarray" if inputs.is_tensor_schema() => {
            let columns = match (document, inputs.tensors()) {
                (Value::Object(named), tensors) => tensors
                    .iter()
                    .map(|t| {
                        let value = named
                            .get(t.column_name())
                            .or_else(|| t.name().is_none().then(|| named.values().next()).flatten())
                            .ok_or_else(|| bad(format!("no values for tensor `{}`", t.column_name())))?;
                        tensor_json_to_column(value, t)
                    })
                    .collect::<Result<Vec<_>>>()?,
                (value, [only]) => vec![tensor_json_to_column(value, only)?],
                _ => return Err(bad("an array example for a model of several tensors".into())),
            };
            let height = columns.first().map_or(0, polars::prelude::Column::len);
            Ok(Some(DataFrame::new(height, columns)?))
        }
        // An array example for a model with column inputs: rows in signature order.
        "ndarray" => {
            let info =
                InputExampleInfo { kind: "dataframe".into(), pandas_orient: Some("values".into()), ..info.clone() };
            read_input_example(&info, document, inputs)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_tokens_become_nulls_outside_strings() {
        let text = br#"{"a": NaN, "s": "NaN \" Infinity", "b": [-Infinity, 1.5, Infinity]}"#;
        let value = parse_python_json(text, "example").unwrap();
        assert_eq!(value, serde_json::json!({"a": null, "s": "NaN \" Infinity", "b": [null, 1.5, null]}));
        assert!(parse_python_json(b"{\"a\": Nope}", "example").is_err());
    }
}
