//! The post-norm encoder layer (BERT's) of the explicit step: forward,
//! keeping what the backward needs, and backward into a [`GradSink`].
//!
//! `x1 = norm1(x + drop(attn(x) Wo^T + bo))`,
//! `out = norm2(x1 + drop(gelu(x1 Wi^T + bi) Wout^T + bout))`.

use std::sync::Arc;

use candle_core::Var;

use super::attention::{self, Packed};
use super::matmul::{matmul, Into, Mat, MatMut};
use super::rows::{add_assign, add_column_sums, layer_norm, layer_norm_back, NormSaved};
use super::{add_dense, read, transpose, GradSink, Layout, Tapes};
use crate::runtime::error::Result;
use crate::runtime::kernels::{gelu_grad_slice, gelu_slice_par, par_blocks, DropMask, BLOCK};

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
    x: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    ctx: Vec<f32>,
    norm1: NormSaved,
    x1: Vec<f32>,
    u: Vec<f32>,
    g: Vec<f32>,
    norm2: NormSaved,
    drops: LayerDrops,
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
/// `out`'s rows `ld` values apart.
fn add_product(out: &mut [f32], ld: usize, x: &[f32], w: Mat, n: usize) {
    let (i, o) = (x.len() / n.max(1), w.cols());
    matmul(
        MatMut::rows(out, n, o, ld),
        Mat::new(x, n, i),
        w,
        Into::Add(1.0),
    );
}

/// `x @ w + b` as a new `[n, out]` buffer (see [`add_product`]).
fn linear(x: &[f32], w: Mat, b: &[f32], n: usize) -> Vec<f32> {
    let mut y = bias_rows(b, n);
    add_product(&mut y, b.len(), x, w, n);
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
fn apply(l: &Lin, wt: Option<&[f32]>, x: &[f32], n: usize) -> Result<Vec<f32>> {
    let b = read(l.b.as_tensor())?;
    Ok(match wt {
        Some(wt) => linear(x, Mat::new(wt, x.len() / n.max(1), b.len()), &b, n),
        None => {
            let w = read(l.w.as_tensor())?;
            linear(
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
fn drop_rows(m: Option<DropMask>, x: &mut [f32], p: &Packed) {
    if let Some(m) = m {
        m.apply_rows(x, &p.tokens, x.len() / p.rows().max(1));
    }
}

/// The layer's output for `x` `[tokens, hidden]` (a packed batch), and
/// its tape.
pub(crate) fn forward(
    v: &LayerVars,
    x: Vec<f32>,
    p: &Packed,
    drops: LayerDrops,
    tapes: &Tapes,
) -> Result<(Vec<f32>, LayerTape)> {
    let (n, h) = (p.rows(), p.hidden);
    let w = layouts(v, tapes)?;
    let mut bqkv = Vec::with_capacity(3 * h);
    for l in [&v.q, &v.k, &v.v] {
        bqkv.extend_from_slice(&read(l.b.as_tensor())?);
    }
    let qkv = match &w.qkv_t {
        Some(t) => linear(&x, Mat::new(t, h, 3 * h), &bqkv, n),
        None => {
            // q, k and v side by side in the rows, each through its weight's
            // strides.
            let mut y = bias_rows(&bqkv, n);
            for (j, l) in [&v.q, &v.k, &v.v].into_iter().enumerate() {
                let wj = read(l.w.as_tensor())?;
                add_product(&mut y[j * h..], 3 * h, &x, Mat::new(&wj, h, h).t(), n);
            }
            y
        }
    };
    let mut probs = vec![0f32; p.prob_len()];
    let mut ctx = vec![0f32; n * h];
    attention::forward(&qkv, p, drops.attn, &mut probs, &mut ctx);

    let mut x1 = apply(&v.o, w.o_t.as_deref().map(|v| v.as_slice()), &ctx, n)?;
    drop_rows(drops.attn_out, &mut x1, p);
    add_assign(&mut x1, &x);
    let norm1 = layer_norm(
        &mut x1,
        &read(v.norm1.w.as_tensor())?,
        &read(v.norm1.b.as_tensor())?,
        v.norm1.eps,
    );

    let u = apply(&v.inter, w.inter_t.as_deref().map(|v| v.as_slice()), &x1, n)?;
    let mut g = vec![0f32; u.len()];
    gelu_slice_par(&u, &mut g);
    let mut out = apply(&v.out, Some(&w.out_t), &g, n)?;
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

/// The gradients of a linear layer `y = x @ w^T + b` from `dy` `[n, out]`
/// and its input `x` `[n, in]`: `dw += dy^T x`, `db += colsum(dy)`, into
/// the sink's buffers.
fn linear_grads(sink: &mut dyn GradSink, l: &Lin, dy: &[f32], x: &[f32], n: usize) {
    if let Some((dw, scale)) = sink.buffer(&l.w) {
        let o = dy.len() / n.max(1);
        let i = x.len() / n.max(1);
        matmul(
            MatMut::new(dw, o, i),
            Mat::new(dy, n, o).t(),
            Mat::new(x, n, i),
            Into::Add(scale),
        );
    }
    if let Some((db, scale)) = sink.buffer(&l.b) {
        add_column_sums(dy, db, scale);
    }
}

/// `dx (op) dy @ w` for `w` `[out, in]`: the input gradient of a linear
/// layer.
fn input_grad(dx: &mut [f32], dy: &[f32], w: &[f32], n: usize, how: Into) {
    let o = dy.len() / n.max(1);
    let i = w.len() / o.max(1);
    matmul(
        MatMut::new(dx, n, i),
        Mat::new(dy, n, o),
        Mat::new(w, o, i),
        how,
    );
}

/// A layer norm's backward with its weight and bias gradients.
fn norm_back(sink: &mut dyn GradSink, l: &Ln, g: &mut [f32], saved: &NormSaved) -> Result<()> {
    let h = saved.xhat.len() / saved.rstd.len().max(1);
    let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
    layer_norm_back(
        g,
        saved,
        &read(l.w.as_tensor())?,
        Some((&mut dw, &mut db)),
        1.0,
    );
    add_dense(sink, &l.w, &dw);
    add_dense(sink, &l.b, &db);
    Ok(())
}

/// The backward: `dy` holds the gradient of the layer's output and
/// becomes that of its input; the weights' gradients go to `sink`.
pub(crate) fn backward(
    v: &LayerVars,
    t: &LayerTape,
    dy: &mut [f32],
    p: &Packed,
    sink: &mut dyn GradSink,
) -> Result<()> {
    let n = p.rows();
    let h = p.hidden;
    // out = norm2(x1 + drop(g Wout^T + bout)).
    norm_back(sink, &v.norm2, dy, &t.norm2)?;
    let mut d_out = dy.to_vec();
    drop_rows(t.drops.ffn, &mut d_out, p);
    linear_grads(sink, &v.out, &d_out, &t.g, n);
    let mut dg = vec![0f32; t.u.len()];
    input_grad(&mut dg, &d_out, &read(v.out.w.as_tensor())?, n, Into::Set);
    let mut du = vec![0f32; t.u.len()];
    par_blocks(&t.u, &dg, &mut du, BLOCK, gelu_grad_slice);
    drop(dg);
    linear_grads(sink, &v.inter, &du, &t.x1, n);
    // dy now holds d(x1): the residual's share plus the feed-forward's.
    input_grad(dy, &du, &read(v.inter.w.as_tensor())?, n, Into::Add(1.0));
    drop(du);

    // x1 = norm1(x + drop(ctx Wo^T + bo)).
    norm_back(sink, &v.norm1, dy, &t.norm1)?;
    let mut d_a = dy.to_vec();
    drop_rows(t.drops.attn_out, &mut d_a, p);
    linear_grads(sink, &v.o, &d_a, &t.ctx, n);
    let mut d_ctx = vec![0f32; n * h];
    input_grad(&mut d_ctx, &d_a, &read(v.o.w.as_tensor())?, n, Into::Set);
    drop(d_a);
    let mut dqkv = vec![0f32; n * 3 * h];
    attention::backward(&t.qkv, &t.probs, &d_ctx, p, t.drops.attn, &mut dqkv);
    drop(d_ctx);
    // The q, k and v weight gradients, each from its third of the columns
    // of dqkv, straight into its buffer.
    for (j, l) in [&v.q, &v.k, &v.v].into_iter().enumerate() {
        if let Some((dw, scale)) = sink.buffer(&l.w) {
            matmul(
                MatMut::new(dw, h, h),
                Mat::rows(&dqkv[j * h..], n, h, 3 * h).t(),
                Mat::new(&t.x, n, h),
                Into::Add(scale),
            );
        }
    }
    let mut dbqkv = vec![0f32; 3 * h];
    add_column_sums(&dqkv, &mut dbqkv, 1.0);
    for (j, l) in [&v.q, &v.k, &v.v].into_iter().enumerate() {
        add_dense(sink, &l.b, &dbqkv[j * h..(j + 1) * h]);
    }
    // d(x) = the residual's share plus the three projections'.
    for l in [&v.q, &v.k, &v.v].into_iter().enumerate() {
        let (j, l) = l;
        matmul(
            MatMut::new(dy, n, h),
            Mat::rows(&dqkv[j * h..], n, h, 3 * h),
            Mat::new(&read(l.w.as_tensor())?, h, h),
            Into::Add(1.0),
        );
    }
    Ok(())
}
