//! `Imputer`: a stated value (NaN by default for floats) replaced per column.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, OutShape, OutType, op, rows_and_width};

#[derive(Debug)]
enum Replacement {
    Floats { imputed: Vec<f32>, replaced: f32 },
    Ints { imputed: Vec<i64>, replaced: i64 },
}

#[derive(Debug)]
struct Imputer {
    replacement: Replacement,
}

pub(super) fn parse(_ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let floats: Option<Vec<f32>> = node.get_attr_opt_vec("imputed_value_floats")?;
    let ints: Option<Vec<i64>> = node.get_attr_opt_vec("imputed_value_int64s")?;
    let replacement = match (floats.filter(|f| !f.is_empty()), ints.filter(|i| !i.is_empty())) {
        (Some(imputed), None) => {
            Replacement::Floats { imputed, replaced: node.get_attr_opt::<f32>("replaced_value_float")?.unwrap_or(0.0) }
        }
        (None, Some(imputed)) => {
            Replacement::Ints { imputed, replaced: node.get_attr_opt::<i64>("replaced_value_int64")?.unwrap_or(0) }
        }
        _ => bail!("Imputer `{}` needs exactly one of `imputed_value_floats` and `imputed_value_int64s`", node.name),
    };
    op(Imputer { replacement }, [Out::new(OutType::Input(0), OutShape::Input(0))])
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (_, width) = rows_and_width(x, "Imputer")?;
        // A list of one value fills every column; one of another length than the columns
        // fills each with its first value, as onnxruntime does.
        let column = |len: usize, i: usize| if len == width { i % width } else { 0 };
        match &self.replacement {
            Replacement::Floats { imputed, replaced } => {
                ensure!(
                    x.datum_type() == f32::datum_type(),
                    "Imputer with float values takes float input, not {:?}",
                    x.datum_type()
                );
                let values = x.try_as_plain_ram()?.as_slice::<f32>()?;
                let out: Vec<f32> = values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let replace = if replaced.is_nan() { v.is_nan() } else { v == *replaced };
                        if replace { imputed[column(imputed.len(), i)] } else { v }
                    })
                    .collect();
                Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
            }
            Replacement::Ints { imputed, replaced } => {
                ensure!(
                    x.datum_type() == i64::datum_type(),
                    "Imputer with integer values takes int64 input, not {:?}",
                    x.datum_type()
                );
                let values = x.try_as_plain_ram()?.as_slice::<i64>()?;
                let out: Vec<i64> = values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| if v == *replaced { imputed[column(imputed.len(), i)] } else { v })
                    .collect();
                Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
            }
        }
    }
}
