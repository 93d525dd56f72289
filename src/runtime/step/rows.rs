//! The row-wise pieces of the explicit step: column sums of a
//! gradient, layer norm forward (keeping what its backward needs) and
//! backward, residual adds. Every sum over rows is taken as one partial
//! per fixed block of rows, added in block order, so that the result does
//! not depend on thread scheduling (a resumed run reproduces an
//! uninterrupted one bit for bit).

use rayon::prelude::*;

use crate::runtime::fp_env::flush;
use crate::runtime::kernels::moments;

/// Rows per parallel task.
const ROWS: usize = 32;

/// `acc += scale * (sum over rows of g)`, `g` `[rows, acc.len()]`.
pub(crate) fn add_column_sums(g: &[f32], acc: &mut [f32], scale: f32) {
    let h = acc.len();
    let partials: Vec<Vec<f32>> = g
        .par_chunks(ROWS * h)
        .map(|g| {
            let mut s = vec![0f32; h];
            column_sums(g, &mut s);
            s
        })
        .collect();
    let mut sum = vec![0f32; h];
    for p in &partials {
        sum.iter_mut().zip(p).for_each(|(s, p)| *s += p);
    }
    acc.iter_mut().zip(&sum).for_each(|(a, s)| *a += scale * s);
}

simd_dispatch!(fn column_sums(g: &[f32], acc: &mut [f32]) => column_sums_generic);

#[inline(always)]
fn column_sums_generic(g: &[f32], acc: &mut [f32]) {
    for r in g.chunks(acc.len()) {
        acc.iter_mut().zip(r).for_each(|(s, v)| *s += v);
    }
}

/// `x += y`, elementwise.
pub(crate) fn add_assign(x: &mut [f32], y: &[f32]) {
    x.par_chunks_mut(1 << 14)
        .zip(y.par_chunks(1 << 14))
        .for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(x, y)| *x += y));
}

/// What a layer norm's backward needs of its forward: the normalised rows
/// and each row's `1 / std`.
#[derive(Debug, Default)]
pub(crate) struct NormSaved {
    pub xhat: Vec<f32>,
    pub rstd: Vec<f32>,
}

/// `x = (x - mean) / sqrt(var + eps) * w + b`, row by row in place (as
/// torch's LayerNorm, biased variance); returns what the backward needs.
pub(crate) fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) -> NormSaved {
    let h = w.len();
    let rows = x.len() / h.max(1);
    let mut saved = NormSaved {
        xhat: vec![0f32; x.len()],
        rstd: vec![0f32; rows],
    };
    x.par_chunks_mut(ROWS * h)
        .zip(saved.xhat.par_chunks_mut(ROWS * h))
        .zip(saved.rstd.par_chunks_mut(ROWS))
        .for_each(|((x, xh), rs)| norm_rows(x, xh, rs, w, b, eps));
    saved
}

simd_dispatch!(fn norm_rows(x: &mut [f32], xh: &mut [f32], rs: &mut [f32], w: &[f32], b: &[f32], eps: f32) => norm_rows_generic);

#[inline(always)]
fn norm_rows_generic(
    x: &mut [f32],
    xh: &mut [f32],
    rs: &mut [f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
) {
    let h = w.len();
    for ((x, xh), r) in x.chunks_mut(h).zip(xh.chunks_mut(h)).zip(rs) {
        let (mean, rstd) = moments(x, eps);
        *r = rstd;
        for (((x, xh), &w), &b) in x.iter_mut().zip(xh).zip(w).zip(b) {
            *xh = (*x - mean) * rstd;
            *x = *xh * w + b;
        }
    }
}

simd_dispatch!(fn norm_wb_sums(g: &[f32], xh: &[f32], acc: &mut [f32]) => norm_wb_sums_generic);

/// `acc[..h] += g * xhat`, `acc[h..] += g`, over the rows of `g`.
#[inline(always)]
fn norm_wb_sums_generic(g: &[f32], xh: &[f32], acc: &mut [f32]) {
    let h = acc.len() / 2;
    for (g, xh) in g.chunks(h).zip(xh.chunks(h)) {
        let (aw, ab) = acc.split_at_mut(h);
        for (((aw, ab), &g), &xh) in aw.iter_mut().zip(ab).zip(g).zip(xh) {
            *aw += g * xh;
            *ab += g;
        }
    }
}

simd_dispatch!(fn norm_back_rows(g: &mut [f32], xh: &[f32], rs: &[f32], w: &[f32]) => norm_back_rows_generic);

#[inline(always)]
fn norm_back_rows_generic(g: &mut [f32], xh: &[f32], rs: &[f32], w: &[f32]) {
    let h = w.len();
    let n = h as f32;
    for ((g, xh), &rstd) in g.chunks_mut(h).zip(xh.chunks(h)).zip(rs) {
        let (mut sum_d, mut sum_dx) = (0f32, 0f32);
        for ((&g, &w), &xh) in g.iter().zip(w).zip(xh) {
            let d = g * w;
            sum_d += d;
            sum_dx += d * xh;
        }
        let (mean_d, mean_dx) = (sum_d / n, sum_dx / n);
        for ((g, &w), &xh) in g.iter_mut().zip(w).zip(xh) {
            *g = flush(rstd * (*g * w - mean_d - xh * mean_dx));
        }
    }
}

/// The backward of [`layer_norm`]: `g` holds the output's gradient and
/// becomes the input's, `rstd * (d - mean(d) - xhat * mean(d * xhat))` with
/// `d = g * w`; `scale` times the weight and bias gradients are added into
/// `dw` and `db` (when the norm is trained).
pub(crate) fn layer_norm_back(
    g: &mut [f32],
    saved: &NormSaved,
    w: &[f32],
    dwb: Option<(&mut [f32], &mut [f32])>,
    scale: f32,
) {
    let h = w.len();
    if let Some((dw, db)) = dwb {
        let partials: Vec<Vec<f32>> = g
            .par_chunks(ROWS * h)
            .zip(saved.xhat.par_chunks(ROWS * h))
            .map(|(g, xh)| {
                let mut acc = vec![0f32; 2 * h];
                norm_wb_sums(g, xh, &mut acc);
                acc
            })
            .collect();
        let mut sums = vec![0f32; 2 * h];
        for p in &partials {
            sums.iter_mut().zip(p).for_each(|(s, p)| *s += p);
        }
        dw.iter_mut()
            .zip(&sums[..h])
            .for_each(|(d, s)| *d += scale * s);
        db.iter_mut()
            .zip(&sums[h..])
            .for_each(|(d, s)| *d += scale * s);
    }
    g.par_chunks_mut(ROWS * h)
        .zip(saved.xhat.par_chunks(ROWS * h))
        .zip(saved.rstd.par_chunks(ROWS))
        .for_each(|((g, xh), rs)| norm_back_rows(g, xh, rs, w));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let h = 8;
        let x0: Vec<f32> = (0..3 * h)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let w: Vec<f32> = (0..h).map(|i| 0.5 + i as f32 / 10.0).collect();
        let b: Vec<f32> = (0..h).map(|i| i as f32 / 20.0).collect();
        let up: Vec<f32> = (0..3 * h)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 4.0)
            .collect();
        let f = |x: &[f32]| -> f64 {
            let mut y = x.to_vec();
            layer_norm(&mut y, &w, &b, 1e-5);
            y.iter()
                .zip(&up)
                .map(|(y, u)| (*y as f64) * (*u as f64))
                .sum()
        };
        let mut y = x0.clone();
        let saved = layer_norm(&mut y, &w, &b, 1e-5);
        let mut g = up.clone();
        let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
        layer_norm_back(&mut g, &saved, &w, Some((&mut dw, &mut db)), 1.0);
        for i in 0..x0.len() {
            let (mut a, mut c) = (x0.clone(), x0.clone());
            a[i] += 1e-3;
            c[i] -= 1e-3;
            let num = (f(&a) - f(&c)) / 2e-3;
            assert!(
                (num - g[i] as f64).abs() < 2e-3,
                "dx[{i}] {num} vs {}",
                g[i]
            );
        }
        // db is the column sum of the upstream gradient.
        for (j, d) in db.iter().enumerate() {
            let want: f32 = (0..3).map(|r| up[r * h + j]).sum();
            assert!((d - want).abs() < 1e-5);
        }
        let want_dw: f32 = (0..3).map(|r| up[r * h] * saved.xhat[r * h]).sum();
        assert!((dw[0] - want_dw).abs() < 1e-5);
    }
}
