//! Boosted ensembles (XGBoost, LightGBM) laid out for scoring many rows at once.
//!
//! Every node of every tree is one 12- or 16-byte record in one array: a threshold (or,
//! for a leaf, its value), the feature with three flags packed in one word, and its first
//! child; trees are laid out breadth first with each branch's children side by side, so a
//! step adds the comparison's outcome to that index, without a branch. A leaf names
//! itself and never moves, so a walk needs no leaf test: each
//! tree is walked exactly its depth in steps, for [`LANES`] rows side by side (or, for
//! fewer rows, [`LANES`] trees side by side), which keeps the processor busy on several
//! independent walks instead of waiting on one. Rows go
//! through in blocks, each tree for every row of the block before the next tree, so the
//! tree's nodes and the block's features stay in cache; each row still adds its trees in
//! file order, the order the libraries add them, so every sum rounds as theirs does.

use std::ops::AddAssign;

use rayon::prelude::*;

use crate::error::{Error, Result};

/// The most outputs (classes) per row an ensemble may have: a file that claims more is
/// refused before anything is allocated for them.
pub(crate) const MAX_GROUPS: usize = 1 << 16;

/// Rows walked side by side through one tree.
const LANES: usize = 16;
/// Rows that go through every tree before the next rows start.
const BLOCK_ROWS: usize = 256;
/// Rows below which one thread scores everything.
const PARALLEL_ROWS: usize = 8 * BLOCK_ROWS;

/// A node's feature index, in the low bits of its word.
const FEATURE_MASK: u32 = (1 << 29) - 1;
/// Set for a leaf, whose step stays where it is.
const LEAF: u32 = 1 << 29;
/// Set when a missing value (NaN) takes the left child.
const MISSING_LEFT: u32 = 1 << 30;
/// Set for a node whose test is not a plain comparison: the low bits index
/// [`Ensemble::special`] instead of naming a feature.
const SPECIAL: u32 = 1 << 31;

/// The number type of features, thresholds and scores: `f32` for XGBoost, `f64` for
/// LightGBM, as each library computes.
pub(crate) trait Number:
    Copy
    + PartialOrd
    + AddAssign
    + std::ops::Sub<Output = Self>
    + std::ops::DivAssign
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    const ZERO: Self;
    const NEG_INFINITY: Self;
    fn is_nan(self) -> bool;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
}

macro_rules! number {
    ($t:ty) => {
        impl Number for $t {
            const ZERO: Self = 0.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn to_f64(self) -> f64 {
                f64::from(self)
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
        }
    };
}

number!(f32);
number!(f64);

/// How a branch decides that a row goes left.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test<T> {
    /// `x < threshold`; a missing value (NaN) goes left when `missing_left`.
    Less { threshold: T, missing_left: bool },
    /// `x <= threshold` where `x < threshold` cannot say it (LightGBM's `inf`
    /// threshold); a missing value goes left when `missing_left`.
    #[cfg_attr(not(feature = "lightgbm"), allow(dead_code, reason = "only LightGBM model files have it"))]
    AtMost { threshold: T, missing_left: bool },
    /// LightGBM's zero-as-missing split: zero (within 1e-35) and NaN take the default
    /// side; other values go left when `x <= threshold`.
    #[cfg_attr(not(feature = "lightgbm"), allow(dead_code, reason = "only LightGBM model files have it"))]
    AtMostZeroMissing { threshold: T, default_left: bool },
    /// LightGBM's categorical split: the integer part of `x` is in `bitset` (32 categories
    /// per word); NaN and negative values go right.
    #[cfg_attr(not(feature = "lightgbm"), allow(dead_code, reason = "only LightGBM model files have it"))]
    InCategories { bitset: Vec<u32> },
}

/// One node of a tree as a model file gives it, children named by their index in the
/// tree's list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TreeNode<T> {
    Branch { feature: usize, test: Test<T>, left: usize, right: usize },
    Leaf(T),
}

/// A tree and the output group (class) its leaves add to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeSpec<T> {
    /// The nodes; the first is the root.
    pub(crate) nodes: Vec<TreeNode<T>>,
    pub(crate) group: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Node<T> {
    /// The threshold of a branch (`x < value` goes left), the value of a leaf.
    value: T,
    word: u32,
    /// The left child; the right one follows it. A leaf names itself.
    first: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum SpecialTest<T> {
    AtMost { threshold: T, missing_left: bool },
    AtMostZeroMissing { threshold: T, default_left: bool },
    InCategories { words: std::ops::Range<usize> },
}

#[derive(Debug, Clone, PartialEq)]
struct Special<T> {
    feature: usize,
    test: SpecialTest<T>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Tree {
    root: u32,
    /// Edges on the longest path from the root: the steps every walk takes.
    depth: u32,
    group: u32,
}

/// Trees flattened for scoring; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ensemble<T> {
    nodes: Vec<Node<T>>,
    trees: Vec<Tree>,
    special: Vec<Special<T>>,
    bitsets: Vec<u32>,
    features: usize,
    groups: usize,
}

fn bad(tree: usize, node: usize, why: impl std::fmt::Display) -> Error {
    Error::InvalidPackage(format!("tree {tree}, node {node}: {why}"))
}

impl<T: Number> Ensemble<T> {
    /// Flattens `trees` over rows of `features` values into `groups` outputs.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] naming the tree and node for a child that is not a node
    /// of its tree, a node reached twice (a cycle or a shared child), a feature or group
    /// out of range, or an empty tree.
    pub(crate) fn new(trees: Vec<TreeSpec<T>>, features: usize, groups: usize) -> Result<Self> {
        if features > FEATURE_MASK as usize {
            return Err(Error::InvalidPackage(format!("{features} features are more than this evaluator holds")));
        }
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        if u32::try_from(total).is_err() || total > FEATURE_MASK as usize {
            return Err(Error::InvalidPackage(format!("{total} tree nodes are more than this evaluator holds")));
        }
        let mut ensemble = Self {
            nodes: Vec::with_capacity(total),
            trees: Vec::with_capacity(trees.len()),
            special: Vec::new(),
            bitsets: Vec::new(),
            features,
            groups,
        };
        for (index, tree) in trees.into_iter().enumerate() {
            if tree.nodes.is_empty() {
                return Err(Error::InvalidPackage(format!("tree {index} has no nodes")));
            }
            if tree.group >= groups {
                return Err(Error::InvalidPackage(format!("tree {index} adds to output {} of {groups}", tree.group)));
            }
            let depth = check_tree(index, &tree.nodes, features)?;
            let base = ensemble.nodes.len();
            // Breadth first, each branch's children side by side, so a step is an addition.
            let mut order = vec![0usize];
            let mut position = vec![0usize; tree.nodes.len()];
            let mut next = 0;
            while next < order.len() {
                if let TreeNode::Branch { left, right, .. } = &tree.nodes[order[next]] {
                    position[*left] = order.len();
                    order.push(*left);
                    position[*right] = order.len();
                    order.push(*right);
                }
                next += 1;
            }
            let mut nodes: Vec<Option<TreeNode<T>>> = tree.nodes.into_iter().map(Some).collect();
            for (at, &old) in order.iter().enumerate() {
                let own = (base + at) as u32;
                let Some(node) = nodes[old].take() else { continue };
                let node = match node {
                    TreeNode::Leaf(value) => Node { value, word: LEAF, first: own },
                    TreeNode::Branch { feature, test, left, .. } => {
                        let first = (base + position[left]) as u32;
                        let special = match test {
                            Test::Less { threshold, missing_left } => {
                                let flag = if missing_left { MISSING_LEFT } else { 0 };
                                ensemble.nodes.push(Node { value: threshold, word: feature as u32 | flag, first });
                                continue;
                            }
                            Test::AtMost { threshold, missing_left } => SpecialTest::AtMost { threshold, missing_left },
                            Test::AtMostZeroMissing { threshold, default_left } => {
                                SpecialTest::AtMostZeroMissing { threshold, default_left }
                            }
                            Test::InCategories { bitset } => {
                                let start = ensemble.bitsets.len();
                                ensemble.bitsets.extend(bitset);
                                SpecialTest::InCategories { words: start..ensemble.bitsets.len() }
                            }
                        };
                        let slot = ensemble.special.len() as u32;
                        ensemble.special.push(Special { feature, test: special });
                        Node { value: T::ZERO, word: SPECIAL | slot, first }
                    }
                };
                ensemble.nodes.push(node);
            }
            ensemble.trees.push(Tree { root: base as u32, depth, group: tree.group as u32 });
        }
        Ok(ensemble)
    }

    /// The number of trees.
    pub(crate) fn trees(&self) -> usize {
        self.trees.len()
    }

    /// The values each row has: the features, at least one (a model whose trees are all
    /// leaves still reads a row of one value).
    pub(crate) fn row_width(&self) -> usize {
        self.features.max(1)
    }

    /// The outputs per row.
    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    /// Keeps the first `trees` trees only.
    #[cfg_attr(not(feature = "xgboost"), allow(dead_code, reason = "XGBoost's iteration ranges use it"))]
    pub(crate) fn truncate(&mut self, trees: usize) {
        self.trees.truncate(trees);
    }

    /// Adds every tree's leaf to `out` (`groups` values per row, already holding each
    /// row's starting scores) for the rows of `rows` ([`row_width`](Self::row_width)
    /// values each, row-major). Large inputs are split over threads.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `rows` and `out` do not hold the same number of rows.
    pub(crate) fn accumulate(&self, rows: &[T], out: &mut [T]) -> Result<()> {
        let width = self.row_width();
        let count = rows.len() / width;
        if rows.len() != count * width || out.len() != count * self.groups {
            return Err(Error::InvalidArgument(format!(
                "{} feature values in rows of {width} do not match {} scores of {} outputs",
                rows.len(),
                out.len(),
                self.groups
            )));
        }
        if count < PARALLEL_ROWS {
            for (block, scores) in rows.chunks(width * BLOCK_ROWS).zip(out.chunks_mut(self.groups * BLOCK_ROWS)) {
                self.block(block, scores);
            }
        } else {
            rows.par_chunks(width * BLOCK_ROWS)
                .zip(out.par_chunks_mut(self.groups * BLOCK_ROWS))
                .for_each(|(block, scores)| self.block(block, scores));
        }
        Ok(())
    }

    fn block(&self, rows: &[T], out: &mut [T]) {
        // Without special splits (every XGBoost model) the step has no test for them.
        if self.special.is_empty() { self.block_with::<false>(rows, out) } else { self.block_with::<true>(rows, out) }
    }

    fn block_with<const SPECIALS: bool>(&self, rows: &[T], out: &mut [T]) {
        let width = self.row_width();
        let groups = self.groups;
        let full = rows.len() / (width * LANES) * LANES;
        let (lanes, rest) = rows.split_at(full * width);
        for tree in &self.trees {
            let group = tree.group as usize;
            for (lane_rows, lane_out) in lanes.chunks_exact(width * LANES).zip(out.chunks_mut(groups * LANES)) {
                let rows: [&[T]; LANES] = std::array::from_fn(|lane| &lane_rows[lane * width..(lane + 1) * width]);
                let mut at = [tree.root; LANES];
                for _ in 0..tree.depth {
                    for lane in 0..LANES {
                        at[lane] = self.step::<SPECIALS>(at[lane], rows[lane]);
                    }
                }
                for (lane, node) in at.iter().enumerate() {
                    lane_out[lane * groups + group] += self.nodes[*node as usize].value;
                }
            }
        }
        // Fewer rows than lanes (a request of one row, say): walk trees side by side
        // instead, adding their leaves in order afterwards.
        for (row, row_out) in rest.chunks_exact(width).zip(out[full * groups..].chunks_mut(groups)) {
            for trees in self.trees.chunks(LANES) {
                let mut at = [0u32; LANES];
                for (node, tree) in at.iter_mut().zip(trees) {
                    *node = tree.root;
                }
                let depth = trees.iter().map(|t| t.depth).max().unwrap_or(0);
                for _ in 0..depth {
                    for node in &mut at {
                        *node = self.step::<SPECIALS>(*node, row);
                    }
                }
                for (node, tree) in at.iter().zip(trees) {
                    row_out[tree.group as usize] += self.nodes[*node as usize].value;
                }
            }
        }
    }

    #[inline(always)]
    fn step<const SPECIALS: bool>(&self, at: u32, row: &[T]) -> u32 {
        let node = &self.nodes[at as usize];
        let word = node.word;
        if SPECIALS && word & SPECIAL != 0 {
            let right = !self.special_left(&self.special[(word & FEATURE_MASK) as usize], row);
            return node.first + u32::from(right);
        }
        let x = row[(word & FEATURE_MASK) as usize];
        // Without branches: the direction depends on the data, so a branch on it would be
        // mispredicted half the time. NaN compares false, so it goes left only by its flag.
        let left = (x < node.value) | (x.is_nan() & (word & MISSING_LEFT != 0));
        let right = !left & (word & LEAF == 0);
        node.first + u32::from(right)
    }

    #[cold]
    fn special_left(&self, special: &Special<T>, row: &[T]) -> bool {
        let x = row[special.feature];
        match &special.test {
            SpecialTest::AtMost { threshold, missing_left } => {
                if x.is_nan() {
                    *missing_left
                } else {
                    x <= *threshold
                }
            }
            SpecialTest::AtMostZeroMissing { threshold, default_left } => {
                // NaN counts as zero, and zero takes the default side.
                if x.is_nan() || x.to_f64().abs() <= 1e-35 { *default_left } else { x <= *threshold }
            }
            SpecialTest::InCategories { words } => {
                if x.is_nan() || x.to_f64() <= -1.0 {
                    return false;
                }
                // The integer part, as a C cast takes it (-0.5 is category 0); values past
                // the largest integer are in no category.
                let category = x.to_f64().trunc();
                if category >= f64::from(u32::MAX) {
                    return false;
                }
                let category = category as usize;
                self.bitsets[words.clone()].get(category / 32).is_some_and(|word| word >> (category % 32) & 1 == 1)
            }
        }
    }
}

/// Checks that every node of a tree is reached exactly once from its root, with children
/// and features in range, and returns its depth.
fn check_tree<T>(tree: usize, nodes: &[TreeNode<T>], features: usize) -> Result<u32> {
    let mut reached = vec![false; nodes.len()];
    let mut stack = vec![(0usize, 0u32)];
    let mut depth = 0;
    reached[0] = true;
    while let Some((at, level)) = stack.pop() {
        depth = depth.max(level);
        if let TreeNode::Branch { feature, left, right, .. } = &nodes[at] {
            if *feature >= features {
                return Err(bad(tree, at, format!("feature {feature} is beyond the {features} inputs")));
            }
            for &child in [left, right] {
                match reached.get_mut(child) {
                    None => return Err(bad(tree, at, format!("child {child} is not a node of the tree"))),
                    Some(true) => return Err(bad(tree, at, format!("child {child} is reached twice"))),
                    Some(seen) => *seen = true,
                }
                stack.push((child, level + 1));
            }
        }
    }
    Ok(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn less(feature: usize, threshold: f32, missing_left: bool, left: usize, right: usize) -> TreeNode<f32> {
        TreeNode::Branch { feature, test: Test::Less { threshold, missing_left }, left, right }
    }

    fn score<T: Number>(ensemble: &Ensemble<T>, rows: &[T]) -> Vec<T> {
        let mut out = vec![T::ZERO; rows.len() / ensemble.row_width() * ensemble.groups()];
        ensemble.accumulate(rows, &mut out).unwrap();
        out
    }

    /// Walks a tree one row at a time, the plain way, as a reference.
    fn walk(nodes: &[TreeNode<f32>], row: &[f32]) -> f32 {
        let mut at = 0;
        loop {
            match &nodes[at] {
                TreeNode::Leaf(v) => return *v,
                TreeNode::Branch { feature, test: Test::Less { threshold, missing_left }, left, right } => {
                    let x = row[*feature];
                    at = if if x.is_nan() { *missing_left } else { x < *threshold } { *left } else { *right };
                }
                TreeNode::Branch { .. } => unreachable!(),
            }
        }
    }

    #[test]
    fn lockstep_blocks_score_as_one_row_at_a_time_would() {
        // An unbalanced tree (depth 3 on one side, 1 on the other) and a stump, two groups.
        let deep = vec![
            less(0, 0.5, true, 1, 2),
            TreeNode::Leaf(1.0),
            less(1, -1.0, false, 3, 4),
            TreeNode::Leaf(2.0),
            less(0, 2.0, false, 5, 6),
            TreeNode::Leaf(3.0),
            TreeNode::Leaf(4.0),
        ];
        let stump = vec![less(1, 0.0, true, 1, 2), TreeNode::Leaf(10.0), TreeNode::Leaf(20.0)];
        // Six rounds of three trees: more trees than lanes, for the trees-side-by-side path.
        let trees: Vec<TreeSpec<f32>> = (0..6)
            .flat_map(|_| {
                [
                    TreeSpec { nodes: deep.clone(), group: 0 },
                    TreeSpec { nodes: stump.clone(), group: 1 },
                    TreeSpec { nodes: deep.clone(), group: 1 },
                ]
            })
            .collect();
        let ensemble = Ensemble::new(trees, 2, 2).unwrap();
        // 1003 rows: full lane groups, a few rows left over, and more than one block.
        let rows: Vec<f32> =
            (0..2006).map(|i| if i % 13 == 0 { f32::NAN } else { ((i * 7919) % 61) as f32 / 10.0 - 3.0 }).collect();
        let reference = |row: &[f32]| {
            let (mut first, mut second) = (0.0f32, 0.0f32);
            for _ in 0..6 {
                first += walk(&deep, row);
                second += walk(&stump, row);
                second += walk(&deep, row);
            }
            [first, second]
        };
        let scores = score(&ensemble, &rows);
        for (row, got) in rows.chunks(2).zip(scores.chunks(2)) {
            assert_eq!(got, reference(row), "{row:?}");
        }
        // One row at a time takes the trees-side-by-side path.
        for row in rows.chunks(2).take(50) {
            assert_eq!(score(&ensemble, row), reference(row), "{row:?}");
        }
    }

    #[test]
    fn zero_as_missing_and_categories_follow_lightgbm() {
        let zero = TreeNode::Branch {
            feature: 0,
            test: Test::AtMostZeroMissing { threshold: 1.0f64, default_left: false },
            left: 1,
            right: 2,
        };
        let ensemble = Ensemble::new(
            vec![TreeSpec { nodes: vec![zero, TreeNode::Leaf(1.0), TreeNode::Leaf(2.0)], group: 0 }],
            1,
            1,
        )
        .unwrap();
        assert_eq!(score(&ensemble, &[0.5, 0.0, f64::NAN, 1e-36, 1.0, 1.5, -3.0]), [1.0, 2.0, 2.0, 2.0, 1.0, 2.0, 1.0]);

        // LightGBM's `inf` threshold: every number, infinity included, goes left.
        let everything = TreeNode::Branch {
            feature: 0,
            test: Test::AtMost { threshold: f64::INFINITY, missing_left: false },
            left: 1,
            right: 2,
        };
        let ensemble = Ensemble::new(
            vec![TreeSpec { nodes: vec![everything, TreeNode::Leaf(1.0), TreeNode::Leaf(2.0)], group: 0 }],
            1,
            1,
        )
        .unwrap();
        assert_eq!(score(&ensemble, &[f64::INFINITY, -1e300, f64::NAN]), [1.0, 1.0, 2.0]);

        // Categories 1 and 33 go left.
        let categories = TreeNode::Branch {
            feature: 0,
            test: Test::InCategories { bitset: vec![1 << 1, 1 << 1] },
            left: 1,
            right: 2,
        };
        let ensemble = Ensemble::new(
            vec![TreeSpec { nodes: vec![categories, TreeNode::Leaf(1.0), TreeNode::Leaf(2.0)], group: 0 }],
            1,
            1,
        )
        .unwrap();
        assert_eq!(
            score(&ensemble, &[1.0, 1.7, 33.0, 2.0, f64::NAN, -1.0, 64.0, 1e12]),
            [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
        );
    }

    #[test]
    fn broken_trees_are_refused_naming_the_node() {
        let dangling = vec![less(0, 0.0, false, 1, 7), TreeNode::Leaf(1.0)];
        let err = Ensemble::new(vec![TreeSpec { nodes: dangling, group: 0 }], 1, 1).unwrap_err();
        assert!(err.to_string().contains("tree 0, node 0: child 7"), "{err}");
        let cycle = vec![less(0, 0.0, false, 1, 1), TreeNode::Leaf(1.0)];
        let err = Ensemble::new(vec![TreeSpec { nodes: cycle, group: 0 }], 1, 1).unwrap_err();
        assert!(err.to_string().contains("reached twice"), "{err}");
        let wide = vec![less(3, 0.0, false, 1, 2), TreeNode::Leaf(1.0), TreeNode::Leaf(2.0)];
        let err = Ensemble::new(vec![TreeSpec { nodes: wide, group: 0 }], 2, 1).unwrap_err();
        assert!(err.to_string().contains("feature 3"), "{err}");
        let err = Ensemble::new(vec![TreeSpec { nodes: vec![TreeNode::Leaf(1.0f32)], group: 2 }], 1, 2).unwrap_err();
        assert!(err.to_string().contains("output 2"), "{err}");
    }
}
