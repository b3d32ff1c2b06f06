//! Graph outputs into frame columns, shaped as MLflow's pyfunc returns them: one column per
//! output, named after it; ZipMap probabilities as one field per class label.

use polars::prelude::{Column, IntoColumn, NamedFrom, ReshapeDimension, Series, StructChunked};
use tract_onnx::prelude::*;

use super::graph::ZipMapLabels;
use crate::error::{Error, Result};

/// The column for output `name` of `rows` rows. `keep_shape` keeps `[N, 1]` outputs as
/// one-element arrays (pyfunc's answer to tensor inputs) instead of values (its answer to
/// a frame, which it flattens).
pub(crate) fn output_column(
    name: &str,
    tensor: &Tensor,
    rows: usize,
    zipmap: Option<&ZipMapLabels>,
    keep_shape: bool,
) -> Result<Column> {
    let shape = tensor.shape();
    if shape.first().copied().unwrap_or(1) != rows || (shape.is_empty() && rows != 1) {
        return Err(Error::Tensor(format!("ONNX output `{name}` has shape {shape:?} for {rows} input rows")));
    }
    if let Some(labels) = zipmap {
        return zipmap_column(name, tensor, rows, labels);
    }
    let values = flat_series(name, tensor)?;
    let inner: Vec<usize> = shape.iter().skip(1).copied().collect();
    if inner.is_empty() || (!keep_shape && inner.iter().product::<usize>() == 1) {
        return Ok(values.into_column());
    }
    let mut dimensions = vec![ReshapeDimension::new(rows as i64)];
    dimensions.extend(inner.iter().map(|&d| ReshapeDimension::new(d as i64)));
    Ok(values.reshape_array(&dimensions)?.into_column())
}

fn flat_series(name: &str, tensor: &Tensor) -> Result<Series> {
    // tract computes integer outputs derived from shapes (a Cast to int64 of a label, say)
    // as its symbolic dimension type, which is an int64; narrow types are held wider in
    // frames, as the signature's tensor types say.
    let widened = match tensor.datum_type() {
        DatumType::TDim => Some(DatumType::I64),
        DatumType::I8 | DatumType::I16 => Some(DatumType::I32),
        DatumType::U8 | DatumType::U16 => Some(DatumType::U32),
        DatumType::F16 => Some(DatumType::F32),
        _ => None,
    };
    if let Some(wide) = widened {
        let wide = tensor.cast_to_dt(wide).map_err(|e| Error::Tensor(format!("reading ONNX output `{name}`: {e}")))?;
        return flat_series(name, &wide);
    }
    let name = name.into();
    let plain = tensor.try_as_plain_ram().map_err(|e| Error::Tensor(e.to_string()))?;
    let read = |e: TractError| Error::Tensor(format!("reading ONNX output: {e}"));
    Ok(match tensor.datum_type() {
        DatumType::F32 => Series::new(name, plain.as_slice::<f32>().map_err(read)?),
        DatumType::F64 => Series::new(name, plain.as_slice::<f64>().map_err(read)?),
        DatumType::I64 => Series::new(name, plain.as_slice::<i64>().map_err(read)?),
        DatumType::I32 => Series::new(name, plain.as_slice::<i32>().map_err(read)?),
        DatumType::U32 => Series::new(name, plain.as_slice::<u32>().map_err(read)?),
        DatumType::U64 => Series::new(name, plain.as_slice::<u64>().map_err(read)?),
        DatumType::Bool => Series::new(name, plain.as_slice::<bool>().map_err(read)?),
        DatumType::String => Series::new(name, plain.as_slice::<String>().map_err(read)?),
        other => return Err(Error::Tensor(format!("ONNX output of type {other:?} has no column type here"))),
    })
}

/// `[N, C]` probabilities as a struct column with one float field per class label, in the
/// order of onnxruntime's map (labels sorted), named as MLflow's JSON names them.
fn zipmap_column(name: &str, tensor: &Tensor, rows: usize, labels: &ZipMapLabels) -> Result<Column> {
    let classes = match labels {
        ZipMapLabels::Ints(v) => v.len(),
        ZipMapLabels::Strings(v) => v.len(),
    };
    if tensor.shape() != [rows, classes] || tensor.datum_type() != DatumType::F32 {
        return Err(Error::Tensor(format!(
            "ZipMap output `{name}` takes float probabilities of shape [{rows}, {classes}], got {:?} of shape {:?}",
            tensor.datum_type(),
            tensor.shape()
        )));
    }
    let values = tensor
        .try_as_plain_ram()
        .and_then(|p| p.as_slice::<f32>().map(<[f32]>::to_vec))
        .map_err(|e| Error::Tensor(e.to_string()))?;
    let mut order: Vec<(String, usize)> = match labels {
        ZipMapLabels::Ints(v) => {
            let mut keyed: Vec<(i64, usize)> = v.iter().copied().zip(0..).collect();
            keyed.sort();
            keyed.into_iter().map(|(k, i)| (k.to_string(), i)).collect()
        }
        ZipMapLabels::Strings(v) => {
            let mut keyed: Vec<(String, usize)> = v.iter().cloned().zip(0..).collect();
            keyed.sort();
            keyed
        }
    };
    // A label listed twice keeps its last column, as a map insertion does.
    order.reverse();
    order.dedup_by(|a, b| a.0 == b.0);
    order.reverse();
    let fields: Vec<Column> = order
        .iter()
        .map(|(label, index)| {
            let column: Vec<f32> = (0..rows).map(|row| values[row * classes + index]).collect();
            Series::new(label.as_str().into(), column).into_column()
        })
        .collect();
    Ok(StructChunked::from_columns(name.into(), rows, &fields)?.into_column())
}
