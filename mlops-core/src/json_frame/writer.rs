//! Frames written as JSON straight from their columns, without a JSON value per cell: a
//! scoring answer is written once, so building a tree of values to serialize it only
//! allocates.

use polars::prelude::{
    BooleanChunked, DataFrame, DataType, Float32Chunked, Float64Chunked, Int32Chunked, Int64Chunked, Series,
    StringChunked, UInt32Chunked, UInt64Chunked,
};
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};

use super::any_to_json;
use crate::error::{Error, Result};

/// One column's cells by type, each read by its row number.
enum Cells {
    Bool(BooleanChunked),
    Int32(Int32Chunked),
    Int64(Int64Chunked),
    UInt32(UInt32Chunked),
    UInt64(UInt64Chunked),
    Float32(Float32Chunked),
    Float64(Float64Chunked),
    Str(StringChunked),
    /// A struct's fields, and for a struct column with missing rows, which rows are set.
    Struct {
        fields: Vec<(String, Cells)>,
        set: Option<Vec<bool>>,
    },
    /// Lists, arrays, datetimes and nulls, through Polars' values (rare in answers).
    Other(Series),
}

/// Whether a column of `dtype` has a JSON form here.
fn writable(dtype: &DataType) -> bool {
    match dtype {
        DataType::List(inner) | DataType::Array(inner, _) => writable(inner),
        DataType::Struct(fields) => fields.iter().all(|f| writable(f.dtype())),
        DataType::Binary | DataType::BinaryOffset | DataType::Unknown(_) => false,
        _ => true,
    }
}

impl Cells {
    fn of(series: &Series) -> Result<Self> {
        if !writable(series.dtype()) {
            return Err(Error::Schema {
                column: series.name().to_string(),
                expected: "a value that JSON can carry".into(),
                found: series.dtype().to_string(),
            });
        }
        // One chunk, so reading a row is an index.
        let series = series.rechunk();
        Ok(match series.dtype() {
            DataType::Boolean => Self::Bool(series.bool()?.clone()),
            DataType::Int8 | DataType::Int16 => Self::Int32(series.cast(&DataType::Int32)?.i32()?.clone()),
            DataType::Int32 => Self::Int32(series.i32()?.clone()),
            DataType::Int64 => Self::Int64(series.i64()?.clone()),
            DataType::UInt8 | DataType::UInt16 => Self::UInt32(series.cast(&DataType::UInt32)?.u32()?.clone()),
            DataType::UInt32 => Self::UInt32(series.u32()?.clone()),
            DataType::UInt64 => Self::UInt64(series.u64()?.clone()),
            DataType::Float32 => Self::Float32(series.f32()?.clone()),
            DataType::Float64 => Self::Float64(series.f64()?.clone()),
            DataType::String => Self::Str(series.str()?.clone()),
            DataType::Struct(_) => {
                let ca = series.struct_()?;
                let fields = ca
                    .fields_as_series()
                    .iter()
                    .map(|field| Ok((field.name().to_string(), Self::of(field)?)))
                    .collect::<Result<Vec<_>>>()?;
                let set = (series.null_count() > 0)
                    .then(|| series.is_not_null().iter().map(|set| set == Some(true)).collect());
                Self::Struct { fields, set }
            }
            _ => Self::Other(series),
        })
    }
}

/// The cell of a row.
struct Cell<'a>(&'a Cells, usize);

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let row = self.1;
        // Non-finite floats are written as null, as `serde_json` writes them.
        match self.0 {
            Cells::Bool(c) => c.get(row).serialize(serializer),
            Cells::Int32(c) => c.get(row).serialize(serializer),
            Cells::Int64(c) => c.get(row).serialize(serializer),
            Cells::UInt32(c) => c.get(row).serialize(serializer),
            Cells::UInt64(c) => c.get(row).serialize(serializer),
            // As float64, the way MLflow writes a float32 (its shortest float64 digits).
            Cells::Float32(c) => c.get(row).map(f64::from).serialize(serializer),
            Cells::Float64(c) => c.get(row).serialize(serializer),
            Cells::Str(c) => c.get(row).serialize(serializer),
            Cells::Struct { set: Some(set), .. } if !set.get(row).copied().unwrap_or(false) => {
                serializer.serialize_none()
            }
            Cells::Struct { fields, .. } => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, cells) in fields {
                    map.serialize_entry(name, &Cell(cells, row))?;
                }
                map.end()
            }
            Cells::Other(series) => {
                let value = series.get(row).map_err(S::Error::custom)?;
                any_to_json(series.name().as_str(), value).map_err(S::Error::custom)?.serialize(serializer)
            }
        }
    }
}

/// A frame's columns, ready to be written in one of MLflow's orientations.
pub(crate) struct FrameCells {
    names: Vec<String>,
    columns: Vec<Cells>,
    height: usize,
}

impl FrameCells {
    /// # Errors
    /// [`Error::Schema`] for a column whose type has no JSON form here (binary).
    pub(crate) fn new(frame: &DataFrame) -> Result<Self> {
        let columns =
            frame.columns().iter().map(|c| Cells::of(c.as_materialized_series())).collect::<Result<Vec<_>>>()?;
        let names = frame.columns().iter().map(|c| c.name().to_string()).collect();
        Ok(Self { names, columns, height: frame.height() })
    }
}

/// A frame as a list of records, `[{"column": value, ..}, ..]`.
pub(crate) struct Records<'a>(pub(crate) &'a FrameCells);

/// One record of [`Records`].
struct Record<'a>(&'a FrameCells, usize);

impl Serialize for Records<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.height))?;
        for row in 0..self.0.height {
            seq.serialize_element(&Record(self.0, row))?;
        }
        seq.end()
    }
}

impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let frame = self.0;
        let mut map = serializer.serialize_map(Some(frame.columns.len()))?;
        for (name, cells) in frame.names.iter().zip(&frame.columns) {
            map.serialize_entry(name, &Cell(cells, self.1))?;
        }
        map.end()
    }
}

/// A frame as an object of columns, `{"column": [values], ..}`.
pub(crate) struct Columns<'a>(pub(crate) &'a FrameCells);

/// One column of [`Columns`].
struct ColumnValues<'a>(&'a Cells, usize);

impl Serialize for Columns<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let frame = self.0;
        let mut map = serializer.serialize_map(Some(frame.columns.len()))?;
        for (name, cells) in frame.names.iter().zip(&frame.columns) {
            map.serialize_entry(name, &ColumnValues(cells, frame.height))?;
        }
        map.end()
    }
}

impl Serialize for ColumnValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.1))?;
        for row in 0..self.1 {
            seq.serialize_element(&Cell(self.0, row))?;
        }
        seq.end()
    }
}
