//! `Sigmoid` (ai.onnx) as onnxruntime computes it in f32: through MLAS's approximation,
//! which differs from tract's near 0 and 1 by far more than 1e-5 relative.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::math::mlas_logistic;
use super::{Kernel, Out, OutShape, OutType, op};

#[derive(Debug)]
struct Sigmoid;

pub(super) fn parse(_ctx: &ParsingContext<'_>, _node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    op(Sigmoid, [Out::new(OutType::Input(0), OutShape::Input(0))])
}

impl Kernel for Sigmoid {
    fn name(&self) -> &'static str {
        "Sigmoid"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let dt = x.datum_type();
        if dt == f32::datum_type() {
            let out: Vec<f32> = x.try_as_plain_ram()?.as_slice::<f32>()?.iter().map(|&v| mlas_logistic(v)).collect();
            Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
        } else if dt == f64::datum_type() {
            let out: Vec<f64> =
                x.try_as_plain_ram()?.as_slice::<f64>()?.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
            Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
        } else {
            bail!("Sigmoid takes float or double input, not {dt:?}")
        }
    }
}
