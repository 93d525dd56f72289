//! Fused CPU kernels (f32) behind [`super::ops`]: erf-GELU, softmax,
//! layer norm, bias add and dropout with backward (training),
//! and, for inference only, a linear layer with fused bias/GELU, a fused
//! multi-head attention and a fused residual add + layer norm. They are
//! vectorised through `target_feature` dispatch (AVX-512, else AVX2+FMA)
//! and multi-threaded with rayon.

use candle_core::{CpuStorage, Layout};

mod attention;
mod gelu;
mod layer_norm;
mod layer_norm_train;
mod linear;
mod softmax;
mod train_ops;

pub(crate) use attention::attention_packed;
pub(crate) use gelu::FastGelu;
#[cfg(test)]
pub(crate) use gelu::{erf_f32, exp_f32};
pub(crate) use layer_norm::add_layer_norm;
pub(crate) use layer_norm_train::LayerNorm;
pub(crate) use linear::linear;
pub(crate) use softmax::Softmax;
pub(crate) use train_ops::{AddBias, Dropout};

pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: f32 only"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}
