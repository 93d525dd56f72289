//! The post-norm encoder layer (BERT's) of the explicit step: its forward,
//! keeping what the backward ([`super::layer_back`]) needs.
//!
//! `x1 = norm1(x + drop(attn(x) Wo^T + bo))`,
//! `out = norm2(x1 + drop(gelu(x1 Wi^T + bi) Wout^T + bout))`.

use std::sync::Arc;

use candle_core::Var;

use super::attention::{self, Packed};
use super::matmul::{matmul_in, Into, Mat, MatMut};
use super::rows::{add_assign, layer_norm, NormSaved};
use super::{read, transpose, Layout, Tapes};
use crate::registry::choices::Precision;
use crate::runtime::error::Result;
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
    /// Every variable of the layer.
    pub(crate) fn vars(&self) -> Vec<Var> {
        let lins = [&self.q, &self.k, &self.v, &self.o, &self.inter, &self.out];
        let norms = [&self.norm1, &self.norm2];
        lins.iter()
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

/// `x @ w + b` as a new `[n, out]` buffer (see [`add_product`]).
fn linear(prec: Precision, x: &[f32], w: Mat, b: &[f32], n: usize) -> Vec<f32> {
    let mut y = bias_rows(b, n);
    add_product(prec, &mut y, b.len(), x, w, n);
    y
}

/// `l`'s weight transposed, made once per context.
fn transposed(tapes: &Tapes, l: &Lin) -> Result<Arc<Vec<f32>>> {
    tapes.layout(&l.w, Layout::Transposed, || {
        let (o, i) = l.w.as_tensor().dims2()?;
        Ok(transpose(&read(l.w.as_tensor())?, o, i))
    })
}

/// The layer's weights as its forward reads them. One product split over
/// the cores reads `w` `[out, in]` through its strides at about half the
/// speed of a row-major `[in, out]` copy (384 outputs), so the weights are
/// transposed once per context. Where the columns of a batch run side by
/// side (`Tapes::side_by_side`), each product runs on one core, where the
/// strided read is within ~6% of the copy: only the feed-forward output's
/// weight (1536 inputs, ~30% slower read through strides) is transposed,
/// which saves moving most of the weights each step.
struct Layouts {
    /// q, k, v stacked and transposed, `[hidden, 3 * hidden]`.
    qkv_t: Option<Arc<Vec<f32>>>,
    o_t: Option<Arc<Vec<f32>>>,
    inter_t: Option<Arc<Vec<f32>>>,
    out_t: Arc<Vec<f32>>,
}

fn layouts(v: &LayerVars, tapes: &Tapes) -> Result<Layouts> {
    let out_t = transposed(tapes, &v.out)?;
    if tapes.side_by_side() {
        return Ok(Layouts {
            qkv_t: None,
            o_t: None,
            inter_t: None,
            out_t,
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
        o_t: Some(transposed(tapes, &v.o)?),
        inter_t: Some(transposed(tapes, &v.inter)?),
        out_t,
    })
}

/// Make the layer's weight layouts in `tapes` now, before forwards that
/// run at the same time would each make them.
pub(crate) fn prepare(v: &LayerVars, tapes: &Tapes) -> Result<()> {
    layouts(v, tapes).map(drop)
}

/// `linear` of `l`, through `wt` (its weight transposed) when given, else
/// through the weight's strides.
fn apply(prec: Precision, l: &Lin, wt: Option<&[f32]>, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let b = read(l.b.as_tensor())?;
    Ok(match wt {
        Some(wt) => linear(prec, x, Mat::new(wt, x.len() / n.max(1), b.len()), &b, n),
        None => {
            let w = read(l.w.as_tensor())?;
            linear(
                prec,
                x,
                Mat::new(&w, b.len(), w.len() / b.len().max(1)).t(),
                &b,
                n,
            )
        }
    })
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
    let w = layouts(v, tapes)?;
    let mut bqkv = Vec::with_capacity(3 * h);
    for l in [&v.q, &v.k, &v.v] {
        bqkv.extend_from_slice(&read(l.b.as_tensor())?);
    }
    let qkv = match &w.qkv_t {
        Some(t) => linear(prec, &x, Mat::new(t, h, 3 * h), &bqkv, n),
        None => {
            // q, k and v side by side in the rows, each through its weight's
            // strides.
            let mut y = bias_rows(&bqkv, n);
            for (j, l) in [&v.q, &v.k, &v.v].into_iter().enumerate() {
                let wj = read(l.w.as_tensor())?;
                add_product(prec, &mut y[j * h..], 3 * h, &x, Mat::new(&wj, h, h).t(), n);
            }
            y
        }
    };
    let mut probs = vec![0f32; p.prob_len()];
    let mut ctx = vec![0f32; n * h];
    attention::forward(&qkv, p, drops.attn, &mut probs, &mut ctx);

    let mut x1 = apply(prec, &v.o, w.o_t.as_deref().map(|v| v.as_slice()), &ctx, n)?;
    drop_rows(drops.attn_out, &mut x1, p);
    add_assign(&mut x1, &x);
    let norm1 = layer_norm(
        &mut x1,
        &read(v.norm1.w.as_tensor())?,
        &read(v.norm1.b.as_tensor())?,
        v.norm1.eps,
    );

    let u = apply(
        prec,
        &v.inter,
        w.inter_t.as_deref().map(|v| v.as_slice()),
        &x1,
        n,
    )?;
    let mut g = vec![0f32; u.len()];
    gelu_slice_par(&u, &mut g);
    let mut out = apply(prec, &v.out, Some(&w.out_t), &g, n)?;
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
