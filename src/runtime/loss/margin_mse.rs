//! `MarginMSELoss` (Hofstätter et al. 2021): distillation of a teacher's
//! margins. For (query, positive, negative) and the teacher's margin
//! `m = t(query, positive) - t(query, negative)` given as the score column,
//! the loss is `mean((sim(q, p) - sim(q, n) - m)^2)`; `sim` is the dot
//! product by default, as in sentence-transformers.
//!
//! The margins come from a data column (precomputed by the teacher, as in
//! the MS MARCO recipes). With one negative a row's label is one number;
//! several negatives would need a list of margins per row, which the data
//! sources do not hold yet.

use candle_core::{Result, Tensor};

use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MarginMSELoss",
        family: Family::Loss,
        doc: "Distils a teacher's margins: the mean squared error between sim(query, positive) - sim(query, negative) and the teacher's margin in the score column.",
        args: &[
            req("model", Model, "the model trained"),
            opt("similarity", Choice(Similarity::NAMES), "dot", "the student's similarity (the teacher's margins should use the same scale)"),
        ],
        columns: Some(columns::TRIPLET_MARGIN),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(MarginMSELoss {
        similarity: a.choice("similarity").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct MarginMSELoss {
    pub similarity: Similarity,
}

impl Loss for MarginMSELoss {
    fn name(&self) -> &str {
        "MarginMSELoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 3, Some(3))?;
        let margins = inputs.scores_for(self.name(), batch, cols[0].dtype(), cols[0].device())?;
        let pos = self.similarity.pairwise(&cols[0], &cols[1])?;
        let neg = self.similarity.pairwise(&cols[0], &cols[2])?;
        ((pos - neg)? - margins)?.sqr()?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn triplet_value(loss: &MarginMSELoss, cols: &[Vec<Vec<f64>>], scores: &[f64]) -> Result<f64> {
        scored_value(loss, cols, scores)
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // q (1, 2), p (3, 0), n (0, 1): dot margin 3 - 2 = 1; teacher 0.5.
        // q (0, 1), p (0, 2), n (1, 1): margin 2 - 1 = 1; teacher 2.
        // Loss = ((1 - 0.5)^2 + (1 - 2)^2) / 2 = 0.625.
        let q = vec![vec![1.0, 2.0], vec![0.0, 1.0]];
        let p = vec![vec![3.0, 0.0], vec![0.0, 2.0]];
        let n = vec![vec![0.0, 1.0], vec![1.0, 1.0]];
        let loss = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let got = triplet_value(&loss, &[q, p, n], &[0.5, 2.0])?;
        assert!((got - 0.625).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: margin_mse_*.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let scores = gen_scores(5);
        let dot = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let cos = MarginMSELoss {
            similarity: Similarity::Cosine,
        };
        assert_reference(&[
            (triplet_value(&dot, &cols, &scores)?, 0.9750074888546381),
            (triplet_value(&cos, &cols, &scores)?, 0.4487982160153129),
        ]);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        let scores = t1(&gen_scores(4));
        for similarity in Similarity::all() {
            let loss = MarginMSELoss { similarity };
            check_grads(&cols, |t| {
                loss.forward(&LossInputs::new(t.to_vec()).with_scores(scores.clone()))
            })?;
        }
        Ok(())
    }

    #[test]
    fn needs_three_columns_and_a_margin() {
        let loss = MarginMSELoss {
            similarity: Similarity::Dot,
        };
        let two = LossInputs::new(vec![t2(&gen(0, 2, 2)), t2(&gen(1, 2, 2))])
            .with_scores(t1(&[0.0, 1.0]));
        assert!(loss.forward(&two).is_err());
        let unlabelled = LossInputs::new(vec![
            t2(&gen(0, 2, 2)),
            t2(&gen(1, 2, 2)),
            t2(&gen(2, 2, 2)),
        ]);
        assert!(loss.forward(&unlabelled).is_err());
    }
}
