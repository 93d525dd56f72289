//! `MultipleNegativesRankingLoss` (InfoNCE with in-batch negatives).
//!
//! For anchors `a_i` and candidates = all positives of the batch followed by
//! all negatives (columns 3, 4, ...), `scores = sim(a, candidates) * scale`
//! and the loss is the cross-entropy with target `i` (the anchor's own
//! positive). `sim` is any [`Similarity`]: cosine (the default), dot
//! product, or a negative Euclidean or Manhattan distance
//! (sentence-transformers' `similarity_fct = util.euclidean_sim`, ...).

use candle_core::{bail, Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family};

/// The arguments of the in-batch negatives losses.
pub(super) const ARGS: &[crate::registry::ArgSpec] = &[
    req("model", Model, "the model trained"),
    opt("scale", Float, "20.0", "inverse temperature").above(0.0),
    opt(
        "similarity",
        Choice(Similarity::NAMES),
        "cosine",
        "similarity function; euclidean and manhattan use negative distances",
    ),
];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MultipleNegativesRankingLoss",
        family: Family::Loss,
        doc: "In-batch negatives ranking loss (InfoNCE): each anchor must pick its positive among all positives (and hard negatives) of the batch.",
        args: ARGS,
        columns: Some(columns::RANKING),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(MultipleNegativesRankingLoss::new(
        a.f64("scale").map_err(super::arg)?,
        a.choice("similarity").map_err(super::arg)?,
    )?))
}

pub(super) fn check_scale(scale: f64) -> Result<()> {
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
pub(super) fn forward_scores(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

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
        let got = columns_value(&mnrl, &[a.clone(), p.clone()])?;
        assert!((got - (row0 + row1) / 2.0).abs() < 1e-12, "{got}");
        // Negative Euclidean distances: [[0, -1], [-sqrt 2, -1]].
        let euc = MultipleNegativesRankingLoss::new(1.0, Similarity::Euclidean)?;
        let got = columns_value(&euc, &[a, p])?;
        let e0 = (1.0 + (-1f64).exp()).ln();
        let e1 = ((-r).exp() + (-1f64).exp()).ln() + 1.0;
        assert!((got - (e0 + e1) / 2.0).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let (u, v, w, x) = (gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4), gen(3, 5, 4));
        let mnrl = MultipleNegativesRankingLoss::default();
        let dot = MultipleNegativesRankingLoss::new(1.0, Similarity::Dot)?;
        let euc = MultipleNegativesRankingLoss::new(20.0, Similarity::Euclidean)?;
        let man = MultipleNegativesRankingLoss::new(1.0, Similarity::Manhattan)?;
        let cases: [(f64, f64); 5] = [
            (
                columns_value(&mnrl, &[u.clone(), v.clone()])?,
                25.11802235861719,
            ),
            (
                columns_value(&mnrl, &[u.clone(), v.clone(), w.clone()])?,
                25.56225891495356,
            ),
            (
                columns_value(&dot, &[u.clone(), v.clone(), w.clone(), x])?,
                4.49321865238892,
            ),
            (
                columns_value(&euc, &[u.clone(), v.clone()])?,
                39.31313515112198,
            ),
            (columns_value(&man, &[u, v, w])?, 4.632401488247214),
        ];
        assert_reference(&cases);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        for sim in Similarity::all() {
            let loss = MultipleNegativesRankingLoss::new(2.0, sim)?;
            check_grads(&cols, |t| loss.forward(&LossInputs::new(t.to_vec())))?;
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(MultipleNegativesRankingLoss::new(0.0, Similarity::Cosine).is_err());
        let one = LossInputs::new(vec![t2(&gen(0, 2, 2))]);
        assert!(MultipleNegativesRankingLoss::default()
            .forward(&one)
            .is_err());
    }
}
