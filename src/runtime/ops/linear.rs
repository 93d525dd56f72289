//! Linear projections, and the layouts the inference cache keeps their
//! weights in.

use candle_core::{DType, Tensor};

use super::activations::gelu;
use super::{fused_ok, fused_ok_grad, Ctx};
use crate::registry::choices::Precision;
use crate::runtime::error::Result;
use crate::runtime::kernels::{self, WeightForm};

/// The form the inference cache keeps a linear layer's weight in: packed
/// once into panels where a panel kernel serves (AVX-512 or AVX2 with
/// FMA: `kernels/panels.rs`), else transposed.
pub(super) fn product_form() -> WeightForm {
    if kernels::panels_available() {
        WeightForm::Panels
    } else {
        WeightForm::Transposed
    }
}

/// `w` `[out, in]` (f32) in [`product_form`].
pub(super) fn in_product_form(w: &Tensor) -> Result<Tensor> {
    if product_form() == WeightForm::Transposed {
        return Ok(w.t()?.contiguous()?);
    }
    let (out, inp) = w.dims2()?;
    let values = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let data = kernels::Panels::pack(&values, out, inp);
    Ok(Tensor::from_vec(data, (out, inp), w.device())?)
}

/// `x @ w^T + b` over the last dimension, for `x` of any rank.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
    if ctx.precision == Precision::Bf16 {
        return linear_composed(x, w, b, Precision::Bf16);
    }
    if fused_ok(x, ctx) && w.dtype() == DType::F32 {
        if let Some(p) = ctx.product_layout(w)? {
            return kernels::linear_in(x, &p, b, false, product_form());
        }
        return kernels::linear(x, w, b, false);
    }
    linear_composed(x, w, b, Precision::Fp32)
}

/// `gelu(x @ w^T + b)`, fused into one kernel in inference.
pub fn linear_gelu(x: &Tensor, w: &Tensor, b: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
    if ctx.precision == Precision::Bf16 {
        return gelu(&linear_composed(x, w, b, Precision::Bf16)?, ctx);
    }
    if fused_ok(x, ctx) && w.dtype() == DType::F32 {
        if let Some(p) = ctx.product_layout(w)? {
            return kernels::linear_in(x, &p, b, true, product_form());
        }
        return kernels::linear(x, w, b, true);
    }
    gelu(&linear_composed(x, w, b, Precision::Fp32)?, ctx)
}

/// `x @ w^T + b` as candle ops with a backward. In [`Precision::Bf16`]
/// `x` and `w` are rounded to bf16 and the product's gradient is rounded
/// in the backward (the meaning of `precision: bf16` on the autograd
/// path; see [`kernels::round_bf16`]); the bias's gradient is not.
fn linear_composed(x: &Tensor, w: &Tensor, b: Option<&Tensor>, prec: Precision) -> Result<Tensor> {
    use kernels::round_bf16::{grad_rounded, rounded};
    let dims = x.dims().to_vec();
    let (in_dim, rows) = match dims.split_last() {
        Some((last, rest)) => (*last, rest.iter().product::<usize>()),
        None => return Err(candle_core::Error::Msg("linear on a scalar".into()).into()),
    };
    let out_dim = w.dim(0)?;
    let x2 = x.reshape((rows, in_dim))?;
    let mut y = match prec {
        Precision::Fp32 => x2.matmul(&w.t()?)?,
        Precision::Bf16 => grad_rounded(&rounded(&x2)?.matmul(&rounded(w)?.t()?)?)?,
    };
    if let Some(b) = b {
        y = if fused_ok_grad(&y) && b.dtype() == DType::F32 {
            y.contiguous()?.apply_op2(b, kernels::AddBias)?
        } else {
            y.broadcast_add(b)?
        };
    }
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = out_dim;
    }
    Ok(y.reshape(out_dims)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::test_util::*;
    use crate::runtime::ops::{self_attention, Attn, AttnShape};

    /// The encoding context's weight layouts (panels with AVX-512, else
    /// transposed; made on first use, then reused) give the results of
    /// the weights as stored, for the linear layers (with and without
    /// GELU) and the stacked q/k/v projections.
    #[test]
    fn cached_weight_layouts_give_the_stored_weights_results() {
        let (inp, out, heads) = (72, 136, 4);
        let x = random_var(&[3, 7, inp], 11, 1.0);
        let w = random_var(&[out, inp], 12, 0.3);
        let b = random_var(&[out], 13, 0.5);
        let p = |s| random_var(&[inp, inp], s, 0.3);
        let (q, k, v) = (p(14), p(15), p(16));
        let qb = random_var(&[inp], 17, 0.1);
        // The last two tokens of each text are padding.
        let keep: Vec<f32> = (0..21).map(|i| f32::from(i % 7 < 5)).collect();
        let mask = Tensor::from_vec(keep, (3, 7), &candle_core::Device::Cpu).unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (plain, cached) = (Ctx::eval(), Ctx::eval_cached());
        let x = x.as_tensor();
        let (w, b) = (w.as_tensor(), b.as_tensor());
        let qb = qb.as_tensor();
        let attend = |ctx: &Ctx| {
            let (q, k, v) = (
                (q.as_tensor(), qb),
                (k.as_tensor(), qb),
                (v.as_tensor(), qb),
            );
            let a = Attn {
                mask: &mask,
                heads,
                dropout_p: 0.0,
                shape: AttnShape::default(),
            };
            self_attention(x, q, k, v, a, ctx).unwrap()
        };
        for round in 0..2 {
            let pairs = [
                (
                    linear(x, w, Some(b), &plain),
                    linear(x, w, Some(b), &cached),
                    "linear",
                ),
                (
                    linear_gelu(x, w, Some(b), &plain),
                    linear_gelu(x, w, Some(b), &cached),
                    "linear_gelu",
                ),
                (Ok(attend(&plain)), Ok(attend(&cached)), "attention"),
            ];
            for (want, got, what) in pairs {
                let (want, got) = (flat(want.unwrap()), flat(got.unwrap()));
                assert_close(&got, &want, 1e-5, &format!("{what}, round {round}"));
            }
        }
    }

    #[test]
    fn fused_bias_add_matches_broadcast_add_with_gradients() {
        let x = random_var(&[3, 700, 24], 7, 2.0);
        let w = random_var(&[16, 24], 8, 0.5);
        let b = random_var(&[16], 9, 1.0);
        let ctx = Ctx::train(1);
        let (y1, g1) = value_and_grads(
            |x| linear(x, w.as_tensor(), Some(b.as_tensor()), &ctx).unwrap(),
            &x,
            &[&w, &b],
        );
        let (y2, g2) = value_and_grads(
            |x| {
                x.broadcast_matmul(&w.as_tensor().t().unwrap())
                    .unwrap()
                    .broadcast_add(b.as_tensor())
                    .unwrap()
            },
            &x,
            &[&w, &b],
        );
        assert_close(&y1, &y2, 1e-5, "value");
        for (i, what) in ["dx", "dw", "db"].iter().enumerate() {
            assert_close(&g1[i], &g2[i], 1e-4, what);
        }
    }

    /// `precision: bf16` on the autograd path: the linear layer multiplies
    /// its input and weight rounded to bf16, and its backward multiplies
    /// the output's gradient rounded to bf16 (the bias gradient sums it
    /// unrounded), the explicit step's meaning; inference contexts stay f32.
    #[test]
    fn bf16_linear_rounds_operands_and_the_output_gradient() {
        use crate::runtime::step::bf16::round;
        let (rows, i, o) = (2 * 7, 24, 16);
        let x = random_var(&[2, 7, i], 3, 2.0);
        let w = random_var(&[o, i], 4, 0.5);
        let b = random_var(&[o], 5, 1.0);
        let ctx = Ctx::train(1).with_precision(Precision::Bf16);
        let (y, g) = value_and_grads(
            |x| linear(x, w.as_tensor(), Some(b.as_tensor()), &ctx).unwrap(),
            &x,
            &[&w, &b],
        );
        // The output gradient value_and_grads uses, and the operands.
        let dy: Vec<f32> = (0..rows * o)
            .map(|k| ((k * 7919 % 97) as f32 / 48.5) - 1.0)
            .collect();
        let flat = |v: &candle_core::Var| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let (xs, ws, bs) = (flat(&x), flat(&w), flat(&b));
        let dot = |n: usize, f: &dyn Fn(usize) -> (f32, f32)| -> f32 {
            (0..n)
                .map(f)
                .map(|(p, q)| round(p) as f64 * round(q) as f64)
                .sum::<f64>() as f32
        };
        let mut want = (vec![], vec![], vec![], vec![]);
        for r in 0..rows {
            for c in 0..o {
                want.0
                    .push(dot(i, &|k| (xs[r * i + k], ws[c * i + k])) + bs[c]);
            }
            for c in 0..i {
                want.1.push(dot(o, &|k| (dy[r * o + k], ws[k * i + c])));
            }
        }
        for c in 0..o {
            for k in 0..i {
                want.2.push(dot(rows, &|r| (dy[r * o + c], xs[r * i + k])));
            }
            want.3.push((0..rows).map(|r| dy[r * o + c]).sum::<f32>());
        }
        let close = |got: &[f32], want: &[f32], what: &str| {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{what}: {g} vs {w}"
                );
            }
        };
        close(&y, &want.0, "y");
        close(&g[0], &want.1, "dx");
        close(&g[1], &want.2, "dw");
        close(&g[2], &want.3, "db");
        // Not the f32 layer; and linear_gelu is GELU of the bf16 layer.
        let f32_y = linear(
            x.as_tensor(),
            w.as_tensor(),
            Some(b.as_tensor()),
            &Ctx::train(1),
        )
        .unwrap();
        let f32_y = f32_y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(f32_y.iter().zip(&y).any(|(a, b)| (a - b).abs() > 1e-3));
        let yg = linear_gelu(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), &ctx).unwrap();
        let yt = Tensor::from_vec(y.clone(), (2, 7, o), &candle_core::Device::Cpu).unwrap();
        assert_close(
            &yg.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &yt.gelu_erf()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            1e-5,
            "gelu",
        );
        // Inference ignores a training precision it was never given.
        assert_eq!(Ctx::eval().precision(), Precision::Fp32);
    }
}
