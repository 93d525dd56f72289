//! `MegaBatchMarginLoss` (after ParaNMT, Wieting and Gimpel 2018): for
//! (anchor, positive) pairs in a large batch, each anchor's hardest
//! negative is the most similar positive of another pair; the loss is the
//! mean over the batch of
//! `relu(positive_margin - cos(a_i, p_i)) + relu(max_j!=i cos(a_i, p_j) - negative_margin)`.
//!
//! The hardest negative needs the whole batch, and the batches this loss
//! wants are large (500 or more), so by default it runs under GradCache
//! (`use_mini_batched_version`, as in sentence-transformers): the texts are
//! embedded `mini_batch_size` at a time and the gradients are the same.

use candle_core::{Result, Tensor, D};

use super::cached::Cached;
use super::{ops, Loss, LossCx, LossEntry, LossInputs};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family, Rule};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "MegaBatchMarginLoss",
        family: Family::Loss,
        doc: "For (anchor, positive) pairs, mines each anchor's hardest negative among the other pairs' positives and penalises cos(anchor, positive) below positive_margin and cos(anchor, hardest negative) above negative_margin. Meant for large batches (500 or more), embedded mini_batch_size at a time.",
        args: &[
            req("model", Model, "the model trained"),
            opt("positive_margin", Float, "0.8", "cos(anchor, positive) should exceed this"),
            opt("negative_margin", Float, "0.3", "cos(anchor, hardest negative) should stay below this"),
            opt("use_mini_batched_version", Bool, "true", "embed `mini_batch_size` texts at a time (GradCache): the same gradients in bounded memory, each text embedded twice"),
            opt("mini_batch_size", Count, "50", "texts embedded at a time with `use_mini_batched_version`").at_least(1.0),
        ],
        columns: Some(columns::PAIR),
        rules: &[Rule::Needs("mini_batch_size", "use_mini_batched_version")],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    let loss = MegaBatchMarginLoss {
        positive_margin: a.f64("positive_margin").map_err(super::arg)?,
        negative_margin: a.f64("negative_margin").map_err(super::arg)?,
    };
    if !a.bool("use_mini_batched_version").map_err(super::arg)? {
        return Ok(Box::new(loss));
    }
    let n = a.usize("mini_batch_size").map_err(super::arg)?;
    Ok(Box::new(Cached::with_name("MegaBatchMarginLoss", loss, n)))
}

#[derive(Debug, Clone)]
pub struct MegaBatchMarginLoss {
    pub positive_margin: f64,
    pub negative_margin: f64,
}

impl Loss for MegaBatchMarginLoss {
    fn name(&self) -> &str {
        "MegaBatchMarginLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(2))?;
        let cos = ops::cos_sim_matrix(&cols[0], &cols[1])?;
        let eye = Tensor::eye(batch, candle_core::DType::U8, cos.device())?;
        let positive = (&cos * eye.to_dtype(cos.dtype())?)?.sum(D::Minus1)?;
        let minus_inf =
            Tensor::full(f32::NEG_INFINITY, (batch, batch), cos.device())?.to_dtype(cos.dtype())?;
        let hardest = eye.where_cond(&minus_inf, &cos)?.max(D::Minus1)?;
        let pos_term = (positive.neg()? + self.positive_margin)?.relu()?;
        let neg_term = (hardest - self.negative_margin)?.relu()?;
        (pos_term + neg_term)?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn loss(pm: f64, nm: f64) -> MegaBatchMarginLoss {
        MegaBatchMarginLoss {
            positive_margin: pm,
            negative_margin: nm,
        }
    }

    fn value(l: &MegaBatchMarginLoss, cols: &[Vec<Vec<f64>>]) -> Result<f64> {
        Ok(scalar(&l.forward(&LossInputs::new(
            cols.iter().map(|c| t2(c)).collect(),
        ))?))
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // a0 = (1, 0), a1 = (0, 1); p0 = (1, 1), p1 = (0, 1).
        // cos: a0.p0 = 1/sqrt 2, a0.p1 = 0; a1.p0 = 1/sqrt 2, a1.p1 = 1.
        // Row 0: relu(0.8 - 0.7071) + relu(0 - 0.3) = 0.0929.
        // Row 1: relu(0.8 - 1) + relu(0.7071 - 0.3) = 0.4071. Mean 0.25.
        let a = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let p = vec![vec![1.0, 1.0], vec![0.0, 1.0]];
        let got = value(&loss(0.8, 0.3), &[a, p])?;
        assert!((got - 0.25).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: mega_batch_margin_*.
        assert_reference(&[
            (
                value(&loss(0.8, 0.3), &[gen(0, 5, 4), gen(1, 5, 4)])?,
                1.7522066167186796,
            ),
            (
                value(&loss(0.5, -0.2), &[gen(1, 5, 4), gen(2, 5, 4)])?,
                1.7039382571715471,
            ),
        ]);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3)];
        for (pm, nm) in [(0.8, 0.3), (0.2, -0.9)] {
            let l = loss(pm, nm);
            check_grads(&cols, |t| l.forward(&LossInputs::new(t.to_vec())))?;
        }
        Ok(())
    }
}
