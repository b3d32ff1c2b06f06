//! Input/output schemas and their enforcement on frames, following MLflow's rules.

mod tensor;

use std::collections::BTreeMap;
use std::fmt;

use polars::prelude::{Column, DataFrame, DataType, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use tensor::{TensorSpec, TensorType, UNNAMED_TENSOR};

/// A column type, named as in MLflow's signatures.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// `bool`
    Boolean,
    /// 32-bit signed integer.
    Integer,
    /// 64-bit signed integer.
    Long,
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// UTF-8 string.
    String,
    /// Raw bytes.
    Binary,
    /// Timestamp (any precision, no time zone conversion).
    Datetime,
}

impl ColumnType {
    /// The Polars type a column of this type has after enforcement.
    pub fn polars_dtype(self) -> DataType {
        match self {
            Self::Boolean => DataType::Boolean,
            Self::Integer => DataType::Int32,
            Self::Long => DataType::Int64,
            Self::Float => DataType::Float32,
            Self::Double => DataType::Float64,
            Self::String => DataType::String,
            Self::Binary => DataType::Binary,
            Self::Datetime => DataType::Datetime(TimeUnit::Milliseconds, None),
        }
    }

    /// The column type for a Polars type, if the signature vocabulary has one.
    pub fn from_polars(dtype: &DataType) -> Option<Self> {
        Some(match dtype {
            DataType::Boolean => Self::Boolean,
            DataType::Int32 => Self::Integer,
            DataType::Int64 | DataType::UInt32 => Self::Long,
            DataType::Float32 => Self::Float,
            DataType::Float64 => Self::Double,
            DataType::String => Self::String,
            DataType::Binary => Self::Binary,
            DataType::Datetime(_, _) => Self::Datetime,
            _ => return None,
        })
    }

    /// Whether a column of Polars type `found` may be used where this type is expected.
    /// Returns the cast to apply, `None` for "as is", or an error string for "incompatible".
    ///
    /// Mirrors MLflow: the same kind and no narrower; unsigned into a strictly wider signed
    /// integer; 32-bit integers into double; f32 into double; dates into datetimes. Nothing that can lose
    /// information or reinterpret text.
    fn accepts(self, found: &DataType) -> Acceptance {
        use DataType as D;
        match (self, found) {
            (Self::Datetime, D::Datetime(_, _)) => Acceptance::AsIs,
            // A date is the datetime of its midnight: nothing is lost.
            (Self::Datetime, D::Date) => Acceptance::Cast,
            (_, found) if *found == self.polars_dtype() => Acceptance::AsIs,
            (Self::Long, D::Int32 | D::UInt32) | (Self::Double, D::Int32 | D::UInt32 | D::Float32) => Acceptance::Cast,
            _ => Acceptance::Incompatible,
        }
    }
}

enum Acceptance {
    AsIs,
    Cast,
    Incompatible,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Long => "long",
            Self::Float => "float",
            Self::Double => "double",
            Self::String => "string",
            Self::Binary => "binary",
            Self::Datetime => "datetime",
        };
        f.write_str(name)
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

/// One column of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColSpec {
    /// Column name.
    pub name: String,
    /// Column type.
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    /// A required column must be present; an optional one may be absent.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub required: bool,
    /// Whether the column may hold nulls.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nullable: bool,
    /// Whether a float or double column may hold NaN and ±infinity, which are refused
    /// otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_non_finite: bool,
}

impl ColSpec {
    /// A required, non-nullable column.
    pub fn new(name: impl Into<String>, dtype: ColumnType) -> Self {
        Self { name: name.into(), dtype, required: true, nullable: false, allow_non_finite: false }
    }

    /// Marks the column optional: it may be absent from the input.
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Allows nulls in the column.
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// Allows NaN and ±infinity in a float or double column (a model that reads NaN as a
    /// missing value, as boosted trees do).
    pub fn allow_non_finite(mut self) -> Self {
        self.allow_non_finite = true;
        self
    }

    /// Whether `column` (already of this spec's type) holds a NaN or an infinity this spec
    /// refuses: the first such row and how many there are.
    pub fn refused_non_finite(&self, column: &Column) -> Option<(usize, usize)> {
        if self.allow_non_finite {
            return None;
        }
        let flags = column.as_materialized_series().is_finite().ok()?;
        // Nulls are not NaN: they are the nullable rule's business.
        let refused = flags.len() - flags.sum().unwrap_or(0) as usize - flags.null_count();
        (refused > 0).then(|| (flags.iter().position(|finite| finite == Some(false)).unwrap_or(0), refused))
    }
}

/// What a model takes or returns: an ordered list of column specs, or of tensor specs.
///
/// A schema is one or the other, as in MLflow: columns are typed, named and possibly
/// optional; tensors have an element type and a shape (see [`TensorSpec`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    columns: Vec<ColSpec>,
    tensors: Vec<TensorSpec>,
}

impl Schema {
    /// A schema of the given columns.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a column name repeats.
    pub fn new(columns: Vec<ColSpec>) -> Result<Self> {
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::InvalidArgument(format!("column `{}` appears twice in the schema", c.name)));
            }
        }
        Ok(Self { columns, tensors: Vec::new() })
    }

    /// A schema of the given tensors.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a name repeats, or when there are several tensors
    /// and one has no name.
    pub fn of_tensors(tensors: Vec<TensorSpec>) -> Result<Self> {
        if tensors.len() > 1 && tensors.iter().any(|t| t.name().is_none()) {
            return Err(Error::InvalidArgument("a schema of several tensors must name every tensor".into()));
        }
        for (i, t) in tensors.iter().enumerate() {
            if tensors[..i].iter().any(|o| o.column_name() == t.column_name()) {
                return Err(Error::InvalidArgument(format!(
                    "tensor `{}` appears twice in the schema",
                    t.column_name()
                )));
            }
        }
        Ok(Self { columns: Vec::new(), tensors })
    }

    /// The columns, in order; empty for a schema of tensors.
    pub fn columns(&self) -> &[ColSpec] {
        &self.columns
    }

    /// The tensors, in order; empty for a schema of columns.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Whether this is a schema of tensors.
    pub fn is_tensor_schema(&self) -> bool {
        !self.tensors.is_empty()
    }

    /// Whether the schema declares nothing.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.tensors.is_empty()
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColSpec> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The tensor whose frame column is `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorSpec> {
        self.tensors.iter().find(|t| t.column_name() == name)
    }

    /// This schema without the columns (or tensors) whose name `drop` accepts.
    pub fn without(&self, mut drop: impl FnMut(&str) -> bool) -> Self {
        Self {
            columns: self.columns.iter().filter(|c| !drop(&c.name)).cloned().collect(),
            tensors: self.tensors.iter().filter(|t| !drop(t.column_name())).cloned().collect(),
        }
    }

    /// Infers a schema from a frame: every column, required, nullable where it holds nulls,
    /// and allowing NaN and infinities where it holds them.
    ///
    /// # Errors
    /// [`Error::Schema`] for a column whose Polars type has no signature type.
    pub fn infer(frame: &DataFrame) -> Result<Self> {
        let columns = frame
            .columns()
            .iter()
            .map(|c| {
                let dtype = ColumnType::from_polars(c.dtype()).ok_or_else(|| Error::Schema {
                    column: c.name().to_string(),
                    expected: "a type a signature can describe (boolean, integer, long, float, double, string, binary, datetime)".into(),
                    found: c.dtype().to_string(),
                })?;
                let mut spec = ColSpec::new(c.name().to_string(), dtype);
                spec.nullable = c.null_count() > 0;
                spec.allow_non_finite = spec.refused_non_finite(c).is_some();
                Ok(spec)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { columns, tensors: Vec::new() })
    }

    /// Checks `frame` against the schema and returns a frame with exactly the schema's present
    /// columns, in schema order, with safe widening casts applied.
    ///
    /// Rules (MLflow's): all missing required columns are reported together; extra columns are
    /// ignored; column order does not matter; integers widen to wider integers or double, float
    /// widens to double; anything else is an error, as is a null in a non-nullable column
    /// and a NaN or an infinity in a float or double column that does not allow them.
    ///
    /// A tensor column must hold the tensor's element type and shape exactly (MLflow casts
    /// no tensor); a list column whose rows have the right length is converted. A frame
    /// given to a schema of one unnamed tensor that lacks its column fills the tensor with
    /// its columns, in order, as MLflow does when the shape is `(-1, number of columns)`.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] listing every absent required column, or [`Error::Schema`]
    /// naming the first column whose type, shape or nulls do not fit.
    pub fn enforce(&self, frame: &DataFrame) -> Result<DataFrame> {
        if self.is_tensor_schema() {
            return self.enforce_tensors(frame);
        }
        let missing: Vec<String> = self
            .columns
            .iter()
            .filter(|spec| spec.required && frame.column(&spec.name).is_err())
            .map(|spec| spec.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let mut out: Vec<Column> = Vec::with_capacity(self.columns.len());
        for spec in &self.columns {
            let Ok(column) = frame.column(&spec.name) else { continue };
            let column = match spec.dtype.accepts(column.dtype()) {
                Acceptance::AsIs => column.clone(),
                Acceptance::Cast => column.strict_cast(&spec.dtype.polars_dtype())?,
                Acceptance::Incompatible => {
                    return Err(Error::Schema {
                        column: spec.name.clone(),
                        expected: spec.dtype.to_string(),
                        found: column.dtype().to_string(),
                    });
                }
            };
            if let Some((row, count)) = spec.refused_non_finite(&column) {
                return Err(Error::Schema {
                    column: spec.name.clone(),
                    expected: format!("finite {} values", spec.dtype),
                    found: format!(
                        "{count} NaN or infinite value{} (the first in row {row})",
                        if count == 1 { "" } else { "s" }
                    ),
                });
            }
            if !spec.nullable {
                let nulls = column.null_count();
                if nulls > 0 {
                    return Err(Error::Schema {
                        column: spec.name.clone(),
                        expected: format!("non-null {}", spec.dtype),
                        found: format!("{nulls} null value{}", if nulls == 1 { "" } else { "s" }),
                    });
                }
            }
            out.push(column);
        }
        Ok(DataFrame::new(frame.height(), out)?)
    }

    fn enforce_tensors(&self, frame: &DataFrame) -> Result<DataFrame> {
        if let [only] = self.tensors.as_slice()
            && only.name().is_none()
            && frame.column(only.column_name()).is_err()
            && frame.width() > 0
        {
            return Ok(DataFrame::new(frame.height(), vec![only.stack_columns(frame)?])?);
        }
        let missing: Vec<String> = self
            .tensors
            .iter()
            .filter(|t| frame.column(t.column_name()).is_err())
            .map(|t| t.column_name().to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingColumns { columns: missing });
        }
        let columns = self
            .tensors
            .iter()
            .map(|t| t.enforce_column(frame.column(t.column_name())?))
            .collect::<Result<Vec<_>>>()?;
        Ok(DataFrame::new(frame.height(), columns)?)
    }
}

/// One entry of a stored schema: a column spec, or a tensor spec in MLflow's form.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SchemaEntry {
    Tensor(tensor::TensorEntry),
    Column(ColSpec),
}

impl Serialize for Schema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.columns.len() + self.tensors.len()))?;
        for column in &self.columns {
            seq.serialize_element(column)?;
        }
        for tensor in &self.tensors {
            seq.serialize_element(&tensor::TensorEntry::from(tensor))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let entries = Vec::<SchemaEntry>::deserialize(deserializer)?;
        let (mut columns, mut tensors) = (Vec::new(), Vec::new());
        for entry in entries {
            match entry {
                SchemaEntry::Column(column) => columns.push(column),
                SchemaEntry::Tensor(tensor) => tensors.push(tensor.into_spec().map_err(D::Error::custom)?),
            }
        }
        match (columns.is_empty(), tensors.is_empty()) {
            (_, true) => Schema::new(columns),
            (true, false) => Schema::of_tensors(tensors),
            (false, false) => Err(Error::InvalidArgument("a schema holds columns or tensors, not both".into())),
        }
        .map_err(D::Error::custom)
    }
}

/// A named inference parameter with a type and a default, as in MLflow's `ParamSchema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Parameter name.
    pub name: String,
    /// Parameter type (scalar).
    #[serde(rename = "type")]
    pub dtype: ColumnType,
    /// Value used when a call does not set the parameter.
    pub default: serde_json::Value,
}

/// What a model takes and returns.
///
/// ```
/// use mlops_core::{ColSpec, ColumnType, Schema, Signature};
/// use polars::prelude::*;
///
/// let signature = Signature::new(Schema::new(vec![
///     ColSpec::new("Product", ColumnType::String),
///     ColSpec::new("Amount", ColumnType::Double),
/// ])?);
/// // Columns in any order, an extra column, and an i32 column that widens to double.
/// let frame = df!("Amount" => [12i32, 40], "note" => ["a", "b"], "Product" => ["Product A", "Product C"])?;
/// let enforced = signature.enforce(&frame)?;
/// assert_eq!(enforced.get_column_names(), ["Product", "Amount"]);
/// assert_eq!(enforced.column("Amount")?.dtype(), &DataType::Float64);
///
/// let err = signature.enforce(&df!("Amount" => [1.0])?).unwrap_err();
/// assert_eq!(err.to_string(), "missing required columns: Product");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Input columns.
    pub inputs: Schema,
    /// Output columns.
    #[serde(default)]
    pub outputs: Schema,
    /// Inference parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamSpec>,
}

impl Signature {
    /// A signature with the given inputs and no declared outputs or parameters.
    pub fn new(inputs: Schema) -> Self {
        Self { inputs, outputs: Schema::default(), params: Vec::new() }
    }

    /// Sets the output schema.
    pub fn with_outputs(mut self, outputs: Schema) -> Self {
        self.outputs = outputs;
        self
    }

    /// Adds an inference parameter.
    pub fn with_param(mut self, param: ParamSpec) -> Self {
        self.params.push(param);
        self
    }

    /// Infers inputs from `inputs` and, when given, outputs from `outputs`.
    ///
    /// # Errors
    /// As [`Schema::infer`].
    pub fn infer(inputs: &DataFrame, outputs: Option<&DataFrame>) -> Result<Self> {
        Ok(Self {
            inputs: Schema::infer(inputs)?,
            outputs: outputs.map(Schema::infer).transpose()?.unwrap_or_default(),
            params: Vec::new(),
        })
    }

    /// Enforces the input schema on `frame`; see [`Schema::enforce`].
    ///
    /// # Errors
    /// As [`Schema::enforce`].
    pub fn enforce(&self, frame: &DataFrame) -> Result<DataFrame> {
        self.inputs.enforce(frame)
    }

    /// Fills unset parameters with their defaults and checks the types of those given.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming an unknown parameter or one whose value has the
    /// wrong type.
    pub fn resolve_params(
        &self,
        given: &BTreeMap<String, serde_json::Value>,
    ) -> Result<BTreeMap<String, serde_json::Value>> {
        if let Some(unknown) = given.keys().find(|k| !self.params.iter().any(|p| &p.name == *k)) {
            return Err(Error::InvalidArgument(format!("unknown parameter `{unknown}`")));
        }
        self.params
            .iter()
            .map(|spec| {
                let value = given.get(&spec.name).unwrap_or(&spec.default);
                if !json_matches(spec.dtype, value) {
                    return Err(Error::InvalidArgument(format!(
                        "parameter `{}` must be {}, got {}",
                        spec.name,
                        spec.dtype,
                        crate::json_frame::json_excerpt(value)
                    )));
                }
                Ok((spec.name.clone(), value.clone()))
            })
            .collect()
    }
}

fn json_matches(dtype: ColumnType, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (dtype, value) {
        (_, Value::Null) => true,
        (ColumnType::Boolean, Value::Bool(_)) => true,
        (ColumnType::Integer, Value::Number(n)) => n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
        (ColumnType::Long, Value::Number(n)) => n.as_i64().is_some(),
        (ColumnType::Float | ColumnType::Double, Value::Number(_)) => true,
        (ColumnType::String | ColumnType::Datetime | ColumnType::Binary, Value::String(_)) => true,
        _ => false,
    }
}
