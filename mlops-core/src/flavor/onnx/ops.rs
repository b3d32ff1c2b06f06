//! The ai.onnx.ml operators that scikit-learn exports use, on tract.
//!
//! tract has none of Scaler, OneHotEncoder, Imputer, LabelEncoder, Binarizer,
//! FeatureVectorizer, TreeEnsembleRegressor or opset 5's TreeEnsemble, and its TreeEnsembleClassifier,
//! LinearClassifier and Normalizer differ from onnxruntime (which is what MLflow's pyfunc
//! runs) on branch modes, binary labels, the logistic function and signed maxima. Each
//! operator here is a [`Kernel`] that computes exactly what onnxruntime computes; one
//! adapter ([`MlOp`]) gives every kernel tract's operator traits.

mod activation;
mod binarizer;
mod feature_vectorizer;
mod imputer;
mod label_encoder;
mod linear;
pub(crate) mod math;
mod normalizer;
mod one_hot_encoder;
mod scaler;
mod tree_ensemble;
mod tree_ensemble_v5;

use std::fmt;
use std::sync::Arc;

use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// The element type of an output.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OutType {
    Fixed(DatumType),
    /// The type of this input.
    Input(usize),
    /// `i64` for a string input, a string for any other: the two directions of opset 1's
    /// `LabelEncoder`.
    Relabelled(usize),
}

/// [`OutType::Relabelled`]'s type for an input of type `input`.
fn relabelled(input: DatumType) -> DatumType {
    if input == String::datum_type() { i64::datum_type() } else { String::datum_type() }
}

/// The shape of an output, from the shapes of the inputs.
#[derive(Debug, Clone)]
pub(crate) enum OutShape {
    /// The shape of this input.
    Input(usize),
    /// The rows of input 0, then these dimensions.
    Rows(Vec<usize>),
    /// The shape of this input with one more dimension of this size.
    Extended(usize, usize),
}

/// One output of a kernel.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub(crate) dtype: OutType,
    pub(crate) shape: OutShape,
}

impl Out {
    pub(crate) fn new(dtype: OutType, shape: OutShape) -> Self {
        Self { dtype, shape }
    }

    /// Floats of the first input's shape (what most ml operators return).
    pub(crate) fn floats_like_input() -> Self {
        Self::new(OutType::Fixed(f32::datum_type()), OutShape::Input(0))
    }
}

/// What an operator computes, independent of tract.
pub(crate) trait Kernel: fmt::Debug + Send + Sync + 'static {
    /// The operator's name, for messages.
    fn name(&self) -> &'static str;
    /// How many inputs it takes: exactly this many, or, for variadic operators, at least.
    fn inputs(&self) -> (usize, bool) {
        (1, false)
    }
    /// Computes the outputs.
    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>>;
}

/// A kernel and its outputs as a tract operator. Two operators are equal when they share
/// one kernel.
#[derive(Debug, Clone)]
pub(crate) struct MlOp {
    kernel: Arc<dyn Kernel>,
    outputs: Arc<[Out]>,
}

impl PartialEq for MlOp {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.kernel), Arc::as_ptr(&other.kernel))
    }
}

impl Eq for MlOp {}

impl Op for MlOp {
    fn name(&self) -> StaticName {
        self.kernel.name().into()
    }

    op_as_typed_op!();
}

impl EvalOp for MlOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext<'_>, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(self.kernel.eval(&inputs)?.into_iter().map(IntoTValue::into_tvalue).collect())
    }
}

impl TypedOp for MlOp {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let (arity, variadic) = self.kernel.inputs();
        ensure!(
            inputs.len() == arity || (variadic && inputs.len() >= arity),
            "{} takes {arity} inputs, got {}",
            self.kernel.name(),
            inputs.len()
        );
        self.outputs
            .iter()
            .map(|out| {
                let dtype = match out.dtype {
                    OutType::Fixed(dt) => dt,
                    OutType::Input(i) => inputs[i].datum_type,
                    OutType::Relabelled(i) => relabelled(inputs[i].datum_type),
                };
                let shape: TVec<TDim> = match &out.shape {
                    OutShape::Input(i) => inputs[*i].shape.iter().cloned().collect(),
                    OutShape::Rows(dims) => {
                        let rows = inputs[0].shape.iter().next().cloned().unwrap_or_else(|| 1.to_dim());
                        std::iter::once(rows).chain(dims.iter().map(|d| d.to_dim())).collect()
                    }
                    OutShape::Extended(i, size) => {
                        inputs[*i].shape.iter().cloned().chain(std::iter::once(size.to_dim())).collect()
                    }
                };
                Ok(TypedFact::dt_shape(dtype, shape))
            })
            .collect()
    }
}

impl InferenceRulesOp for MlOp {
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let (arity, variadic) = self.kernel.inputs();
        if !variadic {
            check_input_arity(inputs, arity)?;
        } else if inputs.len() < arity {
            bail!("{} takes at least {arity} inputs, got {}", self.kernel.name(), inputs.len());
        }
        check_output_arity(outputs, self.outputs.len())?;
        for (out, proxy) in self.outputs.iter().zip(outputs) {
            match out.dtype {
                OutType::Fixed(dt) => s.equals(&proxy.datum_type, dt)?,
                OutType::Input(i) => s.equals(&proxy.datum_type, &inputs[i].datum_type)?,
                OutType::Relabelled(i) => {
                    s.given(&inputs[i].datum_type, move |s, input| s.equals(&proxy.datum_type, relabelled(input)))?
                }
            }
            match &out.shape {
                OutShape::Input(i) => s.equals(&proxy.shape, &inputs[*i].shape)?,
                OutShape::Rows(dims) => {
                    s.equals(&proxy.rank, (dims.len() + 1) as i64)?;
                    s.equals(&proxy.shape[0], &inputs[0].shape[0])?;
                    for (axis, &size) in dims.iter().enumerate() {
                        s.equals(&proxy.shape[axis + 1], size.to_dim())?;
                    }
                }
                OutShape::Extended(i, size) => {
                    let (input, size) = (&inputs[*i], *size);
                    s.given(&input.rank, move |s, rank| {
                        let rank = rank as usize;
                        s.equals(&proxy.rank, (rank + 1) as i64)?;
                        for axis in 0..rank {
                            s.equals(&proxy.shape[axis], &input.shape[axis])?;
                        }
                        s.equals(&proxy.shape[rank], size.to_dim())
                    })?;
                }
            }
        }
        Ok(())
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.outputs.len())
    }

    as_op!();
    to_typed!();
}

/// Boxes a kernel with its outputs as a parsed operator.
pub(crate) fn op(
    kernel: impl Kernel,
    outputs: impl Into<Vec<Out>>,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((Box::new(MlOp { kernel: Arc::new(kernel), outputs: outputs.into().into() }), vec![]))
}

/// Registers every operator of this module, replacing tract's versions.
pub(crate) fn register(ops: &mut OnnxOpRegister) {
    ops.insert("Binarizer", binarizer::parse);
    ops.insert("FeatureVectorizer", feature_vectorizer::parse);
    ops.insert("Imputer", imputer::parse);
    ops.insert("LabelEncoder", label_encoder::parse);
    ops.insert("LinearClassifier", linear::parse_classifier);
    ops.insert("LinearRegressor", linear::parse_regressor);
    ops.insert("Normalizer", normalizer::parse);
    ops.insert("OneHotEncoder", one_hot_encoder::parse);
    ops.insert("Scaler", scaler::parse);
    ops.insert("Sigmoid", activation::parse);
    ops.insert("TreeEnsembleClassifier", tree_ensemble::parse_classifier);
    ops.insert("TreeEnsembleRegressor", tree_ensemble::parse_regressor);
    ops.insert("TreeEnsemble", tree_ensemble_v5::parse);
    // A sequence of maps tract cannot hold: its input, the probabilities, passes through;
    // the flavor turns them into one field per class label.
    ops.insert("ZipMap", |_, _| Ok((Box::<tract_onnx::tract_hir::ops::identity::Identity>::default(), vec![])));
}

/// The values of a float tensor as f32 (double and integer inputs are converted as
/// onnxruntime's float kernels convert them).
pub(crate) fn floats(input: &Tensor) -> TractResult<std::borrow::Cow<'_, [f32]>> {
    if input.datum_type() == f32::datum_type() {
        return Ok(std::borrow::Cow::Borrowed(input.try_as_plain_ram()?.as_slice::<f32>()?));
    }
    let cast = input.cast_to::<f32>()?;
    Ok(std::borrow::Cow::Owned(cast.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
}

/// The shape of a tensor read as rows of values: `[N, F]`, or `[F]` as one row.
pub(crate) fn rows_and_width(input: &Tensor, op: &str) -> TractResult<(usize, usize)> {
    match input.shape() {
        [width] => Ok((1, *width)),
        [rows, width] => Ok((*rows, *width)),
        other => bail!("{op} takes a vector or a matrix, got a tensor of shape {other:?}"),
    }
}

/// The most values an operator gives each row (targets, classes, vectorized features): a
/// model file declaring more is refused when it loads, before any output is allocated.
pub(crate) const MAX_ROW_WIDTH: usize = 1 << 20;

/// `width` as declared by `node`'s attribute `what`, refused above [`MAX_ROW_WIDTH`].
pub(crate) fn row_width(node: &NodeProto, what: &str, width: usize) -> TractResult<usize> {
    ensure!(
        width <= MAX_ROW_WIDTH,
        "{} `{}` declares {width} {what} per row, more than the {MAX_ROW_WIDTH} this runtime takes",
        node.op_type,
        node.name
    );
    Ok(width)
}

/// The length of an output of `rows` rows of `width` values, refused when it overflows.
pub(crate) fn output_len(op: &str, rows: usize, width: usize) -> TractResult<usize> {
    rows.checked_mul(width).with_context(|| format!("{op}: {rows} rows of {width} values do not fit in memory"))
}

/// Reads a required attribute, naming the operator when it is missing.
pub(crate) fn attr_vec<'a, T: tract_onnx::pb_helpers::AttrTVecType<'a>>(
    node: &'a NodeProto,
    name: &str,
) -> TractResult<Vec<T>> {
    node.get_attr_opt_vec(name)?.with_context(|| format!("{} `{}` has no attribute `{name}`", node.op_type, node.name))
}
