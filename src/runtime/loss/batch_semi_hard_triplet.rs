//! `BatchSemiHardTripletLoss` (Schroff et al. 2015, FaceNet): for every
//! positive pair `(i, j)` the negative chosen is the closest one that is
//! still farther from the anchor than the positive (semi-hard); when there
//! is none, the farthest negative. `sum(relu(d_ij - d_ik + margin))` over
//! positive pairs, divided by their number.

use candle_core::{Result, Tensor};

use super::batch_triplet::{first_best, Batch, DISTANCE, MARGIN, MODEL};
use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "BatchSemiHardTripletLoss",
        family: Family::Loss,
        doc: "Triplet loss with semi-hard negatives: for each positive pair, the closest negative farther from the anchor than the positive (else the farthest one); single texts with class labels (use `sampler: group_by_label`).",
        args: &[MODEL, DISTANCE, MARGIN],
        columns: Some(columns::SINGLE_LABELLED),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(BatchSemiHardTripletLoss {
        distance: a.choice("distance").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct BatchSemiHardTripletLoss {
    pub distance: Similarity,
    pub margin: f64,
}

impl Default for BatchSemiHardTripletLoss {
    fn default() -> Self {
        BatchSemiHardTripletLoss {
            distance: Similarity::Euclidean,
            margin: 5.0,
        }
    }
}

/// The column of the negative chosen for the positive pair `(i, j)`.
fn semi_hard_negative(b: &Batch, i: usize, j: usize) -> usize {
    let n = b.n();
    let dij = b.d(i, j);
    // Closest negative strictly farther than the positive.
    let outside = (0..n)
        .filter(|&k| b.negative(i, k) && b.d(i, k) > dij)
        .min_by(|&x, &y| b.d(i, x).total_cmp(&b.d(i, y)));
    if let Some(k) = outside {
        return k;
    }
    if (0..n).any(|k| b.negative(i, k)) {
        // The farthest negative (torch's masked maximum).
        let v = |k: usize| {
            if b.negative(i, k) {
                b.d(i, k)
            } else {
                f64::NEG_INFINITY
            }
        };
        return first_best(n, |x, y| v(x) > v(y)) as usize;
    }
    // No negative at all: the masked maximum of an empty mask is the row's
    // minimum.
    first_best(n, |x, y| b.d(i, x) < b.d(i, y)) as usize
}

impl Loss for BatchSemiHardTripletLoss {
    fn name(&self) -> &str {
        "BatchSemiHardTripletLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let b = Batch::new(self.name(), inputs, self.distance)?;
        let n = b.n();
        // Row i, column j: d(i, j) - d(i, k(i, j)) + margin, for every j.
        let mut picks = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                let k = if b.positive(i, j) {
                    semi_hard_negative(&b, i, j)
                } else {
                    j
                };
                picks.push(k as u32);
            }
        }
        let picks = Tensor::from_vec(picks, (n, n), b.dist.device())?;
        let negatives = b.dist.gather(&picks, 1)?;
        let loss_mat = (&b.dist - negatives)?.affine(1.0, self.margin)?;
        let positives = b.mask(|i, j| b.positive(i, j))?;
        let count = (0..n * n).filter(|k| b.positive(k / n, k % n)).count() as f64;
        (loss_mat * positives)?
            .relu()?
            .sum_all()?
            .affine(1.0 / count.max(1e-16), 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // x = 0, 1 (label 0), 0.5 and 3 (label 1), margin 1. Pair (0, 1),
        // d = 1: negatives of 0 at 0.5 and 3, the semi-hard one is 3:
        // relu(1 - 3 + 1) = 0. Pair (1, 0), d = 1: negatives of 1 at 0.5
        // and 2: 2, relu(1 - 2 + 1) = 0. Pair (2, 3), d = 2.5: negatives
        // of 2 both at 0.5, none farther: the farthest, 0.5:
        // relu(2.5 - 0.5 + 1) = 3. Pair (3, 2), d = 2.5: negatives at 3
        // and 2: 3, relu(2.5 - 3 + 1) = 0.5. Sum 3.5 over 4 pairs.
        let loss = BatchSemiHardTripletLoss {
            distance: Similarity::Euclidean,
            margin: 1.0,
        };
        let x = [vec![0.0], vec![1.0], vec![0.5], vec![3.0]];
        let inputs = LossInputs::new(vec![t2(&x)])
            .with_labels(Tensor::new(&[0i64, 0, 1, 1], &candle_core::Device::Cpu)?);
        let got = scalar(&loss.forward(&inputs)?);
        assert!((got - 0.875).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let cases = [
            (Similarity::Euclidean, 1.0, 0.7831872418897938),
            (Similarity::Cosine, 1.0, 0.8490670036769516),
            (Similarity::Euclidean, 5.0, 4.743188910101269),
        ];
        for (distance, margin, want) in cases {
            let got = batch_value(&BatchSemiHardTripletLoss { distance, margin })?;
            assert!((got - want).abs() < 1e-10, "{distance}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        for distance in [Similarity::Euclidean, Similarity::Cosine] {
            batch_grads(&BatchSemiHardTripletLoss {
                distance,
                margin: 1.0,
            })?;
        }
        Ok(())
    }
}
