//! `OnlineContrastiveLoss`: the contrastive loss on the hard pairs of each
//! batch only. A positive pair (label 1) counts when it is farther apart
//! than the closest negative pair, a negative pair (label 0) when it is
//! closer than the farthest positive pair (with only one kind in the batch,
//! the mean of that kind is the threshold). The loss is
//! `sum(d_pos^2) + sum(relu(margin - d_neg)^2)` over the pairs that count,
//! without the 0.5 and without averaging, as in sentence-transformers.

use candle_core::{Result, Tensor};

use super::{ops, Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, opt, req, ArgType::*, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "OnlineContrastiveLoss",
        family: Family::Loss,
        doc: "Contrastive loss on the hard positives and hard negatives of each batch only (pairs labelled 1 or 0).",
        args: &[
            req("model", Model, "the model trained"),
            opt("distance", Choice(Similarity::DISTANCES), "cosine", "distance metric (`cosine` is 1 - cosine similarity)"),
            opt("margin", Float, "0.5", "distance dissimilar pairs should have at least").at_least(0.0),
        ],
        columns: Some(columns::PAIR_BINARY),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(OnlineContrastiveLoss {
        distance: a.choice("distance").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct OnlineContrastiveLoss {
    pub distance: Similarity,
    pub margin: f64,
}

impl Default for OnlineContrastiveLoss {
    fn default() -> Self {
        OnlineContrastiveLoss {
            distance: Similarity::Cosine,
            margin: 0.5,
        }
    }
}

/// Which pairs count: `(hard positives, hard negatives)` as 0/1 masks.
fn hard_pairs(d: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let pos: Vec<f64> = d
        .iter()
        .zip(y)
        .filter(|(_, &l)| l == 1.0)
        .map(|(&x, _)| x)
        .collect();
    let neg: Vec<f64> = d
        .iter()
        .zip(y)
        .filter(|(_, &l)| l == 0.0)
        .map(|(&x, _)| x)
        .collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    // An empty side makes its threshold NaN, which selects nothing, as the
    // comparisons with torch's NaN mean do.
    let neg_limit = if pos.is_empty() {
        mean(&neg)
    } else {
        pos.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    };
    let pos_limit = if neg.is_empty() {
        mean(&pos)
    } else {
        neg.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let sel = |label: f64, keep: &dyn Fn(f64) -> bool| -> Vec<f64> {
        d.iter()
            .zip(y)
            .map(|(&x, &l)| f64::from(u8::from(l == label && keep(x))))
            .collect()
    };
    (sel(1.0, &|x| x > pos_limit), sel(0.0, &|x| x < neg_limit))
}

impl Loss for OnlineContrastiveLoss {
    fn name(&self) -> &str {
        "OnlineContrastiveLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let (cols, batch, _) = inputs.columns(self.name(), 2, Some(2))?;
        let (dtype, device) = (cols[0].dtype(), cols[0].device());
        let y = inputs.scores_for(self.name(), batch, candle_core::DType::F64, device)?;
        let d = ops::siamese_distance(self.distance, &cols[0], &cols[1])?;
        let dv = d.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
        let (pos, neg) = hard_pairs(&dv, &y.to_vec1::<f64>()?);
        let mask = |m: Vec<f64>| Tensor::from_vec(m, batch, device)?.to_dtype(dtype);
        let positive = (mask(pos)? * d.sqr()?)?.sum_all()?;
        let negative = (mask(neg)? * d.affine(-1.0, self.margin)?.relu()?.sqr()?)?.sum_all()?;
        positive + negative
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    fn value(loss: &OnlineContrastiveLoss, labels: &[f64]) -> Result<f64> {
        let inputs =
            LossInputs::new(vec![t2(&gen(0, 5, 4)), t2(&gen(1, 5, 4))]).with_scores(t1(labels));
        Ok(scalar(&loss.forward(&inputs)?))
    }

    #[test]
    fn selects_the_hard_pairs_by_hand() {
        // Positives at distances 0.2 and 0.9, negatives at 0.5 and 1.4:
        // positives farther than the closest negative (0.5): only 0.9;
        // negatives closer than the farthest positive (0.9): only 0.5.
        let (p, n) = hard_pairs(&[0.2, 0.9, 0.5, 1.4], &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(p, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(n, vec![0.0, 0.0, 1.0, 0.0]);
        // Labels other than 0 and 1 take no part.
        let (p, n) = hard_pairs(&[0.2, 0.9], &[2.0, 0.0]);
        assert_eq!((p, n), (vec![0.0, 0.0], vec![0.0, 0.0]));
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let binary = [1.0, 0.0, 1.0, 1.0, 0.0];
        let euclid = OnlineContrastiveLoss {
            distance: Similarity::Euclidean,
            margin: 2.0,
        };
        let cases = [
            (
                value(&OnlineContrastiveLoss::default(), &binary)?,
                6.7312346154610125,
            ),
            (value(&euclid, &binary)?, 18.91883939231164),
            (
                value(&OnlineContrastiveLoss::default(), &[1.0; 5])?,
                8.831261754151061,
            ),
        ];
        assert_reference(&cases);
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        let cols = [gen(0, 6, 3), gen(1, 6, 3)];
        let labels = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        for distance in [Similarity::Cosine, Similarity::Euclidean] {
            let loss = OnlineContrastiveLoss {
                distance,
                margin: 1.0,
            };
            check_grads(&cols, |t| {
                loss.forward(&LossInputs::new(t.to_vec()).with_scores(t1(&labels)))
            })?;
        }
        Ok(())
    }
}
