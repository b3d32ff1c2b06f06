//! Walks of complete trees with AVX-512 gathers: sixteen lanes of `f32` (eight of `f64`)
//! take a step in one instruction per load, where the scalar walk issues one load per
//! lane. A step gathers each lane's node word and threshold, then the feature the word
//! names from each lane's row, compares, and moves each lane to `2 * at + shift` or the
//! node after it; after its tree's depth in steps every lane is at its leaf. Lanes are rows
//! of one tree (many rows), or trees of one row (a request of a few rows); several vectors
//! are walked side by side so that many gathers are in flight.
//!
//! This is one of the workspace's two modules with `unsafe` code (the other hands Arrow
//! arrays between Polars and arrow-rs), for two reasons: gathers read through raw
//! pointers, and a function compiled for AVX-512 may only be called once the processor is
//! known to have it. The walks run only on an [`Ensemble`] whose `vector_ready` is set:
//! [`Ensemble::vector_walks_in_bounds`] found every tree's nodes inside the arrays and
//! every plain node's feature inside a row, so every gathered index is in bounds (a
//! special node's lanes are masked out of the feature gather and stepped by the scalar
//! test). Everything else (the rows and outputs, the special tests) goes through checked
//! slices.

use std::arch::x86_64::{
    __m256i, __m512i, _CMP_LT_OQ, _CMP_UNORD_Q, _mm256_add_epi32, _mm256_and_si256, _mm256_cmpgt_epu32_mask,
    _mm256_i32gather_epi32, _mm256_loadu_si256, _mm256_mask_add_epi32, _mm256_mask_mov_epi32, _mm256_mullo_epi32,
    _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_test_epi32_mask,
    _mm512_add_epi32, _mm512_and_si512, _mm512_cmp_pd_mask, _mm512_cmp_ps_mask, _mm512_cmpgt_epu32_mask,
    _mm512_i32gather_epi32, _mm512_i32gather_pd, _mm512_i32gather_ps, _mm512_loadu_si512, _mm512_mask_add_epi32,
    _mm512_mask_i32gather_pd, _mm512_mask_i32gather_ps, _mm512_mask_mov_epi32, _mm512_mullo_epi32, _mm512_set1_epi32,
    _mm512_setr_epi32, _mm512_setzero_pd, _mm512_setzero_ps, _mm512_setzero_si512, _mm512_storeu_pd, _mm512_storeu_ps,
    _mm512_storeu_si512, _mm512_test_epi32_mask,
};

use super::{Ensemble, FEATURE_MASK, MISSING_LEFT, Number, SPECIAL, Tree, shift_of};

/// Vectors walked side by side over rows: 128 rows to a pass. Rows short of a pass are
/// walked a vector at a time, and rows short of a vector by the scalar walk.
const F32_ROW_VECTORS: usize = 8;
const F64_ROW_VECTORS: usize = 16;
/// Vectors walked side by side over the trees of one row: 64 trees to a pass.
const F32_TREE_VECTORS: usize = 4;
const F64_TREE_VECTORS: usize = 8;
const TREE_PASS: usize = 64;
const _: () = assert!(16 * F32_TREE_VECTORS == TREE_PASS && 8 * F64_TREE_VECTORS == TREE_PASS);

fn has_avx512_f32() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

fn has_avx512_f64() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl")
}

/// Walks the vectors of sixteen rows at the start of `rows`; returns the rows walked.
pub(super) fn rows_f32(ensemble: &Ensemble<f32>, rows: &[f32], out: &mut [f32]) -> usize {
    if !ensemble.vector_ready || !has_avx512_f32() {
        return 0;
    }
    let (width, groups) = (ensemble.row_width(), ensemble.groups);
    let passes = rows.len() / (width * 16 * F32_ROW_VECTORS);
    let done = passes * 16 * F32_ROW_VECTORS;
    let vectors = (rows.len() / width - done) / 16;
    let ((rows, rest), (out, rest_out)) = (rows.split_at(done * width), out.split_at_mut(done * groups));
    // SAFETY: the processor has AVX-512F (checked above), and `vector_ready` says every
    // index the walk gathers is in bounds (see the module docs).
    unsafe {
        if ensemble.special.is_empty() {
            f32_rows::<false, F32_ROW_VECTORS>(ensemble, rows, out, passes);
            f32_rows::<false, 1>(ensemble, rest, rest_out, vectors);
        } else {
            f32_rows::<true, F32_ROW_VECTORS>(ensemble, rows, out, passes);
            f32_rows::<true, 1>(ensemble, rest, rest_out, vectors);
        }
    }
    done + 16 * vectors
}

/// Walks the vectors of eight rows at the start of `rows`; returns the rows walked.
pub(super) fn rows_f64(ensemble: &Ensemble<f64>, rows: &[f64], out: &mut [f64]) -> usize {
    if !ensemble.vector_ready || !has_avx512_f64() {
        return 0;
    }
    let (width, groups) = (ensemble.row_width(), ensemble.groups);
    let passes = rows.len() / (width * 8 * F64_ROW_VECTORS);
    let done = passes * 8 * F64_ROW_VECTORS;
    let vectors = (rows.len() / width - done) / 8;
    let ((rows, rest), (out, rest_out)) = (rows.split_at(done * width), out.split_at_mut(done * groups));
    // SAFETY: the processor has AVX-512F, AVX-512VL and so AVX2 (checked above), and
    // `vector_ready` says every index the walk gathers is in bounds.
    unsafe {
        if ensemble.special.is_empty() {
            f64_rows::<false, F64_ROW_VECTORS>(ensemble, rows, out, passes);
            f64_rows::<false, 1>(ensemble, rest, rest_out, vectors);
        } else {
            f64_rows::<true, F64_ROW_VECTORS>(ensemble, rows, out, passes);
            f64_rows::<true, 1>(ensemble, rest, rest_out, vectors);
        }
    }
    done + 8 * vectors
}

/// Walks every tree for the one row `row`, adding the leaves to `out` in tree order;
/// `false` (and nothing added) where the processor cannot.
pub(super) fn trees_f32(ensemble: &Ensemble<f32>, row: &[f32], out: &mut [f32]) -> bool {
    if !ensemble.vector_ready || !has_avx512_f32() {
        return false;
    }
    // SAFETY: as in `rows_f32`.
    unsafe {
        if ensemble.special.is_empty() {
            f32_trees::<false>(ensemble, row, out);
        } else {
            f32_trees::<true>(ensemble, row, out);
        }
    }
    true
}

/// Walks every tree for the one row `row`, adding the leaves to `out` in tree order;
/// `false` (and nothing added) where the processor cannot.
pub(super) fn trees_f64(ensemble: &Ensemble<f64>, row: &[f64], out: &mut [f64]) -> bool {
    if !ensemble.vector_ready || !has_avx512_f64() {
        return false;
    }
    // SAFETY: as in `rows_f64`.
    unsafe {
        if ensemble.special.is_empty() {
            f64_trees::<false>(ensemble, row, out);
        } else {
            f64_trees::<true>(ensemble, row, out);
        }
    }
    true
}

/// Lane `i`'s row offset, `(first + i) * width`, for sixteen lanes.
#[target_feature(enable = "avx512f")]
fn row_offsets_16(first: usize, width: usize) -> __m512i {
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let first = _mm512_set1_epi32((first * width) as i32);
    _mm512_add_epi32(first, _mm512_mullo_epi32(lanes, _mm512_set1_epi32(width as i32)))
}

/// Lane `i`'s row offset, `(first + i) * width`, for eight lanes.
#[target_feature(enable = "avx512f,avx512vl,avx2")]
fn row_offsets_8(first: usize, width: usize) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let first = _mm256_set1_epi32((first * width) as i32);
    _mm256_add_epi32(first, _mm256_mullo_epi32(lanes, _mm256_set1_epi32(width as i32)))
}

/// Which row each lane of a step reads: lane `i` of the vector starting at lane `first`
/// reads row `(first + i) * stride` of the rows (a stride of zero: all the same row).
#[derive(Clone, Copy)]
struct LaneRows<'a, T> {
    rows: &'a [T],
    stride: usize,
    first: usize,
}

/// # Safety
/// The processor has AVX-512F and `ensemble.vector_ready` is set.
#[target_feature(enable = "avx512f")]
unsafe fn f32_rows<const SPECIALS: bool, const VECTORS: usize>(
    ensemble: &Ensemble<f32>,
    rows: &[f32],
    out: &mut [f32],
    passes: usize,
) {
    const LANES: usize = 16;
    let pass = LANES * VECTORS;
    let (width, groups) = (ensemble.row_width(), ensemble.groups);
    let offsets: [__m512i; VECTORS] = std::array::from_fn(|v| row_offsets_16(LANES * v, width));
    for tree in &ensemble.trees {
        let group = tree.group as usize;
        let shift = _mm512_set1_epi32(shift_of(tree) as i32);
        for first in (0..passes).map(|p| p * pass) {
            let pass_rows = &rows[first * width..(first + pass) * width];
            let mut at = [_mm512_set1_epi32(tree.root as i32); VECTORS];
            for _ in 0..tree.depth {
                for (v, at) in at.iter_mut().enumerate() {
                    let lanes = LaneRows { rows: pass_rows, stride: width, first: LANES * v };
                    // SAFETY: as this function's; every lane is a node of `tree` above its
                    // last level, and `pass_rows` holds every lane's row.
                    *at = unsafe { f32_step::<SPECIALS>(ensemble, *at, shift, offsets[v], lanes) };
                }
            }
            let pass_out = &mut out[first * groups..(first + pass) * groups];
            for (v, at) in at.into_iter().enumerate() {
                // SAFETY: every lane is at a leaf of its tree.
                let leaves = unsafe { f32_leaves(ensemble, at) };
                for (lane, leaf) in leaves.into_iter().enumerate() {
                    pass_out[(LANES * v + lane) * groups + group] += leaf;
                }
            }
        }
    }
}

/// # Safety
/// The processor has AVX-512F and `ensemble.vector_ready` is set.
#[target_feature(enable = "avx512f")]
unsafe fn f32_trees<const SPECIALS: bool>(ensemble: &Ensemble<f32>, row: &[f32], out: &mut [f32]) {
    const LANES: usize = 16;
    let lanes = LaneRows { rows: row, stride: 0, first: 0 };
    for trees in ensemble.trees.chunks(TREE_PASS) {
        let (at, shifts, depths) = tree_lanes(trees);
        let [mut at, shifts, depths] = [at, shifts, depths].map(|lanes| {
            // SAFETY: each load reads sixteen lanes from an array of at least that many.
            std::array::from_fn::<__m512i, F32_TREE_VECTORS, _>(|v| unsafe {
                _mm512_loadu_si512(lanes[LANES * v..].as_ptr().cast())
            })
        });
        for step in 0..trees.iter().map(|t| t.depth).max().unwrap_or(0) {
            let step = _mm512_set1_epi32(step as i32);
            for v in 0..F32_TREE_VECTORS {
                // Lanes past their tree's depth (or without a tree) are at their leaf.
                let walking = _mm512_cmpgt_epu32_mask(depths[v], step);
                // SAFETY: every lane is a node of its tree (one above its last level where
                // it is walking), and every lane reads `row`.
                let next = unsafe { f32_step::<SPECIALS>(ensemble, at[v], shifts[v], _mm512_setzero_si512(), lanes) };
                at[v] = _mm512_mask_mov_epi32(at[v], walking, next);
            }
        }
        for (v, at) in at.into_iter().enumerate() {
            // SAFETY: every lane is at a leaf of its tree (a lane without a tree at node 0).
            let leaves = unsafe { f32_leaves(ensemble, at) };
            for (tree, leaf) in trees[(LANES * v).min(trees.len())..].iter().zip(leaves) {
                out[tree.group as usize] += leaf;
            }
        }
    }
}

/// Each lane's node, shift and depth for up to [`TREE_PASS`] trees walked side by side;
/// lanes without a tree stay at node 0 with depth 0.
fn tree_lanes(trees: &[Tree]) -> ([u32; TREE_PASS], [u32; TREE_PASS], [u32; TREE_PASS]) {
    let mut lanes = ([0u32; TREE_PASS], [0u32; TREE_PASS], [0u32; TREE_PASS]);
    for (lane, tree) in trees.iter().take(TREE_PASS).enumerate() {
        (lanes.0[lane], lanes.1[lane], lanes.2[lane]) = (tree.root, shift_of(tree), tree.depth);
    }
    lanes
}

/// # Safety
/// The processor has AVX-512F, `ensemble.vector_ready` is set, every lane of `at` is a
/// leaf of the complete layout.
#[target_feature(enable = "avx512f")]
unsafe fn f32_leaves(ensemble: &Ensemble<f32>, at: __m512i) -> [f32; 16] {
    let mut leaves = [0f32; 16];
    // SAFETY: the lanes are nodes of `values`; the store writes sixteen values into an
    // array of sixteen.
    unsafe { _mm512_storeu_ps(leaves.as_mut_ptr(), _mm512_i32gather_ps::<4>(at, ensemble.values.as_ptr())) };
    leaves
}

/// # Safety
/// The processor has AVX-512F, `ensemble.vector_ready` is set, every lane of `at` is a
/// node of its tree above its last level, with that tree's `shift`, and `lanes.rows` holds
/// the row each lane reads at its offset.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn f32_step<const SPECIALS: bool>(
    ensemble: &Ensemble<f32>,
    at: __m512i,
    shift: __m512i,
    offsets: __m512i,
    lanes: LaneRows<'_, f32>,
) -> __m512i {
    // SAFETY: the lanes are nodes of the arrays (the caller's promise, and the bounds
    // `vector_ready` checked).
    let (words, thresholds) = unsafe {
        (
            _mm512_i32gather_epi32::<4>(at, ensemble.words.as_ptr().cast::<i32>()),
            _mm512_i32gather_ps::<4>(at, ensemble.values.as_ptr()),
        )
    };
    let features = _mm512_add_epi32(offsets, _mm512_and_si512(words, _mm512_set1_epi32(FEATURE_MASK as i32)));
    let special = if SPECIALS { _mm512_test_epi32_mask(words, _mm512_set1_epi32(SPECIAL as i32)) } else { 0 };
    // SAFETY: a plain node's feature is inside its row (checked by `vector_ready`), and a
    // special node's lane is masked out of the gather.
    let x = unsafe {
        if SPECIALS {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), !special, features, lanes.rows.as_ptr())
        } else {
            _mm512_i32gather_ps::<4>(features, lanes.rows.as_ptr())
        }
    };
    let missing_left = _mm512_test_epi32_mask(words, _mm512_set1_epi32(MISSING_LEFT as i32));
    let left =
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, thresholds) | (_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x) & missing_left);
    let doubled = _mm512_add_epi32(_mm512_add_epi32(at, at), shift);
    let next = _mm512_mask_add_epi32(doubled, !left, doubled, _mm512_set1_epi32(1));
    if !SPECIALS || special == 0 {
        return next;
    }
    let mut nodes = [0u32; 16];
    let mut shifts = [0u32; 16];
    let mut steps = [0u32; 16];
    // SAFETY: each store writes sixteen lanes into an array of sixteen.
    unsafe {
        _mm512_storeu_si512(nodes.as_mut_ptr().cast(), at);
        _mm512_storeu_si512(shifts.as_mut_ptr().cast(), shift);
        _mm512_storeu_si512(steps.as_mut_ptr().cast(), next);
    }
    step_specials(ensemble, special.into(), &nodes, &shifts, &mut steps, lanes);
    // SAFETY: the load reads sixteen lanes from an array of sixteen.
    unsafe { _mm512_loadu_si512(steps.as_ptr().cast()) }
}

/// # Safety
/// The processor has AVX-512F, AVX-512VL and AVX2, and `ensemble.vector_ready` is set.
#[target_feature(enable = "avx512f,avx512vl,avx2")]
unsafe fn f64_rows<const SPECIALS: bool, const VECTORS: usize>(
    ensemble: &Ensemble<f64>,
    rows: &[f64],
    out: &mut [f64],
    passes: usize,
) {
    const LANES: usize = 8;
    let pass = LANES * VECTORS;
    let (width, groups) = (ensemble.row_width(), ensemble.groups);
    let offsets: [__m256i; VECTORS] = std::array::from_fn(|v| row_offsets_8(LANES * v, width));
    for tree in &ensemble.trees {
        let group = tree.group as usize;
        let shift = _mm256_set1_epi32(shift_of(tree) as i32);
        for first in (0..passes).map(|p| p * pass) {
            let pass_rows = &rows[first * width..(first + pass) * width];
            let mut at = [_mm256_set1_epi32(tree.root as i32); VECTORS];
            for _ in 0..tree.depth {
                for (v, at) in at.iter_mut().enumerate() {
                    let lanes = LaneRows { rows: pass_rows, stride: width, first: LANES * v };
                    // SAFETY: as this function's; every lane is a node of `tree` above its
                    // last level, and `pass_rows` holds every lane's row.
                    *at = unsafe { f64_step::<SPECIALS>(ensemble, *at, shift, offsets[v], lanes) };
                }
            }
            let pass_out = &mut out[first * groups..(first + pass) * groups];
            for (v, at) in at.into_iter().enumerate() {
                // SAFETY: every lane is at a leaf of its tree.
                let leaves = unsafe { f64_leaves(ensemble, at) };
                for (lane, leaf) in leaves.into_iter().enumerate() {
                    pass_out[(LANES * v + lane) * groups + group] += leaf;
                }
            }
        }
    }
}

/// # Safety
/// The processor has AVX-512F, AVX-512VL and AVX2, and `ensemble.vector_ready` is set.
#[target_feature(enable = "avx512f,avx512vl,avx2")]
unsafe fn f64_trees<const SPECIALS: bool>(ensemble: &Ensemble<f64>, row: &[f64], out: &mut [f64]) {
    const LANES: usize = 8;
    let lanes = LaneRows { rows: row, stride: 0, first: 0 };
    for trees in ensemble.trees.chunks(TREE_PASS) {
        let (at, shifts, depths) = tree_lanes(trees);
        let [mut at, shifts, depths] = [at, shifts, depths].map(|lanes| {
            // SAFETY: each load reads eight lanes from an array of at least that many.
            std::array::from_fn::<__m256i, F64_TREE_VECTORS, _>(|v| unsafe {
                _mm256_loadu_si256(lanes[LANES * v..].as_ptr().cast())
            })
        });
        for step in 0..trees.iter().map(|t| t.depth).max().unwrap_or(0) {
            let step = _mm256_set1_epi32(step as i32);
            for v in 0..F64_TREE_VECTORS {
                // Lanes past their tree's depth (or without a tree) are at their leaf.
                let walking = _mm256_cmpgt_epu32_mask(depths[v], step);
                // SAFETY: every lane is a node of its tree (one above its last level where
                // it is walking), and every lane reads `row`.
                let next = unsafe { f64_step::<SPECIALS>(ensemble, at[v], shifts[v], _mm256_setzero_si256(), lanes) };
                at[v] = _mm256_mask_mov_epi32(at[v], walking, next);
            }
        }
        for (v, at) in at.into_iter().enumerate() {
            // SAFETY: every lane is at a leaf of its tree (a lane without a tree at node 0).
            let leaves = unsafe { f64_leaves(ensemble, at) };
            for (tree, leaf) in trees[(LANES * v).min(trees.len())..].iter().zip(leaves) {
                out[tree.group as usize] += leaf;
            }
        }
    }
}

/// # Safety
/// The processor has AVX-512F, `ensemble.vector_ready` is set, every lane of `at` is a
/// leaf of the complete layout.
#[target_feature(enable = "avx512f,avx512vl,avx2")]
unsafe fn f64_leaves(ensemble: &Ensemble<f64>, at: __m256i) -> [f64; 8] {
    let mut leaves = [0f64; 8];
    // SAFETY: the lanes are nodes of `values`; the store writes eight values into an
    // array of eight.
    unsafe { _mm512_storeu_pd(leaves.as_mut_ptr(), _mm512_i32gather_pd::<8>(at, ensemble.values.as_ptr())) };
    leaves
}

/// # Safety
/// As [`f32_step`]'s, with AVX-512VL and AVX2 as well.
#[target_feature(enable = "avx512f,avx512vl,avx2")]
#[inline]
unsafe fn f64_step<const SPECIALS: bool>(
    ensemble: &Ensemble<f64>,
    at: __m256i,
    shift: __m256i,
    offsets: __m256i,
    lanes: LaneRows<'_, f64>,
) -> __m256i {
    // SAFETY: the lanes are nodes of the arrays.
    let (words, thresholds) = unsafe {
        (
            _mm256_i32gather_epi32::<4>(ensemble.words.as_ptr().cast::<i32>(), at),
            _mm512_i32gather_pd::<8>(at, ensemble.values.as_ptr()),
        )
    };
    let features = _mm256_add_epi32(offsets, _mm256_and_si256(words, _mm256_set1_epi32(FEATURE_MASK as i32)));
    let special = if SPECIALS { _mm256_test_epi32_mask(words, _mm256_set1_epi32(SPECIAL as i32)) } else { 0 };
    // SAFETY: a plain node's feature is inside its row, and a special node's lane is
    // masked out of the gather.
    let x = unsafe {
        if SPECIALS {
            _mm512_mask_i32gather_pd::<8>(_mm512_setzero_pd(), !special, features, lanes.rows.as_ptr())
        } else {
            _mm512_i32gather_pd::<8>(features, lanes.rows.as_ptr())
        }
    };
    let missing_left = _mm256_test_epi32_mask(words, _mm256_set1_epi32(MISSING_LEFT as i32));
    let left =
        _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, thresholds) | (_mm512_cmp_pd_mask::<_CMP_UNORD_Q>(x, x) & missing_left);
    let doubled = _mm256_add_epi32(_mm256_add_epi32(at, at), shift);
    let next = _mm256_mask_add_epi32(doubled, !left, doubled, _mm256_set1_epi32(1));
    if !SPECIALS || special == 0 {
        return next;
    }
    let mut nodes = [0u32; 8];
    let mut shifts = [0u32; 8];
    let mut steps = [0u32; 8];
    // SAFETY: each store writes eight lanes into an array of eight.
    unsafe {
        _mm256_storeu_si256(nodes.as_mut_ptr().cast(), at);
        _mm256_storeu_si256(shifts.as_mut_ptr().cast(), shift);
        _mm256_storeu_si256(steps.as_mut_ptr().cast(), next);
    }
    step_specials(ensemble, special.into(), &nodes, &shifts, &mut steps, lanes);
    // SAFETY: the load reads eight lanes from an array of eight.
    unsafe { _mm256_loadu_si256(steps.as_ptr().cast()) }
}

/// Steps the lanes set in `special` (whose nodes are special tests) with the scalar test,
/// through checked slices.
fn step_specials<T: Number>(
    ensemble: &Ensemble<T>,
    special: u32,
    nodes: &[u32],
    shifts: &[u32],
    steps: &mut [u32],
    lanes: LaneRows<'_, T>,
) {
    let width = ensemble.row_width();
    for (lane, ((&node, &shift), step)) in nodes.iter().zip(shifts).zip(steps.iter_mut()).enumerate() {
        if special >> lane & 1 == 0 {
            continue;
        }
        let slot = (ensemble.words[node as usize] & FEATURE_MASK) as usize;
        let start = (lanes.first + lane) * lanes.stride;
        let row = &lanes.rows[start..start + width];
        let right = !ensemble.special_left(&ensemble.special[slot], row);
        *step = node.wrapping_mul(2).wrapping_add(shift) + u32::from(right);
    }
}
