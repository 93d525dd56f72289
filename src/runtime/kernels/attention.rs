//! Multi-head self-attention in one kernel (inference).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;
use super::gelu::exp_f32;
use crate::runtime::error::Result;

/// Multi-head self-attention over packed projections `qkv`
/// `[batch, seq, 3 * hidden]` (q, k, v side by side), with a key mask
/// `[batch, seq]`, fused (inference only: no backward). Output
/// `[batch, seq, hidden]`.
pub(crate) struct AttentionOp {
    pub heads: usize,
    pub scale: f32,
    /// 1.0 for tokens, 0.0 for padding, `[batch * seq]`.
    pub mask: Vec<f32>,
    /// Added to every batch row's scores, `[heads * seq * seq]`.
    pub bias: Option<Vec<f32>>,
    /// Keys more than this far from the query are masked.
    pub window: usize,
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = f32_slice(st, l, "fused-attention qkv")?;
        let (b, s, h3) = l.shape().dims3()?;
        let h = h3 / 3;
        if h3 % 3 != 0 || self.mask.len() != b * s {
            candle_core::bail!("fused-attention: shape mismatch");
        }
        if self.heads == 0 || h % self.heads != 0 {
            candle_core::bail!(
                "fused-attention: {h} not divisible into {} heads",
                self.heads
            );
        }
        let mut out = vec![0f32; b * s * h];
        if self
            .bias
            .as_ref()
            .is_some_and(|b| b.len() != self.heads * s * s)
        {
            candle_core::bail!("fused-attention: bias shape mismatch");
        }
        let (heads, scale) = (self.heads, self.scale);
        let shape = Shaping {
            bias: self.bias.as_deref(),
            window: self.window,
        };
        out.par_chunks_mut(s * h).enumerate().for_each(|(bi, o)| {
            let x = &qkv[bi * s * h3..(bi + 1) * s * h3];
            let keys: Vec<usize> = (0..s).filter(|&j| self.mask[bi * s + j] > 0.5).collect();
            attend(
                x,
                &x[h..],
                &x[2 * h..],
                h3,
                &keys,
                o,
                s,
                h,
                heads,
                scale,
                shape,
            );
        });
        Ok((CpuStorage::F32(out), Shape::from((b, s, h))))
    }
}

simd_dispatch!(fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ld: usize,
    keys: &[usize],
    o: &mut [f32],
    s: usize,
    h: usize,
    heads: usize,
    scale: f32,
    shape: Shaping,
) => attend_generic);

/// Score bias and window of [`AttentionOp`], per call.
#[derive(Clone, Copy)]
struct Shaping<'a> {
    bias: Option<&'a [f32]>,
    window: usize,
}

/// `a . b` in 16 independent lanes (vectorises in the `simd_dispatch!`
/// variants of its callers).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_generic(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ld: usize,
    keys: &[usize],
    o: &mut [f32],
    s: usize,
    h: usize,
    heads: usize,
    scale: f32,
    shape: Shaping,
) {
    let d = h / heads;
    let mut p = vec![0f32; keys.len()];
    for head in 0..heads {
        let off = head * d;
        for i in 0..s {
            let qi = &q[i * ld + off..i * ld + off + d];
            let mut mx = f32::NEG_INFINITY;
            let bias_row = shape
                .bias
                .map(|b| &b[(head * s + i) * s..(head * s + i + 1) * s]);
            for (pj, &j) in p.iter_mut().zip(keys) {
                if i.abs_diff(j) > shape.window {
                    *pj = f32::NEG_INFINITY;
                    continue;
                }
                let mut sc = dot(qi, &k[j * ld + off..j * ld + off + d]) * scale;
                if let Some(br) = bias_row {
                    sc += br[j];
                }
                *pj = sc;
                mx = mx.max(sc);
            }
            let mut sum = 0f32;
            for pj in p.iter_mut() {
                let e = if *pj == f32::NEG_INFINITY {
                    0.0
                } else {
                    exp_f32(*pj - mx)
                };
                *pj = e;
                sum += e;
            }
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            let oi = &mut o[i * h + off..i * h + off + d];
            for (pj, &j) in p.iter().zip(keys) {
                let w = pj * inv;
                let vj = &v[j * ld + off..j * ld + off + d];
                for (x, y) in oi.iter_mut().zip(vj) {
                    *x += w * y;
                }
            }
        }
    }
}

/// The fused attention on packed `[batch, seq, 3 * hidden]` projections,
/// with an optional score bias `[heads, seq, seq]` and key window.
pub(crate) fn attention_packed(
    qkv: &Tensor,
    mask: &Tensor,
    heads: usize,
    bias: Option<&Tensor>,
    window: Option<usize>,
) -> Result<Tensor> {
    let (_b, _s, h3) = qkv.dims3()?;
    let scale = 1.0 / ((h3 / 3 / heads.max(1)) as f32).sqrt();
    let mask = mask
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let bias = match bias {
        Some(t) => Some(
            t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        ),
        None => None,
    };
    let op = AttentionOp {
        heads,
        scale,
        mask,
        bias,
        window: window.unwrap_or(usize::MAX),
    };
    Ok(qkv.contiguous()?.apply_op1_no_bwd(&op)?)
}
