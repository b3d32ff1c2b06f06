//! `Normalizer`: each row divided by its maximum, L1 or L2 norm.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, op, rows_and_width};

#[derive(Debug, Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug)]
struct Normalizer {
    norm: Norm,
}

pub(super) fn parse(_ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let norm = match node.get_attr_opt::<&str>("norm")?.unwrap_or("MAX") {
        "MAX" => Norm::Max,
        "L1" => Norm::L1,
        "L2" => Norm::L2,
        other => bail!("Normalizer `{}`: unknown norm `{other}` (MAX, L1 or L2)", node.name),
    };
    op(Normalizer { norm }, [Out::floats_like_input()])
}

impl Kernel for Normalizer {
    fn name(&self) -> &'static str {
        "Normalizer"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (_, width) = rows_and_width(x, "Normalizer")?;
        let mut out = super::floats(x)?.into_owned();
        for row in out.chunks_mut(width.max(1)) {
            normalize(self.norm, row);
        }
        Ok(tvec!(Tensor::from_shape(x.shape(), &out)?))
    }
}

/// One row, as onnxruntime normalizes it: the signed maximum (not the largest magnitude),
/// norms summed in order in f32, L2 as `sign(x) * sqrt(x² / Σx²)`; a row whose divisor is
/// zero is left as it is.
fn normalize(norm: Norm, row: &mut [f32]) {
    match norm {
        Norm::Max => {
            let max = row.iter().copied().fold(-f32::MAX, |m, v| if v > m { v } else { m });
            if max != 0.0 {
                row.iter_mut().for_each(|v| *v /= max);
            }
        }
        Norm::L1 => {
            let sum: f32 = row.iter().map(|v| v.abs()).fold(0.0, |s, v| s + v);
            if sum != 0.0 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Norm::L2 => {
            let sum: f32 = row.iter().map(|v| v * v).fold(0.0, |s, v| s + v);
            if sum != 0.0 {
                row.iter_mut().for_each(|v| {
                    let magnitude = (*v * *v / sum).sqrt();
                    *v = if *v < 0.0 { -magnitude } else { magnitude };
                });
            }
        }
    }
}
