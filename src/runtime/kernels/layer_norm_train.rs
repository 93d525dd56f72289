//! Layer norm over the last dimension with backward, for training: one
//! pass forward and two backward, where the composed version takes nine
//! allocating ops forward and about twice as many backward.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, par_blocks};

/// Rows per parallel task.
const ROWS: usize = 16;

/// `(x - mean) / sqrt(var + eps) * w + b` row by row (biased variance, as
/// torch's LayerNorm).
pub(crate) struct LayerNorm {
    pub eps: f32,
}

/// Mean and 1/std of a row.
#[inline]
pub(crate) fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn check(what: &str, x: &[f32], h: usize, others: &[usize]) -> candle_core::Result<()> {
    if h == 0 || !x.len().is_multiple_of(h) || others.iter().any(|&n| n != h) {
        candle_core::bail!("{what}: shape mismatch");
    }
    Ok(())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "layer-norm x")?;
        let w = f32_slice(s2, l2, "layer-norm weight")?;
        let b = f32_slice(s3, l3, "layer-norm bias")?;
        let h = l1.dims().last().copied().unwrap_or(0);
        check(self.name(), x, h, &[w.len(), b.len()])?;
        let eps = self.eps;
        let mut out = vec![0f32; x.len()];
        par_blocks(x, x, &mut out, ROWS * h, |x, _, o| {
            for (o, x) in o.chunks_mut(h).zip(x.chunks(h)) {
                let (mean, rstd) = moments(x, eps);
                for (((o, &x), &w), &b) in o.iter_mut().zip(x).zip(w).zip(b) {
                    *o = (x - mean) * rstd * w + b;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let x = x.contiguous()?;
        let w = w.contiguous()?;
        let g = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(&w, &g, &LayerNormGradX { eps: self.eps })?;
        let wb = x.apply_op2_no_bwd(&g, &LayerNormGradWB { eps: self.eps })?;
        let h = w.elem_count();
        let dw = wb.narrow(0, 0, h)?.reshape(w.shape())?;
        let db = wb.narrow(0, h, h)?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The input gradient: `rstd * (d - mean(d) - xhat * mean(d * xhat))`
/// with `d = g * w`.
struct LayerNormGradX {
    eps: f32,
}

impl CustomOp3 for LayerNormGradX {
    fn name(&self) -> &'static str {
        "layer-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "layer-norm-grad x")?;
        let w = f32_slice(s2, l2, "layer-norm-grad weight")?;
        let g = f32_slice(s3, l3, "layer-norm-grad g")?;
        let h = w.len();
        check(self.name(), x, h, &[])?;
        if g.len() != x.len() {
            candle_core::bail!("{}: shape mismatch", self.name());
        }
        let eps = self.eps;
        let mut out = vec![0f32; x.len()];
        par_blocks(x, g, &mut out, ROWS * h, |x, g, o| {
            for ((o, x), g) in o.chunks_mut(h).zip(x.chunks(h)).zip(g.chunks(h)) {
                let (mean, rstd) = moments(x, eps);
                let n = h as f32;
                let (mut sum_d, mut sum_dx) = (0f32, 0f32);
                for ((&x, &g), &w) in x.iter().zip(g).zip(w) {
                    let d = g * w;
                    sum_d += d;
                    sum_dx += d * (x - mean) * rstd;
                }
                let (mean_d, mean_dx) = (sum_d / n, sum_dx / n);
                for (((o, &x), &g), &w) in o.iter_mut().zip(x).zip(g).zip(w) {
                    let xhat = (x - mean) * rstd;
                    *o = crate::runtime::fp_env::flush(rstd * (g * w - mean_d - xhat * mean_dx));
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// The weight and bias gradients, `sum(g * xhat)` and `sum(g)` over rows,
/// as one `[2 * hidden]` tensor.
struct LayerNormGradWB {
    eps: f32,
}

impl CustomOp2 for LayerNormGradWB {
    fn name(&self) -> &'static str {
        "layer-norm-grad-wb"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "layer-norm-grad x")?;
        let g = f32_slice(s2, l2, "layer-norm-grad g")?;
        let h = l1.dims().last().copied().unwrap_or(0);
        check(self.name(), x, h, &[])?;
        if g.len() != x.len() {
            candle_core::bail!("{}: shape mismatch", self.name());
        }
        let eps = self.eps;
        // One partial sum per fixed block of rows, added in block order: the
        // result does not depend on how rayon schedules the blocks (resumed
        // runs must reproduce uninterrupted ones bit for bit).
        let partials: Vec<Vec<f32>> = x
            .par_chunks(ROWS * h)
            .zip(g.par_chunks(ROWS * h))
            .map(|(x, g)| {
                let mut acc = vec![0f32; 2 * h];
                for (x, g) in x.chunks(h).zip(g.chunks(h)) {
                    let (mean, rstd) = moments(x, eps);
                    let (dw, db) = acc.split_at_mut(h);
                    for (((dw, db), &x), &g) in dw.iter_mut().zip(db).zip(x).zip(g) {
                        *dw += g * (x - mean) * rstd;
                        *db += g;
                    }
                }
                acc
            })
            .collect();
        let mut sums = vec![0f32; 2 * h];
        for p in &partials {
            sums.iter_mut().zip(p).for_each(|(s, p)| *s += p);
        }
        Ok((CpuStorage::F32(sums), Shape::from(2 * h)))
    }
}
