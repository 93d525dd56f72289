//! Linear layer with the bias (and optionally GELU) fused in (inference).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::f32_slice;
use super::gelu::{gelu_in_place, gelu_in_place_par};
use super::panels::{Panels, Then};
use crate::runtime::error::Result;
use crate::runtime::step::matmul::{matmul, Into, Mat, MatMut};

/// `x [rows, in] @ w[out, in]^T + b`, optionally followed by GELU, in one
/// pass over the output (inference only: no backward).
pub(crate) struct LinearOp {
    pub gelu: bool,
    pub form: WeightForm,
}

/// How a linear layer's weight is given to [`LinearOp`].
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum WeightForm {
    /// As stored, `[out, in]` (read through its strides).
    Rows,
    /// Transposed, `[in, out]`: both operands are then row-major, the
    /// layout `gemm`'s AVX2 kernels run fastest on.
    Transposed,
    /// Packed once by [`Panels::pack`] (the same `out * in` values; the
    /// tensor keeps the shape `[out, in]`): no packing per call, for
    /// `gemm`'s AVX-512 kernels.
    Panels,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "fused-linear x")?;
        let w = f32_slice(ws, wl, "fused-linear w")?;
        let b = f32_slice(bs, bl, "fused-linear b")?;
        let (rows, inp) = xl.shape().dims2()?;
        let (out, inp2) = match wl.shape().dims2()? {
            (i, o) if self.form == WeightForm::Transposed => (o, i),
            d => d,
        };
        if inp != inp2 || b.len() != out {
            candle_core::bail!(
                "fused-linear: shapes {:?} {:?} {:?}",
                xl.shape(),
                wl.shape(),
                bl.shape()
            );
        }
        if x.len() != rows * inp || w.len() != out * inp {
            candle_core::bail!("fused-linear: operands shorter than their shapes");
        }
        let mut dst = Vec::with_capacity(rows * out);
        for _ in 0..rows {
            dst.extend_from_slice(b);
        }
        match self.form {
            WeightForm::Rows | WeightForm::Transposed => {
                matmul(
                    MatMut::new(&mut dst, rows, out),
                    Mat::new(x, rows, inp),
                    // The right operand `w^T` `[in, out]`, stored as such
                    // or read through the strides of `[out, in]`.
                    Mat::stored(w, inp, out, self.form == WeightForm::Rows),
                    Into::Add(1.0),
                );
                if self.gelu {
                    gelu_in_place_par(&mut dst);
                }
            }
            WeightForm::Panels => {
                let Some(panels) = Panels::view(w, out, inp) else {
                    candle_core::bail!("fused-linear: packed weight of the wrong size");
                };
                // GELU on each finished run of outputs, while in cache.
                let gelu: &Then = &gelu_in_place;
                panels.product(&mut dst, out, x, rows, self.gelu.then_some(gelu));
            }
        }
        Ok((CpuStorage::F32(dst), Shape::from((rows, out))))
    }
}

/// The fused linear: `x` of any rank, `[.., in]` -> `[.., out]`, with `w`
/// `[out, in]` as stored.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    linear_in(x, w, b, gelu, WeightForm::Rows)
}

/// [`linear`] with the weight in the given form (its shape `[in, out]`
/// when transposed, else `[out, in]`).
pub(crate) fn linear_in(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    gelu: bool,
    form: WeightForm,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / inp.max(1);
    let out = w.dim(usize::from(form == WeightForm::Transposed))?;
    let zeros;
    let b = match b {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(out, candle_core::DType::F32, x.device())?;
            &zeros
        }
    };
    let x2 = x.reshape((rows, inp))?.contiguous()?;
    let y = x2.apply_op3_no_bwd(&w.contiguous()?, &b.contiguous()?, &LinearOp { gelu, form })?;
    let mut out_dims = dims;
    if let Some(l) = out_dims.last_mut() {
        *l = out;
    }
    Ok(y.reshape(out_dims)?)
}
