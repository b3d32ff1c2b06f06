//! `Scaler`: `(x - offset) * scale` per column.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, attr_vec, op, rows_and_width};

#[derive(Debug)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

pub(super) fn parse(_ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset: Vec<f32> = attr_vec(node, "offset")?;
    let scale: Vec<f32> = attr_vec(node, "scale")?;
    ensure!(
        !offset.is_empty() && offset.len() == scale.len(),
        "Scaler `{}`: `offset` and `scale` must have one value each per column (or one for all), got {} and {}",
        node.name,
        offset.len(),
        scale.len()
    );
    op(Scaler { offset, scale }, [Out::floats_like_input()])
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (_, width) = rows_and_width(x, "Scaler")?;
        let params = self.offset.len();
        ensure!(params == 1 || params == width, "Scaler has {params} offsets for {width} columns");
        let column = |i: usize| if params == 1 { 0 } else { i % width };
        // onnxruntime computes in the input's type (f32 for floats and integers, f64 for
        // doubles) and rounds once to f32.
        let out: Vec<f32> = if x.datum_type() == f64::datum_type() {
            let values = x.try_as_plain_ram()?.as_slice::<f64>()?;
            values
                .iter()
                .enumerate()
                .map(|(i, &v)| ((v - f64::from(self.offset[column(i)])) * f64::from(self.scale[column(i)])) as f32)
                .collect()
        } else {
            let values = super::floats(x)?;
            values.iter().enumerate().map(|(i, &v)| (v - self.offset[column(i)]) * self.scale[column(i)]).collect()
        };
        Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
    }
}
