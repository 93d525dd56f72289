//! Softmax over the last dimension, with backward, for training: candle's
//! `softmax_last_dim` has no backward, and the composed softmax (max, sub,
//! exp, sum, div) costs five allocating ops forward and more backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::gelu::exp_f32;
use super::{f32_slice, par_blocks, row_block};
use crate::runtime::fp_env::flush;

/// Row-wise softmax over the last dimension of a contiguous f32 tensor.
pub(crate) struct Softmax;

fn last_dim(layout: &Layout, what: &str) -> candle_core::Result<usize> {
    match layout.dims().last() {
        Some(&n) if n > 0 => Ok(n),
        _ => candle_core::bail!("{what}: needs a non-empty last dimension"),
    }
}

/// `f(row_of_a, row_of_b, row_of_out)` over every row of `n` values, rows in
/// parallel.
fn rows_par(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    n: usize,
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) {
    par_blocks(a, b, out, row_block(n), |a, b, o| {
        for ((o, a), b) in o.chunks_mut(n).zip(a.chunks(n)).zip(b.chunks(n)) {
            f(a, b, o);
        }
    });
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(storage, layout, self.name())?;
        let n = last_dim(layout, self.name())?;
        let mut out = vec![0f32; x.len()];
        rows_par(x, x, &mut out, n, |x, _, o| softmax_row(x, o));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let y = res.contiguous()?;
        let g = grad_res.contiguous()?;
        Ok(Some(y.apply_op2_no_bwd(&g, &SoftmaxGrad)?))
    }
}

// Compiled for AVX2/AVX-512 too: `exp_f32`'s fused multiply-adds are
// then single instructions.
simd_dispatch!(fn softmax_row(x: &[f32], out: &mut [f32]) => softmax_row_generic);

#[inline(always)]
fn softmax_row_generic(x: &[f32], out: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = exp_f32(v - max);
        sum += *o;
    }
    let inv = 1.0 / sum;
    out.iter_mut().for_each(|o| *o = flush(*o * inv));
}

/// `y * (g - sum(g * y))` row by row: the softmax's input gradient from its
/// output `y` and the output gradient `g`.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-last-dim-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let y = f32_slice(s1, l1, self.name())?;
        let g = f32_slice(s2, l2, self.name())?;
        if y.len() != g.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let n = last_dim(l1, self.name())?;
        let mut out = vec![0f32; y.len()];
        rows_par(y, g, &mut out, n, |y, g, o| {
            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                *o = flush(y * (g - dot));
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masked positions (an additive -1e9) and far-off scores give exactly
    /// 0, never a subnormal, forward and backward.
    #[test]
    fn masked_rows_have_no_subnormals() {
        let n = 64;
        let x: Vec<f32> = (0..n)
            .map(|j| if j % 3 == 0 { -1e9 } else { -(j as f32) * 1.5 })
            .collect();
        let mut y = vec![0f32; n];
        softmax_row(&x, &mut y);
        assert!(y.iter().all(|v| !v.is_subnormal()), "{y:?}");
        assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(y[3], 0.0);
        let g: Vec<f32> = (0..n).map(|j| 1e-3 * (j as f32).sin()).collect();
        let dot: f32 = y.iter().zip(&g).map(|(a, b)| a * b).sum();
        for (&y, &g) in y.iter().zip(&g) {
            assert!(!flush(y * (g - dot)).is_subnormal());
        }
    }
}
