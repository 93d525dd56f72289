//! Fused CPU kernels (f32) behind [`super::ops`]: erf-GELU (with backward),
//! and, for inference only, a linear layer with fused bias/GELU and a fused
//! multi-head attention. They are vectorised through `target_feature`
//! dispatch (AVX-512, else AVX2+FMA) and multi-threaded with rayon.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::error::Result;

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let v = match s {
        CpuStorage::F32(v) => v,
        _ => candle_core::bail!("{what}: f32 only"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

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
        // d/dx [x Phi(x)] = Phi(x) + x phi(x)
        let cdf = ((arg / std::f64::consts::SQRT_2)?.erf()? + 1.0)? * 0.5;
        let pdf = (arg.sqr()? * -0.5)?.exp()? * (1.0 / (2.0 * std::f64::consts::PI).sqrt());
        let d = (cdf? + (arg * pdf?)?)?;
        Ok(Some(grad_res.mul(&d)?))
    }
}

pub(crate) fn gelu_slice_par(src: &[f32], dst: &mut [f32]) {
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
pub(crate) fn exp_f32(x: f32) -> f32 {
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
pub(crate) fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_f32(-a * a);
    y.copysign(x)
}

/// Number of threads for gemm.
fn parallelism() -> gemm::Parallelism {
    let n = rayon::current_num_threads();
    if n > 1 {
        gemm::Parallelism::Rayon(n)
    } else {
        gemm::Parallelism::None
    }
}

/// `x [rows, in] @ w[out, in]^T + b`, optionally followed by GELU, in one
/// pass over the output (inference only: no backward).
pub(crate) struct LinearOp {
    pub gelu: bool,
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
        let (out, inp2) = wl.shape().dims2()?;
        if inp != inp2 || b.len() != out {
            candle_core::bail!(
                "fused-linear: shapes {:?} {:?} {:?}",
                xl.shape(),
                wl.shape(),
                bl.shape()
            );
        }
        let mut dst = Vec::with_capacity(rows * out);
        for _ in 0..rows {
            dst.extend_from_slice(b);
        }
        // SAFETY: the pointers cover rows*inp, out*inp and rows*out elements,
        // laid out with the strides given.
        unsafe {
            gemm::gemm(
                rows,
                out,
                inp,
                dst.as_mut_ptr(),
                1,
                out as isize,
                true,
                x.as_ptr(),
                1,
                inp as isize,
                w.as_ptr(),
                inp as isize,
                1,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                parallelism(),
            );
        }
        if self.gelu {
            let src = dst.clone();
            gelu_slice_par(&src, &mut dst);
        }
        Ok((CpuStorage::F32(dst), Shape::from((rows, out))))
    }
}

/// Multi-head self-attention over q, k, v `[batch, seq, hidden]`, with an
/// additive key mask `[batch, seq]`, fused (inference only: no backward).
pub(crate) struct AttentionOp {
    pub heads: usize,
    pub scale: f32,
    /// 1.0 for tokens, 0.0 for padding, `[batch * seq]`.
    pub mask: Vec<f32>,
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let q = f32_slice(qs, ql, "fused-attention q")?;
        let k = f32_slice(ks, kl, "fused-attention k")?;
        let v = f32_slice(vs, vl, "fused-attention v")?;
        let (b, s, h) = ql.shape().dims3()?;
        if kl.shape() != ql.shape() || vl.shape() != ql.shape() || self.mask.len() != b * s {
            candle_core::bail!("fused-attention: shape mismatch");
        }
        if self.heads == 0 || h % self.heads != 0 {
            candle_core::bail!(
                "fused-attention: {h} not divisible into {} heads",
                self.heads
            );
        }
        let mut out = vec![0f32; b * s * h];
        let (heads, scale) = (self.heads, self.scale);
        out.par_chunks_mut(s * h).enumerate().for_each(|(bi, o)| {
            let r = bi * s * h..(bi + 1) * s * h;
            let keys: Vec<usize> = (0..s).filter(|&j| self.mask[bi * s + j] > 0.5).collect();
            attend(
                &q[r.clone()],
                &k[r.clone()],
                &v[r],
                &keys,
                o,
                s,
                h,
                heads,
                scale,
            );
        });
        Ok((CpuStorage::F32(out), ql.shape().clone()))
    }
}

#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: &[usize],
    o: &mut [f32],
    s: usize,
    h: usize,
    heads: usize,
    scale: f32,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { attend_avx512(q, k, v, keys, o, s, h, heads, scale) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            unsafe { attend_avx2(q, k, v, keys, o, s, h, heads, scale) };
            return;
        }
    }
    attend_generic(q, k, v, keys, o, s, h, heads, scale)
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn attend_avx512(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: &[usize],
    o: &mut [f32],
    s: usize,
    h: usize,
    heads: usize,
    scale: f32,
) {
    attend_generic(q, k, v, keys, o, s, h, heads, scale)
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: &[usize],
    o: &mut [f32],
    s: usize,
    h: usize,
    heads: usize,
    scale: f32,
) {
    attend_generic(q, k, v, keys, o, s, h, heads, scale)
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..L {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_generic(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keys: &[usize],
    o: &mut [f32],
    s: usize,
    h: usize,
    heads: usize,
    scale: f32,
) {
    let d = h / heads;
    let mut p = vec![0f32; keys.len()];
    for head in 0..heads {
        let off = head * d;
        for i in 0..s {
            let qi = &q[i * h + off..i * h + off + d];
            let mut mx = f32::NEG_INFINITY;
            for (pj, &j) in p.iter_mut().zip(keys) {
                let sc = dot(qi, &k[j * h + off..j * h + off + d]) * scale;
                *pj = sc;
                mx = mx.max(sc);
            }
            let mut sum = 0f32;
            for pj in p.iter_mut() {
                let e = exp_f32(*pj - mx);
                *pj = e;
                sum += e;
            }
            let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
            let oi = &mut o[i * h + off..i * h + off + d];
            for (pj, &j) in p.iter().zip(keys) {
                let w = pj * inv;
                let vj = &v[j * h + off..j * h + off + d];
                for (x, y) in oi.iter_mut().zip(vj) {
                    *x += w * y;
                }
            }
        }
    }
}

/// The fused linear: `x` of any rank, `[.., in]` -> `[.., out]`.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let inp = *dims.last().unwrap_or(&0);
    let rows = x.elem_count() / inp.max(1);
    let out = w.dim(0)?;
    let zeros;
    let b = match b {
        Some(b) => b,
        None => {
            zeros = Tensor::zeros(out, candle_core::DType::F32, x.device())?;
            &zeros
        }
    };
    let x2 = x.reshape((rows, inp))?.contiguous()?;
    let y = x2.apply_op3_no_bwd(&w.contiguous()?, &b.contiguous()?, &LinearOp { gelu })?;
    let mut out_dims = dims;
    if let Some(l) = out_dims.last_mut() {
        *l = out;
    }
    Ok(y.reshape(out_dims)?)
}

/// The fused attention on `[batch, seq, hidden]` q, k, v.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let (_b, _s, h) = q.dims3()?;
    let scale = 1.0 / ((h / heads.max(1)) as f32).sqrt();
    let mask = mask
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let op = AttentionOp { heads, scale, mask };
    Ok(q.contiguous()?
        .apply_op3_no_bwd(&k.contiguous()?, &v.contiguous()?, &op)?)
}

/// `layer_norm(x + r) * w + b` over the last dimension, fused (inference
/// only: no backward).
pub(crate) struct AddLayerNormOp {
    pub eps: f32,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

impl CustomOp2 for AddLayerNormOp {
    fn name(&self) -> &'static str {
        "fused-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(xs, xl, "fused-add-layer-norm x")?;
        let r = f32_slice(rs, rl, "fused-add-layer-norm r")?;
        let h = self.w.len();
        if x.len() != r.len() || h == 0 || x.len() % h != 0 || self.b.len() != h {
            candle_core::bail!("fused-add-layer-norm: shape mismatch");
        }
        let mut out = vec![0f32; x.len()];
        const ROWS: usize = 8;
        out.par_chunks_mut(ROWS * h)
            .zip(x.par_chunks(ROWS * h).zip(r.par_chunks(ROWS * h)))
            .for_each(|(o, (x, r))| add_ln(x, r, o, &self.w, &self.b, self.eps));
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

fn add_ln(x: &[f32], r: &[f32], o: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { add_ln_avx512(x, r, o, w, b, eps) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above.
            unsafe { add_ln_avx2(x, r, o, w, b, eps) };
            return;
        }
    }
    add_ln_generic(x, r, o, w, b, eps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn add_ln_avx512(x: &[f32], r: &[f32], o: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    add_ln_generic(x, r, o, w, b, eps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_ln_avx2(x: &[f32], r: &[f32], o: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    add_ln_generic(x, r, o, w, b, eps)
}

#[inline(always)]
fn lane_sum(v: &[f32]) -> f32 {
    const L: usize = 16;
    let mut acc = [0f32; L];
    let c = v.chunks_exact(L);
    let rem: f32 = c.remainder().iter().sum();
    for x in c {
        for l in 0..L {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + rem
}

#[inline(always)]
fn add_ln_generic(x: &[f32], r: &[f32], o: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let h = w.len();
    for ((orow, xrow), rrow) in o
        .chunks_exact_mut(h)
        .zip(x.chunks_exact(h))
        .zip(r.chunks_exact(h))
    {
        for ((y, a), c) in orow.iter_mut().zip(xrow).zip(rrow) {
            *y = a + c;
        }
        let mean = lane_sum(orow) / h as f32;
        for y in orow.iter_mut() {
            *y -= mean;
        }
        let mut sq = [0f32; 16];
        let c = orow.chunks_exact(16);
        let mut var: f32 = c.remainder().iter().map(|v| v * v).sum();
        for ch in c {
            for l in 0..16 {
                sq[l] += ch[l] * ch[l];
            }
        }
        var = (var + sq.iter().sum::<f32>()) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((y, g), bb) in orow.iter_mut().zip(w).zip(b) {
            *y = *y * inv * g + bb;
        }
    }
}

/// The fused residual add + layer norm.
pub(crate) fn add_layer_norm(
    x: &Tensor,
    r: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let op = AddLayerNormOp {
        eps: eps as f32,
        w: w.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
        b: b.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?,
    };
    Ok(x.contiguous()?.apply_op2_no_bwd(&r.contiguous()?, &op)?)
}
