//! `ContrastiveLoss` (Hadsell et al. 2006) on pairs labelled 1 (similar) or
//! 0 (dissimilar): `0.5 * (y d^2 + (1 - y) relu(margin - d)^2)`, averaged
//! over the batch (or summed), with `d` one of sentence-transformers'
//! `SiameseDistanceMetric`s (default `1 - cosine`).

use candle_core::{Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "ContrastiveLoss",
        family: Family::Loss,
        doc: "Contrastive loss on pairs labelled 1 (similar) or 0 (dissimilar): similar pairs are pulled together, dissimilar ones pushed at least `margin` apart.",
        args: &[
            req("model", Model, "the model trained"),
            opt("distance", Choice(Similarity::DISTANCES), "cosine", "distance metric (`cosine` is 1 - cosine similarity)"),
            opt("margin", Float, "0.5", "distance dissimilar pairs should have at least").at_least(0.0),
            opt("size_average", Bool, "true", "average over the batch (else sum)"),
        ],
        columns: Some(columns::PAIR_BINARY),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(ContrastiveLoss {
        distance: a.choice("distance").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
        size_average: a.bool("size_average").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct ContrastiveLoss {
    pub distance: Similarity,
    pub margin: f64,
    pub size_average: bool,
}

impl Default for ContrastiveLoss {
    fn default() -> Self {
        ContrastiveLoss {
            distance: Similarity::Cosine,
            margin: 0.5,
            size_average: true,
        }
    }
}

impl Loss for ContrastiveLoss {
    fn name(&self) -> &str {
        "ContrastiveLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(2))?;
        let y = inputs.scores_for(self.name(), batch, cols[0].dtype(), cols[0].device())?;
        let d = ops::siamese_distance(self.distance, &cols[0], &cols[1])?;
        let pos = (&y * d.sqr()?)?;
        let neg = (y.affine(-1.0, 1.0)? * d.affine(-1.0, self.margin)?.relu()?.sqr()?)?;
        let losses = ((pos + neg)? * 0.5)?;
        if self.size_average {
            losses.mean_all()
        } else {
            losses.sum_all()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn inputs(cols: Vec<Vec<Vec<f64>>>, labels: &[f64]) -> LossInputs {
        LossInputs::new(cols.iter().map(|c| t2(c)).collect()).with_scores(t1(labels))
    }

    const LABELS: [f64; 5] = [1.0, 0.0, 1.0, 1.0, 0.0];

    #[test]
    fn hand_computed_value() -> Result<()> {
        // Pair 0 (similar): u = (1, 0), v = (0, 1): cosine distance 1,
        // loss 0.5 * 1^2 = 0.5. Pair 1 (dissimilar): u = v = (1, 1):
        // distance 0, loss 0.5 * relu(0.5 - 0)^2 = 0.125. Mean 0.3125.
        let u = vec![vec![1.0, 0.0], vec![1.0, 1.0]];
        let v = vec![vec![0.0, 1.0], vec![1.0, 1.0]];
        let got = scalar(&ContrastiveLoss::default().forward(&inputs(vec![u, v], &[1.0, 0.0]))?);
        assert!((got - 0.3125).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let (u, v) = (gen(0, 5, 4), gen(1, 5, 4));
        let cases = [
            (ContrastiveLoss::default(), 0.6731234615461013),
            (
                ContrastiveLoss {
                    distance: Similarity::Euclidean,
                    margin: 2.0,
                    size_average: false,
                },
                9.45941969615582,
            ),
            (
                ContrastiveLoss {
                    distance: Similarity::Manhattan,
                    margin: 3.0,
                    size_average: true,
                },
                7.024714604644991,
            ),
        ];
        for (loss, want) in cases {
            let got = scalar(&loss.forward(&inputs(vec![u.clone(), v.clone()], &LABELS))?);
            assert!((got - want).abs() < 1e-10, "{loss:?}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 5, 3), gen(1, 5, 3)];
        for distance in [
            Similarity::Cosine,
            Similarity::Euclidean,
            Similarity::Manhattan,
        ] {
            let loss = ContrastiveLoss {
                distance,
                margin: 1.5,
                size_average: true,
            };
            check_grads(&cols, |t| {
                loss.forward(&LossInputs::new(t.to_vec()).with_scores(t1(&LABELS)))
            })?;
        }
        Ok(())
    }
}
