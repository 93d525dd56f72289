//! `TripletLoss`: `relu(d(a, p) - d(a, n) + margin)` averaged over
//! (anchor, positive, negative) triplets, with one of sentence-transformers'
//! `TripletDistanceMetric`s (default Euclidean, margin 5).

use candle_core::{Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "TripletLoss",
        family: Family::Loss,
        doc: "Pushes the anchor closer to the positive than to the negative by a margin.",
        args: &[
            req("model", Model, "the model trained"),
            opt(
                "distance",
                Choice(Similarity::DISTANCES),
                "euclidean",
                "distance metric (`cosine` is 1 - cosine similarity)",
            ),
            opt(
                "margin",
                Float,
                "5.0",
                "how much closer the positive must be",
            )
            .at_least(0.0),
        ],
        columns: Some(columns::TRIPLET),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(TripletLoss {
        distance: a.choice("distance").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct TripletLoss {
    pub distance: Similarity,
    pub margin: f64,
}

impl Default for TripletLoss {
    fn default() -> Self {
        TripletLoss {
            distance: Similarity::Euclidean,
            margin: 5.0,
        }
    }
}

impl Loss for TripletLoss {
    fn name(&self) -> &str {
        "TripletLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, _, _) = inputs.columns(self.name(), 3, Some(3))?;
        let dp = ops::triplet_distance(self.distance, &cols[0], &cols[1])?;
        let dn = ops::triplet_distance(self.distance, &cols[0], &cols[2])?;
        (dp - dn)?.affine(1.0, self.margin)?.relu()?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn value(loss: &TripletLoss, cols: &[Vec<Vec<f64>>]) -> Result<f64> {
        Ok(scalar(&loss.forward(&LossInputs::new(
            cols.iter().map(|c| t2(c)).collect(),
        ))?))
    }

    #[test]
    fn hand_computed_value() -> Result<()> {
        // a = (0, 0), p = (3, 4), n = (6, 8): distances 5 and 10; with
        // margin 1: relu(5 - 10 + 1) = 0. Swapped: relu(10 - 5 + 1) = 6.
        let loss = TripletLoss {
            distance: Similarity::Euclidean,
            margin: 1.0,
        };
        let (a, p, n) = (
            vec![vec![0.0, 0.0]],
            vec![vec![3.0, 4.0]],
            vec![vec![6.0, 8.0]],
        );
        assert_eq!(value(&loss, &[a.clone(), p.clone(), n.clone()])?, 0.0);
        assert!((value(&loss, &[a, n, p])? - 6.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let cases = [
            (TripletLoss::default(), 4.463627788567142),
            (
                TripletLoss {
                    distance: Similarity::Cosine,
                    margin: 0.5,
                },
                0.15306300894248684,
            ),
            (
                TripletLoss {
                    distance: Similarity::Manhattan,
                    margin: 1.0,
                },
                0.43523826823257233,
            ),
        ];
        for (loss, want) in cases {
            let got = value(&loss, &cols)?;
            assert!((got - want).abs() < 1e-10, "{loss:?}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 4, 3), gen(1, 4, 3), gen(2, 4, 3)];
        for distance in [
            Similarity::Cosine,
            Similarity::Euclidean,
            Similarity::Manhattan,
        ] {
            let loss = TripletLoss {
                distance,
                margin: 1.0,
            };
            check_grads(&cols, |t| loss.forward(&LossInputs::new(t.to_vec())))?;
        }
        Ok(())
    }
}
