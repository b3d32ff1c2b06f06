//! Series keys: each row's key values as text, and a key shown with its column names.

use polars::prelude::{DataFrame, DataType};

use crate::error::{Error, Result};

pub(super) fn describe(columns: &[String], key: &[String]) -> String {
    columns.iter().zip(key).map(|(c, k)| format!("{c}={k}")).collect::<Vec<_>>().join(", ")
}

/// Each row's series key, its columns' values as text.
pub(super) fn series_keys(frame: &DataFrame, columns: &[String]) -> Result<Vec<Vec<String>>> {
    let mut keys = vec![Vec::with_capacity(columns.len()); frame.height()];
    for name in columns {
        let column = frame.column(name).map_err(|_| Error::MissingColumns { columns: vec![name.clone()] })?;
        if !matches!(column.dtype(), DataType::String | DataType::Int32 | DataType::Int64 | DataType::UInt32) {
            return Err(Error::Schema {
                column: name.clone(),
                expected: "text, i32, i64 or u32 keys".into(),
                found: column.dtype().to_string(),
            });
        }
        let text = column.cast(&DataType::String)?;
        for (row, value) in text.str()?.iter().enumerate() {
            let value = value.ok_or_else(|| Error::Schema {
                column: name.clone(),
                expected: "a key in every row".into(),
                found: format!("null in row {row}"),
            })?;
            keys[row].push(value.to_owned());
        }
    }
    Ok(keys)
}
