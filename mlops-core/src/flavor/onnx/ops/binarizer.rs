//! `Binarizer`: 1 above the threshold, 0 otherwise.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, op};

#[derive(Debug)]
struct Binarizer {
    threshold: f32,
}

pub(super) fn parse(_ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
    op(Binarizer { threshold }, [Out::floats_like_input()])
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let values = super::floats(x)?;
        if let Some(index) = values.iter().position(|v| v.is_nan()) {
            bail!("Binarizer: input value {index} is NaN");
        }
        let out: Vec<f32> = values.iter().map(|&v| if v > self.threshold { 1.0 } else { 0.0 }).collect();
        Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
    }
}
