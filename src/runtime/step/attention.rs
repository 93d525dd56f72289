//! Multi-head self-attention of the explicit step, forward and backward,
//! over packed projections `qkv` `[tokens, 3 * hidden]` (q, k, v side by
//! side) of a packed batch: only the real tokens of each sequence, one
//! after the other, with no padding rows at all (see [`Packed`]). One task
//! per sequence computes every head of it. The probabilities (before
//! dropout) are kept for the backward, `[heads, len, padded(len)]` per sequence;
//! dropout on them uses the masks of the autograd path, indexed as there
//! by the padded positions (`((row * heads + head) * seq + query) * seq +
//! key`).

use rayon::prelude::*;

use crate::runtime::fp_env::flush;
use crate::runtime::kernels::small::{padded, product, softmax_row, View};
use crate::runtime::kernels::DropMask;

/// A batch with its padding taken out: the real tokens of every sequence,
/// in order, as the rows of every activation.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    /// Sequences of the batch and their padded length.
    pub batch: usize,
    pub seq: usize,
    pub hidden: usize,
    pub heads: usize,
    /// For each packed row, its index `row * seq + position` in the padded
    /// `[batch, seq]` layout (what dropout masks are indexed by).
    pub tokens: Vec<u32>,
    /// Each sequence's first packed row and its number of real tokens.
    pub spans: Vec<(usize, usize)>,
}

impl Packed {
    /// The packing of a `[batch, seq]` attention mask (1 token, 0 padding).
    pub fn new(mask: &[f32], batch: usize, seq: usize, hidden: usize, heads: usize) -> Self {
        let mut tokens = Vec::new();
        let mut spans = Vec::with_capacity(batch);
        for b in 0..batch {
            let start = tokens.len();
            for j in 0..seq {
                if mask[b * seq + j] > 0.5 {
                    tokens.push((b * seq + j) as u32);
                }
            }
            spans.push((start, tokens.len() - start));
        }
        Packed {
            batch,
            seq,
            hidden,
            heads,
            tokens,
            spans,
        }
    }

    /// Packed rows.
    pub fn rows(&self) -> usize {
        self.tokens.len()
    }

    /// Values of the probabilities of every sequence: `[heads, len,
    /// padded(len)]` each, rows padded to whole vectors with zeros.
    pub fn prob_len(&self) -> usize {
        self.spans.iter().map(|&(_, n)| self.probs_of(n)).sum()
    }

    /// Values of the probabilities of a sequence of `n` tokens.
    fn probs_of(&self, n: usize) -> usize {
        self.heads * n * padded(n)
    }

    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    /// `buf` cut into one mutable piece per sequence, `per_row` values per
    /// packed row (activations), or [`Self::probs_of`] (probabilities).
    fn split<'a>(&self, mut buf: &'a mut [f32], per_row: Option<usize>) -> Vec<&'a mut [f32]> {
        let mut out = Vec::with_capacity(self.batch);
        for &(_, n) in &self.spans {
            let take = per_row.map_or(self.probs_of(n), |w| n * w);
            let (a, b) = std::mem::take(&mut buf).split_at_mut(take);
            out.push(a);
            buf = b;
        }
        out
    }

    /// Sequence `bi` for the per-sequence kernels.
    fn seq(&self, bi: usize, drop: Option<DropMask>) -> Seq<'_> {
        let (start, n) = self.spans[bi];
        Seq {
            bi,
            n,
            h: self.hidden,
            heads: self.heads,
            s: self.seq,
            d: self.head_dim(),
            scale: self.scale(),
            tokens: &self.tokens[start..start + n],
            drop,
        }
    }

    /// Where each sequence's probabilities start.
    fn prob_starts(&self) -> Vec<usize> {
        let mut at = 0;
        self.spans
            .iter()
            .map(|&(_, n)| {
                let s = at;
                at += self.probs_of(n);
                s
            })
            .collect()
    }
}

/// Forward: fills `probs` ([`Packed::prob_len`] values: softmax of the
/// scaled scores, before dropout) and `out` `[tokens, hidden]`
/// (probabilities, after dropout, times values).
pub(crate) fn forward(
    qkv: &[f32],
    p: &Packed,
    drop: Option<DropMask>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let (h, h3) = (p.hidden, 3 * p.hidden);
    let outs = p.split(out, Some(h));
    let probs = p.split(probs, None);
    outs.into_par_iter()
        .zip(probs)
        .enumerate()
        .for_each(|(bi, (o, pr))| {
            let (start, n) = p.spans[bi];
            let x = &qkv[start * h3..(start + n) * h3];
            let seq = p.seq(bi, drop);
            forward_seq(x, seq, pr, o);
        });
}

/// One sequence of a packed batch, for the per-sequence kernels.
#[derive(Clone, Copy)]
struct Seq<'a> {
    /// Its row in the padded batch.
    bi: usize,
    /// Real tokens.
    n: usize,
    h: usize,
    heads: usize,
    /// The padded length.
    s: usize,
    d: usize,
    scale: f32,
    /// Padded indices of its tokens.
    tokens: &'a [u32],
    drop: Option<DropMask>,
}

impl Seq<'_> {
    /// The dropout mask index of probability (`head`, `i`, `j`).
    #[inline(always)]
    fn mask_base(&self, head: usize, i: usize) -> usize {
        ((self.bi * self.heads + head) * self.s + self.tokens[i] as usize % self.s.max(1)) * self.s
    }

    /// Each token's position in its padded row (a division per token,
    /// done once per sequence rather than once per pair of tokens).
    fn positions(&self) -> Vec<u64> {
        self.tokens
            .iter()
            .map(|&t| (t as usize % self.s.max(1)) as u64)
            .collect()
    }
}

simd_dispatch!(fn forward_seq(x: &[f32], q: Seq, pr: &mut [f32], o: &mut [f32]) => forward_seq_generic);

/// Head `head`'s block at column offset `at` (0 for q, `h` for k, `2h`
/// for v) of a sequence's `qkv` rows, transposed into `dst` `[d, np]`
/// (row stride [`padded`]`(n)`), the right-hand side of a [`product`] whose
/// columns are the sequence's tokens.
#[inline(always)]
fn head_transposed(x: &[f32], q: &Seq, at: usize, dst: &mut [f32]) {
    let (n, h3, d, np) = (q.n, 3 * q.h, q.d, padded(q.n));
    for t in 0..d {
        for (j, v) in dst[t * np..t * np + n].iter_mut().enumerate() {
            *v = x[j * h3 + at + t];
        }
    }
}

/// Each key's dropout factor for query `i` of `head` (1 without dropout).
#[inline(always)]
fn key_factors(q: &Seq, pos: &[u64], head: usize, i: usize, f: &mut [f32]) {
    if let Some(m) = q.drop {
        let base = q.mask_base(head, i) as u64;
        for (f, &p) in f.iter_mut().zip(pos) {
            *f = m.factor(base + p);
        }
    }
}

#[inline(always)]
fn forward_seq_generic(x: &[f32], q: Seq, pr: &mut [f32], o: &mut [f32]) {
    let Seq {
        n,
        h,
        heads,
        d,
        scale,
        ..
    } = q;
    let (h3, np) = (3 * h, padded(n));
    let pos = q.positions();
    let mut kt = vec![0f32; d * np];
    // Scores, then the probabilities after dropout, `[n, np]`.
    let mut sc = vec![0f32; n * np];
    let mut f = vec![1f32; np];
    for head in 0..heads {
        let off = head * d;
        head_transposed(x, &q, h + off, &mut kt);
        product(n, d, np, View::rows(&x[off..], h3), &kt, np, &mut sc, np);
        for i in 0..n {
            // Whole vectors: the padding columns score -inf, so their
            // probability is exactly 0.
            let row = &mut sc[i * np..(i + 1) * np];
            row[n..].fill(f32::NEG_INFINITY);
            for r in row[..n].iter_mut() {
                *r *= scale;
            }
            softmax_row(row);
            key_factors(&q, &pos, head, i, &mut f[..n]);
            let kept = &mut pr[(head * n + i) * np..(head * n + i + 1) * np];
            kept.copy_from_slice(row);
            for (r, &f) in row.iter_mut().zip(&f) {
                *r *= f;
            }
        }
        product(
            n,
            n,
            d,
            View::rows(&sc, np),
            &x[2 * h + off..],
            h3,
            &mut o[off..],
            h,
        );
    }
}

/// Backward: from the output's gradient `dout` `[tokens, hidden]`, the
/// forward's `qkv` and `probs`, writes the gradient of the packed
/// projections into `dqkv` `[tokens, 3 * hidden]`.
pub(crate) fn backward(
    qkv: &[f32],
    probs: &[f32],
    dout: &[f32],
    p: &Packed,
    drop: Option<DropMask>,
    dqkv: &mut [f32],
) {
    let (h, h3) = (p.hidden, 3 * p.hidden);
    let starts = p.prob_starts();
    p.split(dqkv, Some(h3))
        .into_par_iter()
        .enumerate()
        .for_each(|(bi, dx)| {
            let (start, n) = p.spans[bi];
            let seq = p.seq(bi, drop);
            backward_seq(
                &qkv[start * h3..(start + n) * h3],
                &probs[starts[bi]..starts[bi] + p.probs_of(n)],
                &dout[start * h..(start + n) * h],
                seq,
                dx,
            );
        });
}

simd_dispatch!(fn backward_seq(x: &[f32], pr: &[f32], go: &[f32], q: Seq, dx: &mut [f32]) => backward_seq_generic);

#[inline(always)]
fn backward_seq_generic(x: &[f32], pr: &[f32], go: &[f32], q: Seq, dx: &mut [f32]) {
    let Seq {
        n,
        h,
        heads,
        d,
        scale,
        ..
    } = q;
    let (h3, np) = (3 * h, padded(n));
    let pos = q.positions();
    let mut vt = vec![0f32; d * np];
    // The probabilities after dropout, and the gradient of the scores,
    // `[n, np]` each (the padding columns are 0 in both).
    let mut pd = vec![0f32; n * np];
    let mut ds = vec![0f32; n * np];
    let mut f = vec![1f32; np];
    for head in 0..heads {
        let off = head * d;
        head_transposed(x, &q, 2 * h + off, &mut vt);
        // dP after dropout: dout V^T.
        product(n, d, np, View::rows(&go[off..], h), &vt, np, &mut ds, np);
        for i in 0..n {
            let row = &pr[(head * n + i) * np..(head * n + i + 1) * np];
            key_factors(&q, &pos, head, i, &mut f[..n]);
            let (dsi, pdi) = (&mut ds[i * np..(i + 1) * np], &mut pd[i * np..(i + 1) * np]);
            // dP through dropout, and the softmax's row sum.
            let mut rowdot = 0f32;
            for (((g, p), &f), &r) in dsi.iter_mut().zip(pdi.iter_mut()).zip(&f).zip(row) {
                *g *= f;
                *p = r * f;
                rowdot += r * *g;
            }
            // dS = P * (dP - rowdot), times the scores' scale.
            for (g, &r) in dsi.iter_mut().zip(row) {
                *g = flush(r * (*g - rowdot)) * scale;
            }
        }
        // dV = P_drop^T dout, dQ = dS K, dK = dS^T Q: each overwrites its
        // head's block of every row.
        product(
            n,
            n,
            d,
            View::rows(&pd, np).t(),
            &go[off..],
            h,
            &mut dx[2 * h + off..],
            h3,
        );
        product(
            n,
            n,
            d,
            View::rows(&ds, np),
            &x[h + off..],
            h3,
            &mut dx[off..],
            h3,
        );
        product(
            n,
            n,
            d,
            View::rows(&ds, np).t(),
            &x[off..],
            h3,
            &mut dx[h + off..],
            h3,
        );
    }
}
