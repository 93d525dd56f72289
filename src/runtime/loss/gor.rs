//! `GlobalOrthogonalRegularizationLoss` (Zhang et al. 2017): spreads the
//! embeddings of unrelated texts out. For each text column, over the
//! similarities `s_ij` of its embeddings (`i != j`, `n (n - 1)` of them):
//!
//! - the mean term `(mean s_ij)^2`, which pushes the average similarity to 0;
//! - the second-moment term `relu(mean s_ij^2 - 1/d)`, which penalises a
//!   second moment above that of uniformly spread unit vectors.
//!
//! Each term is aggregated over the columns (`mean` or `sum`), weighted,
//! and the two are added, as sentence-transformers' trainer adds the
//! `gor_mean` and `gor_second_moment` parts of the loss. Usually trained
//! next to a ranking loss, as a second objective on the same data.

use candle_core::{bail, Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::choices::Aggregation;
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family, Rule};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "GlobalOrthogonalRegularizationLoss",
        family: Family::Loss,
        doc: "Spreads embeddings out: penalises the squared mean similarity and the excess second moment of the similarities between different texts of each column. Train it next to a ranking loss.",
        args: &[
            req("model", Model, "the model trained"),
            opt("similarity", Choice(Similarity::NAMES), "cosine", "similarity between the texts of a column"),
            opt("mean_weight", Float, "1.0", "weight of the mean term (0 turns it off)").at_least(0.0),
            opt("second_moment_weight", Float, "1.0", "weight of the second-moment term (0 turns it off)").at_least(0.0),
            opt("aggregation", Choice(Aggregation::NAMES), "mean", "how the columns' terms combine"),
        ],
        columns: Some(columns::ANY_TEXTS),
        rules: &[Rule::AnyPositive(&["mean_weight", "second_moment_weight"])],
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(GlobalOrthogonalRegularizationLoss::new(
        a.choice("similarity").map_err(super::arg)?,
        a.f64("mean_weight").map_err(super::arg)?,
        a.f64("second_moment_weight").map_err(super::arg)?,
        a.choice("aggregation").map_err(super::arg)?,
    )?))
}

#[derive(Debug, Clone)]
pub struct GlobalOrthogonalRegularizationLoss {
    pub similarity: Similarity,
    pub mean_weight: f64,
    pub second_moment_weight: f64,
    pub aggregation: Aggregation,
}

impl GlobalOrthogonalRegularizationLoss {
    pub fn new(
        similarity: Similarity,
        mean_weight: f64,
        second_moment_weight: f64,
        aggregation: Aggregation,
    ) -> Result<Self> {
        let ok = |w: f64| w.is_finite() && w >= 0.0;
        if !ok(mean_weight)
            || !ok(second_moment_weight)
            || mean_weight + second_moment_weight == 0.0
        {
            bail!("GlobalOrthogonalRegularizationLoss: the weights must be non-negative and not both 0, got {mean_weight} and {second_moment_weight}");
        }
        Ok(GlobalOrthogonalRegularizationLoss {
            similarity,
            mean_weight,
            second_moment_weight,
            aggregation,
        })
    }

    /// The mean and second-moment terms of one column `[n, d]`.
    fn terms(&self, e: &Tensor) -> Result<(Tensor, Tensor)> {
        let (n, d) = e.dims2()?;
        let sims = self.similarity.matrix(e, e)?;
        let off = Tensor::eye(n, sims.dtype(), sims.device())?.affine(-1.0, 1.0)?;
        let sims = (sims * off)?;
        let pairs = (n * n.saturating_sub(1)).max(1) as f64;
        let mean = sims.sum_all()?.affine(1.0 / pairs, 0.0)?.sqr()?;
        let second = sims
            .sqr()?
            .sum_all()?
            .affine(1.0 / pairs, -1.0 / d as f64)?
            .relu()?;
        Ok((mean, second))
    }
}

impl Loss for GlobalOrthogonalRegularizationLoss {
    fn name(&self) -> &str {
        "GlobalOrthogonalRegularizationLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, _, _) = inputs.columns(self.name(), 1, None)?;
        let (mut means, mut seconds) = (Vec::new(), Vec::new());
        for c in &cols {
            let (m, s) = self.terms(c)?;
            means.push(m);
            seconds.push(s);
        }
        let combine = |v: Vec<Tensor>| -> Result<Tensor> {
            let total = Tensor::stack(&v, 0)?.sum_all()?;
            match self.aggregation {
                Aggregation::Sum => Ok(total),
                Aggregation::Mean => total.affine(1.0 / v.len() as f64, 0.0),
            }
        };
        let mean = combine(means)?.affine(self.mean_weight, 0.0)?;
        let second = combine(seconds)?.affine(self.second_moment_weight, 0.0)?;
        ops::float(&(mean + second)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn gor(
        sim: Similarity,
        mw: f64,
        sw: f64,
        agg: Aggregation,
    ) -> GlobalOrthogonalRegularizationLoss {
        GlobalOrthogonalRegularizationLoss::new(sim, mw, sw, agg).expect("valid weights")
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Three 2-d texts (1,0), (0,1), (1,1): cosines 0, 1/sqrt2, 1/sqrt2
        // off the diagonal, each twice among 6 pairs. Mean = sqrt2/3,
        // squared 2/9; second moment = (4 * 1/2) / 6 = 1/3, less 1/d = 1/2
        // is negative: relu gives 0.
        let e = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let got = columns_value(
            &gor(Similarity::Cosine, 1.0, 1.0, Aggregation::Mean),
            std::slice::from_ref(&e),
        )?;
        assert!((got - 2.0 / 9.0).abs() < 1e-12, "{got}");
        // Dot products 0, 1, 1 (twice each): mean 4/6, squared 4/9;
        // second moment 4/6 - 1/2 = 1/6. Sum over two equal columns, weights 2 and 3.
        let got = columns_value(
            &gor(Similarity::Dot, 2.0, 3.0, Aggregation::Sum),
            &[e.clone(), e],
        )?;
        let want = 2.0 * (4.0 / 9.0 * 2.0) + 3.0 * (1.0 / 6.0 * 2.0);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        // scripts/loss_reference_values.py: gor_*.
        let (u, v, w) = (gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4));
        let cases: [(f64, f64); 3] = [
            (
                columns_value(
                    &gor(Similarity::Cosine, 1.0, 1.0, Aggregation::Mean),
                    &[u.clone(), v.clone()],
                )?,
                0.3714112343934242,
            ),
            (
                columns_value(
                    &gor(Similarity::Dot, 0.5, 2.0, Aggregation::Sum),
                    &[u.clone(), v.clone(), w],
                )?,
                15.060584786029752,
            ),
            (
                columns_value(&gor(Similarity::Cosine, 0.0, 1.0, Aggregation::Sum), &[u])?,
                0.28256108054544793,
            ),
        ];
        assert_reference(&cases);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3)];
        for sim in [Similarity::Cosine, Similarity::Dot] {
            let loss = gor(sim, 1.0, 0.5, Aggregation::Mean);
            check_grads(&cols, |t| loss.forward(&LossInputs::new(t.to_vec())))?;
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_weights() {
        assert!(GlobalOrthogonalRegularizationLoss::new(
            Similarity::Cosine,
            0.0,
            0.0,
            Aggregation::Mean
        )
        .is_err());
        assert!(GlobalOrthogonalRegularizationLoss::new(
            Similarity::Cosine,
            -1.0,
            1.0,
            Aggregation::Mean
        )
        .is_err());
    }
}
