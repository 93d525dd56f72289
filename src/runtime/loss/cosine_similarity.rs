//! `CosineSimilarityLoss`: mean squared error between `cos(u, v)` and the
//! pair's float score (sentence-transformers' defaults: `loss_fct =
//! MSELoss()`, `cos_score_transformation = Identity()`).

use candle_core::{Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::registry::{columns, req, ArgType::*, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "CosineSimilarityLoss",
        family: Family::Loss,
        doc: "Regresses the cosine similarity of two texts on a score in [0, 1] (mean squared error).",
        args: &[req("model", Model, "the model trained")],
        columns: Some(columns::PAIR_UNIT_SCORE),
        ..Component::BASE
    },
    build,
};

fn build(_: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(CosineSimilarityLoss))
}

#[derive(Debug, Clone, Default)]
pub struct CosineSimilarityLoss;

impl Loss for CosineSimilarityLoss {
    fn name(&self) -> &str {
        "CosineSimilarityLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(2))?;
        let scores = inputs.scores_for(self.name(), batch, cols[0].dtype(), cols[0].device())?;
        let cos = ops::torch_cosine_similarity(&cols[0], &cols[1])?;
        (cos - scores)?.sqr()?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // u = [(1,0), (1,1)], v = [(0,1), (1,0)]: cosines 0 and 1/sqrt(2).
        // Scores 0.5, 0.5: ((0 - 0.5)^2 + (1/sqrt(2) - 0.5)^2) / 2
        //   = (0.25 + 0.0428932...) / 2 = 0.1464466...
        let u = t2(&[vec![1.0, 0.0], vec![1.0, 1.0]]);
        let v = t2(&[vec![0.0, 1.0], vec![1.0, 0.0]]);
        let inputs = LossInputs::new(vec![u, v]).with_scores(t1(&[0.5, 0.5]));
        let loss = scalar(&CosineSimilarityLoss.forward(&inputs)?);
        let expected = (0.25 + (0.5f64.sqrt() - 0.5).powi(2)) / 2.0;
        assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
        assert!((expected - 0.146_446_609_4).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let inputs = LossInputs::new(vec![t2(&gen(0, 5, 4)), t2(&gen(1, 5, 4))])
            .with_scores(t1(&gen_scores(5)));
        let loss = scalar(&CosineSimilarityLoss.forward(&inputs)?);
        assert!((loss - 1.102844243516055).abs() < 1e-12, "{loss}");
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let scores = t1(&gen_scores(5));
        check_grads(&[gen(0, 5, 4), gen(1, 5, 4)], |t| {
            CosineSimilarityLoss.forward(&LossInputs::new(t.to_vec()).with_scores(scores.clone()))
        })
    }

    #[test]
    fn shape_errors() {
        let u = t2(&gen(0, 3, 4));
        let loss = CosineSimilarityLoss;
        // One column, missing scores, wrong score count, mismatched shapes.
        assert!(loss.forward(&LossInputs::new(vec![u.clone()])).is_err());
        assert!(loss
            .forward(&LossInputs::new(vec![u.clone(), u.clone()]))
            .is_err());
        let bad = LossInputs::new(vec![u.clone(), u.clone()]).with_scores(t1(&[1.0, 0.0]));
        assert!(loss.forward(&bad).is_err());
        let bad = LossInputs::new(vec![u, t2(&gen(1, 3, 5))]).with_scores(t1(&[1.0, 0.0, 1.0]));
        assert!(loss.forward(&bad).is_err());
    }
}
