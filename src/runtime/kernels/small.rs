//! Products of the tiny matrices of one attention head (a sequence's
//! queries against its keys: tens of rows, a head's 32 or 64 columns).
//!
//! At these sizes a general matmul spends its time packing and
//! dispatching, and a loop of dot products spends it in horizontal sums
//! and in accumulators that go through memory. Here four output rows (two
//! with AVX2's fewer registers, when the block has two runs) by up to two
//! runs of [`LANES`] columns stay in registers for the whole
//! inner dimension: each step broadcasts one value of `a` per row and
//! multiplies it into a run of `b`'s row. The caller compiles this into
//! its own AVX-512 / AVX2 variant (`simd_dispatch!`): everything here is
//! `#[inline(always)]`.

use super::exp_f32;
use crate::runtime::fp_env::flush;

/// Columns of one register run (a 512-bit vector of f32).
pub(crate) const LANES: usize = 16;

/// Rows kept in registers at once.
const ROWS: usize = 4;

/// Whether the CPU has 32 vector registers of 16 lanes (AVX-512). Four
/// rows by two runs then keep 8 registers of accumulators with room to
/// spare. With AVX2's 16 registers of 8 lanes, the same block needs all
/// 16 for its accumulators alone and would go through memory on every
/// step of the inner dimension, so there two runs take two rows at a time.
#[inline(always)]
fn wide_registers() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A read-only matrix view: element `(i, p)` at `i * rs + p * cs`, so a
/// transposed operand is the same data with the strides swapped.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    pub fn rows(data: &'a [f32], rs: usize) -> Self {
        View { data, rs, cs: 1 }
    }

    /// The same matrix transposed.
    pub fn t(self) -> Self {
        View {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    #[inline(always)]
    fn at(&self, i: usize, p: usize) -> f32 {
        self.data[i * self.rs + p * self.cs]
    }
}

/// `c[i * ldc + j] = sum_p a(i, p) * b[p * ldb + j]` for `i < m`, `j < n`,
/// `p < k`. `b`'s rows (and `c`'s) are contiguous runs of `n` values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn product(
    m: usize,
    k: usize,
    n: usize,
    a: View,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let wide = wide_registers();
    let mut j0 = 0;
    while j0 < n {
        let w = (n - j0).min(2 * LANES);
        let cols = Cols { j0, w, k, ldb, ldc };
        if w <= LANES {
            rows::<ROWS, 1>(m, cols, a, b, c);
        } else if wide {
            rows::<ROWS, 2>(m, cols, a, b, c);
        } else {
            rows::<{ ROWS / 2 }, 2>(m, cols, a, b, c);
        }
        j0 += w;
    }
}

/// The columns `j0..j0 + w` of a [`product`], `w <= V * LANES`.
#[derive(Clone, Copy)]
struct Cols {
    j0: usize,
    w: usize,
    k: usize,
    ldb: usize,
    ldc: usize,
}

/// Rows `0..m` of [`product`], `R` at a time, over `V` register runs.
#[inline(always)]
fn rows<const R: usize, const V: usize>(m: usize, cols: Cols, a: View, b: &[f32], c: &mut [f32]) {
    let mut i0 = 0;
    while i0 + R <= m {
        block::<R, V>(i0, cols, a, b, c);
        i0 += R;
    }
    while i0 < m {
        block::<1, V>(i0, cols, a, b, c);
        i0 += 1;
    }
}

/// Rows `i0..i0 + R` of [`product`] over `V` register runs of columns.
#[inline(always)]
fn block<const R: usize, const V: usize>(i0: usize, cols: Cols, a: View, b: &[f32], c: &mut [f32]) {
    let Cols { j0, w, k, ldb, ldc } = cols;
    let mut acc = [[[0f32; LANES]; V]; R];
    if w == V * LANES {
        for p in 0..k {
            let run = &b[p * ldb + j0..p * ldb + j0 + V * LANES];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a.at(i0 + r, p);
                for (v, acc) in acc.iter_mut().enumerate() {
                    for l in 0..LANES {
                        acc[l] += x * run[v * LANES + l];
                    }
                }
            }
        }
    } else {
        // A run shorter than its vectors: read it zero-padded.
        let mut run = [[0f32; LANES]; V];
        for p in 0..k {
            for (t, &x) in b[p * ldb + j0..p * ldb + j0 + w].iter().enumerate() {
                run[t / LANES][t % LANES] = x;
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a.at(i0 + r, p);
                for (acc, run) in acc.iter_mut().zip(&run) {
                    for l in 0..LANES {
                        acc[l] += x * run[l];
                    }
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let out = &mut c[(i0 + r) * ldc + j0..(i0 + r) * ldc + j0 + w];
        for (t, o) in out.iter_mut().enumerate() {
            *o = acc[t / LANES][t % LANES];
        }
    }
}

/// `n` rounded up to whole runs of [`LANES`].
pub(crate) fn padded(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// Softmax of a row of scores in place, `row.len()` a multiple of
/// [`LANES`] (pad with `-inf`): a `-inf` score weighs exactly 0, a row
/// with no finite score becomes all zeros, and no probability comes out
/// subnormal. The maximum and the sum run in [`LANES`] lanes, so the loops
/// vectorise (a single running sum is a chain the compiler must keep in
/// order).
#[inline(always)]
pub(crate) fn softmax_row(row: &mut [f32]) {
    let mut mx = [f32::NEG_INFINITY; LANES];
    for run in row.chunks_exact(LANES) {
        for l in 0..LANES {
            mx[l] = mx[l].max(run[l]);
        }
    }
    let mx = mx.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = [0f32; LANES];
    for run in row.chunks_exact_mut(LANES) {
        for l in 0..LANES {
            let e = exp_f32(run[l] - mx);
            run[l] = if run[l] == f32::NEG_INFINITY { 0.0 } else { e };
            sum[l] += run[l];
        }
    }
    let sum: f32 = sum.iter().sum();
    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
    for r in row.iter_mut() {
        *r = flush(*r * inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_of_every_small_shape_match_the_naive_sum() {
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 7),
            (4, 32, 16),
            (9, 17, 32),
            (15, 32, 15),
            (6, 3, 40),
            (5, 64, 64),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..k * (n + 3))
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
                .collect();
            for transposed in [false, true] {
                let view = if transposed {
                    View::rows(&a, m).t()
                } else {
                    View::rows(&a, k)
                };
                let ldc = n + 2;
                let mut c = vec![f32::NAN; m * ldc];
                product(m, k, n, view, &b, n + 3, &mut c, ldc);
                for i in 0..m {
                    for j in 0..n {
                        let want: f32 = (0..k).map(|p| view.at(i, p) * b[p * (n + 3) + j]).sum();
                        let got = c[i * ldc + j];
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{m}x{k}x{n} ({i},{j}): {got} vs {want}"
                        );
                    }
                    assert!(c[i * ldc + n].is_nan(), "wrote past the row");
                }
            }
        }
    }

    #[test]
    fn softmax_rows_weigh_minus_infinity_zero_and_sum_to_one() {
        let mut row: Vec<f32> = (0..32).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        row[29..].fill(f32::NEG_INFINITY);
        row[3] = f32::NEG_INFINITY;
        let want: Vec<f64> = {
            let finite: Vec<f64> = row.iter().map(|&x| x as f64).collect();
            let mx = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = finite.iter().map(|x| (x - mx).exp()).collect();
            let s: f64 = e.iter().sum();
            e.iter().map(|x| x / s).collect()
        };
        softmax_row(&mut row);
        for (got, want) in row.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(row[3], 0.0);
        assert!(row[29..].iter().all(|&p| p == 0.0));
        let mut none = vec![f32::NEG_INFINITY; 16];
        softmax_row(&mut none);
        assert!(none.iter().all(|&p| p == 0.0));
    }
}
