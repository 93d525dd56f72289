//! Layer normalisation, alone and fused with a residual addition.

use candle_core::{DType, Tensor, D};

use super::{fused_ok, fused_ok_grad, Ctx};
use crate::runtime::error::Result;
use crate::runtime::kernels;

/// Layer normalisation over the last dimension.
///
/// Candle's kernel serves inference only: a training pass without
/// gradients (GradCache's first) takes the training kernel, so that it
/// gives the bits its second pass recomputes (a bf16 stage would round
/// the two apart otherwise).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.grad && !ctx.train && x.dtype() == DType::F32 {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::layer_norm(&x, w, b, eps as f32)?);
    }
    if fused_ok_grad(x) && w.dtype() == DType::F32 && b.dtype() == DType::F32 {
        let x = x.contiguous()?;
        return Ok(x.apply_op3(w, b, kernels::LayerNorm { eps: eps as f32 })?);
    }
    layer_norm_composed(x, w, b, eps)
}

/// Layer norm from candle ops (any dtype or device; the reference the fused
/// kernel is tested against).
fn layer_norm_composed(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(xn.broadcast_mul(w)?.broadcast_add(b)?)
}

/// `layer_norm(x + residual)`, fused into one pass in inference (not in a
/// training pass without gradients: see [`layer_norm`]).
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    ctx: &Ctx,
) -> Result<Tensor> {
    if fused_ok(x, ctx) && !ctx.train && residual.dtype() == DType::F32 {
        return kernels::add_layer_norm(x, residual, w, b, eps);
    }
    layer_norm(&(x + residual)?, w, b, eps, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::test_util::*;

    #[test]
    fn fused_layer_norm_matches_the_composed_one_with_gradients() {
        let x = random_var(&[3, 5, 48], 1, 3.0);
        let w = random_var(&[48], 2, 1.5);
        let b = random_var(&[48], 3, 0.5);
        let ctx = Ctx::train(1);
        let (y1, g1) = value_and_grads(
            |x| layer_norm(x, w.as_tensor(), b.as_tensor(), 1e-12, &ctx).unwrap(),
            &x,
            &[&w, &b],
        );
        let (y2, g2) = value_and_grads(
            |x| layer_norm_composed(x, w.as_tensor(), b.as_tensor(), 1e-12).unwrap(),
            &x,
            &[&w, &b],
        );
        assert_close(&y1, &y2, 1e-5, "value");
        for (i, what) in ["dx", "dw", "db"].iter().enumerate() {
            assert_close(&g1[i], &g2[i], 1e-4, what);
        }
        // A strided input (a transpose) is made contiguous first.
        let xt = random_var(&[48, 4], 4, 1.0);
        let (y3, _) = value_and_grads(
            |x| layer_norm(&x.t().unwrap(), w.as_tensor(), b.as_tensor(), 1e-5, &ctx).unwrap(),
            &xt,
            &[],
        );
        let (y4, _) = value_and_grads(
            |x| layer_norm_composed(&x.t().unwrap(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap(),
            &xt,
            &[],
        );
        assert_close(&y3, &y4, 1e-5, "strided value");
    }
}
