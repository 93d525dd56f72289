//! What the batch triplet losses share (sentence-transformers'
//! `BatchHardTripletLoss` family): single texts with class labels, the
//! `[n, n]` matrix of pairwise distances, the label masks, and the choice
//! of hardest positive and negative per anchor.
//!
//! Choices (argmax, argmin, the semi-hard negative) are made on the
//! detached values and then gathered from the differentiable matrix, so
//! the gradient reaches exactly the entries torch's `max`/`min`/`gather`
//! would send it to.

use candle_core::{bail, DType, Result, Tensor};

use super::{ops, LossInputs, Similarity};
use crate::registry::{opt, req, ArgSpec, ArgType::*};

/// The arguments every batch triplet loss takes (the soft-margin variant
/// drops `margin`).
pub(super) const MODEL: ArgSpec = req("model", Model, "the model trained");
pub(super) const DISTANCE: ArgSpec = opt(
    "distance",
    Choice(Similarity::BATCH_DISTANCES),
    "euclidean",
    "distance between embeddings (`cosine` is 1 - cosine similarity)",
);
pub(super) const MARGIN: ArgSpec = opt("margin", Float, "5.0", "triplet margin").at_least(0.0);

/// One batch: the embeddings `[n, d]`, their distances `[n, n]` and labels.
pub(super) struct Batch {
    pub dist: Tensor,
    pub labels: Vec<i64>,
    /// The distances, detached, row-major.
    pub values: Vec<f64>,
}

impl Batch {
    pub fn new(loss: &str, inputs: &LossInputs, metric: Similarity) -> Result<Batch> {
        let (cols, batch, _) = inputs.columns(loss, 1, Some(1))?;
        let Some(labels) = inputs.labels.as_ref() else {
            bail!("{loss} needs an integer class label per text");
        };
        if labels.elem_count() != batch {
            bail!("{loss} expects {batch} labels, got {:?}", labels.dims());
        }
        let labels = labels
            .flatten_all()?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?;
        let dist = pairwise_distances(metric, &cols[0])?;
        let values = dist.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        Ok(Batch {
            dist,
            labels,
            values,
        })
    }

    pub fn n(&self) -> usize {
        self.labels.len()
    }

    pub fn d(&self, i: usize, j: usize) -> f64 {
        self.values[i * self.n() + j]
    }

    /// Same label, different example.
    pub fn positive(&self, i: usize, j: usize) -> bool {
        i != j && self.labels[i] == self.labels[j]
    }

    pub fn negative(&self, i: usize, j: usize) -> bool {
        self.labels[i] != self.labels[j]
    }

    /// A `[n, n]` 0/1 mask in the distances' dtype.
    pub fn mask(&self, f: impl Fn(usize, usize) -> bool) -> Result<Tensor> {
        let n = self.n();
        let v: Vec<f64> = (0..n * n)
            .map(|k| f64::from(u8::from(f(k / n, k % n))))
            .collect();
        Tensor::from_vec(v, (n, n), self.dist.device())?.to_dtype(self.dist.dtype())
    }

    /// Column indices, one per row, as a `[n, 1]` gather index.
    pub fn index(&self, idx: Vec<u32>) -> Result<Tensor> {
        let n = idx.len();
        Tensor::from_vec(idx, (n, 1), self.dist.device())
    }

    /// The hardest positive distance per anchor, `[n, 1]`: the largest
    /// `mask_ap * d` of its row (0 when it has no positive).
    pub fn hardest_positive(&self) -> Result<Tensor> {
        let n = self.n();
        let ap = (self.mask(|i, j| self.positive(i, j))? * &self.dist)?;
        let pick = (0..n)
            .map(|i| {
                let v = |j: usize| {
                    if self.positive(i, j) {
                        self.d(i, j)
                    } else {
                        0.0
                    }
                };
                first_best(n, |a, b| v(a) > v(b))
            })
            .collect();
        ap.gather(&self.index(pick)?, 1)
    }

    /// The hardest negative distance per anchor, `[n, 1]`: the smallest of
    /// `d + max_row(d) * (1 - mask_an)` (so non-negatives count as the
    /// row's largest distance).
    pub fn hardest_negative(&self) -> Result<Tensor> {
        let n = self.n();
        let row_max_idx: Vec<u32> = (0..n)
            .map(|i| first_best(n, |a, b| self.d(i, a) > self.d(i, b)))
            .collect();
        let row_max = self.dist.gather(&self.index(row_max_idx.clone())?, 1)?;
        let not_neg = self.mask(|i, j| !self.negative(i, j))?;
        let an = (&self.dist + row_max.broadcast_mul(&not_neg)?)?;
        let pick = (0..n)
            .map(|i| {
                let m = self.d(i, row_max_idx[i] as usize);
                let v = |j: usize| self.d(i, j) + if self.negative(i, j) { 0.0 } else { m };
                first_best(n, |a, b| v(a) < v(b))
            })
            .collect();
        an.gather(&self.index(pick)?, 1)
    }
}

/// The first index in `0..n` that no later index beats (`better(a, b)`:
/// `a` is strictly better than `b`), as torch's `max`/`min` over a row.
pub(super) fn first_best(n: usize, better: impl Fn(usize, usize) -> bool) -> u32 {
    let mut best = 0;
    for j in 1..n {
        if better(j, best) {
            best = j;
        }
    }
    best as u32
}

/// `BatchHardTripletLossDistanceFunction`: Euclidean distances from the
/// Gram matrix (`|a|^2 - 2ab + |b|^2`, negatives clamped to 0, zero-safe
/// square root), or `1 - cos_sim`.
pub(super) fn pairwise_distances(metric: Similarity, e: &Tensor) -> Result<Tensor> {
    match metric {
        Similarity::Euclidean => {
            let n = e.dim(0)?;
            let dot = e.matmul(&e.t()?)?;
            let eye = Tensor::eye(n, dot.dtype(), dot.device())?;
            let sq = (&dot * eye)?.sum(1)?;
            let d = sq
                .unsqueeze(0)?
                .broadcast_add(&sq.unsqueeze(1)?)?
                .sub(&dot.affine(2.0, 0.0)?)?
                .relu()?;
            ops::safe_sqrt(&d)
        }
        Similarity::Cosine => ops::cos_sim_matrix(e, e)?.affine(-1.0, 1.0),
        other => bail!("{other} is not a distance of the batch triplet losses"),
    }
}
