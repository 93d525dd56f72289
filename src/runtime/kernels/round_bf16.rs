//! Rounding to bf16 as autograd ops: how the autograd path (encoders
//! without an explicit step, Dense modules, GradCache, a decoder) runs a
//! stage's `precision: bf16` with the same meaning as the explicit step's
//! bf16 products ([`crate::runtime::step::bf16`]).
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
use crate::runtime::step::bf16::round_slice;

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
