//! Matrix products with bf16 operands and f32 accumulation, on CPUs with
//! AVX512-BF16 (`vdpbf16ps`: per f32 lane, the dot product of two bf16
//! pairs added to the accumulator, twice the FLOPs of an f32 FMA per
//! instruction; `examples/dot_peak.rs`).
//!
//! The linear layers of the explicit step run on these products under a
//! stage's `precision: bf16` (see [`super::matmul::matmul_in`], which
//! rounds into f32 products instead where the CPU lacks the
//! instructions). `examples/sgemm_peak.rs` measures them against the f32
//! products on the step's shapes.
//!
//! Layout: both operands are rounded to bf16 (nearest, ties to even,
//! subnormals to zero, as the instruction does) while
//! they are packed. `B` is packed per block of [`NB`] columns as pairs of
//! consecutive rows (`[k / 2][NB][2]`), so one 512-bit load holds the two
//! rows of 16 columns that `vdpbf16ps` multiplies; `A` is packed per block
//! of [`MR`] rows as one 32-bit pair per row and pair of columns, which the
//! instruction broadcasts from memory. An odd `k` is padded with a zero.

use super::matmul::{Into, Mat, MatMut, SendPtr};
use crate::registry::choices::Precision;
pub use crate::runtime::kernels::round_bf16::{from_bf16, round, to_bf16};

/// Rows of a tile (one accumulator pair per row).
pub const MR: usize = 8;
/// Columns of a tile: two 16-lane accumulators per row.
pub const NB: usize = 32;
/// Row blocks of `A` packed by one task (so that a transposed `A` is
/// converted in runs of `GROUP * MR` values).
const GROUP: usize = 8;
/// Pairs of the inner dimension per block: a packed `B` block of
/// `KC_PAIRS * NB` pairs is 32 KiB, the size of a first-level cache.
const KC_PAIRS: usize = 256;

/// Whether this CPU runs [`matmul_bf16`].
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The row blocks of `a` from row `r0` on that `out` holds (at most
/// [`GROUP`]), every pair of columns, packed as `[block][pairs][MR]`
/// 32-bit pairs (zeros past the matrix); `row` is scratch.
fn pack_a(a: &Mat, r0: usize, out: &mut [u32], row: &mut Vec<u32>) {
    let (rows, k) = (a.rows_count(), a.cols());
    let pairs = k.div_ceil(2);
    let blocks = out.len() / (pairs * MR).max(1);
    let here = (blocks * MR).min(rows.saturating_sub(r0));
    if let (true, None, Some((t, ld))) = (here > 0, a.row_major(), a.t().row_major()) {
        // Stored transposed (a weight gradient's `dy^T`): rows 2p and
        // 2p + 1 of the transpose hold pair p of every row side by side,
        // converted a run of the group's rows at a time and dealt out to
        // the blocks, MR values each.
        let run = |i: usize| &t[i * ld + r0..i * ld + r0 + here];
        row.resize(blocks * MR, 0);
        for p in 0..pairs {
            let hi = (2 * p + 1 < k).then(|| run(2 * p + 1));
            pair_rows(run(2 * p), hi, &mut row[..here]);
            row[here..].fill(0);
            for (b, vals) in row.chunks(MR).enumerate() {
                let at = b * pairs * MR + p * MR;
                out[at..at + MR].copy_from_slice(vals);
            }
        }
        return;
    }
    for (b, out) in out.chunks_mut(pairs * MR).enumerate() {
        for i in 0..MR {
            let r = r0 + b * MR + i;
            row.clear();
            row.resize(pairs, 0);
            if r < rows {
                match a.contiguous_row(r) {
                    Some(src) => convert_run(src, row),
                    None => {
                        for (p, slot) in row.iter_mut().enumerate() {
                            let hi = if 2 * p + 1 < k {
                                a.at(r, 2 * p + 1)
                            } else {
                                0.0
                            };
                            *slot = pair(a.at(r, 2 * p), hi);
                        }
                    }
                }
            }
            for (p, v) in row.iter().enumerate() {
                out[p * MR + i] = *v;
            }
        }
    }
}

/// Rows `2 * p0..2 * (p0 + pairs)` of `b`, columns `c0..c0 + NB`, packed
/// into the first `pairs * NB` values of `out` as `[pairs][NB]` 32-bit
/// pairs of rows (zeros past the matrix); `run` is scratch.
fn pack_b(b: &Mat, c0: usize, p0: usize, pairs: usize, out: &mut [u32], run: &mut Vec<u32>) {
    let out = &mut out[..pairs * NB];
    out.fill(0);
    let (k, n) = (b.rows_count(), b.cols());
    let cols = NB.min(n - c0);
    if let (None, Some((t, ld))) = (b.row_major(), b.t().row_major()) {
        // Stored transposed (a weight read through its strides): column c
        // is a contiguous run whose consecutive pairs are its packed
        // values, converted a run at a time and spread NB apart.
        let (start, end) = (2 * p0, k.min(2 * (p0 + pairs)));
        run.resize(pairs, 0);
        for c in 0..cols {
            let col = (c0 + c) * ld;
            convert_run(&t[col + start..col + end], run);
            for (i, v) in run.iter().enumerate() {
                out[i * NB + c] = *v;
            }
        }
        return;
    }
    for (i, dst) in out.chunks_mut(NB).enumerate() {
        let (r0, r1) = (2 * (p0 + i), 2 * (p0 + i) + 1);
        match b.contiguous_row(r0) {
            // Rows with contiguous columns: converted a run at a time (an
            // odd last row pairs with zeros).
            Some(lo) => {
                let hi = if r1 < k { b.contiguous_row(r1) } else { None };
                let hi = hi.map(|row| &row[c0..c0 + cols]);
                pair_rows(&lo[c0..c0 + cols], hi, &mut dst[..cols]);
            }
            None => {
                for (c, slot) in dst.iter_mut().take(cols).enumerate() {
                    let hi = if r1 < k { b.at(r1, c0 + c) } else { 0.0 };
                    *slot = pair(b.at(r0, c0 + c), hi);
                }
            }
        }
    }
}

/// Two values as a bf16 pair, `lo` in the low half.
fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16(lo) as u32 | (to_bf16(hi) as u32) << 16
}

/// `dst[c] = pair(lo[c], hi[c])` (`hi` zero when `None`).
fn pair_rows(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has the features; the lengths are checked inside.
        unsafe { x86::pair_rows(lo, hi, dst) };
        return;
    }
    for (c, slot) in dst.iter_mut().enumerate() {
        *slot = pair(lo[c], hi.map_or(0.0, |h| h[c]));
    }
}

/// Consecutive values as bf16 pairs: `dst[p] = pair(src[2p], src[2p + 1])`,
/// a zero after an odd last value.
fn convert_run(src: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has the features; the lengths are checked inside.
        unsafe { x86::convert_run(src, dst) };
        return;
    }
    for (p, slot) in dst.iter_mut().enumerate() {
        *slot = pair(src[2 * p], src.get(2 * p + 1).copied().unwrap_or(0.0));
    }
}

/// `dst (op) a @ b` with both operands rounded to bf16 and the sums kept
/// in f32 (`Into::Add(s)`: `dst += s * (a @ b)`). The column blocks are
/// split over rayon's pool. Returns `false`, leaving `dst` untouched, where
/// the CPU lacks AVX512-BF16 ([`available`]).
///
/// Panics when the shapes disagree or a view leaves its buffer (bugs of
/// the caller, as for [`super::matmul::matmul`]).
pub fn matmul_bf16(dst: MatMut, a: Mat, b: Mat, how: Into) -> bool {
    product(dst, a, Right::View(b), how, true)
}

/// [`matmul_bf16`] on the calling thread only (see
/// [`super::matmul::matmul_here`]).
pub fn matmul_bf16_here(dst: MatMut, a: Mat, b: Mat, how: Into) -> bool {
    product(dst, a, Right::View(b), how, false)
}

/// [`matmul_bf16`] (or, unless `par`, [`matmul_bf16_here`]) with a right
/// operand packed beforehand: the same products, the same bits. It cannot
/// decline: a [`PackedB`] exists only where the CPU has the instructions.
pub fn matmul_bf16_packed(dst: MatMut, a: Mat, b: &PackedB, how: Into, par: bool) {
    let done = product(dst, a, Right::Packed(b), how, par);
    debug_assert!(done, "a PackedB exists only where AVX512-BF16 runs");
}

/// A right operand `k x n` packed once for several products: a weight,
/// which stays the same through a training step while the columns of a
/// batch multiply by it, forward and backward (each product would
/// otherwise convert it again: in a bf16 step, most of the packing).
/// Column block `j` holds `[pairs][NB]` pairs, as [`pack_b`] makes them
/// per block of the inner dimension, so a product reads exactly what it
/// would have packed itself.
pub struct PackedB {
    data: Vec<u32>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// `b` packed (column blocks over rayon's pool); `None` where the CPU
    /// lacks AVX512-BF16.
    pub fn new(b: Mat) -> Option<Self> {
        use rayon::prelude::*;
        if !available() {
            return None;
        }
        assert!(b.fits(), "PackedB: the view leaves its buffer");
        let (k, n) = (b.rows_count(), b.cols());
        let block = k.div_ceil(2) * NB;
        let mut data = vec![0u32; n.div_ceil(NB) * block];
        if block > 0 {
            data.par_chunks_mut(block)
                .enumerate()
                .for_each_init(Vec::new, |run, (j, out)| {
                    pack_b(&b, j * NB, 0, k.div_ceil(2), out, run)
                });
        }
        Some(PackedB { data, k, n })
    }

    /// Rows and columns of the operand.
    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// The right operand of [`product`].
#[derive(Clone, Copy)]
enum Right<'a> {
    /// Packed by each thread, a block at a time.
    View(Mat<'a>),
    Packed(&'a PackedB),
}

impl Right<'_> {
    fn dims(&self) -> (usize, usize) {
        match self {
            Right::View(b) => (b.rows_count(), b.cols()),
            Right::Packed(b) => b.dims(),
        }
    }

    /// Pairs `p0..p0 + kp` of column block `j` (of `pairs` in all), packed
    /// into `scratch` unless packed already.
    fn block<'s>(
        &'s self,
        j: usize,
        (p0, kp, pairs): (usize, usize, usize),
        scratch: &'s mut (Vec<u32>, Vec<u32>),
    ) -> &'s [u32] {
        match self {
            Right::View(b) => {
                let (pb, run) = scratch;
                pb.resize(KC_PAIRS * NB, 0);
                pack_b(b, j * NB, p0, kp, pb, run);
                &pb[..kp * NB]
            }
            Right::Packed(b) => {
                let at = (j * pairs + p0) * NB;
                &b.data[at..at + kp * NB]
            }
        }
    }
}

fn product(dst: MatMut, a: Mat, b: Right, how: Into, par: bool) -> bool {
    use rayon::prelude::*;
    let (m, k) = (a.rows_count(), a.cols());
    let (bk, n) = b.dims();
    assert!(
        bk == k && dst.rows_count() == m && dst.cols() == n,
        "matmul_bf16: {m}x{k} @ {bk}x{n} into {}x{}",
        dst.rows_count(),
        dst.cols()
    );
    let b_fits = match b {
        Right::View(b) => b.fits(),
        Right::Packed(_) => true,
    };
    assert!(
        a.fits() && b_fits && dst.fits(),
        "matmul_bf16: a view leaves its buffer"
    );
    if !available() {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    let scale = match how {
        Into::Set => 1.0,
        Into::Add(s) => s,
    };
    let pairs = k.div_ceil(2);
    let ld = dst.ld();
    let out = dst.into_data();
    if how == Into::Set {
        for r in 0..m {
            out[r * ld..r * ld + n].fill(0.0);
        }
    }
    if pairs == 0 {
        return true;
    }
    // A is packed once and shared; each thread then takes a column block
    // of B per block of the inner dimension (packing it unless packed
    // already) and runs the tiles of every row block against it (the
    // block stays in the first-level cache).
    let packed_a = pack_a_all(&a, par);
    // The destination's column blocks go to different threads: each gets
    // the raw pointer and writes only its own columns.
    let base = SendPtr(out.as_mut_ptr());
    let column_block = |scratch: &mut (Vec<u32>, Vec<u32>), j: usize| {
        let c0 = j * NB;
        let cols = NB.min(n - c0);
        let mut p0 = 0;
        while p0 < pairs {
            let kp = KC_PAIRS.min(pairs - p0);
            let pb = b.block(j, (p0, kp, pairs), scratch);
            for (i, pa) in packed_a.chunks(pairs * MR).enumerate() {
                let r0 = i * MR;
                let rows = MR.min(m - r0);
                // SAFETY: rows r0..r0+rows and columns c0..c0+cols lie
                // inside `dst` (`fits` checked above), and no other thread
                // writes these columns; the CPU has the features
                // (`available`).
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let c = base.get().add(r0 * ld + c0);
                    x86::tile(&pa[p0 * MR..], pb, kp, c, ld, rows, cols, scale);
                }
            }
            p0 += kp;
        }
    };
    if par {
        (0..n.div_ceil(NB))
            .into_par_iter()
            .for_each_init(Default::default, column_block);
    } else {
        let mut scratch = Default::default();
        (0..n.div_ceil(NB)).for_each(|j| column_block(&mut scratch, j));
    }
    true
}

/// All of `a`, every row block in full depth (`[row block][pairs][MR]`),
/// in groups of [`GROUP`] row blocks, over rayon's pool when `par`.
fn pack_a_all(a: &Mat, par: bool) -> Vec<u32> {
    use rayon::prelude::*;
    let pairs = a.cols().div_ceil(2);
    let mut packed = vec![0u32; a.rows_count().div_ceil(MR) * pairs * MR];
    let group = GROUP * pairs * MR;
    let pack =
        |row: &mut Vec<u32>, (g, out): (usize, &mut [u32])| pack_a(a, g * GROUP * MR, out, row);
    if par {
        packed
            .par_chunks_mut(group)
            .enumerate()
            .for_each_init(Vec::new, pack);
    } else {
        let mut row = Vec::new();
        packed
            .chunks_mut(group)
            .enumerate()
            .for_each(|job| pack(&mut row, job));
    }
    packed
}

/// How a stage's `precision` runs on this CPU, for the run log (`None`
/// for f32, which needs no word).
pub fn describe(prec: Precision) -> Option<&'static str> {
    match prec {
        Precision::Fp32 => None,
        Precision::Bf16 if available() => Some(
            "bf16 linear layers (operands rounded to bf16, f32 sums) on AVX512-BF16",
        ),
        Precision::Bf16 => Some(
            "bf16 linear layers (operands rounded to bf16, f32 sums); this CPU lacks AVX512-BF16, so the rounding runs over f32 products, slower than fp32",
        ),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NB};
    use std::arch::x86_64::*;

    /// A mask of the first `len` (at most 16) lanes.
    fn lanes(len: usize) -> __mmask16 {
        ((1u32 << len.min(16)) - 1) as __mmask16
    }

    /// See `super::pair_rows`.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pair_rows(lo: &[f32], hi: Option<&[f32]>, dst: &mut [u32]) {
        let n = lo.len();
        assert!(dst.len() >= n && hi.is_none_or(|h| h.len() >= n));
        for c in (0..n).step_by(16) {
            let m = lanes(n - c);
            let l = _mm512_maskz_loadu_ps(m, lo.as_ptr().add(c));
            let h = match hi {
                Some(h) => _mm512_maskz_loadu_ps(m, h.as_ptr().add(c)),
                None => _mm512_setzero_ps(),
            };
            let l: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(l));
            let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(h));
            let v = _mm512_or_si512(
                _mm512_cvtepu16_epi32(l),
                _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)),
            );
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(c).cast(), m, v);
        }
    }

    /// See `super::convert_run`.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn convert_run(src: &[f32], dst: &mut [u32]) {
        let n = src.len();
        assert!(dst.len() >= n.div_ceil(2));
        for c in (0..n).step_by(32) {
            let l = _mm512_maskz_loadu_ps(lanes(n - c), src.as_ptr().add(c));
            let h = _mm512_maskz_loadu_ps(
                lanes((n - c).saturating_sub(16)),
                src.as_ptr().wrapping_add(c + 16),
            );
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(h, l));
            let pairs = (n - c).div_ceil(2).min(16);
            _mm512_mask_storeu_epi32(dst.as_mut_ptr().add(c / 2).cast(), lanes(pairs), v);
        }
    }

    /// `c[r][col] += scale * sum_p a[p][r] . b[p][col]` for the `rows x
    /// cols` valid part of an `MR x NB` tile, `c`'s rows `ld` apart.
    ///
    /// # Safety
    /// AVX-512F and AVX512-BF16; `a` holds `pairs * MR` pairs and `b`
    /// `pairs * NB`; `c` addresses `rows` rows of `cols` floats.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(
        a: &[u32],
        b: &[u32],
        pairs: usize,
        c: *mut f32,
        ld: usize,
        rows: usize,
        cols: usize,
        scale: f32,
    ) {
        debug_assert!(a.len() >= pairs * MR && b.len() >= pairs * NB);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for p in 0..pairs {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(p * NB).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(p * NB + 16).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pair = _mm512_set1_epi32(*ap.add(p * MR + r) as i32);
                let av: __m512bh = std::mem::transmute(pair);
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
        let s = _mm512_set1_ps(scale);
        let mask = |from: usize| -> __mmask16 {
            let n = cols.saturating_sub(from).min(16);
            ((1u32 << n) - 1) as __mmask16
        };
        let (m0, m1) = (mask(0), mask(16));
        for (r, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(r * ld);
            for (h, (m, v)) in [(m0, acc[0]), (m1, acc[1])].into_iter().enumerate() {
                let dst = row.add(16 * h);
                let old = _mm512_maskz_loadu_ps(m, dst);
                _mm512_mask_storeu_ps(dst, m, _mm512_fmadd_ps(s, v, old));
            }
        }
    }
}

#[cfg(test)]
#[path = "bf16_tests.rs"]
mod tests;
