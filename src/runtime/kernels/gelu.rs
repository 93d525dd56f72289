//! Erf-GELU: vectorised, multi-threaded, with backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use super::{f32_slice, par_blocks, BLOCK};
use crate::runtime::fp_env::flush;

/// A vectorised, multi-threaded erf-GELU for f32 on the CPU, with backward.
pub(crate) struct FastGelu;

impl CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "fast-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32_slice(storage, layout, "fast-gelu-erf")?;
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
        // d/dx [x Phi(x)] = Phi(x) + x phi(x), in one fused pass.
        let arg = arg.contiguous()?;
        let grad = grad_res.contiguous()?;
        Ok(Some(arg.apply_op2_no_bwd(&grad, &GeluGrad)?))
    }
}

/// `grad * gelu'(x)` for GELU's backward: one pass instead of ten tensor
/// ops (erf, exp, squares and products, each allocating).
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "fast-gelu-erf-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "fast-gelu-erf-grad")?;
        let g = f32_slice(s2, l2, "fast-gelu-erf-grad")?;
        if x.len() != g.len() {
            candle_core::bail!(
                "fast-gelu-erf-grad: {} values, {} gradients",
                x.len(),
                g.len()
            );
        }
        let mut out = vec![0f32; x.len()];
        par_blocks(x, g, &mut out, BLOCK, gelu_grad_slice);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

simd_dispatch!(pub(crate) fn gelu_grad_slice(x: &[f32], g: &[f32], out: &mut [f32]) => gelu_grad_slice_generic);

#[inline(always)]
fn gelu_grad_slice_generic(x: &[f32], g: &[f32], out: &mut [f32]) {
    // 1 / sqrt(2 pi)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_f32(-0.5 * x * x);
        *o = flush(g * (cdf + x * pdf));
    }
}

pub(crate) fn gelu_slice_par(src: &[f32], dst: &mut [f32]) {
    par_blocks(src, src, dst, BLOCK, |s, _, d| gelu_slice(s, d));
}

/// [`gelu_slice_par`] in place: where the input is not needed afterwards
/// (inference), no second buffer and no copy.
pub(crate) fn gelu_in_place_par(x: &mut [f32]) {
    use rayon::prelude::*;
    x.par_chunks_mut(BLOCK).for_each(gelu_in_place);
}

simd_dispatch!(pub(crate) fn gelu_in_place(x: &mut [f32]) => gelu_in_place_generic);

#[inline(always)]
fn gelu_in_place_generic(x: &mut [f32]) {
    for x in x.iter_mut() {
        *x = flush(0.5 * *x * (1.0 + erf_f32(*x * std::f32::consts::FRAC_1_SQRT_2)));
    }
}

simd_dispatch!(fn gelu_slice(src: &[f32], dst: &mut [f32]) => gelu_slice_generic);

#[inline(always)]
fn gelu_slice_generic(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = flush(0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2)));
    }
}

/// Branch-free `exp` for f32 (relative error ~1e-7), so that loops over it
/// vectorise. Below `e^-87` (where the result would soon be subnormal) it
/// returns exactly 0: see [`crate::runtime::fp_env`] for why a subnormal
/// must never come out of a kernel.
#[inline(always)]
pub(crate) fn exp_f32(x_in: f32) -> f32 {
    let x = x_in.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // r = x - n ln 2, with ln 2 in two parts (the first exact in few bits).
    let r = n.mul_add(-0.693_145_75, x);
    let r = n.mul_add(-1.428_606_8e-6, r);
    // Taylor polynomial of e^r on [-ln2/2, ln2/2], by Horner's rule in
    // fused multiply-adds (one instruction each inside the AVX2/AVX-512
    // kernels: Rust never fuses `a * b + c` by itself, and the chain of
    // separate multiplies and adds waited on twice the latency).
    let p = r.mul_add(0.001_388_889, 0.008_333_334);
    let p = r.mul_add(p, 0.041_666_668);
    let p = r.mul_add(p, 0.166_666_67);
    let p = r.mul_add(p, 0.5);
    let p = r.mul_add(p, 1.0);
    let p = r.mul_add(p, 1.0);
    // 2^n built from n's bits: n + 127 + 2^23 holds n + 127 (in 1..=254
    // after the clamp) in its low mantissa bits, which the shift moves
    // into the exponent field. Exactly `(n as i32 + 127) << 23`, but a
    // float-to-int `as` saturates and maps NaN to 0, which no vector
    // instruction does: the loops around it would fall back to one
    // conversion per value (it made GELU and softmax 3-4x slower).
    let bits = (n + (127.0 + 8_388_608.0)).to_bits() << 23;
    let e = p * f32::from_bits(bits);
    if x_in < -87.0 {
        0.0
    } else {
        e
    }
}

/// erf as `x P(x^2) / Q(x^2)` on `|x| <= 4`, and +-1 beyond (where erf
/// rounds to 1 in f32); the coefficients are fitted by
/// `scripts/fit_erf.py`, which also measures the error of this very
/// evaluation in f32: below 3.3e-7 everywhere, and below 2.9e-7 relative
/// under 1 (no cancellation near 0, unlike `1 - t P(t) e^(-x^2)`).
///
/// Two Horner chains of fused multiply-adds and one division, branch-free
/// and without `exp`: half the instructions of the exponential form (GELU
/// fell from 4.8% to 2.3% of encoding on a Zen 3). NaN stays NaN (the
/// comparisons are written so that their vector `min` passes it through).
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let a = if a > ERF_LIMIT { ERF_LIMIT } else { a };
    let t = a * a;
    let p = t.mul_add(ERF_P[5], ERF_P[4]);
    let p = t.mul_add(p, ERF_P[3]);
    let p = t.mul_add(p, ERF_P[2]);
    let p = t.mul_add(p, ERF_P[1]);
    let p = t.mul_add(p, ERF_P[0]);
    let q = t.mul_add(ERF_Q[5], ERF_Q[4]);
    let q = t.mul_add(q, ERF_Q[3]);
    let q = t.mul_add(q, ERF_Q[2]);
    let q = t.mul_add(q, ERF_Q[1]);
    let q = t.mul_add(q, ERF_Q[0]);
    let y = a * p / q;
    let y = if y > 1.0 { 1.0 } else { y };
    y.copysign(x)
}

/// Where [`erf_f32`]'s fit ends: erf(4) = 1 - 1.5e-8 is 1 in f32.
const ERF_LIMIT: f32 = 4.0;
/// `P`'s coefficients, constant first (`scripts/fit_erf.py 5 5`); the
/// constant is erf's slope at 0, exactly.
const ERF_P: [f32; 6] = [
    std::f32::consts::FRAC_2_SQRT_PI,
    0.19457011,
    0.05324077,
    0.003928289,
    0.0002857214,
    1.980759e-06,
];
/// `Q`'s coefficients, constant first.
const ERF_Q: [f32; 6] = [
    1.0,
    0.5057657,
    0.11577677,
    0.015297116,
    0.0011967418,
    3.74183e-05,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The tails where the outputs used to be subnormal: `exp` of large
    /// negative numbers, GELU of very negative inputs, and its derivative
    /// far from 0.
    #[test]
    fn tails_are_zero_not_subnormal() {
        let xs: Vec<f32> = (0..=2400).map(|i| -200.0 + 0.1 * i as f32).collect();
        for &x in &xs {
            let e = exp_f32(x);
            assert!(!e.is_subnormal(), "exp({x}) = {e:e}");
            if (-87.0..=40.0).contains(&x) {
                let want = (x as f64).exp();
                assert!(((e as f64) - want).abs() <= 1e-6 * want, "exp({x})");
            } else if x < -87.0 {
                assert_eq!(e, 0.0, "exp({x})");
            }
        }
        let mut y = vec![0f32; xs.len()];
        gelu_slice_par(&xs, &mut y);
        assert!(y.iter().all(|v| !v.is_subnormal()));
        let g = vec![1e-3f32; xs.len()];
        let mut dy = vec![0f32; xs.len()];
        gelu_grad_slice(&xs, &g, &mut dy);
        assert!(dy.iter().all(|v| !v.is_subnormal()));
    }

    /// The exponent built from the bits of `n + 127 + 2^23` is the one a
    /// float-to-int conversion gives, for every `n` the clamp lets through.
    #[test]
    fn exponent_bits_equal_the_integer_conversion() {
        for n in -126..=127 {
            let f = n as f32;
            let want = ((n + 127) as u32) << 23;
            assert_eq!((f + (127.0 + 8_388_608.0)).to_bits() << 23, want, "n = {n}");
        }
        // And exp over the whole clamped range through the vector loop
        // (GELU's) matches the scalar call value for value.
        let xs: Vec<f32> = (0..40_000).map(|i| -90.0 + 0.0045 * i as f32).collect();
        let mut y = vec![0f32; xs.len()];
        gelu_slice_par(&xs, &mut y);
        for (&x, &y) in xs.iter().zip(&y) {
            let want = 0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
            assert_eq!(y.to_bits(), flush(want).to_bits(), "gelu({x})");
        }
    }
}
