//! `MultipleNegativesSymmetricRankingLoss`: MultipleNegativesRankingLoss in
//! both directions. The forward direction is the anchors' cross-entropy over
//! all positives and negatives of the batch; the backward one each
//! positive's cross-entropy over all anchors (negatives take no part). The
//! loss is their mean (sentence-transformers 6.2: directions
//! `query_to_doc` + `doc_to_query`, `partition_mode = "per_direction"`).

use candle_core::{Result, Tensor};

use super::mnrl::{check_scale, forward_scores};
use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MultipleNegativesSymmetricRankingLoss",
        family: Family::Loss,
        doc: "MultipleNegativesRankingLoss in both directions (anchor to positive and positive to anchor).",
        args: super::mnrl::ARGS,
        columns: Some(columns::RANKING),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(MultipleNegativesSymmetricRankingLoss::new(
        a.f64("scale").map_err(super::arg)?,
        a.choice("similarity").map_err(super::arg)?,
    )?))
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

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Anchors (1,0), (0,1); positives (1,0), (1,1); scale 1, cosine.
        // Forward rows as in MultipleNegativesRankingLoss; backward: the
        // transpose [[1, 0], [1/r, 1/r]]: row 0: log(e + 1) - 1; row 1: log 2.
        let r = 2f64.sqrt();
        let row0 = (1f64.exp() + (1.0 / r).exp()).ln() - 1.0;
        let row1 = (1.0 + (1.0 / r).exp()).ln() - 1.0 / r;
        let back = ((1f64.exp() + 1.0).ln() - 1.0 + 2f64.ln()) / 2.0;
        let sym = MultipleNegativesSymmetricRankingLoss::new(1.0, Similarity::Cosine)?;
        let got = columns_value(
            &sym,
            &[
                vec![vec![1.0, 0.0], vec![0.0, 1.0]],
                vec![vec![1.0, 0.0], vec![1.0, 1.0]],
            ],
        )?;
        assert!(
            (got - ((row0 + row1) / 2.0 + back) / 2.0).abs() < 1e-12,
            "{got}"
        );
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let (u, v, w) = (gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4));
        let sym = MultipleNegativesSymmetricRankingLoss::default();
        let cases: [(f64, f64); 2] = [
            (
                columns_value(&sym, &[u.clone(), v.clone()])?,
                25.077492384553633,
            ),
            (columns_value(&sym, &[u, v, w])?, 25.299610662721822),
        ];
        assert_reference(&cases);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        let sym = MultipleNegativesSymmetricRankingLoss::new(2.0, Similarity::Cosine)?;
        check_grads(&cols, |t| sym.forward(&LossInputs::new(t.to_vec())))?;
        let man = MultipleNegativesSymmetricRankingLoss::new(1.0, Similarity::Manhattan)?;
        check_grads(&cols, |t| man.forward(&LossInputs::new(t.to_vec())))
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(MultipleNegativesSymmetricRankingLoss::new(f64::NAN, Similarity::Dot).is_err());
    }
}
