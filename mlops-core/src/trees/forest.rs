//! The forests of ONNX's tree-ensemble operators flattened into arrays, and their evaluation
//! over rows of features.
//!
//! Every tree's nodes sit in one array, each node naming its children by index; a leaf
//! names a run of `(target, weight)` pairs. Rows are scored in blocks: each tree is walked
//! for every row of a block before the next tree, so a tree's nodes stay in cache while the
//! block's rows go through it, and every row still sums its trees in order (the order in
//! which onnxruntime sums them, so float results agree bit for bit).

use crate::error::{Error, Result};

/// Rows scored together through each tree.
const BLOCK_ROWS: usize = 64;

/// How a branch compares a feature value `x` with its threshold `t` to take its true branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Split {
    /// `x <= t`
    Leq,
    /// `x < t`
    Lt,
    /// `x >= t`
    Gte,
    /// `x > t`
    Gt,
    /// `x == t`
    Eq,
    /// `x != t`
    Neq,
}

/// A node of a flattened ensemble.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Branch {
        feature: u32,
        threshold: f64,
        split: Split,
        /// Whether a missing value (NaN) takes the true branch whatever the comparison.
        missing_true: bool,
        true_child: u32,
        false_child: u32,
    },
    Leaf {
        /// First of this leaf's entries in `Forest::weights`.
        first: u32,
        /// How many entries.
        count: u32,
    },
}

/// One node of a tree as a builder receives it, children named by the tree's own ids.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeSpec {
    /// An inner node.
    Branch { feature: usize, threshold: f64, split: Split, missing_true: bool, true_id: i64, false_id: i64 },
    /// A leaf with its `(target, weight)` pairs, applied in this order.
    Leaf(Vec<(usize, f64)>),
}

/// Many trees, flattened.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<(u32, f64)>,
    features: usize,
    targets: usize,
}

/// A feature value a forest can compare with its thresholds.
pub(crate) trait Feature: Copy + Send + Sync {
    /// The value as compared: exactly, in f64 (an f32 threshold compared with an f32 value
    /// in f64 gives the f32 comparison's answer).
    fn value(self) -> f64;
}

impl Feature for f32 {
    #[inline]
    fn value(self) -> f64 {
        f64::from(self)
    }
}

impl Feature for f64 {
    #[inline]
    fn value(self) -> f64 {
        self
    }
}

/// The number type scores are summed in: onnxruntime sums in the type of the weights.
pub(crate) trait Score:
    Copy + Send + Sync + PartialOrd + std::ops::Add<Output = Self> + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    fn from_f64(value: f64) -> Self;
    fn from_usize(value: usize) -> Self;
    fn to_f32(self) -> f32;
}

impl Score for f32 {
    const ZERO: Self = 0.0;
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn from_usize(value: usize) -> Self {
        value as f32
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Score for f64 {
    const ZERO: Self = 0.0;
    fn from_f64(value: f64) -> Self {
        value
    }
    fn from_usize(value: usize) -> Self {
        value as f64
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// How the leaves a row reaches are combined per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The per-row, per-target result of walking every tree: the combined value and whether
/// any leaf gave this target a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored<S> {
    pub(crate) value: S,
    pub(crate) has_value: bool,
}

impl Forest {
    /// Builds a forest from trees given as `(node id, node)` lists; the first node of each
    /// tree is its root, as onnxruntime takes it.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] naming the tree and node for a child id that is not in its
    /// tree, a node id that repeats, a feature or target index out of range, a leaf
    /// without weights, or a tree whose branches form a cycle.
    pub(crate) fn new(trees: Vec<Vec<(i64, NodeSpec)>>, features: usize, targets: usize) -> Result<Self> {
        let bad =
            |tree: usize, node: i64, why: String| Error::InvalidPackage(format!("tree {tree}, node {node}: {why}"));
        let total = trees.iter().map(Vec::len).sum::<usize>();
        if u32::try_from(total).is_err() {
            return Err(Error::InvalidPackage(format!("{total} tree nodes are more than this evaluator holds")));
        }
        let mut nodes = Vec::with_capacity(total);
        let mut roots = Vec::with_capacity(trees.len());
        let mut weights = Vec::new();
        for (tree, specs) in trees.iter().enumerate() {
            let base = nodes.len();
            let mut index = std::collections::HashMap::with_capacity(specs.len());
            for (position, (id, _)) in specs.iter().enumerate() {
                if index.insert(*id, base + position).is_some() {
                    return Err(bad(tree, *id, "the node id appears twice".into()));
                }
            }
            let child = |id: i64, from: i64| {
                index
                    .get(&id)
                    .map(|&i| i as u32)
                    .ok_or_else(|| bad(tree, from, format!("child {id} is not a node of the tree")))
            };
            for (id, spec) in specs {
                nodes.push(match spec {
                    NodeSpec::Branch { feature, threshold, split, missing_true, true_id, false_id } => {
                        if *feature >= features {
                            return Err(bad(tree, *id, format!("feature {feature} is beyond the {features} inputs")));
                        }
                        Node::Branch {
                            feature: *feature as u32,
                            threshold: *threshold,
                            split: *split,
                            missing_true: *missing_true,
                            true_child: child(*true_id, *id)?,
                            false_child: child(*false_id, *id)?,
                        }
                    }
                    NodeSpec::Leaf(entries) => {
                        if entries.is_empty() {
                            return Err(bad(tree, *id, "a leaf without a weight".into()));
                        }
                        let first = weights.len() as u32;
                        for &(target, weight) in entries {
                            if target >= targets {
                                return Err(bad(tree, *id, format!("target {target} is beyond the {targets} outputs")));
                            }
                            weights.push((target as u32, weight));
                        }
                        Node::Leaf { first, count: entries.len() as u32 }
                    }
                });
            }
            if !specs.is_empty() {
                roots.push(base as u32);
                check_acyclic(&nodes, base, specs.len())
                    .map_err(|node| bad(tree, specs[node - base].0, "the tree's branches form a cycle".into()))?;
            }
        }
        if u32::try_from(weights.len()).is_err() {
            return Err(Error::InvalidPackage("too many leaf weights".into()));
        }
        Ok(Self { nodes, roots, weights, features, targets })
    }

    /// The number of trees.
    pub(crate) fn trees(&self) -> usize {
        self.roots.len()
    }

    /// The number of features a row has.
    pub(crate) fn features(&self) -> usize {
        self.features
    }

    /// Every leaf weight, for checks such as "all weights are positive".
    pub(crate) fn leaf_weights(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        self.weights.iter().map(|&(t, w)| (t as usize, w))
    }

    /// The leaf a row reaches in the tree rooted at `root`.
    #[inline]
    fn leaf<F: Feature>(&self, root: u32, row: &[F]) -> (u32, u32) {
        let mut at = root as usize;
        loop {
            match self.nodes[at] {
                Node::Leaf { first, count } => return (first, count),
                Node::Branch { feature, threshold, split, missing_true, true_child, false_child } => {
                    let x = row[feature as usize].value();
                    let goes_true = (missing_true && x.is_nan())
                        || match split {
                            Split::Leq => x <= threshold,
                            Split::Lt => x < threshold,
                            Split::Gte => x >= threshold,
                            Split::Gt => x > threshold,
                            Split::Eq => x == threshold,
                            Split::Neq => x != threshold,
                        };
                    at = if goes_true { true_child } else { false_child } as usize;
                }
            }
        }
    }

    /// Walks every tree for every row of `rows` (row-major, `width` values each, at least
    /// [`features`](Self::features)) and combines the leaves per target into `out`
    /// (`targets` entries per row). With `first_weight_only`, a leaf adds only its first
    /// weight (onnxruntime's single-target path).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when rows are narrower than the features the trees read
    /// or `out` does not hold one score per row and target.
    pub(crate) fn score<F: Feature, S: Score>(
        &self,
        rows: &[F],
        width: usize,
        aggregate: Aggregate,
        first_weight_only: bool,
        out: &mut [Scored<S>],
    ) -> Result<()> {
        let targets = self.targets;
        if width < self.features || width == 0 {
            return Err(Error::InvalidArgument(format!(
                "rows of {width} values for trees that read {} features",
                self.features
            )));
        }
        if !rows.len().is_multiple_of(width) || out.len() != rows.len() / width * targets {
            return Err(Error::InvalidArgument(format!(
                "{} values in rows of {width} do not match {} scores of {targets} targets",
                rows.len(),
                out.len()
            )));
        }
        out.fill(Scored { value: S::ZERO, has_value: false });
        for (block, scores) in rows.chunks(width * BLOCK_ROWS).zip(out.chunks_mut(targets * BLOCK_ROWS)) {
            for &root in &self.roots {
                for (row, row_scores) in block.chunks(width).zip(scores.chunks_mut(targets)) {
                    let (first, count) = self.leaf(root, row);
                    let count = if first_weight_only { count.min(1) } else { count };
                    for &(target, weight) in &self.weights[first as usize..(first + count) as usize] {
                        let slot = &mut row_scores[target as usize];
                        let weight = S::from_f64(weight);
                        // A new minimum or maximum replaces the kept one only when it compares
                        // strictly (so a NaN weight never does), as in onnxruntime.
                        slot.value = match aggregate {
                            Aggregate::Sum | Aggregate::Average => slot.value + weight,
                            Aggregate::Min => {
                                if !slot.has_value || weight < slot.value {
                                    weight
                                } else {
                                    slot.value
                                }
                            }
                            Aggregate::Max => {
                                if !slot.has_value || weight > slot.value {
                                    weight
                                } else {
                                    slot.value
                                }
                            }
                        };
                        slot.has_value = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The first node (absolute index) from which following branches within
/// `base..base + len` comes back to a node already on the path, if any.
fn check_acyclic(nodes: &[Node], base: usize, len: usize) -> std::result::Result<(), usize> {
    // 0: unvisited, 1: on the current path, 2: done.
    let mut state = vec![0u8; len];
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for start in base..base + len {
        if state[start - base] != 0 {
            continue;
        }
        stack.push((start, false));
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                state[node - base] = 2;
                continue;
            }
            match state[node - base] {
                2 => continue,
                1 => return Err(node),
                _ => {}
            }
            state[node - base] = 1;
            stack.push((node, true));
            if let Node::Branch { true_child, false_child, .. } = nodes[node] {
                for child in [true_child as usize, false_child as usize] {
                    match state[child - base] {
                        1 => return Err(child),
                        0 => stack.push((child, false)),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump(split: Split, missing_true: bool) -> Forest {
        let tree = vec![
            (0, NodeSpec::Branch { feature: 0, threshold: 1.0, split, missing_true, true_id: 1, false_id: 2 }),
            (1, NodeSpec::Leaf(vec![(0, 100.0)])),
            (2, NodeSpec::Leaf(vec![(0, 200.0)])),
        ];
        Forest::new(vec![tree], 1, 1).unwrap()
    }

    fn run(forest: &Forest, xs: &[f32]) -> Vec<f32> {
        let mut out = vec![Scored { value: 0.0f32, has_value: false }; xs.len()];
        forest.score(xs, 1, Aggregate::Sum, false, &mut out).unwrap();
        out.iter().map(|s| s.value).collect()
    }

    #[test]
    fn every_split_and_missing_rule_routes_as_onnxruntime_does() {
        let xs = [0.0, 1.0, 2.0, f32::NAN];
        let cases = [
            (Split::Leq, [100.0, 100.0, 200.0, 200.0]),
            (Split::Lt, [100.0, 200.0, 200.0, 200.0]),
            (Split::Gte, [200.0, 100.0, 100.0, 200.0]),
            (Split::Gt, [200.0, 200.0, 100.0, 200.0]),
            (Split::Eq, [200.0, 100.0, 200.0, 200.0]),
            (Split::Neq, [100.0, 200.0, 100.0, 100.0]),
        ];
        for (split, expected) in cases {
            assert_eq!(run(&stump(split, false), &xs), expected, "{split:?}");
            let mut missing = expected;
            missing[3] = 100.0;
            assert_eq!(run(&stump(split, true), &xs), missing, "{split:?} with missing values going true");
        }
    }

    #[test]
    fn aggregates_combine_leaves_per_target() {
        let leaf = |w: f64| vec![(0, NodeSpec::Leaf(vec![(0, w)]))];
        let forest = Forest::new(vec![leaf(1.0), leaf(4.0)], 1, 1).unwrap();
        let mut out = vec![Scored { value: 0.0f32, has_value: false }];
        for (aggregate, expected) in [(Aggregate::Sum, 5.0), (Aggregate::Min, 1.0), (Aggregate::Max, 4.0)] {
            forest.score(&[0.0f32], 1, aggregate, false, &mut out).unwrap();
            assert_eq!(out[0].value, expected, "{aggregate:?}");
        }
    }

    #[test]
    fn broken_trees_are_refused() {
        let branch = |t: i64, f: i64| NodeSpec::Branch {
            feature: 0,
            threshold: 0.0,
            split: Split::Leq,
            missing_true: false,
            true_id: t,
            false_id: f,
        };
        let cycle = vec![(0, branch(1, 1)), (1, branch(0, 0))];
        assert!(Forest::new(vec![cycle], 1, 1).unwrap_err().to_string().contains("cycle"));
        let dangling = vec![(0, branch(1, 7)), (1, NodeSpec::Leaf(vec![(0, 1.0)]))];
        assert!(Forest::new(vec![dangling], 1, 1).unwrap_err().to_string().contains("child 7"));
        let wide = vec![(0, NodeSpec::Leaf(vec![(3, 1.0)]))];
        assert!(Forest::new(vec![wide], 1, 1).unwrap_err().to_string().contains("target 3"));
    }
}
