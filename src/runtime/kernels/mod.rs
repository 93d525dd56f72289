//! Fused CPU kernels (f32) behind [`super::ops`]: erf-GELU, softmax,
//! layer norm, bias add and dropout with backward (training),
//! and, for inference only, a linear layer with fused bias/GELU, a fused
//! multi-head attention and a fused residual add + layer norm. They are
//! vectorised through `target_feature` dispatch (AVX-512, else AVX2+FMA)
//! and multi-threaded with rayon.

use candle_core::{CpuStorage, Layout};

/// `simd_dispatch!(fn name(args) => generic);` defines `name`, which runs
/// `generic` compiled for AVX-512 when the CPU has it, else for AVX2+FMA,
/// else as is. `generic` should be `#[inline(always)]` so that each variant
/// gets its own vectorised copy.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $generic:ident) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                #[allow(clippy::too_many_arguments)]
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                {
                    // SAFETY: the CPU supports the features `avx512` is compiled for.
                    unsafe { avx512($($arg),*) };
                    return;
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `avx2`.
                    unsafe { avx2($($arg),*) };
                    return;
                }
            }
            $generic($($arg),*)
        }
    };
}

mod attention;
mod gelu;
mod layer_norm;
mod layer_norm_train;
mod linear;
mod panel_fma;
mod panels;
pub(crate) mod round_bf16;
pub(crate) mod small;
mod softmax;
mod train_ops;

pub(crate) use attention::attention_packed;
#[cfg(test)]
pub(crate) use gelu::erf_f32;
pub(crate) use gelu::{exp_f32, gelu_grad_slice, gelu_slice_par, FastGelu};
pub(crate) use layer_norm::add_layer_norm;
pub(crate) use layer_norm_train::{moments, LayerNorm};
pub(crate) use linear::{linear, linear_in, WeightForm};
pub(crate) use panels::{
    available as panels_available, trained_available as trained_panels_available,
    write_rows as write_panel_rows, Kernel as PanelKernel, Panels,
};
pub(crate) use softmax::Softmax;
pub(crate) use train_ops::{AddBias, DropMask, Dropout};

/// Values per parallel task in the elementwise and row-wise kernels.
pub(crate) const BLOCK: usize = 1 << 14;

/// `f(a_block, b_block, out_block)` over aligned blocks of `a`, `b` and
/// `out` of `block` values each (a multiple of the row length for row-wise
/// kernels), blocks in parallel. `b` may be `a` for one-input kernels.
pub(crate) fn par_blocks(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    block: usize,
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) {
    use rayon::prelude::*;

    let block = block.max(1);
    if out.len() <= block {
        f(a, b, out);
        return;
    }
    out.par_chunks_mut(block)
        .zip(a.par_chunks(block).zip(b.par_chunks(block)))
        .for_each(|(o, (a, b))| f(a, b, o));
}

/// A block of about [`BLOCK`] values made of whole rows of `row` values.
pub(crate) fn row_block(row: usize) -> usize {
    (BLOCK / row.max(1)).max(1) * row.max(1)
}

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
