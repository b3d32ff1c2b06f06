//! `FeatureVectorizer`: several inputs side by side in one float matrix.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{Kernel, Out, OutShape, OutType, attr_vec, op, output_len, row_width, rows_and_width};

#[derive(Debug)]
struct FeatureVectorizer {
    dimensions: Vec<usize>,
}

pub(super) fn parse(_ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let dimensions: Vec<usize> = attr_vec(node, "inputdimensions")?;
    ensure!(
        dimensions.len() == node.input.len(),
        "FeatureVectorizer `{}` has {} inputs but {} input dimensions",
        node.name,
        node.input.len(),
        dimensions.len()
    );
    ensure!(!dimensions.is_empty(), "FeatureVectorizer `{}` has no inputs", node.name);
    let total = dimensions.iter().try_fold(0usize, |total, &d| total.checked_add(d)).unwrap_or(usize::MAX);
    let total = row_width(node, "features", total)?;
    op(FeatureVectorizer { dimensions }, [Out::new(OutType::Fixed(f32::datum_type()), OutShape::Rows(vec![total]))])
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }

    fn inputs(&self) -> (usize, bool) {
        (1, true)
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        ensure!(inputs.len() == self.dimensions.len(), "FeatureVectorizer takes {} inputs", self.dimensions.len());
        let rows = match inputs[0].shape() {
            [] => 1,
            [n, ..] if inputs[0].rank() > 1 => *n,
            _ => 1,
        };
        let total: usize = self.dimensions.iter().sum();
        let mut out = vec![0.0f32; output_len("FeatureVectorizer", rows, total)?];
        let mut offset = 0;
        for (input, &dimension) in inputs.iter().zip(&self.dimensions) {
            let (input_rows, width) = rows_and_width(input, "FeatureVectorizer")?;
            ensure!(input_rows == rows, "FeatureVectorizer inputs have {rows} and {input_rows} rows");
            let values = super::floats(input)?;
            // Extra columns are dropped, missing ones stay zero.
            let taken = width.min(dimension);
            for row in 0..rows {
                out[row * total + offset..][..taken].copy_from_slice(&values[row * width..][..taken]);
            }
            offset += dimension;
        }
        Ok(tvec!(Tensor::from_shape(&[rows, total], &out)?))
    }
}
