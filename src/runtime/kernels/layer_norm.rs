//! Residual add + layer norm in one pass (inference).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;
use crate::runtime::error::Result;

/// `layer_norm(x + r) * w + b` over the last dimension, fused (inference
/// only: no backward).
pub(crate) struct AddLayerNormOp {
    pub eps: f32,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl CustomOp2 for AddLayerNormOp {
    fn name(&self) -> &'static str {
        "fused-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "fused-add-layer-norm x")?;
        let r = f32_slice(rs, rl, "fused-add-layer-norm r")?;
        let h = self.w.len();
        if x.len() != r.len() || h == 0 || x.len() % h != 0 || self.b.len() != h {
            candle_core::bail!("fused-add-layer-norm: shape mismatch");
        }
        let mut out = vec![0f32; x.len()];
        const ROWS: usize = 8;
        out.par_chunks_mut(ROWS * h)
            .zip(x.par_chunks(ROWS * h).zip(r.par_chunks(ROWS * h)))
            .for_each(|(o, (x, r))| add_ln(x, r, o, &self.w, &self.b, self.eps));
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

simd_dispatch!(fn add_ln(x: &[f32], r: &[f32], o: &mut [f32], w: &[f32], b: &[f32], eps: f32) => add_ln_generic);

#[inline(always)]
fn lane_sum(v: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let c = v.chunks_exact(L);
    let rem: f32 = c.remainder().iter().sum();
    for x in c {
        for l in 0..L {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + rem
}

#[inline(always)]
fn add_ln_generic(x: &[f32], r: &[f32], o: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let h = w.len();
    for ((orow, xrow), rrow) in o
        .chunks_exact_mut(h)
        .zip(x.chunks_exact(h))
        .zip(r.chunks_exact(h))
    {
        for ((y, a), c) in orow.iter_mut().zip(xrow).zip(rrow) {
            *y = a + c;
        }
        let mean = lane_sum(orow) / h as f32;
        for y in orow.iter_mut() {
            *y -= mean;
        }
        let mut sq = [0f32; 16];
        let c = orow.chunks_exact(16);
        let mut var: f32 = c.remainder().iter().map(|v| v * v).sum();
        for ch in c {
            for l in 0..16 {
                sq[l] += ch[l] * ch[l];
            }
        }
        var = (var + sq.iter().sum::<f32>()) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((y, g), bb) in orow.iter_mut().zip(w).zip(b) {
            *y = *y * inv * g + bb;
        }
    }
}

/// The fused residual add + layer norm.
pub(crate) fn add_layer_norm(
    x: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let op = AddLayerNormOp {
        eps: eps as f32,
        w: w.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
        b: b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
    };
    Ok(x.contiguous()?.apply_op2_no_bwd(&r.contiguous()?, &op)?)
}
