//! Weights packed once into the layout `gemm`'s f32 microkernels read
//! (inference).
//!
//! A product `x @ w^T` handed to `gemm` makes it copy ("pack") the weight
//! into runs of a microkernel's rows, on every call: the weight is the
//! side whose rows the microkernel spans (64 outputs with AVX-512, 16 with
//! AVX2). In inference the weights do not change for a whole `encode`
//! call, so [`Panels::pack`] does that copy once: panels of as many
//! outputs as the AVX-512 microkernel's rows, each stored input by input
//! (`[in][64]`), which is the packed layout itself.
//! [`Panels::product`] then hands `gemm` one panel at a time, with strides
//! that tell it the panel needs no packing.

use rayon::prelude::*;

use crate::runtime::step::matmul::SendPtr;

/// Outputs per panel: the rows of `gemm`'s AVX-512 f32 microkernel, so
/// that a panel is read as one contiguous run.
const WIDTH: usize = 64;

/// Whether `gemm` runs its AVX-512 f32 kernels here, the only ones the
/// panels are for. With AVX2/FMA (16-row kernels) `gemm`'s own packing
/// measured faster: on a Zen 4 with `gemm` built without AVX-512,
/// `examples/bench_encode` at batch 32 ran 2.5-5% slower on 16- or
/// 64-wide panels than on `gemm` packing per call (paired medians 0.973
/// and 0.949 over 8-10 rounds), whereas with AVX-512 the panels ran 2.3%
/// faster (18 rounds).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Columns of `gemm`'s f32 microkernels (AVX-512 and AVX2 alike).
const NR: usize = 6;

/// What [`Panels::product`] runs on each finished run of outputs.
pub(crate) type Then = dyn Fn(&mut [f32]) + Sync;

/// A weight `w` `[out, in]` packed into panels of 64 outputs (the last
/// one narrower when `out` is not a multiple): panel `p` holds outputs
/// `64 p..` as `[in][64]`, panels one after the other.
pub(crate) struct Panels<'a> {
    data: &'a [f32],
    out: usize,
    inp: usize,
}

impl<'a> Panels<'a> {
    /// `w` `[out, in]` (row-major) in the panel layout, as values for
    /// [`Panels::view`].
    pub(crate) fn pack(w: &[f32], out: usize, inp: usize) -> Vec<f32> {
        let mut data = Vec::with_capacity(out * inp);
        for c0 in (0..out).step_by(WIDTH) {
            let rows = &w[c0 * inp..(c0 + WIDTH).min(out) * inp];
            let n = rows.len() / inp.max(1);
            // A panel is the transpose of its rows of `w` (the rows' cache
            // lines stay in L1 while `k` moves along them).
            for k in 0..inp {
                data.extend((0..n).map(|j| rows[j * inp + k]));
            }
        }
        data
    }

    /// A packed weight of `out` outputs and `inp` inputs; `None` when
    /// `data` does not hold exactly `out * inp` values.
    pub(crate) fn view(data: &'a [f32], out: usize, inp: usize) -> Option<Self> {
        (data.len() == out * inp).then_some(Panels { data, out, inp })
    }

    /// `dst [rows, out] += x [rows, in] @ w^T` (row-major, contiguous).
    ///
    /// Each panel is one `gemm` call per run of tokens, as rayon jobs: a
    /// value of `dst` is always summed by one call of the same shape, so
    /// the result does not depend on the number of threads. `gemm` reads
    /// a panel unpacked only while a call spans at most its packing
    /// threshold of microkernel columns (8 x 6 tokens by default), so
    /// the tokens are cut into runs of that many ([`token_runs`]). From two
    /// tokens on, the result has the bits of one `gemm` call over the
    /// whole product.
    ///
    /// `then`, when given, runs on each finished run of a row's values (a
    /// panel's outputs for one token) while they are still in the cache:
    /// GELU after the intermediate layer's product, instead of a pass of
    /// its own over the whole output.
    pub(crate) fn product(&self, dst: &mut [f32], x: &[f32], rows: usize, then: Option<&Then>) {
        let (out, inp) = (self.out, self.inp);
        assert!(
            dst.len() == rows * out && x.len() == rows * inp,
            "panels: {rows}x{inp} @ {inp}x{out} into {} values",
            dst.len()
        );
        if rows == 0 || out == 0 {
            return;
        }
        let tokens = gemm::get_lhs_packing_threshold_single_thread().max(1) * NR;
        let dst_ptr = SendPtr(dst.as_mut_ptr());
        let panel = |p: usize| {
            let c0 = p * WIDTH;
            let width = WIDTH.min(out - c0);
            let lhs = self.data[c0 * inp..(c0 + width) * inp].as_ptr();
            for (t0, n) in token_runs(rows, tokens) {
                // SAFETY: the panel holds `width x inp` values read with
                // row stride 1 and column stride `width`; tokens t0..t0+n
                // of `x` hold `n x inp` values (column stride `inp`); the
                // block of `dst` (rows t0.., columns c0..c0+width, column
                // stride `out`) lies inside it (asserted above). Jobs
                // write disjoint blocks, and `dst` is borrowed mutably.
                unsafe {
                    gemm::gemm(
                        width,
                        n,
                        inp,
                        dst_ptr.get().add(t0 * out + c0),
                        out as isize,
                        1,
                        true,
                        lhs,
                        width as isize,
                        1,
                        x.as_ptr().add(t0 * inp),
                        inp as isize,
                        1,
                        1.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                if let Some(then) = then {
                    for t in t0..t0 + n {
                        // SAFETY: this job's block of `dst` (see above),
                        // one token's run, which no other job touches.
                        let run = unsafe {
                            std::slice::from_raw_parts_mut(dst_ptr.get().add(t * out + c0), width)
                        };
                        then(run);
                    }
                }
            }
        };
        let panels = out.div_ceil(WIDTH);
        if rayon::current_num_threads() > 1 && 2 * rows * inp * out > 1 << 17 {
            (0..panels).into_par_iter().for_each(panel);
        } else {
            (0..panels).for_each(panel);
        }
    }
}

/// Runs `(first, count)` of at most `tokens` of `rows` tokens, none of a
/// single token where `rows > 1`: `gemm` multiplies one column as a
/// matrix-vector product, which sums in another order than its
/// microkernel, so a lone last token would not get the bits of the same
/// product made in one call (`the_bits_of_one_product`).
fn token_runs(rows: usize, tokens: usize) -> impl Iterator<Item = (usize, usize)> {
    let tokens = tokens.max(2);
    let mut t0 = 0;
    std::iter::from_fn(move || {
        if t0 >= rows {
            return None;
        }
        let mut n = tokens.min(rows - t0);
        if rows - t0 - n == 1 {
            n -= 1;
        }
        let run = (t0, n);
        t0 += n;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::step::matmul::test_values;

    // The panels run on any CPU (only their speed depends on the kernel
    // `gemm` picks), so these tests need no AVX-512.

    /// An input `[rows, inp]` and a weight `[out, inp]` packed, from `seed`.
    fn operands(rows: usize, inp: usize, out: usize, seed: usize) -> (Vec<f32>, Vec<f32>) {
        let x = test_values(rows * inp, seed);
        let w = test_values(out * inp, seed + 1);
        (x, Panels::pack(&w, out, inp))
    }

    #[test]
    fn panels_give_the_product() {
        let shapes = [
            (1, 5, 3),
            (7, 33, 64),
            (50, 70, 130),
            (97, 600, 200),
            (130, 384, 1152),
        ];
        for (rows, inp, out) in shapes {
            let x = test_values(rows * inp, 1);
            let w = test_values(out * inp, 2);
            let bias = test_values(out, 3);
            let packed = Panels::pack(&w, out, inp);
            let panels = Panels::view(&packed, out, inp).expect("sizes");
            let mut got: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
            panels.product(&mut got, &x, rows, None);
            for r in 0..rows {
                for c in 0..out {
                    let want: f64 = bias[c] as f64
                        + (0..inp)
                            .map(|k| x[r * inp + k] as f64 * w[c * inp + k] as f64)
                            .sum::<f64>();
                    let g = got[r * out + c] as f64;
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{rows}x{inp}x{out} at ({r}, {c}): {g} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn threads_do_not_change_the_bits() {
        let (rows, inp, out) = (203, 1536, 392);
        let (x, packed) = operands(rows, inp, out, 4);
        let panels = Panels::view(&packed, out, inp).expect("sizes");
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut dst = vec![0f32; rows * out];
            pool.install(|| panels.product(&mut dst, &x, rows, None));
            dst
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }

    #[test]
    fn then_runs_once_on_every_value() {
        let (rows, inp, out) = (101, 48, 200);
        let (x, packed) = operands(rows, inp, out, 6);
        let panels = Panels::view(&packed, out, inp).expect("sizes");
        let mut want = vec![0f32; rows * out];
        panels.product(&mut want, &x, rows, None);
        want.iter_mut().for_each(|v| *v = 2.0 * *v + 1.0);
        let then = |run: &mut [f32]| run.iter_mut().for_each(|v| *v = 2.0 * *v + 1.0);
        let mut got = vec![0f32; rows * out];
        panels.product(&mut got, &x, rows, Some(&then));
        assert_eq!(got, want);
    }

    #[test]
    fn a_view_of_the_wrong_size_is_refused() {
        assert!(Panels::view(&[0.0; 11], 3, 4).is_none());
        assert!(Panels::view(&[0.0; 12], 3, 4).is_some());
    }

    /// From two tokens on, the panels give the bits of the same product
    /// made by one `gemm` call on the weight as stored (the training step's
    /// and the inference path's products before the panels), for every
    /// count of tokens around the runs' ends: no run is a single token.
    #[test]
    fn the_bits_of_one_product() {
        use crate::runtime::step::matmul::{matmul, Into, Mat, MatMut};
        for (inp, out) in [(384, 384), (1536, 384), (384, 200), (100, 130)] {
            for rows in (2..=100).chain([143, 144, 145, 146]) {
                let x = test_values(rows * inp, 1);
                let w = test_values(out * inp, 2);
                let bias = test_values(out, 3);
                let packed = Panels::pack(&w, out, inp);
                let panels = Panels::view(&packed, out, inp).expect("sizes");
                let mut got: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
                let mut want = got.clone();
                panels.product(&mut got, &x, rows, None);
                let (x, w) = (Mat::new(&x, rows, inp), Mat::new(&w, out, inp).t());
                matmul(MatMut::new(&mut want, rows, out), x, w, Into::Add(1.0));
                assert!(got == want, "{rows} tokens, {inp} -> {out}");
            }
        }
    }

    #[test]
    fn token_runs_cover_every_token_once() {
        for rows in 0..200 {
            let runs: Vec<_> = token_runs(rows, 48).collect();
            let mut next = 0;
            for &(t0, n) in &runs {
                assert_eq!(t0, next);
                assert!((1..=48).contains(&n));
                assert!(n > 1 || rows == 1, "{rows}: a lone token");
                next += n;
            }
            assert_eq!(next, rows);
        }
    }
}
