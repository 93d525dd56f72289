//! `MultipleNegativesRankingLoss` (InfoNCE with in-batch negatives) and its
//! symmetric variant.
//!
//! For anchors `a_i` and candidates = all positives of the batch followed by
//! all negatives (columns 3, 4, ...), `scores = sim(a, candidates) * scale`
//! and the loss is the cross-entropy with target `i` (the anchor's own
//! positive). The symmetric loss averages that with the cross-entropy of
//! each positive against all anchors (sentence-transformers 6.2:
//! directions `query_to_doc` + `doc_to_query`, `partition_mode =
//! "per_direction"`, which is `(CE_forward + CE_backward) / 2`).

use candle_core::{bail, Result, Tensor};

use super::{ops, Loss, LossInputs, Similarity};

fn check_scale(scale: f64) -> Result<()> {
    if !(scale > 0.0 && scale.is_finite()) {
        bail!("scale must be a positive number, got {scale}");
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct MultipleNegativesRankingLoss {
    /// Inverse temperature; default 20.
    pub scale: f64,
    /// Default cosine (`util.cos_sim`).
    pub similarity: Similarity,
}

impl Default for MultipleNegativesRankingLoss {
    fn default() -> Self {
        MultipleNegativesRankingLoss {
            scale: 20.0,
            similarity: Similarity::Cosine,
        }
    }
}

impl MultipleNegativesRankingLoss {
    pub fn new(scale: f64, similarity: Similarity) -> Result<Self> {
        check_scale(scale)?;
        Ok(MultipleNegativesRankingLoss { scale, similarity })
    }
}

/// `[batch, batch * (columns - 1)]` scaled scores of anchors against all
/// candidates, and the diagonal targets.
fn forward_scores(
    cols: &[Tensor],
    batch: usize,
    scale: f64,
    sim: Similarity,
) -> Result<(Tensor, Tensor)> {
    let candidates = Tensor::cat(&cols[1..], 0)?;
    let scores = sim.matrix(&cols[0], &candidates)?.affine(scale, 0.0)?;
    let targets = ops::diagonal_targets(batch, &scores)?;
    Ok((scores, targets))
}

impl Loss for MultipleNegativesRankingLoss {
    fn name(&self) -> &str {
        "MultipleNegativesRankingLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, None)?;
        let (scores, targets) = forward_scores(&cols, batch, self.scale, self.similarity)?;
        ops::cross_entropy(&scores, &targets)
    }
}

#[derive(Debug, Clone)]
pub struct MultipleNegativesSymmetricRankingLoss {
    /// Inverse temperature; default 20.
    pub scale: f64,
    /// Default cosine (`util.cos_sim`).
    pub similarity: Similarity,
}

impl Default for MultipleNegativesSymmetricRankingLoss {
    fn default() -> Self {
        MultipleNegativesSymmetricRankingLoss {
            scale: 20.0,
            similarity: Similarity::Cosine,
        }
    }
}

impl MultipleNegativesSymmetricRankingLoss {
    pub fn new(scale: f64, similarity: Similarity) -> Result<Self> {
        check_scale(scale)?;
        Ok(MultipleNegativesSymmetricRankingLoss { scale, similarity })
    }
}

impl Loss for MultipleNegativesSymmetricRankingLoss {
    fn name(&self) -> &str {
        "MultipleNegativesSymmetricRankingLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, None)?;
        let (scores, targets) = forward_scores(&cols, batch, self.scale, self.similarity)?;
        let forward = ops::cross_entropy(&scores, &targets)?;
        // Each positive against all anchors (negatives take no part).
        let backward_scores = self
            .similarity
            .matrix(&cols[1], &cols[0])?
            .affine(self.scale, 0.0)?;
        let backward = ops::cross_entropy(&backward_scores, &targets)?;
        (forward + backward)? * 0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn value(loss: &dyn Loss, cols: &[Vec<Vec<f64>>]) -> Result<f64> {
        Ok(scalar(&loss.forward(&LossInputs::new(
            cols.iter().map(|c| t2(c)).collect(),
        ))?))
    }

    #[test]
    fn hand_computed_values() -> Result<()> {
        // Anchors (1,0), (0,1); positives (1,0), (1,1); scale 1, cosine.
        // Scores [[1, 1/r], [0, 1/r]] with r = sqrt(2).
        // Row 0 (target 0): log(e^1 + e^{1/r}) - 1.
        // Row 1 (target 1): log(e^0 + e^{1/r}) - 1/r.
        let r = 2f64.sqrt();
        let a = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let p = vec![vec![1.0, 0.0], vec![1.0, 1.0]];
        let row0 = (1f64.exp() + (1.0 / r).exp()).ln() - 1.0;
        let row1 = (1.0 + (1.0 / r).exp()).ln() - 1.0 / r;
        let mnrl = MultipleNegativesRankingLoss::new(1.0, Similarity::Cosine)?;
        let got = value(&mnrl, &[a.clone(), p.clone()])?;
        assert!((got - (row0 + row1) / 2.0).abs() < 1e-12, "{got}");
        // Backward direction: positive j against anchors, the transpose
        // [[1, 0], [1/r, 1/r]]: row 0: log(e + 1) - 1; row 1: log 2.
        let back = ((1f64.exp() + 1.0).ln() - 1.0 + 2f64.ln()) / 2.0;
        let sym = MultipleNegativesSymmetricRankingLoss::new(1.0, Similarity::Cosine)?;
        let got = value(&sym, &[a, p])?;
        assert!(
            (got - ((row0 + row1) / 2.0 + back) / 2.0).abs() < 1e-12,
            "{got}"
        );
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let (u, v, w, x) = (gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4), gen(3, 5, 4));
        let mnrl = MultipleNegativesRankingLoss::default();
        let sym = MultipleNegativesSymmetricRankingLoss::default();
        let dot = MultipleNegativesRankingLoss::new(1.0, Similarity::Dot)?;
        let cases: [(f64, f64); 5] = [
            (value(&mnrl, &[u.clone(), v.clone()])?, 25.11802235861719),
            (
                value(&mnrl, &[u.clone(), v.clone(), w.clone()])?,
                25.56225891495356,
            ),
            (
                value(&dot, &[u.clone(), v.clone(), w.clone(), x])?,
                4.49321865238892,
            ),
            (value(&sym, &[u.clone(), v.clone()])?, 25.077492384553633),
            (value(&sym, &[u, v, w])?, 25.299610662721822),
        ];
        for (got, want) in cases {
            assert!((got - want).abs() < 1e-10, "{got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let mnrl = MultipleNegativesRankingLoss::new(3.0, Similarity::Cosine)?;
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        check_grads(&cols, |t| mnrl.forward(&LossInputs::new(t.to_vec())))?;
        let dot = MultipleNegativesRankingLoss::new(1.0, Similarity::Dot)?;
        check_grads(&cols, |t| dot.forward(&LossInputs::new(t.to_vec())))?;
        let sym = MultipleNegativesSymmetricRankingLoss::new(2.0, Similarity::Cosine)?;
        check_grads(&cols, |t| sym.forward(&LossInputs::new(t.to_vec())))
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(MultipleNegativesRankingLoss::new(0.0, Similarity::Cosine).is_err());
        assert!(MultipleNegativesSymmetricRankingLoss::new(f64::NAN, Similarity::Dot).is_err());
        let one = LossInputs::new(vec![t2(&gen(0, 2, 2))]);
        assert!(MultipleNegativesRankingLoss::default()
            .forward(&one)
            .is_err());
    }
}
