//! `BatchAllTripletLoss`: every valid triplet of the batch (anchor and
//! positive of one label, negative of another), `relu(d_ap - d_an +
//! margin)`, summed and divided by the number of triplets that are still
//! active (loss > 1e-16).

use candle_core::{Result, Tensor};

use super::batch_triplet::{Batch, DISTANCE, MARGIN, MODEL};
use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "BatchAllTripletLoss",
        family: Family::Loss,
        doc: "Triplet loss over all valid (anchor, positive, negative) triplets of the batch, averaged over the active ones; single texts with class labels (use `sampler: group_by_label`).",
        args: &[MODEL, DISTANCE, MARGIN],
        columns: Some(columns::SINGLE_LABELLED),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(BatchAllTripletLoss {
        distance: a.choice("distance").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct BatchAllTripletLoss {
    pub distance: Similarity,
    pub margin: f64,
}

impl Default for BatchAllTripletLoss {
    fn default() -> Self {
        BatchAllTripletLoss {
            distance: Similarity::Euclidean,
            margin: 5.0,
        }
    }
}

impl Loss for BatchAllTripletLoss {
    fn name(&self) -> &str {
        "BatchAllTripletLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let b = Batch::new(self.name(), inputs, self.distance)?;
        let n = b.n();
        // t[i, j, k] = d(i, j) - d(i, k) + margin, kept where (i, j) is a
        // positive pair and k a negative of i.
        let t = b
            .dist
            .unsqueeze(2)?
            .broadcast_sub(&b.dist.unsqueeze(1)?)?
            .affine(1.0, self.margin)?;
        let mut valid = vec![0f64; n * n * n];
        let mut active = 0usize;
        for i in 0..n {
            for j in 0..n {
                if !b.positive(i, j) {
                    continue;
                }
                for k in 0..n {
                    if b.negative(i, k) {
                        valid[(i * n + j) * n + k] = 1.0;
                        if b.d(i, j) - b.d(i, k) + self.margin > 1e-16 {
                            active += 1;
                        }
                    }
                }
            }
        }
        let mask = Tensor::from_vec(valid, (n, n, n), t.device())?.to_dtype(t.dtype())?;
        let total = (t * mask)?.relu()?.sum_all()?;
        total.affine(1.0 / (active as f64 + 1e-16), 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // x = 0, 1 (label 0) and 3 (label 1), margin 1.5: triplets
        // (0,1,2): 1 - 3 + 1.5 < 0; (1,0,2): 1 - 2 + 1.5 = 0.5. One active.
        let loss = BatchAllTripletLoss {
            distance: Similarity::Euclidean,
            margin: 1.5,
        };
        let inputs = LossInputs::new(vec![t2(&[vec![0.0], vec![1.0], vec![3.0]])])
            .with_labels(Tensor::new(&[0i64, 0, 1], &candle_core::Device::Cpu)?);
        let got = scalar(&loss.forward(&inputs)?);
        assert!((got - 0.5).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let cases = [
            (Similarity::Euclidean, 1.0, 1.7784000801670814),
            (Similarity::Cosine, 1.0, 1.7589200888604508),
            (Similarity::Euclidean, 5.0, 5.090763071436102),
        ];
        for (distance, margin, want) in cases {
            let got = batch_value(&BatchAllTripletLoss { distance, margin })?;
            assert!((got - want).abs() < 1e-10, "{distance}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        for distance in [Similarity::Euclidean, Similarity::Cosine] {
            batch_grads(&BatchAllTripletLoss {
                distance,
                margin: 1.0,
            })?;
        }
        Ok(())
    }
}
