//! Frames into graph inputs, the way MLflow's pyfunc feeds an ONNX graph: one input per
//! column (or tensor) of the same name, or, for a graph with a single input, every
//! signature column side by side; float64 values become float32 for a float input. Narrow
//! integers and half floats, which a frame holds in wider types, are fed as the graph's own
//! type.

use std::collections::BTreeMap;
use std::sync::Arc;

use polars::prelude::{Column, DataFrame, DataType, Series};
use tract_onnx::prelude::*;

use super::encode::Codes;
use super::graph::Port;
use crate::error::{Error, Result};
use crate::signature::Schema;

/// Where a graph input's values come from.
#[derive(Debug, Clone)]
enum Source {
    /// One column: a scalar column, or a tensor column whose rows hold the input's rows.
    Column(String),
    /// Several scalar columns, one value each per row, in this order.
    Columns(Vec<String>),
}

/// How one graph input is filled.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    name: String,
    dtype: DatumType,
    /// The dimensions after the batch.
    inner: Vec<usize>,
    source: Source,
    /// For a string input the graph takes as category codes, each string's code.
    codes: Option<Arc<Codes>>,
}

fn mismatch(why: String) -> Error {
    Error::InvalidPackage(format!("the signature does not fit the ONNX graph: {why}"))
}

/// The element types a graph input of type `graph` accepts from a frame column of type
/// `frame` (MLflow's pyfunc casts float64 to float32 and nothing else; the narrow types
/// are those a frame holds wider).
fn accepts(graph: DatumType, frame: &DataType) -> bool {
    matches!(
        (graph, frame),
        (DatumType::F32, DataType::Float32 | DataType::Float64)
            | (DatumType::F64, DataType::Float64 | DataType::Float32)
            | (DatumType::F16, DataType::Float32)
            | (DatumType::I64, DataType::Int64 | DataType::Int32)
            | (DatumType::I32 | DatumType::I16 | DatumType::I8, DataType::Int32)
            | (DatumType::U32 | DatumType::U16 | DatumType::U8, DataType::UInt32)
            | (DatumType::Bool, DataType::Boolean)
            | (DatumType::String, DataType::String)
    )
}

fn element_of(dtype: &DataType) -> &DataType {
    match dtype {
        DataType::Array(inner, _) => element_of(inner),
        other => other,
    }
}

impl Feed {
    /// Plans the feeding of `inputs` (the graph's) from frames conforming to `schema`.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] naming the graph input and the signature entry when they
    /// cannot meet: no column of that name (for a graph of several inputs), another number
    /// of values per row, or an element type pyfunc would not convert.
    pub(crate) fn plan(
        inputs: &[Port],
        inner: &[Vec<usize>],
        schema: &Schema,
        encoded: &BTreeMap<String, Codes>,
    ) -> Result<Vec<Self>> {
        let entries: Vec<(String, DataType, usize)> = if schema.is_tensor_schema() {
            schema.tensors().iter().map(|t| (t.column_name().to_owned(), t.polars_dtype(), t.row_len())).collect()
        } else {
            schema.columns().iter().map(|c| (c.name.clone(), c.dtype.polars_dtype(), 1)).collect()
        };
        let mut feeds = Vec::with_capacity(inputs.len());
        for (port, inner) in inputs.iter().zip(inner) {
            let dtype = port.dtype.ok_or_else(|| mismatch(format!("input `{}` has no tensor type", port.name)))?;
            let codes = encoded.get(&port.name).map(|c| Arc::new(c.clone()));
            let per_row = inner
                .iter()
                .try_fold(1usize, |product, &d| product.checked_mul(d))
                .ok_or_else(|| mismatch(format!("input `{}` has more values per row than memory holds", port.name)))?;
            let named = entries.iter().find(|(name, _, _)| *name == port.name);
            let (source, given, types): (Source, usize, Vec<(&str, &DataType)>) = match named {
                Some((name, dtype, len)) => (Source::Column(name.clone()), *len, vec![(name.as_str(), dtype)]),
                None if inputs.len() == 1 && entries.len() == 1 => {
                    let (name, dtype, len) = &entries[0];
                    (Source::Column(name.clone()), *len, vec![(name.as_str(), dtype)])
                }
                None if inputs.len() == 1 && !entries.is_empty() && entries.iter().all(|(_, _, len)| *len == 1) => (
                    Source::Columns(entries.iter().map(|(n, _, _)| n.clone()).collect()),
                    entries.len(),
                    entries.iter().map(|(n, d, _)| (n.as_str(), d)).collect(),
                ),
                None => {
                    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
                    return Err(mismatch(format!(
                        "the graph's input `{}` is not among the signature's inputs ({})",
                        port.name,
                        names.join(", ")
                    )));
                }
            };
            if given != per_row {
                return Err(mismatch(format!(
                    "input `{}` takes {per_row} value{} per row; the signature gives {given} ({})",
                    port.name,
                    if per_row == 1 { "" } else { "s" },
                    types.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                )));
            }
            for (name, frame_type) in &types {
                let element = element_of(frame_type);
                if !accepts(dtype, element) {
                    return Err(mismatch(format!(
                        "`{name}` holds {element} values; the graph's input `{}` takes {dtype:?}",
                        port.name
                    )));
                }
            }
            let dtype = if codes.is_some() { DatumType::I64 } else { dtype };
            feeds.push(Feed { name: port.name.clone(), dtype, inner: inner.clone(), source, codes });
        }
        Ok(feeds)
    }

    /// The input tensor for the rows of `frame` (already enforced by the signature).
    ///
    /// # Errors
    /// [`Error::Schema`] naming the column for a missing value that the input cannot
    /// carry (an integer or boolean null).
    pub(crate) fn tensor(&self, frame: &DataFrame) -> Result<Tensor> {
        let rows = frame.height();
        let columns: Vec<&Column> = match &self.source {
            Source::Column(name) => vec![frame.column(name)?],
            Source::Columns(names) => names.iter().map(|n| frame.column(n)).collect::<std::result::Result<_, _>>()?,
        };
        let leaves: Vec<Series> = columns.iter().map(|c| c.as_materialized_series().get_leaf_array()).collect();
        let mut shape = Vec::with_capacity(self.inner.len() + 1);
        shape.push(rows);
        shape.extend(&self.inner);
        if let Some(codes) = &self.codes {
            return self.shaped(&shape, interleave(&leaves, rows, |s| category_codes(s, codes))?);
        }
        match self.dtype {
            DatumType::F32 => self.shaped(&shape, interleave(&leaves, rows, floats32)?),
            DatumType::F64 => self.shaped(&shape, interleave(&leaves, rows, floats64)?),
            DatumType::I64 => self.shaped(&shape, interleave(&leaves, rows, ints64)?),
            DatumType::I32 => self.shaped(&shape, interleave(&leaves, rows, ints32)?),
            DatumType::I16 => self.shaped(&shape, interleave(&leaves, rows, narrow::<i16>)?),
            DatumType::I8 => self.shaped(&shape, interleave(&leaves, rows, narrow::<i8>)?),
            DatumType::U32 => self.shaped(&shape, interleave(&leaves, rows, narrow::<u32>)?),
            DatumType::U16 => self.shaped(&shape, interleave(&leaves, rows, narrow::<u16>)?),
            DatumType::U8 => self.shaped(&shape, interleave(&leaves, rows, narrow::<u8>)?),
            DatumType::F16 => self.shaped(&shape, interleave(&leaves, rows, halves)?),
            DatumType::Bool => self.shaped(&shape, interleave(&leaves, rows, booleans)?),
            DatumType::String => self.shaped(&shape, interleave(&leaves, rows, strings)?),
            other => {
                Err(Error::Tensor(format!("ONNX input `{}` of type {other:?} cannot be fed from a frame", self.name)))
            }
        }
    }

    /// `values` as a tensor of `shape`, moved rather than copied.
    fn shaped<T: Datum>(&self, shape: &[usize], values: Vec<T>) -> Result<Tensor> {
        tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), values)
            .map(IntoTensor::into_tensor)
            .map_err(|e| Error::Tensor(format!("building ONNX input `{}`: {e}", self.name)))
    }
}

/// The values of `columns`, each `len / columns` per row, side by side row after row.
fn interleave<T: Clone + Default>(
    columns: &[Series],
    rows: usize,
    read: impl Fn(&Series) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    if let [only] = columns {
        return read(only);
    }
    let width = columns.len();
    let mut out = vec![T::default(); rows * width];
    for (c, column) in columns.iter().enumerate() {
        for (row, value) in read(column)?.into_iter().enumerate() {
            out[row * width + c] = value;
        }
    }
    Ok(out)
}

fn null_error(series: &Series, what: &str) -> Error {
    let row = series.is_null().iter().position(|n| n == Some(true)).unwrap_or_default();
    Error::Schema {
        column: series.name().to_string(),
        expected: format!("{what} without missing values"),
        found: format!("null in row {row}"),
    }
}

/// Float values, missing ones as NaN (what pandas makes of them).
fn floats32(series: &Series) -> Result<Vec<f32>> {
    if series.dtype() == &DataType::Float32
        && let Ok(values) = series.f32()?.cont_slice()
    {
        return Ok(values.to_vec());
    }
    Ok(match series.dtype() {
        DataType::Float32 => series.f32()?.iter().map(|v| v.unwrap_or(f32::NAN)).collect(),
        _ => series.f64()?.iter().map(|v| v.map_or(f32::NAN, |v| v as f32)).collect(),
    })
}

fn floats64(series: &Series) -> Result<Vec<f64>> {
    if series.dtype() == &DataType::Float64
        && let Ok(values) = series.f64()?.cont_slice()
    {
        return Ok(values.to_vec());
    }
    Ok(match series.dtype() {
        DataType::Float32 => series.f32()?.iter().map(|v| v.map_or(f64::NAN, f64::from)).collect(),
        _ => series.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
    })
}

fn ints64(series: &Series) -> Result<Vec<i64>> {
    if series.null_count() > 0 {
        return Err(null_error(series, "integers"));
    }
    Ok(match series.dtype() {
        DataType::Int32 => series.i32()?.into_no_null_iter().map(i64::from).collect(),
        _ => series.i64()?.into_no_null_iter().collect(),
    })
}

fn ints32(series: &Series) -> Result<Vec<i32>> {
    if series.null_count() > 0 {
        return Err(null_error(series, "integers"));
    }
    Ok(series.i32()?.into_no_null_iter().collect())
}

/// Integers a frame holds in a wider type, fed as `N`: the signature checked their range,
/// and a value outside it is still an error naming the column and the value, never a
/// wrapped one.
fn narrow<N: TryFrom<i64>>(series: &Series) -> Result<Vec<N>> {
    if series.null_count() > 0 {
        return Err(null_error(series, "integers"));
    }
    let wide = series.cast(&DataType::Int64)?;
    wide.i64()?
        .into_no_null_iter()
        .enumerate()
        .map(|(index, v)| {
            N::try_from(v).map_err(|_| Error::Schema {
                column: series.name().to_string(),
                expected: format!("integers of the graph input's type ({})", std::any::type_name::<N>()),
                found: format!("{v} (element {index} of the flat values)"),
            })
        })
        .collect()
}

/// Half floats, rounded to the nearest (ties to even) as numpy's `astype(float16)` does;
/// missing ones as NaN.
fn halves(series: &Series) -> Result<Vec<f16>> {
    Ok(series.f32()?.iter().map(|v| v.map_or(f16::NAN, f16::from_f32)).collect())
}

fn booleans(series: &Series) -> Result<Vec<bool>> {
    if series.null_count() > 0 {
        return Err(null_error(series, "booleans"));
    }
    Ok(series.bool()?.iter().map(|v| v.unwrap_or_default()).collect())
}

/// Strings; a missing one is `nan`, the category skl2onnx gives scikit-learn's missing
/// value (`str(np.nan)`), so a null scores as scikit-learn scored `None`.
fn strings(series: &Series) -> Result<Vec<String>> {
    Ok(series.str()?.iter().map(|v| v.unwrap_or("nan").to_owned()).collect())
}

/// Each string's category code, `-1` for an unknown one; a missing string is `nan`, as
/// [`strings`] feeds it.
fn category_codes(series: &Series, codes: &Codes) -> Result<Vec<i64>> {
    Ok(series.str()?.iter().map(|v| codes.get(v.unwrap_or("nan")).copied().unwrap_or(-1)).collect())
}
