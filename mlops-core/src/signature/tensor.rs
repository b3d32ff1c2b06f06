//! Tensor specs: inputs and outputs that are n-dimensional arrays of one element type, as
//! MLflow's `{"type": "tensor", "tensor-spec": {"dtype": .., "shape": [..]}}` describes them.
//!
//! In a frame, a tensor is one column holding one row per index of its first (batch)
//! dimension: a plain column for shape `[-1]`, and nested fixed-size arrays for the inner
//! dimensions otherwise (`[-1, 3, 32, 32]` is `array[array[array[f32, 32], 32], 3]`).

use std::fmt;

use polars::prelude::{ArrayChunked, Column, DataFrame, DataType, IntoColumn, IntoSeries, ReshapeDimension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The element type of a tensor, named as numpy (and so MLflow's tensor specs) names it.
///
/// A frame holds 8- and 16-bit integers in the 32-bit integer of the same signedness and
/// `float16` in `float32` (see [`polars_dtype`](Self::polars_dtype)); values are checked
/// against the narrow type's range when a tensor column is enforced, and a model is fed
/// the narrow type itself.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TensorType {
    /// `bool`
    #[serde(rename = "bool")]
    Bool,
    /// `int8`, held as `Int32` in a frame
    #[serde(rename = "int8")]
    Int8,
    /// `int16`, held as `Int32` in a frame
    #[serde(rename = "int16")]
    Int16,
    /// `int32`
    #[serde(rename = "int32")]
    Int32,
    /// `int64`
    #[serde(rename = "int64")]
    Int64,
    /// `uint8`, held as `UInt32` in a frame
    #[serde(rename = "uint8")]
    UInt8,
    /// `uint16`, held as `UInt32` in a frame
    #[serde(rename = "uint16")]
    UInt16,
    /// `uint32`
    #[serde(rename = "uint32")]
    UInt32,
    /// `uint64`
    #[serde(rename = "uint64")]
    UInt64,
    /// `float16`, held as `Float32` in a frame (which holds every half-precision value
    /// exactly)
    #[serde(rename = "float16")]
    Float16,
    /// `float32`
    #[serde(rename = "float32")]
    Float32,
    /// `float64`
    #[serde(rename = "float64")]
    Float64,
    /// `str` (numpy's `object` arrays of strings are read as this too)
    #[serde(rename = "str")]
    Str,
    /// `bytes`
    #[serde(rename = "bytes")]
    Bytes,
}

/// Every element type, in the order of its declaration.
const ALL_TENSOR_TYPES: [TensorType; 14] = [
    TensorType::Bool,
    TensorType::Int8,
    TensorType::Int16,
    TensorType::Int32,
    TensorType::Int64,
    TensorType::UInt8,
    TensorType::UInt16,
    TensorType::UInt32,
    TensorType::UInt64,
    TensorType::Float16,
    TensorType::Float32,
    TensorType::Float64,
    TensorType::Str,
    TensorType::Bytes,
];

impl TensorType {
    /// The element type called `name` by numpy (`float32`, `int64`, `str`, `object`, ...).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the type when there is no such element type or its
    /// values cannot be held in a frame here (complex numbers, dates and durations, extended
    /// precision).
    pub fn from_numpy(name: &str) -> Result<Self> {
        if name == "object" {
            return Ok(Self::Str);
        }
        if let Some(dtype) = ALL_TENSOR_TYPES.into_iter().find(|t| t.numpy_name() == name) {
            return Ok(dtype);
        }
        let known = ["complex64", "complex128", "complex256", "float128", "longdouble", "clongdouble"];
        if known.contains(&name) || name.starts_with("datetime64") || name.starts_with("timedelta64") {
            let supported: Vec<&str> = ALL_TENSOR_TYPES.iter().map(|t| t.numpy_name()).collect();
            return Err(Error::InvalidArgument(format!(
                "tensor element type `{name}` is not supported (supported: {})",
                supported.join(", ")
            )));
        }
        Err(Error::InvalidArgument(format!("`{name}` is not a tensor element type")))
    }

    /// The numpy name of the type.
    pub fn numpy_name(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int8 => "int8",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::UInt8 => "uint8",
            Self::UInt16 => "uint16",
            Self::UInt32 => "uint32",
            Self::UInt64 => "uint64",
            Self::Float16 => "float16",
            Self::Float32 => "float32",
            Self::Float64 => "float64",
            Self::Str => "str",
            Self::Bytes => "bytes",
        }
    }

    /// The Polars type a frame holds one element in: the type itself, or for 8- and
    /// 16-bit integers the 32-bit integer of the same signedness, and for `float16`
    /// `Float32` (Polars is built here without its narrow types, which would lengthen
    /// every build of it).
    pub fn polars_dtype(self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::Int8 | Self::Int16 | Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::UInt8 | Self::UInt16 | Self::UInt32 => DataType::UInt32,
            Self::UInt64 => DataType::UInt64,
            Self::Float16 | Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Str => DataType::String,
            Self::Bytes => DataType::Binary,
        }
    }

    /// The values an integer type holds, for the types a frame holds in a wider one.
    pub(crate) fn narrow_range(self) -> Option<(i64, i64)> {
        match self {
            Self::Int8 => Some((i8::MIN.into(), i8::MAX.into())),
            Self::Int16 => Some((i16::MIN.into(), i16::MAX.into())),
            Self::UInt8 => Some((0, u8::MAX.into())),
            Self::UInt16 => Some((0, u16::MAX.into())),
            _ => None,
        }
    }

    /// The element type of Polars type `dtype`, if tensors can hold it.
    pub fn from_polars(dtype: &DataType) -> Option<Self> {
        Some(match dtype {
            DataType::Boolean => Self::Bool,
            DataType::Int32 => Self::Int32,
            DataType::Int64 => Self::Int64,
            DataType::UInt32 => Self::UInt32,
            DataType::UInt64 => Self::UInt64,
            DataType::Float32 => Self::Float32,
            DataType::Float64 => Self::Float64,
            DataType::String => Self::Str,
            DataType::Binary => Self::Bytes,
            _ => return None,
        })
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.numpy_name())
    }
}

/// The column name a frame uses for a tensor spec without a name.
pub const UNNAMED_TENSOR: &str = "input";

/// One tensor input or output: an optional name, an element type and a shape whose first
/// dimension is the batch (`-1`: any number of rows).
///
/// ```
/// use mlops_core::{TensorSpec, TensorType};
/// use polars::prelude::*;
///
/// let spec = TensorSpec::new(Some("pixels"), TensorType::Float32, vec![-1, 2, 2])?;
/// assert_eq!(spec.to_string(), "pixels: float32 tensor of shape (-1, 2, 2)");
///
/// // Four values per row become a column of 2 x 2 arrays.
/// let values = Series::new("pixels".into(), [0.0f32, 0.1, 0.2, 0.3, 1.0, 1.1, 1.2, 1.3]);
/// let column = spec.column_from_values(values, 2)?;
/// assert_eq!(column.dtype(), &spec.polars_dtype());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    name: Option<String>,
    dtype: TensorType,
    shape: Vec<i64>,
}

impl TensorSpec {
    /// A tensor spec.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the tensor for an empty shape, a dimension below
    /// `-1`, or a variable (`-1`) dimension after the first: a frame row must have a fixed
    /// shape.
    pub fn new(name: Option<&str>, dtype: TensorType, shape: Vec<i64>) -> Result<Self> {
        let spec = Self { name: name.map(str::to_owned), dtype, shape };
        let bad = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "tensor `{}` of shape {}: {why}",
                spec.column_name(),
                spec.shape_text()
            )))
        };
        if spec.shape.is_empty() {
            return bad("a tensor needs at least its batch dimension");
        }
        if spec.shape.iter().any(|&d| d < -1) {
            return bad("dimensions are sizes or -1");
        }
        if spec.shape[1..].contains(&-1) {
            return bad("only the first (batch) dimension may be variable");
        }
        if spec.shape[1..]
            .iter()
            .try_fold(1i64, |total, &d| total.checked_mul(d))
            .is_none_or(|n| n > i64::from(u32::MAX))
        {
            return bad("a row would hold more than 2^32 values");
        }
        Ok(spec)
    }

    /// The name, when the spec has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The frame column holding this tensor: its name, or [`UNNAMED_TENSOR`].
    pub fn column_name(&self) -> &str {
        self.name.as_deref().unwrap_or(UNNAMED_TENSOR)
    }

    /// This spec named `name`.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The element type.
    pub fn dtype(&self) -> TensorType {
        self.dtype
    }

    /// The shape, batch dimension first (`-1` for any number of rows).
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// Whether the element type has a missing value (floats: NaN; strings: pandas' None).
    fn carries_missing(&self) -> bool {
        matches!(self.dtype, TensorType::Float16 | TensorType::Float32 | TensorType::Float64 | TensorType::Str)
    }

    /// Checks that flat `values` of a type held wider in a frame fit the narrow type.
    fn check_range(&self, values: &polars::prelude::Series) -> Result<()> {
        let Some((low, high)) = self.dtype.narrow_range() else { return Ok(()) };
        let outside = |value: i64| value < low || value > high;
        let found = match values.dtype() {
            DataType::Int32 => values
                .i32()?
                .iter()
                .enumerate()
                .find_map(|(i, v)| v.map(i64::from).filter(|&v| outside(v)).map(|v| (i, v))),
            DataType::UInt32 => values
                .u32()?
                .iter()
                .enumerate()
                .find_map(|(i, v)| v.map(i64::from).filter(|&v| outside(v)).map(|v| (i, v))),
            _ => None,
        };
        match found {
            None => Ok(()),
            Some((index, value)) => Err(Error::Schema {
                column: self.column_name().to_owned(),
                expected: self.describe(),
                found: format!(
                    "{value} in row {}, outside {}'s range {low}..={high}",
                    index / self.row_len().max(1),
                    self.dtype
                ),
            }),
        }
    }

    /// The number of values in one row: the product of the inner dimensions.
    pub fn row_len(&self) -> usize {
        // `new` checked that the product fits in a u32.
        self.shape[1..].iter().map(|&d| d as usize).product()
    }

    /// The Polars type of the column holding the tensor.
    pub fn polars_dtype(&self) -> DataType {
        self.shape[1..]
            .iter()
            .rev()
            .fold(self.dtype.polars_dtype(), |inner, &d| DataType::Array(Box::new(inner), d as usize))
    }

    fn shape_text(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(i64::to_string).collect();
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) }
    }

    pub(crate) fn describe(&self) -> String {
        format!("{} tensor of shape {}", self.dtype, self.shape_text())
    }

    /// A column of this tensor from `values`, the flat elements of `rows` rows in row-major
    /// order.
    ///
    /// # Errors
    /// [`Error::Schema`] naming the tensor when the values are not `rows` times
    /// [`row_len`](Self::row_len), have another element type, hold nulls that the type
    /// cannot carry (see [`values`](Self::values)) or a value outside a narrow integer
    /// type's range, or when the shape fixes another number of rows.
    pub fn column_from_values(&self, values: polars::prelude::Series, rows: usize) -> Result<Column> {
        let mismatch =
            |found: String| Error::Schema { column: self.column_name().to_owned(), expected: self.describe(), found };
        if values.dtype() != &self.dtype.polars_dtype() {
            return Err(mismatch(format!("{} values", values.dtype())));
        }
        if values.len() != rows.saturating_mul(self.row_len()) {
            return Err(mismatch(format!("{} values for {rows} rows", values.len())));
        }
        if self.shape[0] >= 0 && self.shape[0] as usize != rows {
            return Err(mismatch(format!("{rows} rows")));
        }
        if values.null_count() > 0 && !self.carries_missing() {
            return Err(mismatch("null values".into()));
        }
        self.check_range(&values)?;
        let values = values.with_name(self.column_name().into());
        if self.shape.len() == 1 {
            return Ok(values.into_column());
        }
        if let [_, width] = self.shape[..] {
            // One level of nesting: the values' chunks become the array's, without the
            // general reshape (what a request of a few rows would mostly spend its time on).
            let width = width as usize;
            let values = if width > 1 && values.n_chunks() > 1 { values.rechunk() } else { values };
            let array = ArrayChunked::from_aligned_values(
                values.name().clone(),
                values.dtype(),
                width,
                values.chunks().clone(),
                rows,
            );
            return Ok(array.into_series().into_column());
        }
        let mut dimensions = vec![ReshapeDimension::new(rows as i64)];
        dimensions.extend(self.shape[1..].iter().map(|&d| ReshapeDimension::new(d)));
        Ok(values.reshape_array(&dimensions)?.into_column())
    }

    /// The flat elements of a tensor column, row-major: a column of this spec's type, or a
    /// list column whose rows each hold one row's values, flat.
    ///
    /// # Errors
    /// [`Error::Schema`] naming the tensor for a column of another element type or shape,
    /// with missing values where its element type has none (float tensors carry them, as
    /// NaN, which a frame's null becomes when fed; string tensors too, as pandas object
    /// arrays do; other types do not), or with a value outside a narrow integer type's
    /// range, naming its row.
    pub fn values(&self, column: &Column) -> Result<polars::prelude::Series> {
        let mismatch =
            |found: String| Error::Schema { column: self.column_name().to_owned(), expected: self.describe(), found };
        if self.shape[0] >= 0 && self.shape[0] as usize != column.len() {
            return Err(mismatch(format!("{} rows", column.len())));
        }
        if column.null_count() > 0 {
            return Err(mismatch("null rows".into()));
        }
        let series = column.as_materialized_series();
        let leaves = match column.dtype() {
            dtype if *dtype == self.polars_dtype() => series.get_leaf_array(),
            // A list per row holding the row's values, flat, in row-major order.
            DataType::List(inner) if self.shape.len() >= 2 && **inner == self.dtype.polars_dtype() => {
                let lists = series.list()?;
                let width = self.row_len();
                if let Some((row, len)) = lists
                    .amortized_iter()
                    .enumerate()
                    .find_map(|(row, l)| l.map(|l| l.as_ref().len()).filter(|&n| n != width).map(|n| (row, n)))
                {
                    return Err(mismatch(format!("{len} values in row {row}")));
                }
                series.get_leaf_array()
            }
            other => return Err(mismatch(other.to_string())),
        };
        if leaves.null_count() > 0 && !self.carries_missing() {
            return Err(mismatch("null values".into()));
        }
        if leaves.len() != column.len().saturating_mul(self.row_len()) {
            return Err(mismatch(format!("{} values for {} rows", leaves.len(), column.len())));
        }
        self.check_range(&leaves)?;
        Ok(leaves)
    }

    /// Checks a tensor column: the same type and shape, or a list column that converts to
    /// it, which is converted. For one value per row (`(-1,)`, `(-1, 1)`), a plain column
    /// is cast to the element type and reshaped, as MLflow does with a frame's columns.
    pub(crate) fn enforce_column(&self, column: &Column) -> Result<Column> {
        let element = self.dtype.polars_dtype();
        if self.row_len() == 1 && column.dtype() != &self.polars_dtype() && !column.dtype().is_nested() {
            let cast = if column.dtype() == &element {
                column.clone()
            } else {
                column.strict_cast(&element).map_err(|_| Error::Schema {
                    column: self.column_name().to_owned(),
                    expected: self.describe(),
                    found: format!("{} values that do not convert", column.dtype()),
                })?
            };
            return self.column_from_values(cast.as_materialized_series().clone(), column.len());
        }
        if column.dtype() == &self.polars_dtype() {
            // Validates the rows; the column is already in shape.
            let _ = self.values(column)?;
            return Ok(column.clone());
        }
        let values = self.values(column)?;
        self.column_from_values(values, column.len())
    }

    /// A tensor column made from every column of `frame`, in order, one value per column
    /// and row: MLflow's reading of a frame given to a model whose only input is an unnamed
    /// tensor of shape `(-1, number of columns)`.
    pub(crate) fn stack_columns(&self, frame: &DataFrame) -> Result<Column> {
        let width = frame.width();
        let fits = match self.shape.as_slice() {
            [_] => width == 1,
            [_, w] => *w as usize == width,
            _ => false,
        };
        if !fits {
            return Err(Error::Schema {
                column: self.column_name().to_owned(),
                expected: self.describe(),
                found: format!("a frame of {width} columns (its columns fill the tensor only for shape (-1, {width}))"),
            });
        }
        let element = self.dtype.polars_dtype();
        let columns = frame
            .columns()
            .iter()
            .map(|c| {
                if c.dtype() != &element {
                    return Err(Error::Schema {
                        column: c.name().to_string(),
                        expected: format!("{element} values for {}", self.describe()),
                        found: c.dtype().to_string(),
                    });
                }
                Ok(c.as_materialized_series().clone())
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = frame.height();
        if rows.checked_mul(width).is_none_or(|n| n > polars::prelude::IdxSize::MAX as usize) {
            return Err(Error::InvalidArgument(format!(
                "a frame of {rows} rows and {width} columns is too large for one tensor"
            )));
        }
        let mut column_major = polars::prelude::Series::new_empty(self.column_name().into(), &element);
        for column in &columns {
            column_major.append(column)?;
        }
        // Row-major order: row r holds columns 0..width at r, which sit at c * rows + r.
        let order: Vec<polars::prelude::IdxSize> = (0..rows)
            .flat_map(|row| (0..width).map(move |c| c * rows + row))
            .map(|i| i as polars::prelude::IdxSize)
            .collect();
        let flat = column_major.take_slice(&order)?;
        self.column_from_values(flat, rows)
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.column_name(), self.describe())
    }
}

/// A tensor spec as MLflow writes it: `{"type": "tensor", "tensor-spec": {..}, "name": ..}`.
#[derive(Serialize, Deserialize)]
pub(crate) struct TensorEntry {
    #[serde(rename = "type")]
    kind: TensorKind,
    #[serde(rename = "tensor-spec")]
    spec: TensorShape,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TensorKind {
    Tensor,
}

#[derive(Serialize, Deserialize)]
struct TensorShape {
    dtype: String,
    shape: Vec<i64>,
}

impl TensorEntry {
    pub(crate) fn into_spec(self) -> Result<TensorSpec> {
        TensorSpec::new(self.name.as_deref(), TensorType::from_numpy(&self.spec.dtype)?, self.spec.shape)
    }
}

impl From<&TensorSpec> for TensorEntry {
    fn from(spec: &TensorSpec) -> Self {
        Self {
            kind: TensorKind::Tensor,
            spec: TensorShape { dtype: spec.dtype.numpy_name().to_owned(), shape: spec.shape.clone() },
            name: spec.name.clone(),
        }
    }
}
