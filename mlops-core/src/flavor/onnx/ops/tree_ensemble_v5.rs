//! ai.onnx.ml opset 5's `TreeEnsemble`: the trees of `TreeEnsembleRegressor` in another
//! encoding (interior nodes and leaves in separate lists, children named by index into
//! one or the other, a root per tree), scored by the same kernel. onnxruntime reads it the
//! same way, converting it to the older operator's form.

use std::collections::HashSet;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::math::PostTransform;
use super::tree_ensemble::TreeEnsembleRegressor;
use super::{Out, OutShape, OutType, attr_vec, op};
use crate::trees::{Aggregate, Forest, NodeSpec, Split};

/// The mode of a set-membership node (`BRANCH_MEMBER`).
const MEMBER: u8 = 6;

pub(super) fn parse(ctx: &ParsingContext<'_>, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let name = &node.name;
    let tensor = |attr: &str| -> TractResult<Tensor> {
        let proto = node
            .get_attr_opt::<&tract_onnx::pb::TensorProto>(attr)?
            .with_context(|| format!("TreeEnsemble `{name}` has no attribute `{attr}`"))?;
        ctx.load_tensor(proto)
    };
    let splits_tensor = tensor("nodes_splits")?;
    let weights_tensor = tensor("leaf_weights")?;
    for (attr, t) in [("nodes_splits", &splits_tensor), ("leaf_weights", &weights_tensor)] {
        ensure!(
            t.datum_type() == f32::datum_type(),
            "TreeEnsemble `{name}`: `{attr}` is {:?}; only float trees run here (export with float inputs)",
            t.datum_type()
        );
    }
    let splits = splits_tensor.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let weights = weights_tensor.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    let modes: Vec<u8> = tensor("nodes_modes")?.cast_to::<u8>()?.try_as_plain_ram()?.as_slice::<u8>()?.to_vec();
    let features: Vec<i64> = attr_vec(node, "nodes_featureids")?;
    let true_ids: Vec<i64> = attr_vec(node, "nodes_truenodeids")?;
    let false_ids: Vec<i64> = attr_vec(node, "nodes_falsenodeids")?;
    let true_leafs: Vec<i64> = attr_vec(node, "nodes_trueleafs")?;
    let false_leafs: Vec<i64> = attr_vec(node, "nodes_falseleafs")?;
    let missing: Vec<i64> = node.get_attr_opt_vec("nodes_missing_value_tracks_true")?.unwrap_or_default();
    let targets_of: Vec<i64> = attr_vec(node, "leaf_targetids")?;
    let roots: Vec<i64> = attr_vec(node, "tree_roots")?;
    let n = modes.len();
    for (attr, len) in [
        ("nodes_splits", splits.len()),
        ("nodes_featureids", features.len()),
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_trueleafs", true_leafs.len()),
        ("nodes_falseleafs", false_leafs.len()),
    ] {
        ensure!(len == n, "TreeEnsemble `{name}`: `{attr}` has {len} entries for {n} nodes");
    }
    ensure!(
        missing.is_empty() || missing.len() == n,
        "TreeEnsemble `{name}`: `nodes_missing_value_tracks_true` has {} entries for {n} nodes",
        missing.len()
    );
    ensure!(
        targets_of.len() == weights.len(),
        "TreeEnsemble `{name}`: {} leaf targets for {} leaf weights",
        targets_of.len(),
        weights.len()
    );
    let targets = super::row_width(node, "targets", node.get_attr_opt::<usize>("n_targets")?.unwrap_or(1).max(1))?;
    let aggregate = match node.get_attr_opt::<i64>("aggregate_function")?.unwrap_or(1) {
        0 => Aggregate::Average,
        1 => Aggregate::Sum,
        2 => Aggregate::Min,
        3 => Aggregate::Max,
        other => bail!("TreeEnsemble `{name}`: unknown aggregate function {other}"),
    };
    let transform = match node.get_attr_opt::<i64>("post_transform")?.unwrap_or(0) {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        other => bail!("TreeEnsemble `{name}`: unknown post transform {other}"),
    };

    // Each set-membership node's members, in the order of the nodes, separated by NaN.
    let membership: Vec<f32> = match node.get_attr_opt::<&tract_onnx::pb::TensorProto>("membership_values")? {
        Some(proto) => ctx.load_tensor(proto)?.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec(),
        None => Vec::new(),
    };
    let mut sets = membership.split(|v| v.is_nan());
    let mut members: std::collections::HashMap<usize, Vec<f32>> = std::collections::HashMap::new();
    for i in (0..n).filter(|&i| modes[i] == MEMBER) {
        let set = sets.next().filter(|set| !set.is_empty());
        // onnxruntime refuses an empty set too.
        let set = set.with_context(|| format!("TreeEnsemble `{name}`: set-membership node {i} has no members"))?;
        members.insert(i, set.to_vec());
    }

    // Ids within a tree: interior node `i` is `i`; leaves (one id wherever a leaf is named,
    // as a leaf may be the child of several nodes) and the equality tests a set-membership
    // node becomes are numbered from `n` on.
    let mut next_id = n as i64;
    let index = |id: i64, len: usize, what: &str| -> TractResult<usize> {
        usize::try_from(id)
            .ok()
            .filter(|&i| i < len)
            .with_context(|| format!("TreeEnsemble `{name}`: {what} {id} is outside 0..{len}"))
    };
    let leaf = |j: usize| -> TractResult<NodeSpec> {
        let target = index(targets_of[j], targets, "leaf target")?;
        Ok(NodeSpec::Leaf(vec![(target, f64::from(weights[j]))]))
    };
    // Each tree's nodes, walked from its root. An interior node reached twice (from two
    // trees, or a cycle) is refused, so the walk is bounded by the lists' lengths.
    let mut seen_nodes = HashSet::new();
    let mut max_feature = 0usize;
    let mut trees = Vec::with_capacity(roots.len());
    for &root in &roots {
        let root = index(root, n, "tree root")?;
        let mut tree: Vec<(i64, NodeSpec)> = Vec::new();
        // A tree that is one leaf: a root whose two children are the same leaf.
        if true_leafs[root] != 0 && false_leafs[root] != 0 && true_ids[root] == false_ids[root] {
            let j = index(true_ids[root], weights.len(), "leaf")?;
            tree.push((next_id, leaf(j)?));
            next_id += 1;
            trees.push(tree);
            continue;
        }
        let mut pending = vec![root];
        while let Some(i) = pending.pop() {
            ensure!(seen_nodes.insert(i), "TreeEnsemble `{name}`: node {i} is reached twice");
            let split = match modes[i] {
                0 => Split::Leq,
                1 => Split::Lt,
                2 => Split::Gte,
                3 => Split::Gt,
                4 | MEMBER => Split::Eq,
                5 => Split::Neq,
                other => bail!("TreeEnsemble `{name}`: node {i} has unknown mode {other}"),
            };
            let feature = usize::try_from(features[i])
                .with_context(|| format!("TreeEnsemble `{name}`: negative feature id {}", features[i]))?;
            max_feature = max_feature.max(feature.saturating_add(1));
            let mut child = |id: i64, is_leaf: i64| -> TractResult<i64> {
                if is_leaf != 0 {
                    let j = index(id, weights.len(), "leaf")?;
                    tree.push((next_id, leaf(j)?));
                    next_id += 1;
                    Ok(next_id - 1)
                } else {
                    let k = index(id, n, "node")?;
                    pending.push(k);
                    Ok(k as i64)
                }
            };
            let true_id = child(true_ids[i], true_leafs[i])?;
            let false_id = child(false_ids[i], false_leafs[i])?;
            let missing_true = missing.get(i).is_some_and(|&m| m != 0);
            // A set-membership node is a chain of equality tests, each member's true branch
            // the node's, the last one's false branch the node's. Anything else is one test
            // of its split value.
            let tests: Vec<f64> = match members.get(&i) {
                Some(set) => set.iter().map(|&v| f64::from(v)).collect(),
                None => vec![f64::from(splits[i])],
            };
            let mut id = i as i64;
            for (k, &threshold) in tests.iter().enumerate() {
                let next = if k + 1 == tests.len() {
                    false_id
                } else {
                    next_id += 1;
                    next_id - 1
                };
                let spec = NodeSpec::Branch { feature, threshold, split, missing_true, true_id, false_id: next };
                // The root first: the forest takes a tree's first node for its root.
                if id == root as i64 {
                    tree.insert(0, (id, spec));
                } else {
                    tree.push((id, spec));
                }
                id = next;
            }
        }
        trees.push(tree);
    }
    let forest = Forest::new(trees, max_feature, targets).map_err(|e| format_err!("TreeEnsemble `{name}`: {e}"))?;
    op(
        TreeEnsembleRegressor::from_forest(forest, targets, transform, aggregate),
        [Out::new(OutType::Fixed(f32::datum_type()), OutShape::Rows(vec![targets]))],
    )
}
