//! Boosted ensembles (XGBoost, LightGBM) laid out for scoring many rows at once.
//!
//! Every node of every tree has a threshold (or, for a leaf, its value) and a word that
//! packs its feature with three flags, in two arrays. Trees no deeper than ten levels
//! (every XGBoost and LightGBM model with a `max_depth` up to 10) are laid out complete:
//! a leaf above the last level is copied into both halves below it, so node `i` of a tree
//! has its children at `2i + 1` and `2i + 2` and a step is a doubling and an addition of
//! the comparison's outcome, without a branch, a child index or a leaf test. Deeper trees
//! are laid out breadth first with each branch's children side by side and a third array
//! naming the first child; their leaves name themselves, so a walk needs no leaf test
//! either. Each tree is walked exactly its depth in steps, for [`LANES`] rows side by side
//! (or, for fewer rows, [`LANES`] trees side by side), which keeps the processor busy on
//! several independent walks instead of waiting on one; on processors with AVX-512 the
//! complete layout is walked sixteen rows to a vector instruction (see `avx512`). Rows go
//! through in blocks, each tree for every row of the block before the next tree, so the
//! tree's nodes and the block's features stay in cache; each row still adds its trees in
//! file order, the order the libraries add them, so every sum rounds as theirs does.

use std::ops::AddAssign;

use rayon::prelude::*;

use crate::error::{Error, Result};

// One of the workspace's two exceptions to `unsafe_code`: vector gathers have no safe form.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;

/// The most outputs (classes) per row an ensemble may have: a file that claims more is
/// refused before anything is allocated for them.
pub(crate) const MAX_GROUPS: usize = 1 << 16;

/// Rows walked side by side through one tree.
const LANES: usize = 16;
/// Rows that go through every tree before the next rows start.
const BLOCK_ROWS: usize = 256;
/// Rows below which one thread scores everything.
const PARALLEL_ROWS: usize = 8 * BLOCK_ROWS;

/// The widest rows a vector walk takes: its feature offsets are 32-bit.
const MAX_VECTOR_WIDTH: usize = 1 << 20;

/// A node's feature index, in the low bits of its word.
const FEATURE_MASK: u32 = (1 << 29) - 1;
/// Set for a leaf of a linked layout, whose step stays where it is.
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
    /// Walks the first rows of `rows` (whole vectors of them) with the processor's vector
    /// unit, adding their leaves to `out`, and returns how many rows it walked: none where
    /// the processor has no unit for it.
    fn vector_rows(ensemble: &Ensemble<Self>, rows: &[Self], out: &mut [Self]) -> usize;
    /// Walks every tree for one row with the processor's vector unit, adding the leaves to
    /// `out`; `false`, with nothing added, where the processor has no unit for it.
    fn vector_trees(ensemble: &Ensemble<Self>, row: &[Self], out: &mut [Self]) -> bool;
}

macro_rules! number {
    ($t:ty, $vector_rows:path, $vector_trees:path) => {
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
            fn vector_rows(ensemble: &Ensemble<Self>, rows: &[Self], out: &mut [Self]) -> usize {
                $vector_rows(ensemble, rows, out)
            }
            fn vector_trees(ensemble: &Ensemble<Self>, row: &[Self], out: &mut [Self]) -> bool {
                $vector_trees(ensemble, row, out)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
number!(f32, avx512::rows_f32, avx512::trees_f32);
#[cfg(target_arch = "x86_64")]
number!(f64, avx512::rows_f64, avx512::trees_f64);
#[cfg(not(target_arch = "x86_64"))]
number!(f32, no_vector_rows, no_vector_trees);
#[cfg(not(target_arch = "x86_64"))]
number!(f64, no_vector_rows, no_vector_trees);

#[cfg(not(target_arch = "x86_64"))]
fn no_vector_rows<T>(_: &Ensemble<T>, _: &[T], _: &mut [T]) -> usize {
    0
}

#[cfg(not(target_arch = "x86_64"))]
fn no_vector_trees<T>(_: &Ensemble<T>, _: &[T], _: &mut [T]) -> bool {
    false
}

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
    /// The root's index; in a complete layout, where the tree's nodes start.
    root: u32,
    /// Edges on the longest path from the root: the steps every walk takes.
    depth: u32,
    group: u32,
}

/// Trees no deeper than this are laid out complete, when padding them does not take more
/// than [`COMPLETE_GROWTH`] times the nodes they have (plus a little).
const COMPLETE_DEPTH: u32 = 10;
const COMPLETE_GROWTH: usize = 8;

/// Trees flattened for scoring; see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ensemble<T> {
    /// Per node: a branch's threshold (`x < value` goes left), a leaf's value.
    values: Vec<T>,
    /// Per node: the feature (or, with [`SPECIAL`], the special test) and flags.
    words: Vec<u32>,
    /// Per node of a linked layout: the left child, the right one following it; a leaf
    /// names itself. Empty in a complete layout.
    firsts: Vec<u32>,
    /// Every tree complete to its depth: node `i` of a tree (counted from its root) has
    /// its children at `2i + 1` and `2i + 2`, and the last level holds the leaves.
    complete: bool,
    /// Set once every index a vector walk of the complete layout reads was checked to be
    /// in bounds (see [`Ensemble::vector_walks_in_bounds`]). Nothing changes the nodes
    /// afterwards; [`Ensemble::truncate`] only drops trees.
    vector_ready: bool,
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
        let mut ensemble = Self::linked(trees, features, groups)?;
        ensemble.make_complete();
        ensemble.vector_ready = ensemble.vector_walks_in_bounds();
        Ok(ensemble)
    }

    /// The trees in the linked layout, which any depth fits.
    fn linked(trees: Vec<TreeSpec<T>>, features: usize, groups: usize) -> Result<Self> {
        if features > FEATURE_MASK as usize {
            return Err(Error::InvalidPackage(format!("{features} features are more than this evaluator holds")));
        }
        let total: usize = trees.iter().map(|t| t.nodes.len()).sum();
        if u32::try_from(total).is_err() || total > FEATURE_MASK as usize {
            return Err(Error::InvalidPackage(format!("{total} tree nodes are more than this evaluator holds")));
        }
        let mut ensemble = Self {
            values: Vec::with_capacity(total),
            words: Vec::with_capacity(total),
            firsts: Vec::with_capacity(total),
            complete: false,
            vector_ready: false,
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
            let base = ensemble.values.len();
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
                let (value, word, first) = match node {
                    TreeNode::Leaf(value) => (value, LEAF, own),
                    TreeNode::Branch { feature, test, left, .. } => {
                        let first = (base + position[left]) as u32;
                        let special = match test {
                            Test::Less { threshold, missing_left } => {
                                let flag = if missing_left { MISSING_LEFT } else { 0 };
                                ensemble.push(threshold, feature as u32 | flag, first);
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
                        (T::ZERO, SPECIAL | slot, first)
                    }
                };
                ensemble.push(value, word, first);
            }
            ensemble.trees.push(Tree { root: base as u32, depth, group: tree.group as u32 });
        }
        Ok(ensemble)
    }

    fn push(&mut self, value: T, word: u32, first: u32) {
        self.values.push(value);
        self.words.push(word);
        self.firsts.push(first);
    }

    /// Lays every tree out complete to its depth, a leaf above the last level copied into
    /// both halves below it, when the trees are shallow enough that padding them costs
    /// little: a step then needs no child index and no leaf test.
    fn make_complete(&mut self) {
        let linked = self.values.len();
        let mut padded = 0usize;
        for tree in &self.trees {
            if tree.depth > COMPLETE_DEPTH {
                return;
            }
            padded += (2usize << tree.depth) - 1;
        }
        if padded > COMPLETE_GROWTH * linked + (1 << 16) || padded > FEATURE_MASK as usize {
            return;
        }
        let mut values = vec![T::ZERO; padded];
        let mut words = vec![0u32; padded];
        let mut base = 0usize;
        let mut stack = Vec::new();
        for tree in &mut self.trees {
            // (linked node, position in the complete tree, level)
            stack.push((tree.root as usize, 0usize, 0u32));
            while let Some((node, position, level)) = stack.pop() {
                let word = self.words[node];
                if word & LEAF == 0 {
                    values[base + position] = self.values[node];
                    words[base + position] = word;
                    let first = self.firsts[node] as usize;
                    stack.push((first, 2 * position + 1, level + 1));
                    stack.push((first + 1, 2 * position + 2, level + 1));
                } else if level == tree.depth {
                    values[base + position] = self.values[node];
                } else {
                    // A pass-through branch (feature 0 against zero) with the leaf on
                    // both sides.
                    stack.push((node, 2 * position + 1, level + 1));
                    stack.push((node, 2 * position + 2, level + 1));
                }
            }
            tree.root = base as u32;
            base += (2usize << tree.depth) - 1;
        }
        self.values = values;
        self.words = words;
        self.firsts = Vec::new();
        self.complete = true;
    }

    /// Whether a vector walk of the complete layout stays in bounds: every tree's nodes
    /// lie in the arrays, and every node that is not special names a feature of the row.
    /// The vector walks read nodes and features without bounds checks, so they run only
    /// when this held at construction.
    fn vector_walks_in_bounds(&self) -> bool {
        let width = self.row_width();
        self.complete
            && self.values.len() == self.words.len()
            && i32::try_from(self.values.len()).is_ok()
            && width <= MAX_VECTOR_WIDTH
            && self
                .trees
                .iter()
                .all(|t| t.depth <= COMPLETE_DEPTH && t.root as usize + (2usize << t.depth) - 1 <= self.values.len())
            && self.words.iter().all(|&word| {
                let index = (word & FEATURE_MASK) as usize;
                if word & SPECIAL != 0 { index < self.special.len() } else { index < width }
            })
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
        // The vector unit takes what it can; the rest is walked here.
        let (width, groups) = (self.row_width(), self.groups);
        let mut done = if self.vector_ready { T::vector_rows(self, rows, out) } else { 0 };
        if self.vector_ready && rows.len() - done * width < LANES * width {
            // Too few rows left for lanes of rows: lanes of trees, a row at a time.
            for (row, row_out) in rows[done * width..].chunks_exact(width).zip(out[done * groups..].chunks_mut(groups))
            {
                if !T::vector_trees(self, row, row_out) {
                    break;
                }
                done += 1;
            }
        }
        let (rows, out) = (&rows[done * width..], &mut out[done * groups..]);
        // Without special splits (every XGBoost model) the step has no test for them.
        match (self.special.is_empty(), self.complete) {
            (true, true) => self.walk::<false, true>(rows, out),
            (true, false) => self.walk::<false, false>(rows, out),
            (false, true) => self.walk::<true, true>(rows, out),
            (false, false) => self.walk::<true, false>(rows, out),
        }
    }

    fn walk<const SPECIALS: bool, const COMPLETE: bool>(&self, rows: &[T], out: &mut [T]) {
        let width = self.row_width();
        let groups = self.groups;
        let full = rows.len() / (width * LANES) * LANES;
        let (lanes, rest) = rows.split_at(full * width);
        for tree in &self.trees {
            let group = tree.group as usize;
            let shift = shift_of(tree);
            for (lane_rows, lane_out) in lanes.chunks_exact(width * LANES).zip(out.chunks_mut(groups * LANES)) {
                let rows: [&[T]; LANES] = std::array::from_fn(|lane| &lane_rows[lane * width..(lane + 1) * width]);
                let mut at = [tree.root; LANES];
                for _ in 0..tree.depth {
                    for lane in 0..LANES {
                        at[lane] = self.step::<SPECIALS, COMPLETE>(at[lane], shift, rows[lane]);
                    }
                }
                for (lane, node) in at.iter().enumerate() {
                    lane_out[lane * groups + group] += self.values[*node as usize];
                }
            }
        }
        // Fewer rows than lanes (a request of one row, say): walk trees side by side
        // instead, adding their leaves in order afterwards.
        for (row, row_out) in rest.chunks_exact(width).zip(out[full * groups..].chunks_mut(groups)) {
            for trees in self.trees.chunks(LANES) {
                let mut at = [0u32; LANES];
                let mut shifts = [0u32; LANES];
                let mut depths = [0u32; LANES];
                for (lane, tree) in trees.iter().enumerate() {
                    (at[lane], shifts[lane], depths[lane]) = (tree.root, shift_of(tree), tree.depth);
                }
                let depth = depths.iter().copied().max().unwrap_or(0);
                for step in 0..depth {
                    for lane in 0..LANES {
                        if step < depths[lane] {
                            at[lane] = self.step::<SPECIALS, COMPLETE>(at[lane], shifts[lane], row);
                        }
                    }
                }
                for (node, tree) in at.iter().zip(trees) {
                    row_out[tree.group as usize] += self.values[*node as usize];
                }
            }
        }
    }

    /// One step down from node `at`: in a complete layout to `2 * at + shift` or the
    /// node after it, in a linked one to its first child or the one after it.
    #[inline(always)]
    fn step<const SPECIALS: bool, const COMPLETE: bool>(&self, at: u32, shift: u32, row: &[T]) -> u32 {
        let node = at as usize;
        let word = self.words[node];
        let right = if SPECIALS && word & SPECIAL != 0 {
            !self.special_left(&self.special[(word & FEATURE_MASK) as usize], row)
        } else {
            let x = row[(word & FEATURE_MASK) as usize];
            // Without branches: the direction depends on the data, so a branch on it would
            // be mispredicted half the time. NaN compares false, so it goes left only by
            // its flag; a leaf of a linked layout stays where it is.
            let left = (x < self.values[node]) | (x.is_nan() & (word & MISSING_LEFT != 0));
            !left & (COMPLETE || word & LEAF == 0)
        };
        if COMPLETE {
            at.wrapping_mul(2).wrapping_add(shift) + u32::from(right)
        } else {
            self.firsts[node] + u32::from(right)
        }
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

/// What a step of `tree` in a complete layout adds to twice its node's index: node
/// `root + i` has its left child at `root + 2i + 1`.
fn shift_of(tree: &Tree) -> u32 {
    1u32.wrapping_sub(tree.root)
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

    /// The ensemble in every layout and walk it can take: as built (complete, with vector
    /// walks where the processor has them), complete with scalar walks only, and linked.
    fn variants<T: Number>(trees: &[TreeSpec<T>], features: usize, groups: usize) -> Vec<(&'static str, Ensemble<T>)> {
        let built = Ensemble::new(trees.to_vec(), features, groups).unwrap();
        assert!(built.complete && built.vector_ready, "shallow trees are laid out complete");
        let mut scalar = built.clone();
        scalar.vector_ready = false;
        let linked = Ensemble::linked(trees.to_vec(), features, groups).unwrap();
        vec![("as built", built), ("complete, scalar", scalar), ("linked", linked)]
    }

    /// Whether `test` sends `x` left, the plain way, as a reference.
    fn goes_left<T: Number>(test: &Test<T>, x: T) -> bool {
        match test {
            Test::Less { threshold, missing_left } => {
                if x.is_nan() {
                    *missing_left
                } else {
                    x < *threshold
                }
            }
            Test::AtMost { threshold, missing_left } => {
                if x.is_nan() {
                    *missing_left
                } else {
                    x <= *threshold
                }
            }
            Test::AtMostZeroMissing { threshold, default_left } => {
                if x.is_nan() || x.to_f64().abs() <= 1e-35 {
                    *default_left
                } else {
                    x <= *threshold
                }
            }
            Test::InCategories { bitset } => {
                let category = x.to_f64().trunc();
                !x.is_nan()
                    && x.to_f64() > -1.0
                    && category < f64::from(u32::MAX)
                    && bitset.get(category as usize / 32).is_some_and(|w| w >> (category as usize % 32) & 1 == 1)
            }
        }
    }

    /// Walks a tree one row at a time, as a reference.
    fn walk<T: Number>(nodes: &[TreeNode<T>], row: &[T]) -> T {
        let mut at = 0;
        loop {
            match &nodes[at] {
                TreeNode::Leaf(v) => return *v,
                TreeNode::Branch { feature, test, left, right } => {
                    at = if goes_left(test, row[*feature]) { *left } else { *right };
                }
            }
        }
    }

    /// Every row's scores, each tree added in order, one row at a time.
    fn reference<T: Number>(trees: &[TreeSpec<T>], rows: &[T], features: usize, groups: usize) -> Vec<T> {
        let mut out = vec![T::ZERO; rows.len() / features * groups];
        for (row, scores) in rows.chunks(features).zip(out.chunks_mut(groups)) {
            for tree in trees {
                scores[tree.group] += walk(&tree.nodes, row);
            }
        }
        out
    }

    /// A small deterministic generator (xorshift), for random trees and rows.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        /// A threshold or leaf value in [-3, 3), to a hundredth, so features hit it exactly.
        fn value(&mut self) -> f64 {
            (self.below(600) as f64 - 300.0) / 100.0
        }

        /// A feature value: a tenth missing, a tenth zero, a fifth small integers (the
        /// categories), the rest like thresholds.
        fn feature(&mut self) -> f64 {
            match self.below(10) {
                0 => f64::NAN,
                1 => 0.0,
                2 | 3 => self.below(70) as f64,
                _ => self.value(),
            }
        }
    }

    /// A random tree of at most `depth` levels below its root, its root first.
    fn random_tree<T: Number>(
        rng: &mut Rng,
        depth: u32,
        features: usize,
        make_test: &dyn Fn(&mut Rng) -> Test<T>,
        leaf: &dyn Fn(&mut Rng) -> T,
        nodes: &mut Vec<TreeNode<T>>,
    ) -> usize {
        let at = nodes.len();
        // A leaf at the bottom, and now and then above it.
        if depth == 0 || rng.below(5) == 0 {
            nodes.push(TreeNode::Leaf(leaf(rng)));
            return at;
        }
        let feature = rng.below(features as u64) as usize;
        let test = make_test(rng);
        nodes.push(TreeNode::Leaf(T::ZERO));
        let left = random_tree(rng, depth - 1, features, make_test, leaf, nodes);
        let right = random_tree(rng, depth - 1, features, make_test, leaf, nodes);
        nodes[at] = TreeNode::Branch { feature, test, left, right };
        at
    }

    /// Holds every variant of `trees` to the reference, on many rows and one at a time.
    fn check<T: Number>(trees: &[TreeSpec<T>], rows: &[T], features: usize, groups: usize) {
        let expected = reference(trees, rows, features, groups);
        for (name, ensemble) in variants(trees, features, groups) {
            assert_eq!(score(&ensemble, rows), expected, "{name}");
            for (row, want) in rows.chunks(features).zip(expected.chunks(groups)).take(40) {
                assert_eq!(score(&ensemble, row), want, "{name}, one row: {row:?}");
            }
        }
    }

    #[test]
    fn every_layout_and_walk_scores_as_one_row_at_a_time_would() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // 1003 rows: whole vector passes, whole lanes, rows left over, several blocks.
        let rows = 1003;
        // XGBoost's kind: `f32`, plain comparisons; trees of every depth up to 10, two
        // outputs.
        let features = 7;
        let plain = |r: &mut Rng| Test::Less { threshold: r.value() as f32, missing_left: r.below(2) == 0 };
        let trees: Vec<TreeSpec<f32>> = (0..40)
            .map(|i| {
                let mut nodes = Vec::new();
                random_tree(&mut rng, i % 11, features, &plain, &|r| r.value() as f32, &mut nodes);
                TreeSpec { nodes, group: i as usize % 2 }
            })
            .collect();
        let values: Vec<f32> = (0..rows * features).map(|_| rng.feature() as f32).collect();
        check(&trees, &values, features, 2);

        // LightGBM's kind: `f64`, every special test among the plain ones, one output.
        let any = |r: &mut Rng| match r.below(6) {
            0 => Test::AtMostZeroMissing { threshold: r.value(), default_left: r.below(2) == 0 },
            1 => Test::AtMost { threshold: f64::INFINITY, missing_left: r.below(2) == 0 },
            2 => Test::InCategories { bitset: vec![r.below(1 << 32) as u32, r.below(1 << 32) as u32] },
            _ => Test::Less { threshold: r.value(), missing_left: r.below(2) == 0 },
        };
        let trees: Vec<TreeSpec<f64>> = (0..40)
            .map(|i| {
                let mut nodes = Vec::new();
                random_tree(&mut rng, i % 11, features, &any, &Rng::value, &mut nodes);
                TreeSpec { nodes, group: 0 }
            })
            .collect();
        let values: Vec<f64> = (0..rows * features).map(|_| rng.feature()).collect();
        check(&trees, &values, features, 1);
    }

    #[test]
    fn trees_deeper_than_ten_levels_stay_linked() {
        // A chain of twelve branches, each sending values below its threshold left.
        let mut nodes = Vec::new();
        for level in 0..12 {
            nodes.push(less(0, level as f32, false, 2 * level + 1, 2 * level + 2));
            nodes.push(TreeNode::Leaf(level as f32));
        }
        nodes.push(TreeNode::Leaf(100.0));
        let trees = vec![TreeSpec { nodes, group: 0 }];
        let ensemble = Ensemble::new(trees.clone(), 1, 1).unwrap();
        assert!(!ensemble.complete && !ensemble.vector_ready);
        let rows: Vec<f32> = (0..300).map(|i| (i % 15) as f32 - 0.5).collect();
        assert_eq!(score(&ensemble, &rows), reference(&trees, &rows, 1, 1));
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
