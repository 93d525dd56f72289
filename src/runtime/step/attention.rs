//! Multi-head self-attention of the explicit step, forward and backward,
//! over packed projections `qkv` `[batch * seq, 3 * hidden]` (q, k, v side
//! by side). One task per batch row computes every head of that row; keys
//! that are padding get probability 0 and are skipped, so no `[b, h, s, s]`
//! mask or bias is ever built. The probabilities (before dropout) are kept
//! for the backward; dropout on them uses the masks of the autograd path
//! (index `((row * heads + head) * seq + query) * seq + key`).

use rayon::prelude::*;

use crate::runtime::fp_env::flush;
use crate::runtime::kernels::{exp_f32, DropMask};

/// The shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub batch: usize,
    pub seq: usize,
    pub hidden: usize,
    pub heads: usize,
}

impl Dims {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }
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
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The real (unpadded) keys of batch row `b`.
fn keys(mask: &[f32], b: usize, s: usize) -> Vec<usize> {
    (0..s).filter(|&j| mask[b * s + j] > 0.5).collect()
}

/// Forward: fills `probs` `[batch, heads, seq, seq]` (softmax of the
/// scaled scores over the real keys, before dropout) and `out`
/// `[batch * seq, hidden]` (probabilities, after dropout, times values).
pub(crate) fn forward(
    qkv: &[f32],
    mask: &[f32],
    dims: Dims,
    drop: Option<DropMask>,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let Dims {
        seq: s,
        hidden: h,
        heads,
        ..
    } = dims;
    let (d, scale, h3) = (dims.head_dim(), dims.scale(), 3 * h);
    out.par_chunks_mut(s * h)
        .zip(probs.par_chunks_mut(heads * s * s))
        .enumerate()
        .for_each(|(bi, (o, p))| {
            o.fill(0.0);
            p.fill(0.0);
            let x = &qkv[bi * s * h3..(bi + 1) * s * h3];
            let keys = keys(mask, bi, s);
            for head in 0..heads {
                let off = head * d;
                for i in 0..s {
                    let qi = &x[i * h3 + off..i * h3 + off + d];
                    let row = &mut p[(head * s + i) * s..(head * s + i + 1) * s];
                    let mut mx = f32::NEG_INFINITY;
                    for &j in &keys {
                        let kj = &x[j * h3 + h + off..j * h3 + h + off + d];
                        row[j] = dot(qi, kj) * scale;
                        mx = mx.max(row[j]);
                    }
                    let mut sum = 0f32;
                    for &j in &keys {
                        row[j] = exp_f32(row[j] - mx);
                        sum += row[j];
                    }
                    let inv = if sum > 0.0 { 1.0 / sum } else { 0.0 };
                    let oi = &mut o[i * h + off..i * h + off + d];
                    let base = ((bi * heads + head) * s + i) * s;
                    for &j in &keys {
                        row[j] = flush(row[j] * inv);
                        let w = match drop {
                            Some(m) => row[j] * m.factor((base + j) as u64),
                            None => row[j],
                        };
                        if w != 0.0 {
                            axpy(oi, w, &x[j * h3 + 2 * h + off..j * h3 + 2 * h + off + d]);
                        }
                    }
                }
            }
        });
}

/// Backward: from the output's gradient `dout` `[batch * seq, hidden]`,
/// the forward's `qkv` and `probs`, writes the gradient of the packed
/// projections into `dqkv` `[batch * seq, 3 * hidden]`.
pub(crate) fn backward(
    qkv: &[f32],
    probs: &[f32],
    dout: &[f32],
    mask: &[f32],
    dims: Dims,
    drop: Option<DropMask>,
    dqkv: &mut [f32],
) {
    let Dims {
        seq: s,
        hidden: h,
        heads,
        ..
    } = dims;
    let (d, scale, h3) = (dims.head_dim(), dims.scale(), 3 * h);
    dqkv.par_chunks_mut(s * h3)
        .enumerate()
        .for_each(|(bi, dx)| {
            dx.fill(0.0);
            let x = &qkv[bi * s * h3..(bi + 1) * s * h3];
            let go = &dout[bi * s * h..(bi + 1) * s * h];
            let p = &probs[bi * heads * s * s..(bi + 1) * heads * s * s];
            let keys = keys(mask, bi, s);
            let mut ds = vec![0f32; keys.len()];
            for head in 0..heads {
                let off = head * d;
                for i in 0..s {
                    let gi = &go[i * h + off..i * h + off + d];
                    let row = &p[(head * s + i) * s..(head * s + i + 1) * s];
                    let base = ((bi * heads + head) * s + i) * s;
                    // dP (through dropout) and the softmax's row sum.
                    let mut rowdot = 0f32;
                    for (dsj, &j) in ds.iter_mut().zip(&keys) {
                        let vj = &x[j * h3 + 2 * h + off..j * h3 + 2 * h + off + d];
                        let f = drop.map_or(1.0, |m| m.factor((base + j) as u64));
                        let dp = if f == 0.0 { 0.0 } else { dot(gi, vj) * f };
                        // dV_j += P_drop[i, j] * dout_i.
                        let w = row[j] * f;
                        if w != 0.0 {
                            axpy(
                                &mut dx[j * h3 + 2 * h + off..j * h3 + 2 * h + off + d],
                                w,
                                gi,
                            );
                        }
                        *dsj = dp;
                        rowdot += row[j] * dp;
                    }
                    // dS = P * (dP - rowdot); dQ_i = scale * dS K; dK_j += scale * dS_ij Q_i.
                    for (dsj, &j) in ds.iter_mut().zip(&keys) {
                        *dsj = flush(row[j] * (*dsj - rowdot)) * scale;
                    }
                    let qi_at = i * h3 + off;
                    for (&dsj, &j) in ds.iter().zip(&keys) {
                        if dsj == 0.0 {
                            continue;
                        }
                        let kj_at = j * h3 + h + off;
                        // Q and K rows of the same token can coincide
                        // (i == j), so read before writing.
                        for t in 0..d {
                            let (q, k) = (x[qi_at + t], x[kj_at + t]);
                            dx[qi_at + t] += dsj * k;
                            dx[kj_at + t] += dsj * q;
                        }
                    }
                }
            }
        });
}
