//! `LinearClassifier` and `LinearRegressor`: `X · Wᵀ + b`, then a label and a transform.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::math::{PostTransform, compute_logistic, fused, mlas_logistic};
use super::{Kernel, Out, OutShape, OutType, attr_vec, op, rows_and_width};

/// Class labels: integers or strings.
#[derive(Debug, Clone)]
pub(super) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub(super) fn parse(node: &NodeProto) -> TractResult<Self> {
        let ints: Option<Vec<i64>> = node.get_attr_opt_vec("classlabels_ints")?;
        let ints = match ints {
            Some(ints) => Some(ints),
            None => node.get_attr_opt_vec("classlabels_int64s")?,
        };
        let strings: Option<Vec<String>> = node.get_attr_opt_vec("classlabels_strings")?;
        match (ints.filter(|v| !v.is_empty()), strings.filter(|v| !v.is_empty())) {
            (Some(ints), None) => Ok(Self::Ints(ints)),
            (None, Some(strings)) => Ok(Self::Strings(strings)),
            _ => bail!("{} `{}` needs exactly one list of class labels (integers or strings)", node.op_type, node.name),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Ints(v) => v.len(),
            Self::Strings(v) => v.len(),
        }
    }

    pub(super) fn datum_type(&self) -> DatumType {
        match self {
            Self::Ints(_) => i64::datum_type(),
            Self::Strings(_) => String::datum_type(),
        }
    }

    /// The labels at `indices` as a tensor of shape `[indices.len()]`.
    pub(super) fn tensor(&self, indices: &[usize]) -> TractResult<Tensor> {
        Ok(match self {
            Self::Ints(labels) => {
                let out: Vec<i64> = indices.iter().map(|&i| labels[i]).collect();
                Tensor::from_shape(&[out.len()], &out)?
            }
            Self::Strings(labels) => {
                let out: Vec<String> = indices.iter().map(|&i| labels[i].clone()).collect();
                tract_ndarray::Array1::from_vec(out).into_tensor()
            }
        })
    }
}

/// Coefficients `[K, F]` row-major and one intercept per row.
#[derive(Debug)]
struct Linear {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    rows: usize,
    /// Whether every coefficient is finite, which lets zero features be skipped.
    finite: bool,
}

impl Linear {
    fn parse(node: &NodeProto, rows: usize) -> TractResult<Self> {
        let coefficients: Vec<f32> = attr_vec(node, "coefficients")?;
        let intercepts: Vec<f32> = node.get_attr_opt_vec("intercepts")?.unwrap_or_default();
        // Each output takes at least one coefficient, which also bounds the outputs.
        ensure!(
            rows > 0 && rows <= coefficients.len() && coefficients.len().is_multiple_of(rows),
            "{} `{}`: {} coefficients do not make {rows} rows",
            node.op_type,
            node.name,
            coefficients.len()
        );
        let finite = coefficients.iter().all(|w| w.is_finite());
        Ok(Self { coefficients, intercepts, rows, finite })
    }

    /// `X · Wᵀ + b` as MLAS computes it: for each output, a chain of fused multiply-adds
    /// over the features starting from zero, then the intercept added. A zero feature
    /// leaves the chain as it is when the weights are finite (`fma(0, w, acc) == acc`),
    /// so zeros (most of a one-hot row) are skipped.
    fn scores(&self, x: &[f32], rows: usize, width: usize) -> TractResult<Vec<f32>> {
        ensure!(
            self.rows.checked_mul(width) == Some(self.coefficients.len()),
            "{} coefficients for {width} features and {} outputs",
            self.coefficients.len(),
            self.rows
        );
        let mut out = vec![0.0f32; super::output_len("linear model", rows, self.rows)?];
        let use_intercepts = self.intercepts.len() == self.rows;
        // The features a row's chains take, found once per row for every output.
        let mut taken: Vec<(usize, f32)> = Vec::with_capacity(width);
        for (row, scores) in x.chunks(width.max(1)).zip(out.chunks_mut(self.rows)) {
            taken.clear();
            taken.extend(row.iter().copied().enumerate().filter(|(_, a)| !self.finite || *a != 0.0));
            for (k, score) in scores.iter_mut().enumerate() {
                let weights = &self.coefficients[k * width..(k + 1) * width];
                let dot = taken.iter().fold(0.0f32, |acc, &(j, a)| fused(a, weights[j], acc));
                *score = if use_intercepts { dot + self.intercepts[k] } else { dot };
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
struct LinearClassifier {
    linear: Linear,
    labels: Labels,
    transform: PostTransform,
}

fn transform(node: &NodeProto) -> TractResult<PostTransform> {
    let name = node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE");
    PostTransform::parse(name)
        .with_context(|| format!("{} `{}`: unknown post_transform `{name}`", node.op_type, node.name))
}

pub(super) fn parse_classifier(
    _ctx: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = Labels::parse(node)?;
    let intercepts: Option<Vec<f32>> = node.get_attr_opt_vec("intercepts")?;
    let coefficients: Vec<f32> = attr_vec(node, "coefficients")?;
    // One row of coefficients per class, or one row for two classes.
    let rows = match intercepts.as_ref().map(Vec::len) {
        Some(n) if n > 0 => n,
        _ if labels.len() == 2 && !coefficients.len().is_multiple_of(2) => 1,
        _ => labels.len(),
    };
    let linear = Linear::parse(node, rows)?;
    let transform = transform(node)?;
    if rows == 1 {
        ensure!(
            labels.len() == 2,
            "LinearClassifier `{}` has one row of coefficients for {} labels",
            node.name,
            labels.len()
        );
        ensure!(
            matches!(transform, PostTransform::None | PostTransform::Logistic),
            "LinearClassifier `{}`: post_transform {transform:?} with one row of coefficients is not supported",
            node.name
        );
    } else {
        ensure!(
            rows == labels.len(),
            "LinearClassifier `{}` has {rows} rows of coefficients for {} labels",
            node.name,
            labels.len()
        );
    }
    let width = if rows == 1 { 2 } else { rows };
    let label_type = labels.datum_type();
    op(
        LinearClassifier { linear, labels, transform },
        [
            Out::new(OutType::Fixed(label_type), OutShape::Rows(vec![])),
            Out::new(OutType::Fixed(f32::datum_type()), OutShape::Rows(vec![width])),
        ],
    )
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (rows, width) = rows_and_width(x, "LinearClassifier")?;
        let values = super::floats(x)?;
        let scores = self.linear.scores(&values, rows, width)?;
        let k = self.linear.rows;
        let mut chosen = Vec::with_capacity(rows);
        let probabilities = if k == 1 {
            // One score for two classes: the second class wins on a positive score.
            let mut out = Vec::with_capacity(rows * 2);
            for &s in &scores {
                chosen.push(usize::from(s > 0.0));
                let p = if self.transform == PostTransform::Logistic { compute_logistic(s) } else { s };
                out.extend([1.0 - p, p]);
            }
            out
        } else {
            let mut out = scores;
            for row in out.chunks_mut(k) {
                // The first strict maximum of the raw scores.
                let best = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
                chosen.push(best);
                match self.transform {
                    PostTransform::Logistic => row.iter_mut().for_each(|v| *v = mlas_logistic(*v)),
                    other => other.apply(row),
                }
            }
            out
        };
        let width = probabilities.len() / rows.max(1);
        Ok(tvec!(self.labels.tensor(&chosen)?, Tensor::from_shape(&[rows, width], &probabilities)?))
    }
}

#[derive(Debug)]
struct LinearRegressor {
    linear: Linear,
    transform: PostTransform,
}

pub(super) fn parse_regressor(
    _ctx: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let targets = node.get_attr_opt::<usize>("targets")?.unwrap_or(1);
    let linear = Linear::parse(node, targets)?;
    op(
        LinearRegressor { linear, transform: transform(node)? },
        [Out::new(OutType::Fixed(f32::datum_type()), OutShape::Rows(vec![targets]))],
    )
}

impl Kernel for LinearRegressor {
    fn name(&self) -> &'static str {
        "LinearRegressor"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let x = &inputs[0];
        let (rows, width) = rows_and_width(x, "LinearRegressor")?;
        let values = super::floats(x)?;
        let mut scores = self.linear.scores(&values, rows, width)?;
        let targets = self.linear.rows;
        for row in scores.chunks_mut(targets) {
            match self.transform {
                PostTransform::Logistic => row.iter_mut().for_each(|v| *v = mlas_logistic(*v)),
                other => other.apply(row),
            }
        }
        Ok(tvec!(Tensor::from_shape(&[rows, targets], &scores)?))
    }
}
