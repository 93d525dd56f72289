//! Differentiable building blocks shared by the losses, composed from candle
//! ops that all have a backward pass.

use candle_core::{bail, DType, Result, Tensor, D};

pub use crate::registry::choices::Similarity;

/// `t` in a float dtype that losses compute in: f32 and f64 are kept, half
/// precision is upcast to f32, anything else is an error.
pub fn float(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F32 | DType::F64 => Ok(t.clone()),
        DType::F16 | DType::BF16 => t.to_dtype(DType::F32),
        other => bail!("embeddings must be a float tensor, got {other:?}"),
    }
}

/// Rows of `x` [n, d] scaled to unit L2 norm, `x / max(||x||, eps)` as
/// `torch.nn.functional.normalize`.
pub fn normalize_rows(x: &Tensor, eps: f64) -> Result<Tensor> {
    let sq = x.sqr()?.sum_keepdim(1)?;
    let norm = sq.maximum(eps * eps)?.sqrt()?;
    x.broadcast_div(&norm)
}

/// `util.pairwise_cos_sim`: cosine of each row of `a` with the same row of
/// `b`, `[n]` (normalisation eps 1e-12).
pub fn pairwise_cos_sim(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (normalize_rows(a, 1e-12)? * normalize_rows(b, 1e-12)?)?.sum(1)
}

/// `torch.cosine_similarity(a, b)` along dim 1 (eps 1e-8), `[n]`.
pub fn torch_cosine_similarity(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (normalize_rows(a, 1e-8)? * normalize_rows(b, 1e-8)?)?.sum(1)
}

/// `util.cos_sim`: the `[n, m]` matrix of cosines between rows of `a` and
/// rows of `b`.
pub fn cos_sim_matrix(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    normalize_rows(a, 1e-12)?.matmul(&normalize_rows(b, 1e-12)?.t()?)
}

impl Similarity {
    /// The `[n, m]` matrix of similarities between rows of `a` and rows of
    /// `b` (`util.cos_sim`, `dot_score`, `euclidean_sim`, `manhattan_sim`):
    /// larger is more alike.
    pub fn matrix(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Similarity::Cosine => cos_sim_matrix(a, b),
            Similarity::Dot => a.matmul(&b.t()?),
            Similarity::Euclidean => distance_matrix(a, b, 2)?.neg(),
            Similarity::Manhattan => distance_matrix(a, b, 1)?.neg(),
        }
    }

    /// The `[n]` similarities of each row of `a` with the same row of `b`
    /// (`util.pairwise_*_sim`).
    pub fn pairwise(self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        match self {
            Similarity::Cosine => pairwise_cos_sim(a, b),
            Similarity::Dot => (a * b)?.sum(1),
            Similarity::Euclidean => safe_sqrt(&(a - b)?.sqr()?.sum(1)?)?.neg(),
            Similarity::Manhattan => (a - b)?.abs()?.sum(1)?.neg(),
        }
    }
}

/// The `[n]` distances of sentence-transformers' `SiameseDistanceMetric`
/// (ContrastiveLoss, OnlineContrastiveLoss): `1 - cosine` (torch's
/// `cosine_similarity`, eps 1e-8), and `F.pairwise_distance` with p = 2 or
/// 1, which adds eps = 1e-6 to the difference before taking its norm.
pub fn siamese_distance(metric: Similarity, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match metric {
        Similarity::Cosine => torch_cosine_similarity(a, b)?.affine(-1.0, 1.0),
        Similarity::Euclidean => safe_sqrt(&(a - b)?.affine(1.0, 1e-6)?.sqr()?.sum(1)?),
        Similarity::Manhattan => (a - b)?.affine(1.0, 1e-6)?.abs()?.sum(1),
        Similarity::Dot => bail!("the dot product is not a distance"),
    }
}

/// The `[n]` distances of sentence-transformers' `TripletDistanceMetric`:
/// `1 - pairwise_cos_sim`, and the Euclidean and Manhattan norms of the
/// difference (the negated `pairwise_*_sim`).
pub fn triplet_distance(metric: Similarity, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match metric {
        Similarity::Cosine => pairwise_cos_sim(a, b)?.affine(-1.0, 1.0),
        Similarity::Dot => bail!("the dot product is not a distance"),
        other => other.pairwise(a, b)?.neg(),
    }
}

/// `torch.cdist(a, b, p)` for p = 1 or 2, `[n, m]`, computed on the
/// differences (exact, and with a zero gradient at zero distance, as
/// torch's). `[n, m, d]` memory: fine for batch-sized matrices.
pub fn distance_matrix(a: &Tensor, b: &Tensor, p: u8) -> Result<Tensor> {
    let (n, d) = a.dims2()?;
    let (m, d2) = b.dims2()?;
    if d != d2 {
        bail!("distance matrix of widths {d} and {d2}");
    }
    let diff = a
        .unsqueeze(1)?
        .broadcast_as((n, m, d))?
        .broadcast_sub(&b.unsqueeze(0)?)?;
    match p {
        1 => diff.abs()?.sum(2),
        _ => safe_sqrt(&diff.sqr()?.sum(2)?),
    }
}

/// `sqrt(x)` whose gradient is 0 (not infinite) where `x` is 0, as torch
/// defines the norm's gradient at the origin.
pub fn safe_sqrt(x: &Tensor) -> Result<Tensor> {
    // With z = 1 where x is 0 (a constant): sqrt(x + z) * (1 - z) is
    // sqrt(x) everywhere, and its gradient (1 - z) / (2 sqrt(x + z)) is 0
    // where x is 0 instead of infinite.
    let zero = x.eq(0.0)?.to_dtype(x.dtype())?;
    let one_minus = zero.affine(-1.0, 1.0)?;
    (x + &zero)?.sqrt()? * one_minus
}

/// `torch.logsumexp(x, dim=-1)` of a 2-d tensor, `[n]`. The shift by the row
/// maximum is detached: the result does not depend on it, so neither does
/// the gradient.
pub fn logsumexp_rows(x: &Tensor) -> Result<Tensor> {
    let m = x.max_keepdim(D::Minus1)?.detach();
    let s = x.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()?;
    (s + m)?.squeeze(D::Minus1)
}

/// Integer class targets as a `[batch, 1]` u32 tensor, checked against the
/// batch size and, when given, the number of classes.
pub fn class_targets(
    loss: &str,
    labels: Option<&Tensor>,
    batch: usize,
    num_classes: Option<usize>,
) -> Result<Tensor> {
    let Some(labels) = labels else {
        bail!("{loss} needs an integer label per example");
    };
    if labels.elem_count() != batch {
        bail!(
            "{loss} expects {batch} labels (one per example), got shape {:?}",
            labels.dims()
        );
    }
    let values: Vec<i64> = match labels.dtype() {
        DType::U8 | DType::U32 | DType::I64 => {
            labels.flatten_all()?.to_dtype(DType::I64)?.to_vec1()?
        }
        other => bail!("{loss}: labels must be integers (u32 or i64), got {other:?}"),
    };
    let mut out = Vec::with_capacity(batch);
    for v in values {
        let ok =
            v >= 0 && num_classes.is_none_or(|k| (v as u64) < k as u64) && v <= u32::MAX as i64;
        if !ok {
            match num_classes {
                Some(k) => bail!("{loss}: label {v} is outside 0..{k}"),
                None => bail!("{loss}: label {v} is not a class index"),
            }
        }
        out.push(v as u32);
    }
    Tensor::from_vec(out, (batch, 1), labels.device())
}

/// `torch.nn.functional.cross_entropy(logits, targets)` with mean
/// reduction: `logits` `[n, k]`, `targets` `[n, 1]` u32 from
/// [`class_targets`] or built from known indices.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let lse = logsumexp_rows(logits)?;
    let picked = logits.gather(targets, 1)?.squeeze(1)?;
    (lse - picked)?.mean_all()
}

/// Targets `0..n` as a `[n, 1]` u32 tensor on `like`'s device.
pub fn diagonal_targets(n: usize, like: &Tensor) -> Result<Tensor> {
    Tensor::arange(0u32, n as u32, like.device())?.reshape((n, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cross_entropy_matches_hand_value() -> Result<()> {
        // logits [[0, ln 3], [ln 2, 0]], targets [1, 0]:
        // row 0: -log(3/4); row 1: -log(2/3); mean = (log(4/3) + log(3/2)) / 2 = log(2)/2.
        let l = Tensor::new(&[[0.0f64, 3f64.ln()], [2f64.ln(), 0.0]], &Device::Cpu)?;
        let t = Tensor::new(&[[1u32], [0]], &Device::Cpu)?;
        let v = cross_entropy(&l, &t)?.to_vec0::<f64>()?;
        assert!((v - 2f64.ln() / 2.0).abs() < 1e-12, "{v}");
        Ok(())
    }

    #[test]
    fn class_targets_rejects_bad_labels() -> Result<()> {
        let dev = Device::Cpu;
        let l = Tensor::new(&[0i64, 3], &dev)?;
        assert!(class_targets("L", Some(&l), 2, Some(3)).is_err());
        assert!(class_targets("L", Some(&l), 3, None).is_err());
        let neg = Tensor::new(&[-1i64], &dev)?;
        assert!(class_targets("L", Some(&neg), 1, None).is_err());
        let f = Tensor::new(&[0.0f32], &dev)?;
        assert!(class_targets("L", Some(&f), 1, None).is_err());
        assert!(class_targets("L", None, 1, None).is_err());
        let ok = class_targets("L", Some(&Tensor::new(&[2u32, 0], &dev)?), 2, Some(3))?;
        assert_eq!(ok.to_vec2::<u32>()?, vec![vec![2], vec![0]]);
        Ok(())
    }

    #[test]
    fn normalize_handles_zero_rows() -> Result<()> {
        let x = Tensor::new(&[[0.0f64, 0.0], [3.0, 4.0]], &Device::Cpu)?;
        let n = normalize_rows(&x, 1e-12)?.to_vec2::<f64>()?;
        assert_eq!(n[0], vec![0.0, 0.0]);
        assert!((n[1][0] - 0.6).abs() < 1e-15 && (n[1][1] - 0.8).abs() < 1e-15);
        Ok(())
    }
}
