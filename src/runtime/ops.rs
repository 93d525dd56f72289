//! The numeric building blocks every module calls.
//!
//! Modules never call candle's kernels directly for GELU, layer norm, softmax
//! or dropout: they call these functions with the forward context, and this
//! file picks the implementation. With gradients off (encoding, evaluation)
//! it uses fused kernels that have no backward; with gradients on (training)
//! it uses kernels that have one, so every weight gets its gradient. A faster
//! fused kernel can be dropped in here without touching any module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, TensorId, D};
use rand::{rngs::StdRng, Rng, SeedableRng};

use super::error::Result;
use super::kernels::{self, WeightForm};
use super::step::Tapes;
use crate::registry::choices::Precision;

/// How a forward pass runs.
#[derive(Debug)]
pub struct Ctx {
    /// Training mode: dropout is active.
    pub train: bool,
    /// Gradients are needed: use only ops that have a backward.
    pub grad: bool,
    rng: Mutex<StdRng>,
    /// Where encoders that have an explicit training step record it
    /// (`None`: they take the autograd path); see [`crate::runtime::step`].
    /// Shared by the contexts of [`Ctx::columns`].
    tapes: Option<Arc<Tapes>>,
    /// Where this context's tapes go in the backward's order (its column).
    order: usize,
    /// Weights in the layouts the fused inference kernels prefer, made once
    /// per context (`None`: made on every call, i.e. not at all).
    layouts: Option<Mutex<HashMap<(TensorId, WeightLayout), Tensor>>>,
    /// The number format of the linear layers' products (a stage's
    /// `precision`; f32 outside training).
    precision: Precision,
}

/// A weight layout of the inference cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WeightLayout {
    /// For the product: packed for `gemm` ([`kernels::Panels`]) where
    /// its AVX-512 kernels run, else transposed (`[in, out]`).
    Product,
    /// q, k and v weights stacked (`[3 * hidden, hidden]`), in the
    /// product's layout.
    QkvProduct,
    /// Their biases side by side.
    QkvBias,
}

impl Ctx {
    /// Inference: no dropout, fused kernels, no backward.
    pub fn eval() -> Self {
        Ctx {
            train: false,
            grad: false,
            rng: Mutex::new(StdRng::seed_from_u64(0)),
            tapes: None,
            order: 0,
            layouts: None,
            precision: Precision::Fp32,
        }
    }

    /// [`Ctx::eval`] that keeps each weight, once, in the layout the fused
    /// kernels run fastest on, for as long as the context lives: for a
    /// whole `encode` call, during which the weights cannot change.
    pub fn eval_cached() -> Self {
        Ctx {
            layouts: Some(Mutex::new(HashMap::new())),
            ..Ctx::eval()
        }
    }

    /// The cached `layout` of `key`, made by `make` on first use; `None`
    /// when this context keeps no cache.
    fn layout(
        &self,
        key: &Tensor,
        layout: WeightLayout,
        make: impl FnOnce() -> Result<Tensor>,
    ) -> Result<Option<Tensor>> {
        let Some(cache) = &self.layouts else {
            return Ok(None);
        };
        let k = (key.id(), layout);
        let mut guard = match cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(t) = guard.get(&k) {
            return Ok(Some(t.clone()));
        }
        let t = make()?;
        guard.insert(k, t.clone());
        Ok(Some(t))
    }

    /// `w` `[out, in]` in the product's layout ([`product_form`]), when
    /// cached.
    fn product_layout(&self, w: &Tensor) -> Result<Option<Tensor>> {
        self.layout(w, WeightLayout::Product, || in_product_form(w))
    }

    /// Training: dropout active (its masks drawn from `seed`), gradients on.
    pub fn train(seed: u64) -> Self {
        Ctx {
            train: true,
            grad: true,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            tapes: None,
            order: 0,
            layouts: None,
            precision: Precision::Fp32,
        }
    }

    /// [`Ctx::train`] in which encoders that have an explicit training step
    /// run it and record their tapes (the same dropout masks, the same
    /// gradients): the caller must run [`Ctx::tapes`]' backward after the
    /// loss's, or the encoder gets no gradient. With `STPIPE_AUTOGRAD=1`
    /// this is [`Ctx::train`].
    pub fn train_explicit(seed: u64) -> Self {
        Ctx {
            tapes: crate::runtime::step::enabled().then(|| Arc::new(Tapes::default())),
            ..Ctx::train(seed)
        }
    }

    /// This context with the linear layers' products in `precision` (a
    /// stage's setting; see [`Precision`]).
    pub fn with_precision(self, precision: Precision) -> Self {
        Ctx { precision, ..self }
    }

    /// This context with the explicit step's forwards reading the linear
    /// weights from `panels`, which the optimizer writes as it updates them
    /// ([`WeightPanels`](crate::runtime::step::WeightPanels)); `None`, or a
    /// context that records no tapes, leaves it as it is.
    pub fn with_weight_panels(
        self,
        panels: Option<Arc<crate::runtime::step::WeightPanels>>,
    ) -> Self {
        if let (Some(t), Some(p)) = (&self.tapes, panels) {
            t.set_weight_panels(p);
        }
        self
    }

    /// The number format of the linear layers' products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The tapes of explicit steps, when this context records them.
    pub fn tapes(&self) -> Option<&Tapes> {
        self.tapes.as_deref()
    }

    /// Where this context's tapes go in the backward's order.
    pub(crate) fn order(&self) -> usize {
        self.order
    }

    /// One context per column of a batch, for forward passes that run at
    /// the same time: each draws its dropout masks from a generator of its
    /// own (seeded from this context's, in column order), so the masks do
    /// not depend on which pass runs first, and they record their tapes
    /// into this context's, backward in column order.
    pub fn columns(&self, n: usize) -> Vec<Ctx> {
        (0..n)
            .map(|order| Ctx {
                train: self.train,
                grad: self.grad,
                rng: Mutex::new(StdRng::seed_from_u64(next_seed(self))),
                tapes: self.tapes.clone(),
                order,
                layouts: None,
                precision: self.precision,
            })
            .collect()
    }

    /// Dropout active with the masks of `train(seed)`, no backward: the
    /// first, activation-free pass of GradCache, whose second pass with
    /// `train(seed)` must see the same masks.
    pub fn train_forward(seed: u64) -> Self {
        Ctx {
            grad: false,
            ..Ctx::train(seed)
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

/// The form the inference cache keeps a linear layer's weight in: packed
/// once into panels where a panel kernel serves (AVX-512 or AVX2 with
/// FMA: `kernels/panels.rs`), else transposed.
fn product_form() -> WeightForm {
    if kernels::panels_available() {
        WeightForm::Panels
    } else {
        WeightForm::Transposed
    }
}

/// `w` `[out, in]` (f32) in [`product_form`].
fn in_product_form(w: &Tensor) -> Result<Tensor> {
    if product_form() == WeightForm::Transposed {
        return Ok(w.t()?.contiguous()?);
    }
    let (out, inp) = w.dims2()?;
    let values = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
    let data = kernels::Panels::pack(&values, out, inp);
    Ok(Tensor::from_vec(data, (out, inp), w.device())?)
}

fn fused_ok(x: &Tensor, ctx: &Ctx) -> bool {
    !ctx.grad && x.dtype() == DType::F32 && x.device().is_cpu()
}

/// Whether the fused kernels with a backward can serve `x` (training).
fn fused_ok_grad(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && x.device().is_cpu()
}

/// `x @ w^T + b` over the last dimension, for `x` of any rank.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
    if ctx.precision == Precision::Bf16 {
        return linear_composed(x, w, b, Precision::Bf16);
    }
    if fused_ok(x, ctx) && w.dtype() == DType::F32 {
        if let Some(p) = ctx.product_layout(w)? {
            return kernels::linear_in(x, &p, b, false, product_form());
        }
        return kernels::linear(x, w, b, false);
    }
    linear_composed(x, w, b, Precision::Fp32)
}

/// `gelu(x @ w^T + b)`, fused into one kernel in inference.
pub fn linear_gelu(x: &Tensor, w: &Tensor, b: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
    if ctx.precision == Precision::Bf16 {
        return gelu(&linear_composed(x, w, b, Precision::Bf16)?, ctx);
    }
    if fused_ok(x, ctx) && w.dtype() == DType::F32 {
        if let Some(p) = ctx.product_layout(w)? {
            return kernels::linear_in(x, &p, b, true, product_form());
        }
        return kernels::linear(x, w, b, true);
    }
    gelu(&linear_composed(x, w, b, Precision::Fp32)?, ctx)
}

/// A linear projection's weight `[out, in]` and bias `[out]`.
pub type Proj<'a> = (&'a Tensor, &'a Tensor);

/// How attention scores are shaped beyond the key mask.
#[derive(Debug, Default, Clone, Copy)]
pub struct AttnShape<'a> {
    /// Added to the scores of every batch row, `[heads, seq, seq]`
    /// (MPNet's relative position bias).
    pub bias: Option<&'a Tensor>,
    /// Keys more than this many positions from the query are masked
    /// (ModernBERT's local layers).
    pub window: Option<usize>,
}

/// Multi-head self-attention of `x` `[batch, seq, hidden]` with query, key
/// and value projections, key mask `[batch, seq]` (1 token, 0 padding);
/// returns `[batch, seq, hidden]` before the output projection. Attention
/// dropout applies in training mode. In inference the three projections
/// run as one matmul and the attention as one fused kernel.
#[allow(clippy::too_many_arguments)]
pub fn self_attention(
    x: &Tensor,
    q: Proj,
    k: Proj,
    v: Proj,
    mask: &Tensor,
    heads: usize,
    dropout_p: f64,
    shape: AttnShape,
    ctx: &Ctx,
) -> Result<Tensor> {
    if fused_ok(x, ctx) && !ctx.train {
        let cat_w = || -> Result<Tensor> { Ok(Tensor::cat(&[q.0, k.0, v.0], 0)?) };
        let cat_b = || -> Result<Tensor> { Ok(Tensor::cat(&[q.1, k.1, v.1], 0)?) };
        let qkv = match ctx.layout(q.0, WeightLayout::QkvProduct, || in_product_form(&cat_w()?))? {
            Some(p) => {
                let b = ctx.layout(q.1, WeightLayout::QkvBias, cat_b)?;
                kernels::linear_in(x, &p, b.as_ref(), false, product_form())?
            }
            None => kernels::linear(x, &cat_w()?, Some(&cat_b()?), false)?,
        };
        return attention_packed(&qkv, mask, heads, dropout_p, shape, ctx);
    }
    let q = linear(x, q.0, Some(q.1), ctx)?;
    let k = linear(x, k.0, Some(k.1), ctx)?;
    let v = linear(x, v.0, Some(v.1), ctx)?;
    attention(&q, &k, &v, mask, heads, dropout_p, shape, ctx)
}

/// Attention over packed projections `qkv` `[batch, seq, 3 * hidden]`
/// (q, k, v side by side): one fused kernel in inference.
pub fn attention_packed(
    qkv: &Tensor,
    mask: &Tensor,
    heads: usize,
    dropout_p: f64,
    shape: AttnShape,
    ctx: &Ctx,
) -> Result<Tensor> {
    if fused_ok(qkv, ctx) && !ctx.train {
        return kernels::attention_packed(qkv, mask, heads, shape.bias, shape.window);
    }
    let h = qkv.dim(2)? / 3;
    let part = |i: usize| qkv.narrow(2, i * h, h);
    attention(
        &part(0)?,
        &part(1)?,
        &part(2)?,
        mask,
        heads,
        dropout_p,
        shape,
        ctx,
    )
}

/// Attention of projected `q`, `k`, `v` `[batch, seq, hidden]`: the fused
/// kernel in inference, else candle ops with a backward (the training
/// path, and the reference the fused kernel is tested against).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
    dropout_p: f64,
    shape: AttnShape,
    ctx: &Ctx,
) -> Result<Tensor> {
    if fused_ok(q, ctx) && !ctx.train {
        let qkv = Tensor::cat(&[q, k, v], 2)?;
        return kernels::attention_packed(&qkv, mask, heads, shape.bias, shape.window);
    }
    let (b, s, h) = q.dims3()?;
    let d = h / heads;
    let split = |t: &Tensor| -> Result<Tensor> {
        Ok(t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous()?)
    };
    let q = split(&(q * (1.0 / (d as f64).sqrt()))?)?;
    let k = split(k)?;
    let v = split(v)?;
    // Additive mask: 0 for tokens, -1e9 for padding, [b, 1, 1, s].
    let key_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?;
    let mut scores = q.matmul(&k.t()?)?.broadcast_add(&key_bias)?;
    if let Some(pb) = shape.bias {
        scores = scores.broadcast_add(&pb.unsqueeze(0)?)?;
    }
    if let Some(w) = shape.window {
        let far: Vec<f32> = (0..s * s)
            .map(|ij| {
                if (ij / s).abs_diff(ij % s) > w {
                    -1e9
                } else {
                    0.0
                }
            })
            .collect();
        let far = Tensor::from_vec(far, (1, 1, s, s), q.device())?;
        scores = scores.broadcast_add(&far)?;
    }
    let probs = softmax(&scores, ctx)?;
    let probs = dropout(&probs, dropout_p, ctx)?;
    Ok(probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, s, h))?)
}

/// `x @ w^T + b` as candle ops with a backward. In [`Precision::Bf16`]
/// `x` and `w` are rounded to bf16 and the product's gradient is rounded
/// in the backward (the meaning of `precision: bf16` on the autograd
/// path; see [`kernels::round_bf16`]); the bias's gradient is not.
fn linear_composed(x: &Tensor, w: &Tensor, b: Option<&Tensor>, prec: Precision) -> Result<Tensor> {
    use kernels::round_bf16::{grad_rounded, rounded};
    let dims = x.dims().to_vec();
    let (in_dim, rows) = match dims.split_last() {
        Some((last, rest)) => (*last, rest.iter().product::<usize>()),
        None => return Err(candle_core::Error::Msg("linear on a scalar".into()).into()),
    };
    let out_dim = w.dim(0)?;
    let x2 = x.reshape((rows, in_dim))?;
    let mut y = match prec {
        Precision::Fp32 => x2.matmul(&w.t()?)?,
        Precision::Bf16 => grad_rounded(&rounded(&x2)?.matmul(&rounded(w)?.t()?)?)?,
    };
    if let Some(b) = b {
        y = if fused_ok_grad(&y) && b.dtype() == DType::F32 {
            y.contiguous()?.apply_op2(b, kernels::AddBias)?
        } else {
            y.broadcast_add(b)?
        };
    }
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = out_dim;
    }
    Ok(y.reshape(out_dims)?)
}

/// Layer normalisation over the last dimension.
///
/// Candle's kernel serves inference only: a training pass without
/// gradients (GradCache's first) takes the training kernel, so that it
/// gives the bits its second pass recomputes (a bf16 stage would round
/// the two apart otherwise).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64, ctx: &Ctx) -> Result<Tensor> {
    if !ctx.grad && !ctx.train && x.dtype() == DType::F32 {
        let x = x.contiguous()?;
        return Ok(candle_nn::ops::layer_norm(&x, w, b, eps as f32)?);
    }
    if fused_ok_grad(x) && w.dtype() == DType::F32 && b.dtype() == DType::F32 {
        let x = x.contiguous()?;
        return Ok(x.apply_op3(w, b, kernels::LayerNorm { eps: eps as f32 })?);
    }
    layer_norm_composed(x, w, b, eps)
}

/// Layer norm from candle ops (any dtype or device; the reference the fused
/// kernel is tested against).
fn layer_norm_composed(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(xn.broadcast_mul(w)?.broadcast_add(b)?)
}

/// `layer_norm(x + residual)`, fused into one pass in inference (not in a
/// training pass without gradients: see [`layer_norm`]).
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    ctx: &Ctx,
) -> Result<Tensor> {
    if fused_ok(x, ctx) && !ctx.train && residual.dtype() == DType::F32 {
        return kernels::add_layer_norm(x, residual, w, b, eps);
    }
    layer_norm(&(x + residual)?, w, b, eps, ctx)
}

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

/// The next dropout seed of `ctx`'s generator.
fn next_seed(ctx: &Ctx) -> u64 {
    let mut rng = match ctx.rng.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    rng.random::<u64>()
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
    use super::kernels::{erf_f32, exp_f32};
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

    /// Values and input gradients (for a fixed random output weighting) of
    /// `f` at `x`, and the gradients of `extra`.
    fn value_and_grads(
        f: impl Fn(&Tensor) -> Tensor,
        x: &candle_core::Var,
        extra: &[&candle_core::Var],
    ) -> (Vec<f32>, Vec<Vec<f32>>) {
        let y = f(x.as_tensor());
        let n = y.elem_count();
        let weights: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 97) as f32 / 48.5) - 1.0)
            .collect();
        let wt = Tensor::from_vec(weights, y.shape(), y.device()).unwrap();
        let grads = (&y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut gs = vec![flat(grads.get(x.as_tensor()).unwrap())];
        for v in extra {
            gs.push(flat(grads.get(v.as_tensor()).unwrap()));
        }
        (flat(&y), gs)
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    fn random_var(shape: &[usize], seed: u64, scale: f32) -> candle_core::Var {
        let mut rng = crate::runtime::train::rng::Rng::new(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .map(|u| u * scale)
            .collect();
        candle_core::Var::from_tensor(
            &Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap(),
        )
        .unwrap()
    }

    /// The encoding context's weight layouts (panels with AVX-512, else
    /// transposed; made on first use, then reused) give the results of
    /// the weights as stored, for the linear layers (with and without
    /// GELU) and the stacked q/k/v projections.
    #[test]
    fn cached_weight_layouts_give_the_stored_weights_results() {
        let (inp, out, heads) = (72, 136, 4);
        let x = random_var(&[3, 7, inp], 11, 1.0);
        let w = random_var(&[out, inp], 12, 0.3);
        let b = random_var(&[out], 13, 0.5);
        let p = |s| random_var(&[inp, inp], s, 0.3);
        let (q, k, v) = (p(14), p(15), p(16));
        let qb = random_var(&[inp], 17, 0.1);
        // The last two tokens of each text are padding.
        let keep: Vec<f32> = (0..21).map(|i| f32::from(i % 7 < 5)).collect();
        let mask = Tensor::from_vec(keep, (3, 7), &candle_core::Device::Cpu).unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (plain, cached) = (Ctx::eval(), Ctx::eval_cached());
        let x = x.as_tensor();
        let (w, b) = (w.as_tensor(), b.as_tensor());
        let qb = qb.as_tensor();
        let attend = |ctx: &Ctx| {
            let (q, k, v) = (
                (q.as_tensor(), qb),
                (k.as_tensor(), qb),
                (v.as_tensor(), qb),
            );
            let shape = AttnShape::default();
            self_attention(x, q, k, v, &mask, heads, 0.0, shape, ctx).unwrap()
        };
        for round in 0..2 {
            let pairs = [
                (
                    linear(x, w, Some(b), &plain),
                    linear(x, w, Some(b), &cached),
                    "linear",
                ),
                (
                    linear_gelu(x, w, Some(b), &plain),
                    linear_gelu(x, w, Some(b), &cached),
                    "linear_gelu",
                ),
                (Ok(attend(&plain)), Ok(attend(&cached)), "attention"),
            ];
            for (want, got, what) in pairs {
                let (want, got) = (flat(want.unwrap()), flat(got.unwrap()));
                assert_close(&got, &want, 1e-5, &format!("{what}, round {round}"));
            }
        }
    }

    #[test]
    fn fused_layer_norm_matches_the_composed_one_with_gradients() {
        let x = random_var(&[3, 5, 48], 1, 3.0);
        let w = random_var(&[48], 2, 1.5);
        let b = random_var(&[48], 3, 0.5);
        let ctx = Ctx::train(1);
        let (y1, g1) = value_and_grads(
            |x| layer_norm(x, w.as_tensor(), b.as_tensor(), 1e-12, &ctx).unwrap(),
            &x,
            &[&w, &b],
        );
        let (y2, g2) = value_and_grads(
            |x| layer_norm_composed(x, w.as_tensor(), b.as_tensor(), 1e-12).unwrap(),
            &x,
            &[&w, &b],
        );
        assert_close(&y1, &y2, 1e-5, "value");
        for (i, what) in ["dx", "dw", "db"].iter().enumerate() {
            assert_close(&g1[i], &g2[i], 1e-4, what);
        }
        // A strided input (a transpose) is made contiguous first.
        let xt = random_var(&[48, 4], 4, 1.0);
        let (y3, _) = value_and_grads(
            |x| layer_norm(&x.t().unwrap(), w.as_tensor(), b.as_tensor(), 1e-5, &ctx).unwrap(),
            &xt,
            &[],
        );
        let (y4, _) = value_and_grads(
            |x| layer_norm_composed(&x.t().unwrap(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap(),
            &xt,
            &[],
        );
        assert_close(&y3, &y4, 1e-5, "strided value");
    }

    #[test]
    fn fused_attention_matches_the_composed_one_with_holes_bias_and_window() {
        let (b, s) = (3, 21);
        // Row 0 all tokens, row 1 right padding, row 2 holes in the middle.
        let mut mask = vec![1f32; b * s];
        mask[s + 13..2 * s].fill(0.0);
        for j in [2, 5, 6, 11, 17] {
            mask[2 * s + j] = 0.0;
        }
        let mask_t = Tensor::from_vec(mask.clone(), (b, s), &candle_core::Device::Cpu).unwrap();
        // Head widths below, at and off a whole vector.
        for (h, heads) in [(48, 3), (40, 2), (64, 2)] {
            let part = |seed| random_var(&[b, s, h], seed, 1.5).as_tensor().clone();
            let (q, k, v) = (part(11), part(12), part(13));
            let bias = random_var(&[heads, s, s], 14, 2.0).as_tensor().clone();
            for (bias, window) in [(None, None), (Some(&bias), None), (Some(&bias), Some(4))] {
                let shape = AttnShape { bias, window };
                let run = |ctx: &Ctx| {
                    attention(&q, &k, &v, &mask_t, heads, 0.0, shape, ctx)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                };
                let (fused, composed) = (run(&Ctx::eval()), run(&Ctx::train(1)));
                // Queries at padding differ where every key is out of
                // their window (the composed path then spreads over the
                // masked keys); the real tokens' rows must agree.
                for (row, _) in mask.iter().enumerate().filter(|(_, &m)| m > 0.5) {
                    let at = row * h..(row + 1) * h;
                    let what = format!(
                        "h {h}, heads {heads}, bias {}, window {window:?}, token {row}",
                        bias.is_some()
                    );
                    assert_close(&fused[at.clone()], &composed[at], 1e-5, &what);
                }
            }
        }
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
    fn fused_bias_add_matches_broadcast_add_with_gradients() {
        let x = random_var(&[3, 700, 24], 7, 2.0);
        let w = random_var(&[16, 24], 8, 0.5);
        let b = random_var(&[16], 9, 1.0);
        let ctx = Ctx::train(1);
        let (y1, g1) = value_and_grads(
            |x| linear(x, w.as_tensor(), Some(b.as_tensor()), &ctx).unwrap(),
            &x,
            &[&w, &b],
        );
        let (y2, g2) = value_and_grads(
            |x| {
                x.broadcast_matmul(&w.as_tensor().t().unwrap())
                    .unwrap()
                    .broadcast_add(b.as_tensor())
                    .unwrap()
            },
            &x,
            &[&w, &b],
        );
        assert_close(&y1, &y2, 1e-5, "value");
        for (i, what) in ["dx", "dw", "db"].iter().enumerate() {
            assert_close(&g1[i], &g2[i], 1e-4, what);
        }
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

    /// `precision: bf16` on the autograd path: the linear layer multiplies
    /// its input and weight rounded to bf16, and its backward multiplies
    /// the output's gradient rounded to bf16 (the bias gradient sums it
    /// unrounded), the explicit step's meaning; inference contexts stay f32.
    #[test]
    fn bf16_linear_rounds_operands_and_the_output_gradient() {
        use crate::runtime::step::bf16::round;
        let (rows, i, o) = (2 * 7, 24, 16);
        let x = random_var(&[2, 7, i], 3, 2.0);
        let w = random_var(&[o, i], 4, 0.5);
        let b = random_var(&[o], 5, 1.0);
        let ctx = Ctx::train(1).with_precision(Precision::Bf16);
        let (y, g) = value_and_grads(
            |x| linear(x, w.as_tensor(), Some(b.as_tensor()), &ctx).unwrap(),
            &x,
            &[&w, &b],
        );
        // The output gradient value_and_grads uses, and the operands.
        let dy: Vec<f32> = (0..rows * o)
            .map(|k| ((k * 7919 % 97) as f32 / 48.5) - 1.0)
            .collect();
        let flat = |v: &candle_core::Var| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let (xs, ws, bs) = (flat(&x), flat(&w), flat(&b));
        let dot = |n: usize, f: &dyn Fn(usize) -> (f32, f32)| -> f32 {
            (0..n)
                .map(f)
                .map(|(p, q)| round(p) as f64 * round(q) as f64)
                .sum::<f64>() as f32
        };
        let mut want = (vec![], vec![], vec![], vec![]);
        for r in 0..rows {
            for c in 0..o {
                want.0
                    .push(dot(i, &|k| (xs[r * i + k], ws[c * i + k])) + bs[c]);
            }
            for c in 0..i {
                want.1.push(dot(o, &|k| (dy[r * o + k], ws[k * i + c])));
            }
        }
        for c in 0..o {
            for k in 0..i {
                want.2.push(dot(rows, &|r| (dy[r * o + c], xs[r * i + k])));
            }
            want.3.push((0..rows).map(|r| dy[r * o + c]).sum::<f32>());
        }
        let close = |got: &[f32], want: &[f32], what: &str| {
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{what}: {g} vs {w}"
                );
            }
        };
        close(&y, &want.0, "y");
        close(&g[0], &want.1, "dx");
        close(&g[1], &want.2, "dw");
        close(&g[2], &want.3, "db");
        // Not the f32 layer; and linear_gelu is GELU of the bf16 layer.
        let f32_y = linear(
            x.as_tensor(),
            w.as_tensor(),
            Some(b.as_tensor()),
            &Ctx::train(1),
        )
        .unwrap();
        let f32_y = f32_y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(f32_y.iter().zip(&y).any(|(a, b)| (a - b).abs() > 1e-3));
        let yg = linear_gelu(x.as_tensor(), w.as_tensor(), Some(b.as_tensor()), &ctx).unwrap();
        let yt = Tensor::from_vec(y.clone(), (2, 7, o), &candle_core::Device::Cpu).unwrap();
        assert_close(
            &yg.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &yt.gelu_erf()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            1e-5,
            "gelu",
        );
        // Inference ignores a training precision it was never given.
        assert_eq!(Ctx::eval().precision(), Precision::Fp32);
    }
}
