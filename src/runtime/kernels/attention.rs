//! Multi-head self-attention in one kernel (inference).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::f32_slice;
use super::small::{padded, product, softmax_row, View};
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

/// One batch row's attention, each head as two small products (see
/// [`super::small`]): the scores of every query against the kept keys,
/// `[s, padded(keys)]`, then the softmax'd scores times the keys' values.
/// Queries at padding positions are computed too (their rows are what the
/// unfused path gives them); padded keys never enter.
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
    let (d, nk) = (h / heads, keys.len());
    if nk == 0 {
        return;
    }
    let np = padded(nk);
    // The values of the kept keys: read in place when they are one run
    // of rows (right padding), gathered otherwise.
    let run = keys.iter().enumerate().all(|(c, &j)| j == keys[0] + c);
    let gathered;
    let (vk, ldv) = if run {
        (&v[keys[0] * ld..], ld)
    } else {
        gathered = keys
            .iter()
            .flat_map(|&j| v[j * ld..j * ld + h].iter().copied())
            .collect::<Vec<f32>>();
        (&gathered[..], h)
    };
    let mut kt = vec![0f32; d * np];
    let mut sc = vec![0f32; s * np];
    for head in 0..heads {
        let off = head * d;
        for t in 0..d {
            for (x, &j) in kt[t * np..t * np + nk].iter_mut().zip(keys) {
                *x = k[j * ld + off + t];
            }
        }
        product(s, d, np, View::rows(&q[off..], ld), &kt, np, &mut sc, np);
        for i in 0..s {
            let row = &mut sc[i * np..(i + 1) * np];
            for r in row[..nk].iter_mut() {
                *r *= scale;
            }
            if let Some(b) = shape.bias {
                let brow = &b[(head * s + i) * s..(head * s + i + 1) * s];
                for (r, &j) in row.iter_mut().zip(keys) {
                    *r += brow[j];
                }
            }
            if shape.window < s {
                for (r, &j) in row.iter_mut().zip(keys) {
                    if i.abs_diff(j) > shape.window {
                        *r = f32::NEG_INFINITY;
                    }
                }
            }
            row[nk..].fill(f32::NEG_INFINITY);
            // A key out of the window (or past the keys) weighs 0, also in
            // a row where every key is out.
            softmax_row(row);
        }
        product(
            s,
            nk,
            d,
            View::rows(&sc, np),
            &vk[off..],
            ldv,
            &mut o[off..],
            h,
        );
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
