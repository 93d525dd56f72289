//! The backward of the post-norm layer ([`super::layer`]), in two parts,
//! so that the columns of a batch (the sentences of each side of a pair,
//! each its own packed forward) share their weight gradients' products:
//!
//! - [`inputs`] takes one column from the gradient of the layer's output
//!   to that of its input: the products with the weights, attention, the
//!   layer norms, GELU and dropout. It keeps what the weight gradients
//!   need ([`Deltas`]).
//! - [`weight_jobs`] then makes one job per weight that adds every
//!   column's share of its gradient straight into the optimizer's buffer,
//!   column after column.
//!
//! Why two parts: the weight products are half of a backward's work and
//! need nothing of the layers below, so they run as separate jobs on
//! whichever core is free while the columns go on down the layers. Before,
//! each column ran its whole backward on one core; the second column then
//! needed a zeroed copy of every weight gradient (45 MB for MiniLM), added
//! to the first afterwards, and the column with fewer tokens left its core
//! idle at the end.

use std::sync::Arc;

use super::attention::{self, Packed};
use super::bf16::{self, matmul_bf16_packed, PackedB};
use super::layer::{drop_rows, packed_weight, LayerTape, LayerVars, Lin, Ln};
use super::matmul::{matmul_here_in, matmul_in, Into, Mat, MatMut, ROWS};
use super::rows::{add_column_sums, layer_norm_back, NormSaved};
use super::{add_into, read, Buf, Layout, Tapes};
use crate::registry::choices::Precision;
use crate::runtime::error::Result;
use crate::runtime::kernels::{gelu_grad_slice, par_blocks, BLOCK};

/// Variables of a layer, in the order of [`LayerVars::vars`] (and of the
/// buffers [`weight_jobs`] takes): the weight and bias of q, k, v, the
/// attention output, the intermediate and the output projections, then
/// those of the two layer norms.
pub(crate) const VARS: usize = 16;

/// What one column's backward through a layer keeps for the layer's
/// weight gradients.
pub(crate) struct Deltas {
    /// The column's tokens (rows).
    n: usize,
    /// `[n, hidden]`: the gradient of the feed-forward's output projection
    /// (after its dropout).
    d_out: Vec<f32>,
    /// `[n, intermediate]`: of the intermediate projection (before GELU).
    du: Vec<f32>,
    /// `[n, hidden]`: of the attention's output projection (after its
    /// dropout).
    d_a: Vec<f32>,
    /// `[n, 3 * hidden]`: of q, k and v, side by side.
    dqkv: Vec<f32>,
    /// The layer norms' weight gradient then bias gradient, `[2 * hidden]`.
    norm1: Vec<f32>,
    norm2: Vec<f32>,
}

/// `dx (op) dy @ w` for `l`'s weight `w` `[out, in]`: the input gradient
/// of a linear layer, in the stage's precision (through `packed`, the
/// weight packed for the bf16 products, when given).
fn input_grad(
    prec: Precision,
    dx: MatMut,
    dy: Mat,
    (l, packed): (&Lin, Option<&Arc<PackedB>>),
    how: Into,
) -> Result<()> {
    match packed {
        Some(p) => matmul_bf16_packed(dx, dy, p, how, true),
        None => {
            let (o, i) = l.w.as_tensor().dims2()?;
            matmul_in(prec, dx, dy, Mat::new(&read(l.w.as_tensor())?, o, i), how);
        }
    }
    Ok(())
}

/// The layer's weights (q, k, v, o, inter, out) packed as the bf16 right
/// operands of the backward's `dy @ w`, once per context for every column;
/// `None` in f32 or where the CPU lacks AVX512-BF16.
pub(crate) fn packed_weights(
    v: &LayerVars,
    tapes: &Tapes,
    prec: Precision,
) -> Result<Option<[Arc<PackedB>; 6]>> {
    if prec != Precision::Bf16 || !bf16::available() {
        return Ok(None);
    }
    let p = |l| packed_weight(tapes, l, Layout::Bf16Backward);
    let [q, k, vv, o, inter, out] = v.linears();
    Ok(Some([p(q)?, p(k)?, p(vv)?, p(o)?, p(inter)?, p(out)?]))
}

/// A layer norm's backward: `g` becomes its input's gradient; returns
/// its weight gradient then its bias gradient.
pub(super) fn norm_back(l: &Ln, g: &mut [f32], saved: &NormSaved) -> Result<Vec<f32>> {
    let h = saved.xhat.len() / saved.rstd.len().max(1);
    let mut wb = vec![0f32; 2 * h];
    let (dw, db) = wb.split_at_mut(h);
    layer_norm_back(g, saved, &read(l.w.as_tensor())?, Some((dw, db)), 1.0);
    Ok(wb)
}

/// One column's backward through the layer: `dy` holds the gradient of
/// the layer's output and becomes that of its input (the products in
/// `prec`, through the weights of [`packed_weights`] when given).
pub(crate) fn inputs(
    v: &LayerVars,
    t: &LayerTape,
    dy: &mut [f32],
    p: &Packed,
    (prec, packed): (Precision, Option<&[Arc<PackedB>; 6]>),
) -> Result<Deltas> {
    let n = p.rows();
    let h = p.hidden;
    let w = |j: usize, l| (l, packed.map(|w| &w[j]));
    // out = norm2(x1 + drop(g Wout^T + bout)).
    let norm2 = norm_back(&v.norm2, dy, &t.norm2)?;
    let mut d_out = dy.to_vec();
    drop_rows(t.drops.ffn, &mut d_out, p);
    let mut dg = vec![0f32; t.u.len()];
    let inter = t.u.len() / n.max(1);
    input_grad(
        prec,
        MatMut::new(&mut dg, n, inter),
        Mat::new(&d_out, n, h),
        w(5, &v.out),
        Into::Set,
    )?;
    let mut du = vec![0f32; t.u.len()];
    par_blocks(&t.u, &dg, &mut du, BLOCK, gelu_grad_slice);
    drop(dg);
    // dy now holds d(x1): the residual's share plus the feed-forward's.
    input_grad(
        prec,
        MatMut::new(dy, n, h),
        Mat::new(&du, n, inter),
        w(4, &v.inter),
        Into::Add(1.0),
    )?;

    // x1 = norm1(x + drop(ctx Wo^T + bo)).
    let norm1 = norm_back(&v.norm1, dy, &t.norm1)?;
    let mut d_a = dy.to_vec();
    drop_rows(t.drops.attn_out, &mut d_a, p);
    let mut d_ctx = vec![0f32; n * h];
    input_grad(
        prec,
        MatMut::new(&mut d_ctx, n, h),
        Mat::new(&d_a, n, h),
        w(3, &v.o),
        Into::Set,
    )?;
    let mut dqkv = vec![0f32; n * 3 * h];
    attention::backward(&t.qkv, &t.probs, &d_ctx, p, t.drops.attn, &mut dqkv);
    drop(d_ctx);
    // d(x) = the residual's share plus the three projections'.
    for (j, l) in [&v.q, &v.k, &v.v].into_iter().enumerate() {
        input_grad(
            prec,
            MatMut::new(dy, n, h),
            Mat::rows(&dqkv[j * h..], n, h, 3 * h),
            w(j, l),
            Into::Add(1.0),
        )?;
    }
    Ok(Deltas {
        n,
        d_out,
        du,
        d_a,
        dqkv,
        norm1,
        norm2,
    })
}

/// A column's activation or gradient `v` as `[n, width]`.
fn rows(v: &[f32], n: usize) -> Mat<'_> {
    Mat::new(v, n, v.len() / n.max(1))
}

/// A job of the weight gradients (see [`weight_jobs`]).
pub(crate) type Job<'s> = Box<dyn FnOnce() + Send + 's>;

/// `dw += scale * dy^T x` for each column's `(dy [n, out], x [n, in])`,
/// column after column, over rows `r0..` of `dw` (and columns `r0..` of
/// each `dy`) only: `dw` holds as many of the weight's rows as it has
/// room for.
fn add_weight_grad<'a>(
    prec: Precision,
    dw: Buf,
    r0: usize,
    parts: impl Iterator<Item = (Mat<'a>, Mat<'a>)>,
) {
    let Some((dw, scale)) = dw else {
        return;
    };
    for (dy, x) in parts {
        let i = x.cols();
        let o = dw.len() / i.max(1);
        let dy = dy.columns(r0, o);
        matmul_here_in(prec, MatMut::new(dw, o, i), dy.t(), x, Into::Add(scale));
    }
}

/// `db += scale * (column sums of g)` for each column's `g`.
fn add_bias_grad<'a>(db: Buf, parts: impl Iterator<Item = &'a [f32]>) {
    if let Some((db, scale)) = db {
        for g in parts {
            add_column_sums(g, db, scale);
        }
    }
}

/// `w` cut into `pieces` runs of whole rows of `width` values, each with
/// the index of its first row. Runs differ by one row at most, and none
/// has fewer than [`ROWS`] rows (fewer pieces where `w` has fewer rows):
/// `gemm` blocks smaller products otherwise, and a piece would not give
/// the bits of the whole.
fn row_pieces(w: Buf<'_>, width: usize, pieces: usize) -> Vec<(usize, Buf<'_>)> {
    let Some((mut rest, scale)) = w else {
        return vec![(0, None)];
    };
    let width = width.max(1);
    let rows = rest.len() / width;
    let pieces = pieces.min(rows / ROWS).max(1);
    let mut out = Vec::with_capacity(pieces);
    let mut r0 = 0;
    for j in 0..pieces {
        let n = rows / pieces + usize::from(j < rows % pieces);
        let take = if j + 1 == pieces {
            rest.len()
        } else {
            n * width
        };
        let (piece, tail) = std::mem::take(&mut rest).split_at_mut(take);
        out.push((r0, Some((piece, scale))));
        rest = tail;
        r0 += n;
    }
    out
}

/// The jobs of a linear layer's weight and bias gradients: `dy` picks a
/// column's output gradient from its deltas, `x` its input from its tape.
/// The weight's rows are cut into `pieces` jobs of their own.
#[allow(clippy::too_many_arguments)]
fn linear_jobs<'s>(
    prec: Precision,
    (w, b): (Buf<'s>, Buf<'s>),
    cols: &[&'s LayerTape],
    deltas: &Arc<Vec<Deltas>>,
    dy: fn(&Deltas) -> &[f32],
    x: fn(&LayerTape) -> &[f32],
    width: usize,
    pieces: usize,
) -> Vec<Job<'s>> {
    let mut b = Some(b);
    let mut jobs: Vec<Job<'s>> = Vec::with_capacity(pieces);
    for (r0, w) in row_pieces(w, width, pieces) {
        let (cols, deltas, b) = (cols.to_vec(), Arc::clone(deltas), b.take().flatten());
        jobs.push(Box::new(move || {
            let parts = cols.iter().zip(deltas.iter());
            add_weight_grad(
                prec,
                w,
                r0,
                parts.map(|(t, d)| (rows(dy(d), d.n), rows(x(t), d.n))),
            );
            add_bias_grad(b, deltas.iter().map(dy));
        }));
    }
    jobs
}

/// The layer's weight gradients from every column's tape and deltas (in
/// column order), as jobs that may run in any order and on any thread:
/// each writes only its own buffers, `bufs` in the order of [`VARS`]. The
/// largest come first, so that the last to start are the short ones.
/// With `split` (the last layer of a backward, whose jobs end it), the
/// intermediate and output weights (`inter x hidden`) are cut into jobs
/// of `hidden x hidden` each, so that no core is left waiting on one large
/// job. Splitting packs each piece's input again, which the layers above
/// need not pay: their jobs overlap with the columns' input gradients.
pub(crate) fn weight_jobs<'s>(
    cols: Vec<&'s LayerTape>,
    deltas: Arc<Vec<Deltas>>,
    bufs: [Buf<'s>; VARS],
    (hidden, inter): (usize, usize),
    prec: Precision,
    split: bool,
) -> Vec<Job<'s>> {
    let h = hidden;
    let [qw, qb, kw, kb, vw, vb, ow, ob, iw, ib, outw, outb, n1w, n1b, n2w, n2b] = bufs;
    let pieces = if split { inter.div_ceil(h.max(1)) } else { 1 };
    let mut jobs: Vec<Job<'s>> = Vec::with_capacity(2 * pieces + 5);
    let d = &deltas;
    jobs.extend(linear_jobs(
        prec,
        (iw, ib),
        &cols,
        d,
        |d| &d.du,
        |t| &t.x1,
        h,
        pieces,
    ));
    jobs.extend(linear_jobs(
        prec,
        (outw, outb),
        &cols,
        d,
        |d| &d.d_out,
        |t| &t.g,
        inter,
        pieces,
    ));
    for (j, w) in [qw, kw, vw].into_iter().enumerate() {
        let (cols, deltas) = (cols.clone(), Arc::clone(&deltas));
        jobs.push(Box::new(move || {
            let parts = cols
                .iter()
                .zip(deltas.iter())
                .map(|(t, d)| (Mat::rows(&d.dqkv[j * h..], d.n, h, 3 * h), rows(&t.x, d.n)));
            add_weight_grad(prec, w, 0, parts);
        }));
    }
    jobs.extend(linear_jobs(
        prec,
        (ow, ob),
        &cols,
        d,
        |d| &d.d_a,
        |t| &t.ctx,
        h,
        1,
    ));
    jobs.push(Box::new(move || {
        let mut qkv = [qb, kb, vb];
        let mut norms = [(n1w, n1b), (n2w, n2b)];
        for d in deltas.iter() {
            let mut sums = vec![0f32; 3 * h];
            add_column_sums(&d.dqkv, &mut sums, 1.0);
            for (j, b) in qkv.iter_mut().enumerate() {
                add_into(b, &sums[j * h..(j + 1) * h]);
            }
            for ((w, b), g) in norms.iter_mut().zip([&d.norm1, &d.norm2]) {
                add_into(w, &g[..h]);
                add_into(b, &g[h..]);
            }
        }
    }));
    jobs
}

#[cfg(test)]
mod tests {
    use super::super::matmul::test_values as values;
    use super::*;

    /// A weight gradient cut into runs of rows gives the bits of the
    /// whole, in either precision: each value is summed by the same
    /// products over the same tokens (also for narrow weights and more
    /// tokens than `gemm`'s 512-deep blocks, where too small a piece would
    /// be blocked otherwise: such weights get fewer pieces).
    #[test]
    fn weight_gradient_pieces_keep_the_bits() {
        for prec in [Precision::Fp32, Precision::Bf16] {
            for (n, o, i, pieces, made) in [
                (37, 1536, 384, 4, 4),
                (600, 384, 1536, 4, 4),
                (29, 100, 70, 3, 1),
                (600, 261, 64, 4, 4),
                (700, 128, 64, 2, 1),
            ] {
                let cols: Vec<(Vec<f32>, Vec<f32>)> = (0..2)
                    .map(|c| (values(n * o, c), values(n * i, c + 7)))
                    .collect();
                let parts = || {
                    cols.iter()
                        .map(|(dy, x)| (Mat::new(dy, n, o), Mat::new(x, n, i)))
                };
                let mut whole = values(o * i, 99);
                let mut cut = whole.clone();
                add_weight_grad(prec, Some((&mut whole, 0.5)), 0, parts());
                let runs = row_pieces(Some((&mut cut, 0.5)), i, pieces);
                assert_eq!(runs.len(), made);
                for (r0, w) in runs {
                    add_weight_grad(prec, w, r0, parts());
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&whole), bits(&cut), "{prec:?} {n}x{o}x{i}");
            }
        }
    }
}
