//! `OneHotEncoder`: a category (string or integer) as a row of zeros with a one at its
//! index; an unknown category is all zeros, or an error when `zeros` is 0.

use foldhash::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, OutShape, OutType, op};

#[derive(Debug)]
enum Categories {
    Strings(HashMap<String, usize>),
    Ints(HashMap<i64, usize>),
}

#[derive(Debug)]
struct OneHotEncoder {
    categories: Categories,
    width: usize,
    unknown_is_zeros: bool,
}

pub(super) fn parse(_ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let strings: Option<Vec<String>> = node.get_attr_opt_vec("cats_strings")?;
    let ints: Option<Vec<i64>> = node.get_attr_opt_vec("cats_int64s")?;
    // A category listed twice takes its last index, as onnxruntime's map does.
    let (categories, width) = match (strings.filter(|s| !s.is_empty()), ints.filter(|i| !i.is_empty())) {
        (Some(strings), None) => {
            let width = strings.len();
            (Categories::Strings(strings.into_iter().enumerate().map(|(i, s)| (s, i)).collect()), width)
        }
        (None, Some(ints)) => {
            let width = ints.len();
            (Categories::Ints(ints.into_iter().enumerate().map(|(i, v)| (v, i)).collect()), width)
        }
        _ => bail!("OneHotEncoder `{}` needs exactly one of `cats_strings` and `cats_int64s`", node.name),
    };
    let unknown_is_zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    op(
        OneHotEncoder { categories, width, unknown_is_zeros },
        [Out::new(OutType::Fixed(f32::datum_type()), OutShape::Extended(0, width))],
    )
}

impl OneHotEncoder {
    fn index_of<T: std::fmt::Debug>(&self, found: Option<usize>, value: T) -> TractResult<Option<usize>> {
        match found {
            Some(index) => Ok(Some(index)),
            None if self.unknown_is_zeros => Ok(None),
            None => {
                bail!("OneHotEncoder: unknown category {value:?} (the model was exported with handle_unknown='error')")
            }
        }
    }
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let mut shape: TVec<usize> = x.shape().into();
        shape.push(self.width);
        let mut out = vec![0.0f32; x.len() * self.width];
        let mut set = |i: usize, index: Option<usize>| {
            if let Some(index) = index {
                out[i * self.width + index] = 1.0;
            }
        };
        match &self.categories {
            Categories::Strings(map) => {
                ensure!(
                    x.datum_type() == String::datum_type(),
                    "OneHotEncoder with string categories takes strings, not {:?}",
                    x.datum_type()
                );
                for (i, value) in x.try_as_plain_ram()?.as_slice::<String>()?.iter().enumerate() {
                    set(i, self.index_of(map.get(value.as_str()).copied(), value)?);
                }
            }
            Categories::Ints(map) => {
                let values: Vec<i64> = if x.datum_type() == f32::datum_type() || x.datum_type() == f64::datum_type() {
                    // Numbers are truncated to integers, as onnxruntime's static_cast does.
                    x.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.iter().map(|&v| v as i64).collect()
                } else {
                    x.cast_to::<i64>()?.try_as_plain_ram()?.as_slice::<i64>()?.to_vec()
                };
                for (i, value) in values.into_iter().enumerate() {
                    set(i, self.index_of(map.get(&value).copied(), value)?);
                }
            }
        }
        Ok(tvec!(Tensor::from_shape(&shape, &out)?))
    }
}
