//! Frames to Arrow record batches and back, through the Arrow C data interface (see
//! `arrow_ffi`): the buffers are shared, with no per-row work, for every type both sides
//! know.
//!
//! Delta Lake stores timestamps as microseconds in UTC, and Polars here has no time zones:
//! on the way in, zone-less timestamps become microseconds tagged UTC; on the way out, UTC
//! timestamps lose the tag again (the instant is unchanged).

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use polars::prelude::{Column, CompatLevel, DataFrame, IntoColumn, SchemaExt, Series};

use super::arrow_ffi::{array_to_arrow_rs, array_to_polars, data_type_to_polars, field_to_arrow_rs};
use crate::error::{Error, Result};

/// The frame as Arrow record batches with Delta-compatible types.
pub(crate) fn frame_to_batches(frame: &DataFrame) -> Result<Vec<RecordBatch>> {
    Ok(frame_to_arrow(frame)?.1)
}

/// The frame as Arrow record batches with Delta-compatible types, and their schema (which a
/// frame without rows has too).
pub(crate) fn frame_to_arrow(frame: &DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    // Strings and binaries as Arrow's classic arrays, not Polars' views, which Delta Lake
    // readers may not know.
    let compat = CompatLevel::oldest();
    let fields =
        frame.schema().to_arrow(compat).iter_values().map(field_to_arrow_rs).collect::<Result<Vec<Field>>>()?;
    let schema = Arc::new(Schema::new(fields));
    // Without Polars' thread pool: a frame is often one batch of a query already running
    // on a thread of its own, and handing work to the pool would cost more than it saves.
    let mut aligned = frame.clone();
    if aligned.should_rechunk() {
        aligned.align_chunks();
    }
    let batches = aligned
        .iter_chunks(compat, false)
        .map(|chunk| {
            let columns = chunk.into_arrays().into_iter().map(array_to_arrow_rs).collect::<Result<Vec<ArrayRef>>>()?;
            let batch =
                RecordBatch::try_new(Arc::clone(&schema), columns).map_err(|e| arrow_error("reading a frame", e))?;
            retype(&batch, delta_type)
        })
        .collect::<Result<_>>()?;
    Ok((retype_schema(&schema, delta_type), batches))
}

fn delta_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Timestamp(_, None) => Some(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        DataType::LargeUtf8 | DataType::Utf8View => Some(DataType::Utf8),
        _ => None,
    }
}

/// Record batches (all of one schema) as one frame.
pub(crate) fn batches_to_frame(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<DataFrame> {
    let target = retype_schema(schema, polars_type);
    let batches = batches.iter().map(|batch| retype(batch, polars_type)).collect::<Result<Vec<_>>>()?;
    let height = batches.iter().map(RecordBatch::num_rows).sum();
    let columns = target
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let name = field.name().as_str().into();
            let series = if batches.is_empty() {
                let dtype = data_type_to_polars(field)?;
                Series::from_arrow(name, polars_arrow::array::new_empty_array(dtype))?
            } else {
                let chunks = batches.iter().map(|b| array_to_polars(b.column(index))).collect::<Result<Vec<_>>>()?;
                Series::try_from((name, chunks))?
            };
            Ok(series.into_column())
        })
        .collect::<Result<Vec<Column>>>()?;
    let mut frame = DataFrame::new(height, columns)?;
    // One chunk, as frames read from files are: scorers take columns as slices.
    if batches.len() > 1 {
        frame.rechunk_mut();
    }
    Ok(frame)
}

fn polars_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Timestamp(unit, Some(_)) => Some(DataType::Timestamp(*unit, None)),
        // Polars holds strings as views: small and large strings become views when taken,
        // while views are taken as they are.
        _ => None,
    }
}

fn retype_schema(schema: &Schema, change: impl Fn(&DataType) -> Option<DataType>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match change(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn retype(batch: &RecordBatch, change: impl Fn(&DataType) -> Option<DataType>) -> Result<RecordBatch> {
    let schema = retype_schema(&batch.schema(), &change);
    let columns = batch
        .columns()
        .iter()
        .map(|column| match change(column.data_type()) {
            Some(t) => cast(column, &t).map_err(|e| arrow_error("converting a column", e)),
            None => Ok(Arc::clone(column)),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(schema, columns).map_err(|e| arrow_error("converting a frame", e))
}

pub(crate) fn arrow_error(context: &str, error: deltalake::arrow::error::ArrowError) -> Error {
    Error::Arrow { context: context.to_owned(), source: error }
}
