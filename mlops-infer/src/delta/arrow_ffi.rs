//! Arrays handed between Polars and arrow-rs through the Arrow C data interface, which
//! both crates implement: the buffers are shared, not copied or validated again.
//!
//! This is one of the workspace's two modules with `unsafe` code (the other walks boosted
//! trees with AVX-512 gathers). The two crates
//! define the interface's `ArrowArray` and `ArrowSchema` structs each under its own name
//! (`#[repr(C)]`, the same fields in the same order, as the interface prescribes), so a
//! struct one exports is moved, as it is, into the other's type; and importing trusts the
//! exporter's pointers, where the exporter is always the other crate, just now, in this
//! process. Ownership moves with the struct: the release callback the exporter set frees
//! the buffers once the importer drops the array.

use deltalake::arrow::array::{ArrayRef, make_array};
use deltalake::arrow::datatypes::Field;
use deltalake::arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi, to_ffi};
use polars::prelude::{ArrowDataType, ArrowField, PolarsError};
use polars_arrow::array::Array as PolarsArray;
use polars_arrow::ffi::{
    ArrowArray, ArrowSchema, export_array_to_c, export_field_to_c, import_array_from_c, import_field_from_c,
};

use super::arrow::arrow_error;
use crate::error::{Error, Result};

/// A Polars array as an arrow-rs array over the same buffers.
pub(crate) fn array_to_arrow_rs(array: Box<dyn PolarsArray>) -> Result<ArrayRef> {
    let schema = export_field_to_c(&ArrowField::new("".into(), array.dtype().clone(), true));
    let exported = export_array_to_c(array);
    // SAFETY: the same C struct under two names (see the module docs); the move hands its
    // release callback over with it.
    let (schema, exported) = unsafe {
        (
            std::mem::transmute::<ArrowSchema, FFI_ArrowSchema>(schema),
            std::mem::transmute::<ArrowArray, FFI_ArrowArray>(exported),
        )
    };
    // SAFETY: polars-arrow has just filled both structs as the interface prescribes.
    let data = unsafe { from_ffi(exported, &schema) }.map_err(|e| arrow_error("taking a Polars column", e))?;
    Ok(make_array(data))
}

/// A Polars field (its type) as an arrow-rs field.
pub(crate) fn field_to_arrow_rs(field: &ArrowField) -> Result<Field> {
    let schema = export_field_to_c(field);
    // SAFETY: the same C struct under two names.
    let schema = unsafe { std::mem::transmute::<ArrowSchema, FFI_ArrowSchema>(schema) };
    Field::try_from(&schema).map_err(|e| arrow_error("taking a Polars column's type", e))
}

/// An arrow-rs array as a Polars array over the same buffers.
pub(crate) fn array_to_polars(array: &ArrayRef) -> Result<Box<dyn PolarsArray>> {
    let (exported, schema) = to_ffi(&array.to_data()).map_err(|e| arrow_error("handing a column to Polars", e))?;
    // SAFETY: the same C struct under two names; the move hands its release callback over.
    let (schema, exported) = unsafe {
        (
            std::mem::transmute::<FFI_ArrowSchema, ArrowSchema>(schema),
            std::mem::transmute::<FFI_ArrowArray, ArrowArray>(exported),
        )
    };
    // SAFETY: arrow-rs has just filled both structs as the interface prescribes.
    let field = unsafe { import_field_from_c(&schema) }.map_err(polars_error)?;
    // SAFETY: as above; the type is the one the array was exported with.
    unsafe { import_array_from_c(exported, field.dtype) }.map_err(polars_error)
}

/// An arrow-rs type as Polars' Arrow type.
pub(crate) fn data_type_to_polars(field: &Field) -> Result<ArrowDataType> {
    let schema = FFI_ArrowSchema::try_from(field).map_err(|e| arrow_error("handing a column's type to Polars", e))?;
    // SAFETY: the same C struct under two names.
    let schema = unsafe { std::mem::transmute::<FFI_ArrowSchema, ArrowSchema>(schema) };
    // SAFETY: arrow-rs has just filled the struct as the interface prescribes.
    Ok(unsafe { import_field_from_c(&schema) }.map_err(polars_error)?.dtype)
}

fn polars_error(error: PolarsError) -> Error {
    Error::from(error)
}
