//! Frames to Arrow record batches and back, through Arrow IPC streams: one buffer copy per
//! column chunk, no per-row work, every type both sides know.
//!
//! Delta Lake stores timestamps as microseconds in UTC, and Polars here has no time zones:
//! on the way in, zone-less timestamps become microseconds tagged UTC; on the way out, UTC
//! timestamps lose the tag again (the instant is unchanged).

use std::io::Cursor;
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::StreamWriter;
use polars::prelude::{CompatLevel, DataFrame, IpcStreamReader, IpcStreamWriter, SerReader, SerWriter};

use crate::error::{Error, Result};

/// The frame as Arrow record batches with Delta-compatible types.
pub(crate) fn frame_to_batches(frame: &DataFrame) -> Result<Vec<RecordBatch>> {
    Ok(frame_to_arrow(frame)?.1)
}

/// The frame as Arrow record batches with Delta-compatible types, and their schema (which a
/// frame without rows has too).
pub(crate) fn frame_to_arrow(frame: &DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut frame = frame.clone();
    let mut buffer = Vec::new();
    IpcStreamWriter::new(&mut buffer).with_compat_level(CompatLevel::oldest()).finish(&mut frame)?;
    let reader = StreamReader::try_new(Cursor::new(buffer), None).map_err(|e| arrow_error("reading a frame", e))?;
    let schema = retype_schema(&reader.schema(), delta_type);
    let batches = reader
        .map(|batch| retype(&batch.map_err(|e| arrow_error("reading a frame", e))?, delta_type))
        .collect::<Result<_>>()?;
    Ok((schema, batches))
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
    let mut buffer = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut buffer, &target).map_err(|e| arrow_error("writing a frame", e))?;
        for batch in batches {
            let batch = retype(batch, polars_type)?;
            writer.write(&batch).map_err(|e| arrow_error("writing a frame", e))?;
        }
        writer.finish().map_err(|e| arrow_error("writing a frame", e))?;
    }
    Ok(IpcStreamReader::new(Cursor::new(buffer)).finish()?)
}

fn polars_type(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Timestamp(unit, Some(_)) => Some(DataType::Timestamp(*unit, None)),
        // Polars holds strings as views: small and large strings become views when read,
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
