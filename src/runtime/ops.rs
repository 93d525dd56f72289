//! The numeric building blocks every module calls.
//!
//! Modules never call candle's kernels directly for GELU, layer norm, softmax
//! or dropout: they call these functions with the forward context, and this
//! file picks the implementation. With gradients off (encoding, evaluation)
//! it uses fused kernels that have no backward; with gradients on (training)
//! it uses kernels that have one, so every weight gets its gradient. A faster
//! fused kernel can be dropped in here without touching any module.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::error::Result;

/// How a forward pass runs.
#[derive(Debug)]
pub struct Ctx {
    /// Training mode: dropout is active.
    pub train: bool,
    /// Gradients are needed: use only ops that have a backward.
    pub grad: bool,
    rng: Mutex<StdRng>,
}

impl Ctx {
    /// Inference: no dropout, fused kernels, no backward.
    pub fn eval() -> Self {
        Ctx {
            train: false,
            grad: false,
            rng: Mutex::new(StdRng::seed_from_u64(0)),
        }
    }

    /// Training: dropout active (its masks drawn from `seed`), gradients on.
    pub fn train(seed: u64) -> Self {
        Ctx {
            train: true,
            grad: true,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    /// Gradients on but dropout off (e.g. gradient checks).
    pub fn eval_with_grad() -> Self {
        Ctx {
            grad: true,
            ..Ctx::eval()
        }
    }
}

/// `x @ w^T + b` over the last dimension, for `x` of any rank.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (in_dim, rows) = match dims.split_last() {
        Some((last, rest)) => (*last, rest.iter().product::<usize>()),
        None => return Err(candle_core::Error::Msg("linear on a scalar".into()).into()),
    };
    let out_dim = w.dim(0)?;
    let x2 = x.reshape((rows, in_dim))?;
    let mut y = x2.matmul(&w.t()?)?;
    if let Some(b) = b {
        y = y.broadcast_add(b)?;
    }
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = out_dim;
    }
    Ok(y.reshape(out_dims)?)
}

/// Layer normalisation over the last dimension.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.grad && x.dtype() == DType::F32 {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::layer_norm(&x, w, b, eps as f32)?);
    }
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(xn.broadcast_mul(w)?.broadcast_add(b)?)
}

/// Softmax over the last dimension.
pub fn softmax(x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.grad {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::softmax_last_dim(&x)?);
    }
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// Inverted dropout, active only in training mode.
pub fn dropout(x: &Tensor, p: f64, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.train || p <= 0.0 {
        return Ok(x.clone());
    }
    if p >= 1.0 {
        return Ok(x.zeros_like()?);
    }
    let n = x.elem_count();
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = {
        let mut rng = match ctx.rng.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        (0..n)
            .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale })
            .collect()
    };
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * mask)?)
}

/// GELU with the exact (erf) formula, as BERT uses it.
pub fn gelu(x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
    if x.dtype() == DType::F32 && x.device().is_cpu() {
        // The fused kernel has a backward, so it serves training too.
        let _ = ctx;
        return Ok(x.apply_op1(FastGelu)?);
    }
    Ok(x.gelu_erf()?)
}

/// A vectorised, multi-threaded erf-GELU for f32 on the CPU, with backward.
struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = match storage {
            CpuStorage::F32(v) => v,
            _ => candle_core::bail!("fast-gelu-erf: f32 only"),
        };
        let src = match layout.contiguous_offsets() {
            Some((a, b)) => &src[a..b],
            None => candle_core::bail!("fast-gelu-erf: input must be contiguous"),
        };
        let mut out = vec![0f32; src.len()];
        gelu_slice_par(src, &mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        // d/dx [x Phi(x)] = Phi(x) + x phi(x)
        let cdf = ((arg / std::f64::consts::SQRT_2)?.erf()? + 1.0)? * 0.5;
        let pdf = (arg.sqr()? * -0.5)?.exp()? * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
        let d = (cdf? + (arg * pdf?)?)?;
        Ok(Some(grad_res.mul(&d)?))
    }
}

fn gelu_slice_par(src: &[f32], dst: &mut [f32]) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    if src.len() <= CHUNK {
        gelu_slice(src, dst);
        return;
    }
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| gelu_slice(s, d));
}

fn gelu_slice(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { gelu_slice_avx512(src, dst) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            unsafe { gelu_slice_avx2(src, dst) };
            return;
        }
    }
    gelu_slice_generic(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn gelu_slice_avx512(src: &[f32], dst: &mut [f32]) {
    gelu_slice_generic(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_slice_avx2(src: &[f32], dst: &mut [f32]) {
    gelu_slice_generic(src, dst)
}

#[inline(always)]
fn gelu_slice_generic(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = 0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Branch-free `exp` for f32 (relative error ~1e-7), so that loops over it
/// vectorise.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    // Taylor/minimax polynomial of e^r on [-ln2/2, ln2/2].
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// Branch-free erf (Abramowitz & Stegun 7.1.26 refined to |error| < 1.5e-7).
#[inline(always)]
fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_f32(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_erf_and_exp_are_accurate() {
        let mut worst_erf = 0f64;
        let mut worst_exp = 0f64;
        for i in -4000..4000 {
            let x = i as f32 / 500.0;
            let e = (erf_f32(x) as f64 - libm_erf(x as f64)).abs();
            worst_erf = worst_erf.max(e);
            let ex = ((exp_f32(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst_exp = worst_exp.max(ex);
        }
        assert!(worst_erf < 1e-6, "erf error {worst_erf}");
        assert!(worst_exp < 5e-7, "exp error {worst_exp}");
    }

    fn libm_erf(x: f64) -> f64 {
        let t = Tensor::new(&[x], &candle_core::Device::Cpu).unwrap();
        t.erf().unwrap().to_vec1::<f64>().unwrap()[0]
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
