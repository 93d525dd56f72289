//! `CachedMultipleNegativesRankingLoss`: MultipleNegativesRankingLoss with
//! GradCache (Gao et al. 2021), so that the batch size, and with it the
//! number of in-batch negatives, is not bounded by memory.
//!
//! The loss value and its gradients are those of the uncached loss; what
//! changes is how the trainer computes them (`train/grad_cache.rs`): it
//! embeds the batch `mini_batch_size` texts at a time without keeping the
//! model's activations, computes the loss and its gradient with respect to
//! the embeddings, then embeds each mini-batch again (with the same dropout
//! masks) and backpropagates that mini-batch's share of the gradient. Peak
//! memory is that of one mini-batch's forward and backward, plus the
//! embeddings of the whole batch.

use candle_core::{Result, Tensor};

use super::mnrl::MultipleNegativesRankingLoss;
use super::{Loss, LossCx, LossEntry, LossInputs, Similarity};
use crate::registry::{columns, opt, req, ArgSpec, ArgType::*, Args, Component, Family};

/// The arguments of the cached in-batch negatives losses.
pub(super) const ARGS: &[ArgSpec] = &[
    req("model", Model, "the model trained"),
    opt("scale", Float, "20.0", "inverse temperature").above(0.0),
    opt(
        "similarity",
        Choice(Similarity::NAMES),
        "cosine",
        "similarity function; euclidean and manhattan use negative distances",
    ),
    opt(
        "mini_batch_size",
        Count,
        "32",
        "texts embedded at a time: bounds memory, not the batch size; the gradients do not depend on it",
    )
    .at_least(1.0),
];

pub const ENTRY: LossEntry = LossEntry {
    spec: Component {
        name: "CachedMultipleNegativesRankingLoss",
        family: Family::Loss,
        doc: "MultipleNegativesRankingLoss with GradCache: the same loss and gradients, with memory bounded by `mini_batch_size` texts instead of the batch, so batches can be as large as the in-batch negatives need.",
        args: ARGS,
        columns: Some(columns::RANKING),
        ..Component::BASE
    },
    build,
};

fn build(a: &Args, _: &LossCx) -> Result<Box<dyn Loss>> {
    Ok(Box::new(CachedMultipleNegativesRankingLoss {
        inner: MultipleNegativesRankingLoss::new(
            a.f64("scale").map_err(super::arg)?,
            a.choice("similarity").map_err(super::arg)?,
        )?,
        mini_batch_size: a.usize("mini_batch_size").map_err(super::arg)?.max(1),
    }))
}

#[derive(Debug, Clone)]
pub struct CachedMultipleNegativesRankingLoss {
    pub inner: MultipleNegativesRankingLoss,
    pub mini_batch_size: usize,
}

impl Loss for CachedMultipleNegativesRankingLoss {
    fn name(&self) -> &str {
        "CachedMultipleNegativesRankingLoss"
    }

    fn forward(&self, inputs: &LossInputs) -> Result<Tensor> {
        self.inner.forward(inputs)
    }

    fn mini_batch_size(&self) -> Option<usize> {
        Some(self.mini_batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::loss::testutil::*;

    #[test]
    fn the_value_is_the_uncached_loss() -> Result<()> {
        // scripts/loss_reference_values.py: cached_mnrl_uvw.
        let cols = [gen(0, 5, 4), gen(1, 5, 4), gen(2, 5, 4)];
        let cached = CachedMultipleNegativesRankingLoss {
            inner: MultipleNegativesRankingLoss::default(),
            mini_batch_size: 2,
        };
        assert_reference(&[(columns_value(&cached, &cols)?, 25.562258914953567)]);
        assert_eq!(cached.mini_batch_size(), Some(2));
        Ok(())
    }
}
