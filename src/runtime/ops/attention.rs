//! Multi-head self-attention: fused kernels in inference, candle ops with
//! a backward in training.

use candle_core::{DType, Tensor};

use super::activations::{dropout, softmax};
use super::linear::{in_product_form, linear, product_form};
use super::{fused_ok, Ctx, WeightLayout};
use crate::runtime::error::Result;
use crate::runtime::kernels;

/// A linear projection's weight `[out, in]` and bias `[out]`.
pub type Proj<'a> = (&'a Tensor, &'a Tensor);

/// How attention scores are shaped beyond the key mask.
#[derive(Debug, Default, Clone, Copy)]
pub struct AttnShape<'a> {
    /// Added to the scores of every batch row, `[heads, seq, seq]`
    /// (MPNet's relative position bias).
    pub bias: Option<&'a Tensor>,
    /// Keys more than this many positions from the query are masked
    /// (ModernBERT's local layers).
    pub window: Option<usize>,
}

/// What attention reads besides the queries, keys and values: the key
/// mask `[batch, seq]` (1 token, 0 padding), the number of heads, the
/// dropout of the attention probabilities (training mode only) and the
/// scores' [`AttnShape`].
#[derive(Debug, Clone, Copy)]
pub struct Attn<'a> {
    pub mask: &'a Tensor,
    pub heads: usize,
    pub dropout_p: f64,
    pub shape: AttnShape<'a>,
}

/// Multi-head self-attention of `x` `[batch, seq, hidden]` with query, key
/// and value projections; returns `[batch, seq, hidden]` before the output projection. Attention
/// dropout applies in training mode. In inference the three projections
/// run as one matmul and the attention as one fused kernel.
pub fn self_attention(x: &Tensor, q: Proj, k: Proj, v: Proj, a: Attn, ctx: &Ctx) -> Result<Tensor> {
    if fused_ok(x, ctx) && !ctx.train {
        let cat_w = || -> Result<Tensor> { Ok(Tensor::cat(&[q.0, k.0, v.0], 0)?) };
        let cat_b = || -> Result<Tensor> { Ok(Tensor::cat(&[q.1, k.1, v.1], 0)?) };
        let qkv = match ctx.layout(q.0, WeightLayout::QkvProduct, || in_product_form(&cat_w()?))? {
            Some(p) => {
                let b = ctx.layout(q.1, WeightLayout::QkvBias, cat_b)?;
                kernels::linear_in(x, &p, b.as_ref(), false, product_form())?
            }
            None => kernels::linear(x, &cat_w()?, Some(&cat_b()?), false)?,
        };
        return attention_packed(&qkv, a, ctx);
    }
    let q = linear(x, q.0, Some(q.1), ctx)?;
    let k = linear(x, k.0, Some(k.1), ctx)?;
    let v = linear(x, v.0, Some(v.1), ctx)?;
    attention(&q, &k, &v, a, ctx)
}

/// Attention over packed projections `qkv` `[batch, seq, 3 * hidden]`
/// (q, k, v side by side): one fused kernel in inference.
pub fn attention_packed(qkv: &Tensor, a: Attn, ctx: &Ctx) -> Result<Tensor> {
    if fused_ok(qkv, ctx) && !ctx.train {
        let (bias, window) = (a.shape.bias, a.shape.window);
        return kernels::attention_packed(qkv, a.mask, a.heads, bias, window);
    }
    let h = qkv.dim(2)? / 3;
    let part = |i: usize| qkv.narrow(2, i * h, h);
    attention(&part(0)?, &part(1)?, &part(2)?, a, ctx)
}

/// Attention of projected `q`, `k`, `v` `[batch, seq, hidden]`: the fused
/// kernel in inference, else candle ops with a backward (the training
/// path, and the reference the fused kernel is tested against).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, a: Attn, ctx: &Ctx) -> Result<Tensor> {
    let Attn {
        mask,
        heads,
        dropout_p,
        shape,
    } = a;
    if fused_ok(q, ctx) && !ctx.train {
        let qkv = Tensor::cat(&[q, k, v], 2)?;
        return kernels::attention_packed(&qkv, mask, heads, shape.bias, shape.window);
    }
    let (b, s, h) = q.dims3()?;
    let d = h / heads;
    let split = |t: &Tensor| -> Result<Tensor> {
        Ok(t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous()?)
    };
    let q = split(&(q * (1.0 / (d as f64).sqrt()))?)?;
    let k = split(k)?;
    let v = split(v)?;
    // Additive mask: 0 for tokens, -1e9 for padding, [b, 1, 1, s].
    let key_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?;
    let mut scores = q.matmul(&k.t()?)?.broadcast_add(&key_bias)?;
    if let Some(pb) = shape.bias {
        scores = scores.broadcast_add(&pb.unsqueeze(0)?)?;
    }
    if let Some(w) = shape.window {
        let far: Vec<f32> = (0..s * s)
            .map(|ij| {
                if (ij / s).abs_diff(ij % s) > w {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        let far = Tensor::from_vec(far, (1, 1, s, s), q.device())?;
        scores = scores.broadcast_add(&far)?;
    }
    let probs = softmax(&scores, ctx)?;
    let probs = dropout(&probs, dropout_p, ctx)?;
    Ok(probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, s, h))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::test_util::*;

    #[test]
    fn fused_attention_matches_the_composed_one_with_holes_bias_and_window() {
        let (b, s) = (3, 21);
        // Row 0 all tokens, row 1 right padding, row 2 holes in the middle.
        let mut mask = vec![1f32; b * s];
        mask[s + 13..2 * s].fill(0.0);
        for j in [2, 5, 6, 11, 17] {
            mask[2 * s + j] = 0.0;
        }
        let mask_t = Tensor::from_vec(mask.clone(), (b, s), &candle_core::Device::Cpu).unwrap();
        // Head widths below, at and off a whole vector.
        for (h, heads) in [(48, 3), (40, 2), (64, 2)] {
            let part = |seed| random_var(&[b, s, h], seed, 1.5).as_tensor().clone();
            let (q, k, v) = (part(11), part(12), part(13));
            let bias = random_var(&[heads, s, s], 14, 2.0).as_tensor().clone();
            for (bias, window) in [(None, None), (Some(&bias), None), (Some(&bias), Some(4))] {
                let shape = AttnShape { bias, window };
                let run = |ctx: &Ctx| {
                    let a = Attn {
                        mask: &mask_t,
                        heads,
                        dropout_p: 0.0,
                        shape,
                    };
                    attention(&q, &k, &v, a, ctx)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                };
                let (fused, composed) = (run(&Ctx::eval()), run(&Ctx::train(1)));
                // Queries at padding differ where every key is out of
                // their window (the composed path then spreads over the
                // masked keys); the real tokens' rows must agree.
                for (row, _) in mask.iter().enumerate().filter(|(_, &m)| m > 0.5) {
                    let at = row * h..(row + 1) * h;
                    let what = format!(
                        "h {h}, heads {heads}, bias {}, window {window:?}, token {row}",
                        bias.is_some()
                    );
                    assert_close(&fused[at.clone()], &composed[at], 1e-5, &what);
                }
            }
        }
    }
}
