//! Rounding to bf16 as autograd ops: how the autograd path (encoders
//! without an explicit step, Dense modules, GradCache, a decoder) runs a
//! stage's `precision: bf16` with the same meaning as the explicit step's
//! bf16 products ([`crate::runtime::step::bf16`]); and the rounding
//! itself, which both use.
//!
//! A linear layer `y = x W^T` there becomes
//! `y = grad_rounded(rounded(x) @ rounded(W)^T)`:
//!
//! - [`Round::Value`] rounds its input in the forward and passes the gradient
//!   through unchanged (the operand is rounded, its gradient is not: the
//!   gradient of `x` is an f32 sum, as the explicit step's is);
//! - [`Round::Gradient`] passes its input through in the forward and rounds
//!   the gradient in the backward (the gradient is the other operand of
//!   both backward products, `dy @ W` and `dy^T x`, which the explicit
//!   step rounds too).
//!
//! The products of rounded values are exact in f32, so the two paths
//! differ only in the order of their f32 sums. (candle's own
//! `to_dtype(BF16)` round trip would round both ways and keep
//! subnormals, which `vdpbf16ps` flushes.)

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::{f32_slice, par_blocks, BLOCK};

/// `x` rounded to bf16, to nearest with ties to even; NaN stays NaN and
/// a subnormal becomes a zero of its sign, as `vcvtneps2bf16` does (the
/// packing converts whole runs with it and single values with this).
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) as u16) | 0x40;
    }
    if x.is_subnormal() {
        return ((bits >> 16) & 0x8000) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 value of a bf16.
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `x` rounded to bf16 and widened back to f32 (see [`to_bf16`]).
pub fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// Every value of `v` rounded to bf16, kept as f32 ([`round`]).
pub fn round_slice(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = round(*x));
}

/// Which way a rounding op rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Round {
    /// Forward: the input rounded to bf16 (as an f32 tensor). Backward:
    /// the gradient unchanged.
    Value,
    /// Forward: the input unchanged. Backward: the gradient rounded to
    /// bf16.
    Gradient,
}

impl CustomOp1 for Round {
    fn name(&self) -> &'static str {
        match self {
            Round::Value => "round-bf16",
            Round::Gradient => "round-bf16-grad",
        }
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32_slice(st, l, self.name())?;
        let mut out = src.to_vec();
        if let Round::Value = self {
            par_blocks(src, src, &mut out, BLOCK, |_, _, o| round_slice(o));
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(match self {
            Round::Value => grad.clone(),
            Round::Gradient => grad.contiguous()?.apply_op1_no_bwd(&Round::Value)?,
        }))
    }
}

/// `x` rounded to bf16 in the forward, its gradient passed through.
pub(crate) fn rounded(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Round::Value)
}

/// `x` unchanged in the forward, its gradient rounded to bf16.
pub(crate) fn grad_rounded(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Round::Gradient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // Just above halfway rounds up.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0), 0x3f81);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        // The largest finite floats round up to infinity, as in torch.
        assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
    }
}
