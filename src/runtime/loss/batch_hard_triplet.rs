//! `BatchHardTripletLoss` (Hermans et al. 2017): for every text of the
//! batch as anchor, its farthest positive (same label) and closest negative
//! (other label): `mean(relu(d_hardest_pos - d_hardest_neg + margin))`.

use candle_core::{Result, Tensor};

use super::batch_triplet::{Batch, DISTANCE, MARGIN, MODEL};
use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "BatchHardTripletLoss",
        family: Family::Loss,
        doc: "Triplet loss on the hardest positive and the hardest negative of each anchor in the batch, for single texts with class labels (use `sampler: group_by_label`).",
        args: &[MODEL, DISTANCE, MARGIN],
        columns: Some(columns::SINGLE_LABELLED),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(BatchHardTripletLoss {
        distance: a.choice("distance").map_err(super::arg)?,
        margin: a.f64("margin").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct BatchHardTripletLoss {
    pub distance: Similarity,
    pub margin: f64,
}

impl Default for BatchHardTripletLoss {
    fn default() -> Self {
        BatchHardTripletLoss {
            distance: Similarity::Euclidean,
            margin: 5.0,
        }
    }
}

impl Loss for BatchHardTripletLoss {
    fn name(&self) -> &str {
        "BatchHardTripletLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let b = Batch::new(self.name(), inputs, self.distance)?;
        let tl = (b.hardest_positive()? - b.hardest_negative()?)?.affine(1.0, self.margin)?;
        tl.relu()?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // On a line: x = 0, 1 (label 0) and 3 (label 1). Anchor 0: hardest
        // positive 1, hardest negative 3: relu(1 - 3 + m); anchor 1:
        // relu(1 - 2 + m); anchor 2 (no positive): relu(0 - 2 + m).
        // With m = 1.5: (0 + 0.5 + 0) / 3.
        let loss = BatchHardTripletLoss {
            distance: Similarity::Euclidean,
            margin: 1.5,
        };
        let inputs = LossInputs::new(vec![t2(&[vec![0.0], vec![1.0], vec![3.0]])])
            .with_labels(Tensor::new(&[0i64, 0, 1], &candle_core::Device::Cpu)?);
        let got = scalar(&loss.forward(&inputs)?);
        assert!((got - 0.5 / 3.0).abs() < 1e-12, "{got}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let cases = [
            (Similarity::Euclidean, 1.0, 2.417507456548945),
            (Similarity::Cosine, 1.0, 2.217550868255228),
            (Similarity::Euclidean, 5.0, 6.417507456548945),
        ];
        for (distance, margin, want) in cases {
            let got = batch_value(&BatchHardTripletLoss { distance, margin })?;
            assert!((got - want).abs() < 1e-10, "{distance}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        for distance in [Similarity::Euclidean, Similarity::Cosine] {
            batch_grads(&BatchHardTripletLoss {
                distance,
                margin: 1.0,
            })?;
        }
        Ok(())
    }
}
