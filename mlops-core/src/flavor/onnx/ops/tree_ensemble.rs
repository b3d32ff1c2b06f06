//! `TreeEnsembleClassifier` and `TreeEnsembleRegressor` on the crate's flattened forests,
//! with onnxruntime's rules for combining leaves, base values, binary classes and
//! transforms.

use std::collections::{BTreeSet, HashMap};

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::linear::Labels;
use super::math::{PostTransform, compute_logistic};
use super::{Kernel, Out, OutShape, OutType, attr_vec, op, rows_and_width};
use crate::trees::{Aggregate, Forest, NodeSpec, Score, Scored, Split};

/// The attributes both operators share: the nodes, the leaves' weights, base values.
#[derive(Debug)]
pub(super) struct Ensemble {
    forest: Forest,
    /// Thresholds and weights in f64 (`*_as_tensor` attributes): scores are summed in f64.
    double: bool,
    base_values: Vec<f64>,
    transform: PostTransform,
    /// How many scores a row has: classes or targets.
    width: usize,
}

/// Reads a float list attribute, or its double `_as_tensor` form.
fn floats_or_tensor(ctx: &ParsingContext<'_>, node: &NodeProto, name: &str) -> TractResult<Option<(Vec<f64>, bool)>> {
    let tensor_name = format!("{name}_as_tensor");
    if let Some(tensor) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&tensor_name)? {
        let tensor = ctx.load_tensor(tensor)?;
        let values = tensor.cast_to::<f64>()?.try_as_plain_ram()?.as_slice::<f64>()?.to_vec();
        return Ok(Some((values, true)));
    }
    Ok(node.get_attr_opt_vec::<f32>(name)?.map(|v| (v.into_iter().map(f64::from).collect(), false)))
}

fn split(mode: &str, node: &NodeProto) -> TractResult<Option<Split>> {
    Ok(Some(match mode {
        "BRANCH_LEQ" => Split::Leq,
        "BRANCH_LT" => Split::Lt,
        "BRANCH_GTE" => Split::Gte,
        "BRANCH_GT" => Split::Gt,
        "BRANCH_EQ" => Split::Eq,
        "BRANCH_NEQ" => Split::Neq,
        "LEAF" => return Ok(None),
        other => bail!("{} `{}`: unknown node mode `{other}`", node.op_type, node.name),
    }))
}

impl Ensemble {
    /// `prefix` is `class` or `target`.
    fn parse(ctx: &ParsingContext<'_>, node: &NodeProto, prefix: &str, width: usize) -> TractResult<Self> {
        let op = &node.op_type;
        let tree_ids: Vec<i64> = attr_vec(node, "nodes_treeids")?;
        let node_ids: Vec<i64> = attr_vec(node, "nodes_nodeids")?;
        let features: Vec<i64> = attr_vec(node, "nodes_featureids")?;
        let modes: Vec<String> = attr_vec(node, "nodes_modes")?;
        let true_ids: Vec<i64> = attr_vec(node, "nodes_truenodeids")?;
        let false_ids: Vec<i64> = attr_vec(node, "nodes_falsenodeids")?;
        let (thresholds, double_thresholds) = floats_or_tensor(ctx, node, "nodes_values")?
            .with_context(|| format!("{op} `{}` has no `nodes_values`", node.name))?;
        let missing: Vec<i64> = node.get_attr_opt_vec("nodes_missing_value_tracks_true")?.unwrap_or_default();
        let n = tree_ids.len();
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_modes", modes.len()),
            ("nodes_truenodeids", true_ids.len()),
            ("nodes_falsenodeids", false_ids.len()),
            ("nodes_values", thresholds.len()),
        ] {
            ensure!(len == n, "{op} `{}`: `{name}` has {len} entries for {n} nodes", node.name);
        }
        ensure!(
            missing.is_empty() || missing.len() == n,
            "{op} `{}`: `nodes_missing_value_tracks_true` has {} entries for {n} nodes",
            node.name,
            missing.len()
        );

        let weight_trees: Vec<i64> = attr_vec(node, &format!("{prefix}_treeids"))?;
        let weight_nodes: Vec<i64> = attr_vec(node, &format!("{prefix}_nodeids"))?;
        let weight_targets: Vec<i64> = attr_vec(node, &format!("{prefix}_ids"))?;
        let (weights, double_weights) = floats_or_tensor(ctx, node, &format!("{prefix}_weights"))?
            .with_context(|| format!("{op} `{}` has no `{prefix}_weights`", node.name))?;
        let m = weight_trees.len();
        ensure!(
            weight_nodes.len() == m && weight_targets.len() == m && weights.len() == m,
            "{op} `{}`: the `{prefix}_*` attributes have different lengths",
            node.name
        );
        // Each leaf's weights, in the order the attributes list them.
        let mut leaf_weights: HashMap<(i64, i64), Vec<(usize, f64)>> = HashMap::new();
        for i in 0..m {
            let target = usize::try_from(weight_targets[i]).ok().filter(|&t| t < width).with_context(|| {
                format!("{op} `{}`: {prefix} id {} is outside 0..{width}", node.name, weight_targets[i])
            })?;
            leaf_weights.entry((weight_trees[i], weight_nodes[i])).or_default().push((target, weights[i]));
        }

        // Trees in the order their first node appears; a tree's first node is its root.
        let mut order: Vec<i64> = Vec::new();
        let mut trees: HashMap<i64, Vec<(i64, NodeSpec)>> = HashMap::new();
        let mut max_feature = 0usize;
        for i in 0..n {
            let spec = match split(&modes[i], node)? {
                Some(split) => {
                    let feature = usize::try_from(features[i])
                        .with_context(|| format!("{op} `{}`: negative feature id {}", node.name, features[i]))?;
                    max_feature = max_feature.max(feature + 1);
                    NodeSpec::Branch {
                        feature,
                        threshold: thresholds[i],
                        split,
                        missing_true: missing.get(i).is_some_and(|&m| m != 0),
                        true_id: true_ids[i],
                        false_id: false_ids[i],
                    }
                }
                None => {
                    let weights = leaf_weights.remove(&(tree_ids[i], node_ids[i])).with_context(|| {
                        format!("{op} `{}`: leaf {} of tree {} has no weight", node.name, node_ids[i], tree_ids[i])
                    })?;
                    NodeSpec::Leaf(weights)
                }
            };
            let tree = trees.entry(tree_ids[i]).or_insert_with(|| {
                order.push(tree_ids[i]);
                Vec::new()
            });
            tree.push((node_ids[i], spec));
        }
        let trees: Vec<Vec<(i64, NodeSpec)>> = order.iter().map(|id| trees.remove(id).unwrap_or_default()).collect();
        let forest = Forest::new(trees, max_feature, width).map_err(|e| format_err!("{op} `{}`: {e}", node.name))?;

        let base_values = floats_or_tensor(ctx, node, "base_values")?.map(|(v, _)| v).unwrap_or_default();
        let name = node.get_attr_opt::<&str>("post_transform")?.unwrap_or("NONE");
        let transform = PostTransform::parse(name)
            .with_context(|| format!("{op} `{}`: unknown post_transform `{name}`", node.name))?;
        Ok(Self { forest, double: double_thresholds || double_weights, base_values, transform, width })
    }

    /// Every row's combined leaves, in f64 whatever the summation type was.
    fn score(
        &self,
        x: &Tensor,
        aggregate: Aggregate,
        first_weight_only: bool,
    ) -> TractResult<(usize, Vec<Scored<f64>>)> {
        let (rows, width) = rows_and_width(x, "a tree ensemble")?;
        ensure!(
            width >= self.forest.features(),
            "the trees read feature {} but the input has {width} columns",
            self.forest.features().saturating_sub(1)
        );
        let mut out = Vec::new();
        if self.double {
            self.run::<f64>(x, rows, width, aggregate, first_weight_only, &mut out)?;
        } else {
            self.run::<f32>(x, rows, width, aggregate, first_weight_only, &mut out)?;
        }
        Ok((rows, out))
    }

    fn run<S: Score + Into<f64>>(
        &self,
        x: &Tensor,
        rows: usize,
        width: usize,
        aggregate: Aggregate,
        first_weight_only: bool,
        out: &mut Vec<Scored<f64>>,
    ) -> TractResult<()> {
        let mut scores =
            vec![Scored { value: S::ZERO, has_value: false }; super::output_len("tree ensemble", rows, self.width)?];
        // Compared as onnxruntime compares them: double inputs in double, everything else
        // as f32 (integers are converted to float).
        if x.datum_type() == f64::datum_type() {
            self.forest.score(
                x.try_as_plain_ram()?.as_slice::<f64>()?,
                width,
                aggregate,
                first_weight_only,
                &mut scores,
            )?;
        } else {
            self.forest.score(&super::floats(x)?, width, aggregate, first_weight_only, &mut scores)?;
        }
        out.extend(scores.into_iter().map(|s| Scored { value: s.value.into(), has_value: s.has_value }));
        Ok(())
    }
}

#[derive(Debug)]
struct TreeEnsembleClassifier {
    ensemble: Ensemble,
    labels: Labels,
    /// Two labels and every weight on one class: the other class's score is derived.
    binary: bool,
    all_positive: bool,
}

pub(super) fn parse_classifier(
    ctx: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = Labels::parse(node)?;
    let classes = super::row_width(node, "classes", labels.len())?;
    // onnxruntime needs two labels as well: a binary model lists both of its classes.
    ensure!(classes >= 2, "TreeEnsembleClassifier `{}` lists {classes} class label; it takes at least two", node.name);
    let ensemble = Ensemble::parse(ctx, node, "class", classes)?;
    let ids: BTreeSet<usize> = ensemble.forest.leaf_weights().map(|(t, _)| t).collect();
    let binary = classes == 2 && ids.len() == 1;
    if binary && ensemble.transform == PostTransform::Probit {
        bail!("TreeEnsembleClassifier `{}`: PROBIT on a binary ensemble is not supported", node.name);
    }
    let all_positive = ensemble.forest.leaf_weights().all(|(_, w)| w >= 0.0);
    let label_type = labels.datum_type();
    op(
        TreeEnsembleClassifier { ensemble, labels, binary, all_positive },
        [
            Out::new(OutType::Fixed(label_type), OutShape::Rows(vec![])),
            Out::new(OutType::Fixed(f32::datum_type()), OutShape::Rows(vec![classes])),
        ],
    )
}

impl TreeEnsembleClassifier {
    /// One row's label index and probabilities, as onnxruntime's classifier aggregator
    /// finalizes them.
    fn finalize(&self, scores: &mut [Scored<f64>], out: &mut Vec<f32>) -> TractResult<usize> {
        let base = &self.ensemble.base_values;
        let transform = self.ensemble.transform;
        if scores.len() > 2 {
            for (k, &b) in base.iter().enumerate().take(scores.len()) {
                scores[k].value = if scores[k].has_value { scores[k].value + b } else { b };
                scores[k].has_value = true;
            }
            let mut best: Option<usize> = None;
            for (k, s) in scores.iter().enumerate() {
                if s.has_value && best.is_none_or(|b| s.value > scores[b].value) {
                    best = Some(k);
                }
            }
            let best = best.context("no tree gave any class a score")?;
            let start = out.len();
            out.extend(scores.iter().map(|s| if s.has_value { s.value as f32 } else { 0.0 }));
            transform.apply(&mut out[start..]);
            return Ok(best);
        }
        // Two classes.
        let single = match base.len() {
            2 if scores[1].has_value => {
                scores[1].value = base[1] + scores[0].value;
                scores[0].value = -scores[1].value;
                false
            }
            2 => {
                scores[1].value += base[1];
                scores[0].value += base[0];
                false
            }
            1 => {
                scores[0].value += base[0];
                !scores[1].has_value
            }
            _ => !scores[1].has_value,
        };
        let positive = if !single && scores[1].has_value {
            scores[1].value
        } else if scores[0].has_value {
            scores[0].value
        } else {
            0.0
        };
        let (label, derived) = if self.binary {
            if self.all_positive { (usize::from(positive > 0.5), false) } else { (usize::from(positive > 0.0), true) }
        } else {
            (usize::from(positive > 0.0), true)
        };
        if single {
            let s = scores[0].value as f32;
            match (derived, transform) {
                (false, PostTransform::Logistic) => {
                    let p = compute_logistic(s);
                    out.extend([1.0 - p, p]);
                }
                (false, _) => out.extend([1.0 - s, s]),
                (true, PostTransform::Logistic) => out.extend([compute_logistic(-s), compute_logistic(s)]),
                (true, _) => out.extend([-s, s]),
            }
        } else {
            let start = out.len();
            out.extend(scores.iter().map(|s| s.value as f32));
            transform.apply(&mut out[start..]);
        }
        Ok(label)
    }
}

impl Kernel for TreeEnsembleClassifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let (rows, mut scores) = self.ensemble.score(&inputs[0], Aggregate::Sum, false)?;
        let classes = self.labels.len();
        let mut probabilities = Vec::with_capacity(rows * classes);
        let mut chosen = Vec::with_capacity(rows);
        for row in scores.chunks_mut(classes) {
            chosen.push(self.finalize(row, &mut probabilities)?);
        }
        Ok(tvec!(self.labels.tensor(&chosen)?, Tensor::from_shape(&[rows, classes], &probabilities)?))
    }
}

#[derive(Debug)]
pub(super) struct TreeEnsembleRegressor {
    ensemble: Ensemble,
    aggregate: Aggregate,
}

impl TreeEnsembleRegressor {
    /// The regressor of opset 5's `TreeEnsemble`: single-precision trees, no base values.
    pub(super) fn from_forest(forest: Forest, targets: usize, transform: PostTransform, aggregate: Aggregate) -> Self {
        let ensemble = Ensemble { forest, double: false, base_values: Vec::new(), transform, width: targets };
        Self { ensemble, aggregate }
    }
}

pub(super) fn parse_regressor(
    ctx: &ParsingContext<'_>,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let targets = super::row_width(node, "targets", node.get_attr_opt::<usize>("n_targets")?.unwrap_or(1).max(1))?;
    let aggregate = match node.get_attr_opt::<&str>("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("TreeEnsembleRegressor `{}`: unknown aggregate function `{other}`", node.name),
    };
    let ensemble = Ensemble::parse(ctx, node, "target", targets)?;
    op(
        TreeEnsembleRegressor { ensemble, aggregate },
        [Out::new(OutType::Fixed(f32::datum_type()), OutShape::Rows(vec![targets]))],
    )
}

impl Kernel for TreeEnsembleRegressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }

    fn eval(&self, inputs: &[TValue]) -> TractResult<TVec<Tensor>> {
        let ensemble = &self.ensemble;
        let targets = ensemble.width;
        // onnxruntime's single-target path reads each leaf's first weight only.
        let (rows, scores) = ensemble.score(&inputs[0], self.aggregate, targets == 1)?;
        let mut out = Vec::with_capacity(rows * targets);
        // The arithmetic after the sums happens in the type they were summed in.
        if ensemble.double {
            self.finalize::<f64>(&scores, &mut out);
        } else {
            self.finalize::<f32>(&scores, &mut out);
        }
        Ok(tvec!(Tensor::from_shape(&[rows, targets], &out)?))
    }
}

impl TreeEnsembleRegressor {
    /// Base values, averages and transforms, as onnxruntime's regression aggregators apply
    /// them, in `S`.
    fn finalize<S: Score>(&self, scores: &[Scored<f64>], out: &mut Vec<f32>) {
        let ensemble = &self.ensemble;
        let targets = ensemble.width;
        let trees = S::from_usize(ensemble.forest.trees().max(1));
        let base: Vec<S> = ensemble.base_values.iter().map(|&b| S::from_f64(b)).collect();
        for row in scores.chunks(targets) {
            let value = |s: &Scored<f64>| S::from_f64(s.value);
            if targets == 1 {
                let origin = if base.len() == 1 { base[0] } else { S::ZERO };
                let s = &row[0];
                let result = match self.aggregate {
                    Aggregate::Sum => value(s) + origin,
                    Aggregate::Average => value(s) / trees + origin,
                    Aggregate::Min | Aggregate::Max if s.has_value => value(s) + origin,
                    Aggregate::Min | Aggregate::Max => origin,
                }
                .to_f32();
                // onnxruntime applies only PROBIT to a single target (LOGISTIC and SOFTMAX
                // are ignored there), and these outputs must be onnxruntime's.
                out.push(if ensemble.transform == PostTransform::Probit {
                    super::math::compute_probit(result)
                } else {
                    result
                });
                continue;
            }
            let use_base = base.len() == targets;
            let start = out.len();
            for (k, s) in row.iter().enumerate() {
                let b = if use_base { base[k] } else { S::ZERO };
                out.push(
                    match self.aggregate {
                        Aggregate::Sum => value(s) + b,
                        Aggregate::Average => value(s) / trees + b,
                        Aggregate::Min | Aggregate::Max if s.has_value => b + value(s),
                        Aggregate::Min | Aggregate::Max => b,
                    }
                    .to_f32(),
                );
            }
            ensemble.transform.apply(&mut out[start..]);
        }
    }
}
