//! Reading an ONNX file into a runnable tract plan: external tensors from the package,
//! the operators this crate adds, a symbolic batch dimension, and clear refusals.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use tract_onnx::pb::{GraphProto, ModelProto, TensorProto, ValueInfoProto, tensor_shape_proto, type_proto};
use tract_onnx::prelude::*;

use super::encode::{self, Codes};
use super::ops;
use crate::error::{Error, Result};

/// The batch dimension's symbol.
const BATCH: &str = "N";

/// A graph input or output as the ONNX file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Port {
    pub(crate) name: String,
    /// `None` where the file gives no tensor type (ZipMap's sequence of maps).
    pub(crate) dtype: Option<DatumType>,
    /// Each dimension's size, `None` when variable.
    pub(crate) shape: Option<Vec<Option<usize>>>,
}

/// The class labels of a ZipMap, whose input probabilities a graph output carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZipMapLabels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

/// A loaded graph.
pub(crate) struct Graph {
    pub(crate) plan: Arc<TypedRunnableModel>,
    pub(crate) inputs: Vec<Port>,
    pub(crate) outputs: Vec<Port>,
    /// Graph outputs produced by a ZipMap, by output name.
    pub(crate) zipmaps: BTreeMap<String, ZipMapLabels>,
    /// The number of rows each run takes when the file fixes the batch dimension (a
    /// `torch.onnx.export` without dynamic axes); `None` when any number goes.
    pub(crate) fixed_batch: Option<usize>,
    /// String inputs fed as category codes (see [`encode`]), by input name.
    pub(crate) encoded: BTreeMap<String, Codes>,
}

fn invalid(file: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidPackage(format!("ONNX model `{file}`: {why}"))
}

/// The tract type of an ONNX element type.
pub(crate) fn datum_type(elem_type: i32) -> Option<DatumType> {
    Some(match elem_type {
        1 => DatumType::F32,
        2 => DatumType::U8,
        3 => DatumType::I8,
        4 => DatumType::U16,
        5 => DatumType::I16,
        6 => DatumType::I32,
        7 => DatumType::I64,
        8 => DatumType::String,
        9 => DatumType::Bool,
        10 => DatumType::F16,
        11 => DatumType::F64,
        12 => DatumType::U32,
        13 => DatumType::U64,
        _ => return None,
    })
}

fn port(info: &ValueInfoProto) -> Port {
    let tensor = info.r#type.as_ref().and_then(|t| match &t.value {
        Some(type_proto::Value::TensorType(tensor)) => Some(tensor),
        _ => None,
    });
    let dtype = tensor.and_then(|t| datum_type(t.elem_type));
    let shape = tensor.and_then(|t| t.shape.as_ref()).map(|shape| {
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => Some(v as usize),
                _ => None,
            })
            .collect()
    });
    Port { name: info.name.clone(), dtype, shape }
}

/// Fills every tensor stored outside the ONNX file (`save_as_external_data`, MLflow's
/// default for large weights) from the package's files.
fn resolve_external(graph: &mut GraphProto, files: &BTreeMap<String, Bytes>, base: &str, file: &str) -> Result<()> {
    let fill = |tensor: &mut TensorProto| -> Result<()> {
        if tensor.data_location != Some(1) {
            return Ok(());
        }
        let entry = |key: &str| tensor.external_data.iter().find(|e| e.key == key).map(|e| e.value.clone());
        let location = entry("location")
            .ok_or_else(|| invalid(file, format!("tensor `{}` is external but names no file", tensor.name)))?;
        let number = |key: &str| -> Result<Option<usize>> {
            entry(key)
                .map(|v| {
                    v.parse::<usize>().map_err(|_| invalid(file, format!("tensor `{}`: `{key}` is `{v}`", tensor.name)))
                })
                .transpose()
        };
        let (offset, length) = (number("offset")?.unwrap_or(0), number("length")?);
        if location.split('/').any(|part| part.is_empty() || part == "." || part == "..") || location.contains('\\') {
            return Err(invalid(
                file,
                format!("tensor `{}`: external file `{location}` is outside the model directory", tensor.name),
            ));
        }
        let path = if base.is_empty() { location } else { format!("{base}/{location}") };
        let data = files
            .get(&path)
            .ok_or_else(|| invalid(file, format!("tensor `{}`: external file `{path}` is missing", tensor.name)))?;
        let end = match length {
            Some(length) => offset.checked_add(length),
            None => Some(data.len()),
        };
        let bytes = end.and_then(|end| data.get(offset..end)).ok_or_else(|| {
            invalid(
                file,
                format!(
                    "tensor `{}`: bytes {offset}..{} are beyond `{path}` ({} bytes)",
                    tensor.name,
                    end.unwrap_or(usize::MAX),
                    data.len()
                ),
            )
        })?;
        tensor.raw_data = bytes.to_vec();
        tensor.data_location = None;
        tensor.external_data.clear();
        Ok(())
    };
    for tensor in &mut graph.initializer {
        fill(tensor)?;
    }
    for node in &mut graph.node {
        for attribute in &mut node.attribute {
            if let Some(tensor) = attribute.t.as_mut() {
                fill(tensor)?;
            }
            for tensor in &mut attribute.tensors {
                fill(tensor)?;
            }
            if let Some(inner) = attribute.g.as_mut() {
                resolve_external(inner, files, base, file)?;
            }
            for inner in &mut attribute.graphs {
                resolve_external(inner, files, base, file)?;
            }
        }
    }
    Ok(())
}

/// The operator types of `graph` and its subgraphs that `known` lacks, with a node of each.
fn unsupported(graph: &GraphProto, known: &BTreeSet<&str>, out: &mut BTreeMap<String, (String, String)>) {
    for node in &graph.node {
        if !known.contains(node.op_type.as_str()) {
            out.entry(node.op_type.clone()).or_insert_with(|| (node.domain.clone(), node.name.clone()));
        }
        for attribute in &node.attribute {
            for inner in attribute.g.iter().chain(&attribute.graphs) {
                unsupported(inner, known, out);
            }
        }
    }
}

/// Loads the ONNX file at `path` among `files` (a model directory's files, by relative
/// path), with `fixed` giving the inner dimensions of inputs the file leaves variable.
pub(crate) fn load(files: &BTreeMap<String, Bytes>, path: &str, fixed: &BTreeMap<String, Vec<usize>>) -> Result<Graph> {
    let bytes =
        files.get(path).ok_or_else(|| Error::InvalidPackage(format!("the package has no ONNX file `{path}`")))?;
    let mut onnx = tract_onnx::onnx();
    ops::register(&mut onnx.op_register);
    let mut proto: ModelProto = onnx
        .proto_model_for_read(&mut bytes.as_ref())
        .map_err(|e| invalid(path, format!("not a readable ONNX model ({e})")))?;
    let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let graph = proto.graph.as_mut().ok_or_else(|| invalid(path, "the file holds no graph"))?;
    resolve_external(graph, files, base, path)?;

    let known: BTreeSet<&str> = onnx.op_register.0.keys().map(String::as_str).collect();
    let mut missing = BTreeMap::new();
    unsupported(graph, &known, &mut missing);
    if !missing.is_empty() {
        let list: Vec<String> = missing
            .iter()
            .map(|(op, (domain, node))| {
                let domain = if domain.is_empty() { "ai.onnx" } else { domain };
                format!("`{op}` ({domain}, node `{node}`)")
            })
            .collect();
        return Err(invalid(path, format!("operators not supported here: {}", list.join(", "))));
    }

    let mut zipmaps = BTreeMap::new();
    for node in graph.node.iter().filter(|n| n.op_type == "ZipMap") {
        let ints: Option<Vec<i64>> = node.get_attr_opt_vec("classlabels_int64s").map_err(|e| invalid(path, e))?;
        let strings: Option<Vec<String>> =
            node.get_attr_opt_vec("classlabels_strings").map_err(|e| invalid(path, e))?;
        let labels = match (ints.filter(|v| !v.is_empty()), strings.filter(|v| !v.is_empty())) {
            (Some(ints), None) => ZipMapLabels::Ints(ints),
            (None, Some(strings)) => ZipMapLabels::Strings(strings),
            _ => return Err(invalid(path, format!("ZipMap `{}` needs exactly one list of class labels", node.name))),
        };
        for output in &node.output {
            zipmaps.insert(output.clone(), labels.clone());
        }
    }
    let initializers: BTreeSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    // Ports as the file declares them: an input fed as codes still takes strings.
    let inputs: Vec<Port> = graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).map(port).collect();
    let encoded = encode::encode_string_inputs(graph);
    let outputs: Vec<Port> = graph.output.iter().map(port).collect();
    if inputs.is_empty() {
        return Err(invalid(path, "the graph has no input"));
    }

    let mut model = onnx.model_for_proto_model(&proto).map_err(|e| invalid(path, format!("{e:#}")))?;
    let batch = model.sym(BATCH);
    let fixed_batch = inputs.iter().find_map(|p| p.shape.as_ref().and_then(|s| s.first().copied().flatten()));
    let outlets = model.input_outlets().map_err(|e| invalid(path, e))?.to_vec();
    for (index, outlet) in outlets.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let port = inputs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| invalid(path, format!("input `{name}` is not declared")))?;
        let dtype = if encoded.contains_key(&name) {
            DatumType::I64
        } else {
            port.dtype.ok_or_else(|| invalid(path, format!("input `{name}` has no tensor type")))?
        };
        let declared = port.shape.clone().ok_or_else(|| invalid(path, format!("input `{name}` has no shape")))?;
        let mut dims: Vec<TDim> = Vec::with_capacity(declared.len());
        for (axis, size) in declared.iter().enumerate() {
            dims.push(match (axis, size) {
                (0, _) => fixed_batch.map_or_else(|| batch.to_dim(), |n| n.to_dim()),
                (_, Some(size)) => size.to_dim(),
                (_, None) => match fixed.get(&name).and_then(|inner| inner.get(axis - 1)) {
                    Some(size) => size.to_dim(),
                    None => {
                        return Err(invalid(
                            path,
                            format!("input `{name}` has a variable dimension {axis}; give it a size in the model's tensor signature"),
                        ));
                    }
                },
            });
        }
        model.set_input_fact(index, InferenceFact::dt_shape(dtype, dims)).map_err(|e| invalid(path, e))?;
    }
    let plan = model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| invalid(path, format!("cannot be prepared to run: {e:#}")))?;
    Ok(Graph { plan, inputs, outputs, zipmaps, fixed_batch, encoded })
}
