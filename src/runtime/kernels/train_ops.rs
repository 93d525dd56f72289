//! Small training ops with hand-written backward passes: a bias add whose
//! backward sums the gradient over rows in one deterministic pass (candle's
//! broadcast-add backward reduces through a generic strided sum), and
//! inverted dropout whose mask is a pure function of a seed and the element
//! index, so that it is neither stored nor drawn one element at a time.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, par_blocks, row_block, BLOCK};

/// `x + b` with `b` broadcast over the rows of `x` (its last dimension).
pub(crate) struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "add-bias x")?;
        let b = f32_slice(s2, l2, "add-bias b")?;
        let h = b.len();
        if h == 0 || l1.dims().last() != Some(&h) {
            candle_core::bail!("add-bias: the bias must match the last dimension");
        }
        let mut out = vec![0f32; x.len()];
        par_blocks(x, x, &mut out, row_block(h), |x, _, o| {
            for (o, x) in o.chunks_mut(h).zip(x.chunks(h)) {
                for ((o, &x), &b) in o.iter_mut().zip(x).zip(b) {
                    *o = x + b;
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let db = g.apply_op1_no_bwd(&SumRows)?.reshape(b.shape())?;
        Ok((Some(g), Some(db)))
    }
}

/// The sum over all rows of a contiguous tensor, `[last dim]`: one partial
/// sum per fixed block of rows, added in block order, so the result does not
/// depend on thread scheduling (resumed runs reproduce uninterrupted ones
/// bit for bit).
struct SumRows;

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "sum-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l, "sum-rows")?;
        let h = l.dims().last().copied().unwrap_or(0);
        if h == 0 || !g.len().is_multiple_of(h) {
            candle_core::bail!("sum-rows: empty rows");
        }
        let rows = row_block(h);
        let partials: Vec<Vec<f32>> = g
            .par_chunks(rows)
            .map(|g| {
                let mut acc = vec![0f32; h];
                for r in g.chunks(h) {
                    acc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
                }
                acc
            })
            .collect();
        let mut sum = vec![0f32; h];
        for p in &partials {
            sum.iter_mut().zip(p).for_each(|(s, p)| *s += p);
        }
        Ok((CpuStorage::F32(sum), Shape::from(h)))
    }
}

/// Inverted dropout: element `i` is kept (and scaled by `1 / (1 - p)`) when
/// the `i`-th value of a counter-based generator keyed by `seed` is at least
/// `p`. The backward pass regenerates the same mask.
pub(crate) struct Dropout {
    pub seed: u64,
    pub p: f32,
}

/// SplitMix64 of `seed + i`: a uniform 64-bit value per index.
#[inline(always)]
fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The keep-or-drop decision of [`Dropout`] for element `i`, as a factor:
/// `1 / (1 - p)` when kept, 0 when dropped. The explicit training step
/// (`runtime::step`) applies the same masks through it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropMask {
    seed: u64,
    threshold: u64,
    scale: f32,
}

impl DropMask {
    pub(crate) fn new(seed: u64, p: f32) -> Self {
        DropMask {
            seed,
            // Keep when the top 24 bits, as a fraction, are >= p.
            threshold: (p as f64 * (1u64 << 24) as f64).ceil() as u64,
            scale: 1.0 / (1.0 - p),
        }
    }

    /// The factor of element `i`.
    #[inline(always)]
    pub(crate) fn factor(&self, i: u64) -> f32 {
        if (mix(self.seed, i) >> 40) >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    /// `x[j] *= factor(j)` over a whole tensor's values, in parallel.
    pub(crate) fn apply_in_place(&self, x: &mut [f32]) {
        x.par_chunks_mut(BLOCK).enumerate().for_each(|(c, x)| {
            mask_run(x, (c * BLOCK) as u64, *self);
        });
    }
}

impl DropMask {
    /// The mask over the rows of a packed tensor: row `r` of `x` (`width`
    /// values) is row `rows[r]` of the full tensor the mask is drawn for.
    pub(crate) fn apply_rows(&self, x: &mut [f32], rows: &[u32], width: usize) {
        x.par_chunks_mut(32 * width.max(1))
            .zip(rows.par_chunks(32))
            .for_each(|(x, rows)| {
                for (x, &r) in x.chunks_mut(width.max(1)).zip(rows) {
                    mask_run(x, r as u64 * width as u64, *self);
                }
            });
    }
}

simd_dispatch!(fn mask_run(x: &mut [f32], base: u64, m: DropMask) => mask_run_generic);

/// `x[j] *= factor(base + j)`; a dropped value is 0 whatever it was (not
/// `inf * 0`).
#[inline(always)]
fn mask_run_generic(x: &mut [f32], base: u64, m: DropMask) {
    for (j, v) in x.iter_mut().enumerate() {
        let f = m.factor(base + j as u64);
        *v = if f == 0.0 { 0.0 } else { *v * f };
    }
}

impl Dropout {
    /// `out[i] = x[i] * mask(i)`.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = x.to_vec();
        DropMask::new(self.seed, self.p).apply_in_place(&mut out);
        out
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "dropout")?;
        Ok((CpuStorage::F32(self.apply(x)), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = grad.contiguous()?;
        Ok(Some(g.apply_op1_no_bwd(&Dropout {
            seed: self.seed,
            p: self.p,
        })?))
    }
}
