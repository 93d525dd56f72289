//! `BatchHardSoftMarginTripletLoss`: the batch-hard triplets of
//! [`super::BatchHardTripletLoss`] with a soft margin instead of a fixed
//! one: `mean(softplus(d_hardest_pos - d_hardest_neg))`.

use candle_core::{Result, Tensor};

use super::batch_triplet::{Batch, DISTANCE, MODEL};
use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, Args, Component, Family};

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "BatchHardSoftMarginTripletLoss",
        family: Family::Loss,
        doc: "Batch-hard triplet loss with a soft margin, `log(1 + exp(d_pos - d_neg))`; single texts with class labels (use `sampler: group_by_label`).",
        args: &[MODEL, DISTANCE],
        columns: Some(columns::SINGLE_LABELLED),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(BatchHardSoftMarginTripletLoss {
        distance: a.choice("distance").map_err(super::arg)?,
    }))
}

#[derive(Debug, Clone)]
pub struct BatchHardSoftMarginTripletLoss {
    pub distance: Similarity,
}

impl Default for BatchHardSoftMarginTripletLoss {
    fn default() -> Self {
        BatchHardSoftMarginTripletLoss {
            distance: Similarity::Euclidean,
        }
    }
}

/// `log(1 + exp(x))`, computed as `max(x, 0) + log(1 + exp(-|x|))`.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    x.relu()? + tail
}

impl Loss for BatchHardSoftMarginTripletLoss {
    fn name(&self) -> &str {
        "BatchHardSoftMarginTripletLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        let b = Batch::new(self.name(), inputs, self.distance)?;
        softplus(&(b.hardest_positive()? - b.hardest_negative()?)?)?.mean_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn hand_computed_value() -> Result<()> {
        // x = 0, 1 (label 0), 3 (label 1): differences 1 - 3, 1 - 2, 0 - 2.
        let inputs = LossInputs::new(vec![t2(&[vec![0.0], vec![1.0], vec![3.0]])])
            .with_labels(Tensor::new(&[0i64, 0, 1], &candle_core::Device::Cpu)?);
        let got = scalar(&BatchHardSoftMarginTripletLoss::default().forward(&inputs)?);
        let sp = |x: f64| (1.0 + x.exp()).ln();
        let want = (sp(-2.0) + sp(-1.0) + sp(-2.0)) / 3.0;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn matches_sentence_transformers() -> Result<()> {
        let cases = [
            (Similarity::Euclidean, 1.7321145747775983),
            (Similarity::Cosine, 1.5442598766472968),
        ];
        for (distance, want) in cases {
            let got = batch_value(&BatchHardSoftMarginTripletLoss { distance })?;
            assert!((got - want).abs() < 1e-10, "{distance}: {got} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn gradients() -> Result<()> {
        for distance in [Similarity::Euclidean, Similarity::Cosine] {
            batch_grads(&BatchHardSoftMarginTripletLoss { distance })?;
        }
        Ok(())
    }
}
