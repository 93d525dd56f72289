//! Softmax, dropout and GELU.

use candle_core::{DType, Tensor, D};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::{fused_ok_grad, next_seed, Ctx};
use crate::runtime::error::Result;
use crate::runtime::kernels;

/// Softmax over the last dimension.
///
/// With gradients or without, f32 on the CPU takes the same kernel: the
/// first pass of GradCache (no gradients) must give the bits its second
/// pass recomputes, or a bf16 stage rounds the two apart.
pub fn softmax(x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    if fused_ok_grad(x) {
        let x = x.contiguous()?;
        return Ok(if ctx.grad {
            x.apply_op1(kernels::Softmax)?
        } else {
            x.apply_op1_no_bwd(&kernels::Softmax)?
        });
    }
    if !ctx.grad {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::softmax_last_dim(&x)?);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// The mask [`dropout`] with probability `p` would apply next in `ctx`,
/// drawn from the same generator (so the explicit step drops what the
/// autograd path would); `None` where dropout is off. `p` must be below 1
/// (the explicit step is not taken otherwise).
pub(crate) fn dropout_mask(p: f64, ctx: &Ctx) -> Option<kernels::DropMask> {
    if !ctx.train || p <= 0.0 {
        return None;
    }
    Some(kernels::DropMask::new(next_seed(ctx), p as f32))
}

/// Inverted dropout, active only in training mode.
pub fn dropout(x: &Tensor, p: f64, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.train || p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return Ok(x.zeros_like()?);
    }
    let seed = next_seed(ctx);
    if fused_ok_grad(x) {
        // The mask is a function of (seed, index), regenerated backward.
        let op = kernels::Dropout { seed, p: p as f32 };
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    let n = x.elem_count();
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut rng = StdRng::seed_from_u64(seed);
    let mask: Vec<f32> = (0..n)
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * mask)?)
}

/// GELU with the exact (erf) formula, as BERT uses it.
pub fn gelu(x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        // The fused kernel has a backward, so it serves training too.
        let _ = ctx;
        return Ok(x.apply_op1(kernels::FastGelu)?);
    }
    Ok(x.gelu_erf()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::kernels::{erf_f32, exp_f32};
    use crate::runtime::ops::test_util::*;

    #[test]
    fn fast_erf_and_exp_are_accurate() {
        let mut worst_erf = 0f64;
        let mut worst_erf_rel = 0f64;
        let mut worst_exp = 0f64;
        for i in -4000..4000 {
            let x = i as f32 / 500.0;
            let want = libm_erf(x as f64);
            let e = (erf_f32(x) as f64 - want).abs();
            worst_erf = worst_erf.max(e);
            if x != 0.0 && x.abs() < 1.0 {
                worst_erf_rel = worst_erf_rel.max(e / want.abs());
            }
            let ex = ((exp_f32(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst_exp = worst_exp.max(ex);
        }
        // scripts/fit_erf.py measures 3.3e-7 and 2.9e-7 on a finer grid.
        assert!(worst_erf < 4e-7, "erf error {worst_erf}");
        assert!(worst_erf_rel < 5e-7, "erf relative error {worst_erf_rel}");
        assert!(worst_exp < 5e-7, "exp error {worst_exp}");
    }

    /// erf's edges: odd, exactly 0 at 0 and +-1 from where the fit ends
    /// (and at the infinities), NaN for NaN.
    #[test]
    fn fast_erf_edges() {
        assert_eq!(erf_f32(0.0), 0.0);
        for x in [4.0f32, 4.5, 10.0, 1e30, f32::INFINITY] {
            assert_eq!(erf_f32(x), 1.0, "erf({x})");
            assert_eq!(erf_f32(-x), -1.0, "erf(-{x})");
        }
        for i in 1..2000 {
            let x = i as f32 / 400.0;
            assert_eq!(erf_f32(-x), -erf_f32(x), "odd at {x}");
            assert!(erf_f32(x) <= 1.0);
        }
        assert!(erf_f32(f32::NAN).is_nan());
    }

    fn libm_erf(x: f64) -> f64 {
        let t = Tensor::new(&[x], &candle_core::Device::Cpu).unwrap();
        t.erf().unwrap().to_vec1::<f64>().unwrap()[0]
    }

    #[test]
    fn fused_softmax_matches_candle_with_gradients() {
        // Large magnitudes too, and a row of -1e9 (masked) entries.
        let x = random_var(&[2, 3, 7, 33], 5, 20.0);
        let ctx = Ctx::train(1);
        let mask = {
            let mut m = vec![0f32; 33];
            m[30..].iter_mut().for_each(|v| *v = -1e9);
            Tensor::from_vec(m, 33, &candle_core::Device::Cpu).unwrap()
        };
        let (y1, g1) = value_and_grads(
            |x| softmax(&x.broadcast_add(&mask).unwrap(), &ctx).unwrap(),
            &x,
            &[],
        );
        let (y2, g2) = value_and_grads(
            |x| candle_nn::ops::softmax(&x.broadcast_add(&mask).unwrap(), D::Minus1).unwrap(),
            &x,
            &[],
        );
        assert_close(&y1, &y2, 1e-6, "value");
        assert_close(&g1[0], &g2[0], 1e-5, "dx");
        assert!(y1.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn dropout_masks_are_seeded_scaled_and_shared_with_the_backward() {
        let x = random_var(&[50_000], 10, 1.0);
        let run =
            |seed: u64| value_and_grads(|x| dropout(x, 0.1, &Ctx::train(seed)).unwrap(), &x, &[]);
        let (y1, g1) = run(3);
        let (y2, g2) = run(3);
        let (y3, _) = run(4);
        assert_eq!(y1, y2, "same seed, same mask");
        assert_eq!(g1, g2);
        assert_ne!(y1, y3, "another seed, another mask");
        let xs = x.as_tensor().to_vec1::<f32>().unwrap();
        let dropped = y1.iter().filter(|v| **v == 0.0).count() as f64 / y1.len() as f64;
        assert!((dropped - 0.1).abs() < 0.01, "dropped {dropped}");
        // Kept values are scaled by 1/(1-p); the gradient uses the same mask.
        let (_, gref) = value_and_grads(|x| x.clone(), &x, &[]);
        for i in 0..xs.len() {
            if y1[i] == 0.0 {
                assert_eq!(g1[0][i], 0.0);
            } else {
                assert!((y1[i] - xs[i] / 0.9).abs() < 1e-6);
                assert!((g1[0][i] - gref[0][i] / 0.9).abs() < 1e-6);
            }
        }
        // Inference leaves the input alone.
        let e = dropout(x.as_tensor(), 0.1, &Ctx::eval()).unwrap();
        assert_eq!(e.to_vec1::<f32>().unwrap(), xs);
    }

    #[test]
    fn fused_gelu_gradient_matches_candle_over_a_range() {
        let x = random_var(&[4000], 6, 8.0);
        let ctx = Ctx::train(1);
        let (y1, g1) = value_and_grads(|x| gelu(x, &ctx).unwrap(), &x, &[]);
        let (y2, g2) = value_and_grads(|x| x.gelu_erf().unwrap(), &x, &[]);
        assert_close(&y1, &y2, 1e-5, "value");
        assert_close(&g1[0], &g2[0], 1e-5, "dx");
    }

    #[test]
    fn fused_gelu_matches_candle_and_has_gradient() {
        let dev = candle_core::Device::Cpu;
        let v = candle_core::Var::new(&[-3.0f32, -1.0, -0.1, 0.0, 0.5, 2.0, 7.0], &dev).unwrap();
        let ours = gelu(v.as_tensor(), &Ctx::train(1)).unwrap();
        let theirs = v.as_tensor().gelu_erf().unwrap();
        let diff = (&ours - &theirs)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5);
        let g1 = ours.sum_all().unwrap().backward().unwrap();
        let g2 = theirs.sum_all().unwrap().backward().unwrap();
        let a = g1.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let b = g2.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }
}
