//! The post-norm encoder layer (BERT's) of the explicit step: its forward,
//! keeping what the backward ([`super::layer_back`]) needs.
//!
//! `x1 = norm1(x + drop(attn(x) Wo^T + bo))`,
//! `out = norm2(x1 + drop(gelu(x1 Wi^T + bi) Wout^T + bout))`.

use std::sync::Arc;

use candle_core::Var;

use super::attention::{self, Packed};
use super::bf16::{self, matmul_bf16_packed, PackedB};
use super::matmul::{matmul_in, Into, Mat, MatMut};
use super::rows::{add_assign, layer_norm, NormSaved};
use super::{read, transpose, weight_panels, Layout, Tapes};
use crate::registry::choices::Precision;
use crate::runtime::error::{Error, Result};
use crate::runtime::kernels::{gelu_slice_par, DropMask};

/// A linear layer's weight `[out, in]` and bias `[out]`.
#[derive(Debug, Clone)]
pub(crate) struct Lin {
    pub w: Var,
    pub b: Var,
}

/// A layer norm's weight, bias and epsilon.
#[derive(Debug, Clone)]
pub(crate) struct Ln {
    pub w: Var,
    pub b: Var,
    pub eps: f32,
}

/// The weights of one post-norm layer (shared with the model: clones of
/// its variables).
#[derive(Debug, Clone)]
pub(crate) struct LayerVars {
    pub q: Lin,
    pub k: Lin,
    pub v: Lin,
    pub o: Lin,
    pub norm1: Ln,
    pub inter: Lin,
    pub out: Lin,
    pub norm2: Ln,
}

impl LayerVars {
    /// The linear layers: q, k, v, the attention output, the intermediate
    /// and the output projections.
    pub(crate) fn linears(&self) -> [&Lin; 6] {
        [&self.q, &self.k, &self.v, &self.o, &self.inter, &self.out]
    }

    /// Every variable of the layer.
    pub(crate) fn vars(&self) -> Vec<Var> {
        let norms = [&self.norm1, &self.norm2];
        self.linears()
            .iter()
            .flat_map(|l| [l.w.clone(), l.b.clone()])
            .chain(norms.iter().flat_map(|n| [n.w.clone(), n.b.clone()]))
            .collect()
    }
}

/// The dropout masks of one layer's forward (`None`: no dropout there).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LayerDrops {
    pub attn: Option<DropMask>,
    pub attn_out: Option<DropMask>,
    pub ffn: Option<DropMask>,
}

/// What one layer's forward keeps for its backward.
pub(crate) struct LayerTape {
    pub(super) x: Vec<f32>,
    pub(super) qkv: Vec<f32>,
    pub(super) probs: Vec<f32>,
    pub(super) ctx: Vec<f32>,
    pub(super) norm1: NormSaved,
    pub(super) x1: Vec<f32>,
    pub(super) u: Vec<f32>,
    pub(super) g: Vec<f32>,
    pub(super) norm2: NormSaved,
    pub(super) drops: LayerDrops,
}

/// `n` rows of `b`: the start of a linear layer's output (every value
/// written, no zeroed buffer cleared only to be overwritten).
fn bias_rows(b: &[f32], n: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(n * b.len());
    for _ in 0..n {
        y.extend_from_slice(b);
    }
    y
}

/// `out += x @ w` for `x` `[n, in]` and `w` an `[in, out]` view (a weight
/// transposed once per context, or `[out, in]` read through its strides),
/// `out`'s rows `ld` values apart, in the stage's precision.
fn add_product(prec: Precision, out: &mut [f32], ld: usize, x: &[f32], w: Mat, n: usize) {
    let (i, o) = (x.len() / n.max(1), w.cols());
    matmul_in(
        prec,
        MatMut::rows(out, n, o, ld),
        Mat::new(x, n, i),
        w,
        Into::Add(1.0),
    );
}

/// `l`'s weight transposed, made once per context.
fn transposed(tapes: &Tapes, l: &Lin) -> Result<Arc<Vec<f32>>> {
    tapes.layout(&l.w, Layout::Transposed, || {
        let (o, i) = l.w.as_tensor().dims2()?;
        Ok(transpose(&read(l.w.as_tensor())?, o, i))
    })
}

/// `l`'s weight packed for the bf16 products, once per context: as the
/// right operand `[in, out]` of the forward's `x @ w^T`
/// ([`Layout::Bf16Forward`]) or `[out, in]` of the backward's `dy @ w`
/// ([`Layout::Bf16Backward`]).
pub(super) fn packed_weight(tapes: &Tapes, l: &Lin, layout: Layout) -> Result<Arc<PackedB>> {
    tapes.layout(&l.w, layout, || {
        let (o, i) = l.w.as_tensor().dims2()?;
        let w = read(l.w.as_tensor())?;
        let w = Mat::new(&w, o, i);
        let b = if layout == Layout::Bf16Backward {
            w
        } else {
            w.t()
        };
        PackedB::new(b)
            .ok_or_else(|| Error::Msg("explicit step: no bf16 products on this CPU".into()))
    })
}

/// How the forward reads a linear layer's weight `[out, in]`.
enum Weight {
    /// Through its strides.
    Strided,
    /// A transposed copy `[in, out]`.
    Transposed(Arc<Vec<f32>>),
    /// Packed for the bf16 products.
    Packed(Arc<PackedB>),
    /// In the f32 microkernel's panels, written by the optimizer
    /// ([`super::weight_panels`]).
    Panels(Arc<weight_panels::PanelBuf>),
}

/// The layer's weights as its forward reads them. One product split over
/// the cores reads `w` `[out, in]` through its strides at about half the
/// speed of a row-major `[in, out]` copy (384 outputs), so the weights are
/// transposed once per context. Where the columns of a batch run side by
/// side (`Tapes::side_by_side`), each column keeps one core busy (the
/// other takes over a run of a product's columns only when it is idle),
/// where the strided read is within ~6% of the copy: only the feed-forward output's
/// weight (1536 inputs, ~30% slower read through strides) is transposed,
/// which saves moving most of the weights each step. The bf16 products
/// read every weight packed once per context instead. Once the optimizer
/// has written the f32 panels of every linear weight of the layer
/// ([`super::weight_panels`]), the forward reads those: nothing is packed
/// or transposed in the step at all.
struct Layouts {
    /// q, k, v stacked and transposed, `[hidden, 3 * hidden]` (one
    /// product instead of three).
    qkv_t: Option<Arc<Vec<f32>>>,
    /// q, k, v, o, inter and out, in that order.
    each: [Weight; 6],
}

/// Every linear weight of the layer in the optimizer's panels, where it
/// has written them all (f32 products; asking for them where it has not).
fn panels(v: &LayerVars, tapes: &Tapes, prec: Precision) -> Result<Option<[Weight; 6]>> {
    let Some(store) = tapes.weight_panels().filter(|_| prec == Precision::Fp32) else {
        return Ok(None);
    };
    let mut found = Vec::with_capacity(6);
    for l in v.linears() {
        found.push(store.get(&l.w)?);
    }
    let all: Option<Vec<Weight>> = found.into_iter().map(|p| p.map(Weight::Panels)).collect();
    Ok(all.and_then(|w| w.try_into().ok()))
}

fn layouts(v: &LayerVars, tapes: &Tapes, prec: Precision) -> Result<Layouts> {
    if let Some(each) = panels(v, tapes, prec)? {
        return Ok(Layouts { qkv_t: None, each });
    }
    if prec == Precision::Bf16 && bf16::available() {
        let p = |l| packed_weight(tapes, l, Layout::Bf16Forward).map(Weight::Packed);
        let [q, k, vv, o, inter, out] = v.linears();
        return Ok(Layouts {
            qkv_t: None,
            each: [p(q)?, p(k)?, p(vv)?, p(o)?, p(inter)?, p(out)?],
        });
    }
    let out_t = Weight::Transposed(transposed(tapes, &v.out)?);
    if tapes.side_by_side() {
        use Weight::Strided as S;
        return Ok(Layouts {
            qkv_t: None,
            each: [S, S, S, S, S, out_t],
        });
    }
    let h = v.q.w.as_tensor().dims2()?.1;
    let qkv_t = tapes.layout(&v.q.w, Layout::PackedQkvTransposed, || {
        let mut w = Vec::with_capacity(3 * h * h);
        for l in [&v.q, &v.k, &v.v] {
            w.extend_from_slice(&read(l.w.as_tensor())?);
        }
        Ok(transpose(&w, 3 * h, h))
    })?;
    Ok(Layouts {
        qkv_t: Some(qkv_t),
        each: [
            Weight::Strided,
            Weight::Strided,
            Weight::Strided,
            Weight::Transposed(transposed(tapes, &v.o)?),
            Weight::Transposed(transposed(tapes, &v.inter)?),
            out_t,
        ],
    })
}

/// Make the layer's weight layouts in `tapes` now, before forwards that
/// run at the same time would each make them.
pub(crate) fn prepare(v: &LayerVars, tapes: &Tapes, prec: Precision) -> Result<()> {
    layouts(v, tapes, prec).map(drop)
}

/// `out += x @ w^T` for `l`'s weight `w`, read as `how` says (`out`'s
/// rows `ld` apart).
fn add_linear(
    prec: Precision,
    out: &mut [f32],
    ld: usize,
    x: &[f32],
    (l, how): (&Lin, &Weight),
    n: usize,
) -> Result<()> {
    let (o, i) = l.w.as_tensor().dims2()?;
    match how {
        Weight::Strided => {
            let w = read(l.w.as_tensor())?;
            add_product(prec, out, ld, x, Mat::new(&w, o, i).t(), n);
        }
        Weight::Transposed(t) => add_product(prec, out, ld, x, Mat::new(t, i, o), n),
        Weight::Packed(p) => {
            let dst = MatMut::rows(out, n, o, ld);
            matmul_bf16_packed(dst, Mat::new(x, n, i), p, Into::Add(1.0), true);
        }
        Weight::Panels(p) => weight_panels::view(p, &l.w)?.product(out, ld, x, n, None),
    }
    Ok(())
}

/// `x @ w^T + b` for `l` as a new `[n, out]` buffer (see [`add_linear`]).
fn apply(prec: Precision, l: &Lin, how: &Weight, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let b = read(l.b.as_tensor())?;
    let mut y = bias_rows(&b, n);
    add_linear(prec, &mut y, b.len(), x, (l, how), n)?;
    Ok(y)
}

/// Dropout over the packed rows of an activation `[tokens, width]`, with
/// the mask of the padded tensor.
pub(super) fn drop_rows(m: Option<DropMask>, x: &mut [f32], p: &Packed) {
    if let Some(m) = m {
        m.apply_rows(x, &p.tokens, x.len() / p.rows().max(1));
    }
}

/// The layer's output for `x` `[tokens, hidden]` (a packed batch), and
/// its tape; the linear layers' products in `prec`.
pub(crate) fn forward(
    v: &LayerVars,
    x: Vec<f32>,
    p: &Packed,
    drops: LayerDrops,
    tapes: &Tapes,
    prec: Precision,
) -> Result<(Vec<f32>, LayerTape)> {
    let (n, h) = (p.rows(), p.hidden);
    let w = layouts(v, tapes, prec)?;
    let mut bqkv = Vec::with_capacity(3 * h);
    for l in [&v.q, &v.k, &v.v] {
        bqkv.extend_from_slice(&read(l.b.as_tensor())?);
    }
    let mut qkv = bias_rows(&bqkv, n);
    match &w.qkv_t {
        Some(t) => add_product(prec, &mut qkv, 3 * h, &x, Mat::new(t, h, 3 * h), n),
        None => {
            // q, k and v side by side in the rows, one product each.
            for (j, l) in [&v.q, &v.k, &v.v].into_iter().enumerate() {
                add_linear(prec, &mut qkv[j * h..], 3 * h, &x, (l, &w.each[j]), n)?;
            }
        }
    }
    let mut probs = vec![0f32; p.prob_len()];
    let mut ctx = vec![0f32; n * h];
    attention::forward(&qkv, p, drops.attn, &mut probs, &mut ctx);

    let mut x1 = apply(prec, &v.o, &w.each[3], &ctx, n)?;
    drop_rows(drops.attn_out, &mut x1, p);
    add_assign(&mut x1, &x);
    let norm1 = layer_norm(
        &mut x1,
        &read(v.norm1.w.as_tensor())?,
        &read(v.norm1.b.as_tensor())?,
        v.norm1.eps,
    );

    let u = apply(prec, &v.inter, &w.each[4], &x1, n)?;
    let mut g = vec![0f32; u.len()];
    gelu_slice_par(&u, &mut g);
    let mut out = apply(prec, &v.out, &w.each[5], &g, n)?;
    drop_rows(drops.ffn, &mut out, p);
    add_assign(&mut out, &x1);
    let norm2 = layer_norm(
        &mut out,
        &read(v.norm2.w.as_tensor())?,
        &read(v.norm2.b.as_tensor())?,
        v.norm2.eps,
    );
    let tape = LayerTape {
        x,
        qkv,
        probs,
        ctx,
        norm1,
        x1,
        u,
        g,
        norm2,
        drops,
    };
    Ok((out, tape))
}
