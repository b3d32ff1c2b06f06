//! The scalar functions `predict(uri, columns...)` and `model_version(uri)`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, StructArray, new_empty_array};
use deltalake::arrow::compute::{cast, concat_batches};
use deltalake::arrow::datatypes::{DataType, Field, FieldRef, Schema, TimeUnit};
use deltalake::datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, plan_err};
use deltalake::datafusion::logical_expr::expr::ScalarFunction;
use deltalake::datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use deltalake::datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, lit,
};
use mlops_core::ModelUri;
use polars::prelude::DataFrame;

use super::catalog::{ModelCatalog, PinnedModel};
use crate::delta::arrow::{arrow_error, batches_to_frame, frame_to_arrow};
use crate::error::Error;

/// A catalog snapshot, the same for two functions when it is the same instance: DataFusion
/// compares functions to tell whether two expressions are the same.
#[derive(Debug)]
struct SharedCatalog(Arc<ModelCatalog>);

impl PartialEq for SharedCatalog {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedCatalog {}

impl Hash for SharedCatalog {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

/// `predict('models:/name@alias', col1, col2, ...)`: the columns fill the signature's
/// inputs in order; `predict('models:/...', named_struct('col1', x, ...))` fills them by
/// name. Returns the model's output, or a struct of its outputs when it has several.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PredictFunction {
    catalog: SharedCatalog,
    signature: Signature,
}

impl PredictFunction {
    pub(crate) fn new(catalog: Arc<ModelCatalog>) -> Self {
        Self { catalog: SharedCatalog(catalog), signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

/// The SQL name of the scalar function `predict(uri, columns...)`.
pub const PREDICT: &str = "predict";
/// The SQL name of the scalar function `model_version(uri)`.
pub const MODEL_VERSION_FUNCTION: &str = "model_version";

impl ScalarUDFImpl for PredictFunction {
    fn name(&self) -> &str {
        PREDICT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        plan_err!("{PREDICT}'s type depends on its model: it is planned through its arguments")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> DfResult<FieldRef> {
        let pinned = pinned_of(&self.catalog.0, args.scalar_arguments.first().copied().flatten(), PREDICT)?;
        let inputs = named_inputs(&pinned, &args.arg_fields[1..])?;
        // The signature is enforced on no rows while planning, so a query with a column of the
        // wrong type fails before it reads anything.
        let arrays: Vec<ArrayRef> = inputs.iter().map(|f| new_empty_array(f.data_type())).collect();
        let frame = to_frame(inputs, arrays).map_err(external)?;
        pinned.scorer().signature().enforce(&frame).map_err(|e| external(e.into()))?;
        Ok(Arc::new(Field::new(PREDICT, output_type(&pinned), true)))
    }

    /// An alias becomes the version it is pinned to: the plan names the version, and any
    /// process that runs part of it scores with that version.
    fn simplify(&self, mut args: Vec<Expr>, _: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let Some(version) = pinned_version_uri(&self.catalog.0, args.first()) else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        args[0] = lit(version);
        let same = ScalarUDF::new_from_impl(Self::new(Arc::clone(&self.catalog.0)));
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(same), args))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let pinned = pinned_of_call(&self.catalog.0, &args.args, PREDICT)?;
        let rows = args.number_rows;
        let inputs = named_inputs(&pinned, &args.arg_fields[1..])?;
        let mut arrays = Vec::with_capacity(inputs.len());
        let struct_form = args.arg_fields.len() == 2 && matches!(args.arg_fields[1].data_type(), DataType::Struct(_));
        let mut values = args.args.into_iter().skip(1);
        if struct_form {
            let Some(value) = values.next() else { return plan_err!("{PREDICT}: no columns given") };
            let array = value.into_array(rows)?;
            let Some(fields) = array.as_any().downcast_ref::<StructArray>() else {
                return plan_err!("{PREDICT}: the struct argument is not a struct array");
            };
            arrays.extend(fields.columns().iter().cloned());
        } else {
            for value in values {
                arrays.push(value.into_array(rows)?);
            }
        }
        let arrays =
            arrays
                .into_iter()
                .zip(&inputs)
                .map(|(array, field)| {
                    if array.data_type() == field.data_type() {
                        Ok(array)
                    } else {
                        Ok(cast(&array, field.data_type())?)
                    }
                })
                .collect::<DfResult<Vec<_>>>()?;
        let frame = to_frame(inputs, arrays).map_err(external)?;
        let outputs = pinned.scorer().outputs(&frame).map_err(external)?;
        if outputs.height() != rows {
            return Err(external(contract(
                &pinned,
                format!("returned {} rows for {rows} input rows", outputs.height()),
            )));
        }
        Ok(ColumnarValue::Array(output_array(&pinned, &outputs).map_err(external)?))
    }
}

/// `model_version('models:/name@alias')`: the version the query scores with.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ModelVersionFunction {
    catalog: SharedCatalog,
    signature: Signature,
}

impl ModelVersionFunction {
    pub(crate) fn new(catalog: Arc<ModelCatalog>) -> Self {
        Self { catalog: SharedCatalog(catalog), signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for ModelVersionFunction {
    fn name(&self) -> &str {
        MODEL_VERSION_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs<'_>) -> DfResult<FieldRef> {
        if args.arg_fields.len() != 1 {
            return plan_err!("{MODEL_VERSION_FUNCTION} takes one argument, a model URI");
        }
        pinned_of(&self.catalog.0, args.scalar_arguments.first().copied().flatten(), MODEL_VERSION_FUNCTION)?;
        Ok(Arc::new(Field::new(MODEL_VERSION_FUNCTION, DataType::Int64, false)))
    }

    /// The pinned version, as a literal.
    fn simplify(&self, args: Vec<Expr>, _: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        let pinned = match args.as_slice() {
            [Expr::Literal(uri, _)] => pinned_of(&self.catalog.0, Some(uri), MODEL_VERSION_FUNCTION).ok(),
            _ => None,
        };
        Ok(match pinned {
            Some(pinned) => ExprSimplifyResult::Simplified(lit(pinned.version() as i64)),
            None => ExprSimplifyResult::Original(args),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let pinned = pinned_of_call(&self.catalog.0, &args.args, MODEL_VERSION_FUNCTION)?;
        Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(pinned.version() as i64))))
    }
}

/// The version URI (`models:/<name>/<version>`) of the model a literal first argument pins,
/// when the argument names it otherwise (an alias, `latest`, a run).
fn pinned_version_uri(catalog: &ModelCatalog, first: Option<&Expr>) -> Option<String> {
    let Some(Expr::Literal(value, _)) = first else { return None };
    let written = value.try_as_str().flatten()?;
    let pinned = catalog.get(written).ok()?;
    let version = ModelUri::version(pinned.name(), pinned.version()).ok()?.to_string();
    let canonical = written.parse::<ModelUri>().ok()?.to_string();
    (version != canonical).then_some(version)
}

/// The model an executed call names with its first argument.
fn pinned_of_call(catalog: &ModelCatalog, args: &[ColumnarValue], function: &str) -> DfResult<Arc<PinnedModel>> {
    let uri = match args.first() {
        Some(ColumnarValue::Scalar(uri)) => Some(uri),
        _ => None,
    };
    pinned_of(catalog, uri, function)
}

/// The model a call names with its first argument, a string literal.
fn pinned_of(catalog: &ModelCatalog, uri: Option<&ScalarValue>, function: &str) -> DfResult<Arc<PinnedModel>> {
    let Some(Some(uri)) = uri.map(ScalarValue::try_as_str) else {
        return plan_err!("{function}'s first argument is the model's URI, written as a string literal");
    };
    let Some(uri) = uri else { return plan_err!("{function}'s model URI is null") };
    catalog.get(uri).map_err(external)
}

/// The signature's column each argument after the URI fills, with the Arrow type it is
/// converted to for the model: positional arguments in signature order, or the fields of
/// one struct argument by name.
fn named_inputs(pinned: &PinnedModel, args: &[FieldRef]) -> DfResult<Vec<Field>> {
    let columns = pinned.input_columns();
    let given: Vec<(String, &DataType)> = if let [only] = args
        && let DataType::Struct(fields) = only.data_type()
    {
        fields.iter().map(|f| (f.name().clone(), f.data_type())).collect()
    } else if args.is_empty() {
        return plan_err!("{PREDICT}: model `{}` needs its input columns as arguments", pinned.uri());
    } else if args.len() > columns.len() {
        return plan_err!(
            "{PREDICT}: model `{}` takes {} columns ({}), got {} arguments",
            pinned.uri(),
            columns.len(),
            columns.join(", "),
            args.len()
        );
    } else {
        columns.iter().zip(args).map(|(name, f)| (name.clone(), f.data_type())).collect()
    };
    given
        .into_iter()
        .map(|(name, data_type)| match model_type(data_type) {
            Ok(converted) => Ok(Field::new(name, converted.unwrap_or_else(|| data_type.clone()), true)),
            Err(advice) => plan_err!("{PREDICT}: column `{name}` of model `{}` is {data_type}; {advice}", pinned.uri()),
        })
        .collect()
}

/// The type an argument is converted to before it reaches the model (`None`: as it is):
/// narrow integers widen to 32 bits and dates become datetimes, both without loss, and the
/// signature's rules take it from there.
fn model_type(data_type: &DataType) -> Result<Option<DataType>, &'static str> {
    use DataType as D;
    match data_type {
        D::Int8 | D::Int16 | D::UInt8 | D::UInt16 => Ok(Some(D::Int32)),
        D::Date32 | D::Date64 => Ok(Some(D::Timestamp(TimeUnit::Millisecond, None))),
        D::Null
        | D::Boolean
        | D::Int32
        | D::Int64
        | D::UInt32
        | D::UInt64
        | D::Float32
        | D::Float64
        | D::Utf8
        | D::LargeUtf8
        | D::Utf8View
        | D::Binary
        | D::LargeBinary
        | D::BinaryView
        | D::Timestamp(_, _)
        | D::List(_)
        | D::LargeList(_)
        | D::FixedSizeList(_, _) => Ok(None),
        D::Decimal32(_, _) | D::Decimal64(_, _) | D::Decimal128(_, _) | D::Decimal256(_, _) | D::Float16 => {
            Err("cast it to DOUBLE")
        }
        D::Dictionary(_, _) => Err("cast it to its value type"),
        _ => Err("no model column takes this type"),
    }
}

/// One record batch of the named arrays, as a Polars frame.
fn to_frame(fields: Vec<Field>, arrays: Vec<ArrayRef>) -> crate::error::Result<DataFrame> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), arrays).map_err(|e| arrow_error("arguments", e))?;
    batches_to_frame(&schema, &[batch])
}

/// The type `predict` returns for `pinned`: its only output's, or a struct of its outputs.
pub(crate) fn output_type(pinned: &PinnedModel) -> DataType {
    let fields = pinned.output_schema().fields();
    match fields.len() {
        1 => fields[0].data_type().clone(),
        _ => DataType::Struct(fields.clone()),
    }
}

/// The model's outputs as the array `predict` returns, with the types it was planned with.
fn output_array(pinned: &PinnedModel, outputs: &DataFrame) -> crate::error::Result<ArrayRef> {
    let (schema, batches) = frame_to_arrow(outputs)?;
    let batch = concat_batches(&schema, &batches).map_err(|e| arrow_error("model outputs", e))?;
    let planned = pinned.output_schema().fields();
    let columns = planned
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                contract(pinned, format!("returned no column `{}`, which it returned when it was pinned", field.name()))
            })?;
            if column.data_type() == field.data_type() {
                return Ok(Arc::clone(column));
            }
            cast(column, field.data_type()).map_err(|e| {
                contract(
                    pinned,
                    format!(
                        "returned column `{}` as {}, not the {} it was pinned with: {e}",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ),
                )
            })
        })
        .collect::<crate::error::Result<Vec<ArrayRef>>>()?;
    if let [only] = columns.as_slice() {
        return Ok(Arc::clone(only));
    }
    let array = StructArray::try_new(planned.clone(), columns, None).map_err(|e| arrow_error("model outputs", e))?;
    Ok(Arc::new(array))
}

fn contract(pinned: &PinnedModel, problem: String) -> Error {
    Error::ModelContract { model: pinned.name().to_owned(), version: pinned.version(), problem }
}

pub(crate) fn external(error: Error) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}
