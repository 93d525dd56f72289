//! Linear layer with the bias (and optionally GELU) fused in (inference).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::f32_slice;
use super::gelu::gelu_in_place_par;
use crate::runtime::error::Result;
use crate::runtime::step::matmul::{matmul, Into, Mat, MatMut};

/// `x [rows, in] @ w[out, in]^T + b`, optionally followed by GELU, in one
/// pass over the output (inference only: no backward).
pub(crate) struct LinearOp {
    pub gelu: bool,
    /// The weight is given transposed, `[in, out]`: both operands are then
    /// row-major, gemm's fastest layout (up to twice `x @ w^T` read through
    /// strides, for 384 outputs).
    pub transposed: bool,
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
            (i, o) if self.transposed => (o, i),
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
        // The right operand `w^T` `[in, out]`: the weight as given
        // transposed, or `[out, in]` read through its strides.
        let wt = Mat::stored(w, inp, out, !self.transposed);
        matmul(
            MatMut::new(&mut dst, rows, out),
            Mat::new(x, rows, inp),
            wt,
            Into::Add(1.0),
        );
        if self.gelu {
            gelu_in_place_par(&mut dst);
        }
        Ok((CpuStorage::F32(dst), Shape::from((rows, out))))
    }
}

/// The fused linear: `x` of any rank, `[.., in]` -> `[.., out]`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    linear_with(x, w, b, gelu, false)
}

/// [`linear`] with the weight given transposed, `wt` `[in, out]`.
pub(crate) fn linear_t(x: &Tensor, wt: &Tensor, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    linear_with(x, wt, b, gelu, true)
}

fn linear_with(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    gelu: bool,
    transposed: bool,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / inp.max(1);
    let out = w.dim(if transposed { 1 } else { 0 })?;
    let zeros;
    let b = match b {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(out, candle_core::DType::F32, x.device())?;
            &zeros
        }
    };
    let x2 = x.reshape((rows, inp))?.contiguous()?;
    let y = x2.apply_op3_no_bwd(
        &w.contiguous()?,
        &b.contiguous()?,
        &LinearOp { gelu, transposed },
    )?;
    let mut out_dims = dims;
    if let Some(l) = out_dims.last_mut() {
        *l = out;
    }
    Ok(y.reshape(out_dims)?)
}
