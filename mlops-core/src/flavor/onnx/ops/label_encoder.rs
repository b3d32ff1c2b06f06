//! `LabelEncoder`: values mapped through a table of keys, a default for the rest.

use foldhash::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, OutShape, OutType, op};

/// A key: floats by their bits, with every NaN one key (a NaN key matches NaN inputs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Str(String),
    Int(i64),
    Float(u32),
}

fn float_key(v: f32) -> Key {
    Key::Float(if v.is_nan() { f32::NAN.to_bits() } else { (v + 0.0).to_bits() })
}

#[derive(Debug, Clone)]
enum Values {
    Strings(Vec<String>, String),
    Ints(Vec<i64>, i64),
    Floats(Vec<f32>, f32),
}

#[derive(Debug)]
struct LabelEncoder {
    lookup: HashMap<Key, usize>,
    values: Values,
}

pub(super) fn parse(ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let strings = |name: &str| -> TractResult<Option<Vec<String>>> {
        Ok(node.get_attr_opt_vec::<String>(name)?.filter(|v| !v.is_empty()))
    };
    let ints = |name: &str| -> TractResult<Option<Vec<i64>>> {
        Ok(node.get_attr_opt_vec::<i64>(name)?.filter(|v| !v.is_empty()))
    };
    let floats = |name: &str| -> TractResult<Option<Vec<f32>>> {
        Ok(node.get_attr_opt_vec::<f32>(name)?.filter(|v| !v.is_empty()))
    };
    let tensor = |name: &str| -> TractResult<Option<Tensor>> {
        node.get_attr_opt::<&tract_onnx::pb::TensorProto>(name)?.map(|t| ctx.load_tensor(t)).transpose()
    };

    if let Some(classes) = strings("classes_strings")? {
        return parse_classes(node, classes);
    }

    let keys: Vec<Key> = if let Some(k) = strings("keys_strings")? {
        k.into_iter().map(Key::Str).collect()
    } else if let Some(k) = ints("keys_int64s")? {
        k.into_iter().map(Key::Int).collect()
    } else if let Some(k) = floats("keys_floats")? {
        k.into_iter().map(float_key).collect()
    } else if let Some(t) = tensor("keys_tensor")? {
        tensor_keys(&t)?
    } else {
        bail!("LabelEncoder `{}` has no keys", node.name)
    };
    let default = tensor("default_tensor")?;
    let values = if let Some(v) = strings("values_strings")? {
        Values::Strings(v, node.get_attr_opt::<String>("default_string")?.unwrap_or_else(|| "_Unused".into()))
    } else if let Some(v) = ints("values_int64s")? {
        Values::Ints(v, node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1))
    } else if let Some(v) = floats("values_floats")? {
        Values::Floats(v, node.get_attr_opt::<f32>("default_float")?.unwrap_or(-0.0))
    } else if let Some(t) = tensor("values_tensor")? {
        tensor_values(&t, default.as_ref())?
    } else {
        bail!("LabelEncoder `{}` has no values", node.name)
    };
    let count = match &values {
        Values::Strings(v, _) => v.len(),
        Values::Ints(v, _) => v.len(),
        Values::Floats(v, _) => v.len(),
    };
    ensure!(count == keys.len(), "LabelEncoder `{}` has {} keys but {count} values", node.name, keys.len());
    let dtype = match &values {
        Values::Strings(..) => String::datum_type(),
        Values::Ints(..) => i64::datum_type(),
        Values::Floats(..) => f32::datum_type(),
    };
    // The last of repeated keys wins.
    let lookup = keys.into_iter().enumerate().map(|(i, k)| (k, i)).collect();
    op(LabelEncoder { lookup, values }, [Out::new(OutType::Fixed(dtype), OutShape::Input(0))])
}

/// ai.onnx.ml opset 1's form: strings to their index in `classes_strings`, and indices
/// back to strings, the direction set by the input's type.
#[derive(Debug)]
struct ClassLabels {
    classes: Vec<String>,
    index: HashMap<String, i64>,
    default_index: i64,
    default_class: String,
}

fn parse_classes(node: &NodeProto, classes: Vec<String>) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    // The first of repeated classes wins, as onnxruntime builds its map.
    let mut index = HashMap::default();
    for (i, class) in classes.iter().enumerate() {
        index.entry(class.clone()).or_insert(i64::try_from(i)?);
    }
    let labels = ClassLabels {
        classes,
        index,
        default_index: node.get_attr_opt::<i64>("default_int64")?.unwrap_or(-1),
        default_class: node.get_attr_opt::<String>("default_string")?.unwrap_or_else(|| "_Unused".into()),
    };
    op(labels, [Out::new(OutType::Relabelled(0), OutShape::Input(0))])
}

impl Kernel for ClassLabels {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let shape = x.shape();
        Ok(tvec!(if x.datum_type() == String::datum_type() {
            let strings = x.try_as_plain_ram()?.as_slice::<String>()?;
            let out: Vec<i64> =
                strings.iter().map(|s| self.index.get(s).copied().unwrap_or(self.default_index)).collect();
            Tensor::from_shape(shape, &out)?
        } else {
            let ints = x.cast_to::<i64>()?;
            let out: Vec<String> = ints
                .try_as_plain_ram()?
                .as_slice::<i64>()?
                .iter()
                .map(|&i| {
                    usize::try_from(i).ok().and_then(|i| self.classes.get(i)).unwrap_or(&self.default_class).clone()
                })
                .collect();
            tract_ndarray::Array::from_shape_vec(shape, out)?.into_tensor()
        }))
    }
}

fn tensor_keys(t: &Tensor) -> TractResult<Vec<Key>> {
    let dt = t.datum_type();
    Ok(if dt == String::datum_type() {
        t.try_as_plain_ram()?.as_slice::<String>()?.iter().cloned().map(Key::Str).collect()
    } else if dt.is_integer() {
        t.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.iter().copied().map(Key::Int).collect()
    } else {
        t.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.iter().copied().map(float_key).collect()
    })
}

fn tensor_values(t: &Tensor, default: Option<&Tensor>) -> TractResult<Values> {
    let dt = t.datum_type();
    Ok(if dt == String::datum_type() {
        let d = default.and_then(|d| d.try_as_plain_ram().ok()?.as_slice::<String>().ok()?.first().cloned());
        Values::Strings(t.try_as_plain_ram()?.as_slice::<String>()?.to_vec(), d.unwrap_or_else(|| "_Unused".into()))
    } else if dt.is_integer() {
        let d = default.map(|d| d.cast_to_scalar::<i64>()).transpose()?;
        Values::Ints(t.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.to_vec(), d.unwrap_or(-1))
    } else {
        let d = default.map(|d| d.cast_to_scalar::<f32>()).transpose()?;
        Values::Floats(t.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec(), d.unwrap_or(-0.0))
    })
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let dt = x.datum_type();
        let keys: Vec<Key> = if dt == String::datum_type() {
            x.try_as_plain_ram()?.as_slice::<String>()?.iter().cloned().map(Key::Str).collect()
        } else if dt.is_integer() {
            x.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.iter().copied().map(Key::Int).collect()
        } else {
            x.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.iter().copied().map(float_key).collect()
        };
        let found = keys.iter().map(|k| self.lookup.get(k).copied());
        let shape = x.shape();
        Ok(tvec!(match &self.values {
            Values::Strings(values, default) => {
                let out: Vec<String> =
                    found.map(|i| i.map_or_else(|| default.clone(), |i| values[i].clone())).collect();
                tract_ndarray::Array::from_shape_vec(shape, out)?.into_tensor()
            }
            Values::Ints(values, default) => {
                let out: Vec<i64> = found.map(|i| i.map_or(*default, |i| values[i])).collect();
                Tensor::from_shape(shape, &out)?
            }
            Values::Floats(values, default) => {
                let out: Vec<f32> = found.map(|i| i.map_or(*default, |i| values[i])).collect();
                Tensor::from_shape(shape, &out)?
            }
        }))
    }
}
