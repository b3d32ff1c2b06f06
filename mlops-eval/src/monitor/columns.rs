//! Monitored columns read once into flat buffers that windows index by row number.

use std::collections::HashMap;

use polars::prelude::{Column, DataType};

use crate::error::{Error, Result};

/// How a column is profiled and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Summary statistics, quantile bins, KS and Wasserstein.
    Numeric,
    /// Category counts.
    Categorical,
}

impl Kind {
    /// `None` for types that are not monitored (times, lists, structs).
    pub(crate) fn of(dtype: &DataType) -> Option<Self> {
        if dtype.is_primitive_numeric() {
            Some(Self::Numeric)
        } else if matches!(dtype, DataType::String | DataType::Boolean) {
            Some(Self::Categorical)
        } else {
            None
        }
    }
}

/// Marks a missing category in [`Values::Categorical`] codes.
pub(crate) const MISSING: u32 = u32::MAX;

/// A column's values, missing ones (null, and NaN for numbers) marked in place.
pub(crate) enum Values {
    /// NaN marks a missing value.
    Numeric(Vec<f64>),
    /// Codes into the shared [`Categories`]; [`MISSING`] marks a missing value.
    Categorical(Vec<u32>),
}

/// The categories seen in a column, in the baseline and the monitored frame alike, so both
/// count into the same positions.
#[derive(Debug, Default)]
pub(crate) struct Categories {
    names: Vec<String>,
    codes: HashMap<String, u32>,
}

impl Categories {
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    fn code(&mut self, name: &str) -> u32 {
        if let Some(code) = self.codes.get(name) {
            return *code;
        }
        let code = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.codes.insert(name.to_owned(), code);
        code
    }
}

pub(crate) fn schema_error(column: &str, expected: &str, found: impl Into<String>) -> Error {
    Error::Core(mlops_core::Error::Schema {
        column: column.to_owned(),
        expected: expected.to_owned(),
        found: found.into(),
    })
}

/// Reads `column` as `kind`; categories are added to `categories`.
pub(crate) fn read(column: &Column, kind: Kind, categories: &mut Categories) -> Result<Values> {
    let name = column.name().as_str();
    if Kind::of(column.dtype()) != Some(kind) {
        let expected = match kind {
            Kind::Numeric => "numeric values, as in the other frame",
            Kind::Categorical => "text or boolean values, as in the other frame",
        };
        return Err(schema_error(name, expected, column.dtype().to_string()));
    }
    match kind {
        Kind::Numeric => numbers(column).map(Values::Numeric),
        Kind::Categorical => {
            let text = column.cast(&DataType::String)?;
            let mut out = Vec::with_capacity(text.len());
            // Inference tables repeat values in runs; the last code is reused without hashing.
            let mut last: Option<(&str, u32)> = None;
            for value in text.str()?.iter() {
                let code = match (value, last) {
                    (None, _) => MISSING,
                    (Some(v), Some((previous, code))) if v == previous => code,
                    (Some(v), _) => {
                        let code = categories.code(v);
                        last = Some((v, code));
                        code
                    }
                };
                out.push(code);
            }
            Ok(Values::Categorical(out))
        }
    }
}

/// A numeric column as `f64`, NaN for null.
pub(crate) fn numbers(column: &Column) -> Result<Vec<f64>> {
    let values = column.cast(&DataType::Float64)?;
    let values = values.f64()?;
    let mut out = Vec::with_capacity(values.len());
    for chunk in values.downcast_iter() {
        match chunk.validity() {
            None => out.extend_from_slice(chunk.values()),
            Some(_) => out.extend(chunk.iter().map(|v| v.copied().unwrap_or(f64::NAN))),
        }
    }
    Ok(out)
}

/// Binary labels (booleans or integers 0/1) as `Some(bool)`, numeric labels as numbers;
/// a null label is a row not labeled yet.
pub(crate) enum Labels {
    Binary(Vec<Option<bool>>),
    Numeric(Vec<f64>),
}

impl Labels {
    pub(crate) fn read_binary(column: &Column) -> Result<Self> {
        let name = column.name().as_str();
        if column.dtype() == &DataType::Boolean {
            return Ok(Self::Binary(column.bool()?.iter().collect()));
        }
        if !column.dtype().is_integer() {
            return Err(schema_error(name, "binary labels 0/1 or booleans", column.dtype().to_string()));
        }
        let values = column.cast(&DataType::Int64)?;
        values
            .i64()?
            .iter()
            .enumerate()
            .map(|(row, v)| match v {
                None => Ok(None),
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                Some(other) => {
                    Err(schema_error(name, "binary labels 0/1 or booleans", format!("{other} in row {row}")))
                }
            })
            .collect::<Result<Vec<_>>>()
            .map(Self::Binary)
    }

    pub(crate) fn read_numeric(column: &Column) -> Result<Self> {
        if !column.dtype().is_primitive_numeric() {
            return Err(schema_error(column.name(), "numeric labels", column.dtype().to_string()));
        }
        numbers(column).map(Self::Numeric)
    }
}
