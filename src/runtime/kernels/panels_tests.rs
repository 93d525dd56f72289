//! Tests of [`super`]: the panels' layout, their products against one
//! `gemm` call, a chain of fused multiply-adds and an f64 reference, and
//! the rows the optimizer writes.

use super::*;
use crate::runtime::step::matmul::test_values;

/// The kernels that can run here: `gemm`'s on any CPU (only its speed
/// depends on the kernel `gemm` picks), ours where the CPU has AVX2 and
/// FMA. Every test runs on each.
fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::Gemm];
    if panel_fma::available() {
        k.push(Kernel::Fma);
    } else {
        eprintln!("no AVX2/FMA here: the panel kernel of our own is not tested");
    }
    k
}

/// An input `[rows, inp]` and a weight `[out, inp]` packed for `kernel`,
/// from `seed`.
struct Operands {
    kernel: Kernel,
    x: Vec<f32>,
    packed: Vec<f32>,
    out: usize,
    inp: usize,
}

fn operands(kernel: Kernel, rows: usize, inp: usize, out: usize, seed: usize) -> Operands {
    let x = test_values(rows * inp, seed);
    let w = test_values(out * inp, seed + 1);
    let packed = Panels::pack_for(kernel, &w, out, inp);
    Operands {
        kernel,
        x,
        packed,
        out,
        inp,
    }
}

impl Operands {
    fn panels(&self) -> Panels<'_> {
        Panels::view_for(self.kernel, &self.packed, self.out, self.inp).expect("sizes")
    }
}

/// An input `[rows, inp]`, a weight `[out, inp]` and a bias, from fixed
/// seeds, and the panels' product added onto the bias's rows.
struct Biased {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    got: Vec<f32>,
}

fn biased(kernel: Kernel, rows: usize, inp: usize, out: usize) -> Biased {
    let x = test_values(rows * inp, 1);
    let w = test_values(out * inp, 2);
    let bias = test_values(out, 3);
    let packed = Panels::pack_for(kernel, &w, out, inp);
    let panels = Panels::view_for(kernel, &packed, out, inp).expect("sizes");
    let mut got: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
    panels.product(&mut got, out, &x, rows, None);
    Biased { x, w, bias, got }
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
    for ((rows, inp, out), kernel) in shapes
        .into_iter()
        .flat_map(|s| kernels().into_iter().map(move |k| (s, k)))
    {
        let Biased { x, w, bias, got } = biased(kernel, rows, inp, out);
        for r in 0..rows {
            for c in 0..out {
                let want: f64 = bias[c] as f64
                    + (0..inp)
                        .map(|k| x[r * inp + k] as f64 * w[c * inp + k] as f64)
                        .sum::<f64>();
                let g = got[r * out + c] as f64;
                assert!(
                    (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{kernel:?} {rows}x{inp}x{out} at ({r}, {c}): {g} against {want}"
                );
            }
        }
    }
}

#[test]
fn threads_do_not_change_the_bits() {
    for kernel in kernels() {
        let (rows, inp, out) = (203, 1536, 392);
        let ops = operands(kernel, rows, inp, out, 4);
        let (x, panels) = (&ops.x, ops.panels());
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            let mut dst = vec![0f32; rows * out];
            pool.install(|| panels.product(&mut dst, out, x, rows, None));
            dst
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}

#[test]
fn then_runs_once_on_every_value() {
    for kernel in kernels() {
        let (rows, inp, out) = (101, 48, 200);
        let ops = operands(kernel, rows, inp, out, 6);
        let (x, panels) = (&ops.x, ops.panels());
        let mut want = vec![0f32; rows * out];
        panels.product(&mut want, out, x, rows, None);
        want.iter_mut().for_each(|v| *v = 2.0 * *v + 1.0);
        let then = |run: &mut [f32]| run.iter_mut().for_each(|v| *v = 2.0 * *v + 1.0);
        let mut got = vec![0f32; rows * out];
        panels.product(&mut got, out, x, rows, Some(&then));
        assert_eq!(got, want);
    }
}

#[test]
fn a_view_of_the_wrong_size_is_refused() {
    assert!(Panels::view(&[0.0; 11], 3, 4).is_none());
    assert!(Panels::view(&[0.0; 12], 3, 4).is_some());
}

/// From two tokens on, `gemm`'s panels give the bits of the same product
/// made by one `gemm` call on the weight as stored (the training step's
/// products, and inference's before the panels), for every count of
/// tokens around the runs' ends: no run is a single token.
#[test]
fn the_bits_of_one_product() {
    use crate::runtime::step::matmul::{matmul, Into, Mat, MatMut};
    for (inp, out) in [(384, 384), (1536, 384), (384, 200), (100, 130)] {
        for rows in (2..=100).chain([143, 144, 145, 146]) {
            let Biased { x, w, bias, got } = biased(Kernel::Gemm, rows, inp, out);
            let mut want: Vec<f32> = (0..rows).flat_map(|_| bias.iter().copied()).collect();
            let (x, w) = (Mat::new(&x, rows, inp), Mat::new(&w, out, inp).t());
            matmul(MatMut::new(&mut want, rows, out), x, w, Into::Add(1.0));
            assert!(got == want, "{rows} tokens, {inp} -> {out}");
        }
    }
}

/// Our kernel's values are each one chain of fused multiply-adds from the
/// bias, in the order of the inputs: the same bits as the scalar chain,
/// for every count of tokens (whole groups of 6 and the rest), narrow
/// last panels, and so whatever the batch around a token.
#[test]
fn the_fma_kernel_sums_in_the_order_of_the_inputs() {
    if !panel_fma::available() {
        eprintln!("skipped: no AVX2/FMA here");
        return;
    }
    for (inp, out) in [(384, 384), (1536, 48), (33, 130), (7, 5), (1, 17)] {
        for rows in (1..=20).chain([47, 48, 49, 101]) {
            let Biased { x, w, bias, got } = biased(Kernel::Fma, rows, inp, out);
            for r in 0..rows {
                for c in 0..out {
                    let want = (0..inp).fold(bias[c], |acc, k| {
                        x[r * inp + k].mul_add(w[c * inp + k], acc)
                    });
                    assert_eq!(
                        got[r * out + c].to_bits(),
                        want.to_bits(),
                        "{rows} tokens, {inp} -> {out}, at ({r}, {c})"
                    );
                }
            }
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

/// The layout of panels `W` wide, by its definition: output `o`, input
/// `i` of panel `p = o / W` (of width `w`) at `W p * inp + i * w + o % W`.
fn by_definition(big: usize, w: &[f32], out: usize, inp: usize) -> Vec<f32> {
    let mut data = vec![f32::NAN; out * inp];
    for o in 0..out {
        let p0 = o / big * big;
        let width = big.min(out - p0);
        for i in 0..inp {
            data[p0 * inp + i * width + (o - p0)] = w[o * inp + i];
        }
    }
    data
}

#[test]
fn pack_is_the_layout() {
    for (out, inp) in [(1, 1), (3, 5), (64, 17), (130, 33), (200, 16), (384, 40)] {
        let w = test_values(out * inp, 9);
        for kernel in kernels() {
            assert_eq!(
                Panels::pack_for(kernel, &w, out, inp),
                by_definition(kernel.width(), &w, out, inp),
                "{kernel:?} {out}x{inp}"
            );
        }
    }
}

/// Written a run of rows at a time into the panels of groups of 64
/// rows (as the optimizer does), the panels are those packed whole,
/// however the runs fall.
#[test]
fn rows_written_in_runs_are_the_packed_panels() {
    for (out, inp, group, run) in [
        (200, 33, 128, 16),
        (200, 33, 64, 7),
        (130, 384, 64, 16),
        (384, 1536, 64, 16),
        (40, 9, 64, 40),
        (100, 5, 192, 100),
    ] {
        let w = test_values(out * inp, 11);
        for kernel in kernels() {
            let want = Panels::pack_for(kernel, &w, out, inp);
            let mut got = vec![f32::NAN; out * inp];
            for (g, chunk) in got.chunks_mut(group * inp).enumerate() {
                let g0 = g * group;
                let g1 = (g0 + group).min(out);
                for r in (g0..g1).step_by(run) {
                    let r1 = (r + run).min(g1);
                    write_rows(kernel, chunk, g0, &w[r * inp..r1 * inp], r, out, inp);
                }
            }
            assert!(
                got == want,
                "{kernel:?} {out}x{inp}, groups of {group}, runs of {run}"
            );
        }
    }
}

/// Into rows `ld` values apart: the product's columns, and nothing
/// between.
#[test]
fn a_leading_dimension_leaves_the_other_columns() {
    for kernel in kernels() {
        let (rows, inp, out, ld) = (70, 48, 130, 400);
        let ops = operands(kernel, rows, inp, out, 12);
        let (x, panels) = (&ops.x, ops.panels());
        let mut dense = vec![7f32; rows * out];
        panels.product(&mut dense, out, x, rows, None);
        let mut wide = vec![7f32; rows * ld];
        panels.product(&mut wide[100..], ld, x, rows, None);
        for r in 0..rows {
            for c in 0..ld {
                let got = wide[r * ld + c];
                match c.checked_sub(100).filter(|&c| c < out) {
                    Some(c) => assert_eq!(got, dense[r * out + c], "{kernel:?} ({r}, {c})"),
                    None => assert_eq!(got, 7.0, "({r}, {c}) outside the product"),
                }
            }
        }
    }
}
