//! The `onnx` flavor (feature `onnx`): ONNX graphs, as `mlflow.onnx.log_model` stores them,
//! run on tract, with the ai.onnx.ml operators of scikit-learn exports computed as
//! onnxruntime computes them.

mod encode;
mod feed;
mod graph;
mod ops;
mod outputs;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use polars::prelude::{Column, DataFrame};
use tract_onnx::prelude::*;

use self::feed::Feed;
use self::graph::{Graph, Port};
use super::Flavor;
use crate::error::{Error, Result};
use crate::mlflow::MlflowModel;
use crate::model::Model;
use crate::package::Package;
use crate::signature::{ColSpec, ColumnType, Schema, Signature, TensorSpec, TensorType};

/// Name of the ONNX flavor, as MLflow names it.
pub const ONNX: &str = "onnx";

/// The ONNX file a package holds when its `MLmodel` does not name one.
const DEFAULT_FILE: &str = "model.onnx";

/// Loads ONNX packages: MLflow model directories with an `onnx` flavor (the file its
/// `data` names), or packages of this crate with a `model.onnx` file.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnnxFlavor;

impl Flavor for OnnxFlavor {
    fn name(&self) -> &str {
        ONNX
    }

    fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        let file = match package.mlflow_model()? {
            Some(model) => onnx_file(&model),
            None => DEFAULT_FILE.to_owned(),
        };
        let signature = &package.manifest().signature;
        let signature = if signature.inputs.is_empty() { None } else { Some(signature.clone()) };
        let files: BTreeMap<String, Bytes> =
            package.files().map(|(path, bytes)| (path.to_owned(), bytes.clone())).collect();
        Ok(Arc::new(OnnxModel::from_files(&files, &file, signature)?))
    }
}

fn onnx_file(model: &MlflowModel) -> String {
    model
        .flavor(ONNX)
        .and_then(|flavor| flavor.get("data"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or(DEFAULT_FILE)
        .to_owned()
}

/// An ONNX graph as a [`Model`].
///
/// Inputs are fed as MLflow's pyfunc feeds them: each graph input takes the signature
/// column (or tensor) of its name, reshaped to the input's shape (`[N]` or `[N, 1]`); a
/// graph with one input takes every signature column side by side when none has its name.
/// float64 columns are converted for float inputs, and nothing else is: another type is
/// refused when the model loads. A missing float is NaN; a missing string is `"nan"`, the
/// category skl2onnx gives scikit-learn's missing value.
///
/// Outputs come back one column per graph output, named after it: a classifier's label,
/// and its probabilities as one field per class label where the graph ends in a `ZipMap`
/// (what pyfunc returns as a dictionary per row). `[N, 1]` outputs become plain columns
/// for column inputs and one-element arrays for tensor inputs, as pyfunc shapes them;
/// wider outputs are arrays.
///
/// Without an MLflow signature, one is made from the graph: a column per `[N]` or `[N, 1]`
/// input, or a tensor per input.
///
/// ```no_run
/// use mlops_core::{FlavorRegistry, Model, Package};
/// use polars::prelude::*;
///
/// // A directory written by `mlflow.onnx.log_model` (or `mlflow.onnx.save_model`).
/// let package = Package::read_dir("exported/model".as_ref())?;
/// let model = FlavorRegistry::with_builtins().load(&package)?;
/// let scored = model.predict(&df!("Product" => ["Product A"], "Amount" => [12.5f32])?)?;
/// println!("{scored}"); // output_label, output_probability {"0": .., "1": ..}
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OnnxModel {
    signature: Signature,
    graph: Graph,
    feeds: Vec<Feed>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.graph.inputs.iter().map(|p| &p.name).collect::<Vec<_>>())
            .field("outputs", &self.graph.outputs.iter().map(|p| &p.name).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OnnxModel {
    /// A model from the bytes of an ONNX file, with `signature` (or one made from the
    /// graph). External tensors cannot be found this way: use [`Package::read_dir`] and
    /// [`OnnxFlavor`] for a model saved with them.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] for a file that is not ONNX, uses operators that are not
    /// supported (named), or does not fit the signature (naming the input).
    pub fn from_bytes(bytes: impl Into<Bytes>, signature: Option<Signature>) -> Result<Self> {
        let files = BTreeMap::from([(DEFAULT_FILE.to_owned(), bytes.into())]);
        Self::from_files(&files, DEFAULT_FILE, signature)
    }

    fn from_files(files: &BTreeMap<String, Bytes>, file: &str, signature: Option<Signature>) -> Result<Self> {
        // Inner dimensions the file leaves open are taken from the signature's tensors.
        let fixed: BTreeMap<String, Vec<usize>> = signature
            .iter()
            .flat_map(|s| s.inputs.tensors())
            .map(|t| (t.column_name().to_owned(), t.shape()[1..].iter().map(|&d| d as usize).collect()))
            .collect();
        let graph = graph::load(files, file, &fixed)?;
        let signature = match signature {
            Some(signature) => name_unnamed_tensor(signature, &graph.inputs),
            None => Signature::new(derived_inputs(&graph.inputs)?),
        };
        let inner: Vec<Vec<usize>> = graph
            .inputs
            .iter()
            .map(|port| {
                let shape = port.shape.clone().unwrap_or_default();
                shape
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(axis, size)| {
                        size.or_else(|| fixed.get(&port.name).and_then(|f| f.get(axis - 1).copied())).unwrap_or(1)
                    })
                    .collect()
            })
            .collect();
        let feeds = Feed::plan(&graph.inputs, &inner, &signature.inputs, &graph.encoded)?;
        Ok(Self { signature, graph, feeds })
    }

    /// The graph's output names, in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.graph.outputs.iter().map(|p| p.name.as_str())
    }

    fn run(&self, frame: &DataFrame) -> Result<TVec<TValue>> {
        let inputs = self
            .feeds
            .iter()
            .map(|feed| feed.tensor(frame).map(IntoTValue::into_tvalue))
            .collect::<Result<TVec<_>>>()?;
        // Inputs follow the graph's declared order, which is the plan's.
        self.graph.plan.run(inputs).map_err(|e| Error::Tensor(format!("running the ONNX graph: {e:#}")))
    }
}

/// A signature whose only input is an unnamed tensor names it after the graph's only
/// input, so frames and requests can use that name.
fn name_unnamed_tensor(mut signature: Signature, inputs: &[Port]) -> Signature {
    if let ([only], [port]) = (signature.inputs.tensors(), inputs)
        && only.name().is_none()
        && let Ok(named) = Schema::of_tensors(vec![only.clone().named(port.name.clone())])
    {
        signature.inputs = named;
    }
    signature
}

/// Inputs from the graph: columns for `[N]` and `[N, 1]` inputs of a column type, tensors
/// otherwise.
fn derived_inputs(inputs: &[Port]) -> Result<Schema> {
    let scalar = |p: &Port| p.shape.as_ref().is_some_and(|s| s.len() == 1 || (s.len() == 2 && s[1] == Some(1)));
    let column_type = |p: &Port| -> Option<ColumnType> {
        Some(match p.dtype? {
            DatumType::F32 => ColumnType::Float,
            DatumType::F64 => ColumnType::Double,
            DatumType::I64 => ColumnType::Long,
            DatumType::I32 => ColumnType::Integer,
            DatumType::Bool => ColumnType::Boolean,
            DatumType::String => ColumnType::String,
            _ => return None,
        })
    };
    let unsupported = |p: &Port| {
        Error::InvalidPackage(format!("ONNX input `{}` has type {:?}, which a frame cannot feed", p.name, p.dtype))
    };
    // A scalar input of a type no column has (an 8-bit integer, say) makes every input a
    // tensor.
    if inputs.iter().all(|p| scalar(p) && column_type(p).is_some()) {
        let columns = inputs
            .iter()
            .map(|p| {
                let dtype = column_type(p).ok_or_else(|| unsupported(p))?;
                let spec = ColSpec::new(p.name.clone(), dtype);
                // As onnxruntime, which takes NaN (the missing value of scikit-learn's
                // imputers) and infinities.
                Ok(match dtype {
                    ColumnType::Float | ColumnType::Double => spec.nullable().allow_non_finite(),
                    ColumnType::String => spec.nullable(),
                    _ => spec,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Schema::new(columns);
    }
    let tensors = inputs
        .iter()
        .map(|p| {
            let dtype = p.dtype.and_then(tensor_type).ok_or_else(|| unsupported(p))?;
            let shape: Vec<i64> = p
                .shape
                .as_ref()
                .ok_or_else(|| unsupported(p))?
                .iter()
                .enumerate()
                .map(|(axis, d)| if axis == 0 { -1 } else { d.map_or(-1, |d| d as i64) })
                .collect();
            TensorSpec::new(Some(&p.name), dtype, shape)
        })
        .collect::<Result<Vec<_>>>()?;
    Schema::of_tensors(tensors)
}

/// The tensor element type of a graph's element type, where a frame can hold it.
fn tensor_type(dtype: DatumType) -> Option<TensorType> {
    Some(match dtype {
        DatumType::Bool => TensorType::Bool,
        DatumType::I8 => TensorType::Int8,
        DatumType::I16 => TensorType::Int16,
        DatumType::I32 => TensorType::Int32,
        DatumType::I64 => TensorType::Int64,
        DatumType::U8 => TensorType::UInt8,
        DatumType::U16 => TensorType::UInt16,
        DatumType::U32 => TensorType::UInt32,
        DatumType::U64 => TensorType::UInt64,
        DatumType::F16 => TensorType::Float16,
        DatumType::F32 => TensorType::Float32,
        DatumType::F64 => TensorType::Float64,
        DatumType::String => TensorType::Str,
        _ => return None,
    })
}

impl Model for OnnxModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn predict(&self, input: &DataFrame) -> Result<DataFrame> {
        let input = self.signature.enforce(input)?;
        let rows = input.height();
        let keep_shape = self.signature.inputs.is_tensor_schema();
        let batches: Vec<DataFrame> = match self.graph.fixed_batch {
            Some(size) if size != rows => {
                if !rows.is_multiple_of(size) {
                    return Err(Error::InvalidArgument(format!(
                        "this ONNX graph takes exactly {size} rows at a time; {rows} rows were given"
                    )));
                }
                (0..rows).step_by(size).map(|start| input.slice(start as i64, size)).collect()
            }
            _ => vec![input],
        };
        let mut columns: Vec<Vec<Column>> = Vec::new();
        for batch in &batches {
            let outputs = self.run(batch)?;
            let converted = self
                .graph
                .outputs
                .iter()
                .zip(outputs.iter())
                .map(|(port, tensor)| {
                    outputs::output_column(
                        &port.name,
                        tensor,
                        batch.height(),
                        self.graph.zipmaps.get(&port.name),
                        keep_shape,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            columns.push(converted);
        }
        let mut parts = columns.into_iter().map(|c| DataFrame::new(c.first().map_or(0, Column::len), c));
        let mut frame = parts.next().transpose()?.unwrap_or_default();
        for part in parts {
            frame.vstack_mut(&part?)?;
        }
        Ok(frame)
    }
}
